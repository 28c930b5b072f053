"""Markdown tables of a benchmark result (the dict that ``tools/benchmark.py`` writes as JSON)."""
from __future__ import annotations

from .crop import LEVERS
from .profile import format_profile_markdown


def _bound(row: dict) -> str:
    return f"{row['speedup_bound']:.1f}×" if row.get("speedup_bound") else ""


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def format_markdown(results: dict) -> str:
    """Markdown tables of a benchmark result dict (keys ``machine``, ``crop``, ``crop_levers``,
    ``step``, ``inference``, ``profile``; any may be absent)."""
    lines = []
    m = results.get("machine", {})
    if m:
        lines += [
            f"Machine: {m.get('cpu')} ({m.get('cpu_cores')} cores, {m.get('torch_threads')} torch threads), "
            f"torch {m.get('torch')}, device {m.get('device')}"
            + (f", GPU {m['gpu']}" if m.get("gpu") else "")
            + (f", 1-min load average at start {m['load_average_1min']:.2f}" if "load_average_1min" in m else "")
            + (f", at end {m['load_average_1min_end']:.2f}" if "load_average_1min_end" in m else ""),
            "",
        ]
    if results.get("teacher"):
        t = results["teacher"]
        lines += [f"Teacher: {t['arch']}, {t['input_size']} px, {t['weights']}", ""]
    if results.get("memory_method"):
        lines += [f"Peak memory: {results['memory_method']}", ""]
    if results.get("crop"):
        lines += [
            "| crop | image | N | ours crops/s | ours peak MiB | reference crops/s | reference peak MiB | speed-up | bound | memory ratio |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["crop"]:
            ref = r["reference"]
            if isinstance(ref, dict):
                ref_cells = f"{ref['crops_per_s']:.0f} | {_mib(ref['peak_bytes'])} | {r['speedup']:.1f}× | {_bound(r)} | {r['memory_ratio']:.0f}×"
            else:
                ref_cells = f"{ref} | | | | "
            lines.append(
                f"| {r['op']} | {r['image']} | {r['num_boxes']} | {r['crops_per_s']:.0f} | "
                f"{_mib(r['ours']['peak_bytes'])} | {ref_cells} |"
            )
        lines += ["", "bound (KD_loc): the speed-up if all but the crop's `grid_sample` forward and backward "
                  "took no time (speed-up / the sampler's share of the crop's operator time).", ""]
    lev = results.get("crop_levers")
    if lev:
        lines += [f"Levers ({lev['num_crops']} crops, {lev['num_images']} images of {lev['image']}; "
                  "× first = time / the lever's first variant):", "",
                  "| lever | variant | median s | × first | peak MiB |", "|---|---|---|---|---|"]
        for lever in LEVERS:
            variants = lev.get(lever, {})
            if isinstance(variants, str):
                lines.append(f"| {lever} | {variants} | | | |")
                continue
            first = next(iter(variants.values()), {}).get("median_s")
            for variant, v in variants.items():
                peak = _mib(v["peak_bytes"]) if "peak_bytes" in v else ""
                lines.append(f"| {lever} | {variant} | {v['median_s']:.4f} | {v['median_s'] / first:.2f} | {peak} |")
        lines.append("")
    for section in ("step", "inference"):
        for student, r in results.get(section, {}).items():
            if r.get("status") != "ok":
                lines += [f"{section} {student}: {r.get('status')}", ""]
    step = {k: v for k, v in results.get("step", {}).items() if v.get("status") == "ok"}
    if step:
        lines += ["| student | variant | s/iter | × baseline | teacher share | teacher fwd s | teacher bwd s | K |",
                  "|---|---|---|---|---|---|---|---|"]
        for student, r in step.items():
            gt = "{}–{} gt/image".format(*r.get("gt_per_image", ("?", "?")))
            for variant, v in r["variants"].items():
                share = f"{v['teacher_share']:.0%}" if "teacher_share" in v else ""
                fwd = f"{v['teacher_forward_s']:.3f}" if "teacher_forward_s" in v else ""
                bwd = f"{v['teacher_backward_s']:.3f}" if "teacher_backward_s" in v else ""
                k = f"{v['num_positives']:.0f}" if "num_positives" in v else ""
                lines.append(
                    f"| {student} ({r['batch_size']}×{r['image_size']}², {gt}) | {variant} | {v['median_s']:.3f} | "
                    f"{v['ratio_to_baseline']:.2f} | {share} | {fwd} | {bwd} | {k} |"
                )
        lines.append("")
    inf = {k: v for k, v in results.get("inference", {}).items() if v.get("status") == "ok"}
    if inf:
        lines += ["| student | baseline s/image | DICOD s/image | ratio | baseline ckpt bytes | DICOD ckpt bytes "
                  "| same keys | teacher keys |", "|---|---|---|---|---|---|---|---|"]
        for student, r in inf.items():
            b, d = r["baseline"], r["dicod"]
            lines.append(
                f"| {student} | {b['s_per_image']:.4f} | {d['s_per_image']:.4f} | {r['time_ratio']:.2f} | "
                f"{b['checkpoint_bytes']} | {d['checkpoint_bytes']} | {r['same_state_dict_keys']} | "
                f"{d['teacher_keys']} |"
            )
        lines.append("")
    if results.get("profile"):
        lines += format_profile_markdown(results["profile"])
    return "\n".join(lines)
