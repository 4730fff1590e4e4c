"""Evolution: CMA-ES over TaylorGLO thetas, invariant pruning, crash-safe resume, Ray and batched backends.

Everything runs on scikit-learn's digits with the tiny digits CNN and a few SGD steps, one torch thread.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from robust_glo.analysis.invariant import invariant_holds
from robust_glo.cli import main
from robust_glo.errors import ConfigError, RobustGloError
from robust_glo.evolution import (
    CMAES,
    DIVERGED_FITNESS,
    FAILED_FITNESS,
    REJECTED_FITNESS,
    EvolveConfig,
    RunStore,
    TaylorGLOProblem,
    generation_seed,
    load_history,
    parse_fitness,
    run_evolution,
)
from robust_glo.losses import TaylorGLOLoss, get_loss
from robust_glo.models import create_model
from robust_glo.training import Recipe, fit, train_population

# One small run, reused: 2 generations of 6 on digits (seed 3 gives both rejected and trained candidates).
SMALL = dict(
    dataset="digits",
    generations=2,
    popsize=6,
    steps=20,
    batch_size=64,
    topk=2,
    reeval_seeds=2,
    seed=3,
    threads=1,
    progress=False,
)
CLI_SMALL = [
    "--dataset",
    "digits",
    "--generations",
    "2",
    "--popsize",
    "6",
    "--steps",
    "20",
    "--batch-size",
    "64",
    "--topk",
    "2",
    "--reeval-seeds",
    "2",
    "--seed",
    "3",
    "--threads",
    "1",
    "--no-progress",
]


def without_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("evo") / "baseline"
    return run_evolution(EvolveConfig.create(out=str(out), **SMALL))


# ---------------------------------------------------------------------------------------------- optimizer


def test_cmaes_private_rng_exact_checkpoint_and_finite_fitness():
    before = np.random.get_state()[1].copy()
    a, b = CMAES(popsize=6, seed=1), CMAES(popsize=6, seed=1)
    xa, xb = a.ask(), b.ask()
    assert np.array_equal(xa, xb) and xa.shape == (6, 8)
    assert not np.array_equal(xa, CMAES(popsize=6, seed=2).ask())
    assert np.array_equal(np.random.get_state()[1], before), "the global numpy RNG was touched"
    with pytest.raises(ValueError, match="finite"):
        a.tell(xa, [0.5, float("nan"), 0.2, 0.3, 0.1, 0.9])
    a.tell(xa, [0.5, DIVERGED_FITNESS, 0.2, REJECTED_FITNESS, 0.1, 0.9])
    checkpoint = a.dumps()
    assert np.array_equal(a.ask(), CMAES.loads(checkpoint).ask())  # the restored RNG asks the same population
    assert a.mean.shape == (8,) and a.sigma > 0 and a.generation == 1


def test_paper_defaults():
    config = EvolveConfig()
    assert config.sigma0 == 1.2 and config.invariant == "paper" and config.fitness == "clean"
    x = CMAES(popsize=2000, seed=0).ask()
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1.2) < 0.05  # mean 0, sigma 1.2, no bounds


# ---------------------------------------------------------------------------------------------- the search


def test_same_seed_same_history_and_outputs(baseline, tmp_path):
    again = run_evolution(EvolveConfig.create(out=str(tmp_path / "again"), **SMALL))
    assert without_seconds(again.history) == without_seconds(baseline.history)
    assert again.best["theta"] == baseline.best["theta"] and again.best["fitness"] == baseline.best["fitness"]
    other = run_evolution(EvolveConfig.create(out=str(tmp_path / "other"), **{**SMALL, "seed": 4, "generations": 1}))
    assert [r["theta"] for r in other.history] != [r["theta"] for r in baseline.history[:6]]

    out = baseline.out_dir
    for name in (
        "config.json",
        "environment.json",
        "cma_state.pkl",
        "evaluations.json",
        "history.csv",
        "generations.csv",
        "reevaluation.csv",
        "best_loss.json",
    ):
        assert (out / name).is_file(), name
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == (
        ["generation", "index"]
        + [f"theta{k}" for k in range(8)]
        + ["status", "fitness", "val_accuracy", "seconds", "rung", "steps"]
    )
    assert len(history) == 12 and set(history["status"]) <= {"trained", "rejected", "diverged", "failed"}
    assert np.isfinite(history["fitness"]).all()
    # Common random numbers: every candidate of a generation shares one seed, generations differ.
    seeds = {(r["generation"], r["seed"]) for r in baseline.history}
    assert len(seeds) == 2 and {s for _, s in seeds} == {generation_seed(3, 0), generation_seed(3, 1)}
    env = json.loads((out / "environment.json").read_text())
    assert env["seeds"]["seed"] == 3 and env["versions"]["cma"]


def test_rejected_candidates_are_never_trained_and_match_the_invariant(baseline, tmp_path):
    statuses = [r["status"] for r in baseline.history]
    assert "rejected" in statuses and "trained" in statuses  # the seed exercises both paths
    for r in baseline.history:
        assert (r["status"] == "rejected") == (not invariant_holds(r["theta"], 10, "paper"))
        if r["status"] == "rejected":
            assert REJECTED_FITNESS <= r["fitness"] < REJECTED_FITNESS + 1
            assert r["val_accuracy"] is None and r["seconds"] == 0.0
        else:
            assert r["fitness"] <= 1.0

    class Spy(TaylorGLOProblem):
        trained: list = []

        def _train_and_score(self, theta, seed, **options):
            Spy.trained.append(tuple(theta))
            return super()._train_and_score(theta, seed, **options)

    config = EvolveConfig.create(
        out=str(tmp_path / "exact"), **{**SMALL, "invariant": "exact", "steps": 5, "topk": 1, "reeval_seeds": 1}
    )
    result = run_evolution(config, problem=Spy.from_config(config))
    rejected = {tuple(r["theta"]) for r in result.history if r["status"] == "rejected"}
    assert rejected, "no candidate rejected: the test would prove nothing"
    assert all(not invariant_holds(list(t), 10, "exact") for t in rejected)
    assert rejected.isdisjoint(Spy.trained)
    searched = [tuple(r["theta"]) for r in result.history if r["status"] != "rejected"]
    assert Spy.trained[: len(searched)] == searched and len(Spy.trained) == len(searched) + 1  # + 1 re-evaluation


def test_nan_producing_candidates_do_not_break_pycma(tmp_path):
    class HalfNaN(TaylorGLOProblem):
        """Candidates with theta0 > 0 get a loss that overflows to inf/NaN at the first step."""

        def evaluate(self, theta, seed):
            return super().evaluate([v * 1e30 for v in theta] if theta[0] > 0 else theta, seed)

    config = EvolveConfig.create(
        out=str(tmp_path / "nan"),
        **{**SMALL, "invariant": "off", "steps": 5, "topk": 1, "reeval_seeds": 1, "generations": 3},
    )
    result = run_evolution(config, problem=HalfNaN.from_config(config))
    statuses = [r["status"] for r in result.history]
    assert "diverged" in statuses and "trained" in statuses
    assert all(np.isfinite(r["fitness"]) for r in result.history)
    assert all(
        DIVERGED_FITNESS < r["fitness"] <= DIVERGED_FITNESS + 0.5 for r in result.history if r["status"] == "diverged"
    )
    assert all(np.isfinite(r["theta"]).all() for r in result.history)
    assert len(result.generations) == 3 and all(np.isfinite(g["sigma"]) for g in result.generations)
    assert pd.read_csv(tmp_path / "nan" / "generations.csv").columns[-1] == "cma_stop"


def test_diverged_single_candidate_is_a_finite_penalty(digits):
    problem = TaylorGLOProblem(dataset="digits", steps=3, invariant="off", threads=1)
    evaluation = problem.evaluate([1e30] * 8, seed=0)
    assert evaluation.status == "diverged" and evaluation.message
    assert evaluation.fitness == pytest.approx(DIVERGED_FITNESS + 0.5)  # diverged at the first step


# ---------------------------------------------------------------------------------------------- outputs, CLI


def test_best_loss_loads_and_trains(baseline, tmp_path, capsys):
    path = baseline.out_dir / "best_loss.json"
    data = json.loads(path.read_text())
    assert data["kind"] == "taylorglo" and len(data["theta"]) == 8 and len(data["reevaluations"]) == 2
    assert isinstance(get_loss(f"taylorglo:{path}"), TaylorGLOLoss)
    # The best is the lowest mean fitness over the fresh seeds among the top-k of the search.
    reeval = pd.read_csv(baseline.out_dir / "reevaluation.csv")
    means = reeval.groupby("rank")["fitness"].mean()
    assert data["fitness"] == pytest.approx(means.min())
    assert set(reeval["seed"]).isdisjoint({r["seed"] for r in baseline.history})
    assert (
        main(
            [
                "train",
                "--dataset",
                "digits",
                "--loss",
                f"taylorglo:{path}",
                "--steps",
                "5",
                "--out",
                str(tmp_path / "train"),
            ]
        )
        == 0
    )
    assert "test accuracy" in capsys.readouterr().out


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err, err
    return err


def test_bad_configs_give_one_line_errors(tmp_path, capsys, baseline):
    out = ["--out", str(tmp_path / "x")]
    assert "popsize" in _one_line_error(capsys, ["evolve", "--popsize", "1", *out])
    assert "'strict'" in _one_line_error(capsys, ["evolve", "--invariant", "strict", *out])
    assert "eps" in _one_line_error(capsys, ["evolve", "--fitness", "fgsm:2", *out])
    assert "'pgdd:0.1'" in _one_line_error(capsys, ["evolve", "--fitness", "pgdd:0.1", *out])
    assert "'gpu'" in _one_line_error(capsys, ["evolve", "--backend", "gpu", *out])
    assert "ray-address" in _one_line_error(capsys, ["evolve", "--ray-address", "x:1", *out])
    assert "steps" in _one_line_error(capsys, ["evolve", "--steps", "many", *out])
    assert "not both" in _one_line_error(capsys, ["evolve", "--generations", "2", "--evaluations", "9", *out])
    assert "evaluations" in _one_line_error(capsys, ["evolve", "--evaluations", "0", *out])
    toml = tmp_path / "evo.toml"
    toml.write_text('dataset = "digits"\npopsze = 4\n')
    assert "'popsze'" in _one_line_error(capsys, ["evolve", "--config", str(toml), *out])
    toml.write_text('popsize = "eight"\n')
    assert "popsize" in _one_line_error(capsys, ["evolve", "--config", str(toml), *out])
    toml.write_text("popsize = [\n")
    assert "TOML" in _one_line_error(capsys, ["evolve", "--config", str(toml), *out])
    assert "does not exist" in _one_line_error(capsys, ["evolve", "--config", str(tmp_path / "no.toml"), *out])
    # An existing run is never overwritten, and a resume cannot change what the results depend on.
    run_dir = ["--out", str(baseline.out_dir)]
    assert "--resume" in _one_line_error(capsys, ["evolve", *CLI_SMALL, *run_dir])
    err = _one_line_error(capsys, ["evolve", *run_dir, "--resume", "--steps", "30"])
    assert "steps 30" in err and "20" in err
    for bad in ("mix:1.5:fgsm:0.1", "mix:0.5", "pgd:0.1:0", "clean:1", "fgsm:x"):
        with pytest.raises(ConfigError):
            parse_fitness(bad)


def test_toml_keys_mirror_flags_and_flags_win(tmp_path):
    from robust_glo.cli import build_parser
    from robust_glo.cli.evolve import resolve_config

    toml = tmp_path / "evo.toml"
    toml.write_text('dataset = "digits"\npopsize = 7\nreeval-seeds = 5\ninvariant = "exact"\nfitness = "fgsm:8/255"\n')
    args = build_parser().parse_args(["evolve", "--config", str(toml), "--popsize", "9", "--out", str(tmp_path)])
    config = resolve_config(args)
    assert (config.dataset, config.popsize, config.reeval_seeds, config.invariant) == ("digits", 9, 5, "exact")
    assert config.fitness_spec.eps == pytest.approx(8 / 255) and config.fitness_spec.attack == "fgsm"
    assert config.total_generations == config.generations == 10
    args = build_parser().parse_args(["evolve", "--config", str(toml), "--evaluations", "19", "--out", str(tmp_path)])
    assert resolve_config(args).total_generations == 3  # ceil(19 / 7)


def test_robust_fitness_uses_the_attack_on_logits():
    spec = parse_fitness("mix:0.25:pgd:0.1:5")
    assert (spec.attack, spec.eps, spec.weight, spec.pgd_steps) == ("pgd", 0.1, 0.25, 5)
    assert spec.combine(0.8, 0.4) == pytest.approx(1 - (0.75 * 0.8 + 0.25 * 0.4))
    problem = TaylorGLOProblem(
        dataset="digits", steps=40, fitness="fgsm:0.1", attack_samples=100, threads=1, invariant="off"
    )
    evaluation = problem.evaluate([0, 0, 0, 0, 0, 1, 0, 0], seed=0)  # f = x y: a loss with flat CE-gradients
    assert evaluation.status == "trained" and evaluation.robust_accuracy is not None
    assert evaluation.fitness == pytest.approx(1 - evaluation.robust_accuracy)
    # The attack is the harness's FGSM on cross-entropy, whatever the candidate's loss.
    from robust_glo.robustness import evaluate_model

    model = problem.build_model(0)
    fit(model, TaylorGLOLoss([0, 0, 0, 0, 0, 1, 0, 0]), problem.splits.train, steps=40, seed=0, progress=False)
    val = problem.splits.val.subset(100)
    table = evaluate_model(model, val.images, val.labels, attacks=["fgsm"], eps=[0.1], seed=0)
    assert evaluation.robust_accuracy == pytest.approx(
        float(table.loc[(table["attack"] == "fgsm") & (table["eps"] == 0.1), "accuracy"].iloc[0])
    )


def test_robust_fitness_run_records_robust_accuracy(tmp_path):
    config = EvolveConfig.create(
        out=str(tmp_path / "r"),
        **{
            **SMALL,
            "generations": 1,
            "popsize": 4,
            "steps": 10,
            "topk": 1,
            "reeval_seeds": 1,
            "fitness": "mix:0.5:fgsm:0.05",
            "attack_samples": 50,
        },
    )
    result = run_evolution(config)
    history = pd.read_csv(tmp_path / "r" / "history.csv")
    assert "robust_accuracy" in history.columns
    trained = history[history["status"] == "trained"]
    assert len(trained) and trained["robust_accuracy"].notna().all()
    assert np.allclose(trained["fitness"], 1 - (0.5 * trained["val_accuracy"] + 0.5 * trained["robust_accuracy"]))
    assert result.best["robust_accuracy"] is not None


# ---------------------------------------------------------------------------------------------- crash safety


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_uninterrupted(baseline, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "robust_glo", "evolve", *CLI_SMALL, "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    records = out / "evaluations.json"
    before = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                data = json.loads(records.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.02)
                continue
            second = [r for r in data["candidates"] if r["generation"] == 1]
            if any(r["status"] == "trained" for r in second) and len(second) < SMALL["popsize"]:
                os.kill(proc.pid, signal.SIGKILL)  # mid-generation, with finished work of this generation on disk
                proc.wait()
                before = json.loads(records.read_text())["candidates"]
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert before is not None, "the run finished or stalled before it could be killed mid-generation"
    assert proc.returncode == -signal.SIGKILL and not (out / "best_loss.json").exists()

    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ran_now = int(re.search(r"\((\d+) evaluations run now\)", resumed.stdout).group(1))
    not_rejected_before = sum(r["status"] != "rejected" for r in before)
    total = sum(r["status"] != "rejected" for r in baseline.history) + len(baseline.reevaluations)
    assert ran_now == total - not_rejected_before  # finished candidates were not trained again
    after = load_history(out)
    by_key = {(r["generation"], r["index"]): r for r in after}
    assert all(by_key[(r["generation"], r["index"])] == r for r in before)  # untouched, seconds included
    assert without_seconds(after) == without_seconds(baseline.history)
    best = json.loads((out / "best_loss.json").read_text())
    assert best["theta"] == baseline.best["theta"] and best["fitness"] == baseline.best["fitness"]


def test_resume_of_a_finished_run_does_nothing_and_can_extend(baseline, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(baseline.out_dir, out)
    config = EvolveConfig.create(out=str(out), **SMALL)
    with RunStore(out).lock(), pytest.raises(RobustGloError, match="another process"):
        run_evolution(config, resume=True)  # a second process never writes a run in progress
    again = run_evolution(config, resume=True)
    assert again.evaluated_now == 0 and again.best == baseline.best
    # The eval batch is an execution option: a finished evolution made with another one is still finished.
    other_batch = EvolveConfig.create(out=str(out), **SMALL, eval_batch_size=7)
    assert other_batch.recipe.eval_batch_size != config.recipe.eval_batch_size
    assert run_evolution(other_batch, resume=True).evaluated_now == 0
    longer = run_evolution(EvolveConfig.create(out=str(out), **{**SMALL, "generations": 3}), resume=True)
    assert without_seconds(longer.history[:12]) == without_seconds(baseline.history)
    assert len(longer.history) == 18 and longer.evaluated_now > 0


# ---------------------------------------------------------------------------------------------- backends


class CrashOnce(TaylorGLOProblem):
    """Kills the worker process on one chosen theta, every attempt (so Ray's retries run out)."""

    crash_theta: tuple = ()

    def evaluate(self, theta, seed):
        if tuple(theta) == self.crash_theta:
            os._exit(1)
        return super().evaluate(theta, seed)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # The test module's classes travel to the workers by value (the workers cannot import tests/).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_backend_matches_local_and_survives_a_dead_worker(ray_cluster, baseline, tmp_path):
    from robust_glo.evolution import RayBackend

    config = EvolveConfig.create(out=str(tmp_path / "ray"), **{**SMALL, "backend": "ray"})
    result = run_evolution(config)
    assert ray_cluster.is_initialized()  # a cluster we did not start is left running
    assert without_seconds(result.history) == without_seconds(baseline.history)
    assert result.best["theta"] == baseline.best["theta"] and result.best["fitness"] == baseline.best["fitness"]

    crash = EvolveConfig.create(
        out=str(tmp_path / "crash"),
        **{**SMALL, "generations": 1, "popsize": 4, "steps": 5, "topk": 1, "reeval_seeds": 1, "backend": "ray"},
    )
    problem = CrashOnce.from_config(crash)
    thetas = CMAES(popsize=4, seed=crash.seed).ask()
    victim = int(np.flatnonzero(problem.screen(thetas))[0])
    problem.crash_theta = tuple(float(v) for v in thetas[victim])
    backend = RayBackend(max_retries=1)
    result = run_evolution(crash, problem=problem, backend=backend)
    row = result.history[victim]
    assert row["status"] == "failed" and row["fitness"] == FAILED_FITNESS and "WorkerCrashedError" in row["message"]
    assert any(r["status"] == "trained" for r in result.history)  # the run went on


def test_batched_population_training_matches_sequential(digits):
    thetas = np.array([[0, 0, 0, 0, 0, 1, 0, 0], [0.1, 0.2, -1, 0.3, 0.1, 2, 0.2, -0.1], [1e30] * 8])
    model = create_model("digits-cnn", digits.info, seed=1)
    losses = [TaylorGLOLoss(t) for t in thetas]
    pop = train_population([model] * 3, losses, digits.train, steps=30, batch_size=64, seeds=[1] * 3)
    assert pop.status == ["ok", "ok", "diverged"] and "step 0" in pop.messages[2]
    accuracy = pop.accuracy(digits.val)
    for j in range(2):
        solo = create_model("digits-cnn", digits.info, seed=1)
        assert fit(solo, TaylorGLOLoss(thetas[j]), digits.train, steps=30, batch_size=64, seed=1).status == "ok"
        for name, p in solo.named_parameters():
            torch.testing.assert_close(pop.params[name][j], p.detach(), rtol=1e-4, atol=1e-5)
        member = pop.member(j, create_model("digits-cnn", digits.info, seed=1))
        assert (member(digits.val.images).argmax(1) == digits.val.labels).float().mean().item() == pytest.approx(
            accuracy[j]
        )


def test_batched_backend_runs_like_local(tmp_path, baseline):
    config = EvolveConfig.create(out=str(tmp_path / "b"), **{**SMALL, "backend": "batched"})
    result = run_evolution(config)
    assert [r["status"] for r in result.history] == [r["status"] for r in baseline.history]
    for a, b in zip(result.history, baseline.history):
        if a["status"] == "trained":
            assert abs(a["val_accuracy"] - b["val_accuracy"]) <= 0.03


def _digits_bn_dropout_model() -> torch.nn.Module:
    from torch import nn

    torch.manual_seed(0)  # the test owns this; layers draw their init from the global RNG
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),
    )
    model.train()
    with torch.no_grad():
        model(torch.rand(64, 1, 8, 8) * 3)  # running statistics unlike any batch's own
    return model


@pytest.mark.parametrize("fitness", ["fgsm:0.1", "pgd:0.1:3"])
def test_robust_fitness_evaluates_batchnorm_dropout_models_in_eval_mode(fitness):
    import copy

    problem = TaylorGLOProblem(
        dataset="digits",
        steps=1,
        fitness=fitness,
        attack_samples=120,
        threads=1,
        invariant="off",
        recipe=Recipe(eval_batch_size=50),
    )  # three attack batches
    model = _digits_bn_dropout_model()
    before = copy.deepcopy(model.state_dict())
    robust = problem.robust_accuracy(model, seed=0)
    assert model.training  # the caller's mode is restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # Reference: the attack on an eval-mode copy, by hand (FGSM) or an upper bound from FGSM (PGD).
    reference = copy.deepcopy(model).eval()
    val = problem.splits.val.subset(120)
    x = val.images.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(reference(x), val.labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    with torch.no_grad():
        clean_ok = reference(val.images).argmax(1) == val.labels
        adv = (val.images + 0.1 * grad.sign()).clamp(0, 1)
        fgsm_ok = (reference(adv).argmax(1) == val.labels) & clean_ok
    if fitness.startswith("fgsm"):
        assert robust == pytest.approx(float(fgsm_ok.float().mean()))
    else:
        assert robust <= float(clean_ok.float().mean())


def test_untrained_candidates_rank_last_and_by_what_went_wrong():
    from robust_glo.analysis import invariant_margin_batch
    from robust_glo.evolution.problem import FAILED_FITNESS, diverged_fitness, rejected_fitness

    problem = TaylorGLOProblem(dataset="digits", invariant="paper")
    thetas = np.random.default_rng(0).normal(0, 1.2, size=(400, 8))
    keep = problem.screen(thetas)
    violation = problem.violation(thetas)
    margin = invariant_margin_batch(thetas, 10, "paper")
    assert np.array_equal(keep, margin >= 0) and (violation[keep] == 0).all()
    assert np.allclose(violation[~keep], -margin[~keep])
    fitness = np.array([rejected_fitness(v) for v in violation[~keep]])
    assert ((fitness >= REJECTED_FITNESS) & (fitness < REJECTED_FITNESS + 1)).all()
    order = np.argsort(violation[~keep])
    assert (np.diff(fitness[order]) >= 0).all() and len(np.unique(fitness)) == len(fitness)  # no ties
    assert problem.violation([[float("nan")] * 8])[0] == np.inf and rejected_fitness(np.inf) == 5.0
    # trained (<= 1) < diverged (2, 2.5], later divergence better < failed (3) < rejected [4, 5)
    assert 1.0 < diverged_fitness(500) < diverged_fitness(3) < diverged_fitness(0) <= 2.5 < FAILED_FITNESS
    assert FAILED_FITNESS < rejected_fitness(0.0)


def test_reordering_tied_candidates_cannot_change_the_cmaes_state():
    def told(permutation: list[int]) -> CMAES:
        es = CMAES(popsize=8, seed=3)
        x = es.ask()
        tied = [1, 3, 5]
        x[tied] = x[[tied[i] for i in permutation]]
        es._pending = x.copy()  # as if ask() had returned the tied candidates in this order
        es.tell(x, [0.3, 4.0, 0.1, 4.0, 0.2, 4.0, 0.5, 0.6])
        return es

    a, b = told([0, 1, 2]), told([2, 0, 1])
    assert np.array_equal(a.mean, b.mean) and a.sigma == b.sigma
    assert np.array_equal(a._es.sm.C, b._es.sm.C)  # pycma alone weights tied candidates by position
    assert np.array_equal(a.ask(), b.ask())


def test_the_auto_backend_is_batched_on_cuda_one_thread_ray_tasks_on_a_multicore_cpu(monkeypatch):
    from robust_glo.benchmark.pipeline import resolve_benchmark_backend
    from robust_glo.evolution import BatchedBackend, LocalBackend, make_backend, resolve_backend

    for cores, expected in ((1, "local"), (2, "ray"), (16, "ray")):
        monkeypatch.setattr("robust_glo.utils.device.usable_cpus", lambda cores=cores: cores)
        assert resolve_backend(EvolveConfig(device="cpu")) == expected
        assert resolve_benchmark_backend("auto", "cpu") == expected
        assert resolve_benchmark_backend("auto", "cpu", population="on") == "local"
        assert resolve_backend(EvolveConfig(device="cpu", threads=2)) == "local"  # pinned threads: one process
        assert resolve_backend(EvolveConfig(device="cpu", backend="local")) == "local"
        assert resolve_benchmark_backend("local", "cpu") == "local"
    assert isinstance(make_backend(EvolveConfig(device="cpu", threads=1)), LocalBackend)
    monkeypatch.setattr("robust_glo.utils.device.resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr("robust_glo.utils.resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr("robust_glo.evolution.backends.resolve_device", lambda name: torch.device("cuda"))
    assert isinstance(make_backend(EvolveConfig(device="cuda")), BatchedBackend)
    assert isinstance(make_backend(EvolveConfig(device="cuda", backend="local")), LocalBackend)
    assert resolve_benchmark_backend("auto", "cuda") == "local"  # populations in this process


@pytest.mark.slow
def test_ray_backend_runs_successive_halving_like_local(ray_cluster, tmp_path):
    halving = {**SMALL, "steps": 90, "popsize": 9, "fidelity": "halving", "topk": 1, "reeval_seeds": 1}
    local = run_evolution(EvolveConfig.create(out=str(tmp_path / "local"), **{**halving, "backend": "local"}))
    remote = run_evolution(EvolveConfig.create(out=str(tmp_path / "ray"), **{**halving, "backend": "ray"}))
    assert without_seconds(remote.history) == without_seconds(local.history)
    assert {r["status"] for r in local.history} & {"pruned", "collapsed"}


def test_without_ray_installed_auto_runs_here_and_ray_asks_for_it_in_one_line(monkeypatch):
    # Ray is an optional extra: a fresh install without it must still evolve on a multi-core CPU.
    import sys

    from robust_glo.benchmark.pipeline import resolve_benchmark_backend
    from robust_glo.errors import ConfigError
    from robust_glo.evolution import resolve_backend
    from robust_glo.utils.ray_cluster import connect_ray, ray_installed

    monkeypatch.setattr("robust_glo.utils.device.usable_cpus", lambda: 2)
    assert resolve_backend(EvolveConfig(device="cpu")) == ("ray" if ray_installed() else "local")
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when Ray is not installed
    assert not ray_installed()
    assert resolve_backend(EvolveConfig(device="cpu")) == "local"
    assert resolve_benchmark_backend("auto", "cpu") == "local"
    with pytest.raises(ConfigError, match=r"needs Ray, which is not installed: .*--backend local$"):
        connect_ray()
