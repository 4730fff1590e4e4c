"""The training recipe: how a network is trained, whatever trains it.

One typed object, validated in one place, nested wherever networks are trained: a training run
(`TrainConfig.recipe`), every candidate of an evolution (`EvolveConfig.recipe`), the networks of a
benchmark (through its `[train]` table). Files and command lines keep the keys flat (`lr = 0.1`,
`--lr 0.1`); `split_recipe` takes a recipe's keys out of a flat mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from robust_glo.errors import ConfigError
from robust_glo.training.precision import legacy_precision
from robust_glo.utils.parsing import Bound, parse_seed

SCHEDULES = ("constant", "step", "cosine")
# Recipe fields that change how fast a run goes, not what it computes: finished runs and evolutions are
# matched without them. The eval batch only splits evaluation-mode inference (no batch statistics), so the
# accuracies it gives are the same at any size, up to float32 summation order in the kernels.
EXECUTION_RECIPE_OPTIONS = frozenset({"eval_batch_size"})
# A training run's own fields of the same kind: checkpoints save the state without touching it (a resumed
# run ends with the same weights), so a run trained with or without them is the same run.
EXECUTION_RUN_OPTIONS = frozenset({"checkpoint_every"})


def without_execution_options(flat: Mapping[str, Any]) -> dict[str, Any]:
    """A flat training config (config.json's keys) without EXECUTION_RECIPE_OPTIONS and
    EXECUTION_RUN_OPTIONS: what identifies a run.

    A config.json written before the `precision` option existed gets the precision it trained in
    (`legacy_precision`: fp32, or unrecorded with `amp`), so that old float32 runs are still reused."""
    out = {k: v for k, v in flat.items() if k not in EXECUTION_RECIPE_OPTIONS and k not in EXECUTION_RUN_OPTIONS}
    if "precision" not in out:
        out["precision"] = legacy_precision(out)
    return out


# The valid ranges of the recipe's numbers: `Recipe.validate` checks the floats with them, and the command
# lines (evolve, train) give every such flag its range (batch sizes and val_size included), naming the flag.
RECIPE_BOUNDS = {
    "batch_size": Bound(int, 1),
    "eval_batch_size": Bound(int, 1),
    "lr": Bound(float, 0, low_open=True),
    "weight_decay": Bound(float, 0),
    "gamma": Bound(float, 0, low_open=True),
    "momentum": Bound(float, 0, 1, high_open=True),
    "train_fraction": Bound(float, 0, 1, low_open=True),
    "val_size": Bound(int, 0, why="0: no validation split"),
}


@dataclass(frozen=True)
class Recipe:
    """Optimizer, schedule, batches and data split of a training run (the budget is the caller's)."""

    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # one of SCHEDULES
    milestones: tuple[int, ...] = ()  # step schedule, in steps
    milestone_epochs: tuple[float, ...] = ()  # step schedule, in epochs
    gamma: float = 0.1  # learning-rate factor at each milestone
    augment: bool | None = None  # None: the dataset's default (crop + flip for 32x32 sets)
    split_seed: int = 0  # the train / validation split
    val_size: int | None = None  # None: the dataset's default (5,000 for the 60k sets)
    train_fraction: float = 1.0  # share of the training split used (reduced-data studies)
    eval_batch_size: int = 250  # an execution option: see EXECUTION_RECIPE_OPTIONS
    amp: bool = False  # bfloat16 autocast on CUDA (TrainConfig.precision covers the CPU too)

    def __post_init__(self) -> None:
        for name, kind in (("milestones", int), ("milestone_epochs", float)):
            value = getattr(self, name)
            try:
                items = tuple(value)
                if any(isinstance(v, bool) or not _is_number(v) for v in items):
                    raise TypeError
                object.__setattr__(self, name, tuple(kind(v) for v in items))
            except TypeError:
                raise ConfigError(f"{name} must be a list of numbers, got {value!r}") from None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def validate(self) -> Recipe:
        """Check every value; raise a one-line `ConfigError` naming the first bad one."""
        for name in ("batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("lr", "weight_decay", "gamma", "momentum", "train_fraction"):
            RECIPE_BOUNDS[name].check(name, getattr(self, name))
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.val_size is not None and (
            isinstance(self.val_size, bool) or not isinstance(self.val_size, int) or self.val_size < 0
        ):
            raise ConfigError(f"val_size must be an integer >= 0 (0: no validation split), got {self.val_size!r}")
        if isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int):
            raise ConfigError(f"split_seed must be an integer >= 0, got {self.split_seed!r}")
        parse_seed(self.split_seed, "split_seed")
        for name in ("nesterov", "amp"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.augment is not None and not isinstance(self.augment, bool):
            raise ConfigError(f"augment must be true or false, got {self.augment!r}")
        if any(m < 1 for m in self.milestones) or any(not e > 0 for e in self.milestone_epochs):
            raise ConfigError(f"milestones must be positive, got {list(self.milestones or self.milestone_epochs)}")
        return self

    def milestone_steps(self, n_train: int) -> tuple[int, ...]:
        """The step schedule's milestones in steps (epoch milestones converted with the training-set size)."""
        if self.milestones:
            return self.milestones
        return tuple(int(e * self.steps_per_epoch(n_train)) for e in self.milestone_epochs)

    def steps_per_epoch(self, n_train: int) -> int:
        return max(1, n_train // min(self.batch_size, max(n_train, 1)))

    def fit_options(self, n_train: int, *, augment_default: bool) -> dict[str, Any]:
        """Keyword arguments of `robust_glo.training.fit` (besides model, loss, data, steps and seed)."""
        return {
            "batch_size": self.batch_size,
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "nesterov": self.nesterov,
            "schedule": self.schedule,
            "milestones": self.milestone_steps(n_train),
            "gamma": self.gamma,
            "augment": augment_default if self.augment is None else self.augment,
            "amp": self.amp,
        }

    def split_options(self) -> dict[str, Any]:
        """Keyword arguments of `robust_glo.data.load_dataset` that decide the train/validation split."""
        return {"val_size": self.val_size, "train_fraction": self.train_fraction, "split_seed": self.split_seed}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"], d["milestone_epochs"] = list(self.milestones), list(self.milestone_epochs)
        return d


def split_recipe(values: Mapping[str, Any]) -> tuple[Recipe, dict[str, Any]]:
    """A flat mapping -> (the recipe of its recipe keys, the other keys). Not validated."""
    names = Recipe.field_names()
    recipe = Recipe(**{k: v for k, v in values.items() if k in names})
    return recipe, {k: v for k, v in values.items() if k not in names}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
