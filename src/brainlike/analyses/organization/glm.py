"""Patterns as fixed regressors of a voxel-wise GLM: HRF convolution, t-maps and FDR correction.

1. **Regressors.** Each representative pattern (``(n_trs,)`` on the TR grid) is treated as a block
   design whose amplitude in volume ``i`` is the pattern's value (an event of duration ``tr`` at
   ``i·tr``), convolved with nilearn's Glover (or SPM) HRF at ``oversampling`` sub-samples per TR and
   sampled at the volume times (:func:`nilearn.glm.first_level.compute_regressor`). The regressors are
   z-scored.
2. **Design.** Regressors + a cosine drift basis (high-pass ``high_pass`` Hz) + an intercept, built by
   :func:`nilearn.glm.first_level.make_first_level_design_matrix`.
3. **GLM.** Ordinary least squares for every voxel at once (``noise_model="ols"``), or nilearn's
   pre-whitened AR(1) model (``"ar1"``, slower, better calibrated for autocorrelated noise). All
   patterns enter one model (multiple regression), so each map shows what a pattern explains beyond
   the others.
4. **Maps.** One t-map per pattern, its p-values (two-sided, or one-sided ``"greater"``), and
   Benjamini–Hochberg FDR q-values per map (:func:`scipy.stats.false_discovery_control`); a voxel is
   *significant* when ``q < alpha`` (and ``t > 0`` for one-sided tests). The partial correlation
   ``r = t / sqrt(t² + dof)`` is given as an effect size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from brainlike.errors import BrainlikeError, NeuralDataError

__all__ = ["GLMResult", "design_matrix", "fdr", "fit_glm", "hrf_regressors"]

HRF_MODELS = ("glover", "spm")


def hrf_regressors(patterns: np.ndarray, tr: float, hrf_model: str = "glover", oversampling: int = 16,
                   tr_offset: float = 0.0) -> np.ndarray:
    """HRF-convolved pattern regressors sampled at the volumes.

    Parameters
    ----------
    patterns : np.ndarray
        ``(K, n_trs)`` patterns on the TR grid (value in volume ``i`` = mean activity during
        ``[i·tr, (i+1)·tr)``).
    tr : float
        repetition time, seconds.
    hrf_model : str
        ``"glover"`` (default) or ``"spm"``.
    oversampling : int
        HRF sub-samples per TR.
    tr_offset : float
        volumes are acquired at ``(i + tr_offset)·tr`` seconds (0 = BIDS convention).

    Returns
    -------
    np.ndarray
        ``(n_trs, K)`` float64 regressors, each z-scored over volumes.
    """
    from nilearn.glm.first_level import compute_regressor

    patterns = np.atleast_2d(np.asarray(patterns, dtype=np.float64))
    if hrf_model not in HRF_MODELS:
        raise BrainlikeError(f"hrf_model must be one of {HRF_MODELS}, not {hrf_model!r}")
    k, n_trs = patterns.shape
    onsets = np.arange(n_trs, dtype=np.float64) * tr
    times = (np.arange(n_trs, dtype=np.float64) + tr_offset) * tr
    out = np.empty((n_trs, k))
    for j in range(k):
        cond = np.vstack([onsets, np.full(n_trs, tr), patterns[j]])
        reg, _ = compute_regressor(cond, hrf_model, times, con_id=f"p{j}", oversampling=oversampling)
        out[:, j] = reg[:, 0]
    out -= out.mean(axis=0)
    sd = out.std(axis=0)
    sd[sd == 0] = 1.0
    return out / sd


def design_matrix(regressors: np.ndarray, tr: float, high_pass: float | None = 1.0 / 128.0,
                  tr_offset: float = 0.0, names: list[str] | None = None) -> pd.DataFrame:
    """``(n_trs, K + n_drift + 1)`` design: the regressors first, then cosine drifts, then ``constant``.

    Parameters
    ----------
    regressors : np.ndarray
        ``(n_trs, K)`` (from :func:`hrf_regressors`).
    high_pass : float | None
        drift cut-off in Hz (``None`` or 0: intercept only).
    """
    from nilearn.glm.first_level import make_first_level_design_matrix

    regressors = np.asarray(regressors, dtype=np.float64)
    n_trs, k = regressors.shape
    names = names or [f"pattern_{j}" for j in range(k)]
    times = (np.arange(n_trs, dtype=np.float64) + tr_offset) * tr
    drift = "cosine" if high_pass else None
    return make_first_level_design_matrix(times, events=None, drift_model=drift, high_pass=high_pass or 0.01,
                                          add_regs=regressors, add_reg_names=names)


@dataclass
class GLMResult:
    """Voxel-wise GLM statistics for the K pattern regressors.

    Attributes
    ----------
    beta : np.ndarray
        ``(K, n_voxels)`` float32 coefficients (BOLD units per regressor s.d.).
    t : np.ndarray
        ``(K, n_voxels)`` float32 t statistics.
    p : np.ndarray
        ``(K, n_voxels)`` float64 p-values (two-sided or one-sided, see ``tail``).
    q : np.ndarray
        ``(K, n_voxels)`` float64 Benjamini–Hochberg q-values, per map.
    significant : np.ndarray
        ``(K, n_voxels)`` bool, ``q < alpha`` (and ``t > 0`` when ``tail == "greater"``).
    dof : float
        residual degrees of freedom.
    tail : str
        ``"two-sided"`` or ``"greater"``.
    alpha : float
        FDR level.
    noise_model : str
        ``"ols"`` or ``"ar1"``.
    """

    beta: np.ndarray
    t: np.ndarray
    p: np.ndarray
    q: np.ndarray
    significant: np.ndarray
    dof: float
    tail: str
    alpha: float
    noise_model: str

    @property
    def r(self) -> np.ndarray:
        """``(K, n_voxels)`` partial correlation ``t / sqrt(t² + dof)``."""
        t = self.t.astype(np.float64)
        return (t / np.sqrt(t ** 2 + self.dof)).astype(np.float32)

    def table(self, model: str = "", voxel_ids: np.ndarray | None = None, coords: np.ndarray | None = None,
              networks: np.ndarray | None = None) -> pd.DataFrame:
        """Tidy: one row per (pattern, voxel) with ``model, pattern, voxel, t, r, p, q, significant``.

        (+ ``i, j, k`` grid coordinates and ``network`` label when given).
        """
        k, v = self.t.shape
        voxel_ids = np.arange(v) if voxel_ids is None else np.asarray(voxel_ids)
        df = pd.DataFrame({"model": model, "pattern": np.repeat(np.arange(k), v), "voxel": np.tile(voxel_ids, k),
                           "t": self.t.reshape(-1).astype(np.float64), "r": self.r.reshape(-1).astype(np.float64),
                           "p": self.p.reshape(-1), "q": self.q.reshape(-1),
                           "significant": self.significant.reshape(-1)})
        if coords is not None:
            for j, name in enumerate("ijk"[: np.asarray(coords).shape[1]]):
                df[name] = np.tile(np.asarray(coords)[:, j], k)
        if networks is not None:
            df["network"] = np.tile(np.asarray(networks), k)
        return df


def fdr(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values along the last axis (scipy's ``false_discovery_control``)."""
    p = np.asarray(p, dtype=np.float64)
    return np.apply_along_axis(stats.false_discovery_control, -1, p, method="bh") if p.size else p


def fit_glm(Y: np.ndarray, design: pd.DataFrame | np.ndarray, n_regressors: int, noise_model: str = "ols",
            tail: str = "two-sided", alpha: float = 0.05, block_voxels: int = 20000) -> GLMResult:
    """Fit the GLM ``Y = X β + ε`` at every voxel and test the first ``n_regressors`` columns.

    Parameters
    ----------
    Y : np.ndarray
        ``(n_trs, n_voxels)`` BOLD (any units; constant voxels give t = 0, p = 1).
    design : pd.DataFrame | np.ndarray
        ``(n_trs, p)`` design whose first ``n_regressors`` columns are the pattern regressors.
    n_regressors : int
        ``K``.
    noise_model : str
        ``"ols"`` (own vectorised OLS, equal to nilearn's ``run_glm(noise_model="ols")``)
        or ``"ar1"`` (nilearn's pre-whitened AR(1) GLM).
    tail : str
        ``"two-sided"`` or ``"greater"`` (one-sided test of a positive effect).
    alpha : float
        FDR level for :attr:`GLMResult.significant`.
    block_voxels : int
        voxels per OLS block (memory ≈ ``n_trs × block_voxels × 8`` bytes per temporary).
    """
    Y = np.asarray(Y)
    X = np.asarray(design, dtype=np.float64)
    if Y.ndim != 2 or X.ndim != 2 or Y.shape[0] != X.shape[0]:
        raise NeuralDataError(f"BOLD ({Y.shape}) and design ({X.shape}) must be 2-D with the same number of volumes")
    if not np.isfinite(Y).all():
        raise NeuralDataError("the BOLD data contain NaN or infinite values")
    if tail not in ("two-sided", "greater"):
        raise BrainlikeError(f"tail must be 'two-sided' or 'greater', not {tail!r}")
    if not 0 < alpha < 1:
        raise BrainlikeError(f"alpha must be in (0, 1), got {alpha}")
    n, p_cols = X.shape
    if np.linalg.matrix_rank(X) < p_cols:
        raise BrainlikeError("the design matrix is rank deficient (two patterns give identical regressors?)")
    if n - p_cols < 1:
        raise NeuralDataError(f"{n} volumes are too few for {p_cols} design columns")
    if noise_model == "ols":
        XtX_inv = np.linalg.inv(X.T @ X)
        pinv = XtX_inv @ X.T
        dof = float(n - p_cols)
        b = np.zeros((n_regressors, Y.shape[1]))
        t = np.zeros_like(b)
        for a in range(0, Y.shape[1], block_voxels):  # blocks of voxels bound the memory
            y = np.asarray(Y[:, a:a + block_voxels], dtype=np.float64)
            beta = pinv @ y
            sigma2 = ((y - X @ beta) ** 2).sum(axis=0) / dof
            se = np.sqrt(np.outer(np.diag(XtX_inv)[:n_regressors], sigma2))
            b[:, a:a + block_voxels] = beta[:n_regressors]
            with np.errstate(invalid="ignore", divide="ignore"):
                t[:, a:a + block_voxels] = np.where(se > 0, beta[:n_regressors] / np.where(se > 0, se, 1.0), 0.0)
    elif noise_model == "ar1":
        from nilearn.glm.contrasts import compute_contrast
        from nilearn.glm.first_level import run_glm

        labels, results = run_glm(np.asarray(Y, dtype=np.float64), X, noise_model="ar1", n_jobs=1)
        b = np.zeros((n_regressors, Y.shape[1]))
        t = np.zeros_like(b)
        for j in range(n_regressors):
            con = np.zeros(p_cols)
            con[j] = 1.0
            c = compute_contrast(labels, results, con, stat_type="t")
            b[j], t[j] = c.effect_size(), c.stat()
        dof = float(np.median([r.df_residuals for r in results.values()]))
    else:
        raise BrainlikeError(f"noise_model must be 'ols' or 'ar1', not {noise_model!r}")
    t = np.nan_to_num(t, nan=0.0)
    pvals = stats.t.sf(np.abs(t), dof) * 2 if tail == "two-sided" else stats.t.sf(t, dof)
    q = fdr(pvals)
    sig = q < alpha
    if tail == "greater":
        sig &= t > 0
    return GLMResult(b.astype(np.float32), t.astype(np.float32), pvals, q, sig, dof, tail, alpha, noise_model)
