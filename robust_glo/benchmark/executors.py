"""The (loss x seed) grid of the train and attack stages: one plan of pieces, run by an executor.

An executor takes the plan (a list of `Piece`) and returns one typed `PieceOutcome` per piece, in the
plan's order: `computed` (this call trained or attacked it), `reused` (it was finished on disk before the
call: `training.run.is_finished` for training, `comparison.store.stored_evaluation` with the piece's
evaluation key for attacks) or `failed` (a diverged training, which leaves no network to attack; or, on
Ray only, a task that raised or whose worker died, `crashed`). The executors wrap the engines and write
exactly the files they write, so that resume does not care how a piece was computed:

- `SequentialExecutor`: one piece after another in this process (`training.train_run`,
  `comparison.runner.compute_piece`).
- `PopulationExecutor`: the unfinished pieces as populations of at most `max_members` networks
  (`training.train_runs_together`, `comparison.population.attack_as_populations`). The attacks fall back to
  the sequential path for what a population leaves (a diverged run, a population the engine refuses).
- `RayExecutor`: each unfinished piece as a Ray task (`comparison.parallel.run_pieces_ray`); the
  others finish when one fails, and the pipeline then fails the stage naming it.

Every executor then reads each finished piece back (a finished run directory or evaluation is only read),
so the outcomes carry the training metrics (`metrics`) and evaluation files (`files`) the stage gathers,
and prints one line per piece as the sequential path does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from robust_glo.comparison import layout
from robust_glo.comparison.config import CompareConfig
from robust_glo.comparison.parallel import ray_failure_message, run_pieces_ray
from robust_glo.comparison.population import attack_as_populations
from robust_glo.comparison.runner import REUSED_PIECE, compute_piece, piece_finished, piece_report, start_comparison
from robust_glo.comparison.store import EvaluationFiles
from robust_glo.errors import RobustGloError
from robust_glo.training import TrainResult, train_run, train_runs_together
from robust_glo.utils import read_json_or_none

Log = Callable[[str], None]
Status = Literal["computed", "reused", "failed"]


@dataclass
class Piece:
    """One (loss, seed) unit of the train and attack stages."""

    spec: str  # a real loss spec (the evolved loss resolved)
    seed: int
    name: str  # folder name
    display: str = ""  # the loss's name in logs

    @property
    def label(self) -> str:
        return f"{self.display or self.spec} seed {self.seed}"


@dataclass
class PieceOutcome:
    """What an executor did with one piece: its status, the seconds the piece's work took (a reused piece's
    stored time), why it failed (`message`, "" otherwise), the line printed for it, and what the stage
    gathers: the training run's metrics (train) or the evaluation files (attack; None when it crashed)."""

    piece: Piece
    status: Status
    seconds: float = 0.0
    message: str = ""
    line: str = ""
    crashed: bool = False  # raised (Ray: a task's error or a dead worker): the stage fails once the rest finish
    metrics: dict[str, Any] = field(default_factory=dict)
    files: EvaluationFiles | None = None


def raise_crashed(outcomes: Sequence[PieceOutcome]) -> None:
    """Raise `RobustGloError` naming every crashed piece with its reason (the others are finished on disk)."""
    crashed = [o for o in outcomes if o.crashed]
    if crashed:
        raise RobustGloError(ray_failure_message([o.piece.label for o in crashed], [o.message for o in crashed]))


class Executor:
    """Runs the pieces of comparison `config` in folder `out` (`compare/` of a benchmark). The plan is the
    comparison's grid, every loss x seed of `config` in that order (the population and Ray engines take
    the grid from `config`; the outcomes follow the plan given)."""

    name = "base"

    def __init__(self, config: CompareConfig, out: Path, *, progress: bool = False):
        self.config = config
        self.out = Path(out)
        self.progress = progress

    def train(self, pieces: Sequence[Piece], log: Log) -> list[PieceOutcome]:
        """Train every piece (or reuse its finished run); `log` gets one line per piece."""
        raise NotImplementedError

    def attack(self, pieces: Sequence[Piece], log: Log) -> list[PieceOutcome]:
        """Attack every trained piece (or reuse its stored evaluation); `log` gets each piece's report."""
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------- shared

    def run_dir(self, piece: Piece) -> Path:
        return layout.run_dir(self.out, piece.spec, piece.seed)

    def finished(self, config: CompareConfig, pieces: Sequence[Piece], *, evaluate: bool) -> dict[str, bool]:
        """Per piece name: whether it is on disk before this executor runs it (reused, not computed)."""
        return {p.name: piece_finished(config, self.out, p.spec, p.seed, evaluate=evaluate) for p in pieces}

    def _trained(self, piece: Piece, result: TrainResult, before: bool, log: Log) -> PieceOutcome:
        """The outcome of a training run that `train_run` (or a population) returned."""
        m = result.metrics
        reused = before and result.reused
        status: Status = "reused" if reused else "computed" if result.status == "ok" else "failed"
        line = (
            f"{piece.label}: {'reused' if reused else result.status}, test accuracy "
            f"{_fmt(m.get('test_accuracy'))}, {m.get('seconds', 0.0):.1f} s"
        )
        log(line)
        message = f"{result.status} ({m.get('message', '')})" if status == "failed" else ""
        return PieceOutcome(piece, status, float(m.get("seconds") or 0.0), message, line, metrics=m)

    def _read_back_trained(self, pieces: Sequence[Piece], before: dict[str, bool], log: Log) -> list[PieceOutcome]:
        """The outcomes of pieces another engine trained: each finished run read back (`train_run` reuses it)."""
        return [
            self._trained(
                p,
                train_run(self.config.train_config(p.spec, p.seed), self.run_dir(p), progress=False),
                before[p.name],
                log,
            )
            for p in pieces
        ]

    def _attack_each(
        self,
        config: CompareConfig,
        pieces: Sequence[Piece],
        before: dict[str, bool],
        splits: Any,
        attacked: Any,
        log: Log,
    ) -> list[PieceOutcome]:
        """Attack (or read back) each piece one by one, as the comparison does (`compute_piece`)."""
        outcomes = []
        for piece in pieces:
            files, line = compute_piece(
                config, self.out, piece.spec, piece.seed, splits, attacked, progress=self.progress
            )
            if not before[piece.name]:  # computed in this call by another engine (Ray, populations): read back
                line = line.replace(REUSED_PIECE, f"computed by the {self.name} executor, read back")
            log(piece_report(line, files))
            if (files.rows["status"] == "diverged").any():  # no network to attack
                metrics = read_json_or_none(self.run_dir(piece) / "metrics.json", expect=dict) or {}
                message = f"diverged ({metrics.get('message', '')}); no evaluation"
                outcomes.append(PieceOutcome(piece, "failed", 0.0, message, line, files=files))
                continue
            status: Status = "reused" if before[piece.name] else "computed"
            outcomes.append(PieceOutcome(piece, status, files.seconds, "", line, files=files))
        return outcomes


class SequentialExecutor(Executor):
    """One piece after another in this process."""

    name = "sequential"

    def train(self, pieces: Sequence[Piece], log: Log) -> list[PieceOutcome]:
        outcomes = []
        for piece in pieces:
            before = self.finished(self.config, [piece], evaluate=False)
            result = train_run(
                self.config.train_config(piece.spec, piece.seed), self.run_dir(piece), progress=self.progress
            )
            outcomes.append(self._trained(piece, result, before[piece.name], log))
        return outcomes

    def attack(self, pieces: Sequence[Piece], log: Log) -> list[PieceOutcome]:
        config = self.config.validated()
        splits, attacked = start_comparison(config, self.out)
        before = self.finished(config, pieces, evaluate=True)
        return self._attack_each(config, pieces, before, splits, attacked, log)


class PopulationExecutor(Executor):
    """The unfinished pieces as populations of at most `max_members` networks (0: all at once)."""

    name = "population"

    def __init__(self, config: CompareConfig, out: Path, *, progress: bool = False, max_members: int = 0):
        super().__init__(config, out, progress=progress)
        self.max_members = max_members

    def train(self, pieces: Sequence[Piece], log: Log) -> list[PieceOutcome]:
        before = self.finished(self.config, pieces, evaluate=False)
        configs = [self.config.train_config(p.spec, p.seed) for p in pieces]
        results = train_runs_together(configs, [self.run_dir(p) for p in pieces], max_members=self.max_members)
        trained = [r for r in results if not r.reused]
        if trained:
            seconds = population_seconds(trained)
            log(f"{len(trained)} networks trained as populations in {seconds:.1f} s")
        return [self._trained(p, r, before[p.name], log) for p, r in zip(pieces, results)]

    def attack(self, pieces: Sequence[Piece], log: Log) -> list[PieceOutcome]:
        config = self.config.validated()
        before = self.finished(config, pieces, evaluate=True)
        # Diagnostics and transfer crafting stay per network (robust_glo.comparison.population); what the
        # populations leave (diverged runs, a population the engine refuses) is attacked one by one below.
        attack_as_populations(config, self.out, max_members=self.max_members, echo=log)
        splits, attacked = start_comparison(config, self.out)
        return self._attack_each(config, pieces, before, splits, attacked, log)


class RayExecutor(Executor):
    """Each unfinished piece as a Ray task (`ray_options`: address, num_cpus, cpus_per_task, gpus_per_task,
    max_retries); `log` also gets the Ray lines, `[ray] ...`."""

    name = "ray"

    def __init__(
        self, config: CompareConfig, out: Path, *, progress: bool = False, ray_options: dict[str, Any] | None = None
    ):
        super().__init__(config, out, progress=progress)
        self.ray_options = dict(ray_options or {})

    def _on_ray(self, pieces: Sequence[Piece], *, evaluate: bool, log: Log) -> list[PieceOutcome]:
        """Run the pieces as Ray tasks; the crashed ones' outcomes (empty when none crashed)."""
        _, failed = run_pieces_ray(
            self.config, self.out, evaluate=evaluate, echo=log, progress=self.progress, **self.ray_options
        )
        return [
            PieceOutcome(p, "failed", message=failed[(p.spec, p.seed)], crashed=True)
            for p in pieces
            if (p.spec, p.seed) in failed
        ]

    @staticmethod
    def _with_crashed(
        pieces: Sequence[Piece], before: dict[str, bool], crashed: list[PieceOutcome]
    ) -> list[PieceOutcome]:
        """Every piece's outcome when some crashed: those, and the others as computed or reused (not read back)."""
        by_name = {o.piece.name: o for o in crashed}
        return [by_name.get(p.name) or PieceOutcome(p, "reused" if before[p.name] else "computed") for p in pieces]

    def train(self, pieces: Sequence[Piece], log: Log) -> list[PieceOutcome]:
        before = self.finished(self.config, pieces, evaluate=False)
        crashed = self._on_ray(pieces, evaluate=False, log=log)
        if crashed:
            return self._with_crashed(pieces, before, crashed)
        return self._read_back_trained(pieces, before, log)

    def attack(self, pieces: Sequence[Piece], log: Log) -> list[PieceOutcome]:
        config = self.config.validated()
        before = self.finished(config, pieces, evaluate=True)
        crashed = self._on_ray(pieces, evaluate=True, log=log)
        if crashed:
            return self._with_crashed(pieces, before, crashed)
        splits, attacked = start_comparison(config, self.out)
        return self._attack_each(config, pieces, before, splits, attacked, log)


def population_seconds(results: Sequence[TrainResult]) -> float:
    """The seconds the populations behind `results` took together. Every member records its population's
    seconds and size, so each contributes its share: two populations that happened to take the same time
    are both counted (a sum over distinct times would count them once)."""
    return sum(
        float(r.metrics.get("population_seconds", 0.0)) / max(1, int(r.metrics.get("population_size", 1)))
        for r in results
    )


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{float(value):.4f}"
