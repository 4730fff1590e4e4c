"""The report's figures, with seaborn on matplotlib `Figure`s (headless: no pyplot, no display).

Each function returns a `Figure`; `save_png` writes it. Everything plotted comes from the tables of
`robust_glo.reporting.tables`, computed from the results files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from robust_glo.reporting.tables import WORST, attack_order, evolution_generations, fmt_eps
from robust_glo.robustness.attacks import ThreatModel, spec_of_label

_RC = {"axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9}
DPI = 110


def _style():
    return sns.axes_style("whitegrid")


def palette(labels: Sequence[str]) -> dict[str, Any]:
    """One colour per loss label, stable across figures."""
    colours = sns.color_palette("colorblind", max(len(labels), 1))
    return {label: colours[i] for i, label in enumerate(labels)}


def robust_accuracy_figure(
    summary: pd.DataFrame,
    labels: dict[str, str],
    losses: Sequence[str],
    results: pd.DataFrame,
    baseline: str | None = None,
    *,
    band: str = "95% interval",
) -> Figure:
    """Robust accuracy (%) against eps, one panel per attack (and the per-sample worst case), one line
    per loss with its interval band (`band` names it). eps = 0 is the clean accuracy."""
    attacks = attack_order(results) + ([WORST] if (summary["attack"] == WORST).any() else [])
    names = [labels.get(s, s) for s in losses]
    colours = palette(names)
    with _style(), sns.plotting_context("notebook", rc=_RC):
        fig = Figure(figsize=(4.6 * len(attacks) + 1.8, 4.0), layout="constrained")
        axes = fig.subplots(1, len(attacks), sharey=True, squeeze=False)[0]
        for ax, attack in zip(axes, attacks):
            data = summary[summary["attack"] == attack].copy()
            data["label"] = data["loss"].map(lambda s: labels.get(s, s))
            data["accuracy (%)"] = 100 * data["mean"]
            sns.lineplot(
                data=data,
                x="eps",
                y="accuracy (%)",
                hue="label",
                hue_order=names,
                palette=colours,
                marker="o",
                ax=ax,
                legend=ax is axes[-1],
                estimator=None,
                errorbar=None,
            )
            for spec, name in zip(losses, names):
                d = data[data["loss"] == spec].sort_values("eps")
                if d.empty or d["ci_low"].isna().all():
                    continue
                ax.fill_between(
                    d["eps"], 100 * d["ci_low"], 100 * d["ci_high"], color=colours[name], alpha=0.18, linewidth=0
                )
            title = "worst case over attacks (per sample)" if attack == WORST else attack
            ax.set_title(title)
            spec = spec_of_label(attack)
            l2 = attack == ThreatModel.L2.worst_label or (spec is not None and spec.threat is ThreatModel.L2)
            ax.set_xlabel("L2 radius ε" if l2 else "ε (L∞ perturbation budget)")
            ax.set_ylabel("accuracy (%)")
        shown = summary[summary["attack"].isin(attacks)]
        low = pd.concat([shown["mean"], shown["ci_low"]]).min()
        high = pd.concat([shown["mean"], shown["ci_high"]]).max()
        axes[0].set_ylim(max(0.0, 100 * low - 3), min(100.0, 100 * high + 3) + 0.5)
        if axes[-1].get_legend() is not None:
            sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1.0), title="loss", frameon=False)
        fig.suptitle(f"Robust accuracy against ε: mean over seeds; band: {band}", fontsize=12)
    return fig


def per_seed_figure(results: pd.DataFrame, labels: dict[str, str], losses: Sequence[str]) -> Figure:
    """Every network's accuracy at every eps (the seeds behind the means), one panel per attack."""
    attacks = attack_order(results)
    names = [labels.get(s, s) for s in losses]
    data = results[results["attack"].isin(attacks)].copy()
    data["label"] = data["loss"].map(lambda s: labels.get(s, s))
    data["accuracy (%)"] = 100 * data["accuracy"].astype(float)
    data["ε"] = data["eps"].map(lambda e: fmt_eps(float(e)))
    with _style(), sns.plotting_context("notebook", rc=_RC):
        fig = Figure(figsize=(4.6 * len(attacks) + 1.8, 3.8), layout="constrained")
        axes = fig.subplots(1, len(attacks), sharey=True, squeeze=False)[0]
        for ax, attack in zip(axes, attacks):
            d = data[data["attack"] == attack]
            sns.stripplot(
                data=d,
                x="ε",
                y="accuracy (%)",
                hue="label",
                hue_order=names,
                palette=palette(names),
                dodge=True,
                jitter=False,
                size=4,
                ax=ax,
                legend=ax is axes[-1],
            )
            ax.set_title(f"{attack}: one dot per seed")
        if axes[-1].get_legend() is not None:
            sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1.0), title="loss", frameon=False)
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
