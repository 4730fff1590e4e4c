"""CMA-ES on pycma's ask/tell, with a private RNG and exact checkpoints (docs/method.md).

The optimizer knows nothing about losses or training: it proposes points in R^8 and is told their
fitness (lower is better). Defaults are the paper's: mean 0, sigma 1.2, no bounds.

Reproducibility: pycma draws its samples from the `randn` option. We pass `_Randn`, a small picklable
callable around a private `numpy.random.Generator`, so the global numpy RNG is never touched (option
`seed=nan` tells pycma not to seed it either) and `pickle_dumps()` captures the RNG state with the rest of
the strategy: an optimizer restored from `dumps()` asks exactly the population the original would have.
"""

from __future__ import annotations

import math
import pickle
import warnings

import cma
import numpy as np

from robust_glo.errors import ConfigError


class _Randn:
    """`randn(lam, N) -> (lam, N)` standard normals from a private generator (picklable)."""

    def __init__(self, seed: int):
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0xC3A])))

    def __call__(self, *shape: int) -> np.ndarray:
        return self.rng.standard_normal(shape)


class CMAES:
    """CMA-ES over `dim` real parameters: `ask() -> (popsize, dim)`, `tell(solutions, fitness)`.

    Keyword-only options; `seed` owns all the randomness.
    """

    def __init__(
        self, *, dim: int = 8, mean: float | np.ndarray = 0.0, sigma: float = 1.2, popsize: int = 20, seed: int = 0
    ):
        if popsize < 2:
            raise ConfigError(f"popsize must be >= 2, got {popsize}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"sigma must be a positive number, got {sigma}")
        x0 = np.broadcast_to(np.asarray(mean, dtype=np.float64), (dim,)).copy()
        options = {
            "popsize": int(popsize),
            "randn": _Randn(seed),
            "seed": float("nan"),  # do not seed (or touch) numpy's global RNG
            "bounds": [None, None],
            "verbose": -9,  # silent: the engine reports progress
            "verb_log": 0,  # no outcmaes/ files
            "verb_disp": 0,
            # The run length is the engine's (generations); pycma's termination criteria are only recorded.
            "maxiter": float("inf"),
            "maxfevals": float("inf"),
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._es = cma.CMAEvolutionStrategy(x0, float(sigma), options)
        self._pending: np.ndarray | None = None

    # ---- ask / tell ---------------------------------------------------------------------------------
    def ask(self) -> np.ndarray:
        """The next population, float64 `(popsize, dim)`. Call `tell` before asking again."""
        if self._pending is not None:
            raise RuntimeError("ask() called twice without tell()")
        self._pending = np.array(self._es.ask(), dtype=np.float64)
        return self._pending.copy()

    def tell(self, solutions: np.ndarray, fitness: np.ndarray | list[float]) -> None:
        """Report the fitness `(popsize,)` of the asked solutions `(popsize, dim)`; all must be finite."""
        if self._pending is None:
            raise RuntimeError("tell() called without ask()")
        values = np.asarray(fitness, dtype=np.float64)
        if values.shape != (len(self._pending),):
            raise ValueError(f"expected {len(self._pending)} fitness values, got shape {values.shape}")
        if not np.isfinite(values).all():
            # pycma would replace NaN by the median and carry on; that hides bugs, so refuse instead.
            raise ValueError(f"fitness must be finite, got {values.tolist()}")
        if not np.array_equal(np.asarray(solutions, dtype=np.float64), self._pending):
            raise ValueError("tell() got solutions other than the ones ask() returned")
        # pycma ranks with an argsort in which tied values keep their position, and its active update
        # weights tied candidates differently by that position. Told in the order of (fitness, parameters),
        # the update depends on what the candidates are, not on where they stood in the population.
        order = np.lexsort(tuple(self._pending.T[::-1]) + (values,))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._es.tell(list(self._pending[order]), values[order].tolist())
        self._pending = None

    # ---- state ----------------------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """Completed generations (ask/tell rounds)."""
        return int(self._es.countiter)

    @property
    def mean(self) -> np.ndarray:
        return np.array(self._es.mean, dtype=np.float64)

    @property
    def sigma(self) -> float:
        return float(self._es.sigma)

    @property
    def popsize(self) -> int:
        return int(self._es.popsize)

    def stop(self) -> dict:
        """pycma's termination criteria that hold now (for the record; the engine does not stop on them)."""
        return {k: v for k, v in self._es.stop(check=True).items() if k not in ("maxiter", "maxfevals")}

    def dumps(self) -> bytes:
        """An exact checkpoint between generations (pycma's `pickle_dumps`, RNG state included)."""
        if self._pending is not None:
            raise RuntimeError("checkpoint between generations: tell() the asked population first")
        return self._es.pickle_dumps()

    @classmethod
    def loads(cls, data: bytes) -> CMAES:
        """Restore an optimizer from `dumps()`."""
        es = pickle.loads(data)
        if not isinstance(es, cma.CMAEvolutionStrategy):
            raise ConfigError("the CMA-ES checkpoint does not hold a CMAEvolutionStrategy")
        obj = cls.__new__(cls)
        obj._es = es
        obj._pending = None
        return obj
