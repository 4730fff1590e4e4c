"""What stands behind each robustness claim of a report: AutoAttack coverage per budget, the diagnostics
per loss and budget, and the claims table the verdict is written from."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from robust_glo.data.registry import DATASETS
from robust_glo.reporting.inputs import ReportInputs
from robust_glo.robustness.attacks import Coverage, coverage_from_results
from robust_glo.robustness.diagnostics import ALL_BUDGETS, CHECKS, PER_NORM
from robust_glo.robustness.statistics import floor_bound

DEFAULT_CLASSES = 10


def n_classes(inputs: ReportInputs) -> int:
    """The number of classes of the report's dataset (from the dataset registry; 10 when unknown)."""

    datasets = list(dict.fromkeys(inputs.results["dataset"])) if "dataset" in inputs.results else []
    known = [DATASETS[d].num_classes for d in datasets if d in DATASETS]
    return min(known) if known else DEFAULT_CLASSES


def report_coverage(inputs: ReportInputs) -> dict[tuple[str, float], Coverage]:
    """AutoAttack coverage per (norm "linf"/"l2", eps > 0) of the budgets that have a worst-case row,
    decided from the attack rows that actually ran there (`coverage_from_results`)."""
    res = inputs.results
    if "status" in res:
        res = res[res["status"].astype(str) == "ok"]
    worst_budgets = {
        (label, float(e))
        for label, e in zip(res["attack"], res["eps"].astype(float))
        if label in ("worst", "worst:l2") and e > 0
    }
    out = {}
    for (threat, eps), cov in coverage_from_results(res, n_classes(inputs)).items():
        if (threat.worst_label, eps) in worst_budgets:
            out[threat.value, eps] = cov
    return out


def _fmt_pct(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def diagnostics_table(inputs: ReportInputs, budgets: list[tuple[str, float]]) -> pd.DataFrame:
    """One row per loss and budget; one column per diagnostic: its figure in % (mean over seeds) and
    "✗ k/S" when it failed in k of S seeds ("not run" where it was not judged)."""
    diag = inputs.diagnostics
    if diag is None or diag.empty:
        return pd.DataFrame()
    rows = []
    for loss in inputs.losses:
        d = diag[diag["loss"].astype(str) == str(loss)]
        if d.empty:
            continue
        seeds = d["seed"].nunique()
        norms = d["norm"].fillna("").astype(str)
        eps_col = pd.to_numeric(d["eps"], errors="coerce")
        for norm, eps in budgets:
            shown = "L2" if norm == "l2" else "Linf"
            row: dict[str, Any] = {
                "loss": inputs.label(loss),
                "budget": f"L2 radius {eps:g}" if norm == "l2" else f"ε = {eps:g}",
            }
            for check in CHECKS:
                if check in ALL_BUDGETS:
                    here = d[(d["check"] == check)]
                elif check in PER_NORM:
                    here = d[(d["check"] == check) & (norms == shown)]
                else:
                    here = d[(d["check"] == check) & (norms == shown) & np.isclose(eps_col, eps)]
                judged = here[here["status"].isin(["pass", "fail"])]
                if judged.empty:
                    row[check] = "not run"
                    continue
                failed = int((judged["status"] == "fail").sum())
                text = _fmt_pct(float(judged["value"].mean()))
                if failed:
                    text += f" ✗ {failed}/{seeds}"
                elif len(judged) < seeds:
                    text += f" ({len(judged)}/{seeds} judged)"
                row[check] = text
            rows.append(row)
    return pd.DataFrame(rows)


def thresholds_text(inputs: ReportInputs) -> str:
    """ "more_effort ≤ 2.0%, ..." from the recorded thresholds."""
    diag = inputs.diagnostics
    if diag is None or diag.empty:
        return ""
    parts = []
    for check in CHECKS:
        rows = diag.loc[diag["check"] == check]
        if not len(rows):
            continue
        text = f"{check} ≤ {100 * float(rows['threshold'].iloc[0]):.1f}%"
        if check in RELATIVE_RULE:
            text += " of " + RELATIVE_RULE[check]
        if check in ("more_effort", "unbounded") and "n" in rows and rows["n"].notna().any():
            text += f" (subsample of {int(rows['n'].dropna().iloc[0])} inputs)"
        parts.append(text)
    return ", ".join(parts)


# The second, relative rule of the checks that have one (robust_glo/robustness/diagnostics.py).
RELATIVE_RULE = {
    "more_effort": "the subsample and ≤ 10% of the inputs still standing (a rule fails only with at least 2 broken)",
    "transfer": "all inputs and ≤ 10% of the inputs the white-box worst case left standing (a rule fails only with "
    "at least 2 broken)",
}


def _diff(row: dict[str, Any]) -> str:
    """ "+8.3 [+6.3, +10.4]": a difference in points with its 95% interval ("–" when there is none)."""
    if _isnan(row.get("diff")):
        return "–"
    text = f"{100 * row['diff']:+.1f}"
    if not _isnan(row.get("diff_ci_low")):
        text += f" [{100 * row['diff_ci_low']:+.1f}, {100 * row['diff_ci_high']:+.1f}]"
    return text


def _p(row: dict[str, Any]) -> str:
    p = row.get("p_adjusted")
    if _isnan(p):
        return "–"
    return ("≤ " if floor_bound(p, row.get("p_at_floor")) else "") + (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


SIGNS = {"more robust": "↑", "less robust": "↓", "higher": "↑", "lower": "↓"}


def verdict_table(claims: pd.DataFrame, clean: pd.DataFrame | None = None) -> pd.DataFrame:
    """The verdict at a glance: one row per loss, one column per budget (and clean accuracy first); each cell
    the difference to the baseline in points with its 95% interval, `↑` / `↓` where it is significant after
    the correction (the number and its interval joined by no-break spaces), and for a significant
    robustness claim whether the answer counts it ("counted", or "not counted" with the reason). Two
    closing rows name, per budget, the attacks behind the worst case and what the AutoAttack ensemble
    lacks there ("complete" when nothing). Returns a DataFrame of strings (empty when there are no
    claims)."""
    if claims.empty:
        return pd.DataFrame()
    budgets = list(
        dict.fromkeys(
            r["budget"] for r in sorted(claims.to_dict("records"), key=lambda r: (r["norm"] != "Linf", float(r["eps"])))
        )
    )
    losses = list(dict.fromkeys(claims["loss"]))
    has_clean = clean is not None and not clean.empty
    columns = ["loss"] + (["clean accuracy"] if has_clean else []) + budgets
    rows: list[dict[str, str]] = []
    clean_by_loss = {r["loss"]: r for r in clean.to_dict("records")} if has_clean else {}
    for loss in losses:
        row = {"loss": str(loss)}
        if has_clean:
            c = clean_by_loss.get(loss)
            row["clean accuracy"] = "–" if c is None else _signed(c)
        for r in claims[claims["loss"] == loss].to_dict("records"):
            text = _signed(r)
            if r["direction"] in ("more robust", "less robust"):
                text += " counted" if r["counted"] else f" not counted: {r['not_counted_because']}"
            row[r["budget"]] = text
        rows.append(row)
    first = {r["budget"]: r for r in claims.to_dict("records")}
    attacks = {"loss": "attacks behind it", **{b: first[b]["attacks"] for b in budgets}}
    ensemble = {
        "loss": "AutoAttack ensemble",
        **{b: "complete" if first[b]["verified"] else f"lacks {first[b]['missing']}" for b in budgets},
    }
    if has_clean:
        attacks["clean accuracy"] = ensemble["clean accuracy"] = "–"
    rows += [attacks, ensemble]
    return pd.DataFrame(rows, columns=columns).fillna("–")


NBSP = "\u00a0"


def _signed(row: dict[str, Any]) -> str:
    """ "↑ +8.3 [+6.3, +10.4]" with no-break spaces, so that a narrow column never splits the number."""
    sign = SIGNS.get(str(row.get("direction", "")), "")
    return (f"{sign} {_diff(row)}" if sign else _diff(row)).replace(" ", NBSP)


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    """The verdict's claims in detail: one row per loss and budget with the finding, the difference and its
    interval, adjusted p, the attacks behind it (readable names), whether the worst case there is
    AutoAttack-verified, the diagnostics failed and whether the claim counts. Returns a DataFrame (empty
    when there are no claims)."""
    if claims.empty:
        return pd.DataFrame()
    out = []
    for r in claims.to_dict("records"):
        out.append(
            {
                "loss": r["loss"],
                "budget": r["budget"],
                "finding": r["direction"],
                "difference (points)": _diff(r),
                "adjusted p": _p(r),
                "attacks behind it": r["attacks"],
                "AutoAttack-verified": "yes" if r["verified"] else "no",
                "diagnostics failed": r["diagnostics_failed"] or "none",  # "not run" when none were recorded
                # only a claim (more or less robust) can count or not; a row without one has nothing to count
                "counted": "yes"
                if r["counted"]
                else ("no" if r["direction"] in ("more robust", "less robust") else "—"),
            }
        )
    return pd.DataFrame(out)


def _isnan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
