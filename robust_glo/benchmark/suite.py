"""Benchmark suites: TOML files that say what `robust-glo benchmark` runs. The shipped ones are package data
in `robust_glo/suites/` (read through `importlib.resources`, so they come with an installed wheel; a
source checkout also links them from `evaluations/`).

A suite has one table per pipeline stage; every key is checked, and a mistake is a one-line
`ConfigError` that names the file, the table, the bad key or value, and what is valid::

    [suite]                       # what is studied
    name = "fashion-mnist-quick"
    description = "..."
    dataset = "fashion-mnist"     # docs/data.md names
    model = "small-cnn"           # optional: the dataset's default model
    device = "auto"               # optional; data_root too
    track = true                  # optional: log to MLflow (robust_glo.tracking); tracking_uri = "..." too

    [evolve]                      # optional: no table, no evolution. Keys of the evolution config
    generations = 4               # (`robust-glo evolve`), minus dataset/model/out, which the suite sets.
    popsize = 8
    steps = 200

    [train]                       # every loss x seed is trained with the Foundation trainer
    losses = ["ce", "label_smoothing:0.1", "evolved", "poly1", "baikal"]   # "evolved": [evolve]'s best
    seeds = 3                     # 3 -> [0, 1, 2], or an explicit list
    preset = "default"            # a training preset; any other key is a TrainConfig field
    steps = 400

    [attack]                      # every trained network is attacked on the first `n` test images
    attacks = ["fgsm", "pgd:steps=10"]   # attack specs, or tables {name = "pgd", steps = 10}
    eps = [0, 0.05, 0.1, "8/255"]         # numbers or fractions in [0, 1] (or "0,0.05,8/255", as --eps)
    n = 1000

    [analyze]                     # optional: learning rule and effective target of every loss
    extra_losses = []             # more specs to analyze (not trained)

    [report]                      # optional
    baseline = "ce"               # the loss every other is compared with
    alpha = 0.05                  # significance level, applied to the adjusted p-values
    correction = "holm"           # multiple comparisons: "holm", "fdr_bh" (Benjamini-Hochberg), "bonferroni"
    bootstrap = 10000             # replicates of the seeds-and-images bootstrap
    bootstrap_seed = 0

    [variants.reduced]            # optional overrides, chosen with `--variant reduced`
    description = "..."
    train = { train_fraction = 0.1 }

`load_suite("quick")` reads the shipped `robust_glo/suites/quick.toml`; a path reads that file.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robust_glo.benchmark import engines
from robust_glo.comparison import CompareConfig
from robust_glo.data.registry import DATASETS, check_split_sizes
from robust_glo.errors import ConfigError, ModelError, RobustGloError
from robust_glo.losses import get_loss
from robust_glo.models import check_model_fits
from robust_glo.robustness.attacks import AttackSpec, list_attacks, resolve_attacks
from robust_glo.robustness.diagnostics import DiagnosticSettings
from robust_glo.robustness.statistics import check_correction
from robust_glo.training.config import PRESETS, TrainConfig
from robust_glo.utils.parsing import MAX_SEED, SEED_RANGE, parse_budgets, read_toml

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

EVOLVED = "evolved"  # the token in [train].losses that stands for the loss evolved by [evolve]
# With several evolutions ([evolve.NAME] tables), `evolved:NAME` stands for NAME's loss.
EVOLVED_PREFIX = EVOLVED + ":"
DEFAULT_EVOLUTION = ""  # the name of the one evolution of a plain [evolve] table
# [evolve] searches = K: K independent CMA-ES searches per evolution (seeds seed .. seed + K - 1); the
# benchmark trains the loss of the best one and reports every search's (docs/suites.md).
SEARCHES = "searches"
MAX_SEARCHES = 20


def evolution_of(token: str) -> str | None:
    """The evolution a loss token names ("" for `evolved`, NAME for `evolved:NAME`), or None for a loss spec."""
    if token == EVOLVED:
        return DEFAULT_EVOLUTION
    if token.startswith(EVOLVED_PREFIX):
        return token[len(EVOLVED_PREFIX) :]
    return None


def resolve_evolution(token: str, evolutions: dict[str, Any]) -> str:
    """The evolution an `evolved` / `evolved:NAME` token means among `evolutions` (`evolved` alone means the
    only one); `ConfigError` naming the valid tokens otherwise."""
    name = evolution_of(token)
    if name == DEFAULT_EVOLUTION and DEFAULT_EVOLUTION not in evolutions and len(evolutions) == 1:
        return next(iter(evolutions))
    if name is None or name not in evolutions:
        names = ", ".join(f"{EVOLVED_PREFIX}{n}" if n else EVOLVED for n in evolutions) or "none"
        raise ConfigError(f"loss {token!r} names no evolution of this suite; valid: {names}")
    return name


SECTIONS = ("suite", "evolve", "train", "attack", "analyze", "report", "variants")
SUITE_KEYS = ("name", "description", "dataset", "model", "data_root", "device", "track", "tracking_uri")
TRAIN_KEYS = ("losses", "seeds")  # plus every TrainConfig field except those the suite owns
# TrainConfig fields the suite sets elsewhere: [suite] (dataset, model, device, data_root), the seeds, and
# [attack].n (the test images attacked; training accuracy is measured on the whole test split).
TRAIN_OWNED = ("loss", "dataset", "model", "seed", "data_root", "device", "extra", "test_size")
ATTACK_KEYS = ("attacks", "eps", "eps_l2", "n", "batch_size", "seed", "tolerance", "zero_grad_threshold", "diagnostics")
ANALYZE_KEYS = ("classes", "extra_losses", "enabled")
REPORT_KEYS = ("baseline", "alpha", "title", "correction", "bootstrap", "bootstrap_seed")
EVOLVE_OWNED = ("dataset", "model", "out", "data_root", "device", "resume")
VARIANT_KEYS = ("description", "suite", "evolve", "train", "attack", "analyze", "report")


@dataclass
class Suite:
    """A validated benchmark suite. `to_dict()` is what the benchmark records as `suite.json`."""

    name: str
    description: str
    dataset: str
    model: str | None
    device: str
    data_root: str | None
    losses: list[str]
    seeds: list[int]
    train: dict[str, Any]  # preset + TrainConfig overrides
    attacks: list[str]  # canonical attack spec labels
    eps: list[float]
    n_eval: int | None  # test images attacked (None: the whole test split)
    attack_batch_size: int
    attack_seed: int
    attack_tolerance: float | None = None  # None: the robustness harness's defaults
    zero_grad_threshold: float | None = None
    eps_l2: list[float] = field(default_factory=list)  # L2 radii of the attacks given with norm=l2
    # [attack.diagnostics]: robust_glo.robustness.diagnostics.DiagnosticSettings fields (defaults elsewhere)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    # Evolution config keys by evolution name ("" for a plain [evolve] table); empty: no evolution.
    evolutions: dict[str, dict[str, Any]] = field(default_factory=dict)
    analyze: bool = True
    analyze_classes: int | None = None
    extra_losses: list[str] = field(default_factory=list)
    baseline: str = "ce"
    alpha: float = 0.05
    title: str | None = None
    correction: str = "holm"
    bootstrap: int = 10_000
    bootstrap_seed: int = 0
    source: str | None = None  # the file it came from (relative to the working directory when inside it)
    ref: str | None = None  # how it was asked for: a name such as "quick", or the path given
    variant: str | None = None
    variants: list[str] = field(default_factory=list)  # the variants the file offers
    # [suite] track / tracking_uri: log the benchmark to MLflow (robust_glo.tracking). None: not given, and then
    # left out of suite.json (unchanged when tracking is off); --track / --no-track / --tracking-uri win.
    track: bool | None = None
    tracking_uri: str | None = None

    @property
    def classes(self) -> int:
        return self.analyze_classes or DATASETS[self.dataset].num_classes

    @property
    def has_evolution(self) -> bool:
        return bool(self.evolutions)

    @property
    def evolve(self) -> dict[str, Any] | None:
        """The options of a plain [evolve] table (None when there is none)."""
        return self.evolutions.get(DEFAULT_EVOLUTION)

    def evolution_for(self, token: str) -> str:
        """The evolution name behind an `evolved` / `evolved:NAME` loss token (`evolved` means the only one)."""
        return resolve_evolution(token, self.evolutions)

    def compare_config(self, losses: list[str] | None = None) -> Any:
        """The robustness comparison (`robust_glo.comparison.CompareConfig`) of the train and attack
        stages, for `losses` (real specs; default the suite's, which must not include "evolved")."""
        losses = list(self.losses if losses is None else losses)
        options = dict(self.train)
        preset = options.pop("preset", "default")
        recipe = TrainConfig.from_preset(preset, **options)  # the preset with the suite's overrides on top
        train = {k: v for k, v in recipe.to_dict().items() if k not in TRAIN_OWNED + ("steps",)}
        extra = {
            k: v
            for k, v in (("tolerance", self.attack_tolerance), ("zero_grad_threshold", self.zero_grad_threshold))
            if v is not None
        }
        return CompareConfig(
            losses=losses,
            dataset=self.dataset,
            model=self.model or recipe.model,  # a preset's model (resnet20) unless [suite] names one
            seeds=list(self.seeds),
            steps=recipe.steps,
            attacks=list(self.attacks),
            eps=list(self.eps),
            eps_l2=list(self.eps_l2),
            test_size=self.n_eval,
            eval_batch_size=self.attack_batch_size,
            attack_seed=self.attack_seed,
            device=self.device,
            data_root=self.data_root,
            train=train,
            diagnostics=dict(self.diagnostics),
            transfer_from=self.baseline if self.baseline in losses else None,
            **extra,
        )

    def train_config(self, loss: str, seed: int) -> TrainConfig:
        """The resolved TrainConfig of one (loss, seed) piece, exactly as the comparison builds it."""
        return self.compare_config([loss]).train_config(loss, seed)

    def evolve_precision(self, options: dict[str, Any]) -> str:
        """The concrete precision ("fp32" or "bf16") the candidates of one of `evolutions`' tables train in on
        this machine."""
        own = {k: v for k, v in options.items() if k != SEARCHES}
        return engines.evolve_precision(own, dataset=self.dataset, model=self.model, device=self.device)

    def with_losses(self, specs: list[str]) -> Suite:
        """A copy with more arms: each spec (a built-in or `my_losses.py:fn`) trained on the suite's seeds and
        attacked like the others. A spec that cannot be resolved, or one already in the suite, fails."""
        added = []
        for spec in specs:
            if spec in self.losses or spec in added:
                raise ConfigError(f"loss {spec!r} is already in suite {self.name!r}: {', '.join(self.losses)}")
            if evolution_of(spec) is not None:
                raise ConfigError(f"{spec!r} is one of the suite's own evolved losses; give a loss spec")
            try:
                get_loss(spec)
            except RobustGloError as exc:
                raise ConfigError(f"added loss {spec!r}: {exc}") from None
            added.append(spec)
        return dataclasses.replace(self, losses=list(self.losses) + added)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("track", "tracking_uri"):  # recorded only when the file gives them
            if data[key] is None:
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Suite:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


SUITES_PACKAGE = "robust_glo.suites"  # the shipped suites: package data, one NAME.toml per suite


def _shipped() -> Traversable:
    return resources.files(SUITES_PACKAGE)


def list_suites() -> list[str]:
    """Names of the shipped suites (the `.toml` files of the package `robust_glo.suites`)."""
    return sorted(f.name[: -len(".toml")] for f in _shipped().iterdir() if f.name.endswith(".toml") and f.is_file())


def _find(ref: str | Path) -> Traversable:
    """A suite name (`quick`) -> the shipped `quick.toml` resource; a path -> that file, if it exists."""
    text = str(ref)
    path = Path(text)
    if path.suffix == ".toml" or "/" in text or path.is_file():
        if not path.is_file():
            hint = f"; the shipped suite {path.stem!r} is found by its name" if path.stem in list_suites() else ""
            raise ConfigError(f"suite file {text!r} does not exist{hint}")
        return path
    candidate = _shipped() / f"{text}.toml"
    if not candidate.is_file():
        raise ConfigError(
            f"unknown suite {text!r}; valid: {', '.join(list_suites()) or '(none found)'}, or a path to a .toml file"
        )
    return candidate


def suite_path(ref: str | Path) -> Path:
    """A suite name (`quick`) -> the shipped `robust_glo/suites/quick.toml`; a path is returned as it is, if
    it exists (`evaluations/quick.toml` in a source checkout is a link to the shipped file)."""
    return Path(str(_find(ref)))  # an installed package is files on disk (torch cannot run from a zip)


def load_suite(ref: str | Path, variant: str | None = None) -> Suite:
    """Read and validate a suite by name or path, with `variant`'s overrides applied."""
    found = _find(ref)
    data = read_toml(found)
    suite = parse_suite(data, source=_display_path(Path(str(found))), variant=variant)
    suite.ref = str(ref)
    return suite


def _display_path(path: Path) -> str:
    """The path relative to the working directory when inside it (links not followed, so that
    `evaluations/quick.toml` is shown as given), else as it is."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _parse_suite_table(
    s: dict[str, Any], where: _Where, source: str, variant: str | None
) -> tuple[str, str | None, str, dict[str, Any], _Where]:
    """[suite]: dataset, model and the suite's name (with the variant's suffix)."""
    w = where.sub("suite")
    _check_keys(s, SUITE_KEYS, w)
    dataset = _string(s.get("dataset", "fashion-mnist"), w, "dataset")
    if dataset not in DATASETS:
        raise ConfigError(f"{w}: unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    model = _optional_string(s.get("model"), w, "model")
    if model is not None:
        try:  # unknown, or unable to take the dataset's images: --check refuses what the run would refuse
            check_model_fits(model, DATASETS[dataset])
        except ModelError as exc:
            raise ConfigError(f"{w}: {exc}") from None
    default_name = Path(source).stem if source != "<suite>" else "suite"
    name = _string(s.get("name", default_name), w, "name") + (f"-{variant}" if variant else "")

    return dataset, model, name, s, w


def _apply_variant(data: Any, where: _Where, source: str, variant: str | None) -> tuple[dict[str, Any], list[str]]:
    """The suite's tables with `variant`'s overrides merged in (checked), and the variants it offers."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a suite must be a TOML document of tables")
    _check_keys(data, SECTIONS, where, "the top level (tables)")
    variants = data.get("variants", {})
    _require_table(variants, where, "variants")
    for vname, vtable in variants.items():
        _require_table(vtable, where, f"variants.{vname}")
        _check_keys(vtable, VARIANT_KEYS, where.sub(f"variants.{vname}"))
    data = {k: v for k, v in data.items() if k != "variants"}
    if variant is not None:
        if variant not in variants:
            raise ConfigError(
                f"{source}: unknown variant {variant!r}; valid: {', '.join(variants) or '(this suite has none)'}"
            )
        data = _merge(data, {k: v for k, v in variants[variant].items() if k != "description"})
        if "description" in variants[variant]:
            data.setdefault("suite", {})["description"] = _string(
                variants[variant]["description"], where.sub(f"variants.{variant}"), "description"
            )

    for name in ("suite", "train", "attack"):
        if name not in data:
            raise ConfigError(f"{source}: missing table [{name}]")
    for name in data:
        _require_table(data[name], where, name)

    return data, list(variants)


def parse_suite(data: dict[str, Any], *, source: str = "<suite>", variant: str | None = None) -> Suite:
    """Validate a suite given as a dict (the parsed TOML)."""
    where = _Where(source)
    data, variants = _apply_variant(data, where, source, variant)
    dataset, model, name, s, w = _parse_suite_table(data["suite"], where, source, variant)
    evolutions = _parse_evolutions(data.get("evolve"), where.sub("evolve"), dataset, model)
    losses, seeds, train = _parse_train(data["train"], where.sub("train"), evolutions)
    attacks, eps, eps_l2, n_eval, batch_size, attack_seed, tolerance, zero_grad = _parse_attack(
        data["attack"], where.sub("attack")
    )
    try:
        check_split_sizes(dataset, test_size=n_eval, test_key="n")
    except RobustGloError as exc:
        raise ConfigError(f"{where.sub('attack')}: {exc}") from None
    diagnostics = _parse_diagnostics(data["attack"].get("diagnostics", {}), where.sub("attack.diagnostics"))
    analyze, classes, extra = _parse_analyze(data.get("analyze", {}), where.sub("analyze"))
    baseline, alpha, title, stats_options = _parse_report(data.get("report", {}), where.sub("report"), losses)

    suite = Suite(
        name=name,
        description=_string(s.get("description", ""), w, "description"),
        dataset=dataset,
        model=model,
        device=_string(s.get("device", "auto"), w, "device"),
        data_root=_optional_string(s.get("data_root"), w, "data_root"),
        track=_optional_bool(s.get("track"), w, "track"),
        tracking_uri=_optional_string(s.get("tracking_uri"), w, "tracking_uri"),
        losses=losses,
        seeds=seeds,
        train=train,
        attacks=attacks,
        eps=eps,
        eps_l2=eps_l2,
        n_eval=n_eval,
        attack_batch_size=batch_size,
        attack_seed=attack_seed,
        attack_tolerance=tolerance,
        zero_grad_threshold=zero_grad,
        diagnostics=diagnostics,
        evolutions=evolutions,
        analyze=analyze,
        analyze_classes=classes,
        extra_losses=extra,
        baseline=baseline,
        alpha=alpha,
        title=title,
        **stats_options,
        source=source,
        variant=variant,
        variants=list(variants),
    )
    # Build one training config: TrainConfig.validate() catches bad values (lr <= 0, unknown schedule...).
    try:
        suite.train_config("ce", seeds[0]).resolved()
    except RobustGloError as exc:
        raise ConfigError(f"{where.sub('train')}: {exc}") from None
    except TypeError as exc:  # a value TrainConfig cannot take (e.g. milestones of the wrong shape)
        raise ConfigError(f"{where.sub('train')}: {exc}") from None
    try:
        suite.compare_config([spec for spec in losses if evolution_of(spec) is None] or ["ce"]).validated()
    except RobustGloError as exc:
        raise ConfigError(f"{where.sub('attack')}: {exc}") from None
    return suite


# ----------------------------------------------------------------------------------------- sections


def _parse_evolutions(table: Any, w: _Where, dataset: str, model: str | None) -> dict[str, dict[str, Any]]:
    """A plain [evolve] table -> {"": options}; [evolve.NAME] tables -> {NAME: shared options + NAME's}, where
    the shared options are the plain keys of [evolve]."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise ConfigError(f"{w}: must be a table")
    named = {k: v for k, v in table.items() if isinstance(v, dict)}
    shared = {k: v for k, v in table.items() if not isinstance(v, dict)}
    if not named:
        return {DEFAULT_EVOLUTION: _parse_evolve(shared, w, dataset, model)}
    out = {}
    for name, options in named.items():
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ConfigError(f"{w}: evolution name {name!r} must be letters, digits, - or _")
        out[name] = _parse_evolve({**shared, **options}, w.sub(f"evolve.{name}"), dataset, model)
    return out


def _parse_evolve(table: dict[str, Any], w: _Where, dataset: str, model: str | None) -> dict[str, Any]:
    owned = sorted(set(table) & set(EVOLVE_OWNED))
    if owned:
        raise ConfigError(
            f"{w}: key {owned[0]!r} is set by the suite, not by [evolve] "
            f"(dataset and model come from [suite], the output folder from --out)"
        )
    options = dict(table)
    searches = options.pop(SEARCHES, 1)
    if isinstance(searches, bool) or not isinstance(searches, int) or not 1 <= searches <= MAX_SEARCHES:
        raise ConfigError(
            f"{w}: {SEARCHES} must be an integer from 1 to {MAX_SEARCHES} (independent CMA-ES searches, seeds "
            f"seed, seed + 1, ...), got {searches!r}"
        )
    try:
        validated = engines.validate_evolve_options(options, dataset=dataset, model=model)
    except RobustGloError as exc:
        raise ConfigError(f"{w}: {exc}") from None
    return {**validated, SEARCHES: searches} if searches > 1 else validated


def _parse_train(
    t: dict[str, Any], w: _Where, evolutions: dict[str, dict[str, Any]]
) -> tuple[list[str], list[int], dict]:
    fields = [name for name in TrainConfig.flat_field_names() if name not in TRAIN_OWNED]
    _check_keys(t, TRAIN_KEYS + tuple(fields), w)
    if "losses" not in t:
        raise ConfigError(f'{w}: missing key \'losses\' (a list of loss specs, e.g. ["ce", "baikal"])')
    losses = _string_list(t["losses"], w, "losses")
    if not losses:
        raise ConfigError(f"{w}: 'losses' is empty; give at least one loss spec")
    for spec in losses:
        name = evolution_of(spec)
        if name is not None:
            if not evolutions:
                raise ConfigError(f"{w}: loss {spec!r} needs an [evolve] table (it is the loss evolution finds)")
            try:
                resolve_evolution(spec, evolutions)
            except ConfigError as exc:
                raise ConfigError(f"{w}: {exc}") from None
            continue
        _check_loss(spec, w, "losses")
    if len(set(losses)) != len(losses):
        dup = next(x for x in losses if losses.count(x) > 1)
        raise ConfigError(f"{w}: loss {dup!r} is listed twice")
    seeds = _parse_seeds(t.get("seeds", 3), w)
    options = {k: v for k, v in t.items() if k not in TRAIN_KEYS}
    preset = options.get("preset", "default")
    if preset not in PRESETS:
        raise ConfigError(f"{w}: unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    return losses, seeds, options


def _parse_seeds(value: Any, w: _Where) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError(f"{w}: seeds must be a count >= 1 or a list of integers >= 0, got {value}")
        return list(range(value))
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEED for v in value)
    ):
        if len(set(value)) != len(value):
            raise ConfigError(f"{w}: seeds lists a seed twice: {value}")
        return list(value)
    raise ConfigError(f"{w}: seeds must be a count >= 1 or a list of integers in {SEED_RANGE}, got {value!r}")


def _parse_attack(
    t: dict[str, Any], w: _Where
) -> tuple[list[str], list[float], list[float], int | None, int, int, float | None, float | None]:
    _check_keys(t, ATTACK_KEYS, w)
    raw = t.get("attacks")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            f"{w}: 'attacks' must be a non-empty list of attack specs; valid attacks: {', '.join(list_attacks())}"
        )
    specs: list[Any] = []
    for item in raw:
        try:
            if isinstance(item, dict):
                params = dict(item)
                if "name" not in params:
                    raise ConfigError(f"attack table {item!r} needs a 'name'")
                specs.append(AttackSpec.create(str(params.pop("name")), **params))
            elif isinstance(item, str):
                specs.append(item)
            else:
                raise ConfigError(f"attack {item!r} must be a spec string or a table with a 'name'")
        except RobustGloError as exc:
            raise ConfigError(f"{w}: {exc}") from None
    try:
        attacks = [s.label for s in resolve_attacks(specs)]
    except RobustGloError as exc:
        raise ConfigError(f"{w}: {exc}") from None
    if "eps" not in t:
        raise ConfigError(f"{w}: missing key 'eps' (a list of perturbation sizes in [0, 1], e.g. [0, 0.1])")
    eps = _budgets(t["eps"], w, "linf")
    n_eval = t.get("n")
    if n_eval is not None and not (isinstance(n_eval, int) and not isinstance(n_eval, bool) and n_eval >= 1):
        raise ConfigError(f"{w}: n (test images attacked) must be an integer >= 1, got {n_eval!r}")
    batch = t.get("batch_size", 500)
    if not (isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1):
        raise ConfigError(f"{w}: batch_size must be an integer >= 1, got {batch!r}")
    seed = t.get("seed", 0)
    if not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED):
        raise ConfigError(f"{w}: seed must be an integer in {SEED_RANGE}, got {seed!r}")
    thresholds = []
    for key in ("tolerance", "zero_grad_threshold"):
        value = t.get(key)
        if value is not None and not (_is_number(value) and 0 <= value <= 1):
            raise ConfigError(f"{w}: {key} must be a number in [0, 1], got {value!r}")
        thresholds.append(None if value is None else float(value))
    eps_l2 = _budgets(t.get("eps_l2", []), w, "l2")
    l2 = [a for a in attacks if ":norm=l2" in a]
    if l2 and not any(e > 0 for e in eps_l2):
        raise ConfigError(f"{w}: attack {l2[0]!r} is an L2 attack: give its radii with eps_l2, e.g. [0.5, 1.0]")
    return attacks, eps, eps_l2, n_eval, batch, seed, thresholds[0], thresholds[1]


def _parse_diagnostics(value: Any, w: _Where) -> dict[str, Any]:
    """[attack.diagnostics]: sizes and thresholds of the diagnostics (DiagnosticSettings), checked here."""
    _require_table(value, w, "diagnostics")
    try:
        DiagnosticSettings.from_dict(value)
    except RobustGloError as exc:
        raise ConfigError(f"{w}: {exc}") from None
    return dict(value)


def _budgets(value: Any, w: _Where, norm: str) -> list[float]:
    """[attack] eps (L-infinity budgets in [0, 1]) or eps_l2 (L2 radii of the attacks given with norm=l2):
    read by the parser of every budget (`parse_budgets`: numbers, fractions such as "8/255", lists)."""
    try:
        return parse_budgets(value, norm, name="eps" if norm == "linf" else "eps_l2")
    except ConfigError as exc:
        raise ConfigError(f"{w}: {exc}") from None


def _parse_analyze(t: dict[str, Any], w: _Where) -> tuple[bool, int | None, list[str]]:
    _check_keys(t, ANALYZE_KEYS, w)
    enabled = t.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{w}: enabled must be true or false, got {enabled!r}")
    classes = t.get("classes")
    if classes is not None and not (isinstance(classes, int) and not isinstance(classes, bool) and classes >= 2):
        raise ConfigError(f"{w}: classes must be an integer >= 2, got {classes!r}")
    extra = _string_list(t.get("extra_losses", []), w, "extra_losses")
    for spec in extra:
        _check_loss(spec, w, "extra_losses")
    return enabled, classes, extra


def _parse_report(t: dict[str, Any], w: _Where, losses: list[str]) -> tuple[str, float, str | None, dict[str, Any]]:
    _check_keys(t, REPORT_KEYS, w)
    baseline = _string(t.get("baseline", losses[0] if "ce" not in losses else "ce"), w, "baseline")
    if baseline not in losses:
        raise ConfigError(f"{w}: baseline {baseline!r} is not one of [train].losses: {', '.join(losses)}")
    alpha = t.get("alpha", 0.05)
    if not _is_number(alpha) or not 0 < alpha < 1:
        raise ConfigError(f"{w}: alpha must be a number in (0, 1), got {alpha!r}")
    title = _optional_string(t.get("title"), w, "title")
    try:
        correction = check_correction(t.get("correction", "holm"))
    except ConfigError as exc:
        raise ConfigError(f"{w}: {exc}") from None
    replicates = t.get("bootstrap", 10_000)
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1000:
        raise ConfigError(f"{w}: bootstrap must be an integer >= 1000 (replicates), got {replicates!r}")
    boot_seed = t.get("bootstrap_seed", 0)
    if isinstance(boot_seed, bool) or not isinstance(boot_seed, int) or not 0 <= boot_seed <= MAX_SEED:
        raise ConfigError(f"{w}: bootstrap_seed must be an integer in {SEED_RANGE}, got {boot_seed!r}")
    return (
        baseline,
        float(alpha),
        title,
        {"correction": correction, "bootstrap": replicates, "bootstrap_seed": boot_seed},
    )


# ----------------------------------------------------------------------------------------- helpers


class _Where:
    """`file [table]`, for messages."""

    def __init__(self, source: str, table: str | None = None):
        self.source, self.table = source, table

    def sub(self, table: str) -> _Where:
        return _Where(self.source, table)

    def __str__(self) -> str:
        return f"{self.source} [{self.table}]" if self.table else self.source


def _check_keys(table: dict[str, Any], valid: tuple[str, ...] | list[str], w: _Where, what: str = "") -> None:
    unknown = [k for k in table if k not in valid]
    if unknown:
        raise ConfigError(f"{w}: unknown key {unknown[0]!r}{' in ' + what if what else ''}; valid: {', '.join(valid)}")


def _require_table(value: Any, w: _Where, name: str) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{w.source}: [{name}] must be a table, got {value!r}")


def _string(value: Any, w: _Where, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{w}: {key} must be a string, got {value!r}")
    return value


def _optional_string(value: Any, w: _Where, key: str) -> str | None:
    return None if value is None or value == "" else _string(value, w, key)


def _optional_bool(value: Any, w: _Where, key: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{w}: {key} must be true or false, got {value!r}")
    return value


def _string_list(value: Any, w: _Where, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{w}: {key} must be a list of strings, got {value!r}")
    return [v.strip() for v in value]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_loss(spec: str, w: _Where, key: str) -> None:
    try:
        get_loss(spec)
    except RobustGloError as exc:
        raise ConfigError(f"{w}: {key}: {exc}") from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with `override`'s tables merged in (values replace, tables merge)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
