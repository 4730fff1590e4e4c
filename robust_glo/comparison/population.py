"""A comparison's attack pieces as populations: the trained, not yet evaluated (loss, seed) networks of
one architecture attacked together by `robust_glo.robustness.population.evaluate_population`.

The counterpart of the train stage's populations (`robust_glo.training.train_runs_together`): every
unfinished attack piece whose network is trained joins a population of at most `max_members` networks;
each member's evaluation is then written into its run directory exactly as the per-network path
(`runner.compute_piece` -> `store.evaluate_and_store`) writes it (the same files, the same evaluation
key, its card), so that the per-network pass that follows (`run_comparison`, or the benchmark's population
executor) finds every piece finished and only reads it, and resume, reports, cards and diagnostics do not
care how a piece was attacked.

What is batched: the attacks themselves (the clean pass, every attack at every budget, cascades,
`min_eps`, reliability flags), with each member's per-image outcomes those of `run_evaluation` on that
network (identical on the CPU, tested; on a GPU the batched kernels round differently, see
docs/attacks.md). Families the population engine does not port (FAB-T, L2 Square, `fgsm:loss=train`,
which needs each member's own training loss) run member by member inside the population evaluation,
with the per-network results. What stays per network: the diagnostics (`run_diagnostics`: more effort,
unbounded, gradients, targeted vs CE) and the crafting of the transfer examples on the source network,
since each is a few attacks on a subsample and runs after that network's evaluation; the transfer
diagnostic itself runs after every piece, as before.

A population that `evaluate_population` refuses before any attack runs (a `ConfigError`: members of
different architectures or dtypes, say) is not attacked here: its pieces are left to the per-network
pass, which attacks them one by one (and raises the same error there if it is the configuration's), so
a piece is never evaluated differently, only not batched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from robust_glo.comparison import layout
from robust_glo.comparison.config import CompareConfig
from robust_glo.comparison.runner import comparison_splits, craft_transfer
from robust_glo.comparison.store import store_evaluation, stored_evaluation
from robust_glo.errors import ConfigError
from robust_glo.robustness.population import evaluate_population
from robust_glo.training import train_run
from robust_glo.training.run import is_finished


@dataclass
class _Member:
    """One trained, not yet evaluated piece: its identity, run directory, evaluation key and network."""

    loss: str
    seed: int
    run_dir: Path
    key: dict[str, Any]
    ident: dict[str, Any]
    model: nn.Module


def attack_as_populations(
    config: CompareConfig,
    out: str | Path,
    *,
    max_members: int = 0,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """Attack the unfinished pieces of comparison `config` in folder `out` as populations of at most
    `max_members` networks (0: all of one architecture at once), writing each piece's evaluation files as
    `run_comparison` would. Pieces already evaluated with the same key, pieces whose training has not
    finished and diverged runs are left alone (the per-network pass reuses, trains or records them).
    Returns the log lines, each also passed to `echo`. Raises `ConfigError` for a negative `max_members`;
    a population `evaluate_population` refuses is logged and left to the per-network pass."""
    if isinstance(max_members, bool) or not isinstance(max_members, int) or max_members < 0:
        raise ConfigError(f"population size must be an integer >= 0 (0: every piece at once), got {max_members!r}")
    config = config.validated()
    out = Path(out)
    splits, attacked = comparison_splits(config)
    groups: dict[str, list[_Member]] = {}
    for loss in config.losses:
        for seed in config.seeds:
            train_cfg = config.train_config(loss, seed)
            run_dir = layout.run_dir(out, loss, seed)
            key = config.piece_key(train_cfg)
            if not is_finished(run_dir, train_cfg.resolved()) or stored_evaluation(run_dir, key) is not None:
                continue
            result = train_run(train_cfg, run_dir, splits=splits, progress=False)  # reads the finished run back
            if result.status != "ok":
                continue
            ident = {"loss": loss, "seed": seed, "dataset": config.dataset, "model": train_cfg.model, "status": "ok"}
            # Members share an architecture: the same model on the same data (the trainings' other options,
            # the loss and seed above all, change the weights, not the shapes).
            shape = json.dumps({"model": train_cfg.model, "dataset": train_cfg.dataset}, sort_keys=True)
            groups.setdefault(shape, []).append(_Member(loss, seed, run_dir, key, ident, result.model))
    lines: list[str] = []
    for members in groups.values():
        size = max_members if max_members > 0 else len(members)
        for start in range(0, len(members), size):
            lines += _attack_chunk(config, out, members[start : start + size], attacked, echo)
    return lines


def _attack_chunk(
    config: CompareConfig, out: Path, chunk: list[_Member], attacked: Any, echo: Callable[[str], None]
) -> list[str]:
    """Attack one population (`attacked.images` `(N, C, H, W)`, `attacked.labels` `(N,)`) and store every
    member's evaluation, diagnostics and (on the transfer source) crafted transfer examples."""
    try:
        pop = evaluate_population(
            [m.model for m in chunk],
            attacked.images,
            attacked.labels,
            config.attacks,
            config.eps,
            train_loss=[m.loss for m in chunk],
            **config.attack_options(),
        )
    except ConfigError as exc:
        line = f"{_networks(len(chunk))} attacked one by one instead of as a population: {exc}"
        echo(line)
        return [line]
    share = pop.seconds / len(chunk)
    per_member = [label for label, ported in pop.ported.items() if not ported]
    lines = [
        f"{_networks(len(chunk))} attacked as a population in {pop.seconds:.0f}s ({pop.forward})"
        + (f"; member by member inside it: {', '.join(per_member)}" if per_member else "")
    ]
    echo(lines[0])
    # The forward mode (vmap on CUDA, loop elsewhere) judged every member's outcomes: recorded with them.
    extra = {
        "attacked_as": f"population of {len(chunk)}",
        "population_seconds": pop.seconds,
        "population_forward": pop.forward,
        "attacked_member_by_member": per_member,
    }
    for member, ev in zip(chunk, pop.members):
        # Diagnostics and transfer crafting stay per network (module docstring).
        files = store_evaluation(
            member.model, attacked, member.ident, member.run_dir, config, member.key, ev, share, extra
        )
        line = f"{member.loss} seed {member.seed}: evaluated in a population of {len(chunk)}, "
        line += f"{files.seconds:.0f}s with its share of the attacks"
        line += craft_transfer(config, out, member.loss, member.seed, member.model, attacked, files.rows)
        echo(line)
        lines.append(line)
    return lines


def _networks(n: int) -> str:
    return f"{n} network" + ("" if n == 1 else "s")
