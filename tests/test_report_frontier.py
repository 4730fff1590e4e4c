"""The report's "Against label smoothing" section: the frontier of the label-smoothing arms per worst-case
budget, every other loss's margin above it (the numbers of `frontier_margins`), its figure, and wording
that says where the worst case is not AutoAttack-verified; and the verdict's sentence per budget against
label smoothing (who lies above the frontier, counted or not, at what clean cost; or that none does, and
why)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from scipy import stats
from synthetic_results import LOSSES, write_outcome_study, write_synthetic

from robust_glo.reporting import build_report
from robust_glo.reporting import evidence as E
from robust_glo.reporting import tables as T
from robust_glo.reporting import verdict as V
from robust_glo.reporting.build import _settings
from robust_glo.reporting.figures import frontier_figure
from robust_glo.reporting.inputs import load_inputs
from robust_glo.reporting.tables import frontier_study, summary_stats
from robust_glo.robustness.attacks.coverage import Coverage
from robust_glo.robustness.bootstrap import HierarchicalBootstrap
from robust_glo.robustness.frontier import envelope, frontier_margins
from robust_glo.robustness.statistics import minimum_detectable

N = 600
SEEDS = (0, 1, 2, 3, 4)
EPS = (0.1, 0.2)
BEATS_UNVERIFIED = "a label-smoothing arm beats it on both axes; not verified against AutoAttack, so not counted"
# loss -> (clean accuracy, robust accuracy at each eps of EPS)
TRUTH = {
    "ce": (0.90, (0.10, 0.05)),
    "label_smoothing:0.2": (0.88, (0.20, 0.10)),
    "label_smoothing:0.6": (0.85, (0.30, 0.15)),
    "label_smoothing:0.9": (0.80, (0.25, 0.12)),  # dominated by 0.6: off the frontier
    "poly1": (0.87, (0.45, 0.30)),  # far above it
    "focal:2": (0.865, (0.265, 0.13)),  # on it
    "sq": (0.875, (0.02, 0.01)),  # far below it
    "baikal": (0.70, (0.60, 0.40)),  # clean accuracy below every arm's: not placed
}
ANALYSIS = {"poly1": (None, None), "focal:2": (0.8, 0.2222), "baikal": (0.3162, 0.7597)}


def write_frontier_study(root, truth: dict[str, tuple[float, tuple[float, float]]] = TRUTH) -> pd.DataFrame:
    """results.csv, outcomes.csv, suite.json and analysis.json of a study with four label-smoothing arms."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shared = {seed: rng.random(N) for seed in SEEDS}  # image difficulty, shared by a seed's networks
    cells = []
    for loss, (pc, robust) in truth.items():
        for seed in SEEDS:
            u = np.clip(shared[seed] + rng.normal(0, 0.03, N), 0, 1)
            cells += [(loss, seed, a, 0.0, u < pc) for a in ("clean", "fgsm", "worst")]
            for eps, pr in zip(EPS, robust):
                cells += [(loss, seed, "fgsm", eps, u < pr), (loss, seed, "worst", eps, u < pr)]
    outcomes = write_outcome_study(root, cells, "frontier")
    (root / "analysis").mkdir(exist_ok=True)
    analysis = [
        {"spec": spec, "classes": 10, "effective_target": p, "label_smoothing_equivalent": a}
        for spec, (p, a) in ANALYSIS.items()
        if spec in truth
    ]
    (root / "analysis" / "analysis.json").write_text(json.dumps(analysis))
    return outcomes


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("frontier")
    outcomes = write_frontier_study(root)
    paths = build_report(root)
    md = paths.markdown.read_text()
    section = md.split("\n## Against label smoothing\n", 1)[1].split("\n## ", 1)[0]
    return root, outcomes, paths, section


def _rows(section: str) -> dict[tuple[str, str], list[str]]:
    """The frontier table: (budget, loss) -> the other cells, without the sensitivity column (the margin to
    the arms' line, a signed point estimate or "—"; tested in test_frontier.py)."""
    out = {}
    for line in section.splitlines():
        if line.startswith("| ε = "):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            arms = cells.pop(7)
            assert arms == "—" or arms[0] in "+-"
            out[cells[0], cells[1]] = cells[2:]
    return out


def _expected_margins(outcomes: pd.DataFrame) -> pd.DataFrame:
    """`frontier_margins` on a bootstrap of every outcome (the report builds one of the clean and
    worst-case rows only: the same replicates), with the suite's settings."""
    boot = HierarchicalBootstrap(outcomes, n_boot=1000, seed=0)
    return frontier_margins(boot, list(TRUTH), [("worst", e) for e in EPS], correction="holm", alpha=0.05)


def test_the_table_is_frontier_margins_output(study):
    _, outcomes, _, section = study
    margins = _expected_margins(outcomes)
    rows = _rows(section)
    assert len(rows) == len(margins) == 4 * len(EPS)  # every non-smoothing loss at every budget
    for r in margins.to_dict("records"):
        cells = rows[f"ε = {r['eps']:g}", r["loss"]]
        clean, robust, front, margin, p, position, result, p_star, alpha = cells
        assert clean == f"{100 * r['clean']:.1f}" and robust == f"{100 * r['robust']:.1f}"
        assert position == r["position"]
        if r["position"] == "below-range":
            assert front == margin == p == "—" and result == "not placed"
            continue
        assert front == f"{100 * r['frontier']:.1f}"
        low, high = 100 * r["margin_ci_low"], 100 * r["margin_ci_high"]
        assert margin == f"{100 * r['margin']:+.1f} [{low:+.1f}, {high:+.1f}]"
        assert p == (f"{r['p_adjusted']:.3f}" if r["p_adjusted"] >= 0.001 else f"{r['p_adjusted']:.1e}")
        assert result == ("above" if r["beats"] else "below" if r["below"] else "not distinguishable")
    by_loss = margins.groupby("loss")
    assert by_loss["beats"].all()["poly1"] and by_loss["below"].all()["sq"]
    assert not by_loss["beats"].any()[["focal:2", "sq", "baikal"]].any()
    assert rows["ε = 0.1", "poly1"][7:] == ["none", "none"]  # pursues p -> 1
    assert rows["ε = 0.1", "baikal"][7:] == ["0.316", "0.760"] and rows["ε = 0.1", "sq"][7:] == ["—", "—"]


def test_the_prose_names_who_beats_label_smoothing_and_says_it_is_not_verified(study):
    _, _, _, section = study
    bullets = [line for line in section.splitlines() if line.startswith("- At ε = ")]
    assert len(bullets) == len(EPS)
    for bullet in bullets:
        assert "(worst case of FGSM, not verified against AutoAttack)" in bullet
        assert "): beats label smoothing under these attacks, but not counted (AutoAttack incomplete; " in bullet
        assert "diagnostics not run: " in bullet and "): poly1 (+" in bullet
        assert bullet.count("beats label smoothing") == 1  # only where frontier_margins says beats
        assert f"below the frontier ({BEATS_UNVERIFIED}): sq (" in bullet
        assert "not distinguishable from the frontier (no evidence either way): focal:2 (" in bullet
        assert "not placed (clean accuracy below every label-smoothing arm's): baikal (clean 70." in bullet
    assert "Label smoothing was measured at α = 0, 0.2, 0.6, 0.9." in section
    assert "The α(p*) of focal:2 lies outside" not in section  # 0.2222 is inside [0, 0.9]


def _verdict(md: str) -> dict[str, str]:
    """The verdict's sentences against label smoothing: budget ("ε = 0.1") -> its bullet, without the
    sentences on the frontier's shape that follow it (tested on their own)."""
    verdict = md.split("\n## Verdict\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in verdict.splitlines() if line.startswith("- **Against label smoothing at ")]
    assert all(" The frontier here (clean, robust accuracy in %) is " in line for line in lines)
    lines = [line.split(" The frontier here (clean, robust accuracy in %) is ", 1)[0] for line in lines]
    return {line.split(" at ", 1)[1].split("**", 1)[0]: line for line in lines}


def _clean_vs_ce(summary: pd.DataFrame, loss: str) -> str:
    return V.diff_text(summary[(summary["loss"] == loss) & (summary["attack"] == "clean")].iloc[0])


def test_the_verdict_answers_against_label_smoothing_per_budget(study):
    _, _, paths, section = study
    md, rows = paths.markdown.read_text(), _rows(section)
    summary = pd.read_csv(paths.summary)
    sentences = _verdict(md)
    assert list(sentences) == [f"ε = {e:g}" for e in EPS]  # one sentence per budget
    for budget, text in sentences.items():
        clean, _, _, margin, p = rows[budget, "poly1"][:5]
        assert text.startswith(
            f"- **Against label smoothing at {budget}**, not verified against AutoAttack (worst case of: FGSM): "
            "no loss counts as above the frontier at its own clean accuracy; above it but not counted "
            "(AutoAttack incomplete; "
        )
        # the frontier's numbers, the clean cost against ce from the statistics
        assert (
            f"): poly1 (margin {margin} points, corrected p = {p}; clean accuracy {clean}%, against ce "
            f"{_clean_vs_ce(summary, 'poly1')})" in text
        )
        # and why none counts: who lies below it, on it (with α(p*)), and who could not be placed
        assert (
            f"; below it ({BEATS_UNVERIFIED}): "
            f"sq ({rows[budget, 'sq'][3]} points, corrected p = {rows[budget, 'sq'][4]}); " in text
        )
        assert (
            f"; not distinguishable from it (no evidence either way): focal:2 ({rows[budget, 'focal:2'][3]} "
            "points, corrected p = "
            f"{rows[budget, 'focal:2'][4]}; its target is label smoothing's at α(p*) = 0.222); " in text
        )
        assert text.endswith(
            f"; not placed (clean accuracy below every arm's): baikal (clean {rows[budget, 'baikal'][0]}%; its "
            "target is label smoothing's at α(p*) = 0.760)."
        )


def test_the_verdict_says_no_loss_is_above_and_why(tmp_path):
    write_frontier_study(tmp_path, {loss: v for loss, v in TRUTH.items() if loss != "poly1"})
    md = build_report(tmp_path).markdown.read_text()
    rows = _rows(md.split("\n## Against label smoothing\n", 1)[1].split("\n## ", 1)[0])
    for eps in EPS:
        budget = f"ε = {eps:g}"
        assert rows[budget, "sq"][6] == "below" and rows[budget, "focal:2"][6] == "not distinguishable"
        assert _verdict(md)[budget] == (
            f"- **Against label smoothing at {budget}**, not verified against AutoAttack (worst case of: FGSM): "
            f"no loss is shown above the frontier at its own clean accuracy; below it ({BEATS_UNVERIFIED}): "
            f"sq ({rows[budget, 'sq'][3]} points, corrected p = {rows[budget, 'sq'][4]}); not distinguishable "
            "from it (no evidence either way): focal:2 "
            f"({rows[budget, 'focal:2'][3]} points, corrected p = {rows[budget, 'focal:2'][4]}; its target "
            "is label smoothing's at α(p*) = 0.222); not placed (clean accuracy below every arm's): baikal "
            f"(clean {rows[budget, 'baikal'][0]}%; its target is label smoothing's at α(p*) = 0.760)."
        )
    # no budget is AutoAttack-verified: the label-smoothing headline says so, and leads the verdict
    verdict = md.split("\n## Verdict\n", 1)[1]
    assert verdict.lstrip().startswith(
        "**Against label smoothing: no budget's worst case is AutoAttack-verified, so no loss can be shown above "
        "the label-smoothing frontier.**"
    )
    assert verdict.index("**Against label smoothing:") < verdict.index("**On digits, at this budget")


def test_the_figure_draws_the_envelope_and_every_other_loss(study):
    root, _, paths, section = study
    assert (root / "figures" / "frontier.png").is_file() and "](figures/frontier.png)" in section
    inputs = load_inputs(root)
    settings = _settings(inputs)
    summary = summary_stats(inputs, settings)
    result = frontier_study(inputs, settings, summary)
    labels = {s: inputs.label(s) for s in inputs.losses}
    titles = {b: f"panel {b[1]:g}" for b in result.budgets}
    fig = frontier_figure(result, summary, labels, inputs.losses, titles)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["panel 0.1", "panel 0.2"]
    for ax, budget in zip(axes, result.budgets):
        points = result.points[budget]
        env_c, env_r = envelope(points["clean"].to_numpy(), points["robust"].to_numpy())
        (line,) = [line for line in ax.get_lines() if line.get_label() == "frontier"]
        assert np.asarray(line.get_xdata()).tolist() == pytest.approx((100 * env_c).tolist())
        assert np.asarray(line.get_ydata()).tolist() == pytest.approx((100 * env_r).tolist())
        assert set(points["loss"]) == {s for s in TRUTH if s == "ce" or s.startswith("label_smoothing")}
        drawn = {
            (round(float(c[0].get_xdata()[0]), 6), round(float(c[0].get_ydata()[0]), 6))
            for c in ax.containers
            if isinstance(c, ErrorbarContainer)
        }
        margins = result.margins[result.margins["eps"] == budget[1]]
        for frame in (points, margins[margins["position"] != "below-range"]):
            for r in frame.itertuples():
                assert (round(100 * r.clean, 6), round(100 * r.robust, 6)) in drawn
        texts = {t.get_text() for t in ax.texts}
        assert {"ce (α = 0)", "label_smoothing:0.2", "poly1", "sq", "focal:2"} <= texts
        (baikal,) = margins[margins["loss"] == "baikal"].itertuples()  # not placed: at the left edge
        assert f"baikal, clean {100 * baikal.clean:.1f}% ←" in texts and ax.get_xlim()[0] > 100 * baikal.clean


def _diagnostics(root, status="pass", failing=()) -> None:
    """diagnostics.csv with every blocking check judged on every seed of every loss at every budget."""
    rows = []
    for loss in TRUTH:
        for seed in SEEDS:
            figures = {"value": 0.0, "threshold": 0.02, "n": N, "detail": ""}
            rows.append({"loss": loss, "seed": seed, "check": "gradients", "norm": "", "eps": "", "status": status})
            rows[-1] |= figures
            for eps in EPS:
                for check in ("more_effort", "unbounded", "transfer"):
                    if check == "transfer" and loss == "ce":
                        continue  # the baseline is the transfer source
                    bad = (loss, check) in failing
                    row = {"loss": loss, "seed": seed, "check": check, "norm": "Linf", "eps": eps}
                    rows.append(row | figures | {"status": "fail" if bad else status})
    pd.DataFrame(rows).to_csv(root / "diagnostics.csv", index=False)


def _verified_at_01(monkeypatch) -> None:
    """The report's coverage: the full AutoAttack ensemble at eps 0.1, FGSM alone at 0.2."""
    ensemble = ("apgd-ce", "apgd-t", "fab-t", "square:n_queries=5000")
    monkeypatch.setattr(
        E,
        "report_coverage",
        lambda inputs: {
            ("linf", 0.1): Coverage(True, ensemble, ()),
            ("linf", 0.2): Coverage(False, ("fgsm",), ("APGD-CE (100 steps)",)),
        },
    )


def test_a_verified_budget_says_beats_plainly(tmp_path, monkeypatch):
    write_frontier_study(tmp_path)
    _diagnostics(tmp_path)
    _verified_at_01(monkeypatch)
    paths = build_report(tmp_path)
    md = paths.markdown.read_text()
    section = md.split("\n## Against label smoothing\n", 1)[1]
    verified, unverified = [line for line in section.splitlines() if line.startswith("- At ε = ")]
    assert (
        verified.startswith("- At ε = 0.1 (worst case of APGD-CE, APGD-T, FAB-T, Square")
        and "AutoAttack-verified)" in verified
    )
    assert "beats label smoothing: poly1 (+" in verified and "not verified" not in verified
    assert unverified.startswith("- At ε = 0.2 (worst case of FGSM, not verified against AutoAttack)")
    assert "beats label smoothing under these attacks, but not counted (AutoAttack incomplete): poly1" in unverified
    # the verdict: counted where the frontier section says so, named with its margin, and nothing else there
    rows = _rows(section)
    clean, _, _, margin, p = rows["ε = 0.1", "poly1"][:5]
    summary = pd.read_csv(paths.summary)
    sentences = _verdict(md)
    # every loss is accounted for, also once one counts as above the frontier
    assert sentences["ε = 0.1"].startswith(
        "- **Against label smoothing at ε = 0.1**, AutoAttack-verified: above the frontier at its own clean "
        f"accuracy, counted: poly1 (margin {margin} points, corrected p = {p}; clean accuracy {clean}%, against "
        f"ce {_clean_vs_ce(summary, 'poly1')}); below it (a label-smoothing arm beats it on both axes): sq ("
    )
    assert "; not distinguishable from it (no evidence either way): focal:2 (" in sentences["ε = 0.1"]
    assert "; not placed (clean accuracy below every arm's): baikal (" in sentences["ε = 0.1"]
    # the headline against label smoothing leads the verdict, then the answer against ce
    verdict = md.split("\n## Verdict\n", 1)[1].split("\n## ", 1)[0]
    assert verdict.lstrip().startswith(
        "**Against label smoothing, above its frontier at their own clean accuracy at the AutoAttack-verified "
        "budgets (ε = 0.1), counted: poly1 at ε = 0.1.**"
    )
    assert verdict.index("- **Against label smoothing at ε = 0.1**") < verdict.index("**On digits, at this budget")
    assert sentences["ε = 0.2"].startswith(
        "- **Against label smoothing at ε = 0.2**, not verified against AutoAttack (worst case of: FGSM): no loss "
        "counts as above the frontier at its own clean accuracy; above it but not counted (AutoAttack "
        "incomplete): poly1 (margin "
    )
    # the verdict's rule: a blocking diagnostic failed by a label-smoothing arm of the frontier blocks it too
    _diagnostics(tmp_path, failing={("label_smoothing:0.6", "transfer")})
    section = build_report(tmp_path).markdown.read_text().split("\n## Against label smoothing\n", 1)[1]
    verified = [line for line in section.splitlines() if line.startswith("- At ε = 0.1")][0]
    assert "beats label smoothing under these attacks, but not counted (" in verified
    assert "failed transfer (5 of 5 seeds)" in verified and "beats label smoothing: poly1" not in verified
    sentence = _verdict(build_report(tmp_path).markdown.read_text())["ε = 0.1"]
    assert ": no loss counts as above the frontier at its own clean accuracy; above it but not counted (" in sentence
    assert "label_smoothing:0.6 failed transfer (5 of 5 seeds)" in sentence and "on both axes): sq (" in sentence
    md = build_report(tmp_path).markdown.read_text()
    verdict = md.split("\n## Verdict\n", 1)[1].split("\n## ", 1)[0]
    assert verdict.lstrip().startswith(
        "**Against label smoothing: no loss is shown above the frontier at its own clean accuracy at any "
        "AutoAttack-verified budget (ε = 0.1). Above it but not counted (diagnostics): poly1 at ε = 0.1.**"
    )


def test_an_interval_clear_of_zero_without_a_significant_p_is_not_no_evidence(tmp_path, monkeypatch):
    # focal:2's margin interval made to exclude 0 with a corrected p above alpha: "not significant after Holm
    # over N comparisons (its per-comparison interval excludes 0)", in the frontier section and the verdict
    write_frontier_study(tmp_path)
    real = T.frontier_study

    def study(*args, **kwargs):
        result = real(*args, **kwargs)
        m = result.margins
        focal = m["loss"] == "focal:2"
        m.loc[focal, ["margin", "margin_ci_low", "margin_ci_high", "p_adjusted"]] = [0.02, 0.005, 0.035, 0.2]
        m.loc[focal, ["beats", "below"]] = False
        return result

    monkeypatch.setattr(T, "frontier_study", study)
    md = build_report(tmp_path).markdown.read_text()
    section = md.split("\n## Against label smoothing\n", 1)[1].split("\n## ", 1)[0]
    unsure = "not significant after Holm over 6 comparisons (its per-comparison interval excludes 0)"
    for bullet in [line for line in section.splitlines() if line.startswith("- At ε = ")]:
        assert f"; {unsure}: focal:2 (+2.0 [+0.5, +3.5] points from the frontier" in bullet
        assert "not distinguishable from the frontier (no evidence either way)" not in bullet
    for text in _verdict(md).values():
        assert f"; {unsure}: focal:2 (+2.0 [+0.5, +3.5] points, corrected p = 0.200; its target" in text
        assert "no evidence" not in text


FLOOR_TRUTH = {
    "ce": (0.90, (0.10, 0.02)),
    "label_smoothing:0.2": (0.88, (0.20, 0.03)),
    "label_smoothing:0.6": (0.85, (0.30, 0.04)),
    "poly1": (0.87, (0.45, 0.08)),
}


@pytest.mark.parametrize("verified", [True, False])
def test_a_verified_budget_at_the_accuracy_floor_says_so(tmp_path, monkeypatch, verified):
    write_frontier_study(tmp_path, FLOOR_TRUTH)
    ensemble = ("apgd-ce", "apgd-t", "fab-t", "square:n_queries=5000")
    monkeypatch.setattr(
        E, "report_coverage", lambda inputs: {("linf", e): Coverage(verified, ensemble, ()) for e in EPS}
    )
    md = build_report(tmp_path).markdown.read_text()
    verdict = md.split("\n## Verdict\n", 1)[1].split("\n## ", 1)[0]
    summary = pd.read_csv(tmp_path / "summary.csv")
    ce = summary[(summary["loss"] == "ce") & (summary["attack"] == "worst") & np.isclose(summary["eps"], 0.2)]
    floor = (
        f"At ε = 0.2 the worst case sits near the accuracy floor: ce keeps {100 * ce['mean'].iloc[0]:.1f}% robust "
        'accuracy and every label-smoothing arm less than 5%, so "no claim" there says little.'
    )
    assert (floor in verdict) == verified
    assert "At ε = 0.1 the worst case sits near" not in verdict  # the arms stand well above the floor there


def test_the_section_needs_two_smoothing_arms(tmp_path):
    write_synthetic(tmp_path / "two")  # ce and label_smoothing:0.1: a frontier of two points
    assert "\n## Against label smoothing\n" in build_report(tmp_path / "two").markdown.read_text()
    one = tmp_path / "one"
    write_synthetic(one)
    for name in ("results.csv", "outcomes.csv"):
        frame = pd.read_csv(one / name)
        frame[frame["loss"] != LOSSES[1]].to_csv(one / name, index=False)  # only ce is left
    md = build_report(one).markdown.read_text()
    assert "Against label smoothing" not in md and not (one / "figures" / "frontier.png").exists()
    bare = tmp_path / "bare"
    write_synthetic(bare, optional=False)  # no outcomes: the frontier's bootstrap cannot run
    md = build_report(bare).markdown.read_text()
    section = md.split("\n## Against label smoothing\n", 1)[1]
    assert section.split("\n## ", 1)[0].count("Not computed: these results have no per-image outcomes") == 1
    verdict = md.split("\n## Verdict\n", 1)[1].split("\n## ", 1)[0]
    assert "- **Against label smoothing**: not computed (these results have no per-image outcomes)." in verdict


def test_the_verdict_states_the_designs_minimum_detectable_difference(tmp_path):
    """The power sentence's numbers are t(df, 1 - alpha / 2M) times each primary cell's bootstrap SE."""
    write_frontier_study(tmp_path, FLOOR_TRUTH)
    md = build_report(tmp_path).markdown.read_text()
    verdict = md.split("\n## Verdict\n", 1)[1].split("\n## ", 1)[0]
    summary = pd.read_csv(tmp_path / "summary.csv")
    cells = minimum_detectable(summary)
    primary = summary[(summary["family"] == "primary") & summary["compared"].astype(bool)]
    assert len(cells) == len(primary) > 0
    m, df = len(primary), float(primary["diff_df"].median())
    t = stats.t.ppf(1 - 0.05 / (2 * m), df)
    np.testing.assert_allclose(cells["min_detectable"], t * primary["diff_se"].to_numpy(), rtol=1e-9)
    robust = cells.loc[cells["attack"] != "clean", "min_detectable"] * 100
    assert f"over the {m} comparisons of the primary family the most significant one must exceed about {t:.1f}" in (
        verdict
    )
    assert f"{robust.median():.1f} percentage points for robust accuracy" in verdict
    assert '"no evidence" here is not evidence of no effect' in verdict
    assert minimum_detectable(summary.assign(family="")).empty  # nothing compared: no sentence to write


def test_the_power_sentence_leaves_out_cells_without_spread_and_caps_at_100_points():
    from robust_glo.reporting.build import _power_sentence

    def summary(se_robust: float, se_flat: float) -> pd.DataFrame:
        rows = [("clean", 0.0, 0.01), ("worst", 0.1, se_robust), ("worst", 0.05, se_flat)]
        return pd.DataFrame(
            [
                {"attack": a, "eps": e, "loss": "ls", "family": "primary", "compared": True, "diff_se": se}
                | {"diff_df": 4.0, "diff": 0.0}
                for a, e, se in rows
            ]
        )

    text = _power_sentence(summary(0.01, 0.0), "Holm", 0.05)
    t = stats.t.ppf(1 - 0.05 / 6, 4.0)
    assert f"{100 * t * 0.01:.1f} percentage points for robust accuracy" in text  # the flat cell is left out
    assert "1 worst-case cell(s) have no spread at all" in text
    assert '"no evidence" here is not evidence of no effect' in text
    huge = _power_sentence(summary(0.5, 0.5), "Holm", 0.05)  # 3 seeds-like SEs: beyond any possible difference
    assert "more than 100 percentage points for robust accuracy" in huge
    assert "no spread" not in huge


def test_where_no_loss_is_above_a_verified_frontier_the_verdict_says_why_from_the_learning_rules(tmp_path, monkeypatch):
    _verified_at_01(monkeypatch)
    write_frontier_study(tmp_path / "none", {loss: v for loss, v in TRUTH.items() if loss != "poly1"})
    _diagnostics(tmp_path / "none")
    verdict = build_report(tmp_path / "none").markdown.read_text().split("\n## Verdict\n", 1)[1].split("\n## ", 1)[0]
    why = next(line for line in verdict.splitlines() if line.startswith("No loss is shown above; the learning"))
    # focal:2 is on the frontier and trains toward label smoothing 0.22's target (inside 0 to 0.9); sq has no
    # analysis; baikal is not placed: neither is named
    assert why.startswith(
        "No loss is shown above; the learning rules (Loss analysis) of the losses placed at the verified "
        "budgets are consistent with that, not evidence for it: focal:2 (α(p*) = 0.22) trains toward the "
        "target of label smoothing at a strength inside the range measured: by its learning rule it has label "
        "smoothing's fixed point. The same fixed point need not give the same network; where each lands "
        "against label smoothing at its own α(p*) (the arms interpolated linearly in α; point estimates, not "
        "tested): at ε = 0.1, focal:2 "
    ) and why.endswith("at α 0.22.")
    # a loss above the frontier at the verified budget: nothing to explain
    write_frontier_study(tmp_path / "above")
    _diagnostics(tmp_path / "above")
    assert "the learning rules (Loss analysis)" not in build_report(tmp_path / "above").markdown.read_text()


def test_the_why_sentence_tells_a_target_below_uniform_from_one_beyond_the_strengths_measured(monkeypatch):
    from types import SimpleNamespace

    from robust_glo.reporting import build as B

    equivalents = {"a": (0.05, 1.05, True), "b": (0.15, 0.95, True), "c": (None, None, False)}
    monkeypatch.setattr(B, "_alpha_equivalents", lambda inputs, study: equivalents)
    reading = B.FrontierReading("worst", 0.1, "linf", SimpleNamespace(verified=True))
    reading.on = [{"loss": k} for k in equivalents]
    inputs = SimpleNamespace(label=lambda loss: loss)
    why = B._smoothing_why(inputs, SimpleNamespace(margins=pd.DataFrame()), [reading])
    assert "b (α(p*) = 0.95) trains toward the target of label smoothing at a strength beyond the range" in why
    assert "a (α(p*) = 1.05) trains toward a target below the uniform distribution (p* < 1/K)" in why
    assert "c pursues p → 1" in why


def test_where_a_loss_lands_against_label_smoothing_at_its_own_alpha_is_interpolated_in_alpha():
    from types import SimpleNamespace

    from robust_glo.reporting import build as B

    arms = pd.DataFrame({"loss": ["ce", "ls"], "alpha": [0.0, 0.4], "clean": [0.9, 0.8], "robust": [0.1, 0.3]})
    study = SimpleNamespace(points={("worst", 0.1): arms})
    reading = B.FrontierReading("worst", 0.1, "linf", SimpleNamespace(verified=True))
    reading.on = [{"loss": "x", "clean": 0.88, "robust": 0.05}]
    text = B._landings(SimpleNamespace(label=lambda s: s), study, [reading], {"x": 0.2})
    assert (
        text == "at ε = 0.1, x 88.0% clean and 5.0% robust accuracy against label smoothing's 85.0% and 20.0% at α 0.20"
    )


def test_each_budget_names_the_arms_of_its_frontier_and_a_comparison_at_the_floor():
    from types import SimpleNamespace

    from robust_glo.reporting import build as B

    arms = pd.DataFrame(
        {
            "loss": ["ce", "ls:0.5", "ls:0.9"],
            "clean": [0.92, 0.90, 0.86],
            "robust": [0.001, 0.02, 0.19],
            "pareto": [True, False, True],
        }
    )
    study = SimpleNamespace(points={("worst", 0.1): arms})
    reading = B.FrontierReading("worst", 0.1, "linf", SimpleNamespace(verified=True))
    reading.on = [{"loss": "x", "clean": 0.91, "robust": 0.02, "frontier": 0.057}]
    text = B._frontier_shape(SimpleNamespace(label=lambda s: s), study, reading)
    assert text == (
        " The frontier here (clean, robust accuracy in %) is the line from ls:0.9 (86.0, 19.0) to ce (92.0, 0.1);"
        " the other 1 arm lies below it. Every loss placed here keeps less than 5% robust accuracy, and the "
        "frontier at their clean accuracies is at most 5.7%: the comparison sits near the accuracy floor."
    )
    reading.on[0]["robust"] = 0.30  # above the floor: only the shape
    assert B._frontier_shape(SimpleNamespace(label=lambda s: s), study, reading).endswith("lies below it.")
