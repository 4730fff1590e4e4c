"""`evaluate_population`: `run_evaluation` for P networks of one architecture at once.

The batches, the clean pass, the attacks' order, cascades, `min_eps`, the seed of every (attack, eps,
batch) (`evaluate.batch_seed`, from each member's own evaluation seed) and the bookkeeping are those of
`robustness.evaluate.run_evaluation`, member by member (each member fills the same `_Tally` a per-network
evaluation fills and gets the same `Evaluation`): only the computation is shared. Each member has its
own labels, its own correctly classified inputs and its own still-standing set in a cascade; the attacks
run on every member's inputs together through `PopulationModel` (one batched forward and backward per
step on a GPU), with the ports in `gradient.py` and `square.py`, and member by member through torchattacks
for the families that are not ported (`runners.fallback`: FAB-T, L2 Square).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pandas as pd
import torch
from torch import nn

from robust_glo.errors import ConfigError
from robust_glo.robustness.attacks import AttackSpec
from robust_glo.robustness.checks import DEFAULT_TOLERANCE, DEFAULT_ZERO_GRAD_THRESHOLD
from robust_glo.robustness.evaluate import (
    Evaluation,
    StateGuard,
    _check_output,
    _checked_arguments,
    _finish,
    _model_device,
    _rng_devices,
    _Tally,
    _training_loss,
    as_model,
    attack_dtype,
    batch_seed,
    check_inputs,
    one_attack_and_budget,
    prepared_model,
    within_budget,
)
from robust_glo.robustness.population.gradient import _cross_entropy
from robust_glo.robustness.population.model import PopulationModel, pack
from robust_glo.robustness.population.runners import PopulationContext, is_ported, population_runner
from robust_glo.utils.parsing import parse_seed, show


@dataclass
class PopulationEvaluation:
    """What `evaluate_population` measured: `members[p]` is member p's `Evaluation`, the one
    `run_evaluation` returns for that network alone (its `seconds` columns hold the member's share of the
    population's time). `ported[label]`: whether that attack ran as one population computation (False: it
    ran member by member through torchattacks). `forward`: the `PopulationModel` mode used; `seconds`: the
    wall time of the whole evaluation."""

    members: list[Evaluation]
    ported: dict[str, bool]
    forward: str
    seconds: float

    def __len__(self) -> int:
        return len(self.members)

    @property
    def clean_correct(self) -> torch.Tensor:
        """Per-member, per-input clean correctness, bool `(P, N)`."""
        return torch.stack([ev.clean_correct for ev in self.members])

    def robust(self, label: str, eps: float) -> torch.Tensor:
        """Per-member, per-input outcome bits `(P, N)` of attack `label` (an attack label, "worst" or
        "worst:l2") at budget `eps`: True where the member stayed correct. A `ConfigError` names the
        labels and budgets there are when `label` did not run at `eps`."""
        try:
            return torch.stack([ev.robust[label][eps] for ev in self.members])
        except KeyError:
            have = {k: sorted(v) for k, v in self.members[0].robust.items()}
            raise ConfigError(f"no outcome for {label!r} at eps={eps!r}; there are {have}") from None

    def accuracy(self, label: str, eps: float) -> torch.Tensor:
        """Robust accuracy of each member `(P,)` (float64) under `label` at `eps`."""
        return self.robust(label, eps).double().mean(dim=1)

    def table(self) -> pd.DataFrame:
        """Every member's results table, one after another, with a `member` column (0 .. P - 1) first."""
        parts = [ev.results.assign(member=p) for p, ev in enumerate(self.members)]
        out = pd.concat(parts, ignore_index=True)
        return out[["member", *[c for c in out.columns if c != "member"]]]


def _member_seeds(seed: int | Sequence[int], p: int) -> list[int]:
    if isinstance(seed, (list, tuple)) or (isinstance(seed, torch.Tensor) and seed.dim() == 1):
        seeds = [parse_seed(s, "seed") for s in seed]
        if len(seeds) != p:
            raise ConfigError(f"seed: give one seed or one per member ({p}), got {len(seeds)}")
        return seeds
    return [parse_seed(seed, "seed")] * p


TrainLoss = str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None


def _member_losses(
    train_loss: TrainLoss | Sequence[TrainLoss], p: int, specs: Sequence[AttackSpec]
) -> list[Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None]:
    """One training loss per member (a spec or callable for every member, or a list of one per member),
    each built as `run_evaluation` builds it; `ConfigError` for a list of the wrong length, or when an attack
    needs a member's training loss and it has none (before any attack)."""
    if isinstance(train_loss, (list, tuple)):
        if len(train_loss) != p:
            raise ConfigError(f"train_loss: give one loss or one per member ({p}), got {len(train_loss)}")
        given = list(train_loss)
    else:
        given = [train_loss] * p
    return [_training_loss(loss, specs) for loss in given]


def _population_data(inputs: torch.Tensor, labels: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs `(P, N, C, H, W)` (a view where shared) and labels `(P, N)`: images `(N, C, H, W)` are shared by
    every member, `(P, N, C, H, W)` are member p's at `[p]`; labels `(N,)` are shared, `(P, N)` per member."""
    if not isinstance(inputs, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise ConfigError(
            f"inputs and labels must be torch tensors, got {type(inputs).__name__} and {type(labels).__name__}"
        )
    if inputs.dim() == 5:
        if inputs.shape[0] != p:
            raise ConfigError(f"per-member inputs must have shape ({p}, N, C, H, W), got {tuple(inputs.shape)}")
    else:
        inputs = inputs.unsqueeze(0).expand(p, *inputs.shape)
    if labels.dim() == 1:
        labels = labels.unsqueeze(0).expand(p, -1)
    elif labels.dim() != 2 or labels.shape[0] != p:
        raise ConfigError(f"labels must have shape (N,) or ({p}, N), got {tuple(labels.shape)}")
    if labels.shape[1] != inputs.shape[1]:
        raise ConfigError(f"labels {tuple(labels.shape)} do not match inputs {tuple(inputs.shape)}")
    return inputs, labels


def _prepare(models, inputs, labels) -> tuple[list[nn.Module], torch.Tensor, torch.Tensor]:
    if isinstance(models, nn.Module) or not isinstance(models, (list, tuple)) or not models:
        raise ConfigError(f"models must be a non-empty list of networks of one architecture, got {show(models)}")
    models = [as_model(m) for m in models]
    x_all, y_all = _population_data(inputs, labels, len(models))
    return models, x_all, y_all


def _one_dtype(dtypes: list[torch.dtype]) -> torch.dtype:
    if len(set(dtypes)) > 1:
        raise ConfigError(f"the members have different dtypes ({', '.join(map(str, dtypes))}); give them one")
    return dtypes[0]


def evaluate_population(
    models: Sequence[nn.Module],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    attacks: str | Sequence[str | AttackSpec] = ("fgsm", "pgd"),
    eps=(0.0, 0.05, 0.1),
    *,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    seed: int | Sequence[int] = 0,
    tolerance: float = DEFAULT_TOLERANCE,
    zero_grad_threshold: float = DEFAULT_ZERO_GRAD_THRESHOLD,
    eps_l2=(),
    forward: str = "auto",
    train_loss: TrainLoss | Sequence[TrainLoss] = None,
) -> PopulationEvaluation:
    """Attack P networks of one architecture at once; the same per-input outcomes as `run_evaluation` on
    each network (up to the rounding of the batched kernels), in one batched computation.

    `models`: P modules of one class with the same parameter and buffer names, shapes and dtype (float64
    or float32 for the torchattacks families; see `run_evaluation`). `inputs`: images `(N, C, H, W)` in
    [0, 1] shared by every member, or `(P, N, C, H, W)`, member p's at `[p]`; `labels`: `(N,)` shared or
    `(P, N)` per member. `attacks`, `eps`, `eps_l2`, `batch_size`, `tolerance`, `zero_grad_threshold`: as
    for `run_evaluation`; `seed`: one evaluation seed for every member or one per member (member p's
    attacks are seeded exactly as `run_evaluation(models[p], ..., seed=seed_p)` seeds them). `device`:
    default the first model's. `forward`: "auto", "vmap" or "loop" (`PopulationModel`). `train_loss`: the
    training loss of every member (a loss spec or `loss(logits (B, K), targets (B,)) -> scalar`) or a list
    of one per member, for `fgsm:loss=train`, which then runs member by member on each member's own loss.

    Returns a `PopulationEvaluation`: `members[p]` is the `Evaluation` of network p (results table with
    per-member reliability flags, outcome bits `robust[label][eps]` `(N,)`), `robust(label, eps)` the bits
    of all members `(P, N)`, `accuracy(label, eps)` the robust accuracies `(P,)`. The models are left as
    they were (modes, device, weights). Raises `ConfigError` (one line, before any attack runs) for what
    `run_evaluation` refuses, for members of different architectures or dtypes, for inputs or labels of
    the wrong shape, for a seed or train_loss list of the wrong length, and for `fgsm:loss=train` without
    a member's training loss.
    """
    t_start = time.perf_counter()
    models, x_all, y_all = _prepare(models, inputs, labels)
    p_count, n = len(models), x_all.shape[1]
    seeds = _member_seeds(seed, p_count)
    args = [
        _checked_arguments(
            models[0],
            x_all[0],
            y_all[0],
            attacks,
            eps,
            eps_l2,
            batch_size,
            device,
            seeds[0],
            tolerance,
            zero_grad_threshold,
        )
    ]
    shared = x_all.stride(0) == 0 and y_all.stride(0) == 0  # one set of inputs and labels: checked once
    for p in range(1, p_count):
        if not shared:
            check_inputs(x_all[p], y_all[p])
        args.append(replace(args[0], seed=seeds[p], dtype=attack_dtype(models[p], x_all[p])))
    dtype = _one_dtype([a.dtype for a in args])
    dev = args[0].device
    specs = args[0].specs
    losses = _member_losses(train_loss, p_count, specs)
    tallies = [_Tally(n, specs, a.eps, a.seed, a.eps_l2) for a in args]
    guards = [StateGuard(m) for m in models]
    with contextlib.ExitStack() as stack:
        targets = [stack.enter_context(prepared_model(m, dev)) for m in models]
        stack.enter_context(torch.random.fork_rng(devices=_rng_devices()))
        pmodel = PopulationModel(models, dev, mode=forward)
        for b, start in enumerate(range(0, n, args[0].batch_size)):
            x = x_all[:, start : start + args[0].batch_size].to(dev, dtype)
            y = y_all[:, start : start + args[0].batch_size].to(dev, torch.int64)
            correct, grad = _clean_pass(pmodel, tallies, x, y, start, y_all if b == 0 else None, specs)
            keep = [correct[p].nonzero().squeeze(1) for p in range(p_count)]
            ctx = PopulationContext(pmodel, tallies[0].n_classes, dev, grad, targets, losses)
            for i, spec in enumerate(specs):
                earlier = [s for s in specs[:i] if s.threat is spec.threat] if spec.cascade else []
                for e in tallies[0].eps_for(spec):
                    _attack(ctx, tallies, spec, e, b, x, y, start, keep, earlier)
            after = pmodel.predict(x) == y
            for p, tally in enumerate(tallies):
                tally.clean_after[start : start + y.shape[1]] = after[p].cpu()
    members = []
    image_shape = tuple(x_all.shape[2:])
    for tally, a, guard in zip(tallies, args, guards):
        changed = guard.changed()
        if changed:
            guard.restore()
        members.append(_finish(tally, a, changed, image_shape))
    return PopulationEvaluation(
        members, {s.label: is_ported(s) for s in specs}, pmodel.mode, time.perf_counter() - t_start
    )


def _clean_pass(
    pmodel: PopulationModel,
    tallies: list[_Tally],
    x: torch.Tensor,
    y: torch.Tensor,
    start: int,
    all_labels: torch.Tensor | None,
    specs: list[AttackSpec],
) -> tuple[torch.Tensor, torch.Tensor]:
    """`_Tally.clean_pass` for every member: clean logits and each member's summed-CE input-gradient;
    returns (correct `(P, B)`, grad `(P, B, C, H, W)`). `all_labels` `(P, N)` on the first batch: check the
    logits (`evaluate._check_output`) before the loss."""
    t0 = time.perf_counter()
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = pmodel(xg)
        if all_labels is not None:
            for p in range(len(tallies)):
                _check_output(logits[p], all_labels[p], specs, y.shape[1])
        (grad,) = torch.autograd.grad(_cross_entropy(logits, y).sum(), xg)
    logits, grad = logits.detach(), grad.detach()
    correct = logits.argmax(-1) == y
    share = (time.perf_counter() - t0) / len(tallies)
    stop = start + y.shape[1]
    flat = grad.flatten(2)
    zero, nonfinite = (flat == 0).all(2).cpu(), (~torch.isfinite(flat)).any(2).cpu()
    for p, tally in enumerate(tallies):
        tally.n_classes = int(logits.shape[-1])
        tally.clean_seconds += share
        tally.clean_correct[start:stop] = correct[p].cpu()
        tally.zero_grad[start:stop] = zero[p]
        tally.nonfinite_grad[start:stop] = nonfinite[p]
    if any(0.0 in budgets for budgets in tallies[0].eps_by_norm.values()):
        t0 = time.perf_counter()
        again = (pmodel.predict(x) == y).cpu()
        share = (time.perf_counter() - t0) / len(tallies)
        for p, tally in enumerate(tallies):
            tally.eps0_correct[start:stop] = again[p]
            tally.eps0_seconds += share
    return correct, grad


def _attack(
    ctx: PopulationContext,
    tallies: list[_Tally],
    spec: AttackSpec,
    e: float,
    batch: int,
    x: torch.Tensor,
    y: torch.Tensor,
    start: int,
    keep: list[torch.Tensor],
    earlier: list[AttackSpec],
) -> None:
    """`_Tally.attack` for every member at once: each member's correctly classified inputs of the batch
    (`keep[p]`, rows of `x` `(P, B, ...)`), in a cascade only those every earlier attack left correct."""
    rows = []
    for p, tally in enumerate(tallies):
        where = start + keep[p].cpu()
        if earlier and len(where):
            rows.append(keep[p][tally.standing(e, where, earlier).to(keep[p].device)])
        else:
            rows.append(keep[p])
    packed = pack(rows, x.device)
    if packed.width == 0:
        return
    t0 = time.perf_counter()
    seeds = [batch_seed(t.seed, spec.label, e, batch) for t in tallies]
    xs, ys = packed.take(x), packed.take(y)
    params = spec.resolved()
    runner = population_runner(spec.family, params)
    adv = runner(ctx.narrowed(packed), xs, ys, packed.counts, e, params, seeds).detach()
    held = ctx.predict(adv, packed.counts) == ys
    share = (time.perf_counter() - t0) / sum(1 for c in packed.counts if c)
    for p, tally in enumerate(tallies):
        c = packed.counts[p]
        if not c:
            continue
        where = start + packed.rows(p).cpu()
        tally.attacked[spec.label, e][where] = True
        tally.record(spec, e, where, xs[p, :c], adv[p, :c], held[p, :c], share)


def generate_adversarial_population(
    models: Sequence[nn.Module],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    attack: str | AttackSpec,
    eps: float | str,
    *,
    seed: int | Sequence[int] = 0,
    device: str | torch.device | None = None,
    forward: str = "auto",
) -> torch.Tensor:
    """`evaluate.generate_adversarial` for every member at once: adversarial inputs `(P, N, C, H, W)` for
    every input (correctly classified or not), in one batch, seeded as `generate_adversarial(models[p],
    ..., seed=seed_p)` seeds them. `inputs` `(N, C, H, W)` shared or `(P, N, C, H, W)`; `labels` `(N,)` or
    `(P, N)`; `seed` one or one per member. The result has the inputs' dtype, on the evaluation device.
    Raises a one-line `ConfigError` for what `generate_adversarial` and `evaluate_population` refuse."""
    models, x_all, y_all = _prepare(models, inputs, labels)
    p_count = len(models)
    spec, eps = one_attack_and_budget(attack, eps, "generate_adversarial_population")
    seeds = _member_seeds(seed, p_count)
    for p in range(p_count):
        check_inputs(x_all[p], y_all[p])
    dtype = _one_dtype([attack_dtype(m, x_all[p]) for p, m in enumerate(models)])
    spec.check_dtype(dtype)
    dev = _model_device(models[0]) if device is None else torch.device(device)
    with contextlib.ExitStack() as stack:
        targets = [stack.enter_context(prepared_model(m, dev)) for m in models]
        stack.enter_context(torch.random.fork_rng(devices=_rng_devices()))
        pmodel = PopulationModel(models, dev, mode=forward)
        x, y = x_all.to(dev, dtype), y_all.to(dev, torch.int64)
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = pmodel(xg)
            for p in range(p_count):
                _check_output(logits[p], y_all[p], [spec], y.shape[1])
            (grad,) = torch.autograd.grad(_cross_entropy(logits, y).sum(), xg)
        if eps == 0.0:
            return x_all.to(dev).clone()
        member_seeds = [batch_seed(s, spec.label, eps, 0) for s in seeds]
        ctx = PopulationContext(pmodel, int(logits.shape[-1]), dev, grad.detach(), targets)
        params = spec.resolved()
        counts = [x.shape[1]] * p_count
        adv = population_runner(spec.family, params)(ctx, x, y, counts, eps, params, member_seeds).detach()
        clean = x_all.to(dev)
        return torch.stack([within_budget(adv[p], clean[p], eps, spec.norm) for p in range(p_count)])


__all__ = [
    "PopulationEvaluation",
    "evaluate_population",
    "generate_adversarial_population",
]
