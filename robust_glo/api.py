"""The short public API: one call per stage of the pipeline, with flat keyword options.

Each function builds the stage's typed configuration (validated once, with one-line errors naming the
bad value) and runs it; the subpackages hold the configurations and engines for finer control.

Values from a script are parsed once, here at the boundary: a numeric option takes any real scalar of
its kind (an int, a numpy integer or float, a `Fraction`, a 0-d tensor; an integral float for an integer)
or a string the command line would take ("1000", "0.05"); budgets (`eps`, `eps_l2`) take a real scalar,
a string read as `--eps` reads it ("0,0.05,8/255") or a sequence of these; a bool option (`progress`,
`resume`, `amp`, `nesterov`, ...) takes a bool or one of true/false, yes/no, 1/0 in any case (never a
truthy string: "no" is false). Anything else is a one-line `robust_glo.errors.ConfigError` (a
`RobustGloError`) that quotes the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from robust_glo.data import load_dataset
from robust_glo.errors import ConfigError, DatasetError
from robust_glo.training import TrainConfig, TrainResult, train_run
from robust_glo.training.recipe import Recipe
from robust_glo.utils.parsing import coerce_numbers, field_kinds, is_sequence, parse_bool, parse_integer, show

# The stages above training are imported inside the functions that run them: `robust_glo/__init__` imports
# this module, so whatever it imports at the top every `import robust_glo.<anything>` pays, Ray workers too.
if TYPE_CHECKING:
    from robust_glo.benchmark import BenchmarkResult, Suite
    from robust_glo.evolution import EvolutionResult

# Lower bounds of the integer options, for the words of an error about one that cannot be read.
_MINIMUMS = {
    "steps": 1,
    "seed": 0,
    "batch_size": 1,
    "eval_batch_size": 1,
    "test_size": 1,
    "val_size": 0,
    "split_seed": 0,
    "checkpoint_every": 0,
    "generations": 1,
    "evaluations": 1,
    "attack_samples": 1,
    "topk": 1,
    "reeval_seeds": 1,
    "max_retries": 0,
}


def _folder(value: Any, name: str, *, optional: bool = False) -> Path | None:
    """A folder argument: a str or path-like (None too where `optional`); anything else is a one-line
    `ConfigError`."""
    import os

    if value is None and optional:
        return None
    if isinstance(value, (str, os.PathLike)) and str(os.fspath(value)).strip():
        return Path(value)
    what = "a folder path (a str or pathlib.Path)" + (", or None" if optional else "")
    raise ConfigError(f"{name} must be {what}, got {show(value)}")


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
    `schedule`, `model`, `preset`, ...; see docs/suites.md). Numbers may be numpy scalars or strings such
    as "0.1" (see the module docstring). With `out`, the run directory records the configuration, seeds,
    versions, metrics and weights, and a finished run there is reused. Raises `ConfigError` (one line) for
    an unknown or bad option, before anything is trained.

    >>> result = train("label_smoothing:0.1", dataset="digits", steps=200)
    >>> result.test_accuracy, result.model   # the model maps images (N, C, H, W) in [0, 1] to logits (N, K)
    """
    progress = parse_bool(progress, "progress")
    out = _folder(out, "out", optional=True)
    preset = options.pop("preset", "default")
    values = coerce_numbers({"steps": steps, "seed": seed, **options}, field_kinds(TrainConfig, Recipe), _MINIMUMS)
    config = TrainConfig.from_preset(preset, loss=loss, dataset=dataset, **values)
    config.validate()  # every value checked before anything is read or written
    return train_run(config, out, progress=progress)


def evolve(
    *, dataset: str = "fashion-mnist", out: str | Path = "runs/evolve", resume: bool = False, **options: Any
) -> EvolutionResult:
    """Discover a TaylorGLO loss with CMA-ES; `options` are the `robust-glo evolve` flags as keywords
    (`generations`, `popsize`, `steps`, `fitness`, `invariant`, `backend`, `lr`, ...). Numbers may be numpy
    scalars or strings such as "20"; a bad option is a one-line `ConfigError` before anything runs.

    >>> result = evolve(dataset="digits", generations=3, popsize=8, steps=100, out="runs/evo")
    >>> result.best["theta"]   # 8 numbers; also runs/evo/best_loss.json, usable as taylorglo:runs/evo/best_loss.json
    """
    # lazy: pycma (and matplotlib with it) would make `import robust_glo` 1.2 s slower
    from robust_glo.evolution import EvolveConfig, run_evolution

    resume = parse_bool(resume, "resume")
    out = _folder(out, "out")
    values = coerce_numbers(
        {str(k).replace("-", "_"): v for k, v in options.items()}, field_kinds(EvolveConfig, Recipe), _MINIMUMS
    )
    config = EvolveConfig.create(dataset=dataset, out=str(out), **values)
    return run_evolution(config, resume=resume, resume_hint=("call evolve(..., resume=True)", "another out"))


def run_benchmark(
    suite: str | Path | Suite,
    out: str | Path,
    *,
    variant: str | None = None,
    losses: str | tuple[str, ...] | list[str] = (),
    progress: bool = True,
    backend: str = "auto",
    track: bool | None = None,
    tracking_uri: str | None = None,
) -> BenchmarkResult:
    """Run (or resume) a benchmark suite (a shipped suite's name such as "quick", a TOML path, or a `Suite`) into
    the folder `out`: evolve -> train -> attack -> analyze -> report. `losses` adds arms to the suite
    (one loss spec or a list of them, including `my_losses.py:fn`). `backend`: "auto" (one one-thread Ray
    task per core on a multi-core CPU, else this process), "local" or "ray", as `robust-glo benchmark
    --backend`. `track` (None: the suite's `[suite] track`) logs every stage to MLflow, at `tracking_uri`
    (None: the suite's, else sqlite:///<out>/mlflow.db), as `robust-glo benchmark --track`. A bad suite or
    loss is a one-line `ConfigError` before anything runs.

    >>> result = run_benchmark("quick", "runs/quick")
    >>> result.report   # runs/quick/report.html
    """
    # lazy: the benchmark loads every stage (pandas, pycma, seaborn); `import robust_glo` stays light
    from robust_glo.benchmark import Suite, load_suite
    from robust_glo.benchmark import run_benchmark as _run

    progress = parse_bool(progress, "progress")
    out = _folder(out, "out")
    added = [losses] if isinstance(losses, str) else losses
    if not is_sequence(added) or not all(isinstance(spec, str) for spec in added):
        raise ConfigError(f"losses must be a loss spec or a list of them, got {show(losses)}")
    loaded = suite if isinstance(suite, Suite) else load_suite(suite, variant=variant)
    if added:
        loaded = loaded.with_losses(list(added))
    if track is not None:
        track = parse_bool(track, "track")
    return _run(loaded, out, progress=progress, backend=backend, track=track, tracking_uri=tracking_uri)


def evaluate_model(
    model: Any, inputs: Any, labels: Any, attacks: Any = ("fgsm", "pgd"), eps: Any = (0.0, 0.05, 0.1), **options: Any
) -> Any:
    """Robust accuracy of `model` (images `(N, C, H, W)` in [0, 1] -> logits `(N, K)`) on `inputs` with
    integer `labels` `(N,)`, as a tidy pandas table (see `robust_glo.robustness.evaluate_model`).

    `eps`: L-infinity budgets in [0, 1] as a number, a string such as "0,0.05,8/255", or a sequence of
    these (`eps_l2=` the same for L2 radii); `options`: `batch_size`, `seed`, `device`, `eps_l2`, ...
    The model is attacked in its own dtype (float64, float32, float16 or bfloat16; a parameter-free model
    in the inputs' dtype). `model` is any `torch.nn.Module`; a plain callable `f(images) -> logits` is
    wrapped as a parameter-free module (run in the inputs' dtype); anything else, and an unknown option,
    is a one-line `ConfigError`. Raises a one-line `ConfigError` for a bad value, or an attack that cannot run in
    the model's dtype, before any attack runs.

    >>> table = evaluate_model(model, images, labels, attacks=["fgsm", "pgd:steps=20"], eps=[0, 0.05, 0.1])
    """
    import inspect

    # lazy: robustness loads pandas; `import robust_glo` stays light
    from robust_glo.robustness import evaluate_model as _evaluate

    valid = [name for name, p in inspect.signature(_evaluate).parameters.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"unknown evaluate_model option(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return _evaluate(model, inputs, labels, attacks, eps, **options)


def load_test_images(dataset: str = "fashion-mnist", n: int | None = None, *, root: str | Path | None = None) -> Any:
    """The test split of `dataset` as `(images, labels)`: images float32 `(N, C, H, W)` in [0, 1], labels
    int64 `(N,)`, ready for a model from `train` and for `evaluate_model`. `n` (an integer >= 1) keeps a fixed
    seeded subset of n images that covers every class: the images a suite with `[attack] n = N` attacks
    (default: the whole split). `root` is the data root (docs/data.md says where files are looked for and
    downloaded). `robust_glo.load_dataset` gives the train and validation splits too.

    >>> images, labels = load_test_images("digits", n=200)   # (200, 1, 8, 8), (200,)
    """
    n = None if n is None else parse_integer(n, "n", minimum=1)
    root = _folder(root, "root", optional=True)
    test = load_dataset(dataset, root=root).test  # the files are read once and kept
    if n is not None and n > len(test):
        raise DatasetError(
            f"n {n} is more than the {len(test)} images in the test split of {dataset}; give at most "
            f"{len(test)}, or leave n unset for the whole split"
        )
    if n is not None:
        test = load_dataset(dataset, root=root, test_size=n).test
    return test.images, test.labels


def analyze_loss(loss: Any, classes: int = 10) -> Any:
    """The learning rule of any loss (a spec or a callable `loss(logits (N, K), targets (N,))`) for
    `classes` classes (an integer >= 2 of any kind, or a string such as "10"): effective target p*,
    label-smoothing equivalent, pull/push, invariants.

    >>> analyze_loss("baikal", 10).effective_target   # 0.3162...
    """
    # lazy: analysis loads scipy (0.6 s); `import robust_glo` stays light
    from robust_glo.analysis import analyze_loss as _analyze

    return _analyze(loss, parse_integer(classes, "classes", minimum=2))
