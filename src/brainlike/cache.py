"""On-disk cache for expensive intermediate results (features), keyed by content hashes.

A :class:`CacheEntry` is a folder per key. While a result is being computed it holds the unfinished
file (``<final>.partial``) and a :class:`Journal` of the work units already written into it; once
complete the file is renamed to its final name (atomic) next to a checksum sidecar. A lock file
serialises processes working on the same entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from contextlib import AbstractContextManager
from pathlib import Path

from brainlike.fileio import atomic_write_json, atomic_write_text
from brainlike.locking import file_lock


def default_cache_dir() -> Path:
    """``$BRAINLIKE_CACHE`` or ``~/.cache/brainlike``."""
    env = os.environ.get("BRAINLIKE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "brainlike"


def cache_key(**parts) -> str:
    """A stable 24-hex-digit key from JSON-serialisable parts (sorted keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


class CacheEntry:
    """A folder for one cached result.

    Attributes
    ----------
    dir : Path
        The entry's folder ``<root>/<key>``.
    final : Path
        The finished file; it exists only once complete (renamed into place).
    partial_file : Path
        The unfinished file an interrupted run resumes (``<final>.partial``).
    journal_path : Path
        The journal of finished work units of ``partial_file``.
    """

    def __init__(self, root: Path, key: str, final_name: str = "features.safetensors"):
        self.dir = Path(root) / key
        self.final = self.dir / final_name
        self.partial_file = self.dir / (final_name + ".partial")
        self.journal_path = self.dir / "journal.txt"
        self.partial = self.dir / "partial"  # pieces of format version 1 (removed by clear_partial)

    def done(self) -> bool:
        """Whether the finished file exists."""
        return self.final.exists()

    def write_meta(self, meta: dict) -> None:
        """Write ``meta.json`` (crash-safe) next to the entry's file."""
        atomic_write_json(self.dir / "meta.json", meta, indent=2)

    def clear_partial(self) -> None:
        """Remove the unfinished file, its journal and any leftovers of an older format."""
        shutil.rmtree(self.partial, ignore_errors=True)
        for p in (self.partial_file, self.journal_path):
            p.unlink(missing_ok=True)

    def lock(self) -> AbstractContextManager[None]:
        """Hold an exclusive lock on the entry.

        It blocks while another process holds it and is released by the kernel if the holder dies; a
        no-op where ``fcntl`` is unavailable.

        Raises
        ------
        BrainlikeError
            The cache folder cannot be created or written (names it and ``$BRAINLIKE_CACHE``).
        """
        from brainlike.fileio import ensure_writable_dir

        ensure_writable_dir(self.dir, "feature cache folder (set $BRAINLIKE_CACHE to a writable folder)")
        return file_lock(self.dir / ".lock", what=f"the cache entry {self.dir}")


_LINE = re.compile(r"^unit (\d+) (\d+) (\d+) ([0-9a-f]{64})$")


class Journal:
    """An append-only record of finished work units, one line ``unit <i> <w0> <w1> <sha256>`` each.

    The first line is a JSON header describing the file the units were written into; a journal whose
    header differs (another layout, another plan) is ignored. Every line is flushed and fsynced when
    appended; a line cut short by a crash does not parse and is ignored, so the unit is recomputed.
    """

    def __init__(self, path: Path, header: dict):
        self.path = Path(path)
        self.header = json.dumps(header, sort_keys=True, default=str)
        self._fh = None

    def read(self) -> dict[int, tuple[int, int, str]]:
        """Finished units ``{unit: (w0, w1, sha256 hex)}`` (the last line wins).

        Empty if the journal is missing or belongs to another layout.
        """
        try:
            lines = self.path.read_text(errors="replace").split("\n")
        except OSError:
            return {}
        if not lines or lines[0] != self.header:
            return {}
        out: dict[int, tuple[int, int, str]] = {}
        for line in lines[1:-1]:  # the text after the last newline is an unfinished line
            m = _LINE.match(line)
            if m:
                out[int(m.group(1))] = (int(m.group(2)), int(m.group(3)), m.group(4))
        return out

    def open(self, fresh: bool) -> None:
        """Open for appending; ``fresh`` starts a new journal (header only)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh or not self._header_matches():
            atomic_write_text(self.path, self.header + "\n")
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
        self._fh = open(self.path, "a")
        if torn:  # a line cut short by a crash: end it, so the next line parses
            self._fh.write("\n")
            self._fh.flush()

    def _header_matches(self) -> bool:
        try:
            with open(self.path) as fh:
                return fh.readline() == self.header + "\n"
        except OSError:
            return False

    def append(self, unit: int, w0: int, w1: int, digest: str) -> None:
        """Record a finished unit (durable when this returns)."""
        assert self._fh is not None, "journal not open"
        self._fh.write(f"unit {unit} {w0} {w1} {digest}\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the journal file (appends reopen it)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
