"""The verdict a report opens with, written from the statistics (never by hand).

For every loss against the baseline it says, in plain sentences:

- the cost (or gain) in clean accuracy;
- at every ε, whether its accuracy under the worst case of all attacks differs from the baseline's after
  the correction for multiple comparisons, with the difference and its interval;
- whether an advantage it shows under the weak attacks (FGSM, PGD) shrinks or vanishes under the strong
  ones (APGD-DLR, APGD-T, Square, the AutoAttack ensemble): the signature of gradient masking;

and then one sentence that answers the suite's question for this dataset and budget, "no evidence" when
that is the answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

WEAK = ("fgsm", "pgd")
STRONG = ("apgd-dlr", "apgd-t", "square", "aa-reference", "fab-t")


@dataclass(frozen=True)
class Verdict:
    bullets: list[str]
    answer: str


def _family(attack: str) -> str:
    return attack.split(":", 1)[0]


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pts(value: float) -> str:
    return f"{100 * value:+.1f}"


def _diff_text(row: pd.Series) -> str:
    text = f"{_pts(row['diff'])} points"
    if not _nan(row.get("diff_ci_low")):
        text += f" [{_pts(row['diff_ci_low'])}, {_pts(row['diff_ci_high'])}]"
    if not _nan(row.get("p_adjusted")):
        p = row["p_adjusted"]
        text += f", adjusted p {'< 0.001' if p < 0.001 else f'= {p:.3f}'}"
    return text


def _direction(row: pd.Series) -> str:
    """ "higher", "lower" or "" (no evidence) after the correction."""
    if not bool(row.get("significant", False)):
        return ""
    return "higher" if row["diff"] > 0 else "lower"


def worst_attack(summary: pd.DataFrame) -> str | None:
    """The attack whose rows are the per-input worst case of everything that ran."""
    attacks = [a for a in dict.fromkeys(summary["attack"]) if a not in ("clean", "worst")]
    if not attacks:
        return None
    return "worst" if (summary["attack"] == "worst").any() and len(attacks) > 1 else attacks[0]


def build_verdict(
    summary: pd.DataFrame, labels: dict[str, str], baseline: str, *, dataset: str, budget: str, correction: str
) -> Verdict:
    """The verdict for `summary` (from `summarize`, one row per loss x attack x eps)."""
    base = labels.get(baseline, baseline)
    losses = [loss for loss in dict.fromkeys(summary["loss"]) if loss != baseline]
    worst = worst_attack(summary)
    attacks = [a for a in dict.fromkeys(summary["attack"]) if a not in ("clean", "worst")]
    # The masking signature compares attacks of one threat model: L-infinity (and, separately, L2).
    strong = [a for a in attacks if _family(a) in STRONG and ":norm=l2" not in a]
    weak = [a for a in attacks if _family(a) in WEAK and ":norm=l2" not in a]
    strong_l2 = [a for a in attacks if _family(a) in STRONG and ":norm=l2" in a]
    weak_l2 = [a for a in attacks if _family(a) in WEAK and ":norm=l2" in a]
    eps_values = sorted(e for e in summary["eps"].unique() if e > 0)
    bullets: list[str] = []
    better, worse = [], []
    for loss in losses:
        name = labels.get(loss, loss)
        rows = summary[summary["loss"] == loss]
        clean = rows[rows["attack"] == "clean"]
        parts = []
        if not clean.empty:
            c = clean.iloc[0]
            word = {"higher": "higher than", "lower": "lower than", "": "no evidence of a difference from"}[
                _direction(c)
            ]
            parts.append(f"clean accuracy {100 * c['mean']:.1f}%, {word} {base} ({_diff_text(c)})")
        for which in [w for w in (worst, "worst:l2") if w is not None and (rows["attack"] == w).any()]:
            l2 = which == "worst:l2"
            for e in sorted(rows.loc[(rows["attack"] == which) & (rows["eps"] > 0), "eps"].unique()):
                r = rows[(rows["attack"] == which) & (rows["eps"] == e)].iloc[0]
                direction = _direction(r)
                where = f"L2 radius {e:g}" if l2 else f"ε = {e:g}"
                if direction == "higher":
                    better.append((name, where))
                elif direction == "lower":
                    worse.append((name, where))
                word = {
                    "higher": "more robust than",
                    "lower": "less robust than",
                    "": "no evidence of a difference from",
                }[direction]
                scope = "the L2 attacks" if l2 else "all attacks"
                parts.append(f"at {where} under the worst case of {scope} {word} {base} ({_diff_text(r)})")
        masking = " ".join(
            m for m in (_masking(rows, weak, strong, eps_values), _masking(rows, weak_l2, strong_l2, eps_values)) if m
        )
        text = f"**{name}**: " + "; ".join(parts) + "." + (f" {masking}" if masking else "")
        if "n_unreliable" in rows and rows["n_unreliable"].max() > 0:
            text += (
                f" ⚠ {int(rows['n_unreliable'].max())} of its evaluations failed a reliability check "
                "(see Reliability checks): read its numbers with care."
            )
        bullets.append(text)
    if not strong:
        bullets.append(
            "No strong attack (APGD-DLR, APGD-T, Square, AutoAttack) was run: an advantage under FGSM "
            "and PGD cannot be told apart from gradient masking."
        )
    answer = _answer(better, worse, base, dataset, budget, correction, bool(strong))
    return Verdict(bullets, answer)


def _masking(rows: pd.DataFrame, weak: list[str], strong: list[str], eps_values: list[float]) -> str:
    """The gradient-masking signature: a significant advantage under FGSM/PGD that shrinks (by half or more)
    or loses its significance under the strong attacks, at some eps."""
    found = []
    for e in eps_values:
        at = rows[rows["eps"] == e].set_index("attack")
        weak_rows = [at.loc[a] for a in weak if a in at.index]
        strong_rows = [at.loc[a] for a in strong if a in at.index]
        if not weak_rows or not strong_rows:
            continue
        best_weak = max(weak_rows, key=lambda r: r["diff"])
        worst_strong = min(strong_rows, key=lambda r: r["diff"])
        if not (bool(best_weak.get("significant", False)) and best_weak["diff"] > 0):
            continue
        shrink = best_weak["diff"] - worst_strong["diff"]
        vanished = not (bool(worst_strong.get("significant", False)) and worst_strong["diff"] > 0)
        if vanished or shrink >= 0.5 * best_weak["diff"]:
            found.append(
                f"at ε = {e:g} its advantage of {_pts(best_weak['diff'])} points under "
                f"{best_weak.name} {'vanishes' if vanished else 'shrinks'} to {_pts(worst_strong['diff'])} "
                f"under {worst_strong.name} (by {100 * shrink:.1f} points)"
            )
    if not found:
        return ""
    return "Gradient-masking signature: " + "; ".join(found) + "."


def _answer(better: list, worse: list, base: str, dataset: str, budget: str, correction: str, strong: bool) -> str:
    where = f"On {dataset}, at this budget ({budget})"
    if better:
        items = ", ".join(f"{name} at {where}" for name, where in better)
        caveat = (
            ""
            if strong
            else ", but no attack outside the cross-entropy-gradient family (no APGD-DLR, "
            "APGD-T or Square) ran, so this may be gradient masking"
        )
        return (
            f"{where}: more robust than {base} under the worst case of all attacks, significant after "
            f"{correction} correction: {items}{caveat}. No other loss shows evidence of being more robust."
        )
    text = (
        f"{where}: no evidence that any loss is more robust than {base} under the worst case of all attacks "
        f"after {correction} correction."
    )
    if worse:
        text += " Less robust than " + base + ": " + ", ".join(f"{n} at {where}" for n, where in worse) + "."
    return text
