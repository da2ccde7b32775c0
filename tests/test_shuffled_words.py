"""The shuffled-word baseline (brainlike.pipelines.shuffled_words): words permuted, features put back."""
from __future__ import annotations

import numpy as np
import pytest

from brainlike.models import Features, extract_features
from brainlike.pipelines.shuffled_words import shuffle_stimulus, shuffled_key, unshuffle_features
from brainlike.stimulus import Stimulus


def _stim(n=60):
    words = [f"w{i}" for i in range(n)]
    return Stimulus.from_text(" ".join(words), words_per_second=2.5, seed=0, name="s")


def test_shuffle_keeps_times_and_unshuffle_restores_every_word_position():
    stim = _stim()
    shuf, perm = shuffle_stimulus(stim, seed=4)
    assert sorted(perm.tolist()) == list(range(len(stim))) and not np.array_equal(perm, np.arange(len(stim)))
    np.testing.assert_array_equal(shuf.onsets, stim.onsets)
    assert [shuf.words[i] for i in range(len(stim))] == [stim.words[j] for j in perm]
    # features that name their word: position i of the shuffled reading carries the index of the word read there
    layers = np.stack([np.array([[int(w[1:]), k] for w in shuf.words], dtype=np.float32) for k in range(3)])
    out = unshuffle_features(Features(layers, "m", shuf.words), perm, stim, shuffled_key("m"))
    np.testing.assert_array_equal(out.layers[:, :, 0], np.tile(np.arange(len(stim)), (3, 1)))
    assert out.words == stim.words and out.model == "m@shuffled"
    assert np.array_equal(shuffle_stimulus(stim, seed=4)[1], perm)  # fixed seed


@pytest.mark.slow
def test_only_the_context_changes_on_a_real_model():
    """stories260k: the (context-free) embedding layer of every word is back at its own position; the deep
    layers, which read the context, change."""
    text = ("once upon a time there was a little girl named lily she loved to play outside in the park with "
            "her friends one day she saw a big red ball under a tree and she ran to get it")
    stim = Stimulus.from_text(text, words_per_second=2.5, seed=0)
    ref = extract_features("stories260k", stim, progress=False)
    shuf, perm = shuffle_stimulus(stim, seed=1)
    out = unshuffle_features(extract_features("stories260k", shuf, progress=False), perm, stim, "x@shuffled")
    emb_same = np.all(np.isclose(out.layers[0], ref.layers[0], atol=1e-5), axis=1)
    assert emb_same.mean() >= 0.9                                 # the first word's tokenisation may differ
    deep = np.abs(np.asarray(out.layers[-1]) - np.asarray(ref.layers[-1])).max(axis=1)
    assert (deep > 1e-3).mean() >= 0.9


@pytest.mark.slow
def test_spec_option_adds_the_baseline_beside_the_model(tmp_path):
    """``analyses.shuffled_words: true`` on 4 listeners of the shipped recording: '<model>@shuffled' is scored
    like a model, and its embedding layer, which reads no context, scores
    exactly like the model's own."""
    from brainlike.runner import run_spec

    out = run_spec({"output": str(tmp_path / "s"), "models": ["stories260k"],
                    "dataset": {"kind": "brennan2016", "subjects": ["s18", "s22", "s23", "s24"]},
                    "encoding": {"inner_splits": 2, "fmri": {"levels": ["group"], "depths": [0.0, 1.0],
                                                            "n_shifts": 10, "n_components": 5}},
                    "analyses": {"capability": None, "controls": False, "shuffled_words": True}}, progress=False)
    scores = out.store.read("fmri_scores")
    assert set(scores["model"]) == {"stories260k", "stories260k@shuffled"}
    s = scores.set_index(["model", "roi", "layer"])["r"]
    emb = s.xs(0, level="layer")
    np.testing.assert_allclose(emb["stories260k@shuffled"], emb["stories260k"], atol=0.02)
    assert not np.allclose(s.xs(5, level="layer")["stories260k@shuffled"], s.xs(5, level="layer")["stories260k"])
