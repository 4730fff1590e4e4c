"""`card.json`: a machine-readable card per evaluated network, in the spirit of RobustBench's per-model JSON.

Written next to a network's evaluation files (`robust_glo.comparison.layout`) whenever its evaluation is
stored or reused, so an older comparison folder gains its cards on a re-run. Everything on the card comes
from files already on disk: the evaluation (`evaluation.csv`, `evaluation_flags.csv`,
`evaluation_diagnostics.csv`, `evaluation_outcomes.csv`, `evaluation.json`) and the training run
(`config.json` through the evaluation's key, `metrics.json`, `environment.json`), plus the loss's
effective target p* from `robust_glo.analysis` (comparison sits above analysis in the pipeline, and
analysis imports nothing of robustness or comparison, so there is no cycle). The fields are documented in
docs/results.md ("card.json"); `SCHEMA` changes whenever a field changes meaning or goes away.

>>> from robust_glo.comparison.cards import read_cards
>>> cards = read_cards("runs/quick")   # every card under the folder, each with its "path"
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from robust_glo.analysis import analyze_loss
from robust_glo.comparison import layout
from robust_glo.losses import display_name as loss_display_name
from robust_glo.robustness.attacks import display_name as attack_display_name
from robust_glo.robustness.attacks.coverage import coverage_from_results
from robust_glo.robustness.diagnostics import ALL_BUDGETS, BLOCKING, PER_NORM
from robust_glo.robustness.threat import ThreatModel
from robust_glo.utils import atomic_write_text, read_json_or_none
from robust_glo.utils.metadata import code_version, library_versions

CARD_FILE = "card.json"
SCHEMA = 1

# Training config keys that say which network it is or how the run executed, not how it was trained.
_NOT_RECIPE = frozenset(
    {"loss", "dataset", "model", "seed", "device", "data_root", "test_size", "checkpoint_every", "eval_batch_size"}
)
_METRICS = ("status", "steps", "budget_steps", "val_accuracy", "n_val", "test_accuracy", "n_test", "seconds")

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """`value` as plain JSON: numpy scalars unwrapped, NaN and infinities as None, containers recursed."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_cell(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _read(path: Path) -> dict[str, Any] | None:
    data = read_json_or_none(path, expect=dict) if path.is_file() else None
    return data if isinstance(data, dict) else None


def training_dir(where: Path) -> Path | None:
    """The training run directory of the network whose evaluation files are in `where`: `where` itself for
    a comparison's own runs; for `robust-glo evaluate --checkpoint DIR` (files in checkpoints/<slug>/) the
    DIR that the comparison's config.json lists; None for a user model or when it cannot be found."""
    if (where / "metrics.json").is_file():
        return where
    if where.parent.name != "checkpoints":
        return None
    config = _read(where.parent.parent / "config.json") or {}
    for checkpoint in config.get("checkpoints") or []:
        try:
            if layout.checkpoint_dir(where.parent.parent, checkpoint).resolve() == where.resolve():
                return Path(checkpoint)
        except (OSError, TypeError, ValueError):
            continue
    return None


def _loss_section(spec: str | None, n_classes: Any) -> dict[str, Any] | None:
    """The loss's spec, display name and analysis (p*); None for a network without a training loss."""
    if spec is None:
        return None
    out: dict[str, Any] = {
        "spec": spec,
        "name": loss_display_name(spec),
        "n_classes": n_classes,
        "effective_target": None,
        "label_smoothing_equivalent": None,
        "analysis_warnings": [],
        "analysis_error": None,
    }
    try:
        analysis = analyze_loss(spec, int(n_classes))
    except Exception as exc:  # a user loss that no longer loads, a class count missing: say so on the card
        out["analysis_error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        return out
    out["effective_target"] = analysis.effective_target
    out["label_smoothing_equivalent"] = analysis.label_smoothing_equivalent
    out["analysis_warnings"] = list(analysis.warnings)
    return out


def _training_section(train: dict[str, Any] | None, run: Path | None, where: Path) -> dict[str, Any] | None:
    if train is None:
        return None
    metrics = _read(run / "metrics.json") if run is not None else None
    environment = _read(run / "environment.json") if run is not None else None
    out: dict[str, Any] = {
        "seed": train.get("seed"),
        "recipe": {k: v for k, v in train.items() if k not in _NOT_RECIPE},
    }
    out.update({k: (metrics or {}).get(k) for k in _METRICS})
    out["device"] = (metrics or {}).get("device")
    out["code_version"] = (environment or {}).get("code_version")
    # "." for a comparison's own run (the card sits in it); an evaluated checkpoint's directory as given
    out["run_dir"] = None if run is None else "." if run == where else str(run)
    return out


def _coverage(row: Any, params: dict[str, Any], rows: pd.DataFrame, n_classes: Any) -> tuple[bool, list, list]:
    """(verified, attacks behind the worst case, missing components) of one worst-case row: from its
    `params` (`autoattack`, `over`, `missing`), or recomputed from the attack rows for a row without them."""
    if "autoattack" in params:
        return bool(params["autoattack"]), list(params.get("over") or []), list(params.get("missing") or [])
    threat = ThreatModel.parse(str(row.norm))
    try:
        found = coverage_from_results(rows[rows["attack"] != "clean"], int(n_classes)).get((threat, float(row.eps)))
    except Exception:  # an unreadable class count: nothing is verified
        found = None
    if found is None:
        return False, list(params.get("over") or []), []
    return found.verified, list(found.ran), list(found.missing)


def _budget_diagnostics(diagnostics: pd.DataFrame, norm: str, eps: float) -> dict[str, str]:
    """Each diagnostic's status that speaks for (norm, eps): its own rows, `unbounded` of the norm and
    `gradients` (every budget)."""
    out: dict[str, str] = {}
    for r in diagnostics.itertuples():
        if r.check in ALL_BUDGETS:
            applies = True
        elif r.check in PER_NORM:
            applies = str(r.norm) == norm
        else:
            applies = str(r.norm) == norm and not pd.isna(r.eps) and math.isclose(float(r.eps), eps)
        if applies:
            status = str(r.status)
            # Several rows of one check (none today): the worst status speaks.
            out[r.check] = status if out.get(r.check) in (None, "pass") else out[r.check]
    return out


def _robustness(rows: pd.DataFrame, diagnostics: pd.DataFrame, n_classes: Any) -> list[dict[str, Any]]:
    worst_labels = ("worst", "worst:l2")
    blocking = [c for c in BLOCKING if c != "transfer"]  # transfer is judged across networks, not here
    out = []
    for r in rows[rows["attack"].isin(worst_labels)].itertuples():
        eps = float(r.eps)
        if eps == 0:
            continue  # the worst case at no budget is the clean accuracy
        params = _json_cell(r.params)
        verified, over, missing = _coverage(r, params, rows, n_classes)
        same = rows[
            ~rows["attack"].isin(("clean",) + worst_labels)
            & (rows["norm"].astype(str) == str(r.norm))
            & (rows["eps"].astype(float).sub(eps).abs() < 1e-12)
        ]
        diag = _budget_diagnostics(diagnostics, str(r.norm), eps)
        out.append(
            {
                "threat_model": str(r.norm),
                "eps": eps,
                "n": r.n,
                "correct": r.correct,
                "robust_accuracy": r.accuracy,
                "autoattack_verified": verified,
                "autoattack_robust_accuracy": r.accuracy if verified else None,
                "attacks": over,
                "attack_names": [attack_display_name(a) for a in over],
                "missing": missing,
                "per_attack": {str(a.attack): a.accuracy for a in same.itertuples()},
                "diagnostics": diag,
                "diagnostics_passed": all(diag.get(c) == "pass" for c in blocking),
            }
        )
    out.sort(key=lambda e: (e["threat_model"] != "Linf", e["threat_model"], e["eps"]))
    return out


def build_card(
    where: Path,
    rows: pd.DataFrame,
    flags: pd.DataFrame,
    diagnostics: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    record: dict[str, Any],
) -> dict[str, Any]:
    """The card of the network whose evaluation (its rows, flags, diagnostics, outcomes and the
    `evaluation.json` record) is stored in `where`."""
    key = record.get("key") if isinstance(record.get("key"), dict) else {}
    train = key.get("train") if isinstance(key.get("train"), dict) else None
    first = rows.iloc[0]
    n_classes = record.get("n_classes")
    run = training_dir(where) if train is not None else None
    kind = "user model" if train is None else ("checkpoint" if where.parent.name == "checkpoints" else "trained")
    training = _training_section(train, run, where)
    clean = rows[rows["attack"] == "clean"]
    full_split = None if train is None else train.get("test_size") is None
    recorded = "code_version" in record
    card = {
        "schema": SCHEMA,
        "network": {
            "kind": kind,
            "loss": first["loss"],
            "seed": first["seed"],
            "dataset": first["dataset"],
            "model": first["model"],
        },
        "loss": _loss_section(train.get("loss") if train is not None else None, n_classes),
        "training": training,
        "clean_accuracy": {
            "test_split": (training or {}).get("test_accuracy"),
            "n_test": (training or {}).get("n_test"),
            "full_split": full_split,
            "attacked": clean["accuracy"].iloc[0] if len(clean) else None,
            "n_attacked": clean["n"].iloc[0] if len(clean) else None,
            "images": None if outcomes is None or outcomes.empty else str(outcomes["images"].iloc[0]),
        },
        "evaluation": {
            "protocol": key.get("protocol"),
            "attacks": key.get("attacks"),
            "eps": key.get("eps"),
            "eps_l2": key.get("eps_l2", []),
            "test_size": key.get("test_size"),
            "attack_seed": key.get("attack_seed"),
            "n_classes": n_classes,
            "seconds": record.get("seconds"),
        },
        "robustness": _robustness(rows, diagnostics, n_classes),
        "diagnostics": [
            {c: getattr(r, c) for c in ("check", "norm", "eps", "status", "value", "threshold", "n", "detail")}
            for r in diagnostics.itertuples()
        ],
        "reliability": {
            "reliable": bool(rows["reliable"].astype(str).str.lower().eq("true").all()),
            "failed": sorted(flags.loc[flags["status"] == "fail", "check"].astype(str)) if len(flags) else [],
            "checks": [
                {c: getattr(r, c) for c in ("check", "status", "value", "threshold", "detail")}
                for r in flags.itertuples()
            ],
        },
        # The code and libraries that ran the evaluation (recorded in evaluation.json since cards exist);
        # for an evaluation stored before, those of the process that reused it and wrote this card.
        "code_version": record.get("code_version") if recorded else code_version(),
        "versions": record.get("versions") if recorded else library_versions(),
        "software_recorded_by": "evaluation" if recorded else "card",
    }
    for section in (card["diagnostics"], card["reliability"]["checks"]):
        for entry in section:
            for k in ("norm", "detail"):
                if k in entry and (entry[k] is None or (isinstance(entry[k], float) and math.isnan(entry[k]))):
                    entry[k] = None if k == "norm" else ""
    return _plain(card)


def write_card(
    where: Path,
    rows: pd.DataFrame,
    flags: pd.DataFrame,
    diagnostics: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    record: dict[str, Any],
) -> Path | None:
    """Write `where/card.json` atomically (left untouched when its content is the same, so a reused
    evaluation changes no file); returns its path, or None (with a logged warning) when the card could not
    be built: a card is a view of the evaluation and never fails it."""
    path = where / CARD_FILE
    try:
        text = json.dumps(build_card(where, rows, flags, diagnostics, outcomes, record), indent=2) + "\n"
        try:
            if path.read_text() == text:
                return path
        except (OSError, UnicodeDecodeError):
            pass
        return atomic_write_text(path, text)
    except Exception as exc:  # see the docstring
        log.warning("could not write %s: %s: %s", where / CARD_FILE, type(exc).__name__, exc)
        return None


def read_cards(root: str | Path) -> list[dict[str, Any]]:
    """Every card.json under `root` (sorted by path), each with its path relative to `root` as "path".
    A card that cannot be read, or whose `schema` is newer than this code's, is skipped with a warning."""
    root = Path(root)
    cards = []
    for path in sorted(root.rglob(CARD_FILE)):
        try:
            card = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("skipping %s: %s", path, exc)
            continue
        if not isinstance(card, dict) or not isinstance(card.get("schema"), int) or card["schema"] > SCHEMA:
            log.warning("skipping %s: not a card of schema <= %d", path, SCHEMA)
            continue
        card["path"] = str(path.relative_to(root))
        cards.append(card)
    return cards
