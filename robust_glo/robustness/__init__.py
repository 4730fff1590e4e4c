"""Robustness harness (docs/attacks.md): attacks by name, `evaluate_model`, reliability checks, statistics.

>>> from robust_glo.robustness import evaluate_model
>>> table = evaluate_model(model, images, labels, attacks=["fgsm", "pgd:steps=20"], eps=[0, 0.05, 0.1])
"""

from robust_glo.robustness.attacks import (
    MODEL_DTYPES,
    NORM,
    AttackContext,
    AttackEntry,
    AttackSpec,
    Coverage,
    ThreatModel,
    autoattack_coverage,
    coverage_from_results,
    get_attack_entry,
    list_attacks,
    parse_attack,
    register_attack,
    resolve_attacks,
    spec_of_label,
)
from robust_glo.robustness.checks import (
    DEFAULT_TOLERANCE,
    DEFAULT_ZERO_GRAD_THRESHOLD,
    EXPLANATIONS,
    budget_slack,
    check_reliability,
    describe_flags,
)
from robust_glo.robustness.evaluate import (
    RESULT_COLUMNS,
    Evaluation,
    attack_dtype,
    check_eps,
    check_inputs,
    evaluate_model,
    generate_adversarial,
    run_evaluation,
)
from robust_glo.robustness.statistics import mean_ci, summarize, welch_pvalue

__all__ = [
    "DEFAULT_TOLERANCE",
    "DEFAULT_ZERO_GRAD_THRESHOLD",
    "EXPLANATIONS",
    "MODEL_DTYPES",
    "NORM",
    "RESULT_COLUMNS",
    "AttackContext",
    "AttackEntry",
    "AttackSpec",
    "Coverage",
    "Evaluation",
    "ThreatModel",
    "attack_dtype",
    "autoattack_coverage",
    "budget_slack",
    "check_eps",
    "check_inputs",
    "check_reliability",
    "coverage_from_results",
    "describe_flags",
    "evaluate_model",
    "generate_adversarial",
    "get_attack_entry",
    "list_attacks",
    "mean_ci",
    "parse_attack",
    "register_attack",
    "resolve_attacks",
    "run_evaluation",
    "spec_of_label",
    "summarize",
    "welch_pvalue",
]
