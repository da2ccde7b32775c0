"""Agreement between Skill-Mix gradings (rounds of one grader, or different graders) with bootstrap CIs.

Every grading gives ``k + 3`` binary points per item (one per skill, topic, sentence limit, makes sense). For
each pair of gradings (``grader/round``) the points of the items both could grade are compared: percent
agreement and Cohen's kappa (scikit-learn ``cohen_kappa_score``), with a percentile bootstrap interval
over items (items resampled with replacement, all their points kept together).
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

POINT_COLUMNS = ("topic", "sentence_limit", "makes_sense")

AGREEMENT_COLUMNS = ["grading_a", "grading_b", "grader_a", "grader_b", "round_a", "round_b", "kind", "n_items",
                     "n_points", "percent_agreement", "kappa", "kappa_ci_low", "kappa_ci_high", "confidence"]


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa by scikit-learn (1.0 when the two agree everywhere, NaN when empty)."""
    if a.size == 0:
        return float("nan")
    if np.array_equal(a, b):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(a, b))


def fast_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` for label arrays ``(n,)`` in numpy.

    (the bootstrap's inner loop; equal to scikit-learn's ``cohen_kappa_score``, checked in the tests). 1.0 when ``a ==
    b`` everywhere.
    """
    if a.size == 0:
        return float("nan")
    po = float(np.mean(a == b))
    labels = np.union1d(a, b)
    pe = float(sum(np.mean(a == c) * np.mean(b == c) for c in labels))
    if pe >= 1.0:
        return 1.0 if po == 1.0 else float("nan")
    return (po - pe) / (1.0 - pe)


def _bootstrap_kappa(pairs: list[tuple[np.ndarray, np.ndarray]], n_boot: int, rng) -> np.ndarray:
    """``(n_boot,)`` kappas of item-resampled replicates, vectorised.

    Per-item counts of agreements and of each label, summed with the replicate's multiplicities (same value as
    :func:`fast_kappa` on the concatenation).
    """
    labels = np.union1d(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))
    n_items = len(pairs)
    m = np.array([p[0].size for p in pairs], float)
    agree = np.array([np.sum(p[0] == p[1]) for p in pairs], float)
    ca = np.array([[np.sum(p[0] == c) for c in labels] for p in pairs], float)
    cb = np.array([[np.sum(p[1] == c) for c in labels] for p in pairs], float)
    idx = rng.integers(0, n_items, size=(n_boot, n_items))
    w = np.zeros((n_boot, n_items))
    np.add.at(w, (np.repeat(np.arange(n_boot), n_items), idx.ravel()), 1.0)
    total = w @ m
    po = (w @ agree) / total
    pe = np.sum((w @ ca) * (w @ cb), axis=1) / total ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = (po - pe) / (1.0 - pe)
    return np.where(pe >= 1.0, np.where(po == 1.0, 1.0, np.nan), kappa)


def grading_agreement(gradings: pd.DataFrame, *, confidence: float = 0.95, n_boot: int = 1000,
                      seed: int = 0) -> pd.DataFrame:
    """Pairwise agreement of gradings.

    Parameters
    ----------
    gradings : pd.DataFrame
        one row per (item, grader, round) with ``item_key, grader, round, ungradable`` and
        ``points`` (a list of the ``k + 3`` points: skills in item order, then topic, sentence limit,
        makes sense; ignored when ungradable).

    Returns
    -------
    pd.DataFrame
        One row per pair of gradings (``grader/round``): ``grading_a, grading_b, grader_a, grader_b, round_a,
        round_b, kind`` ("same grader" or "between graders"), ``n_items`` (items both graded), ``n_points``,
        ``percent_agreement``, ``kappa`` (Cohen; 1.0 when the two agree on every point), ``kappa_ci_low``,
        ``kappa_ci_high`` (bootstrap over items; NaN with fewer than 2 items), ``confidence``. Empty when
        there is only one grading.
    """
    if gradings.empty:
        return pd.DataFrame(columns=AGREEMENT_COLUMNS)
    ok = gradings[~gradings["ungradable"].astype(bool)]
    by = {(g, int(r)): {row.item_key: np.asarray(row.points, dtype=np.int64) for row in d.itertuples()}
          for (g, r), d in ok.groupby(["grader", "round"], sort=True)}
    names = sorted({(g, int(r)) for g, r in zip(gradings["grader"], gradings["round"])})
    rng = np.random.default_rng(seed)
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    rows = []
    for (ga, ra), (gb, rb) in itertools.combinations(names, 2):
        da, db = by.get((ga, ra), {}), by.get((gb, rb), {})
        keys = sorted(set(da) & set(db))
        pairs = [(da[k], db[k]) for k in keys if da[k].shape == db[k].shape]
        a = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0, np.int64)
        b = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0, np.int64)
        kappa = _kappa(a, b)
        lo = hi = float("nan")
        if len(pairs) >= 2:
            boot = _bootstrap_kappa(pairs, n_boot, rng)
            boot = boot[np.isfinite(boot)]
            if boot.size:
                lo, hi = float(np.quantile(boot, lo_q)), float(np.quantile(boot, hi_q))
        rows.append({"grading_a": f"{ga}/{ra}", "grading_b": f"{gb}/{rb}", "grader_a": ga, "grader_b": gb,
                     "round_a": ra, "round_b": rb, "kind": "same grader" if ga == gb else "between graders",
                     "n_items": len(pairs), "n_points": int(a.size),
                     "percent_agreement": float(np.mean(a == b)) if a.size else float("nan"), "kappa": kappa,
                     "kappa_ci_low": lo, "kappa_ci_high": hi, "confidence": confidence})
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
