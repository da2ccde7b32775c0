"""Word-to-token alignment for any fast tokenizer (BPE, byte-level BPE, SentencePiece, WordPiece).

The words are joined by single spaces and tokenized once; each token's character span (the tokenizer's
offset mapping) is intersected with the words' character spans. This works the same way for every
tokenizer family, because it relies on character offsets rather than on the tokenizer's sub-word markers
(``Ġ``, ``▁``, ``##``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainlike.errors import ModelError


@dataclass(frozen=True)
class TokenizedWords:
    """A word sequence tokenized as one text.

    Attributes
    ----------
    input_ids : np.ndarray
        ``(n_tokens,)`` int64 token ids, without special tokens.
    word_start : np.ndarray
        ``(n_words,)`` index of each word's first token.
    word_end : np.ndarray
        ``(n_words,)`` one past each word's last token (``word_end > word_start``).
    prefix : tuple[int, ...]
        special token ids the tokenizer puts before a sequence (e.g. BOS, ``[CLS]``).
    suffix : tuple[int, ...]
        special token ids it puts after one (e.g. ``[SEP]``).
    """

    input_ids: np.ndarray
    word_start: np.ndarray
    word_end: np.ndarray
    prefix: tuple[int, ...]
    suffix: tuple[int, ...]

    @property
    def n_tokens(self) -> int:
        """The number of tokens."""
        return len(self.input_ids)

    def word_tokens(self, i: int) -> np.ndarray:
        """Token ids of word ``i``."""
        return self.input_ids[self.word_start[i]:self.word_end[i]]


def special_tokens(tokenizer) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The special token ids the tokenizer adds before and after a text (found by tokenizing a probe)."""
    probe = "hello world"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe)["input_ids"]
    for k in range(len(full) - len(plain) + 1):
        if full[k:k + len(plain)] == plain:
            return tuple(full[:k]), tuple(full[k + len(plain):])
    return (), ()


def tokenize_words(tokenizer, words: tuple[str, ...] | list[str]) -> TokenizedWords:
    """Tokenize ``words`` (joined by spaces) and map every word to its tokens.

    Raises
    ------
    ModelError
        the tokenizer is not a fast tokenizer, or a word received no token.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError("word alignment needs a fast tokenizer (return_offsets_mapping)")
    words = list(words)
    text = " ".join(words)
    starts = np.zeros(len(words), dtype=np.int64)
    pos = 0
    for i, w in enumerate(words):
        starts[i] = pos
        pos += len(w) + 1
    ends = starts + np.array([len(w) for w in words], dtype=np.int64)
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "longer than the maximum sequence length" warning: we window later
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    finally:
        hf_logging.set_verbosity(level)
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    n_words = len(words)
    first = np.full(n_words, -1, dtype=np.int64)
    last = np.full(n_words, -1, dtype=np.int64)
    for t, (s, e) in enumerate(offsets):
        if e <= s:
            continue
        # words overlapping [s, e): ends > s and starts < e
        lo = int(np.searchsorted(ends, s, side="right"))
        hi = int(np.searchsorted(starts, e, side="left"))
        for w in range(lo, hi):
            if first[w] < 0:
                first[w] = t
            last[w] = t
    missing = np.flatnonzero(first < 0)
    if missing.size:
        i = int(missing[0])
        raise ModelError(f"word {i + 1} {words[i]!r} got no token from the tokenizer")
    prefix, suffix = special_tokens(tokenizer)
    return TokenizedWords(ids, first, last + 1, prefix, suffix)
