"""Does bfloat16 training on the CPU change how candidates rank? And is it faster on this CPU?

K TaylorGLO candidates are each trained three times with the same recipe. They are either the first that
pass the invariant in a fresh CMA-ES population (most of which collapse to chance) or, with `--history`,
candidates of finished evolutions that learned: those whose recorded validation accuracy is at least
`--min-accuracy`, K of them evenly spaced in that accuracy, so the ranking is tested where screening has to
rank. Each is trained fp32 on seed A, bfloat16 autocast + channels_last (`fit(..., bf16_cpu=True)`)
on seed A, and fp32 on seed B. Printed, all measured in this one run:

- training samples/s of bf16 against fp32 (median over the candidates) and the ratio;
- Spearman rank correlation of the candidates' fitness (`--fitness`: with the default `clean`, 1 - validation
  accuracy; a robust fitness such as `mix:0.5:pgd:0.05:10` attacks `--attack-samples` validation images in
  float32), fp32 vs bf16 (same seed) against
  fp32 seed A vs fp32 seed B (seed noise), and the mean absolute fitness differences of both pairs, with
  a 95% bootstrap interval over candidates of their paired gap (mean and median);
- as a screen for an independent float32 run: Spearman of bf16 on seed A against fp32 on seed B, minus that
  of fp32 on seed A against fp32 on seed B, with a paired bootstrap interval;
- how many candidates moved by more than a point, and how many of fp32's best quarter stay in the best
  quarter in bf16 and on the other seed.
  bf16 is equivalent for screening when its disagreement with fp32 is no larger than seed noise.

Whether bf16 can be fast depends on the CPU: oneDNN's bfloat16 kernels need AVX-512 BF16 or AMX; without
them PyTorch falls back to slow reference convolutions. The script prints which case this CPU is.

    .venv/bin/python evaluations/perf/bf16_screening.py --candidates 8 --steps 300
    .venv/bin/python evaluations/perf/bf16_screening.py --model small-cnn --steps 300 --candidates 16 \
        --history runs/std/evolve/*/search*/history.csv
    .venv/bin/python evaluations/perf/bf16_screening.py --smoke
    .venv/bin/python evaluations/perf/bf16_screening.py --summarize RESULT.json   # the statistics again
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import bootstrap, spearmanr

from robust_glo.evolution import CMAES, TaylorGLOProblem
from robust_glo.losses import TaylorGLOLoss
from robust_glo.training import fit
from robust_glo.utils import native_cpu_bf16, run_metadata


def learned_candidates(paths: list[str], min_accuracy: float, k: int) -> tuple[np.ndarray, list[float]]:
    """K thetas `(K, 8)` from evolution histories whose recorded validation accuracy (at the last rung they
    reached) is at least `min_accuracy`, evenly spaced in that accuracy, with those accuracies."""
    found = []
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["status"] in ("trained", "pruned") and float(row["val_accuracy"] or 0) >= min_accuracy:
                    found.append((float(row["val_accuracy"]), [float(row[f"theta{i}"]) for i in range(8)]))
    if len(found) < 3:
        raise SystemExit(f"--history: {len(found)} candidates reach {min_accuracy}; at least 3 are needed")
    found.sort(key=lambda item: item[0])
    picks = sorted({round(i) for i in np.linspace(0, len(found) - 1, min(k, len(found)))})
    return np.array([found[i][1] for i in picks]), [found[i][0] for i in picks]


def gap_interval(gap: np.ndarray, statistic, method: str) -> tuple[float, list[float]]:
    """`statistic` (np.mean, np.median) of the per-candidate gaps |bf16 - fp32| - |fp32 seed B - fp32 seed A|
    and its 95% bootstrap interval over candidates (scipy.stats.bootstrap, `method`): below zero, bfloat16
    moves a candidate less than a change of seed does."""
    ci = bootstrap((gap,), statistic, confidence_level=0.95, random_state=0, method=method).confidence_interval
    return float(statistic(gap)), [float(ci.low), float(ci.high)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default=None, help="the architecture (default: the dataset's)")
    p.add_argument("--history", nargs="*", default=[], help="history.csv files of finished evolutions")
    p.add_argument("--min-accuracy", type=float, default=0.5, help="with --history: candidates that learned")
    p.add_argument(
        "--fitness", default="clean", help="what ranks the candidates, as `robust-glo evolve --fitness` (default clean)"
    )
    p.add_argument("--attack-samples", type=int, default=200, help="validation images a robust fitness attacks")
    p.add_argument("--candidates", type=int, default=8)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/perf/bf16_screening.json")
    p.add_argument("--summarize", metavar="JSON", help="recompute the agreement of a written result; no training")
    args = p.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return
    if args.smoke:
        args.dataset, args.candidates, args.steps = "digits", 3, 5
    torch.set_num_threads(args.threads)
    supported = native_cpu_bf16()  # run-time detection (robust_glo.utils.cpu_bf16_support)
    print(f"this CPU {'has' if supported else 'lacks'} native bfloat16 (AVX-512 BF16 / AMX)", flush=True)
    problem = TaylorGLOProblem(
        dataset=args.dataset,
        model=args.model,
        steps=args.steps,
        threads=args.threads,
        fitness=args.fitness,
        attack_samples=args.attack_samples,
    )
    if args.history:
        thetas, recorded = learned_candidates(args.history, args.min_accuracy, args.candidates)
        print(
            f"{len(thetas)} candidates from {len(args.history)} histories, recorded val. accuracy "
            f"{min(recorded):.3f} to {max(recorded):.3f}",
            flush=True,
        )
    else:
        pool = CMAES(popsize=8 * args.candidates, seed=0).ask()
        thetas = pool[problem.screen(pool)][: args.candidates]
    options = problem.fit_options()
    rows = []
    for k, theta in enumerate(thetas):
        row = {"candidate": k}
        for name, seed, bf16 in (("fp32_a", 0, False), ("bf16_a", 0, True), ("fp32_b", 1, False)):
            model = problem.build_model(seed)
            r = fit(
                model,
                TaylorGLOLoss(theta),
                problem.splits.train,
                steps=args.steps,
                seed=seed,
                **(options | {"bf16_cpu": bf16}),
            )
            # the fitness the search would rank by (1 - clean accuracy, or the robust mix), scored in float32
            scored = problem.score_model(model, seed, time.perf_counter()) if r.status == "ok" else None
            row[name] = scored.val_accuracy if scored else 0.0
            row[f"{name}_fitness"] = scored.fitness if scored else 1.0
            row[f"{name}_samples_per_s"] = r.samples_per_second
        rows.append(row)
        print(
            f"candidate {k}: val accuracy fp32 {row['fp32_a']:.4f}, bf16 {row['bf16_a']:.4f}, "
            f"fp32 other seed {row['fp32_b']:.4f}; fitness {row['fp32_a_fitness']:.4f}, {row['bf16_a_fitness']:.4f}, "
            f"{row['fp32_b_fitness']:.4f}",
            flush=True,
        )
    speed = {n: statistics.median(r[f"{n}_samples_per_s"] for r in rows) for n in ("fp32_a", "bf16_a")}
    summary = {
        "bf16_supported": supported,
        "dataset": args.dataset,
        "steps": args.steps,
        "fitness": args.fitness,
        "threads": args.threads,
        "rows": rows,
        "samples_per_s": speed,
        "speed_ratio_bf16_to_fp32": speed["bf16_a"] / speed["fp32_a"],
        "candidates_from": args.history or "a fresh CMA-ES population",
        "model": problem.model_name,
        "environment": run_metadata(),
    }
    summary |= agreement(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
    print(
        f"samples/s: fp32 {speed['fp32_a']:,.0f}, bf16 {speed['bf16_a']:,.0f} "
        f"(bf16 / fp32 = {summary['speed_ratio_bf16_to_fp32']:.2f}x, {args.threads} thread(s))"
    )
    print_agreement(summary)


def fitness_of(row: dict, name: str) -> float:
    """A row's fitness (lower is better); rows written before the fitness was recorded: 1 - accuracy."""
    return float(row.get(f"{name}_fitness", 1.0 - row[name]))


def agreement(rows: list[dict]) -> dict:
    """How bf16 ranks the candidates against fp32, beside seed noise, from the rows alone (see the module
    docstring). The intervals are 95% bootstrap intervals over candidates, resampled in pairs (scipy)."""
    if len(rows) < 3:
        return {}
    fit = np.array([[fitness_of(r, n) for n in ("fp32_a", "bf16_a", "fp32_b")] for r in rows])
    fp32_a, bf16_a, fp32_b = fit.T
    bf16_move, seed_move = np.abs(bf16_a - fp32_a), np.abs(fp32_b - fp32_a)
    k = max(1, len(rows) // 4)

    def rho_gap(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
        # as a screen for an independent float32 run: bf16 on seed A against fp32 on seed A
        return spearmanr(b, c).statistic - spearmanr(a, c).statistic

    rho_ci = bootstrap(
        (fp32_a, bf16_a, fp32_b), rho_gap, paired=True, method="percentile", random_state=0
    ).confidence_interval
    mean, mean_ci = gap_interval(bf16_move - seed_move, np.mean, "BCa")
    median, median_ci = gap_interval(bf16_move - seed_move, np.median, "percentile")
    best = set(np.argsort(fp32_a)[:k])
    return {
        "spearman_fp32_vs_bf16": float(spearmanr(fp32_a, bf16_a).statistic),
        "spearman_seed_a_vs_b": float(spearmanr(fp32_a, fp32_b).statistic),
        "spearman_bf16_a_vs_fp32_b": float(spearmanr(bf16_a, fp32_b).statistic),
        "spearman_gap_as_screen": {
            "value": float(rho_gap(fp32_a, bf16_a, fp32_b)),
            "ci95": [float(rho_ci.low), float(rho_ci.high)],
        },
        "mean_abs_diff_bf16": float(bf16_move.mean()),
        "mean_abs_diff_seed": float(seed_move.mean()),
        "median_abs_diff_bf16": float(np.median(bf16_move)),
        "median_abs_diff_seed": float(np.median(seed_move)),
        "moved_over_1_point": {
            "bf16": int((bf16_move > 0.01 + 1e-9).sum()),
            "seed": int((seed_move > 0.01 + 1e-9).sum()),
        },
        "abs_diff_gap_bf16_minus_seed": {"mean": mean, "ci95": mean_ci},
        "abs_diff_gap_median": {"value": median, "ci95": median_ci},
        "best_quarter_kept": {
            "k": k,
            "bf16": len(best & set(np.argsort(bf16_a)[:k])),
            "seed": len(best & set(np.argsort(fp32_b)[:k])),
        },
    }


def print_agreement(s: dict) -> None:
    if "spearman_fp32_vs_bf16" not in s:
        return
    gap, med, rho = s["abs_diff_gap_bf16_minus_seed"], s["abs_diff_gap_median"], s["spearman_gap_as_screen"]
    best = s["best_quarter_kept"]
    print(
        f"rank agreement (Spearman) fp32 vs bf16: {s['spearman_fp32_vs_bf16']:.3f}; fp32 seed A vs seed B: "
        f"{s['spearman_seed_a_vs_b']:.3f}; bf16 seed A vs fp32 seed B: {s['spearman_bf16_a_vs_fp32_b']:.3f} "
        f"(as a screen, bf16 minus fp32: {rho['value']:+.3f}, 95% CI {rho['ci95'][0]:+.3f} to {rho['ci95'][1]:+.3f})"
    )
    print(
        f"mean |fitness difference| bf16 {s['mean_abs_diff_bf16']:.4f}, seed {s['mean_abs_diff_seed']:.4f}; "
        f"median bf16 {s['median_abs_diff_bf16']:.4f}, seed {s['median_abs_diff_seed']:.4f}; moved by more than "
        f"a point: bf16 {s['moved_over_1_point']['bf16']}, seed {s['moved_over_1_point']['seed']} of {len(s['rows'])}"
    )
    print(
        f"|bf16 - fp32| minus |seed B - seed A|: mean {gap['mean']:+.4f} (95% CI {gap['ci95'][0]:+.4f} to "
        f"{gap['ci95'][1]:+.4f}), median {med['value']:+.4f} (95% CI {med['ci95'][0]:+.4f} to {med['ci95'][1]:+.4f})"
    )
    print(f"the fp32 best {best['k']} kept among the best {best['k']}: bf16 {best['bf16']}, other seed {best['seed']}")


def summarize(path: str) -> None:
    """Recompute the agreement of a written result from its rows (no training), and store it there."""
    summary = json.loads(Path(path).read_text())
    summary |= agreement(summary["rows"])
    Path(path).write_text(json.dumps(summary, indent=2, default=str))
    print_agreement(summary)


if __name__ == "__main__":
    main()
