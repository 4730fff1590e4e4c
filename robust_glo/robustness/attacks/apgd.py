"""`apgd-ce` and `apgd-dlr`: torchattacks' APGD (Croce & Hein 2020) on cross-entropy / the DLR margin
loss, with the reference AutoAttack budget: 100 iterations, 1 restart, rho 0.75."""

from __future__ import annotations

import torch

from robust_glo.robustness.attacks.base import (
    AA_RESTARTS,
    AA_RHO,
    AA_STEPS,
    TORCHATTACKS_DTYPES,
    AttackContext,
    Budget,
    Runner,
    _checked,
    _norm,
    _seeded,
    import_torchattacks,
    register_attack,
)


def _apgd(loss: str) -> Runner:
    def run(ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int) -> torch.Tensor:
        torchattacks = import_torchattacks()

        atk = torchattacks.APGD(
            ctx.model,
            norm=_norm(params),
            eps=eps,
            steps=params["steps"],
            n_restarts=params["restarts"],
            seed=seed,
            loss=loss,
            eot_iter=1,
            rho=AA_RHO,
            verbose=False,
        )
        return _seeded(_checked(atk, ctx.device), seed)(x, y)

    return run


def _apgd_budget(loss: str) -> Budget:
    def budget(params: dict, eps: float, n_classes: int) -> dict:
        return {
            "loss": loss,
            "steps": params["steps"],
            "restarts": params["restarts"],
            "rho": AA_RHO,
            "implementation": "torchattacks.APGD",
        }

    return budget


# torchattacks.APGD adds float32 tensors (its random start, step sizes) to the inputs, which promotes a
# float16 or bfloat16 iterate to float32; float64 stays float64.
_WHY = "torchattacks.APGD mixes float32 tensors into its iterates"

run_apgd_ce = _apgd("ce")
run_apgd_dlr = _apgd("dlr")

APGD_CE = register_attack(
    name="apgd-ce",
    torchattacks=True,
    summary="APGD on cross-entropy (100 steps, 1 restart: AutoAttack reference)",
    kind="gradient",
    defaults={"steps": AA_STEPS, "restarts": AA_RESTARTS},
    types={"steps": int, "restarts": int},
    min_classes=2,
    runner=run_apgd_ce,
    budget=_apgd_budget("ce"),
    dtypes=TORCHATTACKS_DTYPES,
    dtype_reason=_WHY,
)
APGD_DLR = register_attack(
    name="apgd-dlr",
    torchattacks=True,
    summary="APGD on the DLR margin loss (100 steps, 1 restart); needs >= 3 classes",
    kind="gradient",
    defaults={"steps": AA_STEPS, "restarts": AA_RESTARTS},
    types={"steps": int, "restarts": int},
    min_classes=3,
    runner=run_apgd_dlr,
    budget=_apgd_budget("dlr"),
    dtypes=TORCHATTACKS_DTYPES,
    dtype_reason=_WHY,
)
