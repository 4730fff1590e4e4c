"""The paper's protocol beside the strict one: how much of a gain measured the TaylorGLO paper's way
survives the report's own protocol.

The paper attacks each network with FGSM on its own training loss (`fgsm:loss=train`). Where the results
hold that column, every loss other than the baseline gets, per budget where it ran, its difference to the
baseline (points, bootstrap interval and corrected p, all read from the report's summary: each attack
column is a cell of the statistics) under

(a) FGSM on the network's own training loss (the paper's protocol),
(b) FGSM on cross-entropy (the same attack on the loss every network shares), and
(c) the per-input worst case over every attack that ran there (the strict protocol; AutoAttack-verified
    at that budget or not, as the verdict decides it),

and "kept", the share of the paper-protocol gain that the strict protocol keeps: (c) / (a), shown only
where (a) is a significant gain by the same test as `evidence` (adjusted p below alpha and its interval
above zero: a ratio to anything less divides by noise) and (c) is AutoAttack-verified with every blocking
diagnostic judged and passed (`verdict.claim_gate` returns nothing: a ratio to an unverified worst case
would overstate what survives); elsewhere a short text says which condition fails. Kept is a ratio of two
mean differences without an interval of its own (marked where (c) is not itself a significant gain), and
is not capped: above 100% the worst case shows a
larger difference than (a). (a) is a weaker attack: it stands behind no claim (the verdict rests on the
worst case alone).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from robust_glo.reporting import tables as T
from robust_glo.reporting import verdict as V
from robust_glo.robustness.attacks import spec_of_label
from robust_glo.robustness.bootstrap import HierarchicalBootstrap, replicate_test
from robust_glo.robustness.diagnostics import BLOCKING, BLOCKING_BASELINE
from robust_glo.robustness.statistics import adjust_pvalues

TITLE = "The paper's protocol beside the strict one"
ANCHOR = "paper-protocol"
PARTS = ("paper", "ce", "worst")  # (a), (b), (c)
CELL = ("diff", "diff_ci_low", "diff_ci_high", "p_adjusted", "p_at_floor", "significant", "n_family")
NO_GAIN = "no significant gain under (a)"
NOT_VERIFIED = "(c) not verified"
NOT_DIAGNOSED = "(c) not counted (diagnostics)"
NOISY_WORST = "(c) itself no significant gain"


def paper_attacks(attacks: Sequence[str]) -> list[str]:
    """The attack labels among `attacks` that are FGSM on the network's own training loss (`fgsm:loss=train`,
    with any other parameters), in order."""
    out = []
    for label in dict.fromkeys(attacks):
        spec = spec_of_label(str(label))
        if spec is not None and spec.family == "fgsm" and spec.resolved().get("loss") == "train":
            out.append(str(label))
    return out


def cross_entropy_partner(paper: str, attacks: Sequence[str]) -> str | None:
    """The FGSM-on-cross-entropy label among `attacks` to set beside `paper`: the same threat model, loss
    "ce", and preferably every other parameter (then the schedule: cascade, min_eps) equal; None when no
    such FGSM ran."""
    mine = spec_of_label(paper)
    if mine is None:
        return None

    def without_loss(params: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k != "loss"}

    same, schedule = without_loss(mine.resolved()), without_loss(dict(mine.params))
    found = []
    for label in dict.fromkeys(attacks):
        spec = spec_of_label(str(label))
        if spec is None or spec.family != "fgsm" or spec.threat is not mine.threat:
            continue
        if spec.resolved().get("loss") != "ce":
            continue
        differs = (without_loss(spec.resolved()) != same, without_loss(dict(spec.params)) != schedule)
        found.append((*differs, len(spec.params), str(label)))
    return min(found)[-1] if found else None


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _cell(summary: pd.DataFrame, loss: str, attack: str, eps: float) -> dict[str, Any] | None:
    rows = summary[(summary["loss"] == loss) & (summary["attack"] == attack)]
    rows = rows[[math.isclose(float(e), eps, rel_tol=1e-9, abs_tol=1e-12) for e in rows["eps"]]]
    return rows.iloc[0].to_dict() if len(rows) else None


def _values(cell: dict[str, Any] | None, worst: dict[str, Any] | None, sizes: Mapping[str, int]) -> dict[str, Any]:
    """The difference of one summary cell, with `n_family`, the number of comparisons its p was corrected
    over (`sizes`, `verdict.family_sizes`). An attack whose outcomes are the worst case's on every network
    is in no family and has no p of its own: its comparison is the worst case's, whose p it takes."""
    if cell is None:
        return {k: (False if k in ("p_at_floor", "significant") else math.nan) for k in CELL}
    out = {k: cell.get(k, math.nan) for k in CELL}
    out["n_family"] = V.comparisons(cell, sizes)
    if _nan(out["p_adjusted"]) and not cell.get("family") and worst is not None:
        for k in ("p_adjusted", "p_at_floor", "significant"):
            out[k] = worst.get(k, out[k])
        out["n_family"] = V.comparisons(worst, sizes)
    out["p_at_floor"] = not _nan(out["p_at_floor"]) and bool(out["p_at_floor"])
    out["significant"] = not _nan(out["significant"]) and bool(out["significant"])
    return out


def evidence(values: Mapping[str, Any]) -> str:
    """ "gain", "loss" or "" (no evidence): significant after the correction and, where there is an
    interval, the interval on the same side of zero."""
    diff = values.get("diff")
    if _nan(diff) or not values.get("significant") or diff == 0:
        return ""
    low, high = values.get("diff_ci_low"), values.get("diff_ci_high")
    if diff > 0 and (_nan(low) or low > 0):
        return "gain"
    if diff < 0 and (_nan(high) or high < 0):
        return "loss"
    return ""


def kept_blocked(row: Mapping[str, Any]) -> str:
    """Why a `protocol_rows` row shows no kept ratio: (a) is not a significant gain (`evidence`), (c) is not
    AutoAttack-verified, or a claim at (c) would not count for the diagnostics (`verdict.claim_gate`); ""
    where kept is shown."""
    reasons = [] if evidence(part(row, "paper")) == "gain" else [NO_GAIN]
    if not row["verified"]:
        reasons.append(NOT_VERIFIED)
    elif row["not_counted"]:
        reasons.append(NOT_DIAGNOSED)
    return "; ".join(reasons)


def kept(paper_diff: float, worst_diff: float) -> float:
    """(c) / (a): the share of the paper-protocol gain the strict worst case keeps; NaN when (a) <= 0.
    `protocol_rows` asks it only where `kept_blocked` finds nothing."""
    if _nan(paper_diff) or _nan(worst_diff) or paper_diff <= 0:
        return math.nan
    return float(worst_diff) / float(paper_diff)


def protocol_rows(
    summary: pd.DataFrame,
    baseline: str,
    attacks: Sequence[str],
    coverage: Mapping[tuple[str, float], V.CoverageLike] | None = None,
    diagnostics: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per loss other than `baseline`, paper-protocol attack and eps > 0 where both that attack and
    its threat model's worst case have a summary cell: `loss`, `paper_attack`, `ce_attack` (None when no
    FGSM on cross-entropy ran), `norm` ("linf"/"l2"), `eps`, for each of `paper_`, `ce_`, `worst_` the
    summary's diff, diff_ci_low, diff_ci_high, p_adjusted, p_at_floor and significant, `verified` (the
    worst case there includes the AutoAttack ensemble), `ran` (the attacks behind it, readable names),
    `not_counted` (why a worst-case difference there would not count, the verdict's rule over the loss's and
    the baseline's `diagnostics`; "" when it counts) and `kept` ((c) / (a), NaN where `kept_blocked` gives a
    reason: (a) not a significant gain, or (c) not verified or not counted). Each part also has `n_family`,
    the number of comparisons its p was corrected over. Empty when `attacks` hold no `fgsm:loss=train`."""
    coverage = dict(coverage or {})
    sizes = V.family_sizes(summary)
    rows = []
    losses = [loss for loss in dict.fromkeys(summary["loss"]) if loss != baseline]
    for paper in paper_attacks(attacks):
        spec = spec_of_label(paper)
        norm, worst_label = spec.threat.value, spec.threat.worst_label
        partner = cross_entropy_partner(paper, attacks)
        budgets = sorted({float(e) for e in summary.loc[summary["attack"] == paper, "eps"] if float(e) > 0})
        for loss in losses:
            for eps in budgets:
                a, w = _cell(summary, loss, paper, eps), _cell(summary, loss, worst_label, eps)
                if a is None or w is None:
                    continue
                b = _cell(summary, loss, partner, eps) if partner is not None else None
                row: dict[str, Any] = {"loss": loss, "paper_attack": paper, "ce_attack": partner}
                row["worst_attack"] = worst_label
                row |= {"norm": norm, "eps": eps}
                for prefix, cell in zip(PARTS, (a, b, w)):
                    row |= {f"{prefix}_{k}": v for k, v in _values(cell, w, sizes).items()}
                cov = V.coverage_at(coverage, norm, eps)
                row["verified"] = bool(cov is not None and cov.verified)
                row["ran"] = V.attack_names(cov.ran) if cov is not None else ""
                arms = {loss: BLOCKING, baseline: BLOCKING_BASELINE}
                row["not_counted"] = "; ".join(V.claim_gate(diagnostics, cov, norm, eps, arms))
                shown = not kept_blocked(row)
                row["kept"] = kept(row["paper_diff"], row["worst_diff"]) if shown else math.nan
                rows.append(row)
    return pd.DataFrame(rows)


GAP = ("gap", "gap_ci_low", "gap_ci_high", "gap_p", "gap_p_adjusted", "gap_significant")


def add_gaps(
    rows: pd.DataFrame,
    boot: HierarchicalBootstrap | None,
    baseline: str,
    correction: str = "holm",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """`rows` (`protocol_rows`) with the gain the strict protocol does not keep, (a) - (c): the paper-protocol
    difference to `baseline` minus the worst-case one, in accuracy units, tested directly. Its interval and
    p come from the same seeds-and-images bootstrap as every other number (`boot`, paired across losses and
    attacks), stretched by t/z with S - 1 degrees of freedom like the frontier margins, and p is corrected
    over the rows that have one (the family is this question: every loss and budget of the paper's protocol);
    `gap_significant`: corrected p below `alpha` and the interval on one side of zero. NaN columns (False
    for `gap_significant`) without a bootstrap or where a cell is missing."""
    out = rows.copy()
    for k in GAP[:-1]:
        out[k] = math.nan
    out["gap_significant"] = False
    if boot is None or out.empty:
        return out
    for i, r in out.iterrows():
        a_where, c_where = (
            {"attack": r["paper_attack"], "eps": r["eps"]},
            {"attack": r["worst_attack"], "eps": r["eps"]},
        )
        try:
            reps = (boot.accuracy_replicates(r["loss"], a_where) - boot.accuracy_replicates(baseline, a_where)) - (
                boot.accuracy_replicates(r["loss"], c_where) - boot.accuracy_replicates(baseline, c_where)
            )
        except KeyError:
            continue
        gap = float(r["paper_diff"]) - float(r["worst_diff"])
        seeds = min(boot.n_seeds(k, w) for k in (r["loss"], baseline) for w in (a_where, c_where))
        test = replicate_test(gap, reps, max(seeds - 1, 1), boot.confidence, (-2.0, 2.0))  # a gap lies in [-2, 2]
        out.loc[i, list(GAP[:4])] = [gap, test.low, test.high, test.p]
    tested = out["gap_p"].notna()
    if tested.any():
        out.loc[tested, "gap_p_adjusted"] = adjust_pvalues(out.loc[tested, "gap_p"].tolist(), correction)
    out["gap_significant"] = [
        bool(not _nan(r["gap_p_adjusted"]) and r["gap_p_adjusted"] < alpha)
        and V.interval_excludes_zero(r, "gap_ci_low", "gap_ci_high")
        for r in out.to_dict("records")
    ]
    return out


def gap_cell(row: Mapping[str, Any]) -> str:
    """ "+12.0 [+8.1, +15.9] p=0.002*": (a) - (c) in points with its interval and corrected p (`*`:
    `gap_significant`); "—" without."""
    if _nan(row.get("gap")):
        return "—"
    text = f"{100 * row['gap']:+.1f} [{100 * row['gap_ci_low']:+.1f}, {100 * row['gap_ci_high']:+.1f}]"
    return text + f" p={T.fmt_p(row['gap_p_adjusted'])}" + ("*" if row["gap_significant"] else "")


def part(row: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The (a), (b) or (c) cell of a `protocol_rows` row, keyed like a summary row."""
    return {k: row[f"{prefix}_{k}"] for k in CELL}


def kept_text(row: Mapping[str, Any]) -> str:
    """ "25%" ((c) / (a) as a share, uncapped), or which condition for showing it fails (`kept_blocked`).
    Where (c) is not itself a significant gain the share is a ratio of noise to (a), and says so."""
    blocked = kept_blocked(row)
    if blocked:
        return blocked
    text = f"{100 * row['kept']:.0f}%"
    return text if evidence(part(row, "worst")) == "gain" else f"{text} ({NOISY_WORST})"


def coverage_text(row: Mapping[str, Any]) -> str:
    if row["verified"]:
        return "AutoAttack-verified"
    return "not verified against AutoAttack" + (f" (worst case of: {row['ran']})" if row["ran"] else "")


def protocol_table(rows: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """The section's table: per loss and budget, (a), (b), (c) as difference cells (`tables.diff_cell`:
    points, 95% interval, adjusted p), the worst case's AutoAttack coverage and kept."""
    several = rows["paper_attack"].nunique() > 1
    out = []
    for r in rows.to_dict("records"):
        line = {"loss": labels.get(r["loss"], r["loss"]), "budget": V.budget_text(r["norm"], r["eps"])}
        if several:
            line["paper's attack"] = T.attack_names(list(rows["paper_attack"].unique()))[r["paper_attack"]]
        line["(a) FGSM, own training loss: Δ (pts)"] = T.diff_cell(part(r, "paper"))
        line["(b) FGSM, cross-entropy: Δ (pts)"] = T.diff_cell(part(r, "ce")) if r["ce_attack"] else "not run"
        line["(c) worst case: Δ (pts)"] = T.diff_cell(part(r, "worst"))
        line["worst case"] = coverage_text(r)
        line["(a) − (c): not kept (pts)"] = gap_cell(r)
        line["kept (c)/(a)"] = kept_text(r)
        out.append(line)
    return pd.DataFrame(out)


def _points(values: Mapping[str, Any]) -> str:
    text = f"{100 * values['diff']:+.1f} points"
    if not _nan(values.get("diff_ci_low")):
        text += f" [{100 * values['diff_ci_low']:+.1f}, {100 * values['diff_ci_high']:+.1f}]"
    return text


def _unsure(values: Mapping[str, Any], correction: str) -> str:
    """ "+5.0 points [+1.0, +9.0], not significant after Holm over 12 comparisons (its per-comparison interval
    excludes 0)" for a difference whose interval excludes zero while its corrected p does not reach alpha;
    "" for any other."""
    if evidence(values) or not V.interval_excludes_zero(values):
        return ""
    n = 0 if _nan(values.get("n_family")) else int(values["n_family"])
    return f"{_points(values)}, {V.unsure_text(correction, n)}"


def _clause(row: Mapping[str, Any], correction: str) -> str:
    """What one budget supports, in words: the paper-protocol difference, then what the strict worst case
    says, with its AutoAttack coverage."""
    a, c = part(row, "paper"), part(row, "worst")
    ea, ec = evidence(a), evidence(c)
    ua, uc = _unsure(a, correction), _unsure(c, correction)
    where = f"at {V.budget_text(row['norm'], row['eps'])}"
    checked = "AutoAttack-verified" if row["verified"] else "not verified against AutoAttack"
    if row.get("not_counted") and ec in ("gain", "loss"):
        checked += f"; not counted: {row['not_counted']}"
    if ea == "gain":
        head = f"{where} the paper's protocol shows a gain of {_points(a)}"
        if row.get("gap_significant") and row["gap_ci_low"] > 0:
            head += (
                f" of which the worst case loses {100 * row['gap']:.1f} points [{100 * row['gap_ci_low']:+.1f}, "
                f"{100 * row['gap_ci_high']:+.1f}] (corrected p = {T.fmt_p(row['gap_p_adjusted'])})"
            )
        if ec == "gain":
            share = "" if kept_blocked(row) else f", {kept_text(row)} of it"
            return f"{head}, and the worst case ({checked}) keeps a gain of {_points(c)}{share}"
        if ec == "loss":
            return f"{head}, but under the worst case ({checked}) it is less robust ({_points(c)})"
        if uc:
            return f"{head}, but under the worst case ({checked}) the difference is {uc}"
        return f"{head}, but the worst case ({checked}) gives no evidence that any of it survives ({_points(c)})"
    if ea == "loss":
        head = f"{where} it is less robust even under the paper's protocol ({_points(a)})"
    elif ua:
        head = f"{where} the paper's protocol shows {ua}"
    else:
        word = "a gain" if a["diff"] > 0 else "a difference"
        head = f"{where} the paper's protocol itself shows no evidence of {word} ({_points(a)})"
    if ec == "gain":
        return f"{head}, while the worst case ({checked}) shows a gain of {_points(c)}"
    if ec == "loss":
        return f"{head}, and under the worst case ({checked}) it is less robust ({_points(c)})"
    if uc:
        return f"{head}, and under the worst case ({checked}) the difference is {uc}"
    return f"{head}, and the worst case ({checked}) no evidence of a difference ({_points(c)})"


def protocol_sentences(
    rows: pd.DataFrame, labels: Mapping[str, str], baseline: str, correction: str = "Holm"
) -> list[str]:
    """One sentence per loss: per budget, what the intervals and corrected p support under the paper's
    protocol and under the worst case (a difference counts as evidence only where it is significant after
    the `correction` and its interval lies on one side of zero; one whose interval excludes zero while its
    corrected p does not reach alpha is said to be not significant after the correction, not "no
    evidence")."""
    base = labels.get(baseline, baseline)
    out = []
    for loss, group in rows.groupby("loss", sort=False):
        clauses = [_clause(r, correction) for r in group.to_dict("records")]
        out.append(f"**{labels.get(loss, loss)}** against {base}: " + "; ".join(clauses) + ".")
    return out
