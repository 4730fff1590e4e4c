"""`robust-glo benchmark` end to end on digits, and resumption judged by file timestamps and counters."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import robust_glo.benchmark.executors as executors_module
from robust_glo.benchmark import load_suite, run_benchmark
from robust_glo.cli import main
from robust_glo.errors import ConfigError

TINY = """
[suite]
name = "tiny"
dataset = "digits"
device = "cpu"

[evolve]
generations = 1
popsize = 4
steps = 20
topk = 1
reeval_seeds = 1
progress = false

[train]
losses = ["ce", "evolved"]
seeds = 2
steps = 30

[attack]
attacks = ["fgsm", "pgd:steps=2"]
eps = [0, 0.1]
n = 60

[report]
title = "Tiny digits benchmark"
"""

NO_EVOLUTION = """
[suite]
dataset = "digits"
device = "cpu"
[train]
losses = ["ce", "label_smoothing:0.1"]
seeds = 2
steps = 15
[attack]
attacks = ["fgsm"]
eps = [0, 0.1]
n = 40
[analyze]
enabled = false
"""


def _mtimes(root: Path, patterns: tuple[str, ...]) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for pattern in patterns for p in root.glob(pattern)}


def _pieces(root: Path, stage: str) -> dict[str, int]:
    return json.loads((root / "stages.json").read_text())["stages"][stage]["pieces"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("bench")
    suite = base / "tiny.toml"
    suite.write_text(textwrap.dedent(TINY))
    out = base / "out"
    assert main(["benchmark", str(suite), "--backend", "local", "--out", str(out), "--quiet"]) == 0
    return suite, out


@pytest.mark.slow
def test_end_to_end_writes_every_stage_and_the_report(tiny):
    _, out = tiny
    stages = json.loads((out / "stages.json").read_text())["stages"]
    assert list(stages) == ["evolve", "train", "attack", "analyze", "report"]
    assert all(s["status"] == "done" and s["last_seconds"] > 0 for s in stages.values())
    assert _pieces(out, "train") == {"done": 4, "reused": 0, "failed": 0}
    best = json.loads((out / "evolve" / "best_loss.json").read_text())
    evolved = "taylorglo:[" + ",".join(repr(float(t)) for t in best["theta"]) + "]"
    results = pd.read_csv(out / "results.csv")
    assert set(results["loss"]) == {"ce", evolved} and set(results["seed"]) == {0, 1}
    assert {"clean", "fgsm", "pgd:steps=2", "worst"} <= set(results["attack"])
    assert (results["n"] == 60).all()
    analysis = json.loads((out / "analysis" / "analysis.json").read_text())
    assert [a["spec"] for a in analysis] == ["ce", evolved]
    assert (out / "analysis" / "figures" / "learning_rule.png").is_file()
    md = (out / "report.md").read_text()
    assert md.startswith("# Tiny digits benchmark") and "| taylorglo (evolved) |" in md
    assert "## Evolution" in md and "## Loss analysis" in md and "## Reliability checks" in md
    # The report shows the report stage's own wall time (it is rebuilt once the stage is recorded).
    rep = md.split("## Reproducibility", 1)[1]
    assert f"| report | done | {stages['report']['last_seconds']:.1f} |" in rep
    run = json.loads((out / "stages.json").read_text())["invocations"][-1]
    assert run["out"] == str(out) and f"load average was {run['load_start']:g} at the start" in rep


@pytest.mark.slow
def test_rerun_reuses_every_finished_piece(tiny):
    suite, out = tiny
    patterns = (
        "compare/runs/*/seed*/model.pt",
        "compare/runs/*/seed*/evaluation.json",
        "evolve/evaluations.json",
        "evolve/history.csv",
        "analysis/*.json",
        "analysis/figures/*.png",
    )
    before = _mtimes(out, patterns)
    assert len([k for k in before if k.endswith("model.pt")]) == 4
    results_before = (out / "results.csv").read_text()
    totals = {k: v["total_seconds"] for k, v in json.loads((out / "stages.json").read_text())["stages"].items()}

    run_benchmark(load_suite(suite), out, backend="local", progress=False, log=lambda _: None)

    assert _mtimes(out, patterns) == before  # nothing trained, attacked or analyzed again
    assert (out / "results.csv").read_text() == results_before
    assert _pieces(out, "evolve") == {"done": 0, "reused": 1, "failed": 0}
    assert _pieces(out, "train") == {"done": 0, "reused": 4, "failed": 0}
    assert _pieces(out, "attack") == {"done": 0, "reused": 4, "failed": 0}
    assert _pieces(out, "analyze") == {"done": 0, "reused": 3, "failed": 0}
    data = json.loads((out / "stages.json").read_text())
    assert len(data["invocations"]) == 2 and data["invocations"][-1]["status"] == "done"
    for name, s in data["stages"].items():
        assert s["total_seconds"] == pytest.approx(totals[name] + s["last_seconds"], abs=2e-3)


@pytest.mark.slow
def test_lost_pieces_are_redone_and_only_they(tiny):
    suite, out = tiny
    runs = sorted((out / "compare" / "runs").glob("*/seed*"))
    lost_training, lost_evaluation = runs[0], runs[1]
    for name in ("model.pt", "metrics.json", "evaluation.json"):
        (lost_training / name).unlink()
    (lost_evaluation / "evaluation.json").unlink()
    keep = [r for r in runs if r not in (lost_training, lost_evaluation)]
    before = {r: ((r / "model.pt").stat().st_mtime_ns, (r / "evaluation.json").stat().st_mtime_ns) for r in keep}
    model_before = (lost_evaluation / "model.pt").stat().st_mtime_ns

    run_benchmark(
        load_suite(suite), out, stages=["train", "attack"], backend="local", progress=False, log=lambda _: None
    )

    assert _pieces(out, "train") == {"done": 1, "reused": 3, "failed": 0}
    assert _pieces(out, "attack") == {"done": 2, "reused": 2, "failed": 0}
    assert {
        r: ((r / "model.pt").stat().st_mtime_ns, (r / "evaluation.json").stat().st_mtime_ns) for r in keep
    } == before
    assert (lost_evaluation / "model.pt").stat().st_mtime_ns == model_before
    assert (lost_training / "model.pt").is_file() and (lost_training / "evaluation.json").is_file()
    assert len(pd.read_csv(out / "results.csv").drop_duplicates(["loss", "seed"])) == 4


def test_crash_mid_stage_costs_only_the_piece_in_flight(tmp_path, monkeypatch):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(NO_EVOLUTION))
    suite = load_suite(path)
    real = executors_module.train_run  # the sequential executor's, looked up in its namespace
    calls = []

    def crashing(config, out_dir, **kwargs):
        calls.append(out_dir)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies while training the third network
        return real(config, out_dir, **kwargs)

    monkeypatch.setattr(executors_module, "train_run", crashing)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(suite, tmp_path / "out", backend="local", progress=False, log=lambda _: None)
    data = json.loads((tmp_path / "out" / "stages.json").read_text())
    assert data["stages"]["train"]["status"] == "interrupted" and "attack" not in data["stages"]
    assert data["invocations"][-1]["status"] == "interrupted"
    finished = sorted((tmp_path / "out").glob("compare/runs/*/seed*/model.pt"))
    assert len(finished) == 2
    stamps = {p: p.stat().st_mtime_ns for p in finished}

    monkeypatch.setattr(executors_module, "train_run", real)
    run_benchmark(suite, tmp_path / "out", backend="local", progress=False, log=lambda _: None)
    assert _pieces(tmp_path / "out", "train") == {"done": 2, "reused": 2, "failed": 0}
    assert {p: p.stat().st_mtime_ns for p in finished} == stamps
    stages = json.loads((tmp_path / "out" / "stages.json").read_text())["stages"]
    assert list(stages) == ["train", "attack", "report"]  # no [evolve]; analysis disabled
    assert stages["train"]["status"] == "done"
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Evolution" not in md and "| label_smoothing:0.1 |" in md


def test_stage_errors_are_clear(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(NO_EVOLUTION))
    assert main(["benchmark", str(path), "--backend", "local", "--out", str(tmp_path / "o"), "--stages", "attack"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has not been trained" in err and "train stage first" in err
    assert (
        main(["benchmark", str(path), "--backend", "local", "--out", str(tmp_path / "o"), "--stages", "train,atack"])
        == 2
    )
    assert "unknown stage 'atack'" in capsys.readouterr().err


TWO_EVOLUTIONS = """
[suite]
name = "two"
dataset = "digits"
device = "cpu"

[evolve]                 # shared by both evolutions
generations = 1
popsize = 4
steps = 15
topk = 1
reeval_seeds = 1
progress = false

[evolve.accuracy]
fitness = "clean"

[evolve.robust]
fitness = "mix:0.5:fgsm:0.1"
seed = 1
attack_samples = 40

[train]
losses = ["ce", "evolved:accuracy", "evolved:robust"]
seeds = 1
steps = 15

[attack]
attacks = ["fgsm"]
eps = [0, 0.1]
n = 40

[analyze]
enabled = false

[report]
bootstrap = 1000
"""


def test_a_suite_with_two_evolutions(tmp_path):
    suite_file = tmp_path / "two.toml"
    suite_file.write_text(textwrap.dedent(TWO_EVOLUTIONS))
    suite = load_suite(suite_file)
    assert set(suite.evolutions) == {"accuracy", "robust"}
    assert suite.evolutions["robust"]["fitness"] == "mix:0.5:fgsm:0.1" and suite.evolutions["robust"]["popsize"] == 4
    out = tmp_path / "out"
    run_benchmark(suite, out, backend="local", progress=False, log=lambda line: None)
    for name in ("accuracy", "robust"):
        assert (out / "evolve" / name / "best_loss.json").is_file()
    robust_history = pd.read_csv(out / "evolve" / "robust" / "history.csv")
    assert "robust_accuracy" in robust_history.columns
    labels = {row["given"]: row["label"] for row in json.loads((out / "losses.json").read_text())}
    assert labels["evolved:robust"] == "taylorglo (evolved: robust)"
    assert len(pd.read_csv(out / "results.csv")["loss"].unique()) == 3
    report = (out / "report.md").read_text()
    assert "## Evolution: accuracy" in report and "## Evolution: robust" in report
    assert "evolve/robust/history.csv" in report


def test_evolved_tokens_must_name_an_evolution(tmp_path):
    from robust_glo.errors import ConfigError

    bad = TWO_EVOLUTIONS.replace('"evolved:robust"]', '"evolved:fast"]')
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(bad))
    with pytest.raises(
        ConfigError,
        match=r"loss 'evolved:fast' names no evolution of this suite; valid: "
        r"evolved:accuracy, evolved:robust",
    ):
        load_suite(path)


def test_a_suite_with_the_l2_threat_model_reports_it(tmp_path):
    text = NO_EVOLUTION.replace('attacks = ["fgsm"]', 'attacks = ["fgsm", "pgd:norm=l2:steps=3"]\neps_l2 = [0.5, 1.0]')
    path = tmp_path / "l2.toml"
    path.write_text(textwrap.dedent(text) + "[report]\nbootstrap = 1000\n")
    out = tmp_path / "out"
    run_benchmark(load_suite(path), out, backend="local", progress=False, log=lambda line: None)
    results = pd.read_csv(out / "results.csv")
    l2 = results[results["norm"] == "L2"]
    assert set(l2["attack"]) == {"pgd:norm=l2:steps=3", "worst:l2"} and set(l2["eps"]) == {0.5, 1.0}
    report = (out / "report.md").read_text()
    assert "worst case L2 r=0.5 (%)" in report and "L2 radius 1" in report


@pytest.mark.slow
def test_the_ray_backend_gives_the_local_results(tmp_path):
    ray = pytest.importorskip("ray")
    path = tmp_path / "suite.toml"
    path.write_text(textwrap.dedent(NO_EVOLUTION) + "[report]\nbootstrap = 1000\n")
    suite = load_suite(path)
    run_benchmark(suite, tmp_path / "local", backend="local", progress=False, log=lambda line: None)
    lines: list[str] = []
    try:
        run_benchmark(
            suite,
            tmp_path / "ray",
            progress=False,
            log=lines.append,
            backend="ray",
            ray_options={"num_cpus": 2, "cpus_per_task": 1},
        )
        stopped = not ray.is_initialized()  # the benchmark stops the cluster it started
    finally:
        ray.shutdown()
    assert stopped
    assert sum(line.startswith("[ray] one local cluster for every stage") for line in lines) == 1
    assert any(line.startswith("[attack] [ray]") for line in lines)
    assert _pieces(tmp_path / "ray", "train") == {"done": 4, "reused": 0, "failed": 0}  # trained by Ray tasks
    volatile = ["seconds"]
    local = pd.read_csv(tmp_path / "local" / "results.csv").drop(columns=volatile)
    remote = pd.read_csv(tmp_path / "ray" / "results.csv").drop(columns=volatile)
    pd.testing.assert_frame_equal(local, remote)
    # analyze and report alone dispatch nothing: no cluster is started for them
    again: list[str] = []
    run_benchmark(
        suite, tmp_path / "ray", stages=["analyze", "report"], progress=False, log=again.append, backend="ray"
    )
    assert not any(line.startswith("[ray]") for line in again) and not ray.is_initialized()
    assert (tmp_path / "local" / "outcomes.csv").read_text() == (tmp_path / "ray" / "outcomes.csv").read_text()


def test_population_training_gives_the_sequential_networks(tmp_path):
    # The train stage with every piece in one population: the run directories are the sequential ones
    # (same files, same config, test accuracies within float rounding), and a re-run reuses them all.
    path = tmp_path / "suite.toml"
    path.write_text(textwrap.dedent(NO_EVOLUTION))
    suite = load_suite(path)
    run_benchmark(
        suite, tmp_path / "seq", stages=["train"], backend="local", progress=False, log=lambda _: None, population="off"
    )
    lines: list[str] = []
    run_benchmark(
        suite, tmp_path / "pop", stages=["train"], backend="local", progress=False, log=lines.append, population="on"
    )
    assert any("4 networks trained as populations" in line for line in lines)
    invocation = json.loads((tmp_path / "pop" / "stages.json").read_text())["invocations"][-1]
    # the report's reproducibility command repeats them
    assert invocation["backend"] == "local" and invocation["population"] == "on"
    assert invocation["population_size"] == 0
    assert _pieces(tmp_path / "pop", "train") == {"done": 4, "reused": 0, "failed": 0}  # trained, not reused
    seq = pd.read_csv(tmp_path / "seq" / "training.csv")
    pop = pd.read_csv(tmp_path / "pop" / "training.csv")
    assert (pop["status"] == "ok").all() and list(pop["steps"]) == list(seq["steps"])
    assert (pop["test_accuracy"] - seq["test_accuracy"]).abs().max() <= 0.01
    for run in (tmp_path / "pop").glob("compare/runs/*/seed*"):
        twin = tmp_path / "seq" / run.relative_to(tmp_path / "pop")
        assert (run / "config.json").read_text() == (twin / "config.json").read_text()
        assert json.loads((run / "metrics.json").read_text())["trained_as"] == "population of 4"
    run_benchmark(
        suite, tmp_path / "pop", stages=["train"], backend="local", progress=False, log=lambda _: None, population="on"
    )
    assert _pieces(tmp_path / "pop", "train") == {"done": 0, "reused": 4, "failed": 0}
    with pytest.raises(ConfigError, match="population 'sometimes' is unknown"):
        run_benchmark(suite, tmp_path / "x", backend="local", progress=False, population="sometimes")


def test_the_ray_backend_runs_the_evolution_on_the_same_cluster(tmp_path):
    # --backend ray: the evolution's candidates become Ray tasks of the grid's shape, unless [evolve] chose.
    from robust_glo.benchmark.pipeline import Benchmark

    path = tmp_path / "tiny.toml"
    path.write_text(textwrap.dedent(TINY))
    suite = load_suite(path)
    options = suite.evolutions[""]
    ray_options = {"address": "10.0.0.1:6379", "cpus_per_task": 2, "gpus_per_task": 0.5, "num_cpus": None}
    bench = Benchmark(suite, tmp_path / "out", backend="ray", ray_options=ray_options)
    evolve = bench._evolve_options(options)
    assert evolve["backend"] == "ray" and evolve["ray_address"] == "10.0.0.1:6379"
    assert evolve["cpus_per_task"] == 2 and evolve["gpus_per_task"] == 0.5 and "num_cpus" not in evolve
    local = Benchmark(suite, tmp_path / "out", backend="local")
    assert local._evolve_options(options) == {**options, "backend": "local"}  # local on the CPU: in this process
    chosen = {**options, "backend": "local"}
    assert bench._evolve_options(chosen) == chosen  # the suite's own choice wins
    from robust_glo.benchmark import engines

    config = engines.evolve_config(
        evolve, dataset="digits", model=None, out=tmp_path / "e", data_root=None, device="cpu", progress=False
    )
    assert config.backend == "ray" and config.ray_address == "10.0.0.1:6379" and config.cpus_per_task == 2


def test_the_quick_suite_cost_script_times_both_arms(tmp_path):
    """evaluations/perf/quick_suite_cost.py --smoke: the old settings (local, flat, eval batch 1,000) against
    the defaults (`--backend auto`), each a real `robust-glo benchmark` run; a rerun reads both arms back."""
    import subprocess
    import sys

    from robust_glo.benchmark.pipeline import resolve_benchmark_backend

    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "evaluations/perf/quick_suite_cost.py"), "--smoke", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "quick_suite_cost.json").read_text())
    for arm in ("before", "after"):
        assert set(summary["arms"][arm]["stage_seconds"]) == {"evolve", "train", "attack", "report"}
    assert "--backend local" in summary["arms"]["before"]["command"]
    bench = {arm: tmp_path / arm / "bench" for arm in ("before", "after")}
    evolved = {arm: json.loads((bench[arm] / "evolve" / "environment.json").read_text()) for arm in bench}
    assert evolved["before"]["backend"] == "local"
    expected = "ray" if resolve_benchmark_backend("auto", "cpu") == "ray" else "local"
    assert evolved["after"]["backend"] == expected
    batch = {arm: json.loads((bench[arm] / "compare/runs/ce/seed0/config.json").read_text()) for arm in bench}
    assert (batch["before"]["eval_batch_size"], batch["after"]["eval_batch_size"]) == (1000, 250)
    history = pd.read_csv(bench["after"] / "evolve" / "history.csv")
    assert history["rung"].max() >= 1  # the smoke suite's own halving ran in the after arm
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=root)
    assert again.returncode == 0 and again.stdout.count("finished earlier") == 2


def test_population_seconds_count_each_population_once_even_when_two_took_the_same_time():
    from types import SimpleNamespace

    # Two populations of 2 members, both 10.0 s, and one of 1 member, 4.0 s: 24 s, not {10, 4} = 14 s.
    members = [SimpleNamespace(metrics={"population_seconds": 10.0, "population_size": 2}) for _ in range(4)]
    members.append(SimpleNamespace(metrics={"population_seconds": 4.0, "population_size": 1}))
    assert executors_module.population_seconds(members) == pytest.approx(24.0)
