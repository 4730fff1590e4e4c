"""Multi-loss, multi-seed robustness comparisons: train (or load) every model, attack it, summarize.

Output directory layout (everything resumable: finished trainings and evaluations are skipped):

    config.json                 the comparison's resolved configuration
    environment.json            library versions, hardware, seeds
    runs/<loss-slug>/seed<k>/   a training run directory (see robust_glo.training.run) plus
        evaluation.csv          its robustness rows (loss, seed, dataset, model + RESULT_COLUMNS)
        evaluation_flags.csv    its reliability checks
        evaluation_outcomes.csv its per-image outcomes (see robust_glo.robustness.outcomes)
        evaluation.json         what the evaluation ran (it is redone when this changes)
    checkpoints/<name>/         the same evaluation files for an existing run directory
    user/<name>/                the same for a user model (always re-evaluated: its code may change)
    results.csv                 every row of every evaluation (tidy, docs/results.md)
    flags.csv                   every check of every evaluation
    outcomes.csv                every per-image outcome of every evaluation
    summary.csv                 per loss x attack x eps: mean, bootstrap interval over seeds and images,
                                difference to the first loss with its interval, raw and Holm-adjusted p
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn

from robust_glo.errors import ConfigError
from robust_glo.robustness.attacks import resolve_attacks
from robust_glo.robustness.checks import (DEFAULT_TOLERANCE, DEFAULT_ZERO_GRAD_THRESHOLD, FLAG_COLUMNS,
                                          describe_flags, read_flags)
from robust_glo.robustness.evaluate import RESULT_COLUMNS, check_eps, run_evaluation
from robust_glo.robustness.outcomes import OUTCOME_COLUMNS, image_fingerprint, outcome_rows
from robust_glo.robustness.statistics import summarize

ID_COLUMNS = ["loss", "seed", "dataset", "model", "status"]
EVAL_FILE, FLAGS_FILE, EVAL_META = "evaluation.csv", "evaluation_flags.csv", "evaluation.json"
OUTCOMES_FILE = "evaluation_outcomes.csv"
# Bumped when an evaluation's meaning changes, so that stored evaluations made before are redone
# (2: attacks in locked eval mode, per-image outcomes, clean predictions re-checked after the attacks).
EVALUATION_PROTOCOL = 2


@dataclass
class CompareConfig:
    """A robustness comparison: every loss trained on every seed, attacked on the test split."""

    losses: list[str] = field(default_factory=lambda: ["ce"])
    dataset: str = "fashion-mnist"
    model: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 1000
    attacks: list[str] = field(default_factory=lambda: ["fgsm", "pgd"])
    eps: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1])
    test_size: int | None = None  # None: the whole test split
    eval_batch_size: int = 500
    attack_seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    tolerance: float = DEFAULT_TOLERANCE
    zero_grad_threshold: float = DEFAULT_ZERO_GRAD_THRESHOLD
    train: dict[str, Any] = field(default_factory=dict)  # further TrainConfig fields (lr, batch_size, ...)

    def validated(self) -> "CompareConfig":
        from robust_glo.losses import get_loss

        if not self.losses:
            raise ConfigError("give at least one loss")
        if len(set(self.losses)) != len(self.losses):
            raise ConfigError(f"a loss is listed twice: {', '.join(self.losses)}")
        for spec in self.losses:
            get_loss(spec)  # a bad spec fails before any training
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"seeds must be distinct integers >= 0, got {self.seeds}")
        attacks = [s.label for s in resolve_attacks(self.attacks)]
        from robust_glo.training import TrainConfig

        own = {"loss", "seed", "steps", "dataset", "model", "test_size", "device", "data_root"}
        valid = sorted({f.name for f in dataclasses.fields(TrainConfig)} - own)
        for key in self.train:
            if key in own:
                raise ConfigError(f"training option {key!r} has its own setting; drop it from the training options")
            if key not in valid:
                raise ConfigError(f"unknown training option {key!r}; valid: {', '.join(valid)}")
        if self.test_size is not None and self.test_size < 1:
            raise ConfigError(f"test_size must be >= 1, got {self.test_size}")
        if self.eval_batch_size < 1:
            raise ConfigError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        return dataclasses.replace(self, attacks=attacks, eps=check_eps(self.eps), losses=list(self.losses),
                                   seeds=list(self.seeds), train=dict(self.train))

    def train_config(self, loss: str, seed: int):
        from robust_glo.training import TrainConfig

        return TrainConfig(loss=loss, dataset=self.dataset, model=self.model, steps=self.steps, seed=seed,
                           device=self.device, data_root=self.data_root,
                           **self.train).resolved()

    def evaluation_key(self) -> dict[str, Any]:
        """What an evaluation depends on besides the model: a stored evaluation with another key is redone."""
        return {"protocol": EVALUATION_PROTOCOL, "attacks": self.attacks, "eps": self.eps, "test_size": self.test_size,
                "batch_size": self.eval_batch_size, "attack_seed": self.attack_seed, "tolerance": self.tolerance,
                "zero_grad_threshold": self.zero_grad_threshold}


@dataclass
class Comparison:
    results: pd.DataFrame
    flags: pd.DataFrame
    summary: pd.DataFrame
    out_dir: Path
    log: list[str]
    outcomes: pd.DataFrame | None = None


def loss_slug(spec: str) -> str:
    """A directory name for a loss spec; long or unusual specs get a hash suffix so names stay unique."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", spec).strip("_")[:40] or "loss"
    return base if base == spec else f"{base}-{hashlib.sha1(spec.encode()).hexdigest()[:8]}"


def _read_json(path: Path) -> Any:
    from robust_glo.utils import read_json

    return read_json(path)


def _write_json(path: Path, data: Any) -> None:
    from robust_glo.utils import atomic_write_json

    atomic_write_json(path, data)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    from robust_glo.utils import atomic_write_text

    atomic_write_text(path, frame.to_csv(index=False))


def _evaluated(where: Path, key: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame] | None:
    """The stored evaluation in `where` (rows, flags, per-image outcomes) if it was made with exactly `key`."""
    meta, table, flags, outcomes = where / EVAL_META, where / EVAL_FILE, where / FLAGS_FILE, where / OUTCOMES_FILE
    if not all(p.is_file() for p in (meta, table, flags, outcomes)):
        return None
    try:
        if _read_json(meta).get("key") != key:
            return None
        return (pd.read_csv(table, keep_default_na=False, na_values=["", "NaN", "nan"]), read_flags(flags),
                pd.read_csv(outcomes, dtype={"bits": str, "images": str}))
    except (OSError, ValueError):
        return None


def _identity(frame: pd.DataFrame, ident: dict[str, Any]) -> pd.DataFrame:
    out = frame.copy()
    for i, (k, v) in enumerate(ident.items()):
        out.insert(i, k, v)
    return out


def evaluate_and_store(model: nn.Module, test, ident: dict[str, Any], where: Path, config: CompareConfig,
                       key: dict[str, Any], *, progress: bool = False
                       ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, float]:
    """Evaluate `model` on split `test`, store the evaluation files in `where`, return the rows (with
    `ident` columns first), the flags, the per-image outcomes and the seconds taken."""
    from robust_glo.utils import resolve_device

    t0 = time.perf_counter()
    ev = run_evaluation(model, test.images, test.labels, config.attacks, config.eps,
                        batch_size=config.eval_batch_size, device=resolve_device(config.device),
                        seed=config.attack_seed, tolerance=config.tolerance,
                        zero_grad_threshold=config.zero_grad_threshold, progress=progress)
    seconds = time.perf_counter() - t0
    rows = _identity(ev.results, ident)
    flags = _identity(ev.flags, {k: ident[k] for k in ("loss", "seed")})
    outcomes = _identity(outcome_rows(ev.robust, ev.clean_correct, image_fingerprint(test.images, test.labels)),
                         {k: ident[k] for k in ("loss", "seed", "dataset", "model")})
    where.mkdir(parents=True, exist_ok=True)
    _write_csv(where / EVAL_FILE, rows)
    _write_csv(where / FLAGS_FILE, flags)
    _write_csv(where / OUTCOMES_FILE, outcomes)
    _write_json(where / EVAL_META, {"key": key, "seconds": seconds, "n_classes": ev.n_classes,
                                    "zero_grad_share": ev.zero_grad_share, "reliable": ev.reliable})
    return rows, flags, outcomes, seconds


def _diverged_rows(ident: dict[str, Any], config: CompareConfig) -> pd.DataFrame:
    """Placeholder rows (accuracy NaN) for a run that diverged: statistics skip them, tables show them."""
    rows = [{"attack": "clean", "eps": 0.0}] + [{"attack": a, "eps": e} for a in config.attacks for e in config.eps]
    rows += [{"attack": "worst", "eps": e} for e in config.eps]
    frame = pd.DataFrame(rows)
    for column in RESULT_COLUMNS:
        if column not in frame:
            frame[column] = math.nan
    frame["norm"], frame["reliable"], frame["flags"] = "Linf", False, "diverged"
    return _identity(frame[RESULT_COLUMNS], ident)


def _headline(rows: pd.DataFrame) -> str:
    parts = []
    for r in rows.itertuples():
        if r.attack != "clean" and r.eps == 0:
            continue
        parts.append(f"{r.attack}@{r.eps:g} {r.accuracy:.3f}" if r.attack != "clean" else f"clean {r.accuracy:.3f}")
    reliable = bool(rows["reliable"].all())
    return ", ".join(parts) + ("" if reliable else f"  UNRELIABLE: {rows['flags'].iloc[0]}")


def run_comparison(config: CompareConfig, out_dir: str | Path, *, progress: bool = False,
                   echo: Callable[[str], None] | None = None) -> Comparison:
    """Train each loss on each seed (reusing finished runs in `out_dir`), evaluate each model's robustness
    on the test split (reusing finished evaluations), and write results.csv, flags.csv, summary.csv."""
    from robust_glo.data import load_dataset
    from robust_glo.training import train_run
    from robust_glo.utils import run_metadata

    echo = echo or _echo
    config = config.validated()
    out = Path(out_dir)
    probe = config.train_config(config.losses[0], config.seeds[0])
    # Training reports accuracy on the whole test split, so changing --test-size never retrains; the
    # attacks run on the seeded test subset.
    splits = load_dataset(config.dataset, root=config.data_root, val_size=probe.val_size,
                          train_fraction=probe.train_fraction, split_seed=probe.split_seed)
    attacked = load_dataset(config.dataset, root=config.data_root, val_size=probe.val_size,
                            test_size=config.test_size, train_fraction=probe.train_fraction,
                            split_seed=probe.split_seed).test
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", dataclasses.asdict(config))
    _write_json(out / "environment.json", run_metadata(attack_seed=config.attack_seed, **{
        f"seed{i}": s for i, s in enumerate(config.seeds)}) | {"data_source": splits.source})
    key = config.evaluation_key()
    all_rows, all_flags, all_outcomes, log = [], [], [], []
    for loss in config.losses:
        for seed in config.seeds:
            train_cfg = config.train_config(loss, seed)
            run_dir = out / "runs" / loss_slug(loss) / f"seed{seed}"
            ident = {"loss": loss, "seed": seed, "dataset": config.dataset, "model": train_cfg.model}
            run_key = {**key, "train": train_cfg.to_dict()}
            stored = _evaluated(run_dir, run_key)
            outcomes = None
            if stored is not None:
                rows, flags, outcomes = stored
                line = f"{loss} seed {seed}: reused training and evaluation ({run_dir})"
            else:
                result = train_run(train_cfg, run_dir, splits=splits, progress=progress)
                trained = "reused training" if result.reused else f"trained in {result.seconds:.0f}s"
                if result.status != "ok":
                    rows = _diverged_rows({**ident, "status": "diverged"}, config)
                    flags = pd.DataFrame(columns=["loss", "seed"] + FLAG_COLUMNS)
                    line = f"{loss} seed {seed}: diverged ({result.metrics.get('message', '')}); no evaluation"
                else:
                    rows, flags, outcomes, sec = evaluate_and_store(result.model, attacked, {**ident, "status": "ok"},
                                                                    run_dir, config, run_key, progress=progress)
                    line = f"{loss} seed {seed}: {trained}, evaluated in {sec:.0f}s"
            if "status" not in rows:
                rows.insert(4, "status", "ok")
            echo(f"{line}\n    {_headline(rows) if rows['accuracy'].notna().any() else 'no accuracies'}")
            log.append(line)
            all_rows.append(rows)
            all_flags.append(flags)
            all_outcomes.append(outcomes)
    return _finish(out, all_rows, all_flags, all_outcomes, log, echo)


def evaluate_existing(config: CompareConfig, out_dir: str | Path, *, checkpoints: list[str] = (),
                      user_models: list[str] = (), progress: bool = False,
                      echo: Callable[[str], None] | None = None) -> Comparison:
    """Evaluate finished run directories (`checkpoints`) and user models (`module:callable`) without
    training. A checkpoint's dataset, loss and seed come from its config.json; a user model is evaluated
    on `config.dataset` and reported with its spec as the loss."""
    from robust_glo.data import load_dataset
    from robust_glo.training import TrainConfig, load_trained_model
    from robust_glo.utils import resolve_device, run_metadata

    echo = echo or _echo
    if not checkpoints and not user_models:
        raise ConfigError("give --checkpoint DIR or --user-model module:callable to evaluate without training")
    config = dataclasses.replace(config, losses=["ce"]).validated()
    for ckpt in checkpoints:
        if not (Path(ckpt) / "config.json").is_file() or not (Path(ckpt) / "model.pt").is_file():
            raise ConfigError(f"checkpoint {ckpt!r} is not a finished training run (needs config.json and model.pt)")
    users = {spec: load_user_model(spec) for spec in user_models}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", {**dataclasses.asdict(config), "losses": None,
                                      "checkpoints": list(checkpoints), "user_models": list(user_models)})
    _write_json(out / "environment.json", run_metadata(attack_seed=config.attack_seed))
    key = config.evaluation_key()
    all_rows, all_flags, all_outcomes, log = [], [], [], []
    device = resolve_device(config.device)
    for ckpt in checkpoints:
        run_dir = Path(ckpt)
        train_cfg = TrainConfig.from_dict(_read_json(run_dir / "config.json")).resolved()
        weights = hashlib.sha1((run_dir / "model.pt").read_bytes()).hexdigest()
        run_key = {**key, "train": train_cfg.to_dict(), "weights_sha1": weights}
        where = out / "checkpoints" / loss_slug(str(run_dir.resolve()))
        ident = {"loss": train_cfg.loss, "seed": train_cfg.seed, "dataset": train_cfg.dataset,
                 "model": train_cfg.model, "status": "ok"}
        stored = _evaluated(where, run_key)
        if stored is not None:
            rows, flags, outcomes = stored
            line = f"{ckpt}: reused evaluation"
        else:
            splits = load_dataset(train_cfg.dataset, root=config.data_root or train_cfg.data_root,
                                  val_size=train_cfg.val_size, test_size=config.test_size or train_cfg.test_size,
                                  train_fraction=train_cfg.train_fraction, split_seed=train_cfg.split_seed)
            model = load_trained_model(run_dir, device)
            rows, flags, outcomes, sec = evaluate_and_store(model, splits.test, ident, where, config, run_key,
                                                            progress=progress)
            line = f"{ckpt} ({train_cfg.loss}, seed {train_cfg.seed}): evaluated in {sec:.0f}s"
        echo(f"{line}\n    {_headline(rows)}")
        log.append(line)
        all_rows.append(rows)
        all_flags.append(flags)
        all_outcomes.append(outcomes)
    if user_models:
        splits = load_dataset(config.dataset, root=config.data_root, test_size=config.test_size)
        for spec, model in users.items():
            ident = {"loss": spec, "seed": 0, "dataset": config.dataset, "model": "user", "status": "ok"}
            rows, flags, outcomes, sec = evaluate_and_store(model, splits.test, ident, out / "user" / loss_slug(spec),
                                                            config, key, progress=progress)
            line = f"{spec}: evaluated in {sec:.0f}s"
            echo(f"{line}\n    {_headline(rows)}")
            log.append(line)
            all_rows.append(rows)
            all_flags.append(flags)
            all_outcomes.append(outcomes)
    return _finish(out, all_rows, all_flags, all_outcomes, log, echo)


def _echo(line: str) -> None:
    print(line, flush=True)  # progress shows up at once even when stdout is a file


def load_user_model(spec: str) -> nn.Module:
    """`package.module:name` or `path/to/file.py:name`, where name is an `nn.Module` or a callable taking
    no arguments that returns one (already trained; it takes inputs in [0, 1] and returns logits)."""
    location, sep, attribute = spec.rpartition(":")
    if not sep or not location or not attribute.isidentifier():
        raise ConfigError(f"user model {spec!r} must be package.module:name or path/to/file.py:name")
    try:
        if location.endswith(".py"):
            path = Path(location)
            if not path.is_file():
                raise ConfigError(f"user model {spec!r}: file {location!r} does not exist")
            name = "robust_glo_user_model_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
            module_spec = importlib.util.spec_from_file_location(name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            sys.modules[name] = module
        else:
            module = importlib.import_module(location)
    except ConfigError:
        raise
    except Exception as exc:  # any failure inside user code is reported with its spec
        raise ConfigError(f"user model {spec!r}: importing {location!r} failed: {type(exc).__name__}: {exc}") from None
    obj = getattr(module, attribute, None)
    if obj is None:
        raise ConfigError(f"user model {spec!r}: {location!r} has no attribute {attribute!r}")
    if not isinstance(obj, nn.Module):
        if not callable(obj):
            raise ConfigError(f"user model {spec!r} is neither an nn.Module nor a callable returning one")
        try:
            obj = obj()
        except Exception as exc:
            raise ConfigError(f"user model {spec!r} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, nn.Module):
        raise ConfigError(f"user model {spec!r} returned {type(obj).__name__}, expected an nn.Module")
    return obj


def _finish(out: Path, all_rows: list[pd.DataFrame], all_flags: list[pd.DataFrame],
            all_outcomes: list[pd.DataFrame | None], log: list[str], echo: Callable[[str], None]) -> Comparison:
    results = pd.concat(all_rows, ignore_index=True)
    flags = pd.concat([f for f in all_flags if len(f)], ignore_index=True) if any(len(f) for f in all_flags) \
        else pd.DataFrame(columns=["loss", "seed"] + FLAG_COLUMNS)
    found = [o for o in all_outcomes if o is not None and len(o)]
    outcomes = (pd.concat(found, ignore_index=True) if found else
                pd.DataFrame(columns=["loss", "seed", "dataset", "model"] + OUTCOME_COLUMNS))
    summary = summarize(results, outcomes=outcomes, group_by=("dataset", "model", "attack", "eps"))
    _write_csv(out / "results.csv", results)
    _write_csv(out / "flags.csv", flags)
    _write_csv(out / "outcomes.csv", outcomes)
    _write_csv(out / "summary.csv", summary)
    unreliable = results[~results["reliable"].astype(bool) & (results["status"] == "ok")][["loss", "seed"]]
    for r in unreliable.drop_duplicates().itertuples():
        f = flags[(flags["loss"] == r.loss) & (flags["seed"] == r.seed)]
        echo(f"{r.loss} seed {r.seed}:\n" + "\n".join("    " + line for line in describe_flags(f).splitlines()))
    return Comparison(results, flags, summary, out, log, outcomes)


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
