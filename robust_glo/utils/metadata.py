"""Library versions and hardware, recorded in every run directory."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from robust_glo.utils.device import cpu_bf16_support, cpu_layout

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
        "cpu_layout": cpu_layout(),  # the memory layout convolutions run in on the CPU (utils.device)
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _git(checkout: Path, *args: str) -> str | None:
    """The stripped output of `git args` in `checkout`, or None when git is absent or fails."""
    git = shutil.which("git")
    if git is None:
        return None
    # GIT_OPTIONAL_LOCKS=0: `git status` must not take the index lock (other processes may be committing).
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            [git, "-C", str(checkout), *args], capture_output=True, text=True, timeout=10, env=env, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version() -> dict[str, Any]:
    """The code this process runs: `commit` (the full SHA-1 of HEAD of the git checkout the `robust_glo`
    package is imported from) and `dirty` (whether tracked files differ from that commit; untracked files
    do not count). Both are None when the package does not come from a git checkout (an installed wheel,
    a copy without .git) or git is not installed; never raises."""
    package = Path(__file__).resolve().parents[1]  # robust_glo/
    top = _git(package, "rev-parse", "--show-toplevel")
    # The package must be the checkout's own robust_glo/, not an installed copy inside some other checkout
    # (a wheel in a venv under the working tree).
    if not top or Path(top).resolve() / package.name != package:
        return {"commit": None, "dirty": None}
    commit = _git(package, "rev-parse", "--verify", "HEAD")
    status = _git(package, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def run_metadata(**seeds: int) -> dict[str, Any]:
    """Versions, hardware, time and the seeds given, for `environment.json`."""
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seeds": seeds,
        "versions": library_versions(),
        "code_version": code_version(),
        "hardware": hardware(),
        "argv": sys.argv,
    }
