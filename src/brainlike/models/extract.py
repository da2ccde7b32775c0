"""Hidden states of every layer for every word of a stimulus, with caching and resume.

Two context modes:

* ``context_tokens=None`` (default): the story is processed in overlapping windows of up to
  ``max_window`` tokens (the model's limit by default); consecutive windows overlap by half, and every
  token is taken from the window where it has the most preceding context, so every word after the first
  window sees at least half a window of context.
* ``context_tokens=N``: every word is processed on its own with exactly the ``N`` tokens that precede it
  (fewer at the start of the story) — the fixed-context design of context-length analyses.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from tqdm.auto import tqdm

from brainlike.cache import CacheEntry, cache_key, default_cache_dir
from brainlike.errors import BrainlikeError
from brainlike.models.alignment import TokenizedWords, tokenize_words
from brainlike.models.features import Features
from brainlike.models.loading import LoadedModel, load_model
from brainlike.stimulus import Stimulus

FEATURE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ExtractionOptions:
    """What determines the features (all of it goes into the cache key).

    Attributes:
        pooling: ``"last"`` (a word's vector = its last token's; default) or ``"mean"`` over its tokens.
        context_tokens: ``None`` for the longest context the model takes (overlapping windows), or an exact
            number of preceding tokens per word.
        max_window: cap on the window length in tokens (``None`` = the model's position limit, at most
            ``2048`` on CPU to keep attention memory bounded).
        dtype: model compute dtype, ``"float32"`` or ``"float16"``/``"bfloat16"``; features are float32.
        batch_size: sequences per forward pass.
    """

    pooling: str = "last"
    context_tokens: int | None = None
    max_window: int | None = None
    dtype: str = "float32"
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.pooling not in ("last", "mean"):
            raise BrainlikeError(f"pooling must be 'last' or 'mean', not {self.pooling!r}")
        if self.context_tokens is not None and self.context_tokens < 0:
            raise BrainlikeError(f"context_tokens must be >= 0 or None, got {self.context_tokens}")
        if self.max_window is not None and self.max_window < 2:
            raise BrainlikeError(f"max_window must be >= 2, got {self.max_window}")
        if self.batch_size < 1:
            raise BrainlikeError(f"batch_size must be >= 1, got {self.batch_size}")


def _base_module(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer body (skips the LM head so no vocabulary-sized logits are computed)."""
    base = getattr(model, "base_model", None)
    return base if isinstance(base, torch.nn.Module) else model


@torch.inference_mode()
def _forward(lm: LoadedModel, batch: list[np.ndarray], device: str) -> tuple[np.ndarray, np.ndarray]:
    """Run padded sequences; returns ``(n_layers + 1, batch, max_len, hidden)`` float32 and lengths."""
    lengths = np.array([len(s) for s in batch])
    width = int(lengths.max())
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    ids = np.full((len(batch), width), pad, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    for i, s in enumerate(batch):  # right padding: real tokens never attend to pads (causal or masked)
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    out = _base_module(lm.model)(input_ids=torch.from_numpy(ids).to(device),
                                 attention_mask=torch.from_numpy(mask).to(device), output_hidden_states=True)
    hs = torch.stack([h.float() for h in out.hidden_states]).cpu().numpy()
    return hs, lengths


def _pool(hs: np.ndarray, rows: slice | np.ndarray, pooling: str) -> np.ndarray:
    """``hs``: ``(n_layers + 1, n_tok, hidden)`` of one sequence; rows = a word's token positions."""
    if pooling == "last":
        idx = rows.stop - 1 if isinstance(rows, slice) else rows[-1]
        return hs[:, idx]
    return hs[:, rows].mean(axis=1)


def _window_plan(tw: TokenizedWords, window: int) -> list[tuple[int, int, int]]:
    """Windows ``(start, stop, emit_from)`` over tokens: emit tokens ``[emit_from, stop)`` from window
    ``[start, stop)``; consecutive windows overlap by half a window."""
    n = tw.n_tokens
    if n <= window:
        return [(0, n, 0)]
    step = max(window // 2, 1)
    plan = [(0, window, 0)]
    emitted = window
    while emitted < n:
        stop = min(emitted + step, n)
        start = max(stop - window, 0)
        plan.append((start, stop, emitted))
        emitted = stop
    return plan


def extract_features(
    model: str | LoadedModel,
    stimulus: Stimulus,
    options: ExtractionOptions | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    device: str = "cpu",
    progress: bool = True,
    **option_overrides,
) -> Features:
    """Hidden states of every layer (embeddings included) for every word of ``stimulus``.

    Args:
        model: a registered name, local path, hub id, or a :class:`LoadedModel`.
        stimulus: the words (timing is not used here; the cache key uses the words only).
        options: :class:`ExtractionOptions`; keyword overrides (``pooling="mean"``, ``context_tokens=16``)
            are accepted too.
        cache_dir: cache root (default ``$BRAINLIKE_CACHE`` or ``~/.cache/brainlike``); features go to
            ``<cache_dir>/features/<key>/features.safetensors``.
        use_cache: read/write the cache; an interrupted run resumes from the pieces it finished.

    Returns:
        :class:`Features` with ``layers`` of shape ``(n_layers + 1, n_words, hidden_size)``, float32.
    """
    options = options or ExtractionOptions()
    if option_overrides:
        options = ExtractionOptions(**{**options.__dict__, **option_overrides})
    if isinstance(model, LoadedModel):
        lm = model
        if options.dtype != "float32" and next(lm.model.parameters()).dtype != getattr(torch, options.dtype):
            raise BrainlikeError("pass the model name (not a loaded model) to extract in another dtype")
    else:
        lm = load_model(model, dtype=options.dtype, device=device)
    max_window = min(options.max_window or 2048, lm.max_tokens)
    key = cache_key(model=lm.fingerprint, name=lm.name, words=stimulus.text_hash(), options=options.__dict__,
                    max_window=max_window, version=FEATURE_FORMAT_VERSION)
    entry = CacheEntry(Path(cache_dir or default_cache_dir()) / "features", key)
    meta = {"model": lm.name, "fingerprint": lm.fingerprint, "stimulus": stimulus.name, "n_words": len(stimulus),
            "options": options.__dict__, "max_window": max_window, "version": FEATURE_FORMAT_VERSION}
    if use_cache and entry.done():
        feats = Features.load(entry.final)
        if feats.words != stimulus.words:
            raise BrainlikeError(f"cache entry {entry.dir} does not match the stimulus; delete it")
        return feats

    tw = tokenize_words(lm.tokenizer, stimulus.words)
    n_special = len(tw.prefix) + len(tw.suffix)
    window = max_window - n_special
    if window < 1:
        raise BrainlikeError(f"{lm.name}: max_window {max_window} leaves no room next to special tokens")
    too_long = np.flatnonzero(tw.word_end - tw.word_start > window)
    if too_long.size:
        i = int(too_long[0])
        raise BrainlikeError(f"word {i + 1} {stimulus.words[i]!r} has more tokens than the window ({window})")
    pre, suf = np.array(tw.prefix, dtype=np.int64), np.array(tw.suffix, dtype=np.int64)
    n_words = len(stimulus)
    # work units: each is a list of (token sequence, [(word, token rows in that sequence)])
    units = _plan_units(tw, options, window, len(pre))

    if use_cache:
        entry.write_meta(meta)
    layers = np.zeros((lm.n_layers + 1, n_words, lm.hidden_size), dtype=np.float32)
    filled = np.zeros(n_words, dtype=bool)
    bar = tqdm(total=len(units), desc=f"features {lm.name}", unit="batch", disable=not progress, leave=False)
    for u, unit in enumerate(units):
        if use_cache and entry.has_piece(u):
            piece = load_file(str(entry.piece_path(u)))
            words_done, vecs = piece["words"], piece["h"]
        else:
            seqs = [np.concatenate([pre, seq, suf]) for seq, _ in unit]
            hs, _ = _forward(lm, seqs, device)
            words_done_l, vec_l = [], []
            for b, (_, word_rows) in enumerate(unit):
                for w, rows in word_rows:
                    words_done_l.append(w)
                    vec_l.append(_pool(hs[:, b], rows, options.pooling))
            words_done = np.array(words_done_l, dtype=np.int64)
            vecs = np.stack(vec_l, axis=1).astype(np.float32)
            if use_cache:
                _atomic_save({"words": words_done, "h": vecs}, entry.piece_path(u))
        layers[:, words_done] = vecs
        filled[words_done] = True
        bar.update(1)
    bar.close()
    if not filled.all():  # a bug guard: every word must be covered exactly by the plan
        raise RuntimeError(f"internal error: {int((~filled).sum())} words were not extracted")
    feats = Features(layers, lm.name, stimulus.words, dict(meta))
    if use_cache:
        feats.save(entry.final)
        entry.clear_partial()
    return feats


def _atomic_save(tensors: dict[str, np.ndarray], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _plan_units(tw: TokenizedWords, options: ExtractionOptions, window: int, n_prefix: int) -> list[list]:
    """Batches of sequences with, for each, the words to read out and their token rows."""
    seq_items: list[tuple[np.ndarray, list[tuple[int, slice]]]] = []
    if options.context_tokens is None:
        for start, stop, emit_from in _window_plan(tw, window):
            # a word is read out of the window that holds its last token as an emitted token
            sel = np.flatnonzero((tw.word_end - 1 >= emit_from) & (tw.word_end - 1 < stop))
            rows = []
            for w in sel:
                a = max(int(tw.word_start[w]), start)
                rows.append((int(w), slice(a - start + n_prefix, int(tw.word_end[w]) - start + n_prefix)))
            if rows:
                seq_items.append((tw.input_ids[start:stop], rows))
        per_unit = 1  # windows are long: one per forward pass
    else:
        n = options.context_tokens
        for w in range(len(tw.word_start)):
            a, b = int(tw.word_start[w]), int(tw.word_end[w])
            start = max(0, a - n, b - window)
            seq_items.append((tw.input_ids[start:b], [(w, slice(a - start + n_prefix, b - start + n_prefix))]))
        per_unit = options.batch_size
    return [seq_items[i:i + per_unit] for i in range(0, len(seq_items), per_unit)]
