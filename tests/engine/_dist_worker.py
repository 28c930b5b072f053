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


def train_stopped_and_resumed(config: str, argv_a: list, argv_b: list, stop_at: int) -> None:
    """Three trainings through the project's train loop (``--config-file config`` and ``argv_*``):
    ``argv_a`` uninterrupted; ``argv_b`` with SIGINT to rank 0 at iteration ``stop_at`` (every
    process stops after it); ``--resume`` of ``argv_b``."""
    from _helpers import signal_at_iteration

    import dicod_d2.data  # noqa: F401  registers FashionDet in the spawned process
    from dicod_d2.engine.defaults import default_argument_parser
    from dicod_d2.engine.interrupt import TrainingInterrupted
    from dicod_d2.engine.train_loop import main

    def run(*argv):
        return main(default_argument_parser().parse_args(["--config-file", config, *argv]))

    run(*argv_a)
    try:
        with signal_at_iteration(stop_at if comm.is_main_process() else -1):
            run(*argv_b)
    except TrainingInterrupted:
        pass
    else:
        raise AssertionError("the run was not interrupted")
    run("--resume", *argv_b)


def train_until_stopped(out_dir: str) -> None:
    """Train a one-layer DDP model until the run stops: rank 0 saves it atomically after every step;
    each rank writes its process id to ``rank<R>.pid`` once the first step is done."""
    import itertools
    import os
    import time

    from torch.nn.parallel import DistributedDataParallel

    from dicod_d2.utils.io import atomic_path, atomic_write_text

    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for step in itertools.count():
        optimizer.zero_grad()
        model(torch.randn(8, 4)).square().mean().backward()
        optimizer.step()
        if comm.is_main_process():
            with atomic_path(Path(out_dir) / "model.pth") as tmp:
                torch.save(model.module.state_dict(), tmp)
        if step == 0:
            atomic_write_text(Path(out_dir) / f"rank{comm.get_rank()}.pid", str(os.getpid()))
        time.sleep(0.05)
