"""Evolution: discover TaylorGLO losses with CMA-ES (docs/method.md), pruned by the invariant.

The pieces are kept apart (as in EvoTorch): `TaylorGLOProblem` scores a theta by a partial training run,
`CMAES` proposes thetas, a backend (`local`, `ray`, `batched`) runs the evaluations, and `run_evolution`
ties them together in a crash-safe run directory.

>>> from robust_glo.evolution import EvolveConfig, run_evolution
>>> result = run_evolution(EvolveConfig(dataset="digits", generations=3, popsize=8, steps=100, out="runs/evo"))
>>> result.best["theta"]  # also in runs/evo/best_loss.json, loadable as taylorglo:runs/evo/best_loss.json
"""

from robust_glo.evolution.backends import (
    BatchedBackend,
    Job,
    LocalBackend,
    RayBackend,
    make_backend,
    resolve_backend,
)
from robust_glo.evolution.config import EvolveConfig, FitnessSpec, parse_fitness
from robust_glo.evolution.optimizer import CMAES
from robust_glo.evolution.problem import (
    DIVERGED_FITNESS,
    FAILED_FITNESS,
    REJECTED_FITNESS,
    STATUSES,
    Evaluation,
    TaylorGLOProblem,
)
from robust_glo.evolution.runner import (
    EvolutionResult,
    RunStore,
    generation_seed,
    load_history,
    reeval_seed,
    run_evolution,
)

__all__ = [
    "BatchedBackend",
    "CMAES",
    "DIVERGED_FITNESS",
    "EvolutionResult",
    "EvolveConfig",
    "Evaluation",
    "FAILED_FITNESS",
    "FitnessSpec",
    "Job",
    "LocalBackend",
    "REJECTED_FITNESS",
    "RayBackend",
    "RunStore",
    "STATUSES",
    "TaylorGLOProblem",
    "generation_seed",
    "load_history",
    "make_backend",
    "resolve_backend",
    "parse_fitness",
    "reeval_seed",
    "run_evolution",
]
