"""Train a whole population of small models at once on one device with torch.func (the `batched` backend).

Every member has the same architecture, the same initial weights and sees the same batches (common random
numbers), and differs only in its TaylorGLO theta. The members' parameters are stacked along a new
leading dimension `(P, *shape)`; `vmap(functional_call)` runs the P forward passes as one, and because the
summed loss sum_i L_i(params_i) has d/d params_i = dL_i/d params_i, a single backward pass and one
`torch.optim.SGD` over the stacked tensors (its update is elementwise) give each member exactly the update
that `robust_glo.training.fit` would give it, up to floating-point rounding of the batched kernels.

Only models without batch norm or dropout qualify: their running statistics and random masks are not
per member under vmap.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from robust_glo.data.loader import TensorLoader, iterate_eval
from robust_glo.data.splits import Split
from robust_glo.errors import ConfigError
from robust_glo.losses import taylorglo_f
from robust_glo.losses.taylorglo import N_PARAMS
from robust_glo.training import make_scheduler


def check_batchable(model: nn.Module, name: str = "the model") -> None:
    """Raise `ConfigError` when `model` has layers that vmap cannot keep per member."""
    bad = sorted(
        {
            type(m).__name__
            for m in model.modules()
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd))
        }
    )
    if bad:
        raise ConfigError(
            f"backend 'batched' trains models without batch norm or dropout; {name} has "
            f"{', '.join(bad)}; use backend 'local' or 'ray'"
        )


def population_loss(thetas: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """TaylorGLO loss of each member: thetas `(P, 8)`, logits `(P, B, C)`, targets `(B,)` -> `(P,)`.

    The same arithmetic as `TaylorGLOLoss` (float32 softmax from log_softmax), member by member.
    """
    y = F.log_softmax(logits.float(), dim=-1).exp()
    x = F.one_hot(targets.long(), num_classes=logits.shape[-1]).to(y.dtype)
    theta = thetas.to(device=y.device, dtype=y.dtype).T[:, :, None, None]  # (8, P, 1, 1): theta[k] broadcasts
    return -taylorglo_f(theta, x, y).sum(dim=-1).mean(dim=-1)


@dataclass
class Population:
    """P trained members: stacked parameters `{name: (P, *shape)}`, shared buffers, and per-member
    status ("ok" or "diverged") with a message and the steps it trained before diverging (all steps if not)."""

    base: nn.Module
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    status: list[str]
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0
    steps_done: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.status)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `(P, B, C)` of every member for one batch `(B, C, H, W)`."""
        base, buffers = self.base, self.buffers

        def one(params: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
            return functional_call(base, (params, buffers), (inputs,))

        return vmap(one, in_dims=(0, None))(self.params, x)

    @torch.no_grad()
    def accuracy(self, split: Split, *, batch_size: int = 1000) -> list[float]:
        """Top-1 accuracy of each member on `split` (list of P floats)."""
        device = next(iter(self.params.values())).device
        correct = torch.zeros(len(self), dtype=torch.long, device=device)
        for x, y in iterate_eval(split, batch_size, device):
            correct += (self.forward(x).argmax(dim=-1) == y).sum(dim=1)
        return (correct.double() / max(1, len(split))).tolist()

    def member(self, j: int) -> nn.Module:
        """Member j as an ordinary `nn.Module` in eval mode (for attacks)."""
        model = copy.deepcopy(self.base)
        model.load_state_dict({**{k: v[j].detach() for k, v in self.params.items()}, **self.buffers})
        return model.eval()


def train_population(
    model: nn.Module,
    thetas: np.ndarray | torch.Tensor,
    train: Split,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: str = "cosine",
    seed: int = 0,
    device: torch.device | str = "cpu",
    augment: bool = False,
) -> Population:
    """Train one copy of `model` (its current weights are every member's start) per row of thetas
    `(P, 8)` for `steps` SGD steps on `train`, batches from `seed`; the global RNG is untouched.

    A member whose loss turns non-finite is marked diverged at that step and gets zero gradients from
    then on; the others carry on (the members' computations are independent slices of the same tensors).
    """
    check_batchable(model)
    device = torch.device(device)
    theta = torch.as_tensor(np.asarray(thetas, dtype=np.float64)).reshape(-1, N_PARAMS)
    p = theta.shape[0]
    base = copy.deepcopy(model).to(device)
    params = {
        n: t.detach().to(device).unsqueeze(0).repeat(p, *([1] * t.dim())).requires_grad_(True)
        for n, t in base.named_parameters()
    }
    buffers = {n: t.detach().to(device) for n, t in base.named_buffers()}
    pop = Population(base, params, buffers, ["ok"] * p, [""] * p, steps_done=[steps] * p)
    optimizer = torch.optim.SGD(list(params.values()), lr=lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = make_scheduler(optimizer, schedule=schedule, steps=steps)
    loader = TensorLoader(train, batch_size=batch_size, seed=seed, device=device, augment=augment)
    theta_dev = theta.to(device=device, dtype=torch.float32)
    alive = torch.ones(p, dtype=torch.bool, device=device)
    died_at = torch.full((p,), -1, dtype=torch.long, device=device)
    # A host sync per step costs little on the CPU and a lot on a GPU: there, look every few steps.
    check_every = 1 if device.type == "cpu" else 10
    t0 = time.perf_counter()
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)  # as `fit` does; nothing random is drawn from it for these models
        base.train()
        for step, (x, y) in enumerate(loader.iterate(steps)):
            losses = population_loss(theta_dev, pop.forward(x), y)
            finite = torch.isfinite(losses.detach())
            died_at = torch.where(alive & ~finite, torch.full_like(died_at, step), died_at)
            alive = alive & finite
            if step % check_every == 0 and not bool(alive.any()):
                break
            optimizer.zero_grad(set_to_none=True)
            torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
            for t in params.values():  # diverged members: keep NaN out of their momentum
                if t.grad is not None:
                    t.grad.masked_fill_(~alive.view(-1, *([1] * (t.dim() - 1))), 0.0)
            optimizer.step()
            scheduler.step()
    with torch.no_grad():
        weights_ok = torch.ones(p, dtype=torch.bool, device=device)
        for t in params.values():
            weights_ok &= torch.isfinite(t).flatten(1).all(dim=1)
    for j, (step, ok) in enumerate(zip(died_at.tolist(), weights_ok.tolist())):
        pop.steps_done[j] = step if step >= 0 else steps
        if step >= 0:
            pop.status[j], pop.messages[j] = "diverged", f"non-finite training loss at step {step}"
        elif not ok:
            pop.status[j], pop.messages[j] = "diverged", "non-finite weights at the end of training"
    for t in params.values():
        t.requires_grad_(False)
    pop.seconds = time.perf_counter() - t0
    return pop
