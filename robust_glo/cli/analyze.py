"""`robust-glo analyze`: the learning rule, effective target and invariant of one or more losses."""

from __future__ import annotations

import argparse
import json
import sys

from robust_glo.analysis import analyze_loss


def register(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help="explain losses: pull/push, effective target p*, invariant; optional figures",
        description="Analyze losses through their learning rule (docs/method.md): the effective "
        "target p* the loss trains toward, its label-smoothing equivalent, whether the "
        "target logit rises at initialization, and the TaylorGLO invariant.",
    )
    p.add_argument(
        "--loss",
        action="append",
        required=True,
        metavar="SPEC",
        help="a loss spec (see `robust-glo losses`); repeat to compare several",
    )
    p.add_argument("--classes", type=int, required=True, metavar="N", help="number of classes (>= 2)")
    p.add_argument("--json", action="store_true", help="print JSON: one object for one loss, a list for several")
    p.add_argument("--plot", metavar="DIR", help="write comparison figures (PNG and SVG) into DIR")
    p.set_defaults(func=run)


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:.4g}"


def format_table(records: list[dict]) -> str:
    """A readable table of `LossAnalysis.to_dict()` records."""
    header = ["loss", "p*", "LS alpha", "-dL/dz_t at init", "rises at init", "invariant paper/exact", "decomposition"]
    rows = []
    for r in records:
        inv = r["invariant"]
        rows.append(
            [
                r["spec"],
                _number(r["effective_target"]),
                _number(r["label_smoothing_equivalent"]),
                f"{r['target_logit_gradient_at_init']:+.4g}",
                "yes" if r["target_logit_rises_at_init"] else "no",
                "-" if inv is None else "/".join("pass" if inv[k] else "fail" for k in ("paper", "exact")),
                r["decomposition"],
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    analyses = [analyze_loss(spec, args.classes, curves=bool(args.plot)) for spec in args.loss]
    records = [a.to_dict() for a in analyses]
    paths = []
    if args.plot:
        # lazy: seaborn and matplotlib only for --plot
        from robust_glo.analysis.figures import plot_analyses

        paths = plot_analyses(analyses, args.plot)
    if args.json:
        print(json.dumps(records[0] if len(records) == 1 else records, indent=2, allow_nan=False))
    else:
        print(
            f"{args.classes} classes; p* = effective target (none: trains toward p = 1), "
            f"LS alpha = label smoothing with the same p*"
        )
        print(format_table(records))
        for r in records:
            for w in r["warnings"]:
                print(f"note: {r['spec']}: {w}")
    if paths:
        # With --json stdout holds only the JSON document.
        out = sys.stderr if args.json else sys.stdout
        print(f"wrote {len(paths)} figures to {args.plot}: " + ", ".join(p.name for p in paths), file=out)
    return 0
