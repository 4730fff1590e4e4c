"""Values from a script parsed once at the boundary, and models of any dtype (#22 items 1 and 2).

Budgets: any real scalar is one budget, a string is parsed as the CLI's `--eps` parses it, a sequence of
either is a list of budgets, anything else is a one-line `ConfigError` quoting the value; one parser serves
the Python API, the CLI, suites and comparisons. The other numeric options of the Python API (steps,
seeds, sizes) take any real integer scalar or a string the CLI would take.

Dtypes: a model is attacked in its own parameter dtype (a parameter-free model: the inputs' dtype),
adversarial inputs come back in the inputs' dtype, the budget check allows the dtype's rounding, and an
attack that cannot run in a dtype refuses it in one line naming it.
"""

from __future__ import annotations

import decimal
import fractions
import json
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import robust_glo
from robust_glo.cli import main
from robust_glo.errors import ConfigError, RobustGloError
from robust_glo.robustness import check_reliability, evaluate_model, generate_adversarial, run_evaluation
from robust_glo.robustness.checks import BUDGET_SLACK, budget_slack
from robust_glo.utils.parsing import parse_budgets, parse_integer


def _mlp(side: int = 4, seed: int = 1, dtype: torch.dtype = torch.float32) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(side * side, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)
    return model.to(dtype)


def _data(n: int = 32, side: int = 4, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs in [0, 1] labelled by the float32 model itself (every input correct at eps 0)."""
    x = torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = _mlp(side)(x).argmax(1)
    return x, y


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    return message


def _eps_of(table: pd.DataFrame, attack: str = "fgsm") -> list[float]:
    return sorted(table[table["attack"] == attack]["eps"].tolist())


# ------------------------------------------------------------------------------------ budgets: one parser


@pytest.mark.parametrize(
    "given, expected",
    [
        (0.1, [0.1]),
        (0, [0.0]),
        ("0.1", [0.1]),  # once "eps '.' is not a number"
        ("10/255", [10 / 255]),
        ("0, 0.05 ,8/255", [0.0, 8 / 255, 0.05]),
        (["8/255"], [8 / 255]),  # once refused although the CLI and suites take it
        ([0, "1/10"], [0.0, 0.1]),
        (np.float32(0.1), [0.1]),  # once "TypeError: ... not iterable"; the value it prints as
        (np.float64(0.25), [0.25]),
        (np.int64(0), [0.0]),
        (fractions.Fraction(8, 255), [8 / 255]),
        (decimal.Decimal("0.05"), [0.05]),
        (np.array([0.0, 0.1], dtype=np.float32), [0.0, 0.1]),
        (torch.tensor([0.0, 0.05]), [0.0, 0.05]),
        (torch.tensor(0.1), [0.1]),
        ((0.1, 0.0), [0.0, 0.1]),
        (range(1), [0.0]),
    ],
)
def test_any_real_scalar_string_or_sequence_of_them_is_parsed_into_budgets(given, expected):
    assert parse_budgets(given) == expected
    assert all(type(e) is float for e in parse_budgets(given))


@pytest.mark.parametrize(
    "given, words",
    [
        ("10", "eps 10.0 is outside [0, 1]"),  # once run silently at eps 0 and 1
        ("0,big", "eps 'big' is not a number"),
        (None, "eps None is not a budget"),
        ({"eps": 0.1}, "eps {'eps': 0.1} is not a budget"),
        ({0.1}, "eps {0.1} is not a budget"),
        (object, "eps <class 'object'> is not a budget"),
        (True, "eps True is not a budget"),
        ([0.1, None], "eps [0.1, None] holds None, which is not a number"),
        ([[0, 0.1]], "eps [[0, 0.1]] holds [0, 0.1], which is not a number"),
        (["0,0.1"], "eps ['0,0.1'] holds '0,0.1', which is not a number"),
        ([0.1, float("nan")], "eps [0.1, nan] holds nan, which is not a finite number"),
        (float("inf"), "eps inf is not a finite number"),
        ("1/0", "eps '1/0' is not a number"),
        ([], "no eps given"),
        ("", "no eps given"),
        ([0.1, "1/10"], "eps lists a value twice"),
        (np.zeros((2, 2)), "eps array([[0., 0.], [0., 0.]]) is not a budget"),
    ],
)
def test_anything_else_is_one_line_naming_the_whole_value(given, words):
    with pytest.raises(ConfigError) as exc:
        parse_budgets(given)
    message = _one_line(exc)
    assert words in message, message
    assert "[0, 1]" in message or "twice" in message


def test_l2_radii_take_the_same_forms_and_may_be_empty():
    assert parse_budgets("0.5,1", norm="l2") == [0.5, 1.0]
    assert parse_budgets(np.float64(2.5), norm="l2") == [2.5]
    assert parse_budgets(["1/2"], norm="l2", name="eps_l2") == [0.5]
    assert parse_budgets("", norm="l2") == [] and parse_budgets((), norm="l2") == []
    with pytest.raises(ConfigError, match=r"eps_l2 150.0 is outside \[0, 100\]"):
        parse_budgets("150", norm="l2", name="eps_l2")


def test_the_api_the_cli_suites_and_comparisons_share_the_parser(tmp_path):
    import robust_glo.benchmark.suite as suite
    import robust_glo.cli.evaluate as cli
    import robust_glo.comparison.config as comparison
    import robust_glo.robustness.evaluate as evaluate
    from robust_glo.comparison import CompareConfig

    # the old parsers are gone; the public name check_eps is the one parser
    for module, name in ((suite, "_parse_eps"), (suite, "_parse_radii"), (cli, "parse_eps")):
        assert not hasattr(module, name), name
    assert evaluate.check_eps is parse_budgets and not hasattr(comparison, "check_eps")
    text = "0, 8/255,0.1"
    config = CompareConfig(dataset="digits", eps=text, eps_l2="0.5").validated()
    assert config.eps == parse_budgets(text) == [0.0, 8 / 255, 0.1] and config.eps_l2 == [0.5]
    good = textwrap.dedent(
        """
        [suite]
        name = "s"
        dataset = "digits"
        [train]
        losses = ["ce"]
        seeds = 1
        steps = 5
        [attack]
        attacks = ["fgsm", "pgd:norm=l2"]
        eps = "0, 8/255,0.1"
        eps_l2 = 0.5
        """
    )
    (tmp_path / "s.toml").write_text(good)
    from robust_glo.benchmark import load_suite

    loaded = load_suite(tmp_path / "s.toml")
    assert loaded.eps == config.eps and loaded.eps_l2 == [0.5]


def test_cli_eps_messages_name_the_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for flag, value, words in (
        ("--eps", "0,0.1,0.1", "--eps lists a value twice"),
        ("--eps", "", "no --eps given"),
        ("--eps-l2", "0.5,x", "--eps-l2 'x' is not a number"),
        ("--eps-l2", "500", "--eps-l2 500.0 is outside [0, 100]"),
    ):
        assert main(["evaluate", "--loss", "ce", flag, value, "--out", "X"]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    assert not (tmp_path / "X").exists()


def test_evaluate_model_takes_budgets_from_a_script():
    model = _mlp()
    x, y = _data()
    assert _eps_of(evaluate_model(model, x, y, ["fgsm"], eps="0.1")) == [0.1]
    assert _eps_of(evaluate_model(model, x, y, ["fgsm"], eps=np.float32(0.1))) == [0.1]
    assert _eps_of(evaluate_model(model, x, y, ["fgsm"], eps=fractions.Fraction(8, 255))) == [8 / 255]
    assert _eps_of(evaluate_model(model, x, y, ["fgsm"], eps=["8/255", 0])) == [0.0, 8 / 255]
    table = evaluate_model(model, x, y, ["pgd:norm=l2:steps=2"], eps=0, eps_l2="0.5,1")
    assert _eps_of(table, "pgd:norm=l2:steps=2") == [0.5, 1.0]
    with pytest.raises(ConfigError) as exc:
        evaluate_model(model, x, y, ["fgsm"], eps="10")
    assert "eps 10.0 is outside [0, 1]" in _one_line(exc)
    with pytest.raises(ConfigError) as exc:
        evaluate_model(model, x, y, ["fgsm"], eps=0.1, eps_l2={"r": 1})
    assert "eps_l2 {'r': 1} is not a budget" in _one_line(exc)


def test_numeric_options_of_the_evaluation_take_integers_of_any_kind():
    model = _mlp()
    x, y = _data()
    plain = run_evaluation(model, x, y, ["pgd:steps=2"], [0.1], batch_size=16, seed=3).results
    for batch, seed in ((np.int64(16), np.int32(3)), ("16", "3"), (16.0, torch.tensor(3))):
        other = run_evaluation(model, x, y, ["pgd:steps=2"], [0.1], batch_size=batch, seed=seed).results
        pd.testing.assert_frame_equal(plain.drop(columns="seconds"), other.drop(columns="seconds"))
    for kwargs, words in (
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
        ({"batch_size": "many"}, "batch_size must be an integer >= 1, got 'many'"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"batch_size": True}, "batch_size must be an integer >= 1, got True"),
        (
            {"seed": -1},
            "the range of the random generators, got -1",
        ),
        (
            {"seed": [1]},
            "the range of the random generators, got [1]",
        ),
        ({"tolerance": "lots"}, "tolerance must be a number in [0, 1], got 'lots'"),
        ({"zero_grad_threshold": 2}, "zero_grad_threshold must be a number in [0, 1], got 2"),
    ):
        with pytest.raises(ConfigError) as exc:
            run_evaluation(model, x, y, ["fgsm"], [0.1], **kwargs)
        assert words in _one_line(exc), kwargs
    assert run_evaluation(model, x, y, ["fgsm"], [0.1], tolerance=np.float32(0.02)).flags is not None


def test_generate_adversarial_takes_one_budget_and_an_integer_seed():
    model = _mlp()
    x, y = _data()
    a = generate_adversarial(model, x, y, "fgsm", "8/255", seed=np.int64(1))
    b = generate_adversarial(model, x, y, "fgsm", 8 / 255, seed=1)
    assert torch.equal(a, b)
    assert torch.equal(
        generate_adversarial(model, x, y, "pgd:steps=2", np.float32(0.1)),
        generate_adversarial(model, x, y, "pgd:steps=2", 0.1),
    )
    with pytest.raises(ConfigError) as exc:
        generate_adversarial(model, x, y, "fgsm", [0.1, 0.2])
    assert "one budget" in _one_line(exc)
    with pytest.raises(ConfigError) as exc:
        generate_adversarial(model, x, y, "fgsm", 0.1, seed="x")
    assert "the range of the random generators, got 'x'" in _one_line(exc)


def test_one_attack_and_a_list_of_attacks_are_what_they_say():
    model = _mlp()
    x, y = _data()
    with pytest.raises(ConfigError) as exc:
        generate_adversarial(model, x, y, "fgsm,pgd", 0.1)  # a list, where one attack is meant
    assert "generate_adversarial takes one attack, got 'fgsm,pgd'" in _one_line(exc)
    for attacks in (3, None, {"fgsm": 1}):  # once: "TypeError: 'int' object is not iterable", or the dict's keys
        with pytest.raises(ConfigError) as exc:
            evaluate_model(model, x, y, attacks, [0.1])
        assert f"attacks {attacks!r} is not an attack spec or a list of them; valid attacks: fgsm" in _one_line(exc)


def test_parse_integer_takes_what_the_cli_takes():
    assert parse_integer(np.int64(5), "steps", minimum=1) == 5 and type(parse_integer(np.int64(5), "n")) is int
    assert parse_integer("12", "steps") == 12 and parse_integer(1e3, "steps") == 1000
    assert parse_integer(fractions.Fraction(6, 2), "n") == 3
    for bad in ("1e3", "x", 2.5, None, True, [3], np.bool_(True)):
        with pytest.raises(ConfigError) as exc:
            parse_integer(bad, "steps", minimum=1)
        assert "steps must be an integer >= 1, got " in _one_line(exc)


def test_train_takes_numpy_and_string_numbers_and_records_plain_ones(tmp_path, monkeypatch):
    import robust_glo.api as api

    seen = {}
    monkeypatch.setattr(api, "train_run", lambda config, out, progress=False: seen.setdefault("c", config))
    config = robust_glo.train(
        "ce",
        dataset="digits",
        steps=np.int64(7),
        seed=np.int32(2),
        lr=np.float32(0.1),
        batch_size="16",
        milestones=np.array([2, 4]),
        schedule="step",
        test_size=np.int64(50),
    )
    assert (config.steps, config.seed, config.test_size) == (7, 2, 50) and type(config.steps) is int
    recipe = config.recipe
    assert (recipe.lr, recipe.batch_size, recipe.milestones) == (0.1, 16, (2, 4)) and type(recipe.lr) is float
    json.dumps(config.to_dict())  # what config.json stores: plain numbers
    for kwargs, words in (
        ({"steps": "five"}, "steps must be an integer >= 1, got 'five'"),
        ({"steps": 2.5}, "steps must be an integer >= 1, got 2.5"),
        (
            {"seed": -1},
            "the range of the random generators, got -1",
        ),
        ({"lr": "fast"}, "lr must be a number, got 'fast'"),
        ({"batch_size": [16]}, "batch_size must be an integer >= 1, got [16]"),
    ):
        with pytest.raises(ConfigError) as exc:
            robust_glo.train("ce", dataset="digits", **{"steps": 5, **kwargs})
        assert words in _one_line(exc), kwargs


def test_evolve_takes_numpy_and_string_numbers(monkeypatch):
    import robust_glo.evolution as evolution

    monkeypatch.setattr(evolution, "run_evolution", lambda config, resume=False, **_: config)
    config = robust_glo.evolve(
        dataset="digits", generations=np.int64(2), popsize="6", steps=np.int32(10), sigma0=np.float32(0.5)
    )
    assert (config.generations, config.popsize, config.steps, config.sigma0) == (2, 6, 10, 0.5)
    assert type(config.generations) is int and type(config.sigma0) is float
    with pytest.raises(ConfigError) as exc:
        robust_glo.evolve(dataset="digits", popsize="many")
    assert "popsize must be an integer, got 'many'" in _one_line(exc)


def test_run_benchmark_takes_one_loss_as_a_string(tmp_path, monkeypatch):
    import robust_glo.benchmark as benchmark

    monkeypatch.setattr(benchmark, "run_benchmark", lambda suite, out, **options: suite)
    suite = robust_glo.run_benchmark("quick", tmp_path / "q", losses="label_smoothing:0.17")
    assert suite.losses[-1] == "label_smoothing:0.17"  # once split into characters: "unknown loss spec 'l'"
    with pytest.raises(ConfigError) as exc:
        robust_glo.run_benchmark("quick", tmp_path / "q", losses=3)
    assert "losses must be a loss spec or a list of them, got 3" in _one_line(exc)


def test_analyze_loss_takes_any_integer_class_count():
    assert robust_glo.analyze_loss("ce", np.int64(10)).classes == robust_glo.analyze_loss("ce", "10").classes == 10
    with pytest.raises(ConfigError) as exc:
        robust_glo.analyze_loss("ce", 2.5)
    assert "classes must be an integer >= 2, got 2.5" in _one_line(exc)


def test_compare_config_takes_script_values_and_keeps_its_key():
    from robust_glo.comparison import CompareConfig

    plain = CompareConfig(dataset="digits", seeds=[0, 1], eps=[0.0, 0.05, 0.1]).validated()
    key = plain.evaluation_key()
    assert key["eps"] == [0.0, 0.05, 0.1] and key["batch_size"] == 500 and key["attack_seed"] == 0
    other = CompareConfig(
        dataset="digits",
        seeds=np.arange(2),
        eps="0,0.05,0.1",
        eval_batch_size=np.int64(500),
        attack_seed="0",
        steps=np.int64(1000),
    ).validated()
    assert other.evaluation_key() == key and other.seeds == [0, 1] and type(other.seeds[0]) is int
    json.dumps(other.evaluation_key())
    assert CompareConfig(dataset="digits", losses="label_smoothing:0.1").validated().losses == ["label_smoothing:0.1"]
    for kwargs, words in (
        ({"seeds": 3}, "the range of the random generators, got 3"),
        ({"seeds": [0, "x"]}, "the range of the random generators, got [0, 'x']"),
        ({"steps": "lots"}, "steps must be an integer >= 1, got 'lots'"),
        ({"eps": "0.1,0.1"}, "eps lists a value twice"),
        ({"losses": 3}, "losses must be a loss spec or a list of them, got 3"),
    ):
        with pytest.raises(ConfigError) as exc:
            CompareConfig(dataset="digits", **kwargs).validated()
        assert words in _one_line(exc), kwargs


# --------------------------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("attack", ["fgsm", "pgd:steps=3", "pgd:norm=l2:steps=3"])
def test_a_model_is_attacked_in_its_own_dtype(dtype, attack):
    model = _mlp(dtype=dtype)
    x, y = _data()
    l2 = "norm=l2" in attack
    eps = 0.5 if l2 else 0.1
    kwargs = {"eps": [0.0], "eps_l2": [eps]} if l2 else {"eps": [eps]}
    ev = run_evaluation(model, x, y, [attack], **kwargs)  # once "Input type (float) and bias type (double)"
    flags = ev.flags.set_index("check")
    assert flags.loc["perturbation_in_budget", "status"] == "pass", flags.loc["perturbation_in_budget", "detail"]
    assert flags.loc["perturbation_in_budget", "threshold"] == budget_slack(dtype, "L2" if l2 else "Linf", x.shape[1:])
    adv = generate_adversarial(model, x, y, attack, eps)
    assert adv.dtype == x.dtype  # the inputs' dtype, whatever the model's
    moved = (adv.double() - x.double()).flatten(1)
    size = moved.norm(dim=1).max() if l2 else moved.abs().max()
    assert float(size) <= eps + budget_slack(dtype, "L2" if l2 else "Linf", x.shape[1:])
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1


def test_float64_attacks_run_in_float64_and_give_the_inputs_dtype_back():
    model = _mlp(dtype=torch.float64)
    x, y = _data()
    for inputs in (x.double(), x):
        ev = run_evaluation(model, inputs, y, ["fgsm", "pgd:steps=3", "apgd-ce:steps=5", "square:n_queries=30"], [0.1])
        assert ev.reliable, ev.flags
        adv = generate_adversarial(model, inputs, y, "apgd-ce:steps=5", 0.1)
        slack = 1e-12 if inputs.dtype == torch.float64 else BUDGET_SLACK  # rounded to float32 at the end
        assert adv.dtype == inputs.dtype and float((adv - inputs).abs().max()) <= 0.1 + slack
    # float32 model, float64 inputs: attacked in float32 as before, given back in float64
    adv = generate_adversarial(_mlp(), x.double(), y, "pgd:steps=3", 0.1)
    assert adv.dtype == torch.float64 and float((adv - x.double()).abs().max()) <= 0.1 + BUDGET_SLACK
    # float64 precision is used: FGSM equals x + eps * sign(grad) computed in float64
    xd = x.double().requires_grad_(True)
    grad = torch.autograd.grad(nn.functional.cross_entropy(model(xd), y, reduction="sum"), xd)[0]
    expected = (x.double() + 0.1 * grad.sign()).clamp(0, 1)
    assert torch.equal(generate_adversarial(model, x.double(), y, "fgsm", 0.1), expected)


def test_a_parameter_free_model_runs_in_the_inputs_dtype():
    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w", torch.randn(10, 16, generator=torch.Generator().manual_seed(0)).double())

        def forward(self, x):
            return x.flatten(1) @ self.w.T

    x = torch.rand(16, 1, 4, 4, generator=torch.Generator().manual_seed(1)).double()
    with torch.no_grad():
        y = Fixed()(x).argmax(1)
    adv = generate_adversarial(Fixed(), x, y, "pgd:steps=3", 0.1)  # once cast to float32: a dtype error
    assert adv.dtype == torch.float64
    assert run_evaluation(Fixed(), x, y, ["fgsm"], [0.1]).reliable


@pytest.mark.parametrize(
    "dtype, attack",
    [
        (torch.float16, "apgd-ce:steps=5"),
        (torch.bfloat16, "apgd-t:steps=5:targets=3"),
        (torch.bfloat16, "square:n_queries=30"),
        (torch.float64, "fab-t:steps=5:targets=2"),
        (torch.float64, "aa-reference"),
    ],
)
def test_an_attack_that_cannot_run_in_a_dtype_refuses_it_in_one_line(dtype, attack):
    model = _mlp(dtype=dtype)
    x, y = _data()
    name = str(dtype).removeprefix("torch.")
    for call in (
        lambda: run_evaluation(model, x, y, ["fgsm", attack], [0.1]),
        lambda: generate_adversarial(model, x, y, attack, 0.1),
    ):
        with pytest.raises(ConfigError) as exc:
            call()
        message = _one_line(exc)
        assert f"a {name} model" in message and attack.split(":")[0] in message and "float32" in message


def test_mixed_and_unsupported_model_dtypes_are_refused():
    model = _mlp()
    model[3].to(torch.float64)
    x, y = _data()
    with pytest.raises(ConfigError) as exc:
        run_evaluation(model, x, y, ["fgsm"], [0.1])
    assert "mix dtypes float32 and float64" in _one_line(exc)
    with pytest.raises(RobustGloError) as exc:
        generate_adversarial(nn.Flatten(), x.to(torch.float8_e4m3fn), y, "fgsm", 0.1)
    assert "float8_e4m3fn" in _one_line(exc)


def test_budget_slack_follows_the_dtype():
    assert budget_slack(torch.float32, "Linf", (1, 28, 28)) == BUDGET_SLACK == 1e-5
    assert budget_slack(torch.float32, "L2", (3, 224, 224)) == budget_slack(torch.float64, "L2", (3, 32, 32)) == 1e-5
    assert budget_slack(torch.float16, "Linf", (1, 4, 4)) == 2.0**-10
    assert budget_slack(torch.bfloat16, "Linf", (1, 4, 4)) == 2.0**-7
    assert budget_slack(torch.bfloat16, "L2", (1, 4, 4)) == 4 * 2.0**-7  # one unit at 1 per pixel, summed in L2
    rows = pd.DataFrame(
        [
            {"attack": "clean", "eps": 0.0, "accuracy": 1.0, "max_perturbation": float("nan"), "out_of_range": 0},
            {"attack": "fgsm", "eps": 0.1, "accuracy": 0.5, "max_perturbation": 0.1 + 5e-4, "out_of_range": 0},
        ]
    )
    strict = check_reliability(rows, 0.0).set_index("check").loc["perturbation_in_budget"]
    loose = check_reliability(rows, 0.0, budget_slack=2.0**-10).set_index("check").loc["perturbation_in_budget"]
    assert strict["status"] == "fail" and strict["threshold"] == BUDGET_SLACK
    assert loose["status"] == "pass" and loose["threshold"] == 2.0**-10
