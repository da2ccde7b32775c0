"""Word-locked alignment of ECoG-style recordings: one response per word and channel."""
from __future__ import annotations

import numpy as np

from brainlike.errors import NeuralDataError
from brainlike.neural.dataset import NeuralDataset
from brainlike.stimulus import Stimulus


def word_locked_responses(
    dataset: NeuralDataset,
    stimulus: Stimulus,
    window: tuple[float, float] = (0.0, 0.5),
    reduce: str = "mean",
    n_bins: int = 1,
) -> np.ndarray:
    """Response of every channel in a window after each word onset.

    Parameters
    ----------
    dataset : NeuralDataset
        recordings whose ``times`` are on the stimulus clock (seconds).
    stimulus : Stimulus
        the words, ``n_words`` onsets in seconds.
    window : tuple[float, float]
        ``(start, stop)`` in seconds relative to each word onset (default 0–500 ms).
    reduce : str
        ``"mean"`` (average of the samples in the window) or ``"max"``.
    n_bins : int
        split the window into this many equal bins and reduce within each (temporal features).

    Returns
    -------
    np.ndarray
        ``(n_words, n_channels)`` float32 when ``n_bins == 1``, else ``(n_words, n_bins, n_channels)``.

    Raises
    ------
    NeuralDataError
        a word's window falls outside the recording, or contains no sample.
    """
    start, stop = map(float, window)
    if not stop > start:
        raise NeuralDataError(f"window stop must be after start; got {window}")
    if reduce not in ("mean", "max"):
        raise NeuralDataError(f"reduce must be 'mean' or 'max', not {reduce!r}")
    t = dataset.times
    half = 0.5 / dataset.sfreq if dataset.n_samples > 1 else 0.0
    onsets = stimulus.onsets
    outside = np.flatnonzero((onsets + start < t[0] - half) | (onsets + stop > t[-1] + half))
    if outside.size:
        i = int(outside[0])
        raise NeuralDataError(
            f"{outside.size} word windows fall outside the recording ({t[0]:.3f}–{t[-1]:.3f} s); first: word "
            f"{i + 1} {stimulus.words[i]!r} at {onsets[i]:.3f} s with window {window}. Check that the stimulus "
            "and the recording share a clock.")
    edges = np.linspace(start, stop, n_bins + 1)
    # samples at times in [onset + lo, onset + hi); cumulative sums make each bin O(1)
    data = dataset.data.astype(np.float64)
    out = np.empty((len(onsets), n_bins, dataset.n_channels), dtype=np.float32)
    csum = np.vstack([np.zeros((1, data.shape[1])), np.cumsum(data, axis=0)]) if reduce == "mean" else None
    for b in range(n_bins):
        lo = np.searchsorted(t, onsets + edges[b], side="left")
        hi = np.searchsorted(t, onsets + edges[b + 1], side="left")
        empty = np.flatnonzero(hi <= lo)
        if empty.size:
            i = int(empty[0])
            raise NeuralDataError(
                f"word {i + 1} {stimulus.words[i]!r}: no sample in window bin {edges[b]:.3f}–{edges[b + 1]:.3f} s "
                f"(sampling rate {dataset.sfreq:.1f} Hz); widen the window or use fewer bins")
        if reduce == "mean":
            out[:, b] = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
        else:
            out[:, b] = np.stack([data[a:z].max(axis=0) for a, z in zip(lo, hi)])
    return out[:, 0] if n_bins == 1 else out
