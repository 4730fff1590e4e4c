"""`fgsm`: x + eps * sign(grad_x CE), clipped to [0, 1] (Goodfellow et al. 2015).

Identical to `torchattacks.FGSM`, but computed from the clean pass's gradient so that every eps shares
one backward pass. L-infinity only.

`fgsm:loss=train` is the TaylorGLO paper's robustness protocol (Gonzalez & Miikkulainen 2020): the signed
gradient of the network's own training loss instead of cross-entropy. A loss that flattens its own
gradient looks robust under it; the suite reports it next to the cross-entropy/AutoAttack worst case to
show how much of such a gain survives the stricter protocol. torchattacks' FGSM hard-codes cross-entropy,
hence the gradient computed here (`AttackContext.train_grad_sign`).
"""

from __future__ import annotations

import torch

from robust_glo.errors import ConfigError
from robust_glo.robustness.attacks.base import MODEL_DTYPES, AttackContext, register_attack
from robust_glo.robustness.threat import ThreatModel


def run_fgsm(ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int) -> torch.Tensor:
    # x + eps * sign(grad), the same operations as torchattacks.FGSM, in the dtype of x (the model's).
    sign = ctx.train_grad_sign(x, y) if params["loss"] == "train" else ctx.clean_grad_sign(x, y)
    return torch.add(x, sign, alpha=eps).clamp_(min=0, max=1).detach()


def _fgsm_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {"loss": params["loss"], "steps": 1, "step_size": eps}


def _fgsm_validate(params: dict) -> None:
    if params["loss"] not in LOSSES:
        raise ConfigError(f"attack 'fgsm': loss must be one of {', '.join(LOSSES)}, got {params['loss']!r}")


LOSSES = ("ce", "train")  # cross-entropy, or the network's own training loss (the paper's protocol)


FGSM = register_attack(
    name="fgsm",
    summary="FGSM, one signed-gradient step on cross-entropy",
    kind="gradient",
    defaults={"loss": "ce"},
    types={"loss": str},
    validate=_fgsm_validate,
    runner=run_fgsm,
    budget=_fgsm_budget,
    uses_clean_grad=True,
    threats=(ThreatModel.LINF,),
    dtypes=MODEL_DTYPES,
)
