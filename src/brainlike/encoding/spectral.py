"""Spectral ridge engine: decompositions of a feature matrix, scores of every alpha, refit.

The engine behind :class:`~brainlike.encoding.estimators.RidgeCV` (and
:func:`brainlike.encoding.cv.cross_validated_encoding`) is built on GEMMs and symmetric
eigendecompositions, never on an SVD of the data:

* **One decomposition per training set, reused for all alphas and all targets.** For each
  inner CV fold the centred training Gram matrix is diagonalised once, in float64:
  the *primal* ``X_A^T X_A = V diag(s) V^T`` (p x p) when the fold has at least as many
  samples as features, else the *kernel* ``X_A X_A^T = U diag(s) U^T`` (n_A x n_A).
  The choice is made per decomposition (``solver="auto"``) or forced (``"primal"``,
  ``"kernel"``).
* **Scores for every alpha at the cost of about one.** With validation predictions
  ``Z (f_a * c)``, where ``f_a = 1 / (s + alpha)``, ``c`` the training cross-products in the
  eigenbasis and ``M = Z^T Z``, the validation residual sum of squares is
  ``||y||^2 - 2 sum_i f_i c_i g_i + sum_ik c_i c_k M_ik f_i f_k``. The quadratic term is
  split exactly by partial fractions,
  ``f_i f_k = (f_i - f_k) / (s_k - s_i)``, into ``2 sum_i f_i c_i (N c)_i`` with
  ``N_ik = M_ik / (s_k - s_i)``. One float64 GEMM ``N @ c`` per fold then gives the scores of
  all alphas (``method="spectral"``). Eigenvalues closer than ``1e-8 (s + min(alpha))`` are
  merged into clusters (a relative perturbation of the Gram matrix of at most 1e-8,
  below float32 data resolution) and their block is evaluated directly, which keeps the
  identity numerically stable. ``method="direct"`` computes every alpha's validation
  predictions instead (reference implementation, also used when there are very few alphas).
* **Targets in chunks** whose working memory fits ``memory_budget_gb``; float32 GEMMs on the
  data (``dtype="float32"``), float64 decompositions and score algebra.

Selection follows himalaya's ``RidgeCV`` exactly: per target, the alpha maximising the mean
over inner folds of the validation score, ties broken towards larger alphas (a
``1e-10 * log(alpha)`` slope). With ``fit_intercept=True`` both X and Y are centred with the
means of each training set (inner folds and refit), i.e. an unpenalised intercept.

Units: X and Y in any units; ``alphas`` in the units of ``X^T X`` (squared X units times
samples); coefficients in Y units per X unit.

Imports only :mod:`brainlike.encoding.backends`; the estimators sit on top of it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brainlike.encoding.backends import Backend

__all__ = ["SCORE_FUNCS", "SOLVERS", "METHODS", "TIE_SLOPE", "chunk_size", "vecmat64"]

#: Eigenvalues below ``_EIG_RTOL * max(eigenvalue)`` are treated as exact zeros and their
#: directions dropped (the data have no variance along them; float64 rounding noise of a
#: rank-deficient Gram matrix is ~1e-15 of the largest eigenvalue).
_EIG_RTOL = 1e-11
#: Eigenvalues closer than ``_CLUSTER_RTOL * (s + min(alphas))`` are merged (see module doc).
_CLUSTER_RTOL = 1e-8
#: Mixed precision of the partial-fraction product ``N @ c`` (``method="spectral"``, float32
#: data, R^2 or MSE criterion): float32 rounding of ``N_ik`` is amplified by
#: ``(max(s_i, s_k) + alpha) / |s_k - s_i|`` relative to that pair's term of the quadratic term.
#: Pairs closer than ``_F32_RELGAP * (s_i + s_k + 2 min(alpha))`` stay in float64 diagonal tiles
#: (at least ``_TILE`` eigenvalues, cut only between neighbours at least that far apart, so every
#: pair outside the tiles is); all other entries go through one float32 GEMM. For small alphas the
#: error is below ``6e-8 / _F32_RELGAP`` of the pair terms; for alphas far above the eigenvalues it
#: grows with alpha, but the quadratic term itself shrinks as ``1 / alpha^2``, so the error of R^2
#: (relative to the validation variance) stays small: tested against the all-float64 product to
#: 1e-6 (tests/test_ridge.py) and measured on case (b) of benchmarks/bench_ridge.py (max |delta
#: R^2| 3e-7, identical alphas). Pearson scores divide by the prediction variance, which has no
#: such damping, so they keep the float64 product.
_F32_RELGAP = 1e-3
_TILE = 64
#: Rows per block of the element-wise score algebra when there are no tiles (a float64 block
#: of 128 rows x 5000 targets is 5 MB).
_ROWS = 128
#: Tie-breaking slope towards larger alphas, as in himalaya.
TIE_SLOPE = 1e-10
#: The refit uses one Cholesky factorisation per distinct selected alpha (and target chunk) when
#: that is cheaper than one eigendecomposition (``_RidgeEngine._refit_by_eigh``), and never for
#: more than this many distinct alphas.
_MAX_CHOLESKY_ALPHAS = 12

SCORE_FUNCS = ("r2", "pearson", "neg_mse")
SOLVERS = ("auto", "primal", "kernel")
METHODS = ("auto", "spectral", "direct")


# ---------------------------------------------------------------------------------------
# decompositions
# ---------------------------------------------------------------------------------------
@dataclass
class _Decomposition:
    """Spectral decomposition of one (centred) training set and, for CV folds, its validation side.

    Arrays named ``*_b`` live on the backend.

    Shapes: ``r`` kept eigen-directions, ``p`` features, ``n_A`` training samples,
    ``n_V`` validation samples.
    """

    mode: str                       # "primal" or "kernel"
    train: np.ndarray               # (n_A,) sample indices
    test: np.ndarray | None         # (n_V,) sample indices, None for the refit
    complementary: bool             # train and test partition all samples
    s: np.ndarray                   # (r,) float64 eigenvalues kept (ascending)
    basis_b: Any                    # primal: V (p, r); kernel: U (n_A, r); compute dtype
    m_A: np.ndarray | None = None   # (p,) float64 mean of X0 over train (primal, intercept)
    xbar_V: np.ndarray | None = None  # (p,) float64 mean of X0 over test (primal)
    XV_b: Any = None                # (n_V, p) X0 rows of test (primal), compute dtype
    XA_b: Any = None                # (n_A, p) X0 rows of train (primal, non-complementary)
    U1_b: Any = None                # (r,) U^T 1 (kernel), float64
    Z_b: Any = None                 # (n_V, r) validation design in the eigenbasis, compute dtype
    zbar_b: Any = None              # (r,) float64 column means of Z over test
    # spectral-method quantities
    s_pf: np.ndarray | None = None  # (r,) float64 cluster-merged eigenvalues
    N_b: Any = None                 # (r, r) partial-fraction matrix: float64, or float32 far part
    tiles: list[tuple[int, int, Any]] = field(default_factory=list)  # float64 near-diagonal N tiles
    FFM_b: Any = None               # (n_alphas, r) float64 F^2 * diag(M = Z^T Z) (1 in clusters)
    blocks: list[tuple[int, int, Any]] = field(default_factory=list)  # (start, stop, M block)
    F_b: Any = None                 # (n_alphas, r) float64 1 / (s_pf + alpha)

    @property
    def rank(self) -> int:
        return int(self.s.shape[0])


def _keep_mask(w: np.ndarray) -> slice:
    """Eigen-directions kept from ascending eigenvalues ``w``, as a slice.

    The dropped near-zero and negative rounding-noise eigenvalues come first, so that no eigenvector
    matrix is copied.
    """
    smax = float(w[-1]) if w.size else 0.0
    if smax <= 0:
        return slice(w.shape[0], w.shape[0])
    return slice(int(np.searchsorted(w, _EIG_RTOL * smax, side="right")), w.shape[0])


def _clusters(s: np.ndarray, a_min: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Merge ascending eigenvalues closer than ``_CLUSTER_RTOL * (s + a_min)``.

    Returns the merged eigenvalues (r,) and the (start, stop) ranges of clusters of size > 1.
    """
    r = s.shape[0]
    if r <= 1:
        return s.copy(), []
    gaps = np.diff(s)
    new = gaps > _CLUSTER_RTOL * (s[1:] + a_min)
    starts = np.concatenate([[0], np.flatnonzero(new) + 1])
    stops = np.concatenate([starts[1:], [r]])
    s_pf = s.copy()
    blocks = []
    for a, b in zip(starts, stops):
        if b - a > 1:
            s_pf[a:b] = s[a:b].mean()
            blocks.append((int(a), int(b)))
    return s_pf, blocks


class _RidgeEngine:
    """Decompositions of one feature matrix for a set of CV folds, and the per-chunk scoring / refit.

    See the module docstring for the algebra.

    Parameters
    ----------
    X : ndarray (n_samples, n_features)
    folds : list of (train, test) index arrays
    alphas : ndarray (n_alphas,) float64
    """

    def __init__(
        self,
        X: np.ndarray,
        folds: Sequence[tuple[np.ndarray, np.ndarray]],
        alphas: np.ndarray,
        *,
        fit_intercept: bool,
        solver: str,
        backend: Backend,
        dtype: str,
        score_func: str,
        method: str,
        need_refit: bool = True,
        need_cv: bool = True,
    ) -> None:
        self.B = backend
        self.dtype = dtype
        self.alphas = alphas
        self.fit_intercept = fit_intercept
        self.score_func = score_func
        self.solver = solver
        self.n, self.p = X.shape
        self.folds = list(folds)
        n_alphas = alphas.shape[0]
        if method == "auto":
            # spectral: ~2 r^2 float64 flops per target and fold, independent of n_alphas;
            # direct: ~n_alphas * n_V * r float32 flops.
            method = "direct" if n_alphas <= 2 else "spectral"
        self.method = method

        self.x_mean = X.mean(axis=0, dtype=np.float64) if fit_intercept else np.zeros(self.p)
        X0 = X - self.x_mean if fit_intercept else X
        X0_64 = np.asarray(X0, dtype=np.float64)
        self.X_b = backend.asarray(X0, dtype)

        modes = []
        if need_cv:
            modes += [self._mode(len(tr)) for tr, _ in self.folds]
        if need_refit:
            modes.append(self._mode(self.n))
        self.K: np.ndarray | None = None
        self.G: np.ndarray | None = None
        X64_b = backend.asarray(X0_64, "float64")
        if "kernel" in modes:
            self.K = backend.to_numpy(X64_b @ X64_b.T)  # (n, n) float64
        if "primal" in modes:
            self.G = backend.to_numpy(X64_b.T @ X64_b)  # (p, p) float64
        del X64_b

        self.cv_decomps: list[_Decomposition] = []
        self._buffers: dict[str, np.ndarray] = {}
        if need_cv:
            self.cv_decomps = [self._decompose(X0_64, tr, te) for tr, te in self.folds]
        self._buffers.clear()
        # refit: Cholesky solves of (Gram + alpha I) per distinct selected alpha, or one
        # eigendecomposition (computed lazily), whichever is cheaper (see refit).
        self.refit_mode = self._mode(self.n) if need_refit else None
        self.refit_decomp: _Decomposition | None = None
        self._refit_eigh: bool | None = None  # chosen at the first refit call
        self._XU_b: Any = None  # (p, r) X^T U of the refit (kernel, eigendecomposition path)
        self._X0_64 = X0_64 if need_refit else None
        self.needs_T = any(d.mode == "primal" for d in self.cv_decomps) or self.refit_mode == "primal"

    # ------------------------------------------------------------------ setup
    def _mode(self, n_train: int) -> str:
        if self.solver == "primal":
            return "primal"
        if self.solver == "kernel":
            return "kernel"
        return "primal" if n_train >= self.p else "kernel"

    def _decompose(self, X0_64: np.ndarray, tr: np.ndarray, te: np.ndarray | None) -> _Decomposition:
        B, dt = self.B, self.dtype
        n_A = tr.shape[0]
        complementary = te is not None and (n_A + te.shape[0] == self.n) and (
            np.unique(np.concatenate([tr, te])).shape[0] == self.n
        )
        mode = self._mode(n_A)
        fi = self.fit_intercept
        is_full = te is None
        if mode == "primal":
            assert self.G is not None
            XA = X0_64 if is_full else X0_64[tr]
            m_A = XA.mean(axis=0) if fi else np.zeros(self.p)
            if is_full:
                G_A = self.G.copy()  # X0 is already centred on all samples
                XVtXV = None
            else:
                XV = X0_64[te]
                XVtXV = XV.T @ XV
                if complementary:
                    G_A = self.G - XVtXV
                else:
                    G_A = XA.T @ XA
                if fi:
                    G_A -= n_A * np.outer(m_A, m_A)
            w, v = B.eigh(B.asarray(G_A, "float64"))
            w = B.to_numpy(w)
            keep = _keep_mask(w)
            v = B.to_numpy(v)[:, keep]
            d = _Decomposition(mode, tr, te, complementary, w[keep].copy(), B.asarray(v, dt))
            if is_full:
                return d
            d.m_A = m_A
            xbar_V = XV.mean(axis=0)
            d.xbar_V = xbar_V
            d.XV_b = B.asarray(XV, dt)
            if not complementary:
                d.XA_b = B.asarray(XA, dt)
            n_V = te.shape[0]
            # M = V^T (X_V - m_A)^T (X_V - m_A) V
            XVc_gram = XVtXV
            if fi:
                XVc_gram = XVtXV - n_V * (np.outer(xbar_V, m_A) + np.outer(m_A, xbar_V)) + n_V * np.outer(m_A, m_A)
            M = v.T @ XVc_gram @ v
            zbar = (xbar_V - m_A) @ v
            if self.method == "direct":
                d.Z_b = B.asarray((XV - m_A) @ v, dt)
        else:
            assert self.K is not None
            if is_full:
                K_AAc = self.K  # full X0 already centred
            else:
                K_AAc = self.K[np.ix_(tr, tr)]  # a copy, centred in place
                if fi:
                    k_A = K_AAc.mean(axis=1)
                    kap = k_A.mean()
                    K_AAc -= k_A[:, None]
                    K_AAc -= (k_A - kap)[None, :]
            w, u = B.eigh(B.asarray(K_AAc, "float64"))
            del K_AAc
            w = B.to_numpy(w)
            keep = _keep_mask(w)
            u = B.to_numpy(u)[:, keep]
            d = _Decomposition(mode, tr, te, complementary, w[keep].copy(), B.asarray(u, dt))
            d.U1_b = B.asarray(u.sum(axis=0), "float64")
            if is_full:
                return d
            K_VA = self.K[np.ix_(te, tr)]
            if fi:
                K_VA = K_VA - K_VA.mean(axis=1)[:, None] - k_A[None, :] + kap
            Z = K_VA @ u  # (n_V, r)
            M = np.matmul(Z.T, Z, out=self._scratch("M", (Z.shape[1], Z.shape[1])))
            zbar = Z.mean(axis=0)
            d.Z_b = B.asarray(Z, dt)
        d.zbar_b = B.asarray(zbar, "float64")
        if self.method == "spectral":
            s_pf, blocks = _clusters(d.s, float(self.alphas.min()))
            d.s_pf = s_pf
            r = s_pf.shape[0]
            N = np.subtract(s_pf[None, :], s_pf[:, None], out=self._scratch("N", (r, r)))
            # N is now D_ik = s_k - s_i, zero only inside clusters
            with np.errstate(divide="ignore", invalid="ignore"):
                np.divide(M, N, out=N)  # N_ik = M_ik / (s_k - s_i)
            np.fill_diagonal(N, 0.0)
            for a, b in blocks:
                N[a:b, a:b] = 0.0
            d.N_b, d.tiles = self._split_n(N, s_pf)
            d.blocks = [(a, b, B.asarray(M[a:b, a:b].copy(), "float64")) for a, b in blocks]
            F = 1.0 / (s_pf[None, :] + self.alphas[:, None])
            d.F_b = B.asarray(F, "float64")
            # quadratic-term weights: F^2 * diag(M), except in clusters whose rows carry c * (M_blk c)
            mdiag = np.diag(M).copy()
            for a, b in blocks:
                mdiag[a:b] = 1.0
            d.FFM_b = B.asarray(F * F * mdiag[None, :], "float64")
        else:
            d.s_pf = d.s
            d.F_b = B.asarray(1.0 / (d.s[None, :] + self.alphas[:, None]), "float64")
        return d

    def _split_n(self, N: np.ndarray, s_pf: np.ndarray) -> tuple[Any, list[tuple[int, int, Any]]]:
        """N as one backend matrix and its float64 near-diagonal tiles.

        The matrix is float64, or float32 off the near-diagonal tiles; the tiles are
        ``(start, stop, N[start:stop, start:stop])``.
        """
        B = self.B
        r = N.shape[0]
        if self.dtype != "float32" or self.score_func == "pearson" or r < 4 * _TILE:
            return B.asarray(N.copy(), "float64"), []  # N lives in a scratch buffer
        a_min = float(self.alphas.min())
        # adjacent relative gaps; the smallest relative gap of any pair straddling a cut is the
        # one of the two eigenvalues next to the cut (the gap grows with distance in sorted order)
        relgap = np.diff(s_pf) / (s_pf[1:] + s_pf[:-1] + 2 * a_min)
        cuttable = np.flatnonzero(relgap >= _F32_RELGAP) + 1  # a cut before index j is allowed
        bounds = [0]
        for j in cuttable:
            if j - bounds[-1] >= _TILE and r - j >= _TILE // 2:
                bounds.append(int(j))
        bounds.append(r)
        tiled = sum((b - a) ** 2 for a, b in zip(bounds[:-1], bounds[1:]))
        if tiled > 0.25 * r * r:  # clustered spectrum: the split would not pay
            return B.asarray(N.copy(), "float64"), []
        far = N.astype(np.float32)
        tiles = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            tiles.append((a, b, B.asarray(N[a:b, a:b].copy(), "float64")))
            far[a:b, a:b] = 0.0
        return B.asarray(far, "float32"), tiles

    def _scratch(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        """A float64 work array of ``shape`` reused by all decompositions.

        Fresh large arrays cost page faults on every fold; its content is overwritten by the next use.
        """
        size = shape[0] * shape[1]
        buf = self._buffers.get(name)
        if buf is None or buf.size < size:
            buf = self._buffers[name] = np.empty(size)
        return buf[:size].reshape(shape)

    # ------------------------------------------------------------------ memory model
    def fixed_bytes(self) -> int:
        """Bytes held independently of the number of targets (decompositions, X copies)."""
        c = 4 if self.dtype == "float32" else 8
        total = self.n * self.p * c
        if self.refit_mode is not None:
            k = self.p if self.refit_mode == "primal" else self.n
            total += 2 * k * k * 8
            if self.refit_mode == "kernel":
                total += self.p * self.n * c  # X^T U of the eigendecomposition refit
        for d in self.cv_decomps:
            r = d.rank
            total += (self.p if d.mode == "primal" else d.train.shape[0]) * r * c
            if d.N_b is not None:
                total += r * r * 8
            if d.Z_b is not None and d.test is not None:
                total += d.test.shape[0] * r * c
            if d.XV_b is not None:
                total += d.test.shape[0] * self.p * c
            if d.XA_b is not None:
                total += d.train.shape[0] * self.p * c
        return int(total)

    def bytes_per_target(self) -> int:
        """Working bytes per target of one chunk (upper estimate)."""
        c = 4 if self.dtype == "float32" else 8
        r_max = max([d.rank for d in self.cv_decomps] + [1])
        if self.refit_mode is not None:
            r_max = max(r_max, self.p if self.refit_mode == "primal" else self.n)
        n_alphas = self.alphas.shape[0]
        n_folds = max(1, len(self.cv_decomps))
        per = 3 * self.n * 8  # Y chunk in float64 + centred compute copy + fold gathers
        per += 6 * self.p * c  # T, B_A, B_V and rank-one temporaries
        per += 10 * r_max * 8  # c, g, h, products, refit coefficients
        per += n_alphas * 8 * (n_folds + 8)  # per-fold and mean scores, F @ (...) results
        if self.method == "direct":
            per += 3 * max([d.test.shape[0] for d in self.cv_decomps] + [1]) * c
        return int(per)

    # ------------------------------------------------------------------ per chunk
    def center_targets(self, Y: np.ndarray) -> tuple[Any, np.ndarray]:
        """Centre a target chunk (n, t) and move it to the backend (compute dtype)."""
        y_mean = Y.mean(axis=0, dtype=np.float64) if self.fit_intercept else np.zeros(Y.shape[1])
        Y0 = Y.astype(self.dtype, copy=True) if Y.dtype != np.dtype(self.dtype) else Y.copy()
        if self.fit_intercept:
            Y0 -= y_mean.astype(self.dtype)
        return self.B.asarray(Y0, self.dtype), y_mean

    def cv_scores(self, Y0_b: Any, T_b: Any = None) -> np.ndarray:
        """Mean validation score over folds for every alpha: ndarray (n_alphas, t), float64."""
        B = self.B
        if T_b is None and self.needs_T:
            T_b = self.X_b.T @ Y0_b
        total = None
        ysum = B.sum64(Y0_b, 0) if self.fit_intercept else None  # (t,) column sums
        for d in self.cv_decomps:
            sc = B.to_numpy(self._fold_scores(d, Y0_b, T_b, ysum))
            total = sc if total is None else total + sc
        assert total is not None
        out = total / len(self.cv_decomps)
        out[~np.isfinite(out)] = -np.inf
        return out

    def _fold_scores(self, d: _Decomposition, Y0_b: Any, T_b: Any, ysum: Any) -> Any:
        B, dt, fi = self.B, self.dtype, self.fit_intercept
        n_V = d.test.shape[0]
        n_A = d.train.shape[0]
        Y_V = B.take(Y0_b, d.test, 0)
        ybar_V = B.sum64(Y_V, 0) / n_V  # (t,)
        if fi:
            if d.complementary:
                mu_A = (ysum - ybar_V * n_V) / n_A
            else:
                mu_A = B.sum64(B.take(Y0_b, d.train, 0), 0) / n_A
        else:
            mu_A = None
        # total sum of squares of the validation targets around their own mean
        ss_tot = B.sumsq64(Y_V - B.cast(ybar_V, dt)[None, :], 0)
        ybar_Vc = ybar_V - mu_A if fi else ybar_V  # mean of validation targets centred by train mean
        ssq = ss_tot + n_V * ybar_Vc * ybar_Vc  # ||y_V - mu_A||^2
        if d.mode == "primal":
            B_V = d.XV_b.T @ Y_V  # (p, t)
            if d.complementary:
                B_A = T_b - B_V
            else:
                B_A = d.XA_b.T @ B.take(Y0_b, d.train, 0)
            if fi:
                mA = B.asarray(d.m_A, dt)
                xV = B.asarray(d.xbar_V, dt)
                muA = B.cast(mu_A, dt)
                yV = B.cast(ybar_V, dt)
                B_A = B_A - (n_A * mA)[:, None] * muA[None, :]
                B_V = B_V - (n_V * xV)[:, None] * muA[None, :] - (n_V * mA)[:, None] * (yV - muA)[None, :]
            c = d.basis_b.T @ B_A
            g = d.basis_b.T @ B_V
            del B_A, B_V
        else:
            Y_A = B.take(Y0_b, d.train, 0)
            c = d.basis_b.T @ Y_A
            del Y_A
            if fi:
                c -= B.cast(d.U1_b, dt)[:, None] * B.cast(mu_A, dt)[None, :]
                Y_Vc = Y_V - B.cast(mu_A, dt)[None, :]
            else:
                Y_Vc = Y_V
            g = d.Z_b.T @ Y_Vc
            del Y_Vc
        if self.method == "spectral":
            return self._spectral_scores(d, c, g, ssq, ss_tot, ybar_Vc, n_V)
        return self._direct_scores(d, c, Y_V, mu_A, ss_tot, n_V)

    def _spectral_scores(self, d: _Decomposition, c: Any, g: Any, ssq: Any, ss_tot: Any,
                         ybar_Vc: Any, n_V: int) -> Any:
        """Validation scores of every alpha from ``c`` (r, t) and ``g`` (r, t), compute dtype.

        One GEMM ``N @ c``; the element-wise products ``c * (N c)``, ``c^2`` and ``g * c`` are
        formed in float64 (exact for float32 inputs) one block of rows at a time and reduced at
        once with the alpha-dependent weights (``F``, ``F^2 diag(M)``, (n_alphas, rows)), so
        that no (r, t) float64 array is ever allocated: the blocks stay in cache.
        """
        B = self.B
        F, FFM = d.F_b, d.FFM_b  # (n_alphas, r) float64
        r, t = int(c.shape[0]), int(c.shape[1])
        if d.tiles:  # mixed precision: float32 far part, float64 near-diagonal tiles
            Nc = d.N_b @ c  # (r, t) compute dtype
            row_blocks = d.tiles
        else:
            Nc = d.N_b @ B.cast(c, "float64")  # (r, t) float64
            row_blocks = [(a, min(a + _ROWS, r), None) for a in range(0, r, _ROWS)]
        pearson = self.score_func == "pearson"
        n_alphas = int(F.shape[0])
        quad = B.zeros((n_alphas, t), "float64")   # F (c * N c)
        sq = B.zeros((n_alphas, t), "float64")     # F^2 diag(M) c^2
        cross = B.zeros((n_alphas, t), "float64")  # F (g * c): <y_V - mu_A, prediction>
        mp = B.zeros((n_alphas, t), "float64") if pearson else None
        FZ = F * d.zbar_b[None, :] if pearson else None
        for a, b, Nt in row_blocks:
            cb = B.cast(c[a:b], "float64")
            nb = B.cast(Nc[a:b], "float64")
            if Nt is not None:
                nb = nb + Nt @ cb
            nb *= cb
            quad += F[:, a:b] @ nb
            nb = cb * cb
            sq += FFM[:, a:b] @ nb
            nb = B.cast(g[a:b], "float64")
            nb *= cb
            cross += F[:, a:b] @ nb
            if pearson:
                mp += FZ[:, a:b] @ cb
            del cb, nb
        del Nc
        for a, b, Mblk in d.blocks:  # clusters: c^2 -> c * (M_blk c) (FFM carries F^2 there)
            ca = B.cast(c[a:b], "float64")
            sq += FFM[:, a:b] @ (ca * (Mblk @ ca) - ca * ca)
        quad *= 2.0  # ||prediction||^2 = 2 F (c * N c) + F^2 diag(M) c^2, (n_alphas, t)
        quad += sq
        del sq
        ssres = ssq[None, :] - 2.0 * cross + quad
        ssres = B.maximum(ssres, 0.0)
        if pearson:
            var_p = quad - n_V * mp * mp
            cov = cross - n_V * ybar_Vc[None, :] * mp
            return self._pearson_from_moments(cov, var_p, ss_tot, quad)
        return self._score_from_ssres(ssres, ss_tot, n_V)

    def _direct_scores(self, d: _Decomposition, c: Any, Y_V: Any, mu_A: Any, ss_tot: Any, n_V: int) -> Any:
        B, dt = self.B, self.dtype
        F = B.cast(d.F_b, dt)
        Y_Vc = Y_V - B.cast(mu_A, dt)[None, :] if mu_A is not None else Y_V
        n_alphas = self.alphas.shape[0]
        out = B.zeros((n_alphas, Y_V.shape[1]), "float64")
        for k in range(n_alphas):
            pred = d.Z_b @ (F[k][:, None] * c)
            if self.score_func == "pearson":
                pm = B.mean(B.cast(pred, "float64"), 0)
                pc = pred - B.cast(pm, dt)[None, :]
                ym = B.mean(B.cast(Y_Vc, "float64"), 0)
                yc = Y_Vc - B.cast(ym, dt)[None, :]
                cov = B.sum(B.cast(pc * yc, "float64"), 0)
                var_p = B.sumsq64(pc, 0)
                out[k] = self._pearson_from_moments(cov[None, :], var_p[None, :], ss_tot, var_p[None, :])[0]
            else:
                ssres = B.sumsq64(Y_Vc - pred, 0)
                out[k] = self._score_from_ssres(ssres[None, :], ss_tot, n_V)[0]
        return out

    def _score_from_ssres(self, ssres: Any, ss_tot: Any, n_V: int) -> Any:
        if self.score_func == "neg_mse":
            return -ssres / n_V
        ok = ss_tot > 0
        safe = ss_tot + (~ok) * 1.0
        r2 = 1.0 - ssres / safe[None, :]
        return r2 * ok[None, :]  # R^2 = 0 where the validation targets are constant (himalaya)

    def _pearson_from_moments(self, cov: Any, var_p: Any, ss_tot: Any, scale: Any) -> Any:
        B = self.B
        ok = (ss_tot[None, :] > 0) & (var_p > 1e-12 * B.maximum(scale, 1e-300))
        denom = B.sqrt(B.maximum(var_p, 1e-300) * B.maximum(ss_tot, 1e-300)[None, :])
        r = cov / denom
        return r * ok

    def _refit_by_eigh(self, n_targets: int, n_distinct: int, n_chunks: int) -> bool:
        """Whether the refit goes through one eigendecomposition (else Cholesky per alpha).

        Cost model of the refit (in float64-GEMM flop equivalents, ratios measured with OpenBLAS on
        this project's machines): one Cholesky factorisation per distinct alpha and target chunk plus
        float64 triangular solves, against one eigendecomposition (reused by all chunks) plus float32
        GEMMs in its orthonormal basis.
        """
        m = self.p if self.refit_mode == "primal" else self.n
        # potrf runs at about half the GEMM rate; two trsm at ~0.75 of it
        chol = n_chunks * n_distinct * (2.0 / 3.0) * m**3 + n_targets * 2.7 * m * m
        eig = 8.0 * m**3  # syevd with eigenvectors, measured 8x a float64 GEMM of size m
        if self.refit_mode == "primal":
            eig += n_targets * 2.0 * m * m  # V^T T and V (.), float32 (half the cost)
        else:
            eig += n_targets * 1.0 * m * m + self.p * m * m  # U^T Y, and X^T U once
        return eig < chol

    def refit(self, Y0_b: Any, alpha_per_target: np.ndarray, T_b: Any = None, *,
              n_targets: int | None = None, n_chunks: int = 1, out: np.ndarray | None = None) -> Any:
        """Ridge coefficients on all samples, one alpha per target: backend (p, t), compute dtype.

        ``alpha_per_target`` is (t,). Primal: ``(X^T X + alpha I)^-1 X^T Y``; kernel:
        ``X^T (X X^T + alpha I)^-1 Y`` (X, Y centred when ``fit_intercept``). ``n_targets`` (all
        targets of the fit, default t) and ``n_chunks`` (how many calls will be made) feed the
        choice between Cholesky solves per distinct alpha (float64) and one eigendecomposition
        of the Gram matrix with float32 GEMMs in its orthonormal eigenbasis (which has no
        error amplification by the condition number: each eigen-direction is scaled once);
        the choice is made at the first call and kept. ``out`` (p, t), numpy backend only:
        written in place (e.g. a column block of the coefficient matrix) and returned.
        """
        B, dt = self.B, self.dtype
        assert self.refit_mode is not None
        primal = self.refit_mode == "primal"
        if primal and T_b is None:
            T_b = self.X_b.T @ Y0_b
        rhs = T_b if primal else Y0_b  # (p, t) or (n, t)
        uniq = np.unique(alpha_per_target)
        if self._refit_eigh is None:
            total = int(rhs.shape[1]) if n_targets is None else int(n_targets)
            self._refit_eigh = (uniq.size > _MAX_CHOLESKY_ALPHAS
                                or self._refit_by_eigh(total, uniq.size, max(1, n_chunks)))
        sol = None
        if not self._refit_eigh:
            gram = self.G if primal else self.K
            assert gram is not None
            gram_b = B.asarray(gram, "float64")
            eye = B.asarray(np.eye(gram.shape[0]), "float64")
            # every column is written (each target's alpha is in uniq): a primal solution goes
            # straight into out
            sol = out if primal and out is not None else B.zeros(tuple(rhs.shape), dt)
            try:
                for a in uniq:
                    cols = np.flatnonzero(alpha_per_target == a)
                    x = B.solve_spd(gram_b + float(a) * eye, B.cast(B.take(rhs, cols, 1), "float64"))
                    sol[:, B.index(cols)] = B.cast(x, dt)
            except np.linalg.LinAlgError:
                sol = None  # not numerically positive definite: use the eigendecomposition
                self._refit_eigh = True
            del gram_b, eye
        if sol is not None:
            return sol if primal else _matmul(self.X_b.T, sol, out)
        if self.refit_decomp is None:
            assert self._X0_64 is not None
            self.refit_decomp = self._decompose(self._X0_64, np.arange(self.n), None)
            if not primal and self.refit_decomp.rank:
                self._XU_b = self.X_b.T @ self.refit_decomp.basis_b  # (p, r): X^T U, once
        d = self.refit_decomp
        if d.rank == 0:
            if out is not None:
                out[...] = 0.0
                return out
            return B.zeros((self.p, Y0_b.shape[1]), dt)
        s_b = B.asarray(d.s, dt)
        a_b = B.asarray(alpha_per_target, dt)[None, :]
        c = d.basis_b.T @ rhs  # (r, t)
        for i in range(0, d.rank, _ROWS):  # c /= s + alpha, by cache-sized blocks of rows
            c[i:i + _ROWS] /= s_b[i:i + _ROWS, None] + a_b
        return _matmul(d.basis_b if primal else self._XU_b, c, out)



def _matmul(a: Any, b: Any, out: np.ndarray | None) -> Any:
    """``a @ b``, written into ``out`` when given.

    numpy arrays: BLAS writes a strided column block of a larger matrix directly, no temporary.
    """
    if out is None:
        return a @ b
    return np.matmul(a, b, out=out)


def vecmat64(v: np.ndarray, W: np.ndarray, rows: int = 256) -> np.ndarray:
    """``v @ W`` in float64: ndarray (t,).

    For a float64 vector ``v`` (p,) and a matrix ``W`` (p, t) of any float dtype, converting ``W`` by
    blocks of ``rows`` rows (no float64 copy of ``W``).
    """
    out = np.zeros(W.shape[1])
    for i in range(0, W.shape[0], rows):
        out += v[i:i + rows] @ np.asarray(W[i:i + rows], dtype=np.float64)
    return out


def chunk_size(engine: _RidgeEngine, n_targets: int, memory_budget_gb: float) -> int:
    """Targets per chunk so that the engine's working memory stays within ``memory_budget_gb`` GiB."""
    budget = float(memory_budget_gb) * (1 << 30)
    free = budget - engine.fixed_bytes()
    size = int(free // max(1, engine.bytes_per_target()))
    if size >= n_targets:
        return n_targets
    if size >= 256:
        size -= size % 64  # friendlier GEMM shapes
    return max(1, size)

