"""bfloat16 training on the CPU: how much faster than float32 here, and does it reach the same accuracy?

Trains `--model` (small-cnn) on `--dataset` (Fashion-MNIST) with the project's training recipe through
`train_run`, once per precision (`TrainConfig.precision` "fp32" and "bf16": bfloat16 autocast +
channels_last) on each of `--seeds` seeds, fp32 and bf16 alternating so drift in the machine's load hits
both. Printed, all measured in this one run:

- the bfloat16 support detected (`robust_glo.utils.cpu_bf16_support`) and what precision "auto" resolves
  to on this CPU;
- training samples/s of fp32 and bf16 and the ratio bf16 / fp32 at one torch thread (median over the
  seeds' runs of `--steps` steps) and at all threads (median over `--rounds` runs of `--speed-steps`);
- each seed's final validation accuracy in fp32 and bf16, the mean paired difference (bf16 - fp32) with
  its standard error, and the seed noise (standard deviation of the fp32 accuracies over the seeds). The
  accuracies agree when the mean difference is within two standard errors of 0 or smaller than the seed
  noise.

    .venv/bin/python evaluations/perf/cpu_bf16.py                 # Fashion-MNIST, 3 seeds x 500 steps
    .venv/bin/python evaluations/perf/cpu_bf16.py --smoke         # digits, seconds

Writes runs/perf/cpu_bf16.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from pathlib import Path

import torch

from robust_glo.data import load_dataset
from robust_glo.training import TrainConfig, train_run
from robust_glo.utils import cpu_bf16_support, run_metadata, usable_cpus


def _train(args, splits, precision: str, seed: int, steps: int) -> dict:
    config = TrainConfig.from_dict(
        {
            "loss": "ce",
            "dataset": args.dataset,
            "model": args.model,
            "steps": steps,
            "seed": seed,
            "device": "cpu",
            "precision": precision,
            "test_size": args.test_size,
        }
    )
    result = train_run(config, None, splits=splits, progress=False)
    return {
        "precision": result.config.precision,
        "seed": seed,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "status": result.status,
        "val_accuracy": result.val_accuracy,
        "seconds": result.seconds,
        "samples_per_s": result.metrics["samples_per_second"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default="small-cnn")
    p.add_argument("--steps", type=int, default=500, help="steps of each accuracy run (the quick suite's 500)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--speed-steps", type=int, default=100, help="steps of each all-threads speed run")
    p.add_argument("--rounds", type=int, default=2, help="all-threads speed runs per precision")
    p.add_argument("--threads", type=int, default=usable_cpus(), help="'all threads' (default: usable cores)")
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--out", default="runs/perf/cpu_bf16.json")
    args = p.parse_args()
    if args.smoke:
        args.dataset, args.model, args.steps, args.seeds, args.speed_steps, args.rounds = "digits", None, 10, 2, 5, 1
        args.test_size = 100

    support = cpu_bf16_support()
    auto = TrainConfig.from_dict({"dataset": args.dataset, "device": "cpu", "precision": "auto"}).resolved().precision
    print(
        f"CPU bfloat16: avx512_bf16 {support['avx512_bf16']}, amx_bf16 {support['amx_bf16']} "
        f"(torch dispatch {support['cpu_capability']}; detected by {support['source']}): precision auto -> {auto}; "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    splits = load_dataset(args.dataset, test_size=args.test_size)

    torch.set_num_threads(1)
    runs: list[dict] = []
    for seed in range(args.seeds):
        order = ("fp32", "bf16") if seed % 2 == 0 else ("bf16", "fp32")
        for precision in order:
            row = _train(args, splits, precision, seed, args.steps)
            runs.append(row)
            print(
                f"seed {seed} {precision}: val accuracy {row['val_accuracy']}, {row['samples_per_s']:,.0f} "
                f"samples/s (1 thread, {args.steps} steps in {row['seconds']:.1f} s)",
                flush=True,
            )
    torch.set_num_threads(args.threads)
    for r in range(args.rounds):
        for precision in ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32"):
            row = _train(args, splits, precision, 0, args.speed_steps)
            runs.append(row)
            print(f"{args.threads} threads {precision}: {row['samples_per_s']:,.0f} samples/s", flush=True)

    def speed(threads: int, steps: int) -> dict[str, float]:
        out = {}
        for precision in ("fp32", "bf16"):
            rates = [
                r["samples_per_s"]
                for r in runs
                if (r["threads"], r["steps"], r["precision"]) == (threads, steps, precision)
            ]
            out[precision] = statistics.median(rates)
        out["ratio_bf16_to_fp32"] = out["bf16"] / out["fp32"]
        return out

    one, many = speed(1, args.steps), speed(args.threads, args.speed_steps)
    acc = {
        prec: [
            next(r["val_accuracy"] for r in runs if (r["seed"], r["steps"], r["precision"]) == (s, args.steps, prec))
            for s in range(args.seeds)
        ]
        for prec in ("fp32", "bf16")
    }
    diffs = [(b or 0.0) - (f or 0.0) for f, b in zip(acc["fp32"], acc["bf16"])]
    mean_diff = statistics.fmean(diffs)
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    seed_sd = statistics.stdev(a or 0.0 for a in acc["fp32"]) if len(diffs) > 1 else float("nan")
    agree = abs(mean_diff) <= 2 * se or abs(mean_diff) <= seed_sd
    summary = {
        "args": vars(args),
        "cpu_bf16": support,
        "auto_resolves_to": auto,
        "one_thread": one,
        "all_threads": {"threads": args.threads, **many},
        "val_accuracy": acc,
        "mean_diff_bf16_minus_fp32": mean_diff,
        "se_diff": se,
        "mean_abs_diff": statistics.fmean(abs(d) for d in diffs),
        "seed_sd_fp32": seed_sd,
        "accuracies_agree": agree,
        "runs": runs,
        "load_end": os.getloadavg()[0],
        "environment": run_metadata(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
    print(
        f"training samples/s, 1 thread: fp32 {one['fp32']:,.0f}, bf16 {one['bf16']:,.0f}: bf16 / fp32 = "
        f"{one['ratio_bf16_to_fp32']:.2f}x; {args.threads} threads: fp32 {many['fp32']:,.0f}, "
        f"bf16 {many['bf16']:,.0f}: "
        f"{many['ratio_bf16_to_fp32']:.2f}x"
    )
    print(
        f"validation accuracy over {args.seeds} seeds ({args.steps} steps): fp32 "
        f"{', '.join(f'{a or 0:.4f}' for a in acc['fp32'])}; bf16 {', '.join(f'{a or 0:.4f}' for a in acc['bf16'])}; "
        f"bf16 - fp32 = {mean_diff:+.4f} ± {se:.4f} (mean |difference| {summary['mean_abs_diff']:.4f}), "
        f"seed noise (fp32 sd) {seed_sd:.4f}: {'agree' if agree else 'DIFFER'}"
    )
    print(f"load average {summary['load_end']:.2f} at the end; wrote {args.out}")


if __name__ == "__main__":
    main()
