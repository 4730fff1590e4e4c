"""The grid's executors (`robust_glo.benchmark.executors`): each returns one typed outcome per piece,
computed on the first run and reused on the next, a diverging piece failed with its reason while the others
are computed; the sequential and population executors write the same results files; a Ray piece that
crashes is reported with its reason and fails the stage after the others finished."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import robust_glo.benchmark.executors as executors
from robust_glo.benchmark import engines
from robust_glo.benchmark.executors import (
    Piece,
    PopulationExecutor,
    RayExecutor,
    SequentialExecutor,
    raise_crashed,
)
from robust_glo.comparison import CompareConfig, layout
from robust_glo.errors import RobustGloError

# A loss that is finite on fresh weights and blows up after the first update: its pieces diverge.
LOSSES = """
import torch.nn.functional as F


def huge(logits, targets):
    return 1e30 * F.cross_entropy(logits, targets)
"""

TIMINGS = ("seconds", "clean_seconds", "attack_seconds")


@pytest.fixture(scope="module")
def diverging(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("losses") / "losses.py"
    path.write_text(textwrap.dedent(LOSSES))
    return f"{path}:huge"


def _config(losses: list[str]) -> CompareConfig:
    return CompareConfig(
        losses=losses, dataset="digits", seeds=[0, 1], steps=15, attacks=["fgsm"], eps=[0, 0.1], test_size=40
    )


def _plan(config: CompareConfig) -> list[Piece]:
    return [
        Piece(loss, seed, f"{layout.loss_slug(loss)}/seed{seed}") for loss in config.losses for seed in config.seeds
    ]


def _statuses(outcomes) -> dict[str, str]:
    return {o.piece.label: o.status for o in outcomes}


def _make(kind: str, config: CompareConfig, out: Path):
    if kind == "sequential":
        return SequentialExecutor(config, out)
    if kind == "population":
        return PopulationExecutor(config, out, max_members=3)  # two populations: 3 networks, then 1
    return RayExecutor(config, out, ray_options={"num_cpus": 2, "cpus_per_task": 1})


@pytest.mark.parametrize("kind", ["sequential", "population", pytest.param("ray", marks=pytest.mark.slow)])
def test_each_executor_computes_then_reuses_and_reports_a_diverged_piece(kind, diverging, tmp_path):
    if kind == "ray":
        ray = pytest.importorskip("ray")
    config = _config(["ce", diverging])
    plan = _plan(config)
    good = [p.label for p in plan if p.spec == "ce"]
    bad = [p.label for p in plan if p.spec == diverging]
    lines: list[str] = []
    try:
        trained = _make(kind, config, tmp_path).train(plan, lines.append)
        assert [o.piece for o in trained] == plan  # one outcome per piece, in the plan's order
        assert _statuses(trained) == {**dict.fromkeys(good, "computed"), **dict.fromkeys(bad, "failed")}
        for o in trained:
            assert o.line in lines and o.metrics["status"] == ("ok" if o.status == "computed" else "diverged")
            assert not o.crashed
        for o in trained:
            if o.status == "failed":
                assert o.message.startswith("diverged (") and "non-finite" in o.message
            else:
                assert o.message == "" and o.seconds > 0
        again = _make(kind, config, tmp_path).train(plan, lines.append)
        assert set(_statuses(again).values()) == {"reused"}  # a diverged run is finished too

        attacked = _make(kind, config, tmp_path).attack(plan, lines.append)
        assert _statuses(attacked) == {**dict.fromkeys(good, "computed"), **dict.fromkeys(bad, "failed")}
        for o in attacked:
            assert o.files is not None  # a diverged piece has its placeholder rows
            if o.status == "failed":
                assert "diverged" in o.message and "no evaluation" in o.message
            else:  # computed in this call: its line never says it was reused
                assert "reused training and evaluation" not in o.line
        attacked = _make(kind, config, tmp_path).attack(plan, lines.append)
        assert _statuses(attacked) == {**dict.fromkeys(good, "reused"), **dict.fromkeys(bad, "failed")}
        assert all("reused training and evaluation" in o.line for o in attacked if o.status == "reused")
    finally:
        if kind == "ray":
            ray.shutdown()


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "compare"
    config = _config(["ce", "label_smoothing:0.1"])
    SequentialExecutor(config, out).train(_plan(config), lambda _: None)
    return out


def _table(root: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(root / name, dtype={"bits": str, "images": str})
    return frame.drop(columns=[c for c in frame.columns if c in TIMINGS or c.endswith("_seconds")])


def test_sequential_and_population_executors_write_the_same_results(trained_once, tmp_path):
    config = _config(["ce", "label_smoothing:0.1"])
    plan = _plan(config)
    outs = {}
    for kind in ("sequential", "population"):
        out = tmp_path / kind
        shutil.copytree(trained_once, out)  # the very same weights for both
        executor = _make(kind, config, out)
        outcomes = executor.attack(plan, lambda _: None)
        assert set(_statuses(outcomes).values()) == {"computed"}
        engines.gather_attacks(config, out, outcomes, log=lambda _: None)
        outs[kind] = out
    for name in ("results.csv", "outcomes.csv", "flags.csv", "diagnostics.csv"):
        pd.testing.assert_frame_equal(
            _table(outs["sequential"], name), _table(outs["population"], name), check_exact=True, obj=name
        )
    # Training: the population's run directories are the sequential ones (same config, same budget).
    trained = tmp_path / "pop-train"
    PopulationExecutor(config, trained).train(plan, lambda _: None)
    for piece in plan:
        run, twin = (
            layout.run_dir(trained, piece.spec, piece.seed),
            layout.run_dir(trained_once, piece.spec, piece.seed),
        )
        assert (run / "config.json").read_text() == (twin / "config.json").read_text()
        assert json.loads((run / "metrics.json").read_text())["steps"] == 15


def test_a_crashed_ray_piece_is_failed_with_its_reason_and_fails_the_stage(monkeypatch, tmp_path):
    config = _config(["ce"])
    plan = _plan(config)
    crash = {("ce", 1): "OSError: disk full"}
    calls = []

    def fake(config, out, *, evaluate, echo, progress, **options):
        calls.append(options)
        return [], crash

    monkeypatch.setattr(executors, "run_pieces_ray", fake)
    outcomes = RayExecutor(config, tmp_path, ray_options={"num_cpus": 2}).train(plan, lambda _: None)
    assert calls == [{"num_cpus": 2}]
    assert [(o.status, o.crashed, o.message) for o in outcomes] == [
        ("computed", False, ""),
        ("failed", True, "OSError: disk full"),
    ]
    with pytest.raises(RobustGloError, match=r"pieces failed on Ray .*: ce seed 1: OSError: disk full$"):
        raise_crashed(outcomes)
