"""`square`: torchattacks' Square attack (Andriushchenko et al. 2020), gradient-free, with the reference
AutoAttack budget: 5,000 queries, p_init 0.8, margin loss, no schedule rescaling."""

from __future__ import annotations

import torch

from robust_glo.errors import ConfigError
from robust_glo.robustness.attacks.base import (
    SQUARE_P_INIT,
    SQUARE_QUERIES,
    TORCHATTACKS_DTYPES,
    AttackContext,
    _checked,
    _norm,
    _seeded,
    import_torchattacks,
    register_attack,
)


def run_square(
    ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int
) -> torch.Tensor:
    torchattacks = import_torchattacks()

    atk = torchattacks.Square(
        ctx.model,
        norm=_norm(params),
        eps=eps,
        n_queries=params["n_queries"],
        n_restarts=params["restarts"],
        p_init=params["p_init"],
        loss="margin",
        resc_schedule=False,
        seed=seed,
        verbose=False,
    )
    with torch.no_grad():  # gradient-free: no graph needed
        return _seeded(_checked(atk, ctx.device), seed)(x, y)


def _square_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {
        "loss": "margin",
        "n_queries": params["n_queries"],
        "restarts": params["restarts"],
        "p_init": params["p_init"],
        "resc_schedule": False,
        "implementation": "torchattacks.Square",
    }


def _square_validate(params: dict) -> None:
    if not 0 < params["p_init"] <= 1:
        raise ConfigError(f"attack 'square': p_init must lie in (0, 1], got {params['p_init']}")


SQUARE = register_attack(
    name="square",
    torchattacks=True,
    summary="Square attack, gradient-free (5000 queries, margin loss)",
    kind="gradient-free",
    defaults={"n_queries": SQUARE_QUERIES, "restarts": 1, "p_init": SQUARE_P_INIT},
    types={"n_queries": int, "restarts": int, "p_init": float},
    min_classes=2,
    runner=run_square,
    budget=_square_budget,
    validate=_square_validate,
    dtypes=TORCHATTACKS_DTYPES,
    dtype_reason="torchattacks.Square mixes float32 tensors into its iterates",
)
