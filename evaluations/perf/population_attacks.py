"""Attacks batched across networks: P networks attacked one by one vs as one population.

For each population size P (`--sizes`, default 1, 4, 15), P small-cnn networks of one architecture on
Fashion-MNIST-sized inputs (1 x 28 x 28, 10 classes) are evaluated with the same attack list, budgets,
images and seeds twice, in one process:

- one by one: `run_evaluation(model_p, x, labels_p, ...)` for p = 0 .. P - 1 (torchattacks per network);
- as one population: `evaluate_population(models, x, labels, ...)` (`robust_glo.robustness.population`:
  stacked parameters, one vmapped forward and backward per attack step on a GPU, member by member on a
  CPU; FAB-T and L2 Square would fall back to torchattacks per member).

Printed, from this one run: the wall time of each side, the ratio (one by one / population: > 1 means
the population is faster), the same from this process's CPU time (steadier than wall time on a shared
CPU; on a GPU the wall time is what counts), the seconds per attack of each side, and whether the two
give the same per-image outcomes (the number of (member, attack, eps, image) bits that differ: 0
expected; in float32 the vmapped kernels round differently from the per-network ones, which could flip
an input lying on a decision boundary). The hardware is recorded (GPU name, CPU model and bfloat16
flags, threads).

Networks: random weights (`--train-steps 0`, the default on the CPU), each attacked on its own
predictions so that every input starts correct and the attacks do their full work, or trained with the
population engine for `--train-steps` steps on Fashion-MNIST (the default on a GPU) and attacked on the
true labels. Images: Fashion-MNIST's test set when it is on disk, else uniform noise (said in the output).

    .venv/bin/python evaluations/perf/population_attacks.py                # GPU: the real figures
    .venv/bin/python evaluations/perf/population_attacks.py --smoke        # CPU, about 2 minutes
    .venv/bin/python evaluations/perf/population_attacks.py --forward loop,vmap   # both modes

On a CPU, which is compute-bound, no gain is expected (the population does the same arithmetic); the point
is the GPU, where small models are launch-bound and one batched step costs about what one network's does.
Writes `--out` (default runs/perf/population_attacks.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from robust_glo.data import load_dataset
from robust_glo.data.registry import DATASETS
from robust_glo.data.splits import Split
from robust_glo.losses import get_loss
from robust_glo.models import create_model
from robust_glo.robustness import run_evaluation
from robust_glo.robustness.population import evaluate_population
from robust_glo.training import train_population
from robust_glo.utils import cpu_bf16_support, run_metadata

FULL_ATTACKS = "fgsm,pgd:steps=40,apgd-ce,apgd-t,square"
SMOKE_ATTACKS = "fgsm,pgd:steps=10,apgd-ce:steps=20,apgd-t:steps=20:targets=3,square:n_queries=200"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Test images `(n, 1, 28, 28)` and labels `(n,)`, and where they came from."""
    try:
        splits = load_dataset("fashion-mnist", test_size=max(n, 100))
        return splits.test.images[:n], splits.test.labels[:n], f"fashion-mnist test ({splits.source})"
    except Exception as exc:  # noqa: BLE001 - any failure to read it: fall back to noise, and say so
        g = torch.Generator().manual_seed(seed)
        note = f"uniform noise (fashion-mnist unavailable: {str(exc).splitlines()[0][:80]})"
        return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), note


def _models(p: int, train_steps: int, device: torch.device, dtype: torch.dtype) -> list[torch.nn.Module]:
    info = DATASETS["fashion-mnist"]
    models = [create_model("small-cnn", info, seed=s) for s in range(p)]
    if train_steps > 0:
        splits = load_dataset("fashion-mnist")
        train = Split(splits.train.images, splits.train.labels)
        pop = train_population(
            models, [get_loss("ce")] * p, train, steps=train_steps, seeds=list(range(p)), device=device
        )
        models = [pop.member(j, create_model("small-cnn", info, seed=j)) for j in range(p)]
    return [m.to(device=device, dtype=dtype).eval() for m in models]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _per_attack(tables) -> dict[str, float]:
    """Seconds per attack label, summed over the members' results tables (eps > 0 rows)."""
    out: dict[str, float] = {}
    for t in tables:
        rows = t[(t["eps"] > 0) & ~t["attack"].isin(["clean", "worst", "worst:l2"])]
        for label, sec in rows.groupby("attack")["seconds"].sum().items():
            out[label] = out.get(label, 0.0) + float(sec)
    return out


def _differences(pop, refs) -> int:
    diff = 0
    for p, ref in enumerate(refs):
        for label, by_eps in ref.robust.items():
            for e, bits in by_eps.items():
                diff += int((pop.members[p].robust[label][e] != bits).sum())
    return diff


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="CPU-sized: 16 images, short attacks")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", default="1,4,15", help="population sizes P")
    p.add_argument("--n", type=int, default=500, help="images per network")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--attacks", default=None, help=f"attack list (default {FULL_ATTACKS}; smoke {SMOKE_ATTACKS})")
    p.add_argument("--eps", default="0.1", help="L-infinity budgets")
    p.add_argument("--train-steps", type=int, default=None, help="population training steps (0: random weights)")
    p.add_argument("--forward", default="auto", help="PopulationModel modes to time: auto, loop, vmap (comma list)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a shared CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cudnn-benchmark", action="store_true", help="let cuDNN time its kernels (grouped convolutions of vmap)"
    )
    p.add_argument("--out", default="runs/perf/population_attacks.json")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.smoke:
        args.n, args.batch_size = min(args.n, 16), min(args.batch_size, 16)
        args.attacks = args.attacks or SMOKE_ATTACKS
        args.eps = "0.05" if args.eps == "0.1" else args.eps
    args.attacks = args.attacks or FULL_ATTACKS
    if args.train_steps is None:
        args.train_steps = 300 if device.type == "cuda" and not args.smoke else 0
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    dtype = getattr(torch, args.dtype)
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = [m.strip() for m in args.forward.split(",") if m.strip()]
    attacks = [a.strip() for a in args.attacks.split(",")]
    eps = [float(e) for e in args.eps.split(",")]
    hardware = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": _cpu_model(),
        "cpu_bf16": cpu_bf16_support(),
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg()[0],
    }
    print(
        f"device {device} ({hardware['gpu'] or hardware['cpu']}); {torch.get_num_threads()} torch thread(s); "
        f"load average {hardware['load_average_start']:.2f}",
        flush=True,
    )
    x, true_labels, source = _data(args.n, args.seed)
    t0 = time.perf_counter()
    all_models = _models(max(sizes), args.train_steps, device, dtype)
    train_seconds = time.perf_counter() - t0
    x = x.to(device)
    with torch.no_grad():
        own = torch.stack([m(x.to(dtype)).argmax(1) for m in all_models])
    labels = true_labels.to(device).expand(len(all_models), -1) if args.train_steps > 0 else own
    what = f"small-cnn trained {args.train_steps} steps (population engine)" if args.train_steps else "random weights"
    print(
        f"{len(x)} images: {source}; networks: {what}, {args.dtype}; labels: "
        f"{'true' if args.train_steps else 'each network its own predictions'}; attacks {attacks} at eps {eps}",
        flush=True,
    )
    kw = dict(attacks=attacks, eps=eps, batch_size=args.batch_size, device=device, seed=args.seed)
    # Warm-up (CUDA context, cuDNN, first-call costs) on a few images, not timed.
    warm = dict(kw, attacks=["fgsm", "pgd:steps=2"])
    run_evaluation(all_models[0], x[:4], labels[0, :4], **warm)
    for mode in modes:
        evaluate_population(all_models[:2], x[:4], labels[:2, :4], forward=mode, **warm)
    rows = []
    for size in sizes:
        models, member_labels = all_models[:size], labels[:size]
        timings: dict[str, float] = {}
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        refs = [run_evaluation(m, x, member_labels[j], **kw) for j, m in enumerate(models)]
        _sync(device)
        timings["one_by_one"] = time.perf_counter() - t0
        timings["one_by_one_cpu"] = time.process_time() - c0
        row = {
            "P": size,
            "one_by_one_s": timings["one_by_one"],
            "one_by_one_cpu_s": timings["one_by_one_cpu"],
            "one_by_one_per_attack_s": _per_attack([r.results for r in refs]),
        }
        for mode in modes:
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            pop = evaluate_population(models, x, member_labels, forward=mode, **kw)
            _sync(device)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            row[f"population_{pop.forward}_s"] = seconds
            row[f"ratio_{pop.forward}"] = timings["one_by_one"] / seconds
            row[f"population_{pop.forward}_cpu_s"] = cpu
            row[f"ratio_cpu_time_{pop.forward}"] = timings["one_by_one_cpu"] / cpu
            row[f"population_{pop.forward}_per_attack_s"] = _per_attack([m.results for m in pop.members])
            row[f"differing_bits_{pop.forward}"] = _differences(pop, refs)
            row["ported"] = pop.ported
            row["robust_accuracy_worst"] = pop.accuracy("worst", max(eps)).tolist()
            print(
                f"P = {size:2d}: one by one {timings['one_by_one']:7.2f} s, population ({pop.forward}) "
                f"{seconds:7.2f} s: ratio {timings['one_by_one'] / seconds:5.2f}x (process CPU time "
                f"{timings['one_by_one_cpu']:.2f} / {cpu:.2f} s: {timings['one_by_one_cpu'] / cpu:.2f}x); outcomes "
                f"{'identical' if row[f'differing_bits_{pop.forward}'] == 0 else 'DIFFER'} "
                f"({row[f'differing_bits_{pop.forward}']} of "
                f"{sum(int(b.numel()) for r in refs for by in r.robust.values() for b in by.values())} bits differ)",
                flush=True,
            )
            per_one, per_pop = row["one_by_one_per_attack_s"], row[f"population_{pop.forward}_per_attack_s"]
            print(
                "        per attack (one by one / population): "
                + ", ".join(f"{a} {per_one[a]:.2f}/{per_pop.get(a, float('nan')):.2f} s" for a in per_one),
                flush=True,
            )
        rows.append(row)
    summary = {
        "args": vars(args),
        "hardware": hardware,
        "data": source,
        "networks": what,
        "train_seconds": train_seconds,
        "results": rows,
        "load_average_end": os.getloadavg()[0],
        "environment": run_metadata(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
    print(f"load average {summary['load_average_end']:.2f} at the end; wrote {args.out}")


if __name__ == "__main__":
    main()
