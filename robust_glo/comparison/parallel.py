"""A comparison's (loss, seed) pieces as Ray tasks, on a local Ray cluster or one joined by address.

Each task trains its network (or reuses the run directory) and, for the attack stage, evaluates it (or
reuses the stored evaluation), writing exactly the files the sequential runner writes, into the same
folders on a filesystem every worker sees. The per-network pass that follows (`run_comparison`, or the
benchmark's Ray executor) then finds every piece finished and only reads it, so the results are those of
the local backend; they are identical bit for bit when the tasks use the same number of torch threads as
the local run (`cpus_per_task`). A piece whose worker dies is retried `max_retries` times; a piece that fails is
reported, and every finished piece stays on disk for the next run to reuse.

While the tasks run, a tqdm bar counts the pieces done out of all of them, with rate and ETA (the
workers' own bars are not forwarded: `log_to_driver=False`). Pieces already finished on disk are not sent
to Ray at all: they start the count (tqdm's `initial`), so that the rate and ETA are those of the pieces
that run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
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
    pending = {
        remote.remote(payload, str(Path(out).resolve()), loss, seed, evaluate, threads): (loss, seed)
        for loss, seed in todo
    }
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
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            loss, seed = pending.pop(ref)
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
