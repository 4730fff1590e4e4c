"""A comparison's (loss, seed) pieces as Ray tasks, on a local Ray cluster or one joined by address.

Each task trains its network (or reuses the run directory) and, for the attack stage, evaluates it (or
reuses the stored evaluation), writing exactly the files the sequential runner writes, into the same
folders on a filesystem every worker sees. The per-network pass that follows (`run_comparison`, or the
benchmark's Ray executor) then finds every piece finished and only reads it, so the results are those of
the local backend; they are identical bit for bit when the tasks use the same number of torch threads as
the local run (`cpus_per_task`). A piece whose worker dies is retried `max_retries` times; a piece that fails is
reported, and every finished piece stays on disk for the next run to reuse.

Pieces are dispatched, not all queued at once: at most as many in flight as the cluster has task slots,
the next one chosen when one finishes (`next_piece`). First one seed of every loss, then the pieces of the
losses whose pieces took longest so far. Attack pieces differ up to tenfold in cost (the more robust a
network, the more inputs reach the expensive end of a cascade), and one slow piece left for last runs alone
at the end of the stage; longest-first list scheduling (Graham 1969) with costs learned per loss moves the
slow ones forward. The order changes no result: every piece is seeded by its own (loss, seed).

While the tasks run, a tqdm bar counts the pieces done out of all of them, with rate and ETA (the
workers' own bars are not forwarded: `log_to_driver=False`). Pieces already finished on disk are not sent
to Ray at all: they start the count (tqdm's `initial`), so that the rate and ETA are those of the pieces
that run.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from robust_glo.comparison.config import CompareConfig
from robust_glo.comparison.runner import comparison_splits, compute_piece, piece_finished
from robust_glo.losses import shorten_specs
from robust_glo.utils.ray_cluster import connect_ray


def _piece_task(config: dict[str, Any], out: str, loss: str, seed: int, evaluate: bool, threads: int) -> str:
    import torch

    torch.set_num_threads(threads)
    cfg = CompareConfig(**config)
    splits, attacked = comparison_splits(cfg)  # the files are read once per worker (load_dataset's cache)
    return compute_piece(cfg, Path(out), loss, seed, splits, attacked, evaluate=evaluate)[1]


def _finished_before(config: CompareConfig, out: Path, loss: str, seed: int, evaluate: bool) -> bool:
    """Whether the piece is on disk already (what `compute_piece` would reuse); in doubt, False."""
    try:
        return piece_finished(config, out, loss, seed, evaluate=evaluate)
    except Exception:  # the task finds out for itself
        return False


def next_piece(
    remaining: Sequence[tuple[str, int]], seconds: dict[str, list[float]], dispatched: dict[str, int] | None = None
) -> tuple[str, int]:
    """The piece to dispatch next among `remaining` ((loss, seed), in the plan's order), given the seconds
    the finished pieces of each loss took (`seconds[loss]`) and how many pieces of each loss were dispatched
    so far (`dispatched[loss]`): a piece of a loss not timed yet, the loss with the fewest dispatched first
    (so every loss's first seed goes before any loss's second), else a piece of the loss with the largest
    mean time; ties in plan order. Raises `ValueError` when `remaining` is empty."""
    if not remaining:
        raise ValueError("no piece left to dispatch")
    dispatched = dispatched or {}
    untimed = [p for p in remaining if not seconds.get(p[0])]
    if untimed:
        return min(untimed, key=lambda p: (dispatched.get(p[0], 0), remaining.index(p)))
    return max(remaining, key=lambda p: (statistics.fmean(seconds[p[0]]), -remaining.index(p)))


def _task_slots(ray: Any, cpus_per_task: float, gpus_per_task: float) -> int | None:
    """How many tasks of this shape the cluster runs at once (None when Ray cannot say)."""
    try:
        resources = ray.cluster_resources()
    except Exception:
        return None
    slots = [int(resources.get("CPU", 0) // cpus_per_task)] if cpus_per_task > 0 else []
    if gpus_per_task > 0:
        slots.append(int(resources.get("GPU", 0) // gpus_per_task))
    return max(1, min(slots)) if slots else None


def ray_failure_message(labels: Iterable[str], reasons: Iterable[str]) -> str:
    """The one-line error of pieces that failed on Ray: each piece's label with its reason."""
    return "pieces failed on Ray (finished ones are kept; re-run to retry): " + "; ".join(
        f"{label}: {reason}" for label, reason in zip(labels, reasons)
    )


def run_pieces_ray(
    config: CompareConfig,
    out: str | Path,
    *,
    evaluate: bool,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
    max_retries: int = 2,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> tuple[list[str], dict[tuple[str, int], str]]:
    """Train (and with `evaluate`, attack) every unfinished (loss, seed) piece of `config` as a Ray task.
    Returns the log lines (long loss specs shown by their display names, `robust_glo.losses.display_name`)
    and, per piece that failed (its task raised or its worker died after `max_retries`), the reason
    (`"ErrorType: last line"`); the others finish either way (`ray_failure_message` words the failures).
    With `progress`, a bar on stderr counts the pieces done out of all, with an ETA."""
    config = config.validated()
    pieces = [(loss, seed) for loss in config.losses for seed in config.seeds]
    todo = [(loss, seed) for loss, seed in pieces if not _finished_before(config, Path(out), loss, seed, evaluate)]
    if len(todo) < len(pieces):
        echo(f"[ray] {len(pieces) - len(todo)} of {len(pieces)} pieces finished before; {len(todo)} run as Ray tasks")
    if not todo:
        return [], {}
    ray, _ = connect_ray(address, num_cpus)
    remote = ray.remote(_piece_task).options(
        num_cpus=float(cpus_per_task),
        num_gpus=float(gpus_per_task),
        max_retries=int(max_retries),
        retry_exceptions=False,
    )
    threads = max(1, int(cpus_per_task))
    payload = dataclasses.asdict(config)
    out_dir = str(Path(out).resolve())
    slots = _task_slots(ray, float(cpus_per_task), float(gpus_per_task)) or len(todo)
    remaining = list(todo)
    seconds: dict[str, list[float]] = {}
    dispatched: dict[str, int] = {}
    pending: dict[Any, tuple[str, int, float]] = {}

    def dispatch() -> None:
        while remaining and len(pending) < slots:
            loss, seed = next_piece(remaining, seconds, dispatched)
            remaining.remove((loss, seed))
            dispatched[loss] = dispatched.get(loss, 0) + 1
            ref = remote.remote(payload, out_dir, loss, seed, evaluate, threads)
            pending[ref] = (loss, seed, time.perf_counter())

    lines: list[str] = []
    failed: dict[tuple[str, int], str] = {}
    bar = tqdm(
        total=len(pieces),
        initial=len(pieces) - len(todo),
        desc="attack pieces" if evaluate else "train pieces",
        unit="piece",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )
    try:
        dispatch()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            loss, seed, started = pending.pop(ref)
            seconds.setdefault(loss, []).append(time.perf_counter() - started)
            dispatch()
            bar.update(1)
            try:
                line = shorten_specs(ray.get(ref))
            except Exception as exc:  # a worker's error or death: reported with its piece, the rest go on
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
                failed[(loss, seed)] = f"{type(exc).__name__}: {reason}"
                bar.set_postfix(failed=len(failed))
                continue
            lines.append(line)
            with tqdm.external_write_mode():  # the line above the bar, not through it
                echo(f"[ray] {line}")
    finally:
        bar.close()
    return lines, failed
