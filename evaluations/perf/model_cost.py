"""What a registered model costs on this CPU: one SGD training step and one forward pass, against small-cnn.

Times, in one process and in alternating rounds (so that a shared CPU slows every model alike), a training
step of `--batch` images (cross-entropy, SGD, float32 and bfloat16 autocast) and a no-grad forward pass of
`--forward-batch` images (the size of what a cascade's later attacks see), for each model, and prints
milliseconds and the ratio to the first model. Records whether the CPU has native bfloat16.

    .venv/bin/python evaluations/perf/model_cost.py --models small-cnn,lenet5 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F

from robust_glo.data import DATASETS
from robust_glo.errors import RobustGloError
from robust_glo.models import check_model_fits, create_model
from robust_glo.utils.device import cpu_bf16_support


def _step_timer(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool):
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step() -> None:
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def _forward_timer(model: torch.nn.Module, x: torch.Tensor):
    def forward() -> None:
        with torch.no_grad():
            model(x)

    return forward


def _ms(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="small-cnn,lenet5", help="comma-separated; the first is the reference")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--forward-batch", type=int, default=70)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.dataset not in DATASETS:
        parser.error(f"--dataset {args.dataset!r}: unknown; valid: {', '.join(DATASETS)}")
    info = DATASETS[args.dataset]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, *info.image_shape, generator=g)
    y = torch.randint(0, info.num_classes, (args.batch,), generator=g)
    xf = torch.rand(args.forward_batch, *info.image_shape, generator=g)
    names = args.models.split(",")
    for name in names:
        try:
            check_model_fits(name, info)
        except RobustGloError as exc:
            parser.error(f"--models: {exc}")
    timers = {}
    for name in names:
        model = create_model(name, info, seed=0)
        timers[name] = {
            "step_fp32": _step_timer(model, x, y, False),
            "step_bf16": _step_timer(model, x, y, True),
            "forward": _forward_timer(copy.deepcopy(model).eval(), xf),  # training copy stays in train mode
        }
    samples: dict[str, dict[str, list[float]]] = {n: {k: [] for k in timers[n]} for n in names}
    for _ in range(args.rounds):
        for name in names:
            for kind, fn in timers[name].items():
                samples[name][kind].append(_ms(fn, args.reps))
    ref = names[0]
    result = {"cpu_bf16": cpu_bf16_support(), "threads": args.threads, "models": {}}
    print(f"CPU bfloat16: {result['cpu_bf16']}; {args.threads} thread(s); median of {args.rounds} rounds")
    header = f"{'model':<12} {'step fp32 ms':>13} {'step bf16 ms':>13} {'forward ms':>11}"
    print(f"{header}   ratio to {ref} (step fp32, forward)")
    for name in names:
        med = {k: statistics.median(v) for k, v in samples[name].items()}
        ratio = (
            statistics.median(samples[ref]["step_fp32"]) / med["step_fp32"],
            statistics.median(samples[ref]["forward"]) / med["forward"],
        )
        result["models"][name] = {**med, "step_ratio": ratio[0], "forward_ratio": ratio[1]}
        print(
            f"{name:<12} {med['step_fp32']:>13.1f} {med['step_bf16']:>13.1f} {med['forward']:>11.2f}"
            f"   {ratio[0]:.2f}x, {ratio[1]:.2f}x"
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
