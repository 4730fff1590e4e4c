"""AutoAttack coverage: whether the attacks that ran at one (threat model, eps) include the standard
AutoAttack ensemble at its reference budgets (docs/attacks.md#autoattack-coverage).

Covered: APGD-CE (>= 100 steps), APGD-T (>= 100 steps, targets >= min(9, n_classes - 1)), FAB-T (>= 100
steps, same targets) and Square (>= 5000 queries), each with or without `cascade`; or `aa-reference`,
which runs all four.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from robust_glo.errors import ConfigError
from robust_glo.robustness.attacks.base import (
    AA_RESTARTS,
    AA_STEPS,
    AA_TARGETS,
    SQUARE_P_INIT,
    SQUARE_QUERIES,
    AttackSpec,
    parse_attack,
    spec_of_label,
)
from robust_glo.robustness.threat import ThreatModel

if TYPE_CHECKING:
    import pandas as pd

ENSEMBLE = "aa-reference"  # the family that runs every component itself


@dataclass(frozen=True)
class Coverage:
    """AutoAttack coverage at one (threat model, eps).

    `verified`: the attacks that ran include the standard ensemble at its reference budgets; `ran`: the
    labels of the attacks of that threat model that ran there; `missing`: the components not covered,
    named with the budget they need (e.g. "APGD-T (9 targets, 100 steps)").
    """

    verified: bool
    ran: tuple[str, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True)
class _Component:
    family: str
    title: str
    steps: int | None = None
    targeted: bool = False
    n_queries: int | None = None
    # Parameters that must equal the reference implementation's (a different value can weaken the attack
    # in ways a threshold cannot order, e.g. Square's initial square size).
    exact: tuple[tuple[str, float], ...] = ()

    def need(self, n_classes: int, ran: Iterable[AttackSpec] = ()) -> str:
        """What the component needs, e.g. "APGD-T (9 targets, 100 steps)"; a reference value it must equal
        is named only where an attack of its family ran with another one."""
        parts = [f"{_targets_needed(n_classes)} targets"] if self.targeted else []
        parts += [f"{self.steps} steps"] if self.steps is not None else []
        parts += [f"{self.n_queries:,} queries"] if self.n_queries is not None else []
        same = [s.resolved() for s in ran if s.family == self.family]
        parts += [f"{key} {value:g}" for key, value in self.exact if any(p.get(key) != value for p in same)]
        return f"{self.title} ({', '.join(parts)})"

    def met_by(self, spec: AttackSpec, n_classes: int) -> bool:
        if spec.family != self.family:
            return False
        if self.steps is not None and (spec.steps or 0) < self.steps:
            return False
        if self.targeted and (spec.targets or 0) < _targets_needed(n_classes):
            return False
        if (spec.restarts or 0) < AA_RESTARTS:
            return False
        params = spec.resolved()
        if any(params.get(key) != value for key, value in self.exact):
            return False
        return self.n_queries is None or (spec.n_queries or 0) >= self.n_queries


AA_ENSEMBLE = (
    _Component("apgd-ce", "APGD-CE", steps=AA_STEPS),
    _Component("apgd-t", "APGD-T", steps=AA_STEPS, targeted=True),
    _Component("fab-t", "FAB-T", steps=AA_STEPS, targeted=True),
    _Component("square", "Square", n_queries=SQUARE_QUERIES, exact=(("p_init", SQUARE_P_INIT),)),
)


def _targets_needed(n_classes: int) -> int:
    return max(1, min(AA_TARGETS, n_classes - 1))


def _coverage(ran: list[AttackSpec], n_classes: int) -> Coverage:
    labels = tuple(dict.fromkeys(s.label for s in ran))
    if any(s.family == ENSEMBLE for s in ran):
        return Coverage(True, labels, ())
    missing = tuple(c.need(n_classes, ran) for c in AA_ENSEMBLE if not any(c.met_by(s, n_classes) for s in ran))
    return Coverage(not missing, labels, missing)


def _check_classes(n_classes: int) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ConfigError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    return n_classes


def autoattack_coverage(
    specs: Iterable[AttackSpec | str], eps: float, threat: ThreatModel | str, n_classes: int
) -> Coverage:
    """AutoAttack coverage at budget `eps` of threat model `threat` ("linf"/"l2" or a `ThreatModel`), for
    an evaluation that ran `specs` on a model with `n_classes` classes. Only the specs of that threat
    model that run at `eps` (`min_eps`) count; at eps = 0 every spec of the threat model counts."""
    threat = ThreatModel.parse(threat)
    n_classes = _check_classes(n_classes)
    ran = [s for s in (parse_attack(a) for a in specs) if s.threat is threat and s.runs_at(float(eps))]
    return _coverage(ran, n_classes)


def coverage_from_results(results: pd.DataFrame, n_classes: int) -> dict[tuple[ThreatModel, float], Coverage]:
    """AutoAttack coverage per (threat model, eps), recomputed from the attack rows of a stored results
    table (rows at eps > 0 exist only where the attack ran): for results files whose worst rows predate
    the `autoattack` record. Keys: every (threat model, eps) with an attack or worst-case row. Rows of
    several networks count together (the union of what ran); labels `spec_of_label` cannot read (an
    attack this process does not register) count as nothing."""
    n_classes = _check_classes(n_classes)
    ran: dict[tuple[ThreatModel, float], list[AttackSpec]] = {}
    worst = {t.worst_label: t for t in ThreatModel}
    for attack, eps in zip(results["attack"], results["eps"]):
        spec = spec_of_label(attack)
        if spec is not None:
            ran.setdefault((spec.threat, float(eps)), []).append(spec)
        elif attack in worst:
            ran.setdefault((worst[attack], float(eps)), [])
    return {
        key: _coverage(specs, n_classes)
        for key, specs in sorted(ran.items(), key=lambda kv: (kv[0][0].value, kv[0][1]))
    }
