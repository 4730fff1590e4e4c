"""A two-level bootstrap over training seeds and test images, for accuracies and their differences.

Robust accuracy varies for two reasons: the network (its seed) and the test images it happens to be
measured on. Both are shared across losses: every network of a comparison is attacked on the same test
images, and seed s gives every loss the same initial weights and batch order, so the networks of one seed
are correlated across losses (per image, a loss's seed-s network agrees with ce's seed-s network more than
with ce's other seeds). Seeds and images are crossed, not nested, and both are paired across losses. Each
bootstrap replicate therefore

1. draws one multiset of test images (N draws with replacement from the N images), used for every
   network and every cell of the replicate, and
2. draws one multiset of seed indices (S draws with replacement from the S seeds), used for every loss
   with the same list of seeds (a loss with a different list, e.g. one whose seed 3 diverged, draws its
   own),

and takes the accuracy of a loss as the mean over its drawn seeds of each seed's accuracy on the drawn
images. A difference to the baseline is then paired on images and on seeds: an image, or a seed, that
moves both losses alike adds no noise to it.

Resampling S seeds alone would under-state their variance by the factor (S - 1)/S (2/3 at three seeds);
each replicate's deviation from the all-seed mean is scaled by sqrt(S / (S - 1)) to correct it. With very
few seeds the seed level is still estimated from little data, which the report states.

Intervals are percentiles of the replicates. Where a loss got no image right (or every image) on every
seed, every replicate is 0 (or 1) and the percentile interval collapses to a point; it is then widened to
at least the exact Clopper-Pearson interval of a proportion over the N distinct test images (N, not N * S:
the seeds see the same images, so N is the conservative count), and a difference's interval is widened by
the same slack on that arm's side.

The p-value of a difference (`p_method="normal"`, the default) is p = 2 * P(T_df > |d| / se), with d the
observed difference (on all images and seeds), se the standard deviation of its bootstrap replicates and
T_df Student's t with S - 1 degrees of freedom (`df_method="seeds"`, the default): se^2 has a seed part
estimated from S - 1 df, and the Welch-Satterthwaite df (`df_method="satterthwaite"`: se^2 split into an
image part, the variance of the replicates with every seed kept, N - 1 df, and the rest, S - 1 df) are
liberal when the seed part happens to be estimated small, which with 3 to 5 seeds is likely; S - 1 is the
conservative end of their range. Intervals are stretched about the
estimate by the same t / z factor. Unlike the percentile p (twice the share of replicates beyond
zero, kept as `p_percentile`), whose floor 2 / (B + 1) sits near the corrected thresholds, it resolves
small p-values. Where it cannot (se = 0 with d != 0, or a normal p below what the images can support),
the p is reported at a floor, `p_at_floor`: the larger of `P_FLOOR` and 2^(1 - n_d), the exact sign
(McNemar) test's p when all n_d images on which the two losses differ differ in the same direction, the
smallest p any paired test on these images could give. See docs/statistics.md.

No library offers this crossed design (scipy.stats.bootstrap resamples one level), hence the code here.
Random numbers come from seed sequences named after what they draw (the image set, a list of seeds), so
adding a loss to a study does not change another loss's interval.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from robust_glo.robustness.outcomes import unpack_bits

# The smallest p reported (|z| > 7.1 in the normal approximation): far below any corrected threshold in use
# (alpha / M < 1e-12 would take M > 5e10 comparisons), and far out in a tail that no bootstrap of B
# replicates or N images can check, so smaller values would be precision without meaning.
P_FLOOR = 1e-12
CHUNK = 500  # replicates drawn per block (fixed: results do not depend on memory)
KEYS = ("dataset", "model", "attack", "eps")
P_METHODS = ("normal", "percentile")
DF_METHODS = ("seeds", "satterthwaite")  # the t reference's degrees of freedom (HierarchicalBootstrap._df)
_TINY = 1e-12  # observed differences below this (rounding of equal means) count as zero


@dataclass(frozen=True)
class Estimate:
    """Bootstrap results for one loss in one cell (the diff_* and p_* fields are None for the baseline
    itself or when the two were not measured on the same images).

    `exact`: the accuracy interval was widened to the Clopper-Pearson interval (no image right on any
    seed, or every image on every seed). `p_value` is the p of `p_method`; `p_percentile` the percentile p;
    `p_at_floor` whether `p_value` is the floor of what the data resolve (the true p may be smaller);
    `diff_se` the bootstrap standard error of the difference."""

    n_images: int
    ci_low: float
    ci_high: float
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None
    p_value: float | None = None
    p_images: float | None = None
    p_percentile: float | None = None
    p_at_floor: bool = False
    diff_se: float | None = None
    exact: bool = False
    df: float | None = None  # Satterthwaite degrees of freedom of the difference's t reference


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a proportion of k successes in n trials (scipy's
    `binomtest(k, n).proportion_ci(method="exact")`); at k = 0 its upper end is 1 - ((1 - c) / 2)^(1/n),
    about 3.7 / n at 95%."""
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def _cell_seed(seed: int, *parts: object) -> np.random.SeedSequence:
    """A seed sequence for one named draw, independent of which other draws exist."""
    return np.random.SeedSequence([int(seed)] + [zlib.crc32(str(p).encode()) for p in parts])


def satterthwaite_df(total_var: float, image_var: float, n_seeds: int, n_images: int) -> float:
    """Welch-Satterthwaite degrees of freedom of a variance made of a seed part, estimated from `n_seeds`
    seeds (S - 1 df), and an image part, from `n_images` images (N - 1 df):
    df = v^2 / (v_seed^2 / (S - 1) + v_img^2 / (N - 1)), with v_seed = max(v - v_img, 0).

    With few seeds and a seed part that dominates, df approaches S - 1 (a t reference with heavy tails);
    where images dominate it approaches N - 1 (the normal). inf when the variance is 0."""
    seed_var = max(total_var - image_var, 0.0)
    terms = (seed_var**2 / (n_seeds - 1) if n_seeds > 1 else 0.0) + (
        image_var**2 / (n_images - 1) if n_images > 1 else 0.0
    )
    if total_var <= 0 or terms <= 0:
        return math.inf
    return max(1.0, total_var**2 / terms)


def normal_pvalue(diff: float, se: float, floor: float = P_FLOOR, df: float = math.inf) -> tuple[float, bool]:
    """(p, at_floor) of 2 * P(T_df > |diff| / se): Student's t with `df` degrees of freedom (the normal
    when df is infinite).

    p = 1 when diff = 0 (whatever se); the floor, with at_floor True, when se = 0 with diff != 0 (the
    replicates cannot tell how small p is) or when p falls below `floor`."""
    if not math.isfinite(diff) or not math.isfinite(se):
        return math.nan, False
    if abs(diff) < _TINY:
        return 1.0, False
    if se <= 0:
        return float(floor), True
    z = abs(diff) / se
    p = float(2 * (stats.norm.sf(z) if math.isinf(df) else stats.t.sf(z, df)))
    if p < floor:
        return float(floor), True
    return min(p, 1.0), False


def percentile_pvalue(diff: np.ndarray) -> float:
    """Twice the smaller share of replicates on either side of zero, with the +1 correction:
    min(1, 2 min((1 + #{d <= 0}) / (B + 1), (1 + #{d >= 0}) / (B + 1))); its floor is 2 / (B + 1)."""
    b = len(diff)
    below, above = int((diff <= 0).sum()), int((diff >= 0).sum())
    return min(1.0, 2 * min((1 + below) / (b + 1), (1 + above) / (b + 1)))


def t_stretched(
    low: float, high: float, center: float, df: float, confidence: float, bounds: tuple[float, float]
) -> tuple[float, float]:
    """A percentile interval (`low`, `high`) stretched about `center` by t_df / z at the `confidence` level,
    so that it carries the same small-sample allowance as the p-value (unchanged when df is infinite), then
    kept within `bounds`, the values the quantity can take (an accuracy in [0, 1], a difference of two in
    [-1, 1]): with two or three seeds the stretch (t with 1 df is 6.5x z) can otherwise reach past them."""
    if not math.isinf(df):
        q = 1 - (1 - confidence) / 2
        k = float(stats.t.ppf(q, df) / stats.norm.ppf(q))
        low, high = center - k * (center - low), center + k * (high - center)
    return max(low, bounds[0]), min(high, bounds[1])


@dataclass(frozen=True)
class ReplicateTest:
    """`replicate_test`'s result: the interval (`low`, `high`), the replicates' standard error and p."""

    low: float
    high: float
    se: float
    p: float


def replicate_test(
    observed: float, reps: np.ndarray, df: float, confidence: float, bounds: tuple[float, float]
) -> ReplicateTest:
    """Interval and two-sided p of a quantity that `HierarchicalBootstrap` does not form itself (a frontier
    margin, the paper-protocol gap) from its paired replicates `(B,)`: the percentile interval stretched
    about `observed` by `t_stretched`, and p = 2 P(T_df > |observed| / se), se the replicates' standard
    deviation (p = 1 where `observed` is 0; `P_FLOOR` where the replicates have no spread)."""
    tail = (1 - confidence) / 2
    q_low, q_high = (float(v) for v in np.quantile(reps, [tail, 1 - tail]))
    low, high = t_stretched(q_low, q_high, observed, df, confidence, bounds)
    se = float(np.std(reps, ddof=1))
    if abs(observed) < 1e-12:
        p = 1.0
    else:
        p = float(2 * stats.t.sf(abs(observed) / se, df)) if se > 0 else P_FLOOR
    return ReplicateTest(low, high, se, p)


class HierarchicalBootstrap:
    """Replicate accuracies for every (loss, seed, cell) row of `outcomes` (see `outcomes.py`), computed
    once; `cell(loss, baseline, where)` then gives the intervals and p-values of one cell."""

    def __init__(
        self,
        outcomes: pd.DataFrame,
        *,
        n_boot: int = 10_000,
        seed: int = 0,
        confidence: float = 0.95,
        p_method: str = "normal",
        df_method: str = "seeds",
    ):
        if n_boot < 100:
            raise ValueError(f"n_boot must be >= 100, got {n_boot}")
        if p_method not in P_METHODS:
            raise ValueError(f"p_method must be one of {', '.join(P_METHODS)}, got {p_method!r}")
        if df_method not in DF_METHODS:
            raise ValueError(f"df_method must be one of {', '.join(DF_METHODS)}, got {df_method!r}")
        self.n_boot, self.seed, self.confidence = int(n_boot), int(seed), float(confidence)
        self.p_method, self.df_method = p_method, df_method
        frame = outcomes.reset_index(drop=True).copy()
        frame["eps"] = frame["eps"].astype(float)
        self.keys = [k for k in KEYS if k in frame.columns]
        for column in ["loss"] + [k for k in self.keys if k != "eps"]:
            frame[column] = frame[column].astype(str)  # compared as text in every cell lookup
        self.frame = frame
        self.correct: dict[int, np.ndarray] = {}
        self.replicates = np.empty((len(frame), self.n_boot), dtype=np.float64)
        for images, group in frame.groupby("images", sort=False):
            n = int(group["n"].iloc[0])
            if (group["n"] != n).any():
                raise ValueError(f"outcomes with image set {images} have different n: {sorted(set(group['n']))}")
            matrix = np.stack([unpack_bits(b, n) for b in group["bits"]]).astype(np.float32)  # (R, N)
            for i, row in zip(group.index, matrix):
                self.correct[i] = row.astype(bool)
            self.replicates[group.index] = self._resampled(matrix, str(images))
        self._seed_draws: dict[tuple, np.ndarray] = {}

    def _resampled(self, matrix: np.ndarray, images: str) -> np.ndarray:
        """Accuracy of each row `(R, N)` on every replicate's image multiset -> `(R, B)`."""
        r, n = matrix.shape
        out = np.empty((r, self.n_boot), dtype=np.float64)
        blocks = _cell_seed(self.seed, "images", images).spawn(math.ceil(self.n_boot / CHUNK))
        for k, block in enumerate(blocks):
            size = min(CHUNK, self.n_boot - k * CHUNK)
            draws = np.random.default_rng(block).integers(0, n, size=(size, n))
            counts = np.bincount((draws + n * np.arange(size)[:, None]).ravel(), minlength=size * n)
            weights = counts.reshape(size, n).astype(np.float32)  # (size, N) multiplicities
            out[:, k * CHUNK : k * CHUNK + size] = (matrix @ weights.T) / n
        return out

    def _seeds(self, seeds: tuple) -> np.ndarray:
        """Seed indices `(B, S)` drawn with replacement for the seed list `seeds` (sorted): one draw per
        list, shared by every loss and every cell with that list, so that losses are paired on seeds."""
        if seeds not in self._seed_draws:
            rng = np.random.default_rng(_cell_seed(self.seed, "seeds", *seeds))
            self._seed_draws[seeds] = rng.integers(0, len(seeds), size=(self.n_boot, len(seeds)))
        return self._seed_draws[seeds]

    def _rows(self, loss: str, where: dict) -> pd.DataFrame:
        """The rows of `loss` in the cell `where`, in seed order (position k is the same seed for every
        loss with the same seed list)."""
        f = self.frame
        mask = f["loss"] == loss
        for k in self.keys:
            if k in where:
                mask &= (f[k] == float(where[k])) if k == "eps" else (f[k] == str(where[k]))
        rows = f[mask]
        return rows.sort_values("seed", kind="stable") if "seed" in rows.columns else rows

    @staticmethod
    def _seed_list(rows: pd.DataFrame) -> tuple:
        if "seed" in rows.columns and rows["seed"].is_unique:
            return tuple(str(s) for s in rows["seed"])
        return ("rows", len(rows))  # no seed names: a draw of its own per number of rows

    def _images_only(self, rows: pd.DataFrame) -> np.ndarray:
        """Replicates `(B,)` of the mean over all seeds on the drawn images: the image part of the variation."""
        return self.replicates[rows.index].mean(axis=0)

    def _df(self, total_var: float, image_var: float, n_seeds: int, n_images: int) -> float:
        """The degrees of freedom of the t reference: S - 1 ("seeds", the default: the seed part of the
        variance is estimated from S - 1 df, and Satterthwaite's larger df are liberal when that part happens
        to be estimated small), or Welch-Satterthwaite ("satterthwaite"). With one seed the seed part is 0
        and Satterthwaite's (image) df apply either way; with no variance at all (every replicate equal, the
        interval then comes from Clopper-Pearson) nothing is stretched."""
        if self.df_method == "seeds" and n_seeds >= 2 and total_var > 0:
            return float(n_seeds - 1)
        return satterthwaite_df(total_var, image_var, n_seeds, n_images)

    def _widened(
        self, low: float, high: float, center: float, df: float, bounds: tuple[float, float]
    ) -> tuple[float, float]:
        """`t_stretched` at this bootstrap's confidence."""
        return t_stretched(low, high, center, df, self.confidence, bounds)

    def _accuracy(self, rows: pd.DataFrame) -> np.ndarray:
        """Replicates `(B,)` of the mean over drawn seeds of each seed's accuracy on the drawn images.

        Resampling S seeds gives their mean a variance (S - 1)/S times too small; the deviation of the drawn
        seeds' mean from the mean of all seeds (on the same drawn images) is scaled by sqrt(S / (S - 1)) to
        undo that, so the seed level is neither under- nor over-stated (with one seed it contributes nothing).
        """
        reps = self.replicates[rows.index]  # (S, B)
        s = len(rows)
        everyone = reps.mean(axis=0)
        if s < 2:
            return everyone
        drawn = reps[self._seeds(self._seed_list(rows)).T, np.arange(self.n_boot)].mean(axis=0)
        return everyone + math.sqrt(s / (s - 1)) * (drawn - everyone)

    def _per_image(self, rows: pd.DataFrame) -> np.ndarray:
        """Per-image accuracy `(N,)`: the mean over seeds of each image's outcome."""
        return np.mean([self.correct[i] for i in rows.index], axis=0)

    def _interval(self, values: np.ndarray) -> tuple[float, float]:
        tail = (1 - self.confidence) / 2
        low, high = np.quantile(values, [tail, 1 - tail])
        return float(low), float(high)

    def _exact(self, rows: pd.DataFrame, n: int) -> tuple[float, float] | None:
        """The Clopper-Pearson interval over the N images when the pooled count over seeds and images is
        0 or all of them (every replicate is then 0 or 1), else None."""
        pooled = int(sum(int(self.correct[i].sum()) for i in rows.index))
        if pooled == 0:
            return clopper_pearson(0, n, self.confidence)
        if pooled == n * len(rows):
            return clopper_pearson(n, n, self.confidence)
        return None

    def exact_slack(self, loss: str, where: dict) -> tuple[float, float]:
        """(down, up): how far the Clopper-Pearson interval over the N images reaches below and above the
        observed accuracy of `loss` in the cell `where` when every seed has no image, or every image, right
        (the bootstrap then has no spread to show); (0, 0) otherwise or when the cell is not covered."""
        rows = self._rows(loss, where)
        if rows.empty or rows["images"].nunique() != 1:
            return 0.0, 0.0
        exact = self._exact(rows, int(rows["n"].iloc[0]))
        if exact is None:
            return 0.0, 0.0
        mean = float(self._per_image(rows).mean())
        return mean - exact[0], exact[1] - mean

    def observed(self, loss: str, where: dict) -> float | None:
        """The accuracy of `loss` in the cell `where` on all seeds and images (mean over seeds of each
        seed's accuracy); None when `outcomes` do not cover the cell."""
        rows = self._rows(loss, where)
        if rows.empty or rows["images"].nunique() != 1:
            return None
        return float(self._per_image(rows).mean())

    def accuracy_replicates(self, loss: str, where: dict) -> np.ndarray:
        """The bootstrap replicates `(B,)` of `loss`'s accuracy in the cell `where`, drawn on the same image
        multisets and seed lists as every other loss and cell (paired); `KeyError` when not covered."""
        rows = self._rows(loss, where)
        if rows.empty or rows["images"].nunique() != 1:
            raise KeyError(f"no outcomes of {loss!r} at {where}")
        return self._accuracy(rows)

    def n_seeds(self, loss: str, where: dict) -> int:
        """How many seeds (rows) `loss` has in the cell `where` (0 when not covered)."""
        return len(self._rows(loss, where))

    def cell(self, loss: str, baseline: str, where: dict) -> Estimate | None:
        """Intervals for `loss` in the cell `where` (keys among dataset, model, attack, eps), and its
        difference to `baseline`; None when `outcomes` do not cover the cell."""
        rows = self._rows(loss, where)
        if rows.empty or rows["images"].nunique() != 1:
            return None
        acc = self._accuracy(rows)
        low, high = self._interval(acc)
        n_images = int(rows["n"].iloc[0])
        # A mean's own interval (never the basis of a claim) keeps the Welch-Satterthwaite df; the df policy
        # applies to the differences, whose p-values the verdict counts.
        own_df = satterthwaite_df(
            float(np.var(acc, ddof=1)), float(np.var(self._images_only(rows), ddof=1)), len(rows), n_images
        )
        low, high = self._widened(low, high, float(self._per_image(rows).mean()), own_df, (0.0, 1.0))
        exact = self._exact(rows, n_images)
        if exact is not None:
            low, high = min(low, exact[0]), max(high, exact[1])
        if loss == baseline:
            return Estimate(n_images, low, high, exact=exact is not None)
        base = self._rows(baseline, where)
        if base.empty or base["images"].nunique() != 1 or base["images"].iloc[0] != rows["images"].iloc[0]:
            return Estimate(n_images, low, high, exact=exact is not None)
        diff = acc - self._accuracy(base)
        d_low, d_high = self._interval(diff)
        a, b = self._per_image(rows), self._per_image(base)
        # A degenerate arm (no image, or every image, right on every seed) has no bootstrap spread: widen
        # the difference by that arm's Clopper-Pearson slack on the side it can move.
        base_exact = self._exact(base, n_images)
        if exact is not None:
            d_low, d_high = d_low - float(a.mean() - exact[0]), d_high + float(exact[1] - a.mean())
        if base_exact is not None:
            d_low, d_high = d_low - float(base_exact[1] - b.mean()), d_high + float(b.mean() - base_exact[0])
        observed = float(a.mean() - b.mean())  # mean over seeds of each seed's accuracy (equal n per seed)
        se = float(np.std(diff, ddof=1))
        image_part = float(np.var(self._images_only(rows) - self._images_only(base), ddof=1))
        df = self._df(se**2, image_part, min(len(rows), len(base)), n_images)
        d_low, d_high = self._widened(d_low, d_high, observed, df, (-1.0, 1.0))
        p_pct = percentile_pvalue(diff)
        if self.p_method == "percentile":
            floor = 2 / (self.n_boot + 1)
            p, at_floor = p_pct, p_pct <= floor * (1 + 1e-9)
        else:
            n_d = int((a != b).sum())  # images on which the two losses differ (mean over seeds)
            p, at_floor = normal_pvalue(observed, se, self.floor(n_d), df)
        return Estimate(
            n_images,
            low,
            high,
            d_low,
            d_high,
            p,
            self._paired_images(a, b),
            p_percentile=p_pct,
            p_at_floor=bool(at_floor),
            diff_se=se,
            exact=exact is not None,
            df=df,
        )

    @staticmethod
    def floor(n_differing: int) -> float:
        """The smallest p reported for a difference resting on `n_differing` images: `P_FLOOR`, or the
        exact sign test's 2^(1 - n) (all n differing images in one direction) when that is larger."""
        return max(P_FLOOR, 2.0 ** (1 - n_differing)) if n_differing > 0 else 1.0

    @staticmethod
    def _paired_images(a: np.ndarray, b: np.ndarray) -> float:
        """Paired t-test over images of the per-image accuracy (mean over seeds); NaN when undefined: no
        image differs, or every image differs by the same amount (no spread)."""
        if np.ptp(a - b) == 0:
            return math.nan
        return float(stats.ttest_rel(a, b).pvalue)
