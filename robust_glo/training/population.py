"""The population engine: P networks of one architecture trained as one batched computation.

Each member has its own initial weights, its own loss (a TaylorGLO theta or any loss function), its own
seed (batch order, augmentation and dropout masks), its own batch-norm running statistics and its own
divergence status. The members' parameters and buffers are stacked along a new leading dimension
`(P, *shape)`, and `torch.func.vmap(functional_call)` runs the P forward passes as one: vmap's batching
rules turn P convolutions into one grouped convolution and P batch norms into one over P x C channels, so
the members never mix. Because d/d(params_p) of sum_q L_q = dL_p/d(params_p), one backward pass over the
summed losses and one SGD over the stacked tensors (its update is elementwise) give every member the
update `robust_glo.training.fit` would give it alone.

Why vmap rather than a hand-fused grouped network: it works for any registered architecture (residual
blocks included) without rewriting layers, and it is the same grouped kernel underneath.

Dropout: `nn.Dropout` layers are replaced by `_MemberDropout`, which multiplies by a mask handed in per
member. On the CPU each member's masks are drawn from its own generator seeded like `fit`'s forked RNG,
in the same order and with the same call (`bernoulli_(1 - p)` then `/ (1 - p)`) as PyTorch's CPU
dropout, so a member's masks are exactly those of a sequential run; on CUDA (where `fit` uses the fused
Philox kernel, which cannot be replayed member by member) one device generator draws all members' masks
at once. Hence: on the CPU the engine reproduces sequential training up to float rounding of the
batched kernels; on CUDA it is statistically, not bitwise, the same.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from robust_glo.data.loader import iterate_eval, random_crop_flip
from robust_glo.data.splits import Split
from robust_glo.errors import ConfigError, NonFiniteLossError
from robust_glo.losses.taylorglo import TaylorGLOLoss, taylorglo_f
from robust_glo.training.recipe import Recipe
from robust_glo.training.trainer import FitResult, gradient_message, make_scheduler, weights_message

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_DEFAULT = Recipe()  # the keyword defaults below are the recipe's, written once (training/recipe.py)


class _MemberDropout(nn.Module):
    """Dropout whose mask comes from outside: `x * mask` in training mode, identity in eval mode.

    `mask` is a non-persistent buffer that the engine replaces, per step and per member, through
    `functional_call`. `feature` masks whole channels (Dropout1d/2d/3d), shape `(B, C, 1, ...)`.
    """

    def __init__(self, p: float, feature: bool):
        super().__init__()
        self.p, self.feature = float(p), feature
        self.register_buffer("mask", torch.empty(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * self.mask


_FEATURE_DROPOUT = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def _replace_dropout(model: nn.Module) -> list[str]:
    """Swap every dropout layer of `model` (in place) for `_MemberDropout`; returns their module names."""
    names = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
                raise ConfigError(f"the population engine does not support {type(child).__name__}; train sequentially")
            if isinstance(child, nn.modules.dropout._DropoutNd):
                setattr(module, child_name, _MemberDropout(child.p, isinstance(child, _FEATURE_DROPOUT)))
                names.append(f"{name}.{child_name}" if name else child_name)
    return names


def _batch_norm_in_float32(model: nn.Module) -> None:
    """Under bfloat16 autocast, feed every batch norm float32 inputs (as its float32 running statistics
    are): vmap's batch-norm backward refuses mixed dtypes ("Expected running_mean to have type BFloat16")."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(lambda m, args: (args[0].float(), *args[1:]))


@contextmanager
def _cudnn_autotune(enabled: bool):
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = before or enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def population_loss(thetas: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """TaylorGLO loss of each member: thetas `(P, 8)`, logits `(P, B, C)`, targets `(P, B)` or `(B,)` -> `(P,)`.

    The same arithmetic as `TaylorGLOLoss` (float32 softmax from log_softmax), member by member.
    """
    y = F.log_softmax(logits.float(), dim=-1).exp()
    x = F.one_hot(targets.long(), num_classes=logits.shape[-1]).to(y.dtype)
    theta = thetas.to(device=y.device, dtype=y.dtype).T[:, :, None, None]  # (8, P, 1, 1): theta[k] broadcasts
    return -taylorglo_f(theta, x, y).sum(dim=-1).mean(dim=-1)


class _Losses:
    """The members' losses as one call: logits `(P, B, C)`, targets `(P, B)` -> losses `(P,)`.

    TaylorGLO members are computed together (one vectorised call); any other loss member by member.
    """

    def __init__(self, losses: Sequence[LossFn]):
        self.losses = list(losses)
        self.taylor = [j for j, f in enumerate(self.losses) if isinstance(f, TaylorGLOLoss)]
        self.other = [j for j, f in enumerate(self.losses) if not isinstance(f, TaylorGLOLoss)]
        self.thetas = torch.stack([self.losses[j].theta for j in self.taylor]) if self.taylor else None
        self._theta_dev: torch.Tensor | None = None  # thetas on the logits' device, made at the first call

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, step: int) -> tuple[torch.Tensor, list[str]]:
        """Returns losses `(P,)` (NaN where a member's loss refused a non-finite value) and per-member messages."""
        messages = [""] * len(self.losses)
        if self.taylor and self._theta_dev is None:
            self._theta_dev = self.thetas.to(device=logits.device, dtype=torch.float32)
        if not self.other:  # the evolution's case: every member is a TaylorGLO loss, in order
            return population_loss(self._theta_dev, logits, targets), messages
        parts: list[torch.Tensor | None] = [None] * len(self.losses)
        if self.taylor:
            values = population_loss(self._theta_dev, logits[self.taylor], targets[self.taylor])
            for k, j in enumerate(self.taylor):
                parts[j] = values[k]
        for j in self.other:
            try:
                parts[j] = self.losses[j](logits[j], targets[j]).float()
            except NonFiniteLossError as exc:
                if step == 0:  # as in `fit`: non-finite on fresh weights means the loss itself is broken
                    raise
                parts[j] = logits.new_tensor(float("nan"))
                messages[j] = str(exc)
        return torch.stack(parts), messages


class _Batches:
    """Per-member training batches, exactly those `TensorLoader(split, seed=seed_p)` would yield each member.

    Yields images `(P, B, C, H, W)` and labels `(P, B)`; when every member has the same seed and no
    augmentation, one shared batch `(B, C, H, W)`, `(B,)` instead (common random numbers, cheaper).
    """

    def __init__(self, split: Split, seeds: Sequence[int], *, batch_size: int, device: torch.device, augment: bool):
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size = min(batch_size, len(split))
        self.augment = augment
        self.device = device
        self.shared = len(set(seeds)) == 1 and not augment
        self.generators = [torch.Generator().manual_seed(int(s)) for s in (seeds[:1] if self.shared else seeds)]

    def iterate(self, steps: int):
        n = len(self.labels)
        per_epoch = n // self.batch_size
        step = 0
        while step < steps:
            # TensorLoader's order: one randperm per epoch, then (with augmentation) crops drawn batch by batch.
            orders = torch.stack([torch.randperm(n, generator=g) for g in self.generators]).to(self.device)
            for b in range(per_epoch):
                if step >= steps:
                    return
                idx = orders[:, b * self.batch_size : (b + 1) * self.batch_size]  # (P, B)
                if self.shared:
                    yield self.images.index_select(0, idx[0]), self.labels.index_select(0, idx[0])
                else:
                    x = self.images[idx]
                    if self.augment:
                        x = torch.stack([random_crop_flip(x[j], g) for j, g in enumerate(self.generators)])
                    yield x, self.labels[idx]
                step += 1


class _Masks:
    """Dropout masks of every member for one step: `{"<layer>.mask": (P, *shape)}` (see the module docstring)."""

    def __init__(self, layers: list[tuple[str, _MemberDropout, tuple[int, ...]]], seeds: Sequence[int], device):
        self.layers = layers
        self.device = device
        if device.type == "cpu":
            self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
            self.shared = None
        else:
            self.generators = []
            self.shared = torch.Generator(device=device).manual_seed((int(seeds[0]) * 1_000_003 + len(seeds)) % 2**64)
        self.p = len(seeds)

    def draw(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, layer, shape in self.layers:
            keep = 1.0 - layer.p
            if layer.feature:
                shape = (*shape[:2], *([1] * (len(shape) - 2)))
            if self.shared is None:
                masks = [torch.empty(shape).bernoulli_(keep, generator=g).div_(keep) for g in self.generators]
                out[f"{name}.mask"] = torch.stack(masks).to(self.device)
            else:
                out[f"{name}.mask"] = (
                    torch.empty((self.p, *shape), device=self.device).bernoulli_(keep, generator=self.shared).div_(keep)
                )
        return out


def _dropout_shapes(base: nn.Module, names: list[str], sample: torch.Tensor) -> list[tuple[str, nn.Module, tuple]]:
    """The input shape of each dropout layer of `base` for one training batch `sample` `(B, C, H, W)`, in
    the order the forward pass calls them (the order `fit`'s dropout draws its masks in)."""
    layers = dict(base.named_modules())
    probe = copy.deepcopy(base).eval()  # a copy: the probe's forward must not touch base's running statistics
    seen: list[tuple[str, nn.Module, tuple]] = []
    for name, module in probe.named_modules():
        if name in names:
            module.register_forward_pre_hook(lambda m, args, n=name: seen.append((n, layers[n], tuple(args[0].shape))))
    with torch.no_grad():
        probe(sample)
    return seen


@dataclass
class Population:
    """P members of one architecture: stacked parameters and buffers `{name: (P, *shape)}` and each member's
    `FitResult` (status "ok" or "diverged", steps trained, loss curve)."""

    base: nn.Module
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    results: list[FitResult] = field(default_factory=list)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.results)

    @property
    def status(self) -> list[str]:
        return [r.status for r in self.results]

    @property
    def messages(self) -> list[str]:
        return [r.message for r in self.results]

    @property
    def steps_done(self) -> list[int]:
        return [r.steps_done for r in self.results]

    def forward(self, x: torch.Tensor, extra: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits `(P, B, K)` of every member for one shared batch `(B, C, H, W)` or per-member batches
        `(P, B, C, H, W)`; `extra` holds further per-member buffers (dropout masks)."""
        base = self.base
        buffers = {**self.buffers, **(extra or {})}

        def one(params, buffers, inputs):
            return functional_call(base, (params, buffers), (inputs,))

        x_dim = 0 if x.dim() == 5 else None
        return vmap(one, in_dims=(0, 0, x_dim), randomness="error")(self.params, buffers, x)

    @torch.no_grad()
    def accuracy(self, split: Split, *, batch_size: int = 1000) -> list[float]:
        """Top-1 accuracy of each member on `split`, in eval mode (running statistics, no dropout)."""
        device = next(iter(self.params.values())).device
        correct = torch.zeros(len(self), dtype=torch.long, device=device)
        was_training = self.base.training
        self.base.eval()
        # On the CPU member by member is several times faster than vmap (measured); the views are made once.
        states = [self._member_tensors(j) for j in range(len(self))] if device.type == "cpu" else []
        try:
            for x, y in iterate_eval(split, batch_size, device):
                if states:
                    for j, state in enumerate(states):
                        correct[j] += int((functional_call(self.base, state, (x,)).argmax(dim=-1) == y).sum())
                else:
                    correct += (self.forward(x).argmax(dim=-1) == y).sum(dim=1)
        finally:
            self.base.train(was_training)
        return (correct.double() / max(1, len(split))).tolist()

    def _member_tensors(self, j: int) -> dict[str, torch.Tensor]:
        """Views of member j's parameters and buffers `{name: tensor}` (no copy)."""
        return {k: v[j] for k, v in {**self.params, **self.buffers}.items()}

    def state_dict(self, j: int) -> dict[str, torch.Tensor]:
        """Member j's weights and buffers, as the original model's `state_dict()` has them."""
        return {k: v.detach().clone() for k, v in self._member_tensors(j).items() if not k.endswith(".mask")}

    def member(self, j: int, model: nn.Module) -> nn.Module:
        """Load member j into `model` (a fresh instance of the trained architecture, original dropout
        layers and all) and return it in eval mode."""
        model.load_state_dict(self.state_dict(j))
        return model.eval()


def train_population(
    models: Sequence[nn.Module],
    losses: Sequence[LossFn],
    train: Split,
    *,
    steps: int,
    seeds: Sequence[int],
    batch_size: int = _DEFAULT.batch_size,
    lr: float = _DEFAULT.lr,
    momentum: float = _DEFAULT.momentum,
    weight_decay: float = _DEFAULT.weight_decay,
    nesterov: bool = _DEFAULT.nesterov,
    schedule: str = _DEFAULT.schedule,
    milestones: tuple[int, ...] = (),
    gamma: float = _DEFAULT.gamma,
    device: torch.device | str = "cpu",
    augment: bool = False,
    amp: bool = False,
    bf16_cpu: bool = False,
    log_every: int = 50,
    cudnn_benchmark: bool = True,
    stop_at: int | None = None,
    compile: bool = False,
) -> Population:
    """Train member p = (models[p], losses[p], seeds[p]) for `steps` SGD steps on `train`, all at once.

    The models must share one architecture; their current weights are the members' starting points (the
    models themselves are not modified). Every option means what it means for `fit`, applied to every
    member (`bf16_cpu` without `fit`'s channels_last layout). A member whose loss turns non-finite is
    marked diverged at that step and gets zero gradients from then on; the others carry on unchanged. The
    global RNG is untouched. `stop_at` (< steps) trains only that far on the schedule of `steps` (a
    successive-halving rung, trained from the start). On CUDA, `cudnn_benchmark` lets cuDNN time its
    algorithms for the population's fixed shapes (restored afterwards): the grouped convolutions of a
    population have slow defaults (evaluations/perf/gpu.sh). `compile` runs the vmapped forward through
    `torch.compile` (Inductor): on an H200 the population's step then reached 11.3x one network's eager
    step at P = 28 against 7.8x eager (evaluations/perf/gpu_step_variants.py); the first steps pay the
    compilation (tens of seconds), and the numbers equal the eager engine's within float rounding.
    """
    p = len(models)
    if not (p == len(losses) == len(seeds)) or p == 0:
        raise ConfigError(
            f"a population needs as many losses and seeds as models, got {p}, {len(losses)}, {len(seeds)}"
        )
    device = torch.device(device)
    base = copy.deepcopy(models[0]).to(device)
    dropout_names = _replace_dropout(base)
    use_amp = (amp and device.type == "cuda") or (bf16_cpu and device.type == "cpu")
    if use_amp:
        _batch_norm_in_float32(base)
    names = [n for n, _ in base.named_parameters()]
    for m in models[1:]:
        if [n for n, _ in m.named_parameters()] != names or type(m) is not type(models[0]):
            raise ConfigError("every member of a population must have the same architecture")
    params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).to(device) for n in names}
    for t in params.values():
        t.requires_grad_(True)
    buffer_names = [n for n, _ in models[0].named_buffers()]
    buffers = {n: torch.stack([dict(m.named_buffers())[n].detach() for m in models]).to(device) for n in buffer_names}
    pop = Population(base, params, buffers)
    forward = torch.compile(pop.forward, dynamic=False) if compile else pop.forward
    optimizer = torch.optim.SGD(
        list(params.values()), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov and momentum > 0
    )
    scheduler = make_scheduler(optimizer, schedule=schedule, steps=steps, milestones=milestones, gamma=gamma)
    batches = _Batches(train, seeds, batch_size=batch_size, device=device, augment=augment)
    sample = train.images[: batches.batch_size].to(device)
    masks = _Masks(_dropout_shapes(base, dropout_names, sample), seeds, device) if dropout_names else None
    loss_of = _Losses(losses)
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16) if use_amp else nullcontext()
    alive = torch.ones(p, dtype=torch.bool, device=device)
    died_at = torch.full((p,), -1, dtype=torch.long, device=device)
    by_gradient = torch.zeros(p, dtype=torch.bool, device=device)  # died of a non-finite gradient
    window = torch.zeros(p, device=device)
    curves: list[list[tuple[int, float]]] = [[] for _ in range(p)]
    messages = [""] * p
    # A host sync per step costs little on the CPU and a lot on a GPU: there, look every few steps (as `fit`).
    check_every = 1 if device.type == "cpu" else 10
    window_n = 0
    t0 = time.perf_counter()
    with _cudnn_autotune(device.type == "cuda" and cudnn_benchmark):
        base.train()
        end = steps if stop_at is None else min(int(stop_at), steps)
        for step, (x, y) in enumerate(batches.iterate(end)):
            extra = masks.draw() if masks is not None else None
            with autocast:
                logits = forward(x, extra)
            targets = y if y.dim() == 2 else y.expand(p, -1)
            values, refused = loss_of(logits, targets, step)
            for j, text in enumerate(refused):
                if text and not messages[j]:
                    messages[j] = text
            finite = torch.isfinite(values.detach())
            died_at = torch.where(alive & ~finite, torch.full_like(died_at, step), died_at)
            alive = alive & finite
            if step % check_every == 0 and not bool(alive.any()):
                break
            optimizer.zero_grad(set_to_none=True)
            torch.where(alive, values, torch.zeros_like(values)).sum().backward()
            if step % check_every == 0:  # a finite value with a non-finite gradient: the member stops here
                grad_ok = torch.ones(p, dtype=torch.bool, device=device)
                for t in params.values():
                    if t.grad is not None:
                        grad_ok &= torch.isfinite(t.grad).flatten(1).all(dim=1)
                newly = alive & ~grad_ok
                died_at = torch.where(newly, torch.full_like(died_at, step), died_at)
                by_gradient |= newly
                alive = alive & grad_ok
            dead = ~alive
            for t in params.values():  # diverged members: keep NaN out of their momentum and weights
                if t.grad is not None:
                    t.grad.masked_fill_(dead.view(-1, *([1] * (t.dim() - 1))), 0.0)
            optimizer.step()
            scheduler.step()
            window += torch.where(alive, values.detach().float(), torch.zeros_like(window))
            window_n += 1
            if (step + 1) % log_every == 0 or step + 1 == end:
                means = (window / window_n).tolist()
                for j in range(p):
                    curves[j].append((step + 1, means[j]))
                window.zero_()
                window_n = 0
    seconds = time.perf_counter() - t0
    for t in params.values():
        t.requires_grad_(False)
    with torch.no_grad():
        weights_ok = torch.ones(p, dtype=torch.bool, device=device)
        for t in params.values():
            weights_ok &= torch.isfinite(t).flatten(1).all(dim=1)
    for j, (died, ok, grad) in enumerate(zip(died_at.tolist(), weights_ok.tolist(), by_gradient.tolist())):
        status, message, done = "ok", "", end
        if died >= 0:
            status, done = "diverged", died
            if grad:
                message = gradient_message(died)
            else:
                what = f"{messages[j]} at step {died}" if messages[j] else f"non-finite training loss at step {died}"
                message = f"{what}, on finite weights" if ok else f"{weights_message(died, None)}; then {what}"
            curves[j] = [(s, v) for s, v in curves[j] if s <= died]
        elif not ok:
            status, message = "diverged", "non-finite weights at the end of training"
        rate = done * batches.batch_size / seconds if seconds > 0 else 0.0
        pop.results.append(FitResult(status, done, curves[j], seconds, rate, message))
    pop.seconds = seconds
    return pop
