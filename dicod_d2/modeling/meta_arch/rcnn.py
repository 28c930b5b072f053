"""Faster R-CNN student with DICOD distillation on the box head (Guo, Alvarez, Salzmann, "Distilling
Image Classifiers in Object Detectors", NeurIPS 2021, Section 3).

The distillation terms attach to the positive sampled proposals of the second stage
(:class:`~dicod_d2.modeling.roi_heads.DICODROIHeads`): KD_cls on the box head's softmax over C+1
classes, and the localization terms on the gt class's box decoded from each proposal. The RPN is
class-agnostic and is trained as in the baseline.
"""
from __future__ import annotations

from detectron2.modeling.meta_arch import GeneralizedRCNN

from ...errors import ConfigError
from ..distiller import DICODDistiller, DistillationStudent
from ..roi_heads import DICODROIHeads

__all__ = ["DICODGeneralizedRCNN"]


class DICODGeneralizedRCNN(DistillationStudent, GeneralizedRCNN):
    """detectron2's ``GeneralizedRCNN`` plus the DICOD losses of an optional frozen-teacher distiller.

    Args:
        distiller: a :class:`DICODDistiller` (kept outside the module tree: the ``state_dict`` has
            exactly ``GeneralizedRCNN``'s keys), or None for the plain detector. With a distiller,
            ``roi_heads`` must be a :class:`DICODROIHeads` and ``input_format`` must be the
            distiller's.
        **kwargs: the arguments of ``GeneralizedRCNN``.

    Training returns the baseline losses (``loss_rpn_cls``, ``loss_rpn_loc``, ``loss_cls``,
    ``loss_box_reg``) plus the distiller's enabled terms (``loss_kd_cls``, ``loss_loc_pix``,
    ``loss_kd_loc``). Inference is ``GeneralizedRCNN.inference`` and never uses the teacher. The
    positives are those of :meth:`DICODROIHeads.positives`, handed from a forward hook of
    ``roi_heads`` (detectron2's forward drops the sampled proposals).
    """

    def __init__(self, *, distiller: DICODDistiller | None = None, **kwargs):
        super().__init__(**kwargs)
        if distiller is not None:
            if not isinstance(self.roi_heads, DICODROIHeads):
                raise ConfigError(
                    f"a DICOD distiller needs roi_heads to be a DICODROIHeads, got "
                    f"{type(self.roi_heads).__name__}: set model.roi_heads._target_ to "
                    "dicod_d2.modeling.roi_heads.DICODROIHeads."
                )
            if distiller.input_format != self.input_format:
                raise ConfigError(
                    f"model.distiller.input_format={distiller.input_format!r} but the model reads "
                    f"{self.input_format!r} images (model.input_format): set them equal."
                )
        self.distiller = distiller
        if isinstance(self.roi_heads, DICODROIHeads):
            self.roi_heads.register_forward_hook(self._hand_roi_positives)

    def _hand_roi_positives(self, roi_heads: DICODROIHeads, inputs: tuple, outputs: tuple) -> None:
        """Forward hook of ``roi_heads``: in training its first output, the sampled proposals,
        holds the box head's positives (:meth:`DICODROIHeads.positives`)."""
        if roi_heads.training:
            self.hand_positives(lambda gt_instances: roi_heads.positives(outputs[0]))
