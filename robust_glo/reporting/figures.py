"""The report's figures, with seaborn on matplotlib `Figure`s (headless: no pyplot, no display).

Each function returns a `Figure`; `save_png` writes it. Everything plotted comes from the tables of
`robust_glo.reporting.tables`, computed from the results files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from robust_glo.reporting.tables import (
    CLEAN,
    THETAS,
    WORST,
    FrontierStudy,
    attack_names,
    attack_order,
    clean_rows,
    evolution_generations,
    fmt_eps,
    trained_candidates,
)
from robust_glo.robustness.attacks import WORST_L2, spec_of_label
from robust_glo.robustness.frontier import envelope

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


def curve_points(
    summary: pd.DataFrame, attack: str, loss: str, grid: Sequence[float], min_eps: float = 0.0
) -> pd.DataFrame:
    """The points of one loss's curve in the panel of `attack`: one row per budget of `grid` (columns eps,
    mean, ci_low, ci_high), NaN where the attack has no row (a budget it never ran at, `min_eps`), so that
    the line breaks there instead of joining the budgets around it, and NaN below `min_eps` (the attack's,
    > 0 for one that starts at a larger budget): its eps = 0 row is the clean accuracy, not the attack, and
    drawn it would read as the attack measured below its first budget; returns a DataFrame."""
    d = summary[(summary["attack"] == attack) & (summary["loss"] == loss)]
    d = d.groupby(d["eps"].astype(float))[["mean", "ci_low", "ci_high"]].first()
    points = d.reindex(pd.Index([float(e) for e in grid], name="eps")).reset_index().astype(float)
    points.loc[points["eps"] < min_eps, ["mean", "ci_low", "ci_high"]] = math.nan
    return points


def attack_min_eps(attack: str, results: pd.DataFrame) -> float:
    """The budget from which a results-table attack label ran (its `min_eps`; 0 for an attack that ran from
    the smallest budget, a worst case, or a label whose spec and `params` name none)."""
    spec = spec_of_label(attack)
    if spec is not None:
        return spec.min_eps
    if "params" not in results.columns:
        return 0.0
    found = [_json_number(p, "min_eps") for p in results.loc[results["attack"] == attack, "params"]]
    return max([v for v in found if v is not None], default=0.0)


def _json_number(text: object, key: str) -> float | None:
    """`key` of a JSON object given as text, as a float; None when it is absent or not a number."""
    try:
        value = json.loads(str(text)).get(key)
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def panel_order(results: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The panels of the per-attack figures: the L-infinity attacks, their worst case, then the L2 attacks and
    theirs (each worst case only where `summary` has it); returns attack labels."""
    attacks = attack_order(results)
    present = set(summary["attack"])
    linf = [a for a in attacks if _threat(a, results) == "linf"] + ([WORST] if WORST in present else [])
    l2 = [a for a in attacks if _threat(a, results) == "l2"] + ([WORST_L2] if WORST_L2 in present else [])
    return linf + l2


def _panels(
    n: int, height: float, legend: bool = True, sharey: bool = True, columns: int = PANEL_COLUMNS, width: float = 4.3
) -> tuple[Figure, list[Axes]]:
    """A figure with `n` panels of `width` x `height` inches that share the y axis (unless `sharey` is
    False), `columns` to a row; unused cells hidden."""
    ncols = max(1, min(columns, n))
    nrows = math.ceil(max(n, 1) / ncols)
    fig = Figure(figsize=(width * ncols + (2.2 if legend else 0.0), height * nrows + 0.5), layout="constrained")
    grid = fig.subplots(nrows, ncols, sharey=sharey, squeeze=False)
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
    verified: Mapping[tuple[str, float], bool] | None = None,
) -> Figure:
    """Robust accuracy (%) against eps, one panel per attack (titled by its readable name) and per threat
    model's per-sample worst case, one line per loss (colour, marker and line style from `loss_styles`) with
    its interval band (`band` names it); returns the Figure. eps = 0 is the clean accuracy, drawn in every
    panel but those of attacks with a `min_eps` (`attack_min_eps`), which have no point below it. A line
    never crosses a budget its attack did not run at (`curve_points`): a point left without neighbours is
    drawn with its interval as an error bar. A cascade attack's rows, hence its curve, are already the
    per-input worst case of the attacks of its norm before it and itself (`robustness.evaluate`), drawn as
    they are. In the worst-case panels, the points of budgets eps > 0 whose worst
    case is not AutoAttack-verified (`verified`: (norm "linf"/"l2", eps) -> bool; a budget it lacks counts as
    not verified) are hollow, so that a reader does not take them for the verified ones on the same line."""
    attacks = panel_order(results, summary)
    names = [labels.get(s, s) for s in losses]
    styles = loss_styles(names)
    titles = {**WORST_TITLES, **attack_names(attack_order(results))}
    with _style(), sns.plotting_context("notebook", rc=_RC):
        fig, axes = _panels(len(attacks), 3.6)
        for ax, attack in zip(axes, attacks):
            grid = budget_grid(summary, results, attack)
            start = attack_min_eps(attack, results)
            for spec, name in zip(losses, names):
                d = curve_points(summary, attack, spec, grid, start)
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
                hollow = _unverified(attack, x, verified) & np.isfinite(y)
                if hollow.any():
                    ax.plot(
                        x[hollow],
                        y[hollow],
                        linestyle="none",
                        marker=style.marker,
                        markersize=5,
                        markerfacecolor="white",
                        markeredgecolor=style.colour,
                        markeredgewidth=1.2,
                        gid="unverified",
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
        title = f"Robust accuracy against ε: mean over seeds; band: {band}"
        if any(_unverified(a, np.asarray(budget_grid(summary, results, a)), verified).any() for a in attacks):
            title += "\nworst case: hollow markers = not AutoAttack-verified"
        fig.suptitle(title, fontsize=12)
    return fig


def _unverified(attack: str, eps: np.ndarray, verified: Mapping[tuple[str, float], bool] | None) -> np.ndarray:
    """Which budgets of a panel are worst-case points without AutoAttack verification: only in the panels
    of a worst case, only at eps > 0, and none at all where `verified` is None (nothing known)."""
    norm = {WORST: "linf", WORST_L2: "l2"}.get(attack)
    if norm is None or verified is None:
        return np.zeros(len(eps), dtype=bool)

    def ok(e: float) -> bool:
        return any(n == norm and math.isclose(float(k), e, abs_tol=1e-12) and v for (n, k), v in verified.items())

    return np.array([e > 0 and not ok(float(e)) for e in eps], dtype=bool)


def per_seed_figure(results: pd.DataFrame, labels: dict[str, str], losses: Sequence[str]) -> Figure:
    """Every network's accuracy at every eps the attack ran at (the seeds behind the means), one panel per
    attack (titled by its readable name) and per threat model's worst case (the quantity the verdict rests
    on), in `panel_order`, one column of dots per loss in its colour and marker; returns the Figure."""
    attacks = panel_order(results, results)
    names = [labels.get(s, s) for s in losses]
    styles = loss_styles(names)
    titles = attack_names([a for a in attacks if a not in WORST_TITLES]) | WORST_TITLES
    data = results[results["attack"].isin(attacks) & results["accuracy"].notna()].copy()
    data["eps"] = data["eps"].astype(float)
    data["accuracy"] = data["accuracy"].astype(float)
    width = 0.8 / max(len(names), 1)
    with _style(), sns.plotting_context("notebook", rc=_RC):
        fig, axes = _panels(len(attacks), 3.4)
        for ax, attack in zip(axes, attacks):
            d = data[data["attack"] == attack]
            d = d[d["eps"] >= attack_min_eps(attack, results)]  # as in the curves: no clean point below min_eps
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


def _search_styles(searches: Sequence[int]) -> dict[int, LossStyle]:
    """One colour, marker and line style per search index (the colour-blind palette of `loss_styles`)."""
    styles = loss_styles([str(k) for k in searches])
    return {k: styles[str(k)] for k in searches}


def evolution_figure(history: pd.DataFrame, seeds: dict[int, Any] | None = None) -> Figure:
    """The optimization history of an evolution (one search, or several stacked with a `search` column).

    Left: the fitness of every candidate trained to the full budget (status "trained"; the others carry
    rank bands above 1, not a fitness) against its position in the order of evaluation, one colour and
    marker per search, and each search's best so far as a step line (dotted verticals: generation
    boundaries). Right: the share of each generation (summed over the searches) that was not trained to
    the end: rejected by the invariant, pruned by successive halving, collapsed, diverged, failed.
    `seeds`: search index -> its CMA-ES seed, for the legend. Returns the Figure."""
    trained = trained_candidates(history)
    h = history if "search" in history.columns else history.assign(search=0)
    searches = sorted({int(k) for k in h["search"]})
    styles = _search_styles(searches)
    several = len(searches) > 1
    gens = evolution_generations(history)
    with _style(), sns.plotting_context("notebook", rc=_RC):
        fig = Figure(figsize=(12.0, 4.0), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.6, 1.0])
        first = h[h["search"] == searches[0]].sort_values(["generation", "index"], kind="stable")
        bounds = np.flatnonzero(np.diff(first["generation"].to_numpy())) + 0.5
        for x in bounds:
            ax1.axvline(x, color="grey", linestyle=":", linewidth=0.9)
        for k in searches:
            mine = trained[trained["search"] == k]
            if mine.empty:
                continue
            style = styles[k]
            seed = (seeds or {}).get(k)
            name = f"search {k}" + (f" (seed {seed})" if seed is not None else "") if several else "candidate"
            ax1.scatter(
                mine["order"],
                mine["fitness"],
                s=22,
                color=style.colour,
                marker=style.marker,
                alpha=0.65,
                label=f"{name}: trained" if several else "trained candidate",
            )
            ax1.plot(
                mine["order"],
                mine["best_so_far"],
                color=style.colour,
                linestyle=style.linestyle,
                linewidth=1.8,
                drawstyle="steps-post",
                label=f"{name}: best so far" if several else "best so far",
            )
        if trained.empty:
            ax1.text(0.5, 0.5, "no candidate was trained to the end", ha="center", va="center", transform=ax1.transAxes)
        ax1.set_xlabel("candidate, in order of evaluation (dotted: generation boundaries)")
        ax1.set_ylabel("fitness (lower is better)")
        ax1.set_title("Optimization history (trained candidates)")
        ax1.xaxis.get_major_locator().set_params(integer=True)
        ax1.legend(frameon=False, fontsize=8, ncol=3 if several else 2, loc="upper center", bbox_to_anchor=(0.5, -0.2))
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
        ax2.set_title("Not trained to the end" + (" (all searches)" if several else ""))
        ax2.set_xticks(list(shares["generation"]))
        ax2.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=8)
    return fig


def search_space_figure(history: pd.DataFrame, importance: pd.DataFrame) -> Figure:
    """Where the search went in the space of the 8 TaylorGLO parameters.

    Left: a parallel-coordinate view (matplotlib `LineCollection`): one line per trained candidate through
    its theta0..theta7, coloured by its fitness (viridis, a colour-blind-safe colour map; the best drawn
    last, on top), each search's best trained candidate as a thick black line. Right: parameter importance
    from `parameter_importance`, |Spearman rho| of each parameter with fitness, coloured by the sign of rho.
    Returns the Figure."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    trained = trained_candidates(history)
    names = [c for c in THETAS if c in trained.columns]
    with _style(), sns.plotting_context("notebook", rc=_RC):
        fig = Figure(figsize=(12.0, 4.2), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.7, 1.0])
        x = np.arange(len(names), dtype=float)
        if len(trained):
            order = trained.sort_values("fitness", ascending=False, kind="stable")  # best last, on top
            values = order[names].to_numpy(float)
            fitness = order["fitness"].to_numpy(float)
            norm = Normalize(vmin=float(fitness.min()), vmax=float(max(fitness.max(), fitness.min() + 1e-9)))
            cmap = colormaps["viridis"]
            lines = LineCollection(
                [np.column_stack([x, v]) for v in values],
                array=fitness,
                cmap=cmap,
                norm=norm,
                linewidths=1.3,
                alpha=0.85,
            )
            ax1.add_collection(lines)
            several = trained["search"].nunique() > 1
            for k, mine in trained.groupby("search", sort=True):
                best = mine.loc[mine["fitness"].idxmin()]
                ax1.plot(
                    x,
                    best[names].to_numpy(float),
                    color="black",
                    linewidth=2.6,
                    linestyle=LINESTYLES[int(k) % len(LINESTYLES)],
                    label=(f"search {int(k)}: best" if several else "best trained candidate")
                    + f" (fitness {best['fitness']:.4f})",
                )
            low, high = float(np.nanmin(values)), float(np.nanmax(values))
            pad = 0.05 * max(high - low, 1e-6)
            ax1.set_ylim(low - pad, high + pad)
            bar = fig.colorbar(lines, ax=ax1, pad=0.01)
            bar.set_label("fitness (lower is better)")
            ax1.legend(frameon=False, fontsize=8, loc="upper left")
        else:
            ax1.text(0.5, 0.5, "no candidate was trained to the end", ha="center", va="center", transform=ax1.transAxes)
        for xi in x:
            ax1.axvline(xi, color="grey", linewidth=0.8)
        ax1.set_xlim(-0.2, len(names) - 0.8)
        ax1.set_xticks(x, [f"θ{n.removeprefix('theta')}" for n in names])
        ax1.set_ylabel("parameter value")
        ax1.set_title(f"Parallel coordinates: the {len(trained)} trained candidates")
        shown = importance.dropna(subset=["abs_rho"])
        if shown.empty:
            ax2.text(
                0.5,
                0.5,
                "too few trained candidates\n(or no variation) to rank",
                ha="center",
                va="center",
                transform=ax2.transAxes,
            )
            ax2.set_yticks([])
        else:
            colours = sns.color_palette(PALETTE)
            labels = [f"θ{n.removeprefix('theta')}" for n in shown["parameter"]]
            bars = ax2.barh(labels, shown["abs_rho"], color=[colours[3] if r > 0 else colours[0] for r in shown["rho"]])
            for b, rho, p in zip(bars, shown["rho"], shown["p"]):
                ax2.text(
                    b.get_width() + 0.01,
                    b.get_y() + b.get_height() / 2,
                    f"ρ = {rho:+.2f}, p = {p:.2g}",
                    va="center",
                    fontsize=8,
                )
            ax2.invert_yaxis()
            handles = [
                Line2D([], [], color=colours[3], linewidth=6, label="ρ > 0: larger θ, worse fitness"),
                Line2D([], [], color=colours[0], linewidth=6, label="ρ < 0: larger θ, better fitness"),
            ]
            ax2.legend(handles=handles, frameon=False, fontsize=8, loc="lower right")
        ax2.set_xlim(0, 1.25)
        ax2.set_xlabel("|Spearman ρ| of θ with fitness")
        ax2.set_title("Parameter importance (rank correlation)")
    return fig


def frontier_figure(
    study: FrontierStudy,
    summary: pd.DataFrame,
    labels: dict[str, str],
    losses: Sequence[str],
    titles: dict[tuple[str, float], str],
) -> Figure:
    """The label-smoothing frontier, one panel per worst-case budget of `study` (titled by `titles`): clean
    accuracy (x) against robust accuracy (y), in %. The label-smoothing arms (ce is alpha 0) with their 95%
    intervals as error bars, joined along their upper concave envelope (black line; an arm off it is drawn
    hollow), the envelope's level beyond its highest clean accuracy, and before its lowest back to the
    lowest-clean arm's, dotted (what a loss there is compared with); every other loss with its intervals
    and a thin dashed line from its point to the frontier at its clean accuracy (its margin). Each point is
    labelled with its loss's readable name, in its colour and marker of `loss_styles`. A panel's x range is
    that of the arms and the losses placed against them, intervals included (`_clean_range`): a loss left
    of it (not placed: clean accuracy below every arm's) is drawn at the left edge at its robust accuracy,
    as a marker with an arrow pointing left, labelled with its clean accuracy, so that it is seen without
    squeezing the rest into a sliver. Returns the Figure."""

    names = [labels.get(s, s) for s in losses]
    styles = loss_styles(names)
    budgets = [b for b in study.budgets if b in study.points]
    clean = clean_rows(summary).set_index("loss")
    with _style(), sns.plotting_context("notebook", rc=_RC):
        fig, axes = _panels(len(budgets), 5.0, sharey=False, columns=3, width=5.6)
        for ax, (attack, eps) in zip(axes, budgets):
            robust = summary[(summary["attack"] == attack) & (summary["eps"] == eps)].set_index("loss")
            margins = (
                study.margins[(study.margins["attack"] == attack) & (study.margins["eps"] == eps)]
                if study.margins is not None
                else pd.DataFrame(columns=["loss", "clean", "robust", "frontier"])
            )
            others = [_margin_point(r, clean, robust) for r in margins.to_dict("records")]
            _frontier_panel(ax, study.points[attack, eps].sort_values("clean"), others, labels, styles)
            ax.set_title(titles.get((attack, eps), f"{attack} {eps:g}"))
        shown = [
            labels.get(s, s)
            for s in losses
            if any(s in set(p["loss"]) for p in study.points.values())
            or (study.margins is not None and s in set(study.margins["loss"]))
        ]
        _legend(fig, shown, styles, line=False)
        fig.suptitle("Against label smoothing (error bars: 95% intervals)", fontsize=11)
    return fig


def _margin_point(row: dict[str, Any], clean: pd.DataFrame, robust: pd.DataFrame) -> dict[str, Any]:
    """A `frontier_margins` row as a frontier-panel point: loss, clean, robust, frontier and position, with
    the intervals of the summary's clean (`clean`) and robust (`robust`) rows, both indexed by loss."""
    spec = row["loss"]

    def interval(table: pd.DataFrame, column: str) -> float:
        return float(table.loc[spec, column]) if spec in table.index else math.nan

    return {
        "loss": spec,
        "clean": float(row["clean"]),
        "robust": float(row["robust"]),
        "frontier": float(row["frontier"]),
        "position": row.get("position", "inside"),
        "clean_low": interval(clean, "ci_low"),
        "clean_high": interval(clean, "ci_high"),
        "robust_low": interval(robust, "ci_low"),
        "robust_high": interval(robust, "ci_high"),
    }


def _frontier_panel(
    ax: Axes,
    points: pd.DataFrame,
    others: list[dict[str, Any]],
    labels: dict[str, str],
    styles: dict[str, LossStyle],
) -> None:
    """One budget's frontier panel: the arms `points` (sorted by clean accuracy) and their envelope, and the
    other losses `others` (`_margin_point`s), each placed loss with its dashed margin line."""
    texts: list[tuple[float, float, str]] = []
    placed = [r for r in others if r["position"] != "below-range"]
    x0, x1 = _clean_range(points.to_dict("records") + placed)
    ax.set_xlim(x0, x1)
    env_c, env_r = envelope(points["clean"].to_numpy(float), points["robust"].to_numpy(float))
    ax.plot(100 * env_c, 100 * env_r, color="black", linewidth=1.6, zorder=2, label="frontier")
    ax.scatter(  # a ring around each arm on the envelope: visible even where it is a single point
        100 * env_c, 100 * env_r, s=190, facecolors="none", edgecolors="black", linewidths=1.1, zorder=4
    )
    right = max([float(env_c[-1])] + [r["clean"] for r in placed])
    if right > env_c[-1]:
        _flat_level(ax, 100 * env_c[-1], 100 * right + 0.5, 100 * env_r[-1])
    left = float(points["clean"].min())
    if left < env_c[0]:  # the arms left of the envelope are below it: the frontier is flat there
        _flat_level(ax, 100 * left, 100 * env_c[0], 100 * env_r[0])
    for r in points.to_dict("records"):
        name = labels.get(r["loss"], r["loss"])
        _point(ax, r, styles[name], filled=bool(r["pareto"]))
        texts.append((100 * r["clean"], 100 * r["robust"], f"{name} (α = 0)" if r["alpha"] == 0 else name))
    off = [r for r in others if 100 * r["clean"] < x0]
    for r in (r for r in others if 100 * r["clean"] >= x0):
        name = labels.get(r["loss"], r["loss"])
        _point(ax, r, styles[name], filled=True)
        texts.append((100 * r["clean"], 100 * r["robust"], name))
        if np.isfinite(r["frontier"]):
            ax.plot(
                [100 * r["clean"]] * 2,
                [100 * r["frontier"], 100 * r["robust"]],
                color=styles[name].colour,
                linestyle="--",
                linewidth=1.0,
                alpha=0.8,
                zorder=1,
            )
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("robust accuracy (%)")
    ax.margins(y=0.1)
    for r in off:
        name = labels.get(r["loss"], r["loss"])
        texts.append(_off_left(ax, r, styles[name], name))
    _place_labels(ax, texts)


_RANGE_PAD = 0.08  # of the clean-accuracy range, on either side of a frontier panel
_OFF_LEFT_AT = 0.06  # where a loss left of a frontier panel is drawn, in fractions of its width


def _clean_range(rows: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """The x limits (in %) of a frontier panel: the range of the `rows`' clean accuracies and their
    intervals (clean, clean_low, clean_high: fractions, NaN for none), padded by `_RANGE_PAD` of its width
    on either side (at least 1 point)."""
    values = [
        100 * float(r[k]) for r in rows for k in ("clean", "clean_low", "clean_high") if np.isfinite(r.get(k, math.nan))
    ]
    low, high = min(values), max(values)
    pad = max(_RANGE_PAD * (high - low), 1.0)
    return low - pad, high + pad


def _off_left(ax: Axes, row: Mapping[str, Any], style: LossStyle, name: str) -> tuple[float, float, str]:
    """A loss whose clean accuracy lies left of the panel (whose x limits are final): its marker at the left
    edge at its robust accuracy (in %), an arrow from it pointing left; returns its label (x, y, text) for
    `_place_labels`, which names its clean accuracy."""
    x0, x1 = ax.get_xlim()
    x, y = x0 + _OFF_LEFT_AT * (x1 - x0), 100 * float(row["robust"])
    ax.plot([x], [y], linestyle="none", marker=style.marker, color=style.colour, markersize=7, zorder=3, gid="off-left")
    ax.annotate(
        "",
        (x0, y),
        xytext=(x, y),
        arrowprops={"arrowstyle": "-|>", "color": style.colour, "linewidth": 1.2, "shrinkA": 5, "shrinkB": 0},
        zorder=3,
    )
    return x, y, f"{name}, clean {100 * float(row['clean']):.1f}% ←"


def _flat_level(ax: Axes, x0: float, x1: float, y: float) -> None:
    """A dotted continuation of the frontier at level `y` from `x0` to `x1` (in %)."""
    ax.plot([x0, x1], [y, y], color="black", linestyle=":", linewidth=1.2, zorder=2)


def _point(ax: Axes, row: dict[str, Any], style: LossStyle, *, filled: bool) -> None:
    """One loss in a frontier panel: its (clean, robust) point in %, with error bars from its intervals."""
    x, y = 100 * float(row["clean"]), 100 * float(row["robust"])
    xerr = yerr = None
    if np.isfinite(row.get("clean_low", math.nan)):
        xerr = [[max(x - 100 * row["clean_low"], 0.0)], [max(100 * row["clean_high"] - x, 0.0)]]
    if np.isfinite(row.get("robust_low", math.nan)):
        yerr = [[max(y - 100 * row["robust_low"], 0.0)], [max(100 * row["robust_high"] - y, 0.0)]]
    ax.errorbar(
        [x],
        [y],
        xerr=xerr,
        yerr=yerr,
        fmt=style.marker,
        color=style.colour,
        markersize=7,
        capsize=3,
        elinewidth=1.1,
        markerfacecolor=style.colour if filled else "white",
        markeredgewidth=1.4,
        zorder=3,
    )


# Where a point's label may go, tried in turn, in fractions of the panel: (dx, dy) from the point to the
# label's nearer corner, and the side it extends to.
_LABEL_SPOTS = (
    (0.015, 0.012, "right", "up"),
    (0.015, -0.012, "right", "down"),
    (-0.015, 0.012, "left", "up"),
    (-0.015, -0.012, "left", "down"),
    (0.015, 0.07, "right", "up"),
    (0.015, -0.07, "right", "down"),
    (-0.015, 0.07, "left", "up"),
    (-0.015, -0.07, "left", "down"),
    (0.015, 0.13, "right", "up"),
    (0.015, -0.13, "right", "down"),
)
_CHAR_WIDTH, _LINE_HEIGHT = 0.012, 0.04  # of an 8-point label, in fractions of a frontier panel


def _place_labels(ax: Axes, labels: list[tuple[float, float, str]]) -> None:
    """Label the points `labels` (x, y in data units, text) of a panel, each at the first of `_LABEL_SPOTS`
    whose (estimated) box lies inside the panel and overlaps neither a label placed before nor another
    point (the first spot when none does); call it after everything is drawn, so that the panel's limits
    are final."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    points = [((x - x0) / (x1 - x0), (y - y0) / (y1 - y0)) for x, y, _ in labels]
    boxes: list[tuple[float, float, float, float]] = []

    def free(box: tuple[float, float, float, float], own: int) -> bool:
        left, bottom, right, top = box
        if left < 0 or right > 1 or bottom < 0 or top > 1:  # inside the panel, not over its neighbour
            return False
        if any(left < b[2] and b[0] < right and bottom < b[3] and b[1] < top for b in boxes):
            return False
        return not any(
            left - 0.01 < px < right + 0.01 and bottom - 0.01 < py < top + 0.01
            for k, (px, py) in enumerate(points)
            if k != own
        )

    for k, ((fx, fy), (x, y, text)) in enumerate(zip(points, labels)):
        width = _CHAR_WIDTH * len(text)
        candidates = []
        for dx, dy, side, way in _LABEL_SPOTS:
            left = fx + dx if side == "right" else fx + dx - width
            bottom = fy + dy if way == "up" else fy + dy - _LINE_HEIGHT
            candidates.append((left, bottom, left + width, bottom + _LINE_HEIGHT))
        box = next((b for b in candidates if free(b, k)), candidates[0])
        boxes.append(box)
        ax.annotate(
            text,
            (x, y),
            xytext=(box[0], box[1]),
            textcoords="axes fraction",
            ha="left",
            va="bottom",
            fontsize=8,
            color="black",
            zorder=4,
        )


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
