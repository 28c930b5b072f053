"""TIDE error analysis (Bolya et al., ECCV 2020) of detectron2 COCO-format box results.

For each named results file (detectron2's ``coco_instances_results.json``) this measures TIDE's six
main error types as dAP, the AP points gained by fixing every error of that type alone:

====  =================  ========================================================================
Cls   classification     right box (IoU >= fg with a GT of another class), wrong class
Loc   localization       right class, IoU with a GT in [bg, fg]
Both  both               none of the others: wrong class and bg < IoU < fg with some GT
Dupe  duplicate          right class, IoU >= fg with a GT already matched by a higher-scored box
Bkg   background         IoU <= bg with every GT
Miss  missed             a GT no detection matched or would match after a fix
====  =================  ========================================================================

at the foreground IoU threshold ``fg = 0.5`` and background threshold ``bg = 0.1`` (the main
errors, plus AP50), and as curves over ``fg`` in 0.50, 0.55, ..., 0.95 with ``bg`` fixed at 0.1
(as in DICOD's figure S1). Boxes are ``[x, y, w, h]`` in pixels; AP and dAP are in points (0-100).

Ground truth: a COCO json, with or without ``segmentation``; its own category and image ids are
used. ``iscrowd`` annotations become TIDE ignore regions of their class, as in COCOeval: a detection
of that class that is unmatched and lies inside the region (intersection over the detection's area
> fg) counts neither as a true nor as a false positive, and is left out of the error counts. A
category with detections but no ground truth counts as AP 0 in TIDE's mean (COCOeval skips it).
At most 100 detections per image are kept (highest scores), as in COCOeval and detectron2.

:func:`analyze` returns the summary; ``tools/tide_analysis.py`` (its ``tide_report`` package) writes
it as figures, CSV and JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import tidecv
from tidecv import TIDE, Data, TIDERun
from tidecv.errors.main_errors import (
    BackgroundError,
    BoxError,
    ClassError,
    DuplicateError,
    MissedError,
    OtherError,
)

from dicod_d2.errors import UserError
from dicod_d2.utils.io import atomic_write_text

#: TIDE's main error classes in its own order, by short name.
ERROR_CLASSES = {
    e.short_name: e
    for e in (ClassError, BoxError, OtherError, DuplicateError, BackgroundError, MissedError)
}
ERROR_TYPES = tuple(ERROR_CLASSES)  # ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")
ERROR_NAMES = {
    "Cls": "classification",
    "Loc": "localization",
    "Both": "classification + localization",
    "Dupe": "duplicate",
    "Bkg": "background",
    "Miss": "missed",
}
MAIN_FG_THRESHOLD = 0.5
BG_THRESHOLD = 0.1
DEFAULT_THRESHOLDS = tuple(TIDE.COCO_THRESHOLDS)  # 0.50, 0.55, ..., 0.95


class TideInputError(UserError, ValueError):
    """A ground-truth file, results file or command-line argument that cannot be analysed."""


def _read_json(path: Path, what: str):
    if not path.is_file():
        raise FileNotFoundError(f"{what} file '{path}' does not exist. Check the path.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TideInputError(f"{what} file '{path}' is not valid JSON ({e}).") from e


def _ids_preview(ids: Iterable) -> str:
    ids = sorted(ids)
    return ", ".join(map(str, ids[:10])) + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")


def _check_box(box, path: Path, where: str) -> list[float]:
    if not (isinstance(box, (list, tuple)) and len(box) == 4):
        raise TideInputError(f"'{path}': {where} has bbox {box!r}; expected [x, y, w, h].")
    return [float(v) for v in box]


def load_ground_truth(gt_json: str | os.PathLike) -> Data:
    """Read a COCO ground-truth json into a :class:`tidecv.Data` (boxes only).

    Every image of ``images`` is registered, so detections on an image without annotations count
    as background errors. ``iscrowd`` boxes become ignore regions of their category.
    """
    path = Path(gt_json)
    coco = _read_json(path, "ground-truth")
    if not isinstance(coco, dict) or not {"images", "annotations", "categories"} <= coco.keys():
        raise TideInputError(
            f"ground-truth file '{path}' is not a COCO instances json: it needs 'images', "
            "'annotations' and 'categories'."
        )
    gt = Data(f"gt:{path.name}")
    for cat in coco["categories"]:
        gt.add_class(cat["id"], cat.get("name", str(cat["id"])))
    for img in coco["images"]:
        gt.add_image(img["id"], img.get("file_name", str(img["id"])))
    bad_cats = {a["category_id"] for a in coco["annotations"]} - gt.classes.keys()
    bad_imgs = {a["image_id"] for a in coco["annotations"]} - gt.images.keys()
    if bad_cats or bad_imgs:
        raise TideInputError(
            f"ground-truth file '{path}' is inconsistent: annotations use category ids "
            f"[{_ids_preview(bad_cats)}] missing from 'categories' and image ids "
            f"[{_ids_preview(bad_imgs)}] missing from 'images'. Fix the json."
        )
    num_objects = 0
    for ann in coco["annotations"]:
        box = _check_box(ann.get("bbox"), path, f"annotation {ann.get('id')}")
        if ann.get("iscrowd", 0):
            gt.add_ignore_region(ann["image_id"], ann["category_id"], box=box)
        else:
            gt.add_ground_truth(ann["image_id"], ann["category_id"], box=box)
            num_objects += 1
    if num_objects == 0:
        raise TideInputError(
            f"ground-truth file '{path}' has no non-crowd annotation: AP and TIDE errors are undefined."
        )
    return gt


def load_detections(results_json: str | os.PathLike, name: str, gt: Data) -> Data:
    """Read detectron2's ``coco_instances_results.json`` (``[{image_id, category_id, bbox, score}]``,
    bbox ``[x, y, w, h]`` pixels, dataset category ids) into a :class:`tidecv.Data`.

    Raises :class:`TideInputError` naming the file and the ids when an image id or category id
    is not in the ground truth.
    """
    path = Path(results_json)
    dets = _read_json(path, f"results ('{name}')")
    if not isinstance(dets, list):
        raise TideInputError(
            f"results file '{path}' must hold a list of detections "
            "({image_id, category_id, bbox, score}), as detectron2's COCOEvaluator writes."
        )
    keys = ("image_id", "category_id", "bbox", "score")
    for i, det in enumerate(dets):
        if not (isinstance(det, dict) and all(k in det for k in keys)):
            raise TideInputError(
                f"results file '{path}': detection {i} is {det!r}; every detection needs the keys "
                f"{', '.join(keys)}."
            )
    bad_imgs = {d["image_id"] for d in dets} - gt.images.keys()
    bad_cats = {d["category_id"] for d in dets} - gt.classes.keys()
    if bad_imgs or bad_cats:
        problems = []
        if bad_imgs:
            problems.append(f"image ids not in the ground truth: [{_ids_preview(bad_imgs)}]")
        if bad_cats:
            problems.append(
                f"category ids not in the ground truth's categories: [{_ids_preview(bad_cats)}] "
                f"(ground truth has [{_ids_preview(gt.classes)}])"
            )
        raise TideInputError(
            f"results file '{path}' does not match the ground truth: {'; '.join(problems)}. "
            "Analyse it against the same dataset json the model was evaluated on; category ids "
            "must be the dataset's own ids (detectron2's COCOEvaluator maps its contiguous ids "
            "back through the metadata's thing_dataset_id_to_contiguous_id)."
        )
    data = Data(name)
    for i, det in enumerate(dets):
        box = _check_box(det["bbox"], path, f"detection {i}")
        score = det["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise TideInputError(
                f"results file '{path}': detection {i} has score {score!r}; scores must be finite "
                "numbers (a NaN score means the model diverged: analyse another checkpoint)."
            )
        data.add_detection(det["image_id"], det["category_id"], float(score), box=box)
    return data


def _is_ignored(error) -> bool:
    """True for an error on a detection TIDE ignored (inside a crowd region): it never enters AP."""
    return hasattr(error, "pred") and error.original[1] is None


def evaluate_threshold(gt: Data, dets: Data, fg_threshold: float) -> dict:
    """TIDE at one foreground IoU threshold (background threshold :data:`BG_THRESHOLD`).

    Returns ``{"AP": float, "dAP": {type: float}, "counts": {type: int}}``; AP and dAP in points.
    Raises :class:`TideInputError` for a run without any detection outside crowd regions (fixing
    its misses leaves no class to average, so TIDE's dAP is undefined).
    """
    run = TIDERun(gt, dets, fg_threshold, BG_THRESHOLD, TIDE.BOX, gt.max_dets)
    try:
        daps = run.fix_main_errors()
    except ZeroDivisionError as e:
        raise TideInputError(
            f"run '{dets.name}' has no detection outside crowd regions: TIDE's errors are "
            "undefined. Check that the model was trained and its score threshold is not too high."
        ) from e
    return {
        "AP": float(run.ap),
        "dAP": {name: float(daps[cls]) for name, cls in ERROR_CLASSES.items()},
        "counts": {
            name: sum(not _is_ignored(e) for e in run.error_dict[cls])
            for name, cls in ERROR_CLASSES.items()
        },
    }


def _check_thresholds(thresholds: Sequence[float]) -> list[float]:
    values = sorted({round(float(t), 4) for t in thresholds})
    if not values or not all(BG_THRESHOLD < t <= 1.0 for t in values):
        raise TideInputError(
            f"foreground IoU thresholds {list(thresholds)} must be non-empty and lie in "
            f"({BG_THRESHOLD}, 1] (above the background threshold)."
        )
    return values


def analyze_run(gt: Data, dets: Data, thresholds: Sequence[float]) -> dict:
    """Main errors at fg 0.5 and per-threshold curves for one run (see :func:`analyze`)."""
    thresholds = _check_thresholds(thresholds)
    results = {t: evaluate_threshold(gt, dets, t) for t in sorted({*thresholds, MAIN_FG_THRESHOLD})}
    main = results[MAIN_FG_THRESHOLD]
    return {
        "num_detections": len(dets.annotations),
        "AP50": main["AP"],
        "main_errors": main["dAP"],
        "main_error_counts": main["counts"],
        "curves": {
            "fg_threshold": thresholds,
            "AP": [results[t]["AP"] for t in thresholds],
            "dAP": {k: [results[t]["dAP"][k] for t in thresholds] for k in ERROR_TYPES},
            "counts": {k: [results[t]["counts"][k] for t in thresholds] for k in ERROR_TYPES},
        },
    }


def cache_path(results_json: str | os.PathLike) -> Path:
    """Where ``analyze(..., cache=True)`` keeps one run's analysis: ``<results stem>.tide.json``
    beside the results json."""
    results_json = Path(results_json)
    return results_json.with_name(results_json.stem + ".tide.json")


def _cache_key(gt_json: str | os.PathLike, results_json: str | os.PathLike, thresholds: Sequence[float]) -> str:
    """SHA-256 of everything a run's analysis depends on: both files' bytes, the thresholds, tidecv."""
    digest = hashlib.sha256()
    for path in (gt_json, results_json):
        digest.update(Path(path).read_bytes())
    digest.update(json.dumps([tidecv.__version__, BG_THRESHOLD, MAIN_FG_THRESHOLD, list(thresholds)]).encode())
    return digest.hexdigest()


def _analyze_cached(gt: Data, dets: Data, gt_json, results_json, thresholds: Sequence[float]) -> dict:
    """:func:`analyze_run`, reused from :func:`cache_path` when its key matches, else stored there."""
    path, key = cache_path(results_json), _cache_key(gt_json, results_json, thresholds)
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    if isinstance(stored, dict) and stored.get("key") == key:
        return stored["analysis"]
    analysis = analyze_run(gt, dets, thresholds)
    atomic_write_text(path, json.dumps({"key": key, "analysis": analysis}) + "\n")
    return analysis


def analyze(
    gt_json: str | os.PathLike,
    dets: Mapping[str, str | os.PathLike],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    cache: bool = False,
    before_analysis: Callable[[], None] | None = None,
) -> dict:
    """TIDE analysis of every run in ``dets`` (``{name: results json}``) against ``gt_json``.

    Returns the summary: ``runs[name]`` holds ``AP50``, ``main_errors`` (dAP per type at fg 0.5,
    bg 0.1), ``main_error_counts`` and ``curves`` (``fg_threshold``, ``AP``, ``dAP[type]``,
    ``counts[type]``, one value per threshold). All input files are checked first, then
    ``before_analysis()`` is called (e.g. to check an output folder before the slow part). With
    ``cache``, each run's analysis (TIDE at every threshold) is kept at :func:`cache_path` of its
    results json and reused while the ground truth, the results and the thresholds are byte for
    byte the same. Writing figures and tables is the tools' job (``tools/tide_analysis.py``).
    """
    if not dets:
        raise TideInputError("no detections given: pass at least one {name: results json}.")
    thresholds = _check_thresholds(thresholds)
    gt = load_ground_truth(gt_json)
    loaded = {name: load_detections(path, name, gt) for name, path in dets.items()}
    if before_analysis is not None:
        before_analysis()
    return {
        "method": f"TIDE (tidecv {tidecv.__version__}), bbox mode, isolated dAP of each main error type",
        "ground_truth": str(gt_json),
        "main_fg_iou_threshold": MAIN_FG_THRESHOLD,
        "bg_iou_threshold": BG_THRESHOLD,
        "error_types": ERROR_NAMES,
        "runs": {
            name: {"detections": str(dets[name]),
                   **(_analyze_cached(gt, data, gt_json, dets[name], thresholds) if cache
                      else analyze_run(gt, data, thresholds))}
            for name, data in loaded.items()
        },
    }
