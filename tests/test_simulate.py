"""Ground-truth simulator: determinism, truth table, SNR semantics, and planted-layer recovery."""
import numpy as np
import pandas as pd
import pytest

from brainlike import Stimulus
from brainlike.encoding import cross_validated_encoding
from brainlike.errors import NeuralDataError
from brainlike.neural import (
    RegionSpec,
    default_regions,
    fmri_design,
    fmri_design_layers,
    fmri_responses,
    simulate_ecog,
    simulate_fmri,
    word_locked_responses,
)


def layer_walk(n_layers: int, n_words: int, n_features: int, rho: float = 0.8, seed: int = 0) -> np.ndarray:
    """Synthetic layer features with a realistic layer-to-layer correlation: a random walk over layers,
    ``corr(layer l, layer l+1) = rho`` for every feature. Shape ``(n_layers, n_words, n_features)`` float32."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_layers, n_words, n_features), dtype=np.float32)
    out[0] = rng.standard_normal((n_words, n_features))
    for layer in range(1, n_layers):
        out[layer] = rho * out[layer - 1] + np.sqrt(1 - rho ** 2) * rng.standard_normal((n_words, n_features))
    return out


def stories(n_runs: int, n_words: int, seed: int = 0) -> list[Stimulus]:
    return [Stimulus.from_text(" ".join(["w"] * n_words), words_per_second=2.5, start=1.0, jitter=0.3,
                               seed=seed + i, name=f"story{i}") for i in range(n_runs)]


@pytest.fixture(scope="module")
def fmri_sim():
    stims = stories(4, 600)
    feats = layer_walk(6, sum(len(s) for s in stims), 8, rho=0.8, seed=1)
    sim = simulate_fmri(stims, feats, regions=default_regions(6, n_channels=20, snr=(0.3, 1.5)), tr=2.0, seed=3)
    return stims, feats, sim


def test_simulation_is_deterministic_and_seeded():
    stims = stories(1, 80)
    feats = layer_walk(4, 80, 5)
    a = simulate_ecog(stims[0], feats, seed=7, regions=default_regions(4, n_channels=3))
    b = simulate_ecog(stims[0], feats, seed=7, regions=default_regions(4, n_channels=3))
    c = simulate_ecog(stims[0], feats, seed=8, regions=default_regions(4, n_channels=3))
    np.testing.assert_array_equal(a.dataset.data, b.dataset.data)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not np.allclose(a.dataset.data, c.dataset.data)
    f1 = simulate_fmri(stims, feats, seed=1, regions=default_regions(4, n_channels=3))
    f2 = simulate_fmri(stims, feats, seed=1, regions=default_regions(4, n_channels=3))
    np.testing.assert_array_equal(f1.dataset.data, f2.dataset.data)


def test_truth_table_and_dataset_metadata(fmri_sim):
    stims, feats, sim = fmri_sim
    ds, truth = sim.dataset, sim.truth
    assert ds.data.dtype == np.float32 and ds.modality == "fmri" and ds.meta["tr"] == 2.0
    assert list(truth["channel"]) == ds.channels and ds.coords.shape == (ds.n_channels, 3)
    assert set(truth["region"]) == {"HG", "pSTG", "aSTG", "IFG", "AG", "OCC"}
    assert list(ds.regions) == list(truth["region"])
    by = truth.groupby("region").first()
    assert by.loc["pSTG", "layers"] == (1,) and by.loc["aSTG", "layers"] == (2,) and by.loc["IFG", "layers"] == (4,)
    assert by.loc["AG", "layers"] == (2, 4) and by.loc["AG", "layer_weights"] == (0.5, 0.5)
    assert by.loc["HG", "kind"] == "acoustic" and by.loc["HG", "best_layer"] == -1
    assert bool(by.loc["OCC", "is_noise"]) and by.loc["OCC", "snr"] == 0.0 and np.isnan(by.loc["OCC", "hierarchy"])
    driven = truth[~truth["is_noise"]]
    assert driven["snr"].between(0.3, 1.5).all()
    assert np.all(np.diff(by.loc[["HG", "pSTG", "aSTG", "IFG"], "hierarchy"].to_numpy()) > 0)
    # fake coordinates cluster around each region's centre (mm)
    ifg = ds.coords[truth["region"].to_numpy() == "IFG"]
    assert np.all(np.abs(ifg.mean(0) - np.array([-48.0, 24.0, 10.0])) < 4)
    # runs: one label per story, contiguous, times increasing
    assert list(dict.fromkeys(ds.runs)) == [s.name for s in stims]
    assert np.all(np.diff(ds.times) > 0)
    assert sim.drives.shape == (sum(len(s) for s in stims), ds.n_channels)
    assert sim.projections["IFG-001"].shape == (1, 8) and sim.projections["AG-001"].shape == (2, 8)


def test_snr_is_the_variance_ratio_of_signal_to_noise():
    """data = unit-variance HRF-convolved drive + noise of variance 1 / snr, per channel."""
    from nilearn.glm.first_level import glover_hrf

    stims = stories(1, 500)
    feats = layer_walk(3, 500, 6)
    regs = [RegionSpec("A", "layer", (1,), n_channels=30, snr=(0.25, 4.0))]
    sim = simulate_fmri(stims, feats, regions=regs, tr=2.0, seed=0)
    h = glover_hrf(1.0, oversampling=100, time_length=32.0)
    lag = sim.dataset.times[:, None] - stims[0].onsets[None, :]
    signal = np.interp(lag, np.arange(len(h)) / 100, h, left=0, right=0) @ sim.drives
    signal = (signal - signal.mean(0)) / signal.std(0)
    noise = sim.dataset.data - signal
    snr = sim.truth["snr"].to_numpy()
    np.testing.assert_allclose(noise.var(0), 1 / snr, rtol=1e-3)
    r = np.array([np.corrcoef(signal[:, i], sim.dataset.data[:, i])[0, 1] for i in range(30)])
    assert abs(np.mean(r - np.sqrt(snr / (1 + snr)))) < 0.03


def test_fmri_pipeline_recovers_planted_layers(fmri_sim):
    """fmri design → cross-validated ridge per layer → best layer per voxel = the planted layer (>= 90 %)."""
    stims, feats, sim = fmri_sim
    design = fmri_design_layers(feats, stims, sim.dataset)
    Y = fmri_responses(sim.dataset, design)
    truth = sim.truth
    single = truth["kind"].eq("layer").to_numpy()
    scores = np.stack([
        cross_validated_encoding(design.layer(k), Y[:, single], n_splits=4, inner_splits=3, groups=design.runs).scores
        for k in range(feats.shape[0])])
    best = scores.argmax(axis=0)
    planted = truth.loc[single, "best_layer"].to_numpy()
    assert (best == planted).mean() >= 0.9
    # the layer profile peaks at the planted layer and falls off with distance
    for region, layer in (("pSTG", 1), ("aSTG", 2), ("IFG", 4)):
        prof = scores[:, truth.loc[single, "region"].to_numpy() == region].mean(axis=1)
        assert prof.argmax() == layer and prof[layer] > 0.3


def test_acoustic_channels_follow_word_rate(fmri_sim):
    stims, feats, sim = fmri_sim
    rate = fmri_design([np.ones((len(s), 1)) for s in stims], stims, sim.dataset)  # Lanczos sum = words/TR
    Y = fmri_responses(sim.dataset, rate)
    res = cross_validated_encoding(rate.X, Y, n_splits=4, inner_splits=3, groups=rate.runs)
    region = np.array(sim.dataset.regions)
    assert res.scores[region == "HG"].mean() > 0.3
    assert abs(res.scores[region == "OCC"].mean()) < 0.1


def test_ecog_word_locked_recovery():
    stim = stories(1, 600, seed=5)[0]
    feats = layer_walk(5, 600, 8, rho=0.8, seed=2)
    sim = simulate_ecog(stim, feats, regions=default_regions(5, n_channels=6, snr=(0.5, 2.0)), seed=4, sfreq=100.0)
    ds = sim.dataset
    assert ds.modality == "ecog" and abs(ds.sfreq - 100.0) < 1e-6 and ds.times[-1] >= stim.offsets[-1]
    resp = word_locked_responses(ds, stim, window=(0.0, 0.5))
    truth = sim.truth
    single = truth["kind"].eq("layer").to_numpy()
    scores = np.stack([cross_validated_encoding(feats[k], resp[:, single], n_splits=5).scores for k in range(5)])
    assert (scores.argmax(0) == truth.loc[single, "best_layer"].to_numpy()).mean() >= 0.9
    # later regions respond later (latency grows with the hierarchy)
    binned = word_locked_responses(ds, stim, window=(0.0, 0.5), n_bins=10)
    drive = sim.drives
    peak = {}
    for region in ("pSTG", "IFG"):
        cols = np.flatnonzero(truth["region"].to_numpy() == region)
        cov = np.array([[np.corrcoef(binned[:, b, c], drive[:, c])[0, 1] for b in range(10)] for c in cols])
        peak[region] = cov.mean(0).argmax()
    assert peak["IFG"] > peak["pSTG"]


def test_simulator_input_errors():
    stims = stories(2, 50)
    feats = layer_walk(4, 100, 3)
    with pytest.raises(NeuralDataError, match="90 words but the stimuli have 100"):
        simulate_fmri(stims, feats[:, :90])
    with pytest.raises(NeuralDataError, match="layer"):
        simulate_fmri(stims, feats, regions=[RegionSpec("X", "layer", (7,), n_channels=2)])
    with pytest.raises(NeuralDataError, match="after the run ends"):
        simulate_fmri(stims, feats, n_trs=5)
    with pytest.raises(NeuralDataError, match="kind"):
        RegionSpec("X", "visual")
    with pytest.raises(NeuralDataError, match="exactly one"):
        RegionSpec("X", "layer", (1, 2))
    with pytest.raises(NeuralDataError, match="n_layers, n_words"):
        simulate_ecog(stims[0], np.zeros((50, 3)))
    with pytest.raises(NeuralDataError, match="NaN"):
        simulate_ecog(stims[0], np.full((2, 50, 3), np.nan))
