"""CPU defaults by measurement: the validation batch size, and one multi-threaded worker against several
one-thread workers, for the networks evolution and the benchmarks train.

Two measurements, each printed as a ratio measured in this one run (run it on an otherwise idle machine):

- validation: seconds to score `--val` images with a trained-shape small-cnn at several eval batch sizes,
  at one torch thread (what a one-thread worker uses) and at all threads; repeats interleaved, median kept;
- training: `--jobs` trainings of `--steps` SGD steps (small-cnn, batch 128), run (a) one after another in
  one process with all `--cpus` torch threads, the `local` default, and (b) `--cpus` at a time in
  separate one-thread processes, the Ray backend with `--cpus-per-task 1`. Throughput in samples/s
  over all jobs and the ratio (b) / (a).

    .venv/bin/python evaluations/perf/cpu_defaults.py                 # Fashion-MNIST, about 4 min on 2 cores
    .venv/bin/python evaluations/perf/cpu_defaults.py --smoke         # digits, seconds

Writes runs/perf/cpu_defaults.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

import torch

from robust_glo.data import load_dataset
from robust_glo.losses import get_loss
from robust_glo.models import create_model
from robust_glo.training import evaluate_accuracy, fit
from robust_glo.utils import run_metadata


def _train(dataset: str, model_name: str, steps: int, seed: int, threads: int) -> float:
    """Train one `model_name` network from `seed`; returns its training seconds (fit's own clock, start-up excluded)."""
    torch.set_num_threads(threads)
    splits = load_dataset(dataset)
    model = create_model(model_name, splits.info, seed=seed)
    return fit(model, get_loss("ce"), splits.train, steps=steps, seed=seed).seconds


def _worker(args: tuple[str, str, int, int, int]) -> float:
    return _train(*args)


def training(dataset: str, model_name: str, steps: int, jobs: int, cpus: int) -> dict[str, float]:
    """Wall seconds of `jobs` trainings: sequential at `cpus` threads against `cpus` one-thread processes."""
    ctx = mp.get_context("spawn")
    load_dataset(dataset)  # warm the file cache so neither arm pays the first read
    t0 = time.perf_counter()
    with ctx.Pool(1) as pool:  # a fresh process too, so both arms pay the same start-up
        pool.map(_worker, [(dataset, model_name, steps, seed, cpus) for seed in range(jobs)])
    sequential = time.perf_counter() - t0
    t0 = time.perf_counter()
    with ctx.Pool(cpus) as pool:
        pool.map(_worker, [(dataset, model_name, steps, seed, 1) for seed in range(jobs)])
    parallel = time.perf_counter() - t0
    samples = jobs * steps * 128
    return {
        "sequential_seconds": sequential,
        "parallel_seconds": parallel,
        "sequential_samples_per_s": samples / sequential,
        "parallel_samples_per_s": samples / parallel,
        "ratio_parallel_to_sequential": sequential / parallel,
    }


def validation(
    dataset: str, model_name: str, n_val: int, batches: list[int], threads: list[int], repeats: int
) -> dict[str, dict]:
    """Median seconds to score `n_val` validation images per (threads, batch size)."""
    splits = load_dataset(dataset, val_size=n_val)
    model = create_model(model_name, splits.info, seed=0)
    out: dict[str, dict] = {}
    for t in threads:
        torch.set_num_threads(t)
        times: dict[int, list[float]] = {b: [] for b in batches}
        evaluate_accuracy(model, splits.val, batch_size=batches[0])  # warm-up
        for _ in range(repeats):
            for b in batches:  # interleaved, so drift in the machine's load hits every size alike
                t0 = time.perf_counter()
                evaluate_accuracy(model, splits.val, batch_size=b)
                times[b].append(time.perf_counter() - t0)
        out[str(t)] = {str(b): statistics.median(v) for b, v in times.items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default="small-cnn")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    p.add_argument("--val", type=int, default=5000)
    p.add_argument("--batches", default="100,250,500,1000")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="runs/perf/cpu_defaults.json")
    args = p.parse_args()
    if args.smoke:
        args.dataset, args.model, args.steps, args.jobs, args.val, args.repeats = "digits", "mlp", 5, 2, 200, 1
    batches = [int(b) for b in args.batches.split(",")]
    threads = sorted({1, args.cpus})
    print(f"{args.cpus} CPU(s), load average {os.getloadavg()[0]:.2f} at the start", flush=True)

    val = validation(args.dataset, args.model, args.val, batches, threads, args.repeats)
    for t, row in val.items():
        best = min(row, key=row.get)
        cells = ", ".join(f"batch {b}: {s:.3f} s" for b, s in row.items())
        print(
            f"validation of {args.val} images at {t} thread(s): {cells}; fastest batch {best}, "
            f"{row[str(batches[-1])] / row[best]:.2f}x the speed of batch {batches[-1]}",
            flush=True,
        )

    train = training(args.dataset, args.model, args.steps, args.jobs, args.cpus)
    print(
        f"training {args.jobs} x {args.steps} steps: one process at {args.cpus} threads "
        f"{train['sequential_samples_per_s']:,.0f} samples/s, {args.cpus} one-thread processes "
        f"{train['parallel_samples_per_s']:,.0f} samples/s: {train['ratio_parallel_to_sequential']:.2f}x",
        flush=True,
    )
    summary = {
        "args": vars(args),
        "validation_seconds": val,
        "training": train,
        "load_end": os.getloadavg()[0],
        "environment": run_metadata(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
    print(f"load average {summary['load_end']:.2f} at the end; wrote {args.out}")


if __name__ == "__main__":
    main()
