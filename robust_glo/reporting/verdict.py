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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from robust_glo.robustness.attacks import WORST, WORST_L2
from robust_glo.robustness.diagnostics import BLOCKING, BLOCKING_BASELINE

NORM_OF_WORST = {WORST: "linf", WORST_L2: "l2"}
DISPLAY_NORM = {"linf": "Linf", "l2": "L2"}
ROBUST_WORDS = {"higher": "more robust than", "lower": "less robust than", "": "no evidence of a difference from"}
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
    "diagnostics_failed",
    "counted",
]


class CoverageLike(Protocol):
    verified: bool
    ran: tuple[str, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    bullets: list[str]
    answer: str
    claims: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CLAIM_COLUMNS))


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pts(value: float) -> str:
    return f"{100 * value:+.1f}"


def budget_text(norm: str, eps: float) -> str:
    return f"L2 radius {eps:g}" if norm == "l2" else f"ε = {eps:g}"


def p_text(row: Mapping[str, Any]) -> str:
    """ "adjusted p = 0.012", "adjusted p = 3.1e-07" or "adjusted p ≤ 0.0001" (a p at its resolution floor)."""
    p = row.get("p_adjusted")
    if _nan(p):
        return ""
    if bool(row.get("p_at_floor", False)):
        return f"adjusted p ≤ {p:.2g}"
    return f"adjusted p = {p:.2g}" if p < 0.001 else f"adjusted p = {p:.3f}"


def _diff_text(row: Mapping[str, Any]) -> str:
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


def _coverage_text(cov: CoverageLike | None) -> str:
    if cov is None:
        return "AutoAttack coverage unknown"
    if cov.verified:
        return "AutoAttack-verified"
    ran = ", ".join(cov.ran) if cov.ran else "no attack"
    return f"not verified against AutoAttack (worst case of: {ran})"


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
    base = labels.get(baseline, baseline)
    losses = [loss for loss in dict.fromkeys(summary["loss"]) if loss != baseline]
    bullets: list[str] = []
    claims: list[dict[str, Any]] = []
    for loss in losses:
        name = labels.get(loss, loss)
        rows = summary[summary["loss"] == loss]
        parts = []
        clean = rows[rows["attack"] == "clean"]
        if not clean.empty:
            c = clean.iloc[0]
            word = {"higher": "higher than", "lower": "lower than", "": "no evidence of a difference from"}[
                _direction(c)
            ]
            parts.append(f"clean accuracy {100 * c['mean']:.1f}%, {word} {base} ({_diff_text(c)})")
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
                word = {
                    "higher": "more robust than",
                    "lower": "less robust than",
                    "": "no evidence of a difference from",
                }[direction]
                text = f"at {budget_text(norm, eps)} {word} {base} ({_diff_text(r)}; {_coverage_text(cov)})"
                if not judged:
                    text += f", diagnostics not run: {', '.join(unjudged)}"
                if failed:
                    text += f", failed diagnostics: {', '.join(failed)}"
                if base_failed:
                    text += f", {base} failed diagnostics: {', '.join(base_failed)}"
                if direction and not counted:
                    text += " [not counted]"
                parts.append(text)
                claims.append(
                    {
                        "loss": name,
                        "norm": DISPLAY_NORM[norm],
                        "eps": eps,
                        "budget": budget_text(norm, eps),
                        "direction": {"higher": "more robust", "lower": "less robust", "": "no evidence"}[direction],
                        "diff": r["diff"],
                        "diff_ci_low": r.get("diff_ci_low", math.nan),
                        "diff_ci_high": r.get("diff_ci_high", math.nan),
                        "p_adjusted": r.get("p_adjusted", math.nan),
                        "p_at_floor": bool(r.get("p_at_floor", False)),
                        "verified": verified,
                        "attacks": "AutoAttack (" + ", ".join(cov.ran) + ")"
                        if verified
                        else ("worst case of: " + (", ".join(cov.ran) if cov and cov.ran else "?")),
                        "diagnostics_failed": "; ".join(
                            failed
                            + [f"{base}: {f}" for f in base_failed]
                            + ([f"not run: {', '.join(unjudged)}"] if unjudged else [])
                        ),
                        "counted": counted,
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
    return Verdict(bullets, _answer(frame, base, dataset, budget, correction, coverage), frame)


def _lookup(coverage: Mapping[tuple[str, float], CoverageLike], norm: str, eps: float) -> CoverageLike | None:
    for (n, e), cov in coverage.items():
        if n == norm and math.isclose(float(e), eps, rel_tol=1e-9, abs_tol=1e-12):
            return cov
    return None


def _coverage_bullet(coverage: Mapping[tuple[str, float], CoverageLike]) -> str:
    if not coverage:
        return "AutoAttack coverage: no budget with an attack was recorded, so no robustness claim is counted."
    verified = [budget_text(n, e) for (n, e), c in sorted(coverage.items()) if c.verified]
    other = [
        f"{budget_text(n, e)} (missing {', '.join(c.missing) or '?'})"
        for (n, e), c in sorted(coverage.items())
        if not c.verified
    ]
    text = "AutoAttack coverage (APGD-CE, APGD-T, FAB-T and Square with 5,000 queries in the worst case): "
    text += ("verified at " + ", ".join(verified)) if verified else "no budget is verified"
    if other:
        text += "; not verified at " + "; ".join(other) + ": claims there are stated but not counted"
    return text + "."


def _answer(
    claims: pd.DataFrame,
    base: str,
    dataset: str,
    budget: str,
    correction: str,
    coverage: Mapping[tuple[str, float], CoverageLike],
) -> str:
    where = f"On {dataset}, at this budget ({budget})"
    counted = claims[claims["counted"].astype(bool)]
    better = counted[counted["direction"] == "more robust"]
    worse = counted[counted["direction"] == "less robust"]
    scope = "under the AutoAttack-verified worst case, with every diagnostic passed"
    if not any(c.verified for c in coverage.values()):
        text = (
            f"{where}: no robustness claim can be judged against {base}: no budget's worst case includes the "
            "full AutoAttack ensemble."
        )
        significant = claims[claims["direction"] != "no evidence"]
        if len(significant):
            text += (
                f" {len(significant)} significant difference(s) under weaker attacks are stated below but not counted."
            )
        return text
    if not better.empty:
        items = ", ".join(f"{r.loss} at {r.budget}" for r in better.itertuples())
        text = f"{where}: more robust than {base} {scope}, significant after {correction} correction: {items}."
    else:
        text = f"{where}: no evidence that any loss is more robust than {base} {scope}, after {correction} correction."
    if not worse.empty:
        text += f" Less robust than {base}: " + ", ".join(f"{r.loss} at {r.budget}" for r in worse.itertuples()) + "."
    significant = claims[claims["direction"] != "no evidence"]
    uncounted = len(significant) - len(counted)
    if uncounted:
        text += (
            f" {uncounted} further significant difference(s) are not counted: they rest on attacks weaker than "
            "AutoAttack, or on networks that failed a diagnostic or were not diagnosed (see the claims table)."
        )
    return text
