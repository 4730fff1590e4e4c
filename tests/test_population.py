"""The population engine: P networks trained as one batched computation equal P sequential `fit` runs.

Exactness is checked in float64, where the batched kernels' rounding is far below the tolerance, so any
difference in logic (batch order, augmentation, dropout masks, running statistics, per-member losses)
shows; float32 is checked with a tolerance that rounding explains.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from robust_glo.data.registry import DATASETS
from robust_glo.data.splits import Split
from robust_glo.errors import ConfigError
from robust_glo.losses import get_loss
from robust_glo.models import create_model
from robust_glo.training import fit, train_population

ARCHITECTURES = [("small-cnn", "fashion-mnist", False), ("allcnn-c", "cifar10", True), ("resnet20", "cifar10", True)]
SPECS = ["ce", "taylorglo:[0,0,-1,0,0,0.5,0,0]", "label_smoothing:0.1"]


@pytest.fixture
def float64():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _data(dataset: str, n: int, seed: int = 0) -> Split:
    info = DATASETS[dataset]
    g = torch.Generator().manual_seed(seed)
    return Split(torch.rand(n, *info.image_shape, generator=g), torch.randint(0, info.num_classes, (n,), generator=g))


def _sequential(models, specs, seeds, split, **kw):
    out = []
    for model, spec, seed in zip(models, specs, seeds):
        solo = copy.deepcopy(model)
        result = fit(solo, get_loss(spec), split, seed=seed, **kw)
        out.append((solo, result))
    return out


@pytest.mark.parametrize("name,dataset,augment", ARCHITECTURES)
def test_population_equals_sequential_training_in_float64(float64, name, dataset, augment):
    info = DATASETS[dataset]
    split = _data(dataset, 64)
    seeds = [0, 1, 2]
    models = [create_model(name, info, seed=s) for s in seeds]
    kw = dict(steps=2, batch_size=8, lr=0.05, augment=augment, log_every=1)
    pop = train_population(models, [get_loss(s) for s in SPECS], split, seeds=seeds, **kw)
    for j, (solo, result) in enumerate(_sequential(models, SPECS, seeds, split, **kw)):
        member = pop.state_dict(j)
        reference = solo.state_dict()
        assert set(member) == set(reference)
        for key, value in reference.items():  # weights and running statistics alike
            torch.testing.assert_close(member[key], value, rtol=0, atol=1e-10, msg=f"member {j} {key}")
        assert pop.results[j].status == result.status == "ok"
        assert pop.results[j].steps_done == result.steps_done == 2
        for (s1, v1), (s2, v2) in zip(pop.results[j].loss_curve, result.loss_curve):
            assert s1 == s2 and v1 == pytest.approx(v2, abs=1e-10)
    for original, seed in zip(models, seeds):  # the engine leaves the callers' models alone
        fresh = create_model(name, info, seed=seed)
        assert all(torch.equal(a, b) for a, b in zip(original.state_dict().values(), fresh.state_dict().values()))


def test_population_has_dropout_masks_per_member(float64):
    # The same weights and batches but different seeds: dropout must make the members differ (allcnn-c has
    # dropout), and equal seeds must make them equal.
    info = DATASETS["cifar10"]
    split = _data("cifar10", 32)
    model = create_model("allcnn-c", info, seed=0)
    kw = dict(steps=1, batch_size=16, augment=False)
    same = train_population([model] * 2, [get_loss("ce")] * 2, split, seeds=[5, 5], **kw)
    assert torch.equal(same.params["net.1.weight"][0], same.params["net.1.weight"][1])
    pop = train_population([model] * 2, [get_loss("ce")] * 2, split, seeds=[5, 6], **kw)
    assert not torch.allclose(pop.params["net.1.weight"][0], pop.params["net.1.weight"][1])


def test_population_in_float32_is_within_rounding_of_sequential():
    info = DATASETS["fashion-mnist"]
    split = _data("fashion-mnist", 128)
    seeds = [3, 4]
    models = [create_model("small-cnn", info, seed=s) for s in seeds]
    kw = dict(steps=5, batch_size=32)
    pop = train_population(models, [get_loss("ce"), get_loss("focal:2")], split, seeds=seeds, **kw)
    for j, (solo, _) in enumerate(_sequential(models, ["ce", "focal:2"], seeds, split, **kw)):
        for key, value in solo.state_dict().items():
            torch.testing.assert_close(pop.state_dict(j)[key], value, rtol=1e-3, atol=1e-4)


class _NaNAfter:
    """Cross-entropy that turns NaN from its `after`-th call: a member that diverges mid-run."""

    def __init__(self, after: int):
        self.after, self.calls = after, 0

    def __call__(self, logits, targets):
        self.calls += 1
        loss = F.cross_entropy(logits, targets)
        return loss * float("nan") if self.calls > self.after else loss


def test_a_diverging_member_does_not_disturb_the_others(float64):
    info = DATASETS["cifar10"]
    split = _data("cifar10", 64)
    seeds = [0, 1, 2]
    models = [create_model("resnet20", info, seed=s) for s in seeds]
    kw = dict(steps=4, batch_size=16)
    losses = [get_loss("ce"), _NaNAfter(2), get_loss("focal:2")]
    pop = train_population(models, losses, split, seeds=seeds, **kw)
    assert pop.status == ["ok", "diverged", "ok"]
    assert pop.steps_done == [4, 2, 4] and "step 2" in pop.messages[1]
    healthy = train_population([models[0], models[2]], [get_loss("ce"), get_loss("focal:2")], split, seeds=[0, 2], **kw)
    for j, k in ((0, 0), (2, 1)):
        for key, value in healthy.state_dict(k).items():
            torch.testing.assert_close(pop.state_dict(j)[key], value, rtol=0, atol=1e-10)


def test_population_accuracy_is_eval_mode_accuracy_of_each_member():
    info = DATASETS["cifar10"]
    split = _data("cifar10", 64)
    models = [create_model("allcnn-c", info, seed=s) for s in (0, 1)]
    pop = train_population(models, [get_loss("ce")] * 2, split, steps=2, seeds=[0, 1], batch_size=32)
    accuracy = pop.accuracy(split, batch_size=40)
    for j in range(2):
        member = pop.member(j, create_model("allcnn-c", info, seed=0))
        assert not member.training
        with torch.no_grad():
            expected = (member(split.images).argmax(1) == split.labels).double().mean().item()
        assert accuracy[j] == pytest.approx(expected)
    assert pop.base.training  # accuracy() restores the mode


def test_population_refuses_mixed_architectures_and_mismatched_lengths():
    info = DATASETS["fashion-mnist"]
    split = _data("fashion-mnist", 32)
    models = [create_model("small-cnn", info, seed=0), create_model("mlp", info, seed=0)]
    with pytest.raises(ConfigError, match="same architecture"):
        train_population(models, [get_loss("ce")] * 2, split, steps=1, seeds=[0, 1])
    with pytest.raises(ConfigError, match="as many losses and seeds"):
        train_population(models[:1], [get_loss("ce")] * 2, split, steps=1, seeds=[0])


def test_the_gpu_script_runs_on_the_cpu_with_smoke(tmp_path):
    # evaluations/perf/gpu.sh --smoke: every part at tiny sizes, figures written as JSON.
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "gpu.json"
    env = {"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        ["bash", str(root / "evaluations/perf/gpu.sh"), "--smoke", "--device", "cpu", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["smoke"] is True and figures["device"] == "cpu"
    assert {(r["model"], r["P"]) for r in figures["population"]} == {
        (m, p) for m in ("small-cnn", "allcnn-c", "resnet20") for p in (1, 2)
    }
    assert all(r["population_samples_per_s"] > 0 and r["ratio"] > 0 for r in figures["population"])
    assert {(r["attack"], r["batch"]) for r in figures["attacks"]} == {
        (a, b) for a in ("pgd:steps=20", "apgd-ce") for b in (32, 64)
    }
    assert figures["fashion_mnist_full"]["total_extrapolated_s"] > 0
    assert figures["fashion_mnist_full"]["attack_population_vs_one_by_one"] > 0  # both attack paths ran
    assert "extrapolated total" in done.stdout
    attacks = json.loads((tmp_path / "runs/perf/population_attacks.json").read_text())  # then batched attacks
    assert attacks["hardware"]["device"] == "cpu"
    steps = json.loads((tmp_path / "runs/perf/gpu_step_variants.json").read_text())  # then the step variants
    assert steps["device"] == "cpu"
    assert {(r["variant"], r["P"]) for r in steps["rows"]} == {
        ("sequential eager", 1),
        ("population eager", 1),
        ("population eager", 2),
    }
    assert all(r["samples_per_s"] > 0 for r in steps["rows"])


def test_a_compiled_population_equals_the_eager_engine_within_rounding():
    """`compile=True` (torch.compile of the vmapped forward, the GPU's lever against launch-bound steps)
    changes how the arithmetic is scheduled, not what it computes."""
    info = DATASETS["fashion-mnist"]
    split = _data("fashion-mnist", 64)
    seeds = [3, 4]
    models = [create_model("small-cnn", info, seed=s) for s in seeds]
    losses = [get_loss("ce"), get_loss("taylorglo:[0,0,-1,0,0,0.5,0,0]")]
    kw = dict(steps=3, batch_size=16, seeds=seeds)
    eager = train_population(models, losses, split, **kw)
    compiled = train_population(models, losses, split, compile=True, **kw)
    assert compiled.status == eager.status == ["ok", "ok"]
    for j in range(2):
        for key, value in eager.state_dict(j).items():
            torch.testing.assert_close(compiled.state_dict(j)[key], value, rtol=1e-3, atol=1e-4)
        assert compiled.results[j].loss_curve[-1][1] == pytest.approx(eager.results[j].loss_curve[-1][1], rel=1e-4)
