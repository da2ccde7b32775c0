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

independently of the story length. An interrupted run resumes from the chunks it finished.
:class:`NeuronActivations` reads the chunks back as blocks of neurons (all rows of a few thousand
neurons at a time), which is what dictionary learning over neurons needs.

Layout of an activation folder::

    meta.json                       model, words, layers and their sizes, options
    chunk_00000000_00000256.safetensors   rows [0, 256): tensors layer_001 ... (rows, n_neurons_k)
    ...
    done.json                       written last; its presence marks a complete extraction
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from tqdm.auto import tqdm

from brainlike.cache import cache_key, default_cache_dir
from brainlike.errors import BrainlikeError, ModelError
from brainlike.models.alignment import TokenizedWords, tokenize_words
from brainlike.models.loading import LoadedModel, load_model
from brainlike.stimulus import Stimulus

__all__ = ["NeuronActivations", "NeuronOptions", "NeuronSite", "extract_neurons", "find_neuron_sites"]

NEURON_FORMAT_VERSION = 1

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

_BLOCK_LISTS: tuple[str, ...] = ("layers", "layer", "h", "blocks")


@dataclass(frozen=True)
class NeuronSite:
    """Where the neurons of one transformer block are read.

    Attributes:
        layer: block number, 1-based (block ``k`` writes hidden state ``k`` of :class:`Features`).
        module_name: dotted name of the down-projection module whose *input* is captured.
        n_neurons: MLP hidden width of this block (the down-projection's input size).
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


def _blocks(model: torch.nn.Module, n_layers: int) -> tuple[str, torch.nn.ModuleList]:
    """The ModuleList of transformer blocks (the one of length ``n_layers`` with the shortest path)."""
    found = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n_layers and name.split(".")[-1] in _BLOCK_LISTS:
            found.append((name.count("."), name, mod))
    if not found:
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.ModuleList) and len(mod) == n_layers:
                found.append((name.count("."), name, mod))
    if not found:
        raise ModelError(f"{type(model).__name__}: no list of {n_layers} transformer blocks found; neuron "
                         "extraction supports Llama/Mistral/Qwen/Gemma/GPT-2/GPT-NeoX/OPT/Phi/BERT-style models")
    found.sort(key=lambda t: t[0])
    return found[0][1], found[0][2]


def find_neuron_sites(model: torch.nn.Module | LoadedModel, layers: Sequence[int] | None = None) -> list[NeuronSite]:
    """Locate each block's MLP down-projection (whose input are the post-nonlinearity neurons).

    Known module paths (:data:`DOWN_PROJECTIONS`) are tried first; otherwise the one linear layer of the
    block mapping ``config.intermediate_size`` to ``config.hidden_size`` is used.

    Args:
        model: a transformers model or a :class:`LoadedModel`.
        layers: 1-based block numbers to keep (default all).

    Raises:
        ModelError: the architecture's MLP cannot be found unambiguously (the message lists what was
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
    prefix, blocks = _blocks(module, n_layers)
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

    Attributes:
        level: ``"word"`` (one row per word; default) or ``"token"`` (one row per token).
        pooling: word level: ``"last"`` (a word's activation = its last token's, as in brainlike's
            features) or ``"mean"`` over its tokens.
        layers: 1-based block numbers (``None`` = all blocks).
        max_window: window length in tokens (``None`` = the model's limit, at most 1024); windows overlap
            by half. Smaller windows lower the peak memory (one window's rows are held at once).
        chunk_rows: rows (words/tokens) per chunk file; with the window this bounds the memory.
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

    Attributes:
        path: the activation folder.
        model: model name.
        words: the stimulus words.
        level: ``"word"`` or ``"token"``.
        layers: 1-based block numbers stored, e.g. ``(1, 2, 3, 4, 5)``.
        layer_sizes: neurons per stored block.
        word_index: ``(n_rows,)`` int64, the word each row belongs to (``arange(n_words)`` at word level).
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
        self._chunks = _list_chunks(self.path)
        if not self.complete:
            raise BrainlikeError(f"{self.path}: the extraction is incomplete (no done.json); run it again to resume")
        covered = 0
        for r0, r1, _ in self._chunks:
            if r0 != covered:
                raise BrainlikeError(f"{self.path}: chunk files do not tile the rows (gap at row {covered})")
            covered = r1
        if covered != self.n_rows:
            raise BrainlikeError(f"{self.path}: chunks cover {covered} of {self.n_rows} rows")

    @property
    def complete(self) -> bool:
        return (self.path / "done.json").exists()

    @property
    def n_rows(self) -> int:
        """Rows = words (word level) or tokens (token level)."""
        return int(len(self.word_index))

    @property
    def n_neurons(self) -> int:
        return int(sum(self.layer_sizes))

    @property
    def nbytes(self) -> int:
        """Size of the full ``(n_rows, n_neurons)`` float32 matrix in bytes."""
        return self.n_rows * self.n_neurons * 4

    def neuron_table(self) -> pd.DataFrame:
        """One row per neuron: ``neuron`` (global index, the column order of all arrays), ``layer``
        (1-based block) and ``unit`` (index within the block's MLP)."""
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
        """Yield ``(neurons, activations)``: global neuron indices ``(b,)`` and ``(n_rows, b)`` float32,
        with ``b <= block_size``; blocks never straddle layers. Peak memory ≈ ``n_rows × block_size × 4``
        bytes plus one chunk file's slice."""
        if block_size < 1:
            raise BrainlikeError(f"block_size must be >= 1, got {block_size}")
        offsets = self._offsets()
        plan = [(li, a, min(a + block_size, n)) for li, n in enumerate(self.layer_sizes) for a in range(0, n, block_size)]
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


# ------------------------------------------------------------------------------------------ writer
def _window_plan(n_tokens: int, window: int) -> list[tuple[int, int, int]]:
    """Windows ``(start, stop, emit_from)`` over tokens, overlapping by half a window (the same plan as
    :func:`brainlike.models.extract_features`)."""
    if n_tokens <= window:
        return [(0, n_tokens, 0)]
    step = max(window // 2, 1)
    plan = [(0, window, 0)]
    emitted = window
    while emitted < n_tokens:
        stop = min(emitted + step, n_tokens)
        plan.append((max(stop - window, 0), stop, emitted))
        emitted = stop
    return plan


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
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _base_module(model: torch.nn.Module) -> torch.nn.Module:
    base = getattr(model, "base_model", None)
    return base if isinstance(base, torch.nn.Module) else model


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

    Args:
        model: a registered name, local path, hub id or :class:`LoadedModel`.
        stimulus: the words (timing is not used here).
        options: :class:`NeuronOptions`; keyword overrides (``level="token"``, ``chunk_rows=64``) work too.
        out_dir: the activation folder (default ``<cache>/neurons/<key>``, a content-hash key of model,
            words and options).
        use_cache: reuse a complete folder and resume an incomplete one; ``False`` recomputes from scratch.

    Returns:
        :class:`NeuronActivations` reading ``(n_rows, n_neurons)`` float32 activations (rows = words or
        tokens; units = the model's activation values, e.g. SiLU(gate)·up for Llama).
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
    if use_cache and (folder / "done.json").exists():
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("key") == key:
            return NeuronActivations(folder)
    if not use_cache or ((folder / "meta.json").exists()
                         and json.loads((folder / "meta.json").read_text()).get("key") != key):
        for f in list(folder.glob("chunk_*.safetensors")) + [folder / "done.json"]:
            f.unlink(missing_ok=True)

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
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"meta.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, folder / "meta.json")

    # rows already on disk (a contiguous prefix of finished chunks) are not recomputed
    done_rows = 0
    for r0, r1, f in _list_chunks(folder):
        if r0 == done_rows:
            done_rows = r1
        else:
            f.unlink()
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

    handles = [modules[s.module_name].register_forward_pre_hook(make_hook(s.layer)) for s in sites]
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
            _atomic_save({f"layer_{k:03d}": v[:take] for k, v in merged.items()},
                         folder / f"chunk_{done_rows:08d}_{done_rows + take:08d}.safetensors")
            merged = {k: v[take:] for k, v in merged.items()}  # views: no copy
            n_buffered -= take
            done_rows += take
        if n_buffered:
            buffer, buffered_rows = [merged], [rows[len(rows) - n_buffered:]]

    plan = _window_plan(tw.n_tokens, window)
    try:
        with torch.inference_mode():
            base = _base_module(lm.model)
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
                base(input_ids=torch.from_numpy(ids)[None].to(device))
                buffer.append({s.layer: np.array(captured[s.layer].numpy()) for s in sites})  # numpy-owned copy
                captured.clear()
                buffered_rows.append(rows)
                n_buffered += len(rows)
                flush()
            flush(final=True)
    finally:
        for h in handles:
            h.remove()
    if done_rows != n_rows:
        raise RuntimeError(f"internal error: {done_rows} of {n_rows} rows extracted")
    (folder / "done.json").write_text(json.dumps({"n_rows": n_rows, "n_neurons": sum(s.n_neurons for s in sites)}))
    return NeuronActivations(folder)
