"""A two-level bootstrap over training seeds and test images, for accuracies and their differences.

Robust accuracy varies for two reasons: the network (its seed) and the test images it happens to be
measured on. The images are shared: every network of a comparison is attacked on the same test images,
so seeds and images are crossed, not nested. Each bootstrap replicate therefore

1. draws one multiset of test images (N draws with replacement from the N images), used for every
   network and every cell of the replicate: this pairs networks on images, so a difference to the
   baseline is judged on the very same images (a paired comparison), and
2. draws, for each loss separately, S of its S seeds with replacement,

and takes the accuracy of a loss as the mean over its drawn seeds of each seed's accuracy on the drawn
images. Percentiles of the replicates give the intervals; the two-sided p-value of a difference is
twice the smaller share of replicates on either side of zero (with the usual +1 correction), i.e. the
smallest level at which the percentile interval would exclude zero.

Resampling S seeds alone would under-state their variance by the factor (S - 1)/S (2/3 at three seeds);
each replicate's deviation from the all-seed mean is scaled by sqrt(S / (S - 1)) to correct it. With very
few seeds the seed level is still estimated from little data, which the report states.

No library offers this crossed design (scipy.stats.bootstrap resamples one level), hence the code here.
Random numbers come from seed sequences named after what they draw (the image set, a loss), so adding a
loss to a study does not change another loss's interval.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from robust_glo.robustness.outcomes import unpack_bits

CHUNK = 500  # replicates drawn per block (fixed: results do not depend on memory)
KEYS = ("dataset", "model", "attack", "eps")


@dataclass(frozen=True)
class Estimate:
    """Bootstrap results for one loss in one cell (diff_* and p_* are None for the baseline itself or
    when the two were not measured on the same images)."""

    n_images: int
    ci_low: float
    ci_high: float
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None
    p_value: float | None = None
    p_images: float | None = None


def _cell_seed(seed: int, *parts: object) -> np.random.SeedSequence:
    """A seed sequence for one named draw, independent of which other draws exist."""
    return np.random.SeedSequence([int(seed)] + [zlib.crc32(str(p).encode()) for p in parts])


class HierarchicalBootstrap:
    """Replicate accuracies for every (loss, seed, cell) row of `outcomes` (see `outcomes.py`), computed
    once; `cell(loss, baseline, where)` then gives the intervals and p-values of one cell."""

    def __init__(self, outcomes: pd.DataFrame, *, n_boot: int = 10_000, seed: int = 0, confidence: float = 0.95):
        if n_boot < 100:
            raise ValueError(f"n_boot must be >= 100, got {n_boot}")
        self.n_boot, self.seed, self.confidence = int(n_boot), int(seed), float(confidence)
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
        self._seed_draws: dict[tuple[str, int], np.ndarray] = {}

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

    def _seeds(self, loss: str, s: int) -> np.ndarray:
        """Seed indices `(B, s)` drawn with replacement for `loss` (the same draw in every cell)."""
        key = (loss, s)
        if key not in self._seed_draws:
            rng = np.random.default_rng(_cell_seed(self.seed, "seeds", loss, s))
            self._seed_draws[key] = rng.integers(0, s, size=(self.n_boot, s))
        return self._seed_draws[key]

    def _rows(self, loss: str, where: dict) -> pd.DataFrame:
        f = self.frame
        mask = f["loss"] == loss
        for k in self.keys:
            if k in where:
                mask &= (f[k] == float(where[k])) if k == "eps" else (f[k] == str(where[k]))
        return f[mask]

    def _accuracy(self, loss: str, rows: pd.DataFrame) -> np.ndarray:
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
        drawn = reps[self._seeds(loss, s).T, np.arange(self.n_boot)].mean(axis=0)
        return everyone + math.sqrt(s / (s - 1)) * (drawn - everyone)

    def _interval(self, values: np.ndarray) -> tuple[float, float]:
        tail = (1 - self.confidence) / 2
        low, high = np.quantile(values, [tail, 1 - tail])
        return float(low), float(high)

    def cell(self, loss: str, baseline: str, where: dict) -> Estimate | None:
        """Intervals for `loss` in the cell `where` (keys among dataset, model, attack, eps), and its
        difference to `baseline`; None when `outcomes` do not cover the cell."""
        rows = self._rows(loss, where)
        if rows.empty or rows["images"].nunique() != 1:
            return None
        acc = self._accuracy(loss, rows)
        low, high = self._interval(acc)
        n_images = int(rows["n"].iloc[0])
        if loss == baseline:
            return Estimate(n_images, low, high)
        base = self._rows(baseline, where)
        if base.empty or base["images"].nunique() != 1 or base["images"].iloc[0] != rows["images"].iloc[0]:
            return Estimate(n_images, low, high)
        diff = acc - self._accuracy(baseline, base)
        d_low, d_high = self._interval(diff)
        b = self.n_boot
        p = min(1.0, 2 * min((1 + int((diff <= 0).sum())) / (b + 1), (1 + int((diff >= 0).sum())) / (b + 1)))
        return Estimate(n_images, low, high, d_low, d_high, p, self._paired_images(rows, base))

    def _paired_images(self, rows: pd.DataFrame, base: pd.DataFrame) -> float:
        """Paired t-test over images of the per-image accuracy (mean over seeds); NaN when no image differs."""
        a = np.mean([self.correct[i] for i in rows.index], axis=0)
        b = np.mean([self.correct[i] for i in base.index], axis=0)
        if np.all(a == b):
            return math.nan
        return float(stats.ttest_rel(a, b).pvalue)
