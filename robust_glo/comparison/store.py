"""Evaluation files of one network: written atomically, read back only when made with the same key."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from robust_glo.comparison.cards import write_card
from robust_glo.comparison.config import CompareConfig
from robust_glo.comparison.layout import DIAGNOSTICS_FILE, EVAL_FILE, EVAL_META, FLAGS_FILE, OUTCOMES_FILE
from robust_glo.errors import RobustGloError
from robust_glo.robustness import RESULT_COLUMNS, Evaluation, run_evaluation
from robust_glo.robustness.attacks import ThreatModel, parse_attack
from robust_glo.robustness.checks import read_flags
from robust_glo.robustness.diagnostics import read_diagnostics, run_diagnostics
from robust_glo.robustness.outcomes import image_fingerprint, outcome_rows
from robust_glo.training.recipe import without_execution_options
from robust_glo.training.run import RETRAIN
from robust_glo.utils import atomic_write_json, atomic_write_text, read_json, resolve_device
from robust_glo.utils.metadata import code_version, library_versions


def _read_json(path: Path) -> Any:
    """A JSON object a run wrote; one that cannot be read is a one-line `StateFileError` naming it (callers
    that can redo what it records catch it: an evaluation's record; a checkpoint's config.json cannot)."""
    return read_json(path, expect=dict, fix=RETRAIN)


def _write_json(path: Path, data: Any) -> None:
    atomic_write_json(path, data)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


@dataclass
class EvaluationFiles:
    """One network's evaluation as stored: its rows (identity columns + RESULT_COLUMNS), reliability flags,
    per-image outcomes and diagnostics (`robust_glo.robustness.diagnostics`), and the seconds it took."""

    rows: pd.DataFrame
    flags: pd.DataFrame
    outcomes: pd.DataFrame
    diagnostics: pd.DataFrame
    seconds: float = 0.0


def stored_evaluation(where: Path, key: dict[str, Any]) -> EvaluationFiles | None:
    """The stored evaluation in `where` if it was made with exactly `key` (None otherwise, or when a file
    of it is missing or cannot be read: it is then redone)."""
    meta, table, flags, outcomes = where / EVAL_META, where / EVAL_FILE, where / FLAGS_FILE, where / OUTCOMES_FILE
    diagnostics = where / DIAGNOSTICS_FILE
    if not all(p.is_file() for p in (meta, table, flags, outcomes, diagnostics)):
        return None
    try:
        record = _read_json(meta)
        if not isinstance(record, dict) or _identity(record.get("key")) != _identity(key):
            return None
        files = EvaluationFiles(
            pd.read_csv(table, keep_default_na=False, na_values=["", "NaN", "nan"]),
            read_flags(flags),
            pd.read_csv(outcomes, dtype={"bits": str, "images": str}),
            read_diagnostics(diagnostics),
            float(record.get("seconds") or 0.0),
        )
    except (OSError, ValueError, RobustGloError):
        return None
    _card(where, files, record)  # a reused evaluation gets (or refreshes) its card.json too
    return files


def _card(where: Path, files: EvaluationFiles, record: dict[str, Any]) -> None:
    write_card(where, files.rows, files.flags, files.diagnostics, files.outcomes, record)


def _identity(key: Any) -> Any:
    """An evaluation key without the training run's execution options (an eval batch size changes no result)."""
    if not isinstance(key, dict) or not isinstance(key.get("train"), dict):
        return key
    return {**key, "train": without_execution_options(key["train"])}


def with_identity(frame: pd.DataFrame, ident: dict[str, Any]) -> pd.DataFrame:
    out = frame.copy()
    for i, (k, v) in enumerate(ident.items()):
        out.insert(i, k, v)
    return out


def evaluate_and_store(
    model: nn.Module,
    test,
    ident: dict[str, Any],
    where: Path,
    config: CompareConfig,
    key: dict[str, Any],
    *,
    progress: bool = False,
    train_loss: str | None = None,
) -> EvaluationFiles:
    """Evaluate `model` on split `test` and run its diagnostics, store the evaluation files in `where`, and
    return them (rows with `ident` columns first), then its card.json (`robust_glo.comparison.cards`).
    `train_loss`: the loss spec the network was trained with
    (for `fgsm:loss=train`; None for a network whose loss is not known)."""
    t0 = time.perf_counter()
    ev = run_evaluation(
        model,
        test.images,
        test.labels,
        config.attacks,
        config.eps,
        progress=progress,
        train_loss=train_loss,
        **config.attack_options(),
    )
    return store_evaluation(model, test, ident, where, config, key, ev, time.perf_counter() - t0)


def store_evaluation(
    model: nn.Module,
    test,
    ident: dict[str, Any],
    where: Path,
    config: CompareConfig,
    key: dict[str, Any],
    ev: Evaluation,
    attack_seconds: float,
    extra: dict[str, Any] | None = None,
) -> EvaluationFiles:
    """The second half of `evaluate_and_store`, for an evaluation `ev` made elsewhere (one member of a
    population, `robust_glo.comparison.population`): run `model`'s diagnostics on split `test`, write the
    evaluation files and card of `where` and return them. `attack_seconds`: what the attacks took (a
    member's share of its population's time); `extra`: more entries for the evaluation record."""
    t0 = time.perf_counter()
    diag = run_diagnostics(
        model,
        test.images,
        test.labels,
        ev,
        config.diagnostic_settings(),
        seed=config.attack_seed,
        batch_size=config.eval_batch_size,
        device=resolve_device(config.device),
    )
    seconds = attack_seconds + time.perf_counter() - t0
    rows = with_identity(ev.results, ident)
    diagnostics = with_identity(diag, {k: ident[k] for k in ("loss", "seed")})
    flags = with_identity(ev.flags, {k: ident[k] for k in ("loss", "seed")})
    outcomes = with_identity(
        outcome_rows(ev.robust, ev.clean_correct, image_fingerprint(test.images, test.labels)),
        {k: ident[k] for k in ("loss", "seed", "dataset", "model")},
    )
    where.mkdir(parents=True, exist_ok=True)
    _write_csv(where / EVAL_FILE, rows)
    _write_csv(where / FLAGS_FILE, flags)
    _write_csv(where / OUTCOMES_FILE, outcomes)
    _write_csv(where / DIAGNOSTICS_FILE, diagnostics)
    record = {
        "key": key,
        "seconds": seconds,
        "attack_seconds": attack_seconds,
        "diagnostics_seconds": seconds - attack_seconds,
        "n_classes": ev.n_classes,
        "zero_grad_share": ev.zero_grad_share,
        "reliable": ev.reliable,
        "code_version": code_version(),
        "versions": library_versions(),
        **(extra or {}),
    }
    _write_json(where / EVAL_META, record)
    files = EvaluationFiles(rows, flags, outcomes, diagnostics, seconds)
    _card(where, files, record)
    return files


def diverged_rows(ident: dict[str, Any], config: CompareConfig) -> pd.DataFrame:
    """Placeholder rows (accuracy NaN) for a run that diverged: statistics skip them, tables show them."""
    # The rows an evaluation would have written: each attack where it runs (min_eps), and a worst case only
    # at the budgets where an attack of its threat model runs.
    specs = {a: parse_attack(a) for a in config.attacks}
    budgets = {ThreatModel.LINF: config.eps, ThreatModel.L2: config.eps_l2}
    rows = [{"attack": "clean", "eps": 0.0, "norm": "Linf"}]
    for a, spec in specs.items():
        rows += [{"attack": a, "eps": e, "norm": spec.threat.display} for e in budgets[spec.threat] if spec.runs_at(e)]
    for threat in ThreatModel:
        same = [s for s in specs.values() if s.threat is threat]
        ran = [e for e in budgets[threat] if any(s.runs_at(e) for s in same)]
        rows += [{"attack": threat.worst_label, "eps": e, "norm": threat.display} for e in ran]
    frame = pd.DataFrame(rows)
    for column in RESULT_COLUMNS:
        if column not in frame:
            frame[column] = math.nan
    frame["reliable"], frame["flags"] = False, "diverged"
    return with_identity(frame[RESULT_COLUMNS], ident)
