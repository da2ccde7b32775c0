"""Loading a resolved model and its tokenizer with transformers (offline-friendly).

Safety and integrity:

* Weights are read from safetensors. Pickle weights (``pytorch_model.bin``, ``*.pt``) can run code when
  unpickled, so a model that only has those is refused unless the caller opts in with
  ``allow_pickle_weights=True`` (transformers then reads them with ``torch.load(weights_only=True)``).
* A GGUF model is converted once into a float32 safetensors copy in the brainlike cache; the SHA-256 of
  every file of the copy is recorded when it is made and checked when it is used (once per process per
  file while its size and mtime stay the same). A damaged or truncated copy is rebuilt with a warning,
  so it can never silently change the features (whose cache key is the GGUF file's own fingerprint).
* ``random_weights=True`` (or the name ``<model>@random[:SEED]``) gives the random-weight twin: the same
  config and tokenizer, weights from ``from_config`` (transformers' ``_init_weights``) under
  ``torch.manual_seed(seed)``, bit-identical for a seed.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from brainlike.errors import BrainlikeError, ModelError
from brainlike.fileio import TMP_MARK, atomic_write_json, fsync_dir, sha256_file
from brainlike.models.registry import ModelEntry, random_twin, resolve_model

log = logging.getLogger(__name__)

#: Weight files that are Python pickles (``torch.load``), refused unless ``allow_pickle_weights``.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

#: The record of a converted GGUF copy: the SHA-256 and size of each of its files.
CONVERSION_MANIFEST = "brainlike-conversion.json"

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A model ready for feature extraction.

    Attributes
    ----------
    entry : ModelEntry
        where it came from.
    model : torch.nn.Module
        the transformers module (eval mode); for a static model its
        :class:`~brainlike.models.static.StaticEmbeddings`.
    tokenizer : object
        a *fast* tokenizer (offsets are needed for word alignment); ``None`` for a static model.
    kind : str
        ``"causal"``, ``"encoder"`` or ``"static"`` (one context-free vector per word, ``n_layers=0``).
    n_layers : int
        transformer blocks; hidden states have ``n_layers + 1`` entries (embeddings first).
    hidden_size : int
        width of the residual stream.
    max_tokens : int
        the longest input the model takes (its position limit).
    fingerprint : str
        content identity used in cache keys.
    """

    entry: ModelEntry
    model: torch.nn.Module
    tokenizer: object
    kind: str
    n_layers: int
    hidden_size: int
    max_tokens: int
    fingerprint: str

    @property
    def name(self) -> str:
        """The model's name."""
        return self.entry.name


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """The ``torch.dtype`` of a dtype name (a ``torch.dtype`` passes through)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ModelError(f"dtype must be one of {sorted(_DTYPES)}, not {dtype!r}")
    return _DTYPES[dtype]


_MEMO: dict[tuple, LoadedModel] = {}


def load_model(
    name_or_path: str | ModelEntry,
    dtype: str = "float32",
    device: str = "cpu",
    revision: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = "eager",
    cache: bool = True,
    convert_gguf: bool = True,
    random_weights: bool = False,
    seed: int = 0,
    allow_pickle_weights: bool = False,
) -> LoadedModel:
    """Load a model (registered name, local folder, .gguf file, or hub id) and its fast tokenizer.

    Hub models are only fetched when the user has network access and ``HF_HUB_OFFLINE`` is unset;
    otherwise only the local HF cache is used. ``trust_remote_code`` stays off unless asked for.
    ``attn_implementation="eager"`` makes attention weights available (geometry analyses).
    ``cache`` memoises the loaded model in this process; ``convert_gguf`` loads a GGUF model from a
    converted copy kept in the brainlike cache (made on first use and verified, see
    :func:`_converted_gguf`).

    ``random_weights`` loads the random-weight twin with ``seed`` instead of the trained weights (same as
    the name ``<model>@random:<seed>``). ``allow_pickle_weights`` permits ``.bin``/``.pt`` pickle weights
    when a model has no safetensors (off by default: unpickling can run code).

    Raises
    ------
    ModelError
        the model cannot be found or loaded, has only pickle weights (without the opt-in), or
        a weight file is damaged (the message names the file and what to do).
    """
    from transformers import AutoConfig, AutoTokenizer

    entry = name_or_path if isinstance(name_or_path, ModelEntry) else resolve_model(name_or_path, revision)
    if random_weights and entry.random_seed is None:
        entry = random_twin(entry, seed)
    key = (entry, dtype, device, trust_remote_code, attn_implementation, convert_gguf, allow_pickle_weights)
    if cache and key in _MEMO:
        return _MEMO[key]
    tdtype = torch_dtype(dtype)
    fingerprint = entry.fingerprint()
    if entry.source == "static":  # word vectors: no network, no tokenizer
        loaded = _load_static(entry, fingerprint)
        if cache:
            _MEMO[key] = loaded
        return loaded
    trained = dataclasses.replace(entry, random_seed=None)
    load_entry = _converted_gguf(trained, trained.fingerprint()) if entry.gguf_file and convert_gguf else entry
    if entry.source == "onnx":
        load_entry = _converted_onnx(trained, trained.fingerprint())
    kwargs: dict = {"trust_remote_code": trust_remote_code}
    if entry.revision:
        kwargs["revision"] = entry.revision
    if load_entry.gguf_file:
        kwargs["gguf_file"] = load_entry.gguf_file
    if entry.source == "hub" and os.environ.get("HF_HUB_OFFLINE") == "1":
        kwargs["local_files_only"] = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = AutoConfig.from_pretrained(load_entry.path, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(load_entry.path, **kwargs)
            kind, auto = _model_class(entry, config)
            model_kwargs = dict(kwargs, dtype=tdtype)
            if attn_implementation:
                model_kwargs["attn_implementation"] = attn_implementation
            if entry.random_seed is not None:
                model = _random_model(auto, config, entry.random_seed, model_kwargs)
            else:
                if not load_entry.gguf_file:
                    _weights_policy(load_entry, model_kwargs, allow_pickle_weights)
                try:
                    model = auto.from_pretrained(load_entry.path, **model_kwargs)
                except (ValueError, TypeError) as exc:
                    if "attn_implementation" not in str(exc) and "attention" not in str(exc):
                        raise
                    model_kwargs.pop("attn_implementation", None)
                    model = auto.from_pretrained(load_entry.path, **model_kwargs)
    except ModelError:
        raise
    except OSError as exc:
        hint = (" (offline: HF_HUB_OFFLINE=1 and the model is not in the local cache; use a registered offline "
                "model such as smollm2-135m / minilm-l6 or a local folder)") if entry.source == "hub" else ""
        if entry.source == "hub" and "safetensors" in str(exc) and not allow_pickle_weights:
            hint = (" (brainlike only loads safetensors weights unless you pass allow_pickle_weights=True: pickle "
                    "weights can run code when loaded)")
        raise ModelError(f"cannot load model {entry.path!r}: {exc}{hint}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{entry.name}: a fast tokenizer is required for word alignment (offset mapping)")
    model.to(device).eval()
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    text_cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_layers = int(getattr(text_cfg, "num_hidden_layers", 0) or getattr(text_cfg, "n_layer", 0))
    hidden = int(getattr(text_cfg, "hidden_size", 0) or getattr(text_cfg, "n_embd", 0))
    max_tokens = int(getattr(text_cfg, "max_position_embeddings", 0) or getattr(text_cfg, "n_positions", 0) or 2048)
    if (getattr(text_cfg, "type_vocab_size", None) is not None
            and getattr(text_cfg, "position_embedding_type", "absolute") == "absolute"):
        max_tokens = min(max_tokens, 512)
    loaded = LoadedModel(entry, model, tokenizer, kind, n_layers, hidden, max_tokens, fingerprint)
    if cache:
        _MEMO[key] = loaded
    return loaded


def _load_static(entry: ModelEntry, fingerprint: str) -> LoadedModel:
    """A static word-vector model (:mod:`brainlike.models.static`).

    ``model`` is its :class:`~brainlike.models.static.StaticEmbeddings`, no tokenizer, one hidden state
    (``n_layers=0``).
    """
    from brainlike.models.static import load_static

    vectors, vocab = (Path(f) for f in entry.extra["files"])
    emb = load_static(vectors, vocab, entry.random_seed)
    return LoadedModel(entry, emb, None, "static", 0, emb.dim, 0, fingerprint)


def _weights_policy(entry: ModelEntry, model_kwargs: dict, allow_pickle: bool) -> None:
    """Prefer safetensors; refuse a local folder that only holds pickle weights unless ``allow_pickle``."""
    if entry.source == "hub":
        if not allow_pickle:
            model_kwargs["use_safetensors"] = True  # transformers raises (OSError) when there are none
        return
    root = Path(entry.path)
    if any(root.glob("*.safetensors")):
        model_kwargs["use_safetensors"] = True
        return
    pickles = sorted(p.name for p in root.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles and not allow_pickle:
        raise ModelError(
            f"{root} holds only pickle weights ({', '.join(pickles)}), which can run code when loaded; convert "
            "them to safetensors (model.save_pretrained(folder) writes model.safetensors) or, if you trust the "
            "file, pass allow_pickle_weights=True")
    if pickles:
        model_kwargs["use_safetensors"] = False  # transformers reads them with torch.load(weights_only=True)


def _random_model(auto, config, seed: int, model_kwargs: dict) -> torch.nn.Module:
    """``auto.from_config(config)`` with its weights initialised under ``torch.manual_seed(seed)``.

    Initialised by transformers' ``_init_weights``, without disturbing the caller's random state.
    """
    kw = {k: v for k, v in model_kwargs.items() if k in ("dtype", "attn_implementation", "trust_remote_code")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return auto.from_config(config, **kw)
        except (ValueError, TypeError) as exc:
            if "attn_implementation" not in str(exc) and "attention" not in str(exc):
                raise
            kw.pop("attn_implementation", None)
            torch.manual_seed(seed)
            return auto.from_config(config, **kw)


_CONVERTED_OK: set[tuple[str, int, int]] = set()


def _verify_converted(folder: Path) -> str | None:
    """``None`` when every file of a converted copy matches the SHA-256 recorded at conversion, else what is wrong.

    Each file is hashed once per process while its size and mtime stay the same.
    """
    import json

    try:
        manifest = json.loads((folder / CONVERSION_MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder / CONVERSION_MANIFEST} is missing or unreadable"
    for name, rec in sorted(files.items()):
        f = folder / name
        try:
            st = f.stat()
        except OSError:
            return f"{f} is missing"
        stamp = (str(f), st.st_size, st.st_mtime_ns)
        if stamp in _CONVERTED_OK:
            continue
        if st.st_size != rec.get("size"):
            return f"{f} has {st.st_size:,} bytes, {rec.get('size'):,} when converted (truncated?)"
        if sha256_file(f) != rec.get("sha256"):
            return f"{f} does not match the SHA-256 recorded when it was converted"
        _CONVERTED_OK.add(stamp)
    return None


@contextmanager
def _gguf_parsed_once():
    """Within the block, ``gguf.GGUFReader`` and ``gguf.get_tensor_name_map`` are memoised.

    transformers parses the whole GGUF file (every tokenizer field: ~590 k for SmolLM2's 49 k-token
    vocabulary) once for the config, once more for the model's config, once for the weights and once for the
    tokenizer, and rebuilds the same tensor-name map for each of the ~400 tensors; both are pure functions of
    their arguments (the reader only memory-maps the file, read-only). transformers imports both names from
    ``gguf`` at call time, so replacing them on the module for the duration of one conversion is enough; they
    are restored on exit. Measured on SmolLM2-135M: the conversion's CPU time falls ~3x and the written files
    are byte-identical (same SHA-256; ``tests/test_models_loading.py``).
    """
    import gguf

    reader, names = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = lru_cache(maxsize=4)(lambda path, mode="r": reader(path, mode))
    gguf.get_tensor_name_map = lru_cache(maxsize=64)(names)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader, names


def _converted_gguf(entry: ModelEntry, fingerprint: str) -> ModelEntry:
    """A GGUF model converted once to a Hugging Face folder (float32 safetensors) in the cache.

    transformers de-quantises a GGUF file and converts its tokenizer on every load (measured here:
    Gemma 3 270M 86 s, SmolLM2-135M 5-30 s); the converted folder loads in seconds with the same
    weights. Keyed by the GGUF file's content hash (see :func:`_converted_copy`). Falls back to the GGUF
    file when the conversion cannot be written (read-only cache, full disk).
    """
    def build(tmp: Path) -> dict:
        from transformers import AutoConfig, AutoTokenizer

        with warnings.catch_warnings(), _gguf_parsed_once():
            warnings.simplefilter("ignore")
            kw = {"gguf_file": entry.gguf_file}
            config = AutoConfig.from_pretrained(entry.path, **kw)
            _, auto = _model_class(entry, config)
            model = auto.from_pretrained(entry.path, dtype=torch.float32, **kw)
            tokenizer = AutoTokenizer.from_pretrained(entry.path, **kw)
            # the weights are de-quantised float32 already; transformers only refuses to save a model
            # that still carries its GGUF quantizer object
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        return {"gguf_file": entry.gguf_file}

    return _converted_copy(entry, fingerprint, "from-gguf", str(entry.gguf_file), build, fallback=True)


def _converted_onnx(entry: ModelEntry, fingerprint: str) -> ModelEntry:
    """An ONNX BERT graph converted once to a ``BertModel`` folder in the cache, verified against the graph.

    (:func:`brainlike.models.onnx_bert.convert_onnx_bert`; the differences are kept in the manifest).
    """
    from brainlike.models.onnx_bert import convert_onnx_bert

    onnx_file = Path(entry.path) / entry.extra["onnx_file"]

    def build(tmp: Path) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {"onnx_file": onnx_file.name,
                    "verification": convert_onnx_bert(onnx_file, entry.extra["tokenizer"], tmp)}

    return _converted_copy(entry, fingerprint, "from-onnx", onnx_file.name, build, fallback=False)


def _converted_copy(entry: ModelEntry, fingerprint: str, subdir: str, what: str, build, fallback: bool) -> ModelEntry:
    """A Hugging Face folder made once from ``entry`` by ``build(tmp) -> manifest fields``, in the cache.

    Keyed by the source's content hash; written to a temporary folder that is renamed into place with
    :data:`CONVERSION_MANIFEST` (the SHA-256 of each file, plus ``build``'s fields), so an interrupted
    conversion leaves nothing half-written. The copy is verified against its manifest whenever it is used;
    a damaged one is rebuilt (with a warning). When the folder cannot be written, ``fallback`` returns
    ``entry`` itself (with a warning), else raises :class:`ModelError`.
    """
    from brainlike.cache import CacheEntry, default_cache_dir

    out = default_cache_dir() / "models" / subdir / fingerprint.replace(":", "-")
    converted = ModelEntry(entry.name, str(out), "local", None, entry.kind, description=entry.description)
    if out.exists() and _verify_converted(out) is None:
        return converted
    with CacheEntry(out.parent / ".locks", out.name).lock():  # one process converts, the others wait
        if out.exists():
            problem = _verify_converted(out)
            if problem is None:
                return converted
            msg = f"the converted copy of {what} is damaged ({problem}); rebuilding it"
            warnings.warn(msg, RuntimeWarning, stacklevel=4)
            log.warning(msg)
            shutil.rmtree(out, ignore_errors=True)  # brainlike's own cache folder, never a user folder
        tmp = out.with_name(f"{out.name}{TMP_MARK}{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            fields = build(tmp)
            files = {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
                     for p in sorted(tmp.iterdir()) if p.is_file()}
            atomic_write_json(tmp / CONVERSION_MANIFEST, {"source": fingerprint, **fields, "files": files})
            for p in tmp.iterdir():
                with open(p, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp, out)
            fsync_dir(out.parent)
        except ModelError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except (OSError, BrainlikeError) as exc:  # fileio reports a read-only folder / full disk as BrainlikeError
            shutil.rmtree(tmp, ignore_errors=True)
            if not fallback:
                raise ModelError(f"could not write the converted copy of {what} to {out} ({exc}); make the "
                                 "brainlike cache writable or set BRAINLIKE_CACHE to another folder") from None
            warnings.warn(f"could not cache a converted copy of {what} ({exc}); loading the original file",
                          stacklevel=4)
            return entry
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return converted


def _model_class(entry: ModelEntry, config) -> tuple[str, type]:
    """``(kind, transformers auto class)``: a causal LM (with its head, for bits per byte) or an encoder."""
    from transformers import AutoModel, AutoModelForCausalLM

    kind = entry.kind if entry.kind != "auto" else _guess_kind(config)
    return kind, (AutoModelForCausalLM if kind == "causal" else AutoModel)


def _guess_kind(config) -> str:
    archs = " ".join(getattr(config, "architectures", None) or [])
    if "CausalLM" in archs or "LMHead" in archs or getattr(config, "is_decoder", False):
        return "causal"
    if config.model_type in {"bert", "roberta", "distilbert", "electra", "deberta", "deberta-v2", "xlm-roberta",
                             "mpnet", "albert"}:
        return "encoder"
    return "causal"
