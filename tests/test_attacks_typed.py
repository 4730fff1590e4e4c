"""Attacks as typed values: threat models, labels read back as specs, the worst-case rule, AutoAttack
coverage, and nonfinite input-gradients."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch import nn

from robust_glo.errors import ConfigError
from robust_glo.robustness import check_reliability, run_evaluation
from robust_glo.robustness.attacks import (
    RESERVED_LABELS,
    AttackEntry,
    AttackSpec,
    Coverage,
    ThreatModel,
    autoattack_coverage,
    coverage_from_results,
    get_attack_entry,
    list_attacks,
    parse_attack,
    register_attack,
    spec_of_label,
)
from robust_glo.robustness.attacks import base as attacks_base


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def linear_model(n_classes: int = 10, side: int = 4, seed: int = 0, scale: float = 1.0) -> nn.Module:
    g = _generator(seed)
    layer = nn.Linear(side * side, n_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(n_classes, side * side, generator=g) * scale)
        layer.bias.copy_(torch.randn(n_classes, generator=g) * 0.1 * scale)
    return nn.Sequential(nn.Flatten(), layer)


def mlp(n_classes: int = 10, side: int = 4, seed: int = 1) -> nn.Module:
    g = _generator(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(side * side, 32), nn.ReLU(), nn.Linear(32, n_classes))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)
    return model


def data(model: nn.Module, n: int = 48, side: int = 4, seed: int = 2, wrong: int = 4):
    x = torch.rand(n, 1, side, side, generator=_generator(seed))
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:wrong] = (y[:wrong] + 1) % 10
    return x, y


def _worst_params(results: pd.DataFrame, label: str) -> dict[float, dict]:
    rows = results[results["attack"] == label]
    return {float(e): json.loads(p) for e, p in zip(rows["eps"], rows["params"])}


# ------------------------------------------------------------------ ThreatModel and typed specs


@pytest.mark.parametrize(
    ("text", "threat"),
    [("linf", ThreatModel.LINF), ("Linf", ThreatModel.LINF), ("LINF", ThreatModel.LINF), (" l2 ", ThreatModel.L2)],
)
def test_threat_model_parses_any_case(text, threat):
    assert ThreatModel.parse(text) is threat
    assert ThreatModel.parse(threat) is threat


def test_threat_model_names_and_bad_values():
    assert (ThreatModel.LINF.display, ThreatModel.L2.display) == ("Linf", "L2")
    assert (ThreatModel.LINF.worst_label, ThreatModel.L2.worst_label) == ("worst", "worst:l2")
    assert (ThreatModel.LINF.budget_word, ThreatModel.L2.budget_word) == ("ε", "L2 radius")
    assert ThreatModel.L2 == "l2" and str(ThreatModel.L2) == "l2"
    for bad in ("l1", "", "linf2", None, 2):
        with pytest.raises(ConfigError, match=r"threat model .* is not valid; valid: linf, l2") as err:
            ThreatModel.parse(bad)
        assert "\n" not in str(err.value) and repr(bad) in str(err.value)


def _examples(name: str) -> list[str]:
    """Specs of one family: plain, with a non-default parameter, L2, and scheduled."""
    entry = get_attack_entry(name)
    out = [name]
    for key, kind in entry.types.items():
        value = {int: "3", float: "0.5", bool: "false", str: "train"}[kind]  # str: fgsm's loss
        if key == "random_start":
            continue
        out.append(f"{name}:{key}={value}")
    if len(entry.threats) > 1:
        out.append(f"{name}:norm=l2:cascade=true")
    out.append(f"{name}:min_eps=0.25")
    return out


@pytest.mark.parametrize("name", list(list_attacks()))
def test_spec_of_label_round_trips_every_family(name):
    for text in _examples(name):
        spec = parse_attack(text)
        back = spec_of_label(spec.label)
        assert isinstance(back, AttackSpec) and back == spec and back.label == spec.label
        assert back.family == name and back.threat is ThreatModel.parse(back.norm)
        assert back.norm_name == back.threat.display


def test_spec_of_label_is_none_for_rows_that_are_no_attack():
    for label in RESERVED_LABELS:
        assert spec_of_label(label) is None
    assert spec_of_label("not-an-attack:steps=3") is None
    assert spec_of_label(float("nan")) is None
    assert spec_of_label("pgd:dropped_option=1") is None  # a parameter the family does not (or no longer) take
    assert spec_of_label("pgd:norm=l2").threat is ThreatModel.L2


def test_typed_accessors_and_resolved_budgets():
    apgd_t = parse_attack("apgd-t:targets=3:cascade=true:min_eps=0.1")
    assert (apgd_t.steps, apgd_t.restarts, apgd_t.targets, apgd_t.n_queries) == (100, 1, 3, None)
    assert apgd_t.cascade and apgd_t.min_eps == 0.1 and apgd_t.threat is ThreatModel.LINF and apgd_t.norm == "linf"
    square = parse_attack("square:n_queries=60:norm=l2")
    assert (square.n_queries, square.steps, square.threat) == (60, None, ThreatModel.L2)
    pgd = parse_attack("pgd:steps=7")
    assert (pgd.steps, pgd.restarts, pgd.targets) == (7, 1, None) and not pgd.cascade


@pytest.fixture
def scratch_attack():
    """Registers attacks under test names and removes them afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        attacks_base._ATTACKS.pop(name, None)


def _noop(ctx, x, y, eps, params, seed):
    return x.clone()


def _no_budget(params, eps, n_classes):
    return {}


def test_register_attack_by_keywords_or_entry(scratch_attack):
    scratch_attack += ["test-noop", "test-linf-only", "test-entry"]
    assert spec_of_label("test-noop:steps=2") is None  # not registered yet
    entry = register_attack(
        name="test-noop",
        summary="does nothing",
        defaults={"steps": 1},
        types={"steps": int},
        runner=_noop,
        budget=_no_budget,
    )
    assert (entry.kind, entry.min_classes, entry.uses_clean_grad) == ("gradient", 2, False)
    assert get_attack_entry("test-noop") is entry and list_attacks()["test-noop"] == "does nothing"
    spec = spec_of_label("test-noop:norm=l2:steps=2")
    assert spec is not None and spec.threat is ThreatModel.L2 and spec.steps == 2
    register_attack(
        name="test-linf-only", summary="L-inf only", runner=_noop, budget=_no_budget, threats=(ThreatModel.LINF,)
    )
    with pytest.raises(ConfigError, match="'test-linf-only' is L-infinity only"):
        parse_attack("test-linf-only:norm=l2")
    register_attack(AttackEntry("test-entry", "positional", "gradient", {}, {}, 2, _noop, _no_budget))
    assert parse_attack("test-entry").kind == "gradient"
    with pytest.raises(ValueError, match="already registered"):
        register_attack(name="test-noop", summary="again", runner=_noop, budget=_no_budget)
    with pytest.raises(TypeError, match="register_attack"):
        register_attack(name="test-broken", summary="no runner", budget=dict)


# ------------------------------------------------------------------ no worst case over no attack


def test_l2_only_attacks_give_no_linf_worst_rows():
    model = mlp()
    x, y = data(model, n=24)
    ev = run_evaluation(model, x, y, ["pgd:norm=l2:steps=2"], [0.0, 0.1], eps_l2=[0.0, 0.5], seed=0)
    rows = set(zip(ev.results["attack"], ev.results["eps"]))
    assert not any(a == "worst" for a, _ in rows) and "worst" not in ev.robust
    assert ("worst:l2", 0.5) in rows and ("worst:l2", 0.0) in rows
    assert _worst_params(ev.results, "worst:l2")[0.5]["over"] == ["pgd:norm=l2:steps=2"]
    assert set(ev.robust["worst:l2"]) == {0.0, 0.5}


def test_no_worst_row_where_min_eps_kept_every_attack_out():
    model = mlp()
    x, y = data(model, n=32)
    alone = run_evaluation(model, x, y, ["pgd:steps=2:min_eps=0.1"], [0.0, 0.05, 0.1], seed=0)
    worst = alone.results[alone.results["attack"] == "worst"]
    assert sorted(worst["eps"]) == [0.0, 0.1]  # at 0.05 nothing ran: no row equal to clean accuracy
    assert set(alone.robust["worst"]) == {0.0, 0.1}
    both = run_evaluation(model, x, y, ["fgsm", "pgd:steps=2:min_eps=0.1"], [0.0, 0.05, 0.1], seed=0)
    over = {e: p["over"] for e, p in _worst_params(both.results, "worst").items()}
    assert over[0.05] == ["fgsm"] and over[0.1] == ["fgsm", "pgd:min_eps=0.1:steps=2"]
    assert torch.equal(both.robust["worst"][0.05], both.robust["fgsm"][0.05])


def test_diverged_rows_have_the_rows_an_evaluation_writes():
    from robust_glo.comparison.config import CompareConfig
    from robust_glo.comparison.store import diverged_rows

    model = mlp()
    x, y = data(model, n=16)
    attacks = ["pgd:norm=l2:steps=2", "apgd-ce:min_eps=0.1:steps=2"]
    ev = run_evaluation(model, x, y, attacks, [0.0, 0.05, 0.1], eps_l2=[0.5], seed=0)
    config = CompareConfig(attacks=attacks, eps=[0.0, 0.05, 0.1], eps_l2=[0.5])
    rows = diverged_rows({"loss": "ce", "seed": 0}, config)
    assert set(zip(rows["attack"], rows["eps"], rows["norm"])) == set(
        zip(ev.results["attack"], ev.results["eps"], ev.results["norm"])
    )
    assert ("worst", 0.05) not in set(zip(rows["attack"], rows["eps"]))


# ------------------------------------------------------------------ AutoAttack coverage

AA_PARTS = ["apgd-ce", "apgd-t:cascade=true", "fab-t:cascade=true", "square:cascade=true"]
ALL_MISSING = (
    "APGD-CE (100 steps)",
    "APGD-T (9 targets, 100 steps)",
    "FAB-T (9 targets, 100 steps)",
    "Square (5,000 queries)",
)


def test_coverage_of_the_reference_ensemble_and_of_its_parts():
    assert autoattack_coverage(["aa-reference"], 8 / 255, "linf", 10) == Coverage(True, ("aa-reference",), ())
    parts = autoattack_coverage(AA_PARTS + ["fgsm"], 8 / 255, ThreatModel.LINF, 10)
    assert (
        parts.verified
        and parts.missing == ()
        and parts.ran == tuple(parse_attack(a).label for a in AA_PARTS) + ("fgsm",)
    )
    weak = AA_PARTS[:3] + ["square:n_queries=1000"]
    cover = autoattack_coverage(weak, 8 / 255, "linf", 10)
    assert not cover.verified and cover.missing == ("Square (5,000 queries)",)
    # Square must start from the reference square size: a smaller p_init is a weaker search
    shrunk = autoattack_coverage(AA_PARTS[:3] + ["square:p_init=0.001"], 0.1, "linf", 10)
    assert not shrunk.verified and shrunk.missing == ("Square (5,000 queries, p_init 0.8)",)
    short = autoattack_coverage(["apgd-ce:steps=50"] + AA_PARTS[1:], 0.1, "linf", 10)
    assert short.missing == ("APGD-CE (100 steps)",)
    assert autoattack_coverage(["fgsm", "pgd"], 0.1, "linf", 10).missing == ALL_MISSING


def test_coverage_targets_depend_on_the_classes():
    two = ["apgd-ce", "apgd-t:targets=2", "fab-t:targets=2", "square"]
    assert autoattack_coverage(two, 0.1, "linf", 3).verified
    assert autoattack_coverage(two, 0.1, "linf", 10).missing == (
        "APGD-T (9 targets, 100 steps)",
        "FAB-T (9 targets, 100 steps)",
    )
    one = ["apgd-ce", "apgd-t:targets=1", "fab-t:targets=2", "square"]
    assert autoattack_coverage(one, 0.1, "linf", 3).missing == ("APGD-T (2 targets, 100 steps)",)


def test_coverage_is_per_threat_model_and_per_eps():
    l2 = autoattack_coverage(["aa-reference:norm=l2", "fgsm"], 0.5, "l2", 10)
    assert l2.verified and l2.ran == ("aa-reference:norm=l2",)
    linf = autoattack_coverage(["aa-reference:norm=l2", "fgsm"], 0.5, "linf", 10)
    assert not linf.verified and linf.ran == ("fgsm",) and linf.missing == ALL_MISSING
    late = ["aa-reference:min_eps=0.1"]
    assert not autoattack_coverage(late, 0.05, "linf", 10).verified
    assert autoattack_coverage(late, 0.1, "linf", 10).verified
    with pytest.raises(ConfigError, match="n_classes"):
        autoattack_coverage(late, 0.1, "linf", 1)


def test_worst_rows_record_coverage_and_stored_results_recompute_it():
    model = linear_model()
    x, y = data(model, n=24)
    ev = run_evaluation(model, x, y, ["fgsm", "aa-reference:min_eps=0.5"], [0.0, 0.1, 0.5], seed=0)
    params = _worst_params(ev.results, "worst")
    assert params[0.5]["autoattack"] is True and params[0.5]["missing"] == []
    assert params[0.1]["autoattack"] is False and params[0.1]["missing"] == list(ALL_MISSING)
    assert params[0.1]["over"] == ["fgsm"]
    stored = coverage_from_results(ev.results, ev.n_classes)
    assert set(stored) == {(ThreatModel.LINF, 0.0), (ThreatModel.LINF, 0.1), (ThreatModel.LINF, 0.5)}
    for eps, p in params.items():
        assert stored[ThreatModel.LINF, eps].verified is p["autoattack"]
        assert list(stored[ThreatModel.LINF, eps].missing) == p["missing"]
        assert list(stored[ThreatModel.LINF, eps].ran) == p["over"]


def test_coverage_from_an_older_results_table():
    table = pd.DataFrame(
        {
            "attack": ["clean", "pgd", "apgd-ce", "apgd-t", "fab-t", "square", "bim", "worst", "worst", "worst:l2"],
            "eps": [0.0, 0.05, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.1, 0.5],
            "norm": ["Linf"] * 9 + ["L2"],
        }
    )
    cover = coverage_from_results(table, 10)
    assert cover[ThreatModel.LINF, 0.1].verified and cover[ThreatModel.LINF, 0.1].ran == (
        "apgd-ce",
        "apgd-t",
        "fab-t",
        "square",
    )
    assert not cover[ThreatModel.LINF, 0.05].verified and cover[ThreatModel.LINF, 0.05].ran == ("pgd",)
    assert cover[ThreatModel.L2, 0.5] == Coverage(False, (), ALL_MISSING)
    assert (ThreatModel.LINF, 0.0) not in cover  # the clean row is no attack


# ------------------------------------------------------------------ zero and nonfinite gradients


class _NaiveLogSoftmax(nn.Module):
    """A head computing log(softmax(z)): -inf where softmax underflows, and NaN input-gradients there."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.softmax(self.inner(x), 1))


def test_nan_gradients_of_a_naive_log_softmax_head_are_flagged():
    x, y = data(linear_model(seed=3), n=40, wrong=0)
    naive = run_evaluation(_NaiveLogSoftmax(linear_model(seed=3, scale=1e3)), x, y, ["fgsm"], [0.0, 0.1], seed=0)
    assert naive.gradient_shares["nonfinite"] > 0.95
    assert naive.gradient_shares["zero"] == 0.0 == naive.zero_grad_share  # distinct from all-zero gradients
    flags = naive.flags.set_index("check")
    assert flags.loc["nonfinite_gradients", "status"] == "fail"
    assert "NaN or infinite" in flags.loc["nonfinite_gradients", "detail"]
    assert "nonfinite_gradients" in naive.results["flags"].iloc[0] and not naive.reliable
    at = naive.results.set_index(["attack", "eps"])["accuracy"]
    assert at["fgsm", 0.1] == at["clean", 0.0]  # sign(NaN) = 0: FGSM moved nothing

    plain = run_evaluation(linear_model(seed=3), x, y, ["fgsm"], [0.0, 0.1], seed=0)
    assert plain.gradient_shares == {"zero": 0.0, "nonfinite": 0.0}
    assert plain.flags.set_index("check").loc["nonfinite_gradients", "status"] == "pass"


def test_nonfinite_check_statuses():
    table = pd.DataFrame(
        {
            "attack": ["clean", "fgsm"],
            "eps": [0.0, 0.1],
            "accuracy": [0.9, 0.5],
            "max_perturbation": [float("nan"), 0.1],
            "out_of_range": [0, 0],
        }
    )

    def status(**kwargs) -> str:
        return check_reliability(table, 0.0, **kwargs).set_index("check").loc["nonfinite_gradients", "status"]

    assert status() == "not run"
    assert status(nonfinite_grad_share=float("nan")) == "not run"
    assert status(nonfinite_grad_share=0.5) == "fail"
    assert status(nonfinite_grad_share=0.5, zero_grad_threshold=0.6) == "pass"
    assert status(nonfinite_grad_share=0.0) == "pass"


def _results_table(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    """An evaluation's results (attack, eps, accuracy) as `check_reliability` reads them."""
    return pd.DataFrame(
        {
            "attack": [a for a, _, _ in rows],
            "eps": [e for _, e, _ in rows],
            "accuracy": [v for _, _, v in rows],
            "max_perturbation": [float("nan")] * len(rows),
            "out_of_range": [0] * len(rows),
        }
    )


def test_pgd_le_fgsm_compares_only_uncascaded_linf_pgd():
    rows = [("clean", 0.0, 0.9), ("fgsm", 0.1, 0.4), ("pgd:norm=l2", 0.1, 0.8), ("pgd:cascade=true", 0.1, 0.8)]
    table = _results_table(rows)
    assert check_reliability(table, 0.0).set_index("check").loc["pgd_le_fgsm", "status"] == "not run"
    table.loc[len(table)] = ["pgd", 0.1, 0.8, float("nan"), 0]
    assert check_reliability(table, 0.0).set_index("check").loc["pgd_le_fgsm", "status"] == "fail"


def test_pgd_le_fgsm_compares_pgd_only_with_fgsm_on_the_same_loss():
    # FGSM on the network's own training loss (the paper's protocol) follows another objective than PGD on
    # cross-entropy: PGD doing worse than it is no sign of masking; PGD worse than FGSM on cross-entropy is.
    rows = [("clean", 0.0, 0.9), ("fgsm:loss=train", 0.1, 0.5), ("pgd", 0.1, 0.6)]
    table = _results_table(rows)
    assert check_reliability(table, 0.0).set_index("check").loc["pgd_le_fgsm", "status"] == "not run"
    table.loc[len(table)] = ["fgsm", 0.1, 0.7, float("nan"), 0]
    assert check_reliability(table, 0.0).set_index("check").loc["pgd_le_fgsm", "status"] == "pass"
    table.loc[len(table) - 1, "accuracy"] = 0.5
    assert check_reliability(table, 0.0).set_index("check").loc["pgd_le_fgsm", "status"] == "fail"
