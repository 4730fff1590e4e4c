"""Training configuration: the budget and identity of a run, with the recipe nested, and the paper's
recipes as presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from robust_glo.data.registry import DATASETS, check_split_sizes
from robust_glo.errors import ConfigError
from robust_glo.training.precision import check_precision, resolve_precision
from robust_glo.training.recipe import SCHEDULES, Recipe, split_recipe
from robust_glo.utils.parsing import check_field_types, parse_seed

__all__ = ["PRESETS", "SCHEDULES", "TrainConfig"]

# Paper recipes (TaylorGLO, arXiv 2002.00059, following the architectures' own papers):
# AllCNN-C as Springenberg et al.: SGD lr 0.01, momentum 0.9, weight decay 1e-3, 350 epochs, lr x0.1 at
#   epochs 200, 250, 300, batch 128 (expressed in steps of the 45k-image training split).
# ResNet-20 as He et al.: SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, 64k steps, lr x0.1 at
#   32k and 48k steps.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "allcnn-c": {
        "model": "allcnn-c",
        "batch_size": 128,
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 1e-3,
        "schedule": "step",
        "epochs": 350.0,
        "milestone_epochs": (200.0, 250.0, 300.0),
        "gamma": 0.1,
        "augment": True,
    },
    "resnet20": {
        "model": "resnet20",
        "batch_size": 128,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "step",
        "steps": 64000,
        "milestones": (32000, 48000),
        "gamma": 0.1,
        "augment": True,
    },
}


@dataclass
class TrainConfig:
    """Everything that determines a training run: what is trained on what, for how long, from which seed,
    and how (`recipe`). `resolved()` fills the dataset-dependent defaults.

    Files and flags use flat keys (`lr`, `batch_size`, ...): `from_dict` / `to_dict` and `from_preset`
    take and give them, nesting the recipe's keys.
    """

    loss: str = "ce"
    dataset: str = "fashion-mnist"
    model: str | None = None  # None: the dataset's default model
    steps: int | None = 1000  # the budget: steps, or epochs when steps is None
    epochs: float | None = None
    seed: int = 0  # weights, batch order, augmentation, dropout
    test_size: int | None = None
    data_root: str | None = None
    device: str = "auto"
    precision: str = "fp32"  # "fp32", "bf16" or "auto"; resolved() makes it concrete (training/precision.py)
    checkpoint_every: int = 0  # steps between resumable checkpoints (0: none); not part of the run identity
    preset: str = "default"
    extra: dict[str, Any] = field(default_factory=dict)
    recipe: Recipe = field(default_factory=Recipe)

    @classmethod
    def flat_field_names(cls) -> tuple[str, ...]:
        """The keys of a flat training config: the run's own fields and the recipe's."""
        own = tuple(f.name for f in dataclasses.fields(cls) if f.name != "recipe")
        return own + Recipe.field_names()

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> TrainConfig:
        """The preset's recipe with `overrides` (flat keys) on top (None values are ignored).

        A budget given as epochs replaces a preset's step budget and vice versa.
        """
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        values = {**PRESETS[preset], **given}
        if "epochs" in given and "steps" not in given:
            values["steps"] = None
        elif "steps" in given and "epochs" not in given:
            values["epochs"] = None
        elif "epochs" in values and "steps" not in values:
            values["steps"] = None
        return cls.from_dict({**values, "preset": preset})

    def validate(self) -> TrainConfig:
        """Check every value (the recipe's too); raise a one-line `ConfigError` naming the first bad one."""
        check_precision(self.precision)  # before the type check: its message lists the valid values
        check_field_types(self, skip=("recipe", "extra"))
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if self.steps is None and self.epochs is None:
            raise ConfigError("give a budget: steps or epochs")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs}")
        parse_seed(self.seed, "seed")
        if self.test_size is not None and self.test_size < 1:
            raise ConfigError(
                f"test_size must be >= 1 (test images; unset: the whole test split), got {self.test_size}"
            )
        self.recipe.validate()
        check_split_sizes(self.dataset, val_size=self.recipe.val_size, test_size=self.test_size)
        return self

    def resolved(self) -> TrainConfig:
        """A validated copy with the model and augmentation defaults of the dataset filled in, and the
        precision made concrete for this machine ("fp32" or "bf16": it is part of the run's identity)."""
        self.validate()
        info = DATASETS[self.dataset]
        recipe = (
            self.recipe if self.recipe.augment is not None else dataclasses.replace(self.recipe, augment=info.augment)
        )
        precision = resolve_precision(self.precision, self.device, amp=self.recipe.amp)
        return dataclasses.replace(self, model=self.model or info.default_model, recipe=recipe, precision=precision)

    def to_dict(self) -> dict[str, Any]:
        """Flat keys: the run's own fields and the recipe's (as config.json stores them)."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "recipe"}
        return {**own, "extra": dict(self.extra), **self.recipe.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From flat keys (see `to_dict`); an unknown key fails, naming the valid ones."""
        names = cls.flat_field_names()
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        recipe, own = split_recipe(data)
        return cls(**own, recipe=recipe)
