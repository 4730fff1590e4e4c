"""Evolution configuration: one dataclass whose fields are the `robust-glo evolve` flags and TOML keys.

Every field can come from a TOML file (`--config FILE.toml`, keys spelled like the flags, `-` or `_`)
and from the command line; flags override the file. `EvolveConfig.validate` turns unknown keys and
impossible values into one-line `ConfigError`s that name the value and what is valid.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robust_glo.data.registry import DATASETS, check_split_sizes
from robust_glo.errors import ConfigError
from robust_glo.models import list_models
from robust_glo.training.precision import check_precision, resolve_precision
from robust_glo.training.recipe import EXECUTION_RECIPE_OPTIONS, Recipe, split_recipe
from robust_glo.utils.parsing import Bound, check_field_types, parse_number, parse_seed
from robust_glo.utils.parsing import read_toml as _read_toml

INVARIANT_RULES = ("paper", "exact", "off")
FIDELITIES = ("flat", "halving")
# What a successive-halving rung ranks by: "stated" (the run's fitness, robust part included, at every rung)
# or "clean" (1 - clean validation accuracy below the last rung: cheaper, but a robust search is then steered
# by clean accuracy; kept to reproduce runs made before the stated fitness was measured at every rung).
RUNG_FITNESS = ("stated", "clean")
BACKENDS = ("auto", "local", "ray", "batched")  # auto: see backends.resolve_backend
ATTACKS = ("fgsm", "pgd")
FITNESS_USAGE = "clean | fgsm:EPS | pgd:EPS[:STEPS] | mix:W:fgsm:EPS | mix:W:pgd:EPS[:STEPS]"

# Options that only change how and where the work runs, or how long the run goes on: `--resume` may
# change them. Every other option changes the results, so a resumed run must keep it.
EXECUTION_OPTIONS = frozenset(
    {
        "out",
        "generations",
        "evaluations",
        "topk",
        "reeval_seeds",
        "backend",
        "ray_address",
        "gpus_per_task",
        "cpus_per_task",
        "num_cpus",
        "max_retries",
        "threads",
        "device",
        "data_root",
        "progress",
        *EXECUTION_RECIPE_OPTIONS,
    }
)


@dataclass(frozen=True)
class FitnessSpec:
    """What a candidate is scored on: fitness = 1 - ((1 - weight) * clean + weight * robust accuracy).

    ``attack`` is None for clean fitness (weight 0); eps is in input units (images in [0, 1]).
    ``pgd_steps`` PGD iterations (step size 2.5 eps / steps, random start).
    """

    spec: str
    attack: str | None = None
    eps: float = 0.0
    weight: float = 0.0
    pgd_steps: int = 10

    @property
    def robust(self) -> bool:
        return self.attack is not None

    def combine(self, clean_accuracy: float, robust_accuracy: float | None) -> float:
        """Fitness (lower is better) from the clean and (when attacked) robust validation accuracy."""
        if self.attack is None:
            return 1.0 - clean_accuracy
        assert robust_accuracy is not None
        return 1.0 - ((1.0 - self.weight) * clean_accuracy + self.weight * robust_accuracy)


def _number(text: str, what: str, spec: str) -> float:
    try:
        return parse_number(text)
    except ValueError:
        raise ConfigError(f"fitness {spec!r}: {what} {text!r} is not a finite number; valid: {FITNESS_USAGE}") from None


def parse_fitness(spec: str) -> FitnessSpec:
    """Parse a fitness spec: `clean`, `fgsm:EPS`, `pgd:EPS[:STEPS]` or `mix:W:ATTACK:EPS[:STEPS]`.

    EPS may be a fraction such as `8/255`; W in [0, 1] is the weight of the robust accuracy.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"fitness {spec!r} is empty; valid: {FITNESS_USAGE}")
    text = spec.strip()
    parts = text.split(":")
    if parts == ["clean"]:
        return FitnessSpec(text)
    weight = 1.0
    if parts[0] == "mix":
        if len(parts) < 4:
            raise ConfigError(
                f"fitness {spec!r}: mix needs a weight and an attack, e.g. mix:0.5:fgsm:0.1; valid: {FITNESS_USAGE}"
            )
        weight = _number(parts[1], "weight", spec)
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"fitness {spec!r}: weight must lie in [0, 1], got {parts[1]!r}")
        parts = parts[2:]
    attack = parts[0]
    if attack not in ATTACKS or len(parts) < 2 or len(parts) > (3 if attack == "pgd" else 2):
        raise ConfigError(f"fitness {spec!r} is not understood; valid: {FITNESS_USAGE}")
    eps = _number(parts[1], "eps", spec)
    if not 0.0 < eps <= 1.0:
        raise ConfigError(f"fitness {spec!r}: eps must lie in (0, 1] (images are in [0, 1]), got {parts[1]!r}")
    steps = 10
    if len(parts) == 3:
        if not re.fullmatch(r"[0-9]+", parts[2]) or int(parts[2]) < 1:
            raise ConfigError(f"fitness {spec!r}: PGD steps must be a positive integer, got {parts[2]!r}")
        steps = int(parts[2])
    return FitnessSpec(text, attack, eps, weight, steps)


DEFAULT_ATTACK_SAMPLES = 1000


# The valid ranges of the run's own numbers (the training recipe's are RECIPE_BOUNDS): `validate` checks
# them, naming the key, and `robust-glo evolve` gives each flag its range, naming the flag.
EVOLVE_BOUNDS = {
    "generations": Bound(int, 1),
    "evaluations": Bound(int, 1),
    "popsize": Bound(int, 2, why="CMA-ES ranks the population"),
    "steps": Bound(int, 1),
    "attack_samples": Bound(int, 1),
    "eta": Bound(int, 2, why="a rung keeps the best 1/eta"),
    "rungs": Bound(int, 1),
    "clean_margin": Bound(float, 0, 1, high_open=True, why="accuracy points as a fraction, e.g. 0.01"),
    "topk": Bound(int, 1),
    "reeval_seeds": Bound(int, 1),
    "sigma0": Bound(float, 0, low_open=True),
    "num_cpus": Bound(int, 1),
    "cpus_per_task": Bound(float, 0, low_open=True),
    "gpus_per_task": Bound(float, 0, why="a fraction shares a GPU"),
    "max_retries": Bound(int, 0),
    "threads": Bound(int, 1),
}


@dataclass
class EvolveConfig:
    """Everything that determines an evolution run (docs/method.md defaults where they fit a CPU).

    The paper's budget: popsize 20 (CIFAR/SVHN) to 28 (MNIST), about 10% of a full training run per
    candidate (2,000 steps on MNIST), up to 100 generations. The defaults here are smaller so that a
    default run is useful on a laptop; raise them for the paper's setting.
    """

    out: str = "runs/evolve"
    dataset: str = "fashion-mnist"
    model: str | None = None  # None: the dataset's default model
    generations: int = 10
    evaluations: int | None = None  # budget in candidates instead: ceil(evaluations / popsize) generations
    popsize: int = 20
    steps: int = 500  # SGD steps of each candidate's partial training run
    seed: int = 0  # CMA-ES sampling, and through it every generation's weights / batch order
    sigma0: float = 1.2
    invariant: str = "paper"
    fitness: str = "clean"
    # Validation images attacked for a robust fitness. None: 1000, or the whole validation split when it
    # is smaller (digits); validate() records the resolved number, and refuses more than the split holds.
    attack_samples: int | None = None
    fidelity: str = "flat"  # "flat": every candidate trains `steps`; "halving": successive halving in rungs
    eta: int = 3  # halving: the best 1/eta of a rung go on to the next
    rungs: int = 3  # halving: rung budgets steps / eta^(rungs-1), ..., steps / eta, steps
    rung_fitness: str = "stated"  # halving: what a rung ranks by (RUNG_FITNESS)
    # A clean-accuracy constraint: a candidate whose clean validation accuracy falls more than this below
    # cross-entropy's (trained with the same budget and seed) ranks below every candidate that meets it.
    # None: no constraint (docs/method.md, "Equal clean accuracy").
    clean_margin: float | None = None
    # The precision candidates train in: "fp32" (default), "bf16" or "auto" (bfloat16 on a CPU that runs it
    # natively, training/precision.py). validate() records the concrete one; it changes every candidate's
    # weights, so a resumed run keeps it. Every training of the run uses it (candidates, re-evaluation, the
    # cross-entropy reference of clean_margin); validation accuracy and the fitness attack stay float32.
    precision: str = "fp32"
    topk: int = 3  # candidates re-evaluated at the end
    reeval_seeds: int = 3  # fresh seeds each of them is re-trained on
    backend: str = "auto"  # see BACKENDS
    ray_address: str | None = None  # None: start a local Ray cluster
    num_cpus: int | None = None  # size of that local cluster (None: all cores)
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    max_retries: int = 2  # Ray retries of a task whose worker died, then "failed"
    threads: int | None = None  # torch intra-op threads per evaluation (None: local keeps torch's)
    device: str = "auto"
    data_root: str | None = None
    progress: bool = True
    recipe: Recipe = dataclasses.field(default_factory=Recipe)  # how each candidate is trained

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        """The flat keys (flags, TOML, config.json): the run's own fields and the training recipe's."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "recipe"] + list(Recipe.field_names())

    @classmethod
    def normalize_keys(cls, data: dict[str, Any], *, source: str = "config") -> dict[str, Any]:
        """Flag-style keys (`reeval-seeds`) as field names (`reeval_seeds`); an unknown key fails, naming
        `source` (say, the TOML file) and the valid keys."""
        names = cls.field_names()
        out: dict[str, Any] = {}
        for key, value in data.items():
            name = str(key).replace("-", "_")
            if name not in names:
                raise ConfigError(
                    f"unknown key {key!r} in {source}; valid keys: {', '.join(n.replace('_', '-') for n in names)}"
                )
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> EvolveConfig:
        """Build and validate from a dict with flag-style or field-name keys; unknown keys fail."""
        recipe, own = split_recipe(cls.normalize_keys(data, source=source))
        return cls(**own, recipe=recipe).validate()

    @classmethod
    def create(cls, **values: Any) -> EvolveConfig:
        """`from_dict` with keyword arguments: `EvolveConfig.create(dataset="digits", lr=0.1, out="runs/e")`."""
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        """Flat keys (see `field_names`)."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "recipe"}
        return {**own, **self.recipe.to_dict()}

    # ---- validation ---------------------------------------------------------------------------------
    def validate(self) -> EvolveConfig:
        """Check every value; raise a one-line `ConfigError` naming the first bad one."""
        check_precision(self.precision)  # before the type check: its message lists the valid values
        check_field_types(self, skip=("recipe",), dashes=True)
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if self.model is not None:
            if self.model not in list_models():
                raise ConfigError(f"unknown model {self.model!r}; valid: {', '.join(list_models())}")
        for name in ("generations", "steps", "topk", "reeval_seeds", "popsize"):
            EVOLVE_BOUNDS[name].check(name.replace("_", "-"), getattr(self, name))
        if self.evaluations is not None:
            EVOLVE_BOUNDS["evaluations"].check("evaluations", self.evaluations)
        parse_seed(self.seed, "seed")
        for name in ("max_retries", "sigma0"):
            EVOLVE_BOUNDS[name].check(name.replace("_", "-"), getattr(self, name))
        if self.invariant not in INVARIANT_RULES:
            raise ConfigError(f"invariant {self.invariant!r} is unknown; valid: {', '.join(INVARIANT_RULES)}")
        if self.fidelity not in FIDELITIES:
            raise ConfigError(f"fidelity {self.fidelity!r} is unknown; valid: {', '.join(FIDELITIES)}")
        for name in ("eta", "rungs"):
            EVOLVE_BOUNDS[name].check(name, getattr(self, name))
        if self.rung_fitness not in RUNG_FITNESS:
            raise ConfigError(f"rung-fitness {self.rung_fitness!r} is unknown; valid: {', '.join(RUNG_FITNESS)}")
        if self.clean_margin is not None and not (
            not isinstance(self.clean_margin, bool) and math.isfinite(self.clean_margin) and 0 <= self.clean_margin < 1
        ):
            raise ConfigError(
                f"clean-margin must be a number in [0, 1) (accuracy points as a fraction, e.g. 0.01), "
                f"got {self.clean_margin!r}"
            )
        if self.fidelity == "halving" and self.steps < self.eta ** (self.rungs - 1):
            raise ConfigError(
                f"steps {self.steps} is too small for {self.rungs} rungs at eta {self.eta}: the first rung would "
                f"train less than one step; give steps >= {self.eta ** (self.rungs - 1)} or fewer rungs"
            )
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend {self.backend!r} is unknown; valid: {', '.join(BACKENDS)}")
        parse_fitness(self.fitness)
        self.recipe.validate()
        self.precision = resolve_precision(self.precision, self.device, amp=self.recipe.amp)
        check_split_sizes(self.dataset, val_size=self.recipe.val_size)
        self._resolve_attack_samples()
        for name in ("cpus_per_task", "gpus_per_task", "num_cpus", "threads"):
            if getattr(self, name) is not None:
                EVOLVE_BOUNDS[name].check(name.replace("_", "-"), getattr(self, name))
        if self.ray_address is not None and self.backend != "ray":
            raise ConfigError(f"ray-address {self.ray_address!r} needs backend 'ray', not {self.backend!r}")
        if not str(self.out).strip():
            raise ConfigError("out must name a run directory")
        return self

    def _resolve_attack_samples(self) -> None:
        """attack_samples against the validation split (`val_size`, or the dataset's default): None becomes
        min(1000, split), recorded; more than the split holds is refused for a robust fitness."""
        n_val = self.recipe.val_size if self.recipe.val_size is not None else DATASETS[self.dataset].default_val_size
        if self.attack_samples is None:
            self.attack_samples = max(1, min(DEFAULT_ATTACK_SAMPLES, n_val))
            return
        if isinstance(self.attack_samples, bool) or not isinstance(self.attack_samples, int) or self.attack_samples < 1:
            raise ConfigError(f"attack-samples must be an integer >= 1, got {self.attack_samples!r}")
        if self.fitness_spec.robust and self.attack_samples > n_val:
            raise ConfigError(
                f"attack-samples {self.attack_samples} is more than the {n_val} images in the validation split of "
                f"{self.dataset}; give at most {n_val}, or leave it unset for min(1000, the split)"
            )

    @property
    def total_generations(self) -> int:
        """The run length: `generations`, or enough generations for `evaluations` candidates when given."""
        return self.generations if self.evaluations is None else -(-self.evaluations // self.popsize)

    def rung_steps(self) -> list[int]:
        """The training budget of each rung, in steps: `[steps]` when flat; with halving
        `round(steps / eta^(rungs - 1 - r))` for r = 0 .. rungs - 1 (the last is `steps`)."""
        if self.fidelity != "halving":
            return [self.steps]
        budgets = [max(1, round(self.steps / self.eta ** (self.rungs - 1 - r))) for r in range(self.rungs)]
        return sorted(set(budgets))

    @property
    def fitness_spec(self) -> FitnessSpec:
        return parse_fitness(self.fitness)

    def resolved_model(self) -> str:
        return self.model or DATASETS[self.dataset].default_model

    def result_differences(self, other: EvolveConfig) -> list[str]:
        """Names of the options that change results and differ between the two configs."""
        a, b = self.to_dict(), other.to_dict()
        # The model default is resolved, so `model = None` and the dataset's default model agree.
        a["model"], b["model"] = self.resolved_model(), other.resolved_model()
        return [k for k in a if k not in EXECUTION_OPTIONS and a[k] != b[k]]


def read_toml(path: str | Path) -> dict[str, Any]:
    """An evolution config file: flat keys only (a one-line `ConfigError` for tables or bad TOML)."""
    p = Path(path)
    data = _read_toml(p)
    nested = [k for k, v in data.items() if isinstance(v, dict)]
    if nested:
        raise ConfigError(
            f"config file {str(p)!r}: tables are not supported ([{nested[0]}]); write the options as top-level keys"
        )
    return data
