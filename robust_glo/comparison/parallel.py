"""A comparison's (loss, seed) pieces as Ray tasks, on a local Ray cluster or one joined by address.

Each task trains its network (or reuses the run directory) and, for the attack stage, evaluates it (or
reuses the stored evaluation), writing exactly the files the sequential runner writes, into the same
folders on a filesystem every worker sees. The sequential gather that follows (`run_comparison`) then
finds every piece finished and only reads it, so the results are those of the local backend; they are
identical bit for bit when the tasks use the same number of torch threads as the local run
(`cpus_per_task`). A piece whose worker dies is retried `max_retries` times; a piece that fails is
reported, and every finished piece stays on disk for the next run to reuse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robust_glo.comparison.config import CompareConfig
from robust_glo.errors import RobustGloError
from robust_glo.utils.ray_cluster import connect_ray


def _piece_task(config: dict[str, Any], out: str, loss: str, seed: int, evaluate: bool, threads: int) -> str:
    import torch

    from robust_glo.comparison.runner import comparison_splits, compute_piece

    torch.set_num_threads(threads)
    cfg = CompareConfig(**config)
    splits, attacked = comparison_splits(cfg)  # the files are read once per worker (load_dataset's cache)
    return compute_piece(cfg, Path(out), loss, seed, splits, attacked, evaluate=evaluate)[1]


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
) -> list[str]:
    """Train (and with `evaluate`, attack) every (loss, seed) piece of `config` as a Ray task; returns the
    log lines. Raises `RobustGloError` naming the pieces that failed, after the others finished."""
    ray, _ = connect_ray(address, num_cpus)
    config = config.validated()
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
        for loss in config.losses
        for seed in config.seeds
    }
    lines, failed = [], []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        ref = done[0]
        loss, seed = pending.pop(ref)
        try:
            line = ray.get(ref)
        except Exception as exc:  # a worker's error or death: reported with its piece, the rest go on
            failed.append(f"{loss} seed {seed}: {type(exc).__name__}: {str(exc).strip().splitlines()[-1]}")
            continue
        lines.append(line)
        echo(f"[ray] {line}")
    if failed:
        raise RobustGloError("pieces failed on Ray (finished ones are kept; re-run to retry): " + "; ".join(failed))
    return lines
