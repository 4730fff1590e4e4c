from __future__ import annotations

import torch

from robust_glo.errors import ConfigError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None` or "auto" -> CUDA when present, else CPU; otherwise the named device, checked."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use cpu or auto")
    return dev


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def parallel_cpu_workers(device: str | torch.device | None = None) -> int:
    """How many one-thread worker processes the `auto` backends use: every usable core when the work runs on
    the CPU and there are at least two, else 0 (CUDA, or one core: the work stays in this process).

    Why one-thread workers: small networks do not keep two torch threads busy; two one-thread processes
    trained 1.25x the samples/s of one two-thread process on a 2-core CPU (evaluations/perf/cpu_defaults.py).
    """
    if resolve_device(device).type != "cpu":
        return 0
    cpus = usable_cpus()
    return cpus if cpus >= 2 else 0
