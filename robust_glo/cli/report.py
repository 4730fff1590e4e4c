"""`robust-glo report DIR`: rebuild report.md and report.html from a benchmark directory's results."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("report", help="build report.md and a self-contained report.html from a results folder")
    p.add_argument("dir", metavar="DIR", help="a benchmark output folder (holding results.csv)")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="publish: copy DIR's result files (no weights) here and build the report here",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robust_glo.reporting import build_report

    paths = build_report(args.dir, args.out)
    print(f"wrote {paths.markdown} and {paths.html} ({len(paths.figures)} figures, statistics in {paths.summary})")
    return 0
