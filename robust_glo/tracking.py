"""Experiment tracking through MLflow: `--track` on `evolve`, `train`, `evaluate` and `benchmark` (or a suite's
`[suite] track = true`) logs what a run wrote to an MLflow tracking store.

The run directory's files are the source of truth: everything is logged from them, after the command (and,
for a benchmark, after each stage), so the engines know nothing of MLflow and a run made without `--track`
can be logged later by re-running the same command with `--track` (it reuses every finished piece). Every
invocation logs new MLflow runs, tagged `robust_glo.out` (the absolute run directory) and
`robust_glo.command`; nothing is overwritten.

Where: `sqlite:///<out>/mlflow.db` with artifacts in `<out>/mlruns` unless a URI is given (`--tracking-uri`:
an `http(s)://` server, another `sqlite:///` file, whose artifacts then go next to it, ...). The
experiment is `robust-glo`, or `$MLFLOW_EXPERIMENT_NAME`. Look at it with
`mlflow ui --backend-store-uri sqlite:///<out>/mlflow.db`.

What (metric keys are made of parts whose characters other than letters, digits, `_`, `.` and `-` become
`_`, joined by `/`; see `metric_key`):

    train       params: config.json; metrics: train_loss (step = training step, from metrics.json's loss
                curve), val_accuracy, test_accuracy, final_train_loss, seconds, samples_per_second;
                artifacts: config.json, metrics.json, environment.json
    evolve      params: config.json; metrics: generation/<column of generations.csv> (step = generation),
                candidate/fitness (trained candidates only: the others carry rank bands), candidate/best_fitness
                (best trained so far), candidate/val_accuracy, candidate/robust_accuracy, candidate/steps
                (step = the candidate's row in history.csv), best/fitness, best/val_accuracy, best/theta0..7;
                artifacts: the run's CSV and JSON files, history.csv also as a table (history.json)
    evaluate    params: config.json; metrics: accuracy/<loss>/<attack>/eps_<eps> = summary.csv's mean; a nested
                run per network (loss x seed) with its training (as `train`) and accuracy/<attack>/eps_<eps> =
                its results.csv accuracy; artifacts: the CSV and JSON files, summary.csv also as a table
    benchmark   one run with the suite (suite.json) as params, and per stage: evolve: a nested run per
                evolution (as `evolve`); train: a nested run per network (as `train`); attack: the networks'
                accuracies (as `evaluate`); analyze: effective_target/<loss>; report: summary.csv's means,
                report.md, report.html and figures/ as artifacts

Losses are named in keys by their spec when it fits (`label_smoothing:0.1` -> `label_smoothing_0.1`), else by
the folder name of their runs (`layout.loss_slug`); in a benchmark the evolved loss is `evolved`.

MLflow is an optional dependency (`pip install robust-glo[tracking]`), imported only here and only when
tracking is on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from robust_glo.comparison import layout
from robust_glo.comparison.layout import loss_slug
from robust_glo.errors import ConfigError, RobustGloError

RANKED = ("best_fitness", "median_fitness")  # generations.csv columns that can hold rank bands
EXPERIMENT = "robust-glo"  # the experiment runs go to, unless $MLFLOW_EXPERIMENT_NAME names another
STORE_FILE = "mlflow.db"  # the default store: <out>/mlflow.db (SQLite, no server)
ARTIFACT_DIR = "mlruns"  # ... with its artifacts in <out>/mlruns
INSTALL_HINT = "--track needs MLflow: pip install robust-glo[tracking]"
RERUN_HINT = "the run's files are complete: re-run the same command with --track to log them (finished work is reused)"

_BAD_KEY_CHARS = re.compile(r"[^\w.\-]")
_MAX_PARAM = 6000  # MLflow's limit on a parameter's value
_MAX_TAG = 8000
_BATCH = 900  # entities per log_batch call (MLflow takes 1000, of which at most 100 params or tags)


class TrackingError(RobustGloError):
    """The MLflow tracking store could not be opened or written."""


def require_mlflow() -> Any:
    """The mlflow module, or a one-line ConfigError saying how to install it."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return mlflow


def default_uri(out: str | Path) -> str:
    """The embedded store of a run directory: `sqlite:///<out>/mlflow.db` (absolute)."""
    return "sqlite:///" + str(Path(out).resolve() / STORE_FILE)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URI (relative or absolute, as SQLAlchemy reads it)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def enabled(track: bool | None, tracking_uri: str | None, default: bool = False) -> bool:
    """Whether to track: an explicit --track / --no-track wins; a tracking URI turns it on; else `default`."""
    if track is not None:
        return bool(track)
    return bool(tracking_uri) or default


def metric_key(*parts: Any) -> str:
    """A metric key from parts: each part's characters other than letters, digits, `_`, `.` and `-` become `_`
    (MLflow's portable set), parts joined by `/`. `metric_key("accuracy", "pgd:steps=2", "eps_0.1")` is
    `accuracy/pgd_steps_2/eps_0.1`."""
    out = []
    for part in parts:
        text = _BAD_KEY_CHARS.sub("_", str(part)) or "_"
        out.append("_" if text in (".", "..") else text)
    return "/".join(out)


def eps_part(eps: Any) -> str:
    """The key part of a budget: `eps_0.1`, `eps_0.0313725` (8/255), `eps_0`."""
    return f"eps_{float(eps):.6g}"


def loss_part(spec: str) -> str:
    """A loss's name in metric keys: its spec when at most `:` has to change, else its runs' folder name."""
    return spec if not _BAD_KEY_CHARS.search(spec.replace(":", "_")) else loss_slug(spec)


def accuracy_key(attack: str, eps: Any, loss: str | None = None) -> str:
    """`accuracy/<attack>/eps_<eps>` of one network, or `accuracy/<loss>/<attack>/eps_<eps>` of a summary."""
    parts = ["accuracy"] + ([loss_part(loss)] if loss is not None else []) + [attack, eps_part(eps)]
    return metric_key(*parts)


def _number(value: Any) -> float | None:
    """A finite float, or None (NaN, empty cells, text)."""
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _flat(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Nested dicts as `a.b` keys; every value as text (JSON for anything but a string)."""
    for key, value in data.items():
        name = ".".join(p for p in (prefix, str(key)) if p)
        if isinstance(value, dict) and value:
            yield from _flat(value, name)
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            yield name, text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 1] + "…"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_csv(path: Path) -> Any:
    import pandas as pd

    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _warn(line: str) -> None:
    print(f"robust-glo: warning: {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    """MLflow's own deprecation warnings (SQLAlchemy, pandas) while it works: nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _quiet_mlflow() -> None:
    """MLflow and alembic announce the creation of a store's tables on stderr; nothing a user acts on."""
    for name in ("mlflow.store.db.utils", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)


class Tracker:
    """One MLflow tracking store. Opening it checks that MLflow is installed (a one-line ConfigError
    otherwise) and that the store can be reached (TrackingError). A failure while logging is reported once
    as a warning (through `warn`) and stops logging; `check()` then raises TrackingError, so that the command
    ends with exit code 2 after its work is saved."""

    def __init__(self, out: str | Path, uri: str | None = None, *, warn: Callable[[str], None] = _warn):
        # An unreachable server would otherwise be retried for minutes in silence before the one-line error;
        # a value the user set wins.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        mlflow = require_mlflow()
        self.out = Path(out).resolve()
        self.uri = uri or default_uri(self.out)
        self.warn = warn
        self.error: str | None = None
        _quiet_mlflow()
        artifacts = None
        db = _sqlite_path(self.uri)
        self.experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        try:
            with _quiet_warnings():
                if db is not None:
                    db.parent.mkdir(parents=True, exist_ok=True)
                    artifacts = (db.resolve().parent / ARTIFACT_DIR).as_uri()
                self.client = mlflow.MlflowClient(tracking_uri=self.uri)
                experiment = self.client.get_experiment_by_name(self.experiment_name)
                if experiment is None:
                    self.experiment_id = self.client.create_experiment(
                        self.experiment_name, artifact_location=artifacts
                    )
                else:
                    self.experiment_id = experiment.experiment_id
                    if experiment.lifecycle_stage == "deleted":
                        self.client.restore_experiment(self.experiment_id)
        except Exception as exc:  # any store, any driver: one line naming the store
            raise TrackingError(f"cannot open the MLflow tracking store {self.uri}: {_one_line(exc)}") from None

    def describe(self) -> str:
        """One line: where the runs went and how to look at them."""
        web = self.uri.startswith(("http://", "https://"))
        how = f"open {self.uri}" if web else f"mlflow ui --backend-store-uri {self.uri}"
        return f"logged to MLflow {self.uri} (experiment {self.experiment_name!r}); to look at it: {how}"

    # ------------------------------------------------------------------------------------------ primitives

    def _guard(self, what: str, call: Callable[[], Any]) -> Any:
        if self.error is not None:
            return None
        try:
            with _quiet_warnings():
                return call()
        except Exception as exc:
            self.fail(what, exc)
            return None

    def fail(self, what: str, exc: BaseException) -> None:
        """Record the first logging failure, warn once, and log nothing more."""
        if self.error is None:
            self.error = f"{what}: {_one_line(exc)}"
            self.warn(f"MLflow logging to {self.uri} stopped ({self.error})")

    def check(self) -> None:
        """Raise TrackingError if logging failed on the way."""
        if self.error is not None:
            raise TrackingError(f"MLflow logging to {self.uri} failed ({self.error}); {RERUN_HINT}")

    def start(
        self, name: str, *, command: str, parent: str | None = None, tags: dict[str, Any] | None = None
    ) -> str | None:
        """A new MLflow run (nested under `parent` when given); its id, or None when logging has failed."""
        all_tags = {"robust_glo.command": command, "robust_glo.out": str(self.out), **(tags or {})}
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        all_tags = {k: str(v)[:_MAX_TAG] for k, v in all_tags.items() if v is not None}
        run = self._guard(
            f"creating run {name!r}",
            lambda: self.client.create_run(self.experiment_id, tags=all_tags, run_name=name),
        )
        return None if run is None else run.info.run_id

    def params(self, run: str | None, values: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(metric_key(*k.split(".")).replace("/", "."), v) for k, v in _flat(values)]
        for i in range(0, len(items), 100):
            chunk = items[i : i + 100]
            if run:
                self._guard("logging parameters", lambda chunk=chunk: self.client.log_batch(run, params=chunk))

    def tags(self, run: str | None, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if run and value is not None:
                self._guard("setting a tag", lambda k=key, v=value: self.client.set_tag(run, k, str(v)[:_MAX_TAG]))

    def metrics(self, run: str | None, items: Iterable[tuple[str, Any, int]]) -> None:
        """Log (key, value, step) triples; values that are not finite numbers are skipped."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, int(step)) for k, value, step in items if (v := _number(value)) is not None]
        for i in range(0, len(batch), _BATCH):
            chunk = batch[i : i + _BATCH]
            if run:
                self._guard("logging metrics", lambda chunk=chunk: self.client.log_batch(run, metrics=chunk))

    def artifacts(self, run: str | None, paths: Iterable[Path], folder: str | None = None) -> None:
        """Copy files (and whole folders) that exist into the run's artifacts, under `folder`."""
        for path in paths:
            if not run or not path.exists():
                continue
            if path.is_dir():
                where = "/".join(p for p in (folder, path.name) if p)
                self._guard(f"logging {path}", lambda p=path, w=where: self.client.log_artifacts(run, str(p), w))
            else:
                self._guard(f"logging {path}", lambda p=path: self.client.log_artifact(run, str(p), folder))

    def table(self, run: str | None, frame: Any, name: str) -> None:
        """A pandas table as an MLflow table artifact (shown by the UI), e.g. history.json."""
        if run and frame is not None:
            self._guard(f"logging table {name}", lambda: self.client.log_table(run, frame, name))

    def end(self, run: str | None, status: str = "FINISHED") -> None:
        if run:
            self._guard("ending a run", lambda: self.client.set_terminated(run, status))

    # ------------------------------------------------------------------------------------------ from files

    def log_training(self, run: str | None, run_dir: Path, *, folder: str | None = None) -> None:
        """A training run directory: config.json as params, the loss curve and accuracies as metrics."""
        config = _read_json(run_dir / "config.json")
        if isinstance(config, dict):
            self.params(run, config)
        metrics = _read_json(run_dir / "metrics.json")
        if isinstance(metrics, dict):
            curve = metrics.get("loss_curve") or []
            items = [("train_loss", entry[1], entry[0]) for entry in curve if isinstance(entry, list | tuple)]
            last = int(metrics.get("steps") or 0)
            for key in (
                "val_accuracy",
                "test_accuracy",
                "final_train_loss",
                "seconds",
                "samples_per_second",
                "steps",
            ):
                items.append((key, metrics.get(key), last))
            self.metrics(run, items)
            self.tags(run, {"robust_glo.status": metrics.get("status")})
        self.artifacts(run, [run_dir / n for n in ("config.json", "metrics.json", "environment.json")], folder)

    def log_network_rows(self, run: str | None, rows: Any) -> None:
        """One network's rows of results.csv (or its evaluation.csv) as accuracy/<attack>/eps_<eps>."""
        if rows is None or not len(rows):
            return
        self.metrics(run, [(accuracy_key(r.attack, r.eps), r.accuracy, 0) for r in rows.itertuples()])

    def log_summary(self, run: str | None, summary: Any, names: dict[str, str] | None = None) -> None:
        """summary.csv's mean per loss x attack x eps as accuracy/<loss>/<attack>/eps_<eps>, and the table."""
        if summary is None or not len(summary):
            return
        names = names or {}
        self.metrics(
            run,
            [(accuracy_key(r.attack, r.eps, names.get(r.loss, r.loss)), r.mean, 0) for r in summary.itertuples()],
        )
        self.table(run, summary, "summary.json")

    def log_evolution(self, run: str | None, folder: Path, *, artifact_folder: str | None = None) -> None:
        """An evolution run directory: config, per-generation and per-candidate metrics, the best loss."""
        config = _read_json(folder / "config.json")
        if isinstance(config, dict):
            self.params(run, config)
        items: list[tuple[str, Any, int]] = []
        generations = _read_csv(folder / "generations.csv")
        if generations is not None:
            for row in generations.to_dict("records"):
                step = int(row["generation"])
                for k, v in row.items():
                    # A fitness above 1 is a rank band (rejected, diverged, pruned: docs/method.md), not a
                    # fitness: it is left out rather than plotted as one.
                    if k == "generation" or (k in RANKED and _number(v) is not None and float(v) > 1.0):
                        continue
                    items.append((metric_key("generation", k), v, step))
        history = _read_csv(folder / "history.csv")
        if history is not None:
            best = math.inf
            for step, row in enumerate(history.to_dict("records")):
                trained = row.get("status") == "trained" and _number(row.get("fitness")) is not None
                if trained:
                    best = min(best, float(row["fitness"]))
                    items.append(("candidate/fitness", row["fitness"], step))
                if best < math.inf:
                    items.append(("candidate/best_fitness", best, step))
                for column in ("val_accuracy", "robust_accuracy", "steps"):
                    items.append((metric_key("candidate", column), row.get(column), step))
            self.table(run, history, "history.json")
        best_loss = _read_json(folder / "best_loss.json")
        if isinstance(best_loss, dict):
            for key in ("fitness", "fitness_std", "val_accuracy", "robust_accuracy"):
                items.append((metric_key("best", key), best_loss.get(key), 0))
            theta = best_loss.get("theta") or []
            items += [(f"best/theta{k}", t, 0) for k, t in enumerate(theta)]
            if theta:
                spec = "taylorglo:[" + ",".join(repr(float(t)) for t in theta) + "]"
                self.tags(run, {"robust_glo.best_loss": spec})
        self.metrics(run, items)
        names = ["history.csv", "generations.csv", "reevaluation.csv", "rungs.csv", "best_loss.json"]
        names += ["config.json", "environment.json", "searches.csv", "searches.json"]
        self.artifacts(run, [folder / n for n in names], artifact_folder)

    # ------------------------------------------------------------------------------------------ commands

    def log_train_command(self, out: Path) -> None:
        """`robust-glo train --track`: one run from the training run directory."""
        config = _read_json(out / "config.json") or {}
        run = self.start(
            f"train {config.get('loss', '')} seed {config.get('seed', '')}".strip(),
            command="train",
            tags={"robust_glo.loss": config.get("loss"), "robust_glo.dataset": config.get("dataset")},
        )
        self.log_training(run, out)
        self.end(run)
        self.check()

    def log_evolve_command(self, out: Path) -> None:
        """`robust-glo evolve --track`: one run from the evolution run directory."""
        config = _read_json(out / "config.json") or {}
        run = self.start(
            f"evolve {config.get('dataset', '')}".strip(),
            command="evolve",
            tags={"robust_glo.dataset": config.get("dataset")},
        )
        self.log_evolution(run, out)
        self.end(run)
        self.check()

    def log_evaluate_command(self, out: Path) -> None:
        """`robust-glo evaluate --track`: a run from the comparison folder, a nested run per network."""
        config = _read_json(out / "config.json") or {}
        run = self.start(
            f"evaluate {config.get('dataset', '')}".strip(),
            command="evaluate",
            tags={"robust_glo.dataset": config.get("dataset")},
        )
        self.params(run, config)
        networks = Networks(self, run, "evaluate")
        results = _read_csv(out / "results.csv")
        if results is not None:
            for (spec, seed), rows in results.groupby(["loss", "seed"], sort=False):
                child = networks.get(str(spec), int(seed), layout.run_dir(out, str(spec), int(seed)))
                self.log_network_rows(child, rows)
        networks.end_all()
        self.log_summary(run, _read_csv(out / "summary.csv"))
        self.artifacts(run, sorted(out.glob("*.csv")) + sorted(out.glob("*.json")))
        self.end(run)
        self.check()


class Networks:
    """The nested runs of the networks (loss x seed) of one comparison: each made once per invocation, with
    its training logged from its run directory when it has one."""

    def __init__(self, tracker: Tracker, parent: str | None, command: str, names: dict[str, str] | None = None):
        self.tracker, self.parent, self.command = tracker, parent, command
        self.names = names or {}  # spec -> readable name (the benchmark's labels)
        self.runs: dict[tuple[str, int], str | None] = {}

    def get(self, spec: str, seed: int, run_dir: Path | None) -> str | None:
        key = (spec, seed)
        if key not in self.runs:
            run = self.tracker.start(
                f"{self.names.get(spec, spec)} seed {seed}",
                command=self.command,
                parent=self.parent,
                tags={"robust_glo.loss": spec, "robust_glo.seed": seed, "robust_glo.network": "true"},
            )
            if run_dir is not None and (run_dir / "metrics.json").is_file():
                self.tracker.log_training(run, run_dir)
                self.tracker.tags(run, {"robust_glo.run_dir": str(run_dir.resolve())})
            self.runs[key] = run
        return self.runs[key]

    def end_all(self, status: str = "FINISHED") -> None:
        for run in self.runs.values():
            self.tracker.end(run, status)


_STATUS = {"done": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}


class BenchmarkTracking:
    """The MLflow runs of one `benchmark` invocation: a parent run with the suite, filled stage by stage from
    the files each stage wrote (`stage_done`), closed by `finish`."""

    def __init__(self, tracker: Tracker, out: str | Path, *, stages: Iterable[str] = (), backend: str = ""):
        self.tracker = tracker
        self.out = Path(out)
        suite = _read_json(self.out / "suite.json") or {}
        self.run = tracker.start(
            f"benchmark {suite.get('name', '')}".strip(),
            command="benchmark",
            tags={
                "robust_glo.suite": suite.get("ref") or suite.get("source"),
                "robust_glo.variant": suite.get("variant"),
                "robust_glo.dataset": suite.get("dataset"),
                "robust_glo.stages": ",".join(stages),
                "robust_glo.backend": backend,
            },
        )
        tracker.params(self.run, {k: v for k, v in suite.items() if k not in ("track", "tracking_uri")})
        self.networks: Networks | None = None

    def _names(self) -> dict[str, str]:
        """spec -> name in keys: the suite's token (`evolved`, `evolved:NAME`) for an evolved loss, else the spec."""
        rows = _read_json(self.out / "losses.json") or []
        return {
            r["spec"]: (r.get("given") if r.get("role") == "evolved" else r["spec"])
            for r in rows
            if isinstance(r, dict) and "spec" in r
        }

    def _labels(self) -> dict[str, str]:
        rows = _read_json(self.out / "losses.json") or []
        return {r["spec"]: r.get("label") or r["spec"] for r in rows if isinstance(r, dict) and "spec" in r}

    def _network_runs(self) -> Networks:
        if self.networks is None:
            self.networks = Networks(self.tracker, self.run, "benchmark", self._labels())
        return self.networks

    def stage_done(self, stage: str) -> None:
        """Log what stage `stage` wrote (a failure is a warning: the benchmark goes on, `finish` raises)."""
        try:
            getattr(self, f"_{stage}")()
        except Exception as exc:  # a file of unexpected shape must not stop the benchmark
            self.tracker.fail(f"logging the {stage} stage", exc)

    def _evolve(self) -> None:
        root = self.out / "evolve"
        folders = sorted({p.parent for p in root.rglob("history.csv")}) if root.is_dir() else []
        for folder in folders:
            rel = folder.relative_to(self.out).as_posix()
            child = self.tracker.start(rel.replace("/", " "), command="benchmark", parent=self.run)
            self.tracker.log_evolution(child, folder)
            self.tracker.end(child)
        for searches in sorted(root.rglob("searches.csv")) if root.is_dir() else []:
            rel = searches.parent.relative_to(self.out).as_posix()
            self.tracker.artifacts(self.run, [searches, searches.with_suffix(".json")], rel)

    def _train(self) -> None:
        training = _read_csv(self.out / "training.csv")
        networks = self._network_runs()
        if training is not None:
            for row in training.itertuples():
                networks.get(str(row.loss), int(row.seed), self.out / str(row.run_dir))
        self.tracker.artifacts(self.run, [self.out / "training.csv", self.out / "losses.json"])

    def _attack(self) -> None:
        results = _read_csv(self.out / "results.csv")
        networks = self._network_runs()
        if results is not None:
            for (spec, seed), rows in results.groupby(["loss", "seed"], sort=False):
                run_dir = layout.run_dir(self.out / "compare", str(spec), int(seed))
                self.tracker.log_network_rows(networks.get(str(spec), int(seed), run_dir), rows)
        names = ("results.csv", "flags.csv", "outcomes.csv", "diagnostics.csv", "losses.json")
        self.tracker.artifacts(self.run, [self.out / n for n in names])

    def _analyze(self) -> None:
        records = _read_json(self.out / "analysis" / "analysis.json") or []
        names = self._names()
        items = [
            (metric_key("effective_target", loss_part(names.get(r["spec"], r["spec"]))), r.get("effective_target"), 0)
            for r in records
            if isinstance(r, dict) and "spec" in r
        ]
        self.tracker.metrics(self.run, items)
        self.tracker.artifacts(self.run, [self.out / "analysis" / "analysis.json"], "analysis")

    def _report(self) -> None:
        self.tracker.log_summary(self.run, _read_csv(self.out / "summary.csv"), self._names())
        self.tracker.artifacts(self.run, [self.out / "summary.csv", self.out / "figures"])

    def finish(self, status: str = "done") -> None:
        """End every run (FINISHED, KILLED after Ctrl-C, FAILED after an error), with the files that change up
        to the end (the report is rebuilt once the stages are recorded). Raises TrackingError after a logging
        failure of a run that finished."""
        names = ("report.md", "report.html", "stages.json", "environment.json", "suite.json")
        self.tracker.artifacts(self.run, [self.out / n for n in names])
        mlflow_status = _STATUS.get(status, "FAILED")
        if self.networks is not None:
            self.networks.end_all(mlflow_status)
        self.tracker.end(self.run, mlflow_status)
        if status == "done":
            self.tracker.check()
