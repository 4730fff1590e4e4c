"""`robust-glo evaluate` end to end on the bundled 8x8 digits: train, attack, summarize, resume."""

from __future__ import annotations

import math
import textwrap

import pandas as pd
import pytest

from robust_glo.cli import main

FAST = [
    "--dataset",
    "digits",
    "--steps",
    "30",
    "--seeds",
    "2",
    "--train-option",
    "batch_size=64",
    "--attacks",
    "fgsm,pgd:steps=3",
    "--eps",
    "0,0.1",
    "--test-size",
    "60",
]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    code = main(["evaluate", "--loss", "ce", "--loss", "label_smoothing:0.1", *FAST, "--out", str(out)])
    assert code == 0
    return out


def test_writes_tidy_results_summary_and_flags(comparison):
    results = pd.read_csv(comparison / "results.csv")
    for column in ("loss", "seed", "dataset", "model", "attack", "eps", "n", "accuracy", "reliable", "flags", "params"):
        assert column in results.columns
    assert list(dict.fromkeys(results["loss"])) == ["ce", "label_smoothing:0.1"]
    assert set(results["seed"]) == {0, 1}
    assert set(results["attack"]) == {"clean", "fgsm", "pgd:steps=3", "worst"}
    assert (results["n"] == 60).all() and (results["dataset"] == "digits").all()
    summary = pd.read_csv(comparison / "summary.csv")
    row = summary[(summary.loss == "label_smoothing:0.1") & (summary.attack == "pgd:steps=3") & (summary.eps == 0.1)]
    assert row["n_seeds"].item() == 2 and row["baseline"].item() == "ce"
    assert 0.0 <= row["p_value"].item() <= 1.0
    assert row["ci_low"].item() <= row["mean"].item() <= row["ci_high"].item()
    ce = results[(results.loss == "ce") & (results.attack == "pgd:steps=3") & (results.eps == 0.1)]["accuracy"]
    assert summary[(summary.loss == "ce") & (summary.attack == "pgd:steps=3") & (summary.eps == 0.1)][
        "mean"
    ].item() == pytest.approx(ce.mean())
    flags = pd.read_csv(comparison / "flags.csv")
    assert {"loss", "seed", "check", "status", "explanation"} <= set(flags.columns)
    assert len(flags) == 4 * flags["check"].nunique()
    for name in ("config.json", "environment.json"):
        assert (comparison / name).is_file()
    assert (comparison / "runs" / "ce" / "seed1" / "model.pt").is_file()
    assert '"batch_size": 64' in (comparison / "runs" / "ce" / "seed1" / "config.json").read_text()


def test_rerun_skips_finished_training_and_evaluation(comparison, capsys):
    stamp = {p: p.stat().st_mtime_ns for p in comparison.glob("runs/*/seed*/*") if p.is_file()}
    before = pd.read_csv(comparison / "results.csv")
    code = main(["evaluate", "--loss", "ce", "--loss", "label_smoothing:0.1", *FAST, "--out", str(comparison)])
    assert code == 0
    assert capsys.readouterr().out.count("reused training and evaluation") == 4
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    pd.testing.assert_frame_equal(pd.read_csv(comparison / "results.csv"), before)


def test_changed_attacks_reevaluate_without_retraining(comparison, tmp_path, capsys):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(comparison, out)
    code = main(["evaluate", "--loss", "ce", *FAST[:-4], "--eps", "0,0.2", "--test-size", "40", "--out", str(out)])
    assert FAST[-4:] == ["--eps", "0,0.1", "--test-size", "60"]
    assert code == 0
    text = capsys.readouterr().out
    assert "trained in" not in text and text.count("reused training, evaluated") == 2
    results = pd.read_csv(out / "results.csv")
    assert set(results["eps"]) == {0.0, 0.2} and (results["n"] == 40).all()


def test_evaluates_an_existing_checkpoint_without_training(comparison, tmp_path):
    out = tmp_path / "ckpt"
    run_dir = comparison / "runs" / "ce" / "seed1"
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(run_dir),
            "--attacks",
            "fgsm",
            "--eps",
            "0,0.1",
            "--test-size",
            "60",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    results = pd.read_csv(out / "results.csv")
    assert set(results["loss"]) == {"ce"} and set(results["seed"]) == {1}
    trained = pd.read_csv(comparison / "results.csv")
    mine = results.set_index(["attack", "eps"])["accuracy"]
    theirs = trained[(trained.loss == "ce") & (trained.seed == 1)].set_index(["attack", "eps"])["accuracy"]
    assert mine["fgsm", 0.1] == theirs["fgsm", 0.1] and mine["clean", 0.0] == theirs["clean", 0.0]


def test_evaluates_a_user_model_from_a_file(tmp_path):
    source = tmp_path / "my_model.py"
    source.write_text(
        textwrap.dedent("""
        import torch
        from torch import nn

        def build():
            torch.manual_seed(0)  # the harness must not depend on, or disturb, this
            return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    """)
    )
    out = tmp_path / "user"
    code = main(
        [
            "evaluate",
            "--user-model",
            f"{source}:build",
            "--dataset",
            "digits",
            "--attacks",
            "fgsm",
            "--eps",
            "0,0.1",
            "--test-size",
            "30",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    results = pd.read_csv(out / "results.csv")
    assert set(results["loss"]) == {f"{source}:build"} and set(results["model"]) == {"user"}
    assert math.isclose(
        results[results.attack == "clean"]["accuracy"].item() * 30, results[results.attack == "clean"]["correct"].item()
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--loss", "ce", "--attacks", "fgsm,cw", "--out", "X"], "unknown attack 'cw'; valid: fgsm, pgd"),
        (["--loss", "ce", "--eps", "0,big", "--out", "X"], "--eps 'big' is not a number"),
        (["--loss", "ce", "--eps", "0,1.5", "--out", "X"], "eps 1.5 is outside [0, 1]"),
        (["--loss", "ce"], "--out DIR is required"),
        (["--loss", "ce", "--checkpoint", "somewhere", "--out", "X"], "use one"),
        (["--checkpoint", "no/such/run", "--out", "X"], "is not a finished training run"),
        (["--user-model", "no_such_module_xyz:build", "--out", "X"], "importing 'no_such_module_xyz' failed"),
        (["--loss", "nosuch", "--out", "X"], "unknown loss spec 'nosuch'"),
        (["--loss", "ce", "--attacks", "pgd:steps=0", "--out", "X"], "steps must be >= 1"),
        (["--loss", "ce", "--train-option", "lrx=3", "--out", "X"], "unknown training option 'lrx'; valid: amp"),
        (["--loss", "ce", "--train-option", "lr=-1", "--out", "X"], "lr must be a positive number"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "X").exists()
