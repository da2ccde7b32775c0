"""Neuron patterns as fixed regressors of real ROI time courses, per subject, with a refitted temporal null.

The real-data path of the organization analysis (Sun et al. 2024) on a multi-subject ROI recording such
as Brennan et al. (2016) (27 listeners x 362 volumes x 6 language ROIs):

1. **Per-subject GLM.** Every subject's z-scored ROI time courses ``Y_s`` ``(n_vol, n_roi)`` are regressed
   on the K HRF-convolved, z-scored pattern regressors (all patterns in one model) plus nuisance columns:
   the subject's low-level controls (word rate, sound power), a cosine drift basis and an intercept.
   The coefficients ``beta[s, k, r]`` are standardised (SD of BOLD per SD of regressor).
2. **Temporal null with refitting.** The pattern regressors are circularly shifted together by ``n_shifts``
   distinct lags of at least ``min_shift`` volumes (the controls stay in place) and the GLM is refitted
   for every subject. This keeps each regressor's autocorrelation and the patterns' correlations with
   each other, and breaks only their alignment with the brain. The group statistic of a pattern x ROI
   pair is the subject-mean coefficient ``m[k, r]``; against its refitted null ``m0[n, k, r]`` it gives
   ``z = (m - mean(m0)) / sd(m0)``, a Gaussian two-sided p-value (the null's tail; a circular shift
   null has only ``n_vol - 2 min_shift`` distinct lags, too few for FDR over hundreds of tests) and the
   empirical p-value ``(1 + #{|m0 - mean| >= |m - mean|}) / (n_shifts + 1)``.
3. **Assignment.** Pattern ``k`` maps to the ROI with the largest ``|z|``; its p-value is Bonferroni over
   the ROIs (``min(1, n_roi * p)``), and BH across patterns gives ``q``; ``assigned`` when ``q < alpha``.
4. **Consistency across subjects.** Each subject's own ROI for pattern ``k`` is its largest
   ``|beta_s - mean_null_s| / sd_null_s``; the consistency is the fraction of subjects agreeing with the
   group's ROI, with a percentile bootstrap CI over subjects (the group ROI recomputed in every
   resample) and its chance level: the same fraction under each shift of the null (mean and 95th
   percentile). ROIs are correlated, so chance is not ``1 / n_roi``.

The t over subjects of ``beta - mean_null`` (``t_subjects``) is reported too, but it is not the test:
the stimulus drives all subjects alike, so a pattern that by chance correlates with the shared response
shifts every subject's coefficient the same way and the t over subjects is liberal; the shift null
contains that chance correlation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from brainlike.errors import BrainlikeError

__all__ = ["ROIOrganization", "circular_shifts", "cosine_drifts", "fit_roi_glm", "roi_organization"]


def cosine_drifts(n_vol: int, tr: float, high_pass: float | None = 1.0 / 128.0) -> np.ndarray:
    """``(n_vol, d + 1)`` float64 nuisance basis: DCT-II cosines below ``high_pass`` Hz and an intercept.

    The basis of nilearn's/SPM's cosine drift model: ``cos(pi * (i + 0.5) * j / n_vol)`` for the
    ``j = 1 .. floor(2 * n_vol * tr * high_pass)`` periods longer than ``1 / high_pass`` s.
    """
    n_cos = int(np.floor(2.0 * n_vol * tr * high_pass)) if high_pass else 0
    i = np.arange(n_vol, dtype=np.float64)
    cols = [np.sqrt(2.0 / n_vol) * np.cos(np.pi * (i + 0.5) * j / n_vol) for j in range(1, n_cos + 1)]
    return np.column_stack(cols + [np.ones(n_vol)])


def circular_shifts(n_vol: int, n_shifts: int, min_shift: int, seed: int = 0) -> np.ndarray:
    """``(m,)`` int64 distinct circular lags in ``[min_shift, n_vol - min_shift]``, ``m = min(n_shifts, available)``.

    Raises
    ------
    BrainlikeError
        no admissible lag (the run is shorter than ``2 * min_shift``).
    """
    lags = np.arange(min_shift, n_vol - min_shift + 1, dtype=np.int64)
    if len(lags) == 0:
        raise BrainlikeError(f"no circular shift of at least {min_shift} volumes fits a run of {n_vol} volumes; "
                             f"lower min_shift")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(lags, size=min(n_shifts, len(lags)), replace=False))


def fit_roi_glm(Y: np.ndarray, regressors: np.ndarray, nuisance: np.ndarray,
                shifts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients and t of the pattern regressors for every subject (and every circular shift).

    Parameters
    ----------
    Y : np.ndarray
        ``(n_subjects, n_vol, n_roi)`` responses (z-scored per subject and ROI).
    regressors : np.ndarray
        ``(n_vol, K)`` pattern regressors (HRF-convolved, z-scored).
    nuisance : np.ndarray
        ``(n_subjects, n_vol, q)`` or ``(n_vol, q)`` nuisance columns (controls, drifts,
        intercept), never shifted.
    shifts : np.ndarray | None
        ``(m,)`` circular lags applied to ``regressors`` (``None``: only the unshifted fit).

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``beta`` and ``t``, each ``(m, n_subjects, K, n_roi)`` float64 (``m = 1`` without shifts).
        By the Frisch-Waugh-Lovell theorem these equal the full regression's coefficients.
    """
    Y = np.asarray(Y, dtype=np.float64)
    X = np.asarray(regressors, dtype=np.float64)
    n_s, n_v, n_r = Y.shape
    if X.shape[0] != n_v:
        raise BrainlikeError(f"the regressors have {X.shape[0]} volumes, the responses {n_v}")
    N = np.asarray(nuisance, dtype=np.float64)
    if N.ndim == 2:
        N = np.broadcast_to(N, (n_s,) + N.shape)
    shifts = np.array([0]) if shifts is None else np.asarray(shifts, dtype=np.int64)
    k = X.shape[1]
    dof = n_v - k - N.shape[2]
    if dof < 1:
        raise BrainlikeError(f"{k} patterns + {N.shape[2]} nuisance columns leave no residual degrees of freedom "
                             f"with {n_v} volumes; use fewer patterns")
    idx = (np.arange(n_v)[None, :] - shifts[:, None]) % n_v       # np.roll of every lag at once
    Xs = X[idx]                                                     # (m, n_vol, K)
    beta = np.empty((len(shifts), n_s, k, n_r))
    tval = np.empty_like(beta)
    for s in range(n_s):
        q, _ = np.linalg.qr(N[s])
        yr = Y[s] - q @ (q.T @ Y[s])
        flat = Xs.transpose(1, 0, 2).reshape(n_v, -1)               # (n_vol, m K): one BLAS product
        flat = flat - q @ (q.T @ flat)
        xr = np.ascontiguousarray(flat.reshape(n_v, len(shifts), k).transpose(1, 0, 2))   # (m, n_vol, K)
        xt = np.ascontiguousarray(xr.transpose(0, 2, 1))           # contiguous: batched BLAS products
        gram = xt @ xr
        try:
            g_inv = np.linalg.inv(gram)
        except np.linalg.LinAlgError:
            g_inv = np.linalg.pinv(gram, hermitian=True)
        b = g_inv @ (xt @ yr)                                       # (m, K, R)
        resid = yr[None] - xr @ b
        sigma2 = (resid ** 2).sum(axis=1) / dof                     # (m, R)
        var = np.clip(np.diagonal(g_inv, axis1=1, axis2=2), 0, None)  # (m, K)
        se = np.sqrt(var[:, :, None] * sigma2[:, None, :])
        beta[:, s] = b
        tval[:, s] = b / np.where(se > 0, se, np.inf)
    return beta, tval


@dataclass(frozen=True)
class ROIOrganization:
    """Pattern -> ROI mapping of one model on a multi-subject ROI recording.

    Attributes
    ----------
    beta : np.ndarray
        ``(n_subjects, K, n_roi)`` float64 standardised coefficients of the unshifted fit.
    null_beta : np.ndarray
        ``(n_shifts, n_subjects, K, n_roi)`` float64 coefficients of the refitted shifts.
    shifts : np.ndarray
        ``(n_shifts,)`` int64 lags in volumes.
    effects : pd.DataFrame
        one row per pattern x ROI (see :func:`roi_organization`).
    assignments : pd.DataFrame
        one row per pattern.
    summary : dict
        one row: the model's mean consistency with CI and chance, ``n_assigned``.
    """

    beta: np.ndarray
    null_beta: np.ndarray
    shifts: np.ndarray
    effects: pd.DataFrame
    assignments: pd.DataFrame
    summary: dict


def _agreement(z_group: np.ndarray, z_subj: np.ndarray) -> np.ndarray:
    """``(K,)`` fraction of subjects whose largest-|z| ROI equals the group's.

    From ``z_group`` ``(K, R)`` and ``z_subj`` ``(S, K, R)``.
    """
    g = np.abs(z_group).argmax(axis=-1)
    s = np.abs(z_subj).argmax(axis=-1)
    return (s == g[None, :]).mean(axis=0)


def roi_organization(Y: np.ndarray, regressors: np.ndarray, nuisance: np.ndarray, rois: list[str] | tuple[str, ...],
                     *, n_shifts: int = 200, min_shift: int = 20, alpha: float = 0.05, n_boot: int = 1000,
                     seed: int = 0, model: str = "") -> ROIOrganization:
    """Which ROI each pattern maps to, tested against refitted circular shifts, and its subject consistency.

    Parameters
    ----------
    Y : np.ndarray
        ``(n_subjects, n_vol, n_roi)`` z-scored ROI time courses.
    regressors : np.ndarray
        ``(n_vol, K)`` HRF-convolved pattern regressors.
    nuisance : np.ndarray
        ``(n_subjects, n_vol, q)`` or ``(n_vol, q)`` controls + drifts + intercept.
    rois : list[str] | tuple[str, ...]
        ``n_roi`` names.
    n_shifts, min_shift : int
        the temporal null (distinct lags, volumes).
    alpha : float
        FDR level (pattern x ROI effects; assignments across patterns).
    n_boot : int
        bootstrap resamples of subjects for the consistency CI.
    seed : int
        seeds the lags and the bootstrap.
    model : str
        the model's name for the tables.

    Returns
    -------
    ROIOrganization
        :class:`ROIOrganization` whose ``effects`` table has one row per pattern x ROI with ``model,
        pattern, roi, mean_beta, null_mean, null_sd, z, p_value`` (Gaussian tail of the shift null),
        ``p_empirical, q_value`` (BH over all pairs), ``significant, ci_low, ci_high`` (bootstrap over
        subjects of ``mean_beta``), ``t_subjects, p_subjects`` (t over subjects of ``beta - null mean``);
        and ``assignments`` one row per pattern with ``model, pattern, roi, z, p_value`` (Bonferroni over
        ROIs), ``p_max_empirical, q_value, assigned, assigned_roi, consistency, consistency_low,
        consistency_high, chance, chance_p95, n_subjects``.
    """
    Y = np.asarray(Y, dtype=np.float64)
    n_s, n_v, n_r = Y.shape
    if len(rois) != n_r:
        raise BrainlikeError(f"{len(rois)} ROI names for {n_r} ROI columns")
    if n_s < 2:
        raise BrainlikeError("the ROI analysis needs at least 2 subjects (consistency, t over subjects)")
    lags = circular_shifts(n_v, n_shifts, min_shift, seed)
    beta, _ = fit_roi_glm(Y, regressors, nuisance)
    beta = beta[0]
    null, _ = fit_roi_glm(Y, regressors, nuisance, lags)
    k = beta.shape[1]
    m = beta.mean(axis=0)                      # (K, R)
    m0 = null.mean(axis=1)                     # (n, K, R)
    mu, sd = m0.mean(axis=0), m0.std(axis=0, ddof=1)
    sd = np.where(sd > 0, sd, np.inf)
    z = (m - mu) / sd
    p = 2.0 * stats.norm.sf(np.abs(z))
    p_emp = (1 + (np.abs(m0 - mu) >= np.abs(m - mu)[None] - 1e-12).sum(axis=0)) / (len(lags) + 1)
    q = stats.false_discovery_control(p.reshape(-1), method="bh").reshape(p.shape)
    # per subject: z against the subject's own null
    mu_s, sd_s = null.mean(axis=0), null.std(axis=0, ddof=1)     # (S, K, R)
    sd_s = np.where(sd_s > 0, sd_s, np.inf)
    z_s = (beta - mu_s) / sd_s
    t_res = stats.ttest_1samp(beta - mu_s, 0.0, axis=0)
    # assignment: the largest |z| ROI, Bonferroni over ROIs, BH over patterns
    best = np.abs(z).argmax(axis=1)
    p_best = np.minimum(1.0, n_r * p[np.arange(k), best])
    z0 = (m0 - mu) / sd                                          # (n, K, R)
    p_max_emp = (1 + (np.abs(z0).max(axis=2) >= np.abs(z).max(axis=1)[None] - 1e-12).sum(axis=0)) / (len(lags) + 1)
    q_best = stats.false_discovery_control(p_best, method="bh")
    assigned = q_best < alpha
    # consistency across subjects, its bootstrap CI and its chance level under the shifts
    cons = _agreement(z, z_s)
    rng = np.random.default_rng(seed + 1)
    boot = np.empty((n_boot, k))
    for b in range(n_boot):
        idx = rng.integers(0, n_s, n_s)
        boot[b] = _agreement((beta[idx].mean(axis=0) - mu) / sd, z_s[idx])
    z0_s = (null - mu_s[None]) / sd_s[None]                      # (n, S, K, R)
    chance = np.stack([_agreement(z0[i], z0_s[i]) for i in range(len(lags))])   # (n, K)
    # bootstrap CI of the subject-mean coefficient
    boot_m = np.stack([beta[rng.integers(0, n_s, n_s)].mean(axis=0) for _ in range(n_boot)])
    lo, hi = np.percentile(boot_m, [2.5, 97.5], axis=0)
    rois = list(rois)
    effects = pd.DataFrame({
        "model": model, "pattern": np.repeat(np.arange(k), n_r), "roi": np.tile(rois, k),
        "mean_beta": m.reshape(-1), "null_mean": mu.reshape(-1),
        "null_sd": np.where(np.isinf(sd), np.nan, sd).reshape(-1),
        "z": z.reshape(-1), "p_value": p.reshape(-1), "p_empirical": p_emp.reshape(-1), "q_value": q.reshape(-1),
        "significant": (q < alpha).reshape(-1), "ci_low": lo.reshape(-1), "ci_high": hi.reshape(-1),
        "t_subjects": np.asarray(t_res.statistic).reshape(-1), "p_subjects": np.asarray(t_res.pvalue).reshape(-1)})
    c_lo, c_hi = np.percentile(boot, [2.5, 97.5], axis=0)
    assignments = pd.DataFrame({
        "model": model, "pattern": np.arange(k), "roi": [rois[j] for j in best],
        "z": z[np.arange(k), best], "p_value": p_best, "p_max_empirical": p_max_emp, "q_value": q_best,
        "assigned": assigned, "assigned_roi": [rois[j] if a else None for j, a in zip(best, assigned)],
        "consistency": cons, "consistency_low": c_lo, "consistency_high": c_hi,
        "chance": chance.mean(axis=0), "chance_p95": np.percentile(chance, 95, axis=0), "n_subjects": n_s})
    mean_boot = boot.mean(axis=1)
    mean_chance = chance.mean(axis=1)
    summary = {
        "n_assigned_roi": int(assigned.sum()), "n_rois_assigned": int(len(set(best[assigned]))),
        "roi_consistency": float(cons.mean()),
        "roi_consistency_low": float(np.percentile(mean_boot, 2.5)),
        "roi_consistency_high": float(np.percentile(mean_boot, 97.5)),
        "roi_consistency_chance": float(mean_chance.mean()),
        "roi_consistency_p": float((1 + (mean_chance >= cons.mean() - 1e-12).sum()) / (len(lags) + 1)),
        "n_significant_pairs": int((q < alpha).sum()), "n_shifts": int(len(lags))}
    return ROIOrganization(beta, null, lags, effects, assignments, summary)
