"""On-disk cache for expensive intermediate results (features), keyed by content hashes."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path


def default_cache_dir() -> Path:
    """``$BRAINLIKE_CACHE`` or ``~/.cache/brainlike``."""
    env = os.environ.get("BRAINLIKE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "brainlike"


def cache_key(**parts) -> str:
    """A stable 24-hex-digit key from JSON-serialisable parts (sorted keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


class CacheEntry:
    """A folder for one cached result, with resumable partial pieces.

    ``final`` is the finished file; pieces of an unfinished run live in ``partial/`` and are written
    atomically, so an interrupted run leaves only whole pieces and resumes from them.
    """

    def __init__(self, root: Path, key: str, final_name: str = "features.safetensors"):
        self.dir = Path(root) / key
        self.final = self.dir / final_name
        self.partial = self.dir / "partial"

    def done(self) -> bool:
        return self.final.exists()

    def piece_path(self, index: int) -> Path:
        return self.partial / f"piece_{index:06d}.safetensors"

    def has_piece(self, index: int) -> bool:
        return self.piece_path(index).exists()

    def write_meta(self, meta: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        os.replace(tmp, self.dir / "meta.json")

    def clear_partial(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)
