"""Two review findings on the report's figures: a loss far left of the label-smoothing arms no longer
stretches the frontier figure's clean-accuracy axis (it is drawn at the left edge with an arrow and its
clean accuracy), and the robust-accuracy figure draws no eps = 0 point for an attack that starts at a larger
budget, with captions that say so and that a cascade's curve is a running worst case."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from matplotlib.container import ErrorbarContainer
from matplotlib.text import Annotation
from synthetic_results import write_synthetic

from robust_glo.reporting import build_report
from robust_glo.reporting.figures import attack_min_eps, curve_points, frontier_figure, robust_accuracy_figure
from robust_glo.reporting.tables import FrontierStudy

BUDGET = ("worst", 0.1)
# loss -> (clean, robust), fractions; the arms span 82-94% clean, "far" lies at 56.1%
ARMS = {"ce": (0.94, 0.50), "label_smoothing:0.2": (0.92, 0.58), "label_smoothing:0.6": (0.82, 0.40)}
OTHERS = {
    "poly1": (0.90, 0.60, 0.56, "inside"),  # clean, robust, frontier, position
    "near": (0.815, 0.30, np.nan, "below-range"),  # not placed, but inside the arms' intervals
    "far": (0.561, 0.25, np.nan, "below-range"),
}
HALF = 0.02  # the half-width of every interval


def _study() -> tuple[FrontierStudy, pd.DataFrame]:
    """A frontier study at one budget, and the summary rows (clean and worst case) behind its intervals."""
    alphas = {"ce": 0.0, "label_smoothing:0.2": 0.2, "label_smoothing:0.6": 0.6}
    points = pd.DataFrame(
        [
            {"loss": s, "alpha": alphas[s], "clean": c, "robust": r, "pareto": s != "label_smoothing:0.6"}
            | {"clean_low": c - HALF, "clean_high": c + HALF, "robust_low": r - HALF, "robust_high": r + HALF}
            for s, (c, r) in ARMS.items()
        ]
    )
    margins = pd.DataFrame(
        [
            {"loss": s, "attack": BUDGET[0], "eps": BUDGET[1], "clean": c, "robust": r, "frontier": f, "position": p}
            for s, (c, r, f, p) in OTHERS.items()
        ]
    )
    rows = []
    for s, (c, r) in {**ARMS, **{s: v[:2] for s, v in OTHERS.items()}}.items():
        for attack, eps, mean in (("clean", 0.0, c), (BUDGET[0], BUDGET[1], r)):
            rows.append({"loss": s, "attack": attack, "eps": eps, "mean": mean, "ci_low": mean - HALF})
            rows[-1]["ci_high"] = mean + HALF
    study = FrontierStudy({s: alphas[s] for s in ARMS}, [BUDGET], {BUDGET: points}, margins)
    return study, pd.DataFrame(rows)


def test_a_loss_far_left_of_the_arms_is_drawn_at_the_edge_not_stretching_the_axis():
    study, summary = _study()
    losses = [*ARMS, *OTHERS]
    fig = frontier_figure(study, summary, {}, losses, {BUDGET: "panel"})
    (ax,) = [a for a in fig.axes if a.get_visible()]
    x0, x1 = ax.get_xlim()
    # the range of the arms and the placed loss, intervals included, padded: 80-96%, not down to 56%
    assert 76 < x0 < 80 and 96 < x1 < 100
    drawn = {
        (round(float(c[0].get_xdata()[0]), 6), round(float(c[0].get_ydata()[0]), 6))
        for c in ax.containers
        if isinstance(c, ErrorbarContainer)
    }
    for s, (c, r, *_) in {**ARMS, **OTHERS}.items():
        assert ((round(100 * c, 6), round(100 * r, 6)) in drawn) == (s != "far"), s
    # "far": a marker at the left edge at its robust accuracy, an arrow to the edge, its clean accuracy named
    (edge,) = [line for line in ax.get_lines() if line.get_gid() == "off-left"]
    x, y = float(edge.get_xdata()[0]), float(edge.get_ydata()[0])
    assert x0 < x < x0 + 0.1 * (x1 - x0) and y == 100 * OTHERS["far"][1]
    (arrow,) = [a for a in ax.texts if isinstance(a, Annotation) and a.arrow_patch is not None]
    assert arrow.xy == (x0, y) and arrow.xyann == (x, y)  # from the marker to the edge: pointing left
    texts = {t.get_text() for t in ax.texts}
    assert "far, clean 56.1% ←" in texts and "far" not in texts
    assert {"ce (α = 0)", "label_smoothing:0.2", "label_smoothing:0.6", "poly1", "near"} <= texts
    assert "far" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_without_an_outlier_the_axis_spans_the_arms_and_the_placed_losses():
    study, summary = _study()
    kept = study.margins[study.margins["loss"] == "poly1"]
    study = FrontierStudy(study.smoothing, study.budgets, study.points, kept)
    fig = frontier_figure(study, summary, {}, [*ARMS, "poly1"], {BUDGET: "panel"})
    (ax,) = [a for a in fig.axes if a.get_visible()]
    x0, x1 = ax.get_xlim()
    assert 76 < x0 < 80 and 96 < x1 < 100
    assert not [line for line in ax.get_lines() if line.get_gid() == "off-left"]
    assert not any(t.get_text().endswith("←") for t in ax.texts)


# ------------------------------------------------------------------------------------ robust accuracy

APGD_T = "apgd-t:cascade=true:min_eps=0.1"


def _curves(losses: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """FGSM at every budget and APGD-T (a cascade) from eps 0.1 on; both with their eps = 0 rows, as the
    attack stage writes them (the clean predictions)."""
    rows, results = [], []
    for k, loss in enumerate(losses):
        for attack, budgets in (("fgsm", (0.0, 0.05, 0.1)), (APGD_T, (0.0, 0.1)), ("worst", (0.0, 0.05, 0.1))):
            for eps in budgets:
                mean = 0.9 - 3 * eps / (1 + k)
                rows.append({"loss": loss, "attack": attack, "eps": eps, "mean": mean})
                rows[-1].update(ci_low=mean - 0.02, ci_high=mean + 0.02)
                results.append({"loss": loss, "seed": 0, "attack": attack, "eps": eps, "norm": "Linf"})
                results[-1]["accuracy"] = mean
    return pd.DataFrame(rows), pd.DataFrame(results)


def test_an_attack_with_min_eps_has_no_point_at_eps_0():
    losses = ["ce", "poly1"]
    summary, results = _curves(losses)
    grid = [0.0, 0.05, 0.1]
    full = curve_points(summary, APGD_T, "ce", grid)
    assert np.isfinite(full["mean"].to_numpy()[[0, 2]]).all()  # the eps = 0 row is there ...
    trimmed = curve_points(summary, APGD_T, "ce", grid, min_eps=0.1)
    assert trimmed["eps"].tolist() == grid
    assert trimmed[["mean", "ci_low", "ci_high"]].iloc[:2].isna().all().all()  # ... but not drawn
    assert trimmed["mean"].iloc[2] == full["mean"].iloc[2]
    fig = robust_accuracy_figure(summary, {}, losses, results)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible() and ax.get_title()}
    apgd, fgsm = panels["APGD-T (cascade, ε ≥ 0.1)"], panels["FGSM"]
    for line in (line for line in apgd.get_lines() if not line.get_label().startswith("_")):
        y = np.asarray(line.get_ydata(), float)
        assert np.isnan(y[:2]).all() and np.isfinite(y[2])
    bars = [c for c in apgd.containers if isinstance(c, ErrorbarContainer)]
    at = {float(seg[0][0]) for c in bars for cols in c[2] for seg in cols.get_segments()}
    assert at == {0.1}  # the lone points' error bars: only at 0.1
    for line in (line for line in fgsm.get_lines() if not line.get_label().startswith("_")):
        assert np.isfinite(np.asarray(line.get_ydata(), float)).all()  # eps = 0 kept where the attack has it
    assert [t.get_text() for t in apgd.get_xticklabels()] == [t.get_text() for t in fgsm.get_xticklabels()]


def test_min_eps_comes_from_the_label_or_else_from_the_params():
    results = pd.DataFrame(
        [
            {"attack": "mine", "eps": 0.0, "params": "{}"},
            {"attack": "mine", "eps": 0.2, "params": json.dumps({"min_eps": 0.2, "cascade_after": ["fgsm"]})},
            {"attack": "odd", "eps": 0.1, "params": "not json"},
        ]
    )
    assert attack_min_eps(APGD_T, results) == 0.1
    assert attack_min_eps("square:cascade=true:min_eps=1.5:norm=l2", results) == 1.5
    assert attack_min_eps("fgsm", results) == 0.0 and attack_min_eps("worst", results) == 0.0
    assert attack_min_eps("mine", results) == 0.2  # a label this process cannot parse
    assert attack_min_eps("odd", results) == 0.0 and attack_min_eps("mine", results.drop(columns="params")) == 0.0


def test_the_robust_accuracy_caption_says_what_is_drawn(tmp_path):
    write_synthetic(tmp_path)
    md = " ".join(build_report(tmp_path).markdown.read_text().split())
    section = md.split("## Robust accuracy against ε", 1)[1].split(" ## ", 1)[0]
    assert "ε = 0, where a panel has it, is the clean accuracy." in section
    assert "has no point below it, not even at ε = 0, since it did not run there" in section
    assert "An attack marked cascade ran only on the inputs that every attack of its norm in the panels" in section
    assert "its curve is the per-input worst case of those attacks and itself (a running worst case)" in section
    assert "(an attack that starts at a larger ε has no points below it)" not in section
