"""`robust-glo analyze`, run in-process."""

from __future__ import annotations

import json

import pytest

from robust_glo.cli import main

THETA = "taylorglo:[1.5,-0.3,0.6,0.6,-1.1,0.0,0.7,-1.2]"


def test_json_for_one_loss_is_an_object(capsys):
    assert main(["analyze", "--loss", "label_smoothing:0.1", "--classes", "10", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["spec"] == "label_smoothing:0.1" and record["classes"] == 10
    assert record["effective_target"] == pytest.approx(0.91)
    assert record["label_smoothing_equivalent"] == pytest.approx(0.1)
    assert record["target_logit_rises_at_init"] is True
    assert record["invariant"] is None


def test_json_for_several_losses_is_a_list(capsys):
    assert main(["analyze", "--loss", "ce", "--loss", "baikal", "--loss", THETA, "--classes", "10", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["spec"] for r in records] == ["ce", "baikal", THETA]
    assert records[0]["effective_target"] is None and records[0]["label_smoothing_equivalent"] is None
    assert records[1]["effective_target"] == pytest.approx(10**-0.5)
    assert records[2]["invariant"] == {"paper": True, "exact": True}
    assert 0.1 < records[2]["effective_target"] < 1


def test_table_without_json(capsys):
    assert main(["analyze", "--loss", "ce", "--loss", "label_smoothing:0.1", "--classes", "10"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("loss"))
    assert "p*" in header and "LS alpha" in header and "rises at init" in header
    ce_row = next(line for line in lines if line.startswith("ce "))
    assert "none" in ce_row.split()
    ls_row = next(line for line in lines if line.startswith("label_smoothing:0.1"))
    assert "0.91" in ls_row.split()


def test_plot_writes_png_and_svg(tmp_path, capsys):
    out = tmp_path / "figs"
    assert (
        main(
            [
                "analyze",
                "--loss",
                "ce",
                "--loss",
                "baikal",
                "--loss",
                THETA,
                "--classes",
                "10",
                "--json",
                "--plot",
                str(out),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 3  # stdout stays pure JSON; the file list goes to stderr
    assert "wrote 6 figures" in captured.err
    for stem in ("learning_rule", "pull_push", "taylorglo_f"):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{stem}.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--loss", "ce", "--classes", "1"], "integer >= 2, got 1"),
        (["--loss", "nonsense", "--classes", "10"], "unknown loss spec 'nonsense'"),
        (["--loss", "ce", "--classes", "ten"], "invalid int value"),
        (["--classes", "10"], "--loss"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(capsys, argv, message):
    assert main(["analyze", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
