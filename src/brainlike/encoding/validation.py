"""Input validation of the encoding package: arrays, alpha grids, parameter choices.

The bottom of the package's import graph (nothing here imports another ``brainlike.encoding``
module). Every bad input raises :class:`EncodingError` (a :class:`~brainlike.errors.BrainlikeError`,
hence a ``ValueError``) with one sentence naming the array or parameter and what to fix.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse

from brainlike.errors import BrainlikeError

__all__ = [
    "DEFAULT_ALPHAS",
    "EncodingError",
    "EncodingTypeError",
    "check_xy",
    "check_alphas",
    "check_choice",
]


class EncodingError(BrainlikeError):
    """Bad input to the encoding engine (shapes, NaNs, folds, alphas); the message says what to fix."""


class EncodingTypeError(EncodingError, TypeError):
    """An input of the wrong type (e.g. an object array holding a non-number).

    Also a ``TypeError``, as numpy and scikit-learn raise for it.
    """


#: Default alpha grid: 17 values, 0.1 to 1e7, half a decade apart (``np.logspace(-1, 7, 17)``).
#: For z-scored features the eigenvalues of ``X^T X`` are of the order of
#: ``n_samples * (feature variance along each direction)``, i.e. ~1e2..1e6 for
#: a few thousand samples; the grid brackets that range on both sides (from "almost OLS" to
#: "almost constant prediction"), which is what LM-to-brain encoding models select in practice.
DEFAULT_ALPHAS: np.ndarray = np.logspace(-1, 7, 17)


def _first_nonfinite(a: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN/inf entry of ``a`` (checked by row blocks), or None."""
    if a.ndim == 1:
        bad = ~np.isfinite(a)
        return (int(np.argmax(bad)),) if bad.any() else None
    step = max(1, (1 << 24) // max(1, a.shape[1]))
    for start in range(0, a.shape[0], step):
        blk = a[start:start + step]
        bad = ~np.isfinite(blk)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            return (start + int(i), int(j))
    return None


def _as_float_array(a: Any, name: str) -> np.ndarray:
    """Convert ``a`` to a float32/float64 numpy array (no copy if already one)."""
    if scipy.sparse.issparse(a):
        raise EncodingError(f"{name} is a sparse matrix, and sparse input is not supported; pass a dense array "
                            f"({name}.toarray())")
    try:
        arr = np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise EncodingError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype == object:  # e.g. numbers read into an object array: converted, as scikit-learn does
        try:
            arr = arr.astype(np.float64)
        except TypeError as exc:
            raise EncodingTypeError(f"{name} must hold numbers only ({exc})") from exc
        except ValueError as exc:
            raise EncodingError(f"{name} must hold numbers only ({exc})") from exc
    if np.iscomplexobj(arr):
        raise EncodingError(f"{name} must be real-valued (Complex data not supported), got dtype {arr.dtype}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise EncodingError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return arr


def check_xy(
    X: Any, Y: Any | None = None, *, min_samples: int = 2
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Validate features and targets.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
        Features (any unit).
    Y : array-like, shape (n_samples, n_targets) or (n_samples,), or None
        Targets (any unit).
    min_samples : int
        Minimum number of samples.

    Returns
    -------
    X : ndarray, shape (n_samples, n_features), float32 or float64
    Y : ndarray, shape (n_samples, n_targets), float32 or float64, or None
    y_was_1d : bool
        True when ``Y`` was given as a 1-D array.

    Raises
    ------
    EncodingError (a ValueError)
        Wrong dimensions, mismatched numbers of samples, fewer than ``min_samples`` samples,
        zero features or targets, non-numeric data, or NaN/inf values (the message names the
        array and the first offending row and column).
    """
    X = _as_float_array(X, "X")
    if X.ndim != 2:
        raise EncodingError(
            f"X must be a 2-D array (n_samples, n_features), got shape {X.shape}. Reshape your data: "
            "X.reshape(-1, 1) for a single feature, X.reshape(1, -1) for a single sample"
        )
    if X.shape[1] == 0:
        raise EncodingError(
            f"X has 0 features: found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if X.shape[0] < min_samples:
        raise EncodingError(
            f"X has {X.shape[0]} sample(s); at least {min_samples} samples are needed"
        )
    bad = _first_nonfinite(X)
    if bad is not None:
        raise EncodingError(f"X contains NaN or infinite values (first at row {bad[0]}, column {bad[1]})")
    if Y is None:
        return X, None, False
    Y = _as_float_array(Y, "Y")
    y_was_1d = Y.ndim == 1
    if y_was_1d:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise EncodingError(f"Y must be a 1-D or 2-D array (n_samples, n_targets), got shape {Y.shape}")
    if Y.shape[0] != X.shape[0]:
        raise EncodingError(
            f"X and Y have different numbers of samples: X has {X.shape[0]}, Y has {Y.shape[0]}"
        )
    if Y.shape[1] == 0:
        raise EncodingError("Y has 0 targets")
    bad = _first_nonfinite(Y)
    if bad is not None:
        where = f"row {bad[0]}" + (f", column {bad[1]}" if len(bad) > 1 and not y_was_1d else "")
        raise EncodingError(f"Y contains NaN or infinite values (first at {where})")
    return X, Y, y_was_1d


def check_alphas(alphas: Any) -> np.ndarray:
    """Validate a grid of ridge penalties; returns a float64 array of shape (n_alphas,).

    Raises EncodingError unless ``alphas`` is a non-empty 1-D (or scalar) array of finite,
    strictly positive numbers.
    """
    a = np.atleast_1d(np.asarray(alphas, dtype=np.float64)) if alphas is not None else DEFAULT_ALPHAS.copy()
    if a.ndim != 1 or a.size == 0:
        raise EncodingError(f"alphas must be a non-empty 1-D array, got shape {np.shape(alphas)}")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise EncodingError(f"alphas must be finite and strictly positive, got {a.tolist()}")
    return a


def check_choice(value: Any, options: tuple[str, ...], name: str) -> str:
    """Return ``value`` if it is one of ``options``; else raise :class:`EncodingError` naming ``name``."""
    if not isinstance(value, str) or value not in options:
        raise EncodingError(f"{name} must be one of {options}, got {value!r}")
    return value
