"""`robust-glo` command line: one module per subcommand, each with `register(subparsers)`.

Every error, a bad command line or a `RobustGloError`, prints one line to stderr that starts with
`robust-glo: error: ` and exits with code 2. A Ctrl-C prints one line saying what a re-run resumes (each
subcommand's `interrupted(args)` words it) and exits with code 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from robust_glo import __version__
from robust_glo.cli.messages import ERROR_PREFIX
from robust_glo.errors import RobustGloError, UsageError

# Each name is a module robust_glo.cli.<name> with `register(subparsers)`; the parser it adds sets
# `func=run` where `run(args) -> int`, and may set `interrupted=f` where `f(args) -> str` says what a
# re-run after Ctrl-C does. The order is the order of `robust-glo --help`.
COMMANDS = ["benchmark", "evolve", "train", "evaluate", "analyze", "report", "losses"]
# the commands that train or attack networks, and so read ROBUST_GLO_CPU_LAYOUT (utils.device.cpu_layout)
COMPUTING = ("benchmark", "evolve", "train", "evaluate")

DESCRIPTION = """\
Discover loss functions by evolution (TaylorGLO with CMA-ES) and test, with adversarial attacks and
honest statistics, whether they make networks more robust than cross-entropy and label smoothing.

The main job is `robust-glo benchmark quick --out runs/quick`: evolve a loss, train it and the baseline
losses over several seeds, attack every network (FGSM, PGD, AutoAttack), and write a report
(runs/quick/report.html). Each stage is also a command of its own."""

EPILOG = """\
conventions, the same on every command that has them:
  --loss SPEC          a loss: ce, label_smoothing:0.1, baikal, taylorglo:[...], or your own
                       my_losses.py:fn (robust-glo losses lists them)
  --seed S             the seed of one run; --seeds N|LIST the training seeds of several
                       (N: seeds 0..N-1, or a list such as 0,5,9, as a suite's seeds)
  --out DIR            where results go; re-running with the same DIR reuses finished work
  --no-progress        no progress bars (alias --quiet)
  --threads N          torch threads of the process (Ray tasks: --cpus-per-task)
  --device DEV         auto (CUDA when present), cpu, cuda, cuda:N
errors print one line starting with "robust-glo: error:" and exit with code 2.

examples:
  robust-glo benchmark quick --out runs/quick          the whole study, resumable
  robust-glo train --loss baikal --dataset digits --steps 200
  robust-glo evaluate --loss ce --loss label_smoothing:0.1 --seeds 3 --out runs/cmp
  robust-glo <command> --help                          every flag of a command

documentation: README.md and docs/ (docs/README.md) in the source repository."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2, no usage dump
        command = self.prog.removeprefix("robust-glo").strip()
        hint = f" (see robust-glo {command} --help)" if command else " (see robust-glo --help)"
        raise UsageError(f"{command + ': ' if command else ''}{message}{hint}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="robust-glo",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"robust-glo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, title="commands")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"robust_glo.cli.{name}").register(sub)
    return parser


def interrupted_message(args: argparse.Namespace | None) -> str:
    """The line printed on Ctrl-C: what a re-run of the same command does, in the command's own words."""
    explain = getattr(args, "interrupted", None)
    text = explain(args) if callable(explain) else "nothing was kept; re-run the command"
    return f"robust-glo: interrupted; {text}"


def _close_bars() -> None:
    """Close the progress bars an interrupt left open, so that the message starts a line of its own."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # argparse would name the top-level parser; the command's own help lists its flags
            command = getattr(args, "command", None)
            where = f"{command}: " if command else ""
            see = f"robust-glo {command} --help" if command else "robust-glo --help"
            raise UsageError(f"{where}unrecognized arguments: {' '.join(extra)} (see {see})")
        if getattr(args, "command", None) in COMPUTING:
            from robust_glo.utils.device import cpu_layout  # lazy: torch, which --help does not load

            cpu_layout()  # a bad ROBUST_GLO_CPU_LAYOUT stops the command before it writes anything
        return int(args.func(args) or 0)
    except RobustGloError as exc:
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_bars()
        print(interrupted_message(args), file=sys.stderr)
        return 130
