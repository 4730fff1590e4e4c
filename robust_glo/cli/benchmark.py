"""`robust-glo benchmark SUITE --out DIR`: run a benchmark suite end to end, resuming finished pieces."""

from __future__ import annotations

import argparse

from robust_glo.cli.common import (
    add_device_arg,
    add_progress_arg,
    add_threads_arg,
    add_tracking_args,
    nonneg_int,
    set_threads,
)
from robust_glo.errors import ConfigError, UsageError
from robust_glo.evolution.config import EVOLVE_BOUNDS
from robust_glo.utils.parsing import split_list


def register(sub) -> None:
    p = sub.add_parser(
        "benchmark",
        help="run a suite (a shipped one by name, or a .toml path): evolve, train, attack, "
        "analyze, report; a re-run reuses every finished piece",
    )
    p.add_argument(
        "suite",
        metavar="SUITE",
        help="a shipped suite's name such as quick (an unknown name lists them), or the path of a .toml file",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="benchmark folder (created; re-use it to resume)")
    p.add_argument("--variant", default=None, metavar="NAME", help="apply the suite's [variants.NAME] overrides")
    p.add_argument(
        "--stages",
        default=None,
        metavar="LIST",
        help="comma-separated subset of evolve,train,attack,analyze,report (default: all)",
    )
    p.add_argument(
        "--loss",
        action="append",
        default=[],
        metavar="SPEC",
        help="add a loss to the suite's losses, e.g. my_losses.py:fn (repeatable); it is trained on the "
        "suite's seeds and attacked like the others",
    )
    add_device_arg(p, default=None, what="override the suite's device: auto, cpu, cuda, cuda:N")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "local", "ray"),
        help="run the evolution's candidates and the train and attack pieces here (local) or as Ray tasks "
        "(ray); auto (default): ray with one one-thread task per core on a multi-core CPU, else local",
    )
    p.add_argument("--ray-address", default=None, metavar="ADDR", help="join this Ray cluster (default: start one)")
    p.add_argument(
        "--cpus-per-task",
        type=EVOLVE_BOUNDS["cpus_per_task"].argtype(),
        default=1.0,
        metavar="C",
        help="CPUs (and torch threads) per Ray task (default 1)",
    )
    p.add_argument(
        "--gpus-per-task",
        type=EVOLVE_BOUNDS["gpus_per_task"].argtype(),
        default=0.0,
        metavar="G",
        help="GPU share per Ray task, e.g. 0.25 (default 0)",
    )
    p.add_argument(
        "--population",
        default="auto",
        choices=("auto", "on", "off"),
        help="train the suite's networks as populations, many in one batched network (auto: on CUDA only)",
    )
    p.add_argument(
        "--population-size",
        type=nonneg_int,
        default=0,
        metavar="P",
        help="at most P networks per population (default 0: every unfinished piece at once)",
    )
    add_threads_arg(
        p,
        "torch threads of this process with the local backend (default: torch's; with --backend auto it picks "
        "local); Ray tasks use --cpus-per-task",
    )
    p.add_argument("--check", action="store_true", help="validate the suite and print the plan, run nothing")
    add_progress_arg(p)
    add_tracking_args(
        p,
        "log the benchmark to MLflow after each stage: the suite, evolution fitness, training curves, robust "
        "accuracies, the report (default store: sqlite:///DIR/mlflow.db with artifacts in DIR/mlruns, DIR the "
        "--out; look at it with `mlflow ui --backend-store-uri sqlite:///DIR/mlflow.db`); overrides the suite's "
        "[suite] track. Needs pip install robust-glo[tracking]",
    )
    p.set_defaults(func=run, interrupted=interrupted)


def interrupted(args: argparse.Namespace) -> str:
    if not args.out:
        return "nothing was written; re-run the command"
    return (
        f"every finished piece is saved in {args.out}; re-run the same command (same --out) to resume "
        "(stages.json records the interrupted stage)"
    )


def run(args: argparse.Namespace) -> int:
    # lazy: every subcommand module is imported to build the parser; these load pandas (--help stays light)
    from robust_glo.benchmark import STAGES, load_suite, run_benchmark
    from robust_glo.benchmark.plan import describe

    suite = load_suite(args.suite, args.variant)
    if args.loss:
        suite = suite.with_losses(args.loss)
    if args.device:
        suite.device = args.device
    stages = STAGES if args.stages is None else tuple(split_list(args.stages, "--stages", "train,attack"))
    if args.check:
        print(describe(suite))
        return 0
    if args.out is None:
        raise UsageError("benchmark: --out DIR is required (the benchmark folder; re-use it to resume)")
    if "attack" in stages:  # before the evolution and training that come first: torchattacks is installed apart
        # lazy: robustness loads pandas (--help stays light)
        from robust_glo.robustness.attacks import require_torchattacks

        require_torchattacks(suite.attacks)
    backend = args.backend
    if args.threads is not None:
        if backend == "ray":
            raise ConfigError("--threads sets this process's torch threads; Ray tasks take --cpus-per-task instead")
        backend = "local"  # as evolve's auto backend: --threads means one process of that many threads
        set_threads(args.threads)
    ray_options = {
        "address": args.ray_address,
        "cpus_per_task": args.cpus_per_task,
        "gpus_per_task": args.gpus_per_task,
    }
    result = run_benchmark(
        suite,
        args.out,
        stages=stages,
        progress=args.progress,
        backend=backend,
        ray_options=ray_options if backend != "local" else None,
        population=args.population,
        population_size=args.population_size,
        track=args.track,
        tracking_uri=args.tracking_uri,
    )
    times = ", ".join(f"{name} {s.get('last_seconds', 0):.1f} s" for name, s in result.stages.items() if name in stages)
    print(
        f"benchmark {suite.name} finished in {args.out} ({times})"
        + (f"; report: {result.report}" if result.report else "")
    )
    return 0
