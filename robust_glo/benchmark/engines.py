"""The benchmark's only contact points with the engines it drives: evolution, training, attacks, analysis.

Each function here calls the engine's public API and does nothing else, so that the pipeline reads as
a list of stages and the engines can change behind one small module. The train and attack stages run
their (loss x seed) grid through an executor (`executor`, `robust_glo.benchmark.executors`), which returns
a typed `PieceOutcome` per `Piece`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from robust_glo.analysis import analyze_loss, plot_analyses
from robust_glo.benchmark.executors import (
    Executor,
    Piece,
    PieceOutcome,
    PopulationExecutor,
    RayExecutor,
    SequentialExecutor,
    raise_crashed,
)
from robust_glo.comparison import Comparison
from robust_glo.comparison.config import CompareConfig
from robust_glo.comparison.runner import comparison_splits, finish_comparison
from robust_glo.errors import ConfigError, ResumeError
from robust_glo.evolution import run_evolution as _run_evolution
from robust_glo.evolution.config import EvolveConfig


def validate_evolve_options(options: dict[str, Any], *, dataset: str, model: str | None) -> dict[str, Any]:
    """Check a suite's [evolve] table with the evolution engine's own config; return it normalized
    (flag-style `reeval-seeds` spelled `reeval_seeds`), without the keys the suite sets."""
    EvolveConfig.from_dict({**options, "dataset": dataset, "model": model, "out": "unused"}, source="[evolve]")
    return {str(k).replace("-", "_"): v for k, v in options.items()}


def evolve_config(
    options: dict[str, Any],
    *,
    dataset: str,
    model: str | None,
    out: Path,
    data_root: str | None,
    device: str,
    progress: bool,
) -> Any:
    """The `EvolveConfig` of a suite's [evolve] table, writing into `out`."""
    values = {"progress": progress, **options, "dataset": dataset, "model": model, "out": str(out), "device": device}
    if data_root is not None:
        values["data_root"] = data_root
    return EvolveConfig.from_dict(values, source="[evolve]")


def evolve_precision(options: dict[str, Any], *, dataset: str, model: str | None, device: str) -> str:
    """The concrete precision ("fp32" or "bf16") the candidates of a suite's [evolve] table (without its
    `searches` key) train in on this machine."""
    config = evolve_config(
        options, dataset=dataset, model=model, out=Path("unused"), data_root=None, device=device, progress=False
    )
    return config.precision


def run_evolution(config: Any, *, require_best: bool = True) -> int:
    """Run the evolution of `config`, or continue it from its run directory (`--resume` semantics: finished
    candidates are read back, not retrained). Returns the number of evaluations this call ran (0 when the
    run had already finished). `require_best`: a run that trained no usable candidate is a `ConfigError`
    (one search of several may come back empty; the choice among them then leaves it out)."""
    try:
        result = _run_evolution(config, resume=True)
    except ResumeError as exc:
        raise ResumeError(
            f"{exc} (the suite's [evolve] table, or what it resolves to on this machine such as precision "
            f"'auto', changed since {config.out} was made: restore it, or remove that folder to evolve again)"
        ) from None
    if result.best is None and require_best:
        raise ConfigError(
            f"evolution in {config.out} trained no usable candidate, so there is no evolved loss; "
            "raise [evolve] generations or popsize, or check the training settings"
        )
    return int(result.evaluated_now)


def executor(
    config: CompareConfig,
    out: Path,
    *,
    backend: str,
    population: bool,
    max_members: int,
    ray_options: dict[str, Any],
    progress: bool,
) -> Executor:
    """The executor of the (loss x seed) grid of comparison `config` in folder `out`: Ray tasks with the
    `ray` backend, populations of at most `max_members` networks when `population` is on, else one piece
    after another (`robust_glo.benchmark.executors`)."""
    if backend == "ray":
        return RayExecutor(config, out, progress=progress, ray_options=ray_options)
    if population:
        return PopulationExecutor(config, out, progress=progress, max_members=max_members)
    return SequentialExecutor(config, out, progress=progress)


def gather_attacks(
    config: CompareConfig, out: Path, outcomes: list[PieceOutcome], *, log: Callable[[str], None]
) -> Comparison:
    """The comparison's tables from the attack stage's outcomes (every piece evaluated or recorded as
    diverged): the transfer diagnostic, then results, flags, outcomes, diagnostics and summary in `out`."""
    config = config.validated()
    _, attacked = comparison_splits(config)
    files = [o.files for o in outcomes if o.files is not None]
    return finish_comparison(config, out, attacked, files, [o.line for o in outcomes], log)


def analyze(spec: str, n_classes: int) -> dict[str, Any]:
    """`analyze_loss(spec, n_classes).to_dict()`: effective target, invariant, ... (JSON-ready)."""
    return analyze_loss(spec, n_classes).to_dict()


def plot_losses(specs: list[str], n_classes: int, out_dir: Path) -> list[Path]:
    """The analysis engine's learning-rule figures of `specs`, PNG and SVG, into `out_dir`."""
    return plot_analyses(specs, out_dir, n_classes)


__all__ = [
    "Executor",
    "Piece",
    "PieceOutcome",
    "PopulationExecutor",
    "RayExecutor",
    "SequentialExecutor",
    "analyze",
    "evolve_config",
    "executor",
    "gather_attacks",
    "plot_losses",
    "raise_crashed",
    "run_evolution",
    "validate_evolve_options",
]
