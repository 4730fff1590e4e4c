"""TaylorGLO: third-order Taylor-polynomial losses (docs/method.md).

    f(x, y) = t2 (y-t1) + t3 (y-t1)^2 + t4 (y-t1)^3
            + t5 (x-t0)(y-t1) + t6 (x-t0)(y-t1)^2 + t7 (x-t0)^2 (y-t1)
    L = mean_samples( - sum_c f(x_c, y_c) )

x is the one-hot label, y the softmax output; theta order (t0..t7) is the project's canonical one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from robust_glo.errors import LossSpecError
from robust_glo.losses.base import register_loss

N_PARAMS = 8
LOSS_DTYPE = torch.float32  # the loss is computed in float32 (from float32 logits), whatever the model's dtype


def taylorglo_f(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise f(x, y) for theta `(8,)` and broadcastable x, y (any shape)."""
    dx = x - theta[0]
    dy = y - theta[1]
    return dy * (theta[2] + dy * (theta[3] + dy * theta[4]) + dx * (theta[5] + theta[6] * dy + theta[7] * dx))


class TaylorGLOLoss:
    """The TaylorGLO training loss for a fixed theta."""

    def __init__(self, theta: Sequence[float], spec: str | None = None):
        values = [float(v) for v in theta]
        if len(values) != N_PARAMS:
            raise LossSpecError(
                f"loss spec {spec or theta!r}: TaylorGLO needs {N_PARAMS} parameters, got {len(values)}"
            )
        for k, v in enumerate(values):
            if not math.isfinite(v):
                raise LossSpecError(f"loss spec {spec or theta!r}: TaylorGLO parameter t{k} = {v} is not finite")
            if not math.isfinite(float(torch.tensor(v, dtype=LOSS_DTYPE))):
                raise LossSpecError(
                    f"loss spec {spec or theta!r}: TaylorGLO parameter t{k} = {v:g} is not finite in float32, the "
                    f"precision the loss runs in; valid: |t| <= {torch.finfo(LOSS_DTYPE).max:.2g}"
                )
        self.theta = torch.tensor(values, dtype=torch.float64)
        self.spec = spec or "taylorglo:[" + ",".join(repr(v) for v in values) + "]"

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # Softmax in float32 from log_softmax: exact at saturation and immune to autocast's float16.
        y = F.log_softmax(logits.float(), dim=1).exp()
        x = F.one_hot(targets.long(), num_classes=logits.shape[1]).to(y.dtype)
        theta = self.theta.to(device=y.device, dtype=y.dtype)
        return -taylorglo_f(theta, x, y).sum(dim=1).mean()

    def from_probs(self, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The same loss on probabilities `(N, C)` taken as free variables (for learning-rule analysis)."""
        x = F.one_hot(targets.long(), num_classes=probs.shape[1]).to(probs.dtype)
        return -taylorglo_f(self.theta.to(probs), x, probs).sum(dim=1).mean()

    def __repr__(self) -> str:
        return f"TaylorGLOLoss(theta={self.theta.tolist()})"


def load_theta_file(path: str | Path, spec: str | None = None) -> list[float]:
    """Read theta from a JSON file holding at least `{"kind": "taylorglo", "theta": [8 numbers]}`."""
    spec = spec or f"taylorglo:{path}"
    p = Path(path)
    if not p.is_file():
        raise LossSpecError(f"loss spec {spec!r}: file {str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise LossSpecError(f"loss spec {spec!r}: {str(p)!r} is not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("kind") != "taylorglo" or "theta" not in data:
        raise LossSpecError(f'loss spec {spec!r}: {str(p)!r} must hold {{"kind": "taylorglo", "theta": [8 numbers]}}')
    theta = data["theta"]
    if not isinstance(theta, list) or not all(isinstance(v, (int, float)) for v in theta):
        raise LossSpecError(f"loss spec {spec!r}: 'theta' in {str(p)!r} must be a list of numbers")
    return [float(v) for v in theta]


def _finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def parse_theta_list(text: str, spec: str) -> list[float]:
    """Parse `[t0,t1,...,t7]` (JSON list syntax)."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        items = text.strip().removeprefix("[").removesuffix("]").split(",")
        bad = next(((k, item.strip()) for k, item in enumerate(items) if not _finite_number(item)), None)
        where = f" (t{bad[0]} = {bad[1]!r} is not a finite number)" if bad and len(items) == N_PARAMS else ""
        raise LossSpecError(
            f"loss spec {spec!r}: expected taylorglo:[t0,...,t7] with {N_PARAMS} finite numbers{where}"
        ) from None
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
        raise LossSpecError(f"loss spec {spec!r}: expected a list of {N_PARAMS} numbers")
    return [float(v) for v in values]


def save_theta_file(path: str | Path, theta: Sequence[float], **extra) -> Path:
    """Write a TaylorGLO JSON file that `taylorglo:PATH` loads."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"kind": "taylorglo", "theta": [float(v) for v in theta], **extra}, indent=2))
    return p


@register_loss(
    "taylorglo",
    usage="taylorglo:[t0,...,t7] | taylorglo:FILE.json",
    summary="TaylorGLO polynomial loss (docs/method.md), inline or from an `evolve` JSON file",
)
def _make_taylorglo(arg: str | None, spec: str):
    if not arg:
        raise LossSpecError(f"loss spec {spec!r}: expected taylorglo:[t0,...,t7] or taylorglo:FILE.json")
    arg = arg.strip()
    theta = parse_theta_list(arg, spec) if arg.startswith("[") else load_theta_file(arg, spec)
    return TaylorGLOLoss(theta, spec)
