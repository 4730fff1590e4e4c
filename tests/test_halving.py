"""Successive halving inside a CMA-ES generation: rungs, promotion, ranking bands, collapse, resume."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from robust_glo.errors import ConfigError
from robust_glo.evolution import EvolveConfig, TaylorGLOProblem, run_evolution
from robust_glo.evolution.runner.engine import final_fitness

HALVING = dict(
    dataset="digits",
    generations=2,
    popsize=9,
    steps=90,
    batch_size=64,
    fidelity="halving",
    eta=3,
    rungs=3,
    topk=1,
    reeval_seeds=1,
    seed=3,
    threads=1,
    progress=False,
)


@pytest.fixture(scope="module")
def halving(tmp_path_factory):
    out = tmp_path_factory.mktemp("halving") / "run"
    return run_evolution(EvolveConfig.create(out=str(out), **HALVING))


def _comparable(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_rungs_promote_the_best_third_and_record_rung_and_steps(halving):
    budgets = [10, 30, 90]
    assert EvolveConfig.create(out="x", **HALVING).rung_steps() == budgets
    history = pd.read_csv(halving.out_dir / "history.csv")
    rungs = pd.read_csv(halving.out_dir / "rungs.csv")
    assert {"rung", "steps"} <= set(history.columns)
    for g, gen in history.groupby("generation"):
        kept = gen[gen["status"] != "rejected"]
        trained_at = [set(rungs[(rungs["generation"] == g) & (rungs["rung"] == r)]["index"]) for r in range(3)]
        assert trained_at[0] == set(kept["index"])  # every candidate that passes the invariant starts
        for r in (1, 2):  # at most ceil(n / eta) of a rung go on, and only trained ones
            assert len(trained_at[r]) <= math.ceil(len(trained_at[r - 1]) / 3)
            assert trained_at[r] <= trained_at[r - 1]
        for row in kept.itertuples():
            assert row.steps == budgets[int(row.rung)] or row.status == "diverged"  # resumed, never retrained
        pruned = gen[gen["status"] == "pruned"]
        survivors = gen[gen["status"] == "trained"]
        assert len(survivors) >= 1 and (survivors["rung"] == 2).all()
        if len(pruned):  # every survivor ranks above every pruned candidate
            assert survivors["fitness"].max() < pruned["fitness"].min()
            assert (pruned["rung"] < 2).all() and pruned["fitness"].between(1.0, 1.5).all()
    assert set(history["status"]) <= {"trained", "pruned", "collapsed", "rejected", "diverged"}
    assert "pruned" in set(history["status"])
    gens = pd.read_csv(halving.out_dir / "generations.csv")
    assert list(gens["steps"]) == [int(history[history["generation"] == g]["steps"].sum()) for g in (0, 1)]
    assert not list((halving.out_dir / "states").glob("*.pt"))  # rung states go when the generation ends


def test_a_survivor_scores_as_if_trained_without_stops(halving):
    # Resuming from the rung's saved state is exact on the CPU: the survivor's validation accuracy equals a
    # flat training run of the same theta and seed.
    config = EvolveConfig.create(out="x", **HALVING)
    problem = TaylorGLOProblem.from_config(config)
    survivor = next(r for r in halving.history if r["status"] == "trained")
    flat = problem.evaluate(survivor["theta"], survivor["seed"])
    assert flat.val_accuracy == survivor["val_accuracy"] and flat.fitness == survivor["fitness"]


def test_pruned_and_collapsed_bands_order_as_documented():
    n = 3
    survivors = [0.0, 0.5, 1.0]
    late = [final_fitness("pruned", 1, n, f) for f in (0.1, 0.9)]
    early = [final_fitness("pruned", 0, n, f) for f in (0.1, 0.9)]
    collapsed = [final_fitness("collapsed", r, n, f) for r in (2, 0) for f in (0.1, 0.9)]
    ordered = survivors + late + early + collapsed
    assert ordered == sorted(ordered) and len(set(ordered)) == len(ordered)
    assert max(collapsed) <= 2.0  # below the diverged band (2, 2.5]


def test_a_flat_loss_is_collapsed_and_stops():
    problem = TaylorGLOProblem(dataset="digits", steps=100, invariant="off", threads=1)
    zero = [0.0] * 8  # the loss is 0 everywhere: nothing moves (logged at steps 50 and 60)
    result = problem.evaluate(zero, 0, stop_at=60, collapse="loss")
    assert result.status == "collapsed" and result.steps_trained == 60 and "has not moved" in result.message
    # At chance after a rung: collapsed only when chance accuracy counts ("any"), not at a first rung ("loss").
    bad = [0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # pushes the true class's probability down
    assert problem.evaluate(bad, 0, stop_at=10, collapse="any").status == "collapsed"
    assert problem.evaluate(bad, 0, stop_at=10, collapse="loss").status == "trained"
    assert problem.evaluate(zero, 0).status == "trained"  # without collapse detection it is just bad


def test_interrupted_mid_rung_resumes_to_the_same_run(tmp_path, halving, monkeypatch):
    calls = {"n": 0}
    real = TaylorGLOProblem.evaluate

    def dying(self, theta, seed, **options):
        calls["n"] += 1
        if calls["n"] == 12:  # inside generation 1's rungs
            raise KeyboardInterrupt
        return real(self, theta, seed, **options)

    config = EvolveConfig.create(out=str(tmp_path / "r"), **HALVING)
    monkeypatch.setattr(TaylorGLOProblem, "evaluate", dying)
    with pytest.raises(KeyboardInterrupt):
        run_evolution(config)
    monkeypatch.setattr(TaylorGLOProblem, "evaluate", real)
    resumed = run_evolution(config, resume=True)
    assert _comparable(resumed.history) == _comparable(halving.history)
    assert resumed.best["theta"] == halving.best["theta"]


def test_the_batched_backend_runs_halving(tmp_path, halving):
    result = run_evolution(EvolveConfig.create(out=str(tmp_path / "b"), **{**HALVING, "backend": "batched"}))
    statuses = [r["status"] for r in result.history]
    assert "pruned" in statuses and statuses.count("trained") >= 2
    # Batched rungs retrain from the start, so a candidate that reached rung 1 received 10 + 30 steps.
    for r in result.history:
        if r["status"] == "pruned" and r["rung"] == 1:
            assert r["steps"] == 40


def test_halving_options_are_checked():
    with pytest.raises(ConfigError, match="fidelity 'thirds' is unknown"):
        EvolveConfig.create(out="x", fidelity="thirds")
    with pytest.raises(ConfigError, match="eta must be >= 2"):
        EvolveConfig.create(out="x", fidelity="halving", eta=1)
    with pytest.raises(ConfigError, match="too small for 4 rungs"):
        EvolveConfig.create(out="x", fidelity="halving", rungs=4, eta=3, steps=20)
    assert np.array_equal(EvolveConfig.create(out="x", steps=600).rung_steps(), [600])


def test_the_fidelity_benchmark_runs_end_to_end(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "evaluations/perf/evolution_fidelity.py"), "--smoke", "--search-seeds", "2"]
        + ["--reeval-seeds", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "evolution_fidelity.json").read_text())
    assert len(summary["steps_ratio_halving_to_flat_best"]) == 2
    assert sum(summary["halving_total_steps"]) < 2 * summary["flat_total_steps_mean"]
    assert (tmp_path / "evolution_fidelity.png").stat().st_size > 0
    assert "full-training equivalents until halving" in done.stdout
