"""The report's tables, as pandas DataFrames computed from the results files (nothing hard-coded).

Statistics come from `robust_glo.robustness.summarize` (means, intervals over seeds and test images,
differences to the baseline, p-values adjusted for the comparisons shown); this module only selects,
orders and formats them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from robust_glo.losses.taylorglo import N_PARAMS
from robust_glo.reporting.inputs import ReportInputs
from robust_glo.robustness import EXPLANATIONS, summarize
from robust_glo.robustness.attacks import WORST_L2, display_name, spec_of_label
from robust_glo.robustness.bootstrap import HierarchicalBootstrap
from robust_glo.robustness.frontier import FrontierArms, frontier_margins, frontier_points
from robust_glo.robustness.statistics import CORRECTIONS, INTERVAL_BOOTSTRAP, floor_bound

CLEAN = "clean"
WORST = "worst"
CONFIDENCE = 0.95


# ------------------------------------------------------------------------------------------ numbers


def measured(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of networks that were evaluated: not the NaN placeholders of runs that diverged."""
    ok = results["accuracy"].notna()
    if "status" in results.columns:
        ok &= results["status"].astype(str) == "ok"
    return results[ok]


def not_measured(inputs: ReportInputs) -> list[tuple[str, int, str]]:
    """(loss, seed, status) of the networks without measurements (training diverged), from results.csv
    and training.csv."""
    found: dict[tuple[str, int], str] = {}
    res = inputs.results
    if "status" in res.columns:
        for r in res[res["status"].astype(str) != "ok"].itertuples():
            found[(str(r.loss), int(r.seed))] = str(r.status)
    t = inputs.training
    if t is not None and not t.empty and "status" in t.columns:
        for r in t[t["status"].astype(str) != "ok"].itertuples():
            found.setdefault((str(r.loss), int(r.seed)), str(r.status))
    return [(loss, seed, status) for (loss, seed), status in found.items()]


@dataclass(frozen=True)
class StatsSettings:
    """How a report tests: against which loss, at which level, corrected how, bootstrapped how much."""

    baseline: str
    alpha: float = 0.05
    correction: str = "holm"
    n_boot: int = 10_000
    boot_seed: int = 0

    @property
    def correction_name(self) -> str:
        return CORRECTIONS.get(self.correction, self.correction)


def summary_stats(inputs: ReportInputs, settings: StatsSettings) -> pd.DataFrame:
    """One row per loss x attack x eps (see `summarize`): mean, interval, difference to the baseline,
    raw and adjusted p. Networks that diverged have no measurements and are left out (the report lists
    them)."""
    results = measured(inputs.results).copy()
    results["eps"] = results["eps"].astype(float)
    results["accuracy"] = results["accuracy"].astype(float)
    outcomes = report_outcomes(inputs)
    return summarize(
        results,
        outcomes=outcomes,
        baseline=settings.baseline,
        confidence=CONFIDENCE,
        group_by=("attack", "eps"),
        correction=settings.correction,
        alpha=settings.alpha,
        n_boot=settings.n_boot,
        boot_seed=settings.boot_seed,
    )


def report_outcomes(inputs: ReportInputs) -> pd.DataFrame | None:
    """The per-image outcomes the report's statistics use: those of the networks that were measured (not
    the placeholders of diverged runs); None without outcomes.csv."""
    outcomes = inputs.outcomes
    if outcomes is None:
        return None
    results = measured(inputs.results)
    kept = set(zip(results["loss"].astype(str), results["seed"].astype(int)))
    return outcomes[[(str(loss), int(s)) in kept for loss, s in zip(outcomes["loss"], outcomes["seed"])]]


def interval_kind(summary: pd.DataFrame) -> str:
    """Plain words for the intervals of a summary: over seeds and images, over seeds, or a mix."""
    kinds = set(summary["interval"].dropna()) if "interval" in summary else set()
    if kinds == {INTERVAL_BOOTSTRAP}:
        return "95% bootstrap interval over seeds and test images"
    if INTERVAL_BOOTSTRAP in kinds:
        return "95% interval (bootstrap over seeds and test images where per-image outcomes exist, else t over seeds)"
    return "95% t interval over seeds (no per-image outcomes: test-image sampling error not included)"


def family(summary: pd.DataFrame) -> pd.DataFrame:
    """The primary family of comparisons with the baseline: clean accuracy and the per-input worst case
    per threat model and eps > 0, corrected together (per-attack cells form a secondary family, corrected
    separately; see `robust_glo.robustness.summarize`). Summaries without a `family` column: every row
    marked `compared`."""
    if "family" not in summary.columns:
        return summary[summary["compared"].astype(bool)]
    return summary[summary["family"] == "primary"]


def attack_order(results: pd.DataFrame) -> list[str]:
    """Attacks as they appear, without the "clean" and worst-case ("worst", "worst:l2") rows."""
    return [a for a in dict.fromkeys(results["attack"]) if a not in (CLEAN, WORST, WORST_L2)]


def attack_names(attacks: Sequence[str]) -> dict[str, str]:
    """Results-table attack labels -> their readable names (`display_name`: "PGD-20", "APGD-CE (cascade,
    ε ≥ 0.1)"), for headers, panel titles and prose; returns a dict. Labels whose names would coincide
    keep their spec, so that every name stays distinct."""
    names = {a: display_name(a) for a in dict.fromkeys(attacks)}
    taken = [n for n in names.values()]
    return {a: (n if taken.count(n) == 1 else a) for a, n in names.items()}


def attack_list(attacks: Sequence[str], *, schedule: bool = True) -> str:
    """ "FGSM, PGD-10, APGD-CE" for attack labels (readable names, in their order; `schedule=False`
    leaves out cascade and min_eps); "none" for no attack. Returns a string."""
    names = [display_name(a, schedule=schedule) for a in dict.fromkeys(attacks)]
    return ", ".join(dict.fromkeys(names)) or "none"


def clean_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Clean accuracy per loss: the "clean" rows, else the eps = 0 rows of the first attack."""
    clean = summary[summary["attack"] == CLEAN]
    if not clean.empty:
        return clean
    zero = summary[(summary["eps"] == 0.0) & (summary["attack"] != WORST)]
    return zero[zero["attack"] == zero["attack"].iloc[0]] if not zero.empty else zero


def half_width(row: Any) -> float:
    return (row["ci_high"] - row["ci_low"]) / 2.0


# ------------------------------------------------------------------------------------------ formats


def pct(value: float, digits: int = 1) -> str:
    """An accuracy in [0, 1] as a percentage string ("—" for NaN)."""
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}"


def fmt_p(p: float, at_floor: object = False) -> str:
    """A p-value: "0.028" from 0.001 up, "2.3e-09" below (small p-values are resolved, so they are shown),
    "≤1.0e-12" when `at_floor` (the data resolve p only down to that value) and below 1, "—" for NaN."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    text = f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"
    return f"≤{text}" if floor_bound(p, at_floor) else text


def fmt_eps(eps: float) -> str:
    """An eps for headers: "8/255" when it is a multiple of 1/255 that `g` would print long, else `g`."""
    text = f"{eps:g}"
    k = round(eps * 255)
    if len(text) > 6 and k > 0 and abs(eps * 255 - k) < 1e-6:
        return f"{k}/255"
    return text


def significant(p: float, alpha: float) -> bool:
    return p is not None and not (isinstance(p, float) and math.isnan(p)) and p < alpha


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell(row: Any) -> str:
    """ "85.3 [84.1, 86.4] ↑*" for a summary row: mean and 95% interval in %, `↑*` / `↓*` when the
    difference to the baseline is significant after the correction, `⚠` when a seed's evaluation is
    flagged unreliable."""
    text = (
        pct(row["mean"]) if _nan(row["ci_low"]) else f"{pct(row['mean'])} [{pct(row['ci_low'])}, {pct(row['ci_high'])}]"
    )
    if bool(row.get("significant", False)) and bool(row.get("compared", False)):  # within the row's family
        text += " ↑*" if row["diff"] > 0 else " ↓*"
    if "reliable" in row and not bool(row["reliable"]):
        text += " ⚠"
    return text


def diff_cell(row: Any) -> str:
    """ "+10.7 [+8.2, +13.1] p=0.004*": difference to the baseline in points with its interval and the
    p adjusted within its family (`*`: significant; "p≤1.0e-12" when the raw p is at its floor)."""
    if _nan(row["diff"]):
        return "—"
    text = f"{100 * row['diff']:+.1f}"
    if not _nan(row.get("diff_ci_low")):
        text += f" [{100 * row['diff_ci_low']:+.1f}, {100 * row['diff_ci_high']:+.1f}]"
    p = row.get("p_adjusted")
    if not _nan(p):
        text += f" p{fmt_p(p, True)}" if floor_bound(p, row.get("p_at_floor")) else f" p={fmt_p(p)}"
        if bool(row.get("significant", False)):
            text += "*"
    return text


def shown_columns(inputs: ReportInputs, summary: pd.DataFrame) -> list[tuple[str, str, float]]:
    """(header, attack, eps) of the columns of the summary tables: clean, then each attack at each eps > 0,
    then the per-sample worst case of each threat model (the comparisons of the primary family)."""
    columns = [("clean accuracy (%)", CLEAN, 0.0)]
    names = {WORST: "worst case", WORST_L2: "worst case L2", **attack_names(attack_order(inputs.results))}
    for attack in attack_order(inputs.results) + [WORST, WORST_L2]:
        rows = summary[(summary["attack"] == attack) & (summary["eps"] > 0)]
        for eps in sorted(rows["eps"].unique()):
            name = names.get(attack, attack)
            spec = spec_of_label(attack)
            word = "r" if attack == WORST_L2 or (spec is not None and spec.threat.value == "l2") else "ε"
            columns.append((f"{name} {word}={fmt_eps(eps)} (%)", attack, float(eps)))
    return columns


def _cells(inputs: ReportInputs, summary: pd.DataFrame, render, *, skip_baseline: bool = False) -> pd.DataFrame:
    losses = [s for s in inputs.losses if not (skip_baseline and s == summary["baseline"].iloc[0])]
    table = pd.DataFrame(index=[inputs.label(s) for s in losses])
    table.index.name = "loss"
    clean = clean_rows(summary).set_index("loss")
    for header, attack, eps in shown_columns(inputs, summary):
        at = (
            clean
            if attack == CLEAN
            else summary[(summary["attack"] == attack) & (summary["eps"] == eps)].set_index("loss")
        )
        table[header] = [render(at.loc[s]) if s in at.index else "—" for s in losses]
    return table.reset_index()


def headline_table(inputs: ReportInputs, summary: pd.DataFrame) -> pd.DataFrame:
    """Loss x (clean, each attack at each eps > 0, worst case): mean [95% interval] in %, marks."""
    return _cells(inputs, summary, cell)


def difference_table(inputs: ReportInputs, summary: pd.DataFrame) -> pd.DataFrame:
    """Loss x the same columns: difference to the baseline in points [95% interval], adjusted p."""
    return _cells(inputs, summary, diff_cell, skip_baseline=True)


def detail_table(inputs: ReportInputs, summary: pd.DataFrame) -> pd.DataFrame:
    """Every summary row, with the numbers in %, for readers who want them all (an attack's eps = 0 row
    repeats the clean accuracy and is left out). `family`: primary (clean and worst case), secondary
    (per-attack) or "—" (in no family: the baseline, or an attack whose outcomes are the worst case's);
    p adjusted within its family; "≤" where the raw p is at its floor."""
    rows = []
    names = {WORST: "worst case", WORST_L2: "worst case L2", **attack_names(attack_order(summary))}
    for r in summary.to_dict("records"):
        if r["attack"] != CLEAN and r["eps"] == 0.0 and (summary["attack"] == CLEAN).any():
            continue
        base = r["loss"] == r["baseline"]
        floor = r.get("p_at_floor")  # fmt_p shows "≤" only where floor_bound holds
        rows.append(
            {
                "attack": names.get(r["attack"], r["attack"]),
                "eps": fmt_eps(r["eps"]),
                "loss": inputs.label(r["loss"]),
                "seeds": int(r["n_seeds"]),
                "images": "—" if _nan(r["n_images"]) else int(r["n_images"]),
                "mean (%)": pct(r["mean"], 2),
                "95% interval (%)": "—" if _nan(r["ci_low"]) else f"[{pct(r['ci_low'], 2)}, {pct(r['ci_high'], 2)}]",
                f"Δ vs {inputs.label(r['baseline'])} (pts)": "—"
                if base or _nan(r["diff"])
                else f"{100 * r['diff']:+.2f}",
                "Δ 95% interval (pts)": "—"
                if base or _nan(r["diff_ci_low"])
                else f"[{100 * r['diff_ci_low']:+.2f}, {100 * r['diff_ci_high']:+.2f}]",
                "p (raw)": "—" if base else f"{fmt_p(r['p_value'], floor)} ({r['p_test'] or '—'})",
                "family": "—" if _nan(r.get("family")) or not r.get("family") else str(r["family"]),
                "p (adjusted)": fmt_p(r["p_adjusted"], floor),
                "significant": "yes" if bool(r["significant"]) else "",
                "p percentile": fmt_p(r.get("p_percentile", math.nan)),
                "p Welch (seeds)": fmt_p(r["p_welch"]),
                "p paired (images)": fmt_p(r["p_images"]),
                "reliable": "yes" if bool(r.get("reliable", True)) else "NO",
            }
        )
    return pd.DataFrame(rows)


def per_seed_table(inputs: ReportInputs) -> pd.DataFrame:
    """Clean accuracy of every trained network (loss x seed), in %."""
    res = measured(inputs.results)
    clean = res[res["attack"] == CLEAN]
    if clean.empty:
        clean = res[(res["eps"].astype(float) == 0.0) & (res["attack"] != WORST)].drop_duplicates(["loss", "seed"])
    wide = clean.pivot_table(index="loss", columns="seed", values="accuracy", aggfunc="first", sort=False)
    wide = wide.reindex([s for s in inputs.losses if s in wide.index])
    out = pd.DataFrame({"loss": [inputs.label(s) for s in wide.index]})
    for seed in wide.columns:
        out[f"seed {seed}"] = [pct(v, 2) for v in wide[seed]]
    return out


def training_table(inputs: ReportInputs) -> pd.DataFrame:
    """Every training run (from training.csv): status, steps, validation and test accuracy, wall time."""
    t = inputs.training
    if t is None or t.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "loss": [inputs.label(s) for s in t["loss"]],
            "seed": t["seed"],
            "status": t["status"],
            "steps": t["steps"],
            "val. accuracy (%)": [pct(v, 2) for v in t["val_accuracy"]],
            "test accuracy (%)": [pct(v, 2) for v in t["test_accuracy"]],
            "test images": t.get("n_test", pd.Series(["—"] * len(t))),
            "seconds": [_num(v, 1) for v in t["seconds"]],
        }
    )


def evolution_generations(history: pd.DataFrame) -> pd.DataFrame:
    """Per generation: candidates, trained/rejected/diverged/failed counts, share rejected, best and median
    fitness of the trained candidates, best so far, best validation accuracy (numbers, not strings)."""
    h = history.copy()
    h["status"] = h["status"].astype(str)
    rows = []
    best_so_far = math.inf
    for gen, g in h.groupby("generation", sort=True):
        trained = g[g["status"] == "trained"]
        fit = trained["fitness"].astype(float)
        best = float(fit.min()) if len(fit) else math.nan
        if not math.isnan(best):
            best_so_far = min(best_so_far, best)
        val = trained["val_accuracy"].astype(float) if "val_accuracy" in trained else pd.Series(dtype=float)
        rows.append(
            {
                "generation": int(gen),
                "candidates": len(g),
                "trained": len(trained),
                "rejected": int((g["status"] == "rejected").sum()),
                "diverged": int((g["status"] == "diverged").sum()),
                "failed": int((g["status"] == "failed").sum()),
                "pruned": int((g["status"] == "pruned").sum()),
                "collapsed": int((g["status"] == "collapsed").sum()),
                # training steps the generation spent (histories from before rungs were recorded: unknown)
                "steps": float(g["steps"].fillna(0).astype(float).sum()) if "steps" in g else math.nan,
                "share_rejected": float((g["status"] == "rejected").mean()),
                "best_fitness": best,
                "median_fitness": float(fit.median()) if len(fit) else math.nan,
                "best_so_far": best_so_far if best_so_far < math.inf else math.nan,
                "best_val_accuracy": float(val.max()) if len(val) else math.nan,
                "seconds": float(g["seconds"].astype(float).sum()) if "seconds" in g else math.nan,
            }
        )
    out = pd.DataFrame(rows)
    out["steps_so_far"] = out["steps"].cumsum()
    return out


def _steps(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{int(value):,}"


def evolution_table(history: pd.DataFrame) -> pd.DataFrame:
    gens = evolution_generations(history)
    out = pd.DataFrame(
        {
            "generation": gens["generation"],
            "candidates": gens["candidates"],
            "trained": gens["trained"],
            "rejected by invariant": [f"{r} ({s:.0%})" for r, s in zip(gens["rejected"], gens["share_rejected"])],
            "diverged": gens["diverged"],
            "failed": gens["failed"],
            "pruned": gens["pruned"],
            "collapsed": gens["collapsed"],
            "training steps": [_steps(v) for v in gens["steps"]],
            "best fitness": [_num(v) for v in gens["best_fitness"]],
            "median fitness": [_num(v) for v in gens["median_fitness"]],
            "best so far": [_num(v) for v in gens["best_so_far"]],
            "best val. accuracy (%)": [pct(v, 2) for v in gens["best_val_accuracy"]],
        }
    )
    return out


def reevaluation_table(reevaluation: pd.DataFrame) -> pd.DataFrame:
    """The top candidates of the search re-trained on fresh seeds: search fitness, mean re-evaluated
    fitness, and which one was chosen (the lowest mean, as the evolution engine chooses)."""
    r = reevaluation[reevaluation["status"].astype(str) != "failed"]
    rows = []
    for rank, g in r.groupby("rank", sort=True):
        first = g.iloc[0]
        theta = ", ".join(f"{float(first[f'theta{k}']):.2f}" for k in range(N_PARAMS))
        rows.append(
            {
                "rank in search": int(rank),
                "generation": int(first["generation"]),
                "candidate": int(first["index"]),
                "θ": f"[{theta}]",
                "search fitness": _num(float(first["search_fitness"])),
                "re-evaluated fitness (mean)": float(g["fitness"].astype(float).mean()),
                "seeds": len(g),
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    best = out["re-evaluated fitness (mean)"].idxmin()
    out["chosen"] = ["yes" if i == best else "" for i in out.index]
    out["re-evaluated fitness (mean)"] = [_num(v) for v in out["re-evaluated fitness (mean)"]]
    return out


def alpha_text(alpha: float | None, digits: int = 4) -> str:
    """A label-smoothing equivalent α(p*) = (1 - p*) K / (K - 1): "—" for none; above 1 (p* below the
    uniform 1/K, which no label smoothing reaches: its target ranges from 1 down to 1/K) it says so."""
    if alpha is None or (isinstance(alpha, float) and math.isnan(alpha)):
        return "—"
    text = f"{alpha:.{digits}f}"
    return f"{text} (p* below 1/K: no label smoothing trains toward it)" if alpha > 1 + 1e-9 else text


def _num(value: float, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def analysis_table(inputs: ReportInputs) -> pd.DataFrame:
    """Effective target p*, label-smoothing equivalent, initial target-logit movement, invariant."""
    rows = []
    for a in inputs.analysis:
        spec = str(a.get("spec"))
        p_star = a.get("effective_target")
        alpha = a.get("label_smoothing_equivalent")
        inv = a.get("invariant") or {}
        rows.append(
            {
                "loss": inputs.label(spec),
                "classes": a.get("classes"),
                "effective target p*": "none (pursues p → 1)" if p_star is None else f"{p_star:.4f}",
                "label-smoothing equivalent α": alpha_text(alpha),
                "target logit rises at init": "yes" if a.get("target_logit_rises_at_init") else "NO",
                "invariant (paper / exact)": (
                    "—" if not inv else f"{_pass(inv.get('paper'))} / {_pass(inv.get('exact'))}"
                ),
            }
        )
    return pd.DataFrame(rows)


def _pass(value: Any) -> str:
    return "—" if value is None else ("pass" if value else "fail")


def flags_summary(inputs: ReportInputs) -> pd.DataFrame:
    """One row per reliability check: how many evaluations passed, failed, or could not run it (and
    why), which (loss, seed) failed, and what the check means in plain language."""
    columns = ["check", "passed", "failed", "not run", "failed in", "why not run", "what it means"]
    flags = inputs.flags
    if flags is None or flags.empty or "check" not in flags.columns:
        return pd.DataFrame(columns=columns)
    rows = []
    for check, g in flags.groupby("check", sort=False):
        status = g["status"].astype(str)
        failed = g[status == "fail"]
        where = ", ".join(
            f"{inputs.label(r['loss'])} seed {r['seed']}"
            for r in failed.to_dict("records")
            if "loss" in r and "seed" in r
        )
        reasons = (
            sorted({str(d) for d in g.loc[status == "not run", "detail"] if str(d).strip()}) if "detail" in g else []
        )
        # The code's words for a check it knows (a stored text may predate a rule's change); the stored
        # text for a check this version does not know.
        explanation = EXPLANATIONS.get(str(check)) or (
            str(g["explanation"].dropna().iloc[0]) if "explanation" in g and g["explanation"].notna().any() else ""
        )
        rows.append(
            {
                "check": check,
                "passed": int((status == "pass").sum()),
                "failed": int((status == "fail").sum()),
                "not run": int((status == "not run").sum()),
                "failed in": where or "—",
                "why not run": "; ".join(reasons) or "—",
                "what it means": explanation,
            }
        )
    return pd.DataFrame(rows, columns=columns)


def flag_failures(inputs: ReportInputs) -> pd.DataFrame:
    """The failed checks with their details (empty when every evaluation is reliable)."""
    flags = inputs.flags
    if flags is None or flags.empty or "status" not in flags.columns:
        return pd.DataFrame(columns=["loss", "seed", "check", "detail"])
    failed = flags[flags["status"].astype(str) == "fail"]
    return pd.DataFrame(
        {
            "loss": [inputs.label(s) for s in failed.get("loss", [])],
            "seed": list(failed.get("seed", [])),
            "check": list(failed["check"]),
            "detail": list(failed.get("detail", [""] * len(failed))),
        }
    )


def unreliable_evaluations(inputs: ReportInputs) -> list[tuple[str, int]]:
    """(loss, seed) pairs of evaluated networks whose results carry reliable == False."""
    res = measured(inputs.results)
    if "reliable" not in res.columns:
        return []
    bad = res[~res["reliable"].astype(bool)][["loss", "seed"]].drop_duplicates()
    return [(str(r.loss), int(r.seed)) for r in bad.itertuples()]


PIECE_SECONDS = "compute in its pieces (s)"


def stages_table(stages: dict[str, Any] | None, piece_seconds: dict[str, float] | None = None) -> pd.DataFrame:
    """Stage wall times: the last invocation and the total over every invocation, with piece counts, and
    (`piece_seconds`, by stage) the seconds its results took to compute, summed over the pieces themselves:
    unlike wall times, this counts work done by an invocation that was killed before it could record its
    time, and counts parallel pieces once each."""
    piece_seconds = piece_seconds or {}
    if not stages or not stages.get("stages"):
        return pd.DataFrame(columns=["stage", "wall time, last run (s)", "wall time, all runs (s)", "pieces"])
    rows = []
    for name, s in stages["stages"].items():
        pieces = s.get("pieces", {})
        row = {
            "stage": name,
            "status": s.get("status", ""),
            "wall time, last run (s)": _secs(s.get("last_seconds")),
            "wall time, all runs (s)": _secs(s.get("total_seconds")),
        }
        if piece_seconds:
            row[PIECE_SECONDS] = _secs(piece_seconds.get(name))
        rows.append(row | {"pieces": ", ".join(f"{k} {v}" for k, v in pieces.items() if v) or "—"})
    total_last = sum(float(s.get("last_seconds") or 0) for s in stages["stages"].values())
    total_all = sum(float(s.get("total_seconds") or 0) for s in stages["stages"].values())
    total = {
        "stage": "total",
        "status": "",
        "wall time, last run (s)": _secs(total_last),
        "wall time, all runs (s)": _secs(total_all),
    }
    if piece_seconds:
        total[PIECE_SECONDS] = _secs(sum(piece_seconds.values()))
    rows.append(total | {"pieces": ""})
    return pd.DataFrame(rows)


def piece_seconds(inputs: ReportInputs) -> dict[str, float]:
    """Seconds each stage's pieces took, summed from the results themselves: candidate and re-evaluation
    trainings (evolve), trained networks (train), attack evaluations (attack)."""
    out: dict[str, float] = {}
    evolve = [
        frame["seconds"].sum()
        for e in inputs.evolutions
        for frame in (e.history, e.reevaluation)
        if frame is not None and "seconds" in frame
    ]
    if evolve:
        out["evolve"] = float(sum(evolve))
    if inputs.training is not None and "seconds" in inputs.training:
        out["train"] = float(inputs.training["seconds"].fillna(0).sum())
    if "seconds" in inputs.results:
        out["attack"] = float(inputs.results["seconds"].fillna(0).sum())
    return out


def invocations_table(invocations: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per `benchmark` invocation: when, which suite and stages, how it ended. One that never
    recorded an end while a later one ran was killed (the last one may still be running)."""
    last = len(invocations) - 1
    return pd.DataFrame(
        [
            {
                "started": inv.get("started") or "—",
                "finished": inv.get("finished") or "—",
                "status": "killed (no end recorded)"
                if inv.get("status") == "running" and i < last
                else inv.get("status") or "—",
                "suite": inv.get("suite") or "—",
                "stages": ", ".join(inv.get("stages") or []) or "—",
                "backend": inv.get("backend") or "—",
            }
            for i, inv in enumerate(invocations)
        ]
    )


def _secs(value: Any) -> str:
    if value is None:
        return "—"
    v = float(value)
    return f"{v:.1f}" if v < 600 else f"{v:.0f} ({v / 60:.1f} min)"


def versions_table(environment: dict[str, Any] | None) -> pd.DataFrame:
    versions = (environment or {}).get("versions") or {}
    return pd.DataFrame({"package": list(versions), "version": [v or "not installed" for v in versions.values()]})


def hardware_table(environment: dict[str, Any] | None) -> pd.DataFrame:
    hw = (environment or {}).get("hardware") or {}
    return pd.DataFrame({"item": list(hw), "value": [str(v) for v in hw.values()]})


def seeds_list(inputs: ReportInputs) -> list[int]:
    return sorted(int(s) for s in np.unique(inputs.results["seed"]))


# ------------------------------------------------------------------------------------------ the search


THETAS = [f"theta{k}" for k in range(N_PARAMS)]


def trained_candidates(history: pd.DataFrame) -> pd.DataFrame:
    """The candidates trained to the full budget (status "trained"): the only ones whose fitness is a
    fitness (the others carry rank bands above 1, docs/method.md), in the order they were evaluated
    (search, generation, index), with `order` (0, 1, ... within each search) and `best_so_far` (the
    running minimum of the search's fitness) added. Returns a DataFrame."""
    h = history.copy()
    if "search" not in h.columns:
        h["search"] = 0
    h = h.sort_values(["search", "generation", "index"], kind="stable").reset_index(drop=True)
    h["order"] = h.groupby("search").cumcount()
    trained = h[h["status"].astype(str) == "trained"].copy()
    trained["fitness"] = trained["fitness"].astype(float)
    trained["best_so_far"] = trained.groupby("search")["fitness"].cummin()
    return trained.reset_index(drop=True)


def parameter_importance(history: pd.DataFrame) -> pd.DataFrame:
    """How strongly each TaylorGLO parameter goes with fitness among the trained candidates: Spearman's rank
    correlation of theta_k with fitness (`scipy.stats.spearmanr`), its two-sided p and |rho|, sorted by
    |rho| (largest first). rho > 0: larger theta_k, worse (higher) fitness. NaN where the parameter or the
    fitness does not vary, or fewer than 3 candidates were trained. Columns: parameter, rho, abs_rho, p, n."""
    from scipy import stats

    trained = trained_candidates(history)
    rows = []
    for name in THETAS:
        if name not in trained.columns:
            continue
        x = trained[name].astype(float).to_numpy()
        y = trained["fitness"].to_numpy()
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
            rho, p = math.nan, math.nan
        else:
            result = stats.spearmanr(x, y)
            rho, p = float(result.statistic), float(result.pvalue)
        rows.append({"parameter": name, "rho": rho, "abs_rho": abs(rho), "p": p, "n": int(len(x))})
    out = pd.DataFrame(rows, columns=["parameter", "rho", "abs_rho", "p", "n"])
    return out.sort_values("abs_rho", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def importance_table(importance: pd.DataFrame) -> pd.DataFrame:
    """`parameter_importance` formatted: θ_k, ρ, |ρ|, p, candidates."""
    return pd.DataFrame(
        {
            "parameter": [f"θ{name.removeprefix('theta')}" for name in importance["parameter"]],
            "Spearman ρ with fitness": [_signed(v) for v in importance["rho"]],
            "|ρ|": [_num(v, 2) for v in importance["abs_rho"]],
            "p (uncorrected)": [fmt_p(v) for v in importance["p"]],
            "trained candidates": importance["n"],
        }
    )


def _signed(value: float) -> str:
    return "—" if _nan(value) else f"{value:+.2f}"


def search_generations_table(evolution: Any) -> pd.DataFrame:
    """One row per search of an evolution with several searches (`EvolutionInputs.searches`): its seed,
    generations, candidates by status, training steps, best fitness in the search and compute seconds."""
    rows = []
    for s in evolution.searches:
        gens = evolution_generations(s.history)
        seed = (s.config or {}).get("seed", (s.best_loss or {}).get("seed"))
        rows.append(
            {
                "search": s.index,
                "seed": "—" if seed is None else seed,
                "generations": len(gens),
                "candidates": int(gens["candidates"].sum()),
                "trained": int(gens["trained"].sum()),
                "rejected": int(gens["rejected"].sum()),
                "pruned": int(gens["pruned"].sum()),
                "collapsed": int(gens["collapsed"].sum()),
                "diverged or failed": int(gens["diverged"].sum() + gens["failed"].sum()),
                "training steps": _steps(float(gens["steps"].sum())),
                "best fitness in the search": _num(float(gens["best_fitness"].min())),
                "seconds": _num(float(gens["seconds"].sum()), 1),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class SharedSampling:
    """How long two evolutions' searches of the same CMA-ES seed sampled the very same candidates: `same`
    generations of `generations` had identical θs (`first_apart`: the first that did not, None if none);
    `same_choice`: both chose the same θ as their best loss."""

    search: int
    seed: Any
    same: int
    generations: int
    first_apart: int | None
    same_choice: bool
    chosen_generation: int | None = None  # where this search's best loss was sampled (best_loss.json)

    @property
    def chosen_shared(self) -> bool:
        """Whether the best loss was sampled in a generation both evolutions sampled alike."""
        g = self.chosen_generation
        return g is not None and (self.first_apart is None or g < self.first_apart)


def shared_sampling(a: Any, b: Any) -> list[SharedSampling]:
    """Per search index that two evolutions (`EvolutionInputs`) both ran with the same seed: how many of
    their generations sampled identical θs `(popsize, 8)`. Both start from the same CMA-ES state, so a
    generation can repeat only if the fitness of each had put every earlier generation's candidates in the
    same order where CMA-ES looks (its best μ): the two objectives did not steer the search apart."""
    out = []
    theirs = {s.index: s for s in b.searches}
    for mine in a.searches:
        other = theirs.get(mine.index)
        seed = (mine.config or {}).get("seed")
        if other is None or seed is None or seed != (other.config or {}).get("seed"):
            continue
        gens = sorted(set(mine.history["generation"]) & set(other.history["generation"]))
        flags = []
        for g in gens:
            x = mine.history[mine.history["generation"] == g].sort_values("index")[THETAS].to_numpy(float)
            y = other.history[other.history["generation"] == g].sort_values("index")[THETAS].to_numpy(float)
            flags.append(x.shape == y.shape and bool(np.allclose(x, y, equal_nan=True)))
        apart = next((g for g, same in zip(gens, flags) if not same), None)
        ta, tb = (mine.best_loss or {}).get("theta"), (other.best_loss or {}).get("theta")
        choice = ta is not None and tb is not None and bool(np.allclose(ta, tb))
        found = ((mine.best_loss or {}).get("search") or {}).get("generation")
        chosen = int(found) if isinstance(found, (int, float)) and not isinstance(found, bool) else None
        out.append(SharedSampling(mine.index, seed, sum(flags), len(gens), apart, choice, chosen))
    return out


def met_clean_floor(fitness: float, objective: float) -> bool:
    """Whether a candidate under the clean-accuracy constraint reached the clean floor, from its rank key
    `fitness` and its stated `objective`: the key of one that did is 0.5 × objective
    (`robust_glo.evolution.runner.engine.constrained_fitness`), of one that missed 0.5 + its shortfall."""
    return abs(float(fitness) - 0.5 * float(objective)) < 1e-9


def constraint_share(history: pd.DataFrame) -> tuple[int, int] | None:
    """(met, trained): of an evolution's candidates trained to the end under a clean-accuracy constraint
    (history.csv or rungs.csv with an `objective` column), how many reached the clean floor
    (`met_clean_floor`); None without the constraint."""
    if "objective" not in history or history["objective"].isna().all():
        return None
    trained = history[(history["status"] == "trained") & history["objective"].notna()]
    return int(sum(met_clean_floor(f, o) for f, o in zip(trained["fitness"], trained["objective"]))), len(trained)


def constraint_record(best_loss: dict[str, Any] | None) -> tuple[float, int, int] | None:
    """(mean objective, re-evaluation seeds that met the clean-accuracy constraint, seeds) of a search's
    best_loss.json, or None where it ran without the constraint (no `clean_margin`) or records no
    objective (a seed met the constraint: `met_clean_floor`)."""
    if not best_loss or best_loss.get("clean_margin") is None:
        return None
    runs = [
        r
        for r in best_loss.get("reevaluations") or []
        if isinstance(r, dict) and r.get("objective") is not None and r.get("fitness") is not None
    ]
    if not runs:
        return None
    met = sum(met_clean_floor(r["fitness"], r["objective"]) for r in runs)
    return sum(float(r["objective"]) for r in runs) / len(runs), met, len(runs)


def searches_table(frame: pd.DataFrame, best_losses: dict[int, dict[str, Any] | None] | None = None) -> pd.DataFrame:
    """searches.csv formatted: one row per search with its seed, the re-evaluated fitness of its best loss
    ± its sd over the re-evaluation seeds, validation and robust accuracy, p* and the label-smoothing alpha
    it corresponds to, its θ, and whether it was chosen (a search that found no usable loss says so). With
    `best_losses` (search index -> its best_loss.json) of searches run under a clean-accuracy constraint,
    also the mean objective and on how many re-evaluation seeds the constraint was met."""
    constrained = {i: c for i, b in (best_losses or {}).items() if (c := constraint_record(b)) is not None}
    rows = []
    for r in frame.to_dict("records"):
        usable = truthy(r.get("usable", True))
        fit, sd = r.get("fitness"), r.get("fitness_std")
        theta = [r.get(name) for name in THETAS]
        rows.append(
            {
                "search": int(r["search"]),
                "seed": "—" if _nan(r.get("seed")) else int(r["seed"]),
                "fitness ± sd": "no usable loss"
                if not usable or _nan(fit)
                else (f"{fit:.4f}" + ("" if _nan(sd) else f" ± {float(sd):.4f}")),
                "val. accuracy (%)": pct(_float(r.get("val_accuracy")), 2),
                "robust accuracy (%)": pct(_float(r.get("robust_accuracy")), 2),
                "p*": _num(_float(r.get("p_star"))),
                "α equivalent": alpha_text(_float(r.get("alpha_equivalent"))),
                "θ": "—"
                if not usable or any(_nan(_float(t)) for t in theta)
                else "[" + ", ".join(f"{float(t):.2f}" for t in theta) + "]",
                "chosen": "yes" if truthy(r.get("chosen", False)) else "",
            }
        )
        if constrained:
            record = constrained.get(int(r["search"]))
            rows[-1]["objective"] = "—" if record is None else f"{record[0]:.4f}"
            rows[-1]["clean constraint"] = "—" if record is None else f"met on {record[1]} of {record[2]} seeds"
    return pd.DataFrame(rows)


def _float(value: Any) -> float:
    try:
        return math.nan if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return math.nan


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value) and not _nan(value)


def label_smoothing_equivalents(inputs: ReportInputs) -> dict[str, tuple[float | None, float | None]]:
    """Loss spec -> (p*, label-smoothing alpha equivalent) from the analysis results (analysis.json:
    `effective_target`, `label_smoothing_equivalent`; None where a loss has none)."""
    out = {}
    for a in inputs.analysis:
        p_star, alpha = a.get("effective_target"), a.get("label_smoothing_equivalent")
        out[str(a.get("spec"))] = (
            None if p_star is None else float(p_star),
            None if alpha is None else float(alpha),
        )
    return out


# ------------------------------------------------------------------------------------------ the frontier

FRONTIER_RESULTS = {
    "above": "above",
    "below": "below",
    "under": "under the line only",
    "on": "not distinguishable",
    "none": "not placed",
}


def frontier_result(row: Any) -> str:
    """The one-word result of a `frontier_margins` row: "above" (beats label smoothing: interval above zero,
    corrected p below alpha), "below" (the same on the other side, with an arm that beats it on both axes),
    "under the line only" (significantly under the envelope, but no measured arm beats it on both axes),
    "not placed" (its clean accuracy is below every label-smoothing arm's, or the replicates could not place
    it), "not distinguishable" from the frontier otherwise (no evidence either way)."""
    if bool(row["beats"]):
        return FRONTIER_RESULTS["above"]
    if bool(row["below"]):
        return FRONTIER_RESULTS["below"]
    if bool(row.get("under", False)):
        return FRONTIER_RESULTS["under"]
    if row["position"] == "below-range" or _nan(row["p_value"]):
        return FRONTIER_RESULTS["none"]
    return FRONTIER_RESULTS["on"]


def margin_cell(row: Any) -> str:
    """ "+5.1 [+1.2, +9.0]": a frontier margin in points with its interval ("—" where it is not placed)."""
    if _nan(row["margin"]):
        return "—"
    text = f"{100 * row['margin']:+.1f}"
    if not _nan(row["margin_ci_low"]):
        text += f" [{100 * row['margin_ci_low']:+.1f}, {100 * row['margin_ci_high']:+.1f}]"
    return text


def frontier_table(
    inputs: ReportInputs, margins: pd.DataFrame, budget_names: dict[tuple[str, float], str]
) -> pd.DataFrame:
    """One row per loss and worst-case budget of `frontier_margins`' output: clean and robust accuracy, the
    frontier at the loss's clean accuracy, the margin with its interval, the corrected p, where the loss's
    clean accuracy lies (inside / above-range / below-range of the label-smoothing arms'), the result,
    and the loss's p* and label-smoothing alpha equivalent from the analysis."""
    equivalents = label_smoothing_equivalents(inputs)
    rows = []
    for r in margins.to_dict("records"):
        analysed = str(r["loss"]) in equivalents
        p_star, alpha = equivalents.get(str(r["loss"]), (None, None))
        rows.append(
            {
                "budget": budget_names.get((str(r["attack"]), float(r["eps"])), f"{r['attack']} {r['eps']:g}"),
                "loss": inputs.label(str(r["loss"])),
                "clean (%)": pct(r["clean"]),
                "robust (%)": pct(r["robust"]),
                "frontier at its clean (%)": pct(r["frontier"]),
                "margin (pts) [95% interval]": margin_cell(r),
                "p (corrected)": fmt_p(r["p_adjusted"]),
                "to the arms' line (pts)": "—" if _nan(r.get("margin_arms")) else f"{100 * r['margin_arms']:+.1f}",
                "position": r["position"],
                "result": frontier_result(r),
                "p*": ("none" if analysed else "—") if p_star is None else f"{p_star:.3f}",
                "α(p*)": ("none" if analysed else "—") if alpha is None else f"{alpha:.3f}",
            }
        )
    return pd.DataFrame(rows)


@dataclass
class FrontierStudy:
    """The label-smoothing frontier of a report: the worst-case `budgets` (attack label, eps) it is drawn
    at, the label-smoothing arms' points per budget (`frontier_points`, with the summary's 95% intervals
    as clean_low/high and robust_low/high), and every other loss's `margins` (`frontier_margins`' output;
    None without per-image outcomes, which the bootstrap needs)."""

    smoothing: dict[str, float]  # loss spec -> alpha
    budgets: list[tuple[str, float]]
    points: dict[tuple[str, float], pd.DataFrame]
    margins: pd.DataFrame | None


def worst_budgets(summary: pd.DataFrame) -> list[tuple[str, float]]:
    """(attack label, eps) of every per-sample worst case at eps > 0 in `summary`: L-infinity ("worst")
    first, then L2 ("worst:l2"), each by eps."""
    out = []
    for label in (WORST, WORST_L2):
        rows = summary[(summary["attack"] == label) & (summary["eps"].astype(float) > 0)]
        out += [(label, float(e)) for e in sorted(rows["eps"].astype(float).unique())]
    return out


def frontier_bootstrap(inputs: ReportInputs, settings: StatsSettings, extra: Sequence[str] = ()):
    """The seeds-and-images bootstrap of the report's statistics (`summarize` builds the same one, with the
    same outcomes, replicates, seed and confidence), over the clean and worst-case rows (and the attacks
    `extra`) only: a row's
    replicates depend only on its own outcomes, its image set and its seed list, so leaving the other
    attacks out changes no number and saves their time. None without outcomes."""

    outcomes = report_outcomes(inputs)
    if outcomes is None or outcomes.empty:
        return None
    kept = outcomes[outcomes["attack"].astype(str).isin([CLEAN, WORST, WORST_L2, *extra])]
    if kept.empty:
        return None
    return HierarchicalBootstrap(kept, n_boot=settings.n_boot, seed=settings.boot_seed, confidence=CONFIDENCE)


def frontier_study(inputs: ReportInputs, settings: StatsSettings, summary: pd.DataFrame) -> FrontierStudy | None:
    """The label-smoothing frontier of the report's measured losses, or None when the study has fewer than
    two label-smoothing arms (`ce` counts as alpha 0) or no worst-case budget."""

    losses = [s for s in inputs.losses if s in set(summary["loss"])]
    arms = FrontierArms.split(losses)
    budgets = worst_budgets(summary)
    if len(arms.smoothing) < 2 or not budgets:
        return None
    boot = frontier_bootstrap(inputs, settings)
    if boot is None:
        return FrontierStudy(arms.smoothing, budgets, {}, None)
    clean = clean_rows(summary).set_index("loss")
    points = {}
    for attack, eps in budgets:
        frame = frontier_points(boot, arms, attack, eps)
        if frame.empty:
            continue
        robust = summary[(summary["attack"] == attack) & (summary["eps"] == eps)].set_index("loss")
        for column, source in (("clean", clean), ("robust", robust)):
            frame[f"{column}_low"] = [source.loc[s, "ci_low"] if s in source.index else math.nan for s in frame["loss"]]
            frame[f"{column}_high"] = [
                source.loc[s, "ci_high"] if s in source.index else math.nan for s in frame["loss"]
            ]
        points[attack, eps] = frame
    margins = frontier_margins(boot, losses, budgets, correction=settings.correction, alpha=settings.alpha)
    return FrontierStudy(arms.smoothing, budgets, points, margins)
