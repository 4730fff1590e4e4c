"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse

from robust_glo.data.registry import DATASETS


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def seed_int(text: str) -> int:
    """A seed flag: an integer in 0 .. 2**63-1 (what the random generators take)."""
    from robust_glo.errors import ConfigError
    from robust_glo.utils.parsing import SEED_RANGE, parse_seed

    try:
        return parse_seed(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"expected an integer in {SEED_RANGE}, got {text!r}") from None


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        default="fashion-mnist",
        choices=list(DATASETS),
        metavar="NAME",
        help=f"one of {', '.join(DATASETS)} (default fashion-mnist)",
    )
    p.add_argument("--model", default=None, metavar="NAME", help="model name (default: the dataset's)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="where datasets are looked for / downloaded")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
