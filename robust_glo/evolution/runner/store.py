"""The run directory of an evolution, written so that a SIGKILL at any moment loses at most the
candidates in flight.

    config.json          the resolved EvolveConfig
    environment.json     seeds, library versions, hardware (and one entry per resume)
    cma_state.pkl        the CMA-ES state at the start of the next generation (pycma pickle_dumps)
    evaluations.json     every finished evaluation (the source of truth for --resume)
    history.csv          one row per candidate: generation, index, theta0..theta7, status, fitness,
                         val_accuracy, seconds, rung (the last rung it trained in, 0-based), steps (the
                         training steps it received) (+ robust_accuracy for a robust fitness; + objective,
                         the stated fitness, and clean_floor with a clean-accuracy constraint, where
                         fitness is then the rank CMA-ES sees)
    rungs.csv            with successive halving: one row per candidate and rung it trained in
    states/              with successive halving: the in-flight generation's training states
    generations.csv      one row per generation: best / median fitness, counts by status, sigma,
                         pycma termination criteria that hold (recorded; the budget sets the length)
    reevaluation.csv     the top candidates re-trained on fresh seeds
    best_loss.json       the chosen loss; `--loss taylorglo:best_loss.json` trains it

Every file is replaced atomically (write a temporary file, fsync, rename). evaluations.json is rewritten
after each finished candidate; cma_state.pkl at each generation boundary, so that a resumed run asks the
in-flight generation again from the same state (same RNG) and takes its finished candidates from disk.

A file damaged from outside (cut short by a copy or a full disk): environment.json is rebuilt on resume,
the CSV views and best_loss.json are rewritten from evaluations.json; config.json, evaluations.json and
cma_state.pkl cannot be rebuilt, and a resume stops with a one-line error naming the file, writing nothing.
"""

from __future__ import annotations

import contextlib
import csv
import io
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from robust_glo.errors import ResumeError, RobustGloError, StateFileError
from robust_glo.evolution.optimizer import CMAES
from robust_glo.losses.taylorglo import N_PARAMS
from robust_glo.utils import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, read_json_or_none

# 2: untrained candidates ranked by what went wrong (fitness bands), the training recipe nested.
STATE_FORMAT = 2
HISTORY_COLUMNS = (
    ["generation", "index"]
    + [f"theta{k}" for k in range(N_PARAMS)]
    + ["status", "fitness", "val_accuracy", "seconds", "rung", "steps"]
)
CONSTRAINT_COLUMNS = ["objective", "clean_floor"]  # with a clean-accuracy constraint (clean_margin)
RUNG_COLUMNS = (
    ["generation", "index", "rung", "rung_steps"]
    + [f"theta{k}" for k in range(N_PARAMS)]
    + ["status", "fitness", "val_accuracy", "robust_accuracy", "steps_trained", "seconds", "message"]
)
GENERATION_COLUMNS = [
    "generation",
    "best_fitness",
    "median_fitness",
    "trained",
    "rejected",
    "diverged",
    "failed",
    "pruned",
    "collapsed",
    "steps",
    "sigma",
    "seconds",
    "cma_stop",
]
REEVAL_COLUMNS = (
    ["rank", "generation", "index", "seed_index", "seed"]
    + [f"theta{k}" for k in range(N_PARAMS)]
    + ["status", "fitness", "val_accuracy", "robust_accuracy", "seconds", "search_fitness"]
)

# What to do with a state file that cannot be read: these two cannot be rebuilt from the others.
CONFIG_FIX = (
    "it records the run's settings, which a resume must match: restore it from a copy, or start a new run "
    "with another --out"
)
EVALUATIONS_FIX = (
    "it holds every finished candidate and is the source of truth for --resume: restore it from a copy, or "
    "start a new run with another --out"
)

CandidateKey = tuple[int, int]  # (generation, index)
ReevalKey = tuple[int, int, int]  # (generation, index, seed_index)


def _csv(columns: list[str], rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:  # floats are written with repr: they read back exactly
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, **{f"theta{k}": v for k, v in enumerate(record["theta"])}}


class RunStore:
    """Reads and writes one evolution run directory (see the module docstring)."""

    def __init__(self, out: str | Path, *, robust: bool = False):
        self.out = Path(out)
        self.robust = robust
        self.candidates: dict[CandidateKey, dict[str, Any]] = {}
        self.reevaluations: dict[ReevalKey, dict[str, Any]] = {}
        self.rungs: dict[tuple[int, int, int], dict[str, Any]] = {}  # (generation, index, rung)
        # The clean-accuracy references (cross-entropy trained on a generation's or re-evaluation's seed):
        # ("search", generation, rung) and ("reeval", seed_index, 0).
        self.references: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.generations: list[dict[str, Any]] = []

    def path(self, name: str) -> Path:
        return self.out / name

    def exists(self) -> bool:
        return self.path("config.json").is_file()

    def stored_config(self) -> dict[str, Any]:
        """The flat keys of the run's config.json (a one-line `StateFileError` when it cannot be read)."""
        return read_json(self.path("config.json"), expect=dict, fix=CONFIG_FIX)

    def read_environment(self) -> dict[str, Any] | None:
        """environment.json, or None when it is missing or cannot be read (it is metadata: rebuilt)."""
        return read_json_or_none(self.path("environment.json"), expect=dict)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the run directory (released by the OS even after a SIGKILL), so that
        two processes never write the same run."""
        import fcntl

        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.path(".lock"), "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RobustGloError(
                    f"another process is running the evolution in {str(self.out)!r}; "
                    f"wait for it to finish (or stop it) before resuming"
                ) from None
            yield

    # ---- evaluations ------------------------------------------------------------------------------------
    def load(self) -> None:
        """Read evaluations.json (if any) into memory; clear temporary files a kill left behind."""
        for tmp in self.out.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        p = self.path("evaluations.json")
        if not p.is_file():
            return
        data = read_json(p, expect=dict, fix=EVALUATIONS_FIX)
        if data.get("format") != STATE_FORMAT:
            raise ResumeError(
                f"{str(p)!r} has state format {data.get('format')!r}, this version reads {STATE_FORMAT}; "
                "start a new run with another --out"
            )
        try:
            self.candidates = {(r["generation"], r["index"]): r for r in data.get("candidates", [])}
            self.reevaluations = {
                (r["generation"], r["index"], r["seed_index"]): r for r in data.get("reevaluations", [])
            }
            self.generations = list(data.get("generations", []))
            self.rungs = {(r["generation"], r["index"], r["rung"]): r for r in data.get("rungs", [])}
            self.references = {(r["kind"], r["at"][0], r["at"][1]): r for r in data.get("references", [])}
        except KeyError as exc:
            raise StateFileError(
                f"{str(p)!r} cannot be read (a record lacks {exc.args[0]!r}); {EVALUATIONS_FIX}"
            ) from None
        except (TypeError, AttributeError):
            raise StateFileError(
                f"{str(p)!r} cannot be read (a record is not a JSON object); {EVALUATIONS_FIX}"
            ) from None

    def save(self) -> None:
        """Write evaluations.json, then the CSV views of it (all atomic)."""
        self.out.mkdir(parents=True, exist_ok=True)
        candidates = [self.candidates[k] for k in sorted(self.candidates)]
        reevals = [self.reevaluations[k] for k in sorted(self.reevaluations)]
        atomic_write_json(
            self.path("evaluations.json"),
            {
                "format": STATE_FORMAT,
                "candidates": candidates,
                "reevaluations": reevals,
                "generations": self.generations,
                **({"rungs": [self.rungs[k] for k in sorted(self.rungs)]} if self.rungs else {}),
                **({"references": [self.references[k] for k in sorted(self.references)]} if self.references else {}),
            },
        )
        self.write_views()

    def write_views(self) -> None:
        """The CSV views of evaluations.json (history.csv, generations.csv, rungs.csv), rewritten from the
        records in memory: on every save, and on resume, so that a view damaged from outside is rebuilt."""
        candidates = [self.candidates[k] for k in sorted(self.candidates)]
        if self.rungs:
            rows = [self.rungs[k] for k in sorted(self.rungs)]
            extra = CONSTRAINT_COLUMNS if any("objective" in r for r in rows) else []
            atomic_write_text(self.path("rungs.csv"), _csv(RUNG_COLUMNS + extra, map(_flat, rows)))
        columns = HISTORY_COLUMNS + (["robust_accuracy"] if self.robust else [])
        if any("objective" in r for r in candidates):
            columns += CONSTRAINT_COLUMNS
        atomic_write_text(self.path("history.csv"), _csv(columns, map(_flat, candidates)))
        atomic_write_text(self.path("generations.csv"), _csv(GENERATION_COLUMNS, self.generations))

    def write_reevaluation(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_text(self.path("reevaluation.csv"), _csv(REEVAL_COLUMNS, map(_flat, rows)))

    # ---- optimizer state ----------------------------------------------------------------------------------
    def save_state(self, optimizer: CMAES, generation: int) -> None:
        """The optimizer as it stands before asking generation `generation`."""
        blob = pickle.dumps({"format": STATE_FORMAT, "generation": generation, "cma": optimizer.dumps()})
        atomic_write_bytes(self.path("cma_state.pkl"), blob)

    def load_state(self) -> tuple[CMAES, int] | None:
        p = self.path("cma_state.pkl")
        if not p.is_file():
            return None
        try:
            state = pickle.loads(p.read_bytes())
            if state.get("format") != STATE_FORMAT:
                raise KeyError("format")
            return CMAES.loads(state["cma"]), int(state["generation"])
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, AttributeError) as exc:
            raise ResumeError(
                f"{str(p)!r} is not a readable CMA-ES checkpoint ({type(exc).__name__}); "
                f"start a new run with another --out"
            ) from None
