"""Tests of contiguous folds and nested cross-validated encoding (brainlike.encoding.cv)."""
from __future__ import annotations

import numpy as np
import pytest

from brainlike.encoding import (
    EncodingResult,
    RidgeCV,
    contiguous_folds,
    cross_validated_encoding,
    pearson_r,
)


# ------------------------------------------------------------------------------ folds
@pytest.mark.parametrize("n,k", [(10, 2), (23, 5), (100, 7), (5, 5)])
def test_contiguous_folds_match_kfold(n: int, k: int) -> None:
    from sklearn.model_selection import KFold

    folds = contiguous_folds(n, k)
    ref = list(KFold(k, shuffle=False).split(np.zeros(n)))
    assert len(folds) == k
    covered = []
    for (tr, te), (rtr, rte) in zip(folds, ref):
        np.testing.assert_array_equal(te, rte)
        np.testing.assert_array_equal(tr, rtr)
        assert np.all(np.diff(te) == 1)  # contiguous
        assert np.intersect1d(tr, te).size == 0  # disjoint
        np.testing.assert_array_equal(np.sort(np.r_[tr, te]), np.arange(n))
        assert tr.dtype == np.int64 and te.dtype == np.int64
        covered.append(te)
    np.testing.assert_array_equal(np.concatenate(covered), np.arange(n))  # in time order


def test_group_folds_never_split_a_group() -> None:
    groups = np.repeat(["run3", "run1", "run2", "run5", "run4", "run6"], [30, 20, 25, 30, 10, 35])
    folds = contiguous_folds(groups.size, 3, groups=groups)
    assert len(folds) == 3
    tests = [te for _, te in folds]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(groups.size))
    for tr, te in folds:
        assert set(groups[tr]).isdisjoint(set(groups[te]))
        np.testing.assert_array_equal(np.sort(np.r_[tr, te]), np.arange(groups.size))
    # contiguous in order of first appearance, balanced in samples (150 -> ~50 per fold)
    assert [list(dict.fromkeys(groups[te])) for te in tests] == [["run3", "run1"], ["run2", "run5"], ["run4", "run6"]]
    assert [te.size for te in tests] == [50, 55, 45]


def test_group_folds_with_interleaved_labels_and_numbers() -> None:
    groups = np.array([0, 0, 1, 1, 0, 2, 2, 3, 3, 3])  # label 0 reappears: still one group
    folds = contiguous_folds(10, 2, groups=groups)
    for tr, te in folds:
        assert set(groups[tr]).isdisjoint(set(groups[te]))
    assert sum(te.size for _, te in folds) == 10


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        ((10, 1), {}, "at least 2"),
        ((10, 11), {}, "greater than the number of samples"),
        ((6, 4), {"groups": np.repeat([1, 2, 3], 2)}, "greater than the number of groups"),
        ((6, 2), {"groups": np.zeros(5)}, "groups must have shape"),
        ((0, 2), {}, "positive int"),
    ],
)
def test_fold_errors(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        contiguous_folds(*args, **kwargs)


# ------------------------------------------------------------------------------ nested CV
def _data(n: int = 300, p: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * rng.uniform(0.1, 10, p) + rng.standard_normal(p) * 3
    w = rng.standard_normal(p) / rng.uniform(0.1, 10, p)
    sig = X @ w
    sig = (sig - sig.mean()) / sig.std()
    Y = np.column_stack([sig + 0.5 * rng.standard_normal(n), sig + 2.0 * rng.standard_normal(n),
                         rng.standard_normal((n, 6)), np.full(n, 4.0)]) + 10.0
    return X, Y


def test_cross_validated_encoding_recovers_signal() -> None:
    X, Y = _data()
    res = cross_validated_encoding(X, Y, n_splits=5, inner_splits=4)
    assert isinstance(res, EncodingResult)
    n, t = Y.shape
    assert res.scores.shape == (t,) and res.fold_scores.shape == (5, t) and res.alphas.shape == (5, t)
    assert res.predictions.shape == (n, t) and res.predictions.dtype == np.float32
    assert res.scores[0] > 0.85 and 0.2 < res.scores[1] < res.scores[0]
    assert np.all(np.abs(res.scores[2:8]) < 0.25)  # pure noise
    assert res.scores[8] == 0.0  # constant target: r = 0, never NaN
    assert np.all(np.isfinite(res.scores)) and np.all(np.isfinite(res.fold_scores))
    np.testing.assert_allclose(res.scores, pearson_r(Y, res.predictions), atol=1e-5)
    assert np.isfinite(res.mean_score)


def test_cross_validated_encoding_equals_manual_loop() -> None:
    X, Y = _data(n=120, p=8, seed=1)
    alphas = np.logspace(-2, 4, 7)
    res = cross_validated_encoding(X, Y[:, :4], n_splits=3, inner_splits=3, alphas=alphas)
    for k, (tr, te) in enumerate(contiguous_folds(120, 3)):
        mu, sd = X[tr].mean(0), X[tr].std(0)
        m = RidgeCV(alphas=alphas, cv=contiguous_folds(tr.size, 3)).fit((X[tr] - mu) / sd, Y[tr, :4])
        np.testing.assert_allclose(res.predictions[te], m.predict((X[te] - mu) / sd), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(res.alphas[k], m.best_alphas_)


def test_cross_validated_encoding_with_groups_and_torch() -> None:
    X, Y = _data(n=160, p=10, seed=2)
    groups = np.repeat(np.arange(8), 20)
    res = cross_validated_encoding(X, Y[:, :3], n_splits=4, inner_splits=3, groups=groups)
    assert res.scores[0] > 0.8
    pytest.importorskip("torch")
    res_t = cross_validated_encoding(X, Y[:, :3], n_splits=4, inner_splits=3, groups=groups, backend="torch_cpu")
    np.testing.assert_array_equal(res.alphas, res_t.alphas)
    np.testing.assert_allclose(res.predictions, res_t.predictions, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="groups"):
        cross_validated_encoding(X, Y, n_splits=4, inner_splits=4, groups=np.repeat(np.arange(4), 40))


def test_cross_validated_encoding_bad_inputs() -> None:
    X, Y = _data(n=50, p=4)
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        cross_validated_encoding(Xn, Y)
    Yn = Y.copy()
    Yn[7, 1] = np.nan
    with pytest.raises(ValueError, match="Y contains NaN"):
        cross_validated_encoding(X, Yn)
    with pytest.raises(ValueError, match="different numbers of samples"):
        cross_validated_encoding(X, Y[:40])
    with pytest.raises(ValueError, match="at least 2 samples"):
        cross_validated_encoding(X[:1], Y[:1])
    with pytest.raises(ValueError, match="n_splits"):
        cross_validated_encoding(X[:4], Y[:4], n_splits=5)
    with pytest.raises(ValueError, match="strictly positive"):
        cross_validated_encoding(X, Y, alphas=[0.0, 1.0])
