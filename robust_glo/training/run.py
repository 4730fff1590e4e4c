"""One training run end to end: data, model, loss, fit, evaluate, and a run directory that records it.

Run directory layout:
    config.json       the resolved TrainConfig
    environment.json  seeds, library versions, hardware
    metrics.json      status, loss curve, validation and test accuracy, wall time, throughput
    model.pt          final weights (state_dict; loaded with weights_only=True)
    checkpoint.pt     resumable state while the run is in progress (removed when it finishes)

A finished run is reused; one whose config.json, metrics.json or model.pt cannot be read (cut short by a
crash or a full disk) is trained again.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robust_glo.data import DatasetSplits, load_dataset
from robust_glo.data.registry import DATASETS, registered_source
from robust_glo.errors import ConfigError, NonFiniteLossError, ResumeError, StateFileError
from robust_glo.losses import display_name, get_loss
from robust_glo.losses.user import check_loss_on_probe
from robust_glo.models import create_model
from robust_glo.training.config import TrainConfig
from robust_glo.training.population import train_population
from robust_glo.training.precision import fit_precision_options
from robust_glo.training.recipe import without_execution_options
from robust_glo.training.trainer import FitResult, evaluate_accuracy, fit
from robust_glo.utils import atomic_write_json, read_json, read_json_or_none, resolve_device, run_metadata


@dataclass
class TrainResult:
    status: str  # "ok" or "diverged"
    config: TrainConfig
    model: nn.Module
    val_accuracy: float | None
    test_accuracy: float | None
    seconds: float
    metrics: dict[str, Any]
    out_dir: Path | None = None
    reused: bool = False  # True when loaded from a finished run directory


def budget_steps(config: TrainConfig, n_train: int) -> tuple[int, tuple[int, ...]]:
    """The step budget and step-schedule milestones, converting epochs with the training-set size."""
    per_epoch = config.recipe.steps_per_epoch(n_train)
    steps = config.steps if config.steps is not None else math.ceil(config.epochs * per_epoch)
    return steps, config.recipe.milestone_steps(n_train)


def _finished_metrics(out_dir: Path, config: TrainConfig) -> dict[str, Any] | None:
    """The metrics of the finished run of `config` in `out_dir`, or None when there is none. A record that
    cannot be read (config.json or metrics.json cut short) counts as no finished run: it is trained again."""
    stored = read_json_or_none(out_dir / "config.json", expect=dict)
    metrics = read_json_or_none(out_dir / "metrics.json", expect=dict)
    if stored is None or metrics is None or metrics.get("status") not in ("ok", "diverged"):
        return None
    if without_execution_options(stored) != without_execution_options(config.to_dict()):
        return None
    return metrics if metrics["status"] == "diverged" or (out_dir / "model.pt").is_file() else None


def is_finished(out_dir: Path, config: TrainConfig) -> bool:
    """Whether `out_dir` holds the finished run of `config` (reused rather than trained again)."""
    return _finished_metrics(out_dir, config) is not None


RETRAIN = "delete the run directory and train it again"


def load_trained_model(run_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model of a finished run directory and load its weights (weights_only=True). A config.json
    or model.pt that cannot be read is a one-line `StateFileError` naming it."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file() or not (run_dir / "model.pt").is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a finished training run (needs config.json and model.pt)")
    config = TrainConfig.from_dict(read_json(run_dir / "config.json", expect=dict, fix=RETRAIN))
    model = create_model(
        config.model or DATASETS[config.dataset].default_model, DATASETS[config.dataset], seed=config.seed
    )
    weights = run_dir / "model.pt"
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StateFileError(f"{str(weights)!r} cannot be read ({first}); {RETRAIN}") from None
    return model.to(device).eval()


def train_run(
    config: TrainConfig,
    out_dir: str | Path | None = None,
    *,
    splits: DatasetSplits | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train one (loss, dataset, model, seed) combination, reusing `out_dir` when it already holds it."""
    config = config.resolved()
    loss_fn = get_loss(config.loss)  # resolve first: a bad spec fails before any work
    _probe(loss_fn, config)  # detached, constant, overflowing: before anything is written
    device = resolve_device(config.device)
    out = Path(out_dir) if out_dir is not None else None
    metrics = _finished_metrics(out, config) if out is not None else None
    model = None
    if metrics is not None and metrics["status"] == "ok":
        try:
            model = load_trained_model(out, device)
        except StateFileError:  # model.pt cut short: the run is trained again
            metrics = None
    if metrics is not None:
        model = model or create_model(config.model, _info(config), seed=config.seed)
        _rebuild_environment(out, config)
        return TrainResult(
            metrics["status"],
            config,
            model,
            metrics.get("val_accuracy"),
            metrics.get("test_accuracy"),
            metrics.get("seconds", 0.0),
            metrics,
            out,
            reused=True,
        )
    # The model first: one that does not fit the data fails before any data is read or anything is written
    # (its weights come from the seed alone, so building it earlier changes nothing).
    model = create_model(config.model, _info(config), seed=config.seed)
    if splits is None:
        splits = load_dataset(
            config.dataset, root=config.data_root, test_size=config.test_size, **config.recipe.split_options()
        )
    refuse_foreign_checkpoint(out, config)
    _start_run_dir(out, config, splits)
    steps, _ = budget_steps(config, len(splits.train))
    options = config.recipe.fit_options(len(splits.train), augment_default=splits.info.augment)
    options.update(fit_precision_options(config.precision))
    result = fit(
        model,
        loss_fn,
        splits.train,
        steps=steps,
        seed=config.seed,
        device=device,
        **options,
        progress=f"{display_name(config.loss)} seed {config.seed}" if progress else False,
        checkpoint_path=(out / "checkpoint.pt") if out is not None else None,
        checkpoint_every=config.checkpoint_every,
    )
    _refuse_broken_at_step_zero(config, result)
    return _finish_run(config, out, model, result, splits, steps, device)


def refuse_foreign_checkpoint(out: Path | None, config: TrainConfig) -> None:
    """A checkpoint left by a run with other settings (another learning rate, say) would be resumed with its
    old weights and optimizer state under the new config: a one-line `ResumeError` naming the first setting
    that differs, before anything is written (the checkpoint is kept)."""
    if out is None or not (out / "checkpoint.pt").is_file():
        return
    stored = read_json_or_none(out / "config.json", expect=dict)
    if stored is None:
        return
    theirs, ours = without_execution_options(stored), without_execution_options(config.to_dict())
    differing = [k for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
    if differing:
        key = differing[0]
        raise ResumeError(
            f"{str(out)!r} holds a checkpoint of a run with other settings ({key} {theirs.get(key)!r}, here "
            f"{ours.get(key)!r}); give another output folder, or delete {str(out / 'checkpoint.pt')!r} to train "
            "from the start"
        )


def _probe(loss_fn: Any, config: TrainConfig) -> None:
    check_loss_on_probe(loss_fn, _info(config).num_classes, config.loss, batch=config.recipe.batch_size)


def _refuse_broken_at_step_zero(config: TrainConfig, result: FitResult) -> None:
    """A loss that is non-finite on fresh weights, before any update, is broken rather than diverged (a
    built-in loss's parameters overflow, say): a one-line `NonFiniteLossError`, as for a user loss."""
    if result.status == "diverged" and result.steps_done == 0 and getattr(result, "start_step", 0) == 0:
        raise NonFiniteLossError(
            f"loss spec {config.loss!r} is not finite on fresh weights, before any update "
            f"({result.message}): its parameters overflow in float32 on this model's logits; give smaller parameters"
        )


def train_runs_together(
    configs: Sequence[TrainConfig],
    out_dirs: Sequence[str | Path],
    *,
    splits: DatasetSplits | None = None,
    max_members: int = 0,
) -> list[TrainResult]:
    """Train several (loss, seed) runs of one dataset, model and recipe as populations (the population
    engine, `train_population`), writing each run directory exactly as `train_run` would; finished run
    directories are reused. Runs whose configs differ in anything but loss and seed train in separate
    populations; `max_members` caps a population's size (0: no cap). A population is not checkpointed:
    an interruption loses the populations in flight, never a finished run directory."""
    configs = [c.resolved() for c in configs]
    outs = [Path(o) for o in out_dirs]
    results: list[TrainResult | None] = [None] * len(configs)
    groups: dict[str, list[int]] = {}
    for i, (config, out) in enumerate(zip(configs, outs)):
        _probe(get_loss(config.loss), config)  # before any work
        if is_finished(out, config):
            results[i] = train_run(config, out, splits=splits, progress=False)  # reads it back
            continue
        shared = {k: v for k, v in config.to_dict().items() if k not in ("loss", "seed")}
        groups.setdefault(json.dumps(shared, sort_keys=True, default=str), []).append(i)
    for members in groups.values():
        size = max_members if max_members > 0 else len(members)
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            first = configs[chunk[0]]
            data = (
                splits
                if splits is not None
                else load_dataset(
                    first.dataset, root=first.data_root, test_size=first.test_size, **first.recipe.split_options()
                )
            )
            device = resolve_device(first.device)
            steps, _ = budget_steps(first, len(data.train))
            models = [create_model(configs[i].model, data.info, seed=configs[i].seed) for i in chunk]
            for i in chunk:
                _start_run_dir(outs[i], configs[i], data)
            pop = train_population(
                models,
                [get_loss(configs[i].loss) for i in chunk],
                data.train,
                steps=steps,
                seeds=[configs[i].seed for i in chunk],
                device=device,
                **first.recipe.fit_options(len(data.train), augment_default=data.info.augment)
                | fit_precision_options(first.precision),
            )
            for j, i in enumerate(chunk):
                model = pop.member(j, create_model(configs[i].model, data.info, seed=configs[i].seed)).to(device)
                _refuse_broken_at_step_zero(configs[i], pop.results[j])
                extra = {
                    "trained_as": f"population of {len(chunk)}",
                    "population_seconds": pop.seconds,
                    "population_size": len(chunk),
                }
                results[i] = _finish_run(configs[i], outs[i], model, pop.results[j], data, steps, device, extra)
    return [r for r in results if r is not None]


def _start_run_dir(out: Path | None, config: TrainConfig, splits: DatasetSplits) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", config.to_dict())
    atomic_write_json(
        out / "environment.json",
        run_metadata(seed=config.seed, split_seed=config.recipe.split_seed)
        | {"data_source": splits.source, "precision": config.precision},
    )


def _rebuild_environment(out: Path, config: TrainConfig) -> None:
    """A reused run's environment.json that cannot be read (cut short from outside) is metadata only: it is
    written again from this machine, with a "rebuilt" note (the versions and hardware of the original
    training are lost; the run itself is kept)."""
    path = out / "environment.json"
    if read_json_or_none(path, expect=dict) is not None:
        return
    atomic_write_json(
        path,
        run_metadata(seed=config.seed, split_seed=config.recipe.split_seed)
        | {
            "data_source": registered_source(config.dataset),
            "precision": config.precision,
            "rebuilt": "environment.json could not be read and was written again when the run was reused: "
            "versions and hardware are this machine's, not necessarily those the run was trained on",
        },
    )


def _finish_run(
    config: TrainConfig,
    out: Path | None,
    model: nn.Module,
    result: FitResult,
    splits: DatasetSplits,
    steps: int,
    device: torch.device,
    extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Evaluate a trained model, write metrics.json and model.pt (atomically), and return the result."""
    val_acc = test_acc = None
    if result.status == "ok":
        batch = config.recipe.eval_batch_size
        val_acc = evaluate_accuracy(model, splits.val, batch_size=batch, device=device) if len(splits.val) else None
        test_acc = evaluate_accuracy(model, splits.test, batch_size=batch, device=device)
    metrics = {
        "status": result.status,
        "message": result.message,
        "steps": result.steps_done,
        "budget_steps": steps,
        "loss_curve": result.loss_curve,
        "final_train_loss": result.loss_curve[-1][1] if result.loss_curve else None,
        "val_accuracy": val_acc,
        "test_accuracy": test_acc,
        "n_val": len(splits.val),
        "n_test": len(splits.test),
        "seconds": result.seconds,
        "samples_per_second": result.samples_per_second,
        # The step a checkpoint resumed from (0: trained in one go); seconds and samples_per_second cover
        # the steps trained from there.
        "resumed_from": int(getattr(result, "start_step", 0) or 0),
        "device": str(device),
        "precision": config.precision,
        # not part of the run's identity (it changes rounding only): recorded so that runs trained in
        # different layouts, on different machines, can be told apart (docs/data.md)
        "layout": getattr(result, "layout", "contiguous"),
        **(extra or {}),
    }
    if out is not None:
        if result.status == "ok":
            tmp = out / "model.pt.tmp"
            torch.save(model.state_dict(), tmp)
            tmp.replace(out / "model.pt")
        atomic_write_json(out / "metrics.json", metrics)
        (out / "checkpoint.pt").unlink(missing_ok=True)
    model.eval()
    return TrainResult(result.status, config, model, val_acc, test_acc, result.seconds, metrics, out)


def _info(config: TrainConfig):
    return DATASETS[config.dataset]
