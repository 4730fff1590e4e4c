"""Several CMA-ES searches per evolution: each its own run directory and seed, the best one's loss trained,
every one's reported with how much they agree."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest

from robust_glo.benchmark import load_suite, run_benchmark
from robust_glo.benchmark.pipeline import Benchmark, evolved_spec
from robust_glo.errors import ConfigError

SUITE = """
[suite]
name = "searches"
dataset = "digits"
device = "cpu"

[evolve]
generations = 1
popsize = 4
steps = 15
topk = 1
reeval_seeds = 1
seed = 7
searches = {searches}
progress = false

[train]
losses = ["ce", "evolved"]
seeds = 1
steps = 15

[attack]
attacks = ["fgsm"]
eps = [0, 0.1]
n = 40
"""


def _suite(tmp_path, searches=3):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SUITE.format(searches=searches)))
    return load_suite(path)


def test_each_search_runs_with_its_own_seed_and_the_best_is_trained(tmp_path):
    suite = _suite(tmp_path)
    out = tmp_path / "out"
    lines: list[str] = []
    run_benchmark(suite, out, stages=["evolve"], backend="local", progress=False, log=lines.append)
    evolve = out / "evolve"
    seeds = [json.loads((evolve / f"search{k}" / "config.json").read_text())["seed"] for k in range(3)]
    assert seeds == [7, 8, 9]
    table = pd.read_csv(evolve / "searches.csv")
    assert table["search"].tolist() == [0, 1, 2] and table["seed"].tolist() == [7, 8, 9]
    assert table["chosen"].sum() == 1 and table["usable"].sum() >= 1
    chosen = table[table["chosen"]].iloc[0]
    assert chosen["fitness"] == table["fitness"].min()  # a search that found nothing has no fitness
    best = json.loads((evolve / "best_loss.json").read_text())
    own = json.loads((evolve / f"search{int(chosen['search'])}" / "best_loss.json").read_text())
    assert best["theta"] == own["theta"] and best["search"] == chosen["search"] and best["searches"] == 3
    # one re-evaluation seed (reeval_seeds = 1): one value has no spread, so no standard deviation is stated
    assert own["fitness_std"] is None and table["fitness_std"].isna().all()
    assert [chosen[f"theta{k}"] for k in range(8)] == pytest.approx(own["theta"])
    summary = json.loads((evolve / "searches.json").read_text())
    assert summary["searches"] + summary["empty"] == 3 and summary["chosen"] == int(chosen["search"])
    assert summary["fitness_min"] <= summary["fitness_max"]
    assert any("3 searches" in line for line in lines)
    # the `evolved` arm is the chosen search's loss
    assert Benchmark(suite, out).resolved_losses()[1] == evolved_spec(evolve / "best_loss.json")
    assert json.loads((out / "environment.json").read_text())["seeds"]["evolve"] == [7, 8, 9]  # every search's
    again: list[str] = []
    run_benchmark(suite, out, stages=["evolve"], backend="local", progress=False, log=again.append)
    stages = json.loads((out / "stages.json").read_text())["stages"]["evolve"]["pieces"]
    assert stages["reused"] == 3 and stages["done"] == 0


def test_one_search_keeps_the_plain_layout(tmp_path):
    suite = _suite(tmp_path, searches=1)
    assert "searches" not in suite.evolutions[""]
    out = tmp_path / "out"
    run_benchmark(suite, out, stages=["evolve"], backend="local", progress=False, log=lambda _: None)
    assert (out / "evolve" / "history.csv").is_file() and not (out / "evolve" / "searches.csv").exists()


@pytest.mark.parametrize("value", ["0", "2.5", "true", '"3"', "21"])
def test_a_bad_number_of_searches_is_a_one_line_error(tmp_path, value):
    with pytest.raises(ConfigError, match=r"searches must be an integer from 1 to 20"):
        _suite(tmp_path, searches=value)
