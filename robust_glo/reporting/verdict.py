"""The verdict a report opens with, written from the statistics (never by hand).

A robustness claim is "loss X is more (or less) robust than the baseline at budget (norm, ε)": the
difference of their per-input worst cases at that budget, significant in the primary family after the
correction for multiple comparisons. It counts as evidence only where

1. the worst case at that (norm, ε) includes the standard AutoAttack ensemble at its reference budgets
   (APGD-CE, APGD-T, FAB-T, Square with 5,000 queries; cascades allowed), decided per budget from what
   actually ran there (`robust_glo.robustness.attacks.autoattack_coverage`), and
2. every blocking diagnostic (`BLOCKING`; the baseline's `BLOCKING_BASELINE`) was judged on every seed of
   the loss and of the baseline at that budget, and none failed
   (`robust_glo.robustness.diagnostics`: transfer, more effort, unbounded budget, gradients; APGD-T against
   APGD-CE is informational).

Every other claim is still stated, with what stands behind it ("not verified against AutoAttack (worst
case of: ...)", "failed diagnostics: ..."), but the answer sentence does not count it. A budget where no
attack ran has no worst-case row and so no claim.

The 95% intervals are per comparison while the words follow the corrected p: a difference whose interval
excludes 0 but whose adjusted p is not below alpha reads "not significant after Holm over N comparisons (its
per-comparison interval excludes 0)"; "no evidence of a difference" is kept for an interval that includes 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from robust_glo.robustness.attacks import WORST, WORST_L2, display_name
from robust_glo.robustness.diagnostics import BLOCKING, BLOCKING_BASELINE
from robust_glo.robustness.statistics import floor_bound

NORM_OF_WORST = {WORST: "linf", WORST_L2: "l2"}
DISPLAY_NORM = {"linf": "Linf", "l2": "L2"}
ROBUST_WORDS = {"higher": "more robust than", "lower": "less robust than", "": "no evidence of a difference from"}
# The finding of a difference whose 95% interval (per comparison) excludes 0 while its corrected p is not
# below alpha: neither "no evidence" (the interval says otherwise) nor a claim (the correction says no).
UNSURE = "not significant after correction (interval excludes 0)"
CLAIM_COLUMNS = [
    "loss",
    "norm",
    "eps",
    "budget",
    "direction",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "p_adjusted",
    "p_at_floor",
    "verified",
    "attacks",
    "missing",
    "diagnostics_failed",
    "counted",
    "not_counted_because",
]
CLEAN_COLUMNS = ["loss", "direction", "diff", "diff_ci_low", "diff_ci_high", "p_adjusted", "p_at_floor"]
DIRECTION = {"higher": "more robust", "lower": "less robust", "": "no evidence"}
SIGNIFICANT = ("more robust", "less robust")


class CoverageLike(Protocol):
    verified: bool
    ran: tuple[str, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    """The verdict: the `answer` sentence (the headline), one prose bullet per loss and the coverage bullet,
    the `claims` (one row per loss and budget, `CLAIM_COLUMNS`) and the clean-accuracy comparisons
    (`clean`, `CLEAN_COLUMNS`: "higher"/"lower" become "more"/"less" there too, meaning accuracy)."""

    bullets: list[str]
    answer: str
    claims: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CLAIM_COLUMNS))
    clean: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CLEAN_COLUMNS))


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pts(value: float) -> str:
    return f"{100 * value:+.1f}"


def and_list(names: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def budget_text(norm: str, eps: float) -> str:
    return f"L2 radius {eps:g}" if norm == "l2" else f"ε = {eps:g}"


def p_text(row: Mapping[str, Any]) -> str:
    """ "adjusted p = 0.012", "adjusted p = 3.1e-07" or "adjusted p ≤ 0.0001" (a p at its resolution floor)."""
    p = row.get("p_adjusted")
    if _nan(p):
        return ""
    if floor_bound(p, row.get("p_at_floor")):
        return f"adjusted p ≤ {p:.2g}"
    return f"adjusted p = {p:.2g}" if p < 0.001 else f"adjusted p = {p:.3f}"


def diff_text(row: Mapping[str, Any]) -> str:
    """ "+5.1 points [+1.2, +9.0], adjusted p = 0.012": a summary row's difference to the baseline."""
    text = f"{_pts(row['diff'])} points"
    if not _nan(row.get("diff_ci_low")):
        text += f" [{_pts(row['diff_ci_low'])}, {_pts(row['diff_ci_high'])}]"
    p = p_text(row)
    return text + (f", {p}" if p else "")


def _direction(row: Mapping[str, Any]) -> str:
    """ "higher", "lower" or "" (no evidence) after the correction."""
    if not bool(row.get("significant", False)):
        return ""
    return "higher" if row["diff"] > 0 else "lower"


def interval_excludes_zero(row: Mapping[str, Any], low: str = "diff_ci_low", high: str = "diff_ci_high") -> bool:
    """Whether the row's 95% interval (per comparison, not corrected) lies on one side of 0."""
    lo, hi = row.get(low), row.get(high)
    return not _nan(lo) and not _nan(hi) and (lo > 0 or hi < 0)


def family_sizes(summary: pd.DataFrame) -> dict[str, int]:
    """Family name -> the number of comparisons corrected together in it (rows with a p-value); under the
    key "" the count over every family, for a summary without a `family` column."""
    if "p_value" not in summary.columns:
        tested = summary["p_adjusted"].notna() if "p_adjusted" in summary.columns else summary["loss"].isna()
    else:
        tested = summary["p_value"].notna()
    out = {"": int(tested.sum())}
    if "family" in summary.columns:
        for name, group in summary[tested].groupby(summary.loc[tested, "family"].fillna("").astype(str)):
            if name:
                out[str(name)] = len(group)
    return out


def comparisons(row: Mapping[str, Any], sizes: Mapping[str, int]) -> int:
    """The number of comparisons corrected together with `row` (`family_sizes`)."""
    family = row.get("family")
    return sizes.get(str(family), sizes.get("", 0)) if not _nan(family) else sizes.get("", 0)


def unsure_text(correction: str, n: int, detail: str = "") -> str:
    """ "not significant after Holm over 12 comparisons (its per-comparison interval excludes 0)", with
    `detail` (the numbers) inside the parentheses after a semicolon."""
    return (
        f"not significant after {correction} over {n} comparison{'s' if n != 1 else ''} "
        f"(its per-comparison interval excludes 0{'; ' + detail if detail else ''})"
    )


def _rows_at(diagnostics: pd.DataFrame | None, loss: str, norm: str, eps: float) -> pd.DataFrame:
    """The diagnostics rows of `loss` that speak for budget (norm, eps): a budget-free one (gradients) at
    every budget, `unbounded` at every budget of its norm, the others at their own (norm, eps)."""
    if diagnostics is None or diagnostics.empty:
        return pd.DataFrame(columns=["loss", "seed", "check", "norm", "eps", "status"])
    d = diagnostics[diagnostics["loss"].astype(str) == str(loss)]
    shown = DISPLAY_NORM[norm]
    norms = d["norm"].fillna("").astype(str)
    eps_col = pd.to_numeric(d["eps"], errors="coerce")
    here = (norms == "") | ((norms == shown) & ((d["check"] == "unbounded") | np.isclose(eps_col, eps)))
    return d[here]


def failed_diagnostics(
    diagnostics: pd.DataFrame | None, loss: str, norm: str, eps: float, checks: tuple[str, ...] | None = None
) -> list[str]:
    """The diagnostics (among `checks`, default all) `loss` failed at budget (norm, eps), as
    "transfer (2 of 5 seeds)"."""
    d = _rows_at(diagnostics, loss, norm, eps)
    if checks is not None:
        d = d[d["check"].isin(checks)]
    if d.empty:
        return []
    seeds = diagnostics[diagnostics["loss"].astype(str) == str(loss)]["seed"].nunique()
    out = []
    for check, group in d[d["status"] == "fail"].groupby("check", sort=False):
        out.append(f"{check} ({group['seed'].nunique()} of {seeds} seed{'s' if seeds != 1 else ''})")
    return out


def unjudged_diagnostics(
    diagnostics: pd.DataFrame | None, loss: str, norm: str, eps: float, required: tuple[str, ...]
) -> list[str]:
    """The `required` diagnostics that were not judged (pass or fail) on every seed of `loss` at (norm, eps):
    a claim cannot have passed what did not run."""
    if diagnostics is None or diagnostics.empty:
        return list(required)
    seeds = set(diagnostics.loc[diagnostics["loss"].astype(str) == str(loss), "seed"])
    if not seeds:
        return list(required)
    d = _rows_at(diagnostics, loss, norm, eps)
    judged = d[d["status"].isin(["pass", "fail"])]
    return [c for c in required if set(judged.loc[judged["check"] == c, "seed"]) != seeds]


def claim_gate(
    diagnostics: pd.DataFrame | None,
    cov: CoverageLike | None,
    norm: str,
    eps: float,
    arms: Mapping[str, tuple[str, ...]],
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """Why a claim at budget (norm, eps) would not count, the verdict's rule shared by every section that
    states one ("beats label smoothing", what the strict protocol keeps): the worst case there is not
    AutoAttack-verified, or some arm of the comparison (`arms`: loss -> the blocking diagnostics it needs,
    `BLOCKING` for a loss, `BLOCKING_BASELINE` for the baseline, which has no transfer source) failed one
    or did not have it judged on every seed. Returns the reasons, [] when the claim counts."""
    labels = labels or {}
    reasons = [] if cov is not None and cov.verified else ["AutoAttack incomplete"]
    for loss, required in arms.items():
        name = labels.get(loss, loss)
        failed = [f for f in failed_diagnostics(diagnostics, loss, norm, eps) if f.split(" ")[0] in required]
        unjudged = unjudged_diagnostics(diagnostics, loss, norm, eps, required)
        if failed:
            reasons.append(f"{name} failed {', '.join(failed)}")
        if unjudged:
            reasons.append(f"{name} diagnostics not run: {', '.join(unjudged)}")
    return reasons


def attack_names(labels: tuple[str, ...] | list[str], *, schedule: bool = False) -> str:
    """ "FGSM, PGD-10, APGD-CE" for attack labels: their readable names (`display_name`), in order, without
    where they ran (cascade, min_eps) unless `schedule`; "no attack" for none. Returns a string."""
    names = list(dict.fromkeys(display_name(a, schedule=schedule) for a in labels))
    return ", ".join(names) if names else "no attack"


def coverage_text(cov: CoverageLike | None, *, attacks: bool = True) -> str:
    """ "AutoAttack-verified", or "not verified against AutoAttack (worst case of: FGSM, PGD-20)" (without
    the attacks' names when not `attacks`: where a table beside the text names them per budget)."""
    if cov is None:
        return "AutoAttack coverage unknown"
    if cov.verified:
        return "AutoAttack-verified"
    if not attacks:
        return "not AutoAttack-verified"
    return f"not verified against AutoAttack (worst case of: {attack_names(cov.ran)})"


def build_verdict(
    summary: pd.DataFrame,
    labels: dict[str, str],
    baseline: str,
    *,
    dataset: str,
    budget: str,
    correction: str,
    coverage: Mapping[tuple[str, float], CoverageLike] | None = None,
    diagnostics: pd.DataFrame | None = None,
) -> Verdict:
    """The verdict for `summary` (from `summarize`: one row per loss x attack x eps, with `significant`
    decided within the primary family), per-budget AutoAttack `coverage` keyed by (norm "linf"/"l2", eps),
    and the gathered `diagnostics` rows (loss, seed, check, norm, eps, status, ...)."""
    coverage = dict(coverage or {})
    sizes = family_sizes(summary)
    base = labels.get(baseline, baseline)
    losses = [loss for loss in dict.fromkeys(summary["loss"]) if loss != baseline]
    bullets: list[str] = []
    claims: list[dict[str, Any]] = []
    cleans: list[dict[str, Any]] = []
    for loss in losses:
        name = labels.get(loss, loss)
        rows = summary[summary["loss"] == loss]
        parts = []
        clean = rows[rows["attack"] == "clean"]
        if not clean.empty:
            c = clean.iloc[0]
            if not _direction(c) and interval_excludes_zero(c):
                finding = f"a difference from {base} " + unsure_text(correction, comparisons(c, sizes), diff_text(c))
            else:
                word = {"higher": "higher than", "lower": "lower than", "": "no evidence of a difference from"}
                finding = f"{word[_direction(c)]} {base} ({diff_text(c)})"
            parts.append(f"clean accuracy {100 * c['mean']:.1f}%, {finding}")
            cleans.append(
                {
                    "loss": name,
                    "direction": {"higher": "higher", "lower": "lower", "": "no evidence"}[_direction(c)]
                    if _direction(c) or not interval_excludes_zero(c)
                    else UNSURE,
                    **{k: c.get(k, math.nan) for k in ("diff", "diff_ci_low", "diff_ci_high", "p_adjusted")},
                    "p_at_floor": bool(c.get("p_at_floor", False)),
                }
            )
        for label, norm in NORM_OF_WORST.items():
            worst = rows[(rows["attack"] == label) & (rows["eps"].astype(float) > 0)]
            for r in worst.sort_values("eps").to_dict("records"):
                eps = float(r["eps"])
                cov = _lookup(coverage, norm, eps)
                failed = [f for f in failed_diagnostics(diagnostics, loss, norm, eps) if f.split(" ")[0] in BLOCKING]
                base_failed = [
                    f
                    for f in failed_diagnostics(diagnostics, baseline, norm, eps)
                    if f.split(" ")[0] in BLOCKING_BASELINE
                ]
                unjudged = unjudged_diagnostics(diagnostics, loss, norm, eps, BLOCKING) + [
                    f"{base}: {c}" for c in unjudged_diagnostics(diagnostics, baseline, norm, eps, BLOCKING_BASELINE)
                ]
                direction = _direction(r)
                verified = bool(cov is not None and cov.verified)
                judged = not unjudged
                counted = bool(direction) and verified and judged and not failed and not base_failed
                unsure = not direction and interval_excludes_zero(r)
                if unsure:
                    detail = f"{diff_text(r)}; {coverage_text(cov, attacks=False)}"
                    finding = f"a difference from {base} " + unsure_text(correction, comparisons(r, sizes), detail)
                else:
                    finding = f"{ROBUST_WORDS[direction]} {base} ({diff_text(r)}; {coverage_text(cov, attacks=False)})"
                text = f"at {budget_text(norm, eps)} {finding}"
                if not judged:
                    text += f", diagnostics not run: {', '.join(unjudged)}"
                if failed:
                    text += f", failed diagnostics: {', '.join(failed)}"
                if base_failed:
                    text += f", {base} failed diagnostics: {', '.join(base_failed)}"
                because = []
                if direction and not counted:
                    text += " [not counted]"
                    because = (["AutoAttack incomplete"] if not verified else []) + (
                        ["diagnostic failed"] if failed or base_failed else []
                    )
                    because += ["not diagnosed"] if not judged else []
                parts.append(text)
                claims.append(
                    {
                        "loss": name,
                        "norm": DISPLAY_NORM[norm],
                        "eps": eps,
                        "budget": budget_text(norm, eps),
                        "direction": UNSURE if unsure else DIRECTION[direction],
                        "diff": r["diff"],
                        "diff_ci_low": r.get("diff_ci_low", math.nan),
                        "diff_ci_high": r.get("diff_ci_high", math.nan),
                        "p_adjusted": r.get("p_adjusted", math.nan),
                        "p_at_floor": bool(r.get("p_at_floor", False)),
                        "verified": verified,
                        "attacks": attack_names(cov.ran) if cov is not None else "?",
                        "missing": ", ".join(cov.missing) if cov is not None else "?",
                        "diagnostics_failed": "; ".join(
                            failed
                            + [f"{base}: {f}" for f in base_failed]
                            + ([f"not run: {', '.join(unjudged)}"] if unjudged else [])
                        ),
                        "counted": counted,
                        "not_counted_because": "; ".join(because),
                    }
                )
        text = f"**{name}**: " + "; ".join(parts) + "."
        if "n_unreliable" in rows and rows["n_unreliable"].max() > 0:
            text += (
                f" ⚠ {int(rows['n_unreliable'].max())} of its evaluations failed a reliability check "
                "(see Reliability checks): read its numbers with care."
            )
        bullets.append(text)
    bullets.append(_coverage_bullet(coverage))
    frame = pd.DataFrame(claims, columns=CLAIM_COLUMNS)
    answer = _answer(frame, base, dataset, budget, correction, coverage)
    return Verdict(bullets, answer, frame, pd.DataFrame(cleans, columns=CLEAN_COLUMNS))


def coverage_at(coverage: Mapping[tuple[str, float], CoverageLike], norm: str, eps: float) -> CoverageLike | None:
    """The AutoAttack coverage of budget (norm "linf"/"l2", eps) in `coverage` (eps compared with a
    tolerance); None when it has none."""
    return _lookup(coverage, norm, eps)


def _lookup(coverage: Mapping[tuple[str, float], CoverageLike], norm: str, eps: float) -> CoverageLike | None:
    for (n, e), cov in coverage.items():
        if n == norm and math.isclose(float(e), eps, rel_tol=1e-9, abs_tol=1e-12):
            return cov
    return None


def _coverage_bullet(coverage: Mapping[tuple[str, float], CoverageLike]) -> str:
    """The last bullet: per budget, whether the worst case includes the AutoAttack ensemble, and where it
    does not, the attacks it rests on and exactly which components of the ensemble (at which budget) are
    missing there; budgets alike are named together."""
    if not coverage:
        return "AutoAttack coverage: no budget with an attack was recorded, so no robustness claim is counted."
    items = sorted(coverage.items(), key=lambda kv: (kv[0][0] != "linf", float(kv[0][1])))
    verified = [budget_text(n, e) for (n, e), c in items if c.verified]
    groups: dict[tuple[str, str, tuple[str, ...]], list[float]] = {}
    for (norm, eps), cov in items:
        if not cov.verified:
            groups.setdefault((norm, attack_names(cov.ran), tuple(cov.missing)), []).append(eps)
    text = "AutoAttack coverage (APGD-CE, APGD-T, FAB-T and Square with 5,000 queries in the worst case): "
    text += ("verified at " + ", ".join(verified)) if verified else "no budget is verified"
    if groups:
        parts = []
        for (norm, ran, missing), budgets in groups.items():
            where = _budgets_text([(norm, e) for e in budgets])
            lacks = ", ".join(missing) if missing else "a component this report cannot name"
            parts.append(f"at {where} the worst case rests on {ran}, and the ensemble lacks {lacks}")
        text += "; " + "; ".join(parts) + ": claims there are stated but not counted"
    return text + "."


def _budgets_text(budgets: list[tuple[str, float]]) -> str:
    """ "ε = 0.02, 0.05 and L2 radius 1.5" for (norm, eps) pairs, each norm's budgets named once."""
    by_norm: dict[str, list[float]] = {}
    for norm, eps in budgets:
        by_norm.setdefault(norm, []).append(float(eps))
    parts = [
        ("L2 radius " if norm == "l2" else "ε = ") + ", ".join(f"{e:g}" for e in sorted(values))
        for norm, values in sorted(by_norm.items(), key=lambda kv: kv[0] != "linf")
    ]
    return " and ".join(parts)


def named_budgets(pairs: list[tuple[str, str, float]]) -> str:
    """ "baikal at ε = 0.02, 0.05; taylorglo at ε = 0.05" for (name, norm "linf"/"l2", eps), grouped by name
    in their order."""
    by_name: dict[str, list[tuple[str, float]]] = {}
    for name, norm, eps in pairs:
        by_name.setdefault(name, []).append((norm, float(eps)))
    return "; ".join(f"{name} at {_budgets_text(b)}" for name, b in by_name.items())


def budgets_text(budgets: list[tuple[str, float]]) -> str:
    """ "ε = 0.02, 0.05 and L2 radius 1.5" for (norm "linf"/"l2", eps) pairs."""
    return _budgets_text(budgets)


def _named(claims: pd.DataFrame) -> str:
    """ "baikal at ε = 0.02, 0.05; taylorglo at ε = 0.05" for claims, grouped by loss in their order."""
    by_loss: dict[str, list[tuple[str, float]]] = {}
    for r in claims.itertuples():
        by_loss.setdefault(str(r.loss), []).append(("l2" if r.norm == "L2" else "linf", float(r.eps)))
    return "; ".join(f"{loss} at {_budgets_text(b)}" for loss, b in by_loss.items())


def _by_direction(claims: pd.DataFrame) -> str:
    """ "more robust: X at ε = 0.05; less robust: Y at ε = 0.1" for significant claims."""
    parts = []
    for word in ("more robust", "less robust"):
        chosen = claims[claims["direction"] == word]
        if len(chosen):
            parts.append(f"{word}: {_named(chosen)}")
    return "; ".join(parts)


def _answer(
    claims: pd.DataFrame,
    base: str,
    dataset: str,
    budget: str,
    correction: str,
    coverage: Mapping[tuple[str, float], CoverageLike],
) -> str:
    """The headline: the counted claims in both directions, then the significant differences that are not
    counted, named by loss and budget in both directions."""
    where = f"On {dataset}, at this budget ({budget})"
    counted = claims[claims["counted"].astype(bool)]
    better = counted[counted["direction"] == "more robust"]
    worse = counted[counted["direction"] == "less robust"]
    significant = claims[claims["direction"].isin(SIGNIFICANT)]
    uncounted = significant[~significant["counted"].astype(bool)]
    verified = [budget_text(norm, eps) for (norm, eps), c in coverage.items() if c.verified]
    # The standard a claim must meet, not a statement about this run's diagnostics (which the table gives).
    scope = (
        f"under the worst case at {and_list(verified) if verified else '-'} (which includes the full AutoAttack "
        f"ensemble), counting a comparison only where the blocking diagnostics ({', '.join(BLOCKING)}) were run "
        "and passed on every seed"
    )
    if not verified:
        text = (
            f"{where}: no robustness claim can be judged against {base}: no budget's worst case includes the "
            "full AutoAttack ensemble."
        )
        if len(uncounted):
            text += (
                f" Under the weaker attacks, {len(uncounted)} significant difference(s), stated below but not "
                f"counted: {_by_direction(uncounted)}."
            )
        return text
    if not better.empty:
        text = f"{where}: more robust than {base} {scope}, significant after {correction} correction: {_named(better)}."
    else:
        text = f"{where}: no loss is shown more robust than {base} {scope}, after {correction} correction."
    if not worse.empty:
        text += f" Less robust than {base}: {_named(worse)}."
    else:
        text += f" No loss is shown less robust than {base} by that standard either."
    if len(uncounted):
        text += (
            f" {len(uncounted)} further significant difference(s) are not counted, because the worst case there "
            "lacks part of the AutoAttack ensemble or a network failed a blocking diagnostic or was not diagnosed "
            f"(see the table): {_by_direction(uncounted)}."
        )
    return text
