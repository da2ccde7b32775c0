"""Hidden states of every layer for every word of a stimulus, streamed to disk, with caching and resume.

Two context modes:

* ``context_tokens=None`` (default): the story is processed in overlapping windows of up to
  ``max_window`` tokens (the model's limit by default); consecutive windows overlap by half, and every
  token is taken from the window where it has the most preceding context, so every word after the first
  window sees at least half a window of context.
* ``context_tokens=N``: every word is processed on its own with exactly the ``N`` tokens that precede it
  (fewer at the start of the story) — the fixed-context design of context-length analyses.

Bounded memory: forward hooks on the transformer blocks pool the words' token rows out of each layer as
soon as that layer has run and write them straight into a pre-allocated feature file (see
:class:`~brainlike.models.features.FeatureFileWriter`), so extraction holds the model plus one layer's
activations, never all layers (no ``output_hidden_states`` tuple, no ``(n_layers + 1, n_words, hidden)``
array). The features are exactly the ``output_hidden_states`` entries: layer 0 is the input of the first
block, layer ``k`` the output of block ``k``, the last layer the model's ``last_hidden_state`` (final norm
included for Llama/Gemma, as in Hugging Face's ``hidden_states[-1]``).

Resume and integrity: every finished work unit (a window or a batch) is recorded in a journal with the
SHA-256 of the bytes it wrote; a killed run resumes the unfinished units only, after re-checking the
finished ones. The complete file is renamed into place next to per-layer checksums, which are verified
whenever the cached entry is used; a corrupt entry is recomputed with a warning.

Warm runs without the model: an entry's key needs the model's position limit (``max_window``), known only once
the model is loaded, so every entry is also recorded under a *request key* that needs only the registry entry
(its fingerprint: the hash of the model's files, the random twin's seed, the hub revision), the name, the words
and the options: ``<cache_dir>/features/requests/<request key>.json`` names the entry's key.
:func:`cached_features` looks a request up without loading the model (what a warm ``brainlike demo`` does).
"""
from __future__ import annotations

import functools
import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from brainlike.cache import CacheEntry, Journal, cache_key, default_cache_dir
from brainlike.errors import BrainlikeError, ModelError
from brainlike.fileio import atomic_write_json
from brainlike.models.alignment import TokenizedWords, tokenize_words
from brainlike.models.features import CorruptFeaturesError, FeatureFileWriter, Features, checksum_path, feature_metadata
from brainlike.models.hooks import BLOCK_LIST_NAMES, HookSet, base_module, forward, transformer_blocks, window_plan
from brainlike.models.loading import LoadedModel, load_model
from brainlike.models.registry import ModelEntry, resolve_model
from brainlike.stimulus import Stimulus

FEATURE_FORMAT_VERSION = 2

__all__ = ["BLOCK_LIST_NAMES", "ExtractionOptions", "cached_features", "extract_features", "transformer_blocks"]


@dataclass(frozen=True)
class ExtractionOptions:
    """What determines the features (all of it goes into the cache key).

    Attributes
    ----------
    pooling : str
        ``"last"`` (a word's vector = its last token's; default) or ``"mean"`` over its tokens.
    context_tokens : int | None
        ``None`` for the longest context the model takes (overlapping windows), or an exact
        number of preceding tokens per word.
    max_window : int | None
        cap on the window length in tokens (``None`` = the model's position limit, at most
        ``2048`` on CPU to keep attention memory bounded).
    dtype : str
        model compute dtype, ``"float32"`` or ``"float16"``/``"bfloat16"``; features are float32.
    batch_size : int
        sequences per forward pass.
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


@dataclass(frozen=True)
class _Unit:
    """One forward pass: token sequences (without special tokens) and the words read out of them.

    ``items[b] = (token ids, [(word, token rows in the padded sequence, specials included), ...])``; the
    unit's words are exactly ``[w0, w1)`` in order.
    """

    items: list[tuple[np.ndarray, list[tuple[int, slice]]]]
    w0: int
    w1: int


# --------------------------------------------------------------------------------------- model plumbing
_base_module = base_module


def _forward(lm: LoadedModel, batch: list[np.ndarray], device: str, all_hidden: bool = False):
    """:func:`brainlike.models.hooks.forward` of ``lm`` (layer hooks of :class:`_LayerTap` fire during it)."""
    return forward(lm.model, lm.tokenizer.pad_token_id, batch, device, all_hidden)


class _Pooler:
    """Reads a unit's words out of one layer's ``(batch, width, hidden)`` activations.

    ``pool(h)`` returns ``(w1 - w0, hidden)`` float32 on the CPU: the last token of each word, or the mean
    of its tokens.
    """

    def __init__(self, unit: _Unit, pooling: str, width: int, device: str):
        tok, seg, counts = [], [], []
        expect = unit.w0
        for b, (_, word_rows) in enumerate(unit.items):
            for w, rows in word_rows:
                if w != expect:
                    raise RuntimeError(f"internal error: unit words not contiguous ({w} after {expect - 1})")
                first = rows.stop - 1 if pooling == "last" else rows.start
                positions = np.arange(first, rows.stop)
                tok.append(b * width + positions)
                seg.append(np.full(len(positions), w - unit.w0))
                counts.append(len(positions))
                expect += 1
        if expect != unit.w1:
            raise RuntimeError("internal error: unit does not cover its words")
        self.mean = pooling == "mean"
        self.tok = torch.from_numpy(np.concatenate(tok)).to(device)
        self.seg = torch.from_numpy(np.concatenate(seg)).to(device)
        self.counts = torch.tensor(counts, dtype=torch.float32, device=device)[:, None]

    def pool(self, h: torch.Tensor) -> np.ndarray:
        rows = h.reshape(-1, h.shape[-1]).index_select(0, self.tok).float()
        if self.mean:
            rows = torch.zeros(len(self.counts), h.shape[-1], dtype=torch.float32, device=rows.device) \
                .index_add_(0, self.seg, rows) / self.counts
        return rows.cpu().numpy()


class _HookMismatch(Exception):
    """The layer hooks did not see exactly one output per layer in a forward pass."""


class _LayerTap:
    """Forward hooks that hand every layer's pooled word rows to ``emit(layer, rows)`` as soon as the layer has run.

    (layer 0 = the first block's input, ``k`` = block ``k``'s output, the last = the model's ``last_hidden_state``, as
    in ``output_hidden_states``). Use as a context manager: hooks are removed on exit.
    """

    def __init__(self, lm: LoadedModel):
        self.n_layers = lm.n_layers
        self.blocks = transformer_blocks(_base_module(lm.model), lm.n_layers)
        # Hugging Face replaces hidden_states[-1] by last_hidden_state unless the config says otherwise
        self.tie_last = getattr(lm.model.config, "tie_last_hidden_states", None) is not False
        self.fallback = self.blocks is None
        self._pooler: _Pooler | None = None
        self._emit: Callable[[int, np.ndarray], None] | None = None
        self._emitted: list[int] = []
        self._hooks = HookSet()

    def __enter__(self) -> _LayerTap:
        if self.blocks is not None:
            self._hooks.pre(self.blocks[0], self._on_input, with_kwargs=True)
            for i, block in enumerate(self.blocks):
                self._hooks.post(block, functools.partial(self._on_output, i))
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.remove()

    def _take(self, k: int, h: torch.Tensor) -> None:
        if self._emit is None:  # the model runs outside a unit (not ours): ignore
            return
        if k in self._emitted:
            raise _HookMismatch(f"layer {k} ran twice in one forward pass (shared blocks?)")
        self._emitted.append(k)
        self._emit(k, self._pooler.pool(h))

    def _on_input(self, _module, args, kwargs) -> None:
        h = args[0] if args and isinstance(args[0], torch.Tensor) else kwargs.get("hidden_states")
        if not isinstance(h, torch.Tensor):
            raise _HookMismatch("the first transformer block was called without a hidden-state tensor")
        self._take(0, h)

    def _on_output(self, i: int, _module, _args, output) -> None:
        if i == self.n_layers - 1 and self.tie_last:
            return  # the last layer is the model's output (final norm applied), taken after the pass
        self._take(i + 1, output[0] if isinstance(output, (tuple, list)) else output)

    def run(self, lm: LoadedModel, unit: _Unit, seqs: list[np.ndarray], pooling: str, device: str,
            emit: Callable[[int, np.ndarray], None]) -> None:
        """One forward pass of ``seqs`` (the unit's sequences with special tokens).

        Every layer is emitted exactly once, in order. If the hooks do not match the forward pass (an architecture whose
        block list was misidentified), the pass is redone with ``output_hidden_states`` from then on.
        """
        self._pooler = _Pooler(unit, pooling, max(len(s) for s in seqs), device)
        try:
            try:
                self._run_once(lm, seqs, device, emit)
            except _HookMismatch as exc:
                if self.fallback:
                    raise ModelError(f"{lm.name}: unsupported architecture ({exc})") from None
                warnings.warn(f"{lm.name}: layer hooks do not match the forward pass ({exc}); extracting via "
                              "output_hidden_states instead (memory then grows with the number of layers)",
                              RuntimeWarning, stacklevel=2)
                self.fallback = True
                self._run_once(lm, seqs, device, emit)
        finally:
            self._emit, self._pooler = None, None

    def _run_once(self, lm: LoadedModel, seqs: list[np.ndarray], device: str,
                  emit: Callable[[int, np.ndarray], None]) -> None:
        self._emit, self._emitted = emit, []
        out = _forward(lm, seqs, device, True) if self.fallback else _forward(lm, seqs, device)
        if self.fallback:
            for k, h in enumerate(out.hidden_states):
                self._take(k, h)
        elif self.tie_last:
            self._take(self.n_layers, out.last_hidden_state)
        if self._emitted != list(range(self.n_layers + 1)):
            raise _HookMismatch(f"layers {self._emitted} came out of the forward pass, expected 0..{self.n_layers}")


# ------------------------------------------------------------------------------------------- planning
def _window_plan(tw: TokenizedWords, window: int) -> list[tuple[int, int, int]]:
    """Windows ``(start, stop, emit_from)`` over the story's tokens (:func:`~brainlike.models.hooks.window_plan`)."""
    return window_plan(tw.n_tokens, window)


def _plan_units(tw: TokenizedWords, options: ExtractionOptions, window: int, n_prefix: int) -> list[_Unit]:
    """Forward passes in word order; together they read out every word exactly once."""
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
    units, w = [], 0
    for i in range(0, len(seq_items), per_unit):
        items = seq_items[i:i + per_unit]
        n_words = sum(len(rows) for _, rows in items)
        units.append(_Unit(items, w, w + n_words))
        w += n_words
    if w != len(tw.word_start):  # a bug guard: every word must be covered exactly by the plan
        raise RuntimeError(f"internal error: the plan covers {w} of {len(tw.word_start)} words")
    return units


# ------------------------------------------------------------------------------------------ extraction
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

    Parameters
    ----------
    model : str | LoadedModel
        a registered name, local path, hub id, or a :class:`LoadedModel`.
    stimulus : Stimulus
        the words (timing is not used here; the cache key uses the words only).
    options : ExtractionOptions | None
        :class:`ExtractionOptions`; keyword overrides (``pooling="mean"``, ``context_tokens=16``)
        are accepted too.
    cache_dir : str | Path | None
        cache root (default ``$BRAINLIKE_CACHE`` or ``~/.cache/brainlike``); features go to
        ``<cache_dir>/features/<key>/features.safetensors``.
    use_cache : bool
        read/write the cache (features are streamed to disk one layer at a time; an
        interrupted run resumes its unfinished units; a corrupt entry is recomputed with a warning).
        ``False`` computes in memory.

    Returns
    -------
    Features
        :class:`Features` with ``layers`` of shape ``(n_layers + 1, n_words, hidden_size)``, float32 — a
        read-only memory map of the cache file when ``use_cache``. A static model (``glove-6b-50d``) gives
        one layer ``(1, n_words, dim)``, computed in memory (out-of-vocabulary rate in ``options["oov_rate"]``).
    """
    options = options or ExtractionOptions()
    if option_overrides:
        options = ExtractionOptions(**{**options.__dict__, **option_overrides})
    if use_cache and not isinstance(model, LoadedModel):
        hit = cached_features(model, stimulus, options, cache_dir)
        if hit is not None:
            return hit
    if isinstance(model, LoadedModel):
        lm = model
        if options.dtype != "float32" and next(lm.model.parameters()).dtype != getattr(torch, options.dtype):
            raise BrainlikeError("pass the model name (not a loaded model) to extract in another dtype")
    else:
        lm = load_model(model, dtype=options.dtype, device=device)
    if lm.kind == "static":  # one context-free vector per word: a lookup, not worth a cache entry
        from brainlike.models.static import static_features

        return static_features(lm.model, stimulus.words, lm.name,
                               {"model": lm.name, "fingerprint": lm.fingerprint, "stimulus": stimulus.name,
                                "n_words": len(stimulus), "options": options.__dict__})
    max_window = min(options.max_window or 2048, lm.max_tokens)
    key = cache_key(model=lm.fingerprint, name=lm.name, words=stimulus.text_hash(), options=options.__dict__,
                    max_window=max_window, version=FEATURE_FORMAT_VERSION)
    meta = {"model": lm.name, "fingerprint": lm.fingerprint, "stimulus": stimulus.name, "n_words": len(stimulus),
            "options": options.__dict__, "max_window": max_window, "version": FEATURE_FORMAT_VERSION}
    if not use_cache:
        return _extract(lm, stimulus, options, max_window, meta, device, progress, None, key)
    root = Path(cache_dir or default_cache_dir()) / "features"
    entry = CacheEntry(root, key)
    with entry.lock():
        if entry.done():
            feats = _load_verified(entry)
            if feats is not None:
                if feats.words != stimulus.words:
                    raise BrainlikeError(f"cache entry {entry.dir} does not match the stimulus; delete it")
                entry.clear_partial()  # leftovers of a run killed right after renaming its file
                _record_request(root, lm.entry, stimulus, options, key)
                return feats
        feats = _extract(lm, stimulus, options, max_window, meta, device, progress, entry, key)
    _record_request(root, lm.entry, stimulus, options, key)
    return feats


def _request_path(root: Path, model: ModelEntry, stimulus: Stimulus, options: ExtractionOptions) -> Path:
    """``<root>/requests/<key>.json``: the request key needs the registry entry only, not the loaded model."""
    rkey = cache_key(model=model.fingerprint(), name=model.name, words=stimulus.text_hash(), options=options.__dict__,
                     version=FEATURE_FORMAT_VERSION)
    return root / "requests" / f"{rkey}.json"


def _record_request(root: Path, model: ModelEntry, stimulus: Stimulus, options: ExtractionOptions, key: str) -> None:
    """Record that this request's features are the entry ``key`` (crash-safe; skipped when already recorded)."""
    path = _request_path(root, model, stimulus, options)
    try:
        if json.loads(path.read_text()).get("key") == key:
            return
    except (OSError, ValueError, AttributeError):
        pass
    try:
        atomic_write_json(path, {"key": key, "model": model.name, "fingerprint": model.fingerprint()})
    except OSError as exc:  # a read-only cache still serves its entries through the full key
        warnings.warn(f"could not record the feature request {path} ({exc})", RuntimeWarning, stacklevel=3)


def cached_features(model: str | ModelEntry, stimulus: Stimulus, options: ExtractionOptions | None = None,
                    cache_dir: str | Path | None = None, revision: str | None = None) -> Features | None:
    """The cached features of ``model`` for ``stimulus``, found without loading the model; ``None`` on a miss.

    The lookup needs the registry entry only (:meth:`ModelEntry.fingerprint`: the model's file hashes, the random
    twin's seed, the hub revision), the model's name, the words and ``options``; the entry it finds is verified
    against its checksums as in :func:`extract_features`, which records every entry it makes or reads here.

    Parameters
    ----------
    model : str | ModelEntry
        A registered name, local path or hub id (as for :func:`extract_features`), or its registry entry.
    stimulus : Stimulus
        The words.
    options : ExtractionOptions | None
        The extraction options (default :class:`ExtractionOptions`).
    cache_dir : str | Path | None
        The cache root (default ``$BRAINLIKE_CACHE`` or ``~/.cache/brainlike``).
    revision : str | None
        Hub revision.

    Returns
    -------
    Features | None
        ``layers`` ``(n_layers + 1, n_words, hidden_size)`` float32 (a read-only memory map), or ``None`` when the
        request was never recorded, its entry is gone or corrupt, or the model cannot be resolved (then
        :func:`extract_features` reports why).
    """
    options = options or ExtractionOptions()
    try:
        entry_m = model if isinstance(model, ModelEntry) else resolve_model(model, revision)
        if entry_m.source == "static":
            return None
        root = Path(cache_dir or default_cache_dir()) / "features"
        key = json.loads(_request_path(root, entry_m, stimulus, options).read_text())["key"]
    except (BrainlikeError, OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(key, str) or not key.isalnum() or not (root / key).is_dir():
        return None
    entry = CacheEntry(root, key)
    with entry.lock():
        if not entry.done():
            return None
        feats = _load_verified(entry)
        if feats is None or feats.words != stimulus.words:
            return None
        entry.clear_partial()
        return feats


def _load_verified(entry: CacheEntry) -> Features | None:
    """The cached features after checking them against their checksums, or ``None``.

    (with a warning, the entry removed) when they are corrupt.
    """
    try:
        return Features.load(entry.final, verify=True)
    except CorruptFeaturesError as exc:
        warnings.warn(f"corrupt feature cache entry, recomputing it: {exc}", RuntimeWarning, stacklevel=3)
        entry.final.unlink(missing_ok=True)
        checksum_path(entry.final).unlink(missing_ok=True)
        return None


def _extract(lm: LoadedModel, stimulus: Stimulus, options: ExtractionOptions, max_window: int, meta: dict,
             device: str, progress: bool, entry: CacheEntry | None, key: str) -> Features:
    """Run the plan's units, streaming each layer to the cache entry's file (or to memory)."""
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
    units = _plan_units(tw, options, window, len(pre))
    shape = (lm.n_layers + 1, len(stimulus), lm.hidden_size)

    if entry is None:
        layers = np.zeros(shape, dtype=np.float32)

        def sink(k: int, w0: int, rows: np.ndarray) -> None:
            layers[k, w0:w0 + len(rows)] = rows

        _run_units(lm, units, range(len(units)), pre, suf, options.pooling, device, progress, sink, None)
        return Features(layers, lm.name, stimulus.words, dict(meta))

    entry.write_meta(meta)
    header_meta = feature_metadata(lm.name, stimulus.words, meta)
    plan_hash = hashlib.sha256(np.array([(u.w0, u.w1) for u in units], dtype=np.int64).tobytes()).hexdigest()
    journal = Journal(entry.journal_path, {"key": key, "version": FEATURE_FORMAT_VERSION, "shape": shape,
                                           "n_units": len(units), "plan": plan_hash})
    writer = FeatureFileWriter.reopen(entry.partial_file, *shape, header_meta)
    finished: set[int] = set()
    if writer is None:
        writer = FeatureFileWriter.create(entry.partial_file, *shape, header_meta)
    else:
        finished = _verified_units(writer, journal, units)
    try:
        journal.open(fresh=not finished)

        def sink(k: int, w0: int, rows: np.ndarray) -> None:
            writer.write_rows(k, w0, rows)

        def done(u: int, digest: str) -> None:
            writer.sync()  # the rows are durable before the journal says so
            journal.append(u, units[u].w0, units[u].w1, digest)

        todo = [u for u in range(len(units)) if u not in finished]
        _run_units(lm, units, todo, pre, suf, options.pooling, device, progress, sink, done)
        writer.finalize(entry.final)
    finally:
        writer.close()
        journal.close()
    entry.clear_partial()
    return Features.load(entry.final)


def _unit_digest(layer_digests: list[bytes]) -> str:
    """A unit's checksum: SHA-256 over the SHA-256 of its rows in every layer, in layer order."""
    return hashlib.sha256(b"".join(layer_digests)).hexdigest()


def _verified_units(writer: FeatureFileWriter, journal: Journal, units: list[_Unit]) -> set[int]:
    """Units the journal records as finished whose bytes in the file still match their checksum."""
    ok: set[int] = set()
    for u, (w0, w1, digest) in sorted(journal.read().items()):
        if u >= len(units) or (units[u].w0, units[u].w1) != (w0, w1):
            continue
        actual = _unit_digest([hashlib.sha256(writer.read_rows(k, w0, w1)).digest() for k in range(writer.n_layers)])
        if actual == digest:
            ok.add(u)
        else:
            warnings.warn(f"{writer.path}: unit {u} (words {w0}-{w1}) does not match its checksum; recomputing it",
                          RuntimeWarning, stacklevel=4)
    return ok


def _run_units(lm: LoadedModel, units: list[_Unit], todo, pre: np.ndarray, suf: np.ndarray, pooling: str,
               device: str, progress: bool, sink: Callable[[int, int, np.ndarray], None],
               done: Callable[[int, str], None] | None) -> None:
    """Forward every unit in ``todo``.

    Each layer's rows go to ``sink(layer, w0, rows)`` as the layer runs, and ``done(unit, checksum)`` is called once all
    its layers are written.
    """
    bar = tqdm(total=len(units), initial=len(units) - len(todo), desc=f"features {lm.name}", unit="batch",
               disable=not progress, leave=False)
    with _LayerTap(lm) as tap:
        for u in todo:
            unit = units[u]
            digests: dict[int, bytes] = {}

            def emit(k: int, rows: np.ndarray) -> None:
                sink(k, unit.w0, rows)  # noqa: B023 - emit is only called by tap.run below, in this iteration
                digests[k] = hashlib.sha256(rows).digest()  # noqa: B023 - as above

            seqs = [np.concatenate([pre, seq, suf]) for seq, _ in unit.items]
            tap.run(lm, unit, seqs, pooling, device, emit)
            if done is not None:
                done(u, _unit_digest([digests[k] for k in range(lm.n_layers + 1)]))
            bar.update(1)
    bar.close()
