"""Attacks by name (docs/attacks.md): small builders around torchattacks, all in the Linf threat model.

An attack spec is a string `name` or `name:key=value:key=value` (for example `pgd:steps=40:restarts=3`),
or an `AttackSpec`. Every attack runs on logits with its own loss (cross-entropy, DLR or margin), never
the network's training loss. Budgets follow the references:

- `fgsm`: x + eps * sign(grad_x CE), clipped to [0, 1] (Goodfellow et al. 2015; identical to
  `torchattacks.FGSM`, but computed from the clean pass's gradient so every eps shares one backward).
- `pgd`: `torchattacks.PGD` (Madry et al. 2018) on CE; step size `alpha` defaults to 2.5 * eps / steps;
  `restarts` random restarts, a sample counting as robust only if every restart fails.
- `apgd-ce`, `apgd-dlr`, `apgd-t`, `fab-t`, `square`: torchattacks' ports of Croce & Hein (2020), with the
  budgets of the reference AutoAttack code (github.com/fra31/auto-attack, `version='standard'`): APGD 100
  iterations, 1 restart, rho 0.75; APGD-T and FAB-T 100 iterations over the 9 most likely wrong classes;
  Square 5,000 queries, p_init 0.8, margin loss, no schedule rescaling.
- `aa-reference`: the standard AutoAttack ensemble APGD-CE -> APGD-T -> FAB-T -> Square with exactly those
  budgets, each attack run on the samples the previous ones did not break (torchattacks' own `AutoAttack`
  class uses 10 iterations, n_classes=10 and a clock seed, so it is not used).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robust_glo.errors import ConfigError

NORM = "Linf"

# Reference AutoAttack (fra31/auto-attack, version="standard", Linf) budgets.
AA_STEPS = 100
AA_RESTARTS = 1
AA_TARGETS = 9
AA_RHO = 0.75
SQUARE_QUERIES = 5000
SQUARE_P_INIT = 0.8


@dataclass
class AttackContext:
    """What a runner needs besides the batch.

    `model` maps inputs `(B, C, H, W)` in [0, 1] to logits `(B, n_classes)` and is in eval mode;
    `clean_grad` is grad_x of the summed CE at the clean inputs, `(B, C, H, W)`, for the batch given.
    """

    model: nn.Module
    n_classes: int
    device: torch.device
    clean_grad: torch.Tensor | None = None
    _grad_sign: torch.Tensor | None = field(default=None, repr=False)

    def clean_grad_sign(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """sign(grad_x CE) at the clean inputs `(B, C, H, W)`, computed once per batch for every eps."""
        if self._grad_sign is None:
            grad = self.clean_grad if self.clean_grad is not None else clean_gradient(self.model, x, y)[1]
            self._grad_sign = grad.sign()
        return self._grad_sign

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted labels `(B,)` for inputs `(B, C, H, W)`."""
        with torch.no_grad():
            return self.model(x).argmax(1)


Runner = Callable[[AttackContext, torch.Tensor, torch.Tensor, float, dict[str, Any], int], torch.Tensor]


@dataclass(frozen=True)
class AttackEntry:
    """A registered attack family: defaults, parameter types, and the runner that crafts inputs."""

    name: str
    summary: str
    kind: str  # "gradient", "gradient-free" or "ensemble"
    defaults: dict[str, Any]
    types: dict[str, type]
    min_classes: int
    runner: Runner
    budget: Callable[[dict[str, Any], float, int], dict[str, Any]]  # (params, eps, n_classes) -> record
    uses_clean_grad: bool = False  # the runner reads AttackContext.clean_grad (the clean pass's gradient)


@dataclass(frozen=True)
class AttackSpec:
    """An attack name with the parameters the user set (the rest take the entry's defaults)."""

    name: str
    params: tuple[tuple[str, Any], ...] = field(default=())

    @classmethod
    def create(cls, name: str, **params: Any) -> AttackSpec:
        entry = get_attack_entry(name)
        checked = {key: _coerce(entry, key, value) for key, value in params.items()}
        spec = cls(name, tuple(sorted(checked.items())))
        _validate(entry, {**spec.resolved(), **{k: v for k, v in spec.params if k in SCHEDULE_TYPES}})
        return spec

    @property
    def entry(self) -> AttackEntry:
        return get_attack_entry(self.name)

    @property
    def kind(self) -> str:
        return self.entry.kind

    @property
    def label(self) -> str:
        """The canonical spec string, used as the `attack` column of results."""
        return ":".join([self.name] + [f"{k}={_format(v)}" for k, v in self.params])

    def resolved(self) -> dict[str, Any]:
        """The attack's own parameters (defaults filled in) and its norm, without the schedule options."""
        return {**self.entry.defaults, "norm": "linf", **{k: v for k, v in self.params if k not in SCHEDULE_TYPES}}

    @property
    def norm(self) -> str:
        """ "linf" or "l2"."""
        return str(dict(self.params).get("norm", "linf"))

    @property
    def norm_name(self) -> str:
        """ "Linf" or "L2", as results record it."""
        return NORMS[self.norm]

    @property
    def cascade(self) -> bool:
        return bool(dict(self.params).get("cascade", False))

    @property
    def min_eps(self) -> float:
        return float(dict(self.params).get("min_eps", 0.0))

    def runs_at(self, eps: float) -> bool:
        """Whether the attack runs at budget `eps` (> 0); eps = 0 rows exist for every attack."""
        return eps == 0.0 or eps >= self.min_eps

    def budget(self, eps: float, n_classes: int) -> dict[str, Any]:
        """Everything that was run at `eps`, as recorded in the `params` column."""
        return self.entry.budget(self.resolved(), eps, n_classes)

    def __str__(self) -> str:
        return self.label


_ATTACKS: dict[str, AttackEntry] = {}


def register_attack(entry: AttackEntry) -> AttackEntry:
    if entry.name in _ATTACKS or entry.name in RESERVED_LABELS:
        raise ValueError(f"attack {entry.name!r} is already registered")
    _ATTACKS[entry.name] = entry
    return entry


WORST, WORST_L2 = "worst", "worst:l2"  # the per-input worst case over the L-infinity / the L2 attacks
RESERVED_LABELS = ("clean", WORST, WORST_L2)


def list_attacks() -> dict[str, str]:
    """Attack name -> one-line summary."""
    return {name: entry.summary for name, entry in _ATTACKS.items()}


def get_attack_entry(name: str) -> AttackEntry:
    if name not in _ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; valid: {', '.join(_ATTACKS)}")
    return _ATTACKS[name]


def parse_attack(spec: str | AttackSpec) -> AttackSpec:
    """`"pgd:steps=40:restarts=3"` -> `AttackSpec("pgd", (("restarts", 3), ("steps", 40)))`."""
    if isinstance(spec, AttackSpec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"attack spec {spec!r} is empty; valid attacks: {', '.join(_ATTACKS)}")
    name, *pairs = [part.strip() for part in spec.strip().split(":")]
    entry = get_attack_entry(name)
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"attack spec {spec!r}: {pair!r} is not key=value; {name} takes {_param_help(entry)}")
        params[key.strip()] = value.strip()
    return AttackSpec.create(name, **params)


def resolve_attacks(attacks: str | AttackSpec | list | tuple) -> list[AttackSpec]:
    """A list of specs (or one comma-separated string) -> distinct `AttackSpec`s, in the order given."""
    if isinstance(attacks, (str, AttackSpec)):
        attacks = [a for a in str(attacks).split(",")] if isinstance(attacks, str) else [attacks]
    specs = [parse_attack(a) for a in attacks]
    if not specs:
        raise ConfigError(f"no attack given; valid attacks: {', '.join(_ATTACKS)}")
    labels = [s.label for s in specs]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ConfigError(f"attack {duplicates[0]!r} is listed twice")
    return specs


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _param_help(entry: AttackEntry) -> str:
    if not entry.types:
        return "no parameters"
    return ", ".join(f"{k} ({t.__name__}, default {_format(entry.defaults[k])})" for k, t in entry.types.items())


# Options every attack takes, which decide where it runs rather than how:
# - cascade: run only on the inputs that every attack listed before it (at the same eps) left correct, as
#   AutoAttack does; its row is then the per-input worst case of those attacks and itself.
# - min_eps: run only at the budgets eps >= min_eps (the expensive attacks where the cheap ones leave few
#   inputs standing).
SCHEDULE_TYPES: dict[str, type] = {"cascade": bool, "min_eps": float}
SCHEDULE_DEFAULTS: dict[str, Any] = {"cascade": False, "min_eps": 0.0}
# The threat model: `norm=l2` attacks an L2 ball of radius eps (the budgets of a study's `eps_l2`), the
# default `linf` an L-infinity ball. Every attack but FGSM takes it.
NORMS = {"linf": "Linf", "l2": "L2"}


def _coerce(entry: AttackEntry, key: str, value: Any) -> Any:
    types = {**entry.types, **SCHEDULE_TYPES, "norm": str}
    if key not in types:
        raise ConfigError(
            f"attack {entry.name!r} has no parameter {key!r}; it takes {_param_help(entry)}, "
            "cascade (bool), min_eps (float), norm (linf or l2)"
        )
    kind = types[key]
    if kind is str:
        text = str(value).strip().lower()
        if text not in NORMS:
            raise ConfigError(f"attack {entry.name!r}: norm={value} is not valid; valid: {', '.join(NORMS)}")
        if text == "l2" and entry.name == "fgsm":
            raise ConfigError("attack 'fgsm' is L-infinity only; use pgd:norm=l2 for an L2 attack")
        return text
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        out = float(value)
        if not math.isfinite(out):
            raise ValueError
        return out
    except (TypeError, ValueError):
        raise ConfigError(f"attack {entry.name!r}: {key}={value} is not a valid {kind.__name__}") from None


def _validate(entry: AttackEntry, params: dict[str, Any]) -> None:
    high = 1.0 if params.get("norm", "linf") == "linf" else 100.0  # L2 radii go beyond 1
    if not 0.0 <= params.get("min_eps", 0.0) <= high:
        raise ConfigError(f"attack {entry.name!r}: min_eps must lie in [0, {high:g}], got {params['min_eps']}")
    for key in ("steps", "restarts", "n_queries", "targets"):
        if key in params and params[key] < 1:
            raise ConfigError(f"attack {entry.name!r}: {key} must be >= 1, got {params[key]}")
    if entry.name == "pgd":
        if params["alpha"] is not None and not params["alpha"] > 0:
            raise ConfigError(f"attack 'pgd': alpha must be > 0, got {params['alpha']}")
        if params["restarts"] > 1 and not params["random_start"]:
            raise ConfigError("attack 'pgd': restarts > 1 needs random_start=true (restarts would repeat)")
    if "p_init" in params and not 0 < params["p_init"] <= 1:
        raise ConfigError(f"attack {entry.name!r}: p_init must lie in (0, 1], got {params['p_init']}")


# --------------------------------------------------------------------------------------------- runners


def _seeded(atk: Any, seed: int) -> Any:
    # torchattacks' APGD/APGDT/FAB/Square reseed the global RNG from `seed` on every call; the caller
    # runs inside torch.random.fork_rng, so this stays local to the evaluation.
    atk.seed = seed
    return atk


def _checked(atk: Any, device: torch.device) -> Any:
    """Pin torchattacks' hidden settings: no normalization of its own, eval mode, our device."""
    atk.set_device(device)
    if atk.normalization_used is not None or atk._normalization_applied is not None:
        raise ConfigError(
            f"torchattacks would normalize inputs for {atk.attack}; models must own their "
            "normalization (docs/attacks.md)"
        )
    atk.set_model_training_mode(model_training=False, batchnorm_training=False, dropout_training=False)
    return atk


def clean_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, check: Callable[[torch.Tensor], None] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits `(B, K)` and grad_x of the summed cross-entropy `(B, C, H, W)` at clean inputs `x`.

    Summed (not averaged) so that each sample's gradient does not depend on the batch size. `check`,
    when given, sees the logits before the loss is computed (and may raise).
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        if check is not None:
            check(logits)
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return logits.detach(), grad.detach()


def run_fgsm(ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int) -> torch.Tensor:
    # x + eps * sign(grad), the same float32 operations as torchattacks.FGSM.
    return torch.add(x, ctx.clean_grad_sign(x, y), alpha=eps).clamp_(min=0, max=1).detach()


def _pgd_alpha(params: dict, eps: float) -> float:
    return params["alpha"] if params["alpha"] is not None else 2.5 * eps / params["steps"]


def run_pgd(ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int) -> torch.Tensor:
    import torchattacks

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


def _apgd(loss: str) -> Runner:
    def run(ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int) -> torch.Tensor:
        import torchattacks

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


def _norm(params: dict) -> str:
    """torchattacks' name of the threat model ("Linf" or "L2")."""
    return NORMS[params.get("norm", "linf")]


def _targets(params: dict, n_classes: int) -> int:
    return min(params["targets"], n_classes - 1)


def run_apgd_t(
    ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int
) -> torch.Tensor:
    import torchattacks

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


def run_fab_t(
    ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int
) -> torch.Tensor:
    import torchattacks

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


def run_square(
    ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, eps: float, params: dict, seed: int
) -> torch.Tensor:
    import torchattacks

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
        entry = _ATTACKS[name]
        part = {**entry.defaults, **component, "norm": params.get("norm", "linf")}
        attempt = entry.runner(ctx, x[todo], y[todo], eps, part, seed)
        fooled = ctx.predict(attempt) != y[todo]
        adv[todo[fooled]] = attempt[fooled]
        todo = todo[~fooled]
        if len(todo) == 0:
            break
    return adv


# --------------------------------------------------------------------------------------------- budgets


def _fgsm_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {"loss": "ce", "steps": 1, "step_size": eps}


def _pgd_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {
        "loss": "ce",
        "steps": params["steps"],
        "alpha": _pgd_alpha(params, eps),
        "alpha_rule": "given" if params["alpha"] is not None else "2.5*eps/steps",
        "random_start": params["random_start"],
        "restarts": params["restarts"],
    }


def _apgd_budget(loss: str) -> Callable[[dict, float, int], dict]:
    def budget(params: dict, eps: float, n_classes: int) -> dict:
        return {
            "loss": loss,
            "steps": params["steps"],
            "restarts": params["restarts"],
            "rho": AA_RHO,
            "implementation": "torchattacks.APGD",
        }

    return budget


def _apgd_t_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {
        "loss": "dlr-targeted",
        "steps": params["steps"],
        "restarts": params["restarts"],
        "rho": AA_RHO,
        "targets": _targets(params, n_classes),
        "implementation": "torchattacks.APGDT",
    }


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


def _square_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {
        "loss": "margin",
        "n_queries": params["n_queries"],
        "restarts": params["restarts"],
        "p_init": params["p_init"],
        "resc_schedule": False,
        "implementation": "torchattacks.Square",
    }


def _aa_budget(params: dict, eps: float, n_classes: int) -> dict:
    return {
        "version": "standard (fra31/auto-attack)",
        "cascade": True,
        "components": [
            {"attack": name, **_ATTACKS[name].budget({**_ATTACKS[name].defaults, **c}, eps, n_classes)}
            for name, c in AA_COMPONENTS
        ],
    }


register_attack(
    AttackEntry(
        "fgsm",
        "FGSM, one signed-gradient step on cross-entropy",
        "gradient",
        {},
        {},
        2,
        run_fgsm,
        _fgsm_budget,
        uses_clean_grad=True,
    )
)
register_attack(
    AttackEntry(
        "pgd",
        "PGD on cross-entropy (torchattacks.PGD): steps, alpha (default 2.5*eps/steps), random_start, restarts",
        "gradient",
        {"steps": 10, "alpha": None, "random_start": True, "restarts": 1},
        {"steps": int, "alpha": float, "random_start": bool, "restarts": int},
        2,
        run_pgd,
        _pgd_budget,
    )
)
register_attack(
    AttackEntry(
        "apgd-ce",
        "APGD on cross-entropy (100 steps, 1 restart: AutoAttack reference)",
        "gradient",
        {"steps": AA_STEPS, "restarts": AA_RESTARTS},
        {"steps": int, "restarts": int},
        2,
        _apgd("ce"),
        _apgd_budget("ce"),
    )
)
register_attack(
    AttackEntry(
        "apgd-dlr",
        "APGD on the DLR margin loss (100 steps, 1 restart); needs >= 3 classes",
        "gradient",
        {"steps": AA_STEPS, "restarts": AA_RESTARTS},
        {"steps": int, "restarts": int},
        3,
        _apgd("dlr"),
        _apgd_budget("dlr"),
    )
)
register_attack(
    AttackEntry(
        "apgd-t",
        "targeted APGD-DLR over the 9 most likely wrong classes (100 steps); needs >= 4 classes",
        "gradient",
        {"steps": AA_STEPS, "restarts": AA_RESTARTS, "targets": AA_TARGETS},
        {"steps": int, "restarts": int, "targets": int},
        4,
        run_apgd_t,
        _apgd_t_budget,
    )
)
register_attack(
    AttackEntry(
        "fab-t",
        "targeted FAB over the 9 most likely wrong classes (100 steps)",
        "gradient",
        {"steps": AA_STEPS, "restarts": AA_RESTARTS, "targets": AA_TARGETS},
        {"steps": int, "restarts": int, "targets": int},
        2,
        run_fab_t,
        _fab_t_budget,
    )
)
register_attack(
    AttackEntry(
        "square",
        "Square attack, gradient-free (5000 queries, margin loss)",
        "gradient-free",
        {"n_queries": SQUARE_QUERIES, "restarts": 1, "p_init": SQUARE_P_INIT},
        {"n_queries": int, "restarts": int, "p_init": float},
        2,
        run_square,
        _square_budget,
    )
)
register_attack(
    AttackEntry(
        "aa-reference",
        "standard AutoAttack: APGD-CE, APGD-T, FAB-T, Square with reference budgets; needs >= 4 classes",
        "ensemble",
        {},
        {},
        4,
        run_aa_reference,
        _aa_budget,
    )
)
