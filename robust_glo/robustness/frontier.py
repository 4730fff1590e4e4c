"""The label-smoothing frontier: does a loss give more robustness than label smoothing, tuned, gives at the
same clean accuracy?

Label smoothing trades clean accuracy for (apparent) robustness as its strength alpha grows, and a loss
that trains toward a softer target (its effective target p* < 1, docs/method.md) may be label smoothing in
disguise. So the question for any other loss is not "is it more robust than cross-entropy?" but "does it
lie above what label smoothing reaches at its clean accuracy?". Label smoothing at several strengths (and
cross-entropy, alpha 0) gives points (clean accuracy, robust accuracy) per budget; their upper envelope is
the frontier, and a loss's *margin* is its robust accuracy minus the frontier's at the loss's own clean
accuracy.

The frontier between measured strengths: the points that no other point beats on both axes (the Pareto
set: higher clean and higher robust accuracy are both better), sorted by clean accuracy, reduced to their
upper concave hull (a Pareto point below the line between its neighbours is dropped) and joined by
straight lines. The hull is the conservative choice for a claim that a loss beats the frontier: joining
the Pareto points directly would dip below a trade-off that bulges between two measured strengths and
credit a loss with beating the dip (the counterpart: a loss is shown below the frontier somewhat more
readily). A loss whose clean accuracy lies above every frontier point is compared with the point of
highest clean accuracy (conservative for a claim that it beats the frontier, since along a trade-off the
frontier can only fall as clean accuracy rises). Left of the frontier's lowest-clean point but within the
arms' clean range, the frontier is flat at that point's robust accuracy: every arm measured there lies
below it (that is why they are off the frontier), and that point gives its robust accuracy with more clean
accuracy, so a loss there must beat it to beat label smoothing, and falls below label smoothing if it is
beaten on both axes. A loss whose clean accuracy lies below every arm's cannot be placed (label smoothing
is not measured there, and extrapolating it would flatter the loss): its margin is reported with
`position = "below-range"` and never counts.

Uncertainty: every replicate of the seeds-and-images bootstrap (`HierarchicalBootstrap`, paired across
losses on seeds and images) rebuilds the frontier from that replicate's label-smoothing points and takes
the loss's margin on the same replicate, so the interval covers the noise of the frontier, of the loss and
of the images at once. p is two-sided, referred to Student's t with S - 1 degrees of freedom (S the fewest
seeds of any arm involved): the seed part of the variance is at most all of it, so this is the
conservative end of the Satterthwaite range the pairwise comparisons use (docs/statistics.md), and the
interval is stretched about the margin by the same t / z factor. p is corrected across the losses and
budgets placed.
Selection bias: the envelope is a maximum over arms measured with noise, so it sits above the true
trade-off by about the noise of its top arms; that makes "beats" harder (conservative) and a negative
margin easier. So "below label smoothing" also needs a measured arm that dominates the loss (at least its
clean accuracy and more robust accuracy): a network label smoothing actually gave, not a chord or a flat
continuation that a lucky arm lifted.
No library builds this frontier, hence the code here (numpy's `interp` does the interpolation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from robust_glo.errors import ConfigError
from robust_glo.robustness.bootstrap import HierarchicalBootstrap, replicate_test
from robust_glo.robustness.statistics import adjust_pvalues

LABEL_SMOOTHING = "label_smoothing"
PLACED_SHARE = 0.9  # the share of bootstrap replicates that must place a loss for it to get an interval
POSITIONS = ("inside", "above-range", "below-range")
FRONTIER_COLUMNS = [
    "loss",
    "attack",
    "eps",
    "clean",
    "robust",
    "frontier",
    "margin",
    "margin_ci_low",
    "margin_ci_high",
    "p_value",
    "p_adjusted",
    "position",
    "beats",
    "below",
    "margin_se",
    "margin_df",
    "dominated",
    "under",
    "margin_arms",
]


def smoothing_alpha(loss: str) -> float | None:
    """The label-smoothing strength a loss spec names: `ce` is 0, `label_smoothing:A` is A; None otherwise."""
    text = str(loss).strip()
    if text == "ce":
        return 0.0
    name, _, arg = text.partition(":")
    if name != LABEL_SMOOTHING:
        return None
    try:
        return float(arg) if arg else 0.1
    except ValueError:
        return None


def envelope(clean: np.ndarray, robust: np.ndarray, *, hull: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The frontier's vertices from the points (clean, robust) `(M,)` each, sorted by clean accuracy ascending
    (robust then descends): the Pareto points (a point is dropped if another is at least as good on both
    axes and better on one), then their upper concave hull (a Pareto point below the straight line between
    its neighbours is dropped too). The hull never lies below the Pareto points joined by straight lines, so
    where label smoothing's trade-off bulges between measured strengths a loss is not credited with beating
    a chord that the trade-off itself rises above. `hull=False`: the Pareto points alone (the measured
    arms joined directly: the sensitivity reading, never the basis of a claim)."""
    order = np.lexsort((-robust, -clean))  # clean descending, ties: higher robust first
    keep, best = [], -math.inf
    for i in order:
        if robust[i] > best:
            keep.append(i)
            best = robust[i]
    if not hull:
        pareto = keep[::-1]
        return clean[pareto], robust[pareto]
    upper: list[int] = []
    for i in keep[::-1]:  # clean ascending: Andrew's monotone chain, upper part
        while len(upper) >= 2:
            o, a = upper[-2], upper[-1]
            cross = (clean[a] - clean[o]) * (robust[i] - robust[o]) - (robust[a] - robust[o]) * (clean[i] - clean[o])
            if cross < 0:  # a lies above the chord o -> i: keep it
                break
            upper.pop()
        upper.append(i)
    return clean[upper], robust[upper]


def frontier_at(
    c: float, env_clean: np.ndarray, env_robust: np.ndarray, lowest: float | None = None
) -> tuple[float, str]:
    """The frontier's robust accuracy at clean accuracy `c` and where `c` lies (`POSITIONS`): linear
    between the envelope's vertices, the highest-clean vertex's value above them, the lowest-clean vertex's
    value from `lowest` (the lowest clean accuracy of any arm, on the envelope or not; default: that
    vertex's) up to it, NaN below `lowest` ("below-range")."""
    if c < env_clean[0]:
        if lowest is not None and c >= lowest:
            return float(env_robust[0]), "inside"
        return math.nan, "below-range"
    if c > env_clean[-1]:
        return float(env_robust[-1]), "above-range"
    return float(np.interp(c, env_clean, env_robust)), "inside"


@dataclass(frozen=True)
class FrontierArms:
    """The label-smoothing arms (loss spec -> alpha) and the losses placed against them."""

    smoothing: dict[str, float]
    others: list[str]

    @classmethod
    def split(cls, losses: Sequence[str]) -> FrontierArms:
        smoothing = {str(loss): a for loss in losses if (a := smoothing_alpha(loss)) is not None}
        return cls(smoothing, [str(loss) for loss in losses if str(loss) not in smoothing])


def frontier_points(boot: HierarchicalBootstrap, arms: FrontierArms, attack: str, eps: float) -> pd.DataFrame:
    """One row per label-smoothing arm at (attack, eps): alpha, clean and robust accuracy (means over seeds
    and images) with their bootstrap intervals, and `pareto` (on the envelope)."""
    rows = []
    for loss, alpha in sorted(arms.smoothing.items(), key=lambda kv: kv[1]):
        clean, robust = (
            boot.observed(loss, {"attack": "clean", "eps": 0.0}),
            boot.observed(loss, {"attack": attack, "eps": eps}),
        )
        if clean is None or robust is None:
            continue
        c_rep = boot.accuracy_replicates(loss, {"attack": "clean", "eps": 0.0})
        r_rep = boot.accuracy_replicates(loss, {"attack": attack, "eps": eps})
        tail = (1 - boot.confidence) / 2
        rows.append(
            {
                "loss": loss,
                "alpha": alpha,
                "attack": attack,
                "eps": eps,
                "clean": clean,
                "clean_ci_low": float(np.quantile(c_rep, tail)),
                "clean_ci_high": float(np.quantile(c_rep, 1 - tail)),
                "robust": robust,
                "robust_ci_low": float(np.quantile(r_rep, tail)),
                "robust_ci_high": float(np.quantile(r_rep, 1 - tail)),
            }
        )
    frame = pd.DataFrame(rows)
    if len(frame):
        env_c, env_r = envelope(frame["clean"].to_numpy(), frame["robust"].to_numpy())
        frame["pareto"] = [_on_envelope((c, r), env_c, env_r) for c, r in zip(frame["clean"], frame["robust"])]
    return frame


def _on_envelope(point: tuple[float, float], env_c: np.ndarray, env_r: np.ndarray) -> bool:
    """Whether the arm at `point` (clean, robust) is one of the envelope's points."""
    return bool(np.any(np.isclose(env_c, point[0]) & np.isclose(env_r, point[1])))


def frontier_margins(
    boot: HierarchicalBootstrap,
    losses: Sequence[str],
    budgets: Sequence[tuple[str, float]],
    *,
    correction: str = "holm",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Each non-label-smoothing loss of `losses` placed against the label-smoothing frontier at every
    (attack, eps) of `budgets` (the worst-case rows, say): `FRONTIER_COLUMNS`, one row per (loss, budget).

    `margin` = robust accuracy - frontier at the loss's clean accuracy; its interval and p come from the
    bootstrap replicates (the frontier rebuilt on each). `beats` / `below`: the interval excludes zero on
    that side and the corrected p is below `alpha` (never for a loss `below-range`); `below` also needs a
    measured arm that `dominated` the loss (clean accuracy at least as high, robust accuracy higher);
    `under`: significantly under the envelope with no such arm. `margin_arms`: the margin to the measured
    Pareto arms joined directly, without the hull (a point estimate for sensitivity, never tested).
    `margin_se`: the bootstrap standard error of the margin, `margin_df` the degrees of freedom of its t
    reference. At least two label-smoothing arms
    (cross-entropy counts as alpha 0) are needed; fewer raise `ConfigError`."""
    arms = FrontierArms.split(losses)
    if len(arms.smoothing) < 2:
        raise ConfigError(
            f"the label-smoothing frontier needs at least two label-smoothing arms (ce counts as alpha 0), "
            f"got {sorted(arms.smoothing) or 'none'}"
        )
    rows = []
    for attack, eps in budgets:
        clean_where, robust_where = {"attack": "clean", "eps": 0.0}, {"attack": attack, "eps": float(eps)}
        points = {
            loss: (boot.observed(loss, clean_where), boot.observed(loss, robust_where)) for loss in arms.smoothing
        }
        points = {k: v for k, v in points.items() if None not in v}
        if len(points) < 2:
            continue
        names = sorted(points)
        pts_c = np.array([points[k][0] for k in names])
        pts_r = np.array([points[k][1] for k in names])
        env_c, env_r = envelope(pts_c, pts_r)
        rep_c = np.stack([boot.accuracy_replicates(k, clean_where) for k in names])  # (M, B)
        rep_r = np.stack([boot.accuracy_replicates(k, robust_where) for k in names])
        for loss in arms.others:
            clean, robust = boot.observed(loss, clean_where), boot.observed(loss, robust_where)
            if clean is None or robust is None:
                continue
            front, position = frontier_at(clean, env_c, env_r, float(pts_c.min()))
            margin = robust - front
            # Sensitivity: the margin to the measured Pareto arms joined directly (no hull), point estimate only.
            par_c, par_r = envelope(pts_c, pts_r, hull=False)
            margin_arms = robust - frontier_at(clean, par_c, par_r, float(pts_c.min()))[0]
            loss_c = boot.accuracy_replicates(loss, clean_where)
            loss_r = boot.accuracy_replicates(loss, robust_where)
            reps = np.empty(boot.n_boot)
            for b in range(boot.n_boot):
                ec, er = envelope(rep_c[:, b], rep_r[:, b])
                value, _ = frontier_at(float(loss_c[b]), ec, er, float(rep_c[:, b].min()))
                reps[b] = loss_r[b] - value
            finite = reps[np.isfinite(reps)]
            # Replicates whose clean accuracy falls below every arm's in that replicate cannot be placed; an
            # interval from the rest would be a truncated sample, so with more than a tenth unplaced the
            # loss is not placed at all.
            if position == "below-range" or len(finite) < PLACED_SHARE * boot.n_boot:
                low = high = p = se = math.nan
                df = math.nan
            else:
                seeds = min(boot.n_seeds(k, robust_where) for k in [loss, *names])
                df = max(seeds - 1, 1)
                test = replicate_test(margin, finite, df, boot.confidence, (-1.0, 1.0))  # a margin lies in [-1, 1]
                se, p = test.se, test.p
                # An arm with no image (or every image) right on every seed has no bootstrap spread; as for
                # the pairwise differences, widen by its Clopper-Pearson slack on the side it can move. The
                # frontier at c is a convex combination of envelope arms, so its slack is at most theirs.
                loss_down, loss_up = boot.exact_slack(loss, robust_where)
                arm_slack = [boot.exact_slack(k, robust_where) for k in names if _on_envelope(points[k], env_c, env_r)]
                front_down = max((s[0] for s in arm_slack), default=0.0)
                front_up = max((s[1] for s in arm_slack), default=0.0)
                low, high = max(test.low - loss_down - front_up, -1.0), min(test.high + loss_up + front_down, 1.0)
            rows.append(
                {
                    "loss": loss,
                    "attack": attack,
                    "eps": float(eps),
                    "clean": clean,
                    "robust": robust,
                    "frontier": front,
                    "margin": margin,
                    "margin_ci_low": low,
                    "margin_ci_high": high,
                    "p_value": p,
                    "position": position,
                    "margin_se": se,
                    "margin_df": df,
                    # A measured arm at least as accurate and more robust: "below label smoothing" then names
                    # a network label smoothing gave, not a chord between two (the envelope is the maximum
                    # over noisy arms, biased upward, so a margin alone would call "below" too readily).
                    "dominated": bool(np.any((pts_c >= clean) & (pts_r > robust))),
                    "margin_arms": margin_arms,
                }
            )
    computed = ("p_adjusted", "beats", "below", "under")  # set below, after the correction
    frame = pd.DataFrame(rows, columns=[c for c in FRONTIER_COLUMNS if c not in computed])
    tested = frame["p_value"].notna()
    frame["p_adjusted"] = math.nan
    if tested.any():
        frame.loc[tested, "p_adjusted"] = adjust_pvalues(frame.loc[tested, "p_value"].tolist(), correction)
    significant = tested & (frame["p_adjusted"] < alpha)
    frame["beats"] = significant & (frame["margin_ci_low"] > 0)
    frame["below"] = significant & (frame["margin_ci_high"] < 0) & frame["dominated"].astype(bool)
    frame["under"] = significant & (frame["margin_ci_high"] < 0) & ~frame["dominated"].astype(bool)
    return frame[FRONTIER_COLUMNS]
