"""Attacks by name (docs/attacks.md): small builders around torchattacks, one module per family.

An attack spec is a string `name` or `name:key=value:key=value` (for example `pgd:steps=40:restarts=3`),
or an `AttackSpec`, parsed once into a typed value (`parse_attack`, `resolve_attacks`; `spec_of_label`
for the labels of stored results). Every attack runs on logits with its own loss (cross-entropy, DLR or
margin), never the network's training loss, in the L-infinity threat model or, with `norm=l2`, the L2
one (`ThreatModel`). The families, each in its own module with its runner, budget record and
registration:

- `fgsm` (fgsm.py): x + eps * sign(grad_x CE), clipped to [0, 1]; L-infinity only.
- `pgd` (pgd.py): torchattacks.PGD / PGDL2 on CE, alpha 2.5 * eps / steps, random restarts.
- `apgd-ce`, `apgd-dlr` (apgd.py), `apgd-t` (apgd_t.py), `fab-t` (fab_t.py), `square` (square.py):
  torchattacks' ports of Croce & Hein (2020) with the budgets of the reference AutoAttack code.
- `aa-reference` (autoattack.py): the standard AutoAttack ensemble APGD-CE -> APGD-T -> FAB-T -> Square.

Each family lists the model dtypes it runs in (`AttackEntry.dtypes`): FGSM and PGD all of `MODEL_DTYPES`
(float64, float32, float16, bfloat16); torchattacks' APGD, APGD-T and Square float64 and float32 (they mix
float32 tensors into their iterates); FAB-T and `aa-reference` float32 only (FAB casts to float32). A
model of another dtype is refused by `AttackSpec.check_dtype` before anything runs.

`display_name` gives an attack's readable name for reports ("PGD-20", "APGD-CE (cascade, ε ≥ 0.1)",
"Square (5,000 queries)"). `autoattack_coverage` (coverage.py) says whether the attacks that ran at one
(threat model, eps) include that ensemble at its reference budgets.
"""

from robust_glo.robustness.attacks.base import (
    AA_RESTARTS,
    AA_RHO,
    AA_STEPS,
    AA_TARGETS,
    MODEL_DTYPES,
    NORM,
    NORMS,
    RESERVED_LABELS,
    SCHEDULE_DEFAULTS,
    SCHEDULE_TYPES,
    SQUARE_P_INIT,
    SQUARE_QUERIES,
    TORCHATTACKS_INSTALL,
    WORST,
    WORST_L2,
    AttackContext,
    AttackEntry,
    AttackSpec,
    Budget,
    Runner,
    _checked,
    _norm,
    _seeded,
    _targets,
    clean_gradient,
    display_name,
    dtype_name,
    dtype_names,
    get_attack_entry,
    import_torchattacks,
    list_attacks,
    parse_attack,
    register_attack,
    require_torchattacks,
    resolve_attacks,
    spec_of_label,
)

# The families register themselves on import, in this order (the order of `list_attacks`).
# isort: off
from robust_glo.robustness.attacks.fgsm import run_fgsm
from robust_glo.robustness.attacks.pgd import run_pgd
from robust_glo.robustness.attacks.apgd import run_apgd_ce, run_apgd_dlr
from robust_glo.robustness.attacks.apgd_t import run_apgd_t
from robust_glo.robustness.attacks.fab_t import run_fab_t
from robust_glo.robustness.attacks.square import run_square
from robust_glo.robustness.attacks.autoattack import AA_COMPONENTS, run_aa_reference

# isort: on
from robust_glo.robustness.attacks.coverage import Coverage, autoattack_coverage, coverage_from_results
from robust_glo.robustness.threat import ThreatModel

__all__ = [
    "AA_COMPONENTS",
    "AA_RESTARTS",
    "AA_RHO",
    "AA_STEPS",
    "AA_TARGETS",
    "MODEL_DTYPES",
    "NORM",
    "NORMS",
    "RESERVED_LABELS",
    "SCHEDULE_DEFAULTS",
    "SCHEDULE_TYPES",
    "SQUARE_P_INIT",
    "SQUARE_QUERIES",
    "TORCHATTACKS_INSTALL",
    "WORST",
    "WORST_L2",
    "AttackContext",
    "AttackEntry",
    "AttackSpec",
    "Budget",
    "Coverage",
    "Runner",
    "ThreatModel",
    "_checked",
    "_norm",
    "_seeded",
    "_targets",
    "autoattack_coverage",
    "clean_gradient",
    "coverage_from_results",
    "display_name",
    "dtype_name",
    "dtype_names",
    "get_attack_entry",
    "import_torchattacks",
    "list_attacks",
    "parse_attack",
    "register_attack",
    "require_torchattacks",
    "resolve_attacks",
    "run_aa_reference",
    "run_apgd_ce",
    "run_apgd_dlr",
    "run_apgd_t",
    "run_fab_t",
    "run_fgsm",
    "run_pgd",
    "run_square",
    "spec_of_label",
]
