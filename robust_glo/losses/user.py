"""User losses from `package.module:function` or `path/to/file.py:function`, with checked output."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from robust_glo.errors import LossSpecError, NonFiniteLossError

__all__ = ["NonFiniteLossError", "UserLoss", "check_loss_on_probe", "load_user_loss"]


class UserLoss:
    """Wraps a user function so that misbehaviour is reported with the spec that named it."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], spec: str):
        self.fn = fn
        self.spec = spec

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        try:
            value = self.fn(logits, targets)
        except Exception as exc:  # any failure inside user code is reported, with its spec
            raise LossSpecError(f"user loss {self.spec!r} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(value, torch.Tensor):
            raise LossSpecError(f"user loss {self.spec!r} returned {type(value).__name__}, expected a scalar tensor")
        if value.dim() != 0:
            raise LossSpecError(
                f"user loss {self.spec!r} returned a tensor of shape {tuple(value.shape)}, expected a scalar"
            )
        if torch.is_grad_enabled() and logits.requires_grad and value.grad_fn is None:
            raise LossSpecError(
                f"user loss {self.spec!r} returned a value that does not depend on the logits (no gradient: "
                "detached, a constant, or computed outside autograd); return a tensor computed from logits"
            )
        if not math.isfinite(float(value.detach())):
            raise NonFiniteLossError(f"user loss {self.spec!r} returned a non-finite value ({float(value.detach())})")
        return value

    def __repr__(self) -> str:
        return f"UserLoss({self.spec!r})"


def check_loss_on_probe(
    loss_fn: Callable[..., torch.Tensor], num_classes: int, spec: str | None = None, *, batch: int = 4
) -> None:
    """Call a loss once on a batch (`batch` rows) of small random logits that require grad, before any run
    directory is written.

    A user loss that returns a detached value or a constant, a non-scalar, or raises is a one-line
    `LossSpecError`; a non-finite value of a user loss is left to training (it reports it on fresh weights
    the same way). A built-in loss whose value or gradient is not finite on these logits (parameters that
    overflow in float32, say) is a one-line `NonFiniteLossError` naming its spec.
    """
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, num_classes, generator=g).requires_grad_(True)
    targets = torch.arange(batch) % num_classes
    with torch.enable_grad():
        if isinstance(loss_fn, UserLoss):
            try:
                loss_fn(logits, targets)
            except NonFiniteLossError:
                pass
            return
        value = loss_fn(logits, targets)
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            return
        finite = math.isfinite(float(value.detach()))
        grad_finite = True
        if finite and value.grad_fn is not None:
            (grad,) = torch.autograd.grad(value, logits, allow_unused=True)
            grad_finite = grad is None or bool(torch.isfinite(grad).all())
    if not (finite and grad_finite):
        what = f"value ({float(value.detach())})" if not finite else "gradient"
        raise NonFiniteLossError(
            f"loss spec {spec or repr(loss_fn)!r}: the loss {what} is not finite on a training batch of random logits "
            "(its parameters overflow in float32 when combined): give smaller parameters"
        )


def _load_module_from_file(path: Path, spec: str):
    if not path.is_file():
        raise LossSpecError(f"loss spec {spec!r}: file {str(path)!r} does not exist")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"robust_glo_user_loss_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise LossSpecError(f"loss spec {spec!r}: importing {str(path)!r} failed: {type(exc).__name__}: {exc}") from exc
    sys.modules[name] = module
    return module


def load_user_loss(location: str, attribute: str, spec: str) -> UserLoss:
    """Resolve `location:attribute`, where location is a `.py` file or an importable module."""
    if location.endswith(".py"):
        module = _load_module_from_file(Path(location), spec)
    else:
        try:
            module = importlib.import_module(location)
        except ImportError as exc:
            raise LossSpecError(f"loss spec {spec!r}: cannot import module {location!r} ({exc})") from exc
    fn = getattr(module, attribute, None)
    if fn is None:
        raise LossSpecError(f"loss spec {spec!r}: {location!r} has no function {attribute!r}")
    if not callable(fn):
        raise LossSpecError(f"loss spec {spec!r}: {location}:{attribute} is not callable")
    return UserLoss(fn, spec)
