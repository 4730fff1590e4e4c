"""The report's verdict, from hand-made statistics: a claim counts only where the worst case at its budget
is AutoAttack-verified and neither network failed a diagnostic there."""

from __future__ import annotations

import math

import pandas as pd

from robust_glo.reporting import verdict as V
from robust_glo.reporting.verdict import build_verdict, failed_diagnostics
from robust_glo.robustness.attacks import autoattack_coverage

NAN = math.nan
AA = ["apgd-ce:cascade=true", "apgd-t:cascade=true", "fab-t:cascade=true", "square:cascade=true"]


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


def _coverage(attacks, eps_values=(0.1,), norm="linf"):
    return {(norm, e): autoattack_coverage(attacks, e, norm, 10) for e in eps_values}


def _diag(loss, check, status, norm="Linf", eps=0.1, seed=0):
    return {"loss": loss, "seed": seed, "check": check, "norm": norm, "eps": eps, "status": status, "value": 0.1}


def _verdict(rows, coverage, diagnostics=None):
    return build_verdict(
        pd.DataFrame(rows),
        {},
        "ce",
        dataset="fashion-mnist",
        budget="500 steps",
        correction="Holm",
        coverage=coverage,
        diagnostics=None if diagnostics is None else pd.DataFrame(diagnostics),
    )


def _advantage(loss="ls", diff=0.05):
    rows = [_row("ce", "clean", 0.0, 0.88), _row(loss, "clean", 0.0, 0.87, -0.01, False, 0.4)]
    rows += [_row("ce", "worst", 0.1, 0.2), _row(loss, "worst", 0.1, 0.2 + diff, diff, True, 0.001)]
    return rows


def _passing(losses=("ls", "poly"), budgets=(("Linf", 0.1), ("Linf", 0.05), ("Linf", 0.02), ("L2", 0.5))):
    """Every blocking diagnostic judged and passed, for `losses` and the baseline ce (no transfer: it is
    the source)."""
    rows = []
    for loss in (*losses, "ce"):
        rows.append(_diag(loss, "gradients", "pass", norm="", eps=NAN))
        for norm in {n for n, _ in budgets}:
            rows.append(_diag(loss, "unbounded", "pass", norm=norm, eps=0.5))
        for norm, eps in budgets:
            rows.append(_diag(loss, "more_effort", "pass", norm=norm, eps=eps))
            if loss != "ce":
                rows.append(_diag(loss, "transfer", "pass", norm=norm, eps=eps))
    return rows


PASSED = _passing()


def test_a_verified_significant_advantage_is_the_answer():
    verdict = _verdict(_advantage(), _coverage(["fgsm", "pgd"] + AA), PASSED)
    assert (
        "more robust than ce under the worst case at ε = 0.1 (which includes the full AutoAttack ensemble)"
        in verdict.answer
    )
    assert "blocking diagnostics (more_effort, unbounded, gradients, transfer) were run and passed" in verdict.answer
    assert "ls at ε = 0.1" in verdict.answer and "not counted" not in verdict.answer
    assert "AutoAttack-verified" in verdict.bullets[0]
    assert "no evidence of a difference from ce (-1.0 points" in verdict.bullets[0]
    assert verdict.claims["counted"].tolist() == [True]


def test_a_claim_on_weaker_attacks_is_stated_but_not_counted():
    coverage = _coverage(["fgsm", "pgd", "apgd-ce:cascade=true", "square:n_queries=1000"])
    verdict = _verdict(_advantage(), coverage)
    assert "no robustness claim can be judged" in verdict.answer
    bullet = verdict.bullets[0]
    # The loss's bullet says only "not AutoAttack-verified"; the coverage bullet (last) names the attacks once.
    assert "; not AutoAttack-verified)" in bullet and "worst case of" not in bullet
    assert "[not counted]" in bullet
    # The last bullet names what ran (APGD-CE among it) and exactly what the ensemble lacks there.
    assert verdict.bullets[-1] == (
        "AutoAttack coverage (APGD-CE, APGD-T, FAB-T and Square with 5,000 queries in the worst case): no budget is "
        "verified; at ε = 0.1 the worst case rests on FGSM, PGD-10, APGD-CE, Square (1,000 queries), and the "
        "ensemble lacks APGD-T (9 targets, 100 steps), FAB-T (9 targets, 100 steps), Square (5,000 queries): claims "
        "there are stated but not counted."
    )
    assert verdict.claims["counted"].tolist() == [False]


def test_coverage_is_decided_per_budget():
    rows = _advantage()
    rows += [_row("ce", "worst", 0.02, 0.7), _row("ls", "worst", 0.02, 0.8, 0.1, True, 0.001)]
    coverage = {**_coverage(["fgsm"] + AA, (0.1,)), **_coverage(["fgsm"], (0.02,))}
    verdict = _verdict(rows, coverage, PASSED)
    claims = verdict.claims.set_index("eps")
    assert bool(claims.loc[0.1, "counted"]) and not bool(claims.loc[0.02, "counted"])
    counted, rest = verdict.answer.split(" further significant difference(s) are not counted")
    assert "ls at ε = 0.1." in counted and "ls at ε = 0.02" not in counted
    assert rest.endswith(": more robust: ls at ε = 0.02.")


def test_a_failed_diagnostic_keeps_a_verified_claim_out_of_the_answer():
    diagnostics = (
        [_diag("ls", "transfer", "fail", seed=0)]
        + [dict(r, seed=1) for r in PASSED]
        + [r for r in PASSED if not (r["loss"] == "ls" and r["check"] == "transfer")]
    )
    verdict = _verdict(_advantage(), _coverage(["fgsm"] + AA), diagnostics)
    assert "no loss is shown more robust than ce" in verdict.answer
    assert "failed diagnostics: transfer (1 of 2 seeds)" in verdict.bullets[0]
    assert verdict.claims.loc[0, "diagnostics_failed"] == "transfer (1 of 2 seeds)"


def test_diagnostics_at_other_budgets_or_other_norms_do_not_count_here():
    diagnostics = [
        _diag("ls", "more_effort", "fail", eps=0.05),
        _diag("ls", "transfer", "fail", norm="L2", eps=0.1),
        _diag("ls", "targeted_vs_ce", "not run"),
    ]
    verdict = _verdict(_advantage(), _coverage(["fgsm"] + AA), diagnostics + PASSED)
    assert verdict.claims["counted"].tolist() == [True]
    # ...but a budget-free one (gradients) and the norm-wide one (unbounded) count everywhere.
    assert failed_diagnostics(pd.DataFrame([_diag("ls", "gradients", "fail", norm="", eps=NAN)]), "ls", "linf", 0.1)
    unbounded = pd.DataFrame([_diag("ls", "unbounded", "fail", eps=0.3)])
    assert failed_diagnostics(unbounded, "ls", "linf", 0.1) == ["unbounded (1 of 1 seed)"]
    assert failed_diagnostics(unbounded, "ls", "l2", 0.1) == []


def test_the_baselines_failed_diagnostic_also_blocks_the_claim():
    diagnostics = [_diag("ce", "gradients", "fail", norm="", eps=NAN)] + [
        r for r in PASSED if not (r["loss"] == "ce" and r["check"] == "gradients")
    ]
    verdict = _verdict(_advantage(), _coverage(["fgsm"] + AA), diagnostics)
    assert not verdict.claims["counted"].any()
    assert "ce failed diagnostics: gradients (1 of 1 seed)" in verdict.bullets[0]


def test_less_robust_losses_are_named_and_a_budget_without_worst_row_has_no_claim():
    rows = [_row("ce", "clean", 0.0, 0.88), _row("poly", "clean", 0.0, 0.88, 0.0, False, 1.0)]
    rows += [_row("ce", "worst", 0.05, 0.4), _row("poly", "worst", 0.05, 0.3, -0.1, True, 0.002)]
    # an attack row without a worst row (e.g. stored before the rule) is no claim
    rows += [_row("ce", "pgd", 0.1, 0.2), _row("poly", "pgd", 0.1, 0.1, -0.1, True, 0.002)]
    verdict = _verdict(rows, _coverage(["fgsm"] + AA, (0.05,)), PASSED)
    assert "no loss is shown more robust than ce" in verdict.answer
    assert "Less robust than ce: poly at ε = 0.05." in verdict.answer
    assert verdict.claims["eps"].tolist() == [0.05]


def test_l2_claims_need_an_l2_ensemble():
    rows = [_row("ce", "clean", 0.0, 0.88), _row("ls", "clean", 0.0, 0.88, 0.0, False, 1.0)]
    rows += [_row("ce", "worst:l2", 0.5, 0.3), _row("ls", "worst:l2", 0.5, 0.4, 0.1, True, 0.001)]
    linf_only = _verdict(rows, _coverage(AA, (0.5,), "l2") | {})
    assert not linf_only.claims["counted"].any()  # the L-infinity ensemble does not verify an L2 budget
    l2 = _verdict(rows, _coverage([a + ":norm=l2" for a in AA], (0.5,), "l2"), PASSED)
    assert "ls at L2 radius 0.5" in l2.answer


def test_a_p_value_at_its_floor_prints_as_a_bound():
    rows = _advantage()
    rows[-1]["p_at_floor"] = True
    rows[-1]["p_adjusted"] = 0.0004
    verdict = _verdict(rows, _coverage(["fgsm"] + AA))
    assert "adjusted p ≤ 0.0004" in verdict.bullets[0]


def test_a_claim_on_networks_never_diagnosed_is_not_counted():
    verdict = _verdict(_advantage(), _coverage(["fgsm"] + AA), None)
    assert not verdict.claims["counted"].any()
    assert verdict.claims.loc[0, "diagnostics_failed"].startswith("not run: more_effort, unbounded, gradients")
    assert "diagnostics not run: more_effort" in verdict.bullets[0]


def test_a_diagnostic_not_run_on_one_seed_blocks_the_claim_but_an_informational_one_does_not():
    partly = [r for r in PASSED if not (r["loss"] == "ls" and r["check"] == "transfer")]
    partly.append(_diag("ls", "transfer", "not run"))
    verdict = _verdict(_advantage(), _coverage(["fgsm"] + AA), partly)
    assert not verdict.claims["counted"].any()
    assert "not run: transfer" in verdict.claims.loc[0, "diagnostics_failed"]
    informational = PASSED + [_diag("ls", "targeted_vs_ce", "fail")]
    assert _verdict(_advantage(), _coverage(["fgsm"] + AA), informational).claims["counted"].all()


def test_without_any_verified_budget_no_claim_can_be_judged():
    verdict = _verdict(_advantage(), _coverage(["fgsm", "pgd"]), PASSED)
    assert "no robustness claim can be judged against ce" in verdict.answer
    assert verdict.answer.endswith(
        "Under the weaker attacks, 1 significant difference(s), stated below but not counted: more robust: "
        "ls at ε = 0.1."
    )


def test_an_interval_that_excludes_zero_is_not_called_no_evidence():
    # Intervals are per comparison, the words follow the corrected p: an interval clear of 0 with a corrected p
    # above alpha is "not significant after Holm over N comparisons", never "no evidence of a difference".
    rows = [_row("ce", "clean", 0.0, 0.88), _row("ls", "clean", 0.0, 0.92, 0.04, False, 0.2)]
    rows += [_row("ce", "worst", 0.1, 0.2), _row("ls", "worst", 0.1, 0.26, 0.06, False, 0.09)]
    rows += [_row("poly", "clean", 0.0, 0.88, 0.0, False, 1.0), _row("poly", "worst", 0.1, 0.2, 0.01, False, 0.6)]
    for r in rows:
        r["family"] = "primary" if r["loss"] != "ce" else ""
        r["p_value"] = r["p_adjusted"] / 4 if r["loss"] != "ce" else NAN
    verdict = _verdict(rows, _coverage(["fgsm"] + AA), PASSED)
    ls, poly = verdict.bullets[0], verdict.bullets[1]
    assert (
        "clean accuracy 92.0%, a difference from ce not significant after Holm over 4 comparisons (its "
        "per-comparison interval excludes 0; +4.0 points [+2.0, +6.0], adjusted p = 0.200)" in ls
    )
    assert (
        "at ε = 0.1 a difference from ce not significant after Holm over 4 comparisons (its per-comparison "
        "interval excludes 0; +6.0 points [+4.0, +8.0], adjusted p = 0.090; AutoAttack-verified)" in ls
    )
    assert "no evidence" not in ls
    # an interval that includes 0 keeps "no evidence"
    assert "at ε = 0.1 no evidence of a difference from ce (+1.0 points [-1.0, +3.0]" in poly
    claims = verdict.claims.set_index("loss")
    assert claims.loc["ls", "direction"] == V.UNSURE and claims.loc["poly", "direction"] == "no evidence"
    assert not claims["counted"].any() and verdict.clean.set_index("loss").loc["ls", "direction"] == V.UNSURE
    # not a significant difference: the answer neither counts it nor lists it among the uncounted ones
    assert "further significant difference" not in verdict.answer
    assert "no loss is shown more robust than ce" in verdict.answer


def test_family_sizes_count_the_comparisons_corrected_together():
    summary = pd.DataFrame(
        {
            "loss": ["ce", "a", "a", "a", "b"],
            "family": ["", "primary", "primary", "secondary", "primary"],
            "p_value": [NAN, 0.1, 0.2, 0.3, NAN],
        }
    )
    assert V.family_sizes(summary) == {"": 3, "primary": 2, "secondary": 1}
    assert V.comparisons({"family": "primary"}, V.family_sizes(summary)) == 2
    assert (
        V.unsure_text("Holm", 1)
        == "not significant after Holm over 1 comparison (its per-comparison interval excludes 0)"
    )
    assert V.interval_excludes_zero({"diff_ci_low": -0.01, "diff_ci_high": -0.001})
    assert not V.interval_excludes_zero({"diff_ci_low": -0.01, "diff_ci_high": 0.0})
    assert not V.interval_excludes_zero({"diff_ci_low": NAN, "diff_ci_high": 0.2})
