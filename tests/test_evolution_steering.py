"""evaluations/evolution_steering.py on a tiny synthetic pair of evolutions."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("evolution_steering", ROOT / "evaluations/evolution_steering.py")
steering = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(steering)


def _search(folder: Path, seed: int, thetas: np.ndarray, rungs: pd.DataFrame | None) -> None:
    folder.mkdir(parents=True)
    rows = [
        {"generation": g, "index": i, "status": "trained", "fitness": 0.3} | {f"theta{k}": t[k] for k in range(8)}
        for g, gen in enumerate(thetas)
        for i, t in enumerate(gen)
    ]
    pd.DataFrame(rows).to_csv(folder / "history.csv", index=False)
    (folder / "config.json").write_text(json.dumps({"seed": seed}))
    (folder / "best_loss.json").write_text(json.dumps({"theta": thetas[-1][0].tolist()}))
    if rungs is not None:
        rungs.to_csv(folder / "rungs.csv", index=False)


def test_it_counts_shared_generations_and_the_constraint_per_rung(tmp_path, capsys):
    rng = np.random.default_rng(0)
    thetas = rng.normal(size=(3, 4, 8))
    apart = thetas.copy()
    apart[1:] += 1
    clean = np.linspace(0.5, 0.9, 6)
    rungs = pd.DataFrame(
        {
            "rung": [0, 0, 0, 1, 1, 1],
            "status": "trained",
            "val_accuracy": clean,
            "robust_accuracy": clean / 2,
            "objective": 1 - 0.75 * clean,
        }
    )
    # the engine's rank key: 0.5 x objective where the clean floor was met, 0.5 + the shortfall where not
    met = np.array([False, True, True, False, False, True])
    rungs["fitness"] = np.where(met, 0.5 * rungs["objective"], [0.6, 0, 0, 0.7, 0.6, 0])
    _search(tmp_path / "evolve/accuracy/search0", 0, thetas, None)
    _search(tmp_path / "evolve/robust/search0", 0, apart, rungs)
    assert steering.main(["--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "search 0 (seed 0): 1 of 3 generations identical, apart from generation 1; different thetas" in out
    assert "rung 0: 3 trained, 2 met the clean floor; rho(clean, objective) -1.000, rho(clean, robust) +1.000" in out
    assert "rung 1: 3 trained, 1 met the clean floor" in out


def test_a_folder_without_searches_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        steering.main(["--dir", str(tmp_path)])
    assert stop.value.code == 2 and "has no evolve folder" in capsys.readouterr().err
