"""Diagnostics that can fail, on digits: a well-behaved network passes them, a network whose head hides its
gradients (a naive log(softmax)) fails them, and the verdict says so next to its claims."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from robust_glo.errors import ConfigError
from robust_glo.reporting.verdict import build_verdict
from robust_glo.robustness import run_evaluation
from robust_glo.robustness.attacks import WORST, WORST_L2, coverage_from_results, parse_attack
from robust_glo.robustness.diagnostics import (
    DIAGNOSTIC_COLUMNS,
    DiagnosticSettings,
    run_diagnostics,
    stronger_attack,
    transfer_row,
)
from robust_glo.robustness.outcomes import image_fingerprint, outcome_rows
from robust_glo.robustness.statistics import summarize

N = 120


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 150) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (128,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def nets(digits):
    torch.manual_seed(0)
    x, y = digits.train.images, digits.train.labels
    plain = _fit(nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)), x, y)
    torch.manual_seed(1)
    batchnorm = _fit(
        nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10)), x, y
    )
    return {"plain": plain, "batchnorm": batchnorm}


class LogSoftmaxHead(nn.Module):
    """A network that returns log(softmax(z)) of very confident logits: the probabilities of the wrong
    classes underflow to 0, log(0) = -inf, and every input gradient is NaN."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.log(torch.softmax(50.0 * self.net(x), dim=1))


ATTACKS = ["fgsm", "pgd", "apgd-ce:cascade=true:min_eps=0.1", "apgd-t:cascade=true:min_eps=0.1"]
SETTINGS = DiagnosticSettings(n=60, effort_factor=2, effort_restarts=2)


def _evaluate(model, digits, attacks=ATTACKS, eps=(0, 0.05, 0.1), eps_l2=()):
    x, y = digits.test.images[:N], digits.test.labels[:N]
    ev = run_evaluation(model, x, y, attacks, list(eps), eps_l2=list(eps_l2), seed=0)
    return ev, run_diagnostics(model, x, y, ev, SETTINGS, seed=0)


def _status(diag: pd.DataFrame, check: str, eps: float | None = None) -> set[str]:
    rows = diag[diag["check"] == check]
    if eps is not None:
        rows = rows[rows["eps"] == eps]
    return set(rows["status"])


@pytest.mark.parametrize("name", ["plain", "batchnorm"])
def test_a_well_behaved_network_passes_the_diagnostics(nets, digits, name):
    ev, diag = _evaluate(nets[name], digits)
    assert list(diag.columns) == DIAGNOSTIC_COLUMNS
    assert _status(diag, "gradients") == {"pass"}
    assert _status(diag, "unbounded") == {"pass"}
    assert _status(diag, "more_effort") == {"pass"}
    assert _status(diag, "targeted_vs_ce", 0.1) == {"pass"}
    assert _status(diag, "targeted_vs_ce", 0.05) == {"not run"}  # APGD ran only from eps 0.1
    assert set(ev.results.loc[ev.results["attack"] == WORST, "eps"]) == {0.0, 0.05, 0.1}


def test_a_log_softmax_head_fails_gradients_and_unbounded(nets, digits):
    ev, diag = _evaluate(LogSoftmaxHead(nets["plain"]), digits)
    gradients = diag[diag["check"] == "gradients"].iloc[0]
    assert gradients["status"] == "fail" and gradients["value"] > 0.5
    assert _status(diag, "unbounded") == {"fail"}  # PGD cannot move an input whose gradient is NaN


def test_an_l2_only_attack_list_has_no_linf_worst_case_or_diagnostics(nets, digits):
    ev, diag = _evaluate(nets["plain"], digits, attacks=["pgd:norm=l2"], eps=(0,), eps_l2=(0.5, 1.0))
    worst = ev.results[ev.results["attack"] == WORST]
    assert (worst["eps"] > 0).sum() == 0
    assert set(ev.results.loc[ev.results["attack"] == WORST_L2, "eps"]) == {0.5, 1.0}
    assert set(diag.loc[diag["norm"] != "", "norm"]) == {"L2"}
    unbounded = diag[diag["check"] == "unbounded"].iloc[0]
    assert unbounded["eps"] == pytest.approx(0.5 * 8)  # 0.5 * sqrt(64 pixels)


def test_the_stronger_attack_strengthens_the_strongest_family():
    specs = [parse_attack(a) for a in ["fgsm", "pgd:steps=20", "apgd-ce:cascade=true"]]
    assert stronger_attack(specs, "linf", 5, 5).label == "apgd-ce:restarts=5:steps=500"
    specs.append(parse_attack("apgd-t:cascade=true"))
    assert stronger_attack(specs, "linf", 5, 5).label == "apgd-t:restarts=1:steps=500"
    assert stronger_attack([parse_attack("fgsm")], "linf", 5, 5).label == "pgd:restarts=5:steps=50"
    assert stronger_attack([parse_attack("pgd:norm=l2")], "l2", 2, 3).label == "pgd:norm=l2:restarts=3:steps=20"


def test_transfer_counts_per_input_what_the_white_box_attacks_missed():
    white = torch.tensor([True] * 30 + [False] * 70)
    # transferred examples break 10 of the 30 white-box survivors: fail, although transfer accuracy (60%)
    # is far above white-box accuracy (30%) in total
    transferred = torch.tensor([True] * 20 + [False] * 10 + [True] * 40 + [False] * 30)
    row = transfer_row(white, transferred, "linf", 0.1, "ce", 0.01)
    assert row["status"] == "fail" and row["value"] == pytest.approx(0.10)
    assert transfer_row(white, white | transferred, "linf", 0.1, "ce", 0.01)["status"] == "pass"
    # At low robust accuracy the 1% of all inputs cannot be reached: 3 of 5 survivors broken fails on the
    # relative rule (> 10% of those standing, at least 2), 1 of 5 does not
    few = torch.tensor([True] * 5 + [False] * 995)
    three = transfer_row(few, torch.tensor([False] * 3 + [True] * 2 + [False] * 995), "linf", 0.1, "ce", 0.01)
    assert three["status"] == "fail" and three["value"] == pytest.approx(0.003)
    one = transfer_row(few, torch.tensor([False] + [True] * 4 + [False] * 995), "linf", 0.1, "ce", 0.01)
    assert one["status"] == "pass"


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="unknown diagnostics option 'restarts'"):
        DiagnosticSettings.from_dict({"restarts": 3})
    with pytest.raises(ConfigError, match="n must be an integer >= 0"):
        DiagnosticSettings.from_dict({"n": -1})


def _real_verdict(models, digits, **evaluate):
    results, outcomes, diagnostics = [], [], []
    x, y = digits.test.images[:N], digits.test.labels[:N]
    for loss, model in models.items():
        ev, diag = _evaluate(model, digits, **evaluate)
        ident = {"loss": loss, "seed": 0, "dataset": "digits", "model": "mlp"}
        results.append(ev.results.assign(**ident))
        outcomes.append(outcome_rows(ev.robust, ev.clean_correct, image_fingerprint(x, y)).assign(**ident))
        diagnostics.append(diag.assign(loss=loss, seed=0))
    res = pd.concat(results, ignore_index=True)
    summary = summarize(res, outcomes=pd.concat(outcomes, ignore_index=True), baseline="ce", n_boot=500)
    coverage = {(t.value, e): c for (t, e), c in coverage_from_results(res, 10).items() if e > 0}
    return build_verdict(
        summary,
        {},
        "ce",
        dataset="digits",
        budget="test",
        correction="Holm",
        coverage=coverage,
        diagnostics=pd.concat(diagnostics, ignore_index=True),
    )


def test_the_verdict_names_a_failed_diagnostic_from_real_evaluations(nets, digits):
    """End to end on digits: a network with a log(softmax) head 'looks' far more robust than the plain one
    under FGSM/PGD; the verdict states that difference but does not count it (no AutoAttack, failed
    gradients and unbounded diagnostics)."""
    models = {"ce": nets["plain"], "masked": LogSoftmaxHead(nets["plain"])}
    verdict = _real_verdict(models, digits, attacks=["fgsm", "pgd"], eps=(0, 0.1))
    claim = verdict.claims.iloc[0]
    assert claim["direction"] == "more robust" and not claim["counted"]
    assert "gradients (1 of 1 seed)" in claim["diagnostics_failed"]
    assert "not AutoAttack-verified" in verdict.bullets[0]
    assert "the worst case rests on FGSM, PGD-10" in verdict.bullets[-1]
    assert "no robustness claim can be judged" in verdict.answer


def test_the_verdict_of_an_l2_only_study_speaks_of_l2_radii_only(nets, digits):
    """BatchNorm network against the plain one, L2 attacks only: claims exist at the L2 radii and nowhere
    else, and they are stated as resting on L2 PGD alone."""
    models = {"ce": nets["plain"], "bn": nets["batchnorm"]}
    verdict = _real_verdict(models, digits, attacks=["pgd:norm=l2"], eps=(0,), eps_l2=(0.5, 1.0))
    assert verdict.claims["budget"].tolist() == ["L2 radius 0.5", "L2 radius 1"]
    assert "ε =" not in " ".join(verdict.claims["budget"])
    assert set(verdict.claims["attacks"]) == {"PGD-10 L2"} and not verdict.claims["verified"].any()
    assert not verdict.claims["counted"].any()
    assert "no budget is verified" in verdict.bullets[-1]
