"""Loss portraits with seaborn/matplotlib, written as PNG and SVG (headless: no pyplot, no display).

`plot_analyses(analyses, out_dir)` writes, for any number of losses on shared axes:

- ``learning_rule``: the loss against the target probability p, and the target-logit gradient
  -dL/dz_t against p, with p = 1/n (uniform outputs) and each loss's effective target p* marked;
- ``pull_push``: one panel per loss, -dL/dz_t with its pull and push terms (docs/method.md);
- ``taylorglo_f`` (when a TaylorGLO loss is among them): contours of f(x, y) over [0, 1]^2 and the
  curves f(0, y), f(1, y) that training actually uses, one row per TaylorGLO loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from robust_glo.analysis.learning_rule import learning_rule
from robust_glo.analysis.report import LossAnalysis, analyze_loss
from robust_glo.errors import ConfigError
from robust_glo.losses.taylorglo import taylorglo_f

FORMATS = ("png", "svg")
_STYLE = {"axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9}


def _labels(analyses: Sequence[LossAnalysis]) -> list[str]:
    """Short, unique legend labels: the spec, or ``taylorglo #k`` for long TaylorGLO specs."""
    labels, k = [], 0
    for a in analyses:
        if a.theta is not None:
            k += 1
            label = a.spec if len(a.spec) <= 28 else f"taylorglo #{k}"
        else:
            label = a.spec if len(a.spec) <= 28 else a.spec[:26] + "…"
        while label in labels:
            label += "'"
        labels.append(label)
    return labels


def _limits(values: np.ndarray, p: np.ndarray, n: int) -> tuple[float, float]:
    """y-limits that show the curves over p in [1/(2n), 0.995], where their shape is, not their poles."""
    window = values[(p >= 0.5 / n) & (p <= 0.995)]
    window = window[np.isfinite(window)]
    if window.size == 0:
        return -1.0, 1.0
    lo, hi = float(window.min()), float(window.max())
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = 0.06 * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def _footnote(fig: Figure, analyses: Sequence[LossAnalysis], labels: list[str]) -> None:
    """Spell out the losses whose legend label is shortened."""
    notes = [f"{label} = {a.spec}" for a, label in zip(analyses, labels) if label != a.spec]
    if notes:
        fig.supxlabel("\n".join(notes), fontsize=8, color="0.3", x=0.01, ha="left")


def _save(fig: Figure, out_dir: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    paths = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        fig.savefig(path, dpi=150 if fmt == "png" else None)
        paths.append(path)
    return paths


def _learning_rule_figure(analyses: Sequence[LossAnalysis], labels: list[str], n: int, palette: list) -> Figure:
    rows = []
    for a, label in zip(analyses, labels):
        r = a.rule
        base = float(np.interp(1.0 / n, r.p, r.loss))
        rows.append(pd.DataFrame({"loss": label, "p": r.p, "value": r.loss - base, "gradient": r.target_grad}))
    data = pd.concat(rows, ignore_index=True)
    fig = Figure(figsize=(11.5, 4.6), layout="constrained")
    ax_loss, ax_grad = fig.subplots(1, 2)
    sns.lineplot(data=data, x="p", y="value", hue="loss", palette=palette, ax=ax_loss, legend=False, linewidth=1.8)
    sns.lineplot(data=data, x="p", y="gradient", hue="loss", palette=palette, ax=ax_grad, linewidth=1.8)
    ax_loss.set_ylim(*_limits(data["value"].to_numpy(), data["p"].to_numpy(), n))
    ax_grad.set_ylim(*_limits(data["gradient"].to_numpy(), data["p"].to_numpy(), n))
    ax_loss.set(title="Loss against the target probability", xlabel="target probability p", ylabel="loss L(p) − L(1/n)")
    ax_grad.set(
        title="Target-logit gradient (> 0: the target logit rises)", xlabel="target probability p", ylabel="−∂L/∂z_t"
    )
    for ax in (ax_loss, ax_grad):
        ax.axvline(1.0 / n, color="0.4", linestyle=":", linewidth=1.2)
        ax.axhline(0.0, color="0.2", linewidth=0.8)
        ax.set_xlim(0.0, 1.0)
    ax_loss.text(
        1.0 / n,
        0.98,
        " uniform (1/n)",
        transform=ax_loss.get_xaxis_transform(),
        ha="left",
        va="top",
        fontsize=8,
        color="0.3",
    )
    for a, color in zip(analyses, palette):
        if a.effective_target is not None:
            ax_grad.plot(
                [a.effective_target],
                [0.0],
                marker="o",
                markersize=7,
                color=color,
                markeredgecolor="black",
                zorder=5,
                clip_on=False,
            )
    ax_grad.plot([], [], marker="o", linestyle="", color="0.7", markeredgecolor="black", label="effective target p*")
    ax_grad.legend(title=None, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _footnote(fig, analyses, labels)
    fig.suptitle(f"Learning rule on the symmetric path, {n} classes (non-target outputs (1 − p)/(n − 1))", fontsize=12)
    return fig


def _pull_push_figure(analyses: Sequence[LossAnalysis], labels: list[str], n: int) -> Figure:
    k = len(analyses)
    cols = min(k, 3)
    nrows = math.ceil(k / cols)
    fig = Figure(figsize=(4.3 * cols + 1.6, 3.5 * nrows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
    terms = {
        "total −∂L/∂z_t": ("0.1", "-"),
        "pull (target's own term)": ("#0173b2", "--"),
        "push (other classes' term)": ("#de8f05", ":"),
    }
    for ax, a, label in zip(axes, analyses, labels):
        r = a.rule
        for (name, (color, style)), values in zip(terms.items(), (r.target_grad, r.pull, r.push)):
            ax.plot(r.p, values, color=color, linestyle=style, linewidth=1.8, label=name)
        ax.set_ylim(*_limits(np.concatenate([r.target_grad, r.pull, r.push]), np.tile(r.p, 3), n))
        ax.axhline(0.0, color="0.2", linewidth=0.8)
        ax.axvline(1.0 / n, color="0.4", linestyle=":", linewidth=1.2)
        if a.effective_target is not None:
            ax.plot([a.effective_target], [0.0], marker="o", color="0.1", markersize=6, zorder=5)
        star = "none" if a.effective_target is None else f"{a.effective_target:.3g}"
        ax.set_title(f"{label}\np* = {star}, decomposition: {a.decomposition}", fontsize=10)
        ax.set(xlim=(0.0, 1.0), xlabel="target probability p", ylabel="−∂L/∂z_t and its terms")
    for ax in axes[k:]:
        ax.set_visible(False)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=3, frameon=False)
    _footnote(fig, analyses, labels)
    fig.suptitle(f"Pull toward the target and push from the other classes, {n} classes", fontsize=12)
    return fig


def _taylorglo_figure(analyses: Sequence[LossAnalysis], labels: list[str], n: int) -> Figure:
    import torch

    k = len(analyses)
    fig = Figure(figsize=(11.0, 4.2 * k + 0.4), layout="constrained")
    axes = fig.subplots(k, 2, squeeze=False)
    ys = np.linspace(0.0, 1.0, 201)
    xs = np.linspace(-0.15, 1.15, 157)  # beyond [0, 1] so that the lines x = 0 and x = 1 stand out
    for (ax_map, ax_cut), a, label in zip(axes, analyses, labels):
        theta = torch.tensor(a.theta, dtype=torch.float64)
        grid_x, grid_y = np.meshgrid(xs, ys, indexing="ij")
        f = taylorglo_f(theta, torch.from_numpy(grid_x), torch.from_numpy(grid_y)).numpy()
        bound = float(np.abs(f).max()) or 1.0
        norm = TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)
        filled = ax_map.contourf(grid_y, grid_x, f, levels=21, cmap="vlag", norm=norm)
        lines = ax_map.contour(grid_y, grid_x, f, levels=11, colors="0.25", linewidths=0.6)
        ax_map.clabel(lines, fontsize=7, fmt="%.2g")
        for x_value, name in ((0.0, "x = 0 (other classes)"), (1.0, "x = 1 (target class)")):
            ax_map.axhline(x_value, color="black", linewidth=2.0)
            ax_map.text(
                0.01,
                x_value + 0.02,
                name,
                ha="left",
                va="bottom",
                fontsize=8,
                zorder=10,
                bbox={"facecolor": "white", "alpha": 0.9, "edgecolor": "none", "pad": 1.5},
            )
        fig.colorbar(filled, ax=ax_map, label="f(x, y)", shrink=0.9)
        ax_map.set(
            xlabel="prediction y (softmax output)",
            ylabel="label x (one-hot: 0 or 1 in training)",
            title=f"{label}: contours of f(x, y)",
        )
        f0 = taylorglo_f(theta, torch.zeros_like(torch.from_numpy(ys)), torch.from_numpy(ys)).numpy()
        f1 = taylorglo_f(theta, torch.ones_like(torch.from_numpy(ys)), torch.from_numpy(ys)).numpy()
        ax_cut.plot(ys, f1, color="#0173b2", linewidth=2, label="x = 1 (target class)")
        ax_cut.plot(ys, f0, color="#de8f05", linewidth=2, linestyle="--", label="x = 0 (other classes)")
        ax_cut.axvline(1.0 / n, color="0.4", linestyle=":", linewidth=1.2, label="y = 1/n")
        ax_cut.axhline(0.0, color="0.2", linewidth=0.8)
        ax_cut.set(xlim=(0.0, 1.0), xlabel="prediction y", ylabel="f(x, y)", title="f on the labels training sees")
        ax_cut.legend(loc="best", frameon=True)
        theta_text = ", ".join(f"{v:.3g}" for v in a.theta)
        ax_cut.text(
            0.0, -0.17, f"theta = [{theta_text}]", transform=ax_cut.transAxes, fontsize=8, color="0.3", va="top"
        )
    fig.suptitle("TaylorGLO f(x, y); the training loss is −Σ_c f(x_c, y_c) (larger f is better)", fontsize=12)
    return fig


def plot_analyses(
    analyses: Sequence[LossAnalysis | str],
    out_dir: str | Path,
    n_classes: int | None = None,
    *,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Write the comparison figures for ``analyses`` (or loss specs, analyzed for ``n_classes``) into
    ``out_dir`` as PNG and SVG; return the paths written. All analyses must share one class count."""
    if not analyses:
        raise ConfigError("nothing to plot: give at least one loss")
    items = [a if isinstance(a, LossAnalysis) else analyze_loss(a, n_classes or 0, curves=True) for a in analyses]
    classes = {a.classes for a in items}
    if len(classes) != 1:
        raise ConfigError(f"figures compare losses at one number of classes, got {sorted(classes)}")
    n = classes.pop()
    for a in items:
        if a.rule is None:
            a.rule = learning_rule(a.spec, n, gauge=a.decomposition)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError(f"figure format {bad[0]!r} is not supported; valid: {', '.join(FORMATS)}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create figure directory {str(out)!r}: {exc.strerror}") from None
    labels = _labels(items)
    palette = sns.color_palette("colorblind", len(items))
    paths: list[Path] = []
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", rc=_STYLE):
        paths += _save(_learning_rule_figure(items, labels, n, palette), out, "learning_rule", formats)
        paths += _save(_pull_push_figure(items, labels, n), out, "pull_push", formats)
        taylor = [(a, label) for a, label in zip(items, labels) if a.theta is not None]
        if taylor:
            paths += _save(
                _taylorglo_figure([a for a, _ in taylor], [lb for _, lb in taylor], n), out, "taylorglo_f", formats
            )
    return paths
