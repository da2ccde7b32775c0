"""Cross-validation folds in time order: contiguous (group-aware) K-fold, gaps, fold checks.

Brain recordings are autocorrelated in time, so folds are contiguous blocks in sample order,
never shuffled; with run labels (``groups``) whole runs are kept together. A ``gap`` drops the
training samples next to each test block (on both sides), so that samples within ``gap`` time
points of a test sample never train the model that predicts it (fMRI: the haemodynamic response
smears a stimulus over ~10 s, i.e. ~5 TRs).

Imports only :mod:`brainlike.encoding.validation` (bottom of the package).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from brainlike.encoding.validation import EncodingError

__all__ = [
    "MIN_TEST_FOLD_SIZE",
    "contiguous_folds",
    "max_n_splits",
    "resolve_cv",
]

#: Smallest test fold on which :func:`brainlike.encoding.cv.cross_validated_encoding` scores a
#: per-fold Pearson r. The mean over folds of a within-fold r shrinks towards 0 as the folds get
#: smaller (a 1-sample fold has no r at all, a 2-sample fold's r is +-1). Measured on planted data
#: (``benchmarks/bench_ridge.py --cases foldbias``, tables in benchmarks/RESULTS.md): with a true
#: correlation of 0.5, the fold-mean r is off by -0.168 at 2 samples per fold, -0.050 at 5, -0.023
#: at 10 and -0.012 at 20 (the pooled r of 400 samples: -0.002); in ``cross_validated_encoding``
#: on 200 planted samples the fold-mean r is 0.128 below the pooled r with 2-sample folds, 0.027
#: below with 5 and level with it (+0.002) with 10. At 10 samples the bias is at most 5% of the
#: correlation (rho = 0.2, 0.5, 0.9), below the sampling error of r over a few hundred samples.
MIN_TEST_FOLD_SIZE = 10


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


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise EncodingError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _group_positions(groups: Any, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Group positions and sizes.

    Returns the position of every sample's group in order of first appearance (n_samples,) and the
    number of samples per group (n_groups,).
    """
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n_samples:
        raise EncodingError(f"groups must have shape ({n_samples},), got {g.shape}")
    _, first, inverse, counts = np.unique(g, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(first, kind="stable")  # groups in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)], counts[order]


def _group_cuts(counts: np.ndarray, n_splits: int) -> list[int]:
    """Block boundaries (n_splits + 1 group positions) balancing the samples per block."""
    n_samples = int(counts.sum())
    n_groups = counts.size
    cum = np.concatenate([[0], np.cumsum(counts)])  # samples before group j
    cuts = [0]
    for k in range(1, n_splits):
        target = k * n_samples / n_splits
        lo = cuts[-1] + 1
        hi = n_groups - (n_splits - k)
        cand = np.arange(lo, hi + 1)
        cuts.append(int(cand[np.argmin(np.abs(cum[cand] - target))]))
    cuts.append(n_groups)
    return cuts


def _test_sizes(n_samples: int, n_splits: int, counts: np.ndarray | None) -> np.ndarray:
    """Samples per test fold (n_splits,) of :func:`contiguous_folds`."""
    if counts is None:
        sizes = np.full(n_splits, n_samples // n_splits, dtype=np.int64)
        sizes[: n_samples % n_splits] += 1
        return sizes
    cum = np.concatenate([[0], np.cumsum(counts)])
    cuts = _group_cuts(counts, n_splits)
    return np.diff(cum[cuts])


def max_n_splits(n_samples: int, min_test_size: int, groups: Any | None = None) -> int:
    """Largest number of contiguous folds whose test folds all hold ``min_test_size`` samples.

    Parameters
    ----------
    n_samples : int
        Number of samples.
    min_test_size : int
        Required samples per test fold (>= 1).
    groups : array-like, shape (n_samples,), optional
        Run labels (folds of whole groups, as :func:`contiguous_folds`).

    Returns
    -------
    int
        The largest ``n_splits`` (>= 2) that :func:`contiguous_folds` accepts with that
        ``min_test_size``, or 0 when even 2 folds are too small.
    """
    counts = None
    n_units = n_samples
    if groups is not None:
        _, counts = _group_positions(groups, n_samples)
        n_units = counts.size
    if counts is None:  # sizes are floor(n / k) and floor(n / k) + 1
        k = min(n_units, n_samples // max(1, min_test_size))
        return k if k >= 2 else 0
    for k in range(n_units, 1, -1):  # group blocks: not monotone in general, try every k
        if _test_sizes(n_samples, k, counts).min() >= min_test_size:
            return k
    return 0


def contiguous_folds(
    n_samples: int,
    n_splits: int = 5,
    groups: np.ndarray | None = None,
    *,
    gap: int = 0,
    min_test_size: int = 1,
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
    gap : int
        Samples dropped from the training set on both sides of every test block: a training
        sample is kept only if it is more than ``gap`` samples (in sample order) away from
        every test sample. 0 (default) keeps all other samples. The test folds do not change.
    min_test_size : int
        Smallest allowed test fold, in samples (default 1: no check beyond non-empty folds).

    Returns
    -------
    folds : list of ``n_splits`` tuples (train, test)
        int64 index arrays; ``test`` of fold k is block k, ``train`` all other samples farther
        than ``gap`` from the test samples, both sorted. The test sets are disjoint and cover
        all samples.

    Raises
    ------
    EncodingError (a ValueError)
        If ``n_splits < 2``, ``n_splits`` exceeds the number of samples (or of groups),
        ``groups`` does not have ``n_samples`` entries, a test fold is smaller than
        ``min_test_size`` (the message gives the largest ``n_splits`` that works), or the gap
        leaves a fold without training samples.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise EncodingError(f"n_samples must be a positive int, got {n_samples!r}")
    n_samples = int(n_samples)
    gap = _check_int(gap, "gap", 0)
    min_test_size = _check_int(min_test_size, "min_test_size", 1)
    idx = np.arange(n_samples, dtype=np.int64)
    if groups is None:
        n_splits = _check_n_splits(n_splits, n_samples, "samples")
        counts = None
        sizes = _test_sizes(n_samples, n_splits, None)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        tests = [idx[bounds[k]: bounds[k + 1]].copy() for k in range(n_splits)]
    else:
        sample_group, counts = _group_positions(groups, n_samples)
        n_splits = _check_n_splits(n_splits, counts.size, "groups")
        cuts = _group_cuts(counts, n_splits)
        tests = [idx[(sample_group >= cuts[k]) & (sample_group < cuts[k + 1])] for k in range(n_splits)]
    smallest = min(te.size for te in tests)
    if smallest < min_test_size:
        best = max_n_splits(n_samples, min_test_size, groups)
        advice = (f"use n_splits <= {best}" if best >= 2 else
                  f"{n_samples} samples are too few for 2 such folds; record more samples")
        raise EncodingError(
            f"n_splits={n_splits} on n_samples={n_samples}"
            + ("" if groups is None else f" ({counts.size} groups)")
            + f" gives test folds of {smallest} sample(s), fewer than the {min_test_size} needed "
            f"to score a correlation within a fold (the fold-mean r is biased towards 0 on smaller "
            f"folds); {advice}"
        )
    folds = []
    for k, te in enumerate(tests):
        in_test = np.zeros(n_samples, dtype=bool)
        in_test[te] = True
        if gap:
            # dilate the test mask by `gap` samples on both sides (running window maximum)
            c = np.concatenate([[0], np.cumsum(in_test, dtype=np.int64)])
            lo = np.clip(idx - gap, 0, n_samples)
            hi = np.clip(idx + gap + 1, 0, n_samples)
            near = (c[hi] - c[lo]) > 0
        else:
            near = in_test
        train = idx[~near]
        if train.size == 0:
            raise EncodingError(
                f"gap={gap} leaves fold {k} without training samples (n_samples={n_samples}, "
                f"n_splits={n_splits}); use a smaller gap or fewer folds"
            )
        folds.append((train, te))
    return folds


def resolve_cv(
    cv: int | Iterable[tuple[Any, Any]], n_samples: int, groups: Any | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Turn ``cv`` into a list of (train, validation) index arrays and validate it.

    Parameters
    ----------
    cv : int or iterable of (train, test) index pairs
        An int means :func:`contiguous_folds` with that many folds
        (group-aware when ``groups`` is given).
    n_samples : int
        Number of samples that the indices refer to.
    groups : array-like, shape (n_samples,), optional
        Run / group labels, only used when ``cv`` is an int.

    Returns
    -------
    folds : list of (train (n_train_k,), test (n_test_k,)) int64 arrays
    """
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        return contiguous_folds(n_samples, int(cv), groups=groups)
    if hasattr(cv, "split") and callable(cv.split):  # a scikit-learn splitter
        cv = list(cv.split(np.zeros((n_samples, 1)), groups=groups))
    try:
        pairs = list(cv)  # type: ignore[arg-type]
    except TypeError as exc:
        raise EncodingError(f"cv must be an int or a list of (train, test) index pairs, got {cv!r}") from exc
    if len(pairs) == 0:
        raise EncodingError("cv is an empty list of folds")
    folds = []
    for k, pair in enumerate(pairs):
        try:
            tr, te = pair
        except (TypeError, ValueError) as exc:
            raise EncodingError(f"cv fold {k} is not a (train, test) pair") from exc
        tr = np.asarray(tr)
        te = np.asarray(te)
        for name, idx in (("train", tr), ("test", te)):
            if idx.dtype == bool:
                raise EncodingError(f"cv fold {k}: {name} must hold integer indices, not a boolean mask")
            if idx.ndim != 1 or idx.size == 0:
                raise EncodingError(f"cv fold {k}: {name} indices must be a non-empty 1-D array")
            if not np.issubdtype(idx.dtype, np.integer):
                raise EncodingError(f"cv fold {k}: {name} indices must be integers, got {idx.dtype}")
            if idx.min() < 0 or idx.max() >= n_samples:
                raise EncodingError(
                    f"cv fold {k}: {name} indices must lie in [0, {n_samples - 1}], got "
                    f"[{idx.min()}, {idx.max()}]"
                )
        folds.append((tr.astype(np.int64), te.astype(np.int64)))
    return folds
