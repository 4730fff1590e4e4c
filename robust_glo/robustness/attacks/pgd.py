"""`pgd`: `torchattacks.PGD` / `PGDL2` (Madry et al. 2018) on cross-entropy.

Step size `alpha` defaults to 2.5 * eps / steps; `restarts` random restarts, an input counting as robust
only if every restart fails.
"""

from __future__ import annotations

import torch

from robust_glo.errors import ConfigError
from robust_glo.robustness.attacks.base import (
    MODEL_DTYPES,
    AttackContext,
    _checked,
    import_torchattacks,
    register_attack,
)


def _pgd_alpha(params: dict, eps: float) -> float:
    return params["alpha"] if params["alpha"] is not None else 2.5 * eps / params["steps"]


def run_pgd(ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int) -> torch.Tensor:
    torchattacks = import_torchattacks()

    kind = torchattacks.PGDL2 if params.get("norm") == "l2" else torchattacks.PGD
    atk = _checked(
        kind(
            ctx.model,
            eps=eps,
            alpha=_pgd_alpha(params, eps),
            steps=params["steps"],
            random_start=params["random_start"],
        ),
        ctx.device,
    )
    restarts = params["restarts"]
    if restarts == 1:
        return atk(x, y)
    adv = x.clone()
    todo = torch.arange(len(y), device=x.device)
    for r in range(restarts):
        attempt = atk(x[todo], y[todo])
        adv[todo] = attempt
        if r == restarts - 1:
            break
        # Only samples that every restart so far failed to break are attacked again.
        todo = todo[ctx.predict(attempt) == y[todo]]
        if len(todo) == 0:
            break
    return adv


def _pgd_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {
        "loss": "ce",
        "steps": params["steps"],
        "alpha": _pgd_alpha(params, eps),
        "alpha_rule": "given" if params["alpha"] is not None else "2.5*eps/steps",
        "random_start": params["random_start"],
        "restarts": params["restarts"],
    }


def _pgd_validate(params: dict) -> None:
    if params["alpha"] is not None and not params["alpha"] > 0:
        raise ConfigError(f"attack 'pgd': alpha must be > 0, got {params['alpha']}")
    if params["restarts"] > 1 and not params["random_start"]:
        raise ConfigError("attack 'pgd': restarts > 1 needs random_start=true (restarts would repeat)")


PGD = register_attack(
    name="pgd",
    torchattacks=True,
    summary="PGD on cross-entropy (torchattacks.PGD): steps, alpha (default 2.5*eps/steps), random_start, restarts",
    kind="gradient",
    defaults={"steps": 10, "alpha": None, "random_start": True, "restarts": 1},
    types={"steps": int, "alpha": float, "random_start": bool, "restarts": int},
    min_classes=2,
    runner=run_pgd,
    budget=_pgd_budget,
    validate=_pgd_validate,
    dtypes=MODEL_DTYPES,  # torchattacks.PGD / PGDL2 keep the dtype of the inputs
)
