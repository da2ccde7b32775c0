"""Noise ceilings, autocorrelation-aware permutation tests and FDR, checked against ground truth."""
import numpy as np
import pytest
from scipy.signal import lfilter

from brainlike import Stimulus
from brainlike.encoding import contiguous_folds, cross_validated_encoding
from brainlike.errors import NeuralDataError
from brainlike.neural import (
    RegionSpec,
    block_bootstrap_ci,
    fdr_correction,
    fmri_design_layers,
    fmri_responses,
    fold_labels,
    inter_subject_correlation,
    isc_ceiling,
    permutation_test,
    simulate_fmri,
    split_half_reliability,
)
from brainlike.neural.stats import normalize_scores


@pytest.fixture(scope="module")
def noise_fit():
    """4 stories, 1000 pure-noise voxels (AR(1) + drift) and 40 driven ones, run-aware CV predictions."""
    stims = [Stimulus.from_text(" ".join(["w"] * 600), words_per_second=2.5, start=1.0, jitter=0.3, seed=i,
                                name=f"story{i}") for i in range(4)]
    feats = np.random.default_rng(0).standard_normal((1, 2400, 8)).astype(np.float32)
    regions = [RegionSpec("OCC", "noise", n_channels=1000),
               RegionSpec("STG", "layer", (0,), n_channels=40, snr=(0.2, 1.0))]
    sim = simulate_fmri(stims, feats, regions=regions, tr=2.0, seed=11, ar_coef=0.4, drift_amplitude=0.5)
    design = fmri_design_layers(feats, stims, sim.dataset)
    Y = fmri_responses(sim.dataset, design)
    res = cross_validated_encoding(design.layer(0), Y, n_splits=4, inner_splits=3, groups=design.runs)
    fold = fold_labels(contiguous_folds(design.n_samples, n_splits=4, groups=design.runs))
    return Y, res.predictions, fold, sim.truth["is_noise"].to_numpy()


def test_false_positive_rate_on_pure_noise_is_nominal(noise_fit):
    Y, pred, fold, noise = noise_fit
    res = permutation_test(Y[:, noise], pred[:, noise], groups=fold, n_permutations=1000, seed=0)
    fpr = float(np.mean(res.pvalues < 0.05))
    assert 0.02 <= fpr <= 0.08, fpr
    assert res.pvalues.min() > 0 and res.pvalues.max() <= 1
    assert res.null.shape == (1000, int(noise.sum())) and res.null.dtype == np.float32
    # without the cross-fitting correction the fold-average null is too narrow (documented pitfall)
    naive = permutation_test(Y[:, noise], pred[:, noise], groups=fold, cross_fitted=False, seed=0)
    assert np.mean(naive.pvalues < 0.05) > fpr
    # driven voxels are detected
    driven = permutation_test(Y[:, ~noise], pred[:, ~noise], groups=fold, seed=0)
    assert np.mean(driven.pvalues < 0.05) > 0.9


def test_block_permutation_is_calibrated_too(noise_fit):
    Y, pred, fold, noise = noise_fit
    res = permutation_test(Y[:, noise], pred[:, noise], groups=fold, method="block", n_permutations=300, seed=1)
    assert 0.02 <= float(np.mean(res.pvalues < 0.05)) <= 0.08


def test_circular_shift_respects_autocorrelation():
    """Two independent, autocorrelated series: a naive shuffle test rejects far too often, the
    circular-shift test does not (the series must be long compared with the autocorrelation time)."""
    rng = np.random.default_rng(0)
    n, c = 600, 400
    a = lfilter([1.0], [1.0, -0.8], rng.standard_normal((n, c)), axis=0)
    b = lfilter([1.0], [1.0, -0.8], rng.standard_normal((n, c)), axis=0)
    res = permutation_test(a, b, n_permutations=500, seed=0)
    assert 0.01 <= np.mean(res.pvalues < 0.05) <= 0.09
    za = (a - a.mean(0)) / a.std(0)
    zb = (b - b.mean(0)) / b.std(0)
    r = (za * zb).mean(0)
    shuffled = np.stack([(za[rng.permutation(n)] * zb).mean(0) for _ in range(200)])
    assert np.mean(np.mean(shuffled >= r, axis=0) < 0.05) > 0.15  # what shuffling single samples would claim
    np.testing.assert_allclose(res.scores, r, atol=1e-10)


def test_fdr_matches_benjamini_hochberg_and_controls_fdr():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    res = fdr_correction(p, alpha=0.05)
    m = len(p)
    order = np.argsort(p)
    q = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1]
    expected = np.empty(m)
    expected[order] = np.minimum(q, 1)
    np.testing.assert_allclose(res.qvalues, expected)
    assert res.significant.tolist() == (expected <= 0.05).tolist()
    # Monte Carlo: 900 nulls + 100 effects, the false discovery proportion averages <= alpha
    rng = np.random.default_rng(0)
    fdp = []
    for _ in range(200):
        z = np.concatenate([rng.standard_normal(900), rng.standard_normal(100) + 3.0])
        pv = 1 - __import__("scipy").stats.norm.cdf(z)
        sig = fdr_correction(pv, alpha=0.1).significant
        fdp.append(sig[:900].sum() / max(sig.sum(), 1))
    assert np.mean(fdp) <= 0.1 * 0.9 + 0.01  # BH controls at alpha * m0 / m
    # NaN p-values are ignored; shape is kept
    res = fdr_correction(np.array([[0.01, np.nan], [0.5, 0.02]]))
    assert res.qvalues.shape == (2, 2) and np.isnan(res.qvalues[0, 1]) and not res.significant[0, 1]
    with pytest.raises(NeuralDataError, match=r"\[0, 1\]"):
        fdr_correction([0.2, 1.5])


def test_fdr_on_pipeline_p_values(noise_fit):
    Y, pred, fold, noise = noise_fit
    res = permutation_test(Y, pred, groups=fold, seed=3)
    sig = fdr_correction(res.pvalues, alpha=0.05).significant
    assert sig[~noise].mean() > 0.8
    assert sig[noise].sum() / max(sig.sum(), 1) <= 0.1


def test_split_half_reliability_matches_spearman_brown():
    rng = np.random.default_rng(0)
    n, c, k = 400, 200, 6
    signal = rng.standard_normal((n, c))
    snr = np.linspace(0.05, 2.0, c)  # single-repeat reliability rho = snr / (1 + snr)
    repeats = signal[None] + rng.standard_normal((k, n, c)) / np.sqrt(snr)
    nc = split_half_reliability(repeats, n_splits=50, seed=0)
    rho = snr / (1 + snr)
    half = 3 * rho / (1 + 2 * rho)  # reliability of a 3-repeat average
    full = k * rho / (1 + (k - 1) * rho)
    assert np.mean(np.abs(nc.split_half_r - half)) < 0.03 and np.max(np.abs(nc.split_half_r - half)) < 0.15
    assert np.mean(np.abs(nc.reliability - full)) < 0.02 and np.max(np.abs(nc.reliability - full)) < 0.2
    np.testing.assert_allclose(nc.ceiling, np.sqrt(np.clip(nc.reliability, 0, 1)))
    # a perfect model (the true signal) scores close to the ceiling against the repeat average
    avg = repeats.mean(0)
    r_true = np.array([np.corrcoef(signal[:, i], avg[:, i])[0, 1] for i in range(c)])
    assert np.mean(np.abs(r_true - nc.ceiling)) < 0.03
    assert split_half_reliability(repeats[:2]).n_repeats == 2
    with pytest.raises(NeuralDataError, match="at least 2 repeats"):
        split_half_reliability(repeats[:1])
    norm = normalize_scores(r_true, nc.ceiling, min_ceiling=0.6)
    assert np.isnan(norm[0]) and abs(np.nanmean(norm) - 1) < 0.1


def test_inter_subject_correlation():
    rng = np.random.default_rng(1)
    n, c, s = 500, 50, 8
    shared = rng.standard_normal((n, c))
    subjects = [shared + rng.standard_normal((n, c)) for _ in range(s)]  # rho between subjects = 0.5
    pair = inter_subject_correlation(subjects, method="pairwise")
    np.testing.assert_allclose(pair, 0.5, atol=0.06)
    loo = inter_subject_correlation(subjects)
    assert loo.shape == (s, c)
    # r(subject, mean of 7 others) = sqrt(0.5) * sqrt(7 * 0.5 / (1 + 6 * 0.5))
    np.testing.assert_allclose(loo.mean(), np.sqrt(0.5) * np.sqrt(3.5 / 4.0), atol=0.03)
    ceiling = isc_ceiling(subjects)
    assert ceiling.shape == (c,) and np.all(ceiling <= np.sqrt(0.5) + 0.05)
    with pytest.raises(NeuralDataError, match="at least 2 subjects"):
        inter_subject_correlation(subjects[:1])


def test_block_bootstrap_ci_covers_the_true_correlation():
    rng = np.random.default_rng(2)
    n, c = 600, 200
    x = lfilter([1.0], [1.0, -0.7], rng.standard_normal((n, c)), axis=0)
    e = lfilter([1.0], [1.0, -0.7], rng.standard_normal((n, c)), axis=0)
    y = 0.5 * x + np.sqrt(0.75) * e  # true r = 0.5
    lo, hi = block_bootstrap_ci(y, x, block_size=20, n_boot=300, ci=0.9)
    coverage = np.mean((lo <= 0.5) & (hi >= 0.5))
    assert 0.75 <= coverage <= 0.99
    assert np.all(hi > lo)


def test_stats_input_errors():
    a = np.zeros((50, 3))
    with pytest.raises(NeuralDataError, match="same shape"):
        permutation_test(a, np.zeros((50, 2)))
    with pytest.raises(NeuralDataError, match="NaN"):
        permutation_test(np.full((50, 2), np.nan), np.zeros((50, 2)))
    with pytest.raises(NeuralDataError, match="method"):
        permutation_test(a, a, method="shuffle")
    with pytest.raises(NeuralDataError, match="one label per sample"):
        permutation_test(a, a, groups=np.zeros(10))
    with pytest.raises(NeuralDataError, match="overlap"):
        fold_labels([(np.arange(5, 10), np.arange(5)), (np.arange(3), np.arange(3, 10))])
