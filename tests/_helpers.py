"""Constants and helpers shared by the tests (tests/ is on sys.path through conftest.py)."""
import signal
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: overrides that turn a FashionDet config into a seconds-long CPU run on the tiny split
TINY_OVERRIDES = [
    "dataloader.train.dataset.names=fashiondet_tiny_train",
    "dataloader.test.dataset.names=fashiondet_tiny_val",
    "dataloader.train.total_batch_size=2",
    "dataloader.train.num_workers=0",
    "dataloader.test.num_workers=0",
    "train.log_period=1",
]


def run_tool(script: str, *argv: str):
    """Run ``tools/<script>`` with ``argv`` in a child process from the repository root (one thread,
    ``DICOD_DEBUG`` unset); returns the ``subprocess.CompletedProcess`` (text stdout and stderr)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("DICOD_DEBUG", None)
    return subprocess.run([sys.executable, str(REPO / "tools" / script), *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def one_error_line(run) -> str:
    """The ``error: ...`` line of a tool run that failed on bad input, after checking that the run
    exited 1, printed no traceback and no other ``error:`` line, and ended stderr with it (earlier
    stderr lines are library warnings)."""
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stdout + run.stderr, run.stdout[-3000:] + run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], run.stderr[-3000:]
    return errors[0]


def copy_as_own_coco(tiny_folder, dest) -> dict:
    """Copy the tiny FashionDet to ``dest`` as a user's own COCO dataset: ``dest/images/`` (train
    and val images side by side) and ``dest/{train,val}.json``. Returns the paths by name."""
    import json
    import shutil

    dest = Path(dest)
    images = dest / "images"
    images.mkdir(parents=True)
    paths = {"images": images}
    for split in ("train", "val"):
        coco = json.loads((Path(tiny_folder) / f"annotations/instances_{split}.json").read_text())
        for img in coco["images"]:
            name = Path(img["file_name"]).name
            shutil.copy(Path(tiny_folder) / split / name, images / f"{split}_{name}")
            img["file_name"] = f"{split}_{name}"
        paths[split] = dest / f"{split}.json"
        paths[split].write_text(json.dumps(coco))
    return paths


def children(pid: int) -> list:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (exists and is not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def signal_at_iteration(iteration: int, signum: int = signal.SIGINT):
    """Within the block, a training in this process sends the process ``signum`` at the start of
    iteration ``iteration``: the run stops cleanly after that iteration (checkpoint, then
    ``TrainingInterrupted``)."""
    import os

    from detectron2.engine import SimpleTrainer

    original = SimpleTrainer.run_step

    def run_step(self):
        if self.iter == iteration:
            os.kill(os.getpid(), signum)
        original(self)

    SimpleTrainer.run_step = run_step
    try:
        yield
    finally:
        SimpleTrainer.run_step = original
