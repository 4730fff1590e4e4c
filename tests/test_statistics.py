"""Statistics over seeds and images: t intervals and Welch p-values against hand-computed values; the
two-level bootstrap (joint seed draws, the normal-approximation p and its floor, Clopper-Pearson at 0%
and 100%); the primary and secondary families of comparisons."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from robust_glo.errors import ConfigError
from robust_glo.robustness import mean_ci, summarize, welch_pvalue

T_975_DF2 = 4.302652729749462  # Student t quantile 0.975 with 2 degrees of freedom (tables: 4.303)


def test_mean_ci_matches_hand_computation():
    mean, std, low, high = mean_ci([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9)
    assert std == pytest.approx(0.1)  # sqrt(((-0.1)^2 + 0 + 0.1^2) / 2)
    half = T_975_DF2 * 0.1 / math.sqrt(3)
    assert half == pytest.approx(0.24841377, abs=1e-8)
    assert (low, high) == (pytest.approx(0.9 - half), pytest.approx(0.9 + half))


def test_mean_ci_edge_cases():
    mean, std, low, high = mean_ci([0.7])
    assert mean == 0.7 and math.isnan(std) and math.isnan(low) and math.isnan(high)
    assert mean_ci([0.5, 0.5, 0.5])[1:] == (0.0, 0.5, 0.5)
    assert mean_ci([0.8, float("nan"), 1.0])[0] == pytest.approx(0.9)
    with pytest.raises(ConfigError, match="confidence"):
        mean_ci([1, 2], confidence=1.5)


def test_welch_pvalue_matches_hand_computation():
    # a: mean 2.5, var 5/3, n 4; b: mean 6, var 10, n 5.
    # se^2 = (5/3)/4 + 10/5 = 2.416667; t = -3.5 / sqrt(se^2) = -2.251436;
    # Welch-Satterthwaite df = se^4 / ((5/12)^2/3 + 2^2/4) = 5.520788; p = 2 * P(T_df > 2.251436) = 0.069134.
    assert welch_pvalue([1, 2, 3, 4], [2, 4, 6, 8, 10]) == pytest.approx(0.06913359, abs=1e-7)
    assert welch_pvalue([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)


def test_welch_pvalue_undefined_cases():
    assert math.isnan(welch_pvalue([0.9], [0.8, 0.7]))
    assert math.isnan(welch_pvalue([0.9, 0.9], [0.9, 0.9]))
    assert math.isnan(welch_pvalue([0.9, 0.9], [0.8, 0.8]))  # no spread: undefined, never "p = 0"


def _results() -> pd.DataFrame:
    rows = []
    accuracies = {"ce": [0.8, 0.9, 1.0], "baikal": [0.5, 0.6, 0.7]}
    for loss, values in accuracies.items():
        for seed, acc in enumerate(values):
            for attack, eps, shift in (("clean", 0.0, 0.0), ("pgd", 0.1, -0.2)):
                rows.append(
                    {
                        "loss": loss,
                        "seed": seed,
                        "dataset": "digits",
                        "model": "digits-cnn",
                        "attack": attack,
                        "eps": eps,
                        "n": 100,
                        "accuracy": acc + shift,
                        "reliable": not (loss == "baikal" and seed == 2),
                    }
                )
    return pd.DataFrame(rows)


def test_summarize_per_loss_attack_eps():
    summary = summarize(_results())
    assert list(summary[["loss", "attack", "eps"]].itertuples(index=False, name=None)) == [
        ("ce", "clean", 0.0),
        ("baikal", "clean", 0.0),
        ("ce", "pgd", 0.1),
        ("baikal", "pgd", 0.1),
    ]
    ce = summary.iloc[0]
    assert ce["n_seeds"] == 3 and ce["mean"] == pytest.approx(0.9) and ce["std"] == pytest.approx(0.1)
    assert ce["mean"] - ce["ci_low"] == pytest.approx(T_975_DF2 * 0.1 / math.sqrt(3))
    assert ce["ci_high"] == 1.0  # 0.9 + 0.248 clipped to the largest possible accuracy
    assert ce["baseline"] == "ce" and math.isnan(ce["p_value"]) and ce["diff"] == pytest.approx(0.0)
    baikal = summary.iloc[1]
    assert baikal["diff"] == pytest.approx(-0.3)
    # Equal spreads 0.1, n = 3 each: t = -0.3 / sqrt(0.01/3 + 0.01/3) = -3.674235, df = 4 -> p = 0.021311.
    assert baikal["p_value"] == pytest.approx(0.02131164, abs=1e-7)
    assert baikal["n_unreliable"] == 1 and not baikal["reliable"]
    assert summary.iloc[0]["reliable"]


def test_summarize_with_a_named_baseline_and_bad_inputs():
    summary = summarize(_results(), baseline="baikal")
    assert summary[summary.loss == "baikal"]["p_value"].isna().all()
    assert summary[summary.loss == "ce"]["diff"].tolist() == pytest.approx([0.3, 0.3])
    with pytest.raises(ConfigError, match=r"baseline 'focal:2' is not among the loss values: ce, baikal"):
        summarize(_results(), baseline="focal:2")
    with pytest.raises(ConfigError, match=r"no column 'robust_accuracy'"):
        summarize(_results(), value="robust_accuracy")


def test_summarize_clips_the_interval_to_the_accuracy_range():
    results = pd.DataFrame({"loss": ["ce"] * 3, "attack": ["pgd"] * 3, "eps": [0.1] * 3, "accuracy": [0.98, 1.0, 0.9]})
    row = summarize(results).iloc[0]
    mean, _, low, high = mean_ci([0.98, 1.0, 0.9])
    assert high > 1.0 and row["ci_high"] == 1.0 and row["ci_low"] == pytest.approx(low)
    assert summarize(results, bounds=None).iloc[0]["ci_high"] == pytest.approx(high)


# ------------------------------------------------------------------ corrections and the bootstrap

import numpy as np  # noqa: E402

from robust_glo.robustness.bootstrap import HierarchicalBootstrap  # noqa: E402
from robust_glo.robustness.outcomes import pack_bits, unpack_bits  # noqa: E402
from robust_glo.robustness.statistics import adjust_pvalues, check_correction  # noqa: E402


def test_holm_and_benjamini_hochberg_match_hand_computation():
    p = [0.01, 0.04, 0.03, float("nan")]
    # Holm: sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06.
    assert adjust_pvalues(p, "holm")[:3] == pytest.approx([0.03, 0.06, 0.06])
    # BH: p * m / rank = 0.03, 0.045, 0.04 -> running min from the top: 0.03, 0.04, 0.04.
    assert adjust_pvalues(p, "bh")[:3] == pytest.approx([0.03, 0.04, 0.04])
    assert math.isnan(adjust_pvalues(p, "holm")[3])
    with pytest.raises(ConfigError, match=r"correction 'tukey' is unknown; valid: holm, fdr_bh \(or bh\), bonferroni"):
        check_correction("tukey")


def test_bits_round_trip():
    flags = np.random.default_rng(0).random(1003) < 0.4
    assert np.array_equal(unpack_bits(pack_bits(flags), 1003), flags)


def _outcomes(arms: dict[str, list[np.ndarray]], attack: str = "pgd", eps: float = 0.1) -> pd.DataFrame:
    rows = []
    for loss, seeds in arms.items():
        for seed, bits in enumerate(seeds):
            rows.append(
                {
                    "loss": loss,
                    "seed": seed,
                    "attack": attack,
                    "eps": eps,
                    "n": len(bits),
                    "correct": int(bits.sum()),
                    "images": "set",
                    "bits": pack_bits(bits),
                }
            )
    return pd.DataFrame(rows)


def _results_from(outcomes: pd.DataFrame) -> pd.DataFrame:
    return outcomes.assign(accuracy=outcomes["correct"] / outcomes["n"])[["loss", "seed", "attack", "eps", "accuracy"]]


def test_one_network_interval_is_the_binomial_sampling_error_of_the_test_images():
    n, p = 1000, 0.3
    bits = np.zeros(n, dtype=bool)
    bits[np.random.default_rng(1).permutation(n)[: int(p * n)]] = True
    boot = HierarchicalBootstrap(_outcomes({"ce": [bits]}), n_boot=4000, seed=0)
    est = boot.cell("ce", "ce", {"attack": "pgd", "eps": 0.1})
    half = 1.959964 * math.sqrt(p * (1 - p) / n)  # 2.84 points at 1,000 images
    assert est.n_images == n
    assert est.ci_low == pytest.approx(p - half, abs=0.004) and est.ci_high == pytest.approx(p + half, abs=0.004)


def test_identical_networks_differ_by_exactly_zero_and_are_not_significant():
    rng = np.random.default_rng(2)
    seeds = [rng.random(500) < 0.6 for _ in range(3)]
    boot = HierarchicalBootstrap(_outcomes({"ce": seeds, "twin": [s.copy() for s in seeds]}), n_boot=2000)
    est = boot.cell("twin", "ce", {"attack": "pgd", "eps": 0.1})
    # Both arms draw the same seeds and images in every replicate: the difference is exactly zero.
    assert est.diff_ci_low == 0 == est.diff_ci_high and est.diff_se == 0
    assert est.p_value == 1.0 and not est.p_at_floor
    assert math.isnan(est.p_images)  # no image differs


def test_zero_seed_variance_is_not_called_significant():
    """Two seeds of identical accuracy per arm: Welch's t-test is undefined (it used to say p = 0); the
    bootstrap over images sees a 1-point difference on 500 images as noise."""
    rng = np.random.default_rng(3)
    base = rng.random(500) < 0.5
    other = base.copy()
    flip = np.flatnonzero(~other)[:5]
    other[flip] = True  # +5 images = +1 point
    outcomes = _outcomes({"ce": [base, base.copy()], "ls": [other, other.copy()]})
    # the bootstrap's mechanics under Welch-Satterthwaite df (the default S - 1 is tested below)
    summary = summarize(_results_from(outcomes), outcomes=outcomes, n_boot=2000, df_method="satterthwaite")
    row = summary[summary.loss == "ls"].iloc[0]
    assert math.isnan(row["p_welch"]) and row["p_test"] == "bootstrap"
    assert row["diff"] == pytest.approx(0.01)
    # Five images all in one direction: the paired bootstrap on images does see a consistent shift...
    assert row["p_value"] < 0.1
    # ...and the interval of each mean holds the image sampling error (about +-4.4 points at 500 images).
    assert row["ci_high"] - row["ci_low"] > 0.07


def test_seed_variation_widens_the_interval():
    rng = np.random.default_rng(4)
    n = 400
    difficulty = rng.random(n)
    steady = [difficulty < 0.5 for _ in range(4)]
    noisy = [difficulty < t for t in (0.35, 0.45, 0.55, 0.65)]  # same mean, seeds differ by 10 points
    boot = HierarchicalBootstrap(_outcomes({"steady": steady, "noisy": noisy}), n_boot=3000)
    a = boot.cell("steady", "steady", {"attack": "pgd", "eps": 0.1})
    b = boot.cell("noisy", "steady", {"attack": "pgd", "eps": 0.1})
    assert (b.ci_high - b.ci_low) > 1.5 * (a.ci_high - a.ci_low)


def test_a_real_difference_is_found_and_intervals_do_not_depend_on_other_losses():
    rng = np.random.default_rng(5)
    n = 1000
    difficulty = rng.random(n)
    ce = [difficulty + 0.05 * rng.random(n) < 0.40 for _ in range(3)]
    strong = [difficulty + 0.05 * rng.random(n) < 0.50 for _ in range(3)]
    outcomes = _outcomes({"ce": ce, "strong": strong})
    summary = summarize(_results_from(outcomes), outcomes=outcomes, n_boot=3000, df_method="satterthwaite")
    row = summary[summary.loss == "strong"].iloc[0]
    assert row["diff"] == pytest.approx(0.1, abs=0.02)
    assert row["diff_ci_low"] > 0.07 and row["p_value"] < 0.001 and bool(row["significant"])
    assert row["p_images"] < 1e-6 and row["compared"]
    more = _outcomes({"ce": ce, "strong": strong, "other": [rng.random(n) < 0.3 for _ in range(3)]})
    again = summarize(_results_from(more), outcomes=more, n_boot=3000, df_method="satterthwaite")
    same = again[again.loss == "strong"].iloc[0]
    assert (same["ci_low"], same["ci_high"], same["diff_ci_low"], same["p_value"]) == (
        row["ci_low"],
        row["ci_high"],
        row["diff_ci_low"],
        row["p_value"],
    )


def test_the_seed_level_is_not_shrunk_by_resampling_few_seeds():
    """Three seeds at 40%, 50%, 60% on many images: the bootstrap SD of their mean must match the usual
    standard error s / sqrt(S) with s the ddof=1 spread (0.0577), not the resampling-shrunk 0.0471."""
    n = 20_000
    order = np.random.default_rng(7).permutation(n)
    seeds = []
    for acc in (0.4, 0.5, 0.6):
        bits = np.zeros(n, dtype=bool)
        bits[order[: int(acc * n)]] = True
        seeds.append(bits)
    boot = HierarchicalBootstrap(_outcomes({"ce": seeds}), n_boot=2000, seed=1)
    rows = boot._rows("ce", {"attack": "pgd", "eps": 0.1})
    sd = float(np.std(boot._accuracy(rows)))
    assert sd == pytest.approx(0.1 / math.sqrt(3), rel=0.1)


# ------------------------------------------------------------------ the normal-approximation p-value

from robust_glo.robustness.bootstrap import P_FLOOR, normal_pvalue  # noqa: E402
from robust_glo.robustness.statistics import clopper_pearson  # noqa: E402

HOLM_140 = 0.05 / 140  # Holm's first threshold over the 140 comparisons of the old standard report


def _graded(shifts: dict[str, float], *, n: int = 1000, seeds: int = 3, seed: int = 8) -> pd.DataFrame:
    """Clean outcomes of losses whose accuracy is 50% + shift: each image has a difficulty shared by all
    networks, and each network adds its own noise."""
    rng = np.random.default_rng(seed)
    difficulty = rng.random(n)
    arms = {
        loss: [difficulty + 0.3 * rng.random(n) < 0.5 + shift for _ in range(seeds)] for loss, shift in shifts.items()
    }
    return _outcomes(arms, "clean", 0.0)


def test_p_values_far_below_the_corrected_threshold_are_resolved():
    """Two clear effects of different size: the percentile p of both sits at its floor 2 / (B + 1) (the old
    report's problem), the t-referenced p tells them apart, both below Holm's first threshold at 140."""
    outcomes = _graded({"ce": 0.0, "a": 0.05, "b": 0.065}, seeds=5)
    summary = summarize(
        _results_from(outcomes), outcomes=outcomes, group_by=("attack", "eps"), n_boot=2000, df_method="satterthwaite"
    )
    a, b = (summary[summary.loss == loss].iloc[0] for loss in ("a", "b"))
    assert a["p_percentile"] == b["p_percentile"] == pytest.approx(2 / 2001)
    assert a["family"] == b["family"] == "primary"
    assert b["p_adjusted"] < a["p_adjusted"] < HOLM_140
    assert a["p_adjusted"] > 10 * b["p_adjusted"]  # resolved, not tied
    assert not a["p_at_floor"] and not b["p_at_floor"]
    # The p is Student's t with Welch-Satterthwaite df from the observed difference and the bootstrap SE;
    # with 5 seeds the df lie between the seed level's 4 and the images' 999.
    assert 4 <= a["diff_df"] < 999
    assert a["p_value"] == pytest.approx(2 * stats.t.sf(abs(a["diff"]) / a["diff_se"], a["diff_df"]), rel=1e-9)
    assert a["p_value"] > 2 * stats.norm.sf(abs(a["diff"]) / a["diff_se"])  # more conservative than the normal


def test_with_few_seeds_a_seed_dominated_difference_gets_a_t_reference():
    """Every image identical across seeds except a per-seed shift: the seed level dominates the variance,
    so the df fall to about S - 1 and the interval widens by t / z."""
    rng = np.random.default_rng(3)
    base = rng.random(1000)
    shifts = {"ce": [0.0, 0.02, -0.02], "a": [0.10, 0.02, 0.06]}
    arms = {loss: [base < 0.5 + d for d in deltas] for loss, deltas in shifts.items()}
    outcomes = _outcomes(arms, "clean", 0.0)
    row = summarize(_results_from(outcomes), outcomes=outcomes, group_by=("attack", "eps"), n_boot=2000).iloc[1]
    assert row["diff_df"] < 4
    assert row["p_value"] > 3 * 2 * stats.norm.sf(abs(row["diff"]) / row["diff_se"])


def test_a_clear_call_does_not_depend_on_the_bootstrap_seed():
    outcomes = _graded({"ce": 0.0, "a": 0.04}, seeds=5)
    results = _results_from(outcomes)
    rows = [
        summarize(results, outcomes=outcomes, group_by=("attack", "eps"), n_boot=10_000, boot_seed=s).iloc[1]
        for s in (0, 1, 2)
    ]
    p = np.array([r["p_value"] for r in rows])
    assert (p < 0.01).all() and all(bool(r["significant"]) for r in rows)
    assert p.max() / p.min() < 1.35  # the SE, not a count of replicates in the tail, sets the p
    assert rows[0]["diff"] == rows[1]["diff"] == rows[2]["diff"]


def test_the_p_value_floor():
    assert normal_pvalue(0.0, 0.0) == (1.0, False)  # no difference, no spread: nothing to see
    assert normal_pvalue(0.0, 0.02) == (1.0, False)
    assert normal_pvalue(0.1, 0.0) == (P_FLOOR, True)  # a difference without spread cannot be resolved
    assert normal_pvalue(0.5, 0.01) == (P_FLOOR, True)  # z = 50: below the floor
    p, floor = normal_pvalue(0.05, 0.01)
    assert p == pytest.approx(2 * stats.norm.sf(5.0)) and not floor
    assert HierarchicalBootstrap.floor(5) == 2**-4  # exact sign test, 5 images all one way
    assert HierarchicalBootstrap.floor(500) == P_FLOOR
    # One network each, 30 images: right on all of them vs wrong on all. No spread in any replicate; the
    # p cannot go below the exact sign test's 2^-29 on 30 images, and says so.
    outcomes = _outcomes({"ce": [np.zeros(30, dtype=bool)], "all": [np.ones(30, dtype=bool)]})
    est = HierarchicalBootstrap(outcomes, n_boot=500).cell("all", "ce", {"attack": "pgd", "eps": 0.1})
    assert est.diff_se == 0 and est.p_at_floor and est.p_value == pytest.approx(2.0**-29)


def test_percentile_p_method_reproduces_the_share_of_replicates():
    outcomes = _graded({"ce": 0.0, "a": 0.02}, n=400)
    boot = HierarchicalBootstrap(outcomes, n_boot=2000, p_method="percentile")
    est = boot.cell("a", "ce", {"attack": "clean", "eps": 0.0})
    assert est.p_value == est.p_percentile
    normal = HierarchicalBootstrap(outcomes, n_boot=2000).cell("a", "ce", {"attack": "clean", "eps": 0.0})
    assert normal.p_percentile == est.p_percentile and normal.p_value != est.p_value
    with pytest.raises(ValueError, match="p_method"):
        HierarchicalBootstrap(outcomes, n_boot=200, p_method="exact")


# ------------------------------------------------------------------ 0% and 100% accuracy


def test_zero_accuracy_gets_the_clopper_pearson_interval_and_a_finite_p():
    n, rng = 500, np.random.default_rng(9)
    outcomes = _outcomes(
        {"ce": [rng.random(n) < 0.1 for _ in range(5)], "broken": [np.zeros(n, dtype=bool) for _ in range(5)]}
    )
    boot = HierarchicalBootstrap(outcomes, n_boot=2000)
    est = boot.cell("broken", "ce", {"attack": "pgd", "eps": 0.1})
    upper = 1 - 0.025 ** (1 / n)  # exact upper bound at 0 of 500 images: about 3.7 / N
    assert est.exact and est.ci_low == 0 and est.ci_high == pytest.approx(upper)
    assert est.ci_high == pytest.approx(3.689 / n, rel=0.01)
    assert math.isfinite(est.p_value) and 0 < est.p_value < 1e-3
    # The difference's interval also leaves room for the broken loss's possible accuracy.
    plain = np.quantile(-boot._accuracy(boot._rows("ce", {"attack": "pgd", "eps": 0.1})), [0.025, 0.975])
    assert est.diff_ci_high >= plain[1] + upper
    summary = summarize(_results_from(outcomes), outcomes=outcomes, n_boot=2000)
    row = summary[summary.loss == "broken"].iloc[0]
    assert row["mean"] == 0 and row["ci_high"] == pytest.approx(upper) and math.isfinite(row["p_value"])


def test_both_at_zero_and_at_one_hundred_percent():
    n = 200
    zeros = [np.zeros(n, dtype=bool) for _ in range(3)]
    ones = [np.ones(n, dtype=bool) for _ in range(3)]
    boot = HierarchicalBootstrap(_outcomes({"ce": zeros, "b": [z.copy() for z in zeros], "c": ones}), n_boot=500)
    where = {"attack": "pgd", "eps": 0.1}
    both = boot.cell("b", "ce", where)
    upper = clopper_pearson(0, n)[1]
    assert both.p_value == 1.0 and not both.p_at_floor
    assert (both.ci_low, both.ci_high) == (0, pytest.approx(upper))
    assert both.diff_ci_low == pytest.approx(-upper) and both.diff_ci_high == pytest.approx(upper)
    full = boot.cell("c", "c", where)
    assert full.ci_high == 1 and full.ci_low == pytest.approx(1 - upper)


def test_zero_accuracy_without_outcomes_uses_the_number_of_images():
    results = pd.DataFrame(
        {"loss": ["ce"] * 3, "seed": [0, 1, 2], "attack": ["pgd"] * 3, "eps": [0.1] * 3, "n": [500] * 3}
    ).assign(accuracy=0.0)
    row = summarize(results).iloc[0]
    assert row["interval"].startswith("t") and row["ci_low"] == 0
    assert row["ci_high"] == pytest.approx(clopper_pearson(0, 500)[1])


# ------------------------------------------------------------------ seeds drawn jointly


def test_seeds_are_drawn_jointly_so_a_shared_seed_effect_cancels():
    """Seed s moves both losses alike (same thresholds + 5 points): with one seed draw shared by both,
    the difference keeps only the image noise; drawn independently (the old code), the 10-point seed
    spread would enter the difference twice."""
    n = 2000
    difficulty = np.random.default_rng(10).random(n)
    base = [difficulty < t for t in (0.35, 0.45, 0.55, 0.65)]
    better = [difficulty < t + 0.05 for t in (0.35, 0.45, 0.55, 0.65)]
    boot = HierarchicalBootstrap(_outcomes({"ce": base, "better": better}), n_boot=2000, df_method="satterthwaite")
    est = boot.cell("better", "ce", {"attack": "pgd", "eps": 0.1})
    own = est.ci_high - est.ci_low  # the loss's own interval holds the seed spread
    assert own > 0.15
    assert est.diff_ci_high - est.diff_ci_low < 0.1 * own
    assert est.diff_ci_low > 0.03 and est.p_value < 1e-3
    # A loss with a different list of seeds (one missing) draws its own seeds.
    rows = boot._rows("ce", {"attack": "pgd", "eps": 0.1})
    assert boot._seed_list(rows) == ("0", "1", "2", "3")
    short = HierarchicalBootstrap(_outcomes({"ce": base, "better": better[:3]}), n_boot=2000)
    apart = short.cell("better", "ce", {"attack": "pgd", "eps": 0.1})
    assert apart.diff_ci_high - apart.diff_ci_low > 5 * (est.diff_ci_high - est.diff_ci_low)


# ------------------------------------------------------------------ families


def _family_outcomes(with_worst: bool = True) -> pd.DataFrame:
    """clean; fgsm and a cascaded pgd at eps 0.1 (pgd's column is the per-input worst case, as the last
    attack of a cascade); one L2 attack at 0.5 (the only one: equal to worst:l2); eps = 0 repeats."""
    rng = np.random.default_rng(11)
    n, rows = 400, []
    for loss, level in (("ce", 0.5), ("a", 0.6), ("b", 0.52)):
        for seed in range(3):
            clean = rng.random(n) < level + 0.3
            fgsm = clean & (rng.random(n) < 0.8)
            worst = fgsm & (rng.random(n) < 0.9)
            l2 = clean & (rng.random(n) < 0.7)
            cells = [("clean", 0.0, clean), ("fgsm", 0.0, clean), ("fgsm", 0.1, fgsm)]
            cells += [("pgd:cascade=true", 0.1, worst), ("pgd:norm=l2", 0.5, l2)]
            if with_worst:
                cells += [("worst", 0.0, clean), ("worst", 0.1, worst), ("worst:l2", 0.5, l2)]
            for attack, eps, bits in cells:
                rows.append(
                    {
                        "loss": loss,
                        "seed": seed,
                        "attack": attack,
                        "eps": eps,
                        "n": n,
                        "correct": int(bits.sum()),
                        "images": "set",
                        "bits": pack_bits(bits),
                    }
                )
    return pd.DataFrame(rows)


def test_families_primary_secondary_and_repeats():
    outcomes = _family_outcomes()
    results = outcomes.assign(accuracy=outcomes["correct"] / outcomes["n"]).drop(columns=["bits", "images"])
    summary = summarize(results, outcomes=outcomes, group_by=("attack", "eps"), n_boot=1000)
    fam = {(r.loss, r.attack, r.eps): r.family for r in summary.itertuples()}
    for loss in ("a", "b"):
        assert fam[loss, "clean", 0.0] == fam[loss, "worst", 0.1] == fam[loss, "worst:l2", 0.5] == "primary"
        assert fam[loss, "fgsm", 0.1] == "secondary"
        assert fam[loss, "pgd:cascade=true", 0.1] == ""  # the cascade's last column is the worst case
        assert fam[loss, "pgd:norm=l2", 0.5] == ""  # the only L2 attack: worst:l2 repeats it
        assert fam[loss, "fgsm", 0.0] == fam[loss, "worst", 0.0] == ""
    assert (summary.loc[summary.loss == "ce", "family"] == "").all()
    assert (summary["compared"] == (summary["family"] != "")).all()
    primary = summary[summary.family == "primary"]
    secondary = summary[summary.family == "secondary"]
    assert len(primary) == 6 and len(secondary) == 2
    # Each family is corrected over its own members only.
    for members in (primary, secondary):
        assert members["p_adjusted"].to_numpy() == pytest.approx(adjust_pvalues(members["p_value"].to_numpy()))
    assert secondary["p_adjusted"].max() < 1  # a real effect: the count (2, not 8) shows in the value
    together = adjust_pvalues(summary.loc[summary.compared, "p_value"].to_numpy())
    assert not np.allclose(summary.loc[summary.compared, "p_adjusted"].to_numpy(), together)
    repeat = summary[(summary.loss == "a") & (summary.attack == "pgd:cascade=true")].iloc[0]
    assert math.isnan(repeat["p_adjusted"]) and not repeat["significant"] and math.isfinite(repeat["p_value"])


def test_without_worst_rows_the_primary_family_is_clean_accuracy():
    outcomes = _family_outcomes(with_worst=False)
    results = outcomes.assign(accuracy=outcomes["correct"] / outcomes["n"]).drop(columns=["bits", "images"])
    summary = summarize(results, outcomes=outcomes, group_by=("attack", "eps"), n_boot=500)
    primary = summary[summary.family == "primary"]
    assert set(primary["attack"]) == {"clean"}
    assert set(summary.loc[summary.family == "secondary", "attack"]) == {"fgsm", "pgd:cascade=true", "pgd:norm=l2"}


def test_by_default_the_t_reference_has_s_minus_one_degrees_of_freedom():
    """Five seeds whose image part dominates: Welch-Satterthwaite would give hundreds of df; the default
    reference is t with S - 1 = 4 (the seed part is estimated from 4 df), the conservative end."""
    outcomes = _graded({"ce": 0.0, "a": 0.05}, seeds=5)
    results = _results_from(outcomes)
    seeds = summarize(results, outcomes=outcomes, group_by=("attack", "eps"), n_boot=2000)
    loose = summarize(results, outcomes=outcomes, group_by=("attack", "eps"), n_boot=2000, df_method="satterthwaite")
    a, b = seeds[seeds.loss == "a"].iloc[0], loose[loose.loss == "a"].iloc[0]
    assert a["diff_df"] == 4 and b["diff_df"] > 4
    assert a["p_value"] == pytest.approx(2 * stats.t.sf(abs(a["diff"]) / a["diff_se"], 4), rel=1e-9)
    assert a["p_value"] >= b["p_value"] and a["diff_ci_high"] - a["diff_ci_low"] >= b["diff_ci_high"] - b["diff_ci_low"]
    with pytest.raises(ValueError, match="df_method must be one of seeds, satterthwaite"):
        HierarchicalBootstrap(outcomes, n_boot=200, df_method="normal")


def test_intervals_stay_within_what_an_accuracy_and_a_difference_can_be():
    # Two seeds of each arm that disagree wildly: t with 1 df stretches the interval about 6.5x, which
    # would reach past [0, 1] for an accuracy and past [-1, 1] for a difference; both are kept inside.
    n = 200
    low, high = np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    outcomes = _outcomes({"ce": [low, high], "x": [high, high]})
    boot = HierarchicalBootstrap(outcomes, n_boot=1000, seed=0)
    own = boot.cell("ce", "ce", {"attack": "pgd", "eps": 0.1})
    assert 0.0 <= own.ci_low <= own.ci_high <= 1.0
    diff = boot.cell("x", "ce", {"attack": "pgd", "eps": 0.1})
    assert -1.0 <= diff.diff_ci_low <= diff.diff_ci_high <= 1.0
    assert diff.diff_ci_high == 1.0  # clipped: unclipped it would reach far past +1


def test_a_floored_p_is_a_bound_only_below_1():
    from robust_glo.robustness.statistics import floor_bound

    assert floor_bound(1e-4, True) and not floor_bound(1e-4, False)
    assert not floor_bound(1.0, True)  # Holm pushed the floor up to 1: it is 1, not "≤ 1"
    assert not floor_bound(float("nan"), True) and not floor_bound(None, True)
    assert not floor_bound(1e-4, float("nan")) and not floor_bound(1e-4, None)
