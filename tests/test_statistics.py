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
    assert welch_pvalue([0.9, 0.9], [0.8, 0.8]) == 0.0


def _results() -> pd.DataFrame:
    rows = []
    accuracies = {"ce": [0.8, 0.9, 1.0], "baikal": [0.5, 0.6, 0.7]}
    for loss, values in accuracies.items():
        for seed, acc in enumerate(values):
            for attack, eps, shift in (("clean", 0.0, 0.0), ("pgd", 0.1, -0.2)):
                rows.append({"loss": loss, "seed": seed, "dataset": "digits", "model": "digits-cnn",
                             "attack": attack, "eps": eps, "n": 100, "accuracy": acc + shift,
                             "reliable": not (loss == "baikal" and seed == 2)})
    return pd.DataFrame(rows)


def test_summarize_per_loss_attack_eps():
    summary = summarize(_results())
    assert list(summary[["loss", "attack", "eps"]].itertuples(index=False, name=None)) == [
        ("ce", "clean", 0.0), ("baikal", "clean", 0.0), ("ce", "pgd", 0.1), ("baikal", "pgd", 0.1)]
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
    results = pd.DataFrame({"loss": ["ce"] * 3, "attack": ["pgd"] * 3, "eps": [0.1] * 3,
                            "accuracy": [0.98, 1.0, 0.9]})
    row = summarize(results).iloc[0]
    mean, _, low, high = mean_ci([0.98, 1.0, 0.9])
    assert high > 1.0 and row["ci_high"] == 1.0 and row["ci_low"] == pytest.approx(low)
    assert summarize(results, bounds=None).iloc[0]["ci_high"] == pytest.approx(high)
