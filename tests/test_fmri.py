"""fMRI alignment: Lanczos downsampling, FIR delays, trimming, run-aware designs."""
import numpy as np
import pytest
from scipy.integrate import quad

from brainlike import Stimulus
from brainlike.errors import NeuralDataError
from brainlike.neural import NeuralDataset, concatenate_runs, fmri_design, fmri_design_layers, fmri_responses
from brainlike.neural.fmri import lanczos_downsample, lanczos_kernel, lanczos_matrix, make_delayed, run_lengths


def _lanczos_gain(f: float, tr: float, a: int = 3) -> float:
    """∫ L(τ) cos(2π f τ) dτ / tr for the Lanczos kernel L with cutoff 1/tr (the filter's gain × 1)."""
    return quad(lambda u: np.sinc(u) * np.sinc(u / a) * np.cos(2 * np.pi * f * tr * u), -a, a, limit=200)[0]


def _stim(n_words: int, rate: float = 2.5, start: float = 1.0, seed: int = 0, name: str = "s") -> Stimulus:
    return Stimulus.from_text(" ".join(["w"] * n_words), words_per_second=rate, start=start, jitter=0.3,
                              seed=seed, name=name)


def test_lanczos_kernel_shape():
    t = np.array([0.0, 1.0, 2.0, 0.5, 3.0, 3.5])
    k = lanczos_kernel(t, cutoff=1.0, window=3)
    assert k[0] == 1.0
    np.testing.assert_allclose(k[[1, 2, 4, 5]], 0.0, atol=1e-12)  # zeros at integers, nothing beyond a
    assert 0 < k[3] < 1


@pytest.mark.parametrize("freq", [0.01, 0.03])
def test_lanczos_slow_sinusoid_matches_analytic(freq):
    dt, tr = 0.05, 2.0
    t = np.arange(0.0, 600.0, dt)
    new = np.arange(0.0, 600.0, tr)
    x = np.sin(2 * np.pi * freq * t)
    inner = slice(5, -5)  # away from the edges, where the window is truncated
    # Huth/LeBel sum: (1/dt) ∫ L(τ) x(t - τ) dτ = sin(2π f t) · tr/dt · gain(f)
    summed = lanczos_downsample(x, t, new, tr=tr)
    expected = np.sin(2 * np.pi * freq * new) * (tr / dt) * _lanczos_gain(freq, tr)
    np.testing.assert_allclose(summed[inner], expected[inner], atol=1e-4 * tr / dt)
    # normalised: a weighted average, sin(2π f t) · gain(f) / gain(0)
    avg = lanczos_downsample(x, t, new, tr=tr, normalize=True)
    expected = np.sin(2 * np.pi * freq * new) * _lanczos_gain(freq, tr) / _lanczos_gain(0.0, tr)
    np.testing.assert_allclose(avg[inner], expected[inner], atol=1e-4)


def test_lanczos_rejects_frequencies_above_nyquist():
    dt, tr = 0.05, 2.0
    t = np.arange(0.0, 600.0, dt)
    new = np.arange(0.0, 600.0, tr)
    fast = lanczos_downsample(np.sin(2 * np.pi * 0.4 * t), t, new, tr=tr, normalize=True)  # Nyquist is 0.25 Hz
    assert np.abs(fast[5:-5]).max() < 0.02


def test_lanczos_of_ones_is_word_rate():
    stim = Stimulus.from_text(" ".join(["w"] * 400), words_per_second=2.0, start=0.0)
    new = np.arange(10, 180) * 1.0
    out = lanczos_downsample(np.ones(len(stim)), stim.onsets, new, tr=1.0)
    np.testing.assert_allclose(out, 2.0 * _lanczos_gain(0.0, 1.0), rtol=2e-2)  # words per TR


def test_lanczos_matrix_is_sparse_and_local():
    old = np.arange(0.0, 100.0, 0.4)
    mat = lanczos_matrix(old, np.arange(0.0, 100.0, 2.0), window=3)
    assert mat.nnz < 0.2 * mat.shape[0] * mat.shape[1]
    row = mat[25].toarray().ravel()
    assert np.all(np.abs(old[row != 0] - 50.0) <= 6.0)


def test_make_delayed_shifts_and_pads():
    x = np.arange(1.0, 7.0)[:, None]
    d = make_delayed(x, (0, 1, 3, -2))
    assert d.shape == (6, 4) and d.dtype == np.float32
    np.testing.assert_array_equal(d[:, 0], [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(d[:, 1], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(d[:, 2], [0, 0, 0, 1, 2, 3])
    np.testing.assert_array_equal(d[:, 3], [3, 4, 5, 6, 0, 0])
    with pytest.raises(NeuralDataError, match="integers"):
        make_delayed(x, (1.5,))
    with pytest.raises(NeuralDataError, match="distinct"):
        make_delayed(x, (1, 1))


def test_fir_delays_shift_within_run_only():
    """An impulse at the end of run 1 must not leak into run 2; delays move it by d TRs."""
    tr = 1.0
    s1 = Stimulus.from_words(["a", "b"], [5.0, 19.0], name="r1")
    s2 = Stimulus.from_words(["c", "d"], [10.0, 12.0], name="r2")
    feats = [np.array([[0.0], [1.0]]), np.array([[0.0], [0.0]])]
    # words exactly on volume times: the Lanczos kernel is 1 at lag 0 and 0 at every other whole TR
    des = fmri_design(feats, [s1, s2], [20, 20], tr=tr, delays=(0, 1, 2), trim_start=0, trim_end=0,
                      zscore=False)
    assert des.X.shape == (40, 3)
    r1 = des.runs == "r1"
    x = des.X
    np.testing.assert_allclose(x[r1, 0], np.eye(20)[19], atol=1e-7)
    np.testing.assert_allclose(x[r1, 1], 0.0, atol=1e-7)  # the delayed copy falls after the run's end ...
    np.testing.assert_allclose(x[~r1], 0.0, atol=1e-7)  # ... and never into run 2
    # a feature at TR 8 shows up at TR 8 + d in block d
    s = Stimulus.from_words(["x", "y"], [8.0, 30.0])
    des2 = fmri_design(np.array([[1.0], [0.0]]), s, 40, tr=tr, delays=(0, 2, 5), trim_start=0, trim_end=0,
                       zscore=False)
    for j, d in enumerate((0, 2, 5)):
        np.testing.assert_allclose(des2.X[:, j], np.eye(40)[8 + d], atol=1e-7)


def test_trimming_and_run_bookkeeping():
    stims = [_stim(150, seed=i, name=f"story{i}") for i in range(3)]
    n_trs = [40, 45, 42]
    feats = np.random.default_rng(0).normal(size=(sum(len(s) for s in stims), 4))
    des = fmri_design(feats, stims, n_trs, tr=2.0, trim_start=5, trim_end=3, delays=(0, 2))
    assert des.X.shape == (sum(n - 8 for n in n_trs), 8) and des.X.dtype == np.float32
    assert des.run_labels == ("story0", "story1", "story2")
    assert des.keep.sum() == des.n_samples and len(des.keep) == sum(n_trs)
    assert list(np.flatnonzero(~des.keep[:40])) == [0, 1, 2, 3, 4, 37, 38, 39]
    np.testing.assert_allclose(des.times[:2], [10.0, 12.0])
    # z-scored within each run over the kept volumes (block of delay 0 is exactly standardised)
    for lab in des.run_labels:
        block = des.X[des.runs == lab, :4]
        np.testing.assert_allclose(block.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(block.std(0), 1, atol=1e-4)


def test_run_aware_folds_never_share_a_run():
    from brainlike.encoding import contiguous_folds

    stims = [_stim(100, seed=i, name=f"story{i}") for i in range(5)]
    des = fmri_design(np.ones((500, 2)) + np.random.default_rng(1).normal(size=(500, 2)), stims, [30] * 5, tr=2.0)
    for k in (2, 3, 5):
        folds = contiguous_folds(des.n_samples, n_splits=k, groups=des.runs)
        assert len(folds) == k
        for train, test in folds:
            assert not set(des.runs[train]) & set(des.runs[test])
            assert len(train) + len(test) == des.n_samples
    assert len(contiguous_folds(des.n_samples, des.default_n_splits, groups=des.runs)) == 5


def test_design_layers_matches_single_layer_and_dataset_input():
    rng = np.random.default_rng(0)
    stims = [_stim(120, seed=i, name=f"r{i}") for i in range(2)]
    feats = rng.normal(size=(3, 240, 5)).astype(np.float32)

    class Feats:  # objects with a .layers attribute are accepted
        layers = feats

    runs = [NeuralDataset(rng.normal(size=(n, 4)), np.arange(n) * 2.0, list("abcd"), modality="fmri",
                          meta={"tr": 2.0}) for n in (35, 38)]
    ds = concatenate_runs(runs, ["r0", "r1"])
    assert run_lengths(ds) == (["r0", "r1"], [35, 38])
    des = fmri_design_layers(Feats(), stims, ds, delays=(1, 2), trim_start=2, trim_end=2)
    assert des.X.shape == (3, 35 + 38 - 8, 10) and des.X.dtype == np.float32
    single = fmri_design(feats[1], stims, [35, 38], tr=2.0, delays=(1, 2), trim_start=2, trim_end=2,
                         run_labels=["r0", "r1"])
    np.testing.assert_allclose(des.layer(1), single.X, atol=1e-5)

    class RunFeats:  # one Features-like object per run
        def __init__(self, arr):
            self.layers = arr

    per_run = fmri_design_layers([RunFeats(feats[:, :120]), RunFeats(feats[:, 120:])], stims, ds, delays=(1, 2),
                                 trim_start=2, trim_end=2)
    np.testing.assert_array_equal(per_run.X, des.X)
    Y = fmri_responses(ds, des)
    assert Y.shape == (des.n_samples, 4)
    np.testing.assert_allclose(Y[des.runs == "r1"].std(0), 1.0, atol=1e-4)
    # already-trimmed recordings (LeBel's preprocessed files) are accepted as they are
    pre = NeuralDataset(rng.normal(size=(des.n_samples, 2)), np.arange(des.n_samples) * 2.0, ["x", "y"])
    assert fmri_responses(pre, des).shape == (des.n_samples, 2)


def test_design_errors_are_clear():
    stim = _stim(100)
    with pytest.raises(NeuralDataError, match="100 words"):
        fmri_design(np.zeros((90, 3)), stim, 40, tr=2.0)
    with pytest.raises(NeuralDataError, match="after the recording ends"):
        fmri_design(np.zeros((100, 3)), stim, 10, tr=2.0, trim_start=0, trim_end=0)  # 20 s recorded, 40 s of words
    with pytest.raises(NeuralDataError, match="trimming"):
        fmri_design(np.zeros((100, 3)), stim, 10, tr=10.0, trim_start=5, trim_end=5)
    with pytest.raises(NeuralDataError, match="tr"):
        fmri_design(np.zeros((100, 3)), stim, 40)
    with pytest.raises(NeuralDataError, match="NaN"):
        fmri_design(np.full((100, 3), np.nan), stim, 40, tr=2.0)
    with pytest.raises(NeuralDataError, match="2 stimuli"):
        fmri_design(np.zeros((200, 3)), [stim, stim], [40], tr=2.0)
    a, b = _stim(50, name="a"), _stim(50, name="b")
    with pytest.raises(NeuralDataError, match="another order"):
        fmri_design(np.zeros((100, 3)), [b, a], [40, 40], tr=2.0, run_labels=["a", "b"])
    ds = NeuralDataset(np.random.default_rng(0).normal(size=(40, 2)), np.arange(40) * 2.0, ["a", "b"],
                       meta={"tr": 2.0})
    des = fmri_design(np.random.default_rng(1).normal(size=(100, 3)), stim, ds)
    with pytest.raises(NeuralDataError, match="volumes"):
        fmri_responses(NeuralDataset(np.zeros((33, 1)) + np.arange(33)[:, None], np.arange(33) * 2.0, ["a"]), des)
    bad = NeuralDataset(np.column_stack([np.arange(40.0), np.zeros(40)]), np.arange(40) * 2.0, ["a", "flat"])
    with pytest.raises(NeuralDataError, match="flat"):
        fmri_responses(bad, des)


def test_concatenate_runs_checks_channels():
    a = NeuralDataset(np.ones((5, 2)) * np.arange(5)[:, None], np.arange(5) * 2.0, ["a", "b"], meta={"tr": 2.0})
    b = NeuralDataset(np.ones((4, 2)), np.arange(4) * 2.0, ["a", "c"])
    with pytest.raises(NeuralDataError, match="different channels"):
        concatenate_runs([a, b])
    both = concatenate_runs([a, a], ["x", "y"])
    assert both.n_samples == 10 and list(both.runs[:6]) == ["x"] * 5 + ["y"]
    assert np.all(np.diff(both.times) > 0) and both.meta["tr"] == 2.0
