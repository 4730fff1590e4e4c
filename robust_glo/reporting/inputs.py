"""What a report is built from: the files of a benchmark directory, read without running anything.

Layout (written by `robust-glo benchmark`; only `results.csv` is required)::

    results.csv            tidy robustness table: loss, seed, dataset, model, attack, eps, n, accuracy, ...
    flags.csv              reliability checks per evaluation: loss, seed, check, status, value, detail, ...
    outcomes.csv           per-image outcomes of every evaluation (the bootstrap over test images needs them)
    diagnostics.csv        diagnostics per evaluation and budget: loss, seed, check, norm, eps, status, value, ...
    training.csv           one row per trained network: loss, seed, status, val/test accuracy, seconds
    losses.json            display labels: [{"spec": ..., "label": ..., "role": ...}]
    suite.json             the resolved suite
    stages.json            wall time and piece counts of each stage
    environment.json       seeds, library versions, hardware
    evolve/history.csv     one row per evolution candidate; evolve/best_loss.json the evolved loss;
                           evolve/reevaluation.csv the top candidates re-trained on fresh seeds
    evolve/<NAME>/...      the same for each named evolution of a suite with [evolve.NAME] tables
    evolve[/<NAME>]/search<k>/...  with `[evolve] searches = K`: one evolution run directory per search
                           (history.csv, best_loss.json, ...), next to searches.csv (one row per search),
                           searches.json (how much they agree) and the chosen search's best_loss.json
    analysis/analysis.json `analyze_loss(...).to_dict()` of every loss; analysis/figures/*.png
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robust_glo.errors import ConfigError, StateFileError
from robust_glo.robustness.checks import read_flags
from robust_glo.robustness.diagnostics import read_diagnostics
from robust_glo.utils import read_json, read_json_or_none

RESULTS = "results.csv"
FLAGS = "flags.csv"
OUTCOMES = "outcomes.csv"
DIAGNOSTICS = "diagnostics.csv"
TRAINING = "training.csv"
LOSSES = "losses.json"
SUITE = "suite.json"
STAGES = "stages.json"
ENVIRONMENT = "environment.json"
ANALYSIS = Path("analysis") / "analysis.json"
ANALYSIS_FIGURES = Path("analysis") / "figures"

REQUIRED_RESULT_COLUMNS = ("loss", "seed", "attack", "eps", "accuracy")

# Everything a report is built from (small files: no model weights), as glob patterns under the folder.
INPUT_PATTERNS = (
    RESULTS,
    FLAGS,
    OUTCOMES,
    DIAGNOSTICS,
    TRAINING,
    LOSSES,
    SUITE,
    STAGES,
    ENVIRONMENT,
    "evolve/history.csv",
    "evolve/best_loss.json",
    "evolve/generations.csv",
    "evolve/reevaluation.csv",
    "evolve/config.json",
    "evolve/*/history.csv",
    "evolve/*/best_loss.json",
    "evolve/*/generations.csv",
    "evolve/*/reevaluation.csv",
    "evolve/*/config.json",
    "evolve/searches.csv",
    "evolve/searches.json",
    "evolve/*/searches.csv",
    "evolve/*/searches.json",
    "evolve/*/search*/history.csv",
    "evolve/*/search*/best_loss.json",
    "evolve/*/search*/generations.csv",
    "evolve/*/search*/reevaluation.csv",
    "evolve/*/search*/config.json",
    # every rung's record (the constraint per rung): evaluations/evolution_steering.py reads it
    "evolve/rungs.csv",
    "evolve/*/rungs.csv",
    "evolve/search*/rungs.csv",
    "evolve/*/search*/rungs.csv",
    "analysis/*.json",
    "analysis/figures/*.png",
)


SEARCH_DIR = re.compile(r"search(\d+)")


@dataclass
class SearchInputs:
    """One CMA-ES search of an evolution run with `[evolve] searches = K`: its run directory's files."""

    index: int
    folder: str  # relative to the report, e.g. "evolve/robust/search1"
    history: pd.DataFrame
    reevaluation: pd.DataFrame | None = None
    best_loss: dict[str, Any] | None = None
    config: dict[str, Any] | None = None


@dataclass
class EvolutionInputs:
    """The files of one evolution: `name` is "" for a suite's plain [evolve] table.

    With several searches (`searches` not empty), `history` and `reevaluation` are those of every search
    stacked, with a `search` column (the search's index); `searches_table` is searches.csv and
    `agreement` searches.json (None when absent). With one search `searches` is empty and the frames are
    the run directory's own, without a `search` column."""

    name: str
    folder: str  # relative to the report, e.g. "evolve" or "evolve/robust"
    history: pd.DataFrame
    reevaluation: pd.DataFrame | None = None
    best_loss: dict[str, Any] | None = None
    searches: list[SearchInputs] = field(default_factory=list)
    searches_table: pd.DataFrame | None = None
    agreement: dict[str, Any] | None = None


@dataclass
class ReportInputs:
    """Everything found in a benchmark directory; optional parts are None (or empty) when absent."""

    root: Path
    results: pd.DataFrame
    flags: pd.DataFrame | None = None
    outcomes: pd.DataFrame | None = None
    diagnostics: pd.DataFrame | None = None  # None: not recorded with these results (not run)
    training: pd.DataFrame | None = None
    evolutions: list[EvolutionInputs] = field(default_factory=list)
    analysis: list[dict[str, Any]] = field(default_factory=list)
    analysis_figures: list[Path] = field(default_factory=list)
    suite: dict[str, Any] | None = None
    stages: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    labels: dict[str, str] = field(default_factory=dict)  # spec -> display label

    @property
    def losses(self) -> list[str]:
        """Loss specs in the order they appear in the results."""
        return list(dict.fromkeys(self.results["loss"]))

    def label(self, spec: str) -> str:
        return self.labels.get(spec) or short_label(spec)


def short_label(spec: str) -> str:
    """A readable name for a loss spec: inline TaylorGLO parameters are rounded, paths shortened."""
    if spec.startswith("taylorglo:[") and spec.endswith("]"):
        try:
            theta = json.loads(spec.split(":", 1)[1])
            return "taylorglo[" + ", ".join(f"{float(t):.2f}" for t in theta) + "]"
        except (ValueError, TypeError):
            return spec
    if spec.startswith("taylorglo:") and spec.endswith(".json"):
        return "taylorglo:" + Path(spec.split(":", 1)[1]).name
    return spec


REWRITE = (
    "run the benchmark again into the same folder (robust-glo benchmark SUITE --out DIR): it rewrites this file "
    "and reuses every finished piece"
)


def _read_json(path: Path) -> Any:
    """A JSON input; one that cannot be read is a one-line `StateFileError` naming it and what to do."""

    return read_json(path, fix=REWRITE)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc}") from None


def load_inputs(root: str | Path) -> ReportInputs:
    """Read a benchmark directory. Raises `ConfigError` when `results.csv` is missing or malformed."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"report directory {str(root)!r} does not exist")
    results_path = root / RESULTS
    if not results_path.is_file():
        raise ConfigError(
            f"{str(root)!r} holds no {RESULTS}; run `robust-glo benchmark SUITE --out {root}` "
            "first (the report is built from its results)"
        )
    results = _read_csv(results_path)
    missing = [c for c in REQUIRED_RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise ConfigError(f"{results_path} lacks column(s) {', '.join(missing)}; it has {', '.join(results.columns)}")
    if results.empty:
        raise ConfigError(f"{results_path} has no rows")
    inputs = ReportInputs(root=root, results=results)
    if (root / FLAGS).is_file():
        try:
            inputs.flags = read_flags(root / FLAGS)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {str(root / FLAGS)!r}: {exc}") from None
    if (root / OUTCOMES).is_file():
        try:
            inputs.outcomes = pd.read_csv(root / OUTCOMES, dtype={"bits": str, "images": str})
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {str(root / OUTCOMES)!r}: {exc}") from None
    if (root / DIAGNOSTICS).is_file():
        try:
            inputs.diagnostics = read_diagnostics(root / DIAGNOSTICS)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {str(root / DIAGNOSTICS)!r}: {exc}") from None
    if (root / TRAINING).is_file():
        inputs.training = _read_csv(root / TRAINING)
    inputs.evolutions = _read_evolutions(root)
    if (root / ANALYSIS).is_file():
        data = _read_json(root / ANALYSIS)
        inputs.analysis = data if isinstance(data, list) else [data]
    if (root / ANALYSIS_FIGURES).is_dir():
        inputs.analysis_figures = sorted((root / ANALYSIS_FIGURES).glob("*.png"))
    if (root / SUITE).is_file():
        inputs.suite = _read_json(root / SUITE)
    for attr, name in (("stages", STAGES), ("environment", ENVIRONMENT)):
        # Metadata only: one that cannot be read is left out of the report (the benchmark rebuilds it).
        setattr(inputs, attr, read_json_or_none(root / name, expect=dict))
    if (root / LOSSES).is_file():
        inputs.labels = {d["spec"]: d.get("label") or short_label(d["spec"]) for d in _read_json(root / LOSSES)}
    _unique_labels(inputs)
    return inputs


def _search_dirs(folder: Path) -> list[tuple[int, Path]]:
    """The search<k>/ run directories (holding a history.csv) of an evolution folder, by k."""
    found = []
    for path in folder.glob("search*/history.csv"):
        match = SEARCH_DIR.fullmatch(path.parent.name)
        if match:
            found.append((int(match.group(1)), path.parent))
    return sorted(found)


def _is_searches(folder: Path) -> bool:
    """Whether an evolution folder holds several searches (searches.csv, or search<k>/ run directories
    without a history.csv of its own)."""
    return (folder / "searches.csv").is_file() or (
        not (folder / "history.csv").is_file() and bool(_search_dirs(folder))
    )


def _read_evolutions(root: Path) -> list[EvolutionInputs]:
    """evolve/ (a plain [evolve] table) and every evolve/<NAME>/ that holds a history.csv, or (with
    `[evolve] searches = K`) search<k>/ run directories; a search<k>/ folder of evolve/ itself is one of its
    searches, not a named evolution."""
    evolve = root / "evolve"
    folders = [("", evolve)]
    if evolve.is_dir():
        plain_searches = _is_searches(evolve)
        for sub in sorted(p for p in evolve.iterdir() if p.is_dir()):
            if plain_searches and SEARCH_DIR.fullmatch(sub.name):
                continue
            if (sub / "history.csv").is_file() or _is_searches(sub):
                folders.append((sub.name, sub))
    out = []
    for name, folder in folders:
        rel = folder.relative_to(root).as_posix()
        if _is_searches(folder):
            evo = _read_searches(name, folder, rel)
            if evo is not None:
                out.append(evo)
            continue
        if not (folder / "history.csv").is_file():
            continue
        history, reevaluation, best = _read_run(folder)
        out.append(EvolutionInputs(name, rel, history, reevaluation, best))
    return out


def _read_run(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any] | None]:
    """history.csv (checked whole), reevaluation.csv and best_loss.json of one evolution run directory."""
    history = _read_evolution_view(folder / "history.csv", "candidates", ("generation", "index", "status"))
    if (folder / "generations.csv").is_file():
        _read_evolution_view(folder / "generations.csv", "generations", ("generation",))
    reevaluation = _read_csv(folder / "reevaluation.csv") if (folder / "reevaluation.csv").is_file() else None
    best = _read_json(folder / "best_loss.json") if (folder / "best_loss.json").is_file() else None
    return history, reevaluation, best


def read_searches(folder: str | Path) -> EvolutionInputs | None:
    """One evolution folder of several searches (evolve/<name>/ with search<k>/ run directories) read as a
    report reads it, every file checked whole; its `folder` and each search's are paths as given. None when
    no search has a history yet."""
    folder = Path(folder)
    return _read_searches(folder.name, folder, folder.as_posix())


def _read_searches(name: str, folder: Path, rel: str) -> EvolutionInputs | None:
    """An evolution with several searches: every search<k>/ run directory, searches.csv, searches.json and
    the chosen search's best_loss.json; None when no search has a history yet."""
    searches = []
    for index, sub in _search_dirs(folder):
        history, reevaluation, best = _read_run(sub)
        config = read_json_or_none(sub / "config.json", expect=dict)
        searches.append(SearchInputs(index, f"{rel}/{sub.name}", history, reevaluation, best, config))
    if not searches:
        return None
    history = pd.concat([s.history.assign(search=s.index) for s in searches], ignore_index=True)
    reevals = [s.reevaluation.assign(search=s.index) for s in searches if s.reevaluation is not None]
    evo = EvolutionInputs(
        name,
        rel,
        history,
        pd.concat(reevals, ignore_index=True) if reevals else None,
        _read_json(folder / "best_loss.json") if (folder / "best_loss.json").is_file() else None,
        searches,
    )
    if (folder / "searches.csv").is_file():
        evo.searches_table = _read_csv(folder / "searches.csv")
    evo.agreement = read_json_or_none(folder / "searches.json", expect=dict)
    return evo


def _read_evolution_view(path: Path, records: str, keys: tuple[str, ...]) -> pd.DataFrame:
    """An evolution's CSV view (history.csv, generations.csv) checked whole: a file cut short (no final
    newline, rows missing their key columns, fewer rows than evaluations.json holds `records` of) is a
    one-line `StateFileError` naming it and the fix, never a report with wrong counts."""

    fix = (
        "re-run the evolve stage (robust-glo benchmark SUITE --out DIR, or robust-glo evolve --resume --out "
        f"{str(path.parent)!r}): it rebuilds the file from evaluations.json"
    )
    text = path.read_text(errors="replace")
    frame = _read_csv(path)
    problem = None
    if not text.endswith("\n"):
        problem = "cut short: no final newline"
    elif any(k not in frame.columns for k in keys):
        problem = f"lacks column(s) {', '.join(k for k in keys if k not in frame.columns)}"
    elif frame[list(keys)].isna().any().any():
        problem = "a row lacks its " + "/".join(keys)
    else:
        stored = read_json_or_none(path.parent / "evaluations.json", expect=dict)
        expected = len(stored.get(records, [])) if isinstance(stored, dict) else None
        if expected is not None and len(frame) != expected:
            problem = f"{len(frame)} rows, but evaluations.json holds {expected} {records}"
    if problem:
        raise StateFileError(f"{str(path)!r} is damaged ({problem}); {fix}")
    return frame


def _unique_labels(inputs: ReportInputs) -> None:
    """Make display labels unique: two specs that shorten alike get " #2", " #3"..."""
    chosen: dict[str, str] = {}
    for spec in dict.fromkeys(inputs.losses + [str(a.get("spec", "")) for a in inputs.analysis]):
        label, k = inputs.label(spec), 1
        while (label if k == 1 else f"{label} #{k}") in chosen.values():
            k += 1
        chosen[spec] = label if k == 1 else f"{label} #{k}"
    inputs.labels = {**inputs.labels, **chosen}


def copy_inputs(src: str | Path, dst: str | Path) -> list[Path]:
    """Copy the report inputs of benchmark folder `src` into `dst` (so that `robust-glo report dst`
    rebuilds the report there, without the weights and run directories); returns the files copied."""
    import shutil

    src, dst = Path(src), Path(dst)
    if not (src / RESULTS).is_file():
        raise ConfigError(f"{str(src)!r} holds no {RESULTS}; nothing to report")
    copied = []
    for pattern in INPUT_PATTERNS:
        for path in sorted(src.glob(pattern)):
            target = dst / path.relative_to(src)
            if target in copied:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            copied.append(target)
    return copied
