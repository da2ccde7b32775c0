"""The shuffled-word baseline: the same model on the story's words in a shuffled order.

The words of the stimulus are permuted once (a fixed seed), the model reads that sequence, and every word's
feature vector is put back at the word's original position (so at its original onset and offset): each word
is represented by the same model, with the same lexical identity and timing, but its context is a random
draw of the story's other words. What a model scores beyond this baseline needs the words' order. The
baseline is a "model" of its own in every table, keyed ``<model key>@shuffled``.
"""
from __future__ import annotations

import numpy as np

from brainlike.models import Features
from brainlike.stimulus import Stimulus

__all__ = ["SHUFFLED_SUFFIX", "shuffle_stimulus", "shuffled_key", "unshuffle_features"]

SHUFFLED_SUFFIX = "@shuffled"


def shuffled_key(key: str) -> str:
    """Results label of the shuffled-word baseline of the model labelled ``key``."""
    return f"{key}{SHUFFLED_SUFFIX}"


def shuffle_stimulus(stim: Stimulus, seed: int = 0) -> tuple[Stimulus, np.ndarray]:
    """The stimulus with its words in a random order.

    (the times stay: word ``i`` of the result is original word ``perm[i]`` read at position ``i``).

    Returns
    -------
    shuffled : Stimulus
        Same onsets and offsets (seconds), words ``[stim.words[j] for j in perm]``.
    perm : ndarray (n_words,) int64
        The permutation (seeded with ``seed``).
    """
    perm = np.random.default_rng(seed).permutation(len(stim)).astype(np.int64)
    words = tuple(stim.words[j] for j in perm)
    return Stimulus(words, stim.onsets, stim.offsets, f"{stim.name} (words shuffled, seed {seed})"), perm


def unshuffle_features(feats: Features, perm: np.ndarray, stim: Stimulus, key: str) -> Features:
    """Features extracted on :func:`shuffle_stimulus`'s sequence, put back in the original word order.

    Parameters
    ----------
    feats : Features
        ``layers (n_layers, n_words, hidden)`` of the shuffled sequence (position ``i`` = word ``perm[i]``).
    perm : ndarray (n_words,) int
    stim : Stimulus
        The original stimulus (its words label the result).
    key : str
        The result's model label (e.g. :func:`shuffled_key` of the model's key).

    Returns
    -------
    Features
        In memory, ``layers[:, perm[i]] = feats.layers[:, i]``.
    """
    inv = np.argsort(perm)
    layers = np.ascontiguousarray(np.asarray(feats.layers)[:, inv])
    return Features(layers, key, tuple(stim.words), {**feats.options, "shuffled_words": True})
