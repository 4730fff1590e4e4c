"""Training: `train_run(TrainConfig(...), out_dir)` end to end, or `fit(model, loss, split, ...)` alone."""

from robust_glo.training.config import PRESETS, TrainConfig
from robust_glo.training.recipe import SCHEDULES, Recipe
from robust_glo.training.run import TrainResult, budget_steps, load_trained_model, train_run
from robust_glo.training.trainer import FitResult, evaluate_accuracy, fit, make_optimizer, make_scheduler

__all__ = [
    "PRESETS",
    "SCHEDULES",
    "FitResult",
    "Recipe",
    "TrainConfig",
    "TrainResult",
    "budget_steps",
    "evaluate_accuracy",
    "fit",
    "load_trained_model",
    "make_optimizer",
    "make_scheduler",
    "train_run",
]
