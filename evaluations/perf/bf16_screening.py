"""Does bfloat16 training on the CPU change how candidates rank? And is it faster on this CPU?

K TaylorGLO candidates (the first that pass the invariant in a CMA-ES population) are each trained three
times with the same recipe: fp32 on seed A, bfloat16 autocast + channels_last (`fit(..., bf16_cpu=True)`)
on seed A, and fp32 on seed B. Printed, all measured in this one run:

- training samples/s of bf16 against fp32 (median over the candidates) and the ratio;
- Spearman rank correlation of the candidates' validation accuracies, fp32 vs bf16 (same seed) against
  fp32 seed A vs fp32 seed B (seed noise), and the mean absolute accuracy differences of both pairs.
  bf16 is equivalent for screening when its disagreement with fp32 is no larger than seed noise.

Whether bf16 can be fast depends on the CPU: oneDNN's bfloat16 kernels need AVX-512 BF16 or AMX; without
them PyTorch falls back to slow reference convolutions. The script prints which case this CPU is.

    .venv/bin/python evaluations/perf/bf16_screening.py --candidates 8 --steps 300
    .venv/bin/python evaluations/perf/bf16_screening.py --smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from robust_glo.evolution import CMAES, TaylorGLOProblem
from robust_glo.losses import TaylorGLOLoss
from robust_glo.training import evaluate_accuracy, fit
from robust_glo.utils import native_cpu_bf16, run_metadata


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/perf/bf16_screening.json")
    args = p.parse_args()
    if args.smoke:
        args.dataset, args.candidates, args.steps = "digits", 3, 5
    torch.set_num_threads(args.threads)
    supported = native_cpu_bf16()  # run-time detection (robust_glo.utils.cpu_bf16_support)
    print(f"this CPU {'has' if supported else 'lacks'} native bfloat16 (AVX-512 BF16 / AMX)", flush=True)
    problem = TaylorGLOProblem(dataset=args.dataset, steps=args.steps, threads=args.threads)
    pool = CMAES(popsize=8 * args.candidates, seed=0).ask()
    thetas = pool[problem.screen(pool)][: args.candidates]
    options = problem.fit_options()
    rows = []
    for k, theta in enumerate(thetas):
        row = {"candidate": k}
        for name, seed, bf16 in (("fp32_a", 0, False), ("bf16_a", 0, True), ("fp32_b", 1, False)):
            model = problem.build_model(seed)
            r = fit(
                model, TaylorGLOLoss(theta), problem.splits.train, steps=args.steps, seed=seed, bf16_cpu=bf16, **options
            )
            row[name] = evaluate_accuracy(model, problem.splits.val) if r.status == "ok" else 0.0
            row[f"{name}_samples_per_s"] = r.samples_per_second
        rows.append(row)
        print(
            f"candidate {k}: val accuracy fp32 {row['fp32_a']:.4f}, bf16 {row['bf16_a']:.4f}, "
            f"fp32 other seed {row['fp32_b']:.4f}",
            flush=True,
        )
    acc = {n: np.array([r[n] for r in rows]) for n in ("fp32_a", "bf16_a", "fp32_b")}
    speed = {n: statistics.median(r[f"{n}_samples_per_s"] for r in rows) for n in ("fp32_a", "bf16_a")}
    rho_bf16 = spearmanr(acc["fp32_a"], acc["bf16_a"]).statistic if len(rows) > 2 else float("nan")
    rho_seed = spearmanr(acc["fp32_a"], acc["fp32_b"]).statistic if len(rows) > 2 else float("nan")
    summary = {
        "bf16_supported": supported,
        "dataset": args.dataset,
        "steps": args.steps,
        "threads": args.threads,
        "rows": rows,
        "samples_per_s": speed,
        "speed_ratio_bf16_to_fp32": speed["bf16_a"] / speed["fp32_a"],
        "spearman_fp32_vs_bf16": rho_bf16,
        "spearman_seed_a_vs_b": rho_seed,
        "mean_abs_diff_bf16": float(np.mean(np.abs(acc["fp32_a"] - acc["bf16_a"]))),
        "mean_abs_diff_seed": float(np.mean(np.abs(acc["fp32_a"] - acc["fp32_b"]))),
        "environment": run_metadata(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
    print(
        f"samples/s: fp32 {speed['fp32_a']:,.0f}, bf16 {speed['bf16_a']:,.0f} "
        f"(bf16 / fp32 = {summary['speed_ratio_bf16_to_fp32']:.2f}x, {args.threads} thread(s))"
    )
    print(
        f"rank agreement (Spearman) fp32 vs bf16: {rho_bf16:.3f}; fp32 seed A vs seed B: {rho_seed:.3f}; "
        f"mean |accuracy difference| bf16 {summary['mean_abs_diff_bf16']:.4f}, seed {summary['mean_abs_diff_seed']:.4f}"
    )


if __name__ == "__main__":
    main()
