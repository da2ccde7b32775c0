"""The Brennan et al. (2016) recording and per-layer TR features for the fMRI benchmarks.

# replaced by load_brennan2016 at merge (brainlike.neural.brennan.load_brennan2016)
"""
from __future__ import annotations

import numpy as np

from brainlike import Stimulus
from brainlike.models.registry import shared_data_dir

TR = 2.0
ROIS = ("LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG")


def load():
    """``(data (27, 362, 6) raw BOLD, stimulus with volume 0 at 0 s, subject ids)``; s33 (all zeros) excluded."""
    try:  # the loader another branch adds
        from brainlike.neural.brennan import load_brennan2016  # type: ignore

        rec = load_brennan2016()
        stim = rec.stimulus
        shift = float(np.asarray(rec.volume_times)[0])
        if shift:
            stim = Stimulus(stim.words, stim.onsets - shift, stim.offsets - shift, stim.name)
        return np.asarray(rec.data), stim, list(getattr(rec, "subjects", range(rec.data.shape[0])))
    except ImportError:
        pass
    root = shared_data_dir() / "recordings" / "brennan2016-alice"
    data, ids = [], []
    for f in sorted((root / "alice_data_shared" / "6mm").glob("s*-timecourses.txt")):
        arr = np.loadtxt(f)
        if np.any(arr):  # s33 is all zeros
            data.append(arr)
            ids.append(f.name.split("-")[0])
    stim = Stimulus.from_textgrid(root / "alice_stim_shared" / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid")
    # volume i was acquired at TextGrid time 20 + 2 i s
    stim = Stimulus(stim.words, stim.onsets - 20.0, stim.offsets - 20.0, "alice")
    return np.stack(data), stim, ids


def layer_design(model: str, stim: Stimulus, n_volumes: int) -> np.ndarray:
    """``(n_layers, n_volumes, hidden)`` float32 undelayed Lanczos-downsampled features of every layer."""
    from brainlike.models import extract_features
    from brainlike.neural import fmri_design_layers

    feats = extract_features(model, stim)
    return fmri_design_layers(feats, stim, n_volumes, tr=TR, delays=(0,), trim_start=0, trim_end=0).X


def word_rate(stim: Stimulus, n_volumes: int) -> np.ndarray:
    """``(n_volumes, 1)`` word rate (Lanczos sum of ones at word onsets), undelayed."""
    from brainlike.neural import fmri_design

    return fmri_design(np.ones((len(stim), 1)), stim, n_volumes, tr=TR, delays=(0,), trim_start=0,
                       trim_end=0).X
