"""Training: determinism, sane accuracy, divergence, resumable checkpoints, run directories."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from robust_glo.errors import ConfigError
from robust_glo.losses import get_loss
from robust_glo.models import create_model
from robust_glo.training import TrainConfig, fit, load_trained_model, train_run


def _cfg(**kw):
    base = dict(loss="ce", dataset="digits", steps=60, batch_size=32, lr=0.1, device="cpu")
    return TrainConfig.from_dict({**base, **kw})


def test_same_seed_same_weights_and_global_rng_untouched(digits):
    state = torch.get_rng_state()
    a = train_run(_cfg(seed=3), splits=digits, progress=False)
    b = train_run(_cfg(seed=3), splits=digits, progress=False)
    c = train_run(_cfg(seed=4), splits=digits, progress=False)
    assert torch.equal(state, torch.get_rng_state())
    for (k, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(pa, pb), k
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.model.state_dict().values(), c.model.state_dict().values()))


def test_short_ce_training_on_digits_is_sane(digits):
    result = train_run(_cfg(steps=200), splits=digits, progress=False)
    assert result.status == "ok"
    assert result.test_accuracy > 0.85 and result.val_accuracy > 0.85


def test_dropout_models_are_deterministic_too():
    from robust_glo.data import DATASETS, Split

    info = DATASETS["cifar10"]
    g = torch.Generator().manual_seed(0)
    split = Split(torch.rand(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g))
    weights = []
    for _ in range(2):
        model = create_model("allcnn-c", info, seed=1)
        fit(model, get_loss("ce"), split, steps=2, batch_size=8, seed=5, augment=True, lr=0.01)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_lenet5_has_lecuns_parameter_count_and_fits_28_and_32():
    from robust_glo.data import DATASETS
    from robust_glo.errors import ModelError

    model = create_model("lenet5", DATASETS["fashion-mnist"], seed=0)
    # The modern dense LeNet-5 on 1x28x28: C1 156, C3 2,416 (dense, not the 1998 paper's sparse 1,516), C5 as
    # a dense layer of 48,120, F6 10,164 and a linear output of 850 (the paper's was RBF).
    assert sum(p.numel() for p in model.parameters()) == 61_706
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    cifar = create_model("lenet5", DATASETS["cifar10"], seed=0)
    assert cifar(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in cifar.parameters()) == 83_126
    with pytest.raises(ModelError, match="lenet5"):
        create_model("lenet5", DATASETS["digits"])


def test_divergence_is_recorded_not_raised(digits, tmp_path):
    result = train_run(_cfg(lr=1e4, steps=40), tmp_path / "run", splits=digits, progress=False)
    assert result.status == "diverged"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["test_accuracy"] is None and metrics["steps"] < 40
    assert not (tmp_path / "run" / "model.pt").exists()


def test_checkpoint_resume_gives_identical_weights(digits, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    a = create_model("digits-cnn", digits.info, seed=0)
    fit(a, get_loss("ce"), digits.train, steps=50, batch_size=32, seed=2, checkpoint_path=ckpt, checkpoint_every=20)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["step"] == 40  # the last checkpoint before the end: a "crash" after it is what we resume
    b = create_model("digits-cnn", digits.info, seed=0)
    result = fit(
        b, get_loss("ce"), digits.train, steps=50, batch_size=32, seed=2, checkpoint_path=ckpt, checkpoint_every=20
    )
    assert result.steps_done == 50
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_run_directory_is_complete_and_reused(digits, tmp_path):
    out = tmp_path / "run"
    first = train_run(_cfg(), out, splits=digits, progress=False)
    for name in ["config.json", "environment.json", "metrics.json", "model.pt"]:
        assert (out / name).is_file(), name
    env = json.loads((out / "environment.json").read_text())
    assert env["seeds"] == {"seed": 0, "split_seed": 0} and env["versions"]["torch"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"val_accuracy", "test_accuracy", "loss_curve", "seconds", "status"} <= set(metrics)
    again = train_run(_cfg(), out, splits=digits, progress=False)
    assert again.reused and again.test_accuracy == first.test_accuracy
    loaded = load_trained_model(out)
    for pa, pb in zip(first.model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(pa.cpu(), pb.cpu())
    changed = train_run(_cfg(seed=1), out, splits=digits, progress=False)
    assert not changed.reused


def test_eval_batch_size_is_an_execution_option(digits, tmp_path):
    """A finished run is reused whatever eval batch it is asked for, and evaluation-mode accuracy does not
    depend on the batch it is measured in (no batch statistics), which is why it may be reused."""
    from robust_glo.comparison.store import _identity
    from robust_glo.training import evaluate_accuracy

    out = tmp_path / "run"
    first = train_run(_cfg(eval_batch_size=500), out, splits=digits, progress=False)
    again = train_run(_cfg(eval_batch_size=7), out, splits=digits, progress=False)
    assert again.reused and again.val_accuracy == first.val_accuracy
    assert not train_run(_cfg(eval_batch_size=7, lr=0.05), out, splits=digits, progress=False).reused
    model = load_trained_model(tmp_path / "run")
    by_batch = {b: evaluate_accuracy(model, digits.val, batch_size=b) for b in (1, 7, 250, 1000)}
    assert len(set(by_batch.values())) == 1, by_batch
    # A stored evaluation's key holds the training config: the eval batch does not change its identity either.
    key = {"attacks": ["fgsm"], "train": _cfg(eval_batch_size=1000).to_dict()}
    assert _identity(key) == _identity({**key, "train": _cfg(eval_batch_size=250).to_dict()})
    assert _identity(key) != _identity({**key, "train": _cfg(eval_batch_size=250, lr=0.05).to_dict()})


def test_epoch_budget_and_step_schedule(digits):
    from robust_glo.training import budget_steps, make_optimizer, make_scheduler

    config = _cfg(steps=None, epochs=0.5, schedule="step", milestone_epochs=(0.25,), gamma=0.1).resolved()
    result = train_run(config, splits=digits, progress=False)
    per_epoch = len(digits.train) // 32
    assert result.metrics["steps"] == int(0.5 * per_epoch + 0.999)
    steps, milestones = budget_steps(config, len(digits.train))
    assert milestones == (int(0.25 * per_epoch),)
    # The learning rate fit() follows: 0.1 up to the milestone, 0.01 after it.
    options = config.recipe.fit_options(len(digits.train), augment_default=False)
    assert options["milestones"] == milestones and options["schedule"] == "step"
    opt = make_optimizer(nn.Linear(2, 2), lr=0.1, momentum=0.9, weight_decay=0.0)
    sched = make_scheduler(opt, schedule="step", steps=steps, milestones=milestones, gamma=0.1)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[: milestones[0]] == [0.1] * milestones[0]
    assert rates[milestones[0] :] == pytest.approx([0.01] * (steps - milestones[0]))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"steps": 0}, "steps must be >= 1"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"schedule": "linear"}, "unknown schedule 'linear'; valid: constant, step, cosine"),
        ({"dataset": "imagenet"}, "unknown dataset 'imagenet'"),
        ({"momentum": 1.5}, "momentum must lie in"),
    ],
)
def test_bad_configs(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(**kwargs).resolved()


def test_presets_hold_the_paper_recipes():
    allcnn = TrainConfig.from_preset("allcnn-c", dataset="cifar10")
    assert (allcnn.recipe.lr, allcnn.recipe.weight_decay, allcnn.epochs, allcnn.steps) == (0.01, 1e-3, 350.0, None)
    resnet = TrainConfig.from_preset("resnet20", dataset="cifar10")
    assert (resnet.recipe.lr, resnet.steps, resnet.recipe.milestones) == (0.1, 64000, (32000, 48000))
    with pytest.raises(ConfigError, match="unknown preset"):
        TrainConfig.from_preset("vgg")


def test_bf16_cpu_training_runs_and_stays_near_fp32():
    from robust_glo.data import load_dataset
    from robust_glo.losses import get_loss
    from robust_glo.models import create_model
    from robust_glo.training import fit

    digits = load_dataset("digits")
    results = {}
    for bf16 in (False, True):
        model = create_model("digits-cnn", digits.info, seed=0)
        r = fit(model, get_loss("ce"), digits.train, steps=20, batch_size=64, seed=0, bf16_cpu=bf16, log_every=5)
        assert r.status == "ok"
        results[bf16] = [v for _, v in r.loss_curve]
        assert next(model.parameters()).dtype == torch.float32  # autocast: the weights stay float32
    # bfloat16 has 8 bits of mantissa: the losses agree to a few percent, not bit for bit.
    assert results[True] != results[False]
    np.testing.assert_allclose(results[True], results[False], rtol=0.05)


def _run_perf_script(name: str, out, *args: str):
    """Run evaluations/perf/NAME --smoke ... --out OUT; returns (the completed process, the JSON it wrote)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "evaluations/perf" / name), "--smoke", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done, json.loads(out.read_text())


def test_the_bf16_screening_script_runs(tmp_path):
    done, summary = _run_perf_script("bf16_screening.py", tmp_path / "bf16.json")
    assert len(summary["rows"]) == 3 and summary["speed_ratio_bf16_to_fp32"] > 0
    assert "rank agreement" in done.stdout


def test_the_bf16_screening_script_takes_learned_candidates_and_a_robust_fitness(tmp_path):
    # --history: only candidates that learned (>= --min-accuracy) are retrained; a robust fitness ranks them.
    history = tmp_path / "history.csv"
    header = "generation,index," + ",".join(f"theta{i}" for i in range(8)) + ",status,fitness,val_accuracy\n"
    thetas = ["1.5,-0.3,0.6,0.6,-1.1,0.0,0.7,-1.2", "0.3,-0.4,1.1,0.5,-0.7,0.9,0.2,-0.6", "1,0,0,0,0,0,0,0"]
    rows = [f"0,{i},{t},trained,0.2,0.8" for i, t in enumerate(thetas)]
    rows += ["0,3,9,9,9,9,9,9,9,9,collapsed,0.9,0.1", "0,4,8,8,8,8,8,8,8,8,pruned,0.9,0.3"]
    history.write_text(header + "\n".join(rows) + "\n")
    args = ("--history", str(history), "--fitness", "mix:0.5:fgsm:0.1", "--attack-samples", "20")
    done, summary = _run_perf_script("bf16_screening.py", tmp_path / "bf16.json", *args)
    assert "3 candidates from 1 histories" in done.stdout  # the collapsed and the 0.3 one are left out
    assert summary["fitness"] == "mix:0.5:fgsm:0.1" and len(summary["rows"]) == 3
    for row in summary["rows"]:  # a robust fitness is not 1 - clean accuracy
        assert 0 <= row["fp32_a_fitness"] <= 1
    assert any(abs(r["fp32_a_fitness"] - (1 - r["fp32_a"])) > 1e-9 for r in summary["rows"])
    low, high = summary["abs_diff_gap_bf16_minus_seed"]["ci95"]
    assert low <= summary["abs_diff_gap_bf16_minus_seed"]["mean"] <= high


def test_the_aa_coverage_cost_script_runs(tmp_path):
    # --smoke: every part (the old list, the full ensemble at every budget with diagnostics, aa-reference)
    # on 30 digits images; it broke unnoticed once when an attack in its list gained a required argument.
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "evaluations/perf/aa_coverage_cost.py"), "--smoke", "--runs", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seconds per network: before" in done.stdout and "after-aa" in done.stdout


def test_the_cpu_defaults_script_runs(tmp_path):
    # evaluations/perf/cpu_defaults.py --smoke: both measurements at tiny sizes, written as JSON.
    _, summary = _run_perf_script("cpu_defaults.py", tmp_path / "cpu.json", "--cpus", "2")
    assert set(summary["validation_seconds"]) == {"1", "2"}
    assert all(len(row) == 4 and min(row.values()) > 0 for row in summary["validation_seconds"].values())
    assert summary["training"]["ratio_parallel_to_sequential"] > 0


def test_the_model_cost_script_times_every_model_against_the_first(tmp_path):
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "cost.json"
    cmd = [sys.executable, str(root / "evaluations/perf/model_cost.py"), "--models", "lenet5,mlp", "--reps", "1"]
    done = subprocess.run([*cmd, "--rounds", "1", "--out", str(out)], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    ref, mlp = result["models"]["lenet5"], result["models"]["mlp"]
    assert ref["step_ratio"] == 1.0  # the reference against itself
    assert mlp["step_ratio"] == pytest.approx(ref["step_fp32"] / mlp["step_fp32"])
    assert mlp["forward_ratio"] == pytest.approx(ref["forward"] / mlp["forward"])
    assert mlp["forward"] < ref["forward"]  # an MLP's forward is far cheaper than LeNet-5's convolutions
    assert "native_bf16" in result["cpu_bf16"] and "ratio to lenet5" in done.stdout


def test_the_image_budget_script_rebootstraps_prefixes_of_the_images(tmp_path):
    """On the committed quick report's outcomes: fewer images, wider intervals (median over cells), and a
    minimum detectable difference of t times the standard error."""
    root = Path(__file__).resolve().parents[1]
    outcomes = root / "reports/fashion-mnist-quick/outcomes.csv"
    n = int(pd.read_csv(outcomes)["n"].max())
    out = tmp_path / "budget.csv"
    cmd = [sys.executable, str(root / "evaluations/image_budget.py"), "--outcomes", str(outcomes), "--draws", "2"]
    done = subprocess.run([*cmd, "--boot", "300", "--out", str(out)], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(out)
    half, quarter = table[f"se_ratio_{n // 2}"].median(), table[f"se_ratio_{n // 4}"].median()
    assert 1.1 < half < quarter
    assert set(table["attack"]) == {"clean", "worst"} and (table.loc[table["attack"] == "worst", "eps"] > 0).all()
    ratio = table[f"min_detectable_{n}"] / table[f"se_{n}"]
    assert np.allclose(ratio, ratio.iloc[0]) and ratio.iloc[0] > 5  # t with S - 1 df at Holm's first step
