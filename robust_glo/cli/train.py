"""`robust-glo train`: train one loss on one dataset and report its accuracy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from robust_glo.cli.common import (
    add_data_args,
    add_progress_arg,
    add_threads_arg,
    add_tracking_args,
    nonneg_int,
    open_tracker,
    positive_int,
    seed_int,
    set_threads,
)
from robust_glo.errors import ConfigError
from robust_glo.losses import display_name
from robust_glo.training import PRESETS, SCHEDULES, TrainConfig, train_run
from robust_glo.training.precision import PRECISIONS
from robust_glo.training.recipe import RECIPE_BOUNDS
from robust_glo.training.run import is_finished, refuse_foreign_checkpoint
from robust_glo.utils.parsing import read_toml, spec_slug

# The command line checkpoints every this many steps unless told otherwise, so that a long run stopped by
# Ctrl-C or a crash resumes instead of starting again. A checkpoint changes nothing the run computes (it is
# not part of the run's identity: a finished run made without checkpoints is reused), and a run of at most
# this many steps never writes one. The Python API (`robust_glo.train`) keeps 0: no checkpoints.
AUTO_CHECKPOINT_EVERY = 500

# Flags whose value is a training option of the same name (`--batch-size` -> batch_size); --config keys.
_OPTION_FLAGS = (
    "loss",
    "dataset",
    "model",
    "data_root",
    "device",
    "steps",
    "epochs",
    "seed",
    "batch_size",
    "lr",
    "weight_decay",
    "schedule",
    "train_fraction",
    "test_size",
    "precision",
    "checkpoint_every",
)


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a network with a loss and report its accuracy",
        description="Train one loss on one dataset and seed; write DIR/config.json, environment.json, "
        "metrics.json and model.pt. A finished run in DIR with the same settings is reused; an interrupted "
        f"one resumes from its last checkpoint (every {AUTO_CHECKPOINT_EVERY} steps by default).",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE.toml",
        help="read training options from a TOML file of flat keys (the names of config.json or of the "
        'flags, e.g. lr = 0.1, batch-size = 64, preset = "resnet20"); flags win',
    )
    p.add_argument("--loss", default=None, metavar="SPEC", help="loss spec (default ce; see `robust-glo losses`)")
    add_data_args(p, defaults=False)
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, default=None, metavar="N", help="SGD steps (default 1000)")
    budget.add_argument("--epochs", type=float, default=None, metavar="E", help="budget in epochs instead of steps")
    p.add_argument(
        "--seed", type=seed_int, default=None, metavar="S", help="weights, batch order, augmentation (default 0)"
    )
    p.add_argument(
        "--preset",
        default=None,
        choices=list(PRESETS),
        help="training recipe: default, allcnn-c or resnet20 (the paper's); flags change single settings",
    )
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="B", help="batch size (default 128)")
    p.add_argument(
        "--lr", type=RECIPE_BOUNDS["lr"].argtype(), default=None, metavar="LR", help="SGD learning rate (default 0.05)"
    )
    p.add_argument(
        "--weight-decay",
        type=RECIPE_BOUNDS["weight_decay"].argtype(),
        default=None,
        metavar="WD",
        help="weight decay (default 5e-4)",
    )
    p.add_argument("--schedule", choices=SCHEDULES, default=None, help="learning-rate schedule (default cosine)")
    p.add_argument(
        "--train-fraction",
        type=RECIPE_BOUNDS["train_fraction"].argtype(),
        default=None,
        metavar="F",
        help="share of the training set to use (default 1)",
    )
    p.add_argument(
        "--test-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="test images the accuracy is measured on (default: the whole test split)",
    )
    p.add_argument("--amp", action="store_true", help="bfloat16 mixed precision on CUDA")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="fp32 (default), bf16 (bfloat16 autocast, on the CPU with channels_last), or auto: bf16 on a CPU "
        "with AVX-512 BF16 or AMX, fp32 on other CPUs, --amp on CUDA. Training only; attacks stay fp32",
    )
    p.add_argument(
        "--checkpoint-every",
        type=nonneg_int,
        default=None,
        metavar="N",
        help=f"steps between resumable checkpoints (default {AUTO_CHECKPOINT_EVERY}; 0: none). A checkpoint "
        "changes no result, and an interrupted run resumes from the last one",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="run directory (default runs/train/<loss>-s<seed>)")
    add_threads_arg(p)
    add_progress_arg(p)
    add_tracking_args(p)
    p.set_defaults(func=run, interrupted=interrupted)


def _read_config(path: str) -> dict[str, Any]:
    """A --config file's options as training-option names (dashes read as underscores), checked."""
    names = set(TrainConfig.flat_field_names())
    values = {}
    for key, value in read_toml(path).items():
        name = str(key).replace("-", "_")
        if isinstance(value, dict) or name not in names:
            what = "tables are not supported" if isinstance(value, dict) else "unknown key"
            valid = ", ".join(sorted(n for n in names if n != "extra"))
            raise ConfigError(f"config file {path!r}: {what} {key!r}; valid keys: {valid}")
        values[name] = value
    return values


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Preset < --config file < flags; the command line's default checkpointing when none is given."""
    values = _read_config(args.config) if args.config else {}
    if args.steps is not None:
        values.pop("epochs", None)
    if args.epochs is not None:
        values.pop("steps", None)
    values.update({k: getattr(args, k) for k in _OPTION_FLAGS if getattr(args, k) is not None})
    if args.amp:
        values["amp"] = True
    if args.preset is not None:
        values["preset"] = args.preset
    values.setdefault("checkpoint_every", AUTO_CHECKPOINT_EVERY)
    return TrainConfig.from_preset(values.pop("preset", "default"), **values)


def _checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint file was taken at (None when there is none or it cannot be read)."""
    if not path.is_file():
        return None
    try:
        import torch

        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:  # a checkpoint cut short by the interrupt itself: the next run says so
        return None


def interrupted(args: argparse.Namespace) -> str:
    """What a re-run does after Ctrl-C, from what is on disk: resume from a checkpoint, or start again."""
    out, config = getattr(args, "run_dir", None), getattr(args, "train_config", None)
    if out is None or config is None:
        return "nothing was written; re-run the command"
    step = _checkpoint_step(Path(out) / "checkpoint.pt")
    if step is not None:
        return f"re-run the same command to resume from the checkpoint at step {step} in {out}"
    try:
        finished = is_finished(Path(out), config.resolved())
    except Exception:  # saying what a re-run does must not fail on the way out
        finished = False
    if finished:
        return f"the run in {out} had finished; a re-run reuses it"
    every = config.checkpoint_every
    if not every:
        return f"no checkpoint was written (--checkpoint-every 0), so a re-run trains {out} again from step 0"
    return f"it stopped before the first checkpoint (every {every} steps), so a re-run trains {out} again from step 0"


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    set_threads(args.threads)
    out = Path(args.out) if args.out else Path("runs") / "train" / f"{spec_slug(config.loss)}-s{config.seed}"
    args.run_dir, args.train_config = out, config  # for `interrupted`
    tracker = open_tracker(args, out)
    refuse_foreign_checkpoint(out, config.resolved())  # before it says "resuming"
    step = _checkpoint_step(out / "checkpoint.pt")
    if step is not None:  # the trainer resumes from it (a finished run has none: it is reused instead)
        print(f"resuming {out} from its checkpoint at step {step}", flush=True)
    result = train_run(config, out, progress=args.progress)
    code = _print_result(result, config, out)
    if tracker is not None:
        tracker.log_train_command(out)
        print(tracker.describe())
    return code


def _print_result(result, config: TrainConfig, out: Path) -> int:
    m = result.metrics
    name = display_name(config.loss)
    start = int(m.get("resumed_from") or 0) if not result.reused else 0
    resumed = f" (resumed from the checkpoint at step {start})" if start else ""
    if result.status != "ok":
        print(f"{name}: diverged after {m['steps']} steps{resumed} ({m['message']}); recorded in {out}")
        return 1
    reused = " (reused finished run)" if result.reused else ""
    print(
        f"{name} on {config.dataset}/{result.config.model}, seed {config.seed}: "
        f"val accuracy {m['val_accuracy']:.4f}, test accuracy {m['test_accuracy']:.4f} "
        f"(n={m['n_test']}), {m['steps']} steps{resumed} in {m['seconds']:.1f}s ({result.config.precision}){reused}; "
        f"run dir {out}"
    )
    return 0
