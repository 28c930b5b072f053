"""dicod-d2: classifier-to-detector distillation (DICOD, NeurIPS 2021) for detectron2."""
import warnings

__version__ = "0.1.0"

# fvcore scripts its focal loss with torch.jit.script at import, which torch >= 2.10 deprecates with
# a FutureWarning printed by every tool (detectron2's own uses are patched, see tools/detectron2_patches)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    import fvcore.nn.focal_loss  # noqa: F401
