"""Run by tests/engine/test_launch.py in each spawned process (must be importable by name)."""
from pathlib import Path

import torch
from detectron2.utils import comm


def train_and_dump(config: str, overrides: list, out_dir: str) -> None:
    """Train a few iterations through the project's train loop; dump this rank's weights."""
    import dicod_d2.data  # noqa: F401  registers FashionDet in the spawned process
    from dicod_d2.engine.defaults import default_argument_parser
    from dicod_d2.engine.train_loop import main

    args = default_argument_parser().parse_args(["--config-file", config, *overrides])
    trainer = main(args)
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state": state, "world_size": comm.get_world_size(), "iter": trainer.iter},
               Path(out_dir) / f"rank{comm.get_rank()}.pth")
