"""The training half of evaluations/invariant_study.py: grouping by the two rules, and the training study."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from robust_glo.analysis import invariant_holds

_PATH = Path(__file__).resolve().parents[1] / "evaluations" / "invariant_study.py"
_spec = importlib.util.spec_from_file_location("invariant_study", _PATH)
study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study)

GROUP_NAMES = [name for name, _, _ in study.GROUPS]


def _theta(t2: float = 0.0, t5: float = 0.0) -> list[float]:
    return [0.0, 0.0, t2, 0.0, 0.0, t5, 0.0, 0.0]


# Worked by hand from docs/method.md with n = 10: with only t2 and t5 set, c1 = t2 and cx = t5, so the paper
# rule reads t5 >= 8 * t2 and the exact rule t5 > 0.
HAND = {
    "accepted_both": _theta(t5=1.0),  # 1 >= 0 and 1 > 0
    "rejected_paper_only": _theta(t2=1.0, t5=1.0),  # 1 <  8 but 1 > 0
    "rejected_exact_only": _theta(t2=-1.0, t5=-1.0),  # -1 >= -8 but -1 <= 0
    "rejected_both": _theta(t5=-1.0),  # -1 <  0 and -1 <= 0
}


def test_pick_groups_on_hand_worked_thetas():
    # Rows: 3 x accepted, 1 x paper-only, 2 x exact-only, 0 x rejected-both, interleaved.
    order = [
        "accepted_both",
        "rejected_exact_only",
        "accepted_both",
        "rejected_paper_only",
        "rejected_exact_only",
        "accepted_both",
    ]
    thetas = np.array([HAND[name] for name in order])
    picks = study.pick_groups(thetas, 10, k=2)
    assert list(picks) == GROUP_NAMES
    assert picks["accepted_both"].tolist() == [0, 2]  # the first two, not the third
    assert picks["rejected_paper_only"].tolist() == [3]  # a smaller group gives what it has
    assert picks["rejected_exact_only"].tolist() == [1, 4]
    assert picks["rejected_both"].tolist() == []
    assert study.pick_groups(np.array([HAND["rejected_both"]]), 10, k=3)["rejected_both"].tolist() == [0]


def test_theta_spec_round_trips():
    from robust_glo.losses import get_loss

    theta = np.random.default_rng(1).normal(0, 1.2, 8)
    assert get_loss(study.theta_spec(theta)).theta.tolist() == theta.tolist()


def test_train_study_groups_and_labels(digits):
    thetas = np.random.default_rng(0).normal(0.0, 1.2, size=(200, 8))
    result = study.train_study(thetas, digits, 2, steps=20, well=0.9, progress=False)

    assert [g["group"] for g in result["groups"]] == GROUP_NAMES
    assert [g["n"] for g in result["groups"]] == [2, 2, 2, 2]
    assert len(result["runs"]) == 8
    ref = result["reference"]["val_accuracy"]
    assert 0.2 < ref <= 1.0  # cross-entropy learns something in 20 steps
    assert result["threshold"] == pytest.approx(0.9 * ref)

    labels = {name: (paper, exact) for name, paper, exact in study.GROUPS}
    for run in result["runs"]:
        paper, exact = labels[run["group"]]
        theta = thetas[run["index"]]
        assert run["theta"] == theta.tolist()
        # The scalar rule, not the batch path that made the groups.
        assert invariant_holds(theta, 10, "paper") is paper
        assert invariant_holds(theta, 10, "exact") is exact
        assert run["status"] in ("ok", "diverged")
        assert run["trained_well"] == (run["status"] == "ok" and run["val_accuracy"] >= result["threshold"])

    for group in result["groups"]:
        runs = [r for r in result["runs"] if r["group"] == group["group"]]
        assert group["trained_well"] == pytest.approx(np.mean([r["trained_well"] for r in runs]))
        accs = [r["val_accuracy"] for r in runs if r["status"] == "ok"]
        if accs:
            assert group["median_val_acc"] == pytest.approx(np.median(accs))

    shares = {g["group"]: g["population_share"] for g in result["groups"]}
    assert sum(shares.values()) == pytest.approx(1.0)
    rules = {r["rule"]: r for r in result["rules"]}
    assert rules["paper"]["rejects"] == pytest.approx(np.mean([not invariant_holds(t, 10, "paper") for t in thetas]))
    assert rules["exact"]["rejects"] == pytest.approx(np.mean([not invariant_holds(t, 10, "exact") for t in thetas]))
