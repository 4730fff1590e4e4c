"""A robust evolution ranks every rung by the fitness it states; the clean-accuracy constraint ranks the
candidates that fall too far below cross-entropy after every candidate that does not."""

from __future__ import annotations

import json

import pytest

from robust_glo.errors import ConfigError
from robust_glo.evolution import EvolveConfig, run_evolution
from robust_glo.evolution.config import parse_fitness
from robust_glo.evolution.runner.engine import constrained_fitness

BASE = dict(
    dataset="digits",
    generations=1,
    popsize=6,
    steps=27,
    batch_size=64,
    fidelity="halving",
    eta=3,
    rungs=3,
    topk=1,
    reeval_seeds=1,
    seed=5,
    threads=1,
    progress=False,
    backend="local",
    fitness="mix:0.5:pgd:0.1:2",
    attack_samples=40,
)


def _evaluations(out):
    return json.loads((out / "evaluations.json").read_text())


@pytest.mark.parametrize("rung_fitness", ["stated", "clean"])
def test_a_robust_fitness_is_measured_at_the_rungs_it_says(tmp_path, rung_fitness):
    out = tmp_path / rung_fitness
    run_evolution(EvolveConfig.create(out=str(out), rung_fitness=rung_fitness, **BASE))
    spec = parse_fitness(BASE["fitness"])
    rungs = [r for r in _evaluations(out)["rungs"] if r["status"] == "trained"]
    assert {r["rung"] for r in rungs} == {0, 1, 2}
    for r in rungs:
        if rung_fitness == "stated" or r["rung"] == 2:
            assert r["robust_accuracy"] is not None
            assert r["fitness"] == pytest.approx(spec.combine(r["val_accuracy"], r["robust_accuracy"]))
        else:  # the old behaviour, kept to reproduce earlier runs: clean below the last rung
            assert r["robust_accuracy"] is None
            assert r["fitness"] == pytest.approx(1 - r["val_accuracy"])
    for rung in (0, 1):  # the promoted ones are the best by that rung's recorded fitness
        here = sorted((r for r in rungs if r["rung"] == rung), key=lambda r: (r["fitness"], r["index"]))
        promoted = {r["index"] for r in rungs if r["rung"] == rung + 1}
        assert promoted == {r["index"] for r in here[: len(promoted)]}


def test_constrained_fitness_ranks_the_feasible_first_then_by_distance_to_the_floor():
    floor = 0.80
    feasible = [constrained_fitness(f, 0.85, floor) for f in (0.1, 0.4, 0.99)]
    infeasible = [constrained_fitness(0.05, acc, floor) for acc in (0.79, 0.6, 0.1)]
    assert feasible == sorted(feasible) and infeasible == sorted(infeasible)
    assert max(feasible) < min(infeasible)  # even a feasible candidate with a worse stated fitness
    assert all(0 <= v <= 1 for v in feasible + infeasible)  # the halving bands above stay valid
    assert constrained_fitness(0.3, 0.1, None) == constrained_fitness(0.3, 0.9, None)  # no reference


@pytest.mark.parametrize("fidelity", ["halving", "flat"])
def test_the_clean_margin_trains_cross_entropy_on_the_same_seeds_and_ranks_by_it(tmp_path, fidelity):
    out = tmp_path / fidelity
    cfg = dict(BASE, fidelity=fidelity, fitness="clean", clean_margin=0.0, topk=2)
    result = run_evolution(EvolveConfig.create(out=str(out), **cfg))
    data = _evaluations(out)
    refs = {(r["kind"], *r["at"]): r for r in data["references"]}
    n_rungs = 3 if fidelity == "halving" else 1
    assert set(refs) == {("search", 0, r) for r in range(n_rungs)} | {("reeval", 0, 0)}
    assert all(r["loss"] == "ce" and r["status"] == "trained" for r in refs.values())
    seed = data["candidates"][0]["seed"]
    assert all(refs["search", 0, r]["seed"] == seed for r in range(n_rungs))  # common random numbers
    records = data["rungs"] if fidelity == "halving" else data["candidates"]
    trained = [r for r in records if r["status"] == "trained"]
    assert trained
    for r in trained:
        ref = refs["search", 0, r.get("rung") or 0]
        assert r["clean_floor"] == pytest.approx(ref["val_accuracy"])
        assert r["objective"] == pytest.approx(1 - r["val_accuracy"])
        assert r["fitness"] == pytest.approx(constrained_fitness(r["objective"], r["val_accuracy"], r["clean_floor"]))
    meets = [r["fitness"] for r in trained if r["val_accuracy"] >= r["clean_floor"]]
    misses = [r["fitness"] for r in trained if r["val_accuracy"] < r["clean_floor"]]
    assert not meets or not misses or max(meets) < min(misses)
    assert "objective" in result.best and result.best["clean_margin"] == 0.0
    for e in data["reevaluations"]:
        assert e["clean_floor"] == pytest.approx(refs["reeval", 0, 0]["val_accuracy"])
    again = run_evolution(EvolveConfig.create(out=str(out), **cfg), resume=True)  # nothing retrained or re-ranked
    assert again.evaluated_now == 0 and _evaluations(out) == data


def test_the_batched_backend_trains_the_reference_too(tmp_path):
    cfg = dict(BASE, fidelity="flat", fitness="clean", clean_margin=0.01, backend="batched")
    run_evolution(EvolveConfig.create(out=str(tmp_path / "b"), **cfg))
    data = _evaluations(tmp_path / "b")
    assert {(r["kind"], *r["at"]) for r in data["references"]} == {("search", 0, 0), ("reeval", 0, 0)}
    assert all("objective" in r for r in data["candidates"] if r["status"] == "trained")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rung_fitness": "robust"}, "rung-fitness 'robust' is unknown; valid: stated, clean"),
        ({"clean_margin": 1.5}, "clean-margin must be a number in [0, 1)"),
        ({"clean_margin": -0.01}, "clean-margin must be a number in [0, 1)"),
        ({"clean_margin": "0.01"}, "clean-margin must be a number"),
    ],
)
def test_bad_constraint_options_are_one_line_errors(values, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        EvolveConfig.create(out="x", **{**BASE, **values})
