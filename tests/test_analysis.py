"""Loss analysis (docs/method.md): effective targets, the learning-rule decomposition, invariants."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import torch

from robust_glo.analysis import (
    analyze_loss,
    coefficients,
    coefficients_batch,
    decompose,
    effective_target,
    effective_target_batch,
    invariant_holds,
    invariant_holds_batch,
    learning_rule,
    symmetric_rule,
)
from robust_glo.errors import ConfigError, LossSpecError
from robust_glo.losses import TaylorGLOLoss, get_loss, taylorglo_f


def _spec(theta) -> str:
    return "taylorglo:[" + ",".join(repr(float(v)) for v in theta) + "]"


def _thetas(count: int, seed: int) -> np.ndarray:
    """Draws from the CMA-ES starting distribution (mean 0, sigma 1.2)."""
    return np.random.default_rng(seed).normal(0.0, 1.2, size=(count, 8))


@pytest.fixture()
def user_losses(tmp_path):
    """A file of user losses, addressed as `path.py:function` specs."""
    path = tmp_path / "my_losses.py"
    path.write_text(
        textwrap.dedent("""
        import torch
        import torch.nn.functional as F

        THETA = torch.tensor([0.3, -0.4, 1.1, 0.5, -0.7, 0.9, 0.2, -0.6], dtype=torch.float64)

        def ce(logits, targets):
            return F.cross_entropy(logits, targets)

        def ce_float32(logits, targets):
            return F.cross_entropy(logits.float(), targets)

        def smoothed(logits, targets):
            return F.cross_entropy(logits, targets, label_smoothing=0.2)

        def hinge(logits, targets):  # stops pulling once p_t reaches 0.8
            return torch.relu(0.8 - torch.softmax(logits, 1).gather(1, targets[:, None])).mean()

        def taylorglo64(logits, targets):  # TaylorGLO written by hand, in float64
            t = THETA
            y = torch.softmax(logits, 1)
            x = F.one_hot(targets, logits.shape[1]).to(y)
            dx, dy = x - t[0], y - t[1]
            f = (t[2] * dy + t[3] * dy ** 2 + t[4] * dy ** 3 + t[5] * dx * dy + t[6] * dx * dy ** 2
                 + t[7] * dx ** 2 * dy)
            return -f.sum(1).mean()

        def broken(logits, targets):
            raise RuntimeError("kaboom")

        def nan_loss(logits, targets):
            return logits.sum() * float("nan")

        def detached(logits, targets):
            return F.cross_entropy(logits, targets).detach()
    """)
    )
    return lambda name: f"{path}:{name}"


# --- effective target -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 10, 100])
def test_cross_entropy_has_no_effective_target(n):
    a = analyze_loss("ce", n)
    assert a.effective_target is None
    assert a.label_smoothing_equivalent is None
    assert a.target_logit_rises_at_init
    assert a.target_logit_gradient_at_init == pytest.approx(1.0 - 1.0 / n)  # -dL/dz_t = 1 - p for CE


@pytest.mark.parametrize("n", [2, 10, 100])
@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.3, 0.7, 1.0])
def test_label_smoothing_effective_target(alpha, n):
    a = analyze_loss(f"label_smoothing:{alpha}", n)
    assert a.effective_target == pytest.approx(1 - alpha + alpha / n, abs=1e-10)
    assert a.label_smoothing_equivalent == pytest.approx(alpha, abs=1e-9)


@pytest.mark.parametrize("n", [2, 10, 100, 1000])
def test_baikal_effective_target(n):
    assert analyze_loss("baikal", n).effective_target == pytest.approx(1 / math.sqrt(n), abs=1e-10)


def test_losses_that_pursue_zero_error_or_stop_short():
    assert analyze_loss("focal:2", 10).effective_target is None
    assert analyze_loss("poly1:1", 10).effective_target is None
    # Poly-1 with epsilon < -1: f'_t = 1/p + epsilon vanishes at p = -1/epsilon.
    assert analyze_loss("poly1:-4", 10).effective_target == pytest.approx(0.25, abs=1e-10)


def test_target_that_falls_from_init_has_effective_target_zero():
    a = analyze_loss("taylorglo:[0,0,0,0,0,-1,0,0]", 10)  # f = -x y: every gradient pushes the target down
    assert not a.target_logit_rises_at_init
    assert a.effective_target == 0.0
    assert a.invariant == {"paper": False, "exact": False}


def test_closed_form_effective_target_matches_autograd_search():
    thetas = _thetas(40, seed=11)
    for n in (10, 100):
        closed = effective_target_batch(thetas, n)
        searched = [effective_target(_spec(t), n).value for t in thetas]
        searched = np.array([np.nan if v is None else v for v in searched])
        assert np.array_equal(np.isnan(closed), np.isnan(searched))
        assert np.allclose(closed[~np.isnan(closed)], searched[~np.isnan(searched)], atol=1e-9)
        # Both kinds of rest point and the "no p*" case occur in this sample.
        assert np.isnan(closed).any() and (closed == 0).any() and ((closed > 1 / n) & (closed < 1)).any()


# --- the decomposition of docs/method.md ----------------------------------------------------------------


def test_autograd_decomposition_equals_closed_form_for_taylorglo():
    rng = np.random.default_rng(5)
    for theta in _thetas(5, seed=3):
        n, m = 7, 12
        probs = rng.dirichlet(np.ones(n), size=m)
        targets = rng.integers(0, n, size=m)
        d = decompose(TaylorGLOLoss(theta), probs, targets)
        # Closed form: f'_j = df/dy at (x_j, h_j), then the decomposition of docs/method.md term by term.
        c = coefficients(theta)
        x = np.eye(n)[targets]
        fp = c.fprime(x, probs)
        rows = np.arange(m)
        ht, ft = probs[rows, targets], fp[rows, targets]
        pull = ht * (1 - ht) * ft
        push = -ht * ((probs * fp).sum(1) - ht * ft)
        grad = probs * (fp - (probs * fp).sum(1, keepdims=True))
        assert d.decomposition == "probabilities"
        np.testing.assert_allclose(d.fprime, fp, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(d.pull, pull, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(d.push, push, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(d.logit_grad, grad, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(d.target_grad, pull + push, rtol=1e-10, atol=1e-12)
        # The training loss itself, differentiated on the logits (float32), gives the same gradient.
        z = torch.tensor(np.log(probs), dtype=torch.float32, requires_grad=True)
        TaylorGLOLoss(theta)(z, torch.as_tensor(targets)).backward()
        np.testing.assert_allclose(-z.grad.numpy() * m, grad, rtol=1e-4, atol=1e-5)


def test_learning_rule_along_p_equals_closed_form():
    theta = _thetas(1, seed=8)[0]
    p = np.linspace(0.01, 0.99, 33)
    rule = learning_rule(TaylorGLOLoss(theta), 10, p)
    closed = symmetric_rule(theta, 10, p)
    for key in ("pull", "push", "target_grad", "nontarget_grad"):
        np.testing.assert_allclose(getattr(rule, key), closed[key], rtol=1e-10, atol=1e-12)
    loss = TaylorGLOLoss(theta)
    probs = torch.tensor(np.c_[p, np.repeat(((1 - p) / 9)[:, None], 9, axis=1)])
    target = torch.zeros(1, dtype=torch.int64)
    expected = [float(loss.from_probs(probs[i : i + 1], target)) for i in range(33)]
    np.testing.assert_allclose(rule.loss, expected, rtol=1e-12)


def test_user_loss_uses_centred_gauge(user_losses):
    spec = user_losses("taylorglo64")
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(6), size=8)
    targets = rng.integers(0, 6, size=8)
    user = decompose(spec, probs, targets)
    theta = [0.3, -0.4, 1.1, 0.5, -0.7, 0.9, 0.2, -0.6]
    builtin = decompose(TaylorGLOLoss(theta), probs, targets)
    centred = decompose(TaylorGLOLoss(theta), probs, targets, gauge="centred")
    assert user.decomposition == "centred"
    np.testing.assert_allclose((probs * user.fprime).sum(1), 0.0, atol=1e-10)
    # The total gradient does not depend on the gauge; the centred split is the built-in's shifted f'.
    np.testing.assert_allclose(user.logit_grad, builtin.logit_grad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(user.fprime, centred.fprime, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(user.pull + user.push, user.target_grad, rtol=1e-9, atol=1e-12)
    a = analyze_loss(spec, 10)
    assert a.decomposition == "centred"
    assert a.effective_target == pytest.approx(analyze_loss(_spec(theta), 10).effective_target, abs=1e-9)


def test_user_losses_effective_target(user_losses):
    assert analyze_loss(user_losses("ce"), 10).effective_target is None
    assert analyze_loss(user_losses("smoothed"), 10).effective_target == pytest.approx(0.82, abs=1e-9)
    assert analyze_loss(user_losses("hinge"), 10).effective_target == pytest.approx(0.8, abs=1e-9)
    # float32 rounds p_t to 1 near p = 1, which must not read as a rest point.
    a = analyze_loss(user_losses("ce_float32"), 10)
    assert a.effective_target is None
    assert any("low precision" in w for w in a.warnings)


def test_plain_callable_is_analyzable():
    def my_ce(logits, targets):
        return torch.nn.functional.cross_entropy(logits, targets)

    a = analyze_loss(my_ce, 5)
    assert a.effective_target is None and a.decomposition == "centred" and "my_ce" in a.spec


# --- the invariant of docs/method.md ---------------------------------------------------------------------


def test_coefficients_are_the_derivative_of_f():
    for theta in _thetas(10, seed=4):
        c = coefficients(theta)
        for x in (0.0, 1.0, 0.3):
            y = torch.linspace(0.0, 1.0, 11, dtype=torch.float64, requires_grad=True)
            taylorglo_f(torch.tensor(theta), torch.tensor(x, dtype=torch.float64), y).sum().backward()
            np.testing.assert_allclose(c.fprime(x, y.detach().numpy()), y.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_paper_rule_equals_its_formula():
    thetas = _thetas(2000, seed=7)
    t = thetas.T
    # docs/method.md, typed out independently of the implementation.
    c1 = t[2] - 2 * t[1] * t[3] + 3 * t[4] * t[1] ** 2 - t[5] * t[0] + 2 * t[0] * t[1] * t[6] + t[7] * t[0] ** 2
    ch = 2 * t[3] - 6 * t[4] * t[1] - 2 * t[6] * t[0]
    chh = 3 * t[4]
    cx = t[5] - 2 * t[1] * t[6] - 2 * t[7] * t[0]
    cxx = t[7]
    chx = 2 * t[6]
    np.testing.assert_allclose(coefficients_batch(thetas), np.stack([c1, ch, chh, cx, cxx, chx], 1), rtol=1e-12)
    for n in (2, 10, 100):
        expected = cx + cxx + chx / n >= (n - 2) * (c1 + ch / n + chh / n**2)
        got = invariant_holds_batch(thetas, n, "paper")
        assert got.dtype == bool and np.array_equal(got, expected)
        assert 0.2 < expected.mean() < 0.8  # both outcomes are exercised
        assert [invariant_holds(th, n, "paper") for th in thetas[:50]] == list(expected[:50])


def test_exact_rule_agrees_with_target_logit_gradient_at_uniform_outputs():
    thetas = _thetas(300, seed=9)
    for n in (3, 10, 100):
        exact = invariant_holds_batch(thetas, n, "exact")
        assert 0.2 < exact.mean() < 0.8
        for theta, holds in zip(thetas, exact):
            z = torch.zeros(1, n, requires_grad=True)  # uniform outputs
            TaylorGLOLoss(theta)(z, torch.zeros(1, dtype=torch.int64)).backward()
            grad = -float(z.grad[0, 0])
            if abs(grad) > 1e-5:  # float32 cannot resolve the sign of a vanishing gradient
                assert holds == (grad > 0)
        for theta in thetas[:20]:
            a = analyze_loss(_spec(theta), n)
            assert a.invariant["exact"] == a.target_logit_rises_at_init == invariant_holds(theta, n, "exact")


def test_invariant_rejects_non_finite_and_bad_input():
    thetas = _thetas(3, seed=1)
    thetas[1, 4] = np.nan
    for rule in ("paper", "exact"):
        assert not invariant_holds_batch(thetas, 10, rule)[1]
    with pytest.raises(ConfigError, match="shape"):
        invariant_holds_batch(np.zeros((4, 7)), 10)
    with pytest.raises(ConfigError, match="'strict'.*paper, exact"):
        invariant_holds(np.zeros(8), 10, rule="strict")
    assert np.isnan(effective_target_batch(thetas, 10)[1])


# --- errors ---------------------------------------------------------------------------------------------


def test_unknown_spec_is_a_loss_spec_error():
    with pytest.raises(LossSpecError, match="'nonsense'"):
        analyze_loss("nonsense", 10)


@pytest.mark.parametrize("n", [1, 0, -3, 2.5, True, "10"])
def test_classes_below_two_are_config_errors(n):
    with pytest.raises(ConfigError, match="integer >= 2"):
        analyze_loss("ce", n)
    with pytest.raises(ConfigError, match="integer >= 2"):
        invariant_holds(np.zeros(8), n)


@pytest.mark.parametrize(
    "name, message",
    [
        ("broken", "raised RuntimeError: kaboom"),
        ("nan_loss", "non-finite"),
        ("detached", "no gradient"),
    ],
)
def test_user_loss_failing_inside_analysis(user_losses, name, message):
    spec = user_losses(name)
    with pytest.raises(LossSpecError, match=message) as info:
        analyze_loss(spec, 10)
    text = str(info.value)
    assert spec in text and "target probability p=0.1" in text and "\n" not in text


def test_decomposition_refuses_probabilities_for_a_logit_only_loss(user_losses):
    with pytest.raises(ConfigError, match="centred"):
        decompose(user_losses("ce"), np.full((1, 4), 0.25), [0], gauge="probabilities")


def test_to_dict_is_json_ready():
    import json

    a = analyze_loss(_spec([0.3, -0.4, 1.1, 0.5, -0.7, 0.9, 0.2, -0.6]), 10)
    record = json.loads(json.dumps(a.to_dict(), allow_nan=False))
    assert {
        "spec",
        "classes",
        "effective_target",
        "label_smoothing_equivalent",
        "target_logit_rises_at_init",
        "invariant",
        "decomposition",
    } <= set(record)
    assert set(record["invariant"]) == {"paper", "exact"}
    assert record["classes"] == 10 and isinstance(record["target_logit_rises_at_init"], bool)
    assert get_loss(record["spec"]).theta.tolist() == record["theta"]
