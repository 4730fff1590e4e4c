"""channels_last on the CPU: how much faster float32 training and attacks run in it here, and do the numbers
agree with the usual contiguous layout? And the `more_effort` diagnostic's APGD-T with every target class
at once against torchattacks' one target after another.

Everything is measured in this one run, one torch thread, the two layouts alternating so that drift in the
machine's load hits both (`ROBUST_GLO_CPU_LAYOUT`, read by `robust_glo.utils.cpu_layout` at each call):

1. training: `--models` (LeNet-5, small-cnn) on Fashion-MNIST with the project's recipe through
   `train_run` in float32, `--seeds` seeds x `--steps` steps per layout: samples/s per layout and the ratio
   channels_last / contiguous (median over seeds), and the final validation accuracies (the layouts differ
   only in rounding, so the networks differ as runs on two machines would: the paired difference is set
   against the seed noise);
2. attacks: the first model's seed-0 network (trained contiguous), attacked through `run_evaluation` with
   `--attacks` at eps `--eps` on `--n` test images, once per layout: the seconds of each attack, the ratio,
   and the share of images whose outcome bits agree;
3. the `more_effort` diagnostic at that budget: APGD-T with 5x its steps over 9 target classes on the
   inputs the worst case left standing (all of them, and the first `--few`), through torchattacks (targets
   one after another, `run_evaluation`) and through `robust_glo.robustness.population.apgd_t_all_targets`
   (all at once), both channels_last: seconds, ratio, and inputs each broke.

    .venv/bin/python evaluations/perf/cpu_layout.py            # about 4 minutes on a 2-core CPU
    .venv/bin/python evaluations/perf/cpu_layout.py --smoke    # digits, seconds

Writes runs/perf/cpu_layout.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch

from robust_glo.data import load_dataset
from robust_glo.robustness.attacks import WORST
from robust_glo.robustness.diagnostics import DiagnosticSettings, stronger_attack
from robust_glo.robustness.evaluate import run_evaluation
from robust_glo.robustness.population import apgd_t_all_targets
from robust_glo.training import TrainConfig, train_run
from robust_glo.utils import cpu_bf16_support, cpu_layout, run_metadata
from robust_glo.utils.device import LAYOUT_ENV

LAYOUTS = ("contiguous", "channels_last")


def _set_layout(layout: str) -> None:
    os.environ[LAYOUT_ENV] = layout
    assert cpu_layout() == layout


def _train(args, splits, model: str | None, layout: str, seed: int):
    _set_layout(layout)
    config = TrainConfig.from_dict(
        {
            "loss": "ce",
            "dataset": args.dataset,
            "model": model,
            "steps": args.steps,
            "seed": seed,
            "device": "cpu",
            "precision": "fp32",
            "test_size": args.test_size,
        }
    )
    result = train_run(config, None, splits=splits, progress=False)
    row = {
        "model": result.config.model,
        "layout": layout,
        "seed": seed,
        "val_accuracy": result.val_accuracy,
        "seconds": result.seconds,
        "samples_per_s": result.metrics["samples_per_second"],
    }
    return row, result.model


def _attack(args, network, x, y, layout: str) -> tuple[dict, object]:
    _set_layout(layout)
    t0 = time.perf_counter()
    ev = run_evaluation(network, x, y, args.attacks.split(","), [args.eps], seed=0, batch_size=500)
    total = time.perf_counter() - t0
    table = ev.results
    seconds = {
        str(r.attack): float(r.seconds)
        for r in table.itertuples()
        if r.attack not in ("clean", WORST) and not math.isnan(r.seconds)
    }
    return {"layout": layout, "total_seconds": total, "seconds": seconds}, ev


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="digits, its default model, tiny budgets: seconds")
    p.add_argument("--dataset", default="fashion-mnist", help="dataset of every part (default: fashion-mnist)")
    p.add_argument("--models", default="lenet5,small-cnn", help="models trained in part 1, comma-separated")
    p.add_argument("--steps", type=int, default=300, help="SGD steps of each training run")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per model and layout")
    p.add_argument("--test-size", type=int, default=1000, help="test images loaded (the attacks use --n)")
    p.add_argument(
        "--attacks", default="fgsm,pgd,apgd-ce,apgd-t,fab-t,square", help="attacks of part 2, comma-separated"
    )
    p.add_argument("--eps", type=float, default=0.1, help="L-infinity budget of parts 2 and 3")
    p.add_argument("--n", type=int, default=200, help="test images attacked in part 2")
    p.add_argument("--few", type=int, default=3, help="the small case of the more_effort timing (inputs)")
    p.add_argument("--out", default="runs/perf/cpu_layout.json", help="where the JSON results go")
    args = p.parse_args()
    if args.smoke:
        args.dataset, args.models, args.steps, args.seeds, args.test_size, args.n = "digits", "", 20, 2, 100, 40
        args.attacks = "fgsm,pgd,apgd-t:steps=20,square:n_queries=100"
    torch.set_num_threads(1)
    support = cpu_bf16_support()
    auto = cpu_layout()
    print(
        f"CPU: torch dispatch {support['cpu_capability']}, avx512_bf16 {support['avx512_bf16']}, amx_bf16 "
        f"{support['amx_bf16']}; layout auto -> {auto}; 1 torch thread; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    splits = load_dataset(args.dataset, test_size=args.test_size)
    models = [m or None for m in args.models.split(",")] if args.models else [None]

    runs: list[dict] = []
    first_network = None
    for model in models:
        for seed in range(args.seeds):
            order = LAYOUTS if seed % 2 == 0 else LAYOUTS[::-1]
            for layout in order:
                row, network = _train(args, splits, model, layout, seed)
                runs.append(row)
                if first_network is None and seed == 0 and layout == "contiguous":
                    first_network = network
                print(
                    f"{row['model']} seed {seed} {layout}: {row['samples_per_s']:,.0f} samples/s, val accuracy "
                    f"{row['val_accuracy']}",
                    flush=True,
                )

    training = {}
    for model in models:
        name = model or TrainConfig.from_dict({"dataset": args.dataset}).resolved().model
        rate = {
            lay: statistics.median(r["samples_per_s"] for r in runs if (r["model"], r["layout"]) == (name, lay))
            for lay in LAYOUTS
        }
        acc = {
            lay: [
                next(r["val_accuracy"] for r in runs if (r["model"], r["layout"], r["seed"]) == (name, lay, s))
                for s in range(args.seeds)
            ]
            for lay in LAYOUTS
        }
        diffs = [(b or 0.0) - (a or 0.0) for a, b in zip(acc["contiguous"], acc["channels_last"])]
        seed_sd = statistics.stdev(a or 0.0 for a in acc["contiguous"]) if len(diffs) > 1 else float("nan")
        training[name] = {
            "samples_per_s": rate,
            "ratio": rate["channels_last"] / rate["contiguous"],
            "val_accuracy": acc,
            "mean_diff": statistics.fmean(diffs),
            "mean_abs_diff": statistics.fmean(abs(d) for d in diffs),
            "seed_sd": seed_sd,
        }

    x, y = splits.test.images[: args.n], splits.test.labels[: args.n]
    attacks, evaluations = [], {}
    for layout in LAYOUTS:
        row, ev = _attack(args, first_network, x, y, layout)
        attacks.append(row)
        evaluations[layout] = ev
        print(f"attacks {layout}: {row['total_seconds']:.1f} s", flush=True)
    a, b = evaluations["contiguous"], evaluations["channels_last"]
    agree = {
        label: float((a.robust[label][args.eps] == b.robust[label][args.eps]).float().mean())
        for label in a.robust
        if label != "clean" and args.eps in a.robust[label]
    }
    by_layout = {r["layout"]: r for r in attacks}
    before, after = by_layout["contiguous"]["seconds"], by_layout["channels_last"]["seconds"]
    per_attack = {
        label: {
            "contiguous_s": before[label],
            "channels_last_s": after[label],
            "ratio": before[label] / max(after[label], 1e-9),
            "outcomes_agree": agree.get(label),
        }
        for label in before
    }

    # more_effort at this budget, channels_last: torchattacks' target loop against all targets at once
    _set_layout("channels_last")
    standing = b.robust[WORST][args.eps].nonzero().squeeze(1)
    settings = DiagnosticSettings()
    spec = stronger_attack([s for s in b.attacks if s.runs_at(args.eps)], "linf", settings.effort_factor, 1)
    params = spec.resolved()
    first_network.eval().requires_grad_(False)

    def effort_case(rows: torch.Tensor) -> dict:
        xs, ys = x[rows], y[rows]
        t0 = time.perf_counter()
        sequential = run_evaluation(first_network, xs, ys, [spec], [args.eps], seed=1, batch_size=500)
        seq_s = time.perf_counter() - t0
        first_network.to(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        _, fooled = apgd_t_all_targets(
            first_network,
            xs,
            ys,
            args.eps,
            steps=params["steps"],
            targets=params["targets"],
            restarts=params["restarts"],
            seed=1,
        )
        batched_s = time.perf_counter() - t0
        first_network.to(memory_format=torch.contiguous_format)
        return {
            "attack": spec.label,
            "standing": len(rows),
            "torchattacks_s": seq_s,
            "all_targets_s": batched_s,
            "ratio": seq_s / max(batched_s, 1e-9),
            "torchattacks_broke": int((~sequential.robust[spec.label][args.eps]).sum()),
            "all_targets_broke": int(fooled.sum()),
        }

    # every input the worst case left standing, and the first few of them: the check meets both sizes
    effort = [effort_case(standing), effort_case(standing[: args.few])]

    summary = {
        "args": vars(args),
        "cpu": support,
        "auto_resolves_to": auto,
        "training": training,
        "attacks": per_attack,
        "attack_totals": {r["layout"]: r["total_seconds"] for r in attacks},
        "more_effort": effort,
        "runs": runs,
        "load_end": os.getloadavg()[0],
        "environment": run_metadata(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
    for name, t in training.items():
        print(
            f"training {name}: contiguous {t['samples_per_s']['contiguous']:,.0f}, channels_last "
            f"{t['samples_per_s']['channels_last']:,.0f} samples/s: {t['ratio']:.2f}x; val accuracy channels_last - "
            f"contiguous {t['mean_diff']:+.4f} (mean |difference| {t['mean_abs_diff']:.4f}), seed noise "
            f"{t['seed_sd']:.4f}"
        )
    totals = summary["attack_totals"]
    print(
        f"attacks at eps {args.eps} on {args.n} images: contiguous {totals['contiguous']:.1f} s, channels_last "
        f"{totals['channels_last']:.1f} s: {totals['contiguous'] / totals['channels_last']:.2f}x"
    )
    for label, r in per_attack.items():
        # a ratio of two times below the clock's resolution here says nothing: shown as "—"
        ratio = f"{r['ratio']:.2f}x" if max(r["contiguous_s"], r["channels_last_s"]) >= 0.05 else "—"
        print(
            f"  {label}: {r['contiguous_s']:.2f} s -> {r['channels_last_s']:.2f} s ({ratio}), outcome bits "
            f"agree on {r['outcomes_agree']:.1%} of images"
        )
    for e in effort:
        print(
            f"more_effort ({e['attack']}, {e['standing']} inputs standing): torchattacks one target after "
            f"another {e['torchattacks_s']:.1f} s, all targets at once {e['all_targets_s']:.1f} s: "
            f"{e['ratio']:.2f}x; broke {e['torchattacks_broke']} and {e['all_targets_broke']}"
        )
    print(f"load average {summary['load_end']:.2f} at the end; wrote {args.out}")


if __name__ == "__main__":
    main()
