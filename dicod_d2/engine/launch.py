"""Launch one or several training processes, on GPUs (NCCL) or on CPUs (gloo).

detectron2 0.6's ``launch`` asserts CUDA as soon as more than one process is asked for. This launcher
keeps its signature and behaviour (``torch.multiprocessing`` spawn, ``dist_url`` with ``"auto"``,
detectron2's local process group for ``comm.get_local_rank()``) and picks the backend: NCCL with one
GPU per process when CUDA is available, gloo with CPU processes otherwise. It also:

* checks the machine count, rank and URL before starting anything;
* meets the other machines before starting its workers: machine 0's launcher hosts the TCP store
  at ``dist_url`` that every worker then uses; each launcher logs "waiting for N processes at URL"
  and, after ``rendezvous_timeout``, fails naming the machines that did not join;
* forwards SIGTERM / SIGINT to its workers, which stop cleanly after the current iteration
  (:mod:`dicod_d2.engine.interrupt`); a second signal kills them. Workers receive SIGINT when the
  launcher dies (``PR_SET_PDEATHSIG``, set by torch's spawn), even by SIGKILL, and stop the same way;
* reports a worker that died, after stopping the others on its machine, as one line
  (:class:`ProcessLostError`). The other machines' workers fail on their next collective operation;
  their launchers, which count each other's heartbeats in machine 0's store, then name the machines
  that stopped answering in one line too. A worker that raised while every machine still answers
  keeps its traceback (a bug).
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
from datetime import timedelta
from typing import Callable
from urllib.parse import urlparse

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.utils import comm

from ..errors import ConfigError, UserError
from .interrupt import STOP_SIGNALS, TrainingInterrupted

__all__ = ["DEFAULT_RENDEZVOUS_TIMEOUT", "DEFAULT_TIMEOUT", "ProcessLostError", "RendezvousError",
           "check_topology", "launch", "default_backend"]

DEFAULT_TIMEOUT = timedelta(minutes=30)
DEFAULT_RENDEZVOUS_TIMEOUT = timedelta(minutes=10)
#: seconds between two heartbeats of a launcher (several machines), and the silence after which a
#: machine counts as gone
HEARTBEAT_PERIOD = 1.0
HEARTBEAT_SILENCE = 5.0
logger = logging.getLogger("dicod_d2.launch")


class RendezvousError(UserError, RuntimeError):
    """The processes of a multi-machine run did not all meet at the rendezvous URL (a machine not
    started, a wrong address or port: the user's to fix, reported as one line)."""


class ProcessLostError(UserError, RuntimeError):
    """A worker died (a signal, an exit code) or lost the processes of a machine that stopped
    answering: a kill, the out-of-memory killer, a machine or its network down. Not a bug of the
    program: reported as one line that says to restart every machine with ``--resume``."""


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to ``sys.stderr`` as it is when a record is emitted (not when the handler
    was made), so a replaced stderr (a test's capture, a redirect) still gets the launcher's lines."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the current stderr is used
        pass


def _log() -> logging.Logger:
    """This module's logger, printing to stderr before (and outside) detectron2's logging setup."""
    if not logger.handlers:
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("[launch] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def default_backend() -> str:
    """``"nccl"`` when CUDA is usable, else ``"gloo"``."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_topology(num_processes_per_machine: int, num_machines: int, machine_rank: int,
                   dist_url: str | None) -> None:
    """Raise :class:`ConfigError` for a process count, machine rank or ``dist_url`` that cannot work."""
    if num_processes_per_machine < 1 or num_machines < 1:
        raise ConfigError(
            f"--num-gpus ({num_processes_per_machine}) and --num-machines ({num_machines}) must be >= 1"
        )
    if not 0 <= machine_rank < num_machines:
        raise ConfigError(
            f"--machine-rank {machine_rank} is outside 0..{num_machines - 1} for --num-machines "
            f"{num_machines}: give each machine its own rank, 0 on the machine of --dist-url"
        )
    if num_machines > 1 and dist_url in (None, "auto"):
        raise ConfigError(
            "several machines need --dist-url tcp://HOST:PORT, the address of machine 0 (the same on "
            "every machine)"
        )
    if dist_url not in (None, "auto"):
        url = urlparse(dist_url)
        try:
            port = url.port
        except ValueError:  # a port outside 0..65535, or not a number
            raise ConfigError(f"--dist-url '{dist_url}': the port must be a number in 1..65535 "
                              "(a free port of machine 0)") from None
        if url.scheme != "tcp" or not url.hostname or not port:
            raise ConfigError(f"--dist-url must be tcp://HOST:PORT (machine 0's address), got '{dist_url}'")


def launch(
    main_func: Callable,
    num_processes_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
    args: tuple = (),
    timeout: timedelta = DEFAULT_TIMEOUT,
    backend: str | None = None,
    rendezvous_timeout: timedelta = DEFAULT_RENDEZVOUS_TIMEOUT,
) -> None:
    """Run ``main_func(*args)`` in ``num_processes_per_machine × num_machines`` processes.

    Args:
        num_processes_per_machine: processes on this machine (one per GPU with NCCL; CPU processes
            with gloo).
        dist_url: ``tcp://host:port`` of machine 0 (``"auto"``/None: a free local port, one machine only).
        timeout: how long a collective operation may wait for the other processes.
        backend: ``"nccl"``, ``"gloo"`` or None (NCCL if CUDA is available, else gloo).
        rendezvous_timeout: how long the processes wait for each other at the start.

    Raises:
        TrainingInterrupted: the workers stopped cleanly on SIGTERM / SIGINT.
        ProcessLostError: a worker died (signal or exit code), or a worker raised after another
            machine stopped answering.
        ProcessRaisedException: a worker raised while every machine answers.
    """
    check_topology(num_processes_per_machine, num_machines, machine_rank, dist_url)
    world_size = num_machines * num_processes_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    backend = (backend or default_backend()).lower()
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ConfigError("backend 'nccl' needs CUDA; use backend 'gloo' to train on CPUs")
        if num_processes_per_machine > torch.cuda.device_count():
            raise ConfigError(
                f"{num_processes_per_machine} processes asked for but only "
                f"{torch.cuda.device_count()} GPUs are visible: lower --num-gpus"
            )
    if dist_url in (None, "auto"):
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    store = _rendezvous(dist_url, machine_rank, num_machines, world_size, rendezvous_timeout)
    context = mp.start_processes(
        _distributed_worker,
        nprocs=num_processes_per_machine,
        args=(main_func, world_size, num_processes_per_machine, machine_rank, dist_url, args,
              timeout, backend, rendezvous_timeout, os.getpid()),
        daemon=False,
        start_method="spawn",
        join=False,
    )
    heartbeats = _Heartbeats(store, machine_rank, num_machines) if num_machines > 1 else None
    _join(context, machine_rank, num_processes_per_machine, heartbeats)
    del store  # machine 0's launcher serves the workers' store until they are done


class _Heartbeats:
    """The launchers of a several-machine run count their heartbeats in machine 0's store while
    their workers run; a machine whose count stops moving is gone (killed, or cut off)."""

    def __init__(self, store: dist.TCPStore, machine_rank: int, num_machines: int):
        self._store = store
        self._key = f"heartbeat/{machine_rank}"
        self._others = [m for m in range(num_machines) if m != machine_rank]
        # a store that stops answering must not hold the launcher (and its signal forwarding)
        store.set_timeout(timedelta(seconds=HEARTBEAT_SILENCE))

    def beat(self) -> None:
        """Count one heartbeat of this machine (nothing when machine 0's store is gone)."""
        try:
            self._store.add(self._key, 1)
        except (RuntimeError, OSError):
            pass

    def silent_machines(self) -> list[int]:
        """The other machines whose heartbeats stop for :data:`HEARTBEAT_SILENCE` seconds (this
        machine keeps beating meanwhile); ``[0]`` when machine 0's store no longer answers."""
        try:
            start = {m: self._store.add(f"heartbeat/{m}", 0) for m in self._others}
            silent = list(self._others)
            deadline = time.monotonic() + HEARTBEAT_SILENCE
            while silent and time.monotonic() < deadline:
                time.sleep(HEARTBEAT_PERIOD)
                self.beat()
                silent = [m for m in silent if self._store.add(f"heartbeat/{m}", 0) == start[m]]
            return silent
        except (RuntimeError, OSError):
            return [0]


def _join(context, machine_rank: int, num_processes_per_machine: int,
          heartbeats: _Heartbeats | None) -> None:
    """Wait for the workers, forwarding SIGTERM / SIGINT (a second one kills them) and beating
    (several machines)."""
    received = []

    def forward(signum, frame):
        received.append(signum)
        for process in context.processes:
            if process.is_alive():
                os.kill(process.pid, signum if len(received) == 1 else signal.SIGKILL)

    previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
    try:
        while not context.join(timeout=HEARTBEAT_PERIOD if heartbeats else None, grace_period=10):
            if heartbeats:
                heartbeats.beat()
    except mp.ProcessExitedException as e:
        interrupted = TrainingInterrupted.from_exit_code(e.exit_code)
        if received or interrupted is not None:  # a worker killed before training counts too
            raise interrupted or TrainingInterrupted(received[0]) from None
        rank = machine_rank * num_processes_per_machine + e.error_index
        how = f"signal {e.signal_name}" if e.signal_name else f"exit code {e.exit_code}"
        raise ProcessLostError(
            f"process {e.error_index} of machine {machine_rank} (rank {rank}) died with {how}; "
            "the other processes of this machine were stopped. Restart every machine with --resume."
        ) from None
    except mp.ProcessRaisedException as e:
        silent = heartbeats.silent_machines() if heartbeats else []
        if not silent:
            raise
        rank = machine_rank * num_processes_per_machine + e.error_index
        raise ProcessLostError(
            f"process {e.error_index} of machine {machine_rank} (rank {rank}) lost the other "
            f"processes: machine(s) {', '.join(map(str, silent))} stopped answering (killed, out of "
            "memory, or cut off from the network); the processes of this machine were stopped. "
            "Restart every machine with --resume."
        ) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        raise TrainingInterrupted(received[0])


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send what native code writes to file descriptor 2 (not Python's ``sys.stderr`` object) to
    /dev/null inside the block: a failure is reported by the caller's own one-line error."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _rendezvous(dist_url: str, machine_rank: int, num_machines: int, world_size: int,
                timeout: timedelta) -> dist.TCPStore:
    """Meet the other machines' launchers at ``dist_url`` (machine 0 hosts the store).

    Returns the store (machine 0's must live until its workers are done). Raises
    :class:`RendezvousError` naming the machines that did not join within ``timeout``.
    """
    url = urlparse(dist_url)
    seconds = timeout.total_seconds()
    if num_machines > 1:
        _log().info("waiting for %d processes (%d machines) at %s", world_size, num_machines, dist_url)
    try:
        with _native_stderr_silenced():  # c10d logs each failed try with ~30 C++ stack frames
            store = dist.TCPStore(url.hostname, url.port, is_master=machine_rank == 0,
                                  timeout=timeout, wait_for_workers=False)
    except (RuntimeError, OSError) as e:
        if machine_rank == 0:
            raise RendezvousError(f"cannot listen at {dist_url} ({e}): choose a free port") from None
        raise RendezvousError(
            f"machine 0 did not answer at {dist_url} within {seconds:.0f} s: start it with "
            "--machine-rank 0 and the same --dist-url, check HOST:PORT, or raise --rendezvous-timeout"
        ) from None
    store.set(f"machine/{machine_rank}", "joined")
    keys = [f"machine/{m}" for m in range(num_machines)]
    deadline = time.monotonic() + seconds
    while not store.check(keys):
        if time.monotonic() > deadline:
            missing = [str(m) for m, key in enumerate(keys) if not store.check([key])]
            raise RendezvousError(
                f"machine(s) {', '.join(missing)} of {num_machines} did not join {dist_url} within "
                f"{seconds:.0f} s: start them with their --machine-rank and the same --dist-url, "
                "or raise --rendezvous-timeout"
            )
        time.sleep(0.2)
    return store


def _distributed_worker(
    local_rank: int,
    main_func: Callable,
    world_size: int,
    num_processes_per_machine: int,
    machine_rank: int,
    dist_url: str,
    args: tuple,
    timeout: timedelta,
    backend: str,
    rendezvous_timeout: timedelta,
    launcher_pid: int,
) -> None:
    if os.getppid() != launcher_pid:  # the launcher died before torch set PR_SET_PDEATHSIG
        sys.exit(1)
    global_rank = machine_rank * num_processes_per_machine + local_rank
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    else:
        # share the machine's cores between the CPU processes instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_processes_per_machine))
    url = urlparse(dist_url)
    store = dist.TCPStore(url.hostname, url.port, is_master=False, timeout=rendezvous_timeout)
    dist.init_process_group(backend=backend, store=store, world_size=world_size, rank=global_rank,
                            timeout=timeout)
    assert comm._LOCAL_PROCESS_GROUP is None
    for i in range(world_size // num_processes_per_machine):
        ranks = list(range(i * num_processes_per_machine, (i + 1) * num_processes_per_machine))
        group = dist.new_group(ranks)
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group
    comm.synchronize()
    try:
        main_func(*args)
        comm.synchronize()
    except TrainingInterrupted as e:
        sys.exit(e.exit_code)  # the launcher reads the signal from the exit code
    finally:
        dist.destroy_process_group()
