"""Half-written state files: each one that cannot be read is named with what to do (exit code 2 from the
CLI); metadata is rebuilt, a finished piece whose record is unreadable is recomputed, nothing else is lost.

Every case cuts a real file short, as a crash or a full disk would. Everything runs on digits in seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap

import pytest

from robust_glo.cli import main
from robust_glo.errors import ResumeError, RobustGloError, StateFileError
from robust_glo.utils import read_json, read_json_or_none


def _cut(path, keep: float = 0.5) -> None:
    """Truncate a file to a share of its bytes (a write cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------------------------------- read_json


def test_read_json_names_the_file_and_what_to_do(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"a": [1, 2')
    with pytest.raises(StateFileError) as info:
        read_json(path, fix="delete it and run again")
    message = str(info.value)
    assert isinstance(info.value, RobustGloError) and isinstance(info.value, ResumeError)
    assert str(path) in message and "cut short or not JSON" in message and message.endswith("delete it and run again")
    assert "\n" not in message
    path.write_text("")
    with pytest.raises(StateFileError, match="is empty"):
        read_json(path)
    path.write_text("[1, 2]")
    with pytest.raises(StateFileError, match="holds a JSON list where a JSON object is expected"):
        read_json(path, expect=dict)
    assert read_json(path) == [1, 2]
    with pytest.raises(FileNotFoundError):  # a missing file is the caller's business, as before
        read_json(tmp_path / "missing.json")
    assert read_json_or_none(tmp_path / "missing.json") is None
    path.write_text('{"a": ')
    assert read_json_or_none(path) is None and read_json_or_none(path, expect=dict) is None


# ------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from robust_glo.training import TrainConfig, train_run

    config = TrainConfig(loss="ce", dataset="digits", steps=5, device="cpu")
    out = tmp_path_factory.mktemp("train") / "run"
    return config, train_run(config, out, progress=False)


@pytest.mark.parametrize("name", ["metrics.json", "config.json", "model.pt"])
def test_a_training_run_whose_record_is_cut_short_is_trained_again(trained, tmp_path, name):
    from robust_glo.training import train_run

    config, first = trained
    out = tmp_path / "run"
    shutil.copytree(first.out_dir, out)
    assert train_run(config, out, progress=False).reused  # intact: reused
    _cut(out / name)
    again = train_run(config, out, progress=False)
    assert not again.reused and again.status == "ok" and again.test_accuracy == first.test_accuracy
    assert read_json(out / "metrics.json")["status"] == "ok"
    assert train_run(config, out, progress=False).reused  # and the rewritten files are whole


def test_loading_a_run_with_a_cut_config_names_the_file(trained, tmp_path):
    from robust_glo.training import load_trained_model

    out = tmp_path / "run"
    shutil.copytree(trained[1].out_dir, out)
    _cut(out / "config.json")
    with pytest.raises(StateFileError, match=r"config\.json' cannot be read \(cut short or not JSON.*train"):
        load_trained_model(out)
    shutil.copy(trained[1].out_dir / "config.json", out / "config.json")
    _cut(out / "model.pt")
    with pytest.raises(StateFileError, match=r"model\.pt' cannot be read"):
        load_trained_model(out)


def test_evaluating_a_checkpoint_with_a_cut_config_is_one_line_exit_2(trained, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained[1].out_dir, out)
    _cut(out / "config.json")
    argv = ["evaluate", "--checkpoint", str(out), "--dataset", "digits", "--attacks", "fgsm", "--eps", "0,0.1"]
    err = _one_line_error(capsys, [*argv, "--test-size", "20", "--out", str(tmp_path / "eval")])
    assert f"{out / 'config.json'}' cannot be read" in err and "train it again" in err


# ------------------------------------------------------------------------------------------ evolution

EVOLUTION = dict(
    dataset="digits",
    generations=1,
    popsize=4,
    steps=10,
    batch_size=64,
    topk=1,
    reeval_seeds=1,
    seed=3,
    threads=1,
    progress=False,
)


@pytest.fixture(scope="module")
def evolved(tmp_path_factory):
    from robust_glo.evolution import EvolveConfig, run_evolution

    out = tmp_path_factory.mktemp("evo") / "run"
    return run_evolution(EvolveConfig.create(out=str(out), **EVOLUTION))


def _copy_evolution(evolved, tmp_path):
    from robust_glo.evolution import EvolveConfig

    out = tmp_path / "evo"
    shutil.copytree(evolved.out_dir, out)
    return out, EvolveConfig.create(out=str(out), **EVOLUTION)


def test_an_evolution_with_cut_metadata_resumes_and_rebuilds_it(evolved, tmp_path):
    from robust_glo.evolution import run_evolution

    out, config = _copy_evolution(evolved, tmp_path)
    _cut(out / "environment.json")
    again = run_evolution(config, resume=True)
    assert again.evaluated_now == 0 and again.best == evolved.best
    env = read_json(out / "environment.json")
    assert "could not be read" in env["rebuilt"] and len(env["resumes"]) == 1


def test_an_evolution_with_a_cut_best_loss_rewrites_it_on_resume(evolved, tmp_path):
    from robust_glo.evolution import run_evolution

    out, config = _copy_evolution(evolved, tmp_path)
    _cut(out / "best_loss.json")
    assert run_evolution(config, resume=True).evaluated_now == 0
    assert read_json(out / "best_loss.json")["theta"] == evolved.best["theta"]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("config.json", "it records the run's settings"),
        ("evaluations.json", "it holds every finished candidate"),
    ],
)
def test_an_evolution_with_a_cut_state_file_is_named_with_what_to_do(evolved, tmp_path, capsys, name, expected):
    from robust_glo.evolution import run_evolution

    out, config = _copy_evolution(evolved, tmp_path)
    _cut(out / name)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(StateFileError) as info:
        run_evolution(config, resume=True)
    message = str(info.value)
    assert f"{out / name}' cannot be read" in message and expected in message and "\n" not in message
    err = _one_line_error(capsys, ["evolve", "--out", str(out), "--resume", "--no-progress"])
    assert name in err and expected in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"
    }  # nothing was overwritten


def test_evaluations_of_the_wrong_shape_are_named(evolved, tmp_path):
    from robust_glo.evolution import run_evolution

    out, config = _copy_evolution(evolved, tmp_path)
    data = read_json(out / "evaluations.json")
    data["candidates"] = [{"theta": [0.0] * 8}]  # a record without its generation and index
    (out / "evaluations.json").write_text(json.dumps(data))
    with pytest.raises(StateFileError, match=r"evaluations\.json' cannot be read \(a record lacks 'generation'\)"):
        run_evolution(config, resume=True)


# ------------------------------------------------------------------------------------------ benchmark

NO_EVOLUTION = """
[suite]
dataset = "digits"
device = "cpu"
[train]
losses = ["ce", "label_smoothing:0.1"]
seeds = 1
steps = 5
[attack]
attacks = ["fgsm"]
eps = [0, 0.1]
n = 20
"""


def test_cut_stages_json_is_rebuilt_not_blocking(tmp_path):
    from robust_glo.benchmark.ledger import Ledger

    path = tmp_path / "stages.json"
    ledger = Ledger(path)
    ledger.begin(["train"])
    with ledger.stage("train") as counter:
        counter.done += 1
    ledger.end("done")
    _cut(path)
    again = Ledger(path)
    assert again.data["stages"] == {} and "could not be read" in again.data["rebuilt"]
    again.begin(["attack"])
    again.end("done")
    assert read_json(path)["invocations"][-1]["stages"] == ["attack"]


def test_a_cut_best_loss_json_is_named_with_what_to_do(tmp_path):
    from robust_glo.benchmark.pipeline import evolved_spec

    best = tmp_path / "best_loss.json"
    best.write_text('{"kind": "taylorglo", "theta": [0.1, ')
    with pytest.raises(StateFileError) as info:
        evolved_spec(best)
    message = str(info.value)
    assert f"{best}' cannot be read" in message and "evolve stage" in message and "\n" not in message


def test_cut_analysis_records_are_recomputed(tmp_path):
    from robust_glo.benchmark import load_suite
    from robust_glo.benchmark.ledger import StageCounter
    from robust_glo.benchmark.pipeline import Benchmark

    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(NO_EVOLUTION))
    bench = Benchmark(load_suite(path), tmp_path / "out", progress=False, log=lambda _: None, backend="local")
    bench.stage_analyze(StageCounter())
    folder = tmp_path / "out" / "analysis"
    records = sorted(folder.glob("*.json"))
    whole = {p: p.read_bytes() for p in records}
    for p in records:
        _cut(p)
    _cut(folder / "figures" / "stamp.json")
    counter = StageCounter()
    bench.stage_analyze(counter)
    assert {p: p.read_bytes() for p in records} == whole
    assert counter.done == 3 and counter.reused == 0  # the two losses' records and the figures, recomputed
    assert read_json(folder / "figures" / "stamp.json")["classes"] == 10


def test_a_report_leaves_out_cut_metadata_and_names_a_cut_input(tmp_path):
    from synthetic_results import write_synthetic

    from robust_glo.reporting.inputs import load_inputs

    write_synthetic(tmp_path)
    assert load_inputs(tmp_path).stages is not None
    _cut(tmp_path / "stages.json")
    _cut(tmp_path / "environment.json")
    inputs = load_inputs(tmp_path)
    assert inputs.stages is None and inputs.environment is None
    _cut(tmp_path / "losses.json")
    with pytest.raises(StateFileError) as info:
        load_inputs(tmp_path)
    message = str(info.value)
    assert f"{tmp_path / 'losses.json'}' cannot be read" in message and "run the benchmark again" in message


# ---- file modes --------------------------------------------------------------------------------------------
def _mode(path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_written_files_follow_the_umask_like_plain_files(tmp_path, umask):
    """Atomic writes (a temporary file renamed over the target) get the mode a plain open() gives a new
    file, not mkstemp's 0o600: none of these files holds a secret. A file a version before this left 0o600
    is given the umask's mode when it is written again."""
    from robust_glo.utils import atomic_write_json
    from robust_glo.utils.io import atomic_write_text, file_mode

    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        assert file_mode() == _mode(plain) == 0o666 & ~umask
        atomic_write_json(tmp_path / "a.json", {"a": 1})
        assert _mode(tmp_path / "a.json") == _mode(plain)
        secret_before = tmp_path / "b.json"
        secret_before.write_text("{}")
        secret_before.chmod(0o600)
        atomic_write_text(secret_before, "{}\n")
        assert _mode(secret_before) == _mode(plain)
        assert not list(tmp_path.glob(".*.tmp"))
    finally:
        os.umask(old)


def test_a_training_runs_files_are_0644_under_umask_022(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        out = tmp_path / "r"
        assert main(["train", "--dataset", "digits", "--steps", "5", "--out", str(out), "--no-progress"]) == 0
    finally:
        os.umask(old)
    for name in ("config.json", "environment.json", "metrics.json", "model.pt"):
        assert _mode(out / name) == 0o644, name
