"""Top-1 / top-5 accuracy of a crop classifier, overall and per class, with a confusion matrix.

Consumes ``ObjectCropMapper`` items (``labels``) and ``CropClassifier`` eval outputs (``logits``).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import OrderedDict
from typing import Sequence

import numpy as np
import torch
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from tabulate import tabulate
from torch import Tensor

from ..data.datasets import thing_classes
from ..errors import ConfigError
from ..utils.io import atomic_path, atomic_write_text

__all__ = ["ClassificationEvaluator", "plot_confusion_matrix"]

logger = logging.getLogger(__name__)

#: object sizes by box area in pixels² (COCO's AP_S / AP_M / AP_L ranges)
OBJECT_SIZES = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, float("inf"))}


class ClassificationEvaluator(DatasetEvaluator):
    """Accuracy (%) of the crops of one split.

    Args:
        dataset_name: a registered dataset (its ``thing_classes`` name the classes), or a list
            of them (the first one's classes).
        output_dir: where ``confusion_matrix.png`` and ``per_class_accuracy.csv`` go (None: no file).
        topk: the k of the top-k accuracies reported.

    ``evaluate()`` returns ``{"classification": {"top1", "top5", "top1-<class>" ...,
    "top1-small", "top1-medium", "top1-large"}}`` in percent (``nan`` for a class or size with no
    crop; sizes by box area as COCO's AP_S/M/L: below 32², 32²–96², above 96² pixels²), the format detectron2's ``EvalHook`` and
    ``print_csv_format`` expect; it logs the per-class table and the number of unreadable images,
    and keeps the counts in ``confusion_matrix`` (int64 [C, C], rows: true class, columns: top-1).
    """

    def __init__(
        self,
        dataset_name: str | Sequence[str],
        output_dir: str | None = None,
        topk: Sequence[int] = (1, 5),
    ):
        self.class_names = thing_classes(dataset_name)
        self.output_dir = output_dir
        self.topk = tuple(int(k) for k in topk)
        self.reset()

    def reset(self) -> None:
        self._labels: list[Tensor] = []
        self._topk_pred: list[Tensor] = []
        self._areas: list[Tensor] = []
        self._unreadable = 0

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        kmax = min(max(self.topk), len(self.class_names))
        for item, out in zip(inputs, outputs, strict=True):
            self._unreadable += int(bool(item.get("unreadable")))
            logits = out["logits"]
            if logits.shape[1] != len(self.class_names):
                raise ConfigError(
                    f"the model gives {logits.shape[1]} logits but the evaluated dataset has "
                    f"{len(self.class_names)} classes: evaluate a teacher on the dataset it was "
                    "trained for"
                )
            self._labels.append(item["labels"].cpu())
            # items without "areas" (a mapper of another kind) count in no object size
            self._areas.append(item.get("areas", torch.full((len(item["labels"]),), float("nan"))).cpu())
            self._topk_pred.append(logits.topk(kmax, dim=1).indices.cpu())

    def evaluate(self) -> OrderedDict:
        gathered = comm.gather((self._labels, self._topk_pred, self._unreadable, self._areas), dst=0)
        if not comm.is_main_process():
            return OrderedDict()
        labels = torch.cat(list(itertools.chain(*(g[0] for g in gathered))) or [torch.zeros(0)]).long()
        preds = list(itertools.chain(*(g[1] for g in gathered)))
        kmax = min(max(self.topk), len(self.class_names))
        preds = torch.cat(preds) if preds else torch.zeros((0, kmax), dtype=torch.long)
        unreadable = sum(g[2] for g in gathered)
        areas = torch.cat(list(itertools.chain(*(g[3] for g in gathered))) or [torch.zeros(0)])
        if unreadable:
            logger.warning("%d unreadable images were skipped: their objects are not evaluated", unreadable)
        if len(labels) == 0:
            logger.warning("No crop to evaluate: the accuracy is undefined")
            return OrderedDict()
        results = OrderedDict()
        for k in self.topk:
            hit = (preds[:, : min(k, kmax)] == labels[:, None]).any(dim=1).double()
            results[f"top{k}"] = 100.0 * float(hit.mean())
        num_classes = len(self.class_names)
        confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(confusion, (labels.numpy(), preds[:, 0].numpy()), 1)
        self.confusion_matrix = confusion
        support = confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = 100.0 * np.diag(confusion) / support
        for name, acc in zip(self.class_names, per_class, strict=True):
            results[f"top1-{name}"] = float(acc)
        top1_hit = preds[:, 0] == labels
        for size, (lo, hi) in OBJECT_SIZES.items():
            in_size = (areas >= lo) & (areas < hi)
            results[f"top1-{size}"] = (
                100.0 * float(top1_hit[in_size].double().mean()) if in_size.any() else float("nan")
            )
        self._report(results, confusion, per_class, len(labels))
        return OrderedDict(classification=results)

    def _report(self, results: dict, confusion: np.ndarray, per_class: np.ndarray, n: int) -> None:
        rows = [
            (name, int(s), f"{a:.2f}")
            for name, s, a in zip(self.class_names, confusion.sum(axis=1), per_class, strict=True)
        ]
        table = tabulate(rows, headers=["class", "crops", "top-1 %"], tablefmt="pipe")
        overall = ", ".join(f"top-{k} {results[f'top{k}']:.2f}%" for k in self.topk)
        overall += " (top-1 by object size: " + ", ".join(
            f"{size} {results[f'top1-{size}']:.2f}%" for size in OBJECT_SIZES
        ) + ")"
        logger.info("Classification of %d crops: %s. Per class:\n%s", n, overall, table)
        if not self.output_dir:
            return
        csv = "class,crops,top1\n" + "".join(f'"{c}",{s},{a}\n' for c, s, a in rows)
        atomic_write_text(os.path.join(self.output_dir, "per_class_accuracy.csv"), csv)
        path = os.path.join(self.output_dir, "confusion_matrix.png")
        plot_confusion_matrix(confusion, self.class_names, path, title=overall)
        logger.info("Confusion matrix written to %s", path)


def plot_confusion_matrix(
    confusion: np.ndarray, class_names: Sequence[str], path: str, title: str = ""
) -> None:
    """Write a row-normalised confusion matrix (rows: true class, columns: top-1 prediction)
    to the PNG ``path`` atomically; cells show the fraction of the row's crops (counts C×C in)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = confusion.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(rows > 0, confusion / np.maximum(rows, 1), 0.0)
    n = len(class_names)
    side = max(4.0, 0.35 * n + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=class_names, rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_yticks(range(n), labels=class_names, fontsize=7 if n > 20 else 9)
    ax.set_xlabel("predicted (top-1)")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    if n <= 20:
        for i, j in itertools.product(range(n), range(n)):
            if confusion[i, j]:
                ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
