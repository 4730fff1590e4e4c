"""The CPU memory layout (channels_last where oneDNN is faster in it) and APGD-T with all targets at once.

- `cpu_layout` reads ROBUST_GLO_CPU_LAYOUT (auto by the CPU's vector ISA), refuses other values in one line;
- training and attacks switch layout only for float32 networks on the CPU, and hand the model back as it
  came (contiguous, same values);
- the two layouts differ only in rounding: on small networks the outcomes agree;
- `apgd_t_all_targets` is, member by member, torchattacks' `APGDT.attack_single_run` after
  `torch.manual_seed(seed + m)`, and breaks exactly the union of what those runs break.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchattacks

from robust_glo.cli import main
from robust_glo.data import DATASETS, load_dataset
from robust_glo.errors import ConfigError
from robust_glo.models import NormalizedModel, create_model
from robust_glo.robustness import diagnostics as D
from robust_glo.robustness import run_evaluation
from robust_glo.robustness.evaluate import prepared_model
from robust_glo.robustness.population import apgd_t_all_targets
from robust_glo.training import fit
from robust_glo.utils import device as device_mod
from robust_glo.utils.device import LAYOUT_ENV, channels_last_on, cpu_layout


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", test_size=100)


def _two_convs(info, seed: int = 0) -> torch.nn.Module:
    """A small CNN whose second convolution has several input channels: there channels_last is a real
    change of layout (with one input channel, as in digits-cnn, both layouts are the same memory). Wrapped
    as the registered architectures are (`NormalizedModel`), so the layout applies to it."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 8 * 8, 10),
    )
    return NormalizedModel(info, net)


class _ViewFlatten(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)  # refuses channels_last activations


def _user_model(seed: int = 0) -> torch.nn.Module:
    """A caller's own model that flattens with `.view`: never switched to channels_last."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 8, 3, padding=1),
        torch.nn.ReLU(),
        _ViewFlatten(),
        torch.nn.Linear(8 * 8 * 8, 10),
    )


def _net(digits, seed: int = 0, steps: int = 60, dtype=torch.float32) -> torch.nn.Module:
    model = _two_convs(digits.info, seed).to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(digits.train.labels), (64,), generator=g)
        loss = F.cross_entropy(model(digits.train.images[idx].to(dtype)), digits.train.labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval().requires_grad_(False)


def _conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.dim() == 4]


@pytest.mark.parametrize(
    ("value", "capability", "expected"),
    [
        ("auto", "AVX512", "channels_last"),
        ("auto", "AVX2", "contiguous"),
        ("auto", None, "contiguous"),
        ("", "AVX512", "channels_last"),
        ("contiguous", "AVX512", "contiguous"),
        ("channels_last", "AVX2", "channels_last"),
    ],
)
def test_layout_is_read_from_the_environment_and_the_cpu(monkeypatch, value, capability, expected):
    monkeypatch.setenv(LAYOUT_ENV, value)
    monkeypatch.setattr(device_mod, "cpu_bf16_support", lambda: {"cpu_capability": capability})
    assert cpu_layout() == expected


def test_layout_applies_to_float32_on_the_cpu_only(monkeypatch):
    monkeypatch.setenv(LAYOUT_ENV, "channels_last")
    assert channels_last_on("cpu")
    assert not channels_last_on("cpu", torch.float64)  # exact float64 reference results keep the usual layout
    assert not channels_last_on("cuda")
    monkeypatch.setenv(LAYOUT_ENV, "contiguous")
    assert not channels_last_on("cpu")


def test_a_bad_layout_is_one_line_naming_it(monkeypatch):
    monkeypatch.setenv(LAYOUT_ENV, "nhwc")
    with pytest.raises(ConfigError, match=r"ROBUST_GLO_CPU_LAYOUT='nhwc' is not valid; valid: auto, channels_last"):
        cpu_layout()


def test_attacks_run_channels_last_and_hand_the_model_back(digits, monkeypatch):
    monkeypatch.setenv(LAYOUT_ENV, "channels_last")
    model = _net(digits)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with prepared_model(model, torch.device("cpu")):
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in _conv_weights(model))
        assert not all(w.is_contiguous() for w in _conv_weights(model))
    assert all(w.is_contiguous() for w in _conv_weights(model))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # a model the user keeps channels_last stays as it is
    model.to(memory_format=torch.channels_last)
    with prepared_model(model, torch.device("cpu")):
        pass
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in _conv_weights(model))
    # float64 keeps the usual layout
    model64 = _net(digits, dtype=torch.float64, steps=1)
    with prepared_model(model64, torch.device("cpu")):
        assert all(w.is_contiguous() for w in _conv_weights(model64))


def test_the_layouts_agree_on_outcomes(digits, monkeypatch):
    model = _net(digits)
    x, y = digits.test.images[:60], digits.test.labels[:60]
    attacks = ["fgsm", "pgd:steps=10", "apgd-t:steps=15:targets=3"]
    runs, seen = {}, []
    model.net[2].register_forward_pre_hook(lambda m, _: seen.append(m.weight.is_contiguous()))
    for layout in ("contiguous", "channels_last"):
        monkeypatch.setenv(LAYOUT_ENV, layout)
        seen.clear()
        runs[layout] = run_evaluation(model, x, y, attacks, [0.1, 0.2], seed=3)
        assert seen and set(seen) == {layout == "contiguous"}  # the layout the attacks actually ran in
    a, b = runs["contiguous"], runs["channels_last"]
    assert torch.equal(a.clean_correct, b.clean_correct)
    for label, by_eps in a.robust.items():
        for eps, bits in by_eps.items():
            # rounding only: at most one input of 60 may land on the other side of the decision boundary
            assert int((bits != b.robust[label][eps]).sum()) <= 1, (label, eps)


def test_training_runs_channels_last_and_returns_a_contiguous_model(digits, monkeypatch):
    curves = {}
    for layout in ("contiguous", "channels_last"):
        monkeypatch.setenv(LAYOUT_ENV, layout)
        model = _two_convs(digits.info, 0)
        seen = []
        model.net[2].register_forward_pre_hook(lambda m, _, seen=seen: seen.append(m.weight.is_contiguous()))
        result = fit(model, F.cross_entropy, digits.train, steps=30, batch_size=32, lr=0.05, seed=0, log_every=10)
        assert result.status == "ok"
        assert seen and set(seen) == {layout == "contiguous"}  # the layout training actually ran in
        assert result.layout == layout  # and the one it records (metrics.json "layout")
        assert all(w.is_contiguous() for w in _conv_weights(model))
        curves[layout] = [loss for _, loss in result.loss_curve]
    # the same run up to rounding: the logged losses agree closely
    assert curves["contiguous"] == pytest.approx(curves["channels_last"], rel=1e-3)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_all_targets_at_once_is_torchattacks_target_by_target(digits, norm, monkeypatch):
    monkeypatch.setenv(LAYOUT_ENV, "contiguous")
    model = _net(digits, dtype=torch.float64)
    x, y = digits.test.images[:30].double(), digits.test.labels[:30]
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    eps = 0.1 if norm == "linf" else 0.5
    seed, targets, restarts, steps = 5, 3, 2, 12
    adv, fooled = apgd_t_all_targets(
        model, x, y, eps, norm=norm, steps=steps, targets=targets, restarts=restarts, seed=seed
    )
    atk = torchattacks.APGDT(
        model, norm="L2" if norm == "l2" else "Linf", eps=eps, steps=steps, n_restarts=1, seed=0, rho=0.75
    )
    union = torch.zeros(len(y), dtype=torch.bool)
    rows = correct.nonzero().squeeze(1)
    for m in range(targets * restarts):
        atk.target_class = 2 + m // restarts
        torch.manual_seed(seed + m)
        _, acc, _, _ = atk.attack_single_run(x[rows], y[rows])
        union[rows[acc == 0]] = True
    assert torch.equal(fooled, union | ~correct)
    assert 0 < int(union.sum()) < int(correct.sum())  # the test can tell a wrong union from a right one
    with torch.no_grad():
        assert bool((model(adv[union]).argmax(1) != y[union]).all())
    delta = (adv - x).flatten(1)
    size = delta.norm(dim=1) if norm == "l2" else delta.abs().amax(dim=1)
    assert float(size.max()) <= eps + 1e-9
    assert torch.equal(adv[~union], x[~union])
    assert 0.0 <= float(adv.min()) and float(adv.max()) <= 1.0


def test_all_targets_caps_the_targets_and_skips_what_is_already_wrong(digits):
    model = _net(digits, steps=5)
    x, y = digits.test.images[:20], digits.test.labels[:20]
    with torch.no_grad():
        wrong = model(x).argmax(1) != y
    adv, fooled = apgd_t_all_targets(model, x, y, 0.0, steps=3, targets=50)  # 50 targets: capped at K - 1
    assert torch.equal(fooled, wrong)  # eps 0 breaks nothing: only the clean mistakes count
    assert torch.equal(adv, x)


def test_more_effort_runs_apgd_t_with_all_targets(digits, monkeypatch):
    model = _net(digits)
    x, y = digits.test.images[:40], digits.test.labels[:40]
    ev = run_evaluation(model, x, y, ["pgd:steps=5", "apgd-t:steps=10:targets=3"], [0.1], seed=0)
    calls = []
    real = D.apgd_t_all_targets

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(D, "apgd_t_all_targets", spy)
    frame = D.run_diagnostics(model, x, y, ev, D.DiagnosticSettings(n=40), seed=0)
    row = frame[frame.check == "more_effort"].iloc[0]
    standing = int(ev.robust[D.WORST][0.1].sum())
    assert standing > 0 and calls, "the check must have attacked something"
    assert calls[0]["steps"] == 50 and calls[0]["targets"] == 9  # 5x steps, all 9 target classes
    assert f"of the {standing} inputs" in row["detail"]


def test_a_bad_layout_stops_the_cli_with_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(LAYOUT_ENV, "nhwc")
    assert main(["train", "--dataset", "digits", "--steps", "2", "--out", "T"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ROBUST_GLO_CPU_LAYOUT='nhwc'" in err and "channels_last" in err


def test_a_callers_model_keeps_its_layout(digits, monkeypatch):
    """A model that flattens with .view would fail in channels_last: it is never switched."""
    monkeypatch.setenv(LAYOUT_ENV, "channels_last")
    model = _user_model()
    result = fit(model, F.cross_entropy, digits.train, steps=5, batch_size=32, lr=0.05, seed=0)
    assert result.status == "ok"
    model.eval()
    ev = run_evaluation(model, digits.test.images[:20], digits.test.labels[:20], ["pgd:steps=3"], [0.1], seed=0)
    assert len(ev.clean_correct) == 20
    assert all(w.is_contiguous() for w in _conv_weights(model))


def test_three_channel_l2_and_fab_attacks_run_channels_last(monkeypatch):
    """A registered 3-channel network in channels_last: its input gradient comes back in the usual layout,
    which torchattacks' PGDL2 and FAB flatten with .view; the outcomes equal the contiguous run's."""
    info = DATASETS["cifar10"]
    model = create_model("small-cnn", info, seed=0).eval()
    x = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)  # every input correct: the attacks have work to do
    runs, seen = {}, []
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_pre_hook(lambda m, _: seen.append(m.weight.is_contiguous()))
    for layout in ("contiguous", "channels_last"):
        monkeypatch.setenv(LAYOUT_ENV, layout)
        seen.clear()
        runs[layout] = run_evaluation(
            model, x, y, ["pgd:norm=l2:steps=3", "fab-t:steps=3:targets=2"], [0.0], eps_l2=[0.5], seed=0
        )
        assert set(seen) == {layout == "contiguous"}
    for label, by_eps in runs["contiguous"].robust.items():
        for eps, bits in by_eps.items():
            assert int((bits != runs["channels_last"].robust[label][eps]).sum()) <= 1, (label, eps)


def test_a_model_with_a_5d_tensor_keeps_its_layout(digits, monkeypatch):
    monkeypatch.setenv(LAYOUT_ENV, "channels_last")
    model = _net(digits, steps=1)
    model.register_buffer("volume", torch.zeros(1, 1, 1, 1, 1))  # channels_last is defined for 4-D only
    with prepared_model(model, torch.device("cpu")):
        assert all(w.is_contiguous() for w in _conv_weights(model))
    run_evaluation(model, digits.test.images[:10], digits.test.labels[:10], ["fgsm"], [0.1], seed=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": -0.1}, "eps must be a number >= 0, got -0.1"),
        ({"eps": float("nan")}, "eps must be a number >= 0, got nan"),
        ({"targets": 0}, "targets must be an integer >= 1, got 0"),
        ({"restarts": 1.5}, "restarts must be an integer >= 1, got 1.5"),
        ({"norm": "l1"}, "norm must be 'linf' or 'l2', got 'l1'"),
        ({"labels": 5}, "labels must have shape (10,), got (5,)"),
    ],
)
def test_all_targets_refuses_bad_input_in_one_line(digits, kwargs, message):
    model = _net(digits, steps=1)
    x, y = digits.test.images[:10], digits.test.labels[:10]
    if "labels" in kwargs:
        y = y[: kwargs.pop("labels")]
    args = {"eps": 0.1, **kwargs}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        apgd_t_all_targets(model, x, y, args.pop("eps"), **args)


def test_all_targets_needs_four_classes():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    with pytest.raises(ConfigError, match="K >= 4 classes"):
        apgd_t_all_targets(model, torch.rand(5, 1, 2, 2), torch.zeros(5, dtype=torch.long), 0.1)


def test_all_targets_checks_inputs_as_run_evaluation_does(digits):
    model = _net(digits, steps=1)
    x, y = digits.test.images[:10], digits.test.labels[:10]
    with pytest.raises(ConfigError, match=r"labels must lie in \[0, 9\]"):
        apgd_t_all_targets(model, x, torch.full_like(y, 10), 0.1)
    with pytest.raises(ConfigError, match=r"inputs must lie in \[0, 1\]"):
        apgd_t_all_targets(model, x * 255, y, 0.1)
    with pytest.raises(ConfigError, match="labels must be integer class indices"):
        apgd_t_all_targets(model, x, y.float(), 0.1)
    with pytest.raises(ConfigError, match=r"images \(N, C, H, W\)"):
        apgd_t_all_targets(model, x[:, 0], y, 0.1)
    model.train()
    model.zero_grad(set_to_none=True)
    model.net[2].weight.requires_grad_(True)
    apgd_t_all_targets(model, x, y, 0.1, steps=2, targets=2)
    assert model.training and model.net[2].weight.requires_grad  # run in eval mode, frozen; then restored
    assert model.net[2].weight.grad is None
