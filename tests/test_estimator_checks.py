"""scikit-learn conventions of RidgeCV and BandedRidgeCV (issue 16, item 6).

``parametrize_with_checks`` runs every scikit-learn estimator check on both estimators; every check
passes (scikit-learn 1.9: 53 checks each), so the expected-failure dicts are empty. A check that
has to be waived goes into them with its reason.
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from brainlike.encoding import BandedRidgeCV, EncodingError, RidgeCV, pearson_r

#: check name -> reason, per estimator (none needed today).
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {"RidgeCV": {}, "BandedRidgeCV": {}}


@parametrize_with_checks(
    [RidgeCV(), BandedRidgeCV()],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est).__name__],
)
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)


def _problem(n: int = 120, p: int = 6, t: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, t)) + 0.5 * rng.standard_normal((n, t)) + 3.0
    return X, Y


@pytest.mark.parametrize("cls", [RidgeCV, BandedRidgeCV])
def test_score_is_uniform_mean_r2_like_sklearn(cls) -> None:
    from sklearn.metrics import r2_score

    X, Y = _problem()
    m = cls(cv=4).fit(X[:90], Y[:90])
    expected = r2_score(Y[90:], m.predict(X[90:]))  # multioutput="uniform_average"
    assert isinstance(m.score(X[90:], Y[90:]), float)
    np.testing.assert_allclose(m.score(X[90:], Y[90:]), expected, rtol=1e-10)
    w = np.linspace(0.5, 2.0, 30)
    np.testing.assert_allclose(m.score(X[90:], Y[90:], sample_weight=w),
                               r2_score(Y[90:], m.predict(X[90:]), sample_weight=w), rtol=1e-10)
    # the per-target Pearson r is still there
    np.testing.assert_allclose(m.score_r(X[90:], Y[90:]), pearson_r(Y[90:], m.predict(X[90:])), atol=1e-12)


def test_cross_val_score_works() -> None:
    """cross_val_score(RidgeCV(), X, Y) failed before (score returned an array of r)."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold, cross_val_score

    X, Y = _problem(n=150)
    scores = cross_val_score(RidgeCV(alphas=[1.0], cv=3), X, Y, cv=KFold(3))
    ref = cross_val_score(Ridge(alpha=1.0), X, Y, cv=KFold(3))  # one alpha: the same model
    np.testing.assert_allclose(scores, ref, rtol=1e-5)


@pytest.mark.parametrize("cls", [RidgeCV, BandedRidgeCV])
def test_not_fitted_error(cls) -> None:
    X, Y = _problem()
    for method in ("predict", "score_r", "score"):
        with pytest.raises(NotFittedError, match="not fitted"):
            getattr(cls(), method)(*((X,) if method == "predict" else (X, Y)))


@pytest.mark.parametrize("cls", [RidgeCV, BandedRidgeCV])
@pytest.mark.parametrize("engine_dtype", ["float32", "float64"])
def test_predictions_keep_the_dtype_of_the_fit(cls, engine_dtype: str) -> None:
    """float64 features -> float64 predictions (computed in float64), float32 -> float32, whatever
    the engine's GEMM precision (``dtype``, which sets ``coef_``'s dtype)."""
    X, Y = _problem()
    m64 = cls(cv=4, dtype=engine_dtype).fit(X, Y)
    assert m64.coef_.dtype == np.dtype(engine_dtype)
    p64 = m64.predict(X)
    assert p64.dtype == np.float64
    np.testing.assert_allclose(p64, X @ m64.coef_.astype(np.float64) + m64.intercept_, rtol=1e-12)
    m32 = cls(cv=4, dtype=engine_dtype).fit(X.astype(np.float32), Y.astype(np.float32))
    assert m32.predict(X.astype(np.float32)).dtype == np.float32
    mint = cls(cv=4, dtype=engine_dtype).fit(np.rint(X * 10).astype(np.int64), Y)  # ints -> float64
    assert mint.predict(np.rint(X * 10).astype(np.int64)).dtype == np.float64


def test_banded_without_bands_equals_ridgecv() -> None:
    X, Y = _problem()
    a = RidgeCV(cv=4, dtype="float64").fit(X, Y)
    b = BandedRidgeCV(cv=4, dtype="float64").fit(X, Y)
    np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    "X,match,exc",
    [
        (np.ones((10, 2), dtype=complex), "Complex data not supported", EncodingError),
        (np.array([[1.0, {"a": 1}]] * 10, dtype=object), "argument must be", TypeError),
        (np.array([["a", "b"]] * 10, dtype=object), "numbers only", EncodingError),
    ],
)
def test_bad_input_types(X: np.ndarray, match: str, exc: type) -> None:
    with pytest.raises(exc, match=match):
        RidgeCV(cv=2).fit(X, np.arange(10.0))


def test_sparse_and_missing_y_are_refused_clearly() -> None:
    import scipy.sparse

    X, Y = _problem()
    with pytest.raises(EncodingError, match="sparse input is not supported"):
        RidgeCV(cv=2).fit(scipy.sparse.csr_matrix(X), Y)
    with pytest.raises(EncodingError, match="requires y"):
        RidgeCV(cv=2).fit(X, None)
    m = RidgeCV(cv=2).fit(X, Y)
    with pytest.raises(EncodingError, match="is expecting 6 features"):
        m.predict(X[:, :4])
