"""Losses against independent computations of their formulas (docs/method.md, docs/losses.md)."""

import json
import math
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robust_glo.errors import LossSpecError
from robust_glo.losses import get_loss, list_losses


def _batch(seed: int, n: int = 7, c: int = 5, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * scale
    targets = torch.randint(0, c, (n,), generator=g)
    return logits, targets


def _taylorglo_reference(theta, logits, targets) -> float:
    """The docs/method.md formula, term by term, in float64 numpy loops."""
    t0, t1, t2, t3, t4, t5, t6, t7 = theta
    z = logits.numpy()
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    total = 0.0
    for i in range(z.shape[0]):
        s = 0.0
        for c in range(z.shape[1]):
            x = 1.0 if c == int(targets[i]) else 0.0
            y = probs[i, c]
            s += (
                t2 * (y - t1)
                + t3 * (y - t1) ** 2
                + t4 * (y - t1) ** 3
                + t5 * (x - t0) * (y - t1)
                + t6 * (x - t0) * (y - t1) ** 2
                + t7 * (x - t0) ** 2 * (y - t1)
            )
        total += -s
    return total / z.shape[0]


@pytest.mark.parametrize("seed", range(6))
def test_taylorglo_matches_design_formula(seed):
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1.2, size=8).tolist()
    logits, targets = _batch(seed)
    loss = get_loss("taylorglo:" + json.dumps(theta))
    assert float(loss(logits, targets)) == pytest.approx(
        _taylorglo_reference(theta, logits, targets), rel=1e-5, abs=1e-6
    )


def test_taylorglo_parameter_order_is_canonical():
    # theta5 = 1 alone: f = (x - 0)(y - 0) = x*y, so L = -mean(p_target).
    logits, targets = _batch(1)
    loss = get_loss("taylorglo:[0,0,0,0,0,1,0,0]")
    expected = -F.softmax(logits, 1).gather(1, targets[:, None]).mean()
    assert float(loss(logits, targets)) == pytest.approx(float(expected), rel=1e-6)


def test_taylorglo_is_finite_at_saturated_logits():
    logits = torch.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    loss = get_loss("taylorglo:[0.1,0.2,1,2,3,4,5,6]")(logits, torch.tensor([0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_taylorglo_from_json_file(tmp_path):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"kind": "taylorglo", "theta": [0, 0, 0, 0, 0, 1, 0, 0], "fitness": 0.1}))
    logits, targets = _batch(2)
    a = get_loss(f"taylorglo:{path}")(logits, targets)
    b = get_loss("taylorglo:[0,0,0,0,0,1,0,0]")(logits, targets)
    assert float(a) == pytest.approx(float(b))


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.35])
def test_label_smoothing_equals_torch(alpha):
    logits, targets = _batch(3)
    ours = get_loss(f"label_smoothing:{alpha}")(logits, targets)
    ref = F.cross_entropy(logits.float(), targets, label_smoothing=alpha)
    assert float(ours) == pytest.approx(float(ref), rel=1e-6)


def test_ce_equals_torch():
    logits, targets = _batch(4)
    assert float(get_loss("ce")(logits, targets)) == pytest.approx(float(F.cross_entropy(logits, targets)), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_formula(gamma):
    logits, targets = _batch(5)
    p = F.softmax(logits, 1).gather(1, targets[:, None]).squeeze(1)
    expected = (-((1 - p) ** gamma) * torch.log(p)).mean()
    assert float(get_loss(f"focal:{gamma}")(logits, targets)) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("eps", [-1.0, 1.0, 2.5])
def test_poly1_formula(eps):
    logits, targets = _batch(6)
    p = F.softmax(logits, 1).gather(1, targets[:, None]).squeeze(1)
    expected = (-torch.log(p) + eps * (1 - p)).mean()
    assert float(get_loss(f"poly1:{eps}")(logits, targets)) == pytest.approx(float(expected), rel=1e-5)


def test_baikal_formula():
    logits, targets = _batch(7, scale=1.0)
    y = F.softmax(logits, 1)
    x = F.one_hot(targets, y.shape[1]).double()
    expected = (-(torch.log(y) - x / y).sum(1) / y.shape[1]).mean()
    assert float(get_loss("baikal")(logits, targets)) == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize(
    "spec",
    ["ce", "label_smoothing:0.1", "focal:2", "poly1:1", "baikal", "taylorglo:[0.1,-0.2,0.3,0.5,-0.4,1.2,0.7,-0.3]"],
)
def test_gradients_flow(spec):
    logits, targets = _batch(8)
    logits = logits.float().requires_grad_(True)
    get_loss(spec)(logits, targets).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "spec",
    ["ce", "label_smoothing:0.2", "focal:2", "poly1:1", "baikal", "taylorglo:[0.1,-0.2,0.3,0.5,-0.4,1.2,0.7,-0.3]"],
)
def test_from_probs_agrees_with_logit_form(spec):
    logits, targets = _batch(9)
    loss = get_loss(spec)
    assert float(loss.from_probs(F.softmax(logits, 1), targets)) == pytest.approx(
        float(loss(logits, targets)), rel=1e-5
    )


def test_user_loss_from_module():
    logits, targets = _batch(10)
    loss = get_loss("torch.nn.functional:cross_entropy")
    assert float(loss(logits, targets)) == pytest.approx(float(F.cross_entropy(logits, targets)))


def _write(tmp_path, body: str):
    path = tmp_path / "my_losses.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_user_loss_from_file(tmp_path):
    path = _write(
        tmp_path,
        """
        import torch.nn.functional as F
        def squared_margin(logits, targets):
            return F.cross_entropy(logits, targets) * 2
    """,
    )
    logits, targets = _batch(11)
    assert float(get_loss(f"{path}:squared_margin")(logits, targets)) == pytest.approx(
        2 * float(F.cross_entropy(logits, targets))
    )


@pytest.mark.parametrize(
    "body,func,match",
    [
        ("def f(logits, targets):\n    raise RuntimeError('boom')\n", "f", "raised RuntimeError: boom"),
        ("def f(logits, targets):\n    return logits.sum(1)\n", "f", "expected a scalar"),
        ("import torch\ndef f(logits, targets):\n    return torch.tensor(float('nan'))\n", "f", "non-finite"),
        ("def f(logits, targets):\n    return 1.0\n", "f", "returned float"),
        ("def f(logits, targets):\n    return 1.0\n", "missing", "has no function 'missing'"),
        ("import nonexistent_module_xyz\n", "f", "importing"),
    ],
)
def test_broken_user_losses_name_the_spec(tmp_path, body, func, match):
    path = _write(tmp_path, body)
    spec = f"{path}:{func}"
    logits, targets = _batch(12)
    with pytest.raises(LossSpecError, match=match) as info:
        get_loss(spec)(logits, targets)
    assert spec in str(info.value)


@pytest.mark.parametrize(
    "spec,match",
    [
        ("bogus", "unknown loss spec 'bogus'; valid specs: ce, label_smoothing"),
        ("", "is empty"),
        ("taylorglo:[1,2,3]", "needs 8 parameters, got 3"),
        ("taylorglo:[1,2,3,4,5,6,7,8,9]", "needs 8 parameters, got 9"),
        ("taylorglo:[1,2,nope]", "expected taylorglo"),
        ("taylorglo:/no/such/file.json", "does not exist"),
        ("taylorglo", "expected taylorglo"),
        ("label_smoothing:1.5", r"alpha must lie in \[0.0, 1.0\], got 1.5"),
        ("label_smoothing:abc", "alpha must be a number"),
        ("focal:-1", "gamma must lie in"),
        ("ce:3", "takes no argument"),
        ("no_such_pkg_xyz.mod:fn", "cannot import module"),
        ("missing_file.py:fn", "does not exist"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(LossSpecError, match=match):
        get_loss(spec)


def test_bad_theta_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "other"}))
    with pytest.raises(LossSpecError, match="must hold"):
        get_loss(f"taylorglo:{bad}")


def test_list_losses_covers_design_specs():
    forms = " ".join(list_losses())
    for name in [
        "ce",
        "label_smoothing",
        "focal",
        "poly1",
        "baikal",
        "taylorglo",
        "package.module:function",
        "path/to/file.py:function",
    ]:
        assert name in forms


def test_spec_is_recorded():
    assert get_loss("focal:2").spec == "focal:2"
    assert math.isclose(get_loss("focal:3").gamma, 3.0)


def test_a_loss_spec_that_is_not_a_string_says_so():
    from robust_glo.errors import LossSpecError
    from robust_glo.losses import get_loss

    with pytest.raises(LossSpecError, match=r"loss spec 42 must be a string such as 'ce'"):
        get_loss(42)
    with pytest.raises(LossSpecError, match="is empty"):
        get_loss("  ")


def test_a_taylorglo_spec_with_a_non_number_names_the_parameter():
    from robust_glo.errors import LossSpecError
    from robust_glo.losses import get_loss

    with pytest.raises(LossSpecError, match=r"t5 = 'nan' is not a finite number"):
        get_loss("taylorglo:[0,0,0,0,0,nan,0,0]")
