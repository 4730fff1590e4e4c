"""`aa-reference`: the standard AutoAttack ensemble APGD-CE -> APGD-T -> FAB-T -> Square with the budgets
of the reference code (github.com/fra31/auto-attack, `version='standard'`), each attack run on the inputs
the previous ones did not break. torchattacks' own `AutoAttack` class uses 10 iterations, n_classes=10
and a clock seed, so it is not used."""

from __future__ import annotations

from typing import Any

import torch

from robust_glo.robustness.attacks.base import (
    AA_RESTARTS,
    AA_STEPS,
    AA_TARGETS,
    MODEL_DTYPES,
    SQUARE_P_INIT,
    SQUARE_QUERIES,
    AttackContext,
    get_attack_entry,
    register_attack,
)

AA_COMPONENTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("apgd-ce", {"steps": AA_STEPS, "restarts": AA_RESTARTS}),
    ("apgd-t", {"steps": AA_STEPS, "restarts": AA_RESTARTS, "targets": AA_TARGETS}),
    ("fab-t", {"steps": AA_STEPS, "restarts": AA_RESTARTS, "targets": AA_TARGETS}),
    ("square", {"n_queries": SQUARE_QUERIES, "restarts": 1, "p_init": SQUARE_P_INIT}),
)


def run_aa_reference(
    ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int
) -> torch.Tensor:
    adv = x.clone()
    todo = torch.arange(len(y), device=x.device)
    for name, component in AA_COMPONENTS:
        entry = get_attack_entry(name)
        part = {**entry.defaults, **component, "norm": params.get("norm", "linf")}
        attempt = entry.runner(ctx, x[todo], y[todo], eps, part, seed)
        fooled = ctx.predict(attempt) != y[todo]
        adv[todo[fooled]] = attempt[fooled]
        todo = todo[~fooled]
        if len(todo) == 0:
            break
    return adv


def _aa_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {
        "version": "standard (fra31/auto-attack)",
        "cascade": True,
        "components": [
            {"attack": name, **get_attack_entry(name).budget({**get_attack_entry(name).defaults, **c}, eps, n_classes)}
            for name, c in AA_COMPONENTS
        ],
    }


AA_REFERENCE = register_attack(
    name="aa-reference",
    torchattacks=True,
    summary="standard AutoAttack: APGD-CE, APGD-T, FAB-T, Square with reference budgets; needs >= 4 classes",
    kind="ensemble",
    min_classes=4,
    runner=run_aa_reference,
    budget=_aa_budget,
    # The dtypes every component runs in: FAB-T only takes float32.
    dtypes=tuple(d for d in MODEL_DTYPES if all(d in get_attack_entry(n).dtypes for n, _ in AA_COMPONENTS)),
    dtype_reason="its FAB-T component (torchattacks.FAB) casts the inputs to float32",
)
