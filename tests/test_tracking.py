"""MLflow tracking (#23 item 3), against real local stores (SQLite, no server), read back with MlflowClient:
`train`, `evolve`, `evaluate` and `benchmark` with `--track` (or `[suite] track = true`) log parameters,
curves, fitness, robust accuracies and the report from the files the run wrote; without it nothing changes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from robust_glo.cli import main
from robust_glo.cli.messages import ERROR_PREFIX
from robust_glo.tracking import EXPERIMENT, INSTALL_HINT, accuracy_key, default_uri, metric_key

TINY_SUITE = """
[suite]
name = "tracked"
dataset = "digits"
device = "cpu"
track = true

[train]
losses = ["ce", "label_smoothing:0.1"]
seeds = 1
steps = 15

[attack]
attacks = ["fgsm"]
eps = [0, 0.1]
n = 40

[analyze]
enabled = false
"""


@pytest.fixture(autouse=True)
def _default_experiment(monkeypatch):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory) -> str:
    """One SQLite store for the tests that pass --tracking-uri (creating a store's tables takes seconds)."""
    return "sqlite:///" + str(tmp_path_factory.mktemp("store") / "shared.db")


def _runs(uri: str, command: str | None = None, out: Path | None = None) -> tuple[object, list]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    filters = []
    if command:
        filters.append(f"tags.robust_glo.command = '{command}'")
    if out:
        filters.append(f"tags.robust_glo.out = '{out.resolve()}'")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=" and ".join(filters), order_by=["attributes.start_time ASC"]
    )
    return client, runs


def _artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, path)}


def test_metric_keys_are_portable():
    assert accuracy_key("pgd:steps=2", 0.1) == "accuracy/pgd_steps_2/eps_0.1"
    assert accuracy_key("clean", 0.0, "label_smoothing:0.1") == "accuracy/label_smoothing_0.1/clean/eps_0"
    assert accuracy_key("fgsm", 8 / 255, "evolved") == "accuracy/evolved/fgsm/eps_0.0313725"
    inline = accuracy_key("fgsm", 0.1, "taylorglo:[1.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0]")
    assert "[" not in inline and "," not in inline and inline.startswith("accuracy/taylorglo")
    assert metric_key("a", "..", "b c") == "a/_/b_c"


def test_without_mlflow_track_is_a_one_line_error_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    out = tmp_path / "t"
    assert main(["train", "--dataset", "digits", "--steps", "5", "--track", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"{ERROR_PREFIX}{INSTALL_HINT}\n"
    assert not (out / "metrics.json").exists()
    suite = tmp_path / "s.toml"
    suite.write_text(textwrap.dedent(TINY_SUITE))  # [suite] track = true
    assert main(["benchmark", str(suite), "--backend", "local", "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert capsys.readouterr().err == f"{ERROR_PREFIX}{INSTALL_HINT}\n"
    assert not (tmp_path / "b" / "training.csv").exists() and not (tmp_path / "b" / "stages.json").exists()


def test_a_store_that_cannot_be_opened_is_a_one_line_error_before_any_work(tmp_path, capsys):
    out = tmp_path / "t"
    argv = ["train", "--dataset", "digits", "--steps", "5", "--out", str(out), "--tracking-uri", "bogus://nowhere"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{ERROR_PREFIX}cannot open the MLflow tracking store bogus://")
    assert not (out / "metrics.json").exists()


def test_a_failure_while_logging_warns_and_exits_2_after_the_work_is_saved(tmp_path, shared_store, monkeypatch, capsys):
    import mlflow

    def broken(*args, **kwargs):
        raise RuntimeError("the store went away")

    monkeypatch.setattr(mlflow.MlflowClient, "log_batch", broken)
    out = tmp_path / "t"
    argv = ["train", "--dataset", "digits", "--steps", "5", "--no-progress", "--out", str(out)]
    assert main([*argv, "--tracking-uri", shared_store]) == 2
    captured = capsys.readouterr()
    assert "test accuracy" in captured.out and (out / "metrics.json").is_file()  # the run itself is saved
    warning, error = captured.err.splitlines()
    assert warning.startswith("robust-glo: warning: MLflow logging to") and "the store went away" in warning
    assert error.startswith(ERROR_PREFIX) and "re-run the same command with --track" in error


def test_without_track_nothing_imports_mlflow_or_writes_a_store(tmp_path):
    out = tmp_path / "t"
    code = (
        "import sys; from robust_glo.cli import main; "
        f"assert main(['train', '--dataset', 'digits', '--steps', '5', '--no-progress', '--out', {str(out)!r}]) == 0; "
        "assert 'mlflow' not in sys.modules, 'mlflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    assert (out / "metrics.json").is_file()
    assert not (out / "mlflow.db").exists() and not (out / "mlruns").exists()


def test_train_track_logs_the_config_the_curve_and_the_accuracies_to_the_run_dir(tmp_path, capsys):
    out = tmp_path / "t"
    argv = ["train", "--dataset", "digits", "--loss", "baikal", "--steps", "60", "--seed", "3", "--no-progress"]
    assert main([*argv, "--out", str(out), "--track"]) == 0
    assert "mlflow ui --backend-store-uri sqlite:///" in capsys.readouterr().out
    assert (out / "mlflow.db").is_file() and (out / "mlruns").is_dir()  # the embedded store: no server
    client, runs = _runs(default_uri(out))
    (run,) = runs
    metrics = json.loads((out / "metrics.json").read_text())
    assert run.info.status == "FINISHED" and run.info.run_name == "train baikal seed 3"
    assert run.info.artifact_uri.startswith((out / "mlruns").resolve().as_uri())
    assert run.data.params["loss"] == "baikal" and run.data.params["steps"] == "60" and run.data.params["seed"] == "3"
    assert run.data.tags["robust_glo.out"] == str(out.resolve()) and run.data.tags["robust_glo.status"] == "ok"
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    curve = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert curve == [(int(s), pytest.approx(v)) for s, v in metrics["loss_curve"]]
    assert {"config.json", "metrics.json", "environment.json"} <= _artifacts(client, run.info.run_id)


def test_evolve_track_logs_generations_candidates_and_the_best_loss(tmp_path, shared_store):
    out = tmp_path / "evo"
    argv = ["evolve", "--dataset", "digits", "--generations", "1", "--popsize", "4", "--steps", "10", "--topk", "1"]
    argv += ["--reeval-seeds", "1", "--backend", "local", "--invariant", "off", "--no-progress", "--out", str(out)]
    assert main([*argv, "--tracking-uri", shared_store]) == 0  # a URI alone turns tracking on
    assert not (out / "mlflow.db").exists()
    client, runs = _runs(shared_store, "evolve", out)
    (run,) = runs
    rid = run.info.run_id
    history = pd.read_csv(out / "history.csv")
    generations = pd.read_csv(out / "generations.csv")
    best = json.loads((out / "best_loss.json").read_text())
    assert run.data.params["popsize"] == "4" and run.data.params["dataset"] == "digits"
    gen = client.get_metric_history(rid, "generation/best_fitness")
    assert [(m.step, m.value) for m in gen] == [(0, pytest.approx(generations["best_fitness"][0]))]
    trained = history[history["status"] == "trained"]
    fitness = client.get_metric_history(rid, "candidate/fitness")
    assert sorted((m.step, m.value) for m in fitness) == [(i, pytest.approx(f)) for i, f in trained["fitness"].items()]
    assert run.data.metrics["best/fitness"] == pytest.approx(best["fitness"])
    assert run.data.tags["robust_glo.best_loss"].startswith("taylorglo:[")
    assert {"history.csv", "generations.csv", "best_loss.json", "history.json"} <= _artifacts(client, rid)


def test_evaluate_track_logs_summary_means_and_each_network(tmp_path, shared_store):
    out = tmp_path / "cmp"
    argv = ["evaluate", "--dataset", "digits", "--loss", "ce", "--seeds", "1", "--steps", "20", "--attacks", "fgsm"]
    argv += ["--eps", "0,0.1", "--test-size", "50", "--no-progress", "--out", str(out), "--track"]
    assert main([*argv, "--tracking-uri", shared_store]) == 0
    client, runs = _runs(shared_store, "evaluate", out)
    parent, child = runs
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id and child.info.run_name == "ce seed 0"
    summary = pd.read_csv(out / "summary.csv").set_index(["loss", "attack", "eps"])
    results = pd.read_csv(out / "results.csv").set_index(["loss", "seed", "attack", "eps"])
    key = accuracy_key("fgsm", 0.1, "ce")
    assert parent.data.metrics[key] == pytest.approx(summary.loc[("ce", "fgsm", 0.1), "mean"])
    assert child.data.metrics[accuracy_key("fgsm", 0.1)] == pytest.approx(
        results.loc[("ce", 0, "fgsm", 0.1), "accuracy"]
    )
    assert "train_loss" in child.data.metrics and child.data.params["steps"] == "20"
    assert {"results.csv", "summary.csv", "config.json"} <= _artifacts(client, parent.info.run_id)


def test_a_suite_with_track_logs_every_stage_and_the_report(tmp_path, capsys):
    suite = tmp_path / "tracked.toml"
    suite.write_text(textwrap.dedent(TINY_SUITE))
    out = tmp_path / "bench"
    assert main(["benchmark", str(suite), "--backend", "local", "--out", str(out), "--quiet"]) == 0
    assert "[track] logged to MLflow" in capsys.readouterr().out
    assert json.loads((out / "suite.json").read_text())["track"] is True
    client, runs = _runs(default_uri(out), "benchmark")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    (parent,) = parents
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert parent.info.status == "FINISHED" and parent.info.run_name == "benchmark tracked"
    assert parent.data.params["dataset"] == "digits" and parent.data.params["train.steps"] == "15"
    assert set(children) == {"ce seed 0", "label_smoothing:0.1 seed 0"}
    results = pd.read_csv(out / "results.csv").set_index(["loss", "seed", "attack", "eps"])
    summary = pd.read_csv(out / "summary.csv").set_index(["loss", "attack", "eps"])
    smoothing = children["label_smoothing:0.1 seed 0"]
    expected = results.loc[("label_smoothing:0.1", 0, "fgsm", 0.1), "accuracy"]
    assert smoothing.data.metrics[accuracy_key("fgsm", 0.1)] == pytest.approx(expected)
    assert smoothing.data.metrics["test_accuracy"] > 0 and "train_loss" in smoothing.data.metrics
    mean = summary.loc[("label_smoothing:0.1", "fgsm", 0.1), "mean"]
    assert parent.data.metrics[accuracy_key("fgsm", 0.1, "label_smoothing:0.1")] == pytest.approx(mean)
    artifacts = _artifacts(client, parent.info.run_id)
    assert {"report.html", "report.md", "summary.csv", "results.csv", "suite.json", "figures"} <= artifacts
    assert any(p.endswith(".png") for p in _artifacts(client, parent.info.run_id, "figures"))


def test_track_flags_win_over_the_suite(tmp_path):
    from robust_glo.benchmark import load_suite
    from robust_glo.benchmark.pipeline import Benchmark

    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(TINY_SUITE))
    tracked = load_suite(path)
    plain = load_suite(path)
    plain.track = None
    assert Benchmark(tracked, tmp_path / "o", backend="local").track is True
    assert Benchmark(tracked, tmp_path / "o", backend="local", track=False).track is False  # --no-track
    assert Benchmark(plain, tmp_path / "o", backend="local").track is False
    assert Benchmark(plain, tmp_path / "o", backend="local", tracking_uri="sqlite:///x.db").track is True
    untracked = load_suite("quick", "digits")  # no key: suite.json (and the report) as before
    assert untracked.track is None and not {"track", "tracking_uri"} & set(untracked.to_dict())
    path.write_text(textwrap.dedent(TINY_SUITE).replace("track = true", 'track = "yes"'))
    from robust_glo.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[suite\]: track must be true or false"):
        load_suite(path)


@pytest.mark.slow
def test_the_quick_suite_on_digits_fills_a_store_mlflow_reads_back(tmp_path):
    """The issue's check: `robust-glo benchmark quick --variant digits --track --out DIR`."""
    out = tmp_path / "q"
    argv = ["benchmark", "quick", "--variant", "digits", "--track", "--backend", "local", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    client, runs = _runs(default_uri(out), "benchmark")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 1 + 5 * 2  # the evolution and 5 losses x 2 seeds
    (evolution,) = [r for r in children if r.info.run_name == "evolve"]
    assert "generation/best_fitness" in evolution.data.metrics and "candidate/best_fitness" in evolution.data.metrics
    summary = pd.read_csv(out / "summary.csv").set_index(["loss", "attack", "eps"])
    losses = {r["spec"]: r for r in json.loads((out / "losses.json").read_text())}
    for spec, row in losses.items():
        if row["role"] == "analysis only":
            continue
        name = row["given"] if row["role"] == "evolved" else spec
        key = accuracy_key("pgd", 0.1, name)
        assert parent.data.metrics[key] == pytest.approx(summary.loc[(spec, "pgd", 0.1), "mean"]), key
    assert {"report.html", "report.md", "summary.csv"} <= _artifacts(client, parent.info.run_id)
    html = client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path))
    assert Path(html).read_text() == (out / "report.html").read_text()


def test_the_python_api_tracks_too(tmp_path):
    from robust_glo import run_benchmark

    suite = tmp_path / "plain.toml"
    suite.write_text(textwrap.dedent(TINY_SUITE).replace("track = true\n", ""))
    out = tmp_path / "api"
    run_benchmark(suite, out, backend="local", progress=False, track=True)
    _, runs = _runs(default_uri(out), "benchmark")
    assert any(r.info.run_name.startswith("benchmark") for r in runs)


def test_an_unreachable_server_fails_fast_with_one_line(tmp_path, capsys, monkeypatch):
    import time

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    t0 = time.perf_counter()
    argv = ["train", "--dataset", "digits", "--steps", "5", "--out", str(tmp_path / "t"), "--no-progress"]
    assert main([*argv, "--tracking-uri", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot open the MLflow tracking store http://127.0.0.1:1" in err
    assert time.perf_counter() - t0 < 60  # not minutes of silent retries
