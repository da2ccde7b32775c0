"""Inference for encoding scores (brainlike.analyses.inference): empirical p, max over layers, group tests."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sstats

from brainlike.analyses.inference import (
    analytic_pvalues,
    bootstrap_ci_subjects,
    empirical_pvalues,
    group_test,
    max_statistic_pvalues,
    null_calibration,
    sign_flip_test,
)
from brainlike.errors import BrainlikeError
from brainlike.neural.stats import fdr_correction


def test_empirical_pvalues_count_with_plus_one():
    rng = np.random.default_rng(0)
    null = rng.standard_normal((3, 50, 4))
    obs = rng.standard_normal((3, 4))
    p = empirical_pvalues(obs, null, axis=1)
    for i in range(3):
        for j in range(4):
            assert p[i, j] == (1 + np.sum(null[i, :, j] >= obs[i, j])) / 51
    assert p.min() >= 1 / 51


def test_max_statistic_is_calibrated_where_the_naive_best_layer_is_not():
    """Pure null, 10 layers: the best layer's naive p rejects far too often, the max-statistic p does not."""
    rng = np.random.default_rng(1)
    L, S, T = 10, 199, 2000
    common = rng.standard_normal((1, S + 1, T))
    vals = 0.5 * common + rng.standard_normal((L, S + 1, T))   # layers correlated, like real layers
    obs, null = vals[:, 0], vals[:, 1:]
    naive = empirical_pvalues(obs, null, axis=1).min(axis=0)
    pmax = max_statistic_pvalues(obs, null)
    assert np.mean(naive <= 0.05) > 0.2
    assert 0.035 <= np.mean(pmax <= 0.05) <= 0.065


def test_sign_flip_exact_matches_brute_force_and_random_approximates_it():
    rng = np.random.default_rng(2)
    d = rng.standard_normal((8, 3)) + np.array([0.0, 0.5, 1.0])
    ref = []
    for j in range(3):
        stats_ = [np.mean(np.array(s) * d[:, j]) for s in itertools.product((-1, 1), repeat=8)]
        ref.append(np.mean(np.array(stats_) >= d[:, j].mean() - 1e-12))
    np.testing.assert_allclose(sign_flip_test(d, n_flips=10000), ref)
    d12 = rng.standard_normal((12, 3)) + 0.4
    exact = sign_flip_test(d12, n_flips=5000)      # 2^12 = 4096 <= 5000: exact
    approx = sign_flip_test(d12, n_flips=4000)     # random flips
    np.testing.assert_allclose(approx, exact, atol=0.02)


def test_bootstrap_ci_covers_the_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(3)
    d = rng.standard_normal((300, 27, 1)) + 0.3
    cover = 0
    for i in range(300):
        lo, hi = bootstrap_ci_subjects(d[i], n_boot=1000, seed=i)
        cover += int(lo[0] <= 0.3 <= hi[0])
    assert 0.88 <= cover / 300 <= 0.98


def test_bootstrap_ci_of_the_median_covers_the_median_not_the_mean():
    """Skewed scores (lognormal: median 1, mean e^0.5 = 1.65): the median's CI covers the true median at
    about the nominal rate and the mean far less often; the default is still the mean's."""
    rng = np.random.default_rng(5)
    d = rng.lognormal(0.0, 1.0, (200, 40, 1))
    cover_median = cover_mean = 0
    for i in range(200):
        lo, hi = bootstrap_ci_subjects(d[i], n_boot=1000, seed=i, statistic=np.median)
        cover_median += int(lo[0] <= 1.0 <= hi[0])
        cover_mean += int(lo[0] <= np.exp(0.5) <= hi[0])
    assert 0.88 <= cover_median / 200 <= 0.99
    assert cover_mean / 200 < 0.5  # 0.32 here: the median CI is wide, but centred on the median
    lo_mean, _ = bootstrap_ci_subjects(d[0], n_boot=1000, seed=0)
    lo_med, _ = bootstrap_ci_subjects(d[0], n_boot=1000, seed=0, statistic=np.median)
    assert lo_mean[0] != lo_med[0]


def test_group_test_detects_effect_and_uses_fdr_across_rois():
    rng = np.random.default_rng(4)
    n_sub, n_roi, S = 20, 4, 200
    null = 0.05 * rng.standard_normal((S, n_sub, n_roi)) + 0.01
    scores = 0.05 * rng.standard_normal((n_sub, n_roi)) + 0.01
    scores[:, :2] += np.array([0.08, 0.05])   # ROIs 0, 1 carry an effect
    res = group_test(scores, null, n_flips=5000, n_boot=2000)
    assert np.all(res.p_empirical[:2] < 0.01) and np.all(res.p_ttest[:2] < 0.01)
    assert np.all(res.p_signflip[:2] < 0.01)
    assert res.significant[:2].all()
    np.testing.assert_allclose(res.q_empirical, fdr_correction(res.p_empirical).qvalues)
    d = scores - null.mean(axis=0)
    tt = sstats.ttest_1samp(d, 0, axis=0, alternative="greater")
    np.testing.assert_allclose(res.p_ttest, tt.pvalue)
    np.testing.assert_allclose(res.effect, d.mean(axis=0))
    assert np.all(res.ci_low < res.effect) and np.all(res.effect < res.ci_high)
    with pytest.raises(BrainlikeError):
        group_test(scores, null[:, :5])


def test_calibration_shows_t_test_is_liberal_under_a_shared_null_but_empirical_group_test_is_not():
    """Subjects' null scores share a component per shift (the stimulus is shared): the common-shift empirical
    group test stays at ~5 %, the t-test over subjects does not; with independent shifts both are fine."""
    rng = np.random.default_rng(5)
    S, n_sub, n_roi, n = 300, 27, 6, 362
    shifts = np.sort(rng.choice(np.arange(20, n - 19), S, replace=False))
    null = 0.06 * rng.standard_normal((S, 1, n_roi)) + 0.08 * rng.standard_normal((S, n_sub, n_roi))
    cal = null_calibration(null, shifts, n, min_shift=20, n_folds=5, n_flips=500, n_pseudo=150)
    assert abs(cal.null_mean) < 0.01
    assert 0.03 <= cal.fpr_target <= 0.07
    assert 0.02 <= cal.fpr_group_empirical <= 0.08
    assert cal.fpr_group_ttest > 0.2 and cal.fpr_group_signflip > 0.2
    assert 0.02 <= cal.fpr_group_ttest_indep <= 0.08
    assert 0.02 <= cal.fpr_group_signflip_indep <= 0.08


def test_analytic_pvalues_are_the_fisher_formula():
    p = analytic_pvalues(np.array([0.0, 0.1, 0.3]), 362, 5)
    np.testing.assert_allclose(p, sstats.norm.sf(np.arctanh([0.0, 0.1, 0.3]) * np.sqrt(347)))


def _null_calibration_loop(null, shifts, n_volumes, *, min_shift, n_folds, alpha=0.05, n_pseudo=None, n_flips=2000,
                           seed=0):
    """The copy-by-copy implementation that the vectorised :func:`null_calibration` replaced (the reference)."""
    from brainlike.analyses.inference import _valid_others, analytic_pvalues, empirical_pvalues, sign_flip_test

    nu = np.asarray(null, dtype=np.float64)
    S = nu.shape[0]
    others = _valid_others(shifts, n_volumes, min_shift)
    rng = np.random.default_rng(seed)
    pseudo = np.arange(S) if n_pseudo is None or n_pseudo >= S else np.sort(rng.choice(S, n_pseudo, replace=False))
    flat = nu.reshape(S, -1)
    hits = []
    for j in pseudo:
        ok = others[j]
        p = (1.0 + (flat[ok] >= flat[j] - 1e-12).sum(axis=0)) / (1.0 + ok.size)
        hits.append(p <= alpha)
    out = {"null_mean": float(flat.mean()), "null_sd": float(flat.std()), "fpr_target": float(np.mean(hits)),
           "fpr_analytic": float(np.mean(analytic_pvalues(flat[pseudo], n_volumes, n_folds) <= alpha)),
           "n_pseudo": len(pseudo)}
    if nu.ndim == 3 and nu.shape[1] >= 2:
        e_hits, sf_hits, tt_hits, sfi_hits, tti_hits = [], [], [], [], []
        mus = {}
        for j in pseudo:
            ok = others[j]
            mu = nu[ok].mean(axis=0)
            mus[int(j)] = mu
            d = nu[j] - mu
            e_hits.append(empirical_pvalues(d.mean(axis=0), (nu[ok] - mu).mean(axis=1), axis=0) <= alpha)
            sf_hits.append(sign_flip_test(d, n_flips=n_flips, seed=int(j)) <= alpha)
            tt_hits.append(sstats.ttest_1samp(d, 0.0, axis=0, alternative="greater").pvalue <= alpha)
        for rep in range(len(pseudo)):
            js = rng.choice(pseudo, size=nu.shape[1])
            d = np.stack([nu[j, i] - mus[int(j)][i] for i, j in enumerate(js)])
            sfi_hits.append(sign_flip_test(d, n_flips=n_flips, seed=rep) <= alpha)
            tti_hits.append(sstats.ttest_1samp(d, 0.0, axis=0, alternative="greater").pvalue <= alpha)
        out.update(fpr_group_empirical=float(np.mean(e_hits)), fpr_group_signflip=float(np.mean(sf_hits)),
                   fpr_group_ttest=float(np.mean(tt_hits)), fpr_group_signflip_indep=float(np.mean(sfi_hits)),
                   fpr_group_ttest_indep=float(np.mean(tti_hits)))
    return out


@pytest.mark.parametrize(("shape", "n_flips", "n_pseudo"), [
    ((60, 27, 6), 500, None),    # random sign flips (2^27 patterns > n_flips)
    ((60, 27, 1), 2100, 40),     # more than one block of 2048 random flips, a subset of pseudo-observed copies
    ((60, 6, 3), 500, None),     # exact enumeration (2^6 <= n_flips)
    ((60, 20), 500, None),       # no subjects axis: per-target tests only
])
def test_vectorised_null_calibration_gives_the_numbers_of_the_copy_by_copy_loop(shape, n_flips, n_pseudo):
    rng = np.random.default_rng(11)
    n = 362
    shifts = np.sort(rng.choice(np.arange(20, n - 19), shape[0], replace=False))
    # a shared component per shift makes the group tests reject often, so the rates are not all ~0
    null = 0.05 * rng.standard_normal((shape[0], *([1] * (len(shape) - 1)))) + 0.08 * rng.standard_normal(shape)
    cal = null_calibration(null, shifts, n, min_shift=20, n_folds=5, n_flips=n_flips, n_pseudo=n_pseudo, seed=3)
    ref = _null_calibration_loop(null, shifts, n, min_shift=20, n_folds=5, n_flips=n_flips, n_pseudo=n_pseudo, seed=3)
    for name, value in ref.items():
        np.testing.assert_allclose(getattr(cal, name), value, rtol=0, atol=1e-12, err_msg=name)
    if len(shape) == 3:
        assert 0 < cal.fpr_group_ttest < 1 and cal.fpr_group_signflip_indep is not None  # not a vacuous comparison
    else:
        assert cal.fpr_group_empirical is None
