"""FGSM, PGD (L-infinity and L2), APGD (CE, DLR) and APGD-T over a population of networks.

Each function is torchattacks 3.5.1's algorithm (`torchattacks/attacks/{fgsm,pgd,pgdl2,apgd,apgdt}.py`;
APGD and APGD-T are its ports of Croce & Hein 2020, "Reliable evaluation of adversarial robustness with
an ensemble of diverse parameter-free attacks") written over a population batch: inputs `(P, W, C, H, W')`,
labels `(P, W)`, and `counts`, member p's real inputs being its first `counts[p]` rows (the rest is
padding, see `model.pack`). Every operation that torchattacks applies to one network's batch is applied
to each member's rows: each member keeps its own labels, per-sample step sizes, checkpoints, best points
and still-correct set; the schedule that torchattacks shares across a batch (APGD's checkpoints, which
depend only on the number of steps) is shared across the population too. Samples never interact (the
models are in eval mode), so padding changes nothing.

Randomness: torchattacks draws from the global RNG after `torch.manual_seed(seed)` (PGD: on the inputs'
device; APGD / APGD-T: `torch.rand` / `torch.randn` on the CPU, moved to the device). Here each member
draws from its own `torch.Generator` seeded with its seed, the same shapes in the same order, so a
member's random starts are bit for bit those of the per-network run with that seed. What can differ is
the rounding of the batched forward and backward passes (`PopulationModel`'s "vmap" mode), which moves
an adversarial image by a few ulps and, in float64, never flips an outcome in practice.

Every function takes `(ctx, x, y, counts, eps, params, seeds)` (a `PopulationRunner`, see `runners.py`)
and returns adversarial inputs `(P, W, ...)` whose padding rows are the inputs as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from robust_glo.errors import ConfigError
from robust_glo.robustness.attacks.base import AA_RHO
from robust_glo.robustness.evaluate import check_inputs, prepared_model
from robust_glo.robustness.population.model import full, pack
from robust_glo.utils.parsing import parse_integer, parse_real

if TYPE_CHECKING:
    from robust_glo.robustness.population.runners import PopulationContext


def _img_dims(x: torch.Tensor) -> tuple[int, ...]:
    """The per-image dimensions of a population batch `(P, W, *image)`: (2, ..., x.dim() - 1)."""
    return tuple(range(2, x.dim()))


def _per_sample(x: torch.Tensor) -> tuple[int, ...]:
    """Shape `(P, W, 1, ..., 1)` that broadcasts a per-sample value over images `(P, W, *image)`."""
    return (*x.shape[:2], *([1] * (x.dim() - 2)))


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample CE: logits `(P, W, K)`, labels `(P, W)` -> `(P, W)`."""
    k = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, k), y.reshape(-1), reduction="none").view(y.shape)


def clean_gradient_population(
    model, x: torch.Tensor, y: torch.Tensor, counts: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits `(P, B, K)` and grad_x of each member's summed CE `(P, B, C, H, W)` at clean inputs `x`
    `(P, B, C, H, W)` with labels `(P, B)`; as `attacks.base.clean_gradient` per member."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x, counts)
        (grad,) = torch.autograd.grad(_cross_entropy(logits, y).sum(), x)
    return logits.detach(), grad.detach()


def _valid(counts: Sequence[int], width: int, device: torch.device) -> torch.Tensor:
    return torch.arange(width, device=device).unsqueeze(0) < torch.tensor(list(counts), device=device).unsqueeze(1)


# ------------------------------------------------------------------------------------------------ FGSM


def population_fgsm(
    ctx: PopulationContext, x: torch.Tensor, y: torch.Tensor, counts: Sequence[int], eps: float, params, seeds
) -> torch.Tensor:
    """`fgsm`: x + eps * sign(grad_x CE), clamped to [0, 1], from the clean pass's gradient when the context
    has it (as `attacks.fgsm.run_fgsm`; torchattacks.FGSM averages the CE, which has the same sign)."""
    grad = ctx.clean_grad if ctx.clean_grad is not None else clean_gradient_population(ctx.model, x, y, counts)[1]
    return torch.add(x, grad.sign(), alpha=eps).clamp_(min=0, max=1).detach()


# ------------------------------------------------------------------------------------------------- PGD


def _pgd_alpha(params: dict, eps: float) -> float:
    return params["alpha"] if params["alpha"] is not None else 2.5 * eps / params["steps"]


def _mean_ce_grad(model, adv: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, counts) -> torch.Tensor:
    """grad_x of each member's mean CE over its own rows (torchattacks' `nn.CrossEntropyLoss()`): the
    per-sample CE weighted 1 / counts[p] (0 on padding)."""
    adv.requires_grad_(True)
    with torch.enable_grad():
        cost = (_cross_entropy(model(adv, counts), y) * weight).sum()
        (grad,) = torch.autograd.grad(cost, adv)
    return grad


def _pgd_once(
    model, x: torch.Tensor, y: torch.Tensor, counts: Sequence[int], eps: float, params: dict, gens
) -> torch.Tensor:
    """One `torchattacks.PGD` (L-infinity) or `PGDL2` call per member with rows; members without rows
    draw nothing."""
    alpha, steps, l2 = _pgd_alpha(params, eps), params["steps"], params.get("norm") == "l2"
    w = x.shape[1]
    valid = _valid(counts, w, x.device)
    weight = torch.zeros(valid.shape, dtype=x.dtype, device=x.device)
    for p, c in enumerate(counts):
        if c:
            weight[p, :c] = 1.0 / c
    adv = x.clone().detach()
    if params["random_start"]:
        delta = torch.zeros_like(x)
        for p, c in enumerate(counts):
            if not c:
                continue
            if l2:  # PGDL2: a normal direction, then a uniform radius, from the same generator
                d = torch.empty_like(x[p, :c]).normal_(generator=gens[p])
                n = d.view(c, -1).norm(p=2, dim=1).view(c, *([1] * (x.dim() - 2)))
                r = torch.zeros_like(n).uniform_(0, 1, generator=gens[p])
                d *= r / n * eps
                delta[p, :c] = d
            else:
                delta[p, :c] = torch.empty_like(x[p, :c]).uniform_(-eps, eps, generator=gens[p])
        adv = torch.clamp(adv + delta, min=0, max=1).detach()
    shape = _per_sample(x)
    for _ in range(steps):
        grad = _mean_ce_grad(model, adv, y, weight, counts)
        if l2:
            grad_norms = torch.norm(grad.flatten(2), p=2, dim=2) + 1e-10  # PGDL2's eps_for_division
            grad = grad / grad_norms.view(shape)
            adv = adv.detach() + alpha * grad
            delta = adv - x
            delta_norms = torch.norm(delta.flatten(2), p=2, dim=2)
            factor = eps / delta_norms
            factor = torch.min(factor, torch.ones_like(delta_norms))
            delta = delta * factor.view(shape)
            adv = torch.clamp(x + delta, min=0, max=1).detach()
        else:
            adv = adv.detach() + alpha * grad.sign()
            delta = torch.clamp(adv - x, min=-eps, max=eps)
            adv = torch.clamp(x + delta, min=0, max=1).detach()
    return torch.where(_expand(valid, x), adv, x)


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(*mask.shape, *([1] * (like.dim() - mask.dim())))


def population_pgd(
    ctx: PopulationContext, x: torch.Tensor, y: torch.Tensor, counts: Sequence[int], eps: float, params, seeds
) -> torch.Tensor:
    """`pgd` (`attacks.pgd.run_pgd`): torchattacks.PGD / PGDL2 on CE, `restarts` random restarts, each
    restart only on the inputs every earlier one failed to break, from one generator per member on the
    inputs' device (torchattacks draws `uniform_` / `normal_` there)."""
    gens = [torch.Generator(device=x.device).manual_seed(int(s)) for s in seeds]
    if params["restarts"] == 1:
        return _pgd_once(ctx.model, x, y, counts, eps, params, gens)
    adv = x.clone()
    todo = [torch.arange(c, device=x.device) for c in counts]
    for r in range(params["restarts"]):
        packed = pack(todo, x.device)
        if packed.width == 0:
            break
        xs, ys = packed.take(x), packed.take(y)
        attempt = _pgd_once(ctx.model, xs, ys, packed.counts, eps, params, gens)
        packed.put(adv, attempt)
        if r == params["restarts"] - 1:
            break
        held = ctx.predict(attempt, packed.counts) == ys
        todo = [packed.rows(p)[held[p, : packed.counts[p]]] for p in range(len(counts))]
    return adv


# ------------------------------------------------------------------------------------- APGD and APGD-T


def _dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """torchattacks.APGD.dlr_loss over the last dimension: logits `(P, W, K)`, labels `(P, W)`."""
    x_sorted, ind_sorted = logits.sort(dim=-1)
    ind = (ind_sorted[..., -1] == y).float()
    zy = logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    return -(zy - x_sorted[..., -2] * ind - x_sorted[..., -1] * (1.0 - ind)) / (
        x_sorted[..., -1] - x_sorted[..., -3] + 1e-12
    )


def _dlr_targeted(logits: torch.Tensor, y: torch.Tensor, y_target: torch.Tensor) -> torch.Tensor:
    """torchattacks.APGDT.dlr_loss_targeted over the last dimension."""
    x_sorted, _ = logits.sort(dim=-1)
    zy = logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    zt = logits.gather(-1, y_target.unsqueeze(-1)).squeeze(-1)
    return -(zy - zt) / (x_sorted[..., -1] - 0.5 * x_sorted[..., -3] - 0.5 * x_sorted[..., -4] + 1e-12)


def _loss_and_grad(model, x_adv: torch.Tensor, y: torch.Tensor, loss: str, y_target: torch.Tensor | None, counts):
    """(logits, per-sample loss `(P, W)`, grad_x of the summed loss) at `x_adv` (eot_iter 1)."""
    with torch.enable_grad():
        logits = model(x_adv, counts)
        if loss == "ce":
            loss_indiv = _cross_entropy(logits, y)
        elif loss == "dlr":
            loss_indiv = _dlr(logits, y)
        else:
            loss_indiv = _dlr_targeted(logits, y, y_target)
        total = loss_indiv.sum()
    grad = torch.autograd.grad(total, [x_adv])[0].detach()
    return logits, loss_indiv, grad


def _random_start(x: torch.Tensor, counts: Sequence[int], eps: float, norm: str, gens) -> torch.Tensor:
    """APGD's starting point, member by member from its own CPU generator (torchattacks' expression, in
    the default dtype as torchattacks computes it), added to `x` and clamped to [0, 1]."""
    dev, img = x.device, tuple(x.shape[2:])
    ones = [1] * len(img)
    dims = tuple(range(1, len(img) + 1))
    start = None
    for p, c in enumerate(counts):
        if not c:
            continue
        shape = (c, *img)
        if norm == "Linf":
            t = 2 * torch.rand(shape, generator=gens[p]).to(dev).detach() - 1
            d = (
                eps
                * torch.ones([c, *ones]).to(dev).detach()
                * t
                / (t.reshape([t.shape[0], -1]).abs().max(dim=1, keepdim=True)[0].reshape([-1, *ones]))
            )
        else:
            t = torch.randn(shape, generator=gens[p]).to(dev).detach()
            d = eps * torch.ones([c, *ones]).to(dev).detach() * t / ((t**2).sum(dim=dims, keepdim=True).sqrt() + 1e-12)
        if start is None:
            start = torch.zeros((*x.shape[:2], *img), dtype=d.dtype, device=dev)
        start[p, :c] = d
    return (x.detach() + start).clamp(0.0, 1.0)


def _l2_project(x: torch.Tensor, x_adv_1: torch.Tensor, eps: float, plus: float, dims) -> torch.Tensor:
    """torchattacks APGD's L2 projection onto the eps-ball around x, clamped to [0, 1] (`plus` is the 1e-12
    its second projection adds to the norm inside the min)."""
    diff = x_adv_1 - x
    norm = (diff**2).sum(dim=dims, keepdim=True).sqrt()
    radius = eps * torch.ones(x.shape).to(x.device).detach()
    return torch.clamp(x + diff / (norm + 1e-12) * torch.min(radius, norm + plus if plus else norm), 0.0, 1.0)


def _apgd_single_run(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    counts: Sequence[int],
    eps: float,
    *,
    norm: str,
    steps: int,
    rho: float,
    loss: str,
    gens,
    target_class: int | torch.Tensor | None = None,
):
    """`attack_single_run` of torchattacks.APGD (loss "ce" / "dlr") or APGDT (loss "dlr-targeted", with
    `target_class`: one rank for every member, or a `(P,)` tensor of ranks, member p's target being its
    `target_class[p]`-th most likely class) over a population batch; returns (x_best, acc, loss_best,
    x_best_adv), the last `(P, W, ...)`: the last iterate each sample was misclassified at (the start where
    never)."""
    steps_2, steps_min, size_decr = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    dev = x.device
    dims = _img_dims(x)
    nd = len(dims)
    x_adv = _random_start(x, counts, eps, norm, gens)
    x_best = x_adv.clone()
    x_best_adv = x_adv.clone()
    # torchattacks keeps the loss history on the CPU in the default dtype: rounding the loss to it decides
    # the oscillation test, so it is kept in that dtype here too.
    loss_steps = torch.zeros([steps, *x.shape[:2]], dtype=torch.get_default_dtype(), device=dev)
    y_target = None
    if target_class is not None:
        order = model(x, counts).sort(dim=-1)[1]
        if isinstance(target_class, torch.Tensor):
            ranks = (order.shape[-1] - target_class.to(order.device)).view(-1, 1, 1).expand(*order.shape[:2], 1)
            y_target = order.gather(-1, ranks).squeeze(-1)
        else:
            y_target = order[..., -target_class]
    x_adv.requires_grad_()
    logits, loss_indiv, grad = _loss_and_grad(model, x_adv, y, loss, y_target, counts)
    grad_best = grad.clone()
    acc = logits.detach().max(-1)[1] == y
    loss_best = loss_indiv.detach().clone()
    step_size = (
        eps * torch.ones(_per_sample(x)).to(dev).detach() * torch.Tensor([2.0]).to(dev).detach().reshape([1] * (nd + 2))
    )
    x_adv_old = x_adv.clone()
    k = steps_2 + 0
    counter3 = 0
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones(x.shape[:2], dtype=torch.bool, device=dev)
    for i in range(steps):
        with torch.no_grad():
            x_adv = x_adv.detach()
            grad2 = x_adv - x_adv_old
            x_adv_old = x_adv.clone()
            a = 0.75 if i > 0 else 1.0
            if norm == "Linf":
                x_adv_1 = x_adv + step_size * torch.sign(grad)
                x_adv_1 = torch.clamp(torch.min(torch.max(x_adv_1, x - eps), x + eps), 0.0, 1.0)
                x_adv_1 = torch.clamp(
                    torch.min(torch.max(x_adv + (x_adv_1 - x_adv) * a + grad2 * (1 - a), x - eps), x + eps), 0.0, 1.0
                )
            else:
                # APGDT scales every sample's L2 step by the step size of the batch's first sample
                # (torchattacks' `step_size[0]`): here the first row of each member.
                size = step_size if target_class is None else step_size[:, :1]
                x_adv_1 = x_adv + size * grad / ((grad**2).sum(dim=dims, keepdim=True).sqrt() + 1e-12)
                x_adv_1 = _l2_project(x, x_adv_1, eps, 0.0, dims)
                x_adv_1 = x_adv + (x_adv_1 - x_adv) * a + grad2 * (1 - a)
                x_adv_1 = _l2_project(x, x_adv_1, eps, 1e-12, dims)
            x_adv = x_adv_1 + 0.0
        x_adv.requires_grad_()
        logits, loss_indiv, grad = _loss_and_grad(model, x_adv, y, loss, y_target, counts)
        pred = logits.detach().max(-1)[1] == y
        acc = torch.min(acc, pred)
        with torch.no_grad():
            x_best_adv = torch.where(_expand(~pred, x), x_adv.detach(), x_best_adv)
            y1 = loss_indiv.detach().clone()
            loss_steps[i] = y1 + 0
            ind = y1 > loss_best
            x_best = torch.where(_expand(ind, x), x_adv.detach(), x_best)
            grad_best = torch.where(_expand(ind, x), grad, grad_best)
            loss_best = torch.where(ind, y1, loss_best)
            counter3 += 1
            if counter3 == k:
                # check_oscillation: how often the loss rose over the last k steps (index -1 wraps to the
                # last row, still zero, at the first check, as in torchattacks' numpy code).
                t = torch.zeros(x.shape[:2], dtype=torch.long, device=dev)
                for counter5 in range(k):
                    t += loss_steps[i - counter5] > loss_steps[i - counter5 - 1]
                fl_oscillation = t <= k * rho
                fl_reduce_no_impr = ~reduced_last_check & (loss_best_last_check >= loss_best)
                fl_oscillation = fl_oscillation | fl_reduce_no_impr
                reduced_last_check = fl_oscillation.clone()
                loss_best_last_check = loss_best.clone()
                flag = _expand(fl_oscillation, x)
                step_size = torch.where(flag, step_size / 2.0, step_size)
                x_adv = torch.where(flag, x_best, x_adv.detach())
                grad = torch.where(flag, grad_best, grad)
                counter3 = 0
                k = max(k - size_decr, steps_min)
    return x_best, acc, loss_best, x_best_adv


def _apgd_perturb(
    ctx: PopulationContext,
    x: torch.Tensor,
    y: torch.Tensor,
    counts: Sequence[int],
    eps: float,
    params: dict,
    seeds,
    *,
    loss: str,
    target_classes: Sequence[int | None],
) -> torch.Tensor:
    """torchattacks' `APGD.perturb` / `APGDT.perturb` (cheap=True): the clean-correct inputs of each member,
    attacked restart by restart (APGD-T: target class by target class, then restart by restart), each run
    only on the inputs still correct; the result keeps the clean input where no run succeeded."""
    norm = "L2" if params.get("norm") == "l2" else "Linf"
    model = ctx.model
    adv = x.clone()
    with torch.no_grad():
        acc = (model(x, counts).max(-1)[1] == y) & _valid(counts, x.shape[1], x.device)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]  # torch.random.manual_seed(self.seed)
    members = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    for target_class in target_classes:
        for _ in range(params["restarts"]):
            packed = pack([acc[p].nonzero().squeeze(1) for p in range(len(counts))], x.device)
            if packed.width == 0:
                continue
            _, acc_curr, _, adv_curr = _apgd_single_run(
                model,
                packed.take(x),
                packed.take(y),
                packed.counts,
                eps,
                norm=norm,
                steps=params["steps"],
                rho=AA_RHO,
                loss=loss,
                gens=gens,
                target_class=target_class,
            )
            fooled = (acc_curr == 0) & packed.valid
            who, where = members.expand_as(fooled)[fooled], packed.index[fooled]
            acc[who, where] = False
            adv[who, where] = adv_curr[fooled].detach().to(adv.dtype)
    return adv


def population_apgd(loss: str):
    """`apgd-ce` / `apgd-dlr` (`attacks.apgd`): torchattacks.APGD with `steps`, `restarts`, rho 0.75, eot_iter 1."""

    def run(ctx, x, y, counts, eps, params, seeds) -> torch.Tensor:
        return _apgd_perturb(ctx, x, y, counts, eps, params, seeds, loss=loss, target_classes=[None])

    run.__name__ = f"population_apgd_{loss}"
    return run


def population_apgd_t(ctx, x, y, counts, eps, params, seeds) -> torch.Tensor:
    """`apgd-t` (`attacks.apgd_t`): torchattacks.APGDT (targeted DLR) over the `targets` (at most K - 1) most
    likely wrong classes, each with `restarts` runs of `steps` steps, rho 0.75, eot_iter 1."""
    n_targets = min(params["targets"], ctx.n_classes - 1)
    return _apgd_perturb(
        ctx, x, y, counts, eps, params, seeds, loss="dlr-targeted", target_classes=list(range(2, n_targets + 2))
    )


def _check_all_targets(x, y, eps, norm, steps, targets, restarts) -> tuple[float, int, int, int]:
    """The parsed (eps, steps, targets, restarts); one-line `ConfigError`s as `run_evaluation`'s checks."""
    eps = parse_real(eps, "eps", low=0.0)
    counts = [
        parse_integer(v, name, minimum=1)
        for name, v in (("steps", steps), ("targets", targets), ("restarts", restarts))
    ]
    if norm not in ("linf", "l2"):
        raise ConfigError(f"norm must be 'linf' or 'l2', got {norm!r}")
    check_inputs(x, y)  # tensors, float images in [0, 1] (N, ...), integer labels (N,): as run_evaluation
    if x.dtype not in (torch.float32, torch.float64) or x.dim() != 4:
        raise ConfigError(f"inputs must be float32 or float64 images (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
    return (eps, *counts)


class _Replicas:
    """One network seen as a population of identical members: a single forward over all `P x W` rows
    (on one network the members' rows need no separate passes; `counts` is ignored: no padding)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x: torch.Tensor, counts=None) -> torch.Tensor:
        return self.model(x.reshape(-1, *x.shape[2:])).view(*x.shape[:2], -1)


def apgd_t_all_targets(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    norm: str = "linf",
    steps: int = 100,
    targets: int = 9,
    restarts: int = 1,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """APGD-T (torchattacks.APGDT's algorithm, Croce & Hein 2020) on one network with every target class
    at once: each (target class, restart) is a member of a population whose members share the network, so
    one forward and backward pass over all of them replaces `targets x restarts` runs one after another.

    torchattacks runs the target classes one after another, each on the inputs the earlier ones left
    correct; on a few inputs each of its `targets x restarts x steps` iterations is a tiny,
    overhead-bound pass, which is why this is written here (used by the `more_effort` diagnostic, whose
    5x-longer APGD-T cost more than every other diagnostic together). Here every target class runs on
    every clean-correct input: an input counts as broken when any run broke it, as in torchattacks, where
    a later target only skips inputs already broken. Member m (target rank 2 + m // restarts, i.e. the
    (m // restarts + 1)-th most likely wrong class) draws its random start from a generator seeded with
    `seed + m`, so its run is bit for bit torchattacks' `attack_single_run` on these same inputs (this
    batch) after `torch.manual_seed(seed + m)`; a caller that splits its inputs into chunks gets each
    chunk's runs, as torchattacks would on those chunks.

    `model`: a module mapping `(B, C, H, W)` to logits `(B, K)`, run as `run_evaluation` runs it (eval
    mode locked, parameters frozen, on the inputs' device; all restored afterwards); `x` `(N, C, H, W)`
    float32 or float64 in [0, 1]; `y` `(N,)` integer classes in [0, K); `eps` >= 0: the L-infinity budget
    or L2 radius (`norm` "linf" or "l2"); `targets` is capped at K - 1. Returns the adversarial inputs
    `(N, C, H, W)` (of the runs that misclassified the input, the last misclassified iterate with the
    widest margin; the clean input where none did) and `fooled` `(N,)` bool (misclassified clean, or
    broken by some run). Raises `ConfigError` for a negative or non-finite `eps`, `steps`, `targets` or
    `restarts` below 1, a norm other than "linf" / "l2", inputs that are not float32 or float64 images in
    [0, 1] with as many integer labels in [0, K), or a network with fewer than 4 classes (targeted DLR
    needs them).
    """
    eps, steps, targets, restarts = _check_all_targets(x, y, eps, norm, steps, targets, restarts)
    with prepared_model(model, x.device) as target:
        return _all_targets(target, x, y, eps, norm, steps, targets, restarts, int(seed))


def _all_targets(model, x, y, eps, norm, steps, targets, restarts, seed) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = model(x)
    if logits.dim() != 2 or logits.shape[1] < 4:
        raise ConfigError(
            f"APGD-T needs logits (N, K) with K >= 4 classes (targeted DLR); got shape {tuple(logits.shape)}"
        )
    k = int(logits.shape[1])
    if int(y.min()) < 0 or int(y.max()) >= k:
        raise ConfigError(f"labels must lie in [0, {k - 1}] for a network with {k} classes")
    n_targets = min(targets, k - 1)
    adv = x.detach().clone()
    fooled = logits.argmax(1) != y
    rows = (~fooled).nonzero().squeeze(1)
    if len(rows) == 0 or n_targets < 1:
        return adv, fooled
    ranks = torch.arange(2, n_targets + 2).repeat_interleave(restarts)
    p, w = len(ranks), len(rows)
    xs = x[rows].unsqueeze(0).expand(p, *x[rows].shape).contiguous()
    ys = y[rows].unsqueeze(0).expand(p, w).contiguous()
    gens = [torch.Generator().manual_seed(seed + m) for m in range(p)]
    _, acc, _, best_adv = _apgd_single_run(
        _Replicas(model),
        xs,
        ys,
        [w] * p,
        eps,
        norm="L2" if norm == "l2" else "Linf",
        steps=steps,
        rho=AA_RHO,
        loss="dlr-targeted",
        gens=gens,
        target_class=ranks,
    )
    broke = acc == 0  # (P, W)
    hit = broke.any(0)
    # Of the runs that broke an input, the iterate misclassified by the widest margin: the most likely to
    # stay misclassified when it is clipped to the budget and classified again at another batch size.
    with torch.no_grad():
        z = _Replicas(model)(best_adv)
    true = z.gather(-1, ys.unsqueeze(-1)).squeeze(-1)
    margin = z.scatter(-1, ys.unsqueeze(-1), float("-inf")).amax(-1) - true
    best = torch.where(broke, margin, torch.full_like(margin, float("-inf"))).argmax(0)
    chosen = best_adv[best, torch.arange(w, device=best_adv.device)]
    adv[rows[hit]] = chosen[hit].detach().to(adv.dtype)
    fooled[rows[hit]] = True
    return adv, fooled


__all__ = [
    "apgd_t_all_targets",
    "clean_gradient_population",
    "full",
    "population_apgd",
    "population_apgd_t",
    "population_fgsm",
    "population_pgd",
]
