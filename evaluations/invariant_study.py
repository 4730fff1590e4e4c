"""How many TaylorGLO candidates do the two invariants reject, and how often do they disagree?

Draws thetas from the CMA-ES starting distribution (mean 0, sigma 1.2 in 8-D; DESIGN §2.2) and, for each
number of classes, reports the share that the "paper" rule (the authors' code) and the "exact" rule (the
target logit rises at initialization) reject (DESIGN §2.3), and how often the rules disagree.

No training happens here, so "would this rejected candidate have trained well?" has only a proxy: the
effective target p* that its learning rule drives toward from uniform outputs (DESIGN §2.4). A candidate
with p* >= 0.5 (or no p*, it pursues p = 1) trains toward a confident, correct output.

    .venv/bin/python evaluations/invariant_study.py [--samples 10000] [--seed 0] [--out study.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from robust_glo.analysis import effective_target_batch, invariant_holds_batch


def study(thetas: np.ndarray, n_classes: int) -> dict[str, float | int | None]:
    """Shares over thetas ``(M, 8)`` for ``n_classes`` classes (in [0, 1]; None for an empty group)."""
    paper = invariant_holds_batch(thetas, n_classes, "paper")
    exact = invariant_holds_batch(thetas, n_classes, "exact")
    p_star = effective_target_batch(thetas, n_classes)
    # A p* of NaN means the target is pursued up to p = 1, which is confident and correct too.
    confident = np.isnan(p_star) | (p_star >= 0.5)
    paper_only = ~paper & exact  # rejected by the paper rule alone
    exact_only = paper & ~exact
    return {
        "classes": n_classes,
        "samples": int(len(thetas)),
        "rejected_paper": float(np.mean(~paper)),
        "rejected_exact": float(np.mean(~exact)),
        "rejected_both": float(np.mean(~paper & ~exact)),
        "disagreement": float(np.mean(paper != exact)),
        "rejected_by_paper_only": float(np.mean(paper_only)),
        "rejected_by_exact_only": float(np.mean(exact_only)),
        # The proxy for "rejected but would have trained well": confident p* among rejections.
        "paper_rejected_confident_p_star": _share(confident, ~paper),
        "exact_rejected_confident_p_star": _share(confident, ~exact),
        "paper_only_confident_p_star": _share(confident, paper_only),
        "exact_accepted_confident_p_star": _share(confident, exact),
    }


def _share(mask: np.ndarray, group: np.ndarray) -> float | None:
    """The share of ``group`` where ``mask`` holds; None for an empty group."""
    return float(np.mean(mask[group])) if group.any() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000, help="thetas to draw (default 10000)")
    parser.add_argument("--sigma", type=float, default=1.2, help="standard deviation (default 1.2)")
    parser.add_argument("--seed", type=int, default=0, help="numpy Generator seed (default 0)")
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100], help="default: 10 100")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.samples < 1 or args.sigma <= 0 or any(n < 2 for n in args.classes):
        parser.error("need --samples >= 1, --sigma > 0 and every --classes >= 2")

    rng = np.random.default_rng(args.seed)
    thetas = rng.normal(0.0, args.sigma, size=(args.samples, 8))
    rows = [study(thetas, n) for n in args.classes]

    table = pd.DataFrame(rows).set_index("classes")
    shown = table.drop(columns="samples").T
    print(f"{args.samples} thetas ~ N(0, {args.sigma}^2 I), seed {args.seed}; shares of all thetas, "
          f"except *_confident_p_star: shares of that group with p* >= 0.5 or none")
    print(shown.to_string(float_format=lambda v: f"{v:.4f}"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"samples": args.samples, "sigma": args.sigma, "seed": args.seed,
                                        "results": rows}, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
