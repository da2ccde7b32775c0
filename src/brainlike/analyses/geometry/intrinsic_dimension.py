"""Intrinsic dimension of point clouds (TwoNN and MLE through scikit-dimension), and test manifolds.

The estimators are local: they look at distances to the nearest neighbours of every point, so they need
a few hundred points or more and no duplicated points (a zero distance breaks TwoNN's ratio). Points are
therefore de-duplicated (rows equal up to ``1e-6`` of the median row norm) and subsampled with a seed.

Reference values on manifolds of known dimension (2,000 points embedded in 384-d, see
``tests/test_geometry_estimators.py``): a 5-d linear subspace gives 5.1 (TwoNN) and 5.0 (MLE), a swiss
roll (2-d) gives 2.07 and 1.95.
"""
from __future__ import annotations

import warnings

import numpy as np

from brainlike.errors import BrainlikeError

#: Supported estimators: ``twonn`` (Facco et al. 2017, ``skdim.id.TwoNN``) and ``mle`` (Levina & Bickel
#: 2004 with MacKay-Ghahramani averaging, ``skdim.id.MLE``).
ESTIMATORS: tuple[str, ...] = ("twonn", "mle")

#: Fewest distinct points an estimate is attempted on.
MIN_POINTS = 20


def prepare_points(
    X: np.ndarray,
    max_points: int | None = None,
    seed: int = 0,
    deduplicate: bool = True,
) -> np.ndarray:
    """Distinct rows of ``X``, subsampled without replacement to at most ``max_points``.

    Parameters
    ----------
    X : np.ndarray
        ``(n_points, n_features)`` points (any float dtype).
    max_points : int | None
        keep at most this many rows (random subset, ``seed``); ``None`` keeps all.
    seed : int
        seed of the subsample.
    deduplicate : bool
        drop rows equal to an earlier row up to ``1e-6`` of the median row norm.

    Returns
    -------
    np.ndarray
        ``(n_kept, n_features)`` float64, rows in their original order.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise BrainlikeError(f"points must be a 2-d array (n_points, n_features); got shape {X.shape}")
    if not np.isfinite(X).all():
        raise BrainlikeError("points contain NaN or inf")
    keep = np.arange(len(X))
    if deduplicate and len(X):
        scale = float(np.median(np.linalg.norm(X, axis=1))) or 1.0
        _, first = np.unique(np.round(X / scale, 6), axis=0, return_index=True)
        keep = np.sort(first)
    if max_points is not None and len(keep) > max_points:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(keep, size=max_points, replace=False))
    return X[keep]


def estimate_intrinsic_dimension(
    X: np.ndarray,
    estimator: str = "twonn",
    *,
    max_points: int | None = 2000,
    seed: int = 0,
    deduplicate: bool = True,
    n_neighbors: int = 20,
    discard_fraction: float = 0.1,
) -> float:
    """Intrinsic dimension of a point cloud.

    Parameters
    ----------
    X : np.ndarray
        ``(n_points, n_features)`` points, e.g. token vectors entering one MLP layer.
    estimator : str
        ``"twonn"`` or ``"mle"`` (see :data:`ESTIMATORS`).
    max_points : int | None
        subsample to at most this many distinct points (``seed``); ``None`` uses all.
    seed : int
        subsampling seed.
    deduplicate : bool
        drop repeated points first (see :func:`prepare_points`).
    n_neighbors : int
        neighbourhood size of the MLE estimator.
    discard_fraction : float
        share of largest distance ratios TwoNN discards (scikit-dimension default 0.1).

    Returns
    -------
    float
        The estimated dimension (a positive float, in units of dimensions).

    Raises
    ------
    BrainlikeError
        unknown estimator or fewer than :data:`MIN_POINTS` distinct points.
    """
    import skdim

    name = estimator.lower()
    if name not in ESTIMATORS:
        raise BrainlikeError(f"unknown intrinsic-dimension estimator {estimator!r}; choose from {list(ESTIMATORS)}")
    P = prepare_points(X, max_points, seed, deduplicate)
    if len(P) < MIN_POINTS:
        raise BrainlikeError(f"intrinsic dimension needs at least {MIN_POINTS} distinct points, got {len(P)} "
                             "(use more or longer prompts)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "twonn":
            est = skdim.id.TwoNN(discard_fraction=discard_fraction).fit(P)
        else:
            est = skdim.id.MLE().fit(P, n_neighbors=min(n_neighbors, len(P) - 1))
    value = float(est.dimension_)
    if not np.isfinite(value):
        raise BrainlikeError(f"{name} estimate is not finite on {len(P)} points (degenerate point cloud?)")
    return value


def _embed(Z: np.ndarray, ambient: int, rng: np.random.Generator) -> np.ndarray:
    """Rotate ``(n, d)`` points into ``ambient`` dimensions with a random orthonormal frame."""
    d = Z.shape[1]
    if ambient < d:
        raise BrainlikeError(f"ambient dimension {ambient} is smaller than the manifold's {d}")
    Q, _ = np.linalg.qr(rng.standard_normal((ambient, d)))
    return Z @ Q.T


def linear_subspace(n_points: int, dim: int, ambient: int, seed: int = 0, noise: float = 0.0) -> np.ndarray:
    """Gaussian points on a random ``dim``-dimensional linear subspace of ``R^ambient``.

    Returns
    -------
    np.ndarray
        ``(n_points, ambient)`` float32; intrinsic dimension ``dim`` (plus isotropic noise of s.d. ``noise``).
    """
    rng = np.random.default_rng(seed)
    X = _embed(rng.standard_normal((n_points, dim)), ambient, rng)
    if noise:
        X = X + noise * rng.standard_normal(X.shape)
    return X.astype(np.float32)


def swiss_roll(n_points: int, ambient: int = 3, seed: int = 0) -> np.ndarray:
    """The swiss roll (a 2-d manifold rolled up in 3-d), rotated into ``R^ambient``.

    Returns
    -------
    np.ndarray
        ``(n_points, ambient)`` float32; intrinsic dimension 2.
    """
    rng = np.random.default_rng(seed)
    t = 1.5 * np.pi * (1 + 2 * rng.random(n_points))
    height = 21 * rng.random(n_points)
    Z = np.stack([t * np.cos(t), height, t * np.sin(t)], axis=1)
    return _embed(Z, ambient, rng).astype(np.float32)


def sphere(n_points: int, dim: int, ambient: int, seed: int = 0) -> np.ndarray:
    """Uniform points on the unit ``dim``-sphere (in ``R^(dim+1)``), rotated into ``R^ambient``.

    Returns
    -------
    np.ndarray
        ``(n_points, ambient)`` float32; intrinsic dimension ``dim``.
    """
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n_points, dim + 1))
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    return _embed(Z, ambient, rng).astype(np.float32)
