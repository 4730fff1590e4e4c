"""The search, visible: optimization history, parallel coordinates and parameter importance of the trained
candidates, and evolutions with several CMA-ES searches (search<k>/ run directories, searches.csv/json)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from scipy import stats
from synthetic_results import write_synthetic

from robust_glo.reporting import build_report
from robust_glo.reporting.figures import evolution_figure, search_space_figure
from robust_glo.reporting.inputs import load_inputs
from robust_glo.reporting.tables import parameter_importance, trained_candidates

STATUSES = ["trained", "rejected", "trained", "diverged", "trained", "pruned", "trained", "collapsed"]
BANDS = {"rejected": 4.3, "diverged": 2.2, "pruned": 1.2, "collapsed": 1.7}  # rank bands, not fitnesses


def _history(seed: int, generations: int = 3) -> pd.DataFrame:
    """A deterministic history: theta3 drives fitness (rho > 0), the rest is noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for gen in range(generations):
        for idx, status in enumerate(STATUSES):
            theta = rng.normal(size=8)
            fit = 0.5 + 0.1 * theta[3] - 0.05 * gen + 0.01 * rng.normal() if status == "trained" else BANDS[status]
            rows.append(
                {
                    "generation": gen,
                    "index": idx,
                    **{f"theta{k}": float(t) for k, t in enumerate(theta)},
                    "status": status,
                    "fitness": fit,
                    "val_accuracy": 1 - fit if status == "trained" else float("nan"),
                    "seconds": 2.0,
                    "steps": 30 if status == "trained" else 0,
                }
            )
    return pd.DataFrame(rows)


def _two_searches() -> pd.DataFrame:
    return pd.concat([_history(1).assign(search=0), _history(2).assign(search=1)], ignore_index=True)


def _offsets(scatter) -> np.ndarray:
    return np.asarray(scatter.get_offsets(), dtype=float)


def test_the_history_plot_carries_every_trained_fitness_and_the_running_best():
    history = _two_searches()
    ax = evolution_figure(history, {0: 7, 1: 8}).axes[0]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    lines = [line for line in ax.get_lines() if line.get_label().endswith("best so far")]
    assert len(scatters) == 2 and len(lines) == 2
    for k, (scatter, line) in enumerate(zip(scatters, lines)):
        mine = history[history["search"] == k].sort_values(["generation", "index"])
        trained = mine[mine["status"] == "trained"]["fitness"].to_numpy()
        assert _offsets(scatter)[:, 1].tolist() == pytest.approx(
            trained.tolist()
        )  # every trained fitness, nothing else
        assert np.asarray(line.get_ydata()).tolist() == pytest.approx(np.minimum.accumulate(trained).tolist())
        assert f"search {k} (seed {7 + k})" in scatter.get_label()
        order = np.flatnonzero((mine["status"] == "trained").to_numpy())  # position in order of evaluation
        assert _offsets(scatter)[:, 0].tolist() == pytest.approx(order.tolist())
    assert max(_offsets(s)[:, 1].max() for s in scatters) < 1  # no rank band (> 1) is plotted


def test_parallel_coordinates_colour_every_trained_candidate_by_fitness():
    history = _history(3)
    importance = parameter_importance(history)
    fig = search_space_figure(history, importance)
    parallel, bars = fig.axes[0], fig.axes[1]
    (lines,) = [c for c in parallel.collections if isinstance(c, LineCollection)]
    trained = trained_candidates(history)
    assert len(lines.get_segments()) == len(trained) == STATUSES.count("trained") * 3
    assert sorted(np.asarray(lines.get_array()).tolist()) == pytest.approx(sorted(trained["fitness"]))
    segment = {round(float(s[3, 1]), 9): s[:, 1] for s in lines.get_segments()}
    for row in trained.itertuples():  # each line runs through the candidate's 8 parameters
        assert segment[round(row.theta3, 9)].tolist() == pytest.approx([getattr(row, f"theta{k}") for k in range(8)])
    # importance: |Spearman rho| of each parameter with fitness, by scipy, largest first
    for row in importance.itertuples():
        expected = stats.spearmanr(trained[row.parameter], trained["fitness"])
        assert row.rho == pytest.approx(expected.statistic) and row.p == pytest.approx(expected.pvalue)
    assert importance.iloc[0]["parameter"] == "theta3" and importance.iloc[0]["rho"] > 0.8
    widths = [patch.get_width() for patch in bars.patches]
    assert widths == pytest.approx(importance["abs_rho"].tolist())


def _searches_layout(evolve, k=3, empty=(1,)):
    """Turn a plain evolve/ folder into one with k searches (search `empty` found no usable loss)."""
    for name in ("history.csv", "reevaluation.csv", "best_loss.json"):
        (evolve / name).unlink(missing_ok=True)
    rows = []
    for s in range(k):
        run = evolve / f"search{s}"
        run.mkdir(parents=True)
        history = _history(10 + s)
        if s in empty:
            history["status"] = "rejected"
            history["fitness"] = 4.5
        history.to_csv(run / "history.csv", index=False)
        (run / "config.json").write_text(json.dumps({"seed": 40 + s}))
        best = trained_candidates(history).sort_values("fitness").head(1)
        usable = s not in empty
        theta = best[[f"theta{j}" for j in range(8)]].iloc[0].tolist() if usable else [None] * 8
        if usable:
            (run / "best_loss.json").write_text(json.dumps({"kind": "taylorglo", "theta": theta, "seed": 40 + s}))
            pd.DataFrame(
                [
                    {"rank": 0, "generation": 2, "index": 0, "seed_index": 0, "seed": 900 + s}
                    | {f"theta{j}": t for j, t in enumerate(theta)}
                    | {"status": "trained", "fitness": 0.3 + 0.01 * s, "search_fitness": 0.29 + 0.01 * s}
                ]
            ).to_csv(run / "reevaluation.csv", index=False)
        rows.append(
            {
                "search": s,
                "seed": 40 + s,
                "fitness": 0.3 + 0.01 * s if usable else None,
                "fitness_std": 0.004 if usable else None,
                "val_accuracy": 0.7 - 0.01 * s if usable else None,
                "robust_accuracy": None,
                "p_star": 0.8 - 0.05 * s if usable else None,
                "alpha_equivalent": 0.2 + 0.05 * s if usable else None,
                **{f"theta{j}": t for j, t in enumerate(theta)},
                "usable": usable,
                "chosen": s == 0,
            }
        )
    pd.DataFrame(rows).to_csv(evolve / "searches.csv", index=False)
    (evolve / "searches.json").write_text(
        json.dumps(
            {
                "searches": k - len(empty),
                "fitness_min": 0.3,
                "fitness_max": 0.32,
                "p_star_min": 0.7,
                "p_star_max": 0.8,
                "theta_distance_median": 1.25,
                "empty": len(empty),
                "chosen": 0,
            }
        )
    )
    first = json.loads((evolve / "search0" / "best_loss.json").read_text())
    (evolve / "best_loss.json").write_text(json.dumps(first | {"search": 0, "searches": k}))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def searches_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("searches")
    write_synthetic(root)
    table = _searches_layout(root / "evolve")
    return root, table, build_report(root)


def test_several_searches_are_read_as_one_evolution(searches_report):
    root, _, _ = searches_report
    (evo,) = load_inputs(root).evolutions  # search0..2 are its searches, not evolutions of their own
    assert evo.name == "" and [s.index for s in evo.searches] == [0, 1, 2]
    assert evo.searches[2].folder == "evolve/search2" and evo.searches[2].config == {"seed": 42}
    assert evo.history["search"].tolist() == [k for k in range(3) for _ in range(len(STATUSES) * 3)]
    assert evo.best_loss["search"] == 0 and evo.agreement["theta_distance_median"] == 1.25


def test_the_evolution_section_shows_every_search(searches_report):
    root, table, paths = searches_report
    md = paths.markdown.read_text()
    assert md.count("\n## Evolution") == 1 and "## Evolution: search" not in md
    evo = md.split("\n## Evolution\n", 1)[1].split("\n## ", 1)[0]
    assert "3 independent CMA-ES searches (seeds 40, 41, 42" in evo
    assert "trains the loss of the search whose best loss has the lowest re-evaluated fitness: search 0." in evo
    # the searches table: one row per search from searches.csv
    rows = [line for line in evo.splitlines() if re.match(r"\| \d \| 4\d \| (\d\.\d{4} ±|no usable)", line)]
    assert len(rows) == 3
    first = table.iloc[0]
    theta = "[" + ", ".join(f"{first[f'theta{j}']:.2f}" for j in range(8)) + "]"
    assert rows[0] == f"| 0 | 40 | 0.3000 ± 0.0040 | 70.00 | — | 0.8000 | 0.2000 | {theta} | yes |"
    assert rows[1].startswith("| 1 | 41 | no usable loss |") and rows[1].endswith("| — |  |")
    assert rows[2].startswith("| 2 | 42 | 0.3200 ± 0.0040 | 68.00 |")
    # the agreement, in words
    assert "2 of 3 found a usable loss (1 trained no candidate to the end and is listed, never chosen)" in evo
    assert "fitness ranges from 0.3000 to 0.3200" in evo and "p* from 0.700 to 0.800" in evo
    assert "(label-smoothing α 0.200 to 0.300)" in evo and "median distance between two searches' best θ is 1.25" in evo
    # per search counts, and the chosen search's re-evaluation
    assert "| 1 | 41 | 3 | 24 | 0 | 24 |" in evo
    assert "evolve/search0/reevaluation.csv, the chosen search" in evo
    trained = STATUSES.count("trained") * 3 * 2
    assert f"Only the {trained} candidates trained to the full budget (status `trained`) are plotted" in evo
    for name in ("evolution.png", "evolution-parameters.png"):
        assert (root / "figures" / name).is_file()


def test_named_evolutions_with_searches_and_publishing(tmp_path):
    src = tmp_path / "bench"
    write_synthetic(src)
    named = src / "evolve" / "robust"
    named.mkdir()
    for name in ("history.csv", "reevaluation.csv", "best_loss.json"):
        shutil.copy(src / "evolve" / name, named / name)
    other = src / "evolve" / "accuracy"
    _searches_layout(other, k=2, empty=())
    inputs = load_inputs(src)
    assert [(e.name, len(e.searches)) for e in inputs.evolutions] == [("", 0), ("accuracy", 2), ("robust", 0)]
    pub = tmp_path / "pub"
    paths = build_report(src, pub)
    for name in ("searches.csv", "searches.json", "best_loss.json", "search1/history.csv", "search1/config.json"):
        assert (pub / "evolve" / "accuracy" / name).is_file(), name
    md = paths.markdown.read_text()
    assert "## Evolution: accuracy" in md and "## Evolution: robust" in md
    assert "2 independent CMA-ES searches (seeds 40, 41" in md
    assert (pub / "figures" / "evolution-accuracy-parameters.png").is_file()


def test_searches_under_the_clean_constraint_show_the_objective_and_the_seeds_that_met_it():
    from robust_glo.reporting.tables import constraint_record, searches_table

    met = {"clean_margin": 0.01, "reevaluations": [{"fitness": 0.145, "objective": 0.29}] * 2}
    # the second seed fell below cross-entropy's accuracy minus the margin: 0.5 + 0.5 x shortfall
    half = {
        "clean_margin": 0.01,
        "reevaluations": [{"fitness": 0.14, "objective": 0.28}, {"fitness": 0.51, "objective": 0.3}],
    }
    assert constraint_record(met) == (pytest.approx(0.29), 2, 2)
    assert constraint_record(half) == (pytest.approx(0.29), 1, 2)
    assert constraint_record({"reevaluations": met["reevaluations"]}) is None  # no constraint: no columns
    frame = pd.DataFrame(
        [
            {"search": s, "seed": s, "fitness": 0.145, "fitness_std": 0.0, "val_accuracy": 0.87, "usable": True}
            | {f"theta{j}": 0.1 for j in range(8)}
            for s in (0, 1)
        ]
    )
    table = searches_table(frame, {0: met, 1: half})
    assert table["objective"].tolist() == ["0.2900", "0.2900"]
    assert table["clean constraint"].tolist() == ["met on 2 of 2 seeds", "met on 1 of 2 seeds"]
    assert "objective" not in searches_table(frame, {0: None, 1: None}).columns


def test_the_fitness_is_explained_with_its_proxy_attack_and_the_constraint():
    from robust_glo.reporting.build import _fitness_meaning

    assert _fitness_meaning("clean", {}) == "1 − validation accuracy"
    text = _fitness_meaning("mix:0.5:pgd:0.05:10", {"attack_samples": 200, "clean_margin": 0.01})
    assert "w = 0.5" in text and "PGD-10 on cross-entropy at ε 0.05 on the first 200 validation images" in text
    assert "0.5 × objective" in text and "a fitness of at most 0.5 therefore met the constraint" in text
    assert "constraint" not in _fitness_meaning("pgd:0.05", {})


def test_an_alpha_above_1_says_no_label_smoothing_reaches_that_target():
    from robust_glo.reporting.tables import alpha_text

    assert alpha_text(None) == "—" and alpha_text(0.7597) == "0.7597" and alpha_text(1.0) == "1.0000"
    assert alpha_text(10 / 9, 3) == "1.111 (p* below 1/K: no label smoothing trains toward it)"


def test_the_history_caption_reads_the_constraints_bands_only_when_there_is_one(tmp_path):
    root = tmp_path / "bench"
    write_synthetic(root)
    _searches_layout(root / "evolve")
    suite = json.loads((root / "suite.json").read_text())
    md = build_report(root).markdown.read_text()
    assert "a fitness of at most 0.5 met it" not in md
    suite.setdefault("evolve", {})["clean_margin"] = 0.01
    (root / "suite.json").write_text(json.dumps(suite))
    md = build_report(root).markdown.read_text()
    assert "one just above 0.5 is a candidate that missed it (0.5 + 0.5 × its shortfall)" in md


def test_the_p_star_range_says_how_many_searches_have_none(searches_report):
    import dataclasses

    from robust_glo.reporting.build import _agreement_text

    root, _, _ = searches_report
    (evo,) = load_inputs(root).evolutions
    table = evo.searches_table.copy()
    table.loc[table["search"] == 2, ["p_star", "alpha_equivalent"]] = np.nan  # a usable search pursuing p -> 1
    text = _agreement_text(dataclasses.replace(evo, searches_table=table))
    assert (
        "p* from 0.700 to 0.800 (label-smoothing α" in text and ", and 1 of the 2 pursues p → 1 (no p* below 1)" in text
    )
    table["p_star"] = np.nan
    none = dataclasses.replace(
        evo, searches_table=table, agreement=evo.agreement | {"p_star_min": None, "p_star_max": None}
    )
    assert "none of their best losses has an effective target p* below 1" in _agreement_text(none)
    # the unusable search (no loss at all) is not counted as one without p*
    assert "pursue" not in _agreement_text(evo)


def _evolution(name: str, thetas_per_search: list[np.ndarray], fitness: list[np.ndarray] | None = None):
    from robust_glo.reporting.inputs import EvolutionInputs, SearchInputs

    searches = []
    for s, thetas in enumerate(thetas_per_search):  # thetas (generations, popsize, 8)
        rows = []
        for g, gen in enumerate(thetas):
            for i, theta in enumerate(gen):
                row = {"generation": g, "index": i, "status": "trained"}
                row |= {f"theta{k}": float(t) for k, t in enumerate(theta)}
                if fitness is not None:
                    row |= {"fitness": float(fitness[s][g, i]), "objective": 0.3}
                rows.append(row)
        best = {"theta": [float(t) for t in thetas[-1][0]], "search": {"generation": len(thetas) - 1, "index": 0}}
        searches.append(SearchInputs(s, f"evolve/{name}/search{s}", pd.DataFrame(rows), None, best, {"seed": s}))
    history = pd.concat([x.history for x in searches])
    return EvolutionInputs(name, f"evolve/{name}", history, best_loss={"search": 0}, searches=searches)


def test_two_evolutions_that_sampled_the_same_candidates_are_reported():
    from robust_glo.reporting.build import _shared_sampling_text
    from robust_glo.reporting.tables import constraint_share, shared_sampling

    rng = np.random.default_rng(0)
    common = [rng.normal(size=(4, 3, 8)) for _ in range(2)]
    apart = common[1].copy()
    apart[2:] += 1.0  # search 1 parts from generation 2 on
    # rank keys with objective 0.3: 0.15 met the clean floor, the others (above 0.5) missed it
    fitness = [np.array([[0.15, 0.6, 0.7]] * 4), np.array([[0.6, 0.9, 0.55]] * 4)]
    accuracy = _evolution("accuracy", common)
    robust = _evolution("robust", [common[0], apart], fitness)
    shared = shared_sampling(robust, accuracy)
    assert [(s.search, s.same, s.generations, s.first_apart, s.same_choice) for s in shared] == [
        (0, 4, 4, None, True),
        (1, 2, 4, 2, False),
    ]
    assert constraint_share(robust.searches[0].history) == (4, 12)  # rank key <= 0.5: the floor was met
    assert constraint_share(accuracy.searches[0].history) is None  # no constraint
    text = _shared_sampling_text(robust, accuracy)
    assert "sampled the very same candidates in search 0 in all 4 generations (and both chose the same θ)" in text
    assert "and search 1 in generations 0–1 of 4." in text
    assert "Of its 24 candidates trained to the end, 4 met the clean-accuracy constraint" in text
    # the chosen loss (search 0, generation 3) was sampled while both evolutions sampled alike
    assert shared[0].chosen_shared and not shared[1].chosen_shared
    assert "The loss this evolution chose (search 0) was sampled in generation 3, which both evolutions" in text
    # different seeds, or nothing sampled alike: nothing to say
    other = _evolution("other", [rng.normal(size=(4, 3, 8)) for _ in range(2)])
    assert _shared_sampling_text(other, accuracy) == ""


def test_a_published_report_keeps_every_searchs_rungs(tmp_path):
    from robust_glo.reporting.inputs import copy_inputs

    src = tmp_path / "src"
    write_synthetic(src)
    _searches_layout(src / "evolve")
    (src / "evolve" / "search1" / "rungs.csv").write_text("generation,index,rung\n0,0,0\n")
    copy_inputs(src, tmp_path / "pub")
    assert (tmp_path / "pub" / "evolve" / "search1" / "rungs.csv").is_file()
