"""dicod-d2: classifier-to-detector distillation (DICOD, NeurIPS 2021) for detectron2."""

__version__ = "0.1.0"
