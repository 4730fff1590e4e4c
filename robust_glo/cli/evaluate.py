"""`robust-glo evaluate`: train losses over seeds (or load models) and measure their adversarial robustness."""

from __future__ import annotations

import argparse
from pathlib import Path

from robust_glo.cli.common import (
    add_data_args,
    add_progress_arg,
    add_threads_arg,
    add_tracking_args,
    open_tracker,
    positive_int,
    seed_int,
    seed_list,
    set_threads,
)
from robust_glo.errors import ConfigError
from robust_glo.losses import shorten_specs
from robust_glo.utils.parsing import parse_budgets, split_list


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="train each loss on each seed and attack it (FGSM, PGD, ...), with statistics",
        description="Train each --loss on --seeds seeds (or load --checkpoint runs / a --user-model), attack "
        "each network on the test split, and write DIR/results.csv, DIR/outcomes.csv (per image), "
        "DIR/summary.csv (mean, 95% bootstrap interval over seeds and test images, difference to the first "
        "loss with raw and Holm-adjusted p; docs/statistics.md) and DIR/flags.csv (reliability checks). Finished "
        "trainings and evaluations in DIR are reused.",
    )
    p.add_argument(
        "--loss",
        action="append",
        default=None,
        metavar="SPEC",
        help="loss spec, repeatable; the first is the baseline of the p-values (default: ce)",
    )
    add_data_args(p)
    p.add_argument(
        "--seeds",
        type=seed_list,
        default=[0, 1, 2],
        metavar="N|LIST",
        help="training seeds per loss: a count N (seeds 0..N-1) or a list such as 0,5,9, as a suite's seeds "
        "(default 3)",
    )
    p.add_argument(
        "--steps", type=positive_int, default=1000, metavar="N", help="SGD steps per training run (default 1000)"
    )
    p.add_argument(
        "--attacks",
        default="fgsm,pgd",
        metavar="LIST",
        help="comma-separated attack specs, e.g. fgsm,pgd:steps=20:restarts=2,apgd-ce,square "
        "(see --list-attacks; default fgsm,pgd)",
    )
    p.add_argument(
        "--eps",
        default="0,0.05,0.1",
        metavar="LIST",
        help="comma-separated Linf budgets in [0, 1]; fractions like 8/255 work (default 0,0.05,0.1)",
    )
    p.add_argument(
        "--eps-l2",
        default="",
        metavar="LIST",
        help="comma-separated L2 radii of the attacks given with norm=l2, e.g. pgd:norm=l2 (e.g. 0.5,1.0)",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (required)")
    p.add_argument(
        "--train-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a further training setting, e.g. lr=0.1 or batch_size=256 (repeatable; see TrainConfig)",
    )
    p.add_argument(
        "--test-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="attack the first N test images of a fixed shuffle (default: the whole test split)",
    )
    p.add_argument(
        "--eval-batch-size",
        type=positive_int,
        default=500,
        metavar="N",
        help="images per attack batch (default 500); the attacks draw their randomness per batch, so a stored "
        "evaluation is reused only at the same size",
    )
    p.add_argument(
        "--attack-seed", type=seed_int, default=0, metavar="S", help="seed of the attacks' randomness (default 0)"
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="DIR",
        help="evaluate this finished training run directory instead of training (repeatable)",
    )
    p.add_argument(
        "--user-model",
        action="append",
        default=[],
        metavar="MODULE:NAME",
        help="evaluate a trained nn.Module (or a no-argument callable returning one) on --dataset (repeatable)",
    )
    p.add_argument("--list-attacks", action="store_true", help="list the attacks and their budgets, then exit")
    add_threads_arg(p)
    add_progress_arg(p)
    add_tracking_args(p)
    p.set_defaults(func=run, interrupted=interrupted)


def interrupted(args: argparse.Namespace) -> str:
    if not args.out:
        return "nothing was written; re-run the command"
    return (
        f"every finished training and evaluation is saved in {args.out}; re-run the same command to reuse them "
        "(the piece in flight starts again)"
    )


def _echo(line: str) -> None:
    """A log line with long loss specs (inline TaylorGLO parameters) shown by their display names."""
    print(shorten_specs(line), flush=True)


def parse_train_options(items: list[str]) -> dict:
    import json

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--train-option {item!r} is not KEY=VALUE (e.g. lr=0.1)")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value  # a bare string such as schedule=step
    return out


def run(args: argparse.Namespace) -> int:
    # lazy: every subcommand module is imported to build the parser; these load pandas (--help stays light)
    from robust_glo.comparison import CompareConfig, evaluate_existing, run_comparison, summary_table
    from robust_glo.robustness import list_attacks
    from robust_glo.robustness.attacks import require_torchattacks

    if args.list_attacks:
        width = max(map(len, list_attacks()))
        for name, summary in list_attacks().items():
            print(f"{name.ljust(width)}  {summary}")
        return 0
    if not args.out:
        raise ConfigError("--out DIR is required (where runs, results.csv and summary.csv go)")
    existing = bool(args.checkpoint or args.user_model)
    if existing and args.loss:
        raise ConfigError("--loss trains new networks; --checkpoint/--user-model evaluate existing ones: use one")
    config = CompareConfig(
        losses=args.loss or ["ce"],
        dataset=args.dataset,
        model=args.model,
        seeds=list(args.seeds),
        steps=args.steps,
        attacks=split_list(args.attacks, "--attacks", "fgsm,pgd"),
        eps=parse_budgets(args.eps, "linf", name="--eps"),
        eps_l2=parse_budgets(args.eps_l2, "l2", name="--eps-l2"),
        test_size=args.test_size,
        eval_batch_size=args.eval_batch_size,
        attack_seed=args.attack_seed,
        device=args.device,
        data_root=args.data_root,
        train=parse_train_options(args.train_option),
    )
    require_torchattacks(config.attacks)  # before any training: torchattacks is installed apart
    set_threads(args.threads)
    tracker = open_tracker(args, args.out)
    if existing:
        comparison = evaluate_existing(
            config,
            args.out,
            checkpoints=args.checkpoint,
            user_models=args.user_model,
            progress=args.progress,
            echo=_echo,
        )
    else:
        comparison = run_comparison(config, args.out, progress=args.progress, echo=_echo)
    out = Path(args.out)
    print()
    print(summary_table(comparison.summary))
    print(
        f"\nmean accuracy ± half-width of the 95% interval (seeds and test images); p_adj = p vs "
        f"{comparison.summary['baseline'].iloc[0]} adjusted for the comparisons shown (Holm), * = significant; "
        f"! = an evaluation was flagged unreliable (details: docs/statistics.md)"
    )
    print(f"wrote {out / 'results.csv'}, {out / 'summary.csv'}, {out / 'flags.csv'}")
    if tracker is not None:
        tracker.log_evaluate_command(out)
        print(tracker.describe())
    return 0
