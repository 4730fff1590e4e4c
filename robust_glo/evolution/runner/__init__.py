"""The generations loop and the run directory it keeps (crash-safe, resumable)."""

from robust_glo.evolution.runner.engine import (
    EvolutionResult,
    generation_seed,
    load_history,
    reeval_seed,
    run_evolution,
)
from robust_glo.evolution.runner.store import HISTORY_COLUMNS, RunStore

__all__ = [
    "EvolutionResult",
    "HISTORY_COLUMNS",
    "RunStore",
    "generation_seed",
    "load_history",
    "reeval_seed",
    "run_evolution",
]
