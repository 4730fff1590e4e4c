"""A RobustBench-style leaderboard gathered from the `card.json` files under a folder
(`robust_glo.comparison.cards`): one row per network (`leaderboard.csv`) and one per loss with the mean ±
standard deviation over its seeds (the Markdown table), ranked by AutoAttack-verified robust accuracy at
the largest verified budget, each number with the attacks behind it.

The ranking budget, per dataset: the largest ε of the L∞ threat model (of L2 when no L∞ budget qualifies)
at which every evaluated network of the dataset is AutoAttack-verified; failing that, the largest at which
any is; failing that, the largest budget evaluated, with the worst case over the attacks that ran (and the
table says it is not verified). Verified networks whose blocking diagnostics all passed rank first, then
the other verified ones, then unverified ones; within each, by robust accuracy, then by clean accuracy.

>>> from robust_glo.comparison.leaderboard import write_leaderboard
>>> board = write_leaderboard("runs/quick")   # runs/quick/leaderboard.csv and leaderboard.md
>>> print(board.markdown)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robust_glo.comparison.cards import read_cards
from robust_glo.utils import atomic_write_text

CSV_FILE, MARKDOWN_FILE = "leaderboard.csv", "leaderboard.md"

Budget = tuple[str, float]  # (threat model "Linf"/"L2", eps)


@dataclass
class Leaderboard:
    """`networks`: one row per card (the CSV); `losses`: one row per (dataset, model, loss); `budgets`: the
    ranking budget per dataset (None when no network of it has a budget > 0), with whether it is verified;
    `markdown`: the tables as text."""

    networks: pd.DataFrame
    losses: pd.DataFrame
    budgets: dict[str, tuple[Budget | None, bool]] = field(default_factory=dict)
    markdown: str = ""


def budget_label(budget: Budget) -> str:
    return f"{budget[0]}@{budget[1]:g}"


def _entries(card: dict[str, Any]) -> dict[Budget, dict[str, Any]]:
    return {(str(e["threat_model"]), float(e["eps"])): e for e in card.get("robustness") or []}


def _order(budget: Budget) -> tuple:
    """Preference among budgets: L∞ over L2, then the larger ε (max() picks the preferred)."""
    return (budget[0] == "Linf", budget[1])


def ranking_budget(cards: list[dict[str, Any]]) -> tuple[Budget | None, bool]:
    """(the budget the cards are ranked at, whether every card is AutoAttack-verified there)."""
    entries = [_entries(c) for c in cards]
    budgets = {b for e in entries for b in e}
    if not budgets:
        return None, False
    everyone = [b for b in budgets if all(e.get(b, {}).get("autoattack_verified") for e in entries)]
    if everyone:
        return max(everyone, key=_order), True
    anyone = [b for b in budgets if any(e.get(b, {}).get("autoattack_verified") for e in entries)]
    if anyone:
        return max(anyone, key=_order), False
    return max(budgets, key=_order), False


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _attacks_text(entry: dict[str, Any] | None) -> str:
    if not entry:
        return ""
    names = entry.get("attack_names") or entry.get("attacks") or []
    return ", ".join(names)


def _network_row(card: dict[str, Any], budget: Budget | None, budgets: list[Budget]) -> dict[str, Any]:
    net, loss, clean = card.get("network") or {}, card.get("loss") or {}, card.get("clean_accuracy") or {}
    entries = _entries(card)
    entry = entries.get(budget) if budget is not None else None
    code = card.get("code_version") or {}
    row: dict[str, Any] = {
        "dataset": net.get("dataset"),
        "model": net.get("model"),
        "loss": net.get("loss"),
        "loss_name": loss.get("name") or net.get("loss"),
        "seed": net.get("seed"),
        "kind": net.get("kind"),
        "effective_target": loss.get("effective_target"),
        "p_star": _p_star(loss),
        "clean_accuracy": _number(clean.get("test_split")),
        "n_test": clean.get("n_test"),
        "full_split": clean.get("full_split"),
        "clean_accuracy_attacked": _number(clean.get("attacked")),
        "n_attacked": clean.get("n_attacked"),
        "budget": budget_label(budget) if budget is not None else "",
        "robust_accuracy": _number((entry or {}).get("robust_accuracy")),
        "autoattack_verified": bool((entry or {}).get("autoattack_verified")),
        "attacks": _attacks_text(entry),
        "missing": "; ".join((entry or {}).get("missing") or []),
        "diagnostics_passed": (entry or {}).get("diagnostics_passed"),
        "reliable": (card.get("reliability") or {}).get("reliable"),
    }
    for b in budgets:
        e = entries.get(b) or {}
        row[budget_label(b)] = _number(e.get("robust_accuracy"))
        row[f"{budget_label(b)} verified"] = bool(e.get("autoattack_verified"))
        row[f"{budget_label(b)} attacks"] = _attacks_text(e)
    row["commit"] = code.get("commit")
    row["dirty"] = code.get("dirty")
    row["card"] = card.get("path")
    return row


def _rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Verified with every blocking diagnostic passed first, then verified, then robust accuracy, then clean
    accuracy (both descending; missing last), then name: a number the diagnostics doubt ranks after the
    ones they do not."""
    verified = frame["autoattack_verified"].astype(bool)
    passed = frame["diagnostics_passed"].eq(True) if "diagnostics_passed" in frame else False
    tier = (~verified).astype(int) * 2 + (~(verified & passed)).astype(int)  # 0 verified and passed, 1, 3
    key = frame.assign(
        _v=tier,
        _r=-frame["robust_accuracy"].fillna(-1.0),
        _c=-frame["clean_accuracy"].fillna(frame["clean_accuracy_attacked"]).fillna(-1.0),
    )
    by = ["_v", "_r", "_c", "loss"] + (["seed"] if "seed" in frame else [])
    out = key.sort_values(by, kind="stable").drop(columns=["_v", "_r", "_c"]).reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    return out


def _mean_sd(values: pd.Series) -> tuple[float, float]:
    values = values.dropna().astype(float)
    if values.empty:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan


def _loss_rows(networks: pd.DataFrame, budgets: list[Budget]) -> pd.DataFrame:
    rows = []
    for (dataset, model, loss), group in networks.groupby(["dataset", "model", "loss"], sort=False, dropna=False):
        robust, robust_sd = _mean_sd(group["robust_accuracy"])
        clean, clean_sd = _mean_sd(group["clean_accuracy"])
        verified = group["autoattack_verified"].astype(bool)
        row = {
            "dataset": dataset,
            "model": model,
            "loss": loss,
            "loss_name": group["loss_name"].iloc[0],
            "effective_target": group["effective_target"].iloc[0],
            "p_star": group["p_star"].iloc[0],
            "seeds": len(group),
            "clean_accuracy": clean,
            "clean_sd": clean_sd,
            "clean_accuracy_attacked": _mean_sd(group["clean_accuracy_attacked"])[0],
            "budget": group["budget"].iloc[0],
            "robust_accuracy": robust,
            "robust_sd": robust_sd,
            "autoattack_verified": bool(verified.all()),
            "verified_seeds": int(verified.sum()),
            "attacks": "; ".join(dict.fromkeys(a for a in group["attacks"] if a)),
            "missing": "; ".join(dict.fromkeys(m for m in group["missing"] if m)),
            "diagnostics_passed": bool(group["diagnostics_passed"].eq(True).all()),
            "reliable": bool(group["reliable"].eq(True).all()),
        }
        for b in budgets:
            row[budget_label(b)], row[f"{budget_label(b)} sd"] = _mean_sd(group[budget_label(b)])
            row[f"{budget_label(b)} verified"] = bool(group[f"{budget_label(b)} verified"].all())
        rows.append(row)
    frame = pd.DataFrame(rows)
    return _rank(frame) if len(frame) else frame


def _pct(mean: float, sd: float = math.nan) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    text = f"{100 * mean:.1f}"
    return text if sd is None or math.isnan(sd) else f"{text} ± {100 * sd:.1f}"


def _p_star(loss: dict[str, Any]) -> str:
    """p* as text: the value, "→ 1" for a loss that pursues certainty, "?" when it was not analyzed (no
    training loss, or the analysis failed)."""
    if not loss or loss.get("analysis_error"):
        return "?"
    value = loss.get("effective_target")
    return "→ 1" if value is None else f"{float(value):.3f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _budget_title(budget: Budget) -> str:
    return f"{budget[0]} ε = {budget[1]:g}" if budget[0] == "Linf" else f"L2 r = {budget[1]:g}"


def _section(
    dataset: str,
    networks: pd.DataFrame,
    losses: pd.DataFrame,
    budget: Budget | None,
    everyone: bool,
    budgets: list[Budget],
    cards: list[dict[str, Any]],
) -> list[str]:
    lines = [f"## {dataset}", ""]
    if budget is None:
        lines += ["No network has a robust accuracy at a budget above 0: ranked by clean accuracy.", ""]
    elif everyone:
        lines += [
            f"Ranked by AutoAttack-verified robust accuracy at {_budget_title(budget)}, the largest budget at "
            "which every network is AutoAttack-verified.",
            "",
        ]
    elif networks["autoattack_verified"].any():
        lines += [
            f"Ranked at {_budget_title(budget)}, the largest budget at which some networks are "
            "AutoAttack-verified; the networks not verified there rank below them by their worst case "
            "(marked †).",
            "",
        ]
    else:
        lines += [
            f"**No network is AutoAttack-verified at any budget**: ranked by the worst case over the attacks "
            f"that ran at {_budget_title(budget)} (marked †), an upper bound on robust accuracy.",
            "",
        ]
    lines += [
        "Accuracies in %, mean ± standard deviation over seeds; clean accuracy on the whole test split "
        "(or the test images the training run scored). p*: the effective target of the loss (→ 1: it "
        "pursues certainty; ?: not analyzed). Diagnostics: more_effort, unbounded and gradients at the "
        "ranking budget (the transfer diagnostic is judged across networks: diagnostics.csv and the report).",
        "",
    ]
    others = [b for b in budgets if b != budget]
    head = ["rank", "loss", "p*", "seeds", "clean"]
    if budget is not None:
        head += [f"robust, {_budget_title(budget)}", "AutoAttack", "attacks behind it", "diagnostics", "reliable"]
    head += [_budget_title(b) for b in others]
    rows = []
    for r in losses.itertuples():
        row = [r.rank, r.loss_name, r.p_star, r.seeds, _pct(r.clean_accuracy, r.clean_sd)]
        if budget is not None:
            mark = "" if r.autoattack_verified else " †"
            verified = "yes" if r.autoattack_verified else f"no ({r.verified_seeds} of {r.seeds} seeds)"
            row += [
                _pct(r.robust_accuracy, r.robust_sd) + mark,
                verified,
                r.attacks + (f" (missing: {r.missing})" if r.missing else ""),
                "pass" if r.diagnostics_passed else "not all passed",
                "yes" if r.reliable else "no",
            ]
        for b in others:
            label = budget_label(b)
            mark = "" if losses.at[r.Index, f"{label} verified"] else " †"
            row.append(_pct(losses.at[r.Index, label], losses.at[r.Index, f"{label} sd"]) + mark)
        rows.append(row)
    lines += ["### Per loss", ""] + _table(head, rows) + [""]

    head = ["rank", "loss", "seed", "clean", "clean (attacked images)"]
    if budget is not None:
        head += [f"robust, {_budget_title(budget)}", "AutoAttack", "diagnostics", "reliable"]
    head += ["commit", "card"]
    rows = []
    for r in networks.itertuples():
        row = [r.rank, r.loss_name, r.seed, _pct(r.clean_accuracy), _pct(r.clean_accuracy_attacked)]
        if budget is not None:
            row += [
                _pct(r.robust_accuracy) + ("" if r.autoattack_verified else " †"),
                "yes" if r.autoattack_verified else "no",
                "pass" if r.diagnostics_passed else "not all passed",
                "yes" if r.reliable else "no",
            ]
        commit = (str(r.commit)[:12] + ("+dirty" if r.dirty is True else "")) if isinstance(r.commit, str) else "–"
        rows.append(row + [commit, r.card])
    lines += ["### Per network", ""] + _table(head, rows) + [""]

    lines += ["### Attacks per budget", ""]
    for b in budgets:
        found = [_entries(c).get(b) for c in cards]
        found = [e for e in found if e]
        names = list(dict.fromkeys(n for e in found for n in (e.get("attack_names") or e.get("attacks") or [])))
        missing = list(dict.fromkeys(m for e in found for m in (e.get("missing") or [])))
        verified = sum(bool(e.get("autoattack_verified")) for e in found)
        status = (
            "AutoAttack-verified"
            if verified == len(found)
            else f"AutoAttack-verified on {verified} of {len(found)} networks"
            if verified
            else "not AutoAttack-verified"
        )
        text = f"- {_budget_title(b)}: {status}; worst case over {', '.join(names) or 'nothing'}"
        lines.append(text + (f"; missing {', '.join(missing)}" if missing else ""))
    lines.append("")
    return lines


def leaderboard(cards: list[dict[str, Any]]) -> Leaderboard:
    """The leaderboard of `cards` (as `read_cards` returns them)."""
    network_frames, loss_frames, chosen, text = [], [], {}, ["# Leaderboard", ""]
    if not cards:
        return Leaderboard(pd.DataFrame(), pd.DataFrame(), {}, "# Leaderboard\n\nNo card.json found.\n")
    datasets = list(dict.fromkeys(str((c.get("network") or {}).get("dataset")) for c in cards))
    for dataset in datasets:
        group = [c for c in cards if str((c.get("network") or {}).get("dataset")) == dataset]
        budget, everyone = ranking_budget(group)
        chosen[dataset] = (budget, everyone)
        budgets = sorted({b for c in group for b in _entries(c)}, key=lambda b: (b[0] != "Linf", b[0], b[1]))
        networks = _rank(pd.DataFrame([_network_row(c, budget, budgets) for c in group]))
        losses = _loss_rows(networks, budgets)
        network_frames.append(networks)
        loss_frames.append(losses)
        text += _section(dataset, networks, losses, budget, everyone, budgets, group)
    return Leaderboard(
        pd.concat(network_frames, ignore_index=True),
        pd.concat(loss_frames, ignore_index=True),
        chosen,
        "\n".join(text),
    )


def write_leaderboard(root: str | Path, *also: str | Path) -> Leaderboard | None:
    """Gather the cards under `root` and write leaderboard.csv and leaderboard.md into `root` (and into
    each folder of `also`), atomically; returns the leaderboard, or None when `root` holds no card."""
    cards = read_cards(root)
    if not cards:
        return None
    board = leaderboard(cards)
    for folder in (root, *also):
        Path(folder).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(folder) / CSV_FILE, board.networks.to_csv(index=False))
        atomic_write_text(Path(folder) / MARKDOWN_FILE, board.markdown)
    return board
