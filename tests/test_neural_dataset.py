import numpy as np
import pytest

from brainlike import Stimulus
from brainlike.errors import NeuralDataError
from brainlike.neural import NeuralDataset, word_locked_responses


def _ds(n=1000, c=3, sfreq=100.0, data=None):
    t = np.arange(n) / sfreq
    data = np.random.default_rng(0).normal(size=(n, c)) if data is None else data
    return NeuralDataset(data, t, [f"e{i}" for i in range(c)], regions=["STG", "STG", "IFG"][:c])


def test_word_locked_mean_matches_direct_average():
    ds = _ds()
    stim = Stimulus.from_text("one two three four five", words_per_second=1.0, start=1.0)
    out = word_locked_responses(ds, stim, window=(0.0, 0.5))
    assert out.shape == (5, 3) and out.dtype == np.float32
    for i, on in enumerate(stim.onsets):
        sel = (ds.times >= on - 1e-9) & (ds.times < on + 0.5 - 1e-9)
        np.testing.assert_allclose(out[i], ds.data[sel].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_word_locked_bins_and_planted_latency():
    n, sf = 2000, 100.0
    data = np.zeros((n, 1))
    stim = Stimulus.from_text("a b c d e f", words_per_second=1.0, start=2.0)
    for on in stim.onsets:  # response 200-300 ms after each onset
        data[int(round((on + 0.2) * sf)):int(round((on + 0.3) * sf)), 0] = 1.0
    ds = NeuralDataset(data, np.arange(n) / sf, ["x"])
    out = word_locked_responses(ds, stim, window=(0.0, 0.5), n_bins=5)
    assert out.shape == (6, 5, 1)
    np.testing.assert_allclose(out[:, :, 0], np.tile([0, 0, 1, 0, 0], (6, 1)), atol=1e-6)


def test_window_outside_recording_is_an_error():
    ds = _ds(n=300)
    stim = Stimulus.from_text("a b c d e f g h i j", words_per_second=2.0, start=0.5)
    with pytest.raises(NeuralDataError, match="outside the recording"):
        word_locked_responses(ds, stim)


def test_dataset_validation_and_bad_channels():
    with pytest.raises(NeuralDataError, match="channel names"):
        NeuralDataset(np.zeros((10, 2)), np.arange(10.0), ["a"])
    with pytest.raises(NeuralDataError, match="increase"):
        NeuralDataset(np.zeros((3, 1)), [0.0, 2.0, 1.0], ["a"])
    data = np.random.default_rng(1).normal(size=(50, 3))
    data[5, 1] = np.nan
    data[:, 2] = 4.0
    ds = NeuralDataset(data, np.arange(50.0), ["a", "b", "c"])
    clean, dropped = ds.drop_bad_channels()
    assert dropped == ["b", "c"] and clean.channels == ["a"]
