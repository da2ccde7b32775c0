"""Estimators: :class:`RidgeCV` (one alpha per target) and :class:`BandedRidgeCV` (per-band penalties).

scikit-learn conventions: ``RegressorMixin`` (:meth:`RidgeCV.score` is the R^2 averaged uniformly
over targets, as ``sklearn.metrics.r2_score``, so ``cross_val_score`` works), ``NotFittedError``
before ``fit``, predictions in the floating dtype of the features given to ``fit``, and the
scikit-learn estimator checks (``tests/test_estimator_checks.py``). The per-target Pearson r is
:meth:`RidgeCV.score_r`. The algebra is in :mod:`brainlike.encoding.spectral`.

Imports: validation, folds, backends, spectral, metrics (all below this module).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from brainlike.encoding.backends import Backend, get_backend
from brainlike.encoding.folds import resolve_cv
from brainlike.encoding.metrics import pearson_r
from brainlike.encoding.spectral import (
    METHODS,
    SCORE_FUNCS,
    SOLVERS,
    TIE_SLOPE,
    _RidgeEngine,
    chunk_size,
    vecmat64,
)
from brainlike.encoding.validation import DEFAULT_ALPHAS, EncodingError, check_alphas, check_choice, check_xy

__all__ = ["RidgeCV", "BandedRidgeCV"]


class RidgeCV(RegressorMixin, BaseEstimator):
    """Ridge regression with one alpha per target chosen by (inner) cross-validation.

    A scikit-learn regressor: :meth:`score` is the R^2 averaged over targets (as
    ``sklearn.metrics.r2_score``), :meth:`score_r` the Pearson r per target; ``predict`` before
    ``fit`` raises ``sklearn.exceptions.NotFittedError``.

    Parameters
    ----------
    alphas : array-like, shape (n_alphas,)
        Candidate penalties (strictly positive), default :data:`DEFAULT_ALPHAS`
        (``np.logspace(-1, 7, 17)``).
    cv : int or list of (train, test) index pairs
        Inner cross-validation. An int means that many contiguous folds
        (:func:`brainlike.encoding.folds.contiguous_folds`, group-aware when ``groups`` is
        passed to :meth:`fit`); a list gives explicit splits (indices into the rows of X).
        A scikit-learn splitter object is accepted too.
    backend : {"numpy", "torch", "torch_cpu", "torch_cuda"} or Backend
        Array backend; ``"torch"`` uses CUDA when available.
    fit_intercept : bool
        Fit an unpenalised intercept (centre X and Y with each training set's means).
        If False, X and Y are used as they are.
    solver : {"auto", "primal", "kernel"}
        Decomposition: primal (p x p Gram) or kernel (n x n Gram). ``"auto"`` picks, for
        each training set, primal when it has at least as many samples as features.
    memory_budget_gb : float
        Working memory (GiB) for the target chunks, on top of the inputs, the
        decompositions and the fitted coefficients. Targets are processed in chunks sized
        to fit it; results do not depend on it.
    score_func : {"r2", "pearson", "neg_mse"}
        Inner-CV criterion, averaged over folds: R^2 (as himalaya's ``r2_score``), Pearson
        r, or negative mean squared error (himalaya's default ``l2_neg_loss``).
    dtype : {"float32", "float64"}
        Precision of the large GEMMs on data and targets inside the engine, and of ``coef_``.
        Decompositions and score algebra are always float64. Predictions do not depend on it:
        they keep the dtype of the features given to :meth:`fit` (see :meth:`predict`).
    method : {"auto", "spectral", "direct"}
        How the scores of all alphas are computed from one decomposition per fold (see
        :mod:`brainlike.encoding.spectral`); both give the same result to rounding.

    Attributes
    ----------
    best_alphas_ : ndarray (n_targets,) float64
        Selected alpha per target.
    coef_ : ndarray (n_features, n_targets), float32 (float64 if ``dtype="float64"``)
        Coefficients, in Y units per X unit.
    intercept_ : ndarray (n_targets,) float64
        Intercept, in Y units (zeros if ``fit_intercept=False``).
    cv_scores_ : ndarray (n_alphas, n_targets) float64
        Inner-CV score of every alpha (mean over folds).
    n_features_in_ : int
    solver_ : str
        Decomposition used for the refit ("primal" or "kernel").
    refit_method_ : str
        How the refit solved the ridge systems: ``"cholesky"`` (one float64 factorisation per
        distinct selected alpha and target chunk) or ``"eigh"`` (one eigendecomposition, float32
        GEMMs in its eigenbasis), whichever the cost model found cheaper.
    """

    def __init__(
        self,
        alphas: Any = DEFAULT_ALPHAS,
        cv: int | list[tuple[Any, Any]] = 5,
        backend: str | Backend = "numpy",
        fit_intercept: bool = True,
        solver: str = "auto",
        memory_budget_gb: float = 2.0,
        score_func: str = "r2",
        dtype: str = "float32",
        method: str = "auto",
    ) -> None:
        self.alphas = alphas
        self.cv = cv
        self.backend = backend
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.memory_budget_gb = memory_budget_gb
        self.score_func = score_func
        self.dtype = dtype
        self.method = method

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        # scikit-learn's repr compares parameters with ``==``, which fails for the default
        # ndarray ``alphas``; list the parameters that differ from their defaults ourselves.
        import inspect

        sig = inspect.signature(type(self).__init__)
        parts = []
        for name, value in self.get_params(deep=False).items():
            default = sig.parameters[name].default
            try:
                same = bool(np.array_equal(np.asarray(value), np.asarray(default))) if (
                    isinstance(value, np.ndarray) or isinstance(default, np.ndarray)) else value == default
            except Exception:  # pragma: no cover - exotic parameter values
                same = False
            if not same:
                text = repr(value)
                if isinstance(value, np.ndarray) and value.size > 6:
                    text = f"array(shape={value.shape}, min={value.min():.3g}, max={value.max():.3g})"
                parts.append(f"{name}={text}")
        out = f"{type(self).__name__}({', '.join(parts)})"
        return out if len(out) <= N_CHAR_MAX else out[: N_CHAR_MAX - 4] + "...)"

    def _check_params(self) -> None:
        check_choice(self.solver, SOLVERS, "solver")
        check_choice(self.score_func, SCORE_FUNCS, "score_func")
        check_choice(self.dtype, ("float32", "float64"), "dtype")
        check_choice(self.method, METHODS, "method")
        if not (isinstance(self.memory_budget_gb, (int, float)) and self.memory_budget_gb > 0):
            raise EncodingError(f"memory_budget_gb must be a positive number, got {self.memory_budget_gb!r}")

    def fit(self, X: Any, Y: Any, groups: Any | None = None) -> RidgeCV:
        """Select alpha per target by inner CV, then refit on all samples.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Features (e.g. language-model activations; any unit).
        Y : array-like, shape (n_samples, n_targets) or (n_samples,)
            Targets (electrodes / voxels; any unit).
        groups : array-like, shape (n_samples,), optional
            Run labels; with an int ``cv``, inner folds never split a group.

        Returns
        -------
        self
        """
        self._check_params()
        X, Y, y1d = self._validate_fit_input(X, Y)
        alphas = check_alphas(self.alphas)
        folds = resolve_cv(self.cv, X.shape[0], groups)
        B = get_backend(self.backend)
        engine = _RidgeEngine(
            X, folds, alphas, fit_intercept=self.fit_intercept, solver=self.solver, backend=B,
            dtype=self.dtype, score_func=self.score_func, method=self.method,
        )
        n_targets = Y.shape[1]
        chunk = chunk_size(engine, n_targets, self.memory_budget_gb)
        coef = np.empty((X.shape[1], n_targets), dtype=self.dtype)
        intercept = np.empty(n_targets, dtype=np.float64)
        best = np.empty(n_targets, dtype=np.float64)
        cv_scores = np.empty((alphas.shape[0], n_targets), dtype=np.float64)
        tie = TIE_SLOPE * np.log(alphas)[:, None]
        for start in range(0, n_targets, chunk):
            sl = slice(start, min(n_targets, start + chunk))
            Y0_b, y_mean = engine.center_targets(Y[:, sl])
            T_b = engine.X_b.T @ Y0_b if engine.needs_T else None
            sc = engine.cv_scores(Y0_b, T_b)
            idx = np.argmax(sc + tie, axis=0)
            a_sel = alphas[idx]
            W = engine.refit(Y0_b, a_sel, T_b, n_targets=n_targets, n_chunks=-(-n_targets // chunk),
                             out=coef[:, sl] if isinstance(Y0_b, np.ndarray) else None)
            del Y0_b, T_b
            if not isinstance(W, np.ndarray):
                W = B.to_numpy(W)
                coef[:, sl] = W
            intercept[sl] = y_mean - vecmat64(engine.x_mean, W) if self.fit_intercept else 0.0
            best[sl] = a_sel
            cv_scores[:, sl] = sc
        self.best_alphas_ = best
        self.coef_ = coef
        self.intercept_ = intercept
        self.cv_scores_ = cv_scores
        self.n_features_in_ = X.shape[1]
        self.solver_ = engine.refit_mode
        self.refit_method_ = "eigh" if engine._refit_eigh else "cholesky"
        self.method_ = engine.method
        self.chunk_size_ = chunk
        self._y_was_1d = y1d
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # one alpha per target: Y may have many columns
        tags.target_tags.single_output = True
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags

    def _validate_fit_input(self, X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        """``check_xy`` for ``fit``, remembering the dtype of the features (predictions keep it)."""
        if Y is None:
            raise EncodingError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X, Y, y1d = check_xy(X, Y)
        assert Y is not None
        self._fit_dtype = X.dtype  # float32 or float64 (other numeric inputs are converted to float64)
        return X, Y, y1d

    def _check_fitted(self) -> None:
        check_is_fitted(self, "coef_")

    def _check_predict_input(self, X: Any, Y: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        self._check_fitted()
        X, Y, _ = check_xy(X, Y, min_samples=1 if Y is None else 2)
        if X.shape[1] != self.n_features_in_:
            raise EncodingError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                "features as input"
            )
        return X, Y

    def _predict64(self, X: np.ndarray) -> np.ndarray:
        """Predictions in float64, (n_samples, n_targets): float64 ``X @ coef_ + intercept_``."""
        out = X.astype(np.float64, copy=False) @ self.coef_.astype(np.float64)
        out += self.intercept_[None, :]
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Predict targets.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        Y_hat : ndarray, shape (n_samples, n_targets) (``(n_samples,)`` if the model was fitted
            on a 1-D ``Y``), in Y units, in the dtype of the features given to :meth:`fit`:
            float64 features give float64 predictions computed in float64 (``X @ coef_ +
            intercept_``, with ``coef_`` in the engine's ``dtype``, float32 by default); float32
            features give float32 predictions computed in float32. Note: with a very large
            alpha float32 predictions vary by ~1e-6 of the intercept, below float32 resolution;
            :meth:`score` and :meth:`score_r` compute in float64.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        """
        X, _ = self._check_predict_input(X)
        if getattr(self, "_fit_dtype", np.dtype(np.float64)) == np.float64:
            out = self._predict64(X)
        else:
            coef = self.coef_
            out = X.astype(coef.dtype, copy=False) @ coef
            out += self.intercept_.astype(coef.dtype)[None, :]
            out = out.astype(np.float32, copy=False)
        return out[:, 0] if getattr(self, "_y_was_1d", False) else out

    def score(self, X: Any, y: Any, sample_weight: Any | None = None) -> float:
        """Coefficient of determination R^2 of the predictions, averaged uniformly over targets.

        As scikit-learn's regressors (``RegressorMixin.score``), so that ``cross_val_score``
        and ``GridSearchCV`` work: ``sklearn.metrics.r2_score(y, predict(X), sample_weight)``
        with ``multioutput="uniform_average"``, from float64 predictions. For the per-target
        Pearson r (the usual encoding score) use :meth:`score_r`.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples, n_targets) or (n_samples,)
        sample_weight : array-like, shape (n_samples,), optional

        Returns
        -------
        float
            Mean R^2 over targets (unitless, at most 1).
        """
        from sklearn.metrics import r2_score as sk_r2_score

        X, Y = self._check_predict_input(X, y)
        assert Y is not None
        return float(sk_r2_score(Y, self._predict64(X), sample_weight=sample_weight))

    def score_r(self, X: Any, Y: Any) -> np.ndarray:
        """Pearson r between the predictions and ``Y`` per target.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        Y : array-like, shape (n_samples, n_targets) or (n_samples,)

        Returns
        -------
        r : ndarray (n_targets,) float64
            Computed from float64 predictions (see :meth:`predict`); 0.0 for constant columns.
        """
        X, Y = self._check_predict_input(X, Y)
        assert Y is not None
        pred = X.astype(np.float64) @ self.coef_.astype(np.float64)  # float64: see predict
        return pearson_r(Y - self.intercept_, pred)


class BandedRidgeCV(RidgeCV):
    """Banded ridge: one penalty scaling per feature group (band), chosen per target.

    The features of band ``b`` are multiplied by ``sqrt(gamma_b)``, with ``gamma`` on the
    simplex (sum 1), so that the effective penalty of band ``b`` is ``alpha / gamma_b``
    (himalaya's ``GroupRidgeCV`` parametrisation). For every candidate ``gamma`` of a small
    grid (the uniform weighting, the one-band-dominant corners softened by ``1e-3``, and
    ``n_random`` Dirichlet samples), the full RidgeCV engine selects alpha per target; each
    target keeps the (gamma, alpha) with the best inner-CV score (ties: earlier candidate).

    Parameters
    ----------
    bands : sequence of slices or index arrays, or ndarray (n_features,) of band labels, or None
        Feature groups (e.g. layers or feature spaces). Every feature must be in one band.
        None (default): all features form one band (then the fit equals :class:`RidgeCV`'s).
    n_random : int
        Number of random Dirichlet(1) band weightings added to the grid.
    random_state : int
        Seed of the random weightings.
    Other parameters: as :class:`RidgeCV`.

    Attributes
    ----------
    band_weights_ : ndarray (n_bands, n_targets) float64
        Selected ``gamma`` per target (columns sum to 1).
    best_alphas_, coef_, intercept_ : as :class:`RidgeCV` (``coef_`` applies to the
        unscaled features).
    cv_scores_ : ndarray (n_targets,) float64
        Best inner-CV score per target.
    candidates_ : ndarray (n_candidates, n_bands)
        Band weightings that were tried.
    """

    def __init__(
        self,
        bands: Any = None,
        alphas: Any = DEFAULT_ALPHAS,
        cv: int | list[tuple[Any, Any]] = 5,
        backend: str | Backend = "numpy",
        fit_intercept: bool = True,
        solver: str = "auto",
        memory_budget_gb: float = 2.0,
        score_func: str = "r2",
        dtype: str = "float32",
        method: str = "auto",
        n_random: int = 8,
        random_state: int = 0,
    ) -> None:
        super().__init__(alphas=alphas, cv=cv, backend=backend, fit_intercept=fit_intercept, solver=solver,
                         memory_budget_gb=memory_budget_gb, score_func=score_func, dtype=dtype, method=method)
        self.bands = bands
        self.n_random = n_random
        self.random_state = random_state

    def _band_index(self, p: int) -> list[np.ndarray]:
        bands = self.bands
        if bands is None:  # one band of all features: the same fit as RidgeCV
            return [np.arange(p)]
        if isinstance(bands, np.ndarray) and bands.ndim == 1 and bands.shape[0] == p and bands.dtype != object:
            labels = bands
            idx = [np.flatnonzero(labels == lab) for lab in list(dict.fromkeys(labels.tolist()))]
        else:
            idx = []
            for b in bands:
                if isinstance(b, slice):
                    idx.append(np.arange(p)[b])
                else:
                    idx.append(np.asarray(b, dtype=np.int64))
        allidx = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
        if len(idx) < 1 or any(i.size == 0 for i in idx):
            raise EncodingError("every band must contain at least one feature")
        if allidx.size != p or np.unique(allidx).size != p or allidx.min() < 0 or allidx.max() >= p:
            raise EncodingError(f"bands must partition the {p} features (each feature in exactly one band)")
        return idx

    def _candidates(self, n_bands: int) -> np.ndarray:
        cands = [np.full(n_bands, 1.0 / n_bands)]
        if n_bands > 1:
            for b in range(n_bands):
                g = np.full(n_bands, 1e-3)
                g[b] = 1.0
                cands.append(g / g.sum())
            rng = np.random.default_rng(self.random_state)
            cands += list(rng.dirichlet(np.ones(n_bands), size=int(self.n_random)))
        return np.array(cands)

    def fit(self, X: Any, Y: Any, groups: Any | None = None) -> BandedRidgeCV:
        """Select (band weights, alpha) per target by inner CV, then refit.

        Shapes as :meth:`RidgeCV.fit`.
        """
        self._check_params()
        X, Y, y1d = self._validate_fit_input(X, Y)
        alphas = check_alphas(self.alphas)
        folds = resolve_cv(self.cv, X.shape[0], groups)
        B = get_backend(self.backend)
        bands = self._band_index(X.shape[1])
        cands = self._candidates(len(bands))
        n, p = X.shape
        t = Y.shape[1]
        tie = TIE_SLOPE * np.log(alphas)[:, None]
        best_score = np.full(t, -np.inf)
        best_cand = np.zeros(t, dtype=np.int64)
        best_alpha = np.zeros(t)

        def scaled(g: np.ndarray) -> np.ndarray:
            Xs = np.array(X, dtype=np.float64 if self.dtype == "float64" else np.float32, copy=True)
            for gi, bi in zip(g, bands):
                Xs[:, bi] *= math.sqrt(gi)
            return Xs

        for ci, g in enumerate(cands):
            eng = _RidgeEngine(scaled(g), folds, alphas, fit_intercept=self.fit_intercept, solver=self.solver,
                               backend=B, dtype=self.dtype, score_func=self.score_func, method=self.method,
                               need_refit=False)
            chunk = chunk_size(eng, t, self.memory_budget_gb)
            for start in range(0, t, chunk):
                sl = slice(start, min(t, start + chunk))
                Y0_b, _ = eng.center_targets(Y[:, sl])
                sc = eng.cv_scores(Y0_b)
                idx = np.argmax(sc + tie, axis=0)
                top = sc[idx, np.arange(sc.shape[1])]
                better = top > best_score[sl]
                bs = best_score[sl]
                bs[better] = top[better]
                best_score[sl] = bs
                bc = best_cand[sl]
                bc[better] = ci
                best_cand[sl] = bc
                ba = best_alpha[sl]
                ba[better] = alphas[idx][better]
                best_alpha[sl] = ba
            del eng

        coef = np.zeros((p, t), dtype=self.dtype)
        intercept = np.zeros(t)
        x_mean = X.mean(axis=0, dtype=np.float64)
        for ci in np.unique(best_cand):
            targets = np.flatnonzero(best_cand == ci)
            g = cands[ci]
            eng = _RidgeEngine(scaled(g), folds, alphas, fit_intercept=self.fit_intercept, solver=self.solver,
                               backend=B, dtype=self.dtype, score_func=self.score_func, method=self.method,
                               need_cv=False)
            chunk = chunk_size(eng, targets.size, self.memory_budget_gb)
            for start in range(0, targets.size, chunk):
                tg = targets[start:start + chunk]
                Y0_b, y_mean = eng.center_targets(Y[:, tg])
                W = B.to_numpy(eng.refit(Y0_b, best_alpha[tg], n_targets=targets.size,
                                         n_chunks=-(-targets.size // chunk))).astype(np.float64)
                for gi, bi in zip(g, bands):
                    W[bi] *= math.sqrt(gi)  # back to the unscaled features
                coef[:, tg] = W
                if self.fit_intercept:
                    intercept[tg] = y_mean - x_mean @ W
        self.best_alphas_ = best_alpha
        self.band_weights_ = cands[best_cand].T.copy()
        self.candidates_ = cands
        self.coef_ = coef
        self.intercept_ = intercept
        self.cv_scores_ = best_score
        self.n_features_in_ = p
        self._y_was_1d = y1d
        return self
