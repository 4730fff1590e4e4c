"""Training: `train_run(TrainConfig(...), out_dir)` end to end, `fit(model, loss, split, ...)` alone, or many
networks of one architecture at once with `train_population` (the population engine)."""

from robust_glo.training.config import PRESETS, TrainConfig
from robust_glo.training.population import Population, population_loss, train_population
from robust_glo.training.recipe import SCHEDULES, Recipe
from robust_glo.training.run import TrainResult, budget_steps, load_trained_model, train_run, train_runs_together
from robust_glo.training.trainer import FitResult, evaluate_accuracy, fit, make_optimizer, make_scheduler

__all__ = [
    "PRESETS",
    "SCHEDULES",
    "FitResult",
    "Population",
    "Recipe",
    "TrainConfig",
    "TrainResult",
    "budget_steps",
    "evaluate_accuracy",
    "fit",
    "load_trained_model",
    "make_optimizer",
    "make_scheduler",
    "population_loss",
    "train_population",
    "train_run",
    "train_runs_together",
]
