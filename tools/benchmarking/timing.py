"""Machine description, synchronised wall-clock timing and peak tensor memory (seconds, bytes)."""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

import torch


def machine_info(device: str) -> dict:
    """CPU model, cores, torch / torchvision versions, threads, and the GPU name when ``device`` is CUDA."""
    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": device,
        "gpu": None,
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    try:
        info["load_average_1min"] = os.getloadavg()[0]
    except OSError:
        pass
    return info


def synchronize(device: str | torch.device) -> None:
    """Wait for queued kernels (CUDA); no-op on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def time_call(fn: Callable[[], object], device: str, repeats: int = 3, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def memory_method(device: str) -> str:
    """What :func:`peak_memory_bytes` measures on ``device`` (recorded in the benchmark's JSON)."""
    if torch.device(device).type == "cuda":
        return "torch.cuda.max_memory_allocated above the allocation before the call (bytes)"
    return (
        "peak of the CPU tensor bytes allocated by the call, replayed in time order from "
        "torch.profiler(profile_memory=True) events; tensors only, not the process RSS (bytes)"
    )


def peak_memory_bytes(fn: Callable[[], object], device: str) -> int:
    """Peak bytes of tensors allocated while ``fn`` runs, above what was allocated before it.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: replays the allocations / frees recorded by
    ``torch.profiler(profile_memory=True)`` in time order (an op's positive self-memory counted
    at its start, a negative one at its end, so nested frees never hide an allocation).
    """
    if torch.device(device).type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    deltas = []
    for event in prof.events():
        mem = event.self_cpu_memory_usage
        if mem > 0:
            deltas.append((event.time_range.start, mem))
        elif mem < 0:
            deltas.append((event.time_range.end, mem))
    current = peak = 0
    for _, mem in sorted(deltas, key=lambda d: d[0]):
        current += mem
        peak = max(peak, current)
    return int(peak)


def summary(times: Sequence[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times)}
