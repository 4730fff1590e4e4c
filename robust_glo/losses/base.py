"""The loss protocol and the registry that maps spec strings to losses (docs/losses.md)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from robust_glo.errors import LossSpecError


class LossFn(Protocol):
    """`loss(logits (N, C) float, targets (N,) int64) -> scalar tensor`."""

    spec: str

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class LossEntry:
    """A registered loss family: `name` or `name:ARG` in a spec."""

    name: str
    factory: Callable[[str | None, str], LossFn]  # (argument text or None, full spec) -> loss
    usage: str
    summary: str


_REGISTRY: dict[str, LossEntry] = {}


def register_loss(name: str, *, usage: str, summary: str):
    """Decorator registering `factory(arg: str | None, spec: str) -> LossFn` under `name`."""

    def decorator(factory: Callable[[str | None, str], LossFn]):
        if name in _REGISTRY:
            raise ValueError(f"loss {name!r} is already registered")
        _REGISTRY[name] = LossEntry(name, factory, usage, summary)
        return factory

    return decorator


def registry() -> dict[str, LossEntry]:
    return dict(_REGISTRY)


def list_losses() -> list[str]:
    """The usage forms of every registered loss, plus the two user-loss forms."""
    return [e.usage for e in _REGISTRY.values()] + ["package.module:function", "path/to/file.py:function"]


def parse_float_arg(
    arg: str | None, spec: str, *, default: float | None, what: str, low: float | None = None, high: float | None = None
) -> float:
    """Parse a numeric loss argument, with an error that names the spec and the valid range."""
    if arg is None or arg == "":
        if default is None:
            raise LossSpecError(f"loss spec {spec!r} needs a value for {what}")
        return default
    try:
        value = float(arg)
    except ValueError:
        raise LossSpecError(f"loss spec {spec!r}: {what} must be a number, got {arg!r}") from None
    if not math.isfinite(value):
        raise LossSpecError(f"loss spec {spec!r}: {what} must be finite, got {arg!r}")
    if not math.isfinite(float(torch.tensor(value, dtype=torch.float32))):  # losses run in float32
        raise LossSpecError(
            f"loss spec {spec!r}: {what} must be finite in float32, the precision losses run in "
            f"(|value| <= {torch.finfo(torch.float32).max:.2g}), got {arg!r}"
        )
    if (low is not None and value < low) or (high is not None and value > high):
        rng = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise LossSpecError(f"loss spec {spec!r}: {what} must lie in {rng}, got {value:g}")
    return value
