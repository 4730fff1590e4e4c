"""What stands behind each robustness claim of a report: AutoAttack coverage per budget, the diagnostics
per loss and budget, and the claims table the verdict is written from."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from robust_glo.reporting.inputs import ReportInputs
from robust_glo.robustness.attacks import Coverage, coverage_from_results
from robust_glo.robustness.diagnostics import ALL_BUDGETS, CHECKS, PER_NORM

DEFAULT_CLASSES = 10


def n_classes(inputs: ReportInputs) -> int:
    """The number of classes of the report's dataset (from the dataset registry; 10 when unknown)."""
    from robust_glo.data.registry import DATASETS

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
        t = diag.loc[diag["check"] == check, "threshold"]
        if len(t):
            parts.append(f"{check} ≤ {100 * float(t.iloc[0]):.1f}%")
    return ", ".join(parts)


def claims_table(claims: pd.DataFrame) -> pd.DataFrame:
    """The verdict's claims, compact: loss x budget with the difference, its interval, adjusted p, the
    attacks behind it, the diagnostics failed and whether the claim counts."""
    if claims.empty:
        return pd.DataFrame()
    out = []
    for r in claims.to_dict("records"):
        diff = f"{100 * r['diff']:+.1f}" if not _isnan(r["diff"]) else "–"
        if not _isnan(r.get("diff_ci_low")):
            diff += f" [{100 * r['diff_ci_low']:+.1f}, {100 * r['diff_ci_high']:+.1f}]"
        p = r.get("p_adjusted")
        out.append(
            {
                "loss": r["loss"],
                "budget": r["budget"],
                "finding": r["direction"],
                "difference (points)": diff,
                "adjusted p": "–"
                if _isnan(p)
                else ("≤ " if r.get("p_at_floor") else "") + (f"{p:.2g}" if p < 0.001 else f"{p:.3f}"),
                "attacks behind it": r["attacks"],
                "diagnostics failed": r["diagnostics_failed"] or "none",  # "not run" when none were recorded
                "counted": "yes" if r["counted"] else "no",
            }
        )
    return pd.DataFrame(out)


def _isnan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
