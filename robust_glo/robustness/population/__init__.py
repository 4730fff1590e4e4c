"""Attacking a population of networks (docs/attacks.md, "Attacking a population of networks").

P networks of one architecture (the seeds of a loss, or several losses) attacked together the way the
population engine trains them: stacked parameters and one vmapped forward and backward (`PopulationModel`),
each member with its own inputs, labels, still-correct set, cascade and seeds.

- `evaluate_population(models, inputs, labels, attacks, eps, seed=...)`: `run_evaluation` for every member
  at once; `members[p]` is network p's `Evaluation`, `robust(label, eps)` the outcome bits `(P, N)`,
  `accuracy(label, eps)` the robust accuracies `(P,)`.
- `generate_adversarial_population(models, inputs, labels, attack, eps, seed=...)`: adversarial inputs
  `(P, N, C, H, W)`, as `generate_adversarial` per member.
- `apgd_t_all_targets(model, inputs, labels, eps, ...)`: APGD-T on one network with all its target classes
  (and restarts) as the members of one population sharing the network: one pass per step instead of one
  run per target (the `more_effort` diagnostic's 5x-longer APGD-T).
- Ported as population computations (exact ports of torchattacks 3.5.1, member by member): `fgsm`, `pgd`
  (L-infinity and L2), `apgd-ce`, `apgd-dlr`, `apgd-t` (both norms), `square` (L-infinity) and
  `aa-reference` built from them; `fab-t` and `square:norm=l2` run per member through torchattacks
  (`runners.fallback`), with the same results and no speed-up.
"""

from robust_glo.robustness.population.evaluate import (
    PopulationEvaluation,
    evaluate_population,
    generate_adversarial_population,
)
from robust_glo.robustness.population.gradient import apgd_t_all_targets, clean_gradient_population
from robust_glo.robustness.population.model import FORWARD_MODES, Packed, PopulationModel, full, pack
from robust_glo.robustness.population.runners import (
    POPULATION_RUNNERS,
    PopulationContext,
    PopulationRunner,
    fallback,
    is_ported,
    population_runner,
)

__all__ = [
    "FORWARD_MODES",
    "POPULATION_RUNNERS",
    "Packed",
    "PopulationContext",
    "PopulationEvaluation",
    "PopulationModel",
    "PopulationRunner",
    "apgd_t_all_targets",
    "clean_gradient_population",
    "evaluate_population",
    "fallback",
    "full",
    "generate_adversarial_population",
    "is_ported",
    "pack",
    "population_runner",
]
