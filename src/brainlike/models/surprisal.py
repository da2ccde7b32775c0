"""Next-word predictions of a causal LM: per-word surprisal and entropy (bits), cached.

A word's **surprisal** is ``-log2 p(word | preceding text)``, the sum of its tokens' surprisals, each
token scored given every token before it (the word's earlier tokens included). A token that covers only
the space before a word (SentencePiece writes ``" ."`` as ``"▁"`` + ``"."``) counts for that word, so the
words' surprisals add up to the whole text's. Its **entropy** is the
entropy (bits) of the model's next-token distribution at the position just before the word's first
token, i.e. how uncertain the model was before the word began.

Tokenization: the words of a context are joined by single spaces and tokenized once
(:func:`brainlike.models.alignment.tokenize_words`, character offsets), exactly as the hidden-state
features are.

The first word of a context (the rule)
--------------------------------------
A BOS token is put before every forward pass when the tokenizer puts one before a text by default
(``tokenizer("...")`` starts with ``bos_token_id``; the same test as
:func:`brainlike.analyses.capability.bits_per_byte`), because that is how such a model was trained.
Then the first word is predicted from BOS alone. Otherwise the first token of a context has nothing to
be predicted from: the **first word of every context gets NaN** surprisal and NaN entropy, and
downstream code drops those rows (and says how many). For the registered models:

============== ============================= ==========================================
model          tokenizer                     first word of a context
============== ============================= ==========================================
stories260k    Llama-2 SentencePiece, ``<s>``  BOS prepended (scored)
smollm2-135m   GPT-2-style BPE, no BOS added   NaN (no BOS: SmolLM2 does not add one)
gemma3-270m    Gemma SentencePiece, ``<bos>`` BOS prepended (scored)
============== ============================= ==========================================

Contexts: ``context="continuous"`` scores every word given all preceding words (the whole list is one
context); when the text is longer than ``window`` tokens it is scored in sliding windows that overlap by
half a window (:func:`brainlike.models.hooks.window_plan`, as the hidden states are), and every token is
scored from the window where it has the most preceding context (at least half a window after the first).
A window that starts inside the text gets the BOS token too when the model uses one (as in feature
extraction); without BOS its first token is context only. ``context="reset"`` restarts the context at
every change of ``groups`` (sentence/item ids): each run of equal consecutive ids is tokenized and scored
on its own, exactly as if that sentence were the whole input.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from brainlike.cache import CacheEntry, cache_key, default_cache_dir
from brainlike.errors import BrainlikeError
from brainlike.fileio import atomic_write
from brainlike.models.alignment import TokenizedWords, tokenize_words
from brainlike.models.features import Features
from brainlike.models.hooks import window_plan
from brainlike.models.loading import LoadedModel, load_model
from brainlike.stimulus import Stimulus

#: Bumped whenever the computation changes, so old cache entries are not reused.
SURPRISAL_FORMAT_VERSION = 1

#: Column names of the feature space made from the predictions (one layer, these two columns).
FEATURE_COLUMNS = ("surprisal", "entropy")

__all__ = ["FEATURE_COLUMNS", "WordPredictions", "surprisal_features", "uses_bos", "word_predictions"]

_LN2 = math.log(2.0)
_ROWS = 64  # positions per float64 log-softmax (bounds memory for large vocabularies)


@dataclass(frozen=True)
class WordPredictions:
    """Next-word predictions of one causal LM for a word sequence.

    Attributes
    ----------
    words : tuple[str, ...]
        the ``n_words`` words.
    surprisal : np.ndarray
        ``(n_words,)`` float64, bits: ``-log2 p(word | preceding text)``, the sum over the
        word's tokens. NaN for the first word of a context when the model has no BOS token.
    entropy : np.ndarray
        ``(n_words,)`` float64, bits: entropy of the next-token distribution before the word's
        first token. NaN where ``surprisal`` is NaN for that reason.
    n_tokens : np.ndarray
        ``(n_words,)`` int64, tokens of the word (a whitespace-only token before it included).
    model : str
        model name.
    bos : bool
        whether a BOS token was prepended at each context start.
    """

    words: tuple[str, ...]
    surprisal: np.ndarray
    entropy: np.ndarray
    n_tokens: np.ndarray
    model: str
    bos: bool

    def __len__(self) -> int:
        return len(self.words)

    @property
    def valid(self) -> np.ndarray:
        """``(n_words,)`` bool: both surprisal and entropy are finite."""
        return np.isfinite(self.surprisal) & np.isfinite(self.entropy)

    def to_frame(self) -> pd.DataFrame:
        """A table with columns ``word``, ``surprisal``, ``entropy`` (bits), ``n_tokens``."""
        return pd.DataFrame({"word": list(self.words), "surprisal": self.surprisal, "entropy": self.entropy,
                             "n_tokens": self.n_tokens})

    def matrix(self) -> np.ndarray:
        """``(n_words, 2)`` float64: columns :data:`FEATURE_COLUMNS` (surprisal, entropy; bits)."""
        return np.column_stack([self.surprisal, self.entropy])


def uses_bos(lm: LoadedModel) -> bool:
    """Whether ``lm``'s tokenizer puts its BOS token before a text by default (then it is prepended)."""
    tok = lm.tokenizer
    bos = getattr(tok, "bos_token_id", None)
    if bos is None:
        return False
    from brainlike.models.alignment import special_tokens

    prefix, _ = special_tokens(tok)
    return bos in prefix


def _word_first(tw: TokenizedWords) -> np.ndarray:
    """``(n_words,)`` the first token each word's surprisal counts.

    The token after the previous word's last token (0 for the first word). So a token that covers only the space before
    a word (SentencePiece writes ``" ."`` as ``"▁"`` + ``"."``) counts for the word after it, and the words' surprisals
    add up to the surprisal of the whole text.
    """
    return np.concatenate([[0], tw.word_end[:-1]]).astype(np.int64) if len(tw.word_end) else tw.word_end


def _contexts(n_words: int, groups: np.ndarray | None, context: str) -> list[tuple[int, int]]:
    """``[(w0, w1), ...]`` word ranges scored as separate contexts."""
    if context == "continuous" or groups is None or n_words == 0:
        return [(0, n_words)] if n_words else []
    cuts = np.flatnonzero(groups[1:] != groups[:-1]) + 1
    bounds = [0, *cuts.tolist(), n_words]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


@torch.inference_mode()
def _score_sequences(lm: LoadedModel, seqs: list[np.ndarray], batch_size: int, device: str,
                     progress: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each token sequence: ``(logp_next, entropy)``, both ``(len - 1,)`` float64.

    ``logp_next[i]`` is ``log p(seq[i + 1] | seq[:i + 1])`` (nats) and ``entropy[i]`` the entropy (nats)
    of the next-token distribution after ``seq[:i + 1]``. Sequences are right-padded into batches (real
    tokens never attend to pads in a causal model).
    """
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))  # similar lengths together
    pad = lm.tokenizer.pad_token_id or 0
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc=f"surprisal {lm.name}", disable=not progress, leave=False):
        width = max(len(seqs[i]) for i in batch)
        ids = np.full((len(batch), width), pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, i in enumerate(batch):
            ids[r, :len(seqs[i])] = seqs[i]
            mask[r, :len(seqs[i])] = 1
        kwargs = {"input_ids": torch.from_numpy(ids).to(device), "attention_mask": torch.from_numpy(mask).to(device)}
        try:
            logits = lm.model(**kwargs, use_cache=False).logits
        except TypeError:
            logits = lm.model(**kwargs).logits
        for r, i in enumerate(batch):
            n = len(seqs[i])
            target = torch.from_numpy(np.asarray(seqs[i][1:], dtype=np.int64)).to(logits.device)
            lp, ent = [], []
            for a in range(0, n - 1, _ROWS):  # float64 over the vocabulary, a few rows at a time
                logp = torch.log_softmax(logits[r, a:min(a + _ROWS, n - 1)].double(), dim=-1)
                lp.append(logp.gather(1, target[a:a + _ROWS, None])[:, 0].cpu().numpy())
                ent.append((-(logp.exp() * logp).sum(-1)).cpu().numpy())
            out[i] = (np.concatenate(lp) if lp else np.zeros(0), np.concatenate(ent) if ent else np.zeros(0))
    return out  # type: ignore[return-value]


def _compute(lm: LoadedModel, words: tuple[str, ...], ranges: list[tuple[int, int]], window: int, bos: bool,
             batch_size: int, device: str, progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surprisal, entropy (bits) and token counts of every word, context by context."""
    n = len(words)
    surprisal = np.full(n, np.nan)
    entropy = np.full(n, np.nan)
    n_tokens = np.zeros(n, dtype=np.int64)
    prefix = np.array([lm.tokenizer.bos_token_id] if bos else [], dtype=np.int64)
    span = window - len(prefix)  # text tokens per forward pass
    seqs: list[np.ndarray] = []
    # what each sequence scores: (context index, first text token scored, start token of the window)
    jobs: list[tuple[int, int, int, int]] = []
    tokenized: list[TokenizedWords] = []
    for c, (w0, w1) in enumerate(ranges):
        tw = tokenize_words(lm.tokenizer, words[w0:w1])
        tokenized.append(tw)
        n_tokens[w0:w1] = tw.word_end - _word_first(tw)
        for start, stop, emit_from in window_plan(tw.n_tokens, span):
            seqs.append(np.concatenate([prefix, tw.input_ids[start:stop]]))
            jobs.append((c, start, stop, emit_from))
    scored = _score_sequences(lm, seqs, batch_size, device, progress)
    tok_lp = [np.full(tw.n_tokens, np.nan) for tw in tokenized]   # log p(token t | context), nats
    tok_ent = [np.full(tw.n_tokens, np.nan) for tw in tokenized]  # entropy before token t, nats
    for (c, start, stop, emit_from), (lp, ent) in zip(jobs, scored):
        t = np.arange(emit_from, stop)
        pos = t - start + len(prefix) - 1  # row of lp/ent predicting token t (-1: nothing before it)
        ok = pos >= 0
        tok_lp[c][t[ok]] = lp[pos[ok]]
        tok_ent[c][t[ok]] = ent[pos[ok]]
    for c, (w0, w1) in enumerate(ranges):
        tw, lp = tokenized[c], tok_lp[c]
        csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(lp, nan=0.0))])
        nan_csum = np.concatenate([[0], np.cumsum(np.isnan(lp))])
        first = _word_first(tw)
        s = -(csum[tw.word_end] - csum[first]) / _LN2
        s[nan_csum[tw.word_end] > nan_csum[first]] = np.nan  # a word with an unscored token
        surprisal[w0:w1] = s
        entropy[w0:w1] = tok_ent[c][first] / _LN2
    return surprisal, entropy, n_tokens


def _hash_array(a) -> str:
    return hashlib.sha256(json.dumps(a, ensure_ascii=False, default=str).encode()).hexdigest()[:16]


def word_predictions(
    model: str | LoadedModel,
    words: Sequence[str],
    *,
    groups: Sequence[int] | None = None,
    context: Literal["continuous", "reset"] = "continuous",
    window: int = 512,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: bool = False,
    batch_size: int = 8,
    device: str = "cpu",
    bos: bool | None = None,
) -> WordPredictions:
    """Per-word surprisal and entropy (bits) of ``words`` under a causal LM.

    Parameters
    ----------
    model : str or LoadedModel
        A registered name, local path, hub id, or a loaded model; must be a causal LM.
    words : sequence of str
        ``n_words`` words, joined by single spaces for tokenization.
    groups : sequence of int, optional
        ``(n_words,)`` sentence/item ids. With ``context="reset"`` the context restarts at every change
        of id (each run of equal consecutive ids is read in isolation). Ignored by ``"continuous"``.
    context : {"continuous", "reset"}
        ``"continuous"``: every word given all preceding words (sliding windows of ``window`` tokens);
        ``"reset"``: every group on its own.
    window : int
        Tokens per forward pass, BOS included (capped at the model's position limit).
    cache_dir : str or Path, optional
        Cache root (default ``$BRAINLIKE_CACHE`` or ``~/.cache/brainlike``); the table goes to
        ``<cache_dir>/surprisal/<key>/predictions.parquet``, keyed by the model's fingerprint, the words,
        the groups and the options.
    use_cache : bool
        Read and write the cache.
    progress : bool
        Show a progress bar.
    batch_size : int
        Sequences per forward pass (reset mode scores many short sentences together).
    device : str
        Where a model given by name is loaded.
    bos : bool, optional
        Prepend the BOS token at each context start; ``None`` (default) follows the tokenizer
        (:func:`uses_bos`). ``True`` for a tokenizer without a BOS token is an error.

    Returns
    -------
    WordPredictions
        ``surprisal`` and ``entropy`` ``(n_words,)`` float64 in bits; NaN for the first word of each
        context when the model has no BOS token (see the module docstring for the rule).

    Raises
    ------
    BrainlikeError
        The model is not a causal LM, ``groups`` does not have one id per word, or ``context`` or
        ``window`` is invalid.
    """
    if context not in ("continuous", "reset"):
        raise BrainlikeError(f"context must be 'continuous' or 'reset', not {context!r}")
    words = tuple(str(w) for w in words)
    if any(not w or w != w.strip() or " " in w for w in words):
        bad = next(w for w in words if not w or w != w.strip() or " " in w)
        raise BrainlikeError(f"word {bad!r}: words must be non-empty and contain no spaces")
    g = None
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != (len(words),):
            raise BrainlikeError(f"groups has {g.size} ids for {len(words)} words: give one sentence/item id per word")
    if context == "reset" and g is None:
        raise BrainlikeError("context='reset' needs groups (one sentence/item id per word)")
    lm = model if isinstance(model, LoadedModel) else load_model(model, device=device)
    if lm.kind != "causal":
        raise BrainlikeError(f"{lm.name}: no next-word predictions: not a causal LM (use features: hidden for an "
                             "encoder)")
    if bos is None:
        bos = uses_bos(lm)
    elif bos and getattr(lm.tokenizer, "bos_token_id", None) is None:
        raise BrainlikeError(f"{lm.name}: the tokenizer has no BOS token; use bos=None or False")
    bos = bool(bos)
    window = min(int(window), lm.max_tokens)
    if window < 2 + int(bos):
        raise BrainlikeError(f"window must be at least {2 + int(bos)} tokens, got {window}")
    ranges = _contexts(len(words), g, context)
    key = cache_key(model=lm.fingerprint, name=lm.name, words=_hash_array(words),
                    contexts=None if context == "continuous" else _hash_array(ranges),  # boundaries, not ids
                    context=context, window=window, bos=bos, version=SURPRISAL_FORMAT_VERSION)
    if not use_cache:
        return _predictions(lm, words, ranges, window, bos, batch_size, device, progress)
    entry = CacheEntry(Path(cache_dir or default_cache_dir()) / "surprisal", key, final_name="predictions.parquet")
    with entry.lock():
        if entry.done():
            try:
                df = pd.read_parquet(entry.final)
                if tuple(df["word"]) == words:
                    return WordPredictions(words, df["surprisal"].to_numpy(np.float64),
                                           df["entropy"].to_numpy(np.float64), df["n_tokens"].to_numpy(np.int64),
                                           lm.name, bos)
                warnings.warn(f"cache entry {entry.dir} does not match the words; recomputing it", RuntimeWarning,
                              stacklevel=2)
            except (OSError, ValueError, KeyError) as exc:
                warnings.warn(f"unreadable surprisal cache entry {entry.final} ({exc}); recomputing it",
                              RuntimeWarning, stacklevel=2)
        pred = _predictions(lm, words, ranges, window, bos, batch_size, device, progress)
        entry.write_meta({"model": lm.name, "fingerprint": lm.fingerprint, "n_words": len(words), "context": context,
                          "window": window, "bos": bos, "version": SURPRISAL_FORMAT_VERSION})
        frame = pred.to_frame()
        atomic_write(entry.final, lambda tmp: frame.to_parquet(tmp, index=False))
    return pred


def _predictions(lm: LoadedModel, words: tuple[str, ...], ranges: list[tuple[int, int]], window: int, bos: bool,
                 batch_size: int, device: str, progress: bool) -> WordPredictions:
    device = str(next(lm.model.parameters()).device)
    if words:
        s, e, n = _compute(lm, words, ranges, window, bos, batch_size, device, progress)
    else:
        s, e, n = np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    return WordPredictions(words, s, e, n, lm.name, bos)


def surprisal_features(lm: LoadedModel, stimulus: Stimulus, key: str, *, cache_dir: str | Path | None = None,
                       window: int = 512, progress: bool = False) -> Features:
    """The model's next-word predictions on the stimulus as a feature space.

    Returns
    -------
    Features
        ``layers`` ``(1, n_words, 2)`` float32: columns surprisal and entropy (bits,
        :func:`brainlike.models.surprisal.word_predictions`, the whole stimulus as one continuous
        context). A word without a prediction (the first word when the model has no BOS token) gets the
        mean of the others, so it carries no information; ``options["n_imputed"]`` counts them.
    """
    pred = word_predictions(lm, stimulus.words, context="continuous", window=window, cache_dir=cache_dir,
                            progress=progress)
    X = pred.matrix()
    bad = ~np.isfinite(X)
    if bad.all(axis=0).any():
        raise BrainlikeError(f"{key}: no word has a prediction (too few words?)")
    X = np.where(bad, np.nanmean(np.where(bad, np.nan, X), axis=0), X)
    return Features(X[None].astype(np.float32), key, tuple(stimulus.words),
                    {"features": "surprisal", "columns": list(FEATURE_COLUMNS), "bos": pred.bos,
                     "n_imputed": int(bad.any(axis=1).sum()), "window": window})
