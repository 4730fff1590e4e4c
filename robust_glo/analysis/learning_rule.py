"""The learning rule of any loss on the logits, by autograd (docs/method.md).

With h = softmax(z), target t and f'_j = -dL/dy_j (for TaylorGLO exactly df/dy at (x_j, h_j)):

    -dL/dz_t = h_t (1 - h_t) f'_t  -  h_t sum_{j != t} h_j f'_j     = pull + push
    -dL/dz_k = h_k (f'_k - sum_j h_j f'_j)

The total gradient -dL/dz is always well defined. Its split into pull and push needs f', and there are
two ways to get it (the "decomposition" recorded with every result):

- ``"probabilities"``: the loss has ``from_probs(probs, targets)`` (every built-in loss does): the loss as
  a function of the probabilities taken as free variables, so autograd gives f' itself.
- ``"centred"``: a loss known only on logits (a user loss) sees normalised probabilities, so f' is
  defined only up to an additive constant. We fix it by the centred gauge sum_j h_j f'_j = 0, which is
  what autograd gives for L(log y) with y free (the loss is then invariant to rescaling y). There,
  f'_k = (-dL/dz_k)/h_k, push = h_t^2 f'_t and pull = h_t (1 - h_t) f'_t: the split is the gauge's,
  not the loss's, but the total and the effective target do not depend on it.

The effective target p* (implicit label smoothing) is read on the symmetric path: target probability p,
every other class (1 - p)/(n - 1). It is the stable rest point reached from uniform outputs: the first
p above 1/n where -dL/dz_t turns from pulling up to pushing down (None when that never happens below 1,
as for cross-entropy). Should the target logit fall at uniform outputs, it is the first rest point below
1/n instead (0 when there is none); 1/n when the gradient there is exactly zero. The search scans a grid
reaching 1e-12 from 0 and 1, then refines with `scipy.optimize.brentq` (or bisection where the gradient
turns exactly zero, as for a hinge loss). A loss that computes in float32 is scanned only to 100 machine
epsilons from either end, where its rounding would otherwise read as a rest point; the result says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from scipy.optimize import brentq

from robust_glo.analysis.invariant import check_classes
from robust_glo.errors import ConfigError, LossSpecError
from robust_glo.losses import UserLoss, get_loss

Gauge = Literal["auto", "probabilities", "centred"]
GAUGES = ("auto", "probabilities", "centred")

# The scan reaches p = 1 - 1e-12 and p = 1e-12; beyond 1e-6 from either end a loss that cannot be
# evaluated (say, log(0) in float32) ends the scan with a warning instead of failing the analysis.
_EDGE = 1e-12
_TAIL = 1e-6


def resolve_loss(loss: object) -> object:
    """A loss spec or callable as a loss object with ``__call__(logits, targets)`` and ``.spec``.

    A plain function is wrapped in `UserLoss`, so that its misbehaviour is reported with its name.
    """
    if isinstance(loss, str):
        return get_loss(loss)
    if not callable(loss):
        raise LossSpecError(f"expected a loss spec or a callable loss, got {type(loss).__name__}")
    if isinstance(getattr(loss, "spec", None), str):
        return loss
    return UserLoss(loss, getattr(loss, "__qualname__", None) or repr(loss))


def _spec(loss: object) -> str:
    return str(getattr(loss, "spec", loss))


def _has_probabilities(loss: object) -> bool:
    return callable(getattr(loss, "from_probs", None))


def check_gauge(gauge: str, loss: object) -> str:
    if gauge not in GAUGES:
        raise ConfigError(f"decomposition {gauge!r} is unknown; valid: {', '.join(GAUGES)}")
    if gauge == "probabilities" and not _has_probabilities(loss):
        raise ConfigError(
            f"loss {_spec(loss)!r} is known only on logits, so its decomposition must be "
            f"'centred' (or 'auto'), not 'probabilities'"
        )
    if gauge == "auto":
        return "probabilities" if _has_probabilities(loss) else "centred"
    return gauge


def symmetric_probs(p: np.ndarray | Sequence[float], n_classes: int) -> np.ndarray:
    """Outputs ``(K, n)`` with probability p ``(K,)`` on class 0 (the target) and the rest equal."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    probs = np.empty((p.size, n_classes))
    probs[:, 0] = p
    probs[:, 1:] = ((1.0 - p) / (n_classes - 1))[:, None]
    return probs


@dataclass
class Decomposition:
    """The learning rule at M output vectors, as numpy float64 arrays.

    probs ``(M, n)``, targets ``(M,)``, fprime ``(M, n)`` (f'_j in the chosen gauge), logit_grad
    ``(M, n)`` (-dL/dz, the direction gradient descent moves the logits), pull and push ``(M,)`` (the
    two terms of -dL/dz_t), loss ``(M,)`` per-sample values (or None), decomposition the gauge.
    """

    probs: np.ndarray
    targets: np.ndarray
    fprime: np.ndarray
    logit_grad: np.ndarray
    pull: np.ndarray
    push: np.ndarray
    loss: np.ndarray | None
    decomposition: str

    @property
    def target_grad(self) -> np.ndarray:
        """-dL/dz_t ``(M,)``."""
        return self.logit_grad[np.arange(len(self.targets)), self.targets]


def _fail(loss: object, where: str, exc: BaseException) -> LossSpecError:
    detail = str(exc) if isinstance(exc, LossSpecError) else f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, LossSpecError):
        detail = f"loss {_spec(loss)!r} failed: {detail}"
    return LossSpecError(f"{detail} (analysis at {where})".replace("\n", " "))


def _where(probs: np.ndarray, targets: np.ndarray) -> str:
    p = probs[np.arange(len(targets)), targets]
    span = f"p={p[0]:.6g}" if p.size == 1 else f"p in [{p.min():.6g}, {p.max():.6g}]"
    return f"target probability {span}, {probs.shape[1]} classes"


def _probabilities_grad(loss: object, probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """f'_j = -dL/dy_j ``(M, n)`` from ``loss.from_probs``, a mean over the M independent rows."""
    y = torch.tensor(probs, dtype=torch.float64, requires_grad=True)
    t = torch.as_tensor(targets, dtype=torch.int64)
    try:
        value = loss.from_probs(y, t)
        (grad,) = torch.autograd.grad(value, y)
    except Exception as exc:  # report any failure with the loss and the point that caused it
        raise _fail(loss, _where(probs, targets), exc) from exc
    return -grad.numpy() * probs.shape[0]


def _probabilities_values(loss: object, probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    y = torch.as_tensor(probs, dtype=torch.float64)
    t = torch.as_tensor(targets, dtype=torch.int64)
    with torch.no_grad():
        try:
            return np.array([float(loss.from_probs(y[i : i + 1], t[i : i + 1])) for i in range(len(t))])
        except Exception as exc:
            raise _fail(loss, _where(probs, targets), exc) from exc


def _logits_grad(
    loss: object,
    probs: np.ndarray,
    targets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(-dL/dz ``(M, n)``, loss values ``(M,)``, the machine epsilon of the dtype the loss returned),
    one sample at a time at logits z = log(probs) in float64.

    One sample per call, so that a user loss that sums instead of averaging over the batch, or mixes
    samples, still gives the gradient of a single sample.
    """
    z_all = torch.log(torch.tensor(probs, dtype=torch.float64))
    t_all = torch.as_tensor(targets, dtype=torch.int64)
    grads = np.empty_like(probs)
    values = np.empty(len(targets))
    eps = float(np.finfo(np.float64).eps)
    for i in range(len(targets)):
        z = z_all[i : i + 1].clone().requires_grad_(True)
        try:
            value = loss(z, t_all[i : i + 1])
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                raise LossSpecError(f"loss {_spec(loss)!r} did not return a scalar tensor")
            if not value.requires_grad:
                raise LossSpecError(
                    f"loss {_spec(loss)!r} returned a value with no gradient with respect "
                    f"to the logits (was it detached or computed outside torch?)"
                )
            (grad,) = torch.autograd.grad(value, z, allow_unused=True)
        except Exception as exc:
            raise _fail(loss, _where(probs[i : i + 1], targets[i : i + 1]), exc) from exc
        grads[i] = 0.0 if grad is None else -grad[0].detach().double().numpy()
        values[i] = float(value.detach())
        if value.dtype.is_floating_point:
            eps = max(eps, torch.finfo(value.dtype).eps)
    return grads, values, eps


def decompose(
    loss: object,
    probs: np.ndarray | Sequence[Sequence[float]],
    targets: np.ndarray | Sequence[int],
    *,
    gauge: Gauge = "auto",
    values: bool = False,
) -> Decomposition:
    """The learning rule of ``loss`` at outputs probs ``(M, n)`` with targets ``(M,)`` (docs/method.md).

    ``loss`` is a spec or a loss callable; ``gauge`` picks the decomposition (module docstring);
    ``values`` also computes the per-sample loss. Raises `LossSpecError` naming the loss and the point
    where it failed, or whose gradient is not finite.
    """
    loss = resolve_loss(loss)
    gauge = check_gauge(gauge, loss)
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if probs.ndim != 2 or targets.shape != (probs.shape[0],):
        raise ConfigError(f"probs must be (M, n) and targets (M,), got {probs.shape} and {targets.shape}")
    check_classes(probs.shape[1])
    if not (np.all(probs > 0) and np.allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-9)):
        raise ConfigError("probs must be positive and each row must sum to 1")
    rows = np.arange(len(targets))
    loss_values = None
    if _has_probabilities(loss):
        fprime = _probabilities_grad(loss, probs, targets)
        fbar = (probs * fprime).sum(axis=1, keepdims=True)
        logit_grad = probs * (fprime - fbar)
        if gauge == "centred":
            fprime = fprime - fbar
        if values:
            loss_values = _probabilities_values(loss, probs, targets)
    else:
        logit_grad, loss_values, _ = _logits_grad(loss, probs, targets)
        # The centred gauge: f'_k = g_k/h_k - sum_j g_j, so that sum_j h_j f'_j = 0 (sum_j g_j is zero
        # for any loss of the softmax output; subtracting it keeps the gauge exact otherwise).
        fprime = logit_grad / probs - logit_grad.sum(axis=1, keepdims=True)
    bad = ~(np.isfinite(fprime).all(axis=1) & np.isfinite(logit_grad).all(axis=1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LossSpecError(
            f"loss {_spec(loss)!r} has a non-finite gradient at {_where(probs[i : i + 1], targets[i : i + 1])}"
        )
    ft = fprime[rows, targets]
    pt = probs[rows, targets]
    pull = pt * (1.0 - pt) * ft
    push = -pt * ((probs * fprime).sum(axis=1) - pt * ft)
    return Decomposition(probs, targets, fprime, logit_grad, pull, push, loss_values, gauge)


@dataclass
class LearningRule:
    """The learning rule along the symmetric path, each array ``(K,)`` over target probabilities p.

    target_grad = -dL/dz_t = pull + push (for a loss of the softmax output), nontarget_grad = -dL/dz_k
    for one non-target k, loss the per-sample loss value, fprime_target / fprime_other f'_t and f'_k.
    """

    classes: int
    p: np.ndarray
    loss: np.ndarray
    target_grad: np.ndarray
    nontarget_grad: np.ndarray
    pull: np.ndarray
    push: np.ndarray
    fprime_target: np.ndarray
    fprime_other: np.ndarray
    decomposition: str


def default_grid(n_classes: int, points: int = 241) -> np.ndarray:
    """Target probabilities for curves ``(K,)``: dense near 0, 1/n and 1, never exactly 0 or 1."""
    n = check_classes(n_classes)
    linear = np.linspace(0.0, 1.0, points)[1:-1]
    ends = np.geomspace(1e-3, 0.5, 40)
    grid = np.unique(np.concatenate([linear, ends, 1.0 - ends, [1.0 / n]]))
    return grid[(grid > 0.0) & (grid < 1.0)]


def learning_rule(
    loss: object, n_classes: int, p: np.ndarray | Sequence[float] | None = None, *, gauge: Gauge = "auto"
) -> LearningRule:
    """The learning rule of ``loss`` for ``n_classes`` at target probabilities p ``(K,)`` in (0, 1)."""
    n = check_classes(n_classes)
    p = default_grid(n) if p is None else np.asarray(p, dtype=np.float64).reshape(-1)
    if p.size == 0 or not np.all((p > 0.0) & (p < 1.0)):
        raise ConfigError("target probabilities p must lie strictly between 0 and 1")
    d = decompose(loss, symmetric_probs(p, n), np.zeros(p.size, dtype=np.int64), gauge=gauge, values=True)
    return LearningRule(
        n,
        p,
        d.loss,
        d.target_grad,
        d.logit_grad[:, 1],
        d.pull,
        d.push,
        d.fprime[:, 0],
        d.fprime[:, 1:].mean(axis=1),
        d.decomposition,
    )


@dataclass
class _Residual:
    """s(p) = -dL/dz_t / (p (1 - p)): the sign of the target-logit gradient, well scaled near 0 and 1.

    For a loss of the softmax output s(p) = f'_t - f'_o, which is how it is computed when f' is known.
    """

    loss: object
    n: int
    eps: float = float(np.finfo(np.float64).eps)  # of the dtype the loss computes in, once seen

    def __call__(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        probs = symmetric_probs(p, self.n)
        targets = np.zeros(p.size, dtype=np.int64)
        if _has_probabilities(self.loss):
            f = _probabilities_grad(self.loss, probs, targets)
            s = f[:, 0] - f[:, 1:].mean(axis=1)
        else:
            g, _, eps = _logits_grad(self.loss, probs, targets)
            self.eps = max(self.eps, eps)
            s = g[:, 0] / (p * (1.0 - p))
        bad = ~np.isfinite(s)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise LossSpecError(
                f"loss {_spec(self.loss)!r} has a non-finite gradient at {_where(probs[i : i + 1], targets[i : i + 1])}"
            )
        return s

    def scalar(self, p: float) -> float:
        return float(self(np.array([p]))[0])


@dataclass
class EffectiveTarget:
    """p* (None where the loss pursues p -> 1), -dL/dz_t at uniform outputs, and scan warnings."""

    value: float | None
    target_grad_at_init: float
    warnings: list[str] = field(default_factory=list)


def _scan(
    residual: _Residual, grid: np.ndarray, tail: np.ndarray, sign: float, warnings: list[str]
) -> tuple[float, float] | None:
    """First bracket (a, b) on grid + tail (ordered away from 1/n) where sign*s turns <= 0, or None;
    a is NaN when the first grid point is already there (then the bracket starts at 1/n).

    The tail, within 1e-6 of 0 or 1, may fail to evaluate: then the scan stops with a warning.
    """
    values = sign * residual(grid) if grid.size else np.empty(0)
    points = grid
    hit = np.flatnonzero(values <= 0)
    if hit.size == 0 and tail.size:
        try:
            tail_values = sign * residual(tail)
        except LossSpecError as exc:
            last = f"{grid[-1]:.6g}" if grid.size else "1/n"
            warnings.append(f"scan stopped at p={last}, where the loss cannot be evaluated further: {exc}")
        else:
            values = np.concatenate([values, tail_values])
            points = np.concatenate([grid, tail])
            hit = np.flatnonzero(values <= 0)
    if hit.size == 0:
        return None
    i = int(hit[0])
    return (points[i - 1] if i > 0 else float("nan"), points[i])


def effective_target(loss: object, n_classes: int) -> EffectiveTarget:
    """The effective target p* of ``loss`` for ``n_classes`` (module docstring), with the initial
    target-logit gradient -dL/dz_t at uniform outputs."""
    loss = resolve_loss(loss)
    n = check_classes(n_classes)
    p0 = 1.0 / n
    residual = _Residual(loss, n)
    s0 = residual.scalar(p0)
    grad0 = s0 * p0 * (1.0 - p0)
    warnings: list[str] = []
    if s0 == 0.0:
        return EffectiveTarget(p0, grad0, warnings)
    edge = _EDGE
    if residual.eps > 1e-15:
        # A float32 loss rounds h_t to exactly 1 near p = 1 (its gradient turns 0 there): stay where
        # its arithmetic still resolves the gradient's sign.
        edge = min(100 * residual.eps, 1e-2)
        warnings.append(f"loss computes in low precision: p* is searched only within [{edge:.2g}, 1 - {edge:.2g}]")
    tail_start = max(_TAIL, edge)
    if s0 > 0:  # the target rises from 1/n: look upward, in 1 - p, down to the edge
        u = np.unique(np.concatenate([np.linspace(0.0, 1.0 - p0, 400)[1:-1], np.geomspace(1.0 - p0, edge, 300)[1:]]))[
            ::-1
        ]
        u = u[u >= edge]
        grid, tail = 1.0 - u[u >= tail_start], 1.0 - u[u < tail_start]
    else:  # it falls: look downward
        v = np.unique(np.concatenate([np.linspace(0.0, p0, 200)[1:-1], np.geomspace(p0, edge, 200)[1:]]))
        v = v[::-1]
        v = v[v >= edge]
        grid, tail = v[v >= tail_start], v[v < tail_start]
    sign = 1.0 if s0 > 0 else -1.0
    bracket = _scan(residual, grid, tail, sign, warnings)
    if bracket is None:
        return EffectiveTarget(None if s0 > 0 else 0.0, grad0, warnings)
    a, b = bracket  # sign * s(a) > 0 >= sign * s(b), a nearer to 1/n
    if math.isnan(a):
        a = p0
    if residual.scalar(b) != 0.0:
        root = brentq(residual.scalar, min(a, b), max(a, b), xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200)
        return EffectiveTarget(float(root), grad0, warnings)
    # The gradient is exactly zero at b: a root there, or the start of a flat region (a hinge-like
    # loss stops pulling at its margin). Bisect for where it stops being non-zero.
    for _ in range(200):
        mid = 0.5 * (a + b)
        if mid in (a, b):
            break
        if sign * residual.scalar(mid) > 0:
            a = mid
        else:
            b = mid
    return EffectiveTarget(float(b), grad0, warnings)


def label_smoothing_equivalent(p_star: float | None, n_classes: int) -> float | None:
    """alpha with 1 - alpha + alpha/n = p*, that is alpha = (1 - p*) n / (n - 1); None when p* is."""
    n = check_classes(n_classes)
    return None if p_star is None else (1.0 - p_star) * n / (n - 1)


__all__ = [
    "Decomposition",
    "EffectiveTarget",
    "GAUGES",
    "LearningRule",
    "decompose",
    "default_grid",
    "effective_target",
    "label_smoothing_equivalent",
    "learning_rule",
    "resolve_loss",
    "symmetric_probs",
]
