"""Reliability checks on one evaluation (docs/attacks.md), as a tidy flags table.

Each check has a status "pass", "fail" or "not run" (it could not be judged: e.g. PGD <= FGSM when FGSM
was not run; `detail` then says why), the measured `value` it is judged on, a `detail` naming what
failed, and a plain-language `explanation` for reports. An evaluation with any "fail" is unreliable.

Only checks that can fail are flags. What holds by construction (robust accuracy <= clean accuracy, the
per-sample worst case <= each attack) is asserted inside `run_evaluation` instead.
"""
from __future__ import annotations

import math

import pandas as pd

DEFAULT_TOLERANCE = 0.01  # accuracy points allowed for noise in the attack-vs-attack comparisons
DEFAULT_ZERO_GRAD_THRESHOLD = 0.05  # share of correctly classified inputs with an all-zero gradient
BUDGET_SLACK = 1e-5  # float32 rounding of x + eps

EXPLANATIONS: dict[str, str] = {
    "eps0_equals_clean": (
        "With no perturbation allowed (eps = 0) accuracy must equal clean accuracy; a difference means the "
        "model is not deterministic in eval mode or the evaluation pipeline alters the inputs."),
    "clean_unchanged_after_attacks": (
        "Clean predictions are computed again after all attacks on a batch and must equal those before; a "
        "difference means an attack changed the model's mode or state (BatchNorm statistics, dropout) or "
        "the model is not deterministic, and every robust accuracy after it is suspect."),
    "model_state_unchanged": (
        "The model's parameters and buffers must be bit-identical after the evaluation; an attack that "
        "changes them (e.g. BatchNorm running statistics updated in training mode) corrupts the results."),
    "monotone_in_eps": (
        "A larger budget can only help the attacker, so accuracy must not rise with eps; a rise means the "
        "attack misses adversarial examples it should find (too few steps, a bad step size, or masked "
        "gradients)."),
    "pgd_le_fgsm": (
        "PGD takes many steps where FGSM takes one, so it must be at least as strong; PGD doing worse than "
        "FGSM is a classic sign of gradient masking."),
    "gradient_free_not_better": (
        "A gradient-free attack (Square) should not beat the gradient-based attacks; when it does, the "
        "gradients mislead the gradient attacks (gradient masking) and their numbers overstate robustness."),
    "zero_gradients": (
        "Share of correctly classified inputs whose cross-entropy input-gradient is exactly zero; gradient "
        "attacks have nothing to follow there, so many zero gradients make robust accuracy look better "
        "than it is."),
    "perturbation_in_budget": (
        "Every adversarial input must stay within eps of the clean input (Linf) and inside [0, 1]."),
}

FLAG_COLUMNS = ["check", "status", "value", "threshold", "detail", "explanation"]
STATUSES = ("pass", "fail", "not run")
NOT_RUN = "not run"


def _family(label: str) -> str:
    return label.split(":", 1)[0]


def _kind(label: str) -> str:
    from robust_glo.robustness.attacks import get_attack_entry

    try:
        return get_attack_entry(_family(label)).kind
    except Exception:  # an attack from a newer registry: judged by nothing
        return "unknown"


def check_reliability(results: pd.DataFrame, zero_grad_share: float, *, tolerance: float = DEFAULT_TOLERANCE,
                      zero_grad_threshold: float = DEFAULT_ZERO_GRAD_THRESHOLD, clean_changed: int | None = None,
                      state_changed: list[str] | None = None) -> pd.DataFrame:
    """Flags table (columns `FLAG_COLUMNS`, one row per check) for the results of ONE evaluation.

    `results` has the rows of `evaluate_model` ("clean", attacks, "worst"; columns attack, eps, accuracy,
    max_perturbation, out_of_range); `zero_grad_share` is the share of correctly classified inputs whose
    CE input-gradient is all zero; `clean_changed` the number of inputs whose clean prediction changed
    between before and after the attacks; `state_changed` the state_dict entries the evaluation changed
    (None: not measured).
    """
    acc = {(r.attack, float(r.eps)): float(r.accuracy) for r in results.itertuples()}
    clean = acc.get(("clean", 0.0), float("nan"))
    attacks = [a for a in dict.fromkeys(results["attack"]) if a not in ("clean", "worst")]
    eps_values = sorted({float(e) for e in results["eps"]})
    out: list[dict] = []

    def add(check: str, failures: list[str], why_not: str | None, value: float, threshold: float) -> None:
        """`why_not`: None when the check could be judged, else the reason it was not run."""
        status = NOT_RUN if why_not is not None else ("fail" if failures else "pass")
        detail = why_not if why_not is not None else (
            "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else ""))
        out.append({"check": check, "status": status, "value": value, "threshold": threshold,
                    "detail": detail, "explanation": EXPLANATIONS[check]})

    # eps = 0 equals clean (exactly: same inputs, same model).
    zero = [(a, acc[a, 0.0]) for a in attacks + ["worst"] if (a, 0.0) in acc]
    fails = [f"{a} at eps=0: {v:.4f} != clean {clean:.4f}" for a, v in zero if v != clean]
    add("eps0_equals_clean", fails, None if zero else "eps = 0 was not among the budgets",
        max((abs(v - clean) for _, v in zero), default=float("nan")), 0.0)

    # Clean predictions before and after the attacks.
    if clean_changed is None:
        add("clean_unchanged_after_attacks", [], "not measured by this evaluation", float("nan"), 0.0)
    else:
        fails = [f"{clean_changed} input(s) changed their clean prediction during the attacks"] if clean_changed else []
        add("clean_unchanged_after_attacks", fails, None, float(clean_changed), 0.0)

    # Parameters and buffers untouched.
    if state_changed is None:
        add("model_state_unchanged", [], "not measured by this evaluation", float("nan"), 0.0)
    else:
        fails = ([f"{len(state_changed)} state_dict entries changed ({', '.join(state_changed[:3])}"
                  f"{', ...' if len(state_changed) > 3 else ''}); the model was restored"] if state_changed else [])
        add("model_state_unchanged", fails, None, float(len(state_changed)), 0.0)

    # Non-increasing in eps, per attack and for the worst case.
    fails, worst_rise = [], float("-inf")
    for a in attacks + ["worst"]:
        seq = [(e, acc[a, e]) for e in eps_values if (a, e) in acc]
        for (e0, v0), (e1, v1) in zip(seq, seq[1:]):
            worst_rise = max(worst_rise, v1 - v0)
            if v1 > v0 + tolerance:
                fails.append(f"{a}: {v0:.4f} at eps={e0:g} rises to {v1:.4f} at eps={e1:g}")
    add("monotone_in_eps", fails, None if worst_rise > float("-inf") else "needs two or more eps values",
        worst_rise if worst_rise > float("-inf") else float("nan"), tolerance)

    # PGD <= FGSM at each eps > 0.
    pgds = [a for a in attacks if _family(a) == "pgd"]
    fgsms = [a for a in attacks if _family(a) == "fgsm"]
    fails, gap, applicable = [], float("-inf"), False
    for e in eps_values:
        if e == 0.0:
            continue
        for p in pgds:
            for f in fgsms:
                if (p, e) in acc and (f, e) in acc:
                    applicable = True
                    gap = max(gap, acc[p, e] - acc[f, e])
                    if acc[p, e] > acc[f, e] + tolerance:
                        fails.append(f"{p} {acc[p, e]:.4f} > {f} {acc[f, e]:.4f} at eps={e:g}")
    add("pgd_le_fgsm", fails, None if applicable else "needs both fgsm and pgd at an eps > 0",
        gap if applicable else float("nan"), tolerance)

    # A gradient-free attack must not beat the strongest gradient attack.
    free = [a for a in attacks if _kind(a) == "gradient-free"]
    grads = [a for a in attacks if _kind(a) == "gradient"]
    fails, gap, applicable = [], float("-inf"), False
    for e in eps_values:
        if e == 0.0:
            continue
        best = [(acc[g, e], g) for g in grads if (g, e) in acc]
        if not best:
            continue
        strongest, name = min(best)
        for a in free:
            if (a, e) in acc:
                applicable = True
                gap = max(gap, strongest - acc[a, e])
                if acc[a, e] < strongest - tolerance:
                    fails.append(f"{a} {acc[a, e]:.4f} < {name} {strongest:.4f} at eps={e:g}")
    why = None if applicable else ("no gradient-free attack (square) was run" if not free else
                                   "no gradient attack ran at the same eps > 0")
    add("gradient_free_not_better", fails, why, gap if applicable else float("nan"), tolerance)

    # Zero input-gradients.
    ok = zero_grad_share is not None and not math.isnan(zero_grad_share)
    fails = ([f"{zero_grad_share:.1%} of correctly classified inputs have an all-zero CE gradient"]
             if ok and zero_grad_share > zero_grad_threshold else [])
    add("zero_gradients", fails, None if ok else "no input was classified correctly",
        zero_grad_share if ok else float("nan"), zero_grad_threshold)

    # Perturbations inside the eps-ball and [0, 1].
    fails, excess, applicable = [], float("-inf"), False
    for r in results.itertuples():
        if r.attack in ("clean", "worst") or (isinstance(r.max_perturbation, float) and math.isnan(r.max_perturbation)):
            continue
        applicable = True
        excess = max(excess, r.max_perturbation - r.eps)
        if r.max_perturbation > r.eps + BUDGET_SLACK:
            fails.append(f"{r.attack} at eps={r.eps:g} moved an input by {r.max_perturbation:.5f}")
        if r.out_of_range:
            fails.append(f"{r.attack} at eps={r.eps:g} left [0, 1] on {r.out_of_range} inputs")
    add("perturbation_in_budget", fails, None if applicable else "no attack ran at an eps > 0",
        excess if applicable else float("nan"), BUDGET_SLACK)
    return pd.DataFrame(out, columns=FLAG_COLUMNS)


def describe_flags(flags: pd.DataFrame) -> str:
    """Human-readable lines for the failed checks ("" when reliable)."""
    failed = flags[flags["status"] == "fail"]
    return "\n".join(f"UNRELIABLE [{r.check}] {r.detail}. {r.explanation}" for r in failed.itertuples())



def read_flags(path) -> pd.DataFrame:
    """A flags CSV with every status read as text ("not run" stays a string; files written before that
    name existed say "n/a" or leave it empty, and are read as "not run")."""
    frame = pd.read_csv(path, dtype={"check": str, "status": str, "detail": str, "explanation": str},
                        keep_default_na=False, na_values={"value": ["", "nan", "NaN"],
                                                          "threshold": ["", "nan", "NaN"]})
    return normalize_statuses(frame)


def normalize_statuses(flags: pd.DataFrame) -> pd.DataFrame:
    """Statuses as text, with the older "n/a" and missing values named "not run"."""
    if "status" in flags.columns:
        status = flags["status"].astype(object).where(flags["status"].notna(), NOT_RUN).astype(str)
        flags = flags.assign(status=status.replace({"n/a": NOT_RUN, "": NOT_RUN, "nan": NOT_RUN}))
    return flags
