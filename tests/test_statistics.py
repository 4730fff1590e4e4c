"""Statistics over seeds: t intervals and Welch p-values against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

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
    # Not exactly zero in every replicate (each arm draws its own seeds), but centred on it.
    assert est.diff_ci_low < 0 < est.diff_ci_high and est.p_value > 0.5
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
    summary = summarize(_results_from(outcomes), outcomes=outcomes, n_boot=2000)
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
    summary = summarize(_results_from(outcomes), outcomes=outcomes, n_boot=3000)
    row = summary[summary.loss == "strong"].iloc[0]
    assert row["diff"] == pytest.approx(0.1, abs=0.02)
    assert row["diff_ci_low"] > 0.07 and row["p_value"] < 0.001 and bool(row["significant"])
    assert row["p_images"] < 1e-6 and row["compared"]
    more = _outcomes({"ce": ce, "strong": strong, "other": [rng.random(n) < 0.3 for _ in range(3)]})
    again = summarize(_results_from(more), outcomes=more, n_boot=3000)
    same = again[again.loss == "strong"].iloc[0]
    assert (same["ci_low"], same["ci_high"], same["diff_ci_low"], same["p_value"]) == (
        row["ci_low"],
        row["ci_high"],
        row["diff_ci_low"],
        row["p_value"],
    )


def test_the_correction_counts_the_comparisons_shown():
    rng = np.random.default_rng(6)
    arms = {loss: [rng.random(300) < 0.5 for _ in range(2)] for loss in ("ce", "a", "b")}
    rows = []
    for attack, eps in (("clean", 0.0), ("fgsm", 0.0), ("fgsm", 0.1), ("pgd", 0.1), ("worst", 0.1)):
        rows.append(_outcomes(arms, attack, eps))
    outcomes = pd.concat(rows, ignore_index=True)
    summary = summarize(_results_from(outcomes), outcomes=outcomes, group_by=("attack", "eps"), n_boot=1000)
    shown = summary[summary["compared"]]
    # 2 losses x (clean, fgsm@0.1, pgd@0.1, worst@0.1); fgsm at eps 0 repeats clean; ce is the baseline.
    assert len(shown) == 8
    assert shown["p_adjusted"].to_numpy() == pytest.approx(adjust_pvalues(shown["p_value"].to_numpy(), "holm"))
    assert summary.loc[~summary["compared"], "p_adjusted"].isna().all()
    assert (summary["correction"] == "holm").all()


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
    sd = float(np.std(boot._accuracy("ce", rows)))
    assert sd == pytest.approx(0.1 / math.sqrt(3), rel=0.1)
