"""A report that reads at a glance: readable attack names, the verdict as a table with the prose below it,
curves that break where an attack did not run, a style per loss that tells every loss apart, wide tables
that scroll, and a coverage bullet that names exactly what the AutoAttack ensemble lacks."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from matplotlib.lines import Line2D
from synthetic_results import write_synthetic

from robust_glo.reporting import build_report
from robust_glo.reporting.evidence import verdict_table
from robust_glo.reporting.figures import curve_points, loss_styles, per_seed_figure, robust_accuracy_figure
from robust_glo.reporting.render import html_table
from robust_glo.reporting.tables import attack_names
from robust_glo.reporting.verdict import build_verdict
from robust_glo.robustness.attacks import autoattack_coverage, display_name

NAN = math.nan
AA = ["apgd-ce:cascade=true", "apgd-t:cascade=true", "fab-t:cascade=true", "square:cascade=true"]
APGD = "apgd-ce:cascade=true:min_eps=0.1"


# ------------------------------------------------------------------------------------ display names


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("fgsm", "FGSM"),
        ("pgd", "PGD-10"),
        ("pgd:steps=20", "PGD-20"),
        ("pgd:restarts=2:steps=20", "PGD-20 (2 restarts)"),
        ("pgd:norm=l2:steps=20", "PGD-20 L2"),
        ("pgd:random_start=false", "PGD-10 (no random start)"),
        ("apgd-ce:cascade=true:min_eps=0.1", "APGD-CE (cascade, ε ≥ 0.1)"),
        ("apgd-ce:cascade=true:min_eps=1.5:norm=l2", "APGD-CE L2 (cascade, r ≥ 1.5)"),
        ("apgd-ce:steps=50", "APGD-CE (50 steps)"),
        ("apgd-dlr", "APGD-DLR"),
        ("apgd-t:targets=3", "APGD-T (3 targets)"),
        ("fab-t:cascade=true", "FAB-T (cascade)"),
        ("square", "Square (5,000 queries)"),
        ("square:cascade=true:min_eps=0.1:n_queries=1000", "Square (1,000 queries, cascade, ε ≥ 0.1)"),
        ("aa-reference", "AutoAttack"),
        ("worst", "worst case"),
        ("worst:l2", "worst case L2"),
        ("clean", "clean"),
        ("not-registered:x=1", "not-registered:x=1"),
    ],
)
def test_display_names(spec, name):
    assert display_name(spec) == name


def test_display_names_without_schedule_and_distinct_for_distinct_specs():
    assert display_name("square:cascade=true:min_eps=0.1:n_queries=1000", schedule=False) == "Square (1,000 queries)"
    assert display_name("apgd-ce:cascade=true:min_eps=0.1", schedule=False) == "APGD-CE"
    specs = ["pgd", "pgd:steps=20", "pgd:restarts=3", "pgd:alpha=0.01", "pgd:norm=l2", "pgd:random_start=false"]
    assert len({display_name(s) for s in specs}) == len(specs)
    # Two labels of the same attack would share a name: the report keeps their specs to tell them apart.
    assert attack_names(["fgsm", "apgd-ce", "apgd-ce:steps=100"]) == {
        "fgsm": "FGSM",
        "apgd-ce": "apgd-ce",
        "apgd-ce:steps=100": "apgd-ce:steps=100",
    }


# ------------------------------------------------------------------------------------ the verdict table


def _row(loss, attack, eps, mean, diff=NAN, significant=False, p_adj=NAN):
    return {
        "loss": loss,
        "attack": attack,
        "eps": eps,
        "mean": mean,
        "diff": diff,
        "diff_ci_low": diff - 0.02,
        "diff_ci_high": diff + 0.02,
        "p_adjusted": p_adj,
        "significant": significant,
        "compared": loss != "ce",
    }


def _diag(loss, check, norm="Linf", eps=0.1):
    return {"loss": loss, "seed": 0, "check": check, "norm": norm, "eps": eps, "status": "pass", "value": 0.0}


def _passed(losses=("ls", "poly"), budgets=(0.02, 0.1)):
    rows = []
    for loss in (*losses, "ce"):
        rows += [_diag(loss, "gradients", norm="", eps=NAN), _diag(loss, "unbounded", eps=0.5)]
        for eps in budgets:
            rows.append(_diag(loss, "more_effort", eps=eps))
            if loss != "ce":
                rows.append(_diag(loss, "transfer", eps=eps))
    return pd.DataFrame(rows)


def _mixed_verdict(coverage):
    """ls: more robust at both budgets; poly: less robust at 0.1 and lower clean accuracy."""
    rows = [_row("ce", "clean", 0.0, 0.88), _row("ls", "clean", 0.0, 0.87, -0.01, False, 0.4)]
    rows += [_row("poly", "clean", 0.0, 0.80, -0.08, True, 0.001)]
    rows += [_row("ce", "worst", 0.02, 0.6), _row("ls", "worst", 0.02, 0.7, 0.10, True, 0.001)]
    rows += [_row("poly", "worst", 0.02, 0.6, 0.0, False, 1.0)]
    rows += [_row("ce", "worst", 0.1, 0.2), _row("ls", "worst", 0.1, 0.25, 0.05, True, 0.002)]
    rows += [_row("poly", "worst", 0.1, 0.1, -0.10, True, 0.003)]
    return build_verdict(
        pd.DataFrame(rows),
        {},
        "ce",
        dataset="digits",
        budget="50 steps",
        correction="Holm",
        coverage=coverage,
        diagnostics=_passed(),
    )


def test_the_verdict_table_shows_sign_difference_interval_attacks_and_counting():
    coverage = {
        ("linf", 0.02): autoattack_coverage(["fgsm", "pgd:steps=20"], 0.02, "linf", 10),
        ("linf", 0.1): autoattack_coverage(["fgsm", "pgd:steps=20"] + AA, 0.1, "linf", 10),
    }
    verdict = _mixed_verdict(coverage)
    table = verdict_table(verdict.claims, verdict.clean)
    assert "\u00a0" in table.iloc[0, 1]  # a number and its interval never break across lines
    table = table.map(lambda text: text.replace("\u00a0", " "))
    assert list(table.columns) == ["loss", "clean accuracy", "ε = 0.02", "ε = 0.1"]
    cells = table.set_index("loss")
    assert cells.loc["ls"].tolist() == [
        "-1.0 [-3.0, +1.0]",
        "↑ +10.0 [+8.0, +12.0] not counted: AutoAttack incomplete",
        "↑ +5.0 [+3.0, +7.0] counted",
    ]
    assert cells.loc["poly"].tolist() == ["↓ -8.0 [-10.0, -6.0]", "+0.0 [-2.0, +2.0]", "↓ -10.0 [-12.0, -8.0] counted"]
    assert cells.loc["attacks behind it"].tolist() == [
        "–",
        "FGSM, PGD-20",
        "FGSM, PGD-20, APGD-CE, APGD-T, FAB-T, Square (5,000 queries)",
    ]
    assert cells.loc["AutoAttack ensemble"].tolist() == [
        "–",
        "lacks APGD-CE (100 steps), APGD-T (9 targets, 100 steps), FAB-T (9 targets, 100 steps), "
        "Square (5,000 queries)",
        "complete",
    ]
    # The headline names the counted claims in both directions, then the significant ones not counted.
    assert (
        "more robust than ce under the worst case at ε = 0.1 (which includes the full AutoAttack ensemble)"
        in verdict.answer
    )
    assert "blocking diagnostics (more_effort, unbounded, gradients, transfer) were run and passed" in verdict.answer
    assert "significant after Holm correction: ls at ε = 0.1. Less robust than ce: poly at ε = 0.1." in verdict.answer
    assert verdict.answer.endswith("(see the table): more robust: ls at ε = 0.02.")


def test_the_headline_names_less_robust_losses_when_nothing_is_verified():
    coverage = {("linf", e): autoattack_coverage(["fgsm"], e, "linf", 10) for e in (0.02, 0.1)}
    verdict = _mixed_verdict(coverage)
    assert verdict.answer.endswith(
        "Under the weaker attacks, 3 significant difference(s), stated below but not counted: more robust: ls at "
        "ε = 0.02, 0.1; less robust: poly at ε = 0.1."
    )
    assert not verdict.claims["counted"].any()


def test_the_last_bullet_says_what_ran_and_exactly_what_is_missing():
    # APGD-CE (100 steps) ran at both budgets: it is not missing, and the bullet does not pretend nothing strong ran.
    attacks = ["fgsm", "pgd", "apgd-ce:cascade=true"]
    coverage = {("linf", e): autoattack_coverage(attacks, e, "linf", 10) for e in (0.02, 0.1)}
    bullet = _mixed_verdict(coverage).bullets[-1]
    assert bullet == (
        "AutoAttack coverage (APGD-CE, APGD-T, FAB-T and Square with 5,000 queries in the worst case): no budget is "
        "verified; at ε = 0.02, 0.1 the worst case rests on FGSM, PGD-10, APGD-CE, and the ensemble lacks APGD-T "
        "(9 targets, 100 steps), FAB-T (9 targets, 100 steps), Square (5,000 queries): claims there are stated but "
        "not counted."
    )
    assert "strong" not in bullet and "APGD-CE (100 steps)" not in bullet


def test_the_report_opens_with_the_headline_then_the_table_then_the_prose(tmp_path):
    write_synthetic(tmp_path)
    md = build_report(tmp_path).markdown.read_text()
    verdict = md.split("## Verdict", 1)[1].split("\n## ", 1)[0]
    headline = verdict.index("**On digits")
    table = verdict.index("| loss | clean accuracy | ε = 0.05 | ε = 0.1 |")
    prose = verdict.index("- **label_smoothing:0.1**:")
    assert headline < table < prose
    assert "| attacks behind it | – | FGSM, PGD-10 | FGSM, PGD-10 |" in verdict
    subtitle = md.split("\n## ", 1)[0]
    assert "attacks FGSM, PGD-10." in subtitle and "pgd:steps=10" not in subtitle


# ------------------------------------------------------------------------------------ figures


def _curves_inputs(losses):
    """A summary with FGSM at every budget, APGD-CE only from eps 0.1, the worst case, and an L2 PGD."""
    rows, results = [], []
    for k, loss in enumerate(losses):
        for attack, budgets, norm in (
            ("fgsm", (0.0, 0.05, 0.1), "Linf"),
            (APGD, (0.0, 0.1), "Linf"),
            ("worst", (0.0, 0.05, 0.1), "Linf"),
            ("pgd:norm=l2:steps=20", (0.5, 1.5), "L2"),
        ):
            for eps in budgets:
                mean = 0.9 - 3 * eps / (1 + k) - (0.01 if attack == APGD else 0.0)
                rows.append({"loss": loss, "attack": attack, "eps": eps, "mean": mean})
                rows[-1].update(ci_low=mean - 0.02, ci_high=mean + 0.02)
                results.append({"loss": loss, "seed": 0, "attack": attack, "eps": eps, "norm": norm, "accuracy": mean})
    return pd.DataFrame(rows), pd.DataFrame(results)


def _lines(ax) -> dict[str, Line2D]:
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_curves_break_where_an_attack_did_not_run():
    losses = ["ce", "ls"]
    summary, results = _curves_inputs(losses)
    points = curve_points(summary, APGD, "ce", [0.0, 0.05, 0.1])
    assert points["eps"].tolist() == [0.0, 0.05, 0.1] and np.isnan(points["mean"].iloc[1])
    fig = robust_accuracy_figure(summary, {}, losses, results)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible() and ax.get_title()}
    assert list(panels) == [
        "FGSM",
        "APGD-CE (cascade, ε ≥ 0.1)",
        "worst case over attacks (per sample)",
        "PGD-20 L2",
    ]
    for loss in losses:
        apgd = _lines(panels["APGD-CE (cascade, ε ≥ 0.1)"])[loss]
        x, y = np.asarray(apgd.get_xdata(), float), np.asarray(apgd.get_ydata(), float)
        assert x.tolist() == [0.0, 0.05, 0.1]
        assert np.isnan(y[:2]).all() and np.isfinite(y[2])  # nothing below its min_eps, not even eps = 0
        fgsm = np.asarray(_lines(panels["FGSM"])[loss].get_ydata(), float)
        assert np.isfinite(fgsm).all() and len(fgsm) == 3
        l2 = _lines(panels["PGD-20 L2"])[loss]
        assert np.asarray(l2.get_xdata(), float).tolist() == [0.5, 1.5]
    per_seed = per_seed_figure(results, {}, losses)
    # the panels of the curves, the worst case included: the seeds behind the quantity the verdict rests on
    assert [ax.get_title() for ax in per_seed.axes if ax.get_visible()] == [
        "FGSM",
        "APGD-CE (cascade, ε ≥ 0.1)",
        "worst case over attacks (per sample)",
        "PGD-20 L2",
    ]
    apgd_ax = next(ax for ax in per_seed.axes if ax.get_title() == "APGD-CE (cascade, ε ≥ 0.1)")
    assert [t.get_text() for t in apgd_ax.get_xticklabels()] == ["0.1"]  # no clean (eps 0) column below min_eps


def test_every_loss_is_distinguishable_with_a_colour_blind_safe_palette():
    labels = [f"loss {k}" for k in range(25)]
    styles = loss_styles(labels)
    triples = {(s.colour, s.marker, s.linestyle) for s in styles.values()}
    assert len(triples) == len(labels)
    safe = {tuple(c) for c in sns.color_palette("colorblind")}
    assert {s.colour for s in styles.values()} <= safe
    first = [styles[label] for label in labels[:10]]
    assert len({s.colour for s in first}) == 10 and len({s.marker for s in first}) == 10
    # In the figure: 12 losses, more than the palette's 10 colours, still 12 distinct line styles.
    losses = labels[:12]
    summary, results = _curves_inputs(losses)
    fig = robust_accuracy_figure(summary, {}, losses, results)
    lines = _lines(fig.axes[0])
    drawn = {(tuple(np.round(line.get_color(), 6)), line.get_marker(), line.get_linestyle()) for line in lines.values()}
    assert len(lines) == 12 and len(drawn) == 12
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == losses


# ------------------------------------------------------------------------------------ HTML


class _Nesting(HTMLParser):
    """Records, for every <table>, the tag and class of the element it sits in."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, str]] = []
        self.parents: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.parents.append(self.stack[-1])
        if tag not in ("meta", "img", "br", "hr", "link"):
            self.stack.append((tag, dict(attrs).get("class") or ""))

    def handle_endtag(self, tag):
        if tag not in ("meta", "img", "br", "hr", "link"):
            self.stack.pop()


def test_every_table_sits_in_a_horizontal_scroll_wrapper(tmp_path):
    write_synthetic(tmp_path)
    html = build_report(tmp_path).html.read_text()
    parser = _Nesting()
    parser.feed(html)
    assert len(parser.parents) > 5 and set(parser.parents) == {("div", "table-scroll")}
    css = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    assert re.search(r"\.table-scroll\{[^}]*overflow-x:auto", css)
    assert "<caption>" not in html  # captions stand above the wrapper, so they do not scroll away
    wide = html_table(pd.DataFrame([["x" * 30] * 20], columns=[f"c{k}" for k in range(20)]), "A caption.", nowrap=True)
    assert wide.startswith('<div class="table-block"><p class="caption">A caption.</p><div class="table-scroll"')
    assert '<table class="nowrap">' in wide and wide.endswith("</table></div></div>")


def test_the_summary_shows_the_linf_worst_case_before_the_l2_one():
    from types import SimpleNamespace

    from robust_glo.reporting.tables import shown_columns

    results = pd.DataFrame({"attack": ["clean", "pgd", "pgd:norm=l2", "worst", "worst:l2"]})
    summary = pd.DataFrame(
        {"attack": ["pgd", "pgd:norm=l2", "worst:l2", "worst"], "eps": [0.1, 1.5, 1.5, 0.1], "loss": "ce"}
    )
    headers = [h for h, _, _ in shown_columns(SimpleNamespace(results=results), summary)]
    assert headers[-2:] == ["worst case ε=0.1 (%)", "worst case L2 r=1.5 (%)"]


def test_the_reliability_lines_point_to_failed_diagnostics():
    from types import SimpleNamespace

    from robust_glo.reporting.build import _diagnostics_aside

    rows = [("ce", 0, "pass"), ("ls", 0, "fail"), ("ls", 0, "fail"), ("ls", 1, "fail"), ("ls", 2, "not run")]
    d = pd.DataFrame(rows, columns=["loss", "seed", "status"])
    text = _diagnostics_aside(SimpleNamespace(diagnostics=d))
    assert text == (
        " The diagnostics are a separate set (whether the attacks could have been fooled): 3 of them failed, on "
        "2 network(s) (loss × seed); see Diagnostics."
    )
    assert _diagnostics_aside(SimpleNamespace(diagnostics=d[d["status"] != "fail"])) == ""
    assert _diagnostics_aside(SimpleNamespace(diagnostics=None)) == ""


def test_an_analysed_loss_that_was_never_trained_is_said_to_be_for_comparison(tmp_path):
    import json

    from synthetic_results import write_synthetic

    from robust_glo.reporting import build_report

    write_synthetic(tmp_path)
    path = tmp_path / "analysis" / "analysis.json"
    analysis = json.loads(path.read_text())
    path.write_text(json.dumps(analysis + [dict(analysis[1], spec="label_smoothing:0.2")]))
    md = build_report(tmp_path).markdown.read_text()
    section = md.split("\n## Loss analysis\n", 1)[1].split("\n## ", 1)[0]
    assert "label_smoothing:0.2 is analysed for comparison only (the suite's `[analyze] extra_losses`)" in section
    assert "ce is analysed" not in section


def test_the_claims_table_counts_only_claims():
    from robust_glo.reporting.evidence import claims_table

    base = {"loss": "x", "budget": "ε = 0.1", "diff": 0.01, "diff_ci_low": -0.02, "diff_ci_high": 0.04}
    base |= {"p_adjusted": 0.5, "attacks": "FGSM", "verified": True, "diagnostics_failed": ""}
    rows = [
        base | {"direction": "no evidence", "counted": False},
        base | {"direction": "more robust", "counted": False},
        base | {"direction": "more robust", "counted": True},
    ]
    assert claims_table(pd.DataFrame(rows))["counted"].tolist() == ["—", "no", "yes"]
