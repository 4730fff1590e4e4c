"""What every attack family shares: the runner's context, registry entries, typed specs and the registry.

An attack spec is a string `name` or `name:key=value:key=value` (for example `pgd:steps=40:restarts=3`),
or an `AttackSpec`. Specs are parsed once (`parse_attack`, `resolve_attacks`) into frozen `AttackSpec`
values; code that reads stored results turns their `attack` labels back into specs with `spec_of_label`
instead of matching strings.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robust_glo.errors import ConfigError, MissingDependencyError
from robust_glo.robustness.threat import ThreatModel
from robust_glo.utils.parsing import MAX_L2, is_sequence, show, split_list

NORM = "Linf"  # the norm column of the rows that have no threat model of their own ("clean")

# Reference AutoAttack (fra31/auto-attack, version="standard") budgets, the same for Linf and L2.
AA_STEPS = 100
AA_RESTARTS = 1
AA_TARGETS = 9
AA_RHO = 0.75
SQUARE_QUERIES = 5000
SQUARE_P_INIT = 0.8

WORST, WORST_L2 = ThreatModel.LINF.worst_label, ThreatModel.L2.worst_label  # per-input worst-case rows
RESERVED_LABELS = ("clean", WORST, WORST_L2)

# Options every attack takes, which decide where it runs rather than how:
# - cascade: run only on the inputs that every attack listed before it (at the same eps) left correct, as
#   AutoAttack does; its row is then the per-input worst case of those attacks and itself.
# - min_eps: run only at the budgets eps >= min_eps (the expensive attacks where the cheap ones leave few
#   inputs standing).
SCHEDULE_TYPES: dict[str, type] = {"cascade": bool, "min_eps": float}
SCHEDULE_DEFAULTS: dict[str, Any] = {"cascade": False, "min_eps": 0.0}
# The threat model: `norm=l2` attacks an L2 ball of radius eps (the budgets of a study's `eps_l2`), the
# default `linf` an L-infinity ball.
NORMS = {t.value: t.display for t in ThreatModel}
BOTH_THREATS = (ThreatModel.LINF, ThreatModel.L2)
# The model dtypes the harness attacks in: a model is attacked in its own parameter dtype. An attack family
# lists those it can run in (`AttackEntry.dtypes`); the others are refused before anything runs.
MODEL_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
TORCHATTACKS_DTYPES = (torch.float64, torch.float32)  # torchattacks mixes float32 tensors into its iterates
_THREAT_WORDS = {ThreatModel.LINF: "L-infinity", ThreatModel.L2: "L2"}


@dataclass
class AttackContext:
    """What a runner needs besides the batch.

    `model` maps inputs `(B, C, H, W)` in [0, 1] to logits `(B, n_classes)` and is in eval mode;
    `clean_grad` is grad_x of the summed CE at the clean inputs, `(B, C, H, W)`, for the batch given;
    `train_loss` is the loss the network was trained with, `loss(logits (B, K), targets (B,)) -> scalar`
    (None when unknown), for the attacks that follow the TaylorGLO paper's protocol (`fgsm:loss=train`).
    """

    model: nn.Module
    n_classes: int
    device: torch.device
    clean_grad: torch.Tensor | None = None
    train_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    _grad_sign: torch.Tensor | None = field(default=None, repr=False)
    _train_sign: torch.Tensor | None = field(default=None, repr=False)

    def clean_grad_sign(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """sign(grad_x CE) at the clean inputs `(B, C, H, W)`, computed once per batch for every eps."""
        if self._grad_sign is None:
            grad = self.clean_grad if self.clean_grad is not None else clean_gradient(self.model, x, y)[1]
            self._grad_sign = grad.sign()
        return self._grad_sign

    def train_grad_sign(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """sign(grad_x of the network's training loss) at the clean inputs `(B, C, H, W)`, once per batch.
        `ConfigError` when the context has no training loss."""
        if self.train_loss is None:
            raise ConfigError(
                "attack 'fgsm:loss=train' needs the network's training loss: it is known to robust-glo benchmark "
                "and robust-glo evaluate; from Python pass train_loss= to evaluate_model / run_evaluation"
            )
        if self._train_sign is None:
            xg = x.detach().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(self.train_loss(self.model(xg), y), xg)
            self._train_sign = grad.detach().sign()
        return self._train_sign

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted labels `(B,)` for inputs `(B, C, H, W)`."""
        with torch.no_grad():
            return self.model(x).argmax(1)


Runner = Callable[[AttackContext, torch.Tensor, torch.Tensor, float, dict[str, Any], int], torch.Tensor]
Budget = Callable[[dict[str, Any], float, int], dict[str, Any]]  # (params, eps, n_classes) -> record


@dataclass(frozen=True)
class AttackEntry:
    """A registered attack family: defaults, parameter types, and the runner that crafts inputs.

    `threats`: the threat models it takes (`norm=`); `validate(params)`, when given, sees the resolved
    parameters (with the schedule options) of every spec and raises `ConfigError` for bad combinations.
    """

    name: str
    summary: str
    kind: str  # "gradient", "gradient-free" or "ensemble"
    defaults: dict[str, Any]
    types: dict[str, type]
    min_classes: int
    runner: Runner
    budget: Budget
    uses_clean_grad: bool = False  # the runner reads AttackContext.clean_grad (the clean pass's gradient)
    threats: tuple[ThreatModel, ...] = BOTH_THREATS
    validate: Callable[[dict[str, Any]], None] | None = None
    # The model dtypes the runner works in (see MODEL_DTYPES), and why not the others, for the refusal.
    dtypes: tuple[torch.dtype, ...] = TORCHATTACKS_DTYPES
    dtype_reason: str = "its registration lists no others (AttackEntry.dtypes)"
    # The runner crafts through torchattacks (not a dependency of the wheel: see TORCHATTACKS_INSTALL), so a
    # missing torchattacks is refused before any work (`require_torchattacks`).
    torchattacks: bool = False


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
    def family(self) -> str:
        """The registered name of the attack family ("pgd", "apgd-t", "aa-reference", ...)."""
        return self.name

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
    def threat(self) -> ThreatModel:
        return ThreatModel(dict(self.params).get("norm", "linf"))

    @property
    def norm(self) -> str:
        """ "linf" or "l2" (the value of `threat`)."""
        return self.threat.value

    @property
    def norm_name(self) -> str:
        """ "Linf" or "L2", as results record it."""
        return self.threat.display

    @property
    def cascade(self) -> bool:
        return bool(dict(self.params).get("cascade", False))

    @property
    def min_eps(self) -> float:
        return float(dict(self.params).get("min_eps", 0.0))

    @property
    def steps(self) -> int | None:
        """Iterations per restart, where the family has them (None otherwise)."""
        return self.resolved().get("steps")

    @property
    def restarts(self) -> int | None:
        return self.resolved().get("restarts")

    @property
    def targets(self) -> int | None:
        """Target classes as given (the run uses at most n_classes - 1), where the family is targeted."""
        return self.resolved().get("targets")

    @property
    def n_queries(self) -> int | None:
        """Model queries, where the family is query-based (Square)."""
        return self.resolved().get("n_queries")

    def runs_at(self, eps: float) -> bool:
        """Whether the attack runs at budget `eps` (> 0); eps = 0 rows exist for every attack."""
        return eps == 0.0 or eps >= self.min_eps

    def budget(self, eps: float, n_classes: int) -> dict[str, Any]:
        """Everything that was run at `eps`, as recorded in the `params` column."""
        return self.entry.budget(self.resolved(), eps, n_classes)

    def check_dtype(self, dtype: torch.dtype) -> None:
        """Refuse, in one line naming it, a model dtype this attack cannot run in."""
        entry = self.entry
        if dtype in entry.dtypes:
            return
        everywhere = [n for n, e in _ATTACKS.items() if set(MODEL_DTYPES) <= set(e.dtypes)]
        raise ConfigError(
            f"attack {self.label!r} cannot attack a {dtype_name(dtype)} model: {entry.dtype_reason}; it runs in "
            f"{dtype_names(entry.dtypes)}: cast the model (e.g. model.float()), or use "
            f"{' or '.join(everywhere)}, which run in {dtype_names(MODEL_DTYPES)}"
        )

    def __str__(self) -> str:
        return self.label


_ATTACKS: dict[str, AttackEntry] = {}


def register_attack(entry: AttackEntry | None = None, /, **fields: Any) -> AttackEntry:
    """Register an attack family: `register_attack(name=..., summary=..., kind=..., defaults=...,
    types=..., min_classes=..., runner=..., budget=...)` (the `AttackEntry` fields as keywords; `kind`
    "gradient", `defaults`/`types` empty and `min_classes` 2 unless given), or `register_attack(entry)`."""
    if entry is None:
        fields = {"kind": "gradient", "defaults": {}, "types": {}, "min_classes": 2, **fields}
        try:
            entry = AttackEntry(**fields)
        except TypeError as err:
            raise TypeError(f"register_attack: {err}") from None
    elif fields:
        raise TypeError("register_attack takes an AttackEntry or keywords, not both")
    if entry.name in _ATTACKS or entry.name in RESERVED_LABELS:
        raise ValueError(f"attack {entry.name!r} is already registered")
    _ATTACKS[entry.name] = entry
    return entry


def dtype_name(dtype: torch.dtype) -> str:
    """`torch.float16` -> "float16"."""
    return str(dtype).removeprefix("torch.")


def dtype_names(dtypes: tuple[torch.dtype, ...] | list[torch.dtype]) -> str:
    """(float64, float32, float16) -> "float64, float32 and float16"."""
    names = [dtype_name(d) for d in dtypes]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


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


def spec_of_label(label: object) -> AttackSpec | None:
    """The `AttackSpec` behind a results-table `attack` label, or None for the rows that are no attack
    ("clean", "worst", "worst:l2"), for a family this process has not registered, and for a label that no
    longer parses (a parameter the family dropped): such a row is judged by nothing."""
    if not isinstance(label, str) or label in RESERVED_LABELS:
        return None
    if label.split(":", 1)[0].strip() not in _ATTACKS:
        return None
    try:
        return parse_attack(label)
    except ConfigError:
        return None


# Readable titles of the built-in families; a family registered elsewhere is shown by its registered name.
_TITLES = {
    "fgsm": "FGSM",
    "pgd": "PGD",
    "apgd-ce": "APGD-CE",
    "apgd-dlr": "APGD-DLR",
    "apgd-t": "APGD-T",
    "fab-t": "FAB-T",
    "square": "Square",
    "aa-reference": "AutoAttack",
}
_RESERVED_NAMES = {"clean": "clean", WORST: "worst case", WORST_L2: "worst case L2"}


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def display_name(attack: AttackSpec | str, *, schedule: bool = True) -> str:
    """The readable name of an attack spec (or of a results-table `attack` label), for report headers,
    figure titles and prose; returns a string.

    `pgd:steps=20` -> "PGD-20", `square:n_queries=1000` -> "Square (1,000 queries)",
    `apgd-ce:cascade=true:min_eps=0.1` -> "APGD-CE (cascade, ε ≥ 0.1)", `pgd:norm=l2` -> "PGD-10 L2"
    (an L2 radius bound reads "r ≥ 1.5"). Parameters that differ from the family's defaults are named
    (steps, targets, restarts, queries, or "key value" for the others), so distinct specs get distinct
    names. `schedule=False` leaves out where the attack ran (`cascade`, `min_eps`): "APGD-CE".
    The rows that are no attack read "clean", "worst case" and "worst case L2"; a label this process
    cannot parse (an unregistered family) is returned as it is.
    """
    if isinstance(attack, str) and attack in _RESERVED_NAMES:
        return _RESERVED_NAMES[attack]
    spec = attack if isinstance(attack, AttackSpec) else spec_of_label(attack)
    if spec is None:
        return str(attack)
    entry = spec.entry
    params = spec.resolved()
    title = _TITLES.get(spec.family, spec.family)
    if spec.family == "pgd":
        title = f"PGD-{params['steps']}"
    if spec.threat is ThreatModel.L2:
        title += " L2"
    details = []
    if spec.family == "square":
        details.append(f"{params['n_queries']:,} queries")
    for key, default in entry.defaults.items():
        value = params.get(key)
        if value == default or (spec.family == "pgd" and key == "steps") or key == "n_queries":
            continue
        if key in ("steps", "targets", "restarts"):
            details.append(f"{_number(value)} {key}")
        elif key == "random_start":
            details.append("random start" if value else "no random start")
        elif key == "alpha":
            details.append(f"step {_number(value)}")
        elif key == "loss" and value == "train":
            details.append("own training loss")
        else:
            details.append(f"{key} {_number(value)}")
    if schedule and spec.cascade:
        details.append("cascade")
    if schedule and spec.min_eps > 0:
        details.append(f"{'r' if spec.threat is ThreatModel.L2 else 'ε'} ≥ {spec.min_eps:g}")
    return f"{title} ({', '.join(details)})" if details else title


def resolve_attacks(attacks: str | AttackSpec | list | tuple) -> list[AttackSpec]:
    """A list of specs (or one comma-separated string) -> distinct `AttackSpec`s, in the order given."""
    if isinstance(attacks, (str, AttackSpec)):
        attacks = split_list(attacks, "attacks", "fgsm,pgd") if isinstance(attacks, str) else [attacks]
    elif not is_sequence(attacks):
        raise ConfigError(
            f"attacks {show(attacks)} is not an attack spec or a list of them; valid attacks: {', '.join(_ATTACKS)}"
        )
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


def _coerce(entry: AttackEntry, key: str, value: Any) -> Any:
    types = {**entry.types, **SCHEDULE_TYPES, "norm": str}
    if key not in types:
        raise ConfigError(
            f"attack {entry.name!r} has no parameter {key!r}; it takes {_param_help(entry)}, "
            "cascade (bool), min_eps (float), norm (linf or l2)"
        )
    kind = types[key]
    if kind is str and key != "norm":  # a word (validated by the family), e.g. fgsm's loss
        return str(value).strip().lower()
    if kind is str:
        text = str(value).strip().lower()
        if text not in NORMS:
            raise ConfigError(f"attack {entry.name!r}: norm={value} is not valid; valid: {', '.join(NORMS)}")
        threat = ThreatModel(text)
        if threat not in entry.threats:
            only = " and ".join(_THREAT_WORDS[t] for t in entry.threats)
            hint = "; use pgd:norm=l2 for an L2 attack" if threat is ThreatModel.L2 else ""
            raise ConfigError(f"attack {entry.name!r} is {only} only{hint}")
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
    high = 1.0 if params.get("norm", "linf") == "linf" else MAX_L2  # L2 radii go beyond 1
    if not 0.0 <= params.get("min_eps", 0.0) <= high:
        raise ConfigError(f"attack {entry.name!r}: min_eps must lie in [0, {high:g}], got {params['min_eps']}")
    for key in ("steps", "restarts", "n_queries", "targets"):
        if key in params and params[key] < 1:
            raise ConfigError(f"attack {entry.name!r}: {key} must be >= 1, got {params[key]}")
    if entry.validate is not None:
        entry.validate(params)


# ------------------------------------------------------------------------------------ runner helpers


# torchattacks is not a dependency of the package: version 3.5.1 pins requests~=2.25.1 (for model-zoo helpers
# robust-glo never calls), so pip would downgrade `requests` under everything else. It is installed without
# its dependencies (scripts/bootstrap.sh, README "Install"); its real needs are robust-glo's own dependencies.
TORCHATTACKS_VERSION = "3.5.1"
TORCHATTACKS_INSTALL = f"pip install --no-deps torchattacks=={TORCHATTACKS_VERSION}"


def import_torchattacks() -> Any:
    """The torchattacks module; a one-line `MissingDependencyError` naming the install command when it is
    not installed (or cannot be imported)."""
    try:
        return importlib.import_module("torchattacks")
    except ImportError as exc:
        why = "is not installed" if isinstance(exc, ModuleNotFoundError) else f"cannot be imported ({exc})"
        raise MissingDependencyError(
            f"torchattacks {why}; this attack runs through it: install it with `{TORCHATTACKS_INSTALL}` "
            "(--no-deps keeps a current requests; README, Install)"
        ) from None


def require_torchattacks(specs: Iterable[AttackSpec | str]) -> None:
    """Refuse, before any work, attacks that run through torchattacks when it is missing: a one-line
    `MissingDependencyError` naming the first such attack and the install command."""
    for spec in specs:
        spec = parse_attack(spec)
        if spec.entry.torchattacks:
            try:
                import_torchattacks()
            except MissingDependencyError as exc:
                raise MissingDependencyError(f"attack {spec.label!r}: {exc}") from None
            return


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


def _norm(params: dict) -> str:
    """torchattacks' name of the threat model ("Linf" or "L2")."""
    return ThreatModel(params.get("norm", "linf")).display


def _targets(params: dict, n_classes: int) -> int:
    return min(params["targets"], n_classes - 1)


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
