"""Argument helpers shared by subcommands: the flags that mean the same thing on every subcommand that
has them (see `robust_glo.cli` for the conventions) are added here, once."""

from __future__ import annotations

import argparse

from robust_glo.data.registry import DATASETS
from robust_glo.errors import ConfigError
from robust_glo.utils.device import resolve_device
from robust_glo.utils.parsing import SEED_RANGE, parse_seed


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def seed_int(text: str) -> int:
    """A seed flag: an integer in 0 .. 2**63-1 (what the random generators take)."""
    try:
        return parse_seed(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"must be an integer in {SEED_RANGE}, got {text!r}") from None


SEEDS_VALID = "a count N >= 1 (the seeds 0..N-1) or a comma list of distinct integers in 0 .. 2**63-1, such as 0,5,9"


def seed_list(text: str) -> list[int]:
    """`--seeds`: a count N (the seeds 0 .. N-1) or a comma list of seeds ("0,5,9"), as a suite's `seeds`.
    A bad value is named in the message: the item of a list that is not a seed, or the count."""
    if "," not in text:
        try:
            count = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither a count nor a list of seeds; give {SEEDS_VALID}"
            ) from None
        if count < 1:
            raise argparse.ArgumentTypeError(f"the count {text!r} gives no seeds; give {SEEDS_VALID}")
        return list(range(count))
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty item; give {SEEDS_VALID}")
    seeds = []
    for item in items:
        try:
            seeds.append(parse_seed(item))
        except ConfigError:
            raise argparse.ArgumentTypeError(f"item {item!r} of {text!r} is not a seed; give {SEEDS_VALID}") from None
    twice = next((seed for k, seed in enumerate(seeds) if seed in seeds[:k]), None)
    if twice is not None:
        raise argparse.ArgumentTypeError(f"{text!r} lists a seed twice ({twice}); give {SEEDS_VALID}")
    return seeds


def add_data_args(p: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    """--dataset, --model, --data-root, --device. Without `defaults` the flags default to None, so that a
    --config file can set them (the help still names the default the configuration fills in)."""
    p.add_argument(
        "--dataset",
        default="fashion-mnist" if defaults else None,
        choices=list(DATASETS),
        metavar="NAME",
        help=f"one of {', '.join(DATASETS)} (default fashion-mnist)",
    )
    p.add_argument("--model", default=None, metavar="NAME", help="model name (default: the dataset's)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="where datasets are looked for / downloaded")
    add_device_arg(p, default="auto" if defaults else None)


def device_arg(text: str) -> str:
    """An argparse `type=` for --device: the name checked as it is parsed (an unknown device, or CUDA where
    there is none, is refused before any work), kept as given."""
    try:
        resolve_device(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_device_arg(p: argparse.ArgumentParser, *, default: str | None = "auto", what: str = "") -> None:
    p.add_argument(
        "--device",
        type=device_arg,
        default=default,
        metavar="DEV",
        help=what or "auto (default: CUDA when present), cpu, cuda, cuda:N",
    )


def add_progress_arg(p: argparse.ArgumentParser) -> None:
    """`--no-progress` (alias `--quiet`, the benchmark's old spelling): no progress bars. Bars go to stderr;
    the results printed on stdout are the same either way."""
    p.add_argument(
        "--no-progress",
        "--quiet",
        dest="progress",
        action="store_false",
        help="no progress bars (alias: --quiet); the printed results are the same",
    )


def add_threads_arg(p: argparse.ArgumentParser, what: str = "") -> None:
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help=what
        or "torch threads of this process (default: torch's); results are bit-identical only at the same thread count",
    )


def set_threads(threads: int | None) -> None:
    """Apply `--threads` to this process (None: leave torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def add_tracking_args(p: argparse.ArgumentParser, what: str = "") -> None:
    """`--track` / `--no-track` and `--tracking-uri URI`: log the run to MLflow (robust_glo.tracking) once its
    files are written. MLflow is an optional extra, imported only when tracking is on."""
    p.add_argument(
        "--track",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=what
        or "log the run to MLflow once its files are written: parameters, metrics, curves, tables (default "
        "store: sqlite:///DIR/mlflow.db with artifacts in DIR/mlruns, DIR the run's --out; look at it with "
        "`mlflow ui --backend-store-uri sqlite:///DIR/mlflow.db`). Needs pip install robust-glo[tracking]",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="the MLflow tracking store to log to instead of DIR/mlflow.db, e.g. http://host:5000 or "
        "sqlite:///path/mlflow.db (implies --track)",
    )


def open_tracker(args: argparse.Namespace, out):
    """The MLflow tracker of a command (robust_glo.tracking.Tracker) when --track or --tracking-uri turn
    tracking on, else None. Opened before the work starts, so that a missing MLflow or an unreachable store
    is a one-line error before anything runs."""
    # lazy: tracking reads the comparison's layout, which loads pandas (--help stays light)
    from robust_glo import tracking

    if not tracking.enabled(args.track, args.tracking_uri):
        return None
    return tracking.Tracker(out, args.tracking_uri)
