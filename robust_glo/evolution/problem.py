"""The fitness problem: how good is one TaylorGLO theta? Kept apart from the optimizer (EvoTorch style).

`TaylorGLOProblem.evaluate(theta, seed)` checks the invariant (docs/method.md) and, when it holds, trains
the dataset's model for `steps` SGD steps with the candidate loss, then scores it on the validation set:

    fitness = 1 - ((1 - w) * clean accuracy + w * robust accuracy)     (lower is better, in [0, 1])

with w = 0 for the `clean` fitness and the attack's accuracy computed with cross-entropy on the logits,
never the candidate's own loss (docs/attacks.md). Common random numbers: every candidate evaluated with the
same `seed` starts from the same weights and sees the same batches, so a generation compares losses,
not luck.

Fitness of the candidates that are not scored by training: never NaN (pycma would turn it into the
median), always worse than every trained candidate, and ordered by something meaningful, so that no two
of them tie by construction. Ties matter: pycma's active update gives tied candidates different
(negative) weights by their position in the population, so the CMA-ES state would depend on the order
of candidates that are in fact equally bad (`CMAES.tell` also breaks any remaining tie by the
candidates' parameters, not their position). The bands (lower is better):

- trained: [0, 1], 1 - accuracy as above;
- `diverged` (non-finite loss or weights): (2, 2.5], 2 + 0.5 / (1 + steps trained before it diverged).
  It passed the invariant and trained for a while: it ranks above the untried, and a loss that stayed
  finite longer ranks above one that blew up at once;
- `failed` (the worker running it died, after retries): 3, nothing is known about the loss;
- `rejected` (fails the invariant, never trained): [4, 5), 4 + u / (1 + u) with u = log(1 + v) and v how
  far the invariant is violated (its right side minus its left side), so CMA-ES is pushed hardest away
  from the candidates furthest from trainable; 5 for parameters that are not finite.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robust_glo.analysis.invariant import invariant_holds_batch, invariant_margin_batch
from robust_glo.data import DatasetSplits, load_dataset
from robust_glo.data.registry import DATASETS
from robust_glo.errors import ConfigError
from robust_glo.evolution.config import EvolveConfig, FitnessSpec, parse_fitness
from robust_glo.losses import TaylorGLOLoss, get_loss
from robust_glo.losses.taylorglo import N_PARAMS
from robust_glo.losses.user import NonFiniteLossError
from robust_glo.models import create_model
from robust_glo.training import Recipe, evaluate_accuracy, fit
from robust_glo.training.population import train_population
from robust_glo.training.precision import fit_precision_options, resolve_precision
from robust_glo.utils import resolve_device

STATUSES = ("trained", "pruned", "collapsed", "rejected", "diverged", "failed")
# A model that predicts (nearly) one class: validation accuracy at most chance plus this margin.
COLLAPSE_MARGIN = 0.02
# The training loss "has not moved": its first and last logged means differ by at most this (relative).
FLAT_LOSS_TOLERANCE = 1e-4
DIVERGED_FITNESS = 2.0  # the band's lower end: 2 + 0.5 / (1 + steps trained)
FAILED_FITNESS = 3.0
REJECTED_FITNESS = 4.0  # the band's lower end: 4 + u / (1 + u), u = log(1 + violation)


def diverged_fitness(steps_done: int) -> float:
    """(2, 2.5]: a loss that stayed finite for more steps ranks better."""
    return DIVERGED_FITNESS + 0.5 / (1.0 + max(int(steps_done), 0))


def rejected_fitness(violation: float) -> float:
    """[4, 5): grows with how far the invariant is violated (5 when that is not finite)."""
    if not math.isfinite(violation):
        return REJECTED_FITNESS + 1.0
    u = math.log1p(max(float(violation), 0.0))
    return REJECTED_FITNESS + u / (1.0 + u)


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one candidate: status in STATUSES, fitness (finite, lower is better), validation
    accuracy and robust validation accuracy (None when not measured), wall seconds, and a message."""

    status: str
    fitness: float
    val_accuracy: float | None = None
    robust_accuracy: float | None = None
    seconds: float = 0.0
    message: str = ""
    steps_trained: int | None = None  # SGD steps this evaluation ran (None: not trained)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def rejected(cls, violation: float = 0.0) -> Evaluation:
        """A candidate that fails the invariant by `violation` (>= 0; inf for non-finite parameters)."""
        return cls(
            "rejected", rejected_fitness(violation), message=f"fails the invariant by {violation:.4g}; not trained"
        )

    @classmethod
    def diverged(
        cls,
        steps_done: int,
        message: str,
        seconds: float = 0.0,
        val_accuracy: float | None = None,
        robust_accuracy: float | None = None,
        steps_trained: int | None = None,
    ) -> Evaluation:
        trained = steps_done if steps_trained is None else steps_trained
        return cls("diverged", diverged_fitness(steps_done), val_accuracy, robust_accuracy, seconds, message, trained)

    @classmethod
    def failed(cls, message: str, seconds: float = 0.0) -> Evaluation:
        return cls("failed", FAILED_FITNESS, seconds=seconds, message=message)


# Splits per process: a Ray worker evaluates many candidates and loads the data once.
_SPLITS: dict[tuple, DatasetSplits] = {}


def _load_splits(key: tuple) -> DatasetSplits:
    if key not in _SPLITS:
        name, root, val_size, train_fraction, split_seed = key
        _SPLITS[key] = load_dataset(
            name, root=root, val_size=val_size, train_fraction=train_fraction, split_seed=split_seed
        )
    return _SPLITS[key]


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with `n` torch intra-op threads (None: leave as is). Results on the CPU depend on it."""
    if n is None or n == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TaylorGLOProblem:
    """Scores TaylorGLO candidates by a partial training run (keyword-only options, as in EvoTorch).

    The object is small to pickle (the data is loaded lazily and left out), so a Ray task can take it.
    """

    def __init__(
        self,
        *,
        dataset: str = "fashion-mnist",
        model: str | None = None,
        steps: int = 500,
        recipe: Recipe | None = None,
        data_root: str | None = None,
        invariant: str = "paper",
        fitness: str | FitnessSpec = "clean",
        attack_samples: int = 1000,
        device: str = "auto",
        threads: int | None = None,
        robust_every_rung: bool = True,
        precision: str = "fp32",
    ):
        if dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
        if invariant not in ("paper", "exact", "off"):
            raise ConfigError(f"invariant {invariant!r} is unknown; valid: paper, exact, off")
        self.info = DATASETS[dataset]
        self.dataset = dataset
        self.model_name = model or self.info.default_model
        self.steps = int(steps)
        self.recipe = (recipe or Recipe()).validate()
        self.data_root = data_root
        self.invariant = invariant
        self.fitness = fitness if isinstance(fitness, FitnessSpec) else parse_fitness(fitness)
        self.attack_samples = int(attack_samples)
        self.device = device
        self.threads = threads
        self.robust_every_rung = bool(robust_every_rung)
        self.precision = resolve_precision(precision, device, amp=self.recipe.amp)
        self._splits: DatasetSplits | None = None

    @classmethod
    def from_config(cls, config: EvolveConfig) -> TaylorGLOProblem:
        return cls(
            dataset=config.dataset,
            model=config.model,
            steps=config.steps,
            recipe=config.recipe,
            data_root=config.data_root,
            invariant=config.invariant,
            fitness=config.fitness,
            attack_samples=config.attack_samples,
            device=config.device,
            threads=config.threads,
            robust_every_rung=config.rung_fitness == "stated",
            precision=config.precision,
        )

    # ---- pickling: ship the settings, not the data ---------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_splits"] = None
        return state

    # ---- data and model ------------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return self.info.num_classes

    @property
    def splits(self) -> DatasetSplits:
        if self._splits is None:
            split = self.recipe.split_options()
            self._splits = _load_splits(
                (self.dataset, self.data_root, split["val_size"], split["train_fraction"], split["split_seed"])
            )
            if len(self._splits.val) == 0:
                raise ConfigError(f"dataset {self.dataset!r} has an empty validation split; set val-size >= 1")
        return self._splits

    def fit_options(self) -> dict[str, Any]:
        """The recipe and the precision as keyword arguments of `fit` and of `train_population`."""
        options = self.recipe.fit_options(len(self.splits.train), augment_default=self.info.augment)
        precision = fit_precision_options(self.precision)
        # the recipe's `amp` keeps acting on CUDA whatever the driver resolved (a CPU driver, GPU Ray workers)
        return options | precision | {"amp": bool(options.get("amp")) or precision["amp"]}

    def prepare(self) -> None:
        """Load the data and build the model once, so a bad dataset or model fails before any work (and a
        PGD fitness without torchattacks installed, which runs it)."""
        if self.fitness.robust and self.fitness.attack != "fgsm":
            # lazy: the CLI imports evolution to build its parser; robustness loads pandas (--help stays light)
            from robust_glo.robustness.attacks import require_torchattacks

            require_torchattacks(["pgd"])
        _ = self.splits
        self.build_model(0)

    def build_model(self, seed: int) -> nn.Module:
        """The model with weights from `seed` (common random numbers: one init per generation)."""
        return create_model(self.model_name, self.info, seed=seed)

    # ---- invariant -----------------------------------------------------------------------------------
    def screen(self, thetas: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """Which rows of thetas `(M, 8)` are worth training: bool `(M,)` (all True with rule `off`).

        Non-finite rows never pass, whatever the rule.
        """
        array = np.asarray(thetas, dtype=np.float64).reshape(-1, N_PARAMS)
        if self.invariant == "off":
            return np.isfinite(array).all(axis=1)
        return invariant_holds_batch(array, self.n_classes, self.invariant)

    def violation(self, thetas: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
        """How far each row of thetas `(M, 8)` is from passing the invariant: float `(M,)`, 0 for rows that
        pass (and for every finite row with rule `off`), inf for non-finite rows."""
        array = np.asarray(thetas, dtype=np.float64).reshape(-1, N_PARAMS)
        if self.invariant == "off":
            return np.where(np.isfinite(array).all(axis=1), 0.0, np.inf)
        margin = invariant_margin_batch(array, self.n_classes, self.invariant)
        return np.where(np.isnan(margin), np.inf, np.maximum(-np.nan_to_num(margin, nan=0.0), 0.0))

    # ---- evaluation ----------------------------------------------------------------------------------
    def evaluate(
        self,
        theta: Sequence[float],
        seed: int,
        *,
        stop_at: int | None = None,
        state: str | None = None,
        collapse: str = "",
        reference: str | None = None,
    ) -> Evaluation:
        """Score one theta `(8,)`: rejected without training, or trained from weights and batches `seed`.

        A successive-halving rung passes `stop_at` (train that far on the schedule of `steps`) and `state`
        (a file to resume the candidate's training from and to save it to); the rung is scored on the stated
        fitness, or on clean validation accuracy below the full budget when `robust_every_rung` is off.
        `collapse` turns a model into status `collapsed` when its training loss has not moved ("loss"), or
        also when its validation accuracy is at chance ("any"); "" never.

        `reference` (a loss spec such as "ce") trains that loss instead of theta, with the same weights,
        batches and budget, and scores its clean validation accuracy only: the reference of the clean-accuracy
        constraint (`EvolveConfig.clean_margin`)."""
        if reference is not None:
            with torch_threads(self.threads):
                return self._train_and_score(
                    (), seed, stop_at=stop_at, state=state, collapse="", loss=get_loss(reference), clean_only=True
                )
        if not bool(self.screen([theta])[0]):
            return Evaluation.rejected(float(self.violation([theta])[0]))
        with torch_threads(self.threads):
            return self._train_and_score(theta, seed, stop_at=stop_at, state=state, collapse=collapse)

    def _train_and_score(
        self,
        theta: Sequence[float],
        seed: int,
        *,
        stop_at: int | None,
        state: str | None,
        collapse: str,
        loss: nn.Module | None = None,
        clean_only: bool = False,
    ) -> Evaluation:
        t0 = time.perf_counter()
        device = resolve_device(self.device)
        model = self.build_model(seed)
        loss = loss if loss is not None else TaylorGLOLoss(theta)
        try:
            result = fit(
                model,
                loss,
                self.splits.train,
                steps=self.steps,
                seed=seed,
                device=device,
                **self.fit_options(),
                progress=False,
                checkpoint_path=state,
                stop_at=stop_at,
            )
            status, message, steps_done = result.status, result.message, result.steps_done
            trained, curve = result.steps_done - result.start_step, result.loss_curve
        except NonFiniteLossError as exc:
            status, message, steps_done, trained, curve = "diverged", str(exc), 0, 0, []
        if status != "ok":
            return Evaluation.diverged(steps_done, message, seconds=time.perf_counter() - t0, steps_trained=trained)
        final = stop_at is None or stop_at >= self.steps
        return self.score_model(
            model, seed, t0, final=final, steps_trained=trained, curve=curve, collapse=collapse, clean_only=clean_only
        )

    def collapse_reason(self, accuracy: float, curve: Sequence[tuple[int, float]], mode: str = "any") -> str:
        """Why a trained model counts as collapsed ("" when it does not): a training loss whose first and
        last logged means are equal, or (mode "any") validation accuracy at or below chance (1/K +
        COLLAPSE_MARGIN)."""
        if not mode:
            return ""
        chance = 1.0 / self.n_classes
        if mode == "any" and accuracy <= chance + COLLAPSE_MARGIN:
            return f"validation accuracy {accuracy:.3f} is at chance ({chance:.3f})"
        if len(curve) >= 2:
            first, last = float(curve[0][1]), float(curve[-1][1])
            if abs(last - first) <= FLAT_LOSS_TOLERANCE * max(1.0, abs(first)):
                return f"the training loss has not moved ({first:.6g} -> {last:.6g})"
        return ""

    def score_model(
        self,
        model: nn.Module,
        seed: int,
        t0: float,
        *,
        final: bool = True,
        steps_trained: int | None = None,
        curve: Sequence[tuple[int, float]] = (),
        collapse: str = "",
        clean_only: bool = False,
    ) -> Evaluation:
        """Validation (and, for a robust fitness, robust validation) accuracy of a trained model ->
        `Evaluation("trained")`, or "collapsed" when `collapse_reason(..., collapse)` finds a reason.
        `clean_only` scores 1 - clean validation accuracy whatever the fitness (a reference run)."""
        device = resolve_device(self.device)
        acc = evaluate_accuracy(model, self.splits.val, batch_size=self.recipe.eval_batch_size, device=device)
        return self._scored(
            acc,
            lambda: model,
            seed,
            t0,
            final=final,
            steps_trained=steps_trained,
            curve=curve,
            collapse=collapse,
            clean_only=clean_only,
        )

    def _scored(
        self,
        acc: float,
        get_model: Callable[[], nn.Module],
        seed: int,
        t0: float,
        *,
        final: bool,
        steps_trained: int | None,
        curve: Sequence[tuple[int, float]],
        collapse: str,
        clean_only: bool = False,
    ) -> Evaluation:
        """The evaluation of a model with validation accuracy `acc` (`get_model` builds it when the robust
        fitness needs it); `t0` is when its evaluation started. The robust part is measured at the full
        budget, and at every rung when `robust_every_rung` (a rung then ranks by the fitness it states)."""
        reason = self.collapse_reason(acc, curve, collapse)
        if reason:
            return Evaluation("collapsed", 1.0 - acc, acc, None, time.perf_counter() - t0, reason, steps_trained)
        attacked = self.fitness.robust and not clean_only and (final or self.robust_every_rung)
        robust = self.robust_accuracy(get_model(), seed) if attacked else None
        fitness = self.fitness.combine(acc, robust) if attacked else 1.0 - acc
        seconds = time.perf_counter() - t0
        if not math.isfinite(fitness):  # cannot happen for accuracies; guard pycma all the same
            return Evaluation.diverged(self.steps, "non-finite fitness", seconds, acc, robust)
        return Evaluation("trained", float(fitness), float(acc), robust, seconds, "", steps_trained)

    def robust_accuracy(self, model: nn.Module, seed: int) -> float:
        """Accuracy under the fitness attack on the first `attack_samples` validation images.

        The attack is the robustness harness's (cross-entropy on logits, inputs in [0, 1], RNG forked).
        """
        # lazy: the CLI imports evolution to build its parser; robustness loads pandas (--help stays light)
        from robust_glo.robustness import evaluate_model

        spec = self.fitness
        label = "fgsm" if spec.attack == "fgsm" else f"pgd:steps={spec.pgd_steps}"
        val = self.splits.val.subset(self.attack_samples)
        table = evaluate_model(
            model,
            val.images,
            val.labels,
            attacks=[label],
            eps=[spec.eps],
            batch_size=self.recipe.eval_batch_size,
            device=resolve_device(self.device),
            seed=seed,
        )
        row = table[(table["attack"] != "clean") & (table["attack"] != "worst") & (table["eps"] == spec.eps)]
        return float(row["accuracy"].iloc[0])

    # ---- batched population training (torch.func) ---------------------------------------------------
    def evaluate_population(
        self,
        thetas: np.ndarray | Sequence[Sequence[float]],
        seed: int,
        *,
        stop_at: int | None = None,
        collapse: str = "",
    ) -> list[Evaluation]:
        """Score thetas `(M, 8)` that share `seed`, training the ones that pass the invariant together
        as one population (`robust_glo.training.population`). Rejected ones are not trained. A rung
        (`stop_at`) is trained from the start, not resumed: the population keeps no per-candidate state."""
        array = np.asarray(thetas, dtype=np.float64).reshape(-1, N_PARAMS)
        keep = self.screen(array)
        violation = self.violation(array)
        out: list[Evaluation | None] = [None if k else Evaluation.rejected(float(v)) for k, v in zip(keep, violation)]
        todo = np.flatnonzero(keep)
        if len(todo):
            with torch_threads(self.threads):
                t0 = time.perf_counter()
                device = resolve_device(self.device)
                base = self.build_model(seed)
                pop = train_population(
                    [base] * len(todo),
                    [TaylorGLOLoss(array[i]) for i in todo],
                    self.splits.train,
                    steps=self.steps,
                    seeds=[seed] * len(todo),
                    device=device,
                    stop_at=stop_at,
                    **self.fit_options(),
                )
                accs = pop.accuracy(self.splits.val, batch_size=self.recipe.eval_batch_size)
                share = (time.perf_counter() - t0) / len(todo)  # wall time, split evenly
                final = stop_at is None or stop_at >= self.steps
                for j, i in enumerate(todo):
                    result = pop.results[j]
                    if result.status != "ok":
                        out[i] = Evaluation.diverged(result.steps_done, result.message, seconds=share)
                        continue
                    t1 = time.perf_counter() - share
                    out[i] = self._scored(
                        float(accs[j]),
                        lambda j=j: pop.member(j, self.build_model(seed)),
                        seed,
                        t1,
                        final=final,
                        steps_trained=result.steps_done,
                        curve=result.loss_curve,
                        collapse=collapse,
                    )
        return [e for e in out if e is not None]
