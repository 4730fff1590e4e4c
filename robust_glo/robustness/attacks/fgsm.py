"""`fgsm`: x + eps * sign(grad_x CE), clipped to [0, 1] (Goodfellow et al. 2015).

Identical to `torchattacks.FGSM`, but computed from the clean pass's gradient so that every eps shares
one backward pass. L-infinity only.
"""

from __future__ import annotations

import torch

from robust_glo.robustness.attacks.base import MODEL_DTYPES, AttackContext, register_attack
from robust_glo.robustness.threat import ThreatModel


def run_fgsm(ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int) -> torch.Tensor:
    # x + eps * sign(grad), the same operations as torchattacks.FGSM, in the dtype of x (the model's).
    return torch.add(x, ctx.clean_grad_sign(x, y), alpha=eps).clamp_(min=0, max=1).detach()


def _fgsm_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {"loss": "ce", "steps": 1, "step_size": eps}


FGSM = register_attack(
    name="fgsm",
    summary="FGSM, one signed-gradient step on cross-entropy",
    kind="gradient",
    runner=run_fgsm,
    budget=_fgsm_budget,
    uses_clean_grad=True,
    threats=(ThreatModel.LINF,),
    dtypes=MODEL_DTYPES,
)
