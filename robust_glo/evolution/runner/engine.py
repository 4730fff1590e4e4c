"""The evolution loop: ask CMA-ES, screen with the invariant, evaluate, record, tell; then re-evaluate.

`run_evolution(config)` is what `robust-glo evolve` calls. Seeds:

- CMA-ES samples from its own generator seeded by `config.seed` (see `optimizer`).
- Generation g trains every candidate from the same weights and batch order, `generation_seed(seed, g)`
  (common random numbers, so candidates are compared on the same footing).
- The top-k re-evaluation uses fresh seeds `reeval_seed(seed, s)`, s = 0..reeval_seeds-1, shared by all
  k candidates, so the choice of the best is not the luck of one draw.

Crash safety: see `store`. Resuming replays the state at the last generation boundary, asks the same
population (checked against the records), and only evaluates what is not on disk yet.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robust_glo.errors import ConfigError, ResumeError, RobustGloError
from robust_glo.evolution.backends import Backend, Job, make_backend
from robust_glo.evolution.config import EvolveConfig
from robust_glo.evolution.optimizer import CMAES
from robust_glo.evolution.problem import STATUSES, Evaluation, TaylorGLOProblem
from robust_glo.evolution.runner.store import RunStore
from robust_glo.losses import save_theta_file
from robust_glo.losses.taylorglo import N_PARAMS
from robust_glo.training.precision import CONCRETE_PRECISIONS
from robust_glo.utils import atomic_write_json, run_metadata
from robust_glo.utils.parsing import parse_bool

TRAINING_STATUSES = ("trained", "pruned", "collapsed", "diverged")  # the statuses that spent training steps
PRUNED_FITNESS = 1.0  # the pruned band [1, 1.5]; collapsed (1.5, 2]; see `final_fitness`


def final_fitness(status: str, rung: int, n_rungs: int, rung_fitness: float) -> float:
    """The fitness CMA-ES ranks a candidate of a successive-halving generation by (lower is better).

    Survivors of the last rung keep their full-budget fitness in [0, 1]. A candidate pruned after rung r
    (0-based, r < R - 1) ranks below every survivor, above every candidate pruned at an earlier rung, and
    among those pruned at the same rung by its rung fitness f in [0, 1]: 1 + 0.5 ((R - 2 - r) + f) / (R - 1)
    in [1, 1.5]. A collapsed candidate ranks below every pruned one, a later collapse and a better accuracy
    first: 1.5 + 0.5 ((R - 1 - r) + f) / R in (1.5, 2] (f > 0: a collapsed model is at chance). Diverged,
    failed and rejected keep their bands.
    """
    if status == "pruned":
        return PRUNED_FITNESS + 0.5 * ((n_rungs - 2 - rung) + rung_fitness) / max(n_rungs - 1, 1)
    if status == "collapsed":
        return 1.5 + 0.5 * ((n_rungs - 1 - rung) + min(max(rung_fitness, 0.0), 1.0)) / n_rungs
    raise ValueError(f"no halving band for status {status!r}")


REEVAL_KEYS = ("seed", "status", "fitness", "val_accuracy", "robust_accuracy", "objective")
REFERENCE_LOSS = "ce"  # the clean-accuracy constraint's reference (EvolveConfig.clean_margin)


def constrained_fitness(objective: float, accuracy: float, floor: float | None) -> float:
    """The rank key of a trained candidate under the clean-accuracy constraint (lower is better), in [0, 1]
    like the stated fitness, so the halving bands above it stay as they are.

    A candidate whose clean validation accuracy reaches `floor` (cross-entropy's accuracy on the same budget
    and seed, minus the margin) keeps its order by the stated fitness, halved into [0, 0.5]; one below it
    ranks after all of those, the nearer the floor the better: 0.5 + 0.5 min(1, floor - accuracy), in
    (0.5, 1]. CMA-ES only sees ranks, so the affine map changes nothing among candidates that meet the
    constraint. `floor` None (the reference did not train) constrains nothing.
    """
    if floor is None or accuracy >= floor:
        return 0.5 * objective
    return 0.5 + 0.5 * min(1.0, floor - accuracy)


def generation_seed(seed: int, generation: int) -> int:
    """Weights and batch-order seed shared by every candidate of `generation`."""
    return int(np.random.SeedSequence([seed, 1, generation]).generate_state(1)[0])


def reeval_seed(seed: int, index: int) -> int:
    """The `index`-th fresh seed of the final re-evaluation (never a generation's seed stream)."""
    return int(np.random.SeedSequence([seed, 2, index]).generate_state(1)[0])


@dataclass
class EvolutionResult:
    """What a run produced: `best` is the content of best_loss.json (None when nothing trained)."""

    out_dir: Path
    best: dict[str, Any] | None
    history: list[dict[str, Any]]
    reevaluations: list[dict[str, Any]]
    search_trainings: int  # candidates of the search that were trained (including diverged ones)
    reeval_trainings: int
    rejected: int
    seconds: float
    evaluated_now: int = 0  # evaluations run by this call (not read back from disk)
    generations: list[dict[str, Any]] = field(default_factory=list)


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def _record(base: dict[str, Any], evaluation: Evaluation) -> dict[str, Any]:
    return {**base, **evaluation.to_dict()}


class _Progress:
    """The tqdm bar of one generation (or rung): candidates trained out of those that train, with rate and
    ETA, the best trained candidate's fitness and validation accuracy, and how many the invariant rejected.

    Rejected candidates are recorded before training starts and never train, so they are left out of the
    count (the rate and ETA are then those of training alone); candidates read back on resume start the bar
    (tqdm's `initial`), so they do not inflate the rate. The best is taken over candidates that trained
    (status "trained") by their stated fitness (`objective` under the clean-accuracy constraint): the
    bands of failed, diverged or rejected candidates are ranks, not fitnesses, and are never shown. The bar
    opens at the first `show`, when the rejected ones are known.
    """

    def __init__(self, desc: str, total: int, enabled: bool):
        self.desc, self.total, self.enabled = desc, total, enabled
        self.bar: tqdm | None = None

    def _open(self, rejected: int, done: int) -> tqdm:
        return tqdm(
            total=max(self.total - rejected, 0),
            initial=done,
            desc=self.desc,
            unit="candidate",
            disable=not self.enabled,
            leave=True,
            dynamic_ncols=True,
        )

    @staticmethod
    def postfix(records: Sequence[dict[str, Any]]) -> dict[str, str | int]:
        """The bar's postfix: the best trained candidate among `records` (this generation's, or this rung's;
        none: nothing trained yet), rejected count. Labelled as such: the best so far is in the summary."""
        trained = [r for r in records if r.get("status") == "trained" and r.get("fitness") is not None]
        rejected = sum(r.get("status") == "rejected" for r in records)
        out: dict[str, str | int] = {}
        if trained:
            best = min(trained, key=lambda r: float(r.get("objective", r["fitness"])))
            out["best here"] = f"{float(best.get('objective', best['fitness'])):.4f}"
            if best.get("val_accuracy") is not None:
                out["val acc"] = f"{float(best['val_accuracy']):.4f}"
            if best.get("robust_accuracy") is not None:
                out["robust acc"] = f"{float(best['robust_accuracy']):.4f}"
        if rejected:
            out["rejected"] = rejected
        return out

    def show(self, records: Iterable[dict[str, Any]]) -> None:
        records = list(records)
        rejected = sum(r.get("status") == "rejected" for r in records)
        done = len(records) - rejected
        if self.bar is None:
            self.bar = self._open(rejected, done)
        self.bar.set_postfix(self.postfix(records), refresh=False)
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_resume(store: RunStore, config: EvolveConfig) -> None:
    raw = store.stored_config()
    stored = EvolveConfig.from_dict(raw, source=repr(str(store.path("config.json"))))
    if raw.get("precision") in CONCRETE_PRECISIONS:
        # what the run trained in, as recorded: validate() would resolve "fp32" with `amp` again for this
        # machine (bf16 on CUDA), and a run made on a CPU would go on in another precision
        stored.precision = raw["precision"]
    diff = stored.result_differences(config)
    if diff:
        detail = "; ".join(
            f"{k.replace('_', '-')} {getattr(config, k)!r} (run has {getattr(stored, k)!r})" for k in diff
        )
        raise ResumeError(
            f"cannot resume {str(store.out)!r} with different settings: {detail}; only execution options may change"
        )


def run_evolution(
    config: EvolveConfig,
    *,
    resume: bool = False,
    backend: Backend | None = None,
    problem: TaylorGLOProblem | None = None,
    resume_hint: tuple[str, str] = ("pass --resume", "another --out"),
) -> EvolutionResult:
    """Run (or, with `resume`, continue) an evolution described by `config` in `config.out`.

    `backend` and `problem` default to the ones the config names; pass them to reuse a Ray cluster or to
    customise the fitness. Raises `ConfigError` when `config.out` already holds a run and `resume` is
    false, or when a resumed run's result-changing options differ from the stored ones. `resume` is read by
    `parse_bool` (True/False, or true/false, yes/no, 1/0); `resume_hint` words that error for the caller
    (how to resume, how to start elsewhere).
    """
    resume = parse_bool(resume, "resume")
    config.validate()
    t_start = time.perf_counter()
    store = RunStore(config.out, robust=config.fitness_spec.robust)
    existing = store.exists()
    if existing and not resume:
        raise ConfigError(
            f"{str(store.out)!r} already holds an evolution run; {resume_hint[0]} to continue it, "
            f"or choose {resume_hint[1]}"
        )
    if existing:
        _check_resume(store, config)
    problem = problem or TaylorGLOProblem.from_config(config)
    if problem.precision != config.precision:
        raise ConfigError(
            f"the problem trains in {problem.precision!r} but the config's precision is {config.precision!r}; "
            "build it with TaylorGLOProblem.from_config(config)"
        )
    problem.prepare()  # a bad dataset / model fails here, before anything is written
    owned = backend is None
    backend = backend or make_backend(config)
    try:
        backend.check(problem)
        with store.lock():
            store.load()  # an unreadable evaluations.json stops the resume before anything is written
            _write_metadata(store, config, problem, resumed=existing, backend=backend.name)
            if existing and store.candidates:
                store.write_views()  # CSV views cut short from outside are rebuilt from evaluations.json
            return _Engine(config, store, problem, backend, t_start).run()
    finally:
        if owned:
            backend.close()


def _write_metadata(
    store: RunStore, config: EvolveConfig, problem: TaylorGLOProblem, resumed: bool, backend: str
) -> None:
    store.out.mkdir(parents=True, exist_ok=True)
    meta = run_metadata(seed=config.seed, split_seed=config.recipe.split_seed)
    meta |= {
        "data_source": problem.splits.source,
        "backend": backend,  # the one that ran (`auto` resolved)
        "n_classes": problem.n_classes,
        "model": problem.model_name,
    }
    env_path = store.path("environment.json")
    if resumed and env_path.is_file():
        first = store.read_environment()
        if first is None:  # cut short: metadata only, so it is rebuilt rather than blocking the resume
            first = {**meta, "rebuilt": f"{env_path.name} could not be read on resume; the first run's entry is lost"}
        first.setdefault("resumes", []).append(meta)
        meta = first
    atomic_write_json(env_path, meta)
    atomic_write_json(store.path("config.json"), config.to_dict())


class _Engine:
    def __init__(
        self, config: EvolveConfig, store: RunStore, problem: TaylorGLOProblem, backend: Backend, t_start: float
    ):
        self.config, self.store, self.problem, self.backend = config, store, problem, backend
        self.t_start = t_start
        self.evaluated_now = 0

    # ---- search ------------------------------------------------------------------------------------------
    def run(self) -> EvolutionResult:
        cfg, store = self.config, self.store
        state = store.load_state()
        if state is None:
            optimizer = CMAES(dim=N_PARAMS, mean=0.0, sigma=cfg.sigma0, popsize=cfg.popsize, seed=cfg.seed)
            start = 0
            store.save_state(optimizer, 0)
        else:
            optimizer, start = state
        if start > cfg.total_generations:
            raise ConfigError(
                f"the budget ({cfg.total_generations} generations) is less than the {start} this run "
                f"has finished; give generations >= {start}"
            )
        for g in range(start, cfg.total_generations):
            self._generation(optimizer, g)
        best, reevals = self._reevaluate()
        candidates = [store.candidates[k] for k in sorted(store.candidates)]
        trained = sum(r["status"] in TRAINING_STATUSES for r in candidates)
        return EvolutionResult(
            out_dir=store.out,
            best=best,
            history=candidates,
            reevaluations=reevals,
            search_trainings=trained,
            reeval_trainings=sum(r["status"] in TRAINING_STATUSES for r in store.reevaluations.values()),
            rejected=sum(r["status"] == "rejected" for r in candidates),
            seconds=time.perf_counter() - self.t_start,
            evaluated_now=self.evaluated_now,
            generations=list(store.generations),
        )

    def _generation(self, optimizer: CMAES, g: int) -> None:
        cfg, store, problem = self.config, self.store, self.problem
        t0 = time.perf_counter()
        thetas = optimizer.ask()
        if len(thetas) != cfg.popsize:
            raise RobustGloError(
                f"the CMA-ES state asks {len(thetas)} candidates, the config says popsize {cfg.popsize}"
            )
        for i, theta in enumerate(thetas):
            done = store.candidates.get((g, i))
            if done is not None and not np.array_equal(np.asarray(done["theta"]), theta):
                raise RobustGloError(
                    f"{str(store.path('evaluations.json'))!r} does not match the CMA-ES state "
                    f"at generation {g}, candidate {i}; the run directory was modified"
                )
        if cfg.fidelity == "halving" and len(cfg.rung_steps()) > 1:
            return self._halving_generation(optimizer, g, thetas, t0)
        seed, keep, base = self._screen(g, thetas)
        jobs = [
            Job((g, int(i)), tuple(base[i]["theta"]), seed)
            for i in np.flatnonzero(keep)
            if (g, int(i)) not in store.candidates
        ]
        jobs += self._reference_jobs(("search", g, 0), seed)
        bar = _Progress(f"generation {g + 1}/{cfg.total_generations}", len(thetas), cfg.progress)

        def mine() -> list[dict[str, Any]]:
            return [r for k, r in store.candidates.items() if k[0] == g]

        bar.show(mine())
        try:
            for job, evaluation in self.backend.run(problem, jobs):
                if job.reference is None:
                    store.candidates[job.key] = _record(base[job.key[1]], evaluation)
                else:
                    self._record_reference(job, evaluation)
                store.save()
                self.evaluated_now += 1
                bar.show(mine())
        finally:
            bar.close()
        for i in range(len(thetas)):
            r = store.candidates[(g, i)]
            r.setdefault("rung", None if r["status"] == "rejected" else 0)
            r.setdefault("steps", r.get("steps_trained") or 0)
            self._constrain(r, ("search", g, 0))
        self._tell(optimizer, g, thetas, t0)

    # ---- the clean-accuracy constraint -------------------------------------------------------------------
    def _reference_jobs(self, key: tuple[str, int, int], seed: int, **options: Any) -> list[Job]:
        """The reference training for `key` when the run has a clean-accuracy constraint and it is not on
        disk yet (it trains next to the candidates, on the same backend)."""
        if self.config.clean_margin is None or key in self.store.references:
            return []
        return [Job(key, (), seed, reference=REFERENCE_LOSS, **options)]

    def _record_reference(self, job: Job, evaluation: Evaluation) -> None:
        self.store.references[job.key] = {
            "kind": job.key[0],
            "at": [job.key[1], job.key[2]],
            "loss": job.reference,
            "seed": job.seed,
            **evaluation.to_dict(),
        }

    def _constrain(self, record: dict[str, Any], key: tuple[str, int, int]) -> None:
        """Turn a trained record's fitness into its rank under the clean-accuracy constraint (once: the stated
        fitness is kept as `objective`, the floor as `clean_floor`)."""
        margin = self.config.clean_margin
        if margin is None or record["status"] != "trained" or "objective" in record:
            return
        reference = self.store.references.get(key)
        ok = reference is not None and reference["status"] == "trained" and reference["val_accuracy"] is not None
        floor = float(reference["val_accuracy"]) - margin if ok else None
        record["objective"] = record["fitness"]
        record["clean_floor"] = floor
        record["fitness"] = constrained_fitness(record["fitness"], float(record["val_accuracy"]), floor)

    def _screen(self, g: int, thetas: np.ndarray) -> tuple[int, np.ndarray, list[dict[str, Any]]]:
        """Generation g's seed, which candidates pass the invariant, and every candidate's base record;
        the rejected ones are recorded (never trained) and saved."""
        seed = generation_seed(self.config.seed, g)
        keep = self.problem.screen(thetas)
        violation = self.problem.violation(thetas)
        base = [
            {"generation": g, "index": i, "theta": [float(v) for v in thetas[i]], "seed": seed}
            for i in range(len(thetas))
        ]
        for i in np.flatnonzero(~keep):
            record = _record(base[i], Evaluation.rejected(float(violation[i])))
            self.store.candidates.setdefault((g, int(i)), {**record, "rung": None, "steps": 0})
        self.store.save()
        return seed, keep, base

    def _tell(self, optimizer: CMAES, g: int, thetas: np.ndarray, t0: float) -> None:
        """Give CMA-ES the generation's fitness, record its summary, and checkpoint the state."""
        store = self.store
        records = [store.candidates[(g, i)] for i in range(len(thetas))]
        fitness = [r["fitness"] for r in records]
        optimizer.tell(thetas, fitness)
        store.generations = [row for row in store.generations if row["generation"] != g]
        store.generations.append(self._summary(g, records, optimizer, time.perf_counter() - t0))
        store.save()
        store.save_state(optimizer, g + 1)
        for path in store.path("states").glob(f"g{g}-*.pt"):  # rung states of this generation: done with
            path.unlink(missing_ok=True)

    def _halving_generation(self, optimizer: CMAES, g: int, thetas: np.ndarray, t0: float) -> None:
        """Successive halving inside generation g (docs/method.md): every candidate that passes the invariant
        trains to the first rung's budget; the best 1/eta of each rung (by the rung's fitness: the stated
        one, or clean with `rung_fitness` "clean"; under the clean-accuracy constraint its rank; ties by
        index) resume from their saved state to the next budget, up to `steps`. Every rung's result is saved
        as it arrives (evaluations.json "rungs"), so a resumed run recomputes only the jobs in flight."""
        cfg, store, problem = self.config, self.store, self.problem
        budgets = cfg.rung_steps()
        n_rungs = len(budgets)
        seed, keep, base = self._screen(g, thetas)
        store.path("states").mkdir(parents=True, exist_ok=True)
        contenders = [int(i) for i in np.flatnonzero(keep)]
        for r, budget in enumerate(budgets):
            bar = _Progress(
                f"generation {g + 1}/{cfg.total_generations} rung {r + 1}/{n_rungs}", len(contenders), cfg.progress
            )
            entered = list(contenders)

            def rung_records(r: int = r, entered: list[int] = entered) -> list[dict[str, Any]]:
                return [store.rungs[(g, i, r)] for i in entered if (g, i, r) in store.rungs]

            try:
                bar.show(rung_records())
                jobs = [
                    Job(
                        (g, i, r),
                        tuple(base[i]["theta"]),
                        seed,
                        stop_at=budget if r < n_rungs - 1 else None,
                        state=str(store.path("states") / f"g{g}-i{i}.pt"),
                        # At the first rung a good loss can still be at chance (measured: docs/method.md),
                        # so only a loss that has not moved counts as collapsed there.
                        collapse="loss" if r == 0 else "any",
                    )
                    for i in contenders
                    if (g, i, r) not in store.rungs
                ]
                jobs += self._reference_jobs(
                    ("search", g, r),
                    seed,
                    stop_at=budget if r < n_rungs - 1 else None,
                    state=str(store.path("states") / f"g{g}-reference.pt"),
                )
                for job, evaluation in self.backend.run(problem, jobs):
                    if job.reference is None:
                        store.rungs[job.key] = {
                            **_record(base[job.key[1]], evaluation),
                            "rung": r,
                            "rung_steps": budget,
                        }
                    else:
                        self._record_reference(job, evaluation)
                    store.save()
                    self.evaluated_now += 1
                    bar.show(rung_records())
                for i in contenders:
                    self._constrain(store.rungs[(g, i, r)], ("search", g, r))
                ok = [i for i in contenders if store.rungs[(g, i, r)]["status"] == "trained"]
                if r < n_rungs - 1:
                    ranked = sorted(ok, key=lambda i: (store.rungs[(g, i, r)]["fitness"], i))
                    contenders = ranked[: min(len(ranked), max(1, math.ceil(len(contenders) / cfg.eta)))]
                bar.show(rung_records())
            finally:
                bar.close()
        for i in np.flatnonzero(keep):
            i = int(i)
            mine = [store.rungs[(g, i, r)] for r in range(n_rungs) if (g, i, r) in store.rungs]
            last = mine[-1]
            steps = sum(int(e.get("steps_trained") or 0) for e in mine)
            record = {**last, "rung": last["rung"], "steps": steps}
            record.pop("rung_steps", None)
            if last["status"] == "trained" and last["rung"] < n_rungs - 1:
                record["status"] = "pruned"
                record["message"] = f"pruned after rung {last['rung'] + 1} of {n_rungs} ({last['rung_steps']} steps)"
            if record["status"] in ("pruned", "collapsed"):
                record["rung_fitness"] = last["fitness"]
                record["fitness"] = final_fitness(record["status"], last["rung"], n_rungs, last["fitness"])
            store.candidates[(g, i)] = record
        self._tell(optimizer, g, thetas, t0)

    @staticmethod
    def _summary(g: int, records: list[dict[str, Any]], optimizer: CMAES, seconds: float) -> dict[str, Any]:
        fitness = [r["fitness"] for r in records]
        counts = {s: sum(r["status"] == s for r in records) for s in STATUSES}
        return {
            "generation": g,
            "best_fitness": min(fitness),
            "median_fitness": _median(fitness),
            **counts,
            "steps": sum(int(r.get("steps") or 0) for r in records),  # training steps spent
            "sigma": optimizer.sigma,
            "seconds": seconds,
            # pycma's termination criteria that hold (recorded only: the run length is the budget's)
            "cma_stop": ";".join(sorted(optimizer.stop())),
        }

    # ---- final choice ------------------------------------------------------------------------------------
    def _top(self) -> list[dict[str, Any]]:
        """The k best distinct trained candidates of the whole search, best first."""
        ranked = sorted(
            (r for r in self.store.candidates.values() if r["status"] == "trained"),
            key=lambda r: (r["fitness"], r["generation"], r["index"]),
        )
        top, seen = [], set()
        for r in ranked:
            key = tuple(r["theta"])
            if key not in seen:
                seen.add(key)
                top.append(r)
            if len(top) == self.config.topk:
                break
        return top

    def _reevaluate(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        cfg, store = self.config, self.store
        top = self._top()
        if not top:
            return None, []
        seeds = [reeval_seed(cfg.seed, s) for s in range(cfg.reeval_seeds)]
        jobs = [
            Job((r["generation"], r["index"], s), tuple(r["theta"]), seeds[s])
            for r in top
            for s in range(cfg.reeval_seeds)
            if (r["generation"], r["index"], s) not in store.reevaluations
        ]
        for s in range(cfg.reeval_seeds):
            jobs += self._reference_jobs(("reeval", s, 0), seeds[s])
        by_key = {(r["generation"], r["index"]): r for r in top}
        bar = tqdm(
            total=len(top) * cfg.reeval_seeds,
            initial=len(top) * cfg.reeval_seeds - sum(job.reference is None for job in jobs),
            desc=f"re-evaluate top {len(top)}",
            disable=not cfg.progress,
            leave=True,
            dynamic_ncols=True,
        )
        try:
            for job, evaluation in self.backend.run(self.problem, jobs):
                if job.reference is not None:
                    self._record_reference(job, evaluation)
                    store.save()
                    continue
                g, i, s = job.key
                store.reevaluations[job.key] = _record(
                    {
                        "generation": g,
                        "index": i,
                        "seed_index": s,
                        "seed": job.seed,
                        "theta": list(job.theta),
                        "search_fitness": by_key[(g, i)]["fitness"],
                    },
                    evaluation,
                )
                store.save()
                self.evaluated_now += 1
                bar.update(1)
        finally:
            bar.close()
        rows, summaries = [], []
        for (_, _, s), record in store.reevaluations.items():
            self._constrain(record, ("reeval", s, 0))
        if cfg.clean_margin is not None:
            store.save()
        for rank, r in enumerate(top):
            evals = [store.reevaluations[(r["generation"], r["index"], s)] for s in range(cfg.reeval_seeds)]
            rows += [{**e, "rank": rank} for e in evals]
            usable = [e for e in evals if e["status"] != "failed"]  # a dead worker says nothing about the loss
            if usable:
                summaries.append((float(np.mean([e["fitness"] for e in usable])), rank, r, usable))
        store.write_reevaluation(rows)
        if not summaries:
            return None, rows
        mean_fitness, rank, chosen, usable = min(summaries, key=lambda t: (t[0], t[1]))
        best = self._best_payload(chosen, rank, mean_fitness, usable)
        save_theta_file(
            store.path("best_loss.json"),
            chosen["theta"],
            **{k: v for k, v in best.items() if k not in ("kind", "theta")},
        )
        return best, rows

    def _best_payload(
        self, chosen: dict[str, Any], rank: int, mean_fitness: float, evals: list[dict[str, Any]]
    ) -> dict[str, Any]:
        cfg = self.config

        def mean(key: str) -> float | None:
            values = [e[key] for e in evals if e[key] is not None]
            return float(np.mean(values)) if values else None

        fitness = [e["fitness"] for e in evals]
        return {
            "kind": "taylorglo",
            "theta": chosen["theta"],
            "fitness": mean_fitness,
            "fitness_std": float(np.std(fitness, ddof=1)) if len(fitness) > 1 else None,  # no spread from one seed
            "val_accuracy": mean("val_accuracy"),
            "robust_accuracy": mean("robust_accuracy"),
            **(
                {"objective": mean("objective"), "clean_margin": cfg.clean_margin}
                if cfg.clean_margin is not None
                else {}
            ),
            "reevaluations": [{k: e[k] for k in REEVAL_KEYS if k in e} for e in evals],
            "search": {
                "generation": chosen["generation"],
                "index": chosen["index"],
                "fitness": chosen["fitness"],
                "val_accuracy": chosen["val_accuracy"],
                "rank_in_search": rank,
            },
            "fitness_spec": cfg.fitness,
            "invariant": cfg.invariant,
            "dataset": cfg.dataset,
            "model": self.problem.model_name,
            "steps": cfg.steps,
            "seed": cfg.seed,
            "n_classes": self.problem.n_classes,
            "created_by": "robust-glo evolve",
        }


def load_history(out: str | Path) -> list[dict[str, Any]]:
    """The finished candidates of a run directory, in (generation, index) order."""
    store = RunStore(out)
    store.load()
    return [store.candidates[k] for k in sorted(store.candidates)]
