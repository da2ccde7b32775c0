"""Statistics for encoding scores: noise ceilings, autocorrelation-aware permutation tests, FDR.

* :func:`split_half_reliability` — noise ceiling from repeated presentations (split-half correlation,
  Spearman–Brown corrected).
* :func:`inter_subject_correlation` / :func:`isc_ceiling` — leave-one-subject-out correlation when several
  subjects heard the same stimulus (an estimate of the best achievable r, see the docstring).
* :func:`loo_isc` / :func:`split_half_ceiling` — the two subject-level noise ceilings of a dataset in which
  many subjects heard one stimulus (each subject vs the mean of the others; random halves of the subjects,
  Spearman–Brown corrected, with the spread over splits); :func:`spearman_brown` the prophecy formula;
  :func:`add_ceiling_columns` puts ceiling-normalised scores beside the raw ones in a score table.
* :func:`permutation_test` — p-values for channel scores by circularly shifting (or block-permuting) the
  held-out predictions against the recordings, which keeps the autocorrelation of both series intact
  (shuffling single samples would not, and gives far too small p-values for fMRI/ECoG).
* :func:`block_bootstrap_ci` — moving-block bootstrap confidence intervals of the scores.
* :func:`fdr_correction` — Benjamini–Hochberg q-values and a significance mask.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sstats

from brainlike.errors import NeuralDataError

__all__ = [
    "noise_ceiling_table",
    "FDRResult",
    "ISCResult",
    "NoiseCeiling",
    "PermutationResult",
    "SplitHalfCeiling",
    "add_ceiling_columns",
    "block_bootstrap_ci",
    "fdr_correction",
    "fold_labels",
    "inter_subject_correlation",
    "isc_ceiling",
    "loo_isc",
    "normalize_scores",
    "permutation_test",
    "spearman_brown",
    "split_half_ceiling",
    "split_half_reliability",
]


def _colwise_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns; 0 where a column is constant. Shapes ``(n, t)`` → ``(t,)``."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    num = np.einsum("ij,ij->j", a, b)
    den = np.sqrt(np.einsum("ij,ij->j", a, a) * np.einsum("ij,ij->j", b, b))
    out = np.zeros(a.shape[1])
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return np.clip(out, -1.0, 1.0)


def _as_2d(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise NeuralDataError(f"{name} must be (n_samples, n_channels); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise NeuralDataError(f"{name} contains NaN or inf; exclude those channels first")
    return arr


# ---------------------------------------------------------------------------------------------- ceilings
@dataclass
class NoiseCeiling:
    """Split-half noise ceiling.

    Attributes
    ----------
    split_half_r : np.ndarray
        ``(n_channels,)`` mean correlation between the averages of two halves of the repeats.
    reliability : np.ndarray
        ``(n_channels,)`` Spearman–Brown corrected reliability of the average over all repeats,
        ``2 r / (1 + r)`` (can be negative for unreliable channels).
    ceiling : np.ndarray
        ``(n_channels,)`` the highest Pearson r a perfect model can reach against the repeat
        average, ``sqrt(max(reliability, 0))``.
    n_repeats : int
        number of repeats used.
    """

    split_half_r: np.ndarray
    reliability: np.ndarray
    ceiling: np.ndarray
    n_repeats: int


def split_half_reliability(repeats, *, n_splits: int = 100, seed: int = 0) -> NoiseCeiling:
    """Noise ceiling from repeated presentations of the same stimulus.

    The repeats are split at random into two halves (``n_splits`` times; all splits when there are few),
    each half is averaged, the halves are correlated per channel, and the mean r is corrected with
    Spearman–Brown to the reliability of the full average.

    Parameters
    ----------
    repeats : array-like of shape (n_repeats, n_samples, n_channels) or list of ndarray
        ``(n_repeats, n_samples, n_channels)`` responses to the same stimulus (e.g. LeBel's
        ``wheretheressmoke`` repeats), any unit; or a list of ``(n_samples, n_channels)`` arrays.
    n_splits : int
        random splits to average over.
    seed : int
        random seed for the splits.
    """
    arr = np.asarray([np.asarray(r, dtype=np.float64) for r in repeats]) if isinstance(repeats, (list, tuple)) \
        else np.asarray(repeats, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise NeuralDataError(f"repeats must be (n_repeats, n_samples, n_channels); got shape {arr.shape}")
    k = arr.shape[0]
    if k < 2:
        raise NeuralDataError(f"a split-half noise ceiling needs at least 2 repeats, got {k}")
    if not np.all(np.isfinite(arr)):
        raise NeuralDataError("repeats contain NaN or inf; exclude those channels first")
    r = _split_half_rs(arr, n_splits, seed).mean(axis=0)
    rel = spearman_brown(r)
    return NoiseCeiling(split_half_r=r, reliability=rel, ceiling=np.sqrt(np.clip(rel, 0, 1)), n_repeats=k)


def spearman_brown(r, factor: float = 2.0) -> np.ndarray:
    """Spearman–Brown prophecy: the reliability of a measure ``factor`` times as long as one of reliability ``r``.

    Parameters
    ----------
    r : array_like
        Reliability (correlation between two parallel measures), any shape, in [-1, 1].
    factor : float
        Length ratio; 2 turns the correlation between two half-averages into the reliability of the
        average over all (``2 r / (1 + r)``).

    Returns
    -------
    np.ndarray
        ``factor * r / (1 + (factor - 1) * r)``, same shape as ``r``; -1 where the denominator is not
        positive (``r <= -1 / (factor - 1)``, e.g. ``r = -1`` for ``factor = 2``).
    """
    r = np.asarray(r, dtype=np.float64)
    if not factor > 0:
        raise NeuralDataError(f"factor must be positive, got {factor}")
    den = 1.0 + (factor - 1.0) * r
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, factor * r / np.where(den > 0, den, 1.0), -1.0)
    return out


def _split_half_rs(arr: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """``(n_used_splits, n_channels)`` r between the two half-averages of ``arr`` ``(k, n, c)`` per split."""
    splits = _splits(arr.shape[0], n_splits, seed)
    return np.stack([_colwise_r(arr[list(a)].mean(axis=0), arr[list(b)].mean(axis=0)) for a, b in splits])


def _splits(k: int, n_splits: int, seed: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Half splits of ``k`` repeats: all distinct ones if there are at most ``n_splits``, else random ones."""
    from itertools import combinations
    from math import comb

    half = k // 2
    n_distinct = comb(k, half) // (2 if k % 2 == 0 else 1)
    if n_distinct <= n_splits:
        out = []
        for a in combinations(range(k), half):
            b = tuple(i for i in range(k) if i not in a)
            if k % 2 == 0 and (b, a) in out:
                continue
            out.append((a, b))
        return out
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_splits):
        perm = rng.permutation(k)
        out.append((tuple(sorted(perm[:half])), tuple(sorted(perm[half:]))))
    return out


def inter_subject_correlation(data, *, method: str = "loo") -> np.ndarray:
    """Inter-subject correlation of every channel (subjects in a common space, e.g. fsaverage vertices).

    Parameters
    ----------
    data : array-like of shape (n_subjects, n_samples, n_channels) or list of ndarray
        ``(n_subjects, n_samples, n_channels)`` or a list of ``(n_samples, n_channels)`` arrays
        recorded while the subjects heard the same stimulus, aligned sample by sample.
    method : str
        ``"loo"``: each subject against the average of all others (returns
        ``(n_subjects, n_channels)``); ``"pairwise"``: mean correlation over all subject pairs
        (returns ``(n_channels,)``).
    """
    arr = np.asarray([np.asarray(d, dtype=np.float64) for d in data]) if isinstance(data, (list, tuple)) \
        else np.asarray(data, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise NeuralDataError(f"data must be (n_subjects, n_samples, n_channels); got shape {arr.shape}")
    n = arr.shape[0]
    if n < 2:
        raise NeuralDataError(f"inter-subject correlation needs at least 2 subjects, got {n}")
    if not np.all(np.isfinite(arr)):
        raise NeuralDataError("data contain NaN or inf; exclude those channels first")
    if method == "loo":
        total = arr.sum(axis=0)
        return np.stack([_colwise_r(arr[i], (total - arr[i]) / (n - 1)) for i in range(n)])
    if method == "pairwise":
        rs = [_colwise_r(arr[i], arr[j]) for i in range(n) for j in range(i + 1, n)]
        return np.mean(rs, axis=0)
    raise NeuralDataError(f"method must be 'loo' or 'pairwise', not {method!r}")


def isc_ceiling(data) -> np.ndarray:
    """``(n_channels,)`` mean leave-one-out ISC: an estimate of the best r a model can reach per channel.

    A model can at most predict the stimulus-driven part of a subject's response, which is what the other
    subjects share with it; the correlation of a subject with the average of the others estimates the r
    of that shared part (slightly below it with few subjects, because the average of the others still
    contains noise; above it if subjects share non-stimulus signals such as scanner drifts). Use it as an
    approximate upper bound: models scoring near it explain what is explainable.
    """
    return inter_subject_correlation(data, method="loo").mean(axis=0)


def _subjects_array(data, name: str = "data") -> np.ndarray:
    """``(n_subjects, n_samples, n_targets)`` float64 from an array or a list of ``(n_samples, n_targets)``."""
    arr = np.asarray([np.asarray(d, dtype=np.float64) for d in data]) if isinstance(data, (list, tuple)) \
        else np.asarray(data, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise NeuralDataError(f"{name} must be (n_subjects, n_samples, n_targets); got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise NeuralDataError(f"{name}: a subject-level noise ceiling needs at least 2 subjects, got {arr.shape[0]}")
    if arr.shape[1] < 3:
        raise NeuralDataError(f"{name}: need at least 3 samples per subject, got {arr.shape[1]}")
    if not np.all(np.isfinite(arr)):
        raise NeuralDataError(f"{name} contains NaN or inf; exclude those subjects or targets first")
    return arr


def _zscore_subjects(arr: np.ndarray) -> np.ndarray:
    """z-score every subject's time course per target (a constant course stays 0)."""
    centred = arr - arr.mean(axis=1, keepdims=True)
    sd = centred.std(axis=1, keepdims=True)
    return centred / np.where(sd > 0, sd, 1.0)


@dataclass(frozen=True)
class ISCResult:
    """Leave-one-subject-out inter-subject correlation.

    Attributes
    ----------
    per_subject : np.ndarray
        ``(n_subjects, n_targets)`` Pearson r of each subject with the mean of all the others.
    mean : np.ndarray
        ``(n_targets,)`` mean over subjects.
    sem : np.ndarray
        ``(n_targets,)`` standard deviation over subjects / sqrt(n_subjects). The leave-one-out values
        share subjects, so this understates the uncertainty; use it to compare targets, not as a test.
    n_subjects : int
        Number of subjects.
    zscored : bool
        Whether each subject was z-scored per target before the others were averaged.
    """

    per_subject: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    n_subjects: int
    zscored: bool


def loo_isc(data, *, zscore: bool = True) -> ISCResult:
    """Leave-one-subject-out inter-subject correlation of every target.

    Each subject's time course is correlated with the mean of the other subjects' (Nastase et al. 2019's
    leave-one-out ISC). It is the ceiling to put beside **per-subject** encoding scores: a model of the
    stimulus can at most predict what a subject shares with the others (see :func:`isc_ceiling`).

    Parameters
    ----------
    data : array_like
        ``(n_subjects, n_samples, n_targets)`` (or a list of ``(n_samples, n_targets)``) responses to one
        stimulus, aligned sample by sample, any unit.
    zscore : bool
        z-score each subject per target first (default), so that subjects recorded in larger raw units
        (another scanner protocol) do not dominate the mean of the others. A subject's own r does not
        depend on its scale.

    Returns
    -------
    ISCResult
        ``per_subject`` ``(n_subjects, n_targets)``, ``mean`` and ``sem`` ``(n_targets,)``.

    Raises
    ------
    NeuralDataError
        Fewer than 2 subjects, a wrong shape, or NaN/inf values.
    """
    arr = _subjects_array(data)
    if zscore:
        arr = _zscore_subjects(arr)
    per = inter_subject_correlation(arr, method="loo")
    n = arr.shape[0]
    return ISCResult(per_subject=per, mean=per.mean(axis=0), sem=per.std(axis=0, ddof=1) / np.sqrt(n) if n > 1
                     else np.zeros(per.shape[1]), n_subjects=n, zscored=zscore)


@dataclass(frozen=True)
class SplitHalfCeiling:
    """Split-half (Spearman–Brown) reliability of the mean over subjects.

    Attributes
    ----------
    split_half_r : np.ndarray
        ``(n_targets,)`` mean over splits of the Pearson r between the means of the two halves.
    reliability : np.ndarray
        ``(n_targets,)`` Spearman–Brown corrected reliability of the mean over all subjects,
        ``2 r / (1 + r)`` of ``split_half_r`` (negative for unreliable targets).
    ceiling : np.ndarray
        ``(n_targets,)`` ``sqrt(max(reliability, 0))``: the highest r a perfect model can reach against the
        **group mean** time course.
    low, high : np.ndarray
        ``(n_targets,)`` percentile interval (level ``ci``) of the per-split corrected reliabilities: how much
        the estimate depends on which subjects fall in which half. It is not a sampling interval of the
        population reliability (the time points are shared by all splits).
    split_r : np.ndarray
        ``(n_splits, n_targets)`` r of every split (before correction).
    n_subjects : int
        Number of subjects.
    ci : float
        Level of ``low``/``high``.
    """

    split_half_r: np.ndarray
    reliability: np.ndarray
    ceiling: np.ndarray
    low: np.ndarray
    high: np.ndarray
    split_r: np.ndarray
    n_subjects: int
    ci: float


def split_half_ceiling(data, n_splits: int = 100, seed: int = 0, *, ci: float = 0.95,
                       zscore: bool = True) -> SplitHalfCeiling:
    """Noise ceiling of the group mean from random halves of the subjects, Spearman–Brown corrected.

    The subjects are split at random into two halves (``n_splits`` times; every distinct split when there
    are fewer), each half is averaged, the two half-means are correlated per target, the r are averaged
    over splits and corrected with :func:`spearman_brown` to the reliability of the mean over all
    subjects. With an odd number of subjects the halves differ by one subject and the factor-2 correction
    is a close approximation. It is the ceiling to put beside scores against the **group mean**.

    Parameters
    ----------
    data : array_like
        ``(n_subjects, n_samples, n_targets)`` (or a list of ``(n_samples, n_targets)``) responses to one
        stimulus, any unit.
    n_splits : int
        Random splits to average over.
    seed : int
        Seed of the random splits.
    ci : float
        Level of the interval over splits, in (0, 1).
    zscore : bool
        z-score each subject per target first (default; see :func:`loo_isc`).

    Returns
    -------
    SplitHalfCeiling
        All arrays ``(n_targets,)`` except ``split_r`` ``(n_splits, n_targets)``.

    Raises
    ------
    NeuralDataError
        Fewer than 2 subjects, a wrong shape, NaN/inf values, or ``ci``/``n_splits`` out of range.
    """
    if not 0 < ci < 1:
        raise NeuralDataError(f"ci must be in (0, 1), got {ci}")
    if n_splits < 1:
        raise NeuralDataError(f"n_splits must be >= 1, got {n_splits}")
    arr = _subjects_array(data)
    if zscore:
        arr = _zscore_subjects(arr)
    rs = _split_half_rs(arr, n_splits, seed)
    r = rs.mean(axis=0)
    rel = spearman_brown(r)
    lo, hi = np.quantile(spearman_brown(rs), [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return SplitHalfCeiling(split_half_r=r, reliability=rel, ceiling=np.sqrt(np.clip(rel, 0, 1)), low=lo, high=hi,
                            split_r=rs, n_subjects=arr.shape[0], ci=float(ci))


def noise_ceiling_table(data, targets: Sequence[str], n_splits: int = 100, seed: int = 0):
    """Per target: the leave-one-subject-out ISC and the split-half reliability of the group mean.

    The ISC is :func:`loo_isc`, the ceiling of per-subject scores; the reliability is :func:`split_half_ceiling`, whose
    square root is its ceiling.

    Parameters
    ----------
    data : array_like
        ``(n_subjects, n_samples, n_targets)`` responses to one stimulus.
    targets : sequence of str
        ``n_targets`` names (ROIs, channels).

    Returns
    -------
    pandas.DataFrame
        One row per target: ``roi, loo_isc, loo_isc_sem, split_half_r, reliability, reliability_low,
        reliability_high, group_ceiling, n_subjects``.
    """
    import pandas as pd

    isc = loo_isc(data)
    sh = split_half_ceiling(data, n_splits=n_splits, seed=seed)
    return pd.DataFrame({
        "roi": list(targets), "loo_isc": isc.mean, "loo_isc_sem": isc.sem, "split_half_r": sh.split_half_r,
        "reliability": sh.reliability, "reliability_low": sh.low, "reliability_high": sh.high,
        "group_ceiling": sh.ceiling, "n_subjects": np.shape(data)[0]})


def normalize_scores(scores, ceiling, *, min_ceiling: float = 0.1) -> np.ndarray:
    """``scores / ceiling`` per channel; NaN where the ceiling is below ``min_ceiling`` (unreliable)."""
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(ceiling, dtype=np.float64)
    if s.shape[-1] != c.shape[-1]:
        raise NeuralDataError(f"{s.shape[-1]} scores but {c.shape[-1]} ceilings")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c >= min_ceiling, s / c, np.nan)



def add_ceiling_columns(scores, ceilings, *, on: str | Sequence[str] = "channel", score: str = "r",
                        min_ceiling: float = 0.1):
    """A copy of a score table with ``ceiling`` and ``<score>_normalized`` columns **beside** the raw score.

    Parameters
    ----------
    scores : pandas.DataFrame
        A tidy score table (e.g. ``model, subject, layer, channel, region, r, ...``); left unchanged.
    ceilings : mapping or pandas.DataFrame
        Ceiling per target: a mapping ``{channel: ceiling}`` (keyed by the single ``on`` column), or a
        table with the ``on`` columns and a ``ceiling`` column (e.g. per ``subject`` and ``channel`` from
        :func:`loo_isc`'s ``per_subject``).
    on : str or sequence of str
        Column(s) identifying a target in both tables.
    score : str
        The score column to normalise.
    min_ceiling : float
        Below this ceiling the normalised score is NaN (dividing by an unreliable ceiling inflates it).

    Returns
    -------
    pandas.DataFrame
        ``scores`` with ``ceiling`` (NaN for targets without one) and ``<score>_normalized`` =
        ``score / ceiling`` inserted right after ``score``; the raw score stays.

    Raises
    ------
    NeuralDataError
        A missing column, or a table of ceilings with duplicate keys.
    """
    import pandas as pd

    keys = [on] if isinstance(on, str) else list(on)
    missing = [c for c in keys + [score] if c not in scores.columns]
    if missing:
        raise NeuralDataError(f"the score table has no column(s) {missing}; columns: {list(scores.columns)}")
    if isinstance(ceilings, pd.DataFrame):
        table = ceilings
    else:
        if len(keys) != 1:
            raise NeuralDataError("a mapping of ceilings needs a single key column (on=...); pass a table instead")
        table = pd.DataFrame({keys[0]: list(ceilings.keys()), "ceiling": list(ceilings.values())})
    bad = [c for c in keys + ["ceiling"] if c not in table.columns]
    if bad:
        raise NeuralDataError(f"the table of ceilings has no column(s) {bad}; columns: {list(table.columns)}")
    table = table[keys + ["ceiling"]]
    if table.duplicated(keys).any():
        raise NeuralDataError(f"the table of ceilings has duplicate keys {keys}")
    out = scores.drop(columns=[c for c in ("ceiling", f"{score}_normalized") if c in scores.columns])
    merged = out.merge(table, on=keys, how="left", validate="many_to_one")
    merged.index = out.index
    ceiling = merged["ceiling"].to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(ceiling >= min_ceiling, out[score].to_numpy(np.float64) / ceiling, np.nan)
    pos = list(out.columns).index(score) + 1
    out.insert(pos, "ceiling", ceiling)
    out.insert(pos + 1, f"{score}_normalized", norm)
    return out

# ---------------------------------------------------------------------------------------------- permutation
@dataclass
class PermutationResult:
    """Permutation test of channel scores.

    Attributes
    ----------
    scores : np.ndarray
        ``(n_channels,)`` observed statistic: Pearson r of the predictions (the mean of the per-group
        r when ``groups`` were given).
    pvalues : np.ndarray
        ``(n_channels,)`` one-sided p-values (``P(null >= observed)``), in ``(0, 1]``.
    null : np.ndarray
        ``(n_permutations, n_channels)`` float32 null distribution.
    method : str
        ``"circular"`` or ``"block"``.
    """

    scores: np.ndarray
    pvalues: np.ndarray
    null: np.ndarray
    method: str


def _groups_index(groups, n: int) -> list[np.ndarray]:
    if groups is None:
        return [np.arange(n)]
    g = np.asarray(groups)
    if g.shape != (n,):
        raise NeuralDataError(f"groups must have one label per sample ({n}); got shape {g.shape}")
    _, first = np.unique(g, return_index=True)
    order = g[np.sort(first)]
    return [np.flatnonzero(g == lab) for lab in order]


def _standardize(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0)
    norm = np.sqrt((x * x).sum(axis=0))
    norm[norm == 0] = np.inf
    return x / norm


def fold_labels(folds: Sequence[tuple[np.ndarray, np.ndarray]], n_samples: int | None = None) -> np.ndarray:
    """``(n_samples,)`` int: the test fold of every sample, from ``[(train_idx, test_idx), ...]``.

    Pass it as ``groups`` to :func:`permutation_test` for cross-validated predictions.

    Raises
    ------
    NeuralDataError
        the test sets overlap or do not cover all samples.
    """
    n = n_samples if n_samples is not None else sum(len(te) for _, te in folds)
    out = np.full(n, -1, dtype=int)
    for k, (_train, test) in enumerate(folds):
        test = np.asarray(test, dtype=int)
        if np.any(out[test] >= 0):
            raise NeuralDataError("test folds overlap")
        out[test] = k
    if np.any(out < 0):
        raise NeuralDataError(f"{int((out < 0).sum())} samples are in no test fold")
    return out


def permutation_test(
    y_true,
    y_pred,
    *,
    groups: Sequence | np.ndarray | None = None,
    method: str = "circular",
    n_permutations: int = 1000,
    min_shift: int | None = None,
    block_size: int | None = None,
    cross_fitted: bool | None = None,
    seed: int = 0,
) -> PermutationResult:
    """p-values for the correlation between held-out predictions and recordings, respecting autocorrelation.

    The null distribution comes from breaking the alignment of predictions and recordings while keeping
    each series' autocorrelation: ``"circular"`` shifts the predictions circularly by a random lag of at
    least ``min_shift`` samples; ``"block"`` cuts them into blocks of ``block_size`` samples and permutes
    the blocks. With ``groups`` (the test fold or run of every sample) this happens within each group and
    the statistic is the mean over groups of the within-group r — pass the test-fold labels of
    cross-validated predictions, so that fold-wise intercepts do not bias the test.

    Cross-fitted predictions (``cross_fitted``, default True when ``groups`` are given): in k-fold
    cross-validation every fold's model is trained on the other folds' recordings, so under the null
    the per-fold scores are positively correlated — the term pairing folds g and h appears in both
    r_g (h trained the model) and r_h (g trained it). Shifting each fold's predictions independently
    destroys that pairing, and the null of the fold average comes out too narrow (about 1/sqrt(2) of
    the true spread: false positive rate ~0.11 instead of 0.05 on pure noise). For a linear (ridge)
    model the pairing terms exactly double the variance of the fold average under the null, whatever
    the fold sizes or autocorrelation, so the null deviations are widened by sqrt(2). Pass
    ``cross_fitted=False`` when the groups are runs predicted by models that never saw any of them.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples, n_channels)
        ``(n_samples, n_channels)`` recordings.
    y_pred : ndarray of shape (n_samples, n_channels)
        ``(n_samples, n_channels)`` cross-validated predictions.
    groups : Sequence | np.ndarray | None
        ``(n_samples,)`` group label per sample, or None (one group).
    method : str
        ``"circular"`` or ``"block"``.
    n_permutations : int
        null samples.
    min_shift : int | None
        smallest circular shift, samples (default: 10 % of the group length, at least 1).
    block_size : int | None
        block length for ``"block"`` (default: 1/20 of the group length, at least 2).
    cross_fitted : bool | None
        groups are cross-validation test folds (see above); default ``groups is not None``.
    seed : int
        random seed.

    Returns
    -------
    PermutationResult
        :class:`PermutationResult` (p-values ``(1 + #{null >= observed}) / (1 + n_permutations)``).
    """
    yt = _as_2d(y_true, "y_true")
    yp = _as_2d(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise NeuralDataError(f"y_true {yt.shape} and y_pred {yp.shape} must have the same shape")
    if method not in ("circular", "block"):
        raise NeuralDataError(f"method must be 'circular' or 'block', not {method!r}")
    if n_permutations < 1:
        raise NeuralDataError("n_permutations must be >= 1")
    n, c = yt.shape
    idx = _groups_index(groups, n)
    rng = np.random.default_rng(seed)
    observed = np.zeros(c)
    null = np.zeros((n_permutations, c))
    for gi in idx:
        m = len(gi)
        if m < 4:
            raise NeuralDataError(f"a group has only {m} samples; permutation tests need at least 4 per group")
        a = _standardize(yt[gi])
        b = _standardize(yp[gi])
        observed += (a * b).sum(axis=0)
        if method == "circular":
            ms = max(1, int(round(0.1 * m))) if min_shift is None else int(min_shift)
            if not 1 <= ms <= m // 2:
                raise NeuralDataError(f"min_shift must be in [1, {m // 2}] for a group of {m} samples, got {ms}")
            # r for every circular lag k at once: sum_t a[t] b[(t + k) mod m]
            fa = np.fft.rfft(a, axis=0)
            fb = np.fft.rfft(b, axis=0)
            lag_r = np.fft.irfft(np.conj(fa) * fb, n=m, axis=0)
            shifts = rng.integers(ms, m - ms + 1, size=n_permutations)
            null += lag_r[shifts]
        else:
            bs = max(2, m // 20) if block_size is None else int(block_size)
            if not 1 <= bs <= m // 2:
                raise NeuralDataError(f"block_size must be in [1, {m // 2}] for a group of {m} samples, got {bs}")
            starts = np.arange(0, m, bs)
            blocks = [np.arange(s, min(s + bs, m)) for s in starts]
            for p in range(n_permutations):
                order = np.concatenate([blocks[j] for j in rng.permutation(len(blocks))])
                null[p] += np.einsum("ij,ij->j", a, b[order])
    k = len(idx)
    observed /= k
    null /= k
    if (groups is not None if cross_fitted is None else cross_fitted) and k >= 2:
        center = null.mean(axis=0)
        null = center + (null - center) * np.sqrt(2.0)
    pvals = (1.0 + (null >= observed - 1e-12).sum(axis=0)) / (1.0 + n_permutations)
    return PermutationResult(scores=observed, pvalues=pvals, null=null.astype(np.float32), method=method)


def block_bootstrap_ci(
    y_true,
    y_pred,
    *,
    block_size: int | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Moving-block bootstrap confidence interval of the per-channel Pearson r.

    Blocks of ``block_size`` consecutive samples (default ``n // 20``, at least 2) are resampled with
    replacement — the same blocks for recordings and predictions — so autocorrelation is kept.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``(low, high)``, each ``(n_channels,)``: percentile bounds at ``(1 - ci) / 2`` and ``(1 + ci) / 2``.
    """
    yt = _as_2d(y_true, "y_true")
    yp = _as_2d(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise NeuralDataError(f"y_true {yt.shape} and y_pred {yp.shape} must have the same shape")
    if not 0 < ci < 1:
        raise NeuralDataError(f"ci must be in (0, 1), got {ci}")
    n = yt.shape[0]
    bs = max(2, n // 20) if block_size is None else int(block_size)
    if not 1 <= bs <= n:
        raise NeuralDataError(f"block_size must be in [1, {n}], got {bs}")
    rng = np.random.default_rng(seed)
    n_blocks = int(np.ceil(n / bs))
    boots = np.empty((n_boot, yt.shape[1]))
    for i in range(n_boot):
        starts = rng.integers(0, n - bs + 1, size=n_blocks)
        sel = (starts[:, None] + np.arange(bs)[None, :]).reshape(-1)[:n]
        boots[i] = _colwise_r(yt[sel], yp[sel])
    lo, hi = np.quantile(boots, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return lo, hi


# ---------------------------------------------------------------------------------------------- FDR
@dataclass
class FDRResult:
    """Benjamini–Hochberg correction.

    Attributes
    ----------
    qvalues : np.ndarray
        ``(n,)`` adjusted p-values (NaN where the p-value was NaN).
    significant : np.ndarray
        ``(n,)`` bool, ``q <= alpha`` (False for NaN).
    alpha : float
        the false discovery rate controlled.
    """

    qvalues: np.ndarray
    significant: np.ndarray
    alpha: float


def fdr_correction(pvalues, alpha: float = 0.05) -> FDRResult:
    """Benjamini–Hochberg FDR over all given p-values (NaN entries are ignored and stay NaN).

    Raises
    ------
    NeuralDataError
        p-values outside [0, 1] or alpha outside (0, 1).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    shape = p.shape
    p = p.reshape(-1)
    if not 0 < alpha < 1:
        raise NeuralDataError(f"alpha must be in (0, 1), got {alpha}")
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise NeuralDataError("p-values must lie in [0, 1]")
    q = np.full(p.shape, np.nan)
    if ok.any():
        q[ok] = sstats.false_discovery_control(p[ok], method="bh")
    sig = np.zeros(p.shape, dtype=bool)
    sig[ok] = q[ok] <= alpha
    return FDRResult(qvalues=q.reshape(shape), significant=sig.reshape(shape), alpha=float(alpha))
