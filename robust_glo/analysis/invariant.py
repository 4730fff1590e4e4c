"""The TaylorGLO invariant (docs/method.md): reject candidate losses before training them.

Writing df/dy = c1 + ch*y + chh*y^2 + cx*x + cxx*x^2 + chx*y*x, two rules decide whether a candidate
is worth training for n classes, both read at the start of training (uniform outputs, y = 1/n):

- ``"paper"`` (the authors' code): ``cx + cxx + chx/n >= (n - 2) * (c1 + ch/n + chh/n^2)``, that is
  ``f'(1, 1/n) >= (n - 1) f'(0, 1/n)``: the target's own pull outweighs the summed pull on the others.
- ``"exact"`` (softmax Jacobian): ``cx + cxx + chx/n > 0``, that is ``f'(1, 1/n) > f'(0, 1/n)``: the
  target logit rises at initialization (``-dL/dz_t = (1/n)(1 - 1/n)(f'(1, 1/n) - f'(0, 1/n))``).

`invariant_holds` checks one theta; `invariant_holds_batch` checks an ``(M, 8)`` array at once (what the
evolution engine calls). Non-finite parameters fail both rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass

import numpy as np

from robust_glo.errors import ConfigError
from robust_glo.losses.taylorglo import N_PARAMS

RULES = ("paper", "exact")

COEFFICIENT_NAMES = ("c1", "ch", "chh", "cx", "cxx", "chx")


@dataclass(frozen=True)
class Coefficients:
    """df/dy = c1 + ch*y + chh*y^2 + cx*x + cxx*x^2 + chx*y*x for one TaylorGLO theta."""

    c1: float
    ch: float
    chh: float
    cx: float
    cxx: float
    chx: float

    def fprime(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray | float:
        """df/dy at (x, y), elementwise over broadcastable x and y."""
        return self.c1 + self.ch * y + self.chh * y * y + self.cx * x + self.cxx * x * x + self.chx * y * x

    def to_dict(self) -> dict[str, float]:
        return dict(zip(COEFFICIENT_NAMES, astuple(self)))


def check_classes(n_classes: object) -> int:
    """Return ``n_classes`` as an int, or raise `ConfigError` unless it is an integer >= 2."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ConfigError(f"number of classes must be an integer >= 2, got {n_classes!r}")
    return int(n_classes)


def check_rule(rule: object) -> str:
    if rule not in RULES:
        raise ConfigError(f"invariant rule {rule!r} is unknown; valid rules: {', '.join(RULES)}")
    return str(rule)


def as_theta_array(thetas: Sequence[float] | Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """``thetas`` as a float64 array of shape ``(M, 8)``; a single theta ``(8,)`` becomes ``(1, 8)``."""
    try:
        array = np.asarray(thetas, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"TaylorGLO parameters must be numbers, got {thetas!r}") from None
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != N_PARAMS:
        raise ConfigError(f"TaylorGLO parameters must have shape (M, {N_PARAMS}) or ({N_PARAMS},), got {array.shape}")
    return array


def coefficients_batch(thetas: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """The df/dy coefficients of every row: thetas ``(M, 8)`` -> ``(M, 6)`` in `COEFFICIENT_NAMES` order."""
    t = as_theta_array(thetas).T
    c1 = t[2] - 2 * t[1] * t[3] + 3 * t[4] * t[1] ** 2 - t[5] * t[0] + 2 * t[0] * t[1] * t[6] + t[7] * t[0] ** 2
    ch = 2 * t[3] - 6 * t[4] * t[1] - 2 * t[6] * t[0]
    chh = 3 * t[4]
    cx = t[5] - 2 * t[1] * t[6] - 2 * t[7] * t[0]
    cxx = t[7]
    chx = 2 * t[6]
    return np.stack([c1, ch, chh, cx, cxx, chx], axis=1)


def coefficients(theta: Sequence[float] | np.ndarray) -> Coefficients:
    """The closed-form df/dy coefficients of one theta ``(8,)`` (docs/method.md)."""
    array = as_theta_array(theta)
    if array.shape[0] != 1:
        raise ConfigError(f"expected one theta of {N_PARAMS} numbers, got shape {array.shape}")
    return Coefficients(*(float(v) for v in coefficients_batch(array)[0]))


def invariant_holds_batch(
    thetas: np.ndarray | Sequence[Sequence[float]], n_classes: int, rule: str = "paper"
) -> np.ndarray:
    """Which rows of thetas ``(M, 8)`` pass the invariant for ``n_classes``: bool array ``(M,)``.

    Rows with a non-finite parameter, or whose coefficients overflow, fail.
    """
    n = check_classes(n_classes)
    rule = check_rule(rule)
    array = as_theta_array(thetas)
    with np.errstate(over="ignore", invalid="ignore"):
        c1, ch, chh, cx, cxx, chx = coefficients_batch(array).T
        target_excess = cx + cxx + chx / n  # f'(1, 1/n) - f'(0, 1/n)
        if rule == "paper":
            holds = target_excess >= (n - 2) * (c1 + ch / n + chh / n**2)
        else:
            holds = target_excess > 0
    return holds & np.isfinite(array).all(axis=1)


def invariant_margin_batch(
    thetas: np.ndarray | Sequence[Sequence[float]], n_classes: int, rule: str = "paper"
) -> np.ndarray:
    """How far each row of thetas ``(M, 8)`` is inside the invariant, float ``(M,)``: the left side minus
    the right side of the rule (``"paper"``: ``f'(1, 1/n) - (n - 1) f'(0, 1/n)``; ``"exact"``:
    ``f'(1, 1/n) - f'(0, 1/n)``). A row passes when it is >= 0 (paper) or > 0 (exact); the more negative,
    the further from passing. NaN for rows that are not finite."""
    n = check_classes(n_classes)
    rule = check_rule(rule)
    array = as_theta_array(thetas)
    with np.errstate(over="ignore", invalid="ignore"):
        c1, ch, chh, cx, cxx, chx = coefficients_batch(array).T
        target_excess = cx + cxx + chx / n
        margin = target_excess - (n - 2) * (c1 + ch / n + chh / n**2) if rule == "paper" else target_excess
    return np.where(np.isfinite(array).all(axis=1) & np.isfinite(margin), margin, np.nan)


def invariant_holds(theta: Sequence[float] | np.ndarray, n_classes: int, rule: str = "paper") -> bool:
    """Whether one TaylorGLO theta ``(8,)`` passes the invariant for ``n_classes`` under ``rule``."""
    array = as_theta_array(theta)
    if array.shape[0] != 1:
        raise ConfigError(f"expected one theta of {N_PARAMS} numbers, got shape {array.shape}")
    return bool(invariant_holds_batch(array, n_classes, rule)[0])
