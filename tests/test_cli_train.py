"""The train and losses commands, in process and once as a real subprocess."""

import subprocess
import sys
import textwrap

from robust_glo.cli import main


def test_train_digits_reports_test_accuracy(tmp_path, capsys):
    rc = main(
        [
            "train",
            "--loss",
            "taylorglo:[0,0,0,0,0,1,0,0]",
            "--dataset",
            "digits",
            "--steps",
            "80",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "test accuracy" in out and (tmp_path / "r" / "metrics.json").is_file()


def test_user_loss_file_through_cli(tmp_path, capsys):
    f = tmp_path / "loss.py"
    f.write_text(
        textwrap.dedent("""
        import torch.nn.functional as F
        def mine(logits, targets):
            return F.cross_entropy(logits, targets, label_smoothing=0.05)
        def broken(logits, targets):
            return logits.mean(0)
    """)
    )
    assert (
        main(["train", "--loss", f"{f}:mine", "--dataset", "digits", "--steps", "20", "--out", str(tmp_path / "a")])
        == 0
    )
    capsys.readouterr()
    assert (
        main(["train", "--loss", f"{f}:broken", "--dataset", "digits", "--steps", "20", "--out", str(tmp_path / "b")])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{f}:broken" in err and "expected a scalar" in err


def test_usage_errors_are_one_line_exit_2(capsys):
    for argv in (
        ["train", "--steps", "zero"],
        ["train", "--dataset", "imagenet"],
        ["nope"],
        ["train", "--loss", "bogus"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error" in err, argv


def test_losses_lists_registry(capsys):
    assert main(["losses"]) == 0
    out = capsys.readouterr().out
    assert "label_smoothing:ALPHA" in out and "taylorglo:[t0,...,t7]" in out


def test_module_entry_point_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "robust_glo", "train", "--loss", "nope:"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nope:" in proc.stderr and "Traceback" not in proc.stderr


def test_a_test_size_beyond_the_split_is_one_line_exit_2_before_training(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["train", "--dataset", "digits", "--steps", "5", "--test-size", "5000", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "test_size 5000" in err and "360" in err
    assert not (out / "metrics.json").exists()


def test_a_model_that_does_not_fit_the_data_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--dataset", "digits", "--model", "allcnn-c", "--steps", "5", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "allcnn-c" in err and "8x8" in err
    assert not out.exists()
