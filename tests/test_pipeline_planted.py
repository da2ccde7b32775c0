"""End-to-end ground truth: responses planted from known layers of a real model must be traced back."""
import numpy as np
import pytest

from brainlike import Stimulus
from brainlike.analyses.layer_scores import best_layers, score_layers
from brainlike.models import extract_features

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_story_features(minilm, story_text):
    stim = Stimulus.from_text(story_text, name="aesop")
    return extract_features(minilm, stim, progress=False)


def test_planted_layers_recovered_with_minilm(minilm_story_features):
    """MiniLM-L6 (packaged on PyPI): every layer 1-6 planted in 8 channels at SNR 1, plus 40 noise channels."""
    feats = minilm_story_features
    rng = np.random.default_rng(7)
    planted = [1, 2, 3, 4, 5, 6]
    per_layer, n_noise, snr = 8, 40, 1.0  # SNR = signal variance / noise variance
    cols, truth = [], []
    for layer in planted:
        X = feats.layers[layer].astype(np.float64)
        X = (X - X.mean(0)) / (X.std(0) + 1e-8)
        for _ in range(per_layer):
            s = X @ rng.normal(size=X.shape[1])
            s = (s - s.mean()) / s.std()
            cols.append(s + rng.normal(size=len(s)) / np.sqrt(snr))
            truth.append(layer)
    for _ in range(n_noise):
        cols.append(rng.normal(size=feats.n_words))
        truth.append(-1)
    Y = np.stack(cols, axis=1).astype(np.float32)
    truth = np.array(truth)
    scores = score_layers(feats, Y, model="minilm-l6", progress=False)
    best = best_layers(scores)
    best = best.set_index("channel").loc[[f"ch{i:03d}" for i in range(Y.shape[1])]]
    driven = truth >= 0
    recovered = (best["best_layer"].to_numpy()[driven] == truth[driven]).mean()
    assert recovered >= 0.9, f"planted layer recovered for {recovered:.0%} of channels"
    # pure-noise channels: mean r (each channel at every layer) within 2 standard errors of 0
    noise_r = scores[scores["channel"].isin([f"ch{i:03d}" for i in np.flatnonzero(~driven)])]
    per_channel = noise_r.groupby("channel")["r"].mean()
    se = per_channel.std(ddof=1) / np.sqrt(len(per_channel))
    assert abs(per_channel.mean()) < 2 * se, (per_channel.mean(), se)
    # and driven channels are clearly predicted at their planted layer
    assert best["best_r"].to_numpy()[driven].min() > 0.3
