"""Several CPU processes (gloo) train through the project's launcher and stay in sync; bad topologies,
machines that do not join and a peer that dies mid-run fail with a message."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from dicod_d2.cli import run_cli
from dicod_d2.engine.launch import RendezvousError, _find_free_port, default_backend, launch
from dicod_d2.engine.train_loop import main
from dicod_d2.errors import ConfigError

sys.path.insert(0, str(Path(__file__).parent))  # spawned children inherit sys.path
from _dist_worker import train_and_dump  # noqa: E402
from _helpers import REPO, TINY_OVERRIDES, alive, children  # noqa: E402


def test_default_backend_without_cuda_is_gloo():
    if torch.cuda.is_available():
        pytest.skip("CUDA machine")
    assert default_backend() == "gloo"


def test_nccl_without_cuda_fails_clearly():
    if torch.cuda.is_available():
        pytest.skip("CUDA machine")
    with pytest.raises(ConfigError, match="gloo"):
        launch(print, 2, backend="nccl")


def _assert_identical(state0: dict, state1: dict) -> None:
    """Same parameters and same BatchNorm statistics (rank 0's, broadcast after every iteration)."""
    assert state0.keys() == state1.keys()
    assert any("running_mean" in k for k in state0), "the model has no BatchNorm statistics"
    for k in state0:
        assert torch.equal(state0[k], state1[k]), k


@pytest.mark.slow
def test_two_machines_end_with_identical_parameters_and_batchnorm_statistics(tiny_fashiondet, tmp_path):
    """Two launchers on this host, --num-machines 2 --machine-rank 0|1, one gloo process each."""
    overrides = TINY_OVERRIDES + [
        "train.max_iter=2", "train.eval_period=0", "train.checkpointer.period=100",
        f"train.output_dir={tmp_path / 'run'}",
    ]
    url = f"tcp://127.0.0.1:{_find_free_port()}"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from _dist_worker import train_and_dump
        from dicod_d2.engine.launch import launch
        if __name__ == "__main__":
            launch(train_and_dump, 1, num_machines=2, machine_rank=int(sys.argv[1]), dist_url={url!r},
                   args=({str(REPO / "configs/fashiondet/faster_rcnn/baseline.py")!r}, {overrides!r},
                         {str(tmp_path)!r}), backend="gloo")
    """)
    script = tmp_path / "machine.py"
    script.write_text(code)
    machine1 = subprocess.Popen([sys.executable, str(script), "1"], stderr=subprocess.PIPE, text=True)
    try:  # machine 0 in this process
        launch(train_and_dump, 1, num_machines=2, machine_rank=0, dist_url=url,
               args=(str(REPO / "configs/fashiondet/faster_rcnn/baseline.py"), overrides, str(tmp_path)),
               backend="gloo")
    finally:
        log1 = machine1.communicate(timeout=300)[1]
    assert machine1.returncode == 0, log1
    assert f"waiting for 2 processes (2 machines) at {url}" in log1
    r0, r1 = torch.load(tmp_path / "rank0.pth"), torch.load(tmp_path / "rank1.pth")
    assert r0["world_size"] == r1["world_size"] == 2 and r0["iter"] == r1["iter"] == 2
    _assert_identical(r0["state"], r1["state"])


def _cli(capsys, *argv):
    rc = run_cli(main, "test", ["--config-file", str(REPO / "configs/fashiondet/faster_rcnn/baseline.py"),
                                *argv])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--num-machines", "2"], "several machines need --dist-url tcp://HOST:PORT"),
    (["--num-machines", "2", "--machine-rank", "2", "--dist-url", "tcp://127.0.0.1:29500"],
     "--machine-rank 2 is outside 0..1"),
    (["--num-machines", "2", "--machine-rank", "-1", "--dist-url", "tcp://127.0.0.1:29500"],
     "--machine-rank -1 is outside 0..1"),
    (["--num-machines", "2", "--machine-rank", "1", "--dist-url", "127.0.0.1:29500"],
     "--dist-url must be tcp://HOST:PORT"),
    (["--dist-url", "tcp://127.0.0.1:99999"], "--dist-url 'tcp://127.0.0.1:99999': the port must be a number in 1..65535"),
])
def test_bad_topology_fails_at_once(capsys, argv, message):
    start = time.monotonic()
    rc, err = _cli(capsys, *argv)
    assert rc == 1 and err.startswith("error: ") and message in err, err
    assert time.monotonic() - start < 5


def test_machines_that_do_not_join_are_named_after_the_rendezvous_timeout(capfd):
    url = f"tcp://127.0.0.1:{_find_free_port()}"
    start = time.monotonic()
    with pytest.raises(RendezvousError, match=r"machine\(s\) 1, 2 of 3 did not join .* within 1 s"):
        launch(print, 1, num_machines=3, machine_rank=0, dist_url=url, backend="gloo",
               rendezvous_timeout=timedelta(seconds=1))
    assert time.monotonic() - start < 10
    assert f"waiting for 3 processes (3 machines) at {url}" in capfd.readouterr().err
    # machine 1 without machine 0: the error, and no line of c10d's (C++ stack frames) on stderr
    with pytest.raises(RendezvousError, match="machine 0 did not answer"):
        launch(print, 1, num_machines=2, machine_rank=1, dist_url=url, backend="gloo",
               rendezvous_timeout=timedelta(seconds=1))
    assert "c10d" not in capfd.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["machine", "worker"])
def test_a_peer_that_dies_mid_run_stops_the_others_with_one_line(tmp_path, victim):
    """SIGKILL machine 1 (its launcher and worker: a machine lost) or only its worker (the
    out-of-memory killer) mid-run: machine 0's launcher stops within seconds with one ``error:``
    line naming machine 1, no process left behind and no half-written file."""
    url = f"tcp://127.0.0.1:{_find_free_port()}"
    script = tmp_path / "machine.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from _dist_worker import train_until_stopped
        from dicod_d2.cli import report_user_errors
        from dicod_d2.engine.launch import launch
        if __name__ == "__main__":
            sys.exit(report_user_errors(lambda: launch(
                train_until_stopped, 1, num_machines=2, machine_rank=int(sys.argv[1]),
                dist_url={url!r}, args=({str(tmp_path)!r},), backend="gloo")))
    """))
    machines = [subprocess.Popen([sys.executable, str(script), str(rank)], stderr=subprocess.PIPE,
                                 text=True, start_new_session=True) for rank in (0, 1)]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"rank{r}.pid").exists() for r in (0, 1)):
            assert all(m.poll() is None for m in machines) and time.monotonic() < deadline
            time.sleep(0.2)
        processes0 = children(machines[0].pid)  # its worker (and multiprocessing's resource tracker)
        if victim == "machine":
            os.killpg(machines[1].pid, signal.SIGKILL)
        else:
            os.kill(int((tmp_path / "rank1.pid").read_text()), signal.SIGKILL)
        # a hang guard, not a speed target: on an idle machine it stops within seconds
        err0 = machines[0].communicate(timeout=180)[1]
        err1 = machines[1].communicate(timeout=180)[1]
    finally:
        for m in machines:
            if m.poll() is None:
                os.killpg(m.pid, signal.SIGKILL)
    assert machines[0].returncode == 1 and "Traceback" not in err0, err0
    assert err0.splitlines()[-1].startswith(
        "error: process 0 of machine 0 (rank 0) lost the other processes: machine(s) 1 stopped answering"
    ), err0
    assert err0.rstrip().endswith("Restart every machine with --resume.")
    if victim == "worker":
        assert machines[1].returncode == 1 and "Traceback" not in err1, err1
        assert err1.splitlines()[-1].startswith(
            "error: process 0 of machine 1 (rank 1) died with signal SIGKILL"), err1
    deadline = time.monotonic() + 10
    while any(alive(p) for p in processes0):
        assert time.monotonic() < deadline, "a process outlived machine 0's launcher"
        time.sleep(0.2)
    assert not list(tmp_path.glob(".*.tmp"))
    assert torch.load(tmp_path / "model.pth").keys() == {"weight", "bias"}
