"""Library versions and hardware, recorded in every run directory."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import sys
from typing import Any

import torch

from robust_glo.utils.device import cpu_bf16_support

_PACKAGES = [
    "robust-glo",
    "torch",
    "torchvision",
    "torchattacks",
    "cma",
    "numpy",
    "pandas",
    "scipy",
    "seaborn",
    "matplotlib",
    "scikit-learn",
    "ray",
]


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "cpu_bf16": cpu_bf16_support(),  # the bfloat16 support detected, which precision "auto" follows
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_metadata(**seeds: int) -> dict[str, Any]:
    """Versions, hardware, time and the seeds given, for `environment.json`."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seeds": seeds,
        "versions": library_versions(),
        "hardware": hardware(),
        "argv": sys.argv,
    }
