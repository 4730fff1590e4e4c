"""Invariant on vs off: the same CMA-ES budget (generations x popsize) on Fashion-MNIST, one run per rule.

For each rule (paper, exact, off) it prints the trainings spent, the best validation accuracy found by the
search, and the wall time. From the `off` run, where every candidate is trained, it also reads how the
candidates each rule would have rejected actually did (docs/method.md: how many rejected ones would in fact
have trained well). Runs share the seed, so they propose the same first generation.

    .venv/bin/python evaluations/perf/evolution_invariant.py                     # about 4-5 min on 2 cores
    .venv/bin/python evaluations/perf/evolution_invariant.py --generations 10 --popsize 20 --steps 500

Writes runs/perf/evolution_invariant/summary.json (and one run directory per rule).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from robust_glo.analysis.invariant import invariant_holds_batch
from robust_glo.evolution import EvolveConfig, run_evolution


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--generations", type=int, default=3)
    p.add_argument("--popsize", type=int, default=8)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--val-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core CPU)")
    p.add_argument("--rules", default="paper,off")
    p.add_argument("--good", type=float, default=0.5, help="val accuracy that counts as 'trained well'")
    p.add_argument("--out", default="runs/perf/evolution_invariant")
    args = p.parse_args()

    root = Path(args.out)
    summary: dict = {"settings": vars(args), "runs": {}}
    for rule in args.rules.split(","):
        out = root / rule
        shutil.rmtree(out, ignore_errors=True)
        config = EvolveConfig.create(
            out=str(out),
            dataset=args.dataset,
            generations=args.generations,
            popsize=args.popsize,
            steps=args.steps,
            val_size=args.val_size,
            seed=args.seed,
            invariant=rule,
            topk=1,
            reeval_seeds=1,
            threads=args.threads,
            progress=False,
        )
        t0 = time.perf_counter()
        result = run_evolution(config)
        wall = time.perf_counter() - t0
        trained = [r for r in result.history if r["status"] == "trained"]
        row = {
            "candidates": len(result.history),
            "trainings": result.search_trainings,
            "rejected": result.rejected,
            "diverged": sum(r["status"] == "diverged" for r in result.history),
            "best_val_accuracy": max((r["val_accuracy"] for r in trained), default=None),
            "reeval_val_accuracy": result.best["val_accuracy"] if result.best else None,
            "wall_seconds": wall,
            "search_seconds": sum(g["seconds"] for g in result.generations),
        }
        summary["runs"][rule] = row
        print(
            f"{rule:>5}: {row['trainings']:3d} trainings of {row['candidates']} candidates "
            f"({row['rejected']} rejected, {row['diverged']} diverged), best val accuracy "
            f"{row['best_val_accuracy']}, search {row['search_seconds']:.0f}s, wall {wall:.0f}s",
            flush=True,
        )
        if rule == "off":
            thetas = np.array([r["theta"] for r in result.history])
            acc = np.array([r["val_accuracy"] if r["val_accuracy"] is not None else 0.0 for r in result.history])
            for check in ("paper", "exact"):
                rejected = ~invariant_holds_batch(thetas, 10, check)
                good = acc >= args.good
                summary["runs"]["off"][f"would_reject_{check}"] = {
                    "rejected": int(rejected.sum()),
                    "rejected_but_good": int((rejected & good).sum()),
                    "accepted_good": int((~rejected & good).sum()),
                    "best_rejected_accuracy": float(acc[rejected].max()) if rejected.any() else None,
                    "mean_rejected_accuracy": float(acc[rejected].mean()) if rejected.any() else None,
                    "mean_accepted_accuracy": float(acc[~rejected].mean()) if (~rejected).any() else None,
                }
                s = summary["runs"]["off"][f"would_reject_{check}"]
                print(
                    f"       '{check}' would reject {s['rejected']}: {s['rejected_but_good']} of them reached "
                    f">= {args.good} val accuracy (best {s['best_rejected_accuracy']}); mean accuracy rejected "
                    f"{s['mean_rejected_accuracy']:.3f} vs accepted {s['mean_accepted_accuracy']:.3f}"
                )
    root.mkdir(parents=True, exist_ok=True)
    (root / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
