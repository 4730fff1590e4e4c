"""evaluations/perf/quick_profile.py reads a benchmark's own files: stage walls, seconds per family, per piece."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_profile():
    spec = importlib.util.spec_from_file_location("quick_profile", ROOT / "evaluations/perf/quick_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _piece(root: Path, loss: str, seed: int, attack_s: float, diag_s: float) -> None:
    run = root / "compare" / "runs" / loss / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"seconds": 5.0, "samples_per_second": 1000.0}))
    (run / "evaluation.json").write_text(
        json.dumps({"seconds": attack_s + diag_s, "attack_seconds": attack_s, "diagnostics_seconds": diag_s})
    )
    rows = ["attack,eps,seconds", f"pgd,0.1,{attack_s / 4}", f"square:cascade=true,0.1,{3 * attack_s / 4}"]
    (run / "evaluation.csv").write_text("\n".join(rows) + "\n")


def test_profile_sums_families_and_ranks_pieces(tmp_path, quick_profile):
    (tmp_path / "stages.json").write_text(json.dumps({"stages": {"attack": {"last_seconds": 50.0}}}))
    _piece(tmp_path, "ce", 0, 40.0, 10.0)
    _piece(tmp_path, "baikal", 0, 80.0, 20.0)
    prof = quick_profile.profile(tmp_path)
    attack = prof["attack"]
    assert attack["attack_seconds"] == 120.0 and attack["diagnostics_seconds"] == 30.0
    assert attack["per_family_seconds"] == {"square": 90.0, "pgd": 30.0}
    assert list(attack["piece_seconds"].items()) == [("baikal/seed0", 100.0), ("ce/seed0", 50.0)]
    assert prof["train"]["networks"] == 2 and prof["train"]["seconds"] == 10.0


def _search(folder: Path, seconds: list[float], reeval: float) -> None:
    folder.mkdir(parents=True)
    candidates = [{"status": "trained", "seconds": s} for s in seconds] + [{"status": "rejected", "seconds": 0.0}]
    (folder / "evaluations.json").write_text(
        json.dumps({"candidates": candidates, "reevaluations": [{"seconds": reeval}]})
    )
    (folder / "generations.csv").write_text(f"generation,seconds\n0,{sum(seconds)}\n")


def test_profile_adds_up_every_search_of_named_evolutions(tmp_path, quick_profile):
    _search(tmp_path / "evolve" / "accuracy" / "search0", [3.0, 4.0], 2.0)
    _search(tmp_path / "evolve" / "robust" / "search1", [5.0], 1.0)
    evolve = quick_profile.profile(tmp_path)["evolve"]
    assert set(evolve["searches"]) == {"accuracy/search0", "robust/search1"}
    assert evolve["candidates"] == 5 and evolve["trained"] == 3 and evolve["rejected"] == 2
    assert evolve["candidate_seconds"] == 12.0 and evolve["reevaluation_seconds"] == 3.0
    assert evolve["generation_wall_seconds"] == [7.0, 5.0]
    # a plain [evolve] table: one evolution, no per-search breakdown
    _search(tmp_path / "plain" / "evolve", [2.0], 1.0)
    plain = quick_profile.profile(tmp_path / "plain")["evolve"]
    assert plain["candidates"] == 2 and "searches" not in plain


def test_a_folder_that_is_not_a_benchmark_is_a_one_line_error(tmp_path, quick_profile, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["quick_profile.py", "--dir", str(tmp_path / "missing")])
    with pytest.raises(SystemExit) as stop:
        quick_profile.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "is not a benchmark folder (no stages.json)" in err


def test_a_published_folder_without_per_network_files_is_a_one_line_error(tmp_path, quick_profile, monkeypatch, capsys):
    (tmp_path / "stages.json").write_text(json.dumps({"stages": {}}))
    monkeypatch.setattr("sys.argv", ["quick_profile.py", "--dir", str(tmp_path)])
    with pytest.raises(SystemExit) as stop:
        quick_profile.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "a published report folder keeps no per-network" in err
