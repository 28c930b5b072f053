"""The student variants of the paper's COCO results (Section 4): which distillation terms each uses.

The baseline trains without a distiller; the four others switch on the terms of
``L = L_det + λ_cls · L_kd_cls + λ_loc · (L_loc_pix + L_kd_loc)`` (Section 3): classification
distillation (KD_cls), the pixel term of localization distillation (loc_pix) and its teacher-feature
term (KD_loc). Configs, the benchmark and the results table all read this table, in this order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

__all__ = ["BASELINE", "CONTROLS", "VARIANTS", "Control", "Variant"]


@dataclass(frozen=True)
class Variant:
    """``label``: the column title of the paper's tables; ``terms``: the ``kd_cls`` / ``loc_pix`` /
    ``kd_loc`` switches of :class:`~dicod_d2.modeling.DICODDistiller`, None for no distiller."""

    label: str
    terms: Mapping[str, bool] | None


def _terms(kd_cls: bool, loc_pix: bool, kd_loc: bool) -> dict[str, bool]:
    return dict(kd_cls=kd_cls, loc_pix=loc_pix, kd_loc=kd_loc)


BASELINE = "baseline"
#: name (the configs' file and output folder name) -> Variant, in the order of the paper's columns
VARIANTS: dict[str, Variant] = {
    BASELINE: Variant("baseline", None),
    "kd_cls": Variant("+KD_cls", _terms(kd_cls=True, loc_pix=False, kd_loc=False)),
    "loc": Variant("+loc_pix", _terms(kd_cls=False, loc_pix=True, kd_loc=False)),
    "loc_kd_loc": Variant("+loc_pix+KD_loc", _terms(kd_cls=False, loc_pix=True, kd_loc=True)),
    "dicod": Variant("full DICOD", _terms(kd_cls=True, loc_pix=True, kd_loc=True)),
}

@dataclass(frozen=True)
class Control:
    """``label``: the row title in the results tables; ``description``: what the control trains."""

    label: str
    description: str


#: The controls beside the paper's variants (config file and output folder name -> Control): they
#: separate what the teacher's knowledge brings from what any soft target or pixel term brings.
CONTROLS: dict[str, Control] = {
    "control": Control("control (label smoothing, no teacher)",
                       "KD_cls toward the label-smoothed ground truth, no teacher (ε = 0.1)"),
    "no_teacher": Control("no-teacher control (label smoothing + L_loc_pix)",
                          "everything DICOD does without a teacher: KD_cls toward the label-smoothed "
                          "ground truth (ε chosen on val) + L_loc_pix"),
    "wrong_teacher": Control("full DICOD, teacher classes deranged",
                             "full DICOD with the teacher's class scores deranged (class i gets the "
                             "score of class i-1)"),
}
