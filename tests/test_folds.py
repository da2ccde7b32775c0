"""Tests of brainlike.encoding.folds: gaps between train and test, minimum test-fold size (issue 19)."""
from __future__ import annotations

import numpy as np
import pytest

from brainlike.encoding import EncodingError, RidgeCV, contiguous_folds, cross_validated_encoding
from brainlike.encoding.folds import MIN_TEST_FOLD_SIZE, max_n_splits
from brainlike.errors import BrainlikeError


def _brute_force_train(n: int, test: np.ndarray, gap: int) -> np.ndarray:
    """Training samples farther than ``gap`` from every test sample (distance matrix)."""
    dist = np.abs(np.arange(n)[:, None] - test[None, :]).min(axis=1)
    return np.flatnonzero(dist > gap)


@pytest.mark.parametrize("n,k,gap", [(20, 4, 2), (23, 5, 1), (50, 3, 7), (10, 2, 0)])
def test_gap_drops_samples_on_both_sides(n: int, k: int, gap: int) -> None:
    folds = contiguous_folds(n, k, gap=gap)
    ref = contiguous_folds(n, k)
    for (tr, te), (_, te0) in zip(folds, ref):
        np.testing.assert_array_equal(te, te0)  # the test folds do not change
        np.testing.assert_array_equal(tr, _brute_force_train(n, te, gap))
        assert tr.dtype == np.int64
    if gap:  # an inner fold loses 2 * gap training samples, an edge fold gap
        assert [tr.size for tr, _ in folds] == [n - te.size - gap * ((j > 0) + (j < k - 1))
                                               for j, (_, te) in enumerate(ref)]


def test_gap_with_groups_is_in_sample_order() -> None:
    groups = np.repeat([0, 1, 2, 3], [6, 4, 5, 5])
    folds = contiguous_folds(20, 2, groups=groups, gap=3)
    for (tr, te), (_, te0) in zip(folds, contiguous_folds(20, 2, groups=groups)):
        np.testing.assert_array_equal(te, te0)
        np.testing.assert_array_equal(tr, _brute_force_train(20, te, 3))
        assert set(groups[tr]).isdisjoint(set(groups[te]))


def test_gap_errors() -> None:
    with pytest.raises(EncodingError, match="without training samples"):
        contiguous_folds(10, 2, gap=5)
    with pytest.raises(EncodingError, match="gap must be an int >= 0"):
        contiguous_folds(10, 2, gap=-1)


@pytest.mark.parametrize("n", [9, 10, 19, 20, 40, 57, 200])
def test_max_n_splits_matches_brute_force(n: int) -> None:
    def ok(k: int, groups=None) -> bool:
        return min(te.size for _, te in contiguous_folds(n, k, groups=groups)) >= MIN_TEST_FOLD_SIZE

    ks = [k for k in range(2, n + 1) if ok(k)]
    assert max_n_splits(n, MIN_TEST_FOLD_SIZE) == (max(ks) if ks else 0)
    rng = np.random.default_rng(n)
    groups = np.repeat(np.arange(n), rng.integers(1, 8, n))[:n]  # uneven runs
    n_groups = np.unique(groups).size
    ks = [k for k in range(2, n_groups + 1) if ok(k, groups)]
    assert max_n_splits(n, MIN_TEST_FOLD_SIZE, groups) == (max(ks) if ks else 0)


def test_min_test_size_error_names_the_numbers() -> None:
    with pytest.raises(EncodingError,
                       match=r"n_splits=40 on n_samples=40 gives test folds of 1 sample.*use n_splits <= 4"):
        contiguous_folds(40, 40, min_test_size=10)
    with pytest.raises(EncodingError, match=r"n_samples=15 .*too few for 2 such folds"):
        contiguous_folds(15, 3, min_test_size=10)
    groups = np.repeat(np.arange(6), 5)  # 6 runs of 5 samples
    with pytest.raises(EncodingError, match=r"\(6 groups\) gives test folds of 5 .*use n_splits <= 3"):
        contiguous_folds(30, 6, groups=groups, min_test_size=10)
    assert len(contiguous_folds(40, 40)) == 40  # the default (1) keeps leave-one-out available


def _planted(n: int = 40, p: int = 5, t: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, t)) + 0.3 * rng.standard_normal((n, t))
    return X, Y


@pytest.mark.parametrize("n_splits", [40, 20, 5])
def test_cross_validated_encoding_refuses_folds_too_small_for_r(n_splits: int) -> None:
    """Issue 19: leave-one-out gave r = 0.0 for every channel (pooled r .93-.99); 20 folds of 2 samples
    were already biased. Both are refused, with the largest valid n_splits."""
    X, Y = _planted()
    with pytest.raises(EncodingError, match=rf"n_splits={n_splits} on n_samples=40 .*use n_splits <= 4"):
        cross_validated_encoding(X, Y, n_splits=n_splits, inner_splits=3)
    res = cross_validated_encoding(X, Y, n_splits=4, inner_splits=3)
    assert res.fold_scores.shape == (4, 3) and np.all(res.scores > 0.8)
    assert np.all(res.fold_scores.mean(axis=0) > 0.6)  # no longer 0.0
    with pytest.raises(EncodingError, match="min_test_size must be an int >= 2"):
        cross_validated_encoding(X, Y, n_splits=4, min_test_size=1)


def test_score_layers_refuses_leave_one_out() -> None:
    """The exact input of issue 19: score_layers with n_splits = n_samples."""
    from brainlike.analyses.layer_scores import score_layers

    X, Y = _planted()
    feats = np.stack([X, X[:, ::-1].copy()]).astype(np.float32)  # (2 layers, 40 samples, 5 features)
    with pytest.raises(BrainlikeError, match=r"n_splits=40 on n_samples=40 .*use n_splits <= 4"):
        score_layers(feats, Y, n_splits=40, inner_splits=3, progress=False)
    table = score_layers(feats, Y, n_splits=4, inner_splits=3, progress=False)
    assert (table["r"] > 0.6).all() and (table["r_pooled"] > 0.8).all()


def test_cross_validated_encoding_with_gap_equals_manual_loop() -> None:
    X, Y = _planted(n=120, p=6, t=2, seed=3)
    alphas = np.logspace(-2, 4, 7)
    res = cross_validated_encoding(X, Y, n_splits=3, inner_splits=3, alphas=alphas, gap=4)
    for k, (tr, te) in enumerate(contiguous_folds(120, 3, gap=4)):
        assert tr.size == 80 - 4 * (1 + (k == 1))
        mu, sd = X[tr].mean(0), X[tr].std(0)
        m = RidgeCV(alphas=alphas, cv=contiguous_folds(tr.size, 3, gap=4)).fit((X[tr] - mu) / sd, Y[tr])
        np.testing.assert_allclose(res.predictions[te], m.predict((X[te] - mu) / sd), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(res.alphas[k], m.best_alphas_)
