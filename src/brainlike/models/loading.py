"""Loading a resolved model and its tokenizer with transformers (offline-friendly)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch

from brainlike.errors import ModelError
from brainlike.models.registry import ModelEntry, resolve_model

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    """A model ready for feature extraction.

    Attributes:
        entry: where it came from.
        model: the transformers module (eval mode).
        tokenizer: a *fast* tokenizer (offsets are needed for word alignment).
        kind: ``"causal"`` or ``"encoder"``.
        n_layers: transformer blocks; hidden states have ``n_layers + 1`` entries (embeddings first).
        hidden_size: width of the residual stream.
        max_tokens: the longest input the model takes (its position limit).
        fingerprint: content identity used in cache keys.
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
        return self.entry.name


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
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
) -> LoadedModel:
    """Load a model (registered name, local folder, .gguf file, or hub id) and its fast tokenizer.

    Hub models are only fetched when the user has network access and ``HF_HUB_OFFLINE`` is unset;
    otherwise only the local HF cache is used. ``trust_remote_code`` stays off unless asked for.
    ``attn_implementation="eager"`` makes attention weights available (geometry analyses).
    ``cache`` memoises the loaded model in this process; ``convert_gguf`` loads a GGUF model from a
    converted copy kept in the brainlike cache (made on first use, see :func:`_converted_gguf`).
    """
    from transformers import AutoConfig, AutoTokenizer

    entry = name_or_path if isinstance(name_or_path, ModelEntry) else resolve_model(name_or_path, revision)
    key = (entry, dtype, device, trust_remote_code, attn_implementation, convert_gguf)
    if cache and key in _MEMO:
        return _MEMO[key]
    tdtype = torch_dtype(dtype)
    fingerprint = entry.fingerprint()
    load_entry = _converted_gguf(entry, fingerprint) if entry.gguf_file and convert_gguf else entry
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
    if getattr(text_cfg, "type_vocab_size", None) is not None and getattr(text_cfg, "position_embedding_type", "absolute") == "absolute":
        max_tokens = min(max_tokens, 512)
    loaded = LoadedModel(entry, model, tokenizer, kind, n_layers, hidden, max_tokens, fingerprint)
    if cache:
        _MEMO[key] = loaded
    return loaded


def _converted_gguf(entry: ModelEntry, fingerprint: str) -> ModelEntry:
    """A GGUF model converted once to a Hugging Face folder (float32 safetensors) in the cache.

    transformers de-quantises a GGUF file and converts its tokenizer on every load (measured here:
    Gemma 3 270M 86 s, SmolLM2-135M 5-30 s); the converted folder loads in seconds with the same
    weights. Keyed by the GGUF file's content hash; written to a temporary folder and renamed, so an
    interrupted conversion leaves nothing half-written. Falls back to the GGUF file when the
    conversion cannot be written (read-only cache, full disk).
    """
    import shutil

    from transformers import AutoConfig, AutoTokenizer

    from brainlike.cache import default_cache_dir

    out = default_cache_dir() / "models" / "from-gguf" / fingerprint.replace(":", "-")
    converted = ModelEntry(entry.name, str(out), "local", None, entry.kind, description=entry.description)
    if (out / "config.json").exists():
        return converted
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    try:
        with warnings.catch_warnings():
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
        os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        warnings.warn(f"could not cache a converted copy of {entry.gguf_file} ({exc}); loading the GGUF file",
                      stacklevel=3)
        return entry
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
    if config.model_type in {"bert", "roberta", "distilbert", "electra", "deberta", "deberta-v2", "xlm-roberta", "mpnet", "albert"}:
        return "encoder"
    return "causal"
