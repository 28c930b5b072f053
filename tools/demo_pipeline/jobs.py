"""Run training commands as subprocesses, a few at a time, with one progress line and an ETA."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence


@dataclasses.dataclass
class Job:
    """One command that trains for ``max_iter`` iterations and logs to ``output_dir/metrics.json``."""

    name: str
    argv: list[str]
    output_dir: Path
    max_iter: int
    done: Callable[[], bool] = lambda: False  # a finished run of the same settings: skip it
    on_success: Callable[[], None] = lambda: None  # called as soon as the command succeeded

    @property
    def log_file(self) -> Path:
        return self.output_dir / "demo_stdout.log"

    def command_line(self) -> str:
        return " ".join(self.argv)


def last_iteration(output_dir: Path) -> int:
    """Last training iteration logged in ``output_dir/metrics.json`` (-1 if none)."""
    path = Path(output_dir) / "metrics.json"
    if not path.is_file():
        return -1
    last = -1
    for line in path.read_text().splitlines():
        try:
            last = max(last, int(json.loads(line).get("iteration", -1)))
        except (ValueError, json.JSONDecodeError):
            continue  # a line being written
    return last


def _format_seconds(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 60:d}:{s % 60:02d}"


def run_jobs(jobs: Sequence[Job], parallel: int, stage: str, threads_per_job: int | None = None,
             poll_s: float = 5.0) -> None:
    """Run ``jobs``, ``parallel`` at a time, printing progress with an ETA; fail on the first error.

    Each job gets ``threads_per_job`` CPU threads (default: cores // parallel) through
    ``OMP_NUM_THREADS``. Jobs whose ``done()`` is true are skipped.
    """
    todo = [j for j in jobs if not j.done()]
    for j in jobs:
        if j not in todo:
            print(f"[{stage}] {j.name}: finished earlier with the same settings, reused", flush=True)
    if not todo:
        return
    threads = threads_per_job or max(1, (os.cpu_count() or 1) // parallel)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    total = sum(j.max_iter for j in todo)
    pending, running, finished_iters = list(todo), {}, 0
    start = last_print = time.time()
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            job.output_dir.mkdir(parents=True, exist_ok=True)
            log = open(job.log_file, "w")
            print(f"[{stage}] start {job.name}: {job.command_line()}", flush=True)
            running[job.name] = (job, subprocess.Popen(job.argv, stdout=log, stderr=subprocess.STDOUT,
                                                       env=env), log)
        time.sleep(poll_s)
        for name, (job, proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[name]
            if proc.returncode != 0:
                for _, p, lg in running.values():
                    p.kill()
                    lg.close()
                tail = job.log_file.read_text()[-3000:]
                raise RuntimeError(f"[{stage}] {job.name} failed (exit {proc.returncode}); "
                                   f"log {job.log_file}:\n{tail}")
            job.on_success()
            finished_iters += job.max_iter
            print(f"[{stage}] done {job.name} ({_format_seconds(time.time() - start)} elapsed)",
                  flush=True)
        now = time.time()
        if now - last_print >= 30 or not (pending or running):
            last_print = now
            progress = finished_iters + sum(max(0, last_iteration(j.output_dir) + 1)
                                            for j, _, _ in running.values())
            frac = progress / total
            eta = (now - start) * (1 - frac) / frac if frac > 0.02 else float("nan")
            eta_text = _format_seconds(eta) if eta == eta else "estimating"
            print(f"[{stage}] {progress}/{total} iterations ({100 * frac:.0f}%), "
                  f"elapsed {_format_seconds(now - start)}, ETA {eta_text}", flush=True)


def python_tool(script: str, *args: str) -> list[str]:
    """argv running ``tools/<script>`` with this interpreter."""
    return [sys.executable, str(Path(__file__).resolve().parents[2] / "tools" / script), *args]
