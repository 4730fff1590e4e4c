"""Multi-loss, multi-seed robustness comparisons: train (or reuse) every network, attack it (or reuse its
evaluation), gather and summarize. The folder layout is `robust_glo.comparison.layout`'s."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from robust_glo.comparison import layout
from robust_glo.comparison.config import CompareConfig
from robust_glo.comparison.store import (
    EvaluationFiles,
    _read_json,
    _write_csv,
    _write_json,
    diverged_rows,
    evaluate_and_store,
    stored_evaluation,
)
from robust_glo.comparison.transfer import store_crafted, transfer_diagnostics
from robust_glo.comparison.user_models import load_user_model
from robust_glo.data import load_dataset
from robust_glo.errors import ConfigError
from robust_glo.robustness.checks import FLAG_COLUMNS, describe_flags
from robust_glo.robustness.diagnostics import DIAGNOSTIC_COLUMNS
from robust_glo.robustness.outcomes import OUTCOME_COLUMNS
from robust_glo.robustness.statistics import summarize
from robust_glo.training import TrainConfig, load_trained_model, train_run
from robust_glo.training.run import is_finished
from robust_glo.utils import resolve_device, run_metadata


@dataclass
class Comparison:
    results: pd.DataFrame
    flags: pd.DataFrame
    summary: pd.DataFrame
    out_dir: Path
    log: list[str]
    outcomes: pd.DataFrame | None = None
    diagnostics: pd.DataFrame | None = None


# What a piece's line says when both its training and its evaluation were found on disk (an executor that
# computed the piece itself, elsewhere, rewrites it: benchmark/executors.py).
REUSED_PIECE = "reused training and evaluation"


def _headline(rows: pd.DataFrame) -> str:
    parts = []
    for r in rows.itertuples():
        if r.attack != "clean" and r.eps == 0:
            continue
        parts.append(f"{r.attack}@{r.eps:g} {r.accuracy:.3f}" if r.attack != "clean" else f"clean {r.accuracy:.3f}")
    reliable = bool(rows["reliable"].all())
    return ", ".join(parts) + ("" if reliable else f"  UNRELIABLE: {rows['flags'].iloc[0]}")


def run_comparison(
    config: CompareConfig, out_dir: str | Path, *, progress: bool = False, echo: Callable[[str], None] | None = None
) -> Comparison:
    """Train each loss on each seed (reusing finished runs in `out_dir`), evaluate each model's robustness
    on the test split (reusing finished evaluations), and write results.csv, flags.csv, summary.csv."""
    echo = echo or _echo
    config = config.validated()
    out = Path(out_dir)
    splits, attacked = start_comparison(config, out)
    pieces, log = [], []
    for loss in config.losses:
        for seed in config.seeds:
            files, line = compute_piece(config, out, loss, seed, splits, attacked, progress=progress)
            echo(piece_report(line, files))
            log.append(line)
            pieces.append(files)
    return finish_comparison(config, out, attacked, pieces, log, echo)


def start_comparison(config: CompareConfig, out: Path) -> tuple[Any, Any]:
    """Load the splits of a (validated) comparison and write its config.json and environment.json into
    `out`; returns `(splits, attacked)` as `comparison_splits` does."""
    # Training reports accuracy on the whole test split, so changing --test-size never retrains; the
    # attacks run on the seeded test subset.
    splits, attacked = comparison_splits(config)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", dataclasses.asdict(config))
    _write_json(
        out / "environment.json",
        run_metadata(attack_seed=config.attack_seed, **{f"seed{i}": s for i, s in enumerate(config.seeds)})
        | {"data_source": splits.source},
    )
    return splits, attacked


def piece_report(line: str, files: EvaluationFiles) -> str:
    """What the comparison prints for one finished piece: its log line and its headline accuracies."""
    rows = files.rows
    return f"{line}\n    {_headline(rows) if rows['accuracy'].notna().any() else 'no accuracies'}"


def finish_comparison(
    config: CompareConfig,
    out: Path,
    attacked: Any,
    pieces: list[EvaluationFiles],
    log: list[str],
    echo: Callable[[str], None],
) -> Comparison:
    """The comparison's gather once every piece is evaluated (`pieces`, in loss-then-seed order): the
    transfer diagnostic over the pieces, then results.csv, flags.csv, outcomes.csv, diagnostics.csv and
    summary.csv in `out`."""
    results = pd.concat([p.rows for p in pieces], ignore_index=True)
    outcomes = _gather([p.outcomes for p in pieces], ["loss", "seed", "dataset", "model"] + OUTCOME_COLUMNS)
    transfer = transfer_diagnostics(config, out, attacked, results, outcomes, echo=echo)
    return _finish(out, pieces, log, echo, transfer)


def piece_finished(config: CompareConfig, out: Path, loss: str, seed: int, *, evaluate: bool) -> bool:
    """Whether the (loss, seed) piece is on disk already, what `compute_piece` would reuse: its finished
    training run (`training.run.is_finished`), and with `evaluate` its evaluation stored with the piece's
    evaluation key (`store.stored_evaluation`)."""
    train_cfg = config.train_config(loss, seed)
    run_dir = layout.run_dir(out, loss, seed)
    if evaluate:
        return stored_evaluation(run_dir, config.piece_key(train_cfg)) is not None
    return is_finished(run_dir, train_cfg.resolved())


def compute_piece(
    config: CompareConfig,
    out: Path,
    loss: str,
    seed: int,
    splits,
    attacked,
    *,
    progress: bool = False,
    evaluate: bool = True,
) -> tuple[EvaluationFiles | None, str]:
    """One (loss, seed) piece: train it (or reuse its run directory), then evaluate it (or reuse the stored
    evaluation made with the same key). Returns its evaluation files and a log line; with `evaluate=False`
    only trains (the files are None then)."""
    train_cfg = config.train_config(loss, seed)
    run_dir = layout.run_dir(out, loss, seed)
    ident = {"loss": loss, "seed": seed, "dataset": config.dataset, "model": train_cfg.model}
    run_key = config.piece_key(train_cfg)
    stored = stored_evaluation(run_dir, run_key) if evaluate else None
    if stored is not None:
        files = stored
        line = f"{loss} seed {seed}: {REUSED_PIECE} ({run_dir})"
    else:
        result = train_run(train_cfg, run_dir, splits=splits, progress=progress)
        trained = "reused training" if result.reused else f"trained in {result.seconds:.0f}s"
        if not evaluate:
            return None, f"{loss} seed {seed}: {trained} ({result.status})"
        if result.status != "ok":
            files = EvaluationFiles(
                diverged_rows({**ident, "status": "diverged"}, config),
                pd.DataFrame(columns=["loss", "seed"] + FLAG_COLUMNS),
                pd.DataFrame(columns=["loss", "seed", "dataset", "model"] + OUTCOME_COLUMNS),
                pd.DataFrame(columns=["loss", "seed"] + DIAGNOSTIC_COLUMNS),
            )
            line = f"{loss} seed {seed}: diverged ({result.metrics.get('message', '')}); no evaluation"
        else:
            files = evaluate_and_store(
                result.model,
                attacked,
                {**ident, "status": "ok"},
                run_dir,
                config,
                run_key,
                progress=progress,
                train_loss=loss,
            )
            line = f"{loss} seed {seed}: {trained}, evaluated in {files.seconds:.0f}s"
            line += craft_transfer(config, out, loss, seed, result.model, attacked, files.rows)
    if "status" not in files.rows:
        files.rows.insert(4, "status", "ok")
    return files, line


def craft_transfer(
    config: CompareConfig, out: Path, loss: str, seed: int, model: nn.Module, attacked: Any, rows: pd.DataFrame
) -> str:
    """On the transfer source's network of `seed` (`loss` is `config.transfer_from`), craft and store its
    transfer examples from the attacked split (`attacked.images` `(N, C, H, W)`); returns what to add to the
    piece's log line ("" when nothing was crafted, or when `loss` is not the source)."""
    if loss != config.transfer_from or len(config.losses) < 2:
        return ""
    # The transfer examples are crafted here, on the source network, in parallel with the other pieces;
    # the transfer diagnostic then only runs forward passes (transfer.py).
    t0 = time.perf_counter()
    if store_crafted(config, out, seed, model, attacked, rows, resolve_device(config.device)):
        return f"; transfer examples crafted in {time.perf_counter() - t0:.0f}s"
    return ""


def comparison_splits(config: CompareConfig):
    """The splits a comparison trains on and the test images it attacks."""
    probe = config.train_config(config.losses[0], config.seeds[0])
    splits = load_dataset(config.dataset, root=config.data_root, **probe.recipe.split_options())
    attacked = load_dataset(
        config.dataset, root=config.data_root, test_size=config.test_size, **probe.recipe.split_options()
    ).test
    return splits, attacked


def evaluate_existing(
    config: CompareConfig,
    out_dir: str | Path,
    *,
    checkpoints: list[str] = (),
    user_models: list[str] = (),
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
) -> Comparison:
    """Evaluate finished run directories (`checkpoints`) and user models (`module:callable`) without
    training. A checkpoint's dataset, loss and seed come from its config.json; a user model is evaluated
    on `config.dataset` and reported with its spec as the loss."""
    echo = echo or _echo
    if not checkpoints and not user_models:
        raise ConfigError("give --checkpoint DIR or --user-model module:callable to evaluate without training")
    config = dataclasses.replace(config, losses=["ce"], transfer_from=None).validated()
    for ckpt in checkpoints:
        if not (Path(ckpt) / "config.json").is_file() or not (Path(ckpt) / "model.pt").is_file():
            raise ConfigError(f"checkpoint {ckpt!r} is not a finished training run (needs config.json and model.pt)")
    users = {spec: load_user_model(spec) for spec in user_models}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(
        out / "config.json",
        {
            **dataclasses.asdict(config),
            "losses": None,
            "checkpoints": list(checkpoints),
            "user_models": list(user_models),
        },
    )
    _write_json(out / "environment.json", run_metadata(attack_seed=config.attack_seed))
    key = config.evaluation_key()
    pieces, log = [], []
    device = resolve_device(config.device)
    for ckpt in checkpoints:
        run_dir = Path(ckpt)
        train_cfg = TrainConfig.from_dict(_read_json(run_dir / "config.json")).resolved()
        weights = hashlib.sha1((run_dir / "model.pt").read_bytes()).hexdigest()
        run_key = {**key, "train": train_cfg.to_dict(), "weights_sha1": weights}
        where = layout.checkpoint_dir(out, run_dir)
        ident = {
            "loss": train_cfg.loss,
            "seed": train_cfg.seed,
            "dataset": train_cfg.dataset,
            "model": train_cfg.model,
            "status": "ok",
        }
        files = stored_evaluation(where, run_key)
        if files is not None:
            line = f"{ckpt}: reused evaluation"
        else:
            splits = load_dataset(
                train_cfg.dataset,
                root=config.data_root or train_cfg.data_root,
                test_size=config.test_size or train_cfg.test_size,
                **train_cfg.recipe.split_options(),
            )
            model = load_trained_model(run_dir, device)
            files = evaluate_and_store(
                model, splits.test, ident, where, config, run_key, progress=progress, train_loss=train_cfg.loss
            )
            line = f"{ckpt} ({train_cfg.loss}, seed {train_cfg.seed}): evaluated in {files.seconds:.0f}s"
        echo(f"{line}\n    {_headline(files.rows)}")
        log.append(line)
        pieces.append(files)
    if user_models:
        splits = load_dataset(config.dataset, root=config.data_root, test_size=config.test_size)
        for spec, model in users.items():
            ident = {"loss": spec, "seed": 0, "dataset": config.dataset, "model": "user", "status": "ok"}
            files = evaluate_and_store(
                model, splits.test, ident, layout.user_dir(out, spec), config, key, progress=progress
            )
            line = f"{spec}: evaluated in {files.seconds:.0f}s"
            echo(f"{line}\n    {_headline(files.rows)}")
            log.append(line)
            pieces.append(files)
    return _finish(out, pieces, log, echo)


def _echo(line: str) -> None:
    print(line, flush=True)  # progress shows up at once even when stdout is a file


def _gather(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    found = [f for f in frames if f is not None and len(f)]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=columns)


def _finish(
    out: Path,
    pieces: list[EvaluationFiles],
    log: list[str],
    echo: Callable[[str], None],
    transfer: pd.DataFrame | None = None,
) -> Comparison:
    results = pd.concat([p.rows for p in pieces], ignore_index=True)
    flags = _gather([p.flags for p in pieces], ["loss", "seed"] + FLAG_COLUMNS)
    outcomes = _gather([p.outcomes for p in pieces], ["loss", "seed", "dataset", "model"] + OUTCOME_COLUMNS)
    diagnostics = _gather([p.diagnostics for p in pieces] + [transfer], ["loss", "seed"] + DIAGNOSTIC_COLUMNS)
    summary = summarize(results, outcomes=outcomes, group_by=("dataset", "model", "attack", "eps"))
    _write_csv(out / "results.csv", results)
    _write_csv(out / "flags.csv", flags)
    _write_csv(out / "outcomes.csv", outcomes)
    _write_csv(out / "diagnostics.csv", diagnostics)
    _write_csv(out / "summary.csv", summary)
    unreliable = results[~results["reliable"].astype(bool) & (results["status"] == "ok")][["loss", "seed"]]
    for r in unreliable.drop_duplicates().itertuples():
        f = flags[(flags["loss"] == r.loss) & (flags["seed"] == r.seed)]
        echo(f"{r.loss} seed {r.seed}:\n" + "\n".join("    " + line for line in describe_flags(f).splitlines()))
    return Comparison(results, flags, summary, out, log, outcomes, diagnostics)


def summary_table(summary: pd.DataFrame) -> str:
    """A compact text table: mean accuracy ± CI half-width per loss (rows) and attack@eps (columns), with
    the p-value against the first loss adjusted for the comparisons shown (`*`: significant)."""
    rows: dict[str, dict[str, str]] = {}
    for r in summary.itertuples():
        if r.attack != "clean" and r.eps == 0:
            continue
        column = "clean" if r.attack == "clean" else f"{r.attack}@{r.eps:g}"
        half = (r.ci_high - r.ci_low) / 2 if not math.isnan(r.ci_high) else math.nan
        text = f"{r.mean:.3f}" + ("" if math.isnan(half) else f"±{half:.3f}")
        if bool(r.compared) and not math.isnan(r.p_adjusted):
            text += f" p_adj={r.p_adjusted:.3f}" + ("*" if bool(r.significant) else "")
        if not r.reliable:
            text += " !"
        rows.setdefault(str(r.loss), {})[column] = text
    frame = pd.DataFrame.from_dict(rows, orient="index")
    return frame.to_string()
