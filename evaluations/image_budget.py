"""How much statistical power do the attacked test images buy, against the training seeds? Read from a
finished benchmark's own outcomes (nothing is run again).

For every loss against the baseline, at every eps of the worst case (and clean accuracy), the two-level
bootstrap of `robust_glo.robustness.bootstrap` gives the standard error of the difference in robust
accuracy with all N attacked images, and again on the first N/2 and N/4 of them (the benchmark attacks
the same shuffled test images for every network, so a prefix is what a smaller `n` would have attacked).
It also prints the image part of the variance (the spread of the all-seed mean when only the images are
redrawn) as a share of the whole. That share understates what the images buy: each seed's accuracy is
itself measured on the N images, so the seed part carries image noise too (the per-image disagreement
between networks), and the measured standard error is what says how much a smaller `n` costs. This is
the measurement behind the quick suite's `n` (docs/suites.md).

    .venv/bin/python evaluations/image_budget.py --dir runs/quick --out evaluations/perf/results/image_budget_quick.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from robust_glo.robustness.bootstrap import HierarchicalBootstrap
from robust_glo.robustness.outcomes import pack_bits, unpack_bits


def prefix(outcomes: pd.DataFrame, n: int) -> pd.DataFrame:
    """The outcomes a run attacking only the first `n` images would have stored."""
    out = outcomes.copy()
    out["bits"] = [pack_bits(unpack_bits(b, int(k))[:n]) for b, k in zip(out["bits"], out["n"])]
    out["correct"] = [int(unpack_bits(b, n).sum()) for b in out["bits"]]
    out["images"] = out["images"].astype(str) + f"[:{n}]"
    out["n"] = n
    return out


def image_share(boot: HierarchicalBootstrap, loss: str, baseline: str, where: dict) -> float:
    """Var(image part of the difference) / Var(difference), both from the bootstrap's replicates."""
    rows, base = boot._rows(loss, where), boot._rows(baseline, where)
    total = float(np.var(boot._accuracy(rows) - boot._accuracy(base), ddof=1))
    images = float(np.var(boot._images_only(rows) - boot._images_only(base), ddof=1))
    return images / total if total > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=Path, help="a finished benchmark folder (its outcomes.csv)")
    parser.add_argument("--baseline", default="ce")
    parser.add_argument("--boot", type=int, default=4000, help="bootstrap replicates")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows to this CSV file")
    args = parser.parse_args()
    outcomes = pd.read_csv(args.dir / "outcomes.csv")
    outcomes = outcomes[outcomes["attack"].isin(["clean", "worst"])].reset_index(drop=True)
    n_full = int(outcomes["n"].max())
    sizes = [n_full, n_full // 2, n_full // 4]
    boots = {n: HierarchicalBootstrap(prefix(outcomes, n) if n < n_full else outcomes, n_boot=args.boot) for n in sizes}
    losses = sorted(set(outcomes["loss"]) - {args.baseline})
    cells = outcomes[["attack", "eps"]].drop_duplicates().sort_values(["eps", "attack"]).itertuples(index=False)
    rows = []
    for attack, eps in cells:
        where = {"attack": attack, "eps": float(eps)}
        for loss in losses:
            row = {"loss": loss, "attack": attack, "eps": float(eps)}
            for n, boot in boots.items():
                estimate = boot.cell(loss, args.baseline, where)
                row[f"se_{n}"] = None if estimate is None else estimate.diff_se
            row[f"image_share_{n_full}"] = image_share(boots[n_full], loss, args.baseline, where)
            rows.append(row)
    table = pd.DataFrame(rows)
    short = {loss: loss if len(loss) <= 24 else loss[:21] + "..." for loss in losses}
    for n in sizes[1:]:
        table[f"se_ratio_{n}"] = table[f"se_{n}"] / table[f"se_{n_full}"]
    seeds = outcomes.groupby("loss")["seed"].nunique().min()
    print(f"{args.dir}: {len(losses)} losses against {args.baseline}, {seeds} seeds, {n_full} images\n")
    print(table.assign(loss=table["loss"].map(short)).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\nmedian over cells:")
    for n in sizes[1:]:
        print(f"  se with {n} images / se with {n_full}: {table[f'se_ratio_{n}'].median():.3f}")
    share = table[f"image_share_{n_full}"].median()
    print(f"  image share of the difference's variance at {n_full} images: {share:.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
