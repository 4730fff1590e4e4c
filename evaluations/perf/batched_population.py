"""Batched vs sequential population training: P members trained at once with torch.func (vmap +
functional_call over stacked parameters) against the same P trained one after another with `fit`.

Same model, init, batches, steps and thetas in both; each side is timed after a short warm-up, in
alternating rounds so that machine load hits both alike. Prints seconds of each and the speed ratio
(sequential / batched: > 1 means batched is faster).

    .venv/bin/python evaluations/perf/batched_population.py                          # CPU, about 2 min
    .venv/bin/python evaluations/perf/batched_population.py --device cuda --popsize 20 --steps 200

Writes runs/perf/batched_population.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from robust_glo.data import load_dataset
from robust_glo.evolution import CMAES, TaylorGLOProblem, train_population
from robust_glo.losses import TaylorGLOLoss
from robust_glo.models import create_model
from robust_glo.training import fit
from robust_glo.utils import resolve_device, run_metadata


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default=None)
    p.add_argument("--popsize", type=int, default=8)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/perf/batched_population.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    splits = load_dataset(args.dataset)
    model_name = args.model or splits.info.default_model
    # Thetas that pass the invariant, as a generation of the search would train.
    problem = TaylorGLOProblem(dataset=args.dataset)
    optimizer = CMAES(popsize=4 * args.popsize, seed=0)
    pool = optimizer.ask()
    thetas = pool[problem.screen(pool)][: args.popsize]
    kw = dict(steps=args.steps, batch_size=args.batch_size, seed=0, device=device)

    def batched() -> None:
        train_population(create_model(model_name, splits.info, seed=0), thetas, splits.train, **kw)
        _sync(device)

    def sequential() -> None:
        for theta in thetas:
            fit(create_model(model_name, splits.info, seed=0), TaylorGLOLoss(theta), splits.train, **kw)
        _sync(device)

    for _ in (batched, sequential):  # warm-up: lazy imports, kernel selection
        train_population(create_model(model_name, splits.info, seed=0), thetas[:2], splits.train, **{**kw, "steps": 3})
        fit(create_model(model_name, splits.info, seed=0), TaylorGLOLoss(thetas[0]), splits.train, **{**kw, "steps": 3})
    times: dict[str, list[float]] = {"batched": [], "sequential": []}
    for _ in range(args.rounds):
        for name, fn in (("batched", batched), ("sequential", sequential)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    b, s = float(np.median(times["batched"])), float(np.median(times["sequential"]))
    result = {
        "dataset": args.dataset,
        "model": model_name,
        "popsize": len(thetas),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batched_seconds": b,
        "sequential_seconds": s,
        "speed_ratio": s / b,
        "times": times,
        "hardware": run_metadata()["hardware"],
    }
    print(
        f"{len(thetas)} x {model_name} on {args.dataset}, {args.steps} steps of {args.batch_size}, {device} "
        f"({torch.get_num_threads()} threads): batched {b:.1f}s, sequential {s:.1f}s -> batched runs at "
        f"{s / b:.2f}x the speed of sequential"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
