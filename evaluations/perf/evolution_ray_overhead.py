"""Ray local-cluster overhead against the `local` backend, on the same evolution.

Three timings of the same run (same seed, so the same candidates and, at one torch thread, the same
history): `local`; `ray` on a 1-CPU local cluster (one task at a time: the pure overhead of tasks, object
store and worker start-up); `ray` on an N-CPU local cluster (N tasks in parallel). Cluster start-up
(`ray.init`) is timed apart. All evaluations use one torch thread.

    .venv/bin/python evaluations/perf/evolution_ray_overhead.py                   # digits, about 2 min
    .venv/bin/python evaluations/perf/evolution_ray_overhead.py --dataset fashion-mnist --steps 100

Writes runs/perf/evolution_ray_overhead/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from robust_glo.evolution import EvolveConfig, RayBackend, run_evolution


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--generations", type=int, default=2)
    p.add_argument("--popsize", type=int, default=8)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--val-size", type=int, default=None)
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    p.add_argument("--out", default="runs/perf/evolution_ray_overhead")
    args = p.parse_args()

    import ray
    import torch

    torch.set_num_threads(1)
    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)

    def config(name: str, backend: str) -> EvolveConfig:
        return EvolveConfig.create(
            out=str(root / name),
            dataset=args.dataset,
            generations=args.generations,
            popsize=args.popsize,
            steps=args.steps,
            val_size=args.val_size,
            topk=1,
            reeval_seeds=1,
            backend=backend,
            threads=1,
            progress=False,
        )

    rows = {}
    t0 = time.perf_counter()
    local = run_evolution(config("local", "local"))
    rows["local"] = {"seconds": time.perf_counter() - t0, "evaluations": local.evaluated_now}
    histories = {"local": [{k: v for k, v in r.items() if k != "seconds"} for r in local.history]}
    for cpus in sorted({1, args.cpus}):
        t0 = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        init = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = run_evolution(config(f"ray{cpus}", "ray"), backend=RayBackend())
        rows[f"ray_{cpus}cpu"] = {
            "seconds": time.perf_counter() - t0,
            "init_seconds": init,
            "evaluations": result.evaluated_now,
        }
        histories[f"ray_{cpus}cpu"] = [{k: v for k, v in r.items() if k != "seconds"} for r in result.history]
        ray.shutdown()
    base = rows["local"]["seconds"]
    n = rows["local"]["evaluations"]
    print(f"{args.dataset}: {args.generations} x {args.popsize} candidates, {args.steps} steps, {n} evaluations")
    for name, row in rows.items():
        row["same_history_as_local"] = histories[name] == histories["local"]
        extra = f" (+ {row['init_seconds']:.1f}s ray.init)" if "init_seconds" in row else ""
        per = (row["seconds"] - base) / max(1, n)
        print(
            f"  {name:>10}: {row['seconds']:6.1f}s{extra}, {row['seconds'] / base:.2f}x local, "
            f"{per:+.2f}s per evaluation vs local; same history as local: {row['same_history_as_local']}"
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / "summary.json").write_text(json.dumps({"settings": vars(args), "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
