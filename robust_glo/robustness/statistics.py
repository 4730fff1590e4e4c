"""Statistics a reviewer can sign: intervals over seeds and test images, corrected significance.

`summarize(results, outcomes=...)` turns the tidy robustness table (one row per loss, seed, attack, eps)
into one row per loss x attack x eps with

- the mean over seeds and its 95% interval. With the per-image outcomes (`outcomes.csv`) the interval
  comes from a two-level bootstrap that resamples seeds and test images (see `bootstrap.py`), so it
  holds both sources of variation; without them it is Student's t interval over seeds alone. Where a
  loss got no image (or every image) right on every seed, the interval is widened to at least the exact
  Clopper-Pearson interval over the N test images;
- the difference to a baseline loss with its own bootstrap interval and p-value (paired on images and
  on seeds: every network saw the same test images, and seed s is shared by every loss). The p-value is
  2 P(T_df > |d| / se_boot), Student's t with Welch-Satterthwaite df over the seed and image parts of the
  bootstrap variance (`p_at_floor` where the data cannot resolve it), next
  to the percentile bootstrap p, Welch's t-test over seeds and a paired t-test over images;
- the family the comparison belongs to: "primary" (clean accuracy and the per-input worst case per threat
  model and eps > 0: the verdict's comparisons), "secondary" (every other attack at eps > 0, unless its
  outcomes are those of the worst case) or "" (the baseline, eps = 0 repeats, repeats of the worst case);
- the p-values adjusted within each family separately (Holm by default, or Benjamini-Hochberg), with
  statsmodels' `multipletests`; `significant` is decided on the adjusted p only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from robust_glo.errors import ConfigError
from robust_glo.robustness.bootstrap import P_FLOOR as P_FLOOR  # re-exported (defined in bootstrap, below this)
from robust_glo.robustness.bootstrap import HierarchicalBootstrap, clopper_pearson

SUMMARY_STATS = [
    "n_seeds",
    "n_images",
    "mean",
    "std",
    "sem",
    "ci_low",
    "ci_high",
    "interval",
    "baseline",
    "baseline_mean",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "diff_se",
    "diff_df",
    "p_value",
    "p_at_floor",
    "p_test",
    "p_percentile",
    "p_welch",
    "p_images",
    "compared",
    "family",
    "p_adjusted",
    "correction",
    "significant",
    "n_unreliable",
    "reliable",
]

# Corrections for multiple comparisons (statsmodels.stats.multitest.multipletests method names).
CORRECTIONS = {
    "holm": "Holm (family-wise error rate)",
    "fdr_bh": "Benjamini-Hochberg (false discovery rate)",
    "bonferroni": "Bonferroni (family-wise error rate)",
}
CORRECTION_ALIASES = {"bh": "fdr_bh", "benjamini-hochberg": "fdr_bh"}
DEFAULT_CORRECTION = "holm"
FAMILIES = ("primary", "secondary")  # corrected separately; "" = in no family
WORST_BY_NORM = {"linf": "worst", "l2": "worst:l2"}  # the per-input worst case over a norm's attacks
DEFAULT_BOOTSTRAP = 10_000
INTERVAL_BOOTSTRAP = "bootstrap: seeds and images"
INTERVAL_T = "t: seeds only"


def check_correction(name: object) -> str:
    """The canonical name of a multiple-comparison correction ("bh" -> "fdr_bh")."""
    key = CORRECTION_ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if key not in CORRECTIONS:
        raise ConfigError(f"correction {name!r} is unknown; valid: holm, fdr_bh (or bh), bonferroni")
    return key


def floor_bound(p: float | None, at_floor: object) -> bool:
    """Whether a (corrected) p is shown as a bound, "p ≤ x": the data resolve it only down to its floor
    (`at_floor`), and the correction left it below 1 (a floor pushed up to 1 bounds nothing: it is 1)."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return False
    if at_floor is None or (isinstance(at_floor, float) and math.isnan(at_floor)):
        return False
    return bool(at_floor) and p < 1


def adjust_pvalues(pvalues: Sequence[float], method: str = DEFAULT_CORRECTION) -> np.ndarray:
    """p-values adjusted over one family (statsmodels' `multipletests`); NaN entries stay NaN and are
    not counted as comparisons."""
    method = check_correction(method)
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = ~np.isnan(p)
    if ok.any():
        from statsmodels.stats.multitest import multipletests

        out[ok] = multipletests(p[ok], method=method)[1]
    return out


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


def first_rejection_t(df: float, family_size: int, alpha: float = 0.05) -> float:
    """The t quantile a family's most significant comparison must pass: t_df(1 - alpha / (2 M)), two-sided,
    M = `family_size`. Holm, Bonferroni and Benjamini-Hochberg all compare the smallest p with alpha / M."""
    return float(stats.t.ppf(1 - alpha / (2 * family_size), df))


def minimum_detectable(summary: pd.DataFrame, family: str = "primary", alpha: float = 0.05) -> pd.DataFrame:
    """The smallest difference to the baseline that could be significant, per compared cell of `family` in
    `summary` (the `summarize` table): |diff| must reach `first_rejection_t(df, M, alpha)` * diff_se for the
    family's most significant comparison, with M the family's size, df the cell's `diff_df` and diff_se its
    bootstrap standard error; later steps of Holm need a little less. Returns the cells' attack, eps, loss,
    diff_se, diff_df, `family_size` (M), `t` and `min_detectable` (same units as `diff`); empty where nothing
    was compared. A reading of the design's power: a difference below it is not evidence of no effect."""
    columns = ["attack", "eps", "loss", "diff_se", "diff_df", "family_size", "t", "min_detectable"]
    if summary.empty or "family" not in summary or "diff_se" not in summary:
        return pd.DataFrame(columns=columns)
    in_family = (summary["family"] == family) & summary["compared"].astype(bool)
    cells = summary[in_family & summary["diff_se"].notna() & summary["diff_df"].notna()].copy()
    if cells.empty:
        return pd.DataFrame(columns=columns)
    cells["family_size"] = int(in_family.sum())
    cells["t"] = [first_rejection_t(df, m, alpha) for df, m in zip(cells["diff_df"], cells["family_size"])]
    cells["min_detectable"] = cells["t"] * cells["diff_se"]
    return cells[columns].reset_index(drop=True)


def welch_pvalue(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test (unequal variances); NaN when undefined: fewer than 2 values
    in a group, or no spread in either group (the test would then call any difference, however small,
    infinitely significant: p = 0 from two seeds of identical accuracy is not evidence)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) < 2 or len(y) < 2:
        return math.nan
    if x.std() == 0 and y.std() == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def summarize(
    results: pd.DataFrame,
    *,
    outcomes: pd.DataFrame | None = None,
    value: str = "accuracy",
    compare: str = "loss",
    group_by: Sequence[str] = ("dataset", "model", "attack", "eps"),
    baseline: str | None = None,
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    correction: str = DEFAULT_CORRECTION,
    alpha: float = 0.05,
    n_boot: int = DEFAULT_BOOTSTRAP,
    boot_seed: int = 0,
    p_method: str = "normal",
    df_method: str = "seeds",
) -> pd.DataFrame:
    """One row per `compare` value x `group_by` cell (the columns of these present in `results`).

    Columns: the keys, then `SUMMARY_STATS`:
    n_seeds, n_images, mean (over seeds), std, sem; ci_low, ci_high and `interval` (which interval:
    the seeds-and-images bootstrap where `outcomes` cover the cell, else the t interval over seeds,
    clipped to `bounds`; either widened to at least the Clopper-Pearson interval over the N images when
    no image, or every image, was right on any seed); baseline, baseline_mean, diff (mean -
    baseline_mean) with diff_ci_low/high and diff_se (the bootstrap standard error; bootstrap only);
    p_value, the raw p of the test named in p_test ("bootstrap": the normal approximation
    2 P(T_df > |diff| / diff_se) with `p_method="normal"` (df = diff_df: S - 1 with `df_method="seeds"`,
    the default, or Welch-Satterthwaite over the seed and image parts of the bootstrap variance with
    "satterthwaite"), else the percentile p; "welch" without outcomes);
    p_at_floor (p_value is the floor of what the data resolve: the true p is at most that, tables print
    "≤"); p_percentile (twice the share of bootstrap replicates beyond zero, floor 2 / (B + 1)), p_welch
    (seeds only) and p_images (paired t-test over images on per-image accuracy averaged over seeds;
    images only) for reference; family ("primary": clean accuracy and the worst case per threat model
    and eps > 0; "secondary": the other attacks at eps > 0, except one whose outcomes equal the worst
    case's on every network; "": the baseline, eps = 0 rows of attacks, those repeats); compared (in some
    family); p_adjusted with `correction` within each family separately; significant (p_adjusted <
    alpha); n_unreliable (seeds whose evaluation was flagged) and reliable.
    """
    for column in (value, compare):
        if column not in results.columns:
            raise ConfigError(f"results have no column {column!r}; columns: {', '.join(results.columns)}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence}")
    correction = check_correction(correction)
    keys = [k for k in group_by if k in results.columns and k != compare]
    order = list(dict.fromkeys(results[compare]))
    if not order:
        return pd.DataFrame(columns=keys + [compare] + SUMMARY_STATS)
    base = order[0] if baseline is None else baseline
    if base not in order:
        raise ConfigError(f"baseline {base!r} is not among the {compare} values: {', '.join(map(str, order))}")
    boot = None
    if outcomes is not None and not outcomes.empty and compare == "loss" and value == "accuracy":
        boot = HierarchicalBootstrap(
            outcomes, n_boot=n_boot, seed=boot_seed, confidence=confidence, p_method=p_method, df_method=df_method
        )
    has_flag = "reliable" in results.columns
    cells = results.groupby(keys + [compare], sort=False, dropna=False)
    base_rows = results[results[compare] == base]
    base_values = (
        {_as_tuple(k): g[value].to_numpy(float) for k, g in base_rows.groupby(keys, sort=False, dropna=False)}
        if keys
        else {(): base_rows[value].to_numpy(float)}
    )
    rows = []
    for key, group in cells:
        key = _as_tuple(key)
        cell, who = key[:-1], key[-1]
        rows.append(
            _cell_row(
                dict(zip(keys, cell)),
                who,
                group,
                base,
                base_values.get(cell, np.array([])),
                value=value,
                compare=compare,
                confidence=confidence,
                bounds=bounds,
                boot=boot,
                has_flag=has_flag,
            )
        )
    out = pd.DataFrame(rows, columns=keys + [compare] + SUMMARY_STATS)
    out["family"] = _families(out, results, keys, compare, base, value)
    out["compared"] = out["family"] != ""
    out["p_adjusted"] = math.nan
    for name in FAMILIES:
        members = out["family"] == name
        out.loc[members, "p_adjusted"] = adjust_pvalues(out.loc[members, "p_value"].to_numpy(float), correction)
    out["correction"] = correction
    out["significant"] = out["p_adjusted"].lt(alpha)
    # Rows in order of first appearance (losses as given, attacks as listed), eps ascending.
    ranks = {c: {v: i for i, v in enumerate(dict.fromkeys(results[c]))} for c in keys + [compare] if c != "eps"}
    sort_cols = [c for c in keys if c != "eps"] + (["eps"] if "eps" in keys else []) + [compare]
    ordered = out.assign(**{f"_rank_{c}": out[c].map(r) for c, r in ranks.items()})
    by = [f"_rank_{c}" if c in ranks else c for c in sort_cols]
    return ordered.sort_values(by, kind="stable")[out.columns].reset_index(drop=True)


def _cell_row(
    where: dict,
    who: object,
    group: pd.DataFrame,
    base: object,
    ref: np.ndarray,
    *,
    value: str,
    compare: str,
    confidence: float,
    bounds: tuple[float, float] | None,
    boot,
    has_flag: bool,
) -> dict:
    """The summary row of one loss (`who`) in one cell (`where`), against the baseline's values `ref`."""
    values = group[value].to_numpy(float)
    mean, std, low, high = mean_ci(values, confidence)
    n = int((~np.isnan(values)).sum())
    ref_mean = float(np.nanmean(ref)) if len(ref) and not np.isnan(ref).all() else math.nan
    unreliable = int((~group["reliable"].astype(bool)).sum()) if has_flag else 0
    row = {
        **where,
        compare: who,
        "n_seeds": n,
        "n_images": math.nan,
        "mean": mean,
        "std": std,
        "sem": std / math.sqrt(n) if n > 1 else math.nan,
        "ci_low": low,
        "ci_high": high,
        "interval": INTERVAL_T,
        "baseline": base,
        "baseline_mean": ref_mean,
        "diff": mean - ref_mean,
        "diff_ci_low": math.nan,
        "diff_ci_high": math.nan,
        "diff_se": math.nan,
        "diff_df": math.nan,
        "p_value": math.nan,
        "p_at_floor": False,
        "p_test": "",
        "p_percentile": math.nan,
        "p_welch": math.nan if who == base else welch_pvalue(values, ref),
        "p_images": math.nan,
        "compared": False,
        "family": "",
        "n_unreliable": unreliable,
        "reliable": unreliable == 0,
    }
    est = boot.cell(str(who), str(base), where) if boot is not None else None
    if est is not None:
        row.update(n_images=est.n_images, ci_low=est.ci_low, ci_high=est.ci_high, interval=INTERVAL_BOOTSTRAP)
        if who != base and est.diff_ci_low is not None:
            row.update(
                diff_ci_low=est.diff_ci_low,
                diff_ci_high=est.diff_ci_high,
                diff_se=est.diff_se,
                diff_df=est.df if est.df is not None else math.nan,
                p_value=est.p_value,
                p_at_floor=est.p_at_floor,
                p_test="bootstrap",
                p_percentile=est.p_percentile,
                p_images=est.p_images,
            )
    else:
        if who != base:
            row.update(p_value=row["p_welch"], p_test="welch")
        exact = _exact_fallback(group, values) if value == "accuracy" else None
        if exact is not None and not math.isnan(row["ci_low"]):
            row["ci_low"], row["ci_high"] = min(row["ci_low"], exact[0]), max(row["ci_high"], exact[1])
    if bounds is not None and not math.isnan(row["ci_low"]):
        row["ci_low"], row["ci_high"] = max(row["ci_low"], bounds[0]), min(row["ci_high"], bounds[1])
    return row


def _exact_fallback(group: pd.DataFrame, values: np.ndarray) -> tuple[float, float] | None:
    """Without outcomes: the Clopper-Pearson interval over the n images when every seed's accuracy is 0
    (or 1) and the number of images `n` is known and the same for every seed, else None."""
    if "n" not in group.columns or len(values) == 0 or np.isnan(values).any():
        return None
    n = pd.to_numeric(group["n"], errors="coerce").to_numpy(float)
    if np.isnan(n).any() or (n != n[0]).any() or n[0] < 1:
        return None
    if (values == 0).all():
        return clopper_pearson(0, int(n[0]))
    if (values == 1).all():
        return clopper_pearson(int(n[0]), int(n[0]))
    return None


def _norm(results: pd.DataFrame, attack: str) -> str:
    """ "linf" or "l2" (or another norm, lower case) of an attack: the results' `norm` column, else its
    label (":norm=l2")."""
    if "norm" in results.columns:
        norms = results.loc[results["attack"] == attack, "norm"].dropna().astype(str)
        if not norms.empty:
            return norms.iloc[0].strip().lower()
    return "l2" if ":norm=l2" in attack else "linf"


def _worst_name(norm: str) -> str:
    return WORST_BY_NORM.get(norm, f"worst:{norm}")


def _families(
    out: pd.DataFrame, results: pd.DataFrame, keys: list[str], compare: str, base: object, value: str
) -> list[str]:
    """The family of each summary row (see `summarize`).

    "primary": clean accuracy and the per-input worst case ("worst" for L-infinity, "worst:l2" for L2)
    at each eps > 0; "secondary": every other attack at eps > 0; "": the baseline's rows, an attack's
    eps = 0 row (it repeats clean accuracy), and an attack whose outcomes equal its norm's worst case at
    that eps on every network (per (loss, seed), equal `correct`: as worst <= attack per image, equal
    counts are equal outcomes; the last attack of a cascade, or the only attack at that eps)."""
    if "attack" not in keys or "eps" not in keys:
        return ["" if who == base else "primary" for who in out[compare]]
    other = [k for k in keys if k not in ("attack", "eps")]
    count = "correct" if "correct" in results.columns else value
    network = [compare, "seed"]
    tables: dict[tuple, dict] = {}
    for key, group in results.groupby(other + ["attack", "eps"], sort=False, dropna=False):
        key = _as_tuple(key)
        if "seed" in results.columns:
            tables[key] = dict(zip(map(tuple, group[network].astype(str).to_numpy()), group[count]))
        else:  # no seed column: networks by position within each loss
            tables[key] = {
                (str(who), i): c for who, g in group.groupby(compare, sort=False) for i, c in enumerate(g[count])
            }
    norms = {a: _norm(results, a) for a in results["attack"].astype(str).unique()}
    families = []
    for row in out.to_dict("records"):
        attack, eps = str(row["attack"]), float(row["eps"])
        if row[compare] == base:
            families.append("")
        elif attack == "clean":
            families.append("primary")
        elif eps == 0.0:
            families.append("")
        elif attack in WORST_BY_NORM.values() or attack.startswith("worst:"):
            families.append("primary")
        else:
            where = tuple(row[k] for k in other)
            mine = tables.get(where + (attack, eps))
            worst = tables.get(where + (_worst_name(norms.get(attack, "linf")), eps))
            same = mine is not None and worst is not None and mine.keys() == worst.keys()
            same = same and all(_equal(mine[k], worst[k]) for k in mine)
            families.append("" if same else "secondary")
    return families


def _equal(a: object, b: object) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


def _as_tuple(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)
