"""Do two runs of a detector give the same detections? (ONNX Runtime against PyTorch.)"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ParityResult", "compare_detections"]


@dataclass
class ParityResult:
    """Outcome of :func:`compare_detections`: matched pairs, the unmatched detections of each side
    (as ``(side, index)``), and the largest box (px) and score differences over matched pairs."""

    matched: int = 0
    unmatched: list[tuple[str, int]] = field(default_factory=list)
    max_box_diff: float = 0.0
    max_score_diff: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.unmatched


def compare_detections(reference, other, *, min_score: float = 0.05, box_tol: float = 0.5,
                       score_tol: float = 1e-3) -> ParityResult:
    """Match every detection with score ≥ ``min_score`` of either side, one to one, to a detection
    of the other side with the same class, every box coordinate within ``box_tol`` pixels and the
    score within ``score_tol``; the result is ok when none is left unmatched.

    ``reference`` and ``other`` are (boxes [N, 4] XYXY, scores [N], classes [N]) arrays or tensors.
    The partner of a detection may score below ``min_score`` (the two scores on either side of it):
    give both outputs down to ``min_score - score_tol`` (a detector's score threshold) so that such
    a partner is there.
    """
    ref = [np.asarray(a, dtype=np.float64) for a in reference]
    oth = [np.asarray(a, dtype=np.float64) for a in other]
    result = ParityResult()
    used = {"reference": np.zeros(len(ref[1]), bool), "other": np.zeros(len(oth[1]), bool)}
    for i in np.argsort(-ref[1]):
        if ref[1][i] < min_score - score_tol:
            continue
        box_diff = np.abs(oth[0] - ref[0][i]).max(axis=1) if len(oth[1]) else np.zeros(0)
        score_diff = np.abs(oth[1] - ref[1][i])
        ok = (oth[2] == ref[2][i]) & (box_diff <= box_tol) & (score_diff <= score_tol) & ~used["other"]
        if ok.any():
            j = np.flatnonzero(ok)[np.argmin(box_diff[ok])]
            used["reference"][i] = used["other"][j] = True
            result.matched += 1
            result.max_box_diff = max(result.max_box_diff, float(box_diff[j]))
            result.max_score_diff = max(result.max_score_diff, float(score_diff[j]))
    for side, (_, scores, _) in (("reference", ref), ("other", oth)):
        for k in np.flatnonzero((scores >= min_score) & ~used[side]):
            result.unmatched.append((side, int(k)))
    return result
