"""The short public API at the top of the package, and a user's loss added to a suite as one more arm."""

from __future__ import annotations

import textwrap
from importlib.metadata import version

import pandas as pd
import pytest
import torch

import robust_glo
from robust_glo.cli import main
from robust_glo.errors import ConfigError, DatasetError

USER_LOSS = """
import torch.nn.functional as F

def smooth_ce(logits, targets):
    return F.cross_entropy(logits, targets, label_smoothing=0.05)
"""

SUITE = """
[suite]
name = "arms"
dataset = "digits"
device = "cpu"
[train]
losses = ["ce"]
seeds = 2
steps = 20
[attack]
attacks = ["fgsm"]
eps = [0, 0.1]
n = 50
[analyze]
enabled = false
[report]
bootstrap = 1000
"""


def test_the_public_names_and_the_version():
    names = ("get_loss", "train", "evaluate_model", "analyze_loss", "evolve", "run_benchmark")
    for name in (*names, "load_test_images", "load_dataset"):
        assert callable(getattr(robust_glo, name)) and getattr(robust_glo, name).__doc__
    assert robust_glo.__version__ == version("robust-glo")


def test_train_evaluate_analyze_from_the_top(digits):
    result = robust_glo.train("label_smoothing:0.1", dataset="digits", steps=40, lr=0.1, batch_size=32)
    assert result.status == "ok" and result.config.recipe.lr == 0.1 and result.test_accuracy > 0.3
    split = digits.test.subset(64)
    table = robust_glo.evaluate_model(result.model, split.images, split.labels, ["fgsm"], [0, 0.1])
    assert set(table["attack"]) == {"clean", "fgsm", "worst"}
    assert robust_glo.analyze_loss("baikal", 10).effective_target == pytest.approx(10**-0.5, abs=1e-4)
    with pytest.raises(ConfigError, match="unknown training option"):
        robust_glo.train("ce", dataset="digits", steps=5, learning_rate=0.1)


def test_test_images_from_the_top(digits):
    images, labels = robust_glo.load_test_images("digits", n=200)
    assert images.shape == (200, 1, 8, 8) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert 0 <= images.min() and images.max() <= 1 and set(labels.tolist()) == set(range(10))
    same = robust_glo.load_dataset("digits", test_size=200).test  # the images a suite with n = 200 attacks
    assert torch.equal(images, same.images) and torch.equal(labels, same.labels)
    whole, _ = robust_glo.load_test_images("digits")
    assert torch.equal(whole, digits.test.images)
    with pytest.raises(DatasetError, match=r"^n 361 is more than the 360 images in the test split of digits"):
        robust_glo.load_test_images("digits", n=361)
    with pytest.raises(ConfigError, match=r"^n must be an integer >= 1, got 0$"):
        robust_glo.load_test_images("digits", n=0)
    with pytest.raises(DatasetError, match="unknown dataset 'nope'; valid: fashion-mnist"):
        robust_glo.load_test_images("nope")


def test_evolve_from_the_top(tmp_path):
    result = robust_glo.evolve(
        dataset="digits",
        generations=1,
        popsize=4,
        steps=10,
        topk=1,
        reeval_seeds=1,
        out=tmp_path / "evo",
        progress=False,
        lr=0.1,
        backend="local",
    )
    assert len(result.history) == 4 and (tmp_path / "evo" / "history.csv").is_file()


def test_a_user_loss_is_one_more_arm_of_a_suite(tmp_path, capsys):
    suite = tmp_path / "arms.toml"
    suite.write_text(textwrap.dedent(SUITE))
    mine = tmp_path / "my_losses.py"
    mine.write_text(textwrap.dedent(USER_LOSS))
    out = tmp_path / "out"
    spec = f"{mine}:smooth_ce"
    assert main(["benchmark", str(suite), "--backend", "local", "--loss", spec, "--out", str(out), "--quiet"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert list(dict.fromkeys(results["loss"])) == ["ce", spec]
    assert sorted(results[results["loss"] == spec]["seed"].unique()) == [0, 1]  # the suite's seeds
    summary = pd.read_csv(out / "summary.csv")
    # the worst case (here FGSM alone) is the comparison; FGSM's own row repeats it and is in no family
    mine_row = summary[(summary["loss"] == spec) & (summary["attack"] == "worst") & (summary["eps"] == 0.1)].iloc[0]
    assert mine_row["baseline"] == "ce" and mine_row["compared"] and mine_row["interval"].startswith("bootstrap")
    assert "my_losses.py:smooth_ce" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["benchmark", str(suite), "--loss", "ce", "--out", str(out)]) == 2
    assert "loss 'ce' is already in suite" in capsys.readouterr().err
    assert main(["benchmark", str(suite), "--loss", "nope.py:f", "--out", str(out)]) == 2
    assert "added loss 'nope.py:f'" in capsys.readouterr().err
