"""`robust-glo evolve`: discover a TaylorGLO loss with CMA-ES (crash-safe, resumable, local/Ray/batched)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from robust_glo.cli.common import add_progress_arg, add_tracking_args, open_tracker, seed_int
from robust_glo.data.registry import DATASETS
from robust_glo.errors import ConfigError
from robust_glo.evolution import EvolveConfig, run_evolution
from robust_glo.evolution.config import EVOLVE_BOUNDS, read_toml
from robust_glo.evolution.runner.store import RunStore
from robust_glo.training.recipe import RECIPE_BOUNDS

# (flag, type, metavar or None, help); every flag is also a TOML key of --config (spelled the same).
_OPTIONS: list[tuple[str, type, str | None, str]] = [
    ("--dataset", str, "NAME", f"one of {', '.join(DATASETS)} (default fashion-mnist)"),
    ("--model", str, "NAME", "model name (default: the dataset's)"),
    ("--generations", int, "G", "CMA-ES generations (default 10)"),
    ("--evaluations", int, "N", "budget in candidates instead of --generations (ceil(N / popsize) generations)"),
    ("--popsize", int, "P", "candidates per generation (default 20; the paper used 20-28)"),
    ("--steps", int, "N", "SGD steps of each candidate's partial training (default 500)"),
    ("--seed", int, "S", "seed of the whole run (default 0)"),
    ("--out", str, "DIR", "run directory (default runs/evolve)"),
    ("--invariant", str, "RULE", "paper (default), exact or off: reject candidates before training"),
    ("--fitness", str, "SPEC", "clean (default), fgsm:EPS, pgd:EPS[:STEPS], mix:W:fgsm:EPS or mix:W:pgd:EPS"),
    (
        "--attack-samples",
        int,
        "N",
        "validation images attacked for a robust fitness (default 1000, or the whole validation split when smaller)",
    ),
    (
        "--backend",
        str,
        "NAME",
        "auto (default: batched on CUDA; on a multi-core CPU without --threads, ray with one one-thread task "
        "per core; else local), local, ray or batched (one population per generation)",
    ),
    ("--fidelity", str, "NAME", "flat (default: every candidate trains --steps) or halving (successive halving)"),
    ("--eta", int, "ETA", "halving: the best 1/ETA of each rung are trained further (default 3)"),
    ("--rungs", int, "R", "halving: rungs of steps/ETA^(R-1), ..., steps/ETA, steps (default 3)"),
    (
        "--rung-fitness",
        str,
        "NAME",
        "halving: what a rung ranks by: stated (default: the run's fitness, robust part included) or clean",
    ),
    (
        "--clean-margin",
        float,
        "M",
        "rank candidates whose clean validation accuracy is more than M below cross-entropy's (same budget "
        "and seed) below every candidate within M (default: no constraint)",
    ),
    (
        "--precision",
        str,
        "NAME",
        "fp32 (default), bf16 (bfloat16 autocast), or auto: bf16 on a CPU with AVX-512 BF16 or AMX, fp32 on "
        "other CPUs, the recipe's amp on CUDA. Every training of the run (candidates, re-evaluation, the "
        "clean-margin reference); scoring and attacks stay fp32",
    ),
    ("--topk", int, "K", "candidates re-evaluated at the end (default 3)"),
    ("--reeval-seeds", int, "R", "fresh seeds for each of them (default 3)"),
    ("--val-size", int, "N", "validation images carved from the training set (default: the dataset's)"),
    ("--train-fraction", float, "F", "share of the training set to use (default 1)"),
    ("--split-seed", int, "S", "seed of the train/validation split (default 0)"),
    ("--sigma0", float, "SIGMA", "initial CMA-ES step size (default 1.2, the paper's)"),
    ("--batch-size", int, "B", "training batch size (default 128)"),
    ("--lr", float, "LR", "SGD learning rate (default 0.05)"),
    ("--momentum", float, "M", "SGD momentum (default 0.9)"),
    ("--weight-decay", float, "WD", "weight decay (default 5e-4)"),
    ("--schedule", str, "NAME", "constant, step or cosine (default cosine)"),
    ("--ray-address", str, "ADDR", "join this Ray cluster (default: start a local one)"),
    ("--num-cpus", int, "N", "CPUs of the local Ray cluster (default: all)"),
    ("--cpus-per-task", float, "C", "CPUs per Ray task (default 1)"),
    ("--gpus-per-task", float, "G", "GPU share per Ray task, e.g. 0.25 (default 0)"),
    ("--max-retries", int, "N", "Ray retries of a task whose worker died (default 2)"),
    (
        "--threads",
        int,
        "N",
        "torch threads per evaluation (default: torch's; Ray tasks: --cpus-per-task); results are bit-identical "
        "only at the same thread count",
    ),
    ("--device", str, "DEV", "auto (default: CUDA when present), cpu, cuda, cuda:N"),
    ("--data-root", str, "DIR", "where datasets are looked for / downloaded"),
]


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _flag_type(flag: str, kind: type):
    """A flag's argparse type: a number flag with a range (EVOLVE_BOUNDS, RECIPE_BOUNDS) or a seed is checked
    as it is parsed, so that a bad value is one line naming the flag, the value and what is valid (the same
    ranges `EvolveConfig.validate` applies to --config files and the Python API)."""
    name = _dest(flag)
    if name in ("seed", "split_seed"):
        return seed_int
    bound = EVOLVE_BOUNDS.get(name) or RECIPE_BOUNDS.get(name)
    return bound.argtype() if bound is not None else kind


def register(sub) -> None:
    p = sub.add_parser(
        "evolve",
        help="discover a TaylorGLO loss with CMA-ES",
        description="Evolve a TaylorGLO loss with CMA-ES. Every option can also come from "
        "--config FILE.toml (keys spelled like the flags); flags win.",
    )
    p.add_argument("--config", default=None, metavar="FILE.toml", help="read options from a TOML file")
    for flag, kind, metavar, text in _OPTIONS:
        p.add_argument(flag, type=_flag_type(flag, kind), default=None, metavar=metavar, help=text)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (after a crash or kill) without redoing finished work",
    )
    add_progress_arg(p)
    add_tracking_args(p)
    p.set_defaults(func=run, interrupted=interrupted)


def interrupted(args: argparse.Namespace) -> str:
    out = getattr(args, "run_out", None)
    if out is None:
        return "nothing was written; re-run the command"
    return (
        f"every finished candidate is saved in {out}; re-run the command with --resume to continue "
        "(the candidates in flight train again)"
    )


def resolve_config(args: argparse.Namespace):
    """Defaults < stored run config (with --resume) < TOML file < flags, validated."""
    values: dict[str, Any] = {}
    if args.config:
        values = EvolveConfig.normalize_keys(read_toml(args.config), source=repr(args.config))
    from_file = set(values)
    for flag, *_ in _OPTIONS:
        value = getattr(args, _dest(flag))
        if value is not None:
            values[_dest(flag)] = value
    if args.generations is not None and args.evaluations is not None:
        raise ConfigError("give the budget as --generations or --evaluations, not both")
    if not args.progress:
        values["progress"] = False
    store = RunStore(values.get("out", EvolveConfig.out))
    if args.resume and store.exists():
        values = {**store.stored_config(), **values}
    try:
        return EvolveConfig.from_dict(values)
    except ConfigError as exc:
        # a bad value that came from the file (and not from a flag that overrode it) names the file
        named = str(exc).split(" ", 1)[0].replace("-", "_")
        if named in from_file and getattr(args, named, None) is None:
            raise ConfigError(f"{args.config!r}: {exc}") from None
        raise


def run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    args.run_out = config.out  # for `interrupted`
    tracker = open_tracker(args, config.out)
    result = run_evolution(config, resume=args.resume)
    code = _print_result(result, config)
    if tracker is not None:
        tracker.log_evolve_command(Path(result.out_dir))
        print(tracker.describe())
    return code


def _print_result(result, config) -> int:
    n = len(result.history)
    count = {s: sum(r["status"] == s for r in result.history) for s in ("trained", "pruned", "collapsed", "diverged")}
    failed = sum(r["status"] == "failed" for r in result.history)
    steps = sum(int(r.get("steps") or 0) for r in result.history)
    halving = (
        f"{count['pruned']} pruned at a lower rung, {count['collapsed']} collapsed, "
        if config.fidelity == "halving"
        else ""
    )
    print(
        f"evolved on {config.dataset}/{config.resolved_model()}: {n} candidates "
        f"({result.rejected} rejected by the '{config.invariant}' invariant, "
        f"{count['trained']} trained to {config.steps} steps, {halving}{count['diverged']} diverged, "
        f"{failed} failed; {steps:,} training steps) "
        f"+ {result.reeval_trainings} re-evaluation trainings; {result.seconds:.1f}s "
        f"({result.evaluated_now} evaluations run now); run dir {result.out_dir}"
    )
    if result.best is None:
        print("no candidate trained successfully, so there is no best loss; try more generations or --invariant off")
        return 1
    best = result.best
    theta = ", ".join(f"{v:.4g}" for v in best["theta"])
    robust = f", robust accuracy {best['robust_accuracy']:.4f}" if best.get("robust_accuracy") is not None else ""
    print(
        f"best loss: theta [{theta}]: mean val accuracy {best['val_accuracy']:.4f}{robust} over "
        f"{len(best['reevaluations'])} fresh seeds (fitness {best['fitness']:.4f})"
    )
    print(f"train it: robust-glo train --dataset {config.dataset} --loss taylorglo:{result.out_dir / 'best_loss.json'}")
    return 0
