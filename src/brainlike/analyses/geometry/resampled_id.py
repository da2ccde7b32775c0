"""Intrinsic dimension under resampling of questions.

Bootstrap CIs and a label-swap null, computed from one distance matrix per point cloud.

The point cloud of one (condition, layer) is the MLP inputs of the question tokens of every question,
de-duplicated; each point remembers its question (``owner``). Every estimate takes ``t`` distinct tokens
(chosen at random) per question: the point estimate all questions, a resampling draw a random half of
the questions without replacement (half-sampling: with the finite-population factor 1/2 its variance
matches that of the full-sample estimate, McCarthy 1969; resampling *with* replacement would put
duplicate questions, hence tight same-question clusters, into a cloud and bias the local estimators).
The CI is the draws' 2.5-97.5% spread around their mean, placed on the full-sample estimate (ID depends on
the number of points, and a half-sample has half as many). Draws are shared by all conditions, so
differences between conditions are paired. TwoNN is
scikit-dimension's (``TwoNN(dist=True)`` on the two nearest distances); MLE is scikit-dimension's
``MLE()`` formula (Levina-Bickel, MacKay-Ghahramani ``comb="mle"``, no noise) evaluated on all points at
once (tested equal to ``skdim.id.MLE``), because skdim loops over points in Python. Both read
submatrices of one precomputed distance matrix, so a draw costs an index and a partial sort.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from brainlike.errors import BrainlikeError


def distinct_points(X: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``X`` (``(n, d)``) without repeats.

    (equal up to 1e-6 of the median norm; the first is kept) and their ``owner`` labels (``(n,)`` int).
    """
    X = np.asarray(X, dtype=np.float64)
    scale = float(np.median(np.linalg.norm(X, axis=1))) or 1.0 if len(X) else 1.0
    _, first = np.unique(np.round(X / scale, 6), axis=0, return_index=True)
    keep = np.sort(first)
    return X[keep], np.asarray(owner)[keep]


def distance_matrix(X: np.ndarray) -> np.ndarray:
    """``(n, n)`` float64 Euclidean distances between the rows of ``X`` (``(n, d)``)."""
    X = np.asarray(X, dtype=np.float64)
    sq = np.einsum("ij,ij->i", X, X)
    D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (X @ X.T), 0.0))
    np.fill_diagonal(D, 0.0)
    return D


def id_from_distances(D: np.ndarray, estimator: str = "twonn", n_neighbors: int = 20,
                      discard_fraction: float = 0.1) -> float:
    """Intrinsic dimension from a ``(n, n)`` distance matrix with scikit-dimension's estimators.

    Gives the same value as :func:`~brainlike.analyses.geometry.estimate_intrinsic_dimension` on the points
    (tested): ``twonn`` takes each point's two nearest distances, ``mle`` its ``n_neighbors`` nearest
    (pointwise ``(k - 1) / sum_j log(R_k / R_j)``, combined as ``1 / mean(1 / d_i)``, as ``skdim.id.MLE``).
    """
    import skdim

    n = len(D)
    if n < 3:
        raise BrainlikeError(f"intrinsic dimension needs at least 3 points, got {n}")
    D = np.array(D, dtype=np.float64, copy=True)
    np.fill_diagonal(D, np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if estimator == "twonn":
            r = np.sort(np.partition(D, 1, axis=1)[:, :2], axis=1)
            return float(skdim.id.TwoNN(discard_fraction=discard_fraction, dist=True).fit(r).dimension_)
        if estimator == "mle":
            k = min(n_neighbors, n - 1)
            idx = np.argpartition(D, k - 1, axis=1)[:, :k]
            R = np.take_along_axis(D, idx, axis=1)
            pointwise = (k - 1) / np.sum(np.log(R.max(axis=1, keepdims=True) / R), axis=1)
            return float(1.0 / np.mean(1.0 / pointwise))
    raise BrainlikeError(f"unknown estimator {estimator!r}; choose 'twonn' or 'mle'")


def _pick(by_question: dict[int, np.ndarray], counts: dict[int, int], t: int,
          rng: np.random.Generator) -> np.ndarray:
    """Rows: ``t`` distinct random points per occurrence of each question (all of them if it has fewer)."""
    rows = [rng.choice(by_question[q], size=min(c * t, len(by_question[q])), replace=False)
            for q, c in counts.items() if c > 0 and q in by_question]
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)


def _groups(owner: np.ndarray) -> dict[int, np.ndarray]:
    return {int(q): np.flatnonzero(owner == q) for q in np.unique(owner)}


def bootstrap_draws(n_questions: int, n_draws: int, seed: int = 0) -> np.ndarray:
    """``(n_draws, n_questions // 2)`` int question indices.

    Random halves without replacement (shared by all conditions, so that differences between conditions are paired).
    """
    rng = np.random.default_rng([seed, 7])
    return np.stack([rng.permutation(n_questions)[: n_questions // 2] for _ in range(n_draws)]) if n_draws \
        else np.zeros((0, n_questions // 2), dtype=np.int64)


def centred_ci(estimate: float, draws: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """``estimate`` plus the ``level`` quantiles of ``draws - mean(draws)`` (non-finite draws dropped)."""
    v = np.asarray(draws, float)
    v = v[np.isfinite(v)]
    if not len(v) or not np.isfinite(estimate):
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(v - v.mean(), [a, 1 - a])
    return float(estimate + lo), float(estimate + hi)


def resampled_ids(D: np.ndarray, owner: np.ndarray, draws: np.ndarray, t: int,
                  estimators: Sequence[str], n_neighbors: int = 20, seed: int = 0) -> np.ndarray:
    """Estimates on every question once and on each bootstrap draw, ``t`` tokens per question occurrence.

    Parameters
    ----------
    D : np.ndarray
        ``(n, n)`` distances of the de-duplicated points.
    owner : np.ndarray
        ``(n,)`` question index of each point.
    draws : np.ndarray
        ``(n_draws, n_half)`` question indices of each draw (:func:`bootstrap_draws`).
    t : int
        tokens per question occurrence.
    estimators : Sequence[str]
        ``twonn`` / ``mle``.

    Returns
    -------
    np.ndarray
        ``(1 + n_draws, n_estimators)`` float64: row 0 the point estimate, then one row per draw.
    """
    rng = np.random.default_rng([seed, 11])
    groups = _groups(owner)
    n_q = int(owner.max()) + 1
    out = np.empty((1 + len(draws), len(estimators)))
    for b in range(len(draws) + 1):
        counts = dict.fromkeys(range(n_q), 1) if b == 0 else dict(zip(*np.unique(draws[b - 1], return_counts=True)))
        rows = _pick(groups, {int(q): int(c) for q, c in counts.items()}, t, rng)
        sub = D[np.ix_(rows, rows)]
        out[b] = [id_from_distances(sub, est, n_neighbors) for est in estimators]
    return out


def swap_null(D: np.ndarray, owner: np.ndarray, condition: np.ndarray, t: int, estimators: Sequence[str],
              n_permutations: int, n_neighbors: int = 20, seed: int = 0) -> np.ndarray:
    """Null distribution of ``ID(A) - ID(B)`` when each question's two versions are swapped at random.

    Parameters
    ----------
    D : np.ndarray
        ``(n, n)`` distances of the points of both conditions together.
    owner : np.ndarray
        ``(n,)`` question index of each point.
    condition : np.ndarray
        ``(n,)`` bool, True for condition A.
    t : int
        tokens per question (as in :func:`resampled_ids`).
    n_permutations : int
        number of random swaps.

    Returns
    -------
    np.ndarray
        ``(n_permutations, n_estimators)`` float64 differences under the null of exchangeable conditions.
    """
    rng = np.random.default_rng([seed, 13])
    questions = np.unique(owner)
    out = np.empty((n_permutations, len(estimators)))
    for p in range(n_permutations):
        flipped = questions[rng.random(len(questions)) < 0.5]
        is_a = condition ^ np.isin(owner, flipped)
        ones = dict.fromkeys((int(q) for q in questions), 1)
        a = np.flatnonzero(is_a)[_pick(_groups(owner[is_a]), ones, t, rng)]
        b = np.flatnonzero(~is_a)[_pick(_groups(owner[~is_a]), ones, t, rng)]
        da, db = D[np.ix_(a, a)], D[np.ix_(b, b)]
        out[p] = [id_from_distances(da, e, n_neighbors) - id_from_distances(db, e, n_neighbors) for e in estimators]
    return out
