"""`brainlike run` on a BIDS iEEG dataset: the recording's own words, a planted layer, a hierarchy from coordinates.

The dataset is written with mne-bids (EDF, channels/electrodes sidecars) like the Podcast ECoG dataset
(ds005574): electrode G1 carries a 100 Hz high-gamma burst after every word whose amplitude follows a
random projection of one layer of stories260k's features of that word; G2 is noise.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import write_edf

from brainlike.data import default_story
from brainlike.errors import BrainlikeError
from brainlike.models import extract_features
from brainlike.pipelines.alignment import run_experiment
from brainlike.spec import parse_spec
from brainlike.stimulus import Stimulus

PLANTED_LAYER = 3
N_WORDS = 160


@pytest.fixture(scope="module")
def planted_bids(tmp_path_factory, shared_data):
    import mne
    import mne_bids

    root = tmp_path_factory.mktemp("bids-planted")
    words = default_story().split()[:N_WORDS]
    onsets = 1.0 + 0.45 * np.arange(N_WORDS)
    stim = Stimulus(tuple(words), onsets, onsets + 0.3, name="story")
    feats = extract_features("stories260k", stim, progress=False)
    x = feats.layers[PLANTED_LAYER].astype(np.float64)
    a = (x - x.mean(0)) @ np.random.default_rng(1).standard_normal(x.shape[1])
    a = (a - a.mean()) / a.std()
    sf, dur = 512, int(onsets[-1] + 3)
    t = np.arange(sf * dur) / sf
    gain = np.ones_like(t)
    for on, amp in zip(onsets, a):
        gain += 0.6 * amp * np.exp(-0.5 * ((t - on - 0.2) / 0.07) ** 2)
    rng = np.random.default_rng(0)
    data = rng.normal(0, 5e-6, (3, len(t)))
    data[0] += 30e-6 * np.clip(gain, 0.05, None) * np.sin(2 * np.pi * 100 * t)
    src = root.parent / "planted.edf"
    write_edf(src, data, sf, ["G1", "G2", "G3"])
    raw = mne.io.read_raw_edf(src, preload=False, verbose="error")
    raw.set_channel_types({"G1": "ecog", "G2": "ecog", "G3": "ecog"})
    pos = {"G1": [-0.050, 0.010, 0.020], "G2": [-0.055, 0.012, 0.021], "G3": [-0.040, 0.030, 0.010]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw.set_montage(mne.channels.make_dig_montage({k: np.array(v) for k, v in pos.items()},
                                                      coord_frame="mni_tal"), on_missing="ignore")
        mne_bids.write_raw_bids(raw, mne_bids.BIDSPath(subject="01", task="story", datatype="ieeg", root=root),
                                overwrite=True, verbose="error")
    (root / "stimuli").mkdir()
    pd.DataFrame({"word": words, "start": onsets, "end": onsets + 0.3}).to_csv(root / "stimuli" / "words.csv",
                                                                             index=False)
    return root


@pytest.mark.slow
def test_run_spec_on_bids_ieeg_recovers_planted_layer(planted_bids, tmp_path):
    spec = parse_spec({
        "name": "bids", "output": str(tmp_path / "out"), "seed": 0, "models": ["stories260k"],
        "stimulus": {"source": "builtin:aesop", "n_words": 20},  # ignored: the recording brings its words
        "dataset": {"kind": "bids-ieeg", "path": str(planted_bids), "subjects": ["01"], "task": "story",
                    "stimulus": "stimuli/words.csv", "hierarchy": "distance:-50,10,20"},
        "encoding": {"window": [0.0, 0.5], "n_permutations": 100, "inner_splits": 3},
        "analyses": {"capability": None}, "report": False,
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_experiment(spec, progress=False)
    scores = res.store.read("scores")
    assert set(scores["channel"]) == {"G1", "G2", "G3"} and scores["n_samples"].iloc[0] == N_WORDS
    g1 = scores[scores["channel"] == "G1"].set_index("layer")["r"]
    assert g1.max() > 0.4 and abs(int(g1.idxmax()) - PLANTED_LAYER) <= 1
    assert scores[scores["channel"] != "G1"]["r"].max() < 0.25
    sig = res.tables["significance"].set_index("channel")["significant"]
    assert sig["G1"] and not sig["G2"] and not sig["G3"]
    channels = res.store.read("channels").set_index("channel")
    np.testing.assert_allclose(channels.loc[["G1", "G2"], "hierarchy"], [0.0, np.sqrt(30.0)], atol=1e-5)


def test_spec_rejects_incomplete_bids_datasets():
    base = {"models": ["stories260k"]}
    with pytest.raises(BrainlikeError, match="needs dataset.path"):
        parse_spec({**base, "dataset": {"kind": "bids-ieeg", "subjects": ["01"]}})
    with pytest.raises(BrainlikeError, match="list of BIDS subject labels"):
        parse_spec({**base, "dataset": {"kind": "bids-ieeg", "path": "/data", "subjects": 2}})
    # fMRI datasets run through `brainlike run` too (tests/test_runner.py); their sections are validated the same way
    with pytest.raises(BrainlikeError, match="path"):
        parse_spec({**base, "dataset": {"kind": "bids-fmri", "subjects": ["01"]}})
    assert parse_spec({**base, "dataset": {"kind": "bids-fmri", "path": "/data", "subjects": ["01"]}}).dataset_kind \
        == "bids-fmri"


def test_context_depths_pick_layers():
    ctx = parse_spec({"models": ["stories260k"], "analyses": {"context": {"windows": [0, 8],
                                                                         "depths": [0, 0.5, 1.0]}}}).analyses.context
    assert ctx.layers(31) == (0, 15, 30) and ctx.layers(6) == (0, 2, 5)  # round(0.5 * 5) = 2 (banker's)
    assert parse_spec({"models": ["stories260k"],
                       "analyses": {"context": {}}}).analyses.context.layers(4) == (0, 1, 2, 3)
    with pytest.raises(BrainlikeError, match="relative depths in"):
        parse_spec({"models": ["stories260k"], "analyses": {"context": {"depths": [1.5]}}})
