"""fMRI encoding at three levels (brainlike.analyses.fmri_encoding) and variance partitioning.

Checked against scikit-learn (StandardScaler -> PCA -> RidgeCV on the same folds), against
brainlike.neural.make_delayed, and on HRF/AR(1)-autocorrelated simulations with planted effects.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sstats

from brainlike.analyses.fmri_encoding import (
    FMRIEncodingOptions,
    circular_shifts,
    encode_between,
    encode_group,
    encode_layers,
    encode_single,
    gapped_folds,
    highpass_dct,
    reduce_and_delay,
)
from brainlike.analyses.inference import null_calibration
from brainlike.analyses.variance_partition import variance_partitioning
from brainlike.errors import BrainlikeError

ALPHAS = tuple(np.logspace(-1, 5, 13))


def _ar1(rng, n, k, phi):
    e = rng.standard_normal((n, k))
    x = np.empty_like(e)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = phi * x[i - 1] + np.sqrt(1 - phi ** 2) * e[i]
    return x


def _hrf(tr=2.0, length=24.0):
    t = np.arange(0, length, tr)
    h = sstats.gamma.pdf(t, 6) - sstats.gamma.pdf(t, 16) / 6.0
    return h / h.sum()


def _simulate(n=360, p=40, n_planted=4, n_null=24, amp=0.6, seed=0):
    """LM-like features (5 AR(1) latent factors spread over p columns + noise); planted targets =
    HRF-convolved combination of the factors + AR(1) noise; null targets = AR(1) noise only."""
    rng = np.random.default_rng(seed)
    F = _ar1(rng, n, 5, 0.7)
    X = F @ rng.standard_normal((5, p)) + 0.5 * _ar1(rng, n, p, 0.7)
    h = _hrf()
    sig = F @ rng.standard_normal((5, n_planted))
    sig = np.stack([np.convolve(sig[:, j], h)[:n] for j in range(n_planted)], axis=1)
    sig = (sig - sig.mean(0)) / sig.std(0)
    noise = _ar1(rng, n, n_planted + n_null, 0.6)
    Y = noise.copy()
    Y[:, :n_planted] += amp * sig
    return X.astype(np.float32), Y.astype(np.float32)


def test_gapped_folds_drop_the_gap_and_cover_all_volumes():
    folds = gapped_folds(np.arange(100), 4, 3)
    tests = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(tests), np.arange(100))
    for tr, te in folds:
        d = np.abs(tr[:, None] - te[None, :]).min()
        assert d == 4  # nearest training volume is gap + 1 away
    with pytest.raises(BrainlikeError):
        gapped_folds(np.arange(10), 2, 20)


def test_circular_shifts_respect_min_shift_and_seed():
    s = circular_shifts(362, 200, 20, seed=3)
    assert s.min() >= 20 and s.max() <= 342 and np.unique(s).size == 200
    assert np.array_equal(s, circular_shifts(362, 200, 20, seed=3))
    assert not np.array_equal(s, circular_shifts(362, 200, 20, seed=4))


def test_highpass_dct_removes_slow_drift_and_keeps_fast_signal():
    n, tr = 362, 2.0
    t = np.arange(n) * tr
    fast = np.sin(2 * np.pi * t / 20.0)                      # 20 s period: kept
    slow = 3.0 + 0.01 * t + np.cos(np.pi * 2 * (np.arange(n) + 0.5) / n)  # offset, linear drift, DCT k=2
    out = highpass_dct(np.c_[fast + slow, slow], tr, 128.0)
    assert np.corrcoef(out[:, 0], fast)[0, 1] > 0.99
    assert np.abs(out[:, 1]).max() < 0.1 * np.abs(slow - slow.mean()).max()
    assert abs(out[:, 0].mean()) < 1e-5


def test_reduce_and_delay_is_pca_of_training_rows_then_make_delayed():
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from brainlike.neural import make_delayed

    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 15)) * rng.uniform(0.5, 3, 15) + 2.0
    train = np.r_[0:60, 80:120]
    opt = FMRIEncodingOptions(n_components=4, delays=(1, 2, 3))
    D, width = reduce_and_delay(X, train, opt)
    sc = StandardScaler().fit(X[train])
    Z = PCA(4, svd_solver="full").fit(sc.transform(X[train])).transform(sc.transform(X))
    ref = make_delayed(Z, (1, 2, 3))
    assert width == 4
    # PCA signs are arbitrary: compare up to a sign per component
    for j in range(4):
        col = D[:, j::4]
        sgn = np.sign(np.sum(col * ref[:, j::4]))
        np.testing.assert_allclose(sgn * col, ref[:, j::4], atol=1e-4)


def test_fold_scores_match_sklearn_pipeline():
    """Ridge + PCA fold scores equal scikit-learn's Pipeline(StandardScaler, PCA, RidgeCV) on the same folds."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import RidgeCV as SkRidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, Y = _simulate(n=240, p=30, n_planted=3, n_null=1, amp=1.0, seed=2)
    opt = FMRIEncodingOptions(n_splits=4, gap=3, delays=(0,), n_components=6, alphas=ALPHAS, n_shifts=0,
                              inner_splits=4)
    res = encode_layers(X[None], Y, opt)
    Y = highpass_dct(Y, opt.tr, opt.highpass)  # the targets encode_layers fits (128 s DCT high-pass)
    folds = gapped_folds(np.arange(240), 4, 3)
    for k, (train, test) in enumerate(folds):
        inner = gapped_folds(train, 4, 3)
        for j in range(Y.shape[1]):
            pipe = make_pipeline(StandardScaler(), PCA(6, svd_solver="full"),
                                 SkRidgeCV(alphas=np.asarray(ALPHAS), cv=inner, scoring="r2"))
            pipe.fit(X[train].astype(np.float64), Y[train, j].astype(np.float64))
            pred = pipe.predict(X[test].astype(np.float64))
            r = np.corrcoef(pred, Y[test, j])[0, 1]
            assert abs(res.fold_scores[0, k, j] - r) < 1e-5
            assert res.alphas[0, k, j] == pytest.approx(pipe[-1].alpha_)
    assert np.allclose(res.scores, res.fold_scores.mean(axis=1))


def test_planted_effect_found_and_null_calibrated_on_autocorrelated_simulation():
    X, Y = _simulate(n=360, p=40, n_planted=4, n_null=24, amp=0.6, seed=0)
    opt = FMRIEncodingOptions(n_splits=5, gap=5, n_components=10, alphas=ALPHAS, n_shifts=100, min_shift=20)
    res = encode_layers(X[None], Y, opt)
    p = res.pvalues()[0]
    assert np.all(p[:4] <= 0.02)                         # planted: found
    assert np.all(res.scores[0, :4] > 0.3)
    cal = null_calibration(res.null[0, :, 4:], res.shifts, 360, min_shift=20, n_folds=5)
    assert abs(cal.null_mean) < 0.02                     # headline score unbiased under the null
    assert 0.02 <= cal.fpr_target <= 0.08                # empirical test at the nominal rate
    assert cal.null_sd > 1.2 * cal.iid_sd                # autocorrelation widens the null ...
    assert cal.fpr_analytic > 0.09                       # ... so the iid formula is too liberal
    assert res.pooled_null[0, :, 4:].mean() < -0.05      # the concatenated r is negatively biased


def test_levels_group_single_between_on_shared_signal():
    rng = np.random.default_rng(5)
    n, p, n_sub, n_roi = 300, 30, 6, 3
    F = _ar1(rng, n, 4, 0.7)
    X = (F @ rng.standard_normal((4, p)) + 0.5 * _ar1(rng, n, p, 0.7)).astype(np.float32)
    h = _hrf()
    shared = np.stack([np.convolve(F @ rng.standard_normal(4), h)[:n] for _ in range(n_roi)], axis=1)
    shared /= shared.std(0)
    data = 5.0 + 3.0 * (0.5 * shared[None] + _ar1(rng, n * n_sub, n_roi, 0.5).reshape(n_sub, n, n_roi))
    data[:, :, 2] = 5.0 + _ar1(rng, n * n_sub, 1, 0.5).reshape(n_sub, n)  # ROI 2: no stimulus signal
    opt = FMRIEncodingOptions(n_splits=5, gap=4, n_components=8, alphas=ALPHAS, n_shifts=60, min_shift=15)
    g = encode_group(X[None], data, opt)
    s = encode_single(X[None], data, opt)
    b = encode_between(X[None], data, opt)
    assert g.target_shape == (3,) and s.target_shape == (6, 3) and b.target_shape == (6, 3)
    assert g.scores.shape == (1, 3) and s.null.shape == (1, 60, 18)
    assert np.all(g.pvalues()[0, :2] <= 0.05) and g.scores[0, 2] < 0.2
    s_roi = s.unfold(s.scores[0])
    b_roi = b.unfold(b.scores[0])
    # averaging subjects raises the SNR: the group fit beats every single subject in signal ROIs
    assert np.all(g.scores[0, :2] > s_roi[:, :2].max(axis=0))
    assert np.all(b_roi[:, :2] > 0.15) and abs(b_roi[:, 2].mean()) < 0.1
    # between: the model is fitted on the other subjects' mean -> same as encode_layers with Y_eval
    z = (data - data.mean(1, keepdims=True)) / data.std(1, keepdims=True)
    loo = (z.sum(0) - z[0]) / 5
    ref = encode_layers(X[None], loo, opt, Y_eval=z[0])
    np.testing.assert_allclose(b_roi[0], ref.scores[0], atol=1e-5)


def test_zscore_rejects_flat_subject():
    data = np.random.default_rng(0).standard_normal((3, 50, 2))
    data[1] = 0.0
    with pytest.raises(BrainlikeError, match="index \\[1\\]"):
        encode_group(np.zeros((1, 50, 4)), data)


@pytest.mark.slow
@pytest.mark.parametrize("score", ["r2", "pearson"])
def test_nested_pca_size_matches_sklearn_gridsearch_over_pipeline(score):
    """A grid of PCA sizes is chosen with alpha inside the inner CV: per target, the same (k, alpha) and the
    same held-out predictions as GridSearchCV(Pipeline(StandardScaler, PCA, Ridge)) on the same folds, with
    the validation R^2 or the validation Pearson r as the criterion."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from brainlike.analyses.fmri_encoding import fit_nested_components

    X, Y = _simulate(n=240, p=30, n_planted=3, n_null=1, amp=1.0, seed=2)
    alphas = ALPHAS[::3]
    opt = FMRIEncodingOptions(n_splits=4, gap=3, delays=(0,), n_components=[2, 5, 12], alphas=alphas, n_shifts=0,
                              inner_splits=4, highpass=None, selection_score=score)
    scoring = "r2" if score == "r2" else make_scorer(lambda y, p: np.corrcoef(y, p)[0, 1])
    assert opt.nested_components and opt.component_grid == (2, 5, 12)
    res = encode_layers(X[None], Y, opt)
    folds = gapped_folds(np.arange(240), 4, 3)
    chosen = set()
    for k, (train, test) in enumerate(folds[:2] if score == "r2" else folds[:1]):
        inner = gapped_folds(train, 4, 3)
        pred, a_sel, k_sel = fit_nested_components(X, Y, train, test, inner, opt)
        for j in (0, 1, 3):  # planted, planted, noise
            pipe = Pipeline([("z", StandardScaler()), ("pca", PCA(svd_solver="full")), ("ridge", Ridge())])
            gs = GridSearchCV(pipe, {"pca__n_components": [2, 5, 12], "ridge__alpha": list(alphas)}, cv=inner,
                              scoring=scoring).fit(X[train].astype(np.float64), Y[train, j].astype(np.float64))
            assert k_sel[j] == gs.best_params_["pca__n_components"]
            assert a_sel[j] == pytest.approx(gs.best_params_["ridge__alpha"])
            sk_pred = gs.predict(X[test].astype(np.float64))
            np.testing.assert_allclose(pred[:, j], sk_pred, atol=1e-4 * np.abs(sk_pred).max())
            r = np.corrcoef(sk_pred, Y[test, j])[0, 1]
            assert abs(res.fold_scores[0, k, j] - r) < 1e-4
            assert res.components[0, k, j] == k_sel[j]
            chosen.add(int(k_sel[j]))
    assert len(chosen) >= 2, chosen  # the choice is made per target and fold, not fixed


def test_fixed_pca_size_unchanged_by_the_grid_option():
    """An int n_components is the old fixed-size path: identical numbers to the explicit one-step pipeline
    (reduce_and_delay + RidgeCV), and a one-element list is the same int."""
    from brainlike.encoding import RidgeCV, pearson_r

    X, Y = _simulate(n=200, p=20, n_planted=2, n_null=2, seed=5)
    opt = FMRIEncodingOptions(n_splits=3, gap=2, n_components=6, alphas=ALPHAS, n_shifts=0, inner_splits=3,
                              highpass=None)
    assert FMRIEncodingOptions(n_components=[6]).n_components == 6 and not opt.nested_components
    res = encode_layers(X[None], Y, opt)
    for k, (train, test) in enumerate(gapped_folds(np.arange(200), 3, 2)):
        D, _ = reduce_and_delay(X, train, opt)
        m = RidgeCV(alphas=np.asarray(ALPHAS), cv=gapped_folds(train, 3, 2)).fit(D[train], Y[train])
        np.testing.assert_array_equal(res.fold_scores[0, k], pearson_r(Y[test], m.predict(D[test])))
        np.testing.assert_array_equal(res.alphas[0, k], m.best_alphas_)
    assert (res.components == 6).all()
    with pytest.raises(BrainlikeError, match="n_components"):
        FMRIEncodingOptions(n_components=[0, 5])


def test_spec_n_components_list_is_a_nested_grid():
    from pydantic import ValidationError

    from brainlike.spec import FMRISpec

    opt = FMRISpec(n_components=[40, 10, 20], selection_score="pearson").options(0, 5, None, "numpy")
    assert opt.nested_components and opt.component_grid == (10, 20, 40) and opt.selection_score == "pearson"
    fixed = FMRISpec().options(0, 5, None, "numpy")
    assert fixed.n_components == 20 and not fixed.nested_components
    assert FMRISpec(n_components=None).options(0, 5, None, "numpy").reduction is None
    for bad in (0, [], [0, 5]):
        with pytest.raises(ValidationError, match="n_components"):
            FMRISpec(n_components=bad)


def test_variance_partitioning_separates_controls_from_lm():
    rng = np.random.default_rng(7)
    n = 360
    rate = _ar1(rng, n, 1, 0.8)
    lm = _ar1(rng, n, 20, 0.7)
    lm[:, :3] += 0.7 * rate  # the LM carries the word rate too (shared variance)
    h = _hrf()
    conv = lambda v: np.convolve(v, h)[:n]  # noqa: E731
    c_sig = conv(rate[:, 0])
    l_sig = conv(lm[:, 5] - lm[:, 9])
    c_sig /= c_sig.std()
    l_sig /= l_sig.std()
    noise = _ar1(rng, n, 2, 0.5)
    Y = np.stack([c_sig + noise[:, 0], c_sig + l_sig + noise[:, 1]], axis=1)
    opt = FMRIEncodingOptions(n_components=20, alphas=ALPHAS, n_shifts=0, highpass=None)  # no drift here
    vp = variance_partitioning(lm, rate, Y, opt, n_random=4)
    assert vp.r2_controls[0] > 0.3 and vp.r2_controls[1] > 0.1
    assert abs(vp.unique_lm[0]) < 0.05            # target 0 is driven by the controls only
    assert vp.unique_lm[1] > 0.2                  # target 1 has LM variance beyond the controls
    assert vp.r2_joint[1] >= vp.r2_lm[1] - 0.02 and vp.r2_joint[1] >= vp.r2_controls[1]
    assert vp.band_weights.shape == (5, 2, 2) and np.allclose(vp.band_weights.sum(axis=1), 1)


def _planted_partition(rng, n: int, p: int, cols: tuple[int, int]):
    """A word-rate-like control (n, 1), LM features (n, p) (both AR(1)), and their unit-SD HRF-convolved
    signals: the control's, and the sum of the two LM columns ``cols``."""
    rate = _ar1(rng, n, 1, 0.8)
    lm = _ar1(rng, n, p, 0.7)
    h = _hrf()
    c_sig = np.convolve(rate[:, 0], h)[:n]
    l_sig = np.convolve(lm[:, cols[0]] + lm[:, cols[1]], h)[:n]
    return rate, lm, c_sig / c_sig.std(), l_sig / l_sig.std()


def test_variance_partition_null_finds_planted_unique_lm_and_is_calibrated():
    """The refitted shift null of unique_lm: a planted LM effect beyond the controls is found, a target driven
    by the controls only is not, and on targets without any effect the null is centred on 0 with a nominal
    false-positive rate (each shifted copy in turn playing the observed data)."""
    rng = np.random.default_rng(11)
    n = 300
    rate, lm, c_sig, l_sig = _planted_partition(rng, n, 12, (2, 7))
    noise = _ar1(rng, n, 10, 0.6)
    Y = noise.copy()
    Y[:, 0] += c_sig                 # controls only
    Y[:, 1] += c_sig + 0.8 * l_sig   # LM beyond the controls
    opt = FMRIEncodingOptions(n_components=8, alphas=ALPHAS[::2], n_shifts=0, highpass=None, inner_splits=3,
                              delays=(1, 2, 3), min_shift=15, seed=3)
    vp = variance_partitioning(lm, rate, Y, opt, n_random=3, n_shifts=60)
    assert vp.null_unique_lm.shape == (60, 10) and vp.shifts.shape == (60,)
    assert np.array_equal(vp.shifts, circular_shifts(n, 60, 15, 3))  # the layer null's shifts
    p = vp.pvalues_unique_lm()
    assert p[1] <= 1 / 61 + 1e-12
    assert p[0] > 0.05
    null = vp.null_unique_lm[:, 2:]          # targets 2..9: noise only
    assert abs(null.mean()) < 0.02
    cal = null_calibration(null, vp.shifts, n, min_shift=15, n_folds=opt.n_splits)
    assert 0.01 <= cal.fpr_target <= 0.10
    assert (p[2:] <= 0.05).sum() <= 2
    # the null on the first targets only, the others fitted beside them: the same numbers
    vp2 = variance_partitioning(lm, rate, Y, opt, n_random=3, n_shifts=60, n_null_targets=2)
    np.testing.assert_allclose(vp2.unique_lm, vp.unique_lm, atol=1e-6)  # float32 engine
    np.testing.assert_allclose(vp2.null_unique_lm, vp.null_unique_lm[:, :2], atol=1e-6)
    assert np.isnan(vp2.pvalues_unique_lm()[2:]).all()


@pytest.mark.slow
def test_variance_partition_feature_shift_null_keeps_controls_aligned():
    """The stricter null (LM columns shifted, controls and targets aligned, joint fit refitted): on targets
    driven by the controls only, with LM features unrelated to them, unique_lm's null is centred on 0 and the
    test rejects at the nominal rate (each shifted copy in turn playing the observed data); a planted LM effect
    beyond the controls is found."""
    rng = np.random.default_rng(5)
    n, n_ctrl_only = 240, 12
    rate, lm, c_sig, l_sig = _planted_partition(rng, n, 8, (1, 4))
    Y = _ar1(rng, n, n_ctrl_only + 1, 0.6)
    Y[:, :n_ctrl_only] += c_sig[:, None]      # controls only (strongly: the controls R^2 is large)
    Y[:, n_ctrl_only] += c_sig + 1.5 * l_sig  # LM beyond the controls
    opt = FMRIEncodingOptions(n_components=8, alphas=ALPHAS[::3], n_shifts=0, highpass=None, inner_splits=3,
                              n_splits=4, delays=(1, 2, 3), min_shift=15, seed=3)
    vp = variance_partitioning(lm, rate, Y, opt, n_random=2, n_feature_shifts=40)
    assert vp.null_unique_lm_features.shape == (40, n_ctrl_only + 1)
    assert np.array_equal(vp.feature_shifts, circular_shifts(n, 40, 15, 4))
    assert vp.null_unique_lm is None or vp.null_unique_lm.size == 0   # no target-shift null asked for
    assert (vp.r2_controls[:n_ctrl_only] > 0.1).all()
    p = vp.pvalues_unique_lm(null="features")
    assert p[n_ctrl_only] <= 1 / 41 + 1e-12                            # planted LM effect found
    null = vp.null_unique_lm_features[:, :n_ctrl_only]
    assert abs(null.mean()) < 0.02
    cal = null_calibration(null, vp.feature_shifts, n, min_shift=15, n_folds=opt.n_splits)
    assert 0.01 <= cal.fpr_target <= 0.10
    assert (p[:n_ctrl_only] <= 0.05).sum() <= 3
    with pytest.raises(BrainlikeError, match="null"):
        vp.pvalues_unique_lm(null="both")


# ----------------------------------------------------------------------------------------- real data
def _brennan_design(n_subjects=None):
    """The copy of the recording shipped in the package (no skip: it is always there)."""
    from brainlike.models import extract_features
    from brainlike.neural import fmri_design_layers
    from brainlike.neural.brennan import load_brennan2016

    rec = load_brennan2016()
    if n_subjects:
        rec = rec.select(rec.subjects[:n_subjects])
    data, stim = rec.data, rec.stimulus_on_volume_clock()
    feats = extract_features("stories260k", stim)
    design = fmri_design_layers(feats, stim, data.shape[1], tr=2.0, delays=(0,), trim_start=0, trim_end=0)
    return design.X, data


@pytest.mark.slow
@pytest.mark.usefixtures("single_thread")
def test_null_calibration_on_the_brennan_recording():
    """On circularly shifted targets of the real recording (27 subjects x 6 ROIs, 100 refitted shifts, 2
    layers of stories260k): the headline score's null mean is within +-0.02 of 0 and the single-subject and
    group tests reject at 2-8 % at alpha = .05; the old headline (pooled r) is negatively biased."""
    X, data = _brennan_design()
    assert data.shape == (27, 362, 6)
    opt = FMRIEncodingOptions(n_shifts=100)
    single = encode_single(X[[1, 4]], data, opt)
    group = encode_group(X[[1, 4]], data, opt)
    for li in range(2):
        cal = null_calibration(single.unfold(single.null[li]), single.shifts, 362, min_shift=opt.min_shift,
                               n_folds=opt.n_splits, n_flips=1000)
        assert abs(cal.null_mean) <= 0.02
        assert 0.02 <= cal.fpr_target <= 0.08
        assert 0.02 <= cal.fpr_group_empirical <= 0.08
        assert 0.02 <= cal.fpr_group_ttest_indep <= 0.08
        gcal = null_calibration(group.null[li], group.shifts, 362, min_shift=opt.min_shift, n_folds=opt.n_splits)
        assert abs(gcal.null_mean) <= 0.03
        assert 0.02 <= gcal.fpr_target <= 0.08
    # the old headline (r of the concatenated folds) stays negatively biased (-0.3 without the high-pass)
    assert single.pooled_null.mean() < -0.03
