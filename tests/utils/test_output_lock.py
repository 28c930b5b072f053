"""OutputFolderLock: one run per output folder; a lock of a dead process is taken over."""
import json
import logging
import socket
import subprocess
import sys

import pytest

from dicod_d2.errors import OutputFolderError
from dicod_d2.utils.output_lock import LOCK_NAME, OutputFolderLock


@pytest.fixture
def other_process():
    """A running process other than this one."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _hold(folder, pid, host=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                                "started": "2026-01-01 00:00:00"}))


def test_held_while_running_and_released_after(tmp_path):
    out = tmp_path / "run"
    with OutputFolderLock(out):
        holder = json.loads((out / LOCK_NAME).read_text())
        assert holder["host"] == socket.gethostname() and isinstance(holder["pid"], int)
        (out / "log.txt").write_text("x")
    assert not (out / LOCK_NAME).exists() and (out / "log.txt").is_file()


def test_a_folder_created_for_nothing_is_removed(tmp_path):
    with OutputFolderLock(tmp_path / "run"):
        pass
    assert not (tmp_path / "run").exists()


def test_a_running_holder_stops_the_second_run(tmp_path, other_process):
    _hold(tmp_path, other_process)
    with pytest.raises(OutputFolderError, match=f"is in use by another run \\(process {other_process} "
                       "on this host, since 2026-01-01 00:00:00\\): give another train.output_dir=DIR"):
        with OutputFolderLock(tmp_path):
            pass
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == other_process  # left alone


def test_a_lock_of_another_host_is_never_taken_over(tmp_path):
    _hold(tmp_path, 1, host="some-other-machine")
    with pytest.raises(OutputFolderError, match="process 1 on host some-other-machine"):
        with OutputFolderLock(tmp_path):
            pass


def test_a_dead_holder_is_taken_over_with_a_warning(tmp_path, caplog):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    _hold(tmp_path, proc.pid)
    with caplog.at_level(logging.WARNING, logger="dicod_d2"):
        with OutputFolderLock(tmp_path) as lock:
            assert json.loads(lock.path.read_text())["pid"] != proc.pid
    assert f"its lock names process {proc.pid} of this host, which no longer runs" in caplog.text
