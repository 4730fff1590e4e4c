"""`robust-glo` command line: one module per subcommand, each with `register(subparsers)`.

Usage errors and `RobustGloError`s print one line to stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from robust_glo.errors import RobustGloError, UsageError

# Each name is a module robust_glo.cli.<name> with `register(subparsers)`; the parser it adds sets
# `func=run` where `run(args) -> int`.
COMMANDS = ["train", "losses", "analyze", "report", "evolve", "benchmark", "evaluate"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2, no usage dump
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from robust_glo import __version__

    parser = _Parser(prog="robust-glo", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"robust-glo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"robust_glo.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except RobustGloError as exc:
        print(f"robust-glo: error: {exc}" if not isinstance(exc, UsageError) else f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robust-glo: interrupted; finished work is saved, re-run to resume", file=sys.stderr)
        return 130
