"""Word-to-token alignment on the three tokenizer families of the packaged models."""
import numpy as np
import pytest

from brainlike.errors import ModelError
from brainlike.models.alignment import tokenize_words

WORDS = ["Once", "upon", "a", "time,", "the", "unbelievably", "grumpy", "cat's", "naïve", "owner", "said:", '"hello!"']


def _check_alignment(tokenizer, words):
    tw = tokenize_words(tokenizer, words)
    assert np.all(tw.word_end > tw.word_start)
    assert np.all(np.diff(tw.word_start) >= 0)
    assert tw.word_end[-1] <= tw.n_tokens
    for i, w in enumerate(words):
        decoded = tokenizer.decode(tw.word_tokens(i).tolist()).strip()
        norm = lambda s: s.replace(" ", "").replace("▁", "").lower()  # noqa: E731
        # the word's tokens decode back to the word (WordPiece lowercases and may strip accents)
        assert norm(decoded) in {norm(w), norm(w).replace("ï", "i")}, (w, decoded)
    return tw


def test_byte_level_bpe_smollm2(smollm2):
    tw = _check_alignment(smollm2.tokenizer, WORDS)
    assert tw.prefix == () and tw.suffix == ()  # transformers >= 5: no BOS for this tokenizer


def test_wordpiece_minilm(minilm):
    tw = _check_alignment(minilm.tokenizer, WORDS)
    assert tw.prefix == (minilm.tokenizer.cls_token_id,) and tw.suffix == (minilm.tokenizer.sep_token_id,)
    # "unbelievably" is split into several WordPiece pieces, all assigned to that word
    assert tw.word_end[5] - tw.word_start[5] >= 2


def test_sentencepiece_bpe_stories260k(stories260k):
    tw = _check_alignment(stories260k.tokenizer, WORDS)
    assert len(tw.prefix) == 1  # BOS


def test_slow_tokenizer_rejected():
    class Slow:
        is_fast = False

    with pytest.raises(ModelError, match="fast tokenizer"):
        tokenize_words(Slow(), ["a"])
