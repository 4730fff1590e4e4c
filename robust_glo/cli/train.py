"""`robust-glo train`: train one loss on one dataset and report its accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path

from robust_glo.cli.common import add_data_args, nonneg_int, positive_int, seed_int
from robust_glo.training import PRESETS, SCHEDULES, TrainConfig, train_run
from robust_glo.training.precision import PRECISIONS
from robust_glo.utils.parsing import spec_slug


def register(sub) -> None:
    p = sub.add_parser("train", help="train a network with a loss and report its accuracy")
    p.add_argument("--loss", default="ce", metavar="SPEC", help="loss spec (see `robust-glo losses`)")
    add_data_args(p)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, default=None, help="SGD steps (default 1000)")
    budget.add_argument("--epochs", type=float, default=None, help="budget in epochs instead of steps")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument(
        "--preset",
        default="default",
        choices=list(PRESETS),
        help="training recipe: default, allcnn-c or resnet20 (the paper's)",
    )
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--schedule", choices=SCHEDULES, default=None)
    p.add_argument("--train-fraction", type=float, default=None, help="share of the training set to use")
    p.add_argument("--test-size", type=positive_int, default=None)
    p.add_argument("--amp", action="store_true", help="bfloat16 mixed precision on CUDA")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="fp32 (default), bf16 (bfloat16 autocast, on the CPU with channels_last), or auto: bf16 on a CPU "
        "with AVX-512 BF16 or AMX, fp32 on other CPUs, --amp on CUDA. Training only; attacks stay fp32",
    )
    p.add_argument("--checkpoint-every", type=nonneg_int, default=None, help="steps between checkpoints")
    p.add_argument("--out", default=None, metavar="DIR", help="run directory (default runs/train/<loss>-s<seed>)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {
        "loss": args.loss,
        "dataset": args.dataset,
        "model": args.model,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "schedule": args.schedule,
        "train_fraction": args.train_fraction,
        "test_size": args.test_size,
        "data_root": args.data_root,
        "device": args.device,
        "amp": args.amp or None,
        "precision": args.precision,
        "checkpoint_every": args.checkpoint_every,
        "steps": args.steps,
        "epochs": args.epochs,
    }
    if args.steps is None and args.epochs is None and args.preset == "default":
        overrides["steps"] = 1000
    config = TrainConfig.from_preset(args.preset, **overrides)
    out = Path(args.out) if args.out else Path("runs") / "train" / f"{spec_slug(args.loss)}-s{args.seed}"
    result = train_run(config, out)
    m = result.metrics
    if result.status != "ok":
        print(f"{config.loss}: diverged after {m['steps']} steps ({m['message']}); recorded in {out}")
        return 1
    reused = " (reused finished run)" if result.reused else ""
    print(
        f"{config.loss} on {config.dataset}/{result.config.model}, seed {config.seed}: "
        f"val accuracy {m['val_accuracy']:.4f}, test accuracy {m['test_accuracy']:.4f} "
        f"(n={m['n_test']}), {m['steps']} steps in {m['seconds']:.1f}s ({result.config.precision}){reused}; "
        f"run dir {out}"
    )
    return 0
