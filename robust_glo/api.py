"""The short public API: one call per stage of the pipeline, with flat keyword options.

Each function builds the stage's typed configuration (validated once, with one-line errors naming the
bad value) and runs it; the subpackages hold the configurations and engines for finer control.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily below: torch, pycma and pandas are slow to import
    from robust_glo.benchmark import BenchmarkResult, Suite
    from robust_glo.evolution import EvolutionResult
    from robust_glo.training import TrainResult


def train(
    loss: str = "ce",
    *,
    dataset: str = "fashion-mnist",
    steps: int | None = 1000,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = False,
    **options: Any,
) -> TrainResult:
    """Train the dataset's model (or `model=...`) with `loss` for `steps` SGD steps from `seed`.

    `options` are further training settings with their flat names (`lr`, `batch_size`, `epochs`,
    `schedule`, `model`, `preset`, ...; see docs/suites.md). With `out`, the run directory records the
    configuration, seeds, versions, metrics and weights, and a finished run there is reused.

    >>> result = train("label_smoothing:0.1", dataset="digits", steps=200)
    >>> result.test_accuracy, result.model   # the model maps images (N, C, H, W) in [0, 1] to logits (N, K)
    """
    from robust_glo.training import TrainConfig, train_run

    preset = options.pop("preset", "default")
    config = TrainConfig.from_preset(preset, loss=loss, dataset=dataset, steps=steps, seed=seed, **options)
    return train_run(config, out, progress=progress)


def evolve(
    *, dataset: str = "fashion-mnist", out: str | Path = "runs/evolve", resume: bool = False, **options: Any
) -> EvolutionResult:
    """Discover a TaylorGLO loss with CMA-ES; `options` are the `robust-glo evolve` flags as keywords
    (`generations`, `popsize`, `steps`, `fitness`, `invariant`, `backend`, `lr`, ...).

    >>> result = evolve(dataset="digits", generations=3, popsize=8, steps=100, out="runs/evo")
    >>> result.best["theta"]   # 8 numbers; also runs/evo/best_loss.json, usable as taylorglo:runs/evo/best_loss.json
    """
    from robust_glo.evolution import EvolveConfig, run_evolution

    return run_evolution(EvolveConfig.create(dataset=dataset, out=str(out), **options), resume=resume)


def run_benchmark(
    suite: str | Path | Suite,
    out: str | Path,
    *,
    variant: str | None = None,
    losses: tuple[str, ...] = (),
    progress: bool = True,
    backend: str = "auto",
) -> BenchmarkResult:
    """Run (or resume) a benchmark suite (a name under evaluations/, a TOML path, or a `Suite`) into
    the folder `out`: evolve -> train -> attack -> analyze -> report. `losses` adds arms to the suite
    (any loss spec, including `my_losses.py:fn`). `backend`: "auto" (one one-thread Ray task per core on
    a multi-core CPU, else this process), "local" or "ray", as `robust-glo benchmark --backend`.

    >>> result = run_benchmark("quick", "runs/quick")
    >>> result.report   # runs/quick/report.html
    """
    from robust_glo.benchmark import Suite, load_suite
    from robust_glo.benchmark import run_benchmark as _run

    loaded = suite if isinstance(suite, Suite) else load_suite(suite, variant=variant)
    if losses:
        loaded = loaded.with_losses(list(losses))
    return _run(loaded, out, progress=progress, backend=backend)


def evaluate_model(
    model: Any, inputs: Any, labels: Any, attacks: Any = ("fgsm", "pgd"), eps: Any = (0.0, 0.05, 0.1), **options: Any
) -> Any:
    """Robust accuracy of `model` (images `(N, C, H, W)` in [0, 1] -> logits `(N, K)`) on `inputs` with
    integer `labels` `(N,)`, as a tidy pandas table (see `robust_glo.robustness.evaluate_model`).

    >>> table = evaluate_model(model, images, labels, attacks=["fgsm", "pgd:steps=20"], eps=[0, 0.05, 0.1])
    """
    from robust_glo.robustness import evaluate_model as _evaluate

    return _evaluate(model, inputs, labels, attacks, eps, **options)


def analyze_loss(loss: Any, classes: int = 10) -> Any:
    """The learning rule of any loss (a spec or a callable `loss(logits (N, K), targets (N,))`) for
    `classes` classes: effective target p*, label-smoothing equivalent, pull/push, invariants.

    >>> analyze_loss("baikal", 10).effective_target   # 0.3162...
    """
    from robust_glo.analysis import analyze_loss as _analyze

    return _analyze(loss, classes)
