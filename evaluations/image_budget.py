"""What fewer attacked images cost in statistical power, from a finished benchmark's outcomes.csv.

Nothing is run again.

For every loss against the baseline, at clean accuracy and at every eps > 0 of the worst case, the
two-level bootstrap of `robust_glo.robustness.bootstrap` (seeds and images, paired across losses) gives the
standard error of the difference with all N attacked images, and again on `--draws` random subsets of N/2
and N/4 of them (one subset per draw, shared by every network, as a run attacking fewer images would
share them). Printed per cell: the full-N standard error and the median over draws of the ratio se(subset)
/ se(N); then the median over cells, and the minimum detectable difference at the full N: the
smallest |difference| whose Holm-corrected p could fall below alpha for the first (smallest-p) comparison
of a family of `--family` comparisons, t with S - 1 degrees of freedom times the standard error, which is
how the report tests (docs/statistics.md).

If the standard error scales like 1/sqrt(N) (the image-driven part of the variance dominates, seed-level
spread included, since each seed's accuracy is itself measured on the N images), halving N multiplies it
by sqrt(2) = 1.41.

    git show c776546:reports/fashion-mnist-quick/outcomes.csv > /tmp/quick-small-cnn.csv
    .venv/bin/python evaluations/image_budget.py --outcomes /tmp/quick-small-cnn.csv --family 16
    .venv/bin/python evaluations/image_budget.py --outcomes reports/fashion-mnist-quick/outcomes.csv --family 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from robust_glo.robustness.bootstrap import HierarchicalBootstrap
from robust_glo.robustness.outcomes import pack_bits, unpack_bits
from robust_glo.robustness.statistics import first_rejection_t


def subset(outcomes: pd.DataFrame, keep: np.ndarray, tag: str) -> pd.DataFrame:
    """The outcomes a run attacking only the images `keep` (indices into the N attacked) would have stored."""
    out = outcomes.copy()
    bits = [unpack_bits(b, int(n))[keep] for b, n in zip(out["bits"], out["n"])]
    out["bits"] = [pack_bits(b) for b in bits]
    out["correct"] = [int(b.sum()) for b in bits]
    out["images"] = out["images"].astype(str) + tag
    out["n"] = len(keep)
    return out


def cells(outcomes: pd.DataFrame) -> list[dict]:
    """Clean accuracy and the worst case at every eps > 0 (the worst case at eps 0 is clean accuracy again)."""
    rows = outcomes[["attack", "eps"]].drop_duplicates()
    keep = rows[(rows["attack"] == "clean") | ((rows["attack"].str.startswith("worst")) & (rows["eps"] > 0))]
    return [{"attack": a, "eps": float(e)} for a, e in keep.sort_values(["attack", "eps"]).itertuples(index=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", required=True, type=Path, help="a benchmark's outcomes.csv")
    parser.add_argument("--baseline", default="ce")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--draws", type=int, default=5, help="random image subsets per size")
    parser.add_argument("--family", type=int, default=16, help="comparisons in the Holm family (minimum detectable)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows to this CSV file")
    args = parser.parse_args()
    if args.draws < 1 or args.family < 1 or args.boot < 100:
        parser.error("--draws and --family must be >= 1 and --boot >= 100")
    if not args.outcomes.is_file():
        parser.error(f"--outcomes {str(args.outcomes)!r}: no such file (a benchmark's outcomes.csv)")
    outcomes = pd.read_csv(args.outcomes)
    missing = {"loss", "seed", "attack", "eps", "n", "images", "bits"} - set(outcomes.columns)
    if missing:
        parser.error(f"--outcomes {str(args.outcomes)!r} is not an outcomes.csv: no {', '.join(sorted(missing))}")
    outcomes = outcomes[(outcomes["attack"] == "clean") | outcomes["attack"].str.startswith("worst")]
    outcomes = outcomes.reset_index(drop=True)
    n_full = int(outcomes["n"].max())
    seeds = int(outcomes.groupby("loss")["seed"].nunique().min())
    losses = sorted(set(outcomes["loss"]) - {args.baseline})
    where_all = cells(outcomes)
    rng = np.random.default_rng(args.seed)
    full = HierarchicalBootstrap(outcomes, n_boot=args.boot)
    rows = []
    for where in where_all:
        for loss in losses:
            estimate = full.cell(loss, args.baseline, where)
            rows.append({"loss": loss, **where, f"se_{n_full}": estimate.diff_se if estimate else None})
    table = pd.DataFrame(rows)
    for size in (n_full // 2, n_full // 4):
        ratios = []
        for draw in range(args.draws):
            keep = np.sort(rng.choice(n_full, size=size, replace=False))
            boot = HierarchicalBootstrap(subset(outcomes, keep, f"[{size}#{draw}]"), n_boot=args.boot)
            ratios.append(
                [
                    (boot.cell(loss, args.baseline, where).diff_se or np.nan) / se
                    for (loss, where), se in zip([(lo, w) for w in where_all for lo in losses], table[f"se_{n_full}"])
                ]
            )
        table[f"se_ratio_{size}"] = np.nanmedian(np.array(ratios, dtype=float), axis=0)
    t = first_rejection_t(seeds - 1, args.family, args.alpha) if seeds > 1 else float("nan")
    table[f"min_detectable_{n_full}"] = t * table[f"se_{n_full}"]
    short = {loss: loss if len(loss) <= 24 else loss[:21] + "..." for loss in losses}
    print(f"{args.outcomes}: {len(losses)} losses against {args.baseline}, {seeds} seeds, {n_full} images")
    print(f"{args.draws} random subsets per size; minimum detectable = t(df {seeds - 1}, Holm first of {args.family})")
    print(f"= {t:.2f} x se\n")
    print(table.assign(loss=table["loss"].map(short)).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\nmedian over cells:")
    for size in (n_full // 2, n_full // 4):
        print(f"  se with {size} images / se with {n_full}: {table[f'se_ratio_{size}'].median():.3f}")
    print(f"  se with {n_full} images: {table[f'se_{n_full}'].median() * 100:.2f} points")
    for label, mask in (("clean", table["attack"] == "clean"), ("robust", table["attack"] != "clean")):
        mdd = table.loc[mask, f"min_detectable_{n_full}"] * 100
        print(
            f"  minimum detectable difference ({label}): median {mdd.median():.1f} points"
            f" (range {mdd.min():.1f} to {mdd.max():.1f})"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
