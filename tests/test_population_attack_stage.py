"""The benchmark's attack stage with `--population on`: the unfinished pieces attacked as populations
(`robust_glo.comparison.population`) write what the per-network path writes, resume piece by piece, and a
population the engine refuses falls back to the per-network path.

The networks are trained once (per network) and copied, so that every arm attacks the very same weights.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import robust_glo.comparison.population as population_stage
import robust_glo.robustness.population as population_pkg
from robust_glo.benchmark import load_suite, run_benchmark
from robust_glo.comparison import layout
from robust_glo.data import load_dataset
from robust_glo.errors import ConfigError
from robust_glo.models import create_model
from robust_glo.robustness import run_evaluation

# Two losses (so `fgsm:loss=train` follows two different training losses, member by member) on two seeds;
# ported families (FGSM, PGD, APGD-CE in a cascade, L-inf Square) beside the per-member one.
SUITE = """
[suite]
dataset = "digits"
device = "cpu"
[train]
losses = ["ce", "label_smoothing:0.1"]
seeds = 2
steps = 15
[attack]
attacks = ["fgsm", "fgsm:loss=train", "pgd:steps=3", "apgd-ce:steps=5:cascade=true", "square:n_queries=20:cascade=true"]
eps = [0, 0.1]
n = 40
[attack.diagnostics]
n = 10
[analyze]
enabled = false
"""

TIMINGS = ("seconds", "clean_seconds", "attack_seconds")


def _pieces(root: Path, stage: str) -> dict[str, int]:
    return json.loads((root / "stages.json").read_text())["stages"][stage]["pieces"]


def _table(root: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(root / name, dtype={"bits": str, "images": str})
    return frame.drop(columns=[c for c in frame.columns if c in TIMINGS or c.endswith("_seconds")])


def _attack(suite, out: Path, population: str, log=None, **options) -> None:
    run_benchmark(
        suite,
        out,
        stages=["attack"],
        backend="local",
        progress=False,
        log=log or (lambda _: None),
        population=population,
        **options,
    )


def _assert_same_tables(a: Path, b: Path) -> None:
    for name in ("outcomes.csv", "results.csv", "flags.csv", "diagnostics.csv"):
        pd.testing.assert_frame_equal(_table(a, name), _table(b, name), check_exact=True, obj=name)


def _eval_metas(root: Path) -> list[Path]:
    return sorted((root / "compare" / "runs").glob(f"*/seed*/{layout.EVAL_META}"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("pop-attack")
    path = base / "suite.toml"
    path.write_text(textwrap.dedent(SUITE))
    suite = load_suite(path)
    out = base / "trained"
    run_benchmark(suite, out, stages=["train"], backend="local", progress=False, log=lambda _: None, population="off")
    seq = base / "seq"
    shutil.copytree(out, seq)
    _attack(suite, seq, "off")
    return suite, out, seq


def _copy(trained_dir: Path, to: Path) -> Path:
    shutil.copytree(trained_dir, to)
    return to


def test_population_attacks_equal_the_per_network_ones(trained, tmp_path):
    suite, out, seq = trained
    pop = _copy(out, tmp_path / "pop")
    lines: list[str] = []
    _attack(suite, pop, "on", lines.append, population_size=3)  # two populations: 3 networks, then 1
    assert any("3 networks attacked as a population" in line for line in lines)
    assert any("1 network attacked as a population" in line for line in lines)
    assert any("member by member inside it: fgsm:loss=train" in line for line in lines)
    assert _pieces(pop, "attack") == {"done": 4, "reused": 0, "failed": 0}
    _assert_same_tables(seq, pop)
    for meta in _eval_metas(pop):
        record = json.loads(meta.read_text())
        twin = json.loads((seq / meta.relative_to(pop)).read_text())
        assert record["key"] == twin["key"]  # the same evaluation key: either path's files are reused by the other
        assert record["attacked_as"] in ("population of 3", "population of 1")
        assert record["population_forward"] == "loop"  # the CPU's forward judged the outcomes
        assert record["attacked_member_by_member"] == ["fgsm:loss=train"]
        assert (meta.parent / "card.json").is_file()
    # The transfer examples were crafted on the ce networks, and the transfer rows are the per-network ones.
    assert sorted(p.name for p in (pop / "compare" / "transfer").glob("*.csv")) == ["seed0.csv", "seed1.csv"]
    # A re-run reuses every piece, with population on or off.
    _attack(suite, pop, "on")
    assert _pieces(pop, "attack") == {"done": 0, "reused": 4, "failed": 0}
    _attack(suite, pop, "off")
    assert _pieces(pop, "attack") == {"done": 0, "reused": 4, "failed": 0}


def test_resume_after_one_piece_attacks_only_the_rest(trained, tmp_path):
    suite, out, seq = trained
    pop = _copy(seq, tmp_path / "pop")  # every piece evaluated (per network) ...
    metas = _eval_metas(pop)
    kept = metas[0]
    for meta in metas[1:]:  # ... then all but one lost, as after a crash
        meta.unlink()
    stamp = kept.stat().st_mtime_ns
    lines: list[str] = []
    _attack(suite, pop, "on", lines.append)
    assert any("3 networks attacked as a population" in line for line in lines)
    assert _pieces(pop, "attack") == {"done": 3, "reused": 1, "failed": 0}
    assert kept.stat().st_mtime_ns == stamp
    _assert_same_tables(seq, pop)


def test_a_population_the_engine_refuses_falls_back_to_the_per_network_path(trained, tmp_path, monkeypatch):
    suite, out, seq = trained

    def refuse(*args, **kwargs):
        raise ConfigError("refused for the test")

    monkeypatch.setattr(population_stage, "evaluate_population", refuse)  # where the stage looks it up
    pop = _copy(out, tmp_path / "pop")
    lines: list[str] = []
    _attack(suite, pop, "on", lines.append)
    assert any("4 networks attacked one by one instead of as a population: refused for the test" in x for x in lines)
    assert _pieces(pop, "attack") == {"done": 4, "reused": 0, "failed": 0}
    _assert_same_tables(seq, pop)
    assert all("attacked_as" not in json.loads(meta.read_text()) for meta in _eval_metas(pop))


def test_population_attacks_need_the_local_backend(trained, tmp_path):
    suite, _, _ = trained
    with pytest.raises(ConfigError, match="populations train and attack in this process"):
        run_benchmark(suite, tmp_path / "x", stages=["attack"], backend="ray", progress=False, population="on")


def test_fgsm_on_the_training_loss_follows_each_members_own_loss():
    # evaluate_population(train_loss=[...]): one training loss per member, as run_evaluation per network.
    splits = load_dataset("digits", test_size=30)
    x, y = splits.test.images, splits.test.labels
    nets = [create_model("digits-cnn", splits.info, seed=s) for s in (0, 1)]
    losses = ["ce", "label_smoothing:0.3"]
    pop = population_pkg.evaluate_population(nets, x, y, ["fgsm:loss=train"], [0.2], seed=3, train_loss=losses)
    assert pop.ported == {"fgsm:loss=train": False}
    for net, loss, ev in zip(nets, losses, pop.members):
        alone = run_evaluation(net, x, y, ["fgsm:loss=train"], [0.2], seed=3, train_loss=loss)
        assert bool((ev.robust["fgsm:loss=train"][0.2] == alone.robust["fgsm:loss=train"][0.2]).all())
    with pytest.raises(ConfigError, match="needs the network's training loss"):
        population_pkg.evaluate_population(nets, x, y, ["fgsm:loss=train"], [0.2])
    with pytest.raises(ConfigError, match=r"train_loss: give one loss or one per member \(2\), got 3"):
        population_pkg.evaluate_population(nets, x, y, ["fgsm:loss=train"], [0.2], train_loss=["ce"] * 3)
