"""Calibrated inference for encoding scores: empirical shift nulls, max over layers, group tests, FDR, CIs.

Inputs are the arrays of :class:`brainlike.analyses.fmri_encoding.LayerScores` (any scores with a null
of refitted shifted copies will do):

* :func:`empirical_pvalues` — per target, ``(1 + #{null >= observed}) / (1 + S)``;
* :func:`max_statistic_pvalues` — the best layer's score against the null of the max over layers (the
  same shift for every layer), which corrects for choosing the layer;
* :func:`group_test` — per ROI, over subjects: the subject scores minus their own null means tested by
  (a) the **empirical group null** (the same statistic on every common shift: the stimulus is shared,
  so a chance alignment of the features with it is shared by all subjects), (b) a sign-flip
  permutation test and (c) a one-sample t-test (scipy); Benjamini–Hochberg FDR across ROIs
  (:func:`brainlike.neural.stats.fdr_correction`) and percentile bootstrap CIs over subjects
  (``scipy.stats.bootstrap``). (b) and (c) treat subjects as independent draws; under a null in
  which the same misalignment hits every subject they are anti-conservative (measured in
  :func:`null_calibration`), so (a) is the headline group test;
* :func:`null_calibration` — false-positive rates of all these tests on the null copies themselves
  (each shifted copy in turn plays the observed data, the other copies at least ``min_shift`` away
  from it its null).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sstats

from brainlike.errors import BrainlikeError
from brainlike.neural.stats import fdr_correction

__all__ = [
    "CalibrationResult",
    "GroupTestResult",
    "analytic_pvalues",
    "bootstrap_ci_subjects",
    "empirical_pvalues",
    "group_test",
    "max_statistic_pvalues",
    "null_calibration",
    "sign_flip_test",
]


def empirical_pvalues(observed: np.ndarray, null: np.ndarray, axis: int = 0) -> np.ndarray:
    """One-sided empirical p-values with the +1 correction.

    Parameters
    ----------
    observed : ndarray (...)
        Observed statistic (e.g. (n_layers, n_targets) scores).
    null : ndarray
        Null statistics with one extra axis ``axis`` of length S (e.g. (n_layers, S, n_targets)).
    axis : int
        The null-sample axis of ``null``.

    Returns
    -------
    ndarray, shape of ``observed``, float64 in ``[1 / (1 + S), 1]``.
    """
    obs = np.expand_dims(np.asarray(observed, dtype=np.float64), axis)
    nul = np.asarray(null, dtype=np.float64)
    S = nul.shape[axis]
    return (1.0 + (nul >= obs - 1e-12).sum(axis=axis)) / (1.0 + S)


def max_statistic_pvalues(scores: np.ndarray, null: np.ndarray) -> np.ndarray:
    """p-value of the best layer's score against the null of the max over layers.

    Parameters
    ----------
    scores : ndarray (n_layers, n_targets)
    null : ndarray (n_layers, S, n_targets)
        Null scores, the same shift ``s`` in row ``s`` for every layer.

    Returns
    -------
    ndarray (n_targets,) float64.
    """
    return empirical_pvalues(np.max(scores, axis=0), np.max(null, axis=0), axis=0)


def analytic_pvalues(fold_mean_r: np.ndarray, n_volumes: int, n_folds: int) -> np.ndarray:
    """The iid (Fisher z) one-sided p of a fold-mean r: ``z = atanh(r) sqrt(n_volumes - 3 n_folds)``.

    Shown only to measure how liberal a formula that ignores autocorrelation is; do not use for inference.
    """
    r = np.clip(np.asarray(fold_mean_r, dtype=np.float64), -0.999999, 0.999999)
    return sstats.norm.sf(np.arctanh(r) * np.sqrt(max(1, n_volumes - 3 * n_folds)))


#: sign patterns drawn (and flipped means computed) per step of :func:`sign_flip_test`
_FLIP_STEP = 2048


def _flip_signs(n: int, n_flips: int, seed: int) -> np.ndarray:
    """The ``(n_flips, n)`` random sign patterns of :func:`sign_flip_test` with ``seed``, float64 +-1.

    Drawn in steps of :data:`_FLIP_STEP` rows (the draws of the original step-by-step loop, same numbers).
    """
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice((-1.0, 1.0), size=(min(_FLIP_STEP, n_flips - start), n))
                           for start in range(0, n_flips, _FLIP_STEP)])


def sign_flip_test(d: np.ndarray, n_flips: int = 10000, seed: int = 0, *,
                   signs: np.ndarray | None = None) -> np.ndarray:
    """One-sided sign-flip permutation test of ``mean(d) > 0`` per column (subjects are exchangeable in sign).

    Parameters
    ----------
    d : ndarray (n_subjects, n_tests)
        Per-subject effects (e.g. score minus the subject's null mean).
    n_flips : int
        Random sign patterns; all ``2^n_subjects`` patterns when that is not more.
    seed : int
    signs : ndarray (n_flips, n_subjects), optional
        The random sign patterns, when already drawn for this ``seed`` (``_flip_signs(n, n_flips, seed)``,
        reused across calls); ignored under exact enumeration.

    Returns
    -------
    ndarray (n_tests,) float64: ``(1 + #{flipped mean >= observed}) / (1 + n_flips)`` (exact
    enumeration: ``#{>=} / 2^n``, the identity included).
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    n = d.shape[0]
    obs = d.mean(axis=0)
    if n <= 20 and 2 ** n <= n_flips:
        signs = 1.0 - 2.0 * ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1)
        flipped = signs @ d / n
        return (flipped >= obs - 1e-12).mean(axis=0)
    signs = _flip_signs(n, n_flips, seed) if signs is None else signs
    count = np.zeros(d.shape[1])
    for start in range(0, n_flips, _FLIP_STEP):  # (step, n_tests) flipped means at a time
        count += ((signs[start:start + _FLIP_STEP] @ d) / n >= obs - 1e-12).sum(axis=0)
    return (1.0 + count) / (1.0 + n_flips)


def bootstrap_ci_subjects(d: np.ndarray, n_boot: int = 10000, ci: float = 0.95,
                          seed: int = 0, statistic: Callable[..., np.ndarray] = np.mean,
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of a statistic over subjects (``scipy.stats.bootstrap``), per column.

    Parameters
    ----------
    d : ndarray (n_subjects, n_tests) or (n_subjects,)
        One value per subject and test (any unit, e.g. r).
    n_boot : int
        Bootstrap resamples of the subjects.
    ci : float
        Confidence level, in (0, 1).
    seed : int
        Seed of the resampling.
    statistic : callable
        Reduces the subjects axis and takes ``axis=`` (default ``np.mean``; ``np.median`` for the median).

    Returns
    -------
    low, high : ndarrays (n_tests,) float64
        The CI bounds, in the unit of ``d``.
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    res = sstats.bootstrap((d,), statistic, axis=0, n_resamples=n_boot, confidence_level=ci,
                           method="percentile", random_state=np.random.default_rng(seed), vectorized=True)
    return np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)


@dataclass(frozen=True)
class GroupTestResult:
    """Group-level test per ROI (over subjects).

    Attributes
    ----------
    effect : ndarray (n_rois,) float64
        Mean over subjects of score minus the subject's null mean (units of the score, e.g. r).
    ci_low, ci_high : ndarray (n_rois,) float64
        Percentile bootstrap CI of ``effect`` over subjects.
    p_empirical : ndarray (n_rois,) float64
        ``effect`` against the same statistic on every common shift (headline test).
    p_signflip, p_ttest : ndarray (n_rois,) float64
        Sign-flip and one-sample t-test p (one-sided; subjects as independent draws).
    t : ndarray (n_rois,) float64
        t statistic.
    q_empirical, q_signflip, q_ttest : ndarray (n_rois,) float64
        Benjamini–Hochberg q-values across ROIs.
    significant : ndarray (n_rois,) bool
        ``q_empirical <= alpha``.
    alpha : float
    """

    effect: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_empirical: np.ndarray
    p_signflip: np.ndarray
    p_ttest: np.ndarray
    t: np.ndarray
    q_empirical: np.ndarray
    q_signflip: np.ndarray
    q_ttest: np.ndarray
    significant: np.ndarray
    alpha: float


def _check_group(scores: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sc = np.asarray(scores, dtype=np.float64)
    nu = np.asarray(null, dtype=np.float64)
    if sc.ndim == 1:
        sc = sc[:, None]
        nu = nu.reshape(nu.shape[0], -1, 1)
    if nu.ndim != 3 or nu.shape[1:] != sc.shape:
        raise BrainlikeError(f"null must be (n_shifts, n_subjects, n_rois) = (S, {sc.shape}), got {nu.shape}")
    if sc.shape[0] < 2 or nu.shape[0] < 1:
        raise BrainlikeError("a group test needs at least 2 subjects and 1 null shift")
    return sc, nu


def group_test(subject_scores: np.ndarray, subject_null: np.ndarray, *, alpha: float = 0.05,
               n_flips: int = 10000, n_boot: int = 10000, ci: float = 0.95, seed: int = 0) -> GroupTestResult:
    """Group-level test of subject scores against their refitted shift nulls, per ROI.

    Parameters
    ----------
    subject_scores : ndarray (n_subjects, n_rois)
        Headline score of every subject and ROI (e.g. of one layer, or of each subject's best layer
        with the null of the max over layers).
    subject_null : ndarray (n_shifts, n_subjects, n_rois)
        The same score on every shifted copy; row ``s`` is the same shift for all subjects.
    alpha : float
        FDR level across ROIs.
    n_flips, n_boot, ci, seed : sign flips, bootstrap resamples, CI level, seed.

    Returns
    -------
    GroupTestResult
    """
    sc, nu = _check_group(subject_scores, subject_null)
    mu = nu.mean(axis=0)
    d = sc - mu
    effect = d.mean(axis=0)
    group_null = (nu - mu).mean(axis=1)  # (S, n_rois)
    p_emp = empirical_pvalues(effect, group_null, axis=0)
    p_sf = sign_flip_test(d, n_flips=n_flips, seed=seed)
    tt = sstats.ttest_1samp(d, 0.0, axis=0, alternative="greater")
    lo, hi = bootstrap_ci_subjects(d, n_boot=n_boot, ci=ci, seed=seed)
    q_emp = fdr_correction(p_emp, alpha)
    return GroupTestResult(
        effect=effect, ci_low=lo, ci_high=hi, p_empirical=p_emp, p_signflip=p_sf,
        p_ttest=np.asarray(tt.pvalue, dtype=np.float64), t=np.asarray(tt.statistic, dtype=np.float64),
        q_empirical=q_emp.qvalues, q_signflip=fdr_correction(p_sf, alpha).qvalues,
        q_ttest=fdr_correction(np.asarray(tt.pvalue), alpha).qvalues, significant=q_emp.significant,
        alpha=float(alpha))


# ------------------------------------------------------------------------------------------------ calibration
@dataclass(frozen=True)
class CalibrationResult:
    """False-positive rates of the tests on null data (shifted copies playing the observed data).

    Attributes
    ----------
    null_mean : float
        Mean headline score over all null copies and targets (should be ~0).
    null_sd : float
        Standard deviation of the null scores (unitless r).
    iid_sd : float
        What an iid formula gives for that spread, ``1 / sqrt(n_volumes - 3 n_folds)``.
    fpr_target : float
        Per-target empirical test: share of (pseudo-observed copy, target) pairs with p <= alpha.
    fpr_analytic : float
        Same with the iid formula :func:`analytic_pvalues` (for contrast).
    fpr_group_empirical, fpr_group_signflip, fpr_group_ttest : float or None
        Group tests over subjects when the pseudo-observed shift is common to all subjects.
    fpr_group_signflip_indep, fpr_group_ttest_indep : float or None
        Sign-flip and t-test when every subject gets its own pseudo-observed shift.
    n_pseudo : int
        Pseudo-observed copies used.
    alpha : float
    """

    null_mean: float
    null_sd: float
    iid_sd: float
    fpr_target: float
    fpr_analytic: float
    fpr_group_empirical: float | None
    fpr_group_signflip: float | None
    fpr_group_ttest: float | None
    fpr_group_signflip_indep: float | None
    fpr_group_ttest_indep: float | None
    n_pseudo: int
    alpha: float


def _valid_others(shifts: np.ndarray, n_volumes: int, min_shift: int) -> list[np.ndarray]:
    """For every copy j, the copies k whose shift differs from s_j by at least ``min_shift`` (circularly)."""
    s = np.asarray(shifts, dtype=np.int64)
    diff = np.abs(s[:, None] - s[None, :]) % n_volumes
    dist = np.minimum(diff, n_volumes - diff)
    return [np.flatnonzero(dist[j] >= min_shift) for j in range(s.size)]




def _sign_flip_many(ds: np.ndarray, seeds: list[int], n_flips: int,
                    signs_memo: dict[int, np.ndarray]) -> np.ndarray:
    """:func:`sign_flip_test` of every ``ds[i]`` with seed ``seeds[i]`` (same numbers), reusing sign patterns.

    Parameters
    ----------
    ds : ndarray (P, n_subjects, n_tests) float64
    seeds : list of int (P,)
    n_flips : int
    signs_memo : dict
        Seed -> sign patterns already drawn (filled here; shared between calls on the same ``n``).

    Returns
    -------
    ndarray (P, n_tests) float64 p-values.
    """
    n = ds.shape[1]
    exact = n <= 20 and 2 ** n <= n_flips  # sign_flip_test enumerates every pattern: nothing to draw
    out = []
    for d, s in zip(ds, seeds):
        if not exact and s not in signs_memo:
            signs_memo[s] = _flip_signs(n, n_flips, s)
        out.append(sign_flip_test(d, n_flips, s, signs=None if exact else signs_memo[s]))
    return np.stack(out)


def _ttest_greater_many(ds: np.ndarray) -> np.ndarray:
    """One-sided one-sample t-test p of every ``ds[i]`` over its subjects axis, in one scipy call.

    ``ds`` (P, n_subjects, n_tests) -> (P, n_tests); column by column the same as ``ttest_1samp(ds[i], 0, axis=0)``.
    """
    P, n, T = ds.shape
    wide = np.ascontiguousarray(ds.transpose(1, 0, 2).reshape(n, P * T))
    return np.asarray(sstats.ttest_1samp(wide, 0.0, axis=0, alternative="greater").pvalue).reshape(P, T)


def null_calibration(null: np.ndarray, shifts: np.ndarray, n_volumes: int, *, min_shift: int, n_folds: int,
                     alpha: float = 0.05, n_pseudo: int | None = None, n_flips: int = 2000,
                     seed: int = 0) -> CalibrationResult:
    """False-positive rates of the per-target and group tests on the null copies of one layer.

    Each shifted copy ``j`` in turn is taken as the observed data; its null is every other copy whose
    shift is at least ``min_shift`` from ``s_j`` (``roll(Y, s_k) = roll(roll(Y, s_j), s_k - s_j)``), so
    the test is the one :func:`empirical_pvalues` / :func:`group_test` run on real data.

    Parameters
    ----------
    null : ndarray (S, n_targets) or (S, n_subjects, n_rois)
        Refitted null scores of one layer (``LayerScores.null[layer]``, unfolded for group tests).
    shifts : ndarray (S,) int
        Their shifts (``LayerScores.shifts``).
    n_volumes : int
        Length of the series (for the circular distance and the iid formula).
    min_shift, n_folds : int
        As in the options of the fit.
    alpha : float
        Nominal level.
    n_pseudo : int, optional
        Pseudo-observed copies (default all S).
    n_flips, seed : sign flips per group test, seed.

    Returns
    -------
    CalibrationResult

    Notes
    -----
    Vectorised over the pseudo-observed copies (one t-test call, sign patterns drawn once per seed); the
    numbers are those of the copy-by-copy loop it replaced (``tests/test_inference.py`` keeps that loop as
    the reference).
    """
    nu = np.asarray(null, dtype=np.float64)
    S = nu.shape[0]
    if S < 10:
        raise BrainlikeError(f"a calibration needs at least 10 null shifts, got {S}")
    others = _valid_others(shifts, n_volumes, min_shift)
    rng = np.random.default_rng(seed)
    pseudo = np.arange(S) if n_pseudo is None or n_pseudo >= S else np.sort(rng.choice(S, n_pseudo, replace=False))
    flat = nu.reshape(S, -1)
    n_hits = 0
    for j in pseudo:
        ok = others[j]
        n_hits += int(((1.0 + (flat[ok] >= flat[j] - 1e-12).sum(axis=0)) / (1.0 + ok.size) <= alpha).sum())
    fpr_target = n_hits / (len(pseudo) * flat.shape[1])
    fpr_an = float(np.mean(analytic_pvalues(flat[pseudo], n_volumes, n_folds) <= alpha))
    g_emp = g_sf = g_tt = g_sfi = g_tti = None
    if nu.ndim == 3 and nu.shape[1] >= 2:
        n_sub = nu.shape[1]
        mus = np.stack([nu[others[j]].mean(axis=0) for j in pseudo])        # (P, n_subjects, n_rois)
        row = {int(j): i for i, j in enumerate(pseudo)}
        d_all = nu[pseudo] - mus                                             # (P, n_subjects, n_rois)
        e_hits = [empirical_pvalues(d_all[i].mean(axis=0), (nu[others[j]] - mus[i]).mean(axis=1), axis=0) <= alpha
                  for i, j in enumerate(pseudo)]
        memo: dict[int, np.ndarray] = {}
        sf_hits = _sign_flip_many(d_all, [int(j) for j in pseudo], n_flips, memo) <= alpha
        tt_hits = _ttest_greater_many(d_all) <= alpha
        d_ind = []
        for _rep in range(len(pseudo)):
            js = rng.choice(pseudo, size=n_sub)
            d_ind.append(np.stack([nu[j, i] - mus[row[int(j)]][i] for i, j in enumerate(js)]))
        d_ind = np.stack(d_ind)                                              # (P, n_subjects, n_rois)
        sfi_hits = _sign_flip_many(d_ind, list(range(len(pseudo))), n_flips, memo) <= alpha
        tti_hits = _ttest_greater_many(d_ind) <= alpha
        g_emp, g_sf, g_tt = (float(np.mean(h)) for h in (e_hits, sf_hits, tt_hits))
        g_sfi, g_tti = float(np.mean(sfi_hits)), float(np.mean(tti_hits))
    return CalibrationResult(
        null_mean=float(flat.mean()), null_sd=float(flat.std()),
        iid_sd=float(1.0 / np.sqrt(max(1, n_volumes - 3 * n_folds))), fpr_target=fpr_target,
        fpr_analytic=fpr_an, fpr_group_empirical=g_emp, fpr_group_signflip=g_sf, fpr_group_ttest=g_tt,
        fpr_group_signflip_indep=g_sfi, fpr_group_ttest_indep=g_tti, n_pseudo=int(len(pseudo)),
        alpha=float(alpha))
