"""Nested cross-validated encoding: held-out predictions and scores of a ridge encoding model.

The outer folds are contiguous blocks (:func:`brainlike.encoding.folds.contiguous_folds`), each
scored by a Pearson r and therefore at least
:data:`~brainlike.encoding.folds.MIN_TEST_FOLD_SIZE` samples long.

Imports: validation, folds, metrics, options, estimators (top of the package).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from brainlike.encoding.estimators import RidgeCV
from brainlike.encoding.folds import contiguous_folds
from brainlike.encoding.metrics import pearson_r
from brainlike.encoding.options import EncodingOptions, merge_options
from brainlike.encoding.validation import EncodingError, check_xy

__all__ = ["EncodingResult", "cross_validated_encoding", "standardize_train_test"]


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
    options: EncodingOptions | None = None,
    groups: Any = None,
    **overrides: Any,
) -> EncodingResult:
    """Nested cross-validated ridge encoding model (features -> brain targets).

    Outer loop: contiguous K-fold (group-aware if ``groups``). In each outer fold a
    :class:`~brainlike.encoding.estimators.RidgeCV` is fitted on the training samples, choosing
    alpha per target by an inner contiguous CV restricted to those samples (group-aware if
    ``groups``), and predicts the held-out fold.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
        Features (e.g. one layer's activations per word / TR); any unit.
    Y : array-like, shape (n_samples, n_targets) or (n_samples,)
        Brain targets (electrodes / voxels); any unit.
    options : EncodingOptions, optional
        All the settings below (default :class:`~brainlike.encoding.options.EncodingOptions`);
        ``n_permutations`` and ``seed`` are not used here.
    groups : array-like (n_samples,), optional
        Run labels; no run is ever split between train and test (outer and inner).
    **overrides
        Fields of :class:`~brainlike.encoding.options.EncodingOptions` given as keywords
        (``n_splits=3``), applied over ``options``; the fields are:

    n_splits : int
        Number of outer folds (>= 2).
    inner_splits : int
        Number of inner folds used to choose alpha (>= 2).
    alphas : array-like (n_alphas,), optional
        Candidate penalties; default :data:`~brainlike.encoding.validation.DEFAULT_ALPHAS`
        (applies to z-scored features when ``standardize``).
    backend : {"numpy", "torch", "torch_cpu", "torch_cuda"} or Backend
    fit_intercept : bool
        Fit an unpenalised intercept per target.
    standardize : bool
        z-score the columns of X with the statistics of each outer training fold.
    memory_budget_gb : float
        Working memory (GiB) for target chunks, see :class:`RidgeCV`.
    gap : int
        Samples dropped from the training sets next to every test block, on both sides, in the
        outer and the inner folds (see :func:`~brainlike.encoding.folds.contiguous_folds`);
        0 (default) keeps them all. For fMRI, a few TRs keep the haemodynamic response of a
        test sample out of the training data.
    min_test_size : int
        Smallest outer test fold, in samples (default
        :data:`~brainlike.encoding.folds.MIN_TEST_FOLD_SIZE` = 10): ``fold_scores`` are
        Pearson r within each fold, biased towards 0 on small folds (a 1-sample fold has no
        r); too many folds for the samples raise an error that gives the largest valid
        ``n_splits``.

    Returns
    -------
    EncodingResult
        ``scores`` (n_targets,), ``fold_scores`` (n_folds, n_targets), ``alphas``
        (n_folds, n_targets), ``predictions`` (n_samples, n_targets) float32.

    Raises
    ------
    EncodingError (a ValueError)
        Bad shapes, NaN/inf, too few samples or groups for the folds, outer test folds
        smaller than ``min_test_size``, bad alphas, unknown option names.
    """
    opts = merge_options(options, overrides)
    X, Y, _ = check_xy(X, Y)
    assert Y is not None
    alpha_grid = opts.alpha_grid
    n_splits, inner_splits, gap, standardize = opts.n_splits, opts.inner_splits, opts.gap, opts.standardize
    n, t = Y.shape
    g = None if groups is None else np.asarray(groups)
    outer = contiguous_folds(n, n_splits, groups=g, gap=gap, min_test_size=opts.min_test_size)
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
            inner = contiguous_folds(train.size, inner_splits, groups=g_tr, gap=gap)
        except EncodingError as exc:
            raise EncodingError(f"outer fold {k} ({train.size} training samples): {exc}") from exc
        model = RidgeCV(
            alphas=alpha_grid, cv=inner, backend=opts.backend, fit_intercept=opts.fit_intercept,
            memory_budget_gb=opts.memory_budget_gb,
        )
        model.fit(X_tr, Y[train])
        pred = np.asarray(X_te, dtype=np.float64) @ model.coef_.astype(np.float64)
        pred += model.intercept_ - ybar  # centred on the overall target mean
        predictions[test] = pred + ybar
        fold_scores[k] = pearson_r(Y[test] - ybar, pred)
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
