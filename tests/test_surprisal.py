"""Per-word surprisal and entropy (brainlike.models.surprisal) against a direct forward pass."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from brainlike.errors import BrainlikeError
from brainlike.models.surprisal import uses_bos, word_predictions

pytestmark = pytest.mark.usefixtures("single_thread")

SENTENCES = [
    "Once upon a time there was a little girl named Lily .",
    "She loved to play outside in the sunshine with her dog .",
    "One day she found a shiny extraordinary rock near the river .",
]


def _words_groups(sentences=SENTENCES):
    words, groups = [], []
    for i, s in enumerate(sentences):
        for w in s.split():
            words.append(w)
            groups.append(i)
    return words, groups


def direct(lm, words, bos):
    """Reference: one forward pass over the whole text, ``torch.log_softmax``, words mapped by offsets."""
    text = " ".join(words)
    enc = lm.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = enc["offset_mapping"]
    prefix = [lm.tokenizer.bos_token_id] if bos else []
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([prefix + ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    ent = -(logp.exp() * logp).sum(-1) / math.log(2)
    shift = len(prefix) - 1  # logits row predicting text token t
    tok_s = np.array([-logp[t + shift, ids[t]].item() / math.log(2) if t + shift >= 0 else np.nan
                      for t in range(len(ids))])
    tok_h = np.array([ent[t + shift].item() if t + shift >= 0 else np.nan for t in range(len(ids))])
    ends = np.cumsum([len(w) + 1 for w in words]) - 1  # character end of each word
    owner = [int(np.searchsorted(ends, e, side="left")) for _, e in offsets]  # first word ending at/after it
    surprisal, entropy, n_tok = [], [], []
    for i in range(len(words)):
        toks = [t for t in range(len(ids)) if owner[t] == i]
        surprisal.append(tok_s[toks].sum())
        entropy.append(tok_h[toks[0]])
        n_tok.append(len(toks))
    return np.array(surprisal), np.array(entropy), np.array(n_tok)


def test_continuous_matches_direct_forward_pass(stories260k, tmp_path):
    words, groups = _words_groups()
    assert uses_bos(stories260k)  # Llama-2 SentencePiece: <s> before every text
    pred = word_predictions(stories260k, words, groups=groups, cache_dir=tmp_path)
    s, h, n = direct(stories260k, words, bos=True)
    assert pred.bos is True and pred.model == "stories260k"
    assert (pred.n_tokens > 1).any(), "the test needs a multi-token word"
    assert pred.n_tokens.sum() == len(stories260k.tokenizer(" ".join(words), add_special_tokens=False)["input_ids"])
    np.testing.assert_array_equal(pred.n_tokens, n)
    np.testing.assert_allclose(pred.surprisal, s, atol=1e-5, rtol=0)
    np.testing.assert_allclose(pred.entropy, h, atol=1e-5, rtol=0)
    assert pred.surprisal.dtype == np.float64 and np.isfinite(pred.surprisal).all()


def test_reset_equals_each_sentence_alone_and_its_direct_pass(stories260k, tmp_path):
    words, groups = _words_groups()
    pred = word_predictions(stories260k, words, groups=groups, context="reset", cache_dir=tmp_path)
    g = np.asarray(groups)
    for i, sentence in enumerate(SENTENCES):
        alone = word_predictions(stories260k, sentence.split(), use_cache=False)
        np.testing.assert_allclose(pred.surprisal[g == i], alone.surprisal, atol=1e-5, rtol=0)
        np.testing.assert_allclose(pred.entropy[g == i], alone.entropy, atol=1e-5, rtol=0)
        s, h, _ = direct(stories260k, sentence.split(), bos=True)
        np.testing.assert_allclose(pred.surprisal[g == i], s, atol=1e-5, rtol=0)
        np.testing.assert_allclose(pred.entropy[g == i], h, atol=1e-5, rtol=0)
    cont = word_predictions(stories260k, words, groups=groups, cache_dir=tmp_path)
    # later sentences are predicted differently with and without the preceding story
    assert not np.allclose(pred.surprisal[g == 2], cont.surprisal[g == 2], atol=1e-3)
    np.testing.assert_allclose(pred.surprisal[g == 0], cont.surprisal[g == 0], atol=1e-5)


def test_without_bos_the_first_word_is_nan_and_the_rest_match(stories260k):
    words, groups = _words_groups()
    pred = word_predictions(stories260k, words, groups=groups, context="reset", use_cache=False, bos=False)
    g = np.asarray(groups)
    first = np.r_[True, g[1:] != g[:-1]]
    assert np.isnan(pred.surprisal[first]).all() and np.isnan(pred.entropy[first]).all()
    assert np.isfinite(pred.surprisal[~first]).all()
    assert pred.valid.sum() == len(words) - len(SENTENCES)
    for i, sentence in enumerate(SENTENCES):
        s, h, _ = direct(stories260k, sentence.split(), bos=False)
        np.testing.assert_allclose(pred.surprisal[g == i][1:], s[1:], atol=1e-5, rtol=0)
        np.testing.assert_allclose(pred.entropy[g == i][1:], h[1:], atol=1e-5, rtol=0)


def test_sliding_windows_score_each_token_with_its_window(stories260k):
    words, _ = _words_groups()
    window = 24
    pred = word_predictions(stories260k, words, window=window, use_cache=False)
    full = word_predictions(stories260k, words, window=512, use_cache=False)
    n_first = int(np.searchsorted(np.cumsum(full.n_tokens), window - 1, side="right"))  # words inside window 1
    assert 0 < n_first < len(words)
    np.testing.assert_allclose(pred.surprisal[:n_first], full.surprisal[:n_first], atol=1e-5)
    assert np.isfinite(pred.surprisal).all()
    # the last word: scored from the last window, i.e. BOS + the window - 1 tokens before its last token
    ids = stories260k.tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
    k = int(pred.n_tokens[-1])
    ctx = [stories260k.tokenizer.bos_token_id] + ids[len(ids) - (window - 1):]
    with torch.no_grad():
        logp = torch.log_softmax(stories260k.model(input_ids=torch.tensor([ctx])).logits[0].float(), -1)
    last = -sum(logp[len(ctx) - 1 - j - 1, ctx[len(ctx) - 1 - j]].item() for j in range(k)) / math.log(2)
    assert pred.surprisal[-1] == pytest.approx(last, abs=1e-5)
    assert not np.isclose(pred.surprisal[-1], full.surprisal[-1], atol=1e-3)  # less context changes it


def test_cache_hit_returns_identical_values(stories260k, tmp_path):
    words, groups = _words_groups()
    a = word_predictions(stories260k, words, groups=groups, context="reset", cache_dir=tmp_path)
    files = list((tmp_path / "surprisal").glob("*/predictions.parquet"))
    assert len(files) == 1
    b = word_predictions(stories260k, words, groups=groups, context="reset", cache_dir=tmp_path)
    np.testing.assert_array_equal(a.surprisal, b.surprisal)
    np.testing.assert_array_equal(a.entropy, b.entropy)
    np.testing.assert_array_equal(a.n_tokens, b.n_tokens)
    word_predictions(stories260k, words, groups=groups, context="continuous", cache_dir=tmp_path)
    assert len(list((tmp_path / "surprisal").glob("*/predictions.parquet"))) == 2  # other options: other key


def test_errors_name_the_problem(stories260k):
    encoder = dataclasses.replace(stories260k, kind="encoder")
    with pytest.raises(BrainlikeError, match="stories260k.*not a causal LM"):
        word_predictions(encoder, ["a", "b"], use_cache=False)
    with pytest.raises(BrainlikeError, match="groups"):
        word_predictions(stories260k, ["a", "b"], groups=[0], use_cache=False)
    with pytest.raises(BrainlikeError, match="groups"):
        word_predictions(stories260k, ["a", "b"], context="reset", use_cache=False)
