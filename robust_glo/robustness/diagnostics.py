"""Diagnostics that can fail: is an evaluation's robust accuracy believable, per threat model and budget?

A reliability check (checks.py) asks whether an evaluation went wrong; a diagnostic asks whether the
attacks could have been fooled by the network. These are the questions a reviewer of a robustness paper
asks (Carlini et al. 2019, "On Evaluating Adversarial Robustness", sections 4-5; Tramer et al. 2020, "On
Adaptive Attacks"), each answered with a measured figure and a stated threshold:

- `more_effort`: a stronger version of the strongest attack that ran at (norm, ε) (5x its iterations and 5
  restarts; APGD-T 5x its iterations, its target classes run at once rather than one after another:
  `population.apgd_t_all_targets`) on a subsample of the inputs the worst case left standing must not
  break more than `effort_tolerance` of the subsample, nor more than `effort_relative` of the inputs still
  standing (at low robust accuracy an absolute tolerance could never fail); either rule needs at least
  `effort_min_count` inputs broken (on a small subsample one image alone exceeds 2%). Otherwise the
  attacks have not converged and robust accuracy is over-stated.
- `unbounded`: at a budget that lets every image be replaced by mid-gray (L∞ ε = 0.5; for L2 the radius
  0.5·sqrt(d), whose ball contains that L∞ ball), PGD must bring accuracy to about zero (at most
  `unbounded_tolerance`). Otherwise something blocks the attacks (masked gradients, a non-differentiable
  head). ε = 0.3 would not do: adversarially trained MNIST networks keep most of their accuracy there.
- `targeted_vs_ce` (informational: it does not block a claim whose worst case includes APGD-T): the share of
  inputs that every attack before APGD-T (APGD-CE among them) left standing and APGD-T broke. A large gap
  means the cross-entropy gradient is uninformative for this network, so numbers resting on CE-gradient
  attacks alone (FGSM, PGD, APGD-CE) mislead (Croce & Hein 2020 report the pattern for masked defences).
- `gradients`: the share of correctly classified inputs whose CE input-gradient is all zero, NaN or
  infinite. `sign(NaN)` is 0, so FGSM and PGD do not move such an input and accuracy "under attack" is
  clean accuracy (a naive `log(softmax(z))` head does this).
- `transfer` (computed across networks by `robust_glo.comparison.transfer`): adversarial examples crafted
  on the baseline network of the same seed must not break, among the inputs that this network's own
  white-box worst case left standing (counted per input), more than `transfer_tolerance` of all N inputs,
  nor more than `effort_relative` of the inputs still standing (at least `effort_min_count` of them: at
  low robust accuracy the absolute tolerance alone could never fail). Transferred examples
  that succeed where the white-box attacks failed mean the white-box attacks were fooled (Fu et al. 2020
  report exactly this for label smoothing's PGD robustness).

`run_diagnostics` runs the first four on one network after its evaluation; `transfer_row` builds the
fifth. Rows share `DIAGNOSTIC_COLUMNS`; `norm` and `eps` are empty/NaN for a diagnostic that does not
depend on the budget (`gradients`) and the unbounded budget for `unbounded` (which speaks for every ε of
its threat model).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from torch import nn

from robust_glo.errors import ConfigError
from robust_glo.robustness.attacks import WORST, WORST_L2, AttackSpec
from robust_glo.robustness.checks import NOT_RUN
from robust_glo.robustness.evaluate import (
    MAX_L2,
    Evaluation,
    attack_dtype,
    prepared_model,
    run_evaluation,
    within_budget,
)
from robust_glo.robustness.population import apgd_t_all_targets
from robust_glo.utils.device import resolve_device

DIAGNOSTIC_COLUMNS = ["check", "norm", "eps", "status", "value", "threshold", "n", "detail"]
CHECKS = ("more_effort", "unbounded", "targeted_vs_ce", "gradients", "transfer")
# Budget-independent diagnostics apply to every (norm, eps); `unbounded` to every eps of its norm.
ALL_BUDGETS = ("gradients",)
PER_NORM = ("unbounded",)
# The diagnostics a claim needs passed on every seed: by the loss's networks, and by the baseline's (whose
# networks are the transfer source, so they have no transfer row). `targeted_vs_ce` is informational.
BLOCKING = ("more_effort", "unbounded", "gradients", "transfer")
BLOCKING_BASELINE = ("more_effort", "unbounded", "gradients")

EXPLANATIONS: dict[str, str] = {
    "more_effort": (
        "A stronger version of the strongest attack (5x its iterations; 5 restarts, or APGD-T's 9 targets) on a "
        "subsample of the inputs still standing must not break more than the tolerance of the subsample, nor "
        "more than a tenth of the inputs still standing: otherwise the attacks had not converged and robust "
        "accuracy is over-stated."
    ),
    "unbounded": (
        "At a budget that lets any image become mid-gray (L∞ ε 0.5, or the L2 ball that contains it), accuracy "
        "under PGD must fall to about zero; otherwise something blocks the attacks (masked or non-finite gradients)."
    ),
    "targeted_vs_ce": (
        "Share of all inputs that APGD-CE (and every attack before APGD-T) left standing and targeted APGD-T "
        "broke: a large gap means the cross-entropy gradient is uninformative for this network, so "
        "FGSM/PGD/APGD-CE numbers alone mislead (informational: APGD-T is in the worst case)."
    ),
    "gradients": (
        "Share of correctly classified inputs whose cross-entropy input-gradient is all zero, NaN or infinite: "
        "gradient attacks cannot move such inputs (sign(NaN) = 0), so their accuracy under attack is clean accuracy."
    ),
    "transfer": (
        "Adversarial examples crafted on the baseline network of the same seed must not break inputs that this "
        "network's own white-box attacks left standing (more than the tolerance of all inputs, or more than a "
        "tenth of those standing): if they do, the white-box attacks were fooled."
    ),
}

# The strongest attack family that ran at a budget decides what `more_effort` strengthens, strongest first.
EFFORT_ORDER = ("aa-reference", "apgd-t", "apgd-dlr", "apgd-ce", "pgd", "fab-t", "square", "fgsm")


@dataclass(frozen=True)
class DiagnosticSettings:
    """Sizes and thresholds of the diagnostics (accuracies and shares are fractions of the inputs).

    `n`: the subsample (the first n attacked images) for `more_effort` and `unbounded`; 0 turns both off.
    """

    n: int = 200
    effort_factor: int = 5
    effort_restarts: int = 5
    effort_tolerance: float = 0.02
    effort_relative: float = 0.1
    effort_min_count: int = 2
    unbounded_eps: float = 0.5
    unbounded_tolerance: float = 0.02
    targeted_gap: float = 0.03
    gradient_threshold: float = 0.05
    transfer_tolerance: float = 0.01

    def validated(self) -> DiagnosticSettings:
        if isinstance(self.n, bool) or int(self.n) != self.n or self.n < 0:
            raise ConfigError(f"diagnostics n must be an integer >= 0, got {self.n!r}")
        for key in ("effort_factor", "effort_restarts", "effort_min_count"):
            value = getattr(self, key)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ConfigError(f"diagnostics {key} must be an integer >= 1, got {value!r}")
        if not 0 < self.unbounded_eps <= 1:
            raise ConfigError(f"diagnostics unbounded_eps must lie in (0, 1], got {self.unbounded_eps!r}")
        for key in (
            "effort_tolerance",
            "effort_relative",
            "unbounded_tolerance",
            "targeted_gap",
            "gradient_threshold",
            "transfer_tolerance",
        ):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"diagnostics {key} must lie in [0, 1], got {value!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> DiagnosticSettings:
        data = dict(data or {})
        valid = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ConfigError(f"unknown diagnostics option {unknown[0]!r}; valid: {', '.join(sorted(valid))}")
        return cls(**data).validated()


def diagnostic_row(
    check: str,
    norm: str,
    eps: float,
    failed: bool | None,
    value: float,
    threshold: float,
    n: int,
    detail: str,
) -> dict:
    """One row; `failed=None` means the diagnostic could not be judged ("not run", `detail` says why)."""
    status = NOT_RUN if failed is None else ("fail" if failed else "pass")
    return {
        "check": check,
        "norm": norm,
        "eps": float(eps),
        "status": status,
        "value": float(value),
        "threshold": float(threshold),
        "n": int(n),
        "detail": detail,
    }


def _derived_seed(seed: int, *parts: object) -> int:
    return zlib.crc32("|".join(["diagnostics", str(seed), *map(str, parts)]).encode()) & 0x7FFFFFFF


def _ran_at(ev: Evaluation, norm: str, eps: float) -> list[AttackSpec]:
    return [
        s for s in ev.attacks if s.norm == norm and eps > 0 and s.runs_at(eps) and eps in ev.robust.get(s.label, {})
    ]


def stronger_attack(ran: list[AttackSpec], norm: str, factor: int, restarts: int) -> AttackSpec:
    """The `more_effort` attack: the strongest family in `ran` with `factor` times its iterations and
    `restarts` restarts. APGD-T keeps 1 restart (its 9 target classes already restart it 9 times, and a 5x
    longer run of each costs 45x APGD-CE); FAB-T, Square and FGSM are strengthened as APGD-CE and PGD."""
    families = {s.name: s for s in ran}
    top = next(name for name in EFFORT_ORDER if name in families)
    params = families[top].resolved()
    norm_part = {"norm": norm} if norm == "l2" else {}
    if top in ("aa-reference", "apgd-t"):
        steps = (params.get("steps") or 100) * factor
        return AttackSpec.create("apgd-t", steps=steps, restarts=1, **norm_part)
    if top in ("apgd-dlr", "apgd-ce"):
        return AttackSpec.create(top, steps=params["steps"] * factor, restarts=restarts, **norm_part)
    if top == "pgd":
        return AttackSpec.create("pgd", steps=params["steps"] * factor, restarts=restarts, **norm_part)
    if top in ("fab-t", "square"):
        return AttackSpec.create("apgd-ce", steps=100 * factor, restarts=restarts, **norm_part)
    return AttackSpec.create("pgd", steps=10 * factor, restarts=restarts)  # FGSM alone


def _budgets(ev: Evaluation) -> list[tuple[str, float]]:
    """Every (norm, eps > 0) with a worst-case row, i.e. where some attack ran."""
    out = []
    for norm, label in (("linf", WORST), ("l2", WORST_L2)):
        out += [(norm, float(e)) for e in sorted(ev.robust.get(label, {})) if e > 0 and _ran_at(ev, norm, e)]
    return out


def run_diagnostics(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    evaluation: Evaluation,
    settings: DiagnosticSettings | None = None,
    *,
    seed: int = 0,
    batch_size: int = 500,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """The per-network diagnostics (`more_effort`, `unbounded`, `targeted_vs_ce`, `gradients`) of `model`
    after `evaluation` (its `run_evaluation` on the same `inputs` `(N, C, H, W)` in [0, 1] and `labels` `(N,)`).

    Returns a frame with `DIAGNOSTIC_COLUMNS`. The extra attacks run through `run_evaluation` (eval mode
    locked, forked RNG, seeds derived from `seed`), on the first `settings.n` inputs. Raises `ConfigError`
    for bad settings.
    """
    s = (settings or DiagnosticSettings()).validated()
    ev = evaluation
    rows = [_gradients(ev, s)]
    m = min(int(s.n), len(labels))
    for norm, e in _budgets(ev):
        name = "L2" if norm == "l2" else "Linf"
        rows.append(_targeted_vs_ce(ev, norm, e, s))
        if m == 0:
            rows.append(
                diagnostic_row("more_effort", name, e, None, math.nan, s.effort_tolerance, 0, "turned off (n = 0)")
            )
            continue
        rows.append(_more_effort(model, inputs[:m], labels[:m], ev, norm, e, s, seed, batch_size, device))
    for norm in dict.fromkeys(n for n, _ in _budgets(ev)):
        if m == 0:
            rows.append(
                diagnostic_row(
                    "unbounded",
                    "L2" if norm == "l2" else "Linf",
                    math.nan,
                    None,
                    math.nan,
                    s.unbounded_tolerance,
                    0,
                    "turned off (n = 0)",
                )
            )
            continue
        rows.append(_unbounded(model, inputs[:m], labels[:m], norm, s, seed, batch_size, device))
    return pd.DataFrame(rows, columns=DIAGNOSTIC_COLUMNS)


def _gradients(ev: Evaluation, s: DiagnosticSettings) -> dict:
    shares = getattr(ev, "gradient_shares", None) or {"zero": ev.zero_grad_share}
    zero, nonfinite = float(shares.get("zero", math.nan)), float(shares.get("nonfinite", 0.0))
    correct = int(ev.clean_correct.sum())
    if correct == 0 or math.isnan(zero):
        return diagnostic_row(
            "gradients", "", math.nan, None, math.nan, s.gradient_threshold, 0, "no input was classified correctly"
        )
    value = zero + (0.0 if math.isnan(nonfinite) else nonfinite)
    detail = f"{zero:.1%} all-zero, {nonfinite:.1%} NaN or infinite CE input-gradients of {correct} correct inputs"
    return diagnostic_row(
        "gradients", "", math.nan, value > s.gradient_threshold, value, s.gradient_threshold, correct, detail
    )


def _targeted_vs_ce(ev: Evaluation, norm: str, e: float, s: DiagnosticSettings) -> dict:
    name = "L2" if norm == "l2" else "Linf"
    ran = _ran_at(ev, norm, e)
    ce = [x for x in ran if x.name == "apgd-ce"]
    targeted = [x for x in ran if x.name == "apgd-t"]
    n = len(ev.clean_correct)
    if not ce or not targeted:
        missing = " and ".join(f for f, got in (("APGD-CE", ce), ("APGD-T", targeted)) if not got)
        return diagnostic_row(
            "targeted_vs_ce", name, e, None, math.nan, s.targeted_gap, n, f"{missing} did not run at this budget"
        )
    a, t = ce[0], targeted[0]
    if ev.attacks.index(a) > ev.attacks.index(t):
        return diagnostic_row(
            "targeted_vs_ce",
            name,
            e,
            None,
            math.nan,
            s.targeted_gap,
            n,
            "APGD-CE is listed after APGD-T, so what APGD-T broke beyond it cannot be told",
        )
    # Inputs every attack listed before APGD-T (APGD-CE among them) left standing: counting against this set,
    # not APGD-CE's own, keeps breaks by other attacks out of APGD-T's share when APGD-T is a cascade.
    before = ev.clean_correct.clone()
    for other in ran[: ran.index(t)]:
        before &= ev.robust[other.label][e]
    gap = float((before & ~ev.robust[t.label][e]).sum()) / n
    detail = f"APGD-T broke {gap:.1%} of the inputs that APGD-CE and every attack before it left standing"
    return diagnostic_row("targeted_vs_ce", name, e, gap > s.targeted_gap, gap, s.targeted_gap, n, detail)


def _more_effort(model, x, y, ev, norm, e, s, seed, batch_size, device) -> dict:
    name = "L2" if norm == "l2" else "Linf"
    m = len(y)
    worst = ev.robust[WORST_L2 if norm == "l2" else WORST][e][:m]
    standing = worst.nonzero().squeeze(1)
    spec = stronger_attack(_ran_at(ev, norm, e), norm, s.effort_factor, s.effort_restarts)
    if len(standing) == 0:
        return diagnostic_row(
            "more_effort",
            name,
            e,
            False,
            0.0,
            s.effort_tolerance,
            m,
            f"nothing left standing in the {m}-input subsample for {spec.label} to break",
        )
    xs, ys = x[standing.to(x.device)], y[standing.to(y.device)]
    effort_seed = _derived_seed(seed, "effort", norm, e)
    if spec.name == "apgd-t":
        robust = _apgd_t_at_once(model, xs, ys, spec, norm, e, effort_seed, batch_size, device)
    else:
        robust = _evaluate(model, xs, ys, spec, norm, e, effort_seed, batch_size, device).robust[spec.label][e]
    broke = int((~robust).sum())
    value = broke / m
    relative = broke / len(standing)
    # Either rule needs at least effort_min_count inputs broken: on a small subsample one image can exceed
    # the absolute tolerance on its own, which says nothing about convergence.
    failed = broke >= s.effort_min_count and (value > s.effort_tolerance or relative > s.effort_relative)
    detail = (
        f"{spec.label} broke {broke} of the {len(standing)} inputs the worst case left standing "
        f"in a {m}-input subsample ({relative:.0%} of them; fails, with at least {s.effort_min_count} broken, above "
        f"{s.effort_tolerance:.0%} of the subsample or {s.effort_relative:.0%} of those standing)"
    )
    return diagnostic_row("more_effort", name, e, failed, value, s.effort_tolerance, m, detail)


def _apgd_t_at_once(model, x, y, spec: AttackSpec, norm: str, e: float, seed: int, batch_size: int, device):
    """Robust bits `(N,)` of `x` under `spec` (APGD-T) run with all its target classes at once
    (`population.apgd_t_all_targets`: torchattacks' algorithm, 1.5-3.2x faster on the 25 to 3 inputs
    this check attacked in evaluations/perf/cpu_layout.py), in chunks of at most `batch_size` rows, in the
    model's dtype, eval mode locked; each adversarial input is checked against the budget and classified
    again, as `run_evaluation` does."""
    params = spec.resolved()
    dev = resolve_device(device)
    rows = max(1, int(batch_size) // max(1, int(params["targets"]) * int(params["restarts"])))
    out = []
    with prepared_model(model, dev) as target:
        for j, start in enumerate(range(0, len(y), rows)):
            xb = x[start : start + rows].to(dev, attack_dtype(model, x))
            yb = y[start : start + rows].to(dev)
            adv, _ = apgd_t_all_targets(
                target,
                xb,
                yb,
                e,
                norm=norm,
                steps=params["steps"],
                targets=params["targets"],
                restarts=params["restarts"],
                seed=_derived_seed(seed, "chunk", j),
            )
            with torch.no_grad():
                out.append((target(within_budget(adv, xb, e, norm)).argmax(1) == yb).cpu())
    return torch.cat(out)


def unbounded_budget(norm: str, image_shape: tuple[int, ...], eps: float) -> float:
    """The `unbounded` budget: `eps` for L∞; for L2 the radius eps·sqrt(d) of the ball that contains the
    L∞ ball of radius eps (d = pixels × channels), capped at the harness's largest radius."""
    if norm != "l2":
        return float(eps)
    return min(MAX_L2, float(eps) * math.sqrt(math.prod(image_shape)))


def _unbounded(model, x, y, norm, s, seed, batch_size, device) -> dict:
    name = "L2" if norm == "l2" else "Linf"
    e = unbounded_budget(norm, tuple(x.shape[1:]), s.unbounded_eps)
    spec = AttackSpec.create("pgd", steps=50, **({"norm": "l2"} if norm == "l2" else {}))
    sub = _evaluate(model, x, y, spec, norm, e, _derived_seed(seed, "unbounded", norm), batch_size, device)
    acc = float(sub.robust[spec.label][e].float().mean())
    detail = (
        f"{spec.label} at {'L2 radius' if norm == 'l2' else 'ε'} {e:.3g} leaves {acc:.1%} of {len(y)} inputs correct"
    )
    return diagnostic_row("unbounded", name, e, acc > s.unbounded_tolerance, acc, s.unbounded_tolerance, len(y), detail)


def _evaluate(model, x, y, spec: AttackSpec, norm: str, e: float, seed: int, batch_size: int, device) -> Evaluation:
    if norm == "l2":
        return run_evaluation(
            model, x, y, [spec], eps=[0.0], eps_l2=[e], seed=seed, batch_size=batch_size, device=device
        )
    return run_evaluation(model, x, y, [spec], eps=[e], seed=seed, batch_size=batch_size, device=device)


def transfer_row(
    whitebox: torch.Tensor,
    transferred: torch.Tensor,
    norm: str,
    eps: float,
    source: str,
    tolerance: float,
    relative: float = 0.1,
    min_count: int = 2,
) -> dict:
    """The `transfer` row of one network at (norm, eps) from per-input outcomes `(N,)` (True: correct): its
    white-box worst case and its predictions on the examples crafted on `source`. The figure is the share of
    all N inputs that the white-box attacks left standing and the transferred examples broke; it fails above
    `tolerance`, or when they broke more than `relative` of the inputs left standing (at least `min_count`)."""
    name = "L2" if norm in ("l2", "L2") else "Linf"
    n = len(whitebox)
    broke = int((whitebox & ~transferred).sum())
    standing = int(whitebox.sum())
    missed = broke / n
    share = broke / standing if standing else 0.0
    detail = (
        f"white-box worst case {float(whitebox.float().mean()):.1%}, examples transferred from {source} "
        f"{float(transferred.float().mean()):.1%}; the transferred examples broke {broke} of the {standing} inputs "
        f"the white-box attacks left standing ({missed:.1%} of all inputs, {share:.0%} of those standing)"
    )
    failed = missed > tolerance or (broke >= min_count and share > relative)
    return diagnostic_row("transfer", name, eps, failed, missed, tolerance, n, detail)


def read_diagnostics(path) -> pd.DataFrame:
    """A diagnostics CSV with statuses and details as text."""
    frame = pd.read_csv(
        path,
        dtype={"check": str, "norm": str, "status": str, "detail": str},
        keep_default_na=False,
        na_values={"value": ["", "nan", "NaN"], "eps": ["", "nan", "NaN"], "threshold": ["", "nan", "NaN"]},
    )
    return frame


__all__ = [
    "CHECKS",
    "DIAGNOSTIC_COLUMNS",
    "EXPLANATIONS",
    "DiagnosticSettings",
    "diagnostic_row",
    "read_diagnostics",
    "run_diagnostics",
    "stronger_attack",
    "transfer_row",
    "unbounded_budget",
]
