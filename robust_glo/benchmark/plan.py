"""A readable plan of what a suite will run (`robust-glo benchmark SUITE --check`)."""

from __future__ import annotations

import dataclasses

from robust_glo.benchmark.suite import Suite
from robust_glo.evolution.config import EvolveConfig
from robust_glo.robustness.attacks.base import display_name


def describe(suite: Suite) -> str:
    """Several lines: the suite, and per stage how many pieces of which size it runs."""
    s = suite
    train = dict(s.train)
    budget = (
        f"{train['steps']} steps"
        if "steps" in train
        else f"{train['epochs']} epochs"
        if "epochs" in train
        else f"preset {train.get('preset', 'default')}"
    )
    lines = [
        f"suite {s.name}" + (f" (variant {s.variant})" if s.variant else "") + f" from {s.source}",
        f"  {s.description.strip()}" if s.description.strip() else "",
        f"  dataset {s.dataset}, model {s.model or 'the dataset default'}, device {s.device}",
    ]
    defaults = EvolveConfig()
    for name, e in s.evolutions.items():
        fidelity = e.get("fidelity", defaults.fidelity)
        if fidelity == "halving":
            shape = {k: e[k] for k in ("steps", "eta", "rungs") if k in e}
            halving = dataclasses.replace(defaults, fidelity=fidelity, **shape)
            candidate = (
                f"successive halving (eta {halving.eta}) in rungs of {'/'.join(map(str, halving.rung_steps()))} steps"
            )
        else:
            candidate = f"{e.get('steps', defaults.steps)} steps per candidate"
        lines.append(
            f"  evolve{' ' + name if name else ''}:  {e.get('generations', defaults.generations)} generations x "
            f"popsize {e.get('popsize', defaults.popsize)}, {candidate}, "
            f"fitness {e.get('fitness', defaults.fitness)}, invariant {e.get('invariant', defaults.invariant)}, "
            f"{_precision(s, e)}"
            + (
                f"; {e['searches']} independent searches (seeds {e.get('seed', defaults.seed)} to "
                f"{e.get('seed', defaults.seed) + e['searches'] - 1}), the best one's loss trained"
                if e.get("searches", 1) > 1
                else ""
            )
        )
    options = ", ".join(f"{k}={v}" for k, v in train.items() if k not in ("steps", "epochs"))
    lines.append(
        f"  train:   {len(s.losses)} losses x {len(s.seeds)} seeds = {len(s.losses) * len(s.seeds)} runs "
        f"of {budget}" + (f" ({options})" if options else "")
    )
    lines.append(f"           losses: {', '.join(s.losses)}; seeds: {', '.join(map(str, s.seeds))}")
    lines.append(
        f"  attack:  {', '.join(display_name(a) for a in s.attacks)} at eps {', '.join(f'{e:g}' for e in s.eps)}"
        + (f" (L2 radii {', '.join(f'{e:g}' for e in s.eps_l2)})" if s.eps_l2 else "")
        + f" on {s.n_eval or 'all'} test images per network"
    )
    if s.analyze:
        lines.append(f"  analyze: {len(s.losses) + len(s.extra_losses)} losses at {s.classes} classes")
    lines.append(
        f"  report:  baseline {s.baseline}, alpha {s.alpha:g}, {s.correction} correction, "
        f"bootstrap {s.bootstrap:,} replicates (seed {s.bootstrap_seed})"
    )
    if s.variants:
        lines.append(f"  variants: {', '.join(s.variants)} (--variant NAME)")
    return "\n".join(line for line in lines if line)


def _precision(suite: Suite, options: dict) -> str:
    """`precision fp32`, or `precision auto (bf16 on this machine)`: what the candidates train in here."""
    asked = options.get("precision", "fp32")
    resolved = suite.evolve_precision(options)
    return f"precision {asked}" + (f" ({resolved} on this machine)" if resolved != asked else "")
