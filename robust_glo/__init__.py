"""robust-glo: evolve TaylorGLO loss functions with CMA-ES and measure their adversarial robustness.

The short public API, one call per stage (each subpackage holds the stage's configuration and engine):

>>> from robust_glo import get_loss, train, load_test_images, evaluate_model, analyze_loss, evolve, run_benchmark
>>> loss = get_loss("label_smoothing:0.1")            # loss(logits (N, K), targets (N,)) -> scalar
>>> net = train("baikal", dataset="digits", steps=200).model
>>> images, labels = load_test_images("digits", n=200)  # (200, 1, 8, 8) float32 in [0, 1], (200,) int64
>>> evaluate_model(net, images, labels, attacks=["fgsm"], eps=[0, 0.1])
>>> analyze_loss("baikal", 10).effective_target       # 0.3162...
>>> run_benchmark("quick", "runs/quick")              # evolve -> train -> attack -> analyze -> report

The pipeline: data -> models -> losses -> training -> evolution -> robustness (attacks) -> analysis ->
reporting -> benchmark -> cli. Documentation: docs/README.md.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from robust_glo.errors import RobustGloError

if TYPE_CHECKING:
    from robust_glo.api import analyze_loss, evaluate_model, evolve, load_test_images, run_benchmark, train
    from robust_glo.data import load_dataset
    from robust_glo.losses import get_loss, list_losses, register_loss
    from robust_glo.models import create_model, list_models, register_model

# The public API is imported on first use (PEP 562), not with the package: `import robust_glo.cli` (the
# `robust-glo` command) then starts without torch, so that its own error and Ctrl-C handling covers the
# seconds torch takes to import; `from robust_glo import train` works as before.
_LAZY = {
    **dict.fromkeys(
        ["analyze_loss", "evaluate_model", "evolve", "load_test_images", "run_benchmark", "train"], "robust_glo.api"
    ),
    "load_dataset": "robust_glo.data",
    **dict.fromkeys(["get_loss", "list_losses", "register_loss"], "robust_glo.losses"),
    **dict.fromkeys(["create_model", "list_models", "register_model"], "robust_glo.models"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'robust_glo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


try:
    __version__ = version("robust-glo")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "RobustGloError",
    "__version__",
    "analyze_loss",
    "create_model",
    "evaluate_model",
    "evolve",
    "get_loss",
    "list_losses",
    "list_models",
    "load_dataset",
    "load_test_images",
    "register_loss",
    "register_model",
    "run_benchmark",
    "train",
]
