"""Statistics over seeds (scipy.stats): means, t confidence intervals and Welch t-tests.

`summarize(results)` turns the tidy robustness table (one row per loss, seed, attack, eps) into one row
per loss x attack x eps with the mean over seeds, its confidence interval, and the p-value of Welch's
t-test against a baseline loss (the first loss in the table unless named).
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from robust_glo.errors import ConfigError

SUMMARY_STATS = ["n_seeds", "mean", "std", "sem", "ci_low", "ci_high", "baseline", "baseline_mean", "diff",
                 "p_value", "n_unreliable", "reliable"]


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, sample std (ddof=1), CI low, CI high) with the Student t interval.

    mean +- t_{(1+confidence)/2, n-1} * std / sqrt(n); with one value std and the interval are NaN, and
    with zero spread the interval is the mean itself.
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence}")
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, df=len(x) - 1)) * std / math.sqrt(len(x))
    return mean, std, mean - half, mean + half


def welch_pvalue(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances); NaN when undefined (< 2 values in a
    group, or no spread in either group and equal means)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) < 2 or len(y) < 2:
        return math.nan
    if x.std() == 0 and y.std() == 0:
        return math.nan if x.mean() == y.mean() else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def summarize(results: pd.DataFrame, *, value: str = "accuracy", compare: str = "loss",
              group_by: Sequence[str] = ("dataset", "model", "attack", "eps"), baseline: str | None = None,
              confidence: float = 0.95, bounds: tuple[float, float] | None = (0.0, 1.0)) -> pd.DataFrame:
    """One row per `compare` value x `group_by` cell (the columns of these present in `results`).

    Columns: the keys, then n_seeds, mean, std, sem, ci_low, ci_high (t interval at `confidence`),
    baseline (the compared-against loss), baseline_mean, diff (mean - baseline_mean), p_value (Welch,
    NaN for the baseline itself), n_unreliable (seeds whose evaluation was flagged) and reliable.
    The interval is clipped to `bounds`, the values the mean can take (accuracies: [0, 1]); since the
    true mean lies inside them, clipping never lowers the interval's coverage. `bounds=None` keeps the
    raw t interval.
    """
    for column in (value, compare):
        if column not in results.columns:
            raise ConfigError(f"results have no column {column!r}; columns: {', '.join(results.columns)}")
    keys = [k for k in group_by if k in results.columns and k != compare]
    order = list(dict.fromkeys(results[compare]))
    if not order:
        return pd.DataFrame(columns=keys + [compare] + SUMMARY_STATS)
    base = order[0] if baseline is None else baseline
    if base not in order:
        raise ConfigError(f"baseline {base!r} is not among the {compare} values: {', '.join(map(str, order))}")
    has_flag = "reliable" in results.columns
    cells = results.groupby(keys + [compare], sort=False, dropna=False)
    base_rows = results[results[compare] == base]
    base_values = ({_as_tuple(k): g[value].to_numpy(float) for k, g in base_rows.groupby(keys, sort=False, dropna=False)}
                   if keys else {(): base_rows[value].to_numpy(float)})
    rows = []
    for key, group in cells:
        key = _as_tuple(key)
        cell, who = key[:-1], key[-1]
        values = group[value].to_numpy(float)
        mean, std, low, high = mean_ci(values, confidence)
        if bounds is not None and not math.isnan(low):
            low, high = max(low, bounds[0]), min(high, bounds[1])
        n = int((~np.isnan(values)).sum())
        ref = base_values.get(cell, np.array([]))
        ref_mean = float(np.nanmean(ref)) if len(ref) and not np.isnan(ref).all() else math.nan
        unreliable = int((~group["reliable"].astype(bool)).sum()) if has_flag else 0
        rows.append({**dict(zip(keys, cell)), compare: who, "n_seeds": n, "mean": mean, "std": std,
                     "sem": std / math.sqrt(n) if n > 1 else math.nan, "ci_low": low, "ci_high": high,
                     "baseline": base, "baseline_mean": ref_mean, "diff": mean - ref_mean,
                     "p_value": math.nan if who == base else welch_pvalue(values, ref),
                     "n_unreliable": unreliable, "reliable": unreliable == 0})
    out = pd.DataFrame(rows, columns=keys + [compare] + SUMMARY_STATS)
    # Rows in order of first appearance (losses as given, attacks as listed), eps ascending.
    ranks = {c: {v: i for i, v in enumerate(dict.fromkeys(results[c]))} for c in keys + [compare] if c != "eps"}
    sort_cols = [c for c in keys if c != "eps"] + (["eps"] if "eps" in keys else []) + [compare]
    ordered = out.assign(**{f"_rank_{c}": out[c].map(r) for c, r in ranks.items()})
    by = [f"_rank_{c}" if c in ranks else c for c in sort_cols]
    return ordered.sort_values(by, kind="stable")[out.columns].reset_index(drop=True)


def _as_tuple(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)
