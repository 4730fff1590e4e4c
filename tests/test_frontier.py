"""The label-smoothing frontier: envelope, interpolation, and margins with bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from robust_glo.errors import ConfigError
from robust_glo.robustness.bootstrap import HierarchicalBootstrap
from robust_glo.robustness.frontier import (
    FrontierArms,
    envelope,
    frontier_at,
    frontier_margins,
    frontier_points,
    smoothing_alpha,
)
from robust_glo.robustness.outcomes import pack_bits

N = 600
# loss -> (clean accuracy, robust accuracy at eps 0.1) of the synthetic networks
TRUTH = {
    "ce": (0.90, 0.10),
    "label_smoothing:0.2": (0.88, 0.20),
    "label_smoothing:0.6": (0.85, 0.30),
    "label_smoothing:0.9": (0.80, 0.25),  # dominated by 0.6: not on the frontier
    "beats": (0.87, 0.45),
    "like_ls": (0.865, 0.265),
    "worse_clean": (0.70, 0.60),
    "left_of_front": (0.82, 0.50),  # left of the frontier's lowest-clean point (0.6), right of the arm 0.9
    "better_clean": (0.95, 0.10),
}


def _outcomes(seeds=(0, 1, 2, 3, 4), rng_seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(rng_seed)
    # Image difficulty shared by the networks of one seed (as on real data, where the same test images are
    # hard for every loss), plus a little network-specific noise.
    shared = {seed: rng.random(N) for seed in seeds}
    rows = []
    for loss, (pc, pr) in TRUTH.items():
        for seed in seeds:
            u = np.clip(shared[seed] + rng.normal(0, 0.03, N), 0, 1)
            clean = u < pc
            robust = u < pr  # robust inputs are a subset of the clean ones
            rows += _rows(loss, seed, {("clean", 0.0): clean, ("worst", 0.1): robust})
    return pd.DataFrame(rows)


def _rows(loss: str, seed: int, cells: dict[tuple[str, float], np.ndarray]) -> list[dict]:
    """One outcomes row per (attack, eps) of `cells`, each with its per-image correctness bits `(N,)`."""
    return [
        {"loss": loss, "seed": seed, "dataset": "synthetic", "model": "m", "attack": attack, "eps": eps}
        | {"n": len(bits), "correct": int(bits.sum()), "images": "img", "bits": pack_bits(bits)}
        for (attack, eps), bits in cells.items()
    ]


@pytest.fixture(scope="module")
def boot():
    return HierarchicalBootstrap(_outcomes(), n_boot=1000, seed=0)


def test_the_smoothing_arms_of_a_study():
    assert smoothing_alpha("ce") == 0.0 and smoothing_alpha("label_smoothing:0.76") == 0.76
    assert smoothing_alpha("label_smoothing") == 0.1 and smoothing_alpha("baikal") is None
    arms = FrontierArms.split(list(TRUTH))
    assert set(arms.smoothing) == {"ce", "label_smoothing:0.2", "label_smoothing:0.6", "label_smoothing:0.9"}


def test_the_envelope_keeps_the_pareto_points_and_interpolates_between_them():
    clean = np.array([0.90, 0.88, 0.85, 0.80])
    robust = np.array([0.10, 0.20, 0.30, 0.25])
    env_c, env_r = envelope(clean, robust)
    assert env_c.tolist() == [0.85, 0.88, 0.90] and env_r.tolist() == [0.30, 0.20, 0.10]
    assert frontier_at(0.865, env_c, env_r) == (pytest.approx(0.25), "inside")
    assert frontier_at(0.95, env_c, env_r) == (0.10, "above-range")  # the highest-clean point: conservative
    value, where = frontier_at(0.70, env_c, env_r)
    assert math.isnan(value) and where == "below-range"
    # Within the arms' clean range (from 0.80, the dominated arm's) but left of the envelope: flat at the
    # lowest-clean vertex's robust accuracy, which that arm reaches with more clean accuracy.
    assert frontier_at(0.82, env_c, env_r, 0.80) == (0.30, "inside")
    assert frontier_at(0.80, env_c, env_r, 0.80) == (0.30, "inside")
    value, where = frontier_at(0.79, env_c, env_r, 0.80)
    assert math.isnan(value) and where == "below-range"


def test_margins_place_each_loss_against_the_frontier(boot):
    table = frontier_margins(boot, list(TRUTH), [("worst", 0.1)]).set_index("loss")
    assert set(table.index) == {"beats", "like_ls", "worse_clean", "better_clean", "left_of_front"}
    beats = table.loc["beats"]
    assert beats["position"] == "inside" and beats["margin"] > 0.15
    assert beats["margin_ci_low"] > 0 and bool(beats["beats"]) and not bool(beats["below"])
    like = table.loc["like_ls"]
    assert like["margin_ci_low"] < 0 < like["margin_ci_high"] and not bool(like["beats"])
    worse = table.loc["worse_clean"]  # far more robust, but at a clean accuracy the frontier never reached
    assert worse["position"] == "below-range" and math.isnan(worse["p_value"]) and not bool(worse["beats"])
    assert table.loc["better_clean", "position"] == "above-range"
    left = table.loc["left_of_front"]  # placed against label smoothing 0.6 (0.85, 0.30), which it beats
    assert left["position"] == "inside" and left["frontier"] == pytest.approx(0.30, abs=0.03)
    assert left["margin_ci_low"] > 0 and bool(left["beats"])
    # the observed margin is robust minus the frontier built from the observed label-smoothing points
    points = frontier_points(boot, FrontierArms.split(list(TRUTH)), "worst", 0.1).set_index("loss")
    env_c, env_r = envelope(points["clean"].to_numpy(), points["robust"].to_numpy())
    front, _ = frontier_at(beats["clean"], env_c, env_r)
    assert beats["margin"] == pytest.approx(beats["robust"] - front)
    assert not points.loc["label_smoothing:0.9", "pareto"] and points.loc["label_smoothing:0.6", "pareto"]


def test_the_margins_are_corrected_across_losses_and_reproducible(boot):
    a = frontier_margins(boot, list(TRUTH), [("worst", 0.1)])
    b = frontier_margins(HierarchicalBootstrap(_outcomes(), n_boot=1000, seed=0), list(TRUTH), [("worst", 0.1)])
    pd.testing.assert_frame_equal(a, b)
    tested = a.dropna(subset=["p_value"])
    assert (tested["p_adjusted"] >= tested["p_value"] - 1e-15).all()


def test_fewer_than_two_smoothing_arms_is_an_error(boot):
    with pytest.raises(ConfigError, match="at least two label-smoothing arms"):
        frontier_margins(boot, ["ce", "beats"], [("worst", 0.1)])


def test_the_envelope_is_the_upper_concave_hull_of_the_pareto_points():
    # (0.88, 0.16) is a Pareto point but lies below the line from (0.85, 0.30) to (0.90, 0.10) (0.18 there):
    # joining the Pareto points would dip to it and credit a loss at 0.88 with beating the dip.
    clean = np.array([0.90, 0.88, 0.85, 0.80])
    robust = np.array([0.10, 0.16, 0.30, 0.25])
    env_c, env_r = envelope(clean, robust)
    assert env_c.tolist() == [0.85, 0.90] and env_r.tolist() == [0.30, 0.10]
    assert frontier_at(0.88, env_c, env_r)[0] == pytest.approx(0.18)
    # collinear middle points add nothing; a single arm is its own frontier
    env_c, env_r = envelope(np.array([0.8, 0.85, 0.9]), np.array([0.3, 0.2, 0.1]))
    assert env_c.tolist() == [0.8, 0.9]
    env_c, env_r = envelope(np.array([0.9]), np.array([0.1]))
    assert env_c.tolist() == [0.9] and env_r.tolist() == [0.1]


def _floored_outcomes(robust_rate: dict[str, float], n: int = 60) -> pd.DataFrame:
    """Three seeds per loss; clean accuracies differ, robust accuracy is the given share of the images on
    every seed (0: the accuracy floor, where the bootstrap has no spread)."""
    clean_rate = {"ce": 0.9, "label_smoothing:0.5": 0.8, "other": 0.85}
    rows = []
    for loss in clean_rate:
        for seed in (0, 1, 2):
            clean = np.arange(n) < round(clean_rate[loss] * n) - seed
            robust = np.arange(n) < round(robust_rate[loss] * n)
            rows += _rows(loss, seed, {("clean", 0.0): clean, ("worst", 0.3): robust})
    return pd.DataFrame(rows)


def test_a_margin_at_the_accuracy_floor_is_widened_to_clopper_pearson_not_zero_width():
    # Every network keeps no image at this budget: the bootstrap sees no spread, but 0 of 60 images is
    # compatible with up to ~6% robust accuracy, for the loss and for the frontier alike.
    floor = {"ce": 0.0, "label_smoothing:0.5": 0.0, "other": 0.0}
    boot = HierarchicalBootstrap(_floored_outcomes(floor), n_boot=200, seed=0)
    row = frontier_margins(boot, list(floor), [("worst", 0.3)]).iloc[0]
    assert row["margin"] == 0.0 and row["p_value"] == 1.0
    upper = 1 - 0.025 ** (1 / 60)  # Clopper-Pearson's upper bound for 0 of 60
    assert row["margin_ci_high"] == pytest.approx(upper, abs=1e-9)
    assert row["margin_ci_low"] == pytest.approx(-upper, abs=1e-9)
    # Away from the floor nothing is widened beyond the bootstrap's own interval.
    spread = {"ce": 0.3, "label_smoothing:0.5": 0.4, "other": 0.35}
    boot = HierarchicalBootstrap(_floored_outcomes(spread), n_boot=200, seed=0)
    assert boot.exact_slack("other", {"attack": "worst", "eps": 0.3}) == (0.0, 0.0)


def test_below_needs_an_arm_that_dominates_the_loss():
    # "chord" lies below the straight line between label smoothing 0.2 (0.88, 0.20) and 0.6 (0.85, 0.30)
    # but neither arm beats it on both axes: its margin may be negative, never "below".
    truth = {k: v for k, v in TRUTH.items() if k.startswith("label_smoothing") or k == "ce"}
    truth |= {"chord": (0.875, 0.205), "dominated": (0.84, 0.15)}
    saved = dict(TRUTH)
    TRUTH.clear()
    TRUTH.update(truth)
    try:
        boot = HierarchicalBootstrap(_outcomes(), n_boot=500, seed=0)
    finally:
        TRUTH.clear()
        TRUTH.update(saved)
    table = frontier_margins(boot, list(truth), [("worst", 0.1)]).set_index("loss")
    chord = table.loc["chord"]
    assert chord["margin"] < 0 and not bool(chord["dominated"]) and not bool(chord["below"])
    low = table.loc["dominated"]  # label smoothing 0.6 (0.85, 0.30) beats it on both axes
    assert bool(low["dominated"]) and bool(low["below"]) and low["margin_se"] > 0


def test_the_sensitivity_margin_joins_the_measured_arms_without_the_hull():
    clean = np.array([0.92, 0.90, 0.86])
    robust = np.array([0.001, 0.02, 0.19])  # 0.90 lies below the chord 0.86 -> 0.92: off the hull, on the Pareto set
    hull_c, _ = envelope(clean, robust)
    par_c, par_r = envelope(clean, robust, hull=False)
    assert hull_c.tolist() == [0.86, 0.92] and par_c.tolist() == [0.86, 0.90, 0.92]
    assert frontier_at(0.91, par_c, par_r)[0] == pytest.approx(0.0105)


def test_every_margin_also_states_its_distance_to_the_arms_line(boot):
    table = frontier_margins(boot, list(TRUTH), [("worst", 0.1)]).set_index("loss")
    placed = table[table["position"] != "below-range"]
    # the hull lies on or above the arms joined directly, so the margin to the line is at least the margin
    assert (placed["margin_arms"] >= placed["margin"] - 1e-12).all()
    assert table.loc["worse_clean", "margin_arms"] != table.loc["worse_clean", "margin_arms"]  # NaN: not placed
