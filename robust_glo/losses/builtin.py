"""Baseline losses: cross-entropy, label smoothing, focal, Poly-1 and Baikal.

All take logits `(N, C)` and integer targets `(N,)` and return the batch mean as a scalar. They are
computed from `log_softmax` in float32, so they stay finite where a naive softmax would underflow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robust_glo.errors import LossSpecError
from robust_glo.losses.base import parse_float_arg, register_loss


def _target_log_prob(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return `(log_softmax (N, C), log p_target (N,))`, in float32."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    return log_probs, log_probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)


class CrossEntropy:
    def __init__(self, label_smoothing: float = 0.0, spec: str = "ce"):
        self.label_smoothing = label_smoothing
        self.spec = spec

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets.long(), label_smoothing=self.label_smoothing)

    def from_probs(self, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The same loss on probabilities `(N, C)` taken as free variables (for learning-rule analysis)."""
        n = probs.shape[1]
        x = F.one_hot(targets.long(), n).to(probs.dtype)
        soft = (1.0 - self.label_smoothing) * x + self.label_smoothing / n
        return -(soft * probs.log()).sum(dim=1).mean()

    def __repr__(self) -> str:
        return f"CrossEntropy(label_smoothing={self.label_smoothing})"


class FocalLoss:
    """Lin et al.: `-(1 - p_t)^gamma log p_t`."""

    def __init__(self, gamma: float, spec: str):
        self.gamma = gamma
        self.spec = spec

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _, log_pt = _target_log_prob(logits, targets)
        return (-(1.0 - log_pt.exp()).pow(self.gamma) * log_pt).mean()

    def from_probs(self, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        pt = probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
        return (-(1.0 - pt).pow(self.gamma) * pt.log()).mean()

    def __repr__(self) -> str:
        return f"FocalLoss(gamma={self.gamma})"


class Poly1Loss:
    """Leng et al.: `CE + epsilon (1 - p_t)`."""

    def __init__(self, epsilon: float, spec: str):
        self.epsilon = epsilon
        self.spec = spec

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _, log_pt = _target_log_prob(logits, targets)
        return (-log_pt + self.epsilon * (1.0 - log_pt.exp())).mean()

    def from_probs(self, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        pt = probs.gather(1, targets.long().unsqueeze(1)).squeeze(1)
        return (-pt.log() + self.epsilon * (1.0 - pt)).mean()

    def __repr__(self) -> str:
        return f"Poly1Loss(epsilon={self.epsilon})"


class BaikalLoss:
    """Gonzalez & Miikkulainen's GLO loss: `-(1/n) sum_c (log y_c - x_c / y_c)` (docs/method.md)."""

    spec = "baikal"

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs, log_pt = _target_log_prob(logits, targets)
        n = logits.shape[1]
        # x_c / y_c is non-zero only for the target class: 1 / y_t = exp(-log y_t).
        per_sample = -(log_probs.sum(dim=1) - torch.exp(-log_pt)) / n
        return per_sample.mean()

    def from_probs(self, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = probs.shape[1]
        x = F.one_hot(targets.long(), n).to(probs.dtype)
        return (-(probs.log() - x / probs).sum(dim=1) / n).mean()

    def __repr__(self) -> str:
        return "BaikalLoss()"


@register_loss("ce", usage="ce", summary="cross-entropy")
def _make_ce(arg: str | None, spec: str):
    if arg:
        raise LossSpecError(f"loss spec {spec!r}: 'ce' takes no argument (use label_smoothing:ALPHA)")
    return CrossEntropy(0.0, spec)


@register_loss(
    "label_smoothing",
    usage="label_smoothing:ALPHA",
    summary="cross-entropy with label smoothing alpha in [0, 1] (default 0.1)",
)
def _make_ls(arg: str | None, spec: str):
    return CrossEntropy(parse_float_arg(arg, spec, default=0.1, what="alpha", low=0.0, high=1.0), spec)


@register_loss("focal", usage="focal:GAMMA", summary="focal loss with gamma >= 0 (default 2)")
def _make_focal(arg: str | None, spec: str):
    return FocalLoss(parse_float_arg(arg, spec, default=2.0, what="gamma", low=0.0), spec)


@register_loss("poly1", usage="poly1:EPSILON", summary="Poly-1 loss, CE + epsilon (1 - p_t) (default 1)")
def _make_poly1(arg: str | None, spec: str):
    return Poly1Loss(parse_float_arg(arg, spec, default=1.0, what="epsilon"), spec)


@register_loss("baikal", usage="baikal", summary="Baikal loss -(1/n) sum (log y - x/y)")
def _make_baikal(arg: str | None, spec: str):
    if arg:
        raise LossSpecError(f"loss spec {spec!r}: 'baikal' takes no argument")
    return BaikalLoss()
