"""`run_benchmark(suite, out)`: evolve -> train -> attack -> analyze -> report, resumable piece by piece.

Benchmark directory (everything the report reads is listed in `robust_glo.reporting.inputs`)::

    suite.json, environment.json, stages.json, losses.json
    evolve/                         the evolution run directory (`run_evolution(..., resume=True)`) of a
                                    plain [evolve] table; evolve/<NAME>/ for each [evolve.NAME] table
    compare/                        the robustness comparison (`run_comparison`), laid out as
                                    `robust_glo.comparison.layout` says: runs/<loss>/seed<k>/ holds one
                                    training run (the train stage) and its evaluation files (attack)
    analysis/<loss>.json            analyze_loss(...).to_dict() per loss; analysis.json; figures/
    training.csv, results.csv, flags.csv, outcomes.csv, diagnostics.csv    the tables of every piece, gathered
    report.md, report.html, summary.csv, figures/

A piece is reused when its files exist and record the same inputs (training config, attack settings,
loss spec); anything else is recomputed: the engines decide (train_run compares config.json, the
comparison its evaluation key, the evolution its stored config). Every file is written atomically, so a
crash costs only the piece in flight, and a re-run picks up from there. A file damaged from outside (cut
short by a copy or a full disk) costs no more: stages.json and environment.json are rebuilt, a record of a
finished piece that cannot be read (metrics.json, an evaluation, an analysis record) has the piece
recomputed, and a state that cannot be rebuilt stops the run with one line naming the file and what to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robust_glo.benchmark import engines
from robust_glo.benchmark.engines import Piece
from robust_glo.benchmark.ledger import Ledger, StageCounter
from robust_glo.benchmark.searches import choose_search, search_dir
from robust_glo.benchmark.suite import SEARCHES, Suite, evolution_of
from robust_glo.comparison import layout
from robust_glo.data.registry import DATASETS
from robust_glo.errors import ConfigError
from robust_glo.losses import set_display_name
from robust_glo.losses.taylorglo import N_PARAMS
from robust_glo.reporting import build_report
from robust_glo.tracking import BenchmarkTracking, Tracker
from robust_glo.tracking import enabled as tracking_enabled
from robust_glo.utils import (
    atomic_write_json,
    atomic_write_text,
    parallel_cpu_workers,
    read_json,
    read_json_or_none,
    resolve_device,
    run_metadata,
)
from robust_glo.utils.ray_cluster import connect_ray, ray_installed

STAGES = ("evolve", "train", "attack", "analyze", "report")
RAY_STAGES = frozenset({"evolve", "train", "attack"})  # the stages that dispatch pieces to a backend
# Where the pieces run: in this process, or as Ray tasks; "auto" is resolved by resolve_benchmark_backend.
BACKENDS = ("auto", "local", "ray")
# How the train and attack stages run: "on" = the seeds and losses of a suite as populations (one batched
# network: robust_glo.training.population to train, robust_glo.robustness.population to attack), "off" = one
# network after another, "auto" = on when the device is CUDA (where evaluations/perf/gpu.sh and
# population_attacks.py measured it faster) and off on the CPU (where it gains nothing or is slower).
POPULATION_MODES = ("auto", "on", "off")
EVOLVED_LABEL = "taylorglo (evolved)"


def evolved_label(name: str) -> str:
    """The display name of the loss an evolution found ("" is a plain [evolve] table's)."""
    return EVOLVED_LABEL if not name else f"taylorglo (evolved: {name})"


Log = Callable[[str], None]


def echo(line: str) -> None:
    """The default log: stdout, flushed at once (progress shows even when stdout is a file)."""
    print(line, flush=True)


@dataclass
class BenchmarkResult:
    out: Path
    stages: dict[str, dict[str, Any]]
    report: Path | None = None
    pieces: dict[str, StageCounter] = field(default_factory=dict)


BEST_LOSS_FIX = (
    "run the evolve stage again (robust-glo benchmark SUITE --out DIR with the evolve stage resumes the finished "
    "evolution and rewrites best_loss.json from its evaluations.json, training nothing)"
)


def evolved_spec(best_loss: Path) -> str:
    """The inline spec `taylorglo:[t0,...,t7]` of an evolve run's best_loss.json (exact floats)."""
    data = read_json(best_loss, expect=dict, fix=BEST_LOSS_FIX)
    theta = data.get("theta")
    if not isinstance(theta, list) or len(theta) != N_PARAMS:
        raise ConfigError(f"{best_loss} does not hold a TaylorGLO theta of {N_PARAMS} numbers")
    return "taylorglo:[" + ",".join(repr(float(t)) for t in theta) + "]"


class Benchmark:
    """The pipeline over one benchmark directory. `run(stages)` runs the stages in order."""

    def __init__(
        self,
        suite: Suite,
        out: str | Path,
        *,
        progress: bool = True,
        log: Log = echo,
        backend: str = "auto",
        ray_options: dict[str, Any] | None = None,
        population: str = "auto",
        population_size: int = 0,
        track: bool | None = None,
        tracking_uri: str | None = None,
    ):
        if backend not in BACKENDS:
            raise ConfigError(f"backend {backend!r} is unknown; valid: {', '.join(BACKENDS)}")
        if population not in POPULATION_MODES:
            raise ConfigError(f"population {population!r} is unknown; valid: {', '.join(POPULATION_MODES)}")
        backend = resolve_benchmark_backend(backend, suite.device, population)
        if population == "on" and backend == "ray":
            raise ConfigError("populations train and attack in this process; use them with backend local, not ray")
        if isinstance(population_size, bool) or not isinstance(population_size, int) or population_size < 0:
            raise ConfigError(
                f"population size must be an integer >= 0 (0: every piece at once), got {population_size!r}"
            )
        self.population = population
        self.population_size = population_size
        self.suite = suite
        self.out = Path(out)
        self.progress = progress
        self.log = log
        self.backend = backend
        self.ray_options = dict(ray_options or {})
        # MLflow tracking (robust_glo.tracking): the arguments win over the suite's [suite] track / tracking_uri.
        self.tracking_uri = tracking_uri or suite.tracking_uri
        self.track = tracking_enabled(track, self.tracking_uri, bool(suite.track))

    def population_enabled(self) -> bool:
        """Whether the train and attack stages run their pieces as populations (see POPULATION_MODES)."""
        if self.population != "auto":
            return self.population == "on"
        return self.backend == "local" and resolve_device(self.suite.device).type == "cuda"

    def executor(self, losses: list[str]) -> engines.Executor:
        """The executor of the train and attack grid (`robust_glo.benchmark.executors`): Ray tasks with the
        ray backend, populations when `population_enabled()`, else one piece after another."""
        return engines.executor(
            self.suite.compare_config(losses),
            self.compare_dir,
            backend=self.backend,
            population=self.population_enabled(),
            max_members=self.population_size,
            ray_options=self.ray_options,
            progress=self.progress,
        )

    # ------------------------------------------------------------------------------------------ driver

    def run(self, stages: Sequence[str] = STAGES) -> BenchmarkResult:
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ConfigError(f"unknown stage {unknown[0]!r}; valid: {', '.join(STAGES)}")
        order = [
            s
            for s in STAGES
            if s in stages and (s != "evolve" or self.suite.has_evolution) and (s != "analyze" or self.suite.analyze)
        ]
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.out / "suite.json", self.suite.to_dict())
        atomic_write_json(
            self.out / "environment.json",
            run_metadata(
                attack=self.suite.attack_seed,
                **{
                    f"evolve{':' + n if n else ''}": [int(o.get("seed", 0)) + k for k in range(o.get(SEARCHES, 1))]
                    if o.get(SEARCHES, 1) > 1
                    else int(o.get("seed", 0))
                    for n, o in self.suite.evolutions.items()
                },
            )
            | {"train_seeds": self.suite.seeds, "suite": self.suite.source, "variant": self.suite.variant}
            # the precision each stage computes in, training's and the candidates' resolved for this machine
            # (training/precision.py); every attack and diagnostic runs in float32
            | {
                "precision": {
                    "train": self.suite.train_config("ce", self.suite.seeds[0]).precision,
                    "evolve": self._evolve_precision(),
                    "attack": "fp32",
                }
            },
        )
        tracked = None
        if self.track:  # before any stage: a missing MLflow or an unreachable store stops the run at once
            tracker = Tracker(self.out, self.tracking_uri, warn=lambda line: self.log(f"[track] warning: {line}"))
            tracked = BenchmarkTracking(tracker, self.out, stages=order, backend=self.backend)
        ledger = Ledger(self.out / "stages.json")
        ledger.begin(
            order,
            out=str(self.out),
            suite=self.suite.ref or self.suite.source,
            variant=self.suite.variant,
            backend=self.backend,
            # as resolved (auto is on only on CUDA): the same command elsewhere must batch the same way
            population="on" if self.population_enabled() else "off",
            population_size=self.population_size,
        )
        result = BenchmarkResult(self.out, {})
        status = "failed"
        try:
            with self._one_ray_cluster(needed=bool(RAY_STAGES & set(order))):
                self._run_stages(order, ledger, result, tracked)
            status = "done"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            ledger.end(status)
            if tracked is not None and status != "done":
                tracked.finish(status)
        if "report" in order:  # once more, so that the report shows its own stage's wall time (same figures)
            build_report(self.out, redraw=False)
        if tracked is not None:
            tracked.finish("done")
            self.log(f"[track] {tracked.tracker.describe()}")
        result.stages = ledger.data["stages"]
        if (self.out / "report.html").is_file() and "report" in order:
            result.report = self.out / "report.html"
        return result

    def _run_stages(self, order: list[str], ledger: Ledger, result: BenchmarkResult, tracked: Any) -> None:
        for name in order:
            self.log(f"[{name}] starting")
            with ledger.stage(name) as counter:
                getattr(self, f"stage_{name}")(counter)
            result.pieces[name] = counter
            if tracked is not None:
                tracked.stage_done(name)
            self.log(
                f"[{name}] finished in {ledger.seconds(name):.1f} s: {counter.done} computed, "
                f"{counter.reused} reused, {counter.failed} failed"
            )

    @contextmanager
    def _one_ray_cluster(self, needed: bool = True) -> Iterator[None]:
        """With the Ray backend, one cluster for the whole benchmark: every evolution search and every stage
        joins it (each started and stopped its own before, a few seconds apiece), and it stops at the end if
        this benchmark started it. Not started when no stage run here dispatches pieces (`needed` False:
        analyze and report alone)."""
        if self.backend != "ray" or not needed:
            yield
            return
        ray, started = connect_ray(self.ray_options.get("address"), self.ray_options.get("num_cpus"))
        if started:
            self.log(f"[ray] one local cluster for every stage ({int(ray.cluster_resources().get('CPU', 0))} CPUs)")
        try:
            yield
        finally:
            if started and ray.is_initialized():
                ray.shutdown()

    # ------------------------------------------------------------------------------------------ losses

    def evolve_dir(self, name: str = "") -> Path:
        """The run directory of evolution `name` ("" for a plain [evolve] table)."""
        return self.out / "evolve" / name if name else self.out / "evolve"

    def _given_label(self, given: str) -> str:
        name = evolution_of(given)
        return given if name is None else evolved_label(self.suite.evolution_for(given))

    @property
    def compare_dir(self) -> Path:
        """The robustness comparison's folder: its runs/<loss>/seed<k>/ hold training and evaluation."""
        return self.out / "compare"

    def run_dir(self, piece: Piece) -> Path:
        return layout.run_dir(self.compare_dir, piece.spec, piece.seed)

    def resolved_losses(self) -> list[str]:
        """The suite's losses with `evolved` / `evolved:NAME` replaced by that evolution's best loss."""
        out = []
        for spec in self.suite.losses:
            if evolution_of(spec) is not None:
                best = self.evolve_dir(self.suite.evolution_for(spec)) / "best_loss.json"
                if not best.is_file():
                    raise ConfigError(
                        f"the evolved loss is not available yet ({best} is missing); run the evolve stage first"
                    )
                resolved = evolved_spec(best)
                if resolved in out:
                    other = self.suite.losses[out.index(resolved)]
                    raise ConfigError(
                        f"{spec!r} found the same loss as {other!r} ({resolved}); give the evolutions different "
                        "seeds or budgets, or list the loss once"
                    )
                spec = resolved
            out.append(spec)
        return out

    def _write_losses(self, losses: list[str]) -> None:
        rows = []
        for given, spec in zip(self.suite.losses, losses):
            evolved = evolution_of(given) is not None
            role = "evolved" if evolved else ("baseline" if given == self.suite.baseline else "reference")
            row = {"spec": spec, "label": self._given_label(given) if evolved else spec, "role": role, "given": given}
            if evolved:
                row["evolution"] = self.suite.evolution_for(given)
            rows.append(row)
        for spec in self.suite.extra_losses:
            rows.append({"spec": spec, "label": spec, "role": "analysis only", "given": spec})
        atomic_write_json(self.out / "losses.json", rows)

    def pieces(self) -> list[Piece]:
        out = []
        for given, spec in zip(self.suite.losses, self.resolved_losses()):
            label = self._given_label(given)
            set_display_name(spec, label)  # bars and log lines say "taylorglo (evolved)", not 8 floats
            out += [Piece(spec, seed, f"{layout.loss_slug(spec)}/seed{seed}", label) for seed in self.suite.seeds]
        return out

    # ------------------------------------------------------------------------------------------ stages

    def stage_evolve(self, counter: StageCounter) -> None:
        """Run (or resume) every evolution of the suite, one after the other."""
        s = self.suite
        for name, options in s.evolutions.items():
            n_searches = int(options.get(SEARCHES, 1))
            options = {k: v for k, v in options.items() if k != SEARCHES}
            seed = int(options.get("seed", 0))
            for k in range(n_searches):
                out = self.evolve_dir(name) if n_searches == 1 else search_dir(self.evolve_dir(name), k)
                config = engines.evolve_config(
                    self._evolve_options({**options, "seed": seed + k}),
                    dataset=s.dataset,
                    model=s.model,
                    out=out,
                    data_root=s.data_root,
                    device=s.device,
                    progress=self.progress,
                )
                evaluated = engines.run_evolution(config, require_best=n_searches == 1)
                if evaluated:
                    counter.done += evaluated
                else:
                    counter.reused += 1
                    self.log(f"[evolve] reused the finished run in {out}")
            if n_searches > 1:
                summary = choose_search(self.evolve_dir(name), n_searches, DATASETS[s.dataset].num_classes)
                self.log(
                    f"[evolve] {n_searches} searches{' of ' + name if name else ''}: fitness "
                    f"{summary['fitness_min']:.4f} to {summary['fitness_max']:.4f}; the best one's loss is trained"
                )

    def _evolve_precision(self) -> str:
        """The precision of the evolutions' candidates ("fp32" without evolutions; "bf16/fp32" when the
        suite's evolutions differ)."""
        found = {self.suite.evolve_precision(options) for options in self.suite.evolutions.values()}
        return "/".join(sorted(found)) or "fp32"

    def _evolve_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """An [evolve] table's options, unless the table chose a backend itself: with the Ray backend, its
        candidates become Ray tasks on the same cluster and task shape as the grid's pieces; with the local one
        they stay in this process (on CUDA `auto` still picks the batched backend). The backend is an execution
        option: a finished or half-done evolution resumes under either."""
        if "backend" in options:
            return options
        if self.backend != "ray":
            return options if resolve_device(self.suite.device).type == "cuda" else {**options, "backend": "local"}
        names = {"address": "ray_address"}  # the other ray_options keys are the evolution's own names
        given = {names.get(k, k): v for k, v in self.ray_options.items() if v is not None}
        return {**options, "backend": "ray", **given}

    def stage_train(self, counter: StageCounter) -> None:
        """Train every loss x seed into the comparison's run directories (finished ones are reused)."""
        losses = self.resolved_losses()
        self._write_losses(losses)
        compare = self.suite.compare_config(losses)
        pieces = self.pieces()
        outcomes = self.executor(losses).train(pieces, lambda line: self.log(f"[train] {line}"))
        _count(counter, outcomes, notes=True)
        engines.raise_crashed(outcomes)
        rows = []
        for outcome in outcomes:
            piece, m = outcome.piece, outcome.metrics
            config = compare.train_config(piece.spec, piece.seed)
            rows.append(
                {
                    "loss": piece.spec,
                    "seed": piece.seed,
                    "dataset": config.dataset,
                    "model": config.model,
                    "status": m.get("status"),
                    "steps": m.get("steps"),
                    "val_accuracy": m.get("val_accuracy"),
                    "test_accuracy": m.get("test_accuracy"),
                    "n_test": m.get("n_test"),
                    "seconds": m.get("seconds"),
                    "run_dir": self.run_dir(piece).relative_to(self.out).as_posix(),
                }
            )
        atomic_write_text(self.out / "training.csv", pd.DataFrame(rows).to_csv(index=False))

    def stage_attack(self, counter: StageCounter) -> None:
        """Attack every trained network (the robustness comparison's pieces), reusing every stored evaluation
        made with the same settings; gather its tables."""
        losses = self.resolved_losses()
        self._write_losses(losses)
        pieces = self.pieces()
        for piece in pieces:
            if not (self.run_dir(piece) / "metrics.json").is_file():
                raise ConfigError(
                    f"{piece.label} has not been trained ({self.run_dir(piece)} is missing); run the train stage first"
                )
        names = {p.spec: p.display for p in pieces if p.display != p.spec}

        def relabel(line: str) -> None:
            for spec, name in names.items():
                line = line.replace(spec, name)
            self.log("[attack] " + line.replace("\n", "\n[attack] "))

        outcomes = self.executor(losses).attack(pieces, relabel)
        _count(counter, outcomes, notes=False)
        engines.raise_crashed(outcomes)
        comparison = engines.gather_attacks(self.suite.compare_config(losses), self.compare_dir, outcomes, log=relabel)
        for name, frame in (
            ("results.csv", comparison.results),
            ("flags.csv", comparison.flags),
            ("outcomes.csv", comparison.outcomes),
            ("diagnostics.csv", comparison.diagnostics),
        ):
            atomic_write_text(self.out / name, frame.to_csv(index=False))

    def stage_analyze(self, counter: StageCounter) -> None:
        s = self.suite
        specs = list(dict.fromkeys(self.resolved_losses() + s.extra_losses))
        folder = self.out / "analysis"
        records = []
        for spec in specs:
            path = folder / f"{layout.loss_slug(spec)}.json"
            old = read_json_or_none(path, expect=dict)  # a record cut short is recomputed
            if old is not None and old.get("spec") == spec and old.get("classes") == s.classes:
                counter.reused += 1
                records.append(old)
                continue
            record = engines.analyze(spec, s.classes)
            atomic_write_json(path, record)
            counter.done += 1
            records.append(record)
        _write_json_if_changed(folder / "analysis.json", records)
        stamp = {"specs": specs, "classes": s.classes}
        figures = folder / "figures"
        if read_json_or_none(figures / "stamp.json") == stamp and any(figures.glob("*.png")):
            counter.reused += 1
        else:
            engines.plot_losses(specs, s.classes, figures)
            atomic_write_json(figures / "stamp.json", stamp)
            counter.done += 1

    def stage_report(self, counter: StageCounter) -> None:
        paths = build_report(self.out)
        counter.done += 1
        self.log(f"[report] {paths.markdown} and {paths.html}")


def resolve_benchmark_backend(backend: str, device: str | None, population: str = "auto") -> str:
    """`auto` -> `ray` (a local cluster, one one-thread task per core, for the evolution's candidates and
    the train and attack pieces) when the suite runs on a CPU with two or more usable cores and populations
    are not forced on and Ray is installed (an optional extra); `local` otherwise (CUDA: populations in
    this process). Others unchanged."""
    if backend != "auto":
        return backend
    parallel = population != "on" and parallel_cpu_workers(device) >= 2
    return "ray" if parallel and ray_installed() else "local"


def run_benchmark(
    suite: Suite,
    out: str | Path,
    *,
    stages: Sequence[str] = STAGES,
    progress: bool = True,
    log: Log = echo,
    backend: str = "auto",
    ray_options: dict[str, Any] | None = None,
    population: str = "auto",
    population_size: int = 0,
    track: bool | None = None,
    tracking_uri: str | None = None,
) -> BenchmarkResult:
    """Run (or resume) `suite` into the benchmark directory `out`. `backend="ray"` runs the evolution's
    candidates and the train and attack pieces as Ray tasks; "auto" picks it on a multi-core CPU
    (`resolve_benchmark_backend`). `ray_options`: address, num_cpus, cpus_per_task, gpus_per_task,
    max_retries.
    `population` ("auto", "on", "off") trains and attacks the pieces as populations of at most
    `population_size` networks (0: all at once); "auto" does so on CUDA only.
    `track` (True/False; None: the suite's `[suite] track`) logs the run to MLflow after each stage, to
    `tracking_uri` (None: the suite's, else sqlite:///<out>/mlflow.db); see robust_glo.tracking."""
    return Benchmark(
        suite,
        out,
        progress=progress,
        log=log,
        backend=backend,
        ray_options=ray_options,
        population=population,
        population_size=population_size,
        track=track,
        tracking_uri=tracking_uri,
    ).run(stages)


def _write_json_if_changed(path: Path, data: Any) -> None:
    """Rewrite a gathered file only when its content changes, so that its timestamp tells when it did."""
    if read_json_or_none(path) == json.loads(json.dumps(data, default=str)):
        return
    atomic_write_json(path, data)


def _count(counter: StageCounter, outcomes: list[engines.PieceOutcome], *, notes: bool) -> None:
    """Feed the stage's counters from its pieces' outcomes; with `notes`, each failed piece with its reason."""
    for outcome in outcomes:
        if outcome.status == "reused":
            counter.reused += 1
        elif outcome.status == "computed":
            counter.done += 1
        else:
            counter.failed += 1
            if notes and not outcome.crashed:
                counter.notes.append(f"{outcome.piece.label}: {outcome.message}")
