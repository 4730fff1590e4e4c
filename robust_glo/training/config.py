"""Training configuration, with the paper's recipes as presets."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from robust_glo.data.registry import DATASETS
from robust_glo.errors import ConfigError

SCHEDULES = ("constant", "step", "cosine")

# Paper recipes (TaylorGLO, arXiv 2002.00059, following the architectures' own papers):
# AllCNN-C as Springenberg et al.: SGD lr 0.01, momentum 0.9, weight decay 1e-3, 350 epochs, lr x0.1 at
#   epochs 200, 250, 300, batch 128 (expressed in steps of the 45k-image training split).
# ResNet-20 as He et al.: SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, 64k steps, lr x0.1 at
#   32k and 48k steps.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "allcnn-c": {"model": "allcnn-c", "batch_size": 128, "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-3,
                 "schedule": "step", "epochs": 350.0, "milestone_epochs": (200.0, 250.0, 300.0),
                 "gamma": 0.1, "augment": True},
    "resnet20": {"model": "resnet20", "batch_size": 128, "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
                 "schedule": "step", "steps": 64000, "milestones": (32000, 48000), "gamma": 0.1,
                 "augment": True},
}


@dataclass
class TrainConfig:
    """Everything that determines a training run. `resolved()` fills the dataset-dependent defaults."""

    loss: str = "ce"
    dataset: str = "fashion-mnist"
    model: str | None = None  # None: the dataset's default model
    steps: int | None = 1000  # the budget: steps, or epochs when steps is None
    epochs: float | None = None
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()  # step schedule, in steps
    milestone_epochs: tuple[float, ...] = ()  # step schedule, in epochs
    gamma: float = 0.1
    augment: bool | None = None  # None: the dataset's default (crop + flip for 32x32 sets)
    seed: int = 0  # weights, batch order, augmentation, dropout
    split_seed: int = 0  # the train / validation split
    val_size: int | None = None
    test_size: int | None = None
    train_fraction: float = 1.0
    data_root: str | None = None
    device: str = "auto"
    amp: bool = False  # bfloat16 autocast on CUDA
    eval_batch_size: int = 1000
    checkpoint_every: int = 0  # steps between resumable checkpoints; 0 = only at the end
    preset: str = "default"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> "TrainConfig":
        """The preset's recipe with `overrides` on top (None values are ignored).

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
        return cls(preset=preset, **values)

    def validate(self) -> "TrainConfig":
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if self.steps is None and self.epochs is None:
            raise ConfigError("give a budget: steps or epochs")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must lie in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"train_fraction must lie in (0, 1], got {self.train_fraction}")
        return self

    def resolved(self) -> "TrainConfig":
        """A validated copy with the model and augmentation defaults of the dataset filled in."""
        self.validate()
        info = DATASETS[self.dataset]
        return dataclasses.replace(self, model=self.model or info.default_model,
                                   augment=info.augment if self.augment is None else self.augment,
                                   milestones=tuple(self.milestones),
                                   milestone_epochs=tuple(self.milestone_epochs))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["milestone_epochs"] = list(self.milestone_epochs)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        data = dict(data)
        for key in ("milestones", "milestone_epochs"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)
