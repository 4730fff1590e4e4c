"""How many validation images does a robust fitness need at every rung? Ranking agreement against cost.

A robust evolution ranks every rung by its stated fitness (docs/method.md), e.g. the standard suite's
`mix:0.5:pgd:0.05:10`: half clean validation accuracy, half PGD-10 accuracy at eps 0.05 on the first
`attack_samples` validation images. Attacking costs about one forward and backward pass per PGD step and
image, per candidate and rung, so the subset should be as small as the ranking allows.

K networks of the kind a search compares (fixed losses spanning the range, plus TaylorGLO candidates of a
CMA-ES population that pass the invariant and learn) are trained with the candidates' recipe for `--steps`
steps on one seed. Each is scored on the first n validation images for n in `--sizes` and on a reference
of `--reference` images. Printed, from this one run: per n, the Spearman rank correlation of the robust
accuracy and of the whole fitness with the reference ranking, the mean absolute difference, and the
seconds of attack per candidate; the smallest n whose fitness ranking agrees with the reference at
rho >= `--target` is the suggestion.

    .venv/bin/python evaluations/perf/robust_proxy_size.py                  # ~10 min on one core
    .venv/bin/python evaluations/perf/robust_proxy_size.py --smoke          # digits, seconds

Writes evaluations/perf/results/robust_proxy_size.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from robust_glo.evolution import CMAES, TaylorGLOProblem
from robust_glo.evolution.config import parse_fitness
from robust_glo.losses import TaylorGLOLoss, get_loss
from robust_glo.robustness import evaluate_model
from robust_glo.training import evaluate_accuracy, fit
from robust_glo.utils import native_cpu_bf16, run_metadata

FIXED = ["ce", "label_smoothing:0.1", "label_smoothing:0.4", "label_smoothing:0.8", "baikal", "focal:2", "poly1"]


def _robust(model, images, labels, eps: float, steps: int, seed: int) -> float:
    table = evaluate_model(model, images, labels, attacks=[f"pgd:steps={steps}"], eps=[eps], seed=seed)
    return float(table[(table["attack"] != "clean") & (table["attack"] != "worst")]["accuracy"].iloc[0])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--steps", type=int, default=300, help="training steps per network (the standard suite's)")
    p.add_argument("--candidates", type=int, default=5, help="TaylorGLO candidates that learn, besides FIXED")
    p.add_argument("--fitness", default="mix:0.5:pgd:0.05:10")
    p.add_argument("--sizes", default="100,200,500,1000")
    p.add_argument("--reference", type=int, default=2000)
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out", default="evaluations/perf/results/robust_proxy_size.json")
    args = p.parse_args(argv)
    sizes = [int(v) for v in args.sizes.split(",")]
    if args.smoke:
        args.dataset, args.steps, args.candidates, args.reference, sizes = "digits", 30, 2, 180, [50, 100]
    torch.set_num_threads(args.threads)
    spec = parse_fitness(args.fitness)
    problem = TaylorGLOProblem(dataset=args.dataset, steps=args.steps, threads=args.threads)
    val = problem.splits.val
    if args.reference > len(val):
        raise SystemExit(f"--reference {args.reference} is more than the {len(val)} validation images")
    options = problem.fit_options()
    losses: list[tuple[str, torch.nn.Module]] = [(name, get_loss(name)) for name in FIXED]
    pool = CMAES(popsize=16 * max(args.candidates, 1), seed=0).ask()
    taylor = [t for t in pool[problem.screen(pool)]]
    rows, t_start, load = [], time.perf_counter(), os.getloadavg()[0]
    wanted = len(FIXED) + args.candidates
    while len(rows) < wanted and (losses or taylor):
        name, loss = losses.pop(0) if losses else (f"taylorglo#{len(rows) - len(FIXED)}", TaylorGLOLoss(taylor.pop(0)))
        model = problem.build_model(0)
        fit(model, loss, problem.splits.train, steps=args.steps, seed=0, progress=False, **options)
        clean = evaluate_accuracy(model, val, batch_size=500)
        if name.startswith("taylorglo") and clean < 2.0 / problem.n_classes:
            continue  # a collapsed candidate ranks by its band, not by this fitness: only ones that learn
        ref_set = val.subset(args.reference)
        t0 = time.perf_counter()
        reference = _robust(model, ref_set.images, ref_set.labels, spec.eps, spec.pgd_steps, seed=0)
        per_image = (time.perf_counter() - t0) / args.reference
        row = {"loss": name, "clean": clean, "reference": reference, "seconds_per_image": per_image}
        for n in sizes:
            sub = val.subset(n)
            row[f"robust_{n}"] = _robust(model, sub.images, sub.labels, spec.eps, spec.pgd_steps, seed=0)
        rows.append(row)
        print(f"{name}: clean {clean:.4f}, robust {reference:.4f} on {args.reference} images", flush=True)

    ref_fit = [spec.combine(r["clean"], r["reference"]) for r in rows]
    ref_rob = [r["reference"] for r in rows]
    per_image = float(np.median([r["seconds_per_image"] for r in rows]))
    summary = []
    print(f"\n{len(rows)} networks, {args.steps} steps; fitness {args.fitness}; reference {args.reference} images")
    print(f"{'n':>6} {'rho robust':>11} {'rho fitness':>12} {'mean |diff|':>12} {'s/candidate':>12}")
    for n in sizes:
        sub_rob = [r[f"robust_{n}"] for r in rows]
        sub_fit = [spec.combine(r["clean"], r[f"robust_{n}"]) for r in rows]
        entry = {
            "n": n,
            "spearman_robust": float(spearmanr(sub_rob, ref_rob).statistic),
            "spearman_fitness": float(spearmanr(sub_fit, ref_fit).statistic),
            "mean_abs_diff": float(np.mean(np.abs(np.subtract(sub_rob, ref_rob)))),
            "seconds_per_candidate": per_image * n,
        }
        summary.append(entry)
        print(
            f"{n:>6} {entry['spearman_robust']:>11.3f} {entry['spearman_fitness']:>12.3f} "
            f"{entry['mean_abs_diff']:>12.4f} {entry['seconds_per_candidate']:>12.1f}"
        )
    good = [e["n"] for e in summary if e["spearman_fitness"] >= args.target]
    suggestion = min(good) if good else None
    print(
        f"smallest n with fitness rho >= {args.target}: {suggestion if suggestion else 'none of ' + args.sizes}; "
        f"wall {time.perf_counter() - t_start:.0f} s, load average {load:.2f} -> {os.getloadavg()[0]:.2f}, "
        f"{args.threads} thread(s), CPU {'with' if native_cpu_bf16() else 'without'} native bfloat16"
    )
    out = {
        "dataset": args.dataset,
        "steps": args.steps,
        "fitness": args.fitness,
        "reference": args.reference,
        "networks": rows,
        "sizes": summary,
        "suggestion": suggestion,
        "threads": args.threads,
        "environment": run_metadata(),
    }
    if not args.smoke:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
