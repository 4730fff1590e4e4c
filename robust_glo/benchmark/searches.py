"""Several CMA-ES searches per evolution: which loss the benchmark trains, and how much the searches agree.

A suite's `[evolve] searches = K` runs K independent searches of one evolution (seeds seed, seed + 1, ...,
each in `evolve/<NAME>/search<k>/`, a complete evolution run directory). One search is one draw of a
random process, so a statement such as "evolving for robustness helps" needs several. The benchmark
trains the loss of the search whose re-evaluated fitness (the mean over its fresh re-evaluation seeds,
best_loss.json `fitness`) is lowest, and records every search's best loss next to it:

    evolve/<NAME>/best_loss.json   the chosen search's best_loss.json, with `search` and `searches` added
    evolve/<NAME>/searches.csv     one row per search: seed, fitness (and its sd over re-evaluation seeds),
                                   validation and robust accuracy, effective target p* and its label-
                                   smoothing alpha, theta0..theta7, usable (it found a loss), chosen
    evolve/<NAME>/searches.json    the agreement: the range of p* and of fitness across searches, and the
                                   median pairwise distance between the best thetas

The searches' re-evaluation seeds differ (each search draws its own), so the choice compares fitnesses
measured on different fresh seeds: unbiased, with the spread that `fitness_std` shows.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robust_glo.benchmark import engines
from robust_glo.errors import ConfigError
from robust_glo.losses.taylorglo import N_PARAMS
from robust_glo.utils import atomic_write_json, atomic_write_text, read_json

SEARCH_COLUMNS = (
    ["search", "seed", "fitness", "fitness_std", "val_accuracy", "robust_accuracy", "p_star", "alpha_equivalent"]
    + [f"theta{k}" for k in range(N_PARAMS)]
    + ["usable", "chosen"]
)


def search_dir(evolve_dir: Path, index: int) -> Path:
    """The run directory of search `index` of the evolution in `evolve_dir`."""
    return evolve_dir / f"search{index}"


def choose_search(evolve_dir: Path, n_searches: int, n_classes: int) -> dict[str, Any]:
    """Read the best_loss.json of every search of the evolution in `evolve_dir`, write searches.csv,
    searches.json and the chosen search's best_loss.json into `evolve_dir`, and return the agreement
    summary. A search without a best loss (it trained nothing usable) is left out of the choice;
    `ConfigError` when no search has one."""
    rows = []
    for k in range(n_searches):
        path = search_dir(evolve_dir, k) / "best_loss.json"
        if not path.is_file():  # the search trained no usable candidate: listed, never chosen
            seed = read_json(search_dir(evolve_dir, k) / "config.json", expect=dict).get("seed")
            rows.append({"search": k, "seed": seed, "fitness": math.nan, "usable": False, "best": None})
            continue
        best = read_json(path, expect=dict)
        theta = [float(t) for t in best["theta"]]
        analysis = engines.analyze("taylorglo:[" + ",".join(repr(t) for t in theta) + "]", n_classes)
        rows.append(
            {
                "search": k,
                "seed": best.get("seed"),
                "fitness": float(best["fitness"]),
                "fitness_std": best.get("fitness_std"),
                "val_accuracy": best.get("val_accuracy"),
                "robust_accuracy": best.get("robust_accuracy"),
                "p_star": analysis.get("effective_target"),
                "alpha_equivalent": analysis.get("label_smoothing_equivalent"),
                **{f"theta{i}": t for i, t in enumerate(theta)},
                "usable": True,
                "best": best,
            }
        )
    usable = [r for r in rows if r["usable"]]
    if not usable:
        raise ConfigError(
            f"none of the {n_searches} searches in {evolve_dir} found a usable loss; raise [evolve] generations "
            "or popsize, or check the training settings"
        )
    chosen = min(usable, key=lambda r: (r["fitness"], r["search"]))
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "best"} for r in rows])
    frame = frame.reindex(columns=SEARCH_COLUMNS)
    frame["chosen"] = frame["search"] == chosen["search"]
    atomic_write_text(evolve_dir / "searches.csv", frame.to_csv(index=False))
    summary = agreement(frame[frame["usable"].astype(bool)]) | {"empty": int((~frame["usable"].astype(bool)).sum())}
    atomic_write_json(evolve_dir / "searches.json", summary | {"chosen": int(chosen["search"])})
    atomic_write_json(
        evolve_dir / "best_loss.json",
        {**chosen["best"], "search": int(chosen["search"]), "searches": n_searches},
    )
    return summary


def agreement(frame: pd.DataFrame) -> dict[str, Any]:
    """How much the usable searches' best losses agree: their number, the range of p* and of the
    re-evaluated fitness, and the median Euclidean distance between two searches' best thetas `(8,)`."""
    thetas = frame[[f"theta{k}" for k in range(N_PARAMS)]].to_numpy(dtype=float)
    distances = [float(np.linalg.norm(a - b)) for a, b in itertools.combinations(thetas, 2)]
    p_star = frame["p_star"].dropna().astype(float)
    return {
        "searches": int(len(frame)),
        "fitness_min": float(frame["fitness"].min()),
        "fitness_max": float(frame["fitness"].max()),
        "p_star_min": float(p_star.min()) if len(p_star) else None,
        "p_star_max": float(p_star.max()) if len(p_star) else None,
        "theta_distance_median": float(np.median(distances)) if distances else math.nan,
    }
