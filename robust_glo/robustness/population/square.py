"""The Square attack (Andriushchenko et al. 2020, "Square Attack: a query-efficient black-box adversarial
attack via random search") over a population of networks, L-infinity: torchattacks 3.5.1's `Square`
(`torchattacks/attacks/square.py`, loss "margin", as `attacks.square.run_square` runs it) member by member.

torchattacks draws one window position and one colour per iteration for the whole batch it is given;
here every member draws its own, from its own CPU generator seeded like the per-network run, the same
calls in the same order (`torch.rand` for the stripes of the start, then per iteration two `random_int`
and one `random_choice`), and stops drawing when all its inputs are broken, as its own run would stop.
So each member's queries are those of the per-network run. The L2 version falls back to torchattacks
per member (`runners.py`).

Inputs `(P, W, C, H, W')` with member p's real rows first (`counts`), labels `(P, W)`; the result is
`(P, W, ...)`. The inputs still standing are re-packed as they shrink (torchattacks queries only the
inputs still standing): in "loop" mode whenever a member's count shrinks, in "vmap" mode when the widest
member's has shrunk by a quarter (fewer distinct shapes), so late iterations do not carry broken inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from robust_glo.robustness.population.model import pack

if TYPE_CHECKING:
    from robust_glo.robustness.population.runners import PopulationContext


def _p_selection(p_init: float, it: int) -> float:
    """torchattacks.Square.p_selection without schedule rescaling (`resc_schedule=False`)."""
    for low, high, div in (
        (10, 50, 2),
        (50, 200, 4),
        (200, 500, 8),
        (500, 1000, 16),
        (1000, 2000, 32),
        (2000, 4000, 64),
        (4000, 6000, 128),
        (6000, 8000, 256),
    ):
        if low < it <= high:
            return p_init / div
    return p_init / 512 if it > 8000 else p_init


def _margin(model, x: torch.Tensor, y: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
    """Square's margin loss: logit of the label minus the largest other logit, `(P, W)`."""
    logits = model(x, counts)
    y_corr = logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    y_others = logits.scatter(-1, y.unsqueeze(-1), -float("inf")).max(dim=-1)[0]
    return y_corr - y_others


def _random_choice(shape, gen: torch.Generator) -> torch.Tensor:
    return torch.sign(2 * torch.rand(shape, generator=gen) - 1)


def _random_int(low: int, high: int, gen: torch.Generator) -> int:
    return int((low + (high - low) * torch.rand([1], generator=gen)).long())


def _single_run(
    model, x: torch.Tensor, y: torch.Tensor, counts: Sequence[int], eps: float, n_queries: int, p_init, gens
):
    """`Square.attack_single_run` (L-infinity) over a population batch; returns x_best `(P, W, ...)`."""
    dev = x.device
    n_mem, width = x.shape[:2]
    c, h, w = x.shape[2:]
    n_features = c * h * w
    start = torch.zeros((n_mem, width, c, 1, w), dtype=torch.get_default_dtype(), device=dev)
    for p, k in enumerate(counts):
        if k:
            start[p, :k] = (eps * _random_choice([k, c, 1, w], gens[p])).to(dev)
    x_best = torch.clamp(x + start, 0.0, 1.0)
    margin_min = _margin(model, x_best, y, counts)
    loss_min = margin_min.clone()
    valid = torch.arange(width, device=dev).unsqueeze(0) < torch.tensor(list(counts), device=dev).unsqueeze(1)
    # The working set: the rows still standing, packed.
    rows = [torch.arange(k, device=dev) for k in counts]
    loop = getattr(model, "mode", "vmap") == "loop"
    work = pack(rows, dev)
    xs, ys, best, m_min, l_min = (work.take(t) for t in (x, y, x_best, margin_min, loss_min))
    for i_iter in range(n_queries):
        standing = (m_min > 0.0) & work.valid
        left = standing.sum(1).tolist()
        if not any(left):
            break
        # "loop" computes only each member's real rows: re-pack whenever a count shrinks. "vmap" computes the
        # full width: re-pack when the widest member has shrunk by a quarter (few distinct shapes on a GPU).
        if (left != work.counts) if loop else (max(left) <= (3 * work.width) // 4):
            work.put(x_best, best)
            work.put(margin_min, m_min)
            work.put(loss_min, l_min)
            rows = [work.rows(p)[standing[p, : work.counts[p]]] for p in range(n_mem)]
            work = pack(rows, dev)
            xs, ys, best, m_min, l_min = (work.take(t) for t in (x, y, x_best, margin_min, loss_min))
            standing = (m_min > 0.0) & work.valid
        p = _p_selection(p_init, i_iter)
        s = max(int(round(math.sqrt(p * n_features / c))), 1)
        deltas = torch.zeros((n_mem, c, h, w), dtype=torch.get_default_dtype())
        for j, k in enumerate(left):
            if not k:  # this member's run has stopped: it draws nothing more
                continue
            vh = _random_int(0, h - s, gens[j])
            vw = _random_int(0, w - s, gens[j])
            deltas[j, :, vh : vh + s, vw : vw + s] = 2.0 * eps * _random_choice([c, 1, 1], gens[j])
        x_new = best + deltas.to(dev).unsqueeze(1)
        x_new = torch.min(torch.max(x_new, xs - eps), xs + eps)
        x_new = torch.clamp(x_new, 0.0, 1.0)
        margin = _margin(model, x_new, ys, work.counts)
        improved = margin < l_min
        l_min = torch.where(standing & improved, margin, l_min)
        improved = improved | (margin <= 0.0)
        take = standing & improved
        m_min = torch.where(take, margin, m_min)
        best = torch.where(take.view(*take.shape, 1, 1, 1), x_new, best)
    work.put(x_best, best)
    return torch.where(valid.view(*valid.shape, 1, 1, 1), x_best, x)


def population_square(
    ctx: PopulationContext, x: torch.Tensor, y: torch.Tensor, counts: Sequence[int], eps: float, params: dict, seeds
) -> torch.Tensor:
    """`square` (`attacks.square.run_square`), L-infinity: `Square.perturb` per member with `n_queries`,
    `restarts` and `p_init`, margin loss, no schedule rescaling; each restart only on the inputs still
    correct, keeping the clean input where no restart succeeded."""
    if params.get("norm") == "l2":
        raise NotImplementedError("the population Square attack is L-infinity only; L2 falls back per member")
    if x.dim() != 5:
        raise NotImplementedError("the population Square attack takes images (P, B, C, H, W)")
    model = ctx.model
    adv = x.clone()
    with torch.no_grad():
        acc = (model(x, counts).max(-1)[1] == y) & (
            torch.arange(x.shape[1], device=x.device).unsqueeze(0)
            < torch.tensor(list(counts), device=x.device).unsqueeze(1)
        )
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        members = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
        for _ in range(params["restarts"]):
            packed = pack([acc[p].nonzero().squeeze(1) for p in range(len(counts))], x.device)
            if packed.width == 0:
                continue
            xs, ys = packed.take(x), packed.take(y)
            adv_curr = _single_run(model, xs, ys, packed.counts, eps, params["n_queries"], params["p_init"], gens)
            fooled = (model(adv_curr, packed.counts).max(-1)[1] != ys) & packed.valid
            who, where = members.expand_as(fooled)[fooled], packed.index[fooled]
            acc[who, where] = False
            adv[who, where] = adv_curr[fooled]
    return adv
