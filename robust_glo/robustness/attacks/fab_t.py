"""`fab-t`: torchattacks' targeted FAB (multi-targeted) over the most likely wrong classes (reference
budget: 100 iterations over 9 target classes)."""

from __future__ import annotations

import torch

from robust_glo.robustness.attacks.base import (
    AA_RESTARTS,
    AA_STEPS,
    AA_TARGETS,
    AttackContext,
    _checked,
    _norm,
    _seeded,
    _targets,
    import_torchattacks,
    register_attack,
)


def run_fab_t(
    ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int
) -> torch.Tensor:
    torchattacks = import_torchattacks()

    atk = torchattacks.FAB(
        ctx.model,
        norm=_norm(params),
        eps=eps,
        steps=params["steps"],
        n_restarts=params["restarts"],
        seed=seed,
        multi_targeted=True,
        n_classes=_targets(params, ctx.n_classes) + 1,
        verbose=False,
    )
    return _seeded(_checked(atk, ctx.device), seed)(x, y)


def _fab_t_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {
        "steps": params["steps"],
        "restarts": params["restarts"],
        "targets": _targets(params, n_classes),
        "alpha_max": 0.1,
        "eta": 1.05,
        "beta": 0.9,
        "implementation": "torchattacks.FAB(multi_targeted)",
    }


FAB_T = register_attack(
    name="fab-t",
    torchattacks=True,
    summary="targeted FAB over the 9 most likely wrong classes (100 steps)",
    kind="gradient",
    defaults={"steps": AA_STEPS, "restarts": AA_RESTARTS, "targets": AA_TARGETS},
    types={"steps": int, "restarts": int, "targets": int},
    min_classes=2,
    runner=run_fab_t,
    budget=_fab_t_budget,
    dtypes=(torch.float32,),
    dtype_reason="torchattacks.FAB casts the inputs to float32",
)
