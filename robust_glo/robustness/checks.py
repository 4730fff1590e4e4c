"""Reliability checks on one evaluation (docs/attacks.md), as a tidy flags table.

Each check has a status "pass", "fail" or "not run" (it could not be judged: e.g. PGD <= FGSM when FGSM
was not run; `detail` then says why), the measured `value` it is judged on, a `detail` naming what
failed, and a plain-language `explanation` for reports. An evaluation with any "fail" is unreliable.

Only checks that can fail are flags. What holds by construction (robust accuracy <= clean accuracy, the
per-sample worst case <= each attack) is asserted inside `run_evaluation` instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
import torch

from robust_glo.robustness.attacks import RESERVED_LABELS, WORST, WORST_L2, ThreatModel, spec_of_label

DEFAULT_TOLERANCE = 0.01  # accuracy points allowed for noise in the attack-vs-attack comparisons
# Share of correctly classified inputs with an all-zero gradient (and, separately, with a nonfinite one).
DEFAULT_ZERO_GRAD_THRESHOLD = 0.05
BUDGET_SLACK = 1e-5  # float32 rounding of x + eps (float64 too)


def budget_slack(dtype: torch.dtype, norm: str, image_shape: tuple[int, ...]) -> float:
    """How far beyond its budget rounding may carry an adversarial input computed in `dtype`.

    float32 and float64: `BUDGET_SLACK`. Narrower dtypes: one unit in the last place at 1 per pixel
    (2^-10 for float16, 2^-7 for bfloat16): the most that rounding x + delta and the budget itself can add
    for an input in [0, 1]; for `norm` "L2" summed in L2 over the `image_shape` pixels."""
    unit = torch.finfo(dtype).eps
    if unit <= torch.finfo(torch.float32).eps:
        return BUDGET_SLACK
    if ThreatModel.parse(norm) is ThreatModel.L2:
        return unit * math.sqrt(math.prod(image_shape))
    return unit


EXPLANATIONS: dict[str, str] = {
    "eps0_equals_clean": (
        "With no perturbation allowed (eps = 0) accuracy must equal clean accuracy; a difference means the "
        "model is not deterministic in eval mode or the evaluation pipeline alters the inputs."
    ),
    "clean_unchanged_after_attacks": (
        "Clean predictions are computed again after all attacks on a batch and must equal those before; a "
        "difference means an attack changed the model's mode or state (BatchNorm statistics, dropout) or "
        "the model is not deterministic, and every robust accuracy after it is suspect."
    ),
    "model_state_unchanged": (
        "The model's parameters and buffers must be bit-identical after the evaluation; an attack that "
        "changes them (e.g. BatchNorm running statistics updated in training mode) corrupts the results."
    ),
    "monotone_in_eps": (
        "A larger budget can only help the attacker, so accuracy must not rise with eps; a rise means the "
        "attack misses adversarial examples it should find (too few steps, a bad step size, or masked "
        "gradients)."
    ),
    "pgd_le_fgsm": (
        "PGD takes many steps where FGSM takes one on the same loss, so it must be at least as strong; PGD "
        "doing worse than FGSM is a sign of gradient masking or of a step size too small (FGSM on the "
        "network's own training loss follows another objective and is not compared)."
    ),
    "gradient_free_not_better": (
        "A gradient-free attack (Square) should not break inputs that every gradient attack missed; when it "
        "breaks more than the tolerance (1% of the inputs), the gradients mislead the gradient attacks "
        "(gradient masking) and their numbers overstate robustness."
    ),
    "zero_gradients": (
        "Share of correctly classified inputs whose cross-entropy input-gradient is exactly zero; gradient "
        "attacks have nothing to follow there, so many zero gradients make robust accuracy look better "
        "than it is."
    ),
    "nonfinite_gradients": (
        "Share of correctly classified inputs whose cross-entropy input-gradient has a NaN or infinite entry. "
        "A model whose head is a naive log(softmax(z)) gives NaN gradients once softmax underflows to 0; "
        "sign(NaN) is 0, so FGSM moves nothing and accuracy under attack equals clean accuracy: the "
        "numbers say nothing about robustness."
    ),
    "perturbation_in_budget": (
        "Every adversarial input must stay within eps of the clean input (in the attack's norm, Linf or L2) "
        "and inside [0, 1]."
    ),
}

FLAG_COLUMNS = ["check", "status", "value", "threshold", "detail", "explanation"]
STATUSES = ("pass", "fail", "not run")
NOT_RUN = "not run"


def _kind(label: str) -> str:
    spec = spec_of_label(label)
    return spec.kind if spec is not None else "unknown"  # an attack from a newer registry: judged by nothing


def _threat(label: str) -> ThreatModel | None:
    spec = spec_of_label(label)
    return spec.threat if spec is not None else None


@dataclass(frozen=True)
class _View:
    """One evaluation's accuracies, as the checks read them."""

    acc: dict[tuple[str, float], float]  # (attack, eps) -> accuracy
    clean: float
    attacks: list[str]  # without "clean" and the worst-case rows
    worst: list[str]  # the worst-case rows present ("worst", "worst:l2")
    eps_values: list[float]
    results: pd.DataFrame

    @classmethod
    def of(cls, results: pd.DataFrame) -> _View:
        acc = {(r.attack, float(r.eps)): float(r.accuracy) for r in results.itertuples()}
        labels = list(dict.fromkeys(results["attack"]))
        return cls(
            acc,
            acc.get(("clean", 0.0), float("nan")),
            [a for a in labels if a not in RESERVED_LABELS],
            [a for a in (WORST, WORST_L2) if a in labels],
            sorted({float(e) for e in results["eps"]}),
            results,
        )


def _row(check: str, failures: list[str], why_not: str | None, value: float, threshold: float) -> dict:
    """A flags row; `why_not` is None when the check could be judged, else the reason it was not run."""
    status = NOT_RUN if why_not is not None else ("fail" if failures else "pass")
    detail = (
        why_not
        if why_not is not None
        else ("; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else ""))
    )
    return {
        "check": check,
        "status": status,
        "value": value,
        "threshold": threshold,
        "detail": detail,
        "explanation": EXPLANATIONS[check],
    }


def _eps0_equals_clean(v: _View) -> dict:
    zero = [(a, v.acc[a, 0.0]) for a in v.attacks + v.worst if (a, 0.0) in v.acc]
    fails = [f"{a} at eps=0: {x:.4f} != clean {v.clean:.4f}" for a, x in zero if x != v.clean]
    return _row(
        "eps0_equals_clean",
        fails,
        None if zero else "eps = 0 was not among the budgets",
        max((abs(x - v.clean) for _, x in zero), default=float("nan")),
        0.0,
    )


def _clean_unchanged(clean_changed: int | None) -> dict:
    if clean_changed is None:
        return _row("clean_unchanged_after_attacks", [], "not measured by this evaluation", float("nan"), 0.0)
    fails = [f"{clean_changed} input(s) changed their clean prediction during the attacks"] if clean_changed else []
    return _row("clean_unchanged_after_attacks", fails, None, float(clean_changed), 0.0)


def _state_unchanged(state_changed: list[str] | None) -> dict:
    if state_changed is None:
        return _row("model_state_unchanged", [], "not measured by this evaluation", float("nan"), 0.0)
    fails = (
        [
            f"{len(state_changed)} state_dict entries changed ({', '.join(state_changed[:3])}"
            f"{', ...' if len(state_changed) > 3 else ''}); the model was restored"
        ]
        if state_changed
        else []
    )
    return _row("model_state_unchanged", fails, None, float(len(state_changed)), 0.0)


def _monotone_in_eps(v: _View, tolerance: float) -> dict:
    fails, rise = [], float("-inf")
    for a in v.attacks + v.worst:
        seq = [(e, v.acc[a, e]) for e in v.eps_values if (a, e) in v.acc]
        for (e0, v0), (e1, v1) in zip(seq, seq[1:]):
            rise = max(rise, v1 - v0)
            if v1 > v0 + tolerance:
                fails.append(f"{a}: {v0:.4f} at eps={e0:g} rises to {v1:.4f} at eps={e1:g}")
    judged = rise > float("-inf")
    return _row(
        "monotone_in_eps",
        fails,
        None if judged else "needs two or more eps values",
        rise if judged else float("nan"),
        tolerance,
    )


def _pgd_le_fgsm(v: _View, tolerance: float) -> dict:
    specs = {a: spec_of_label(a) for a in v.attacks}
    # A cascaded PGD row is already the worst case of FGSM and PGD: nothing to compare; FGSM is L-infinity.
    pgds = [
        a
        for a, s in specs.items()
        if s is not None and s.family == "pgd" and not s.cascade and s.threat is ThreatModel.LINF
    ]
    fgsms = [a for a, s in specs.items() if s is not None and s.family == "fgsm" and s.threat is ThreatModel.LINF]
    fails, gap, judged = [], float("-inf"), False
    for e in (e for e in v.eps_values if e > 0.0):
        for p in pgds:
            for f in fgsms:
                # Only attacks on the same loss: FGSM on a network's own training loss (the paper's protocol)
                # follows another objective than PGD on cross-entropy, and may rightly do better.
                if specs[p].resolved().get("loss", "ce") != specs[f].resolved().get("loss", "ce"):
                    continue
                if (p, e) in v.acc and (f, e) in v.acc:
                    judged = True
                    gap = max(gap, v.acc[p, e] - v.acc[f, e])
                    if v.acc[p, e] > v.acc[f, e] + tolerance:
                        fails.append(f"{p} {v.acc[p, e]:.4f} > {f} {v.acc[f, e]:.4f} at eps={e:g}")
    return _row(
        "pgd_le_fgsm",
        fails,
        None if judged else "needs both fgsm and pgd on the same loss at an eps > 0",
        gap if judged else float("nan"),
        tolerance,
    )


def _gradient_free_breaks(breaks: dict[tuple[str, float], float], tolerance: float, has_free: bool) -> dict:
    """Per input: the share of inputs that every gradient attack missed and a gradient-free attack broke."""
    fails = [
        f"{label} broke {share:.1%} of the inputs that every gradient attack missed at eps={e:g}"
        for (label, e), share in sorted(breaks.items(), key=lambda kv: kv[0][1])
        if share > tolerance
    ]
    why = (
        None
        if breaks
        else (
            "no gradient-free attack (square) was run" if not has_free else "no gradient attack ran at the same eps > 0"
        )
    )
    return _row("gradient_free_not_better", fails, why, max(breaks.values(), default=float("nan")), tolerance)


def _gradient_free_not_better(v: _View, tolerance: float) -> dict:
    free = [a for a in v.attacks if _kind(a) == "gradient-free"]
    grads = [a for a in v.attacks if _kind(a) == "gradient"]
    fails, gap, judged = [], float("-inf"), False
    for e in (e for e in v.eps_values if e > 0.0):
        for a in free:
            # Compared within a threat model only: an L2 radius and an L-infinity eps are different budgets.
            best = [(v.acc[g, e], g) for g in grads if (g, e) in v.acc and _threat(g) is _threat(a)]
            if not best or (a, e) not in v.acc:
                continue
            strongest, name = min(best)
            judged = True
            gap = max(gap, strongest - v.acc[a, e])
            if v.acc[a, e] < strongest - tolerance:
                fails.append(f"{a} {v.acc[a, e]:.4f} < {name} {strongest:.4f} at eps={e:g}")
    why = (
        None
        if judged
        else ("no gradient-free attack (square) was run" if not free else "no gradient attack ran at the same eps > 0")
    )
    return _row("gradient_free_not_better", fails, why, gap if judged else float("nan"), tolerance)


def _zero_gradients(share: float | None, threshold: float) -> dict:
    ok = share is not None and not math.isnan(share)
    fails = (
        [f"{share:.1%} of correctly classified inputs have an all-zero CE gradient"] if ok and share > threshold else []
    )
    return _row(
        "zero_gradients",
        fails,
        None if ok else "no input was classified correctly",
        share if ok else float("nan"),
        threshold,
    )


def _nonfinite_gradients(share: float | None, threshold: float) -> dict:
    if share is None:
        return _row("nonfinite_gradients", [], "not measured by this evaluation", float("nan"), threshold)
    ok = not math.isnan(share)
    fails = (
        [f"{share:.1%} of correctly classified inputs have a NaN or infinite CE gradient"]
        if ok and share > threshold
        else []
    )
    return _row(
        "nonfinite_gradients",
        fails,
        None if ok else "no input was classified correctly",
        share if ok else float("nan"),
        threshold,
    )


def _perturbation_in_budget(v: _View, slack: float | Mapping[str, float]) -> dict:
    """Every attack row's largest perturbation within its eps plus the rounding `slack` of the dtype the
    attack ran in (one number, or one per norm display name: "Linf", "L2")."""

    def slack_of(norm: object) -> float:
        if not isinstance(slack, Mapping):
            return float(slack)
        return float(slack.get(str(norm), max(slack.values(), default=BUDGET_SLACK)))

    fails, excess, judged, used = [], float("-inf"), False, []
    has_norm = "norm" in v.results.columns
    for r in v.results.itertuples():
        if r.attack in RESERVED_LABELS or (isinstance(r.max_perturbation, float) and math.isnan(r.max_perturbation)):
            continue
        judged = True
        allowed = slack_of(r.norm if has_norm else "Linf")
        used.append(allowed)
        excess = max(excess, r.max_perturbation - r.eps)
        if r.max_perturbation > r.eps + allowed:
            fails.append(f"{r.attack} at eps={r.eps:g} moved an input by {r.max_perturbation:.5f}")
        if r.out_of_range:
            fails.append(f"{r.attack} at eps={r.eps:g} left [0, 1] on {r.out_of_range} inputs")
    if used:
        threshold = max(used)
    else:
        threshold = float(slack) if not isinstance(slack, Mapping) else max(slack.values(), default=BUDGET_SLACK)
    return _row(
        "perturbation_in_budget",
        fails,
        None if judged else "no attack ran at an eps > 0",
        excess if judged else float("nan"),
        threshold,
    )


def check_reliability(
    results: pd.DataFrame,
    zero_grad_share: float,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    zero_grad_threshold: float = DEFAULT_ZERO_GRAD_THRESHOLD,
    clean_changed: int | None = None,
    state_changed: list[str] | None = None,
    free_breaks: dict[tuple[str, float], float] | None = None,
    nonfinite_grad_share: float | None = None,
    budget_slack: float | Mapping[str, float] = BUDGET_SLACK,
) -> pd.DataFrame:
    """Flags table (columns `FLAG_COLUMNS`, one row per check) for the results of ONE evaluation.

    `results` has the rows of `evaluate_model` ("clean", attacks, "worst"; columns attack, eps, accuracy,
    max_perturbation, out_of_range); `zero_grad_share` is the share of correctly classified inputs whose
    CE input-gradient is all zero; `clean_changed` the number of inputs whose clean prediction changed
    between before and after the attacks; `state_changed` the state_dict entries the evaluation changed
    (None: not measured); `free_breaks` the share of inputs every gradient attack missed and a gradient-free
    attack broke, per (attack, eps) (None: judged from the accuracies alone); `nonfinite_grad_share` the
    share of correctly classified inputs whose CE input-gradient has a NaN or infinite entry, judged
    against `zero_grad_threshold` (None: "not run"); `budget_slack` how far beyond eps rounding may carry a
    perturbation (see `budget_slack()`: one number, or one per norm, "Linf" and "L2").
    """
    v = _View.of(results)
    rows = [
        _eps0_equals_clean(v),
        _clean_unchanged(clean_changed),
        _state_unchanged(state_changed),
        _monotone_in_eps(v, tolerance),
        _pgd_le_fgsm(v, tolerance),
        _gradient_free_not_better(v, tolerance)
        if free_breaks is None
        else _gradient_free_breaks(free_breaks, tolerance, any(_kind(a) == "gradient-free" for a in v.attacks)),
        _zero_gradients(zero_grad_share, zero_grad_threshold),
        _nonfinite_gradients(nonfinite_grad_share, zero_grad_threshold),
        _perturbation_in_budget(v, budget_slack),
    ]
    return pd.DataFrame(rows, columns=FLAG_COLUMNS)


def describe_flags(flags: pd.DataFrame) -> str:
    """Human-readable lines for the failed checks ("" when reliable)."""
    failed = flags[flags["status"] == "fail"]
    return "\n".join(f"UNRELIABLE [{r.check}] {r.detail}. {r.explanation}" for r in failed.itertuples())


def read_flags(path) -> pd.DataFrame:
    """A flags CSV with every status read as text ("not run" stays a string; files written before that
    name existed say "n/a" or leave it empty, and are read as "not run")."""
    frame = pd.read_csv(
        path,
        dtype={"check": str, "status": str, "detail": str, "explanation": str},
        keep_default_na=False,
        na_values={"value": ["", "nan", "NaN"], "threshold": ["", "nan", "NaN"]},
    )
    return normalize_statuses(frame)


def normalize_statuses(flags: pd.DataFrame) -> pd.DataFrame:
    """Statuses as text, with the older "n/a" and missing values named "not run"."""
    if "status" in flags.columns:
        status = flags["status"].astype(object).where(flags["status"].notna(), NOT_RUN).astype(str)
        flags = flags.assign(status=status.replace({"n/a": NOT_RUN, "": NOT_RUN, "nan": NOT_RUN}))
    return flags
