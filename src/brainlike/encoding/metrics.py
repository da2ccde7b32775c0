"""Column-wise scoring functions for encoding models.

Every function takes ``y_true`` and ``y_pred`` of shape ``(n_samples, n_targets)``
(or ``(n_samples,)``, treated as one target) and returns one score per target,
shape ``(n_targets,)``, as float64. Inputs are unitless (any unit, as long as both
arrays share it); scores are unitless.

Conventions for degenerate columns (documented, tested):

* :func:`pearson_r` returns **0.0** (never NaN) where either column is constant
  (zero variance), since a constant prediction or a constant target carries no
  linear association.
* :func:`r2_score` returns **0.0** where ``y_true`` is constant and the prediction is
  exact, and ``-inf``-free large negative values are avoided by returning
  ``0.0`` for a constant ``y_true`` column in all cases (the total sum of squares is
  zero, so R^2 is undefined; 0.0 mirrors "no explained variance").
"""
from __future__ import annotations

import numpy as np

__all__ = ["pearson_r", "r2_score", "correlation_score"]


def _as_2d_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return float64 2-D views ``(n_samples, n_targets)`` of both arrays."""
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if yt.ndim == 1:
        yt = yt[:, None]
    if yp.ndim == 1:
        yp = yp[:, None]
    if yt.ndim != 2 or yp.ndim != 2:
        raise ValueError(
            f"y_true and y_pred must be 1-D or 2-D arrays, got shapes {np.shape(y_true)} "
            f"and {np.shape(y_pred)}"
        )
    if yt.shape != yp.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, got {yt.shape} and {yp.shape}"
        )
    if yt.shape[0] < 2:
        raise ValueError(f"at least 2 samples are needed to score, got {yt.shape[0]}")
    return yt.astype(np.float64, copy=False), yp.astype(np.float64, copy=False)


def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation between matching columns of ``y_true`` and ``y_pred``.

    Parameters
    ----------
    y_true : array, shape (n_samples, n_targets) or (n_samples,)
        Measured responses (any unit).
    y_pred : array, same shape as ``y_true``
        Predicted responses (same unit as ``y_true``).

    Returns
    -------
    r : ndarray of float64, shape (n_targets,)
        Pearson r per column, in [-1, 1]. **0.0 (not NaN)** where either column is
        constant (its variance is zero or below ``1e-30`` times the squared scale of
        the column), so downstream averages never see NaN.
    """
    yt, yp = _as_2d_pair(y_true, y_pred)
    yt = yt - yt.mean(axis=0)
    yp = yp - yp.mean(axis=0)
    ss_t = np.einsum("ij,ij->j", yt, yt)
    ss_p = np.einsum("ij,ij->j", yp, yp)
    cross = np.einsum("ij,ij->j", yt, yp)
    denom = np.sqrt(ss_t * ss_p)
    ok = (ss_t > 0) & (ss_p > 0) & np.isfinite(denom) & (denom > 0)
    r = np.zeros(yt.shape[1], dtype=np.float64)
    r[ok] = cross[ok] / denom[ok]
    return np.clip(r, -1.0, 1.0)


def correlation_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Alias of :func:`pearson_r` (himalaya's name); shape ``(n_targets,)``."""
    return pearson_r(y_true, y_pred)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column (like himalaya / sklearn ``raw_values``).

    ``R^2 = 1 - sum((y_true - y_pred)^2) / sum((y_true - mean(y_true))^2)``.

    Parameters
    ----------
    y_true : array, shape (n_samples, n_targets) or (n_samples,)
        Measured responses (any unit).
    y_pred : array, same shape as ``y_true``
        Predicted responses (same unit as ``y_true``).

    Returns
    -------
    r2 : ndarray of float64, shape (n_targets,)
        R^2 per column, at most 1 (can be negative). **0.0** where ``y_true`` is
        constant (R^2 undefined).
    """
    yt, yp = _as_2d_pair(y_true, y_pred)
    ss_res = np.einsum("ij,ij->j", yt - yp, yt - yp)
    ytc = yt - yt.mean(axis=0)
    ss_tot = np.einsum("ij,ij->j", ytc, ytc)
    out = np.zeros(yt.shape[1], dtype=np.float64)
    ok = ss_tot > 0
    out[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    return out
