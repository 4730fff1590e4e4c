"""GPU figures in one run: population training against sequential training, attack throughput, and the
wall time of a stated fraction of `fashion-mnist-full` with the extrapolation to the whole suite.

Run through `evaluations/perf/gpu.sh` (which finds a Python and the repository). Parts:

1. Population training throughput (samples/s over all members) for P = 1, 8, 28 against `fit` training
   the same networks one after another (its samples/s does not depend on P), and the ratio. small-cnn on
   Fashion-MNIST (real images when the files are found, else synthetic of the same shape; the line says
   which); allcnn-c and resnet20 on CIFAR-shaped *synthetic* data (CIFAR cannot be downloaded here).
   Losses cycle through ce, label_smoothing:0.1, focal:2 and a TaylorGLO theta, as a benchmark's train
   stage mixes them. Both sides are timed by their own training loops (set-up excluded), after a warm-up.
   With --amp, the population is also timed under bfloat16 autocast.
2. Attack throughput: images/s of `evaluate_model` with PGD-20 and APGD-CE at eps 0.1 on a small-cnn,
   at two attack batch sizes.
3. `fashion-mnist-full`, a stated fraction: one generation of its evolution (28 candidates x 2,000
   steps, batched backend, with the final re-evaluation), its 30 training runs (6 losses x 5 seeds) as one
   population for 1/10 of their 20,000 steps (under torch.compile on CUDA, compilation included), and its
   attacks on those 30 networks as one population (`evaluate_population`, the attack stage with
   --population on) on 100 of its 500 images, timed against one of them attacked alone; each part is
   scaled to the whole suite (20 generations; 10x steps; 5x images) and summed.

    bash evaluations/perf/gpu.sh                 # on a GPU: about 5 minutes
    bash evaluations/perf/gpu.sh --smoke         # any machine, tiny sizes, under a minute (tested)

Prints one line per figure and writes everything to --json (default runs/perf/gpu.json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from robust_glo.data import load_dataset
from robust_glo.data.registry import DATASETS
from robust_glo.data.splits import Split
from robust_glo.losses import get_loss
from robust_glo.models import create_model
from robust_glo.training import fit, train_population
from robust_glo.utils import resolve_device, run_metadata

LOSSES = ["ce", "label_smoothing:0.1", "focal:2", "taylorglo:[0.3,0.6,-2.5,1.2,-0.2,3.0,1.0,-0.3]"]
FULL_ATTACKS = [  # fashion-mnist-full's [attack] list
    "fgsm",
    "pgd:steps=40",
    "apgd-ce:cascade=true",
    "apgd-t:cascade=true",
    "fab-t:cascade=true",
    "square:cascade=true",
]
FULL_EPS = [0, 0.02, 0.05, 0.1, 0.15]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _synthetic(dataset: str, n: int, seed: int = 0) -> Split:
    info = DATASETS[dataset]
    g = torch.Generator().manual_seed(seed)
    return Split(torch.rand(n, *info.image_shape, generator=g), torch.randint(0, info.num_classes, (n,), generator=g))


def _fashion(smoke: bool) -> tuple[object, str]:
    """Fashion-MNIST splits, or synthetic ones of the same shape when its files are not found."""
    try:
        return load_dataset("fashion-mnist", download=False), "fashion-mnist"
    except Exception as exc:  # noqa: BLE001 (any failure to find the files means: use synthetic data)
        print(f"  (Fashion-MNIST not found: {type(exc).__name__}; using synthetic 28x28 data)")
        n = 512 if smoke else 60_000
        train = _synthetic("fashion-mnist", n)
        return type("Splits", (), {"train": train, "val": train, "test": train, "info": DATASETS["fashion-mnist"]})(), (
            "synthetic 28x28"
        )


def population_rate(name, info, split, p, steps, batch, device, amp=False, autotune=True, compiled=False) -> float:
    """Samples/s over all P members of a population trained for `steps` (loop time; with `compiled`, the
    warm-up pays torch.compile's compilation, the timed run reuses it)."""
    models = [create_model(name, info, seed=s) for s in range(p)]
    losses = [get_loss(LOSSES[j % len(LOSSES)]) for j in range(p)]
    kw = dict(batch_size=batch, seeds=list(range(p)), device=device, amp=amp, augment=False)
    kw["cudnn_benchmark"] = autotune
    kw["compile"] = compiled
    train_population(models, losses, split, steps=3, **kw)  # warm-up: kernels, allocator
    pop = train_population(models, losses, split, steps=steps, **kw)
    return p * steps * batch / pop.seconds


def sequential_rate(name, info, split, steps, batch, device, amp=False) -> float:
    """Samples/s of `fit` training one network (what P networks one after another get, whatever P)."""
    kw = dict(batch_size=batch, device=device, amp=amp, augment=False)
    fit(create_model(name, info, seed=0), get_loss("ce"), split, steps=3, **kw)
    rates = []
    for j in range(2):  # two losses: the TaylorGLO one costs a little more than ce
        r = fit(create_model(name, info, seed=j), get_loss(LOSSES[3 * j]), split, steps=steps, seed=j, **kw)
        rates.append(steps * batch / r.seconds)
    return sum(rates) / len(rates)


def part_population(args, device, out) -> None:
    splits, source = _fashion(args.smoke)
    cases = [("small-cnn", "fashion-mnist", splits.train, source)]
    n_synth = 256 if args.smoke else 10_000
    cases += [
        (m, "cifar10", _synthetic("cifar10", n_synth), "synthetic CIFAR-shaped") for m in ("allcnn-c", "resnet20")
    ]
    sizes = [1, 2] if args.smoke else [1, 8, 28]
    out["population"] = []
    for name, dataset, split, data in cases:
        steps = 2 if args.smoke else (args.steps if name == "small-cnn" else args.steps // 8)
        info = DATASETS[dataset]
        seq = sequential_rate(name, info, split, steps, args.batch, device)
        variants = [(p, False, True, False) for p in sizes]
        if device.type == "cuda":  # the largest population without cuDNN autotuning, compiled, in bfloat16
            variants.append((sizes[-1], False, False, False))
            variants.append((sizes[-1], False, True, True))
            if args.amp:
                variants.append((sizes[-1], True, True, False))
        for p, amp, autotune, compiled in variants:
            try:
                rate = population_rate(
                    name, info, split, p, steps, args.batch, device, amp=amp, autotune=autotune, compiled=compiled
                )
            except RuntimeError as exc:  # a variant that fails is reported, not hidden
                print(
                    f"population {name} P={p} amp={amp} autotune={autotune} compile={compiled}: failed ({exc})",
                    flush=True,
                )
                out["population"].append(
                    dict(model=name, P=p, amp=amp, autotune=autotune, compiled=compiled, error=str(exc))
                )
                continue
            row = dict(model=name, data=data, P=p, amp=amp, autotune=autotune, compiled=compiled, steps=steps)
            row["batch"] = args.batch
            row |= dict(population_samples_per_s=rate, sequential_samples_per_s=seq, ratio=rate / seq)
            out["population"].append(row)
            tag = (" bf16" if amp else "") + ("" if autotune or device.type != "cuda" else " no-autotune")
            tag += " compiled" if compiled else ""
            print(
                f"population {name:9s} ({data}) P={p:2d}{tag:12s}: {rate:10,.0f} samples/s; "
                f"sequential {seq:9,.0f} samples/s; ratio {rate / seq:5.2f}x",
                flush=True,
            )


def _trained_small_cnn(splits, device, steps):
    model = create_model("small-cnn", splits.info, seed=0)
    fit(model, get_loss("ce"), splits.train, steps=steps, device=device)
    return model.eval()


def part_attacks(args, device, out) -> None:
    from robust_glo.robustness import evaluate_model

    splits, source = _fashion(args.smoke)
    model = _trained_small_cnn(splits, device, 20 if args.smoke else 1000)
    n = 64 if args.smoke else 2000
    x, y = splits.test.images[:n], splits.test.labels[:n]
    out["attacks"] = []
    for attack in ["pgd:steps=20", "apgd-ce"]:
        for batch in [32, 64] if args.smoke else [500, 2000]:
            evaluate_model(model, x[:batch], y[:batch], [attack], [0.1], batch_size=batch, device=device)  # warm-up
            _sync(device)
            t0 = time.perf_counter()
            table = evaluate_model(model, x, y, [attack], [0.1], batch_size=batch, device=device)
            _sync(device)
            seconds = time.perf_counter() - t0
            robust = float(table[(table["attack"] == attack) & (table["eps"] == 0.1)]["accuracy"].iloc[0])
            out["attacks"].append(dict(attack=attack, batch=batch, n=n, seconds=seconds, images_per_s=n / seconds))
            print(
                f"attack {attack:13s} eps 0.1, batch {batch:4d}: {n / seconds:8,.0f} images/s "
                f"({n} {source} test images in {seconds:.1f} s, robust accuracy {robust:.3f})",
                flush=True,
            )


def part_full_suite(args, device, out) -> None:
    from robust_glo.evolution import EvolveConfig, run_evolution
    from robust_glo.robustness import evaluate_model
    from robust_glo.robustness.population import evaluate_population
    from robust_glo.training import Recipe

    splits, source = _fashion(args.smoke)
    if source != "fashion-mnist":
        print("fashion-mnist-full: not run (needs the Fashion-MNIST files; set ROBUST_GLO_DATA)")
        out["fashion_mnist_full"] = "not run: Fashion-MNIST files not found"
        return
    full = dict(generations=20, popsize=28, evo_steps=2000, losses=6, seeds=5, train_steps=20000, n=500)
    frac = (
        dict(popsize=4, evo_steps=3, train_steps=2, n=16, attacks=["fgsm", "pgd:steps=2"], eps=[0, 0.1])
        if args.smoke
        else dict(popsize=28, evo_steps=2000, train_steps=2000, n=100, attacks=FULL_ATTACKS, eps=FULL_EPS)
    )
    row: dict = {"full_suite": full, "measured": {k: v for k, v in frac.items() if k not in ("attacks", "eps")}}
    with tempfile.TemporaryDirectory() as tmp:
        config = EvolveConfig(
            out=f"{tmp}/evolve",
            dataset="fashion-mnist",
            generations=1,
            popsize=frac["popsize"],
            steps=frac["evo_steps"],
            topk=3 if not args.smoke else 1,
            reeval_seeds=3 if not args.smoke else 1,
            backend="batched",
            device=str(device),
            progress=False,
            data_root=None,
        )
        t0 = time.perf_counter()
        run_evolution(config)
        _sync(device)
        evolve_one = time.perf_counter() - t0
    # The 30 training runs as one population (the benchmark's train stage with --population on), under
    # torch.compile on CUDA (compilation included: a real run pays it too).
    compiled = device.type == "cuda"
    specs = ["ce", "label_smoothing:0.1", LOSSES[3], "poly1", "baikal", "focal:2"]
    n_losses, n_seeds = (2, 2) if args.smoke else (full["losses"], full["seeds"])
    p = n_losses * n_seeds
    models = [create_model("small-cnn", splits.info, seed=j % n_seeds) for j in range(p)]
    losses = [get_loss(specs[j // n_seeds]) for j in range(p)]
    recipe = Recipe()
    _sync(device)
    t0 = time.perf_counter()
    pop = train_population(
        models,
        losses,
        splits.train,
        steps=frac["train_steps"],
        seeds=[j % n_seeds for j in range(p)],
        device=device,
        compile=compiled,
        **recipe.fit_options(len(splits.train), augment_default=False),
    )
    _sync(device)
    train_part = time.perf_counter() - t0
    # The attack stage: the P trained networks attacked as one population (--population on), against one of
    # them attacked alone (what the stage cost network by network), on the same fraction of the images.
    members = [pop.member(j, create_model("small-cnn", splits.info, seed=0)).to(device).eval() for j in range(p)]
    x, y = splits.test.images[: frac["n"]], splits.test.labels[: frac["n"]]
    _sync(device)
    t0 = time.perf_counter()
    evaluate_model(members[0], x, y, frac["attacks"], frac["eps"], batch_size=500, device=device)
    _sync(device)
    attack_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate_population(members, x, y, frac["attacks"], frac["eps"], batch_size=500, device=device)
    _sync(device)
    attack_part = time.perf_counter() - t0
    evolve_full = (
        evolve_one * full["generations"]
    )  # the one generation included the final re-evaluation: an upper bound
    train_full = train_part * full["train_steps"] / frac["train_steps"] * (full["losses"] * full["seeds"]) / p
    attack_full = attack_part * (full["losses"] * full["seeds"]) / p * full["n"] / frac["n"]
    attack_one_by_one = attack_one * (full["losses"] * full["seeds"]) * full["n"] / frac["n"]
    total = evolve_full + train_full + attack_full
    row |= dict(
        evolve_one_generation_s=evolve_one,
        train_fraction_s=train_part,
        train_compiled=compiled,
        attack_population_fraction_s=attack_part,
        attack_one_network_fraction_s=attack_one,
        attack_population_vs_one_by_one=attack_one * p / attack_part,
        attack_one_by_one_extrapolated_s=attack_one_by_one,
        evolve_extrapolated_s=evolve_full,
        train_extrapolated_s=train_full,
        attack_extrapolated_s=attack_full,
        total_extrapolated_s=total,
    )
    out["fashion_mnist_full"] = row
    print(
        f"fashion-mnist-full: evolve 1 of {full['generations']} generations ({frac['popsize']} x {frac['evo_steps']} "
        f"steps + re-evaluation) {evolve_one:.1f} s -> x{full['generations']} = {evolve_full:.0f} s",
        flush=True,
    )
    print(
        f"fashion-mnist-full: train {p} networks as one population{' (compiled)' if compiled else ''}, "
        f"{frac['train_steps']} of "
        f"{full['train_steps']} steps, {train_part:.1f} s -> {train_full:.0f} s",
        flush=True,
    )
    print(
        f"fashion-mnist-full: attacks on the {p} networks as one population, {frac['n']} of {full['n']} images, "
        f"{len(frac['attacks'])} attacks x {len(frac['eps'])} eps, {attack_part:.1f} s -> {attack_full:.0f} s "
        f"(one network alone {attack_one:.1f} s: population {attack_one * p / attack_part:.2f}x one by one; "
        f"one by one the stage would take {attack_one_by_one:.0f} s)",
        flush=True,
    )
    print(f"fashion-mnist-full: extrapolated total {total:.0f} s ({total / 60:.1f} min)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device: checks the script runs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=200, help="training steps timed for small-cnn (others: 1/8)")
    parser.add_argument("--batch", type=int, default=None, help="training batch (default 128; 16 with --smoke)")
    parser.add_argument("--amp", action="store_true", help="also time the largest populations in bfloat16 (CUDA)")
    parser.add_argument("--parts", default="population,attacks,full", help="which parts to run")
    parser.add_argument("--json", default="runs/perf/gpu.json")
    args = parser.parse_args()
    device = resolve_device(args.device)
    args.batch = args.batch or (16 if args.smoke else 128)
    meta = run_metadata()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; smoke={args.smoke}", flush=True)
    out: dict = {"device": name, "torch": torch.__version__, "smoke": args.smoke, "hardware": meta.get("hardware")}
    parts = set(args.parts.split(","))
    t0 = time.perf_counter()
    for part, fn in (("population", part_population), ("attacks", part_attacks), ("full", part_full_suite)):
        if part in parts:
            fn(args, device, out)
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    print(f"total wall time of this script: {time.perf_counter() - t0:.0f} s; figures in {args.json}", flush=True)


if __name__ == "__main__":
    main()
