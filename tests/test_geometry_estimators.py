"""Intrinsic-dimension estimators on manifolds of known dimension, and the linear-region bound against
brute-force counts (no model needed)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from brainlike.analyses.geometry import (
    count_activation_patterns,
    estimate_intrinsic_dimension,
    grid_points,
    integer_dimension,
    linear_region_bound,
    linear_subspace,
    log10_linear_region_bound,
    prepare_points,
    sphere,
    swiss_roll,
)
from brainlike.errors import BrainlikeError


@pytest.mark.parametrize("estimator", ["twonn", "mle"])
@pytest.mark.parametrize("name, truth", [("subspace5", 5), ("swiss_roll", 2), ("sphere3", 3)])
def test_estimators_recover_known_dimension_in_384d(estimator, name, truth):
    X = {"subspace5": lambda: linear_subspace(2000, 5, 384, seed=3),
         "swiss_roll": lambda: swiss_roll(2000, 384, seed=4),
         "sphere3": lambda: sphere(2000, 3, 384, seed=5)}[name]()
    assert X.shape == (2000, 384) and X.dtype == np.float32
    linear_span = {"subspace5": 5, "swiss_roll": 3, "sphere3": 4}[name]  # the ambient 384-d is not the answer
    assert np.linalg.matrix_rank(X[:200].astype(np.float64), tol=1e-3) == linear_span
    d = estimate_intrinsic_dimension(X, estimator, max_points=2000, seed=0)
    assert abs(d - truth) <= 0.1 * truth, f"{estimator} on {name}: {d:.2f} vs {truth}"


def test_estimates_grow_with_the_true_dimension():
    dims = [estimate_intrinsic_dimension(linear_subspace(1500, k, 64, seed=k), "twonn") for k in (2, 4, 8)]
    assert dims[0] < dims[1] < dims[2]


def test_duplicates_are_dropped_and_subsampling_is_seeded():
    X = linear_subspace(600, 4, 32, seed=1)
    doubled = np.concatenate([X, X, X[:100]])
    P = prepare_points(doubled)
    assert len(P) == 600
    a, b = prepare_points(X, 200, seed=7), prepare_points(X, 200, seed=7)
    assert len(a) == 200 and np.array_equal(a, b)
    assert not np.array_equal(a, prepare_points(X, 200, seed=8))
    # TwoNN breaks on zero distances; de-duplication makes the estimate match the clean cloud
    assert estimate_intrinsic_dimension(doubled, "twonn") == pytest.approx(estimate_intrinsic_dimension(X, "twonn"))


def test_estimator_errors():
    with pytest.raises(BrainlikeError, match="unknown intrinsic-dimension estimator"):
        estimate_intrinsic_dimension(linear_subspace(100, 2, 8), "pca")
    with pytest.raises(BrainlikeError, match="at least"):
        estimate_intrinsic_dimension(np.repeat(np.eye(4)[:1], 50, axis=0), "twonn")


# ---------------------------------------------------------------- linear regions


def test_region_bound_small_values():
    assert linear_region_bound(6, 2) == 1 + 6 + 15
    assert linear_region_bound(3, 1) == 4
    assert linear_region_bound(5, 0) == 1
    assert linear_region_bound(5, 5) == linear_region_bound(5, 9) == 32  # d >= n: all 2^n sign patterns
    assert linear_region_bound(10, 3) == sum(math.comb(10, i) for i in range(4))
    assert log10_linear_region_bound(1536, 40) == pytest.approx(
        math.log10(sum(math.comb(1536, i) for i in range(41))), rel=1e-12)


def test_region_bound_rounding_of_fractional_dimensions():
    assert integer_dimension(2.3) == 3 and integer_dimension(2.3, "floor") == 2 and integer_dimension(2.6, "round") == 3
    assert integer_dimension(3.0) == 3
    assert linear_region_bound(8, 2.2) == linear_region_bound(8, 3)
    assert linear_region_bound(8, 2.2, "floor") == linear_region_bound(8, 2)
    with pytest.raises(BrainlikeError):
        linear_region_bound(8, -1)


def test_region_bound_is_monotone_in_dimension_and_width():
    by_d = [log10_linear_region_bound(100, d) for d in range(0, 30)]
    by_n = [log10_linear_region_bound(n, 7) for n in range(1, 200)]
    assert all(a < b for a, b in zip(by_d, by_d[1:]))
    assert all(a < b for a, b in zip(by_n, by_n[1:]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bound_matches_brute_force_count_of_relu_regions(seed):
    rng = np.random.default_rng(seed)
    W, b = rng.standard_normal((6, 2)), rng.standard_normal(6)
    crossings = [np.linalg.solve(W[[i, j]], -b[[i, j]]) for i in range(6) for j in range(i + 1, 6)]
    extent = 1.5 * float(np.abs(crossings).max())  # every cell of the arrangement reaches into the box
    grid = grid_points(extent=extent, resolution=1000)
    count = count_activation_patterns(W, b, grid)
    bound = linear_region_bound(6, 2)
    assert count <= bound
    assert count >= bound - 2  # lines in general position reach the bound (tiny cells may fall between grid points)


def test_central_arrangement_stays_below_the_bound():
    # hyperplanes through the origin (no bias) cut the plane into only 2n sectors
    rng = np.random.default_rng(5)
    W = rng.standard_normal((6, 2))
    count = count_activation_patterns(W, np.zeros(6), grid_points(10.0, 800))  # even: the origin is not a grid point
    assert count == 12 < linear_region_bound(6, 2)


def test_inputs_of_lower_intrinsic_dimension_give_fewer_regions():
    # a width-8 ReLU layer on 3-d inputs that lie on a 1-d line: at most n + 1 = 9 regions, not 93
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((8, 3)), rng.standard_normal(8)
    t = np.linspace(-60, 60, 200001)[:, None]
    line = t * rng.standard_normal(3)[None] + rng.standard_normal(3)[None] * 0.1
    count = count_activation_patterns(W, b, line)
    assert count <= linear_region_bound(8, 1) == 9 < linear_region_bound(8, 3)
    assert count >= 8
