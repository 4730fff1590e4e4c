"""The TaylorGLO paper's robustness protocol, `fgsm:loss=train`: FGSM on the network's own training loss,
next to the cross-entropy attacks, on the same networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robust_glo.comparison import CompareConfig, run_comparison
from robust_glo.errors import ConfigError
from robust_glo.robustness import run_evaluation
from robust_glo.robustness.attacks import display_name, parse_attack

N = 120


@pytest.fixture(scope="module")
def net(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    x, y = digits.train.images, digits.train.labels
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(0, len(y), (128,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval()


def _bits(ev, label, eps):
    return ev.robust[label][eps]


def test_with_cross_entropy_as_the_training_loss_it_is_plain_fgsm(net, digits):
    x, y = digits.test.images[:N], digits.test.labels[:N]
    ev = run_evaluation(net, x, y, ["fgsm", "fgsm:loss=train"], [0, 0.05, 0.1], train_loss="ce", seed=0)
    for eps in (0.05, 0.1):
        assert torch.equal(_bits(ev, "fgsm", eps), _bits(ev, "fgsm:loss=train", eps))


def test_a_loss_without_gradient_looks_perfectly_robust_under_it(net, digits):
    # The protocol's weakness, in its extreme: a training loss whose gradient vanishes leaves every input
    # where it was, so robust accuracy equals clean accuracy, while FGSM on cross-entropy breaks many.
    x, y = digits.test.images[:N], digits.test.labels[:N]
    flat = lambda logits, targets: 0.0 * logits.sum()
    ev = run_evaluation(net, x, y, ["fgsm", "fgsm:loss=train"], [0, 0.1], train_loss=flat, seed=0)
    rows = ev.results.set_index(["attack", "eps"])["accuracy"]
    assert rows["fgsm:loss=train", 0.1] == rows["clean", 0.0]
    assert rows["fgsm", 0.1] < rows["clean", 0.0] - 0.05
    assert rows["worst", 0.1] == rows["fgsm", 0.1]  # the worst case keeps the stronger attack


def test_it_needs_the_training_loss_and_a_known_loss_word(net, digits):
    x, y = digits.test.images[:20], digits.test.labels[:20]
    with pytest.raises(ConfigError, match="needs the network's training loss"):
        run_evaluation(net, x, y, ["fgsm:loss=train"], [0, 0.1])
    with pytest.raises(ConfigError, match="loss must be one of ce, train, got 'dlr'"):
        parse_attack("fgsm:loss=dlr")
    assert display_name("fgsm:loss=train") == "FGSM (own training loss)"


def test_a_comparison_passes_each_network_its_own_loss(tmp_path):
    config = CompareConfig(
        dataset="digits",
        losses=["ce", "label_smoothing:0.5"],
        seeds=[0],
        steps=40,
        attacks=["fgsm", "fgsm:loss=train"],
        eps=[0.0, 0.1],
        test_size=60,
        diagnostics={"n": 0},
        device="cpu",
    )
    result = run_comparison(config, tmp_path / "cmp", echo=lambda _: None)
    acc = result.results.set_index(["loss", "attack", "eps"])["accuracy"]
    assert acc["ce", "fgsm:loss=train", 0.1] == acc["ce", "fgsm", 0.1]  # the same gradient sign
    assert ("label_smoothing:0.5", "fgsm:loss=train", 0.1) in acc.index
