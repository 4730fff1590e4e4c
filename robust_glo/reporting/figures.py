"""The report's figures, with seaborn on matplotlib `Figure`s (headless: no pyplot, no display).

Each function returns a `Figure`; `save_png` writes it. Everything plotted comes from the tables of
`robust_glo.reporting.tables`, computed from the results files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from robust_glo.reporting.tables import CLEAN, WORST, attack_names, attack_order, evolution_generations, fmt_eps
from robust_glo.robustness.attacks import WORST_L2, spec_of_label

_RC = {"axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9}
DPI = 110
PANEL_COLUMNS = 4  # panels per row of the per-attack figures; more attacks wrap onto further rows
# seaborn's colour-blind-safe palette (10 colours), and markers and line styles that tell losses apart
# where colours repeat (more losses than colours) or cannot be seen (grey-scale print).
PALETTE = "colorblind"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")
WORST_TITLES = {WORST: "worst case over attacks (per sample)", WORST_L2: "worst case over L2 attacks (per sample)"}


def _style():
    return sns.axes_style("whitegrid")


@dataclass(frozen=True)
class LossStyle:
    """How one loss is drawn in every figure: an RGB colour, a matplotlib marker and a line style."""

    colour: tuple[float, float, float]
    marker: str
    linestyle: str


def loss_styles(labels: Sequence[str]) -> dict[str, LossStyle]:
    """One `LossStyle` per loss label, stable across figures; returns label -> style.

    Colours come from seaborn's colour-blind-safe palette. The k-th loss gets colour k mod 10, marker
    (k + k div 10) mod 10 and line style (k div 10) mod 4, so the first ten differ in colour and marker and
    every loss differs from every other in colour, marker or line style (for up to 200 losses)."""
    colours = sns.color_palette(PALETTE)
    n = len(colours)
    out = {}
    for k, label in enumerate(dict.fromkeys(labels)):
        cycle = k // n
        out[label] = LossStyle(
            tuple(colours[k % n]), MARKERS[(k + cycle) % len(MARKERS)], LINESTYLES[cycle % len(LINESTYLES)]
        )
    return out


def palette(labels: Sequence[str]) -> dict[str, Any]:
    """One colour per loss label, stable across figures (the colours of `loss_styles`); returns label -> RGB."""
    return {label: style.colour for label, style in loss_styles(labels).items()}


def _threat(attack: str, results: pd.DataFrame) -> str:
    """ "linf" or "l2": the threat model of a results-table attack label (its `norm` column for a label
    this process cannot parse)."""
    if attack == WORST_L2:
        return "l2"
    if attack in (WORST, CLEAN):
        return "linf"
    spec = spec_of_label(attack)
    if spec is not None:
        return spec.threat.value
    if "norm" in results.columns:
        norms = results.loc[results["attack"] == attack, "norm"].dropna().astype(str).str.lower()
        if len(norms):
            return "l2" if norms.iloc[0] == "l2" else "linf"
    return "linf"


def budget_grid(summary: pd.DataFrame, results: pd.DataFrame, attack: str) -> list[float]:
    """The budgets (eps, 0 included) of the attack's threat model at which any attack of that threat model
    has a row in `summary`: the x values of its panel; returns a sorted list."""
    threat = _threat(attack, results)
    same = [a for a in dict.fromkeys(summary["attack"]) if a != CLEAN and _threat(a, results) == threat]
    return sorted({float(e) for e in summary.loc[summary["attack"].isin(same), "eps"]})


def curve_points(summary: pd.DataFrame, attack: str, loss: str, grid: Sequence[float]) -> pd.DataFrame:
    """The points of one loss's curve in the panel of `attack`: one row per budget of `grid` (columns eps,
    mean, ci_low, ci_high), NaN where the attack has no row (a budget it never ran at, `min_eps`), so that
    the line breaks there instead of joining the budgets around it; returns a DataFrame."""
    d = summary[(summary["attack"] == attack) & (summary["loss"] == loss)]
    d = d.groupby(d["eps"].astype(float))[["mean", "ci_low", "ci_high"]].first()
    points = d.reindex(pd.Index([float(e) for e in grid], name="eps")).reset_index()
    return points.astype(float)


def panel_order(results: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The panels of the per-attack figures: the L-infinity attacks, their worst case, then the L2 attacks and
    theirs (each worst case only where `summary` has it); returns attack labels."""
    attacks = attack_order(results)
    present = set(summary["attack"])
    linf = [a for a in attacks if _threat(a, results) == "linf"] + ([WORST] if WORST in present else [])
    l2 = [a for a in attacks if _threat(a, results) == "l2"] + ([WORST_L2] if WORST_L2 in present else [])
    return linf + l2


def _panels(n: int, height: float, legend: bool = True) -> tuple[Figure, list[Axes]]:
    """A figure with `n` panels that share the y axis, `PANEL_COLUMNS` to a row; unused cells hidden."""
    ncols = max(1, min(PANEL_COLUMNS, n))
    nrows = math.ceil(max(n, 1) / ncols)
    fig = Figure(figsize=(4.3 * ncols + (2.2 if legend else 0.0), height * nrows + 0.5), layout="constrained")
    grid = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[:n]:
        ax.yaxis.set_tick_params(labelleft=True)  # every panel keeps its accuracy scale when rows wrap
    return fig, axes[:n]


def _legend(fig: Figure, names: Sequence[str], styles: dict[str, LossStyle], line: bool = True) -> None:
    handles = [
        Line2D(
            [],
            [],
            color=styles[name].colour,
            marker=styles[name].marker,
            linestyle=styles[name].linestyle if line else "none",
            label=name,
        )
        for name in names
    ]
    fig.legend(handles=handles, title="loss", loc="outside right upper", frameon=False)


def _isolated(values: np.ndarray) -> np.ndarray:
    """The finite points of a curve with no finite neighbour: no line reaches them, so they get error bars."""
    ok = np.isfinite(values)
    before = np.concatenate([[False], ok[:-1]])
    after = np.concatenate([ok[1:], [False]])
    return ok & ~before & ~after


def robust_accuracy_figure(
    summary: pd.DataFrame,
    labels: dict[str, str],
    losses: Sequence[str],
    results: pd.DataFrame,
    baseline: str | None = None,
    *,
    band: str = "95% interval",
) -> Figure:
    """Robust accuracy (%) against eps, one panel per attack (titled by its readable name) and per threat
    model's per-sample worst case, one line per loss (colour, marker and line style from `loss_styles`) with
    its interval band (`band` names it); returns the Figure. eps = 0 is the clean accuracy. A line never
    crosses a budget its attack did not run at (`curve_points`): a point left without neighbours is drawn
    with its interval as an error bar."""
    attacks = panel_order(results, summary)
    names = [labels.get(s, s) for s in losses]
    styles = loss_styles(names)
    titles = {**WORST_TITLES, **attack_names(attack_order(results))}
    with _style(), sns.plotting_context("notebook", rc=_RC):
        fig, axes = _panels(len(attacks), 3.6)
        for ax, attack in zip(axes, attacks):
            grid = budget_grid(summary, results, attack)
            for spec, name in zip(losses, names):
                d = curve_points(summary, attack, spec, grid)
                if d["mean"].isna().all():
                    continue
                style = styles[name]
                x, y = d["eps"].to_numpy(), 100 * d["mean"].to_numpy()
                low, high = 100 * d["ci_low"].to_numpy(), 100 * d["ci_high"].to_numpy()
                ax.plot(
                    x,
                    y,
                    color=style.colour,
                    marker=style.marker,
                    linestyle=style.linestyle,
                    markersize=5,
                    linewidth=1.6,
                    label=name,
                )
                if np.isfinite(low).any():
                    ax.fill_between(x, low, high, color=style.colour, alpha=0.15, linewidth=0)
                    alone = _isolated(y) & np.isfinite(low)
                    if alone.any():
                        ax.errorbar(
                            x[alone],
                            y[alone],
                            yerr=[y[alone] - low[alone], high[alone] - y[alone]],
                            fmt="none",
                            ecolor=style.colour,
                            elinewidth=1.2,
                            capsize=3,
                            alpha=0.7,
                        )
            ax.set_title(titles.get(attack, attack))
            ax.set_xticks(grid, [fmt_eps(e) for e in grid])
            l2 = _threat(attack, results) == "l2"
            ax.set_xlabel("L2 radius ε" if l2 else "ε (L∞ perturbation budget)")
            ax.set_ylabel("accuracy (%)")
        shown = summary[summary["attack"].isin(attacks)]
        low = pd.concat([shown["mean"], shown["ci_low"]]).min()
        high = pd.concat([shown["mean"], shown["ci_high"]]).max()
        if axes:
            axes[0].set_ylim(max(0.0, 100 * low - 3), min(100.0, 100 * high + 3) + 0.5)
        _legend(fig, names, styles)
        fig.suptitle(f"Robust accuracy against ε: mean over seeds; band: {band}", fontsize=12)
    return fig


def per_seed_figure(results: pd.DataFrame, labels: dict[str, str], losses: Sequence[str]) -> Figure:
    """Every network's accuracy at every eps the attack ran at (the seeds behind the means), one panel per
    attack (titled by its readable name), one column of dots per loss in its colour and marker; returns
    the Figure."""
    attacks = attack_order(results)
    names = [labels.get(s, s) for s in losses]
    styles = loss_styles(names)
    titles = attack_names(attacks)
    data = results[results["attack"].isin(attacks) & results["accuracy"].notna()].copy()
    data["eps"] = data["eps"].astype(float)
    data["accuracy"] = data["accuracy"].astype(float)
    width = 0.8 / max(len(names), 1)
    with _style(), sns.plotting_context("notebook", rc=_RC):
        fig, axes = _panels(len(attacks), 3.4)
        for ax, attack in zip(axes, attacks):
            d = data[data["attack"] == attack]
            budgets = sorted(d["eps"].unique())
            for k, (spec, name) in enumerate(zip(losses, names)):
                mine = d[d["loss"] == spec]
                if mine.empty:
                    continue
                x = mine["eps"].map({e: i for i, e in enumerate(budgets)}).to_numpy(float)
                x = x - 0.4 + width * (k + 0.5)
                style = styles[name]
                ax.scatter(x, 100 * mine["accuracy"], s=18, color=style.colour, marker=style.marker, label=name)
            ax.set_xticks(range(len(budgets)), [fmt_eps(e) for e in budgets])
            ax.set_xlim(-0.5, len(budgets) - 0.5)
            ax.set_xlabel("L2 radius ε" if _threat(attack, results) == "l2" else "ε")
            ax.set_ylabel("accuracy (%)")
            ax.set_title(titles.get(attack, attack))
        _legend(fig, names, styles, line=False)
    return fig


def evolution_figure(history: pd.DataFrame) -> Figure:
    """Left: best and median fitness (1 - validation accuracy) of the candidates trained to the full budget,
    per generation, and the best so far, against the training steps spent so far (against the generation
    for histories that do not record steps). Right: the share of each generation not trained to the end:
    rejected by the invariant, pruned by successive halving, collapsed, diverged, failed."""
    gens = evolution_generations(history)
    by_steps = bool(gens["steps_so_far"].notna().all() and (gens["steps"] > 0).any())
    x = "training steps spent" if by_steps else "generation"
    gens[x] = gens["steps_so_far"] if by_steps else gens["generation"]
    with _style(), sns.plotting_context("notebook", rc=_RC):
        fig = Figure(figsize=(11.0, 3.8), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2)
        long = gens.melt(
            id_vars=x,
            value_vars=["best_fitness", "median_fitness", "best_so_far"],
            var_name="series",
            value_name="fitness",
        )
        long["series"] = long["series"].map(
            {
                "best_fitness": "best of generation",
                "median_fitness": "median of generation",
                "best_so_far": "best so far",
            }
        )
        sns.lineplot(data=long, x=x, y="fitness", hue="series", style="series", markers=True, dashes=True, ax=ax1)
        ax1.set_ylabel("fitness = 1 − val. accuracy (lower is better)")
        ax1.set_title("Evolution progress (trained candidates)")
        ax1.xaxis.get_major_locator().set_params(integer=True)
        columns = {
            "rejected by invariant": "rejected",
            "pruned (halving)": "pruned",
            "collapsed": "collapsed",
            "diverged": "diverged",
            "failed": "failed",
        }
        shown = [name for name, col in columns.items() if col in ("rejected", "diverged", "failed") or gens[col].any()]
        shares = pd.DataFrame({"generation": gens["generation"]})
        for name in shown:
            shares[name] = gens[columns[name]] / gens["candidates"]
        bottom = np.zeros(len(shares))
        colours = sns.color_palette("colorblind", len(shown))
        for colour, column in zip(colours, shown):
            values = shares[column].to_numpy(float)
            ax2.bar(shares["generation"], 100 * values, bottom=100 * bottom, color=colour, label=column)
            bottom += values
        ax2.set_ylim(0, 100)
        ax2.set_xlabel("generation")
        ax2.set_ylabel("share of candidates (%)")
        ax2.set_title("Not trained to the end")
        ax2.set_xticks(list(shares["generation"]))
        ax2.legend(frameon=False, loc="upper right")
    return fig


def effective_target_figure(analysis: Sequence[dict[str, Any]], labels: dict[str, str]) -> Figure:
    """The effective target p* of each loss (implicit label smoothing), with 1/n marked; losses that
    pursue p -> 1 (no p* below 1) are drawn at 1 and hatched."""
    names = [labels.get(str(a["spec"]), str(a["spec"])) for a in analysis]
    values = [1.0 if a.get("effective_target") is None else float(a["effective_target"]) for a in analysis]
    colours = palette(names)
    n_classes = {int(a["classes"]) for a in analysis}
    with _style(), sns.plotting_context("notebook", rc=_RC):
        fig = Figure(figsize=(8.0, 0.5 * len(names) + 1.6), layout="constrained")
        ax = fig.subplots()
        bars = ax.barh(names, values, color=[colours[n] for n in names])
        for bar, a, value in zip(bars, analysis, values):
            none = a.get("effective_target") is None
            if none:
                bar.set_hatch("//")
                bar.set_alpha(0.5)
            text = "none: pursues p → 1" if none else f"p* = {value:.3f}"
            if not none and a.get("label_smoothing_equivalent") is not None:
                text += f"  (≈ label smoothing α = {a['label_smoothing_equivalent']:.3f})"
            ax.text(0.01, bar.get_y() + bar.get_height() / 2, text, va="center", ha="left", fontsize=9, color="black")
        for n in sorted(n_classes):
            ax.axvline(
                1.0 / n,
                color="grey",
                linestyle=":",
                linewidth=1.2,
                label=f"1/n = {1 / n:.2f} (uniform outputs, n = {n})",
            )
        fig.legend(loc="outside lower right", frameon=False, fontsize=8)
        ax.set_xlim(0, 1.02)
        ax.invert_yaxis()
        ax.set_xlabel("effective target probability p* of the true class")
        ax.set_title("Where training comes to rest: p* < 1 acts as implicit label smoothing")
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=DPI, format="png")
    tmp.replace(path)
    return path
