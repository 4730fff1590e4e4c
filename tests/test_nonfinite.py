"""Non-finite values explained: which went non-finite (the loss value, its gradient, or the weights after an
update), and loss parameters that are not finite in the precision the loss runs in, refused at parse time."""

from __future__ import annotations

import textwrap

import pytest
import torch

from robust_glo.cli import main
from robust_glo.data import load_dataset
from robust_glo.errors import LossSpecError, NonFiniteLossError
from robust_glo.losses import get_loss
from robust_glo.models import create_model
from robust_glo.training import fit, train_population

# A loss whose value is finite but whose gradient is NaN: d sqrt(u)/du is inf at u = 0, times du = 0.
LOSSES = """
import torch
import torch.nn.functional as F

calls = {"n": 0}

def _nan_gradient(logits):
    return 0.0 * torch.sqrt((logits - logits.detach()).pow(2).sum())

def nan_grad(logits, targets):
    return F.cross_entropy(logits, targets) + _nan_gradient(logits)

def nan_grad_later(logits, targets):
    calls["n"] += 1
    extra = _nan_gradient(logits) if calls["n"] > 3 else 0.0
    return F.cross_entropy(logits, targets) + extra

def huge(logits, targets):
    return 1e30 * F.cross_entropy(logits, targets)
"""


@pytest.fixture()
def losses(tmp_path):
    path = tmp_path / "losses.py"
    path.write_text(textwrap.dedent(LOSSES))
    return path


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _fit(spec, digits, steps=8, lr=0.05):
    model = create_model("digits-cnn", digits.info, seed=0)
    return fit(model, get_loss(spec), digits.train, steps=steps, batch_size=64, lr=lr, seed=0), model


# ------------------------------------------------------------------------------------------ parse time


@pytest.mark.parametrize("value", ["1e39", "-4e38", "1e300"])
def test_taylorglo_parameters_beyond_float32_are_refused_at_parse_time(value):
    spec = f"taylorglo:[0,0,0,0,0,{value},0,0]"
    with pytest.raises(LossSpecError) as info:
        get_loss(spec)
    message = str(info.value)
    assert spec in message and "t5" in message and "float32" in message and "3.4e+38" in message
    assert "\n" not in message
    get_loss("taylorglo:[0,0,0,0,0,3e38,0,0]")  # large, but finite in float32


def test_a_best_loss_file_beyond_float32_is_refused(tmp_path):
    path = tmp_path / "best.json"
    path.write_text('{"kind": "taylorglo", "theta": [0, 0, 1e39, 0, 0, 1, 0, 0]}')
    with pytest.raises(LossSpecError, match="t2 = 1e\\+39 is not finite in float32"):
        get_loss(f"taylorglo:{path}")


def test_the_cli_refuses_it_in_one_line_before_training(tmp_path, capsys):
    argv = ["train", "--loss", "taylorglo:[0,0,0,0,0,1e39,0,0]", "--dataset", "digits", "--steps", "5"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "float32" in err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------ training


def test_a_finite_loss_with_a_nan_gradient_on_fresh_weights_says_gradient(losses, digits, tmp_path, capsys):
    with pytest.raises(NonFiniteLossError) as info:
        _fit(f"{losses}:nan_grad", digits)
    message = str(info.value)
    assert "gradient is non-finite (nan)" in message and "finite value" in message
    assert "returned a non-finite value" not in message
    argv = ["train", "--loss", f"{losses}:nan_grad", "--dataset", "digits", "--steps", "5"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gradient is non-finite" in err


def test_a_gradient_that_turns_nan_later_is_a_divergence_that_says_gradient(losses, digits):
    result, model = _fit(f"{losses}:nan_grad_later", digits)
    assert result.status == "diverged" and result.steps_done == 3
    assert "gradient" in result.message and "step 3" in result.message
    assert "returned a non-finite value" not in result.message
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad update was not applied


def test_weights_made_non_finite_by_an_update_are_named(losses, digits):
    result, model = _fit(f"{losses}:huge", digits, lr=1e10)  # finite gradients (~1e30), an update of ~1e40
    assert result.status == "diverged"
    assert "weights" in result.message and "update" in result.message


def test_the_population_engine_says_gradient_too(losses, digits):
    models = [create_model("digits-cnn", digits.info, seed=s) for s in (0, 1)]
    pop = train_population(
        models,
        [get_loss("ce"), get_loss(f"{losses}:nan_grad_later")],
        digits.train,
        steps=8,
        seeds=[0, 1],
        batch_size=64,
    )
    ok, bad = pop.results
    assert ok.status == "ok"
    assert bad.status == "diverged" and "gradient" in bad.message and "step 3" in bad.message


@pytest.mark.parametrize("spec", ["focal:1e39", "poly1:-1e39", "label_smoothing:1e39"])
def test_numeric_loss_arguments_beyond_float32_say_so(spec):
    with pytest.raises(LossSpecError, match=r"must be finite in float32.*got '-?1e39'"):
        get_loss(spec)
