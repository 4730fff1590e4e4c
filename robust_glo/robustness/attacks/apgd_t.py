"""`apgd-t`: torchattacks' targeted APGD-DLR over the most likely wrong classes (reference budget: 100
iterations over 9 target classes)."""

from __future__ import annotations

import torch

from robust_glo.robustness.attacks.base import (
    AA_RESTARTS,
    AA_RHO,
    AA_STEPS,
    AA_TARGETS,
    TORCHATTACKS_DTYPES,
    AttackContext,
    _checked,
    _norm,
    _seeded,
    _targets,
    import_torchattacks,
    register_attack,
)


def run_apgd_t(
    ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int
) -> torch.Tensor:
    torchattacks = import_torchattacks()

    # torchattacks.APGDT attacks the n_classes - 1 top wrong classes: pass targets + 1.
    atk = torchattacks.APGDT(
        ctx.model,
        norm=_norm(params),
        eps=eps,
        steps=params["steps"],
        n_restarts=params["restarts"],
        seed=seed,
        eot_iter=1,
        rho=AA_RHO,
        verbose=False,
        n_classes=_targets(params, ctx.n_classes) + 1,
    )
    return _seeded(_checked(atk, ctx.device), seed)(x, y)


def _apgd_t_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {
        "loss": "dlr-targeted",
        "steps": params["steps"],
        "restarts": params["restarts"],
        "rho": AA_RHO,
        "targets": _targets(params, n_classes),
        "implementation": "torchattacks.APGDT",
    }


APGD_T = register_attack(
    name="apgd-t",
    torchattacks=True,
    summary="targeted APGD-DLR over the 9 most likely wrong classes (100 steps); needs >= 4 classes",
    kind="gradient",
    defaults={"steps": AA_STEPS, "restarts": AA_RESTARTS, "targets": AA_TARGETS},
    types={"steps": int, "restarts": int, "targets": int},
    min_classes=4,
    runner=run_apgd_t,
    budget=_apgd_t_budget,
    dtypes=TORCHATTACKS_DTYPES,
    dtype_reason="torchattacks.APGDT mixes float32 tensors into its iterates",
)
