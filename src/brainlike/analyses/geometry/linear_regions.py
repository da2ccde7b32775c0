"""How many linear regions an MLP layer can carve out of inputs of a given intrinsic dimension.

A layer of ``n`` piecewise-linear units (ReLU-like) on inputs in ``R^d`` cuts the input space with ``n``
hyperplanes; an arrangement of ``n`` hyperplanes in ``R^d`` has at most

    R(n, d) = sum_{i=0}^{d} C(n, i)

regions (Zaslavsky 1975; Serra, Tjandraatmadja & Ramalingam 2018), with equality for hyperplanes in
general position. When inputs lie on a ``d``-dimensional manifold, ``d`` is their intrinsic dimension
rather than the width of the residual stream (Cosentino & Shekkizhar 2024): the more dimensions the
attention layer gives the MLP's inputs, the more regions — the more distinct affine maps — the MLP can use.
For ``d >= n`` the bound is ``2^n``. Estimated dimensions are fractional; they are rounded (``ceil`` by
default, which keeps the bound an upper bound) before use. Gated/smooth MLPs (SwiGLU, GELU) are not
piecewise linear; the bound is that of their ReLU idealisation, as in the paper.
"""
from __future__ import annotations

import math

import numpy as np

from brainlike.errors import BrainlikeError

ROUNDINGS: tuple[str, ...] = ("ceil", "round", "floor")


def integer_dimension(dim: float, rounding: str = "ceil") -> int:
    """A fractional dimension estimate as the integer ``d`` of the bound (``ceil``, ``round`` or ``floor``)."""
    if rounding not in ROUNDINGS:
        raise BrainlikeError(f"rounding must be one of {list(ROUNDINGS)}, not {rounding!r}")
    if not np.isfinite(dim) or dim < 0:
        raise BrainlikeError(f"the input dimension must be a finite number >= 0, got {dim}")
    if rounding == "ceil":
        return int(math.ceil(dim - 1e-9))
    if rounding == "floor":
        return int(math.floor(dim + 1e-9))
    return int(round(dim))


def linear_region_bound(width: int, dim: float, rounding: str = "ceil") -> int:
    """``sum_{i=0}^{d} C(width, i)``: the most regions ``width`` hyperplanes can cut ``R^d`` into (exact).

    Parameters
    ----------
    width : int
        number of units (hyperplanes) ``n >= 0``.
    dim : float
        input (intrinsic) dimension ``d``; fractional values are rounded with ``rounding``.
    rounding : str
        ``"ceil"`` (default), ``"round"`` or ``"floor"``.
    """
    if int(width) != width or width < 0:
        raise BrainlikeError(f"width must be a non-negative integer, got {width}")
    n, d = int(width), min(integer_dimension(dim, rounding), int(width))
    if d == n:
        return 2 ** n
    total, term = 1, 1
    for i in range(d):  # C(n, i + 1) = C(n, i) (n - i) / (i + 1)
        term = term * (n - i) // (i + 1)
        total += term
    return total


def log10_linear_region_bound(width: int, dim: float, rounding: str = "ceil") -> float:
    """``log10`` of :func:`linear_region_bound` (exact integer arithmetic, then ``log10``)."""
    return float(math.log10(linear_region_bound(width, dim, rounding)))


def count_activation_patterns(weight: np.ndarray, bias: np.ndarray, points: np.ndarray) -> int:
    """Number of distinct on/off patterns of ReLU units ``relu(points @ weight.T + bias)`` over ``points``.

    Every pattern is one linear region of the layer, so on a dense grid this is a brute-force lower bound
    on (and, for a fine enough grid over a large enough box, equal to) the number of regions.

    Parameters
    ----------
    weight : np.ndarray
        ``(n_units, d)`` weights.
    bias : np.ndarray
        ``(n_units,)`` biases.
    points : np.ndarray
        ``(n_points, d)`` inputs.
    """
    W, b, P = np.asarray(weight, float), np.asarray(bias, float), np.asarray(points, float)
    if W.ndim != 2 or b.shape != (W.shape[0],) or P.ndim != 2 or P.shape[1] != W.shape[1]:
        raise BrainlikeError(f"shapes do not match: weight {W.shape}, bias {b.shape}, points {P.shape}")
    patterns = (P @ W.T + b) > 0
    return int(len(np.unique(np.packbits(patterns, axis=1), axis=0)))


def grid_points(extent: float, resolution: int, dim: int = 2) -> np.ndarray:
    """A regular grid over ``[-extent, extent]^dim`` with ``resolution`` points per axis.

    Returns
    -------
    np.ndarray
        ``(resolution ** dim, dim)`` float64.
    """
    axis = np.linspace(-extent, extent, resolution)
    mesh = np.meshgrid(*([axis] * dim), indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)
