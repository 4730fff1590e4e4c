"""`evaluate_model`: robust accuracy of any logits model under several attacks and budgets.

One pass per batch computes the clean logits and the cross-entropy input-gradient; it gives clean
accuracy, the zero-gradient check and FGSM at every eps. Attacks then run only on correctly classified
samples (a misclassified input is already non-robust at any eps >= 0), and one forward pass on each
adversarial batch gives its predictions: no other forward passes.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from robust_glo.errors import ConfigError
from robust_glo.losses import get_loss
from robust_glo.models import runs_channels_last
from robust_glo.robustness.attacks import (
    MODEL_DTYPES,
    NORM,
    RESERVED_LABELS,
    AttackContext,
    AttackSpec,
    ThreatModel,
    autoattack_coverage,
    clean_gradient,
    dtype_name,
    dtype_names,
    require_torchattacks,
    resolve_attacks,
)
from robust_glo.robustness.checks import (
    BUDGET_SLACK,
    DEFAULT_TOLERANCE,
    DEFAULT_ZERO_GRAD_THRESHOLD,
    budget_slack,
    check_reliability,
)
from robust_glo.utils.device import resolve_device
from robust_glo.utils.parsing import MAX_L2, parse_bool, parse_budgets, parse_integer, parse_real, parse_seed, show

__all__ = [
    "MAX_L2",
    "RESULT_COLUMNS",
    "Evaluation",
    "StateGuard",
    "attack_dtype",
    "batch_seed",
    "check_eps",
    "check_inputs",
    "evaluate_model",
    "generate_adversarial",
    "prepared_model",
    "run_evaluation",
]

# Budgets are parsed by the one parser every entry point shares (numbers, "8/255", comma lists, sequences).
check_eps = parse_budgets

RESULT_COLUMNS = [
    "attack",
    "eps",
    "norm",
    "n",
    "correct",
    "accuracy",
    "max_perturbation",
    "out_of_range",
    "seconds",
    "params",
    "reliable",
    "flags",
]


@dataclass
class Evaluation:
    """Everything one evaluation measured.

    `results`: tidy rows (columns `RESULT_COLUMNS`): a "clean" row, one row per attack and eps, and a
    per-sample worst-case row ("worst" for L-infinity, "worst:l2" for L2) per eps at which an attack of
    that threat model ran. `flags`: the reliability checks (see `checks.py`).
    `robust[label][eps]`: per-sample bool `(N,)`, True where the model stayed correct.
    `gradient_shares`: among the correctly classified inputs, the share whose CE input-gradient is all
    zero ("zero") and the share with a NaN or infinite entry ("nonfinite"); NaN when none is correct.
    """

    results: pd.DataFrame
    flags: pd.DataFrame
    clean_correct: torch.Tensor
    robust: dict[str, dict[float, torch.Tensor]]
    zero_grad_share: float
    n_classes: int
    seed: int
    attacks: list[AttackSpec] = field(default_factory=list)
    gradient_shares: dict[str, float] = field(default_factory=dict)

    @property
    def reliable(self) -> bool:
        return bool((self.flags["status"] != "fail").all())


def check_inputs(inputs: torch.Tensor, labels: torch.Tensor) -> None:
    """Refuse inputs that are not float images in [0, 1] `(N, ...)` (float64, float32, float16 or bfloat16)
    with int labels `(N,)`."""
    if not isinstance(inputs, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise ConfigError(
            f"inputs and labels must be torch tensors, got {type(inputs).__name__} and {type(labels).__name__}"
        )
    if not inputs.is_floating_point():
        raise ConfigError(f"inputs must be a float tensor in [0, 1], got dtype {inputs.dtype}")
    if inputs.dtype not in MODEL_DTYPES:
        raise ConfigError(
            f"inputs of dtype {dtype_name(inputs.dtype)} cannot be attacked; valid: {dtype_names(MODEL_DTYPES)}"
        )
    if inputs.dim() < 2 or len(inputs) == 0:
        raise ConfigError(f"inputs must have shape (N, ...) with N >= 1, got {tuple(inputs.shape)}")
    if labels.dim() != 1 or len(labels) != len(inputs):
        raise ConfigError(f"labels must have shape ({len(inputs)},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ConfigError(f"labels must be integer class indices, got dtype {labels.dtype}")
    lo, hi = float(inputs.min()), float(inputs.max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0.0 or hi > 1.0:
        raise ConfigError(
            f"inputs must lie in [0, 1] (got min {lo:.4g}, max {hi:.4g}); put normalization "
            "inside the model as its first layer"
        )


def attack_dtype(model: nn.Module, inputs: torch.Tensor) -> torch.dtype:
    """The dtype `model` is attacked in: that of its floating-point parameters (one dtype), or for a model
    without parameters the inputs' dtype; a `ConfigError` for mixed or unsupported dtypes."""
    kinds = list(dict.fromkeys(p.dtype for p in model.parameters() if p.is_floating_point()))
    if len(kinds) > 1:
        raise ConfigError(
            f"the model's parameters mix dtypes {dtype_names(kinds)}; give them one dtype (e.g. model.float()) "
            "so that it is attacked in one precision"
        )
    dtype = kinds[0] if kinds else inputs.dtype
    if dtype not in MODEL_DTYPES:
        raise ConfigError(
            f"a {dtype_name(dtype)} model cannot be attacked; valid dtypes: {dtype_names(MODEL_DTYPES)} "
            "(e.g. model.float())"
        )
    return dtype


def batch_seed(seed: int, label: str, eps: float, batch: int) -> int:
    """A seed per (attack, eps, batch) that does not depend on which other attacks run."""
    return zlib.crc32(f"{seed}|{label}|{eps!r}|{batch}".encode()) & 0x7FFFFFFF


class _Target(nn.Module):
    """The model as torchattacks sees it: a plain module (never MAIR's `RobModel`, whose mean/std
    torchattacks would apply) with a parameter on the evaluation device, so its device detection
    works even for a parameter-free model.

    Locked in eval mode: torchattacks records the mode of the module it is given when an attack starts
    and calls `.train()` on it when the attack ends if it was in training mode, which would switch every
    BatchNorm and Dropout layer of the wrapped network to training mode for the rest of the evaluation
    (and let BatchNorm overwrite its running statistics). `train()` here only records the request.
    """

    def __init__(self, model: nn.Module, device: torch.device):
        super().__init__()
        self.model = model
        self.anchor = nn.Parameter(torch.empty(0, device=device), requires_grad=False)
        self.training = False
        model.eval()

    def train(self, mode: bool = True) -> _Target:  # noqa: ARG002 - the request is ignored on purpose
        self.training = False
        self.model.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(_ContiguousGrad.apply(x) if x.requires_grad else x)


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands the input gradient back contiguous: a network run in channels_last
    returns its input gradient in that layout, and attacks that flatten it with `.view` (torchattacks'
    PGDL2, FAB) need the usual one."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ARG004 - torch's signature
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ARG004 - torch's signature
        return grad.contiguous()


class _FunctionModel(nn.Module):
    """A plain callable `f(images) -> logits` as a parameter-free module (attacked in the inputs' dtype)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def as_model(model: Any) -> nn.Module:
    """`model` as a module: an `nn.Module` as it is; a plain callable `f(images) -> logits` (a function, a
    lambda, a jitted function) wrapped as a parameter-free module, so it runs in the inputs' dtype and its
    gradient flows through whatever torch operations it uses; anything else (42, a string, a state_dict)
    is a one-line `ConfigError`."""
    if isinstance(model, nn.Module):
        return model
    if callable(model) and not isinstance(model, type):
        return _FunctionModel(model)
    raise ConfigError(
        f"model {show(model)} is not a model; give a torch.nn.Module or a callable mapping images (N, C, H, W) "
        "to logits (N, K)"
    )


def _model_device(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


class StateGuard:
    """A snapshot of a model's parameters and buffers, to prove that an evaluation left them untouched."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.saved = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def changed(self) -> list[str]:
        """Names of the state_dict entries that differ (bit for bit) from the snapshot."""
        now = self.model.state_dict()
        return [
            k
            for k, v in self.saved.items()
            if k not in now or now[k].shape != v.shape or not torch.equal(now[k].detach().to(v.device), v)
        ]

    def restore(self) -> None:
        self.model.load_state_dict(self.saved)


@contextmanager
def prepared_model(model: nn.Module, device: torch.device) -> Iterator[_Target]:
    """Eval mode (locked: see `_Target`), parameters frozen, on `device`; every module's mode,
    requires_grad flags and the model's device are restored afterwards. On a CPU where
    `utils.device.cpu_layout` says channels_last, a model whose 4-D tensors are contiguous runs in that
    layout (the quick suite's attacks 1.37x faster there; identical outcomes on the networks measured by
    evaluations/perf/cpu_layout.py) and is returned contiguous."""
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    home = _model_device(model)
    images = [t for t in [*model.parameters(), *model.buffers()] if t.dim() == 4]
    relayout = bool(images) and runs_channels_last(model, device) and all(t.is_contiguous() for t in images)
    try:
        if home != device:
            model.to(device)
        if relayout:
            model.to(memory_format=torch.channels_last)
        model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield _Target(model, device)
    finally:
        for p, flag in grads:
            p.requires_grad_(flag)
        for m, flag in modes:
            m.training = flag
        if relayout:
            model.to(memory_format=torch.contiguous_format)
        if home != device:
            model.to(home)


def _rng_devices() -> list[int]:
    # torchattacks calls torch.cuda.manual_seed even for CPU attacks; fork every visible GPU's RNG so no
    # seed leaks into a later CUDA computation.
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


class _Tally:
    """Per-input outcomes and per-(attack, eps) bookkeeping of one evaluation, filled batch by batch."""

    def __init__(self, n: int, specs: list[AttackSpec], eps_list: list[float], seed: int, eps_l2: list[float] = ()):
        self.n, self.specs, self.seed = n, specs, seed
        self.eps_by_norm = {ThreatModel.LINF: list(eps_list), ThreatModel.L2: list(eps_l2)}
        keys = [(s.label, e) for s in specs for e in self.eps_for(s)]
        self.clean_correct = torch.zeros(n, dtype=torch.bool)
        self.clean_after = torch.zeros(n, dtype=torch.bool)  # clean predictions again, after the attacks
        self.eps0_correct = torch.zeros(n, dtype=torch.bool)
        self.zero_grad = torch.zeros(n, dtype=torch.bool)  # every entry of the CE input-gradient is 0
        self.nonfinite_grad = torch.zeros(n, dtype=torch.bool)  # some entry is NaN or infinite
        self.robust = {s.label: {e: torch.zeros(n, dtype=torch.bool) for e in self.eps_for(s)} for s in specs}
        self.attacked = {k: torch.zeros(n, dtype=torch.bool) for k in keys}  # the inputs each attack ran on
        self.max_pert = dict.fromkeys(keys, 0.0)
        self.out_of_range = dict.fromkeys(keys, 0)
        self.seconds = dict.fromkeys(keys, 0.0)
        self.clean_seconds = self.eps0_seconds = 0.0
        self.n_classes = 0

    def clean_pass(
        self,
        target: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        start: int,
        check: Callable[[torch.Tensor], None] | None,
        dev: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean logits and CE input-gradient of one batch; returns (correct `(B,)`, grad `(B, C, H, W)`)."""
        t0 = time.perf_counter()
        logits, grad = clean_gradient(target, x, y, check=check)
        self.n_classes = int(logits.shape[1])
        correct = logits.argmax(1) == y
        self.clean_seconds += time.perf_counter() - t0
        stop = start + len(y)
        self.clean_correct[start:stop] = correct.cpu()
        flat = grad.flatten(1)
        # Distinct: NaN == 0 is False, so a NaN gradient is nonfinite and never zero.
        self.zero_grad[start:stop] = (flat == 0).all(1).cpu()
        self.nonfinite_grad[start:stop] = (~torch.isfinite(flat)).any(1).cpu()
        if any(0.0 in budgets for budgets in self.eps_by_norm.values()):
            # eps = 0 is not attacked, but re-predicted through the no-grad path adversarial inputs take,
            # so that a nondeterministic model or pipeline shows up against clean accuracy.
            t0 = time.perf_counter()
            self.eps0_correct[start:stop] = (AttackContext(target, self.n_classes, dev).predict(x) == y).cpu()
            self.eps0_seconds += time.perf_counter() - t0
        return correct, grad

    def attack(
        self,
        ctx: AttackContext,
        spec: AttackSpec,
        e: float,
        batch: int,
        xs: torch.Tensor,
        ys: torch.Tensor,
        where: torch.Tensor,
        earlier: list[AttackSpec] = (),
    ) -> None:
        """Run one attack at one eps on the correctly classified inputs `xs` of a batch (rows `where`); with
        `earlier` (a cascade), only on those of them that every earlier attack left correct."""
        if earlier:
            alive = self.standing(e, where, earlier)
            if not bool(alive.any()):
                return
            if not bool(alive.all()):
                pick = alive.nonzero().squeeze(1).to(xs.device)
                grad = ctx.clean_grad[pick] if ctx.clean_grad is not None else None
                ctx = AttackContext(ctx.model, ctx.n_classes, ctx.device, clean_grad=grad, train_loss=ctx.train_loss)
                xs, ys, where = xs[pick], ys[pick], where[alive]
        self.attacked[spec.label, e][where] = True
        t0 = time.perf_counter()
        s = batch_seed(self.seed, spec.label, e, batch)
        torch.manual_seed(s)
        adv = spec.entry.runner(ctx, xs, ys, e, spec.resolved(), s).detach()
        held = ctx.predict(adv) == ys
        self.record(spec, e, where, xs, adv, held, time.perf_counter() - t0)

    def standing(self, e: float, where: torch.Tensor, earlier: Sequence[AttackSpec]) -> torch.Tensor:
        """Which of the inputs at rows `where` `(n,)` every attack of `earlier` that ran at `e` left
        correct: bool `(n,)` (all True for no earlier attack)."""
        alive = torch.ones(len(where), dtype=torch.bool)
        for other in earlier:
            if other.runs_at(e):
                alive &= self.robust[other.label][e][where]
        return alive

    def record(
        self,
        spec: AttackSpec,
        e: float,
        where: torch.Tensor,
        xs: torch.Tensor,
        adv: torch.Tensor,
        held: torch.Tensor,
        seconds: float,
    ) -> None:
        """Book one attack's result at `e` on the inputs at rows `where` `(n,)`: clean inputs `xs` and
        adversarial inputs `adv` `(n, C, H, W)`, `held` `(n,)` True where the prediction stayed correct,
        and the seconds it took."""
        self.seconds[spec.label, e] += seconds
        self.robust[spec.label][e][where] = held.cpu()
        # Few full passes over adv: on small models these checks would otherwise cost as much as the
        # attack's own forward pass.
        lo, hi = (float(v) for v in torch.aminmax(adv))
        if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
            bad = ~torch.isfinite(adv) | (adv < 0) | (adv > 1)
            self.out_of_range[spec.label, e] += int(bad.flatten(1).any(1).sum())
        # The perturbation in float32 at least (float16 / bfloat16 differences would round again).
        wide = torch.promote_types(adv.dtype, torch.float32)
        delta = adv.to(wide) - xs.to(wide)
        if spec.threat is ThreatModel.L2:
            moved = float(delta.flatten(1).norm(dim=1).max()) if len(xs) else 0.0
        else:
            d_lo, d_hi = (float(v) for v in torch.aminmax(delta))
            moved = max(-d_lo, d_hi) if not (math.isnan(d_lo) or math.isnan(d_hi)) else math.inf
        self.max_pert[spec.label, e] = max(self.max_pert[spec.label, e], moved)

    def eps_for(self, spec: AttackSpec) -> list[float]:
        """The budgets an attack runs at (> 0): its threat model's list, from its min_eps on."""
        return [e for e in self.eps_by_norm[spec.threat] if e > 0 and spec.runs_at(e)]

    def same_norm(self, threat: ThreatModel | str) -> list[AttackSpec]:
        threat = ThreatModel.parse(threat)
        return [s for s in self.specs if s.threat is threat]

    def ran_at(self, threat: ThreatModel, e: float) -> list[AttackSpec]:
        """The attacks of `threat` that run at budget `e` (at e = 0: all of them, whose eps = 0 rows exist)."""
        return [s for s in self.same_norm(threat) if s.runs_at(e)]

    def worst(self) -> dict[str, dict[float, torch.Tensor]]:
        """Per-input AND over the attacks of each threat model, per eps: {"worst": Linf, "worst:l2": L2}.

        A worst case exists at an eps > 0 only where at least one attack of that threat model ran there
        (never a "worst case" over no attack, which would equal clean accuracy); at eps = 0 it is the
        eps = 0 predictions, where 0 is among that threat model's budgets and it has an attack."""
        out: dict[str, dict[float, torch.Tensor]] = {}
        for threat in ThreatModel:
            by_eps: dict[float, torch.Tensor] = {}
            for e in self.eps_by_norm[threat]:
                ran = self.ran_at(threat, e)
                if not ran:
                    continue
                if e == 0.0:
                    by_eps[e] = self.eps0_correct.clone()
                    continue
                held = self.clean_correct.clone()
                for spec in ran:
                    held &= self.robust[spec.label][e]
                by_eps[e] = held
            if by_eps:
                out[threat.worst_label] = by_eps
        return out

    def rows(self, worst: dict[str, dict[float, torch.Tensor]]) -> pd.DataFrame:
        """The results table without its reliability columns."""
        n, k = self.n, self.n_classes
        rows = [_row("clean", 0.0, n, int(self.clean_correct.sum()), self.clean_seconds, {})]
        for spec in self.specs:
            if 0.0 in self.eps_by_norm[spec.threat]:
                rows.append(
                    _row(
                        spec.label,
                        0.0,
                        n,
                        int(self.eps0_correct.sum()),
                        self.eps0_seconds,
                        spec.budget(0.0, k),
                        max_perturbation=0.0,
                        out_of_range=0,
                        norm=spec.norm_name,
                    )
                )
            for e in self.eps_for(spec):
                rows.append(
                    _row(
                        spec.label,
                        e,
                        n,
                        int(self.robust[spec.label][e].sum()),
                        self.seconds[spec.label, e],
                        {**spec.budget(e, k), **self.schedule(spec, e)},
                        max_perturbation=self.max_pert[spec.label, e],
                        out_of_range=self.out_of_range[spec.label, e],
                        norm=spec.norm_name,
                    )
                )
        for threat in ThreatModel:
            for e, held in worst.get(threat.worst_label, {}).items():
                ran = self.ran_at(threat, e)
                cover = autoattack_coverage(ran, e, threat, k)
                params = {"over": [s.label for s in ran], "autoattack": cover.verified, "missing": list(cover.missing)}
                rows.append(_row(threat.worst_label, e, n, int(held.sum()), 0.0, params, norm=threat.display))
        return pd.DataFrame(rows)

    def schedule(self, spec: AttackSpec, e: float) -> dict:
        """Where the attack ran, for the `params` column: after which attacks (a cascade), from which eps."""
        out: dict = {}
        if spec.cascade:
            before = self.specs[: self.specs.index(spec)]
            out["cascade_after"] = [s.label for s in before if s.threat is spec.threat and s.runs_at(e)]
        if spec.min_eps > 0:
            out["min_eps"] = spec.min_eps
        return out

    def gradient_free_breaks(self) -> dict[tuple[str, float], float]:
        """Share of all inputs that survived every gradient attack but a gradient-free attack broke, per
        (gradient-free attack, eps): the per-input form of "a gradient-free attack must not do better"."""
        out = {}
        for free in (s for s in self.specs if s.kind == "gradient-free"):
            for e in self.eps_for(free):
                grads = [s for s in self.same_norm(free.threat) if s.kind in ("gradient", "ensemble") and s.runs_at(e)]
                if not grads:
                    continue
                survivors = self.clean_correct.clone()
                for g in grads:
                    survivors &= self.robust[g.label][e]
                broke = survivors & self.attacked[free.label, e] & ~self.robust[free.label][e]
                out[free.label, e] = float(broke.sum()) / self.n
        return out

    def zero_grad_share(self) -> float:
        return self.gradient_shares()["zero"]

    def gradient_shares(self) -> dict[str, float]:
        """Shares of the correctly classified inputs whose CE input-gradient is all zero ("zero") or has a
        NaN or infinite entry ("nonfinite"); NaN when no input is classified correctly."""
        if not bool(self.clean_correct.any()):
            return {"zero": float("nan"), "nonfinite": float("nan")}
        return {
            "zero": float(self.zero_grad[self.clean_correct].float().mean()),
            "nonfinite": float(self.nonfinite_grad[self.clean_correct].float().mean()),
        }


@dataclass(frozen=True)
class _Arguments:
    """The arguments of one evaluation, parsed once into the types the rest trusts."""

    specs: list[AttackSpec]
    eps: list[float]
    eps_l2: list[float]
    batch_size: int
    device: torch.device
    seed: int
    tolerance: float
    zero_grad_threshold: float
    dtype: torch.dtype  # the model's: inputs are attacked in it


def _checked_arguments(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    attacks,
    eps,
    eps_l2,
    batch_size,
    device,
    seed,
    tolerance=DEFAULT_TOLERANCE,
    zero_grad_threshold=DEFAULT_ZERO_GRAD_THRESHOLD,
) -> _Arguments:
    as_model(model)
    specs = resolve_attacks(attacks)
    require_torchattacks(specs)  # before any work: torchattacks is installed apart (README, Install)
    clash = [s.label for s in specs if s.label in RESERVED_LABELS]
    if clash:
        raise ConfigError(f"{clash[0]!r} is a reserved row name, not an attack")
    eps_list = parse_budgets(eps, "linf", name="eps")
    radii = parse_budgets(eps_l2, "l2", name="eps_l2")
    l2 = [s.label for s in specs if s.threat is ThreatModel.L2]
    if l2 and not any(r > 0 for r in radii):
        raise ConfigError(f"attack {l2[0]!r} is an L2 attack: give its radii with eps_l2, e.g. 0.5,1.0")
    check_inputs(inputs, labels)
    batch_size = parse_integer(batch_size, "batch_size", minimum=1)
    seed = parse_seed(seed, "seed")
    tolerance = parse_real(tolerance, "tolerance", low=0.0, high=1.0)
    zero_grad_threshold = parse_real(zero_grad_threshold, "zero_grad_threshold", low=0.0, high=1.0)
    dtype = attack_dtype(model, inputs)
    for spec in specs:
        spec.check_dtype(dtype)
    if device is None:
        dev = _model_device(model)
    else:
        dev = resolve_device(device)
    return _Arguments(specs, eps_list, radii, batch_size, dev, seed, tolerance, zero_grad_threshold, dtype)


def _attack_batches(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    tally: _Tally,
    dev: torch.device,
    batch_size: int,
    progress: bool,
    dtype: torch.dtype = torch.float32,
    train_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> list[str]:
    """Every batch, in `dtype` (the model's): clean pass, then each attack at each eps on the inputs still
    standing, then the clean predictions once more; returns the state_dict entries the evaluation changed
    (restored if any). `train_loss`: the network's training loss, for `fgsm:loss=train`."""
    specs, n = tally.specs, len(labels)
    wants_grad = any(s.entry.uses_clean_grad for s in specs)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        per_batch = 1 + sum(len(tally.eps_for(s)) for s in specs)
        bar = tqdm(total=math.ceil(n / batch_size) * per_batch, desc="evaluate", leave=False)
    guard = StateGuard(model)
    with prepared_model(model, dev) as target, torch.random.fork_rng(devices=_rng_devices()):
        for b, start in enumerate(range(0, n, batch_size)):
            x = inputs[start : start + batch_size].to(dev, dtype)
            y = labels[start : start + batch_size].to(dev, torch.int64)
            check = (lambda out, rows=len(y): _check_output(out, labels, specs, rows)) if b == 0 else None
            correct, grad = tally.clean_pass(target, x, y, start, check, dev)
            if bar is not None:
                bar.update(1)
            keep = correct.nonzero().squeeze(1)
            if len(keep) == len(y):
                xs, ys, gs = x, y, grad
            else:
                xs, ys, gs = x[keep], y[keep], grad[keep] if wants_grad else None
            ctx = AttackContext(target, tally.n_classes, dev, clean_grad=gs, train_loss=train_loss)
            for i, spec in enumerate(specs):
                earlier = [s for s in specs[:i] if s.threat is spec.threat] if spec.cascade else []
                for e in tally.eps_for(spec):
                    if len(keep):
                        tally.attack(ctx, spec, e, b, xs, ys, start + keep.cpu(), earlier)
                    if bar is not None:
                        bar.update(1)
            # Clean predictions once more, after every attack on this batch: a model whose mode or state
            # an attack changed (BatchNorm statistics, dropout) predicts differently now.
            tally.clean_after[start : start + len(y)] = (ctx.predict(x) == y).cpu()
    if bar is not None:
        bar.close()
    changed = guard.changed()
    if changed:  # put the model back as it was; the flag marks these results unreliable
        guard.restore()
    return changed


def run_evaluation(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    attacks: str | Sequence[str | AttackSpec] = ("fgsm", "pgd"),
    eps: float | str | Sequence[float | str] = (0.0, 0.05, 0.1),
    *,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    seed: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
    zero_grad_threshold: float = DEFAULT_ZERO_GRAD_THRESHOLD,
    progress: bool = False,
    eps_l2: float | str | Sequence[float | str] = (),
    train_loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Evaluation:
    """Attack `model` on `inputs` `(N, C, H, W)` in [0, 1] with integer `labels` `(N,)`.

    `eps` are the L-infinity budgets, in [0, 1]; `eps_l2` the L2 radii, in [0, 100], of the attacks given
    with `norm=l2` (`pgd:norm=l2`, `apgd-ce:norm=l2`, ..., `aa-reference:norm=l2`). Each is one real
    scalar (a float, a numpy scalar, a `Fraction`, ...), a string read as `--eps` reads it ("0,0.05,8/255"),
    or a sequence of these; each budget once. Rows carry the norm; the per-input worst case is `worst` over
    the L-infinity attacks and `worst:l2` over the L2 ones, at the budgets where at least one of them ran;
    its `params` record the attacks it is over (`over`) and whether they cover the standard AutoAttack
    ensemble there (`autoattack`, `missing`: see `autoattack_coverage`). `batch_size` (>= 1) and `seed`
    (>= 0) are integers of any kind, or strings such as "500"; `tolerance` and `zero_grad_threshold` lie in
    [0, 1].

    `model` maps a batch `(B, C, H, W)` to logits `(B, K)`; K (n_classes) is read from its output. It is
    evaluated in eval mode, with its modes and device restored afterwards, and attacked in its own dtype:
    that of its floating-point parameters (float64, float32, float16 or bfloat16; a model without
    parameters: the inputs' dtype), to which the inputs (any of those four dtypes) are cast; the budget
    check allows that dtype's rounding (`robustness.checks.budget_slack`). Attacks run inside
    `torch.random.fork_rng` from seeds derived from `seed`, so results are reproducible and the global
    RNG is untouched. Returns an `Evaluation` (results table, reliability flags, per-sample outcomes).
    `train_loss` (a loss spec such as "baikal", or `loss(logits (B, K), targets (B,)) -> scalar`) is the
    loss the network was trained with, needed by `fgsm:loss=train` (the TaylorGLO paper's protocol).

    Raises `ConfigError` (one line, before any attack runs) for an unknown attack, a bad budget or option,
    inputs or labels of the wrong shape, dtype or range, a model whose parameters mix dtypes, and an
    attack that cannot run in the model's dtype (torchattacks' APGD, APGD-T and Square run in float64
    and float32, FAB-T and `aa-reference` in float32 only; FGSM and PGD in all four).
    """
    model = as_model(model)
    args = _checked_arguments(
        model, inputs, labels, attacks, eps, eps_l2, batch_size, device, seed, tolerance, zero_grad_threshold
    )
    progress = parse_bool(progress, "progress")
    specs, seed = args.specs, args.seed
    loss_fn = _training_loss(train_loss, specs)
    tally = _Tally(len(labels), specs, args.eps, seed, args.eps_l2)
    changed = _attack_batches(
        model, inputs, labels, tally, args.device, args.batch_size, progress, args.dtype, train_loss=loss_fn
    )
    return _finish(tally, args, changed, tuple(inputs.shape[1:]))


def _training_loss(
    train_loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None, specs: Sequence[AttackSpec]
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The training loss as a callable (a spec is built with `get_loss`); `ConfigError` before any attack
    when an attack needs it and none was given."""
    if train_loss is None:
        needs = [s.label for s in specs if s.resolved().get("loss") == "train"]
        if needs:
            raise ConfigError(
                f"attack {needs[0]!r} needs the network's training loss: pass train_loss= (a loss spec or a "
                "callable); robust-glo benchmark and robust-glo evaluate pass it themselves"
            )
        return None
    return get_loss(train_loss) if isinstance(train_loss, str) else train_loss


def _finish(tally: _Tally, args: _Arguments, changed: list[str], image_shape: tuple[int, ...]) -> Evaluation:
    """The `Evaluation` of a filled tally: worst cases, results table and reliability checks; `changed`:
    the state_dict entries the attacks changed, `image_shape` `(C, H, W)` (for the budget slack)."""
    specs, seed = args.specs, args.seed
    worst = tally.worst()
    for threat in ThreatModel:
        if threat.worst_label in worst:
            same = {s.label: tally.robust[s.label] for s in tally.same_norm(threat)}
            _assert_invariants(tally.clean_correct, same, worst[threat.worst_label])
    results = tally.rows(worst)
    free_breaks = tally.gradient_free_breaks()
    shares = tally.gradient_shares()
    robust = tally.robust
    for spec in specs:
        if 0.0 in tally.eps_by_norm[spec.threat]:
            robust[spec.label][0.0] = tally.eps0_correct.clone()
    robust.update(worst)
    flags = check_reliability(
        results,
        shares["zero"],
        tolerance=args.tolerance,
        zero_grad_threshold=args.zero_grad_threshold,
        budget_slack={t.display: budget_slack(args.dtype, t.display, image_shape) for t in ThreatModel},
        clean_changed=int((tally.clean_after != tally.clean_correct).sum()),
        state_changed=changed,
        free_breaks=free_breaks,
        nonfinite_grad_share=shares["nonfinite"],
    )
    failed = flags.loc[flags["status"] == "fail", "check"].tolist()
    results["reliable"] = not failed
    results["flags"] = ";".join(failed)
    return Evaluation(
        results[RESULT_COLUMNS],
        flags,
        tally.clean_correct,
        robust,
        shares["zero"],
        tally.n_classes,
        seed,
        specs,
        shares,
    )


def evaluate_model(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    attacks: str | Sequence[str | AttackSpec] = ("fgsm", "pgd"),
    eps: float | str | Sequence[float | str] = (0.0, 0.05, 0.1),
    *,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    seed: int = 0,
    tolerance: float = DEFAULT_TOLERANCE,
    zero_grad_threshold: float = DEFAULT_ZERO_GRAD_THRESHOLD,
    progress: bool = False,
    eps_l2: float | str | Sequence[float | str] = (),
    train_loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> pd.DataFrame:
    """Robust accuracy table for `model` on `inputs` `(N, C, H, W)` in [0, 1] and `labels` `(N,)`.

    Columns: attack, eps, norm ("Linf" or "L2"), n, correct, accuracy, max_perturbation, out_of_range,
    seconds, params (JSON budget of what ran), reliable and flags (the failed reliability checks,
    ";"-joined). Rows: "clean"; each attack at each eps it ran at; "worst" / "worst:l2" (per-sample worst
    case over the attacks of that threat model that ran) per eps.
    `run_evaluation` takes the same arguments (budgets as numbers, strings such as "0,8/255" or sequences;
    any model dtype among float64, float32, float16, bfloat16) and raises the same one-line `ConfigError`s;
    it also returns the checks table and per-sample outcomes.
    """
    return run_evaluation(
        model,
        inputs,
        labels,
        attacks,
        eps,
        batch_size=batch_size,
        device=device,
        seed=seed,
        tolerance=tolerance,
        zero_grad_threshold=zero_grad_threshold,
        progress=progress,
        eps_l2=eps_l2,
        train_loss=train_loss,
    ).results


def one_attack_and_budget(attack: str | AttackSpec, eps: float | str, caller: str) -> tuple[AttackSpec, float]:
    """The one attack spec and the one budget (in its threat model) that `caller` takes; a one-line
    `ConfigError` naming the value for anything else."""
    specs = resolve_attacks(attack if isinstance(attack, (str, AttackSpec)) else [attack])
    if len(specs) != 1:
        raise ConfigError(f"{caller} takes one attack, got {show(attack)}")
    require_torchattacks(specs)
    budgets = parse_budgets(eps, specs[0].norm, name="eps")
    if len(budgets) != 1:
        raise ConfigError(f"eps {show(eps)}: {caller} takes one budget, got {len(budgets)}")
    return specs[0], budgets[0]


def generate_adversarial(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    attack: str | AttackSpec,
    eps: float | str,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Adversarial inputs for every input (correctly classified or not), in one batch, under the same
    isolation as `evaluate_model` (eval mode, forked RNG). For inspection and tests.

    `inputs` `(N, C, H, W)` in [0, 1] (float64, float32, float16 or bfloat16), integer `labels` `(N,)`;
    `attack` one attack spec; `eps` one budget (a real scalar or a string such as "8/255"; an L2 radius
    for a `norm=l2` attack); `seed` an integer >= 0. The attack runs in the model's dtype (see
    `run_evaluation`); the result has the shape and dtype of `inputs`, on the evaluation device. Raises a
    one-line `ConfigError` for what `run_evaluation` refuses, and for more than one attack or budget.
    """
    model = as_model(model)
    spec, eps = one_attack_and_budget(attack, eps, "generate_adversarial")
    seed = parse_seed(seed, "seed")
    check_inputs(inputs, labels)
    dtype = attack_dtype(model, inputs)
    spec.check_dtype(dtype)
    dev = _model_device(model) if device is None else torch.device(device)
    with prepared_model(model, dev) as target, torch.random.fork_rng(devices=_rng_devices()):
        x, y = inputs.to(dev, dtype), labels.to(dev, torch.int64)
        logits, grad = clean_gradient(target, x, y, check=lambda out: _check_output(out, labels, [spec], len(y)))
        if eps == 0.0:
            return inputs.to(dev).clone()
        s = batch_seed(seed, spec.label, eps, 0)
        torch.manual_seed(s)
        ctx = AttackContext(target, int(logits.shape[1]), dev, clean_grad=grad)
        adversarial = spec.entry.runner(ctx, x, y, eps, spec.resolved(), s).detach()
        return within_budget(adversarial, inputs.to(dev), eps, spec.norm)


def within_budget(adversarial: torch.Tensor, clean: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """`adversarial` in the dtype of `clean`, within `eps` of it in that dtype: an attack run in another
    dtype (a float16 model on float32 inputs) or rounding to a low-precision dtype (bfloat16) can land a
    value just past the budget. The perturbation is clamped to the budget in float64 (L-infinity) or
    scaled onto it (L2), and a value that rounding still puts outside is moved one step toward the clean
    input; the result stays in [0, 1]."""
    dtype = clean.dtype
    base = clean.double()
    delta = adversarial.double() - base
    if adversarial.dtype == dtype and dtype.itemsize >= 4:
        # Computed in the input's own float32/float64: what the attack returned is the answer (bit for bit
        # torchattacks' result), unless it overshoots by more than that dtype's rounding.
        size = delta.flatten(1).norm(dim=1) if norm == "l2" else delta.abs().flatten(1).amax(dim=1)
        in_range = 0.0 <= float(adversarial.min()) and float(adversarial.max()) <= 1.0
        if in_range and bool((size <= eps + BUDGET_SLACK).all()):
            return adversarial
    if norm == "l2":
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-30)
        delta = delta * (eps / norms).clamp(max=1.0).view(-1, *[1] * (delta.dim() - 1))
    else:
        delta = delta.clamp(-eps, eps)
    out = (base + delta).clamp(0.0, 1.0).to(dtype)
    for _ in range(8):  # rounding: at most a few steps of the dtype toward the clean input
        diff = out.double() - base
        if norm == "l2":
            over_rows = diff.flatten(1).norm(dim=1) > eps
            over = over_rows.view(-1, *[1] * (diff.dim() - 1)).expand_as(diff) & (diff != 0)
        else:
            over = diff.abs() > eps
        if not bool(over.any()):
            break
        out = torch.where(over, torch.nextafter(out, clean), out)
    return out


def _assert_invariants(
    clean: torch.Tensor, robust: dict[str, dict[float, torch.Tensor]], worst: dict[float, torch.Tensor]
) -> None:
    """What holds by construction (an input counts as robust only if it was classified correctly, and the
    worst case is the per-sample AND over the attacks); a violation is a bug here, not in the model."""
    for label, by_eps in robust.items():
        for e, held in by_eps.items():
            if bool((held & ~clean).any()):
                raise RuntimeError(f"internal error: {label} at eps={e:g} counts a misclassified input as robust")
            if e in worst and bool((worst[e] & ~held).any()):
                raise RuntimeError(f"internal error: the worst case at eps={e:g} exceeds {label}")


def _check_output(out: object, labels: torch.Tensor, specs: list[AttackSpec], rows: int) -> None:
    """The model's output on a batch must be float logits `(B, K)`; labels must index them; every attack
    must work with K classes (n_classes is read from here)."""
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != rows or not out.is_floating_point():
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"the model must return float logits of shape (batch, n_classes); got {shape}")
    k = int(out.shape[1])
    if k < 2:
        raise ConfigError(f"the model returns {k} logit per input; attacks need >= 2 classes")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= k:
        raise ConfigError(f"labels must lie in [0, {k - 1}] for a model with {k} outputs; got [{lo}, {hi}]")
    for spec in specs:
        if k < spec.entry.min_classes:
            raise ConfigError(f"attack {spec.label!r} needs >= {spec.entry.min_classes} classes; the model has {k}")


def _row(
    attack: str,
    eps: float,
    n: int,
    correct: int,
    seconds: float,
    params: dict,
    *,
    max_perturbation: float = float("nan"),
    out_of_range: int = 0,
    norm: str = NORM,
) -> dict:
    return {
        "attack": attack,
        "eps": float(eps),
        "norm": norm,
        "n": n,
        "correct": correct,
        "accuracy": correct / n,
        "max_perturbation": max_perturbation,
        "out_of_range": out_of_range,
        "seconds": seconds,
        "params": json.dumps(params, sort_keys=True),
    }
