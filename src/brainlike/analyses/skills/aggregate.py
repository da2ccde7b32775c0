"""Skill-Mix scores aggregated by k with confidence intervals (Wilson for rates, bootstrap for means)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from brainlike.errors import BrainlikeError

#: metric -> kind: "binary" (Wilson interval) or "continuous" (percentile bootstrap)
METRICS = {"full_marks": "binary", "all_skills": "binary", "score": "continuous", "skill_fraction": "continuous"}
#: metric -> its name in Yu et al. (2023)
PAPER_NAMES = {"full_marks": "Ratio of Full Marks", "all_skills": "Ratio of All Skills",
               "skill_fraction": "Skill Fraction", "score": "points / (k + 3)"}


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (NaN, NaN when ``n == 0``)."""
    if n < 0 or successes < 0 or successes > n:
        raise BrainlikeError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def bootstrap_interval(values, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (``(n,)``; NaN, NaN when empty)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    a = (1 - confidence) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def best_of_generations(items: pd.DataFrame) -> pd.DataFrame:
    """Each item's best generation round, per metric (the Skill-Mix reference code's ``gen_pts_agg_method='max'``).

    Skill-Mix lets the generator try every (skills, topic) draw several times (independent generations, each
    with its revision round, each graded) and scores the draw by the maximum over the tries, metric by metric
    (LeoYu/skill-mix, ``aggregate_metrics.py``: ``aggregate_across_generations(..., 'max')``).

    Parameters
    ----------
    items : pd.DataFrame
        one row per (item, generation round, grader) with ``generator, grader, item_id, k, generation,
        status, ungradable`` and the metric columns.

    Returns
    -------
    pd.DataFrame
        One row per (generator, grader, item): ``generator, grader, item_id, k, status`` ("done" only if
        every generation round is done), ``ungradable`` (no gradable round), ``n_generations`` and each
        metric's maximum over the gradable rounds (NaN if none). ``items`` itself when it has a single round.
    """
    if "generation" not in items.columns or items["generation"].nunique() <= 1:
        return items
    rows = []
    for (gen, grader, item_id, k), df in items.groupby(["generator", "grader", "item_id", "k"], sort=True):
        done = df[df["status"] == "done"]
        ok = done[~done["ungradable"].astype(bool)]
        row = {"generator": gen, "grader": grader, "item_id": item_id, "k": int(k),
               "status": "done" if len(done) == len(df) else "error", "ungradable": len(ok) == 0,
               "n_generations": int(len(df))}
        for metric in METRICS:
            vals = ok[metric].to_numpy(dtype=np.float64)
            row[metric] = float(np.nanmax(vals)) if np.isfinite(vals).any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_scores(items: pd.DataFrame, *, confidence: float = 0.95, ungradable_as_zero: bool = False,
                     n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean score per (generator, grader, k, metric) with a confidence interval.

    Parameters
    ----------
    items : pd.DataFrame
        one row per item with ``generator, grader, k, status, ungradable`` and the metric columns
        (``full_marks, all_skills, score, skill_fraction``; NaN when ungradable).
    ungradable_as_zero : bool
        count ungradable items as 0 instead of leaving them out.

    Returns
    -------
    pd.DataFrame
        One row per (generator, grader, k, metric): ``paper_name`` (Yu et al.'s name),
        ``mean, ci_low, ci_high, ci_method, n`` (items averaged),
        ``n_items`` (all items), ``n_ungradable``, ``n_error`` (generation or grading failed), ``confidence``.
    """
    rows = []
    if items.empty:
        return pd.DataFrame(columns=["generator", "grader", "k", "metric", "paper_name", "mean", "ci_low",
                                     "ci_high", "ci_method", "n", "n_items", "n_ungradable", "n_error", "confidence"])
    for (gen, grader, k), df in items.groupby(["generator", "grader", "k"], sort=True):
        done = df[df["status"] == "done"]
        n_err = int((df["status"] != "done").sum())
        ungr = done["ungradable"].astype(bool)
        for metric, kind in METRICS.items():
            vals = done[metric].to_numpy(dtype=np.float64)
            if ungradable_as_zero:
                vals = np.where(ungr.to_numpy(), 0.0, vals)
            vals = vals[np.isfinite(vals)]
            n = int(vals.size)
            if kind == "binary":
                lo, hi = wilson_interval(int(round(vals.sum())), n, confidence)
                method = "wilson"
            else:
                lo, hi = bootstrap_interval(vals, confidence, n_boot, seed + int(k))
                method = "bootstrap"
            rows.append({"generator": gen, "grader": grader, "k": int(k), "metric": metric,
                         "paper_name": PAPER_NAMES[metric],
                         "mean": float(vals.mean()) if n else float("nan"), "ci_low": lo, "ci_high": hi,
                         "ci_method": method, "n": n, "n_items": int(len(df)), "n_ungradable": int(ungr.sum()),
                         "n_error": n_err, "confidence": confidence})
    return pd.DataFrame(rows)
