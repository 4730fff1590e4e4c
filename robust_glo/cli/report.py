"""`robust-glo report DIR`: rebuild report.md and report.html from a benchmark directory's results, and
gather the networks' card.json files into a leaderboard (leaderboard.csv, leaderboard.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="build report.md and a self-contained report.html from a results folder, and a leaderboard "
        "(leaderboard.csv, leaderboard.md) from the networks' card.json files",
    )
    p.add_argument(
        "dir",
        metavar="DIR",
        help="a benchmark or evaluate output folder (holding results.csv; a folder with only card.json files "
        "under it gets the leaderboard alone)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="publish: copy DIR's result files (no weights) here and build the report here (the leaderboard "
        "is written to both folders)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: every subcommand module is imported to build the parser; these load pandas (--help stays light)
    from robust_glo.comparison.cards import read_cards
    from robust_glo.comparison.leaderboard import CSV_FILE, MARKDOWN_FILE, write_leaderboard
    from robust_glo.reporting import build_report

    root = Path(args.dir)
    only_cards = root.is_dir() and not (root / "results.csv").is_file() and bool(read_cards(root))
    if not only_cards:  # with results.csv; without it and without cards, build_report says what is missing
        paths = build_report(args.dir, args.out)
        print(f"wrote {paths.markdown} and {paths.html} ({len(paths.figures)} figures, statistics in {paths.summary})")
    also = [args.out] if args.out is not None and Path(args.out).resolve() != root.resolve() else []
    board = write_leaderboard(root, *also)
    if board is None:
        print(f"no card.json under {root}: no leaderboard (a re-run of the benchmark or evaluate writes the cards)")
        return 0
    print(board.markdown)
    where = ", ".join(str(Path(folder) / name) for folder in (root, *also) for name in (CSV_FILE, MARKDOWN_FILE))
    print(f"wrote {where} ({len(board.networks)} networks)")
    return 0
