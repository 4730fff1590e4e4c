"""Robustness harness: attacks stay in budget, accuracies are consistent, checks catch masking.

Tiny deterministic models (Foolbox/ART style): a linear classifier with fixed weights on 4x4 images and a
small MLP, so every test runs in well under a few seconds on a CPU.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torchattacks
from torch import nn

from robust_glo.errors import ConfigError
from robust_glo.robustness import (
    AttackSpec,
    check_reliability,
    evaluate_model,
    generate_adversarial,
    list_attacks,
    parse_attack,
    run_evaluation,
)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def linear_model(n_classes: int = 10, side: int = 4, seed: int = 0, scale: float = 1.0) -> nn.Module:
    """logits = scale * (W x + b) for x `(N, 1, side, side)`; weights from a private generator."""
    g = _generator(seed)
    layer = nn.Linear(side * side, n_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(n_classes, side * side, generator=g) * scale)
        layer.bias.copy_(torch.randn(n_classes, generator=g) * 0.1 * scale)
    return nn.Sequential(nn.Flatten(), layer)


def mlp(n_classes: int = 10, side: int = 4, seed: int = 1, dropout: float = 0.0) -> nn.Module:
    g = _generator(seed)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(side * side, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, n_classes)
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)
    return model


def data(
    model: nn.Module, n: int = 96, side: int = 4, seed: int = 2, wrong: int = 8, low: float = 0.0, high: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs in [low, high] labelled by the model itself, except `wrong` labels shifted by one."""
    x = low + (high - low) * torch.rand(n, 1, side, side, generator=_generator(seed))
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    y[:wrong] = (y[:wrong] + 1) % logits.shape[1]
    return x, y


FAST_ATTACKS = [
    "fgsm",
    "pgd",
    "pgd:restarts=2:steps=5",
    "apgd-ce:steps=10",
    "apgd-dlr:steps=10",
    "apgd-t:steps=5:targets=3",
    "fab-t:steps=5:targets=2",
    "square:n_queries=60",
]


@pytest.fixture(scope="module")
def evaluation():
    model = mlp()
    x, y = data(model)
    return model, x, y, run_evaluation(model, x, y, FAST_ATTACKS, [0, 0.1, 0.3], batch_size=96, seed=3)


@pytest.mark.parametrize("attack", FAST_ATTACKS)
@pytest.mark.parametrize("eps", [0.03, 0.2])
def test_adversarial_inputs_stay_in_eps_ball_and_unit_range(attack, eps):
    model = mlp()
    x, y = data(model, n=32)
    adv = generate_adversarial(model, x, y, attack, eps, seed=1)
    assert adv.shape == x.shape
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_results_table_shape_and_budgets_recorded(evaluation):
    _, x, _, ev = evaluation
    table = ev.results
    assert list(table["attack"].unique()) == ["clean"] + [parse_attack(a).label for a in FAST_ATTACKS] + ["worst"]
    assert set(table["norm"]) == {"Linf"}
    assert (table["n"] == len(x)).all()
    pgd = json.loads(table[(table.attack == "pgd") & (table.eps == 0.1)]["params"].item())
    assert pgd == {
        "loss": "ce",
        "steps": 10,
        "alpha": pytest.approx(0.025),
        "alpha_rule": "2.5*eps/steps",
        "random_start": True,
        "restarts": 1,
    }
    apgd_t = json.loads(table[(table.attack == "apgd-t:steps=5:targets=3") & (table.eps == 0.1)]["params"].item())
    assert apgd_t["steps"] == 5 and apgd_t["targets"] == 3 and apgd_t["loss"] == "dlr-targeted"
    assert (table[table.attack != "clean"]["max_perturbation"].dropna() <= table["eps"].max() + 1e-6).all()


def test_eps0_gives_clean_accuracy_and_robust_never_exceeds_clean(evaluation):
    _, _, _, ev = evaluation
    table = ev.results
    clean = table[table.attack == "clean"]["accuracy"].item()
    assert clean == pytest.approx(88 / 96)  # 8 labels were made wrong
    assert (table[table.eps == 0]["accuracy"] == clean).all()
    assert (table["accuracy"] <= clean).all()
    for label, by_eps in ev.robust.items():
        for eps, held in by_eps.items():
            assert not (held & ~ev.clean_correct).any(), (label, eps)  # robust implies clean-correct


def test_worst_is_per_sample_minimum_over_attacks(evaluation):
    _, _, _, ev = evaluation
    table = ev.results.set_index(["attack", "eps"])["accuracy"]
    for eps in (0.1, 0.3):
        expected = ev.clean_correct.clone()
        for label in ev.robust:
            if label != "worst":
                expected &= ev.robust[label][eps]
                assert table["worst", eps] <= table[label, eps]
        assert torch.equal(ev.robust["worst"][eps], expected)
        assert table["worst", eps] == pytest.approx(float(expected.float().mean()))
    # The attacks actually bite at a large budget: this model is far from robust.
    assert table["worst", 0.3] < table["clean", 0.0] - 0.3


def test_well_behaved_model_passes_every_check(evaluation):
    _, _, _, ev = evaluation
    assert ev.reliable, ev.flags
    assert ev.results["reliable"].all() and (ev.results["flags"] == "").all()
    assert set(ev.flags["status"]) == {"pass"}


def test_fgsm_on_linear_model_matches_closed_form():
    # Two classes, logits W x + b: the CE input-gradient is (p_y - 1) (w_y - w_o), so FGSM moves every
    # pixel by -eps * sign(w_y - w_o) and lowers the margin m(x) = (w_y - w_o) x + (b_y - b_o) by exactly
    # eps * ||w_y - w_o||_1 while no pixel is clipped (inputs in [0.3, 0.7], eps <= 0.2).
    model = linear_model(n_classes=2, seed=5)
    x, y = data(model, n=200, wrong=0, low=0.3, high=0.7)
    w, b = model[1].weight.detach(), model[1].bias.detach()
    dw = w[y] - w[1 - y]  # (N, 16)
    margin = (dw * x.flatten(1)).sum(1) + b[y] - b[1 - y]
    for eps in (0.02, 0.05, 0.1, 0.2):
        adv = generate_adversarial(model, x, y, "fgsm", eps)
        expected = (x.flatten(1) - eps * dw.sign()).view_as(x)
        assert torch.allclose(adv, expected, atol=1e-6)
        robust = int((margin > eps * dw.abs().sum(1)).sum())
        table = evaluate_model(model, x, y, ["fgsm", "pgd"], [eps])
        acc = table.set_index("attack")["accuracy"]
        assert acc["fgsm"] == pytest.approx(robust / 200)
        # FGSM is the optimal attack here, so PGD can only tie it.
        assert acc["pgd"] == pytest.approx(robust / 200)
    assert 0 < robust < 200  # the budgets above span a real range of outcomes


def test_fgsm_equals_torchattacks_fgsm_on_a_multiclass_model():
    model = mlp()
    x, y = data(model, n=50)
    ours = generate_adversarial(model, x, y, "fgsm", 0.07)
    theirs = torchattacks.FGSM(model.eval(), eps=0.07)(x, y)
    assert torch.equal(ours, theirs)


def test_global_rng_untouched_and_results_reproducible():
    model = mlp()
    x, y = data(model, n=48)
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    first = evaluate_model(
        model, x, y, ["pgd:steps=3", "apgd-ce:steps=5", "square:n_queries=30"], [0.1, 0.2], batch_size=16, seed=7
    )
    assert torch.equal(torch.get_rng_state(), state)
    second = evaluate_model(
        model, x, y, ["pgd:steps=3", "apgd-ce:steps=5", "square:n_queries=30"], [0.1, 0.2], batch_size=16, seed=7
    )
    pd.testing.assert_frame_equal(first.drop(columns="seconds"), second.drop(columns="seconds"))


def test_model_mode_and_parameter_flags_restored_and_dropout_off_during_attack():
    model = mlp(dropout=0.5)
    model.train()
    model[1].weight.requires_grad_(False)
    x, y = data(model.eval(), n=64)
    model.train()
    ev = run_evaluation(model, x, y, ["fgsm"], [0, 0.1])
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]
    # With dropout active, eps = 0 would disagree with clean predictions: eval mode was used.
    assert ev.flags.set_index("check").loc["eps0_equals_clean", "status"] == "pass"


def test_out_of_range_inputs_are_refused():
    model = mlp()
    x, y = data(model, n=8)
    too_bright = x.clone()
    too_bright[0, 0, 0, 0] = 1.5
    with pytest.raises(ConfigError, match=r"inputs must lie in \[0, 1\].*max 1\.5"):
        evaluate_model(model, too_bright, y, ["fgsm"], [0.1])
    with pytest.raises(ConfigError, match=r"normalization.*inside the model"):
        evaluate_model(model, (x - 0.5) / 0.25, y, ["fgsm"], [0.1])
    x_nan = x.clone()
    x_nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        evaluate_model(model, x_nan, y, ["fgsm"], [0.1])


def test_unknown_attack_and_bad_parameters_are_refused():
    model = mlp()
    x, y = data(model, n=8)
    with pytest.raises(ConfigError) as err:
        evaluate_model(model, x, y, ["fgsm", "cw"], [0.1])
    message = str(err.value)
    assert "'cw'" in message and "\n" not in message
    assert all(name in message for name in list_attacks())
    with pytest.raises(ConfigError, match=r"'pgd' has no parameter 'stepz'.*steps"):
        parse_attack("pgd:stepz=3")
    with pytest.raises(ConfigError, match=r"steps=ten is not a valid int"):
        parse_attack("pgd:steps=ten")
    with pytest.raises(ConfigError, match=r"restarts > 1 needs random_start"):
        parse_attack("pgd:restarts=3:random_start=false")
    with pytest.raises(ConfigError, match=r"eps 1.5 is outside \[0, 1\]"):
        evaluate_model(model, x, y, ["fgsm"], [0.1, 1.5])
    with pytest.raises(ConfigError, match=r"listed twice"):
        evaluate_model(model, x, y, ["pgd", "pgd"], [0.1])
    with pytest.raises(ConfigError, match=r"labels must lie in \[0, 9\]"):
        evaluate_model(model, x, y + 10, ["fgsm"], [0.1])


def test_n_classes_is_read_from_the_model():
    model = mlp(n_classes=3)
    x, y = data(model, n=24, wrong=2)
    with pytest.raises(ConfigError, match=r"'apgd-t' needs >= 4 classes; the model has 3"):
        evaluate_model(model, x, y, ["apgd-t"], [0.1])
    table = evaluate_model(model, x, y, ["apgd-dlr:steps=5", "fab-t:steps=5"], [0.1])
    fab = json.loads(table[table.attack == "fab-t:steps=5"]["params"].item())
    assert fab["targets"] == 2  # min(9, n_classes - 1)


def test_aa_reference_runs_the_reference_budgets():
    spec = parse_attack("aa-reference")
    budget = spec.budget(8 / 255, 10)
    assert [c["attack"] for c in budget["components"]] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    apgd_ce, apgd_t, fab_t, square = budget["components"]
    assert (apgd_ce["steps"], apgd_ce["restarts"], apgd_ce["loss"]) == (100, 1, "ce")
    assert (apgd_t["steps"], apgd_t["targets"]) == (100, 9)
    assert (fab_t["steps"], fab_t["targets"]) == (100, 9)
    assert (square["n_queries"], square["p_init"], square["resc_schedule"]) == (5000, 0.8, False)
    # Run it where the cascade is short: a large budget breaks the linear model in the first component.
    model = linear_model()
    x, y = data(model, n=24)
    table = evaluate_model(model, x, y, ["aa-reference", "fgsm"], [0.5])
    acc = table.set_index("attack")["accuracy"]
    assert acc["aa-reference"] <= acc["fgsm"] and acc["aa-reference"] == 0.0


def test_saturated_logits_are_flagged_as_gradient_masking():
    # Logits scaled by 1e4: the softmax saturates, CE input-gradients are exactly zero, FGSM and PGD
    # stall, while the gradient-free Square attack (margin loss, scale-free) still succeeds.
    x, y = data(linear_model(n_classes=10, seed=3), n=40, wrong=0)
    masked = run_evaluation(
        linear_model(n_classes=10, seed=3, scale=1e4),
        x,
        y,
        ["fgsm", "pgd:steps=5", "square:n_queries=300"],
        [0.1],
        seed=0,
    )
    status = masked.flags.set_index("check")["status"]
    assert status["zero_gradients"] == "fail" and masked.zero_grad_share > 0.5
    assert status["gradient_free_not_better"] == "fail"
    assert not masked.reliable and not masked.results["reliable"].any()
    assert "zero_gradients" in masked.results["flags"].iloc[0]
    plain = run_evaluation(
        linear_model(n_classes=10, seed=3), x, y, ["fgsm", "pgd:steps=5", "square:n_queries=300"], [0.1], seed=0
    )
    assert plain.reliable, plain.flags


def _table(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "attack": a,
                "eps": e,
                "accuracy": v,
                "max_perturbation": 0.0 if a not in ("clean", "worst") else float("nan"),
                "out_of_range": 0,
            }
            for a, e, v in rows
        ]
    )


def test_checks_flag_pgd_weaker_than_fgsm_and_accuracy_rising_with_eps():
    rows = [
        ("clean", 0.0, 0.9),
        ("fgsm", 0.0, 0.9),
        ("fgsm", 0.1, 0.5),
        ("fgsm", 0.2, 0.6),
        ("pgd", 0.0, 0.9),
        ("pgd", 0.1, 0.7),
        ("pgd", 0.2, 0.3),
        ("worst", 0.0, 0.9),
        ("worst", 0.1, 0.5),
        ("worst", 0.2, 0.3),
    ]
    flags = check_reliability(_table(rows), 0.0).set_index("check")
    assert flags.loc["pgd_le_fgsm", "status"] == "fail"
    assert "pgd 0.7000 > fgsm 0.5000 at eps=0.1" in flags.loc["pgd_le_fgsm", "detail"]
    assert flags.loc["monotone_in_eps", "status"] == "fail"
    assert "fgsm: 0.5000 at eps=0.1 rises to 0.6000 at eps=0.2" in flags.loc["monotone_in_eps", "detail"]
    assert "worst_le_each" not in flags.index and "robust_le_clean" not in flags.index  # invariants, asserted
    assert flags.loc["gradient_free_not_better", "status"] == "not run"
    assert flags.loc["gradient_free_not_better", "detail"] == "no gradient-free attack (square) was run"
    assert flags.loc["clean_unchanged_after_attacks", "status"] == "not run"
    assert flags["explanation"].str.len().min() > 40


def test_checks_flag_eps0_mismatch_and_budget_violations():
    table = _table(
        [("clean", 0.0, 0.9), ("fgsm", 0.0, 0.8), ("fgsm", 0.1, 0.5), ("worst", 0.0, 0.8), ("worst", 0.1, 0.6)]
    )
    table.loc[2, "max_perturbation"] = 0.15
    flags = check_reliability(table, float("nan")).set_index("check")
    assert flags.loc["eps0_equals_clean", "status"] == "fail"
    assert flags.loc["perturbation_in_budget", "status"] == "fail"
    assert flags.loc["zero_gradients", "status"] == "not run"
    assert flags.loc["pgd_le_fgsm", "status"] == "not run"
    assert flags.loc["pgd_le_fgsm", "detail"] == "needs both fgsm and pgd on the same loss at an eps > 0"


def test_attack_spec_labels_are_canonical():
    assert parse_attack("pgd:steps=40:restarts=2").label == "pgd:restarts=2:steps=40"
    assert parse_attack(" pgd : steps = 40 ") == AttackSpec.create("pgd", steps=40)
    assert parse_attack("pgd:alpha=0.01:random_start=false").resolved() == {
        "steps": 10,
        "alpha": 0.01,
        "random_start": False,
        "restarts": 1,
        "norm": "linf",
    }


def test_batch_size_does_not_change_deterministic_attacks():
    model = mlp()
    x, y = data(model, n=50)
    a = evaluate_model(model, x, y, ["fgsm"], [0.05, 0.1], batch_size=7)
    b = evaluate_model(model, x, y, ["fgsm"], [0.05, 0.1], batch_size=50)
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


class _BufferOnly(nn.Module):
    """A parameter-free classifier (weights in a buffer): torchattacks cannot find its device itself."""

    def __init__(self):
        super().__init__()
        self.register_buffer("weight", torch.randn(10, 16, generator=_generator(4)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T


def test_parameter_free_model_runs_silently(capsys):
    model = _BufferOnly()
    x, y = data(model, n=20)
    table = evaluate_model(model, x, y, ["pgd:steps=3", "apgd-ce:steps=3"], [0.1])
    assert capsys.readouterr().out == ""  # no "Failed to set device automatically" from torchattacks
    assert (table["accuracy"] <= table[table.attack == "clean"]["accuracy"].item()).all()


def test_models_that_do_not_return_logits_are_refused():
    x, y = data(mlp(), n=8)
    with pytest.raises(ConfigError, match=r"must return float logits of shape \(batch, n_classes\); got \(8, 10, 1\)"):
        evaluate_model(nn.Sequential(mlp(), nn.Unflatten(1, (10, 1))), x, y, ["fgsm"], [0.1])
    with pytest.raises(ConfigError, match=r"got tuple"):
        evaluate_model(_TupleModel(), x, y, ["fgsm"], [0.1])


class _TupleModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = mlp()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(x), x


# ------------------------------------------------------------------ eval mode and model state under attack

ALL_ATTACKS_FAST = [
    "fgsm",
    "pgd:steps=3:restarts=2",
    "apgd-ce:steps=3",
    "apgd-dlr:steps=3",
    "apgd-t:steps=3",
    "fab-t:steps=3",
    "square:n_queries=30",
]


def bn_dropout_model(seed: int = 0) -> nn.Module:
    """Conv + BatchNorm + Dropout, its running statistics warmed up so that train and eval mode differ."""
    torch.manual_seed(seed)  # the test owns this; layers draw their init from the global RNG
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 10),
    )
    x = torch.rand(64, 1, 4, 4, generator=_generator(seed))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x * 2)  # statistics of other inputs: batch statistics now differ from running ones
    return model


def _own_labels(model: nn.Module, n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 1, 4, 4, generator=_generator(7))
    model.eval()
    with torch.no_grad():
        y = model(x).argmax(1)
    return x, y


@pytest.mark.parametrize("attack", ALL_ATTACKS_FAST + ["aa-reference"])
def test_every_attack_keeps_a_batchnorm_dropout_model_in_eval_mode(attack):
    model = bn_dropout_model()
    x, y = _own_labels(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # the caller's mode, to be restored
    # Two batches: the second batch's clean pass runs after the first batch's attacks.
    ev = run_evaluation(model, x, y, [attack], [0.0, 0.1], batch_size=24, seed=0)
    table = ev.results.set_index(["attack", "eps"])["accuracy"]
    assert table["clean", 0.0] == 1.0  # labels are the model's own eval-mode predictions
    assert (ev.results[ev.results.eps == 0.0]["accuracy"] == 1.0).all()
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), attack
    flags = ev.flags.set_index("check")["status"]
    assert flags["clean_unchanged_after_attacks"] == "pass" and flags["model_state_unchanged"] == "pass"


def test_all_attacks_together_leave_clean_accuracy_and_state_unchanged():
    model = bn_dropout_model(1)
    x, y = _own_labels(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ev = run_evaluation(model, x, y, ALL_ATTACKS_FAST, [0.0, 0.05], batch_size=16, seed=0)
    assert ev.results[ev.results.attack == "clean"]["accuracy"].item() == 1.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert ev.flags.set_index("check").loc["clean_unchanged_after_attacks", "value"] == 0


class _Drifting(nn.Module):
    """A model that changes its own state on every call: what an attack switching BatchNorm to training
    mode does to a network. The checks must notice."""

    def __init__(self):
        super().__init__()
        self.net = mlp()
        self.register_buffer("shift", torch.zeros(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x) + self.shift
        with torch.no_grad():
            self.shift[0] += 5.0
        return out


def test_a_model_whose_state_changes_during_attacks_is_flagged_and_restored():
    model = _Drifting()
    x, y = data(model.net, n=32, wrong=0)
    ev = run_evaluation(model, x, y, ["pgd:steps=2"], [0.0, 0.1], batch_size=32)
    flags = ev.flags.set_index("check")
    assert flags.loc["model_state_unchanged", "status"] == "fail"
    assert "shift" in flags.loc["model_state_unchanged", "detail"]
    assert flags.loc["clean_unchanged_after_attacks", "status"] == "fail"
    assert not ev.reliable
    assert float(model.shift.abs().max()) == 0.0  # restored


def test_flag_statuses_are_read_back_as_text(tmp_path):
    from robust_glo.robustness.checks import read_flags

    model = mlp()
    x, y = data(model, n=16)
    flags = run_evaluation(model, x, y, ["pgd:steps=2"], [0.1]).flags
    flags.to_csv(tmp_path / "flags.csv", index=False)
    back = read_flags(tmp_path / "flags.csv").set_index("check")
    assert back.loc["gradient_free_not_better", "status"] == "not run"
    assert back.loc["eps0_equals_clean", "status"] == "not run"  # no eps = 0 given
    old = flags.assign(status=flags["status"].replace({"not run": "n/a"}))
    old.to_csv(tmp_path / "old.csv", index=False)
    assert (read_flags(tmp_path / "old.csv")["status"] == flags["status"]).all()


# ------------------------------------------------------------------ where attacks run: cascades, min_eps


def test_a_cascaded_attack_runs_only_where_the_earlier_ones_failed():
    model = mlp()
    x, y = data(model, n=64)
    ev = run_evaluation(model, x, y, ["pgd:steps=2", "apgd-ce:cascade=true:steps=5"], [0.0, 0.05, 0.2], seed=1)
    for eps in (0.05, 0.2):
        pgd, apgd = ev.robust["pgd:steps=2"][eps], ev.robust["apgd-ce:cascade=true:steps=5"][eps]
        assert not (apgd & ~pgd).any()  # its row is the worst case of PGD and itself
        assert torch.equal(ev.robust["worst"][eps], apgd)
    row = ev.results[(ev.results.attack == "apgd-ce:cascade=true:steps=5") & (ev.results.eps == 0.2)]
    assert json.loads(row["params"].item())["cascade_after"] == ["pgd:steps=2"]
    assert ev.reliable, ev.flags


def test_min_eps_runs_an_attack_only_at_the_larger_budgets():
    model = mlp()
    x, y = data(model, n=48)
    ev = run_evaluation(model, x, y, ["fgsm", "pgd:steps=3:min_eps=0.1"], [0.0, 0.05, 0.1], seed=1)
    rows = set(zip(ev.results.attack, ev.results.eps))
    assert ("pgd:min_eps=0.1:steps=3", 0.1) in rows and ("pgd:min_eps=0.1:steps=3", 0.05) not in rows
    assert torch.equal(ev.robust["worst"][0.05], ev.robust["fgsm"][0.05])  # only FGSM ran at 0.05
    with pytest.raises(ConfigError, match="min_eps must lie in"):
        parse_attack("pgd:min_eps=2")
    with pytest.raises(ConfigError, match="cascade"):
        parse_attack("pgd:after=fgsm")


def test_gradient_free_breaks_are_counted_per_input():
    x, y = data(linear_model(n_classes=10, seed=3), n=40, wrong=0)
    masked = run_evaluation(
        linear_model(n_classes=10, seed=3, scale=1e4),
        x,
        y,
        ["fgsm", "pgd:steps=5", "square:cascade=true:n_queries=300"],
        [0.1],
        seed=0,
    )
    flag = masked.flags.set_index("check").loc["gradient_free_not_better"]
    assert flag["status"] == "fail" and flag["value"] > 0.1
    assert "broke" in flag["detail"] and "that every gradient attack missed at eps=0.1" in flag["detail"]


# ------------------------------------------------------------------ the L2 threat model


def test_l2_attacks_stay_in_the_l2_ball_and_report_their_norm():
    model = mlp(side=28)
    x, y = data(model, n=24, side=28)
    attacks = [
        "fgsm",
        "pgd:steps=3",
        "pgd:norm=l2:steps=3",
        "apgd-ce:cascade=true:norm=l2:steps=3",
        "square:cascade=true:n_queries=30:norm=l2",
    ]
    ev = run_evaluation(model, x, y, attacks, [0.0, 0.1], eps_l2=[0.5, 1.0], seed=0)
    table = ev.results
    l2 = table[table["norm"] == "L2"]
    assert set(l2["attack"]) == {
        "pgd:norm=l2:steps=3",
        "apgd-ce:cascade=true:norm=l2:steps=3",
        "square:cascade=true:n_queries=30:norm=l2",
        "worst:l2",
    }
    assert set(l2["eps"]) == {0.5, 1.0} and set(table[table["attack"] == "pgd:steps=3"]["norm"]) == {"Linf"}
    attacked = l2[l2["attack"] != "worst:l2"]
    assert (attacked["max_perturbation"] <= attacked["eps"] + 1e-4).all()
    adv = generate_adversarial(model, x, y, "pgd:norm=l2:steps=5", 0.5, seed=0)
    assert float((adv - x).flatten(1).norm(dim=1).max()) <= 0.5 + 1e-4 and float(adv.min()) >= 0.0
    for eps in (0.5, 1.0):
        expected = ev.clean_correct.clone()
        for label in attacked["attack"].unique():
            expected &= ev.robust[label][eps]
        assert torch.equal(ev.robust["worst:l2"][eps], expected)
    assert ev.reliable, ev.flags


def test_l2_needs_radii_and_fgsm_stays_linf():
    model = mlp()
    x, y = data(model, n=8)
    with pytest.raises(ConfigError, match="L2 attack: give its radii with eps_l2"):
        run_evaluation(model, x, y, ["pgd:norm=l2"], [0.1])
    with pytest.raises(ConfigError, match="L-infinity only"):
        parse_attack("fgsm:norm=l2")
    with pytest.raises(ConfigError, match="norm=l3 is not valid; valid: linf, l2"):
        parse_attack("pgd:norm=l3")


def test_eps0_rows_of_l2_attacks_hold_even_without_a_linf_eps0():
    model = mlp(side=28)
    x, y = data(model, n=16, side=28)
    ev = run_evaluation(model, x, y, ["fgsm", "pgd:norm=l2:steps=2"], [0.1], eps_l2=[0.0, 0.5])
    at = ev.results.set_index(["attack", "eps"])["accuracy"]
    assert at["pgd:norm=l2:steps=2", 0.0] == at["clean", 0.0] == at["worst:l2", 0.0]
    assert ev.flags.set_index("check").loc["eps0_equals_clean", "status"] == "pass"
