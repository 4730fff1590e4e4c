from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

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


def _cpuinfo_flags() -> set[str] | None:
    """The CPU flags /proc/cpuinfo lists (Linux), or None where there is no such file."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_bf16_support() -> dict[str, Any]:
    """What this CPU offers for bfloat16, detected at run time (JSON-ready; recorded in environment.json).

    `native_bf16` is true where the CPU has AVX-512 BF16 or AMX-BF16, the instructions oneDNN's bfloat16
    kernels need; without them PyTorch emulates bfloat16 and a bfloat16 training step is several times
    *slower* than float32 (README, "bfloat16 on the CPU"). Torch's own run-time CPUID checks decide where
    this PyTorch has them; otherwise the flags of /proc/cpuinfo do.
    """
    flags = _cpuinfo_flags()
    cpu = getattr(torch, "cpu", None)

    def torch_check(name: str) -> bool | None:
        fn = getattr(cpu, name, None)
        try:
            return bool(fn()) if fn is not None else None
        except Exception:  # noqa: BLE001 - a private check that may change: treat as unknown
            return None

    torch_avx512_bf16 = torch_check("_is_avx512_bf16_supported")
    torch_amx = torch_check("_is_amx_tile_supported")
    flag_avx512_bf16 = None if flags is None else "avx512_bf16" in flags
    flag_amx_bf16 = None if flags is None else "amx_bf16" in flags
    avx512_bf16 = torch_avx512_bf16 if torch_avx512_bf16 is not None else bool(flag_avx512_bf16)
    amx_bf16 = torch_amx if torch_amx is not None else bool(flag_amx_bf16)  # AMX tiles come with AMX-BF16
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001
        capability = None
    return {
        "cpu_capability": capability,  # the vector ISA PyTorch dispatches to (AVX2, AVX512, ...)
        "avx512_bf16": bool(avx512_bf16),
        "amx_bf16": bool(amx_bf16),
        "native_bf16": bool(avx512_bf16 or amx_bf16),
        "source": "torch" if torch_avx512_bf16 is not None else ("cpuinfo" if flags is not None else "none"),
    }


def native_cpu_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX-512 BF16 or AMX); see `cpu_bf16_support`."""
    return bool(cpu_bf16_support()["native_bf16"])


CPU_LAYOUTS = ("auto", "channels_last", "contiguous")
LAYOUT_ENV = "ROBUST_GLO_CPU_LAYOUT"


def cpu_layout() -> str:
    """The memory layout a network's convolutions run in on the CPU, in float32 training and in every
    attack and diagnostic: "channels_last" or "contiguous" (PyTorch's usual NCHW).

    Set by the environment variable `ROBUST_GLO_CPU_LAYOUT` (auto, channels_last or contiguous, in any case
    and with surrounding spaces ignored; unset or empty means auto; read at each call, so Ray workers
    started by this process follow it). "auto" (the default) is channels_last where PyTorch dispatches to
    AVX-512, whose oneDNN kernels ran the quick suite's attacks 1.37x (LeNet-5) and 1.73x (small-cnn) and
    small-cnn's training 1.26x faster in that layout (LeNet-5's training 1.07x; evaluations/perf/cpu_layout.py),
    and contiguous elsewhere, where it was not measured. Only rounding differs between the two (the
    summation order inside a convolution). Raises `ConfigError` for any other value."""
    value = os.environ.get(LAYOUT_ENV, "auto").strip().lower() or "auto"
    if value not in CPU_LAYOUTS:
        raise ConfigError(f"{LAYOUT_ENV}={value!r} is not valid; valid: {', '.join(CPU_LAYOUTS)}")
    if value != "auto":
        return value
    capability = str(cpu_bf16_support()["cpu_capability"] or "")
    return "channels_last" if capability.startswith("AVX512") else "contiguous"


def channels_last_on(device: str | torch.device, dtype: torch.dtype = torch.float32) -> bool:
    """Whether a network of `dtype` on `device` runs in channels_last layout: a float32 one on the CPU
    where `cpu_layout` says so (oneDNN's fast kernels are float32 and bfloat16 ones; a float64 network
    keeps PyTorch's usual layout and its exact reference results)."""
    return torch.device(device).type == "cpu" and dtype == torch.float32 and cpu_layout() == "channels_last"
