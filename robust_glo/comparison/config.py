"""What a robustness comparison runs: every loss trained on every seed, attacked on the test split."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from robust_glo.data.registry import DATASETS, check_split_sizes
from robust_glo.errors import ConfigError
from robust_glo.losses import get_loss
from robust_glo.models import check_model_fits
from robust_glo.robustness import DEFAULT_TOLERANCE, DEFAULT_ZERO_GRAD_THRESHOLD, resolve_attacks
from robust_glo.robustness.diagnostics import DiagnosticSettings
from robust_glo.training import TrainConfig
from robust_glo.utils import resolve_device
from robust_glo.utils.parsing import SEED_RANGE, is_sequence, parse_budgets, parse_integer, parse_real, parse_seed, show

# Bumped when an evaluation's meaning changes, so that stored evaluations made before are redone
# (2: attacks in locked eval mode, per-image outcomes, clean predictions re-checked after the attacks;
# 3: worst-case rows only where an attack ran, AutoAttack coverage recorded, per-network diagnostics).
EVALUATION_PROTOCOL = 3


@dataclass
class CompareConfig:
    """A robustness comparison: every loss trained on every seed, attacked on the test split.

    `validated()` parses the values once into the types below: `eps` / `eps_l2` as `parse_budgets` reads them
    (numbers, "0,0.05,8/255", sequences), integers of any kind (numpy, strings such as "500"), `losses` one
    spec or a list, `seeds` any sequence of distinct integers >= 0; anything else is a one-line `ConfigError`.
    """

    losses: list[str] = field(default_factory=lambda: ["ce"])
    dataset: str = "fashion-mnist"
    model: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 1000
    attacks: list[str] = field(default_factory=lambda: ["fgsm", "pgd"])
    eps: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1])
    eps_l2: list[float] = field(default_factory=list)  # L2 radii of the attacks given with norm=l2
    test_size: int | None = None  # None: the whole test split
    eval_batch_size: int = 500
    attack_seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    tolerance: float = DEFAULT_TOLERANCE
    zero_grad_threshold: float = DEFAULT_ZERO_GRAD_THRESHOLD
    train: dict[str, Any] = field(default_factory=dict)  # further TrainConfig fields (lr, batch_size, ...)
    # robust_glo.robustness.diagnostics.DiagnosticSettings fields ({"n": 0} skips the extra attacks)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    # The loss whose networks the transfer diagnostic crafts examples on (None: the first loss).
    transfer_from: str | None = None

    def validated(self) -> CompareConfig:
        losses = [self.losses] if isinstance(self.losses, str) else self.losses
        if not is_sequence(losses) or not all(isinstance(spec, str) for spec in losses):
            raise ConfigError(f"losses must be a loss spec or a list of them, got {show(self.losses)}")
        losses = list(losses)
        if not losses:
            raise ConfigError("give at least one loss")
        if len(set(losses)) != len(losses):
            raise ConfigError(f"a loss is listed twice: {', '.join(losses)}")
        for spec in losses:
            get_loss(spec)  # a bad spec fails before any training
        seeds = _seeds(self.seeds)
        steps = None if self.steps is None else parse_integer(self.steps, "steps", minimum=1)  # None: epochs
        test_size = None if self.test_size is None else parse_integer(self.test_size, "test_size", minimum=1)
        eval_batch_size = parse_integer(self.eval_batch_size, "eval_batch_size", minimum=1)
        attack_seed = parse_seed(self.attack_seed, "attack_seed")
        tolerance = parse_real(self.tolerance, "tolerance", low=0.0, high=1.0)
        zero_grad_threshold = parse_real(self.zero_grad_threshold, "zero_grad_threshold", low=0.0, high=1.0)
        eps = parse_budgets(self.eps, "linf", name="eps")
        eps_l2 = parse_budgets(self.eps_l2, "l2", name="eps_l2")
        specs = resolve_attacks(self.attacks)
        attacks = [s.label for s in specs]
        if any(s.norm == "l2" for s in specs) and not any(e > 0 for e in eps_l2):
            raise ConfigError("L2 attacks (norm=l2) need their radii: give eps_l2, e.g. [0.5, 1.0]")
        own = {"loss", "seed", "steps", "dataset", "model", "test_size", "device", "data_root"}
        valid = sorted(set(TrainConfig.flat_field_names()) - own)
        for key in self.train:
            if key in own:
                raise ConfigError(f"training option {key!r} has its own setting; drop it from the training options")
            if key not in valid:
                raise ConfigError(f"unknown training option {key!r}; valid: {', '.join(valid)}")
        check_split_sizes(self.dataset, test_size=test_size)  # before any training
        if self.model is not None:
            check_model_fits(self.model, DATASETS[self.dataset])  # before any file is written
        diagnostics = DiagnosticSettings.from_dict(self.diagnostics).to_dict()
        diagnostics = _diagnostics_within(diagnostics, "n" in self.diagnostics, self.dataset, test_size)
        source = self.transfer_from if self.transfer_from is not None else losses[0]
        if source not in losses:
            raise ConfigError(f"transfer_from {source!r} is not one of the losses: {', '.join(losses)}")
        return dataclasses.replace(
            self,
            diagnostics=diagnostics,
            transfer_from=source,
            attacks=attacks,
            eps=eps,
            eps_l2=eps_l2,
            losses=losses,
            seeds=seeds,
            steps=steps,
            test_size=test_size,
            eval_batch_size=eval_batch_size,
            attack_seed=attack_seed,
            tolerance=tolerance,
            zero_grad_threshold=zero_grad_threshold,
            train=dict(self.train),
        )

    def train_config(self, loss: str, seed: int):
        return TrainConfig.from_dict(
            {
                "loss": loss,
                "dataset": self.dataset,
                "model": self.model,
                "steps": self.steps,
                "seed": seed,
                "device": self.device,
                "data_root": self.data_root,
                **self.train,
            }
        ).resolved()

    def evaluation_key(self) -> dict[str, Any]:
        """What an evaluation depends on besides the model: a stored evaluation with another key is redone."""
        return {
            "protocol": EVALUATION_PROTOCOL,
            "attacks": self.attacks,
            "eps": self.eps,
            **({"eps_l2": self.eps_l2} if self.eps_l2 else {}),
            "test_size": self.test_size,
            "batch_size": self.eval_batch_size,
            "attack_seed": self.attack_seed,
            "tolerance": self.tolerance,
            "zero_grad_threshold": self.zero_grad_threshold,
            "diagnostics": DiagnosticSettings.from_dict(self.diagnostics).to_dict(),
        }

    def piece_key(self, train_cfg: TrainConfig) -> dict[str, Any]:
        """The key a (loss, seed) piece's evaluation is stored under: `evaluation_key` and the training
        configuration `train_cfg` (`train_config(loss, seed)`) of the network it evaluates."""
        return {**self.evaluation_key(), "train": train_cfg.to_dict()}

    def attack_options(self) -> dict[str, Any]:
        """The keyword arguments the per-network path (`run_evaluation`) and the population path
        (`evaluate_population`) share, read from one place so that both attack with the same settings."""
        return {
            "batch_size": self.eval_batch_size,
            "device": resolve_device(self.device),
            "seed": self.attack_seed,
            "tolerance": self.tolerance,
            "zero_grad_threshold": self.zero_grad_threshold,
            "eps_l2": self.eps_l2,
        }

    def diagnostic_settings(self) -> DiagnosticSettings:
        return DiagnosticSettings.from_dict(self.diagnostics)


def _diagnostics_within(diagnostics: dict[str, Any], given: bool, dataset: str, test_size: int | None) -> dict:
    """The diagnostics' subsample `n` against the images attacked (`test_size`, or the test split): a
    larger `n` given explicitly is a one-line `ConfigError`; the default (200) is clamped to the images
    attacked and recorded so (a tiny [attack] n)."""
    attacked = test_size if test_size is not None else DATASETS[dataset].n_test
    n = int(diagnostics.get("n", 0))
    if attacked is None or n <= attacked:
        return diagnostics
    if given:
        raise ConfigError(
            f"diagnostics n {n} is more than the {attacked} test images attacked ([attack] n / test_size); give at "
            f"most {attacked}, or 0 to skip the diagnostics' extra attacks"
        )
    return DiagnosticSettings.from_dict({**diagnostics, "n": attacked}).to_dict()


def _seeds(value: Any) -> list[int]:
    """Distinct integers >= 0 from a list, a range, an array or a tensor of them."""
    bad = ConfigError(f"seeds must be a list of distinct integers in {SEED_RANGE}, got {show(value)}")
    if not is_sequence(value):
        raise bad
    try:
        seeds = [parse_seed(s, "seed") for s in value]
    except ConfigError:
        raise bad from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise bad
    return seeds
