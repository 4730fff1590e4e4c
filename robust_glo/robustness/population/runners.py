"""Which attack families run as a population, and the per-member fallback for the others.

A `PopulationRunner` is `runner(ctx, x, y, counts, eps, params, seeds) -> adv`: inputs `(P, W, C, H, W')`
with member p's real inputs in its first `counts[p]` rows (padding after), labels `(P, W)`, one budget, the
family's resolved parameters (`AttackSpec.resolved()`) and one seed per member (the seed the per-network
evaluation hands that member's runner, `evaluate.batch_seed`); it returns adversarial inputs `(P, W, ...)`.

Ported (`POPULATION_RUNNERS`): `fgsm`, `pgd` (L-infinity and L2), `apgd-ce`, `apgd-dlr`, `apgd-t` (both
norms), `square` (L-infinity), and `aa-reference` composed from its parts. Everything else (`fab-t`,
`square:norm=l2`, a family registered elsewhere) runs through `fallback`: the family's own runner
(torchattacks) member by member on that member's own network, seeded as the per-network evaluation seeds
it, so its results are the per-network ones by construction and only the speed-up is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from robust_glo.robustness.attacks.autoattack import AA_COMPONENTS
from robust_glo.robustness.attacks.base import AttackContext, AttackSpec, get_attack_entry
from robust_glo.robustness.population.gradient import (
    population_apgd,
    population_apgd_t,
    population_fgsm,
    population_pgd,
)
from robust_glo.robustness.population.model import PopulationModel, pack
from robust_glo.robustness.population.square import population_square


@dataclass
class PopulationContext:
    """What a population runner needs besides the batch.

    `model` maps `(P, W, C, H, W')` to logits `(P, W, K)` in eval mode; `clean_grad`, when given, is each
    member's grad_x of its summed CE at the clean inputs, aligned with the batch `(P, W, C, H, W')`;
    `members`: member p's network as a module `(B, C, H, W') -> (B, K)` (eval mode locked), for the
    per-member fallback; `train_losses`: member p's training loss `loss(logits (B, K), targets (B,))`
    (None where unknown), for the per-member fallback of `fgsm:loss=train`.
    """

    model: PopulationModel
    n_classes: int
    device: torch.device
    clean_grad: torch.Tensor | None = None
    members: Sequence[nn.Module] | None = None
    train_losses: Sequence[Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None] | None = None

    def predict(self, x: torch.Tensor, counts: Sequence[int] | None = None) -> torch.Tensor:
        """Predicted labels `(P, W)` for inputs `(P, W, C, H, W')` (`counts`: see `PopulationModel.forward`)."""
        return self.model.predict(x, counts)

    def narrowed(self, packed) -> PopulationContext:
        """The context for a packed subset of this batch (`model.Packed`)."""
        grad = packed.take(self.clean_grad) if self.clean_grad is not None else None
        return PopulationContext(self.model, self.n_classes, self.device, grad, self.members, self.train_losses)


PopulationRunner = Callable[..., torch.Tensor]


def fallback(entry_name: str, *, reseed: bool = True) -> PopulationRunner:
    """A population runner that runs family `entry_name`'s own runner member by member, on each member's
    own module (`ctx.members`) with its own training loss (`ctx.train_losses`), after
    `torch.manual_seed(seed_p)` as `evaluate._Tally.attack` does (`reseed`); members without rows are
    skipped."""

    def run(ctx: PopulationContext, x, y, counts, eps, params, seeds) -> torch.Tensor:
        if ctx.members is None:
            raise RuntimeError(f"attack {entry_name!r} runs member by member and needs the members' modules")
        entry = get_attack_entry(entry_name)
        adv = x.clone()
        for p, c in enumerate(counts):
            if not c:
                continue
            grad = ctx.clean_grad[p, :c] if ctx.clean_grad is not None else None
            loss = ctx.train_losses[p] if ctx.train_losses is not None else None
            member = AttackContext(ctx.members[p], ctx.n_classes, ctx.device, clean_grad=grad, train_loss=loss)
            if reseed:
                torch.manual_seed(int(seeds[p]))
            adv[p, :c] = entry.runner(member, x[p, :c], y[p, :c], eps, params, int(seeds[p])).detach()
        return adv

    run.__name__ = f"fallback_{entry_name}"
    return run


def population_aa_reference(ctx: PopulationContext, x, y, counts, eps, params, seeds) -> torch.Tensor:
    """`aa-reference` (`attacks.autoattack.run_aa_reference`): APGD-CE -> APGD-T -> FAB-T -> Square with the
    reference budgets, each part on the inputs of each member that the earlier parts left correct, every
    part with the member's same seed; the parts run as a population where ported, else member by member."""
    adv = x.clone()
    width = x.shape[1]
    todo = torch.arange(width, device=x.device).unsqueeze(0) < torch.tensor(list(counts), device=x.device).unsqueeze(1)
    members = torch.arange(x.shape[0], device=x.device).unsqueeze(1)
    for name, component in AA_COMPONENTS:
        entry = get_attack_entry(name)
        part = {**entry.defaults, **component, "norm": params.get("norm", "linf")}
        packed = pack([todo[p].nonzero().squeeze(1) for p in range(len(counts))], x.device)
        if packed.width == 0:
            break
        xs, ys = packed.take(x), packed.take(y)
        # run_aa_reference calls each part's runner directly (no reseeding in between).
        runner = population_runner(name, part, reseed=False)
        attempt = runner(ctx.narrowed(packed), xs, ys, packed.counts, eps, part, seeds)
        fooled = (ctx.predict(attempt, packed.counts) != ys) & packed.valid
        who, where = members.expand_as(fooled)[fooled], packed.index[fooled]
        adv[who, where] = attempt[fooled]
        todo[who, where] = False
    return adv


POPULATION_RUNNERS: dict[str, PopulationRunner] = {
    "fgsm": population_fgsm,
    "pgd": population_pgd,
    "apgd-ce": population_apgd("ce"),
    "apgd-dlr": population_apgd("dlr"),
    "apgd-t": population_apgd_t,
    "square": population_square,
    "aa-reference": population_aa_reference,
}
# Parameter values a ported runner does not cover: those fall back per member.
_NOT_PORTED: dict[str, Callable[[dict], bool]] = {
    "square": lambda params: params.get("norm") == "l2",
    # FGSM on the network's own training loss (`fgsm:loss=train`) needs each member's loss: per member.
    "fgsm": lambda params: params.get("loss", "ce") != "ce",
}


def is_ported(spec: AttackSpec | str, params: dict | None = None) -> bool:
    """Whether `spec` (or family name with resolved `params`) runs as one population computation (True) or
    member by member through torchattacks (False). `aa-reference` counts as ported: its FAB-T part (and,
    in L2, its Square part) runs member by member inside it."""
    name = spec.family if isinstance(spec, AttackSpec) else spec
    params = spec.resolved() if isinstance(spec, AttackSpec) else (params or {})
    if name not in POPULATION_RUNNERS:
        return False
    rule = _NOT_PORTED.get(name)
    return not (rule is not None and rule(params))


def population_runner(name: str, params: dict, *, reseed: bool = True) -> PopulationRunner:
    """The population runner of family `name` with resolved `params`: the port, or the per-member fallback."""
    return POPULATION_RUNNERS[name] if is_ported(name, params) else fallback(name, reseed=reseed)
