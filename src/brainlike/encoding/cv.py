"""Contiguous (time-ordered) cross-validation folds and nested cross-validated encoding.

Brain recordings are autocorrelated in time, so folds are contiguous blocks in sample order,
never shuffled; with run labels (``groups``) whole runs are kept together.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from brainlike.encoding.backends import Backend, EncodingError
from brainlike.encoding.metrics import pearson_r
from brainlike.encoding.ridge import DEFAULT_ALPHAS, RidgeCV, check_alphas, check_xy

__all__ = ["contiguous_folds", "EncodingResult", "cross_validated_encoding", "standardize_train_test"]


def _check_n_splits(n_splits: Any, n_units: int, unit: str) -> int:
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)):
        raise EncodingError(f"n_splits must be an int, got {n_splits!r}")
    n_splits = int(n_splits)
    if n_splits < 2:
        raise EncodingError(f"n_splits must be at least 2, got {n_splits}")
    if n_splits > n_units:
        raise EncodingError(
            f"n_splits={n_splits} is greater than the number of {unit} ({n_units}); "
            f"use at most {n_units} folds"
        )
    return n_splits


def contiguous_folds(
    n_samples: int, n_splits: int = 5, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous K-fold splits in time order (no shuffling), optionally group-aware.

    Without ``groups`` this equals scikit-learn's ``KFold(n_splits, shuffle=False)``: the
    test folds are consecutive blocks, the first ``n_samples % n_splits`` of them one sample
    longer. With ``groups`` (e.g. run labels), the groups are taken in order of first
    appearance and cut into ``n_splits`` consecutive blocks of whole groups, with block
    boundaries placed so that the numbers of samples are as balanced as possible; a group is
    never split between train and test. Deterministic.

    Parameters
    ----------
    n_samples : int
        Number of samples (time points / words).
    n_splits : int
        Number of folds, at least 2 and at most the number of samples (or groups).
    groups : array-like, shape (n_samples,), optional
        Group label of every sample (any hashable values).

    Returns
    -------
    folds : list of ``n_splits`` tuples (train, test)
        int64 index arrays; ``test`` of fold k is block k, ``train`` all other samples, both
        sorted. The test sets are disjoint and cover all samples.

    Raises
    ------
    EncodingError (a ValueError)
        If ``n_splits < 2``, ``n_splits`` exceeds the number of samples (or of groups), or
        ``groups`` does not have ``n_samples`` entries.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise EncodingError(f"n_samples must be a positive int, got {n_samples!r}")
    n_samples = int(n_samples)
    idx = np.arange(n_samples, dtype=np.int64)
    if groups is None:
        n_splits = _check_n_splits(n_splits, n_samples, "samples")
        sizes = np.full(n_splits, n_samples // n_splits, dtype=np.int64)
        sizes[: n_samples % n_splits] += 1
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        return [
            (np.concatenate([idx[: bounds[k]], idx[bounds[k + 1]:]]), idx[bounds[k]: bounds[k + 1]].copy())
            for k in range(n_splits)
        ]
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n_samples:
        raise EncodingError(f"groups must have shape ({n_samples},), got {g.shape}")
    _, first, inverse, counts = np.unique(g, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(first, kind="stable")  # groups in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    sample_group = rank[inverse.reshape(-1)]  # group position (0..n_groups-1) of every sample
    counts = counts[order]
    n_groups = counts.size
    n_splits = _check_n_splits(n_splits, n_groups, "groups")
    cum = np.concatenate([[0], np.cumsum(counts)])  # samples before group j
    cuts = [0]
    for k in range(1, n_splits):
        target = k * n_samples / n_splits
        lo = cuts[-1] + 1
        hi = n_groups - (n_splits - k)
        cand = np.arange(lo, hi + 1)
        cuts.append(int(cand[np.argmin(np.abs(cum[cand] - target))]))
    cuts.append(n_groups)
    folds = []
    for k in range(n_splits):
        in_test = (sample_group >= cuts[k]) & (sample_group < cuts[k + 1])
        folds.append((idx[~in_test], idx[in_test]))
    return folds


@dataclass
class EncodingResult:
    """Outcome of :func:`cross_validated_encoding`.

    Attributes
    ----------
    scores : ndarray (n_targets,) float64
        Pearson r between the held-out predictions of all outer folds (concatenated) and Y
        (computed from float64 predictions; 0.0 for constant targets or predictions).
    fold_scores : ndarray (n_folds, n_targets) float64
        Pearson r within each outer test fold.
    alphas : ndarray (n_folds, n_targets) float64
        Alpha chosen by the inner CV in each outer fold.
    predictions : ndarray (n_samples, n_targets) float32
        Held-out predictions, in Y units. (Scores are computed before the float32 rounding,
        which matters for strongly regularised, nearly constant predictions.)
    """

    scores: np.ndarray
    fold_scores: np.ndarray
    alphas: np.ndarray
    predictions: np.ndarray

    @property
    def mean_score(self) -> float:
        """Mean of :attr:`scores` over targets (unitless)."""
        return float(np.mean(self.scores))


def standardize_train_test(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-score columns with the training statistics.

    Parameters
    ----------
    X_train : ndarray (n_train, p)
    X_test : ndarray (n_test, p)

    Returns
    -------
    Z_train, Z_test : ndarrays of the same shapes, float32 (float64 if the input is float64):
        ``(X - mean_train) / std_train``; constant training columns (std 0) are only centred,
        so they become 0 in training.
    """
    dt = X_train.dtype if X_train.dtype in (np.float32, np.float64) else np.float64
    mean = X_train.mean(axis=0, dtype=np.float64)
    std = X_train.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0
    Z_tr = ((X_train - mean) / std).astype(dt, copy=False)
    Z_te = ((X_test - mean) / std).astype(dt, copy=False)
    return Z_tr, Z_te


def cross_validated_encoding(
    X: Any,
    Y: Any,
    *,
    n_splits: int = 5,
    inner_splits: int = 5,
    alphas: Any = None,
    groups: Any = None,
    backend: str | Backend = "numpy",
    fit_intercept: bool = True,
    standardize: bool = True,
    memory_budget_gb: float = 2.0,
) -> EncodingResult:
    """Nested cross-validated ridge encoding model (features -> brain targets).

    Outer loop: contiguous K-fold (group-aware if ``groups``). In each outer fold a
    :class:`~brainlike.encoding.ridge.RidgeCV` is fitted on the training samples, choosing
    alpha per target by an inner contiguous CV restricted to those samples (group-aware if
    ``groups``), and predicts the held-out fold.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
        Features (e.g. one layer's activations per word / TR); any unit.
    Y : array-like, shape (n_samples, n_targets) or (n_samples,)
        Brain targets (electrodes / voxels); any unit.
    n_splits : int
        Number of outer folds (>= 2).
    inner_splits : int
        Number of inner folds used to choose alpha (>= 2).
    alphas : array-like (n_alphas,), optional
        Candidate penalties; default :data:`~brainlike.encoding.ridge.DEFAULT_ALPHAS`
        (applies to z-scored features when ``standardize``).
    groups : array-like (n_samples,), optional
        Run labels; no run is ever split between train and test (outer and inner).
    backend : {"numpy", "torch", "torch_cpu", "torch_cuda"} or Backend
    fit_intercept : bool
        Fit an unpenalised intercept per target.
    standardize : bool
        z-score the columns of X with the statistics of each outer training fold.
    memory_budget_gb : float
        Working memory (GiB) for target chunks, see :class:`RidgeCV`.

    Returns
    -------
    EncodingResult
        ``scores`` (n_targets,), ``fold_scores`` (n_folds, n_targets), ``alphas``
        (n_folds, n_targets), ``predictions`` (n_samples, n_targets) float32.

    Raises
    ------
    EncodingError (a ValueError)
        Bad shapes, NaN/inf, too few samples or groups for the folds, bad alphas.
    """
    X, Y, _ = check_xy(X, Y)
    assert Y is not None
    alpha_grid = check_alphas(DEFAULT_ALPHAS if alphas is None else alphas)
    n, t = Y.shape
    g = None if groups is None else np.asarray(groups)
    outer = contiguous_folds(n, n_splits, groups=g)
    predictions = np.empty((n, t), dtype=np.float32)
    # Scores are computed from float64 predictions: the float32 copy returned to the caller
    # rounds away the tiny variations of strongly regularised predictions around a large
    # intercept (|r| errors up to ~1e-2 for targets that chose alpha ~1e7). Running sums of
    # (prediction - ybar) per target give the overall r without an (n, t) float64 array.
    ybar = Y.mean(axis=0, dtype=np.float64)
    s_p = np.zeros(t)
    s_pp = np.zeros(t)
    s_yp = np.zeros(t)
    fold_scores = np.empty((len(outer), t), dtype=np.float64)
    fold_alphas = np.empty((len(outer), t), dtype=np.float64)
    for k, (train, test) in enumerate(outer):
        X_tr, X_te = X[train], X[test]
        if standardize:
            X_tr, X_te = standardize_train_test(X_tr, X_te)
        g_tr = None if g is None else g[train]
        try:
            inner = contiguous_folds(train.size, inner_splits, groups=g_tr)
        except EncodingError as exc:
            raise EncodingError(f"outer fold {k} ({train.size} training samples): {exc}") from exc
        model = RidgeCV(
            alphas=alpha_grid, cv=inner, backend=backend, fit_intercept=fit_intercept,
            memory_budget_gb=memory_budget_gb,
        )
        model.fit(X_tr, Y[train])
        pred = np.asarray(X_te, dtype=np.float64) @ model.coef_.astype(np.float64)
        pred += model.intercept_ - ybar  # centred on the overall target mean
        predictions[test] = pred + ybar
        if test.size >= 2:
            fold_scores[k] = pearson_r(Y[test] - ybar, pred)
        else:
            fold_scores[k] = 0.0
        yc = Y[test] - ybar
        s_p += pred.sum(axis=0)
        s_pp += np.einsum("ij,ij->j", pred, pred)
        s_yp += np.einsum("ij,ij->j", yc, pred)
        fold_alphas[k] = model.best_alphas_
        del model
    yc_all = Y - ybar
    ss_y = np.einsum("ij,ij->j", yc_all, yc_all)  # sum of (y - ybar)^2 (mean of y - ybar is 0)
    del yc_all
    var_p = s_pp - s_p * s_p / n
    cov = s_yp  # sum over samples of (y - ybar) * (p - mean p); the mean term vanishes
    ok = (ss_y > 0) & (var_p > 1e-12 * np.maximum(s_pp, 1e-300))
    scores = np.zeros(t)
    scores[ok] = cov[ok] / np.sqrt(ss_y[ok] * var_p[ok])
    return EncodingResult(
        scores=np.clip(scores, -1.0, 1.0),
        fold_scores=fold_scores,
        alphas=fold_alphas,
        predictions=predictions,
    )
