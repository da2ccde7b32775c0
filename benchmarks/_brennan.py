"""The Brennan et al. (2016) recording and per-layer TR features for the fMRI benchmarks.

The recording comes from :func:`brainlike.neural.brennan.load_brennan2016` (the copy shipped in the package).
"""
from __future__ import annotations

import numpy as np

from brainlike import Stimulus

TR = 2.0
ROIS = ("LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG")


def load():
    """``(data (27, 362, 6) raw BOLD, stimulus with volume 0 at 0 s, subject ids)``; s33 (all zeros) excluded."""
    from brainlike.neural.brennan import load_brennan2016

    rec = load_brennan2016()
    return np.asarray(rec.data), rec.stimulus_on_volume_clock(), list(rec.subjects)


def layer_design(model: str, stim: Stimulus, n_volumes: int) -> np.ndarray:
    """``(n_layers, n_volumes, hidden)`` float32 undelayed Lanczos-downsampled features of every layer."""
    from brainlike.models import extract_features
    from brainlike.neural import fmri_design_layers

    feats = extract_features(model, stim)
    return fmri_design_layers(feats, stim, n_volumes, tr=TR, delays=(0,), trim_start=0, trim_end=0).X


def word_rate(stim: Stimulus, n_volumes: int) -> np.ndarray:
    """``(n_volumes, 1)`` word rate at Brennan's TR (:func:`brainlike.pipelines.alignment_fmri.word_rate`)."""
    from brainlike.pipelines.alignment_fmri import word_rate as rate

    return rate(stim, n_volumes, TR)
