"""The evolve stage in bfloat16 against float32: one search run twice, timed in this one run.

The same evolution (same CMA-ES seed, data, model, budget and fidelity) runs with `precision = "fp32"` and
with `precision = "bf16"` (`robust-glo evolve --precision`), one after the other, each in a fresh run
directory on the local backend with `--threads` torch threads. Printed: the wall time of each search and
their ratio, the seconds the search's candidates took (training and scoring together) and those of the
final re-evaluation's trainings, and what each found (its best loss's
re-evaluated fitness and validation accuracy). An untimed one-generation warm-up in each precision first
pays the one-off costs (loading the data, oneDNN's first kernels) outside the timed searches.
The two searches' trajectories part after the first generation (different weights rank candidates
differently), so what they find is compared, not matched; whether bfloat16 ranks candidates as float32
does is `bf16_screening.py`'s question.

bfloat16 is fast only on a CPU with AVX-512 BF16 or AMX (the script says which this one is); elsewhere it
is emulated and several times slower, which is why `--precision auto` checks the CPU.

    OMP_NUM_THREADS=1 .venv/bin/python evaluations/perf/evolve_precision.py   # small-cnn, 3 x 12, halving 300
    .venv/bin/python evaluations/perf/evolve_precision.py --smoke             # digits, seconds

Writes evaluations/perf/results/evolve_precision.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from robust_glo.evolution import EvolveConfig, run_evolution
from robust_glo.utils import native_cpu_bf16, run_metadata

PRECISIONS = ("fp32", "bf16")


def _config(args: argparse.Namespace, out: Path, precision: str, **override) -> EvolveConfig:
    values = dict(
        dataset=args.dataset,
        model=args.model,
        generations=args.generations,
        popsize=args.popsize,
        steps=args.steps,
        fidelity=args.fidelity,
        fitness=args.fitness,
        seed=args.seed,
        topk=2,
        reeval_seeds=2,
        backend="local",
        threads=args.threads,
        progress=False,
    )
    if values["fidelity"] == "halving" and "steps" in override:
        values["fidelity"] = "flat"  # a few-step warm-up has no room for rungs
    return EvolveConfig.create(out=str(out), precision=precision, **(values | override))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default="small-cnn")
    p.add_argument("--generations", type=int, default=3)
    p.add_argument("--popsize", type=int, default=12)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--fidelity", default="halving", choices=("flat", "halving"))
    p.add_argument("--fitness", default="clean")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default="runs/perf/evolve_precision", help="where the two searches are written")
    p.add_argument("--out", default="evaluations/perf/results/evolve_precision.json")
    p.add_argument("--smoke", action="store_true", help="digits, 1 generation of 4, 9 steps: a seconds-long check")
    args = p.parse_args()
    if args.smoke:
        args.dataset, args.model, args.generations, args.popsize, args.steps = "digits", None, 1, 4, 9
    native = native_cpu_bf16()
    print(f"this CPU {'has' if native else 'lacks'} native bfloat16 (AVX-512 BF16 / AMX)", flush=True)
    searches = {}
    for precision in PRECISIONS:  # warm-up, untimed
        warm = Path(args.runs) / f"warm-up-{precision}"
        shutil.rmtree(warm, ignore_errors=True)
        run_evolution(_config(args, warm, precision, generations=1, popsize=2, steps=min(args.steps, 9)))
    for precision in PRECISIONS:
        out = Path(args.runs) / precision
        shutil.rmtree(out, ignore_errors=True)  # a fresh search each time: nothing is reused
        config = _config(args, out, precision)
        t0 = time.perf_counter()
        result = run_evolution(config)
        wall = time.perf_counter() - t0
        best = result.best or {}
        searches[precision] = {
            "wall_seconds": wall,
            "candidate_seconds": sum(float(h.get("seconds") or 0.0) for h in result.history),
            "trained": result.search_trainings,
            "reevaluations": result.reeval_trainings,
            "reevaluation_seconds": sum(float(r.get("seconds") or 0.0) for r in result.reevaluations),
            "best_fitness": best.get("fitness"),
            "best_fitness_std": best.get("fitness_std"),
            "best_val_accuracy": best.get("val_accuracy"),
            "best_theta": best.get("theta"),
        }
        print(
            f"{precision}: {wall:.1f} s wall ({searches[precision]['candidate_seconds']:.1f} s in candidates, "
            f"{searches[precision]['reevaluation_seconds']:.1f} s in the re-evaluation), "
            f"{result.search_trainings} candidates trained; best re-evaluated fitness {best.get('fitness')}, "
            f"(sd {best.get('fitness_std')}), val. accuracy {best.get('val_accuracy')}",
            flush=True,
        )
    ratio = searches["fp32"]["wall_seconds"] / searches["bf16"]["wall_seconds"]
    summary = {
        "native_bf16": native,
        "dataset": args.dataset,
        "model": args.model,
        "generations": args.generations,
        "popsize": args.popsize,
        "steps": args.steps,
        "fidelity": args.fidelity,
        "fitness": args.fitness,
        "seed": args.seed,
        "threads": args.threads,
        "searches": searches,
        "speedup_fp32_over_bf16_wall": ratio,
        "environment": run_metadata(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
    print(f"evolve stage: fp32 / bf16 wall time = {ratio:.2f}x ({args.threads} thread(s))")


if __name__ == "__main__":
    main()
