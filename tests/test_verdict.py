"""The report's verdict, from hand-made statistics: what it claims follows the adjusted p-values only."""

from __future__ import annotations

import math

import pandas as pd

from robust_glo.reporting.verdict import build_verdict

NAN = math.nan


def _row(loss, attack, eps, mean, diff=NAN, significant=False, p_adj=NAN, unreliable=0):
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
        "n_unreliable": unreliable,
    }


def _summary(rows):
    return pd.DataFrame(rows)


def _verdict(summary):
    return build_verdict(summary, {}, "ce", dataset="fashion-mnist", budget="500 steps", correction="Holm")


def test_a_significant_advantage_under_the_worst_case_is_the_answer():
    rows = [_row("ce", "clean", 0.0, 0.88), _row("ls", "clean", 0.0, 0.87, -0.01, False, 0.4)]
    for attack, diff in (("pgd", 0.05), ("square", 0.05), ("worst", 0.05)):
        rows += [_row("ce", attack, 0.1, 0.2), _row("ls", attack, 0.1, 0.25, diff, True, 0.001)]
    verdict = _verdict(_summary(rows))
    assert "more robust than ce under the worst case of all attacks" in verdict.answer
    assert "ls at ε = 0.1" in verdict.answer and "gradient masking" not in verdict.answer
    assert "no evidence of a difference from ce (-1.0 points" in verdict.bullets[0]
    assert "Gradient-masking signature" not in verdict.bullets[0]


def test_an_advantage_that_vanishes_under_square_is_the_masking_signature():
    rows = [_row("ce", "clean", 0.0, 0.88), _row("baikal", "clean", 0.0, 0.85, -0.03, True, 0.01)]
    rows += [_row("ce", "pgd", 0.1, 0.11), _row("baikal", "pgd", 0.1, 0.23, 0.12, True, 0.001)]
    rows += [_row("ce", "square", 0.1, 0.10), _row("baikal", "square", 0.1, 0.11, 0.01, False, 0.6)]
    rows += [_row("ce", "worst", 0.1, 0.09), _row("baikal", "worst", 0.1, 0.10, 0.01, False, 0.7)]
    verdict = _verdict(_summary(rows))
    bullet = verdict.bullets[0]
    assert "clean accuracy 85.0%, lower than ce (-3.0 points" in bullet
    assert (
        "Gradient-masking signature: at ε = 0.1 its advantage of +12.0 points under pgd vanishes to +1.0 "
        "under square (by 11.0 points)"
    ) in bullet
    assert verdict.answer.startswith(
        "On fashion-mnist, at this budget (500 steps): no evidence that any loss is more robust than ce"
    )


def test_without_strong_attacks_the_verdict_says_masking_is_not_ruled_out():
    rows = [_row("ce", "clean", 0.0, 0.88), _row("ls", "clean", 0.0, 0.88, 0.0, False, 1.0)]
    rows += [_row("ce", "pgd", 0.1, 0.1), _row("ls", "pgd", 0.1, 0.2, 0.1, True, 0.001, unreliable=1)]
    verdict = _verdict(_summary(rows))
    assert any("cannot be told apart from gradient masking" in b for b in verdict.bullets)
    assert "no attack outside the cross-entropy-gradient family" in verdict.answer
    assert "may be gradient masking" in verdict.answer
    assert "⚠ 1 of its evaluations failed a reliability check" in verdict.bullets[0]


def test_less_robust_losses_are_named():
    rows = [_row("ce", "clean", 0.0, 0.88), _row("poly", "clean", 0.0, 0.88, 0.0, False, 1.0)]
    rows += [_row("ce", "apgd-dlr", 0.05, 0.4), _row("poly", "apgd-dlr", 0.05, 0.3, -0.1, True, 0.002)]
    verdict = _verdict(_summary(rows))
    assert "no evidence that any loss is more robust" in verdict.answer
    assert "Less robust than ce: poly at ε = 0.05." in verdict.answer
