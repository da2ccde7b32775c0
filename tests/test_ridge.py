"""Tests of the ridge engine (brainlike.encoding.spectral / estimators / metrics / backends / threads).

Small problems only (the suite runs in a few seconds); timings are in benchmarks/.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from brainlike.encoding import (
    BandedRidgeCV,
    EncodingError,
    RidgeCV,
    contiguous_folds,
    get_backend,
    pearson_r,
    r2_score,
)

ALPHAS = np.logspace(-2, 5, 15)


def make_problem(n: int, p: int, t: int, seed: int = 0, noise_frac: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """X (n, p) with a decaying spectrum and offsets; Y (n, t) = X W + noise, some pure noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) @ np.diag(np.logspace(0, -1.5, p)) + rng.standard_normal(p)
    W = rng.standard_normal((p, t)) * (rng.random((p, t)) < 0.5)
    S = X @ W
    S /= S.std(axis=0) + 1e-12
    snr = rng.uniform(0.2, 2.0, t)
    snr[: max(1, int(noise_frac * t))] = 0.0
    Y = S * snr + rng.standard_normal((n, t)) + 5.0
    return X, Y


def himalaya_fit(X, Y, folds, alphas, score="r2"):
    from himalaya.ridge import RidgeCV as HRidgeCV
    from himalaya.scoring import l2_neg_loss
    from himalaya.scoring import r2_score as h_r2

    func = {"r2": h_r2, "neg_mse": l2_neg_loss}[score]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HRidgeCV(alphas=alphas, fit_intercept=True, cv=folds, solver_params=dict(score_func=func)).fit(X, Y)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))) / max(1e-12, np.max(np.abs(b))))


# ------------------------------------------------------------------------------ himalaya
@pytest.mark.parametrize("n,p", [(120, 20), (50, 90)])  # primal (n > p) and kernel (n < p) regimes
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_agrees_with_himalaya_ridgecv(n: int, p: int, dtype: str) -> None:
    X, Y = make_problem(n, p, 12, seed=1)
    folds = contiguous_folds(n, 5)
    h = himalaya_fit(X, Y, folds, ALPHAS)
    X_te, _ = make_problem(30, p, 1, seed=2)
    ph = np.asarray(h.predict(X_te))
    for method in ("spectral", "direct"):
        m = RidgeCV(alphas=ALPHAS, cv=folds, dtype=dtype, method=method).fit(X, Y)
        np.testing.assert_allclose(m.best_alphas_, np.asarray(h.best_alphas_), rtol=1e-5)
        assert rel_err(m.predict(X_te), ph) < 1e-4
        # himalaya's cv_scores_ is the best mean inner R^2 plus its 1e-10 * log(alpha) tie slope
        best = m.cv_scores_.max(axis=0) + 1e-10 * np.log(m.best_alphas_)
        np.testing.assert_allclose(best, np.asarray(h.cv_scores_).ravel(), atol=1e-5)


def test_agrees_with_himalaya_neg_mse_criterion() -> None:
    X, Y = make_problem(100, 15, 8, seed=3)
    folds = contiguous_folds(100, 4)
    h = himalaya_fit(X, Y, folds, ALPHAS, score="neg_mse")
    m = RidgeCV(alphas=ALPHAS, cv=folds, score_func="neg_mse", dtype="float64").fit(X, Y)
    np.testing.assert_allclose(m.best_alphas_, np.asarray(h.best_alphas_), rtol=1e-5)
    assert rel_err(m.coef_, np.asarray(h.coef_)) < 1e-6


# ------------------------------------------------------------------------------ scikit-learn
def test_fixed_alpha_equals_sklearn_ridge() -> None:
    from sklearn.linear_model import Ridge

    X, Y = make_problem(80, 25, 6, seed=4)
    for solver in ("primal", "kernel"):
        m = RidgeCV(alphas=[3.0], cv=4, solver=solver, dtype="float64").fit(X, Y)
        s = Ridge(alpha=3.0, fit_intercept=True).fit(X, Y)
        np.testing.assert_allclose(m.coef_, s.coef_.T, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(m.intercept_, s.intercept_, rtol=1e-6, atol=1e-9)


def test_leave_one_out_equals_sklearn_ridgecv_alpha_per_target() -> None:
    """sklearn's RidgeCV(alpha_per_target=True) uses exact LOO with squared error."""
    from sklearn.linear_model import RidgeCV as SRidgeCV

    n = 40
    X, Y = make_problem(n, 8, 10, seed=5)
    loo = [(np.delete(np.arange(n), i), np.array([i])) for i in range(n)]
    m = RidgeCV(alphas=ALPHAS, cv=loo, score_func="neg_mse", dtype="float64").fit(X, Y)
    s = SRidgeCV(alphas=ALPHAS, alpha_per_target=True, fit_intercept=True).fit(X, Y)
    np.testing.assert_allclose(m.best_alphas_, s.alpha_, rtol=1e-6)
    np.testing.assert_allclose(m.coef_, s.coef_.T, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------------------ internal consistency
def test_primal_and_kernel_paths_agree() -> None:
    X, Y = make_problem(70, 40, 10, seed=6)
    folds = contiguous_folds(70, 5)
    a = RidgeCV(alphas=ALPHAS, cv=folds, solver="primal", dtype="float64").fit(X, Y)
    b = RidgeCV(alphas=ALPHAS, cv=folds, solver="kernel", dtype="float64").fit(X, Y)
    np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)
    np.testing.assert_allclose(a.cv_scores_, b.cv_scores_, atol=1e-8)
    assert rel_err(a.coef_, b.coef_) < 1e-8


@pytest.mark.parametrize("score_func", ["r2", "pearson", "neg_mse"])
def test_spectral_and_direct_methods_agree(score_func: str) -> None:
    X, Y = make_problem(90, 30, 10, seed=7)
    kw = dict(alphas=ALPHAS, cv=5, score_func=score_func, dtype="float64")
    a = RidgeCV(method="spectral", **kw).fit(X, Y)
    b = RidgeCV(method="direct", **kw).fit(X, Y)
    np.testing.assert_allclose(a.cv_scores_, b.cv_scores_, atol=1e-9)
    np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)


@pytest.mark.parametrize("score_func", ["r2", "neg_mse"])
def test_mixed_precision_partial_fractions_match_float64(score_func: str, monkeypatch) -> None:
    """float32 data with rank >= 4 tiles: N @ c runs in float32 off the near-diagonal float64
    tiles; scores must match the all-float64 product, the float64 direct reference and himalaya."""
    import brainlike.encoding.spectral as spectral

    X, Y = make_problem(420, 600, 40, seed=11)  # kernel regime, rank of each fold ~335
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    folds = contiguous_folds(420, 5)
    kw = dict(alphas=ALPHAS, cv=folds, score_func=score_func)
    engine = spectral._RidgeEngine(X, folds, ALPHAS, fit_intercept=True, solver="auto", backend=get_backend("numpy"),
                                dtype="float32", score_func=score_func, method="spectral", need_refit=False)
    assert all(d.tiles and d.N_b.dtype == np.float32 for d in engine.cv_decomps)  # the split is in use
    a = RidgeCV(dtype="float32", **kw).fit(X, Y)
    ref = RidgeCV(dtype="float64", method="direct", **kw).fit(X, Y)
    monkeypatch.setattr(spectral, "_TILE", 10**9)  # no split: N @ c all in float64
    b = RidgeCV(dtype="float32", **kw).fit(X, Y)
    scale = 1.0 if score_func == "r2" else float(np.abs(ref.cv_scores_).max())
    np.testing.assert_allclose(a.cv_scores_ / scale, b.cv_scores_ / scale, atol=1e-6)
    np.testing.assert_allclose(a.cv_scores_ / scale, ref.cv_scores_ / scale, atol=1e-5)
    np.testing.assert_array_equal(a.best_alphas_, ref.best_alphas_)
    h = himalaya_fit(X, Y, folds, ALPHAS, score=score_func)
    np.testing.assert_allclose(a.best_alphas_, np.asarray(h.best_alphas_), rtol=1e-5)
    pearson = spectral._RidgeEngine(X, folds, ALPHAS, fit_intercept=True, solver="auto", backend=get_backend("numpy"),
                                 dtype="float32", score_func="pearson", method="spectral", need_refit=False)
    assert not any(d.tiles for d in pearson.cv_decomps)  # Pearson keeps the float64 product


def test_repeated_eigenvalues_are_handled() -> None:
    """An orthogonal design has one eigenvalue of multiplicity p (partial fractions degenerate)."""
    rng = np.random.default_rng(8)
    n, p = 64, 8
    H = np.linalg.qr(rng.standard_normal((n, n)))[0]
    X = H[:, :p] * 10.0  # orthogonal columns of equal norm (and zero mean is not assumed)
    Y = X @ rng.standard_normal((p, 5)) + rng.standard_normal((n, 5))
    folds = contiguous_folds(n, 4)
    h = himalaya_fit(X, Y, folds, ALPHAS)
    for method in ("spectral", "direct"):
        m = RidgeCV(alphas=ALPHAS, cv=folds, method=method, dtype="float64").fit(X, Y)
        np.testing.assert_allclose(m.best_alphas_, np.asarray(h.best_alphas_), rtol=1e-5)
        assert rel_err(m.coef_, np.asarray(h.coef_)) < 1e-6
    # an exactly repeated full-fold spectrum: X_A^T X_A = c I in every fold
    Xr = np.kron(np.eye(p), np.ones((8, 1)))  # (64, 8) one-hot blocks
    Yr = Xr @ rng.standard_normal((p, 3)) + rng.standard_normal((n, 3))
    a = RidgeCV(alphas=ALPHAS, cv=4, method="spectral", dtype="float64", fit_intercept=False).fit(Xr, Yr)
    b = RidgeCV(alphas=ALPHAS, cv=4, method="direct", dtype="float64", fit_intercept=False).fit(Xr, Yr)
    np.testing.assert_allclose(a.cv_scores_, b.cv_scores_, atol=1e-9)


def test_torch_backend_matches_numpy() -> None:
    pytest.importorskip("torch")
    X, Y = make_problem(80, 30, 9, seed=9)
    a = RidgeCV(alphas=ALPHAS, cv=5, backend="numpy").fit(X, Y)
    b = RidgeCV(alphas=ALPHAS, cv=5, backend="torch_cpu").fit(X, Y)
    np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)
    np.testing.assert_allclose(a.cv_scores_, b.cv_scores_, atol=1e-5)
    assert rel_err(b.coef_, a.coef_) < 1e-4
    Xk, Yk = make_problem(40, 70, 5, seed=10)  # kernel path
    a = RidgeCV(alphas=ALPHAS, cv=4, backend="numpy", dtype="float64").fit(Xk, Yk)
    b = RidgeCV(alphas=ALPHAS, cv=4, backend="torch_cpu", dtype="float64", method="direct").fit(Xk, Yk)
    np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)
    assert rel_err(b.coef_, a.coef_) < 1e-8


@pytest.mark.parametrize("n,p", [(160, 40), (40, 160)])  # primal and kernel refit
def test_refit_paths_agree_and_stay_accurate(n: int, p: int, monkeypatch) -> None:
    """Cholesky (float64 solves) and eigendecomposition (float32 GEMMs in the eigenbasis) refits
    give the float64 coefficients to float32 accuracy on an ill-conditioned design, for small
    and large alphas alike: the eigenbasis path has no condition-number amplification."""
    import brainlike.encoding.spectral as spectral

    rng = np.random.default_rng(12)
    k = min(n, p)
    U = np.linalg.qr(rng.standard_normal((n, k)))[0]
    V = np.linalg.qr(rng.standard_normal((p, k)))[0]
    X = 10.0 * (U * np.logspace(0, -3, k)) @ V.T  # singular values over 3 decades: Gram condition ~1e6
    Y = X @ rng.standard_normal((p, 12)) + 0.05 * rng.standard_normal((n, 12))
    alphas = np.logspace(-6, 2, 9)
    ref = RidgeCV(alphas=alphas, cv=5, dtype="float64").fit(X, Y)
    s = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)[: k - 1] ** 2  # Gram eigenvalues (centred)
    a = ref.best_alphas_.min()
    assert (s.max() + a) / (s.min() + a) > 1e4  # ill-conditioned at a selected alpha: the hard case
    for use_eigh in (False, True):
        monkeypatch.setattr(spectral._RidgeEngine, "_refit_by_eigh", lambda self, *a, _e=use_eigh: _e)
        m = RidgeCV(alphas=alphas, cv=5, dtype="float32").fit(X.astype(np.float32), Y.astype(np.float32))
        assert m.refit_method_ == ("eigh" if use_eigh else "cholesky")
        np.testing.assert_array_equal(m.best_alphas_, ref.best_alphas_)
        pred, pred_ref = X @ m.coef_.astype(np.float64), X @ ref.coef_
        assert rel_err(pred, pred_ref) < 1e-4


def test_refit_falls_back_to_eigh_when_cholesky_fails(monkeypatch) -> None:
    """A Cholesky failure part-way (columns of some alphas already written into ``coef_``) falls
    back to the eigendecomposition, which overwrites every column."""
    import brainlike.encoding.spectral as spectral
    from brainlike.encoding.backends import NumpyBackend

    X, Y = make_problem(160, 40, 12, seed=14)
    monkeypatch.setattr(spectral._RidgeEngine, "_refit_by_eigh", lambda self, *a: True)
    ref = RidgeCV(alphas=ALPHAS, cv=5).fit(X, Y)
    monkeypatch.setattr(spectral._RidgeEngine, "_refit_by_eigh", lambda self, *a: False)
    calls = {"n": 0}
    solve = NumpyBackend.solve_spd

    def fail_second(self, a, b):
        calls["n"] += 1
        if calls["n"] == 2:
            raise np.linalg.LinAlgError("not positive definite")
        return solve(self, a, b)

    monkeypatch.setattr(NumpyBackend, "solve_spd", fail_second)
    m = RidgeCV(alphas=ALPHAS, cv=5).fit(X, Y)
    assert calls["n"] == 2 and len(np.unique(m.best_alphas_)) >= 2
    assert m.refit_method_ == "eigh"
    np.testing.assert_array_equal(m.coef_, ref.coef_)
    np.testing.assert_array_equal(m.intercept_, ref.intercept_)


def test_refit_cost_model() -> None:
    """Many targets: one eigendecomposition; few targets and alphas: Cholesky solves."""
    import brainlike.encoding.spectral as spectral

    X, _ = make_problem(300, 100, 1, seed=13)
    eng = spectral._RidgeEngine(X, contiguous_folds(300, 5), ALPHAS, fit_intercept=True, solver="auto",
                             backend=get_backend("numpy"), dtype="float32", score_func="r2", method="spectral",
                             need_cv=False)
    assert eng.refit_mode == "primal"
    assert eng._refit_by_eigh(n_targets=50_000, n_distinct=5, n_chunks=1)
    assert not eng._refit_by_eigh(n_targets=20, n_distinct=3, n_chunks=1)
    assert eng._refit_by_eigh(n_targets=20, n_distinct=10, n_chunks=20)  # factorisations repeated per chunk


def test_target_chunks_give_identical_results() -> None:
    X, Y = make_problem(100, 20, 30, seed=11)
    full = RidgeCV(alphas=ALPHAS, cv=5).fit(X, Y)
    tiny = RidgeCV(alphas=ALPHAS, cv=5, memory_budget_gb=1e-5).fit(X, Y)
    assert full.chunk_size_ == 30 and tiny.chunk_size_ < 30
    np.testing.assert_array_equal(full.best_alphas_, tiny.best_alphas_)
    np.testing.assert_allclose(full.cv_scores_, tiny.cv_scores_, atol=1e-6)
    np.testing.assert_allclose(full.coef_, tiny.coef_, rtol=1e-5, atol=1e-6)


def test_planted_signal_and_noise_targets() -> None:
    rng = np.random.default_rng(12)
    n, p = 600, 30
    X = rng.standard_normal((n, p))
    signal = X @ rng.standard_normal(p) + 0.5 * rng.standard_normal(n)
    Y = np.column_stack([signal, rng.standard_normal((n, 20))])  # 1 planted + 20 pure-noise targets
    m = RidgeCV(cv=5).fit(X[:450], Y[:450])
    r = m.score_r(X[450:], Y[450:])
    assert r.shape == (21,)
    assert r[0] > 0.9
    assert abs(np.mean(r[1:])) < 0.06 and np.max(np.abs(r[1:])) < 0.35  # ~N(0, 1/sqrt(150))
    assert np.median(m.best_alphas_[1:]) >= 1e4  # noise targets: strong penalties


# ------------------------------------------------------------------------------ degenerate inputs
def test_constant_target_gives_zero_r_and_no_nan() -> None:
    X, Y = make_problem(60, 10, 3, seed=13)
    Y[:, 1] = 7.0
    m = RidgeCV(alphas=ALPHAS, cv=5).fit(X, Y)
    assert np.all(np.isfinite(m.cv_scores_)) and np.all(np.isfinite(m.coef_))
    assert m.best_alphas_[1] == ALPHAS.max()  # all scores tie at 0 -> largest alpha (as himalaya)
    np.testing.assert_allclose(m.predict(X)[:, 1], 7.0, rtol=1e-6)
    r = m.score_r(X, Y)
    assert r[1] == 0.0 and np.all(np.isfinite(r))


def test_more_alphas_than_samples() -> None:
    X, Y = make_problem(12, 4, 2, seed=14)
    alphas = np.logspace(-3, 6, 40)
    m = RidgeCV(alphas=alphas, cv=3, dtype="float64").fit(X, Y)
    h = himalaya_fit(X, Y, contiguous_folds(12, 3), alphas)
    np.testing.assert_allclose(m.best_alphas_, np.asarray(h.best_alphas_), rtol=1e-5)
    assert m.cv_scores_.shape == (40, 2)


def test_rank_deficient_x() -> None:
    X, Y = make_problem(60, 6, 4, seed=15)
    Xd = np.column_stack([X, X[:, :3], X[:, 0] - X[:, 1], np.zeros(60)])  # rank 6 of 11 columns
    folds = contiguous_folds(60, 5)
    h = himalaya_fit(Xd, Y, folds, ALPHAS)
    for solver in ("primal", "kernel"):
        m = RidgeCV(alphas=ALPHAS, cv=folds, solver=solver, dtype="float64").fit(Xd, Y)
        np.testing.assert_allclose(m.best_alphas_, np.asarray(h.best_alphas_), rtol=1e-5)
        assert rel_err(m.predict(Xd), np.asarray(h.predict(Xd))) < 1e-5
    # all-zero features: predictions are the training mean
    m = RidgeCV(alphas=ALPHAS, cv=3).fit(np.zeros((30, 4)), Y[:30])
    np.testing.assert_allclose(m.predict(np.ones((2, 4))), np.tile(Y[:30].mean(0), (2, 1)), rtol=1e-5)


def test_one_dimensional_y() -> None:
    X, Y = make_problem(50, 5, 1, seed=16)
    m = RidgeCV(alphas=ALPHAS, cv=5).fit(X, Y[:, 0])
    assert m.predict(X).shape == (50,)
    assert m.coef_.shape == (5, 1) and m.best_alphas_.shape == (1,)
    # predictions keep the dtype of the fit (issue 16: a float64 fit predicted float32 before)
    assert m.predict(X).dtype == np.float64
    m32 = RidgeCV(alphas=ALPHAS, cv=5).fit(X.astype(np.float32), Y[:, 0].astype(np.float32))
    assert m32.predict(X.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize(
    "X,Y,match",
    [
        (np.full((10, 3), np.nan), np.zeros((10, 2)), "X contains NaN"),
        (np.ones((10, 3)), np.r_[np.zeros(9), np.inf], "Y contains NaN"),
        (np.ones((10, 3)), np.zeros((9, 2)), "different numbers of samples"),
        (np.ones((1, 3)), np.zeros((1, 2)), "at least 2 samples"),
        (np.ones(10), np.zeros(10), "X must be a 2-D array"),
        (np.ones((10, 0)), np.zeros(10), "0 features"),
    ],
)
def test_bad_inputs_raise_clear_errors(X: np.ndarray, Y: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RidgeCV(cv=2).fit(X, Y)


def test_bad_parameters_raise_clear_errors() -> None:
    X, Y = make_problem(20, 3, 2)
    with pytest.raises(ValueError, match="strictly positive"):
        RidgeCV(alphas=[1.0, -1.0]).fit(X, Y)
    with pytest.raises(ValueError, match="n_splits"):
        RidgeCV(cv=50).fit(X, Y)
    with pytest.raises(ValueError, match="solver"):
        RidgeCV(solver="svd").fit(X, Y)
    with pytest.raises(ValueError, match="unknown backend"):
        RidgeCV(backend="jax").fit(X, Y)
    with pytest.raises(ValueError, match="indices must lie"):
        RidgeCV(cv=[(np.arange(10), np.arange(10, 25))]).fit(X, Y)
    with pytest.raises(ValueError, match="not fitted"):
        RidgeCV().predict(X)
    m = RidgeCV(cv=2).fit(X, Y)
    with pytest.raises(ValueError, match="features"):
        m.predict(np.ones((4, 5)))


def test_sklearn_estimator_api() -> None:
    from sklearn.base import clone

    m = RidgeCV(alphas=ALPHAS, cv=3, backend="numpy")
    assert "cv=3" in repr(m)
    c = clone(m).set_params(score_func="pearson")
    assert c.get_params()["score_func"] == "pearson"
    X, Y = make_problem(40, 5, 3)
    c.fit(X, Y)
    assert c.cv_scores_.shape == (ALPHAS.size, 3)


# ------------------------------------------------------------------------------ banded ridge
def test_banded_ridge_single_band_equals_ridgecv() -> None:
    X, Y = make_problem(80, 12, 5, seed=17)
    a = RidgeCV(alphas=ALPHAS, cv=4, dtype="float64").fit(X, Y)
    b = BandedRidgeCV(bands=[slice(0, 12)], alphas=ALPHAS, cv=4, dtype="float64").fit(X, Y)
    np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-8, atol=1e-10)


def test_banded_ridge_prefers_informative_band() -> None:
    rng = np.random.default_rng(18)
    n = 300
    X1 = rng.standard_normal((n, 10))
    X2 = rng.standard_normal((n, 60))  # uninformative band
    Y = X1 @ rng.standard_normal((10, 4)) + rng.standard_normal((n, 4))
    X = np.hstack([X1, X2])
    m = BandedRidgeCV(bands=np.r_[np.zeros(10), np.ones(60)], cv=4).fit(X[:240], Y[:240])
    assert m.band_weights_.shape == (2, 4)
    assert np.all(m.band_weights_[0] > m.band_weights_[1])
    r_band = m.score_r(X[240:], Y[240:])
    r_plain = RidgeCV(cv=4).fit(X[:240], Y[:240]).score_r(X[240:], Y[240:])
    assert np.mean(r_band) >= np.mean(r_plain) - 1e-3
    with pytest.raises(ValueError, match="partition"):
        BandedRidgeCV(bands=[slice(0, 5)]).fit(X, Y)


# ------------------------------------------------------------------------------ metrics / backends
def test_metrics() -> None:
    from sklearn.metrics import r2_score as sk_r2

    rng = np.random.default_rng(19)
    a, b = rng.standard_normal((30, 4)), rng.standard_normal((30, 4))
    np.testing.assert_allclose(pearson_r(a, b), [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(4)])
    np.testing.assert_allclose(r2_score(a, b), sk_r2(a, b, multioutput="raw_values"))
    a[:, 2] = 1.0
    b[:, 3] = -2.0
    r = pearson_r(a, b)
    assert r[2] == 0.0 and r[3] == 0.0
    assert r2_score(a, b)[2] == 0.0
    with pytest.raises(ValueError, match="same shape"):
        pearson_r(a, b[:, :2])


def test_get_backend() -> None:
    assert get_backend("numpy").name == "numpy"
    be = get_backend("numpy")
    assert get_backend(be) is be
    with pytest.raises(EncodingError):
        get_backend("cupy")


def test_lapack_threads_auto_load_adapts_to_busy_cores(monkeypatch) -> None:
    """The load-dependent choice survives as the explicit opt-in ``auto-load``."""
    from brainlike.encoding import threads

    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "LAPACK_THREADS", threads.AUTO_LOAD)
    # (runnable system-wide, runnable threads of this process incl. the caller) -> threads
    for runnable, own, expected in [(1, 1, 4), (2, 1, 3), (4, 1, 1), (9, 1, 1), (3, 3, 4), (5, 3, 2)]:
        monkeypatch.setattr(threads, "_runnable_tasks", lambda r=runnable: r)
        monkeypatch.setattr(threads, "_own_runnable_tasks", lambda o=own: o)
        assert threads.lapack_threads() == expected
    assert threads.lapack_threads(100) == 1  # small matrices: one thread, no probe
    monkeypatch.setattr(threads, "LAPACK_THREADS", 2)
    assert threads.lapack_threads() == 2 and threads.lapack_threads(100) == 2
    assert threads._lapack_env("auto-load") == threads.AUTO_LOAD and threads._lapack_env(" 3 ") == 3
    with pytest.warns(UserWarning, match="not a thread count"):
        assert threads._lapack_env("many") == threads.DEFAULT


def test_lapack_threads_default_is_fixed_not_load_dependent(monkeypatch) -> None:
    """Default policy: 1 thread below SMALL_MATRIX, else all cores of the affinity, whatever the load."""
    from brainlike.encoding import threads

    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    monkeypatch.setattr(threads, "LAPACK_THREADS", threads.DEFAULT)
    for runnable in (1, 3, 50):  # the load must not matter
        monkeypatch.setattr(threads, "_runnable_tasks", lambda r=runnable: r)
        assert threads.lapack_threads(threads.SMALL_MATRIX) == 3
        assert threads.lapack_threads(threads.SMALL_MATRIX - 1) == 1
    for value in ("", "auto", "all"):
        assert threads._lapack_env(value) == threads.DEFAULT
    assert threads._lapack_env("0") == 0
    previous = threads.set_lapack_threads(1)
    assert previous == threads.DEFAULT and threads.lapack_threads(4096) == 1
    threads.set_lapack_threads("auto-load")
    assert threads.LAPACK_THREADS == threads.AUTO_LOAD
    threads.set_lapack_threads(None)
    assert threads.LAPACK_THREADS == threads.DEFAULT
    with pytest.raises(EncodingError, match="LAPACK threads"):
        threads.set_lapack_threads(-3)


def test_lapack_thread_count_is_applied_with_threadpoolctl(monkeypatch) -> None:
    """The factorisations run under a threadpoolctl BLAS limit equal to lapack_threads(size)."""
    from brainlike.encoding import threads
    from brainlike.encoding.backends import NumpyBackend

    seen = []
    real = threads.blas_threads

    def spy(n):
        seen.append(n)
        return real(n)

    monkeypatch.setattr(threads, "blas_threads", spy)
    monkeypatch.setattr(threads, "LAPACK_THREADS", 1)
    a = np.eye(8) * 2.0
    NumpyBackend().eigh(a)
    NumpyBackend().solve_spd(a, np.ones((8, 1)))
    assert seen == [1, 1]
    from threadpoolctl import threadpool_info

    with real(1):
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)


@pytest.mark.parametrize("estimator", ["ridge", "banded"])
def test_same_fit_twice_gives_identical_bits(estimator: str, monkeypatch) -> None:
    """Same inputs, same bits: coefficients, intercepts and CV scores of two fits are equal exactly.
    The threshold of the threaded factorisations is lowered so that they run on all cores here.
    (OpenBLAS's eigh and Cholesky of a 1100 x 1100 matrix differ by ~3e-13 between 1 and 2 threads
    and are identical for the same count, measured: hence a fixed count, not a load-dependent one.)"""
    from brainlike.encoding import threads

    monkeypatch.setattr(threads, "SMALL_MATRIX", 16)
    monkeypatch.setattr(threads, "LAPACK_THREADS", threads.DEFAULT)
    X, Y = make_problem(200, 60, 6, seed=21)
    X, Y = X.astype(np.float32), Y.astype(np.float32)

    def fit():
        if estimator == "ridge":
            return RidgeCV(alphas=ALPHAS, cv=3).fit(X, Y)
        return BandedRidgeCV(bands=[slice(0, 20), slice(20, 60)], alphas=ALPHAS, cv=3, n_random=0).fit(X, Y)

    a, b = fit(), fit()
    assert np.array_equal(a.coef_, b.coef_)
    assert np.array_equal(a.intercept_, b.intercept_)
    assert np.array_equal(a.cv_scores_, b.cv_scores_)
    assert np.array_equal(a.best_alphas_, b.best_alphas_)


def test_own_runnable_tasks_counts_spinning_threads() -> None:
    """The probe sees this process's busy threads (so that a BLAS pool spinning after a GEMM is
    not taken for another process's load)."""
    import threading

    from brainlike.encoding import threads

    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    base = threads._own_runnable_tasks()
    assert base >= 1
    th = threading.Thread(target=spin)
    th.start()
    try:
        seen = max(threads._own_runnable_tasks() for _ in range(50))
    finally:
        stop.set()
        th.join()
    assert seen >= 2  # the caller and the spinning thread (GIL switches aside, both are runnable)
