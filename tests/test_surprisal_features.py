"""Surprisal as a feature space of an alignment spec and as a control band (fMRI)."""
from __future__ import annotations

import numpy as np
import pytest

from brainlike.runner import run_spec

pytestmark = pytest.mark.usefixtures("single_thread")


def test_model_spec_key_and_feature_kind():
    from brainlike.spec import ModelSpec

    assert ModelSpec(name="smollm2-135m", features="surprisal").key == "smollm2-135m/surprisal"
    assert ModelSpec(name="smollm2-135m", features="surprisal", label="s").key == "s"
    assert ModelSpec(name="smollm2-135m").key == "smollm2-135m"


def test_surprisal_features_are_one_layer_of_two_columns(stories260k):
    from brainlike.models.surprisal import surprisal_features, word_predictions
    from brainlike.stimulus import Stimulus

    stim = Stimulus.from_text("Once upon a time there was a little girl . She liked to play outside .")
    f = surprisal_features(stories260k, stim, "k", cache_dir=None)
    pred = word_predictions(stories260k, stim.words, use_cache=False)
    assert f.layers.shape == (1, len(stim), 2) and f.model == "k"
    np.testing.assert_allclose(f.layers[0], pred.matrix(), rtol=1e-6)
    assert f.options["n_imputed"] == 0


@pytest.mark.slow
def test_fmri_spec_with_a_surprisal_feature_space_and_control_band(tmp_path, shared_data):
    """The surprisal feature space runs through the fMRI branch (Lanczos design like any feature) and the
    control band grows by the two surprisal columns."""
    out = run_spec({"output": str(tmp_path / "sim"), "models": [{"name": "stories260k", "features": "surprisal"}],
                    "stimulus": {"n_words": 400},
                    "dataset": {"kind": "simulated-fmri", "subjects": 2, "channels_per_region": 1,
                                "planted": {"stories260k/surprisal": 1.0}, "snr": [2.0, 2.0]},
                    "encoding": {"inner_splits": 3, "fmri": {"levels": ["group"], "n_shifts": 20,
                                                             "n_components": None, "min_shift": 15}},
                    "analyses": {"capability": None, "surprisal_control": "stories260k"}, "report": False},
                   progress=False)
    scores = out.store.read("fmri_scores")
    assert set(scores["model"]) == {"stories260k/surprisal", "low-level controls"}
    s = scores[scores["model"] == "stories260k/surprisal"]
    assert (s["layer"] == 0).all() and s["r"].max() > 0.3  # planted from the two surprisal columns
    vp = out.store.read("fmri_variance_partition")
    assert len(vp) == 6 and np.isfinite(vp["r2_controls"]).all()


def test_control_band_gains_the_resampled_surprisal_columns():
    from brainlike.neural.fmri import fmri_design
    from brainlike.pipelines.alignment_fmri import control_design
    from brainlike.stimulus import Stimulus

    rng = np.random.default_rng(0)
    stim = Stimulus.from_words([f"w{i}" for i in range(120)], np.arange(120) * 0.4)
    wc = rng.gamma(2.0, 2.0, (120, 2))
    plain = control_design([], stim, 30, 2.0)
    band = control_design([], stim, 30, 2.0, wc)
    assert band.shape == (1, 30, plain.shape[2] + 2)
    np.testing.assert_allclose(band[0, :, :plain.shape[2]], plain[0])
    ref = fmri_design(wc, stim, 30, tr=2.0, delays=(0,), trim_start=0, trim_end=0).X
    np.testing.assert_allclose(band[0, :, plain.shape[2]:], ref, rtol=1e-6)
