"""Where candidates are evaluated: in the process, as Ray tasks, or as one batched population.

A backend takes jobs (a theta `(8,)` and the seed of its weights and batches) and yields
`(job, Evaluation)` pairs as they finish, in any order; the engine records each one as it arrives.

- `LocalBackend`: one after another in this process.
- `RayBackend`: each job is a Ray task. `address` joins an existing cluster, otherwise a local one starts
  (`ray.init(num_cpus=..., include_dashboard=False)`). `gpus_per_task` reserves a (fractional) GPU share.
  A task whose worker dies is retried `max_retries` times, then recorded as `failed` while the run goes on;
  an exception raised by the evaluation itself is a bug or a bad setting, and stops the run.
- `BatchedBackend`: the jobs that share a seed are trained together with torch.func (see `population`).
- `auto` (the default) resolves to one of these by device and cores: see `resolve_backend`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robust_glo.evolution.config import EvolveConfig
from robust_glo.evolution.problem import Evaluation, TaylorGLOProblem
from robust_glo.utils import parallel_cpu_workers, resolve_device
from robust_glo.utils.ray_cluster import connect_ray, ray_installed


@dataclass(frozen=True)
class Job:
    """One evaluation: `key` identifies it to the caller, theta `(8,)`, and the weights/batches seed.

    A successive-halving rung adds `stop_at` (train that far), `state` (the file the candidate's training
    resumes from and is saved to) and `collapse` (stop a collapsed candidate): see `TaylorGLOProblem.evaluate`.
    """

    key: Any
    theta: tuple[float, ...]
    seed: int
    stop_at: int | None = None
    state: str | None = None
    collapse: str = ""  # "", "loss" or "any": see TaylorGLOProblem.evaluate
    reference: str | None = None  # a loss spec trained instead of theta: the clean-accuracy reference

    def options(self) -> dict[str, Any]:
        """The keywords of `TaylorGLOProblem.evaluate` that differ from its defaults (none when flat)."""
        values = {"stop_at": self.stop_at, "state": self.state, "collapse": self.collapse, "reference": self.reference}
        return {k: v for k, v in values.items() if v not in (None, "")}


class Backend:
    """Evaluate jobs; use as a context manager so that resources (a Ray cluster) are released."""

    name = "base"

    def check(self, problem: TaylorGLOProblem) -> None:
        """Raise `ConfigError` before any work when this backend cannot evaluate `problem`."""

    def run(self, problem: TaylorGLOProblem, jobs: Sequence[Job]) -> Iterator[tuple[Job, Evaluation]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalBackend(Backend):
    """Jobs one after another in this process."""

    name = "local"

    def run(self, problem: TaylorGLOProblem, jobs: Sequence[Job]) -> Iterator[tuple[Job, Evaluation]]:
        for job in jobs:
            yield job, problem.evaluate(job.theta, job.seed, **job.options())


class BatchedBackend(Backend):
    """The jobs that share a seed and budget (a generation's rung, under common random numbers) train as one
    population. Rungs are trained from the start (the population keeps no per-candidate state)."""

    name = "batched"

    def run(self, problem: TaylorGLOProblem, jobs: Sequence[Job]) -> Iterator[tuple[Job, Evaluation]]:
        for job in jobs:  # a reference loss is not a TaylorGLO theta: trained on its own
            if job.reference is not None:
                yield job, problem.evaluate(job.theta, job.seed, **job.options())
        jobs = [job for job in jobs if job.reference is None]

        def group_key(i: int) -> tuple:
            return (jobs[i].seed, jobs[i].stop_at or 0, jobs[i].collapse)

        order = sorted(range(len(jobs)), key=group_key)
        for (seed, stop_at, collapse), group in itertools.groupby(order, key=group_key):
            members = [jobs[i] for i in group]
            results = problem.evaluate_population(
                np.array([j.theta for j in members]), seed, stop_at=stop_at or None, collapse=collapse
            )
            yield from zip(members, results)


def _evaluate_task(
    problem: TaylorGLOProblem, theta: tuple[float, ...], seed: int, threads: int, options: dict[str, Any]
) -> Evaluation:
    """The body of a Ray task. Torch threads are pinned so that results do not depend on the worker."""
    import torch

    if problem.threads is None:
        torch.set_num_threads(threads)
    return problem.evaluate(theta, seed, **options)


class RayBackend(Backend):
    """Each job a Ray task on a local or existing cluster."""

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_task: float = 1.0,
        gpus_per_task: float = 0.0,
        max_retries: int = 2,
    ):
        ray, self.started = connect_ray(address, num_cpus)
        self._ray = ray
        self.cpus_per_task = float(cpus_per_task)
        self.gpus_per_task = float(gpus_per_task)
        self.max_retries = int(max_retries)
        self._remote = ray.remote(_evaluate_task).options(
            num_cpus=self.cpus_per_task,
            num_gpus=self.gpus_per_task,
            max_retries=self.max_retries,
            retry_exceptions=False,
        )
        self._problem_ref = None
        self._problem_id: int | None = None

    def run(self, problem: TaylorGLOProblem, jobs: Sequence[Job]) -> Iterator[tuple[Job, Evaluation]]:
        ray = self._ray
        if self._problem_id != id(problem):  # ship the problem settings once, not with every task
            self._problem_ref, self._problem_id = ray.put(problem), id(problem)
        threads = max(1, int(self.cpus_per_task))
        started = time.perf_counter()
        pending = {
            self._remote.remote(self._problem_ref, job.theta, job.seed, threads, job.options()): job for job in jobs
        }
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                    raise cause from None
                except ray.exceptions.RayError as exc:  # worker or node died, after max_retries
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    result = Evaluation.failed(
                        f"{type(exc).__name__} after {self.max_retries} retries: {first}", time.perf_counter() - started
                    )
                yield job, result

    def close(self) -> None:
        if self.started and self._ray.is_initialized():
            self._ray.shutdown()
        self.started = False


def resolve_backend(config: EvolveConfig) -> str:
    """The backend `config` runs on, `auto` resolved: `batched` on CUDA (a generation as one population:
    measured faster there, evaluations/perf/gpu.sh); on a CPU with two or more usable cores and no pinned
    `threads`, `ray` (a local cluster, one one-thread task per core: one-thread workers train more samples/s
    than one multi-threaded process, evaluations/perf/cpu_defaults.py) when Ray is installed (an optional
    extra); `local` otherwise."""
    if config.backend != "auto":
        return config.backend
    if resolve_device(config.device).type == "cuda":
        return "batched"
    parallel = config.threads is None and parallel_cpu_workers(config.device) >= 2
    return "ray" if parallel and ray_installed() else "local"


def make_backend(config: EvolveConfig) -> Backend:
    """The backend `resolve_backend(config)` names, with its options."""
    name = resolve_backend(config)
    if name == "local":
        return LocalBackend()
    if name == "batched":
        return BatchedBackend()
    return RayBackend(
        address=config.ray_address,
        num_cpus=config.num_cpus,
        cpus_per_task=config.cpus_per_task,
        gpus_per_task=config.gpus_per_task,
        max_retries=config.max_retries,
    )
