"""Evolution cost in full-training equivalents (FTE), measured on a finished run, against the paper's budget.

One FTE is one full training run (`--full-steps` SGD steps; by default 10x the run's steps, since the paper
trained each candidate for about 10% of a full run). The paper's budget was up to 20 x 100 candidates
(popsize x generations) at 10% each: 200 FTE without pruning. The script reads a run directory's
history (search candidates and the top-k re-evaluation), counts the trainings spent, and extrapolates the
paper's budget with the same invariant acceptance rate and the measured seconds per training.

    robust-glo evolve --dataset fashion-mnist --generations 4 --popsize 8 --steps 300 --out runs/evo
    .venv/bin/python evaluations/perf/evolution_cost.py --run runs/evo

Writes RUN/cost.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from robust_glo.evolution import RunStore
from robust_glo.utils import read_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/evo", help="an evolve run directory")
    p.add_argument("--full-steps", type=int, default=None, help="steps of one full training (default 10x steps)")
    p.add_argument("--paper-popsize", type=int, default=20)
    p.add_argument("--paper-generations", type=int, default=100)
    p.add_argument("--paper-fraction", type=float, default=0.1, help="share of a full run per candidate")
    args = p.parse_args()

    run = Path(args.run)
    config = read_json(run / "config.json")
    store = RunStore(run)
    store.load()
    candidates = list(store.candidates.values())
    reevals = list(store.reevaluations.values())
    steps = int(config["steps"])
    full = args.full_steps or int(round(steps / args.paper_fraction))
    spent = [r for r in candidates if r["status"] in ("trained", "diverged")]
    re_spent = [r for r in reevals if r["status"] in ("trained", "diverged")]
    accept = len(spent) / max(1, len(candidates))
    sec_per_training = float(np.mean([r["seconds"] for r in spent + re_spent])) if spent + re_spent else 0.0
    fte_search = len(spent) * steps / full
    fte_reeval = len(re_spent) * steps / full
    paper_candidates = args.paper_popsize * args.paper_generations
    paper_fte = paper_candidates * args.paper_fraction
    paper_fte_pruned = paper_fte * accept
    # The paper's budget at this run's per-candidate cost (same model, device and steps per candidate).
    paper_seconds = paper_candidates * accept * sec_per_training
    result = {
        "run": str(run),
        "dataset": config["dataset"],
        "invariant": config["invariant"],
        "steps": steps,
        "full_steps": full,
        "candidates": len(candidates),
        "rejected": len(candidates) - len(spent),
        "search_trainings": len(spent),
        "reeval_trainings": len(re_spent),
        "acceptance_rate": accept,
        "fte_search": fte_search,
        "fte_reeval": fte_reeval,
        "fte_total": fte_search + fte_reeval,
        "seconds_per_training": sec_per_training,
        "paper_candidates": paper_candidates,
        "paper_fte_unpruned": paper_fte,
        "paper_fte_with_this_acceptance": paper_fte_pruned,
        "paper_budget_hours_here": paper_seconds / 3600,
    }
    print(
        f"{run}: {len(candidates)} candidates, {result['rejected']} rejected by '{config['invariant']}', "
        f"{len(spent)} search + {len(re_spent)} re-evaluation trainings of {steps} steps"
    )
    print(
        f"  cost: {fte_search:.2f} + {fte_reeval:.2f} = {fte_search + fte_reeval:.2f} full-training equivalents "
        f"(one = {full} steps); {sec_per_training:.1f}s per training here"
    )
    print(
        f"  paper budget: {paper_candidates} candidates x {args.paper_fraction:g} = {paper_fte:.0f} FTE unpruned, "
        f"{paper_fte_pruned:.0f} FTE at this acceptance rate ({accept:.0%}); "
        f"{result['paper_budget_hours_here']:.1f} h at this run's per-training cost"
    )
    (run / "cost.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
