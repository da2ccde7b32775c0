"""Neuron-level temporal responses: every MLP neuron of every layer, per word or per token, on disk.

A *neuron* is one unit of a transformer block's MLP hidden layer, read **after the nonlinearity**: the
input of the MLP's down-projection. For a gated MLP (Llama, Mistral, Qwen, Gemma, SmolLM) that input is
``act_fn(gate_proj(x)) * up_proj(x)``; for BERT it is the ``intermediate`` output (GELU) that feeds
``output.dense``; for GPT-2 the input of ``mlp.c_proj``; for OPT/Phi ``fc2``; for GPT-NeoX
``dense_4h_to_h``. The activations are captured with a forward *pre-hook* on the down-projection, so
the model's own code computes them (nothing is re-implemented).

Streaming: the story is processed in overlapping windows exactly as
:func:`brainlike.models.extract_features` does (every token is read from the window where it has the
most preceding context). After each window the rows (words or tokens) it emits are appended to a
buffer that is flushed to a safetensors *chunk* every ``chunk_rows`` rows, with atomic writes, so

    peak extra memory ≈ (rows emitted by one window + chunk_rows) × n_neurons × 4 bytes

independently of the story length. An interrupted run resumes from the chunks it finished (those the
journal records with a matching checksum).
:class:`NeuronActivations` reads the chunks back as blocks of neurons (all rows of a few thousand
neurons at a time), which is what dictionary learning over neurons needs.

Layout of an activation folder::

    meta.json                       model, words, layers and their sizes, options
    chunk_00000000_00000256.safetensors   rows [0, 256): tensors layer_001 ... (rows, n_neurons_k)
    ...
    journal.txt                     one line per finished chunk with its SHA-256 (resume)
    .lock                           held while a process writes the folder
    done.json                       written last: the chunks and their SHA-256 (verified on reading)
"""
from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from tqdm.auto import tqdm

from brainlike.cache import CacheEntry, Journal, cache_key, default_cache_dir
from brainlike.errors import BrainlikeError, ModelError
from brainlike.fileio import atomic_write, atomic_write_json, sha256_file
from brainlike.models.alignment import TokenizedWords, tokenize_words
from brainlike.models.hooks import HookSet, find_blocks, forward, window_plan
from brainlike.models.loading import LoadedModel, load_model
from brainlike.stimulus import Stimulus

__all__ = ["NeuronActivations", "NeuronOptions", "NeuronSite", "extract_neurons", "find_neuron_sites"]

NEURON_FORMAT_VERSION = 2

#: Down-projection paths relative to a transformer block, most specific first.
DOWN_PROJECTIONS: tuple[str, ...] = (
    "mlp.down_proj",           # Llama, Mistral, Qwen2/3, Gemma 1-3, SmolLM, OLMo, Phi-3
    "feed_forward.down_proj",  # Llama-4 style naming
    "mlp.c_proj",              # GPT-2, StarCoder (Conv1D)
    "mlp.fc_out",              # GPT-J
    "mlp.dense_4h_to_h",       # GPT-NeoX, Pythia
    "mlp.fc2",                 # Phi-1/2, CLIP text
    "fc2",                     # OPT
    "output.dense",            # BERT, RoBERTa, ELECTRA, MiniLM (input = intermediate GELU output)
    "ffn.lin2",                # DistilBERT
)


@dataclass(frozen=True)
class NeuronSite:
    """Where the neurons of one transformer block are read.

    Attributes
    ----------
    layer : int
        block number, 1-based (block ``k`` writes hidden state ``k`` of :class:`Features`).
    module_name : str
        dotted name of the down-projection module whose *input* is captured.
    n_neurons : int
        MLP hidden width of this block (the down-projection's input size).
    """

    layer: int
    module_name: str
    n_neurons: int


def _in_features(module: torch.nn.Module) -> int | None:
    if isinstance(module, torch.nn.Linear):
        return int(module.in_features)
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and weight is not None:  # GPT-2: weight is (in, out)
        return int(weight.shape[0])
    return None


def _out_features(module: torch.nn.Module) -> int | None:
    if isinstance(module, torch.nn.Linear):
        return int(module.out_features)
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and weight is not None:
        return int(weight.shape[1])
    return None


def find_neuron_sites(model: torch.nn.Module | LoadedModel, layers: Sequence[int] | None = None) -> list[NeuronSite]:
    """Locate each block's MLP down-projection (whose input are the post-nonlinearity neurons).

    Known module paths (:data:`DOWN_PROJECTIONS`) are tried first; otherwise the one linear layer of the
    block mapping ``config.intermediate_size`` to ``config.hidden_size`` is used.

    Parameters
    ----------
    model : torch.nn.Module | LoadedModel
        a transformers model or a :class:`LoadedModel`.
    layers : Sequence[int] | None
        1-based block numbers to keep (default all).

    Raises
    ------
    ModelError
        the architecture's MLP cannot be found unambiguously (the message lists what was
        searched), e.g. a mixture-of-experts MLP.
    """
    module = model.model if isinstance(model, LoadedModel) else model
    config = module.config.get_text_config() if hasattr(module.config, "get_text_config") else module.config
    n_layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0))
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))
    inter = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or \
        getattr(config, "ffn_dim", None) or (4 * hidden if getattr(config, "model_type", "") == "gpt2" else None)
    if n_layers < 1:
        raise ModelError(f"{type(module).__name__}: the config gives no number of layers")
    found = find_blocks(module, n_layers)  # the same blocks as hidden-state extraction hooks
    if found is None:
        raise ModelError(f"{type(module).__name__}: no list of {n_layers} transformer blocks found; neuron "
                         "extraction supports Llama/Mistral/Qwen/Gemma/GPT-2/GPT-NeoX/OPT/Phi/BERT-style models")
    prefix, blocks = found
    wanted = list(range(1, n_layers + 1)) if layers is None else [int(k) for k in layers]
    bad = [k for k in wanted if not 1 <= k <= n_layers]
    if bad:
        raise BrainlikeError(f"neuron layers must be block numbers 1..{n_layers}, got {bad}")
    sites = []
    for k in wanted:
        block = blocks[k - 1]
        named = dict(block.named_modules())
        path = next((p for p in DOWN_PROJECTIONS if p in named and _in_features(named[p])), None)
        if path is None and inter:
            cands = [p for p, m in named.items() if _in_features(m) == int(inter) and _out_features(m) == hidden]
            path = cands[0] if len(cands) == 1 else None
        if path is None:
            raise ModelError(
                f"{type(module).__name__}: cannot find the MLP down-projection of block {k} (tried "
                f"{', '.join(DOWN_PROJECTIONS)}, and a unique linear layer {inter} -> {hidden}); "
                f"mixture-of-experts MLPs are not supported")
        sites.append(NeuronSite(k, f"{prefix}.{k - 1}.{path}", int(_in_features(named[path]))))
    return sites


@dataclass(frozen=True)
class NeuronOptions:
    """What determines the neuron activations (all of it enters the cache key).

    Attributes
    ----------
    level : str
        ``"word"`` (one row per word; default) or ``"token"`` (one row per token).
    pooling : str
        word level: ``"last"`` (a word's activation = its last token's, as in brainlike's
        features) or ``"mean"`` over its tokens.
    layers : tuple[int, ...] | None
        1-based block numbers (``None`` = all blocks).
    max_window : int | None
        window length in tokens (``None`` = the model's limit, at most 1024); windows overlap
        by half. Smaller windows lower the peak memory (one window's rows are held at once).
    chunk_rows : int
        rows (words/tokens) per chunk file; with the window this bounds the memory.
    """

    level: str = "word"
    pooling: str = "last"
    layers: tuple[int, ...] | None = None
    max_window: int | None = None
    chunk_rows: int = 256

    def __post_init__(self) -> None:
        if self.level not in ("word", "token"):
            raise BrainlikeError(f"level must be 'word' or 'token', not {self.level!r}")
        if self.pooling not in ("last", "mean"):
            raise BrainlikeError(f"pooling must be 'last' or 'mean', not {self.pooling!r}")
        if self.max_window is not None and self.max_window < 2:
            raise BrainlikeError(f"max_window must be >= 2, got {self.max_window}")
        if self.chunk_rows < 1:
            raise BrainlikeError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(k) for k in self.layers))


# ------------------------------------------------------------------------------------------ reader
_CHUNK = re.compile(r"chunk_(\d{8})_(\d{8})\.safetensors$")


class NeuronActivations:
    """Neuron activations of one model for one stimulus, stored as chunk files (read lazily).

    Attributes
    ----------
    path : str | Path
        the activation folder.
    model : str
        model name.
    words : list of str
        the stimulus words.
    level : str
        ``"word"`` or ``"token"``.
    layers : tuple of int
        1-based block numbers stored, e.g. ``(1, 2, 3, 4, 5)``.
    layer_sizes : tuple of int
        neurons per stored block.
    word_index : ndarray of shape (n_rows,), int64
        ``(n_rows,)`` int64, the word each row belongs to (``arange(n_words)`` at word level).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.exists():
            raise BrainlikeError(f"{self.path} is not a neuron activation folder (no meta.json)")
        self.meta = json.loads(meta_file.read_text())
        self.model: str = self.meta["model"]
        self.words: tuple[str, ...] = tuple(self.meta["words"])
        self.level: str = self.meta["options"]["level"]
        self.layers: tuple[int, ...] = tuple(self.meta["layers"])
        self.layer_sizes: tuple[int, ...] = tuple(self.meta["layer_sizes"])
        self.word_index = np.asarray(self.meta["word_index"], dtype=np.int64)
        if not self.complete:
            raise BrainlikeError(f"{self.path}: the extraction is incomplete (no done.json); run it again to resume")
        try:
            done = json.loads((self.path / "done.json").read_text())
        except (OSError, ValueError):
            raise CorruptNeuronsError(f"{self.path / 'done.json'} is unreadable; run the extraction again "
                                      "(with use_cache=True it recomputes what is missing)") from None
        if "chunks" in done:  # format 2: the chunks and their checksums, verified here
            self._chunks = [(int(r0), int(r1), self.path / name) for r0, r1, name, _ in done["chunks"]]
            _verify_chunks(self.path, [(self.path / c[2], c[3]) for c in done["chunks"]])
        else:  # format 1 (no checksums)
            self._chunks = _list_chunks(self.path)
        covered = 0
        for r0, r1, _ in self._chunks:
            if r0 != covered:
                raise BrainlikeError(f"{self.path}: chunk files do not tile the rows (gap at row {covered})")
            covered = r1
        if covered != self.n_rows:
            raise BrainlikeError(f"{self.path}: chunks cover {covered} of {self.n_rows} rows")

    @property
    def complete(self) -> bool:
        """Whether the extraction finished (``done.json`` exists)."""
        return (self.path / "done.json").exists()

    @property
    def n_rows(self) -> int:
        """Rows = words (word level) or tokens (token level)."""
        return int(len(self.word_index))

    @property
    def n_neurons(self) -> int:
        """The number of neurons over all stored blocks."""
        return int(sum(self.layer_sizes))

    @property
    def nbytes(self) -> int:
        """Size of the full ``(n_rows, n_neurons)`` float32 matrix in bytes."""
        return self.n_rows * self.n_neurons * 4

    def neuron_table(self) -> pd.DataFrame:
        """One row per neuron.

        ``neuron`` (global index, the column order of all arrays), ``layer`` (1-based block) and ``unit`` (index within
        the block's MLP).
        """
        layer = np.repeat(np.asarray(self.layers, dtype=np.int64), self.layer_sizes)
        unit = np.concatenate([np.arange(n, dtype=np.int64) for n in self.layer_sizes])
        return pd.DataFrame({"neuron": np.arange(self.n_neurons, dtype=np.int64), "layer": layer, "unit": unit})

    def _offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.layer_sizes)]).astype(np.int64)

    def read(self, layer: int, units: slice | None = None) -> np.ndarray:
        """``(n_rows, n_units)`` float32 activations of one block (all rows; ``units`` selects neurons)."""
        if layer not in self.layers:
            raise BrainlikeError(f"layer {layer} was not extracted (stored: {list(self.layers)})")
        units = units or slice(None)
        n_units = len(range(*units.indices(self.layer_sizes[self.layers.index(layer)])))
        key = f"layer_{layer:03d}"
        out = np.empty((self.n_rows, n_units), dtype=np.float32)
        for r0, r1, file in self._chunks:
            with safe_open(str(file), framework="numpy") as fh:
                out[r0:r1] = fh.get_slice(key)[:, units]
        return out

    def iter_blocks(self, block_size: int = 4096, progress: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(neurons, activations)``.

        Global neuron indices ``(b,)`` and ``(n_rows, b)`` float32, with ``b <= block_size``; blocks never straddle
        layers. Peak memory ≈ ``n_rows × block_size × 4`` bytes plus one chunk file's slice.
        """
        if block_size < 1:
            raise BrainlikeError(f"block_size must be >= 1, got {block_size}")
        offsets = self._offsets()
        plan = [(li, a, min(a + block_size, n))
                for li, n in enumerate(self.layer_sizes) for a in range(0, n, block_size)]
        for li, a, b in tqdm(plan, desc=f"neurons {self.model}", unit="block", disable=not progress, leave=False):
            yield np.arange(offsets[li] + a, offsets[li] + b, dtype=np.int64), self.read(self.layers[li], slice(a, b))

    def to_array(self) -> np.ndarray:
        """The full ``(n_rows, n_neurons)`` float32 matrix (small models only: see :attr:`nbytes`)."""
        return np.concatenate([self.read(k) for k in self.layers], axis=1)

    def row_onsets(self, stimulus: Stimulus) -> np.ndarray:
        """``(n_rows,)`` onset in seconds of each row (a token gets its word's onset)."""
        if tuple(stimulus.words) != self.words:
            raise BrainlikeError(f"the stimulus ({len(stimulus)} words) is not the one these activations were "
                                 f"extracted from ({len(self.words)} words)")
        return np.asarray(stimulus.onsets, dtype=np.float64)[self.word_index]


def _list_chunks(path: Path) -> list[tuple[int, int, Path]]:
    out = []
    for f in path.glob("chunk_*.safetensors"):
        m = _CHUNK.match(f.name)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), f))
    return sorted(out)


class CorruptNeuronsError(BrainlikeError):
    """A neuron activation folder is damaged: a chunk is missing or does not match its checksum."""


_VERIFIED: set[tuple] = set()


def _verify_chunks(folder: Path, files: list[tuple[Path, str]]) -> None:
    """Check every chunk against its SHA-256 (once per process while the file is unchanged)."""
    for file, digest in files:
        try:
            st = file.stat()
        except OSError:
            raise CorruptNeuronsError(f"{file} is missing; run the extraction again to recompute it") from None
        stamp = (str(file), st.st_ino, st.st_size, st.st_mtime_ns, digest)
        if stamp in _VERIFIED:
            continue
        if sha256_file(file) != digest:
            raise CorruptNeuronsError(f"{file} does not match its checksum (damaged or changed); run the "
                                      "extraction again to recompute it")
        _VERIFIED.add(stamp)


# ------------------------------------------------------------------------------------------ writer
def _window_plan(n_tokens: int, window: int) -> list[tuple[int, int, int]]:
    """Windows ``(start, stop, emit_from)`` over tokens, overlapping by half a window.

    (the plan of :func:`brainlike.models.extract_features`: :func:`brainlike.models.hooks.window_plan`).
    """
    return window_plan(n_tokens, window)


def _rows_of_window(tw: TokenizedWords, start: int, stop: int, emit_from: int, level: str, pooling: str,
                    n_prefix: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Global row indices emitted by a window and, for each, its token positions within the sequence."""
    if level == "token":
        rows = np.arange(emit_from, stop, dtype=np.int64)
        return rows, [np.array([t - start + n_prefix]) for t in rows]
    sel = np.flatnonzero((tw.word_end - 1 >= emit_from) & (tw.word_end - 1 < stop))
    positions = []
    for w in sel:
        last = int(tw.word_end[w]) - 1
        first = last if pooling == "last" else max(int(tw.word_start[w]), start)
        positions.append(np.arange(first, last + 1) - start + n_prefix)
    return sel.astype(np.int64), positions


def _pool_matrix(positions: list[np.ndarray], length: int) -> torch.Tensor:
    """``(n_rows, length)`` averaging matrix: row i averages the token positions of row i."""
    mat = torch.zeros(len(positions), length, dtype=torch.float32)
    for i, pos in enumerate(positions):
        mat[i, torch.from_numpy(pos)] = 1.0 / len(pos)
    return mat


def _atomic_save(tensors: dict[str, np.ndarray], path: Path) -> None:
    """Write one chunk file crash-safely (:func:`brainlike.fileio.atomic_write`)."""
    atomic_write(path, lambda tmp: save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp)))


def _chunk_name(r0: int, r1: int) -> str:
    return f"chunk_{r0:08d}_{r1:08d}.safetensors"


def _read_meta(folder: Path) -> dict | None:
    """The folder's ``meta.json``, ``None`` when there is none, ``{}`` when it cannot be read."""
    try:
        text = (folder / "meta.json").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        meta = json.loads(text)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _refuse_foreign(folder: Path, key: str, out_dir) -> dict | None:
    """The folder's meta.json; a folder holding another extraction (or files brainlike did not write) is an error."""
    old = _read_meta(folder)
    if old is not None and old.get("key") != key and (out_dir is not None or old):
        raise BrainlikeError(
            f"{folder} already holds "
            f"{'an unreadable meta.json' if not old else 'the neuron activations of another extraction'}"
            f"{'' if not old else ' (other model, words or options)'}; "
            "pass a new or empty folder as out_dir, or delete that folder yourself")
    if old is None and (folder / "done.json").exists():
        raise BrainlikeError(f"{folder} holds a done.json that brainlike did not write (no meta.json); pass a "
                             "new or empty folder as out_dir")
    return old


def extract_neurons(
    model: str | LoadedModel,
    stimulus: Stimulus,
    options: NeuronOptions | None = None,
    out_dir: str | Path | None = None,
    use_cache: bool = True,
    device: str = "cpu",
    progress: bool = True,
    **option_overrides,
) -> NeuronActivations:
    """Stream the post-nonlinearity MLP activations of every neuron for every word (or token) to disk.

    The blocks are found and hooked by :mod:`brainlike.models.hooks`, as for hidden states. Every chunk
    file is written crash-safely and recorded, with its SHA-256, in the folder's journal (the
    :class:`~brainlike.cache.Journal` of hidden-state extraction); ``done.json`` lists all chunks and
    their checksums, which :class:`NeuronActivations` verifies. An interrupted run resumes after the
    last chunk whose bytes still match the journal; a damaged chunk is recomputed (with a warning). The
    folder is locked while it is written. Nothing in the folder is ever deleted: chunks are overwritten
    in place, and a folder holding another extraction is refused.

    Parameters
    ----------
    model : str | LoadedModel
        a registered name, local path, hub id or :class:`LoadedModel`.
    stimulus : Stimulus
        the words (timing is not used here).
    options : NeuronOptions | None
        :class:`NeuronOptions`; keyword overrides (``level="token"``, ``chunk_rows=64``) work too.
    out_dir : str | Path | None
        the activation folder (default ``<cache>/neurons/<key>``, a content-hash key of model,
        words and options).
    use_cache : bool
        reuse a complete folder and resume an incomplete one; ``False`` recomputes from scratch.

    Returns
    -------
    NeuronActivations
        :class:`NeuronActivations` reading ``(n_rows, n_neurons)`` float32 activations (rows = words or
        tokens; units = the model's activation values, e.g. SiLU(gate)·up for Llama).

    Raises
    ------
    BrainlikeError
        ``out_dir`` is a file, or holds the activations of another extraction.
    """
    options = options or NeuronOptions()
    if option_overrides:
        options = NeuronOptions(**{**asdict(options), **option_overrides})
    lm = model if isinstance(model, LoadedModel) else load_model(model, device=device)
    sites = find_neuron_sites(lm, options.layers)
    max_window = min(options.max_window or 1024, lm.max_tokens)
    key = cache_key(model=lm.fingerprint, name=lm.name, words=stimulus.text_hash(), options=asdict(options),
                    max_window=max_window, version=NEURON_FORMAT_VERSION)
    folder = Path(out_dir) if out_dir is not None else default_cache_dir() / "neurons" / key
    if folder.exists() and not folder.is_dir():
        raise BrainlikeError(f"out_dir {folder} is a file; pass a folder (new or empty) for the neuron activations")
    entry = CacheEntry(folder.parent, folder.name, final_name="done.json")
    _refuse_foreign(folder, key, out_dir)  # before the lock too: a refused folder is left untouched
    with entry.lock():
        old = _refuse_foreign(folder, key, out_dir)  # again under the lock (another process may have written)
        if use_cache and old and (folder / "done.json").exists():
            try:
                return NeuronActivations(folder)
            except BrainlikeError as exc:
                warnings.warn(f"damaged neuron activations, recomputing the damaged part: {exc}", RuntimeWarning,
                              stacklevel=2)
        return _extract_neurons(lm, stimulus, options, sites, key, max_window, folder, entry, use_cache, device,
                                progress)


def _extract_neurons(lm: LoadedModel, stimulus: Stimulus, options: NeuronOptions, sites: list[NeuronSite],
                     key: str, max_window: int, folder: Path, entry: CacheEntry, use_cache: bool, device: str,
                     progress: bool) -> NeuronActivations:
    """Run the windows not yet on disk (the caller holds the folder's lock)."""
    tw = tokenize_words(lm.tokenizer, stimulus.words)
    pre, suf = np.array(tw.prefix, dtype=np.int64), np.array(tw.suffix, dtype=np.int64)
    window = max_window - len(pre) - len(suf)
    if window < 1:
        raise BrainlikeError(f"{lm.name}: max_window {max_window} leaves no room next to special tokens")
    if options.level == "word":
        too_long = np.flatnonzero(tw.word_end - tw.word_start > window)
        if too_long.size and options.pooling == "mean":
            i = int(too_long[0])
            raise BrainlikeError(f"word {i + 1} {stimulus.words[i]!r} has more tokens than the window ({window})")
        word_index = np.arange(len(stimulus), dtype=np.int64)
    else:
        word_index = np.repeat(np.arange(len(stimulus), dtype=np.int64), tw.word_end - tw.word_start)
    n_rows = len(word_index)
    meta = {"key": key, "model": lm.name, "fingerprint": lm.fingerprint, "stimulus": stimulus.name,
            "words": list(stimulus.words), "options": asdict(options), "max_window": max_window,
            "layers": [s.layer for s in sites], "layer_sizes": [s.n_neurons for s in sites],
            "modules": [s.module_name for s in sites], "word_index": word_index.tolist(),
            "version": NEURON_FORMAT_VERSION}
    (folder / "done.json").unlink(missing_ok=True)  # ours (meta.json has our key): the run is not complete
    atomic_write_json(folder / "meta.json", meta, indent=None)

    # chunks already on disk: the journal's contiguous prefix whose bytes still match their checksums
    journal = Journal(entry.journal_path, {"key": key, "version": NEURON_FORMAT_VERSION, "n_rows": n_rows,
                                           "chunk_rows": options.chunk_rows})
    chunks: list[tuple[int, int, str, str]] = []
    done_rows = 0
    for _, (r0, r1, digest) in sorted(journal.read().items()) if use_cache else []:
        file = folder / _chunk_name(r0, r1)
        if r0 != done_rows:
            break
        if not file.exists() or sha256_file(file) != digest:
            warnings.warn(f"{file}: missing or does not match its checksum; recomputing from row {r0}",
                          RuntimeWarning, stacklevel=3)
            break
        chunks.append((r0, r1, file.name, digest))
        done_rows = r1

    modules = dict(lm.model.named_modules())
    captured: dict[int, torch.Tensor] = {}
    select: dict[str, torch.Tensor] = {}

    def make_hook(layer: int):
        def hook(_module, args):
            x = args[0][0]  # (seq_len, n_neurons) of the single sequence
            if "index" in select:
                captured[layer] = x.index_select(0, select["index"]).float().cpu()
            else:
                captured[layer] = (select["pool"].to(x.device, torch.float32) @ x.float()).cpu()
        return hook

    buffer: list[dict[int, np.ndarray]] = []
    buffered_rows: list[np.ndarray] = []
    n_buffered = 0

    def flush(final: bool = False) -> None:
        nonlocal done_rows, buffer, buffered_rows, n_buffered
        if not (n_buffered >= options.chunk_rows or (final and n_buffered > 0)):
            return
        merged = {s.layer: np.concatenate([b[s.layer] for b in buffer]) for s in sites}
        rows = np.concatenate(buffered_rows)
        buffer, buffered_rows = [], []
        if not np.array_equal(rows, np.arange(done_rows, done_rows + len(rows))):
            raise RuntimeError("internal error: rows emitted out of order")
        while n_buffered >= options.chunk_rows or (final and n_buffered > 0):
            take = min(options.chunk_rows, n_buffered)
            file = folder / _chunk_name(done_rows, done_rows + take)
            _atomic_save({f"layer_{k:03d}": v[:take] for k, v in merged.items()}, file)
            digest = sha256_file(file)
            journal.append(done_rows // options.chunk_rows, done_rows, done_rows + take, digest)
            chunks.append((done_rows, done_rows + take, file.name, digest))
            merged = {k: v[take:] for k, v in merged.items()}  # views: no copy
            n_buffered -= take
            done_rows += take
        if n_buffered:
            buffer, buffered_rows = [merged], [rows[len(rows) - n_buffered:]]

    plan = _window_plan(tw.n_tokens, window)
    journal.open(fresh=not chunks)
    try:
        with HookSet() as hooks:
            for s in sites:
                hooks.pre(modules[s.module_name], make_hook(s.layer))
            for start, stop, emit_from in tqdm(plan, desc=f"neurons {lm.name}", unit="window",
                                               disable=not progress, leave=False):
                rows, positions = _rows_of_window(tw, start, stop, emit_from, options.level, options.pooling, len(pre))
                keep = rows >= done_rows + n_buffered
                if not keep.any():
                    continue
                rows = rows[keep]
                positions = [p for p, k in zip(positions, keep) if k]
                ids = np.concatenate([pre, tw.input_ids[start:stop], suf])
                select.clear()
                if all(len(p) == 1 for p in positions):
                    select["index"] = torch.from_numpy(np.concatenate(positions)).to(device)
                else:
                    select["pool"] = _pool_matrix(positions, len(ids))
                captured.clear()
                forward(lm.model, lm.tokenizer.pad_token_id, [ids], device)
                buffer.append({s.layer: np.array(captured[s.layer].numpy()) for s in sites})  # numpy-owned copy
                captured.clear()
                buffered_rows.append(rows)
                n_buffered += len(rows)
                flush()
            flush(final=True)
    finally:
        journal.close()
    if done_rows != n_rows:
        raise RuntimeError(f"internal error: {done_rows} of {n_rows} rows extracted")
    atomic_write_json(folder / "done.json", {"n_rows": n_rows, "n_neurons": sum(s.n_neurons for s in sites),
                                             "chunks": [list(c) for c in chunks]}, indent=None)
    return NeuronActivations(folder)
