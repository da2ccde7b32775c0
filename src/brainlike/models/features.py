"""Features: hidden states of every layer for every word, and their on-disk format (safetensors).

On disk a :class:`Features` is one safetensors file whose tensors ``layer_000 … layer_L`` (each
``(n_words, hidden_size)`` float32) lie back to back in layer order, so the whole data region is one
``(n_layers + 1, n_words, hidden_size)`` array: :meth:`Features.load` maps it read-only (``np.memmap``)
instead of reading it into memory. :class:`FeatureFileWriter` pre-allocates such a file and writes rows
at their byte offsets (``os.pwrite``), which is how extraction streams one layer at a time to disk.

Integrity: a sidecar ``<file>.sha256.json`` holds the SHA-256 of the header and of every layer;
:func:`verify_checksums` recomputes them and raises :class:`CorruptFeaturesError` on any difference.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainlike.errors import BrainlikeError
from brainlike.fileio import TMP_MARK, atomic_write_json, fsync_dir

_ITEMSIZE = 4  # float32
_CHUNK = 1 << 22  # bytes per read when hashing (bounded memory)


class CorruptFeaturesError(BrainlikeError):
    """A feature file is truncated, unreadable, or does not match its checksums."""


@dataclass
class Features:
    """Word-level features of one model for one stimulus.

    Attributes
    ----------
    layers : np.ndarray
        ``(n_layers + 1, n_words, hidden_size)`` float32; index 0 is the embedding layer, index
        ``k`` the output of transformer block ``k``. After :meth:`load` (and from a cached extraction)
        this is a read-only ``np.memmap`` over the file: index it (``layers[k]``) to read one layer.
    model : str
        model name.
    words : tuple[str, ...]
        the ``n_words`` words.
    options : dict
        extraction options (pooling, context, dtype, ...) and provenance.
    """

    layers: np.ndarray
    model: str
    words: tuple[str, ...]
    options: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        """Number of hidden-state layers including the embedding layer."""
        return self.layers.shape[0]

    @property
    def n_words(self) -> int:
        """The number of words."""
        return self.layers.shape[1]

    @property
    def hidden_size(self) -> int:
        """The hidden size (features per layer)."""
        return self.layers.shape[2]

    def layer(self, k: int) -> np.ndarray:
        """``(n_words, hidden_size)`` features of layer ``k`` (0 = embeddings)."""
        return self.layers[k]

    def relative_depth(self) -> np.ndarray:
        """``(n_layers + 1,)`` layer index divided by the number of blocks: 0 = embeddings, 1 = last."""
        return np.arange(self.n_layers) / max(self.n_layers - 1, 1)

    def save(self, path: str | Path) -> Path:
        """Write one safetensors file, one layer at a time, plus its checksum sidecar.

        Atomic: the data go to a temporary file that is renamed into place once complete.

        Raises
        ------
        BrainlikeError
            ``path`` is an existing folder (nothing is written), or cannot be written.
        """
        path = Path(path)
        if path.is_dir():
            raise BrainlikeError(f"{path} is a folder; give the feature file's name, e.g. "
                                 f"{path / 'features.safetensors'}")
        tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")
        writer = FeatureFileWriter.create(tmp, self.n_layers, self.n_words, self.hidden_size,
                                          feature_metadata(self.model, self.words, self.options))
        try:
            for k in range(self.n_layers):
                writer.write_rows(k, 0, np.ascontiguousarray(self.layers[k], dtype=np.float32))
            writer.finalize(path)
        except BaseException:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, verify: bool = False) -> Features:
        """Open a feature file; ``layers`` is a read-only memory map (nothing is read until indexed).

        Parameters
        ----------
        path : str | Path
            a file written by :meth:`save` or by extraction.
        verify : bool
            recompute the SHA-256 of the header and of every layer and compare them with the
            sidecar (which must exist).

        Raises
        ------
        CorruptFeaturesError
            the file is truncated or malformed, or (``verify``) a checksum differs.
        """
        path = Path(path)
        if verify:
            verify_checksums(path)
        header, data_start = read_header(path)
        meta = header.pop("__metadata__", None) or {}
        try:
            keys = sorted(k for k in header if k.startswith("layer_"))
            infos = [header[k] for k in keys]
            shape = tuple(infos[0]["shape"]) if infos else ()
            nbytes = int(np.prod(shape)) * _ITEMSIZE if shape else 0
            contiguous = bool(infos) and len(shape) == 2 and all(
                i["dtype"] == "F32" and tuple(i["shape"]) == shape
                and list(i["data_offsets"]) == [j * nbytes, (j + 1) * nbytes] for j, i in enumerate(infos))
            words = tuple(json.loads(meta.get("words", "[]")))
            options = json.loads(meta.get("options", "{}"))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise CorruptFeaturesError(f"{path}: malformed feature header ({exc})") from None
        if contiguous and nbytes > 0:
            layers = np.memmap(path, dtype=np.float32, mode="r", offset=data_start,
                               shape=(len(infos),) + shape)
        else:  # another layout (other dtype, padded order): read it into memory
            from safetensors.numpy import load_file

            tensors = load_file(str(path))
            layers = np.stack([tensors[k] for k in keys]).astype(np.float32, copy=False)
        return cls(layers, meta.get("model", ""), words, options)


def feature_metadata(model: str, words: tuple[str, ...] | list[str], options: dict) -> dict[str, str]:
    """The safetensors ``__metadata__`` of a feature file (all values strings)."""
    return {"model": model, "words": json.dumps(list(words), ensure_ascii=False),
            "options": json.dumps(options, default=str, sort_keys=True)}


def header_bytes(n_layers: int, n_words: int, hidden: int, metadata: dict[str, str]) -> bytes:
    """The safetensors prefix (8-byte little-endian length + JSON header) of a file of layers.

    The header is space-padded so that the data start 8-byte aligned; the file holds
    ``layer_000 … layer_{n_layers-1}`` of ``(n_words, hidden)`` float32, back to back in layer order.
    """
    nbytes = n_words * hidden * _ITEMSIZE
    head: dict = {"__metadata__": metadata}
    for k in range(n_layers):
        head[f"layer_{k:03d}"] = {"dtype": "F32", "shape": [n_words, hidden],
                                  "data_offsets": [k * nbytes, (k + 1) * nbytes]}
    raw = json.dumps(head, separators=(",", ":")).encode()
    raw += b" " * (-(8 + len(raw)) % 8)
    return struct.pack("<Q", len(raw)) + raw


def read_header(path: str | Path) -> tuple[dict, int]:
    """The parsed JSON header of a safetensors file and the byte offset where its data start.

    Raises
    ------
    CorruptFeaturesError
        the file is shorter than its header says, or the header is not JSON.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            first = fh.read(8)
            if len(first) < 8:
                raise CorruptFeaturesError(f"{path}: truncated (no safetensors header)")
            (n,) = struct.unpack("<Q", first)
            size = os.fstat(fh.fileno()).st_size
            if n > size - 8:
                raise CorruptFeaturesError(f"{path}: truncated or corrupt header (length {n} > file size)")
            header = json.loads(fh.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFeaturesError(f"{path}: corrupt header ({exc})") from None
    if not isinstance(header, dict):
        raise CorruptFeaturesError(f"{path}: corrupt header (not a JSON object)")
    end = max((int(v["data_offsets"][1]) for k, v in header.items()
               if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v), default=0)
    if size < 8 + n + end:
        raise CorruptFeaturesError(f"{path}: truncated ({size} bytes, the header describes {8 + n + end})")
    return header, 8 + n


def checksum_path(path: str | Path) -> Path:
    """The sidecar holding a feature file's checksums: ``<file>.sha256.json``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256.json")


def compute_checksums(path: str | Path) -> dict:
    """SHA-256 of the header and of each layer's bytes of a feature file (reads it once, in chunks).

    Returns
    -------
    dict
        ``{"algorithm": "sha256", "size": bytes, "header": hex, "layers": [hex, ...]}``.
    """
    path = Path(path)
    header, data_start = read_header(path)
    spans = sorted((tuple(v["data_offsets"]) for k, v in header.items() if k.startswith("layer_")))
    out = {"algorithm": "sha256", "size": path.stat().st_size, "layers": []}
    with open(path, "rb") as fh:
        out["header"] = hashlib.sha256(fh.read(data_start)).hexdigest()
        for a, b in spans:
            fh.seek(data_start + a)
            out["layers"].append(_hash_stream(fh, b - a))
    return out


def verify_checksums(path: str | Path) -> None:
    """Compare a feature file with its sidecar checksums.

    Raises
    ------
    CorruptFeaturesError
        the sidecar is missing or unreadable, or the size, header or a layer differs
        (the message names the first layer that differs).
    """
    path = Path(path)
    side = checksum_path(path)
    stamp = _stamp(path, side)
    if stamp is not None and stamp in _VERIFIED:
        return  # verified in this process and untouched since (same inode, size, mtime, ctime)
    try:
        expected = json.loads(side.read_text())
    except (OSError, ValueError):
        raise CorruptFeaturesError(f"{path}: checksum file {side.name} is missing or unreadable") from None
    if not path.exists():
        raise CorruptFeaturesError(f"{path}: missing")
    if path.stat().st_size != expected.get("size"):
        raise CorruptFeaturesError(f"{path}: size {path.stat().st_size} != {expected.get('size')} (truncated?)")
    actual = compute_checksums(path)
    if actual["header"] != expected.get("header"):
        raise CorruptFeaturesError(f"{path}: header checksum mismatch")
    for k, (a, e) in enumerate(zip(actual["layers"], expected.get("layers", []))):
        if a != e:
            raise CorruptFeaturesError(f"{path}: checksum mismatch in layer {k}")
    if len(actual["layers"]) != len(expected.get("layers", [])):
        raise CorruptFeaturesError(f"{path}: {len(actual['layers'])} layers, checksums list "
                                   f"{len(expected.get('layers', []))}")
    if stamp is not None:
        _VERIFIED.add(stamp)


_VERIFIED: set[tuple] = set()


def _stamp(*paths: Path) -> tuple | None:
    """What changes whenever a file is written or replaced: inode, size, mtime and ctime (ns)."""
    try:
        return tuple((s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for s in map(os.stat, paths))
    except OSError:
        return None


def _hash_stream(fh, n: int) -> str:
    h = hashlib.sha256()
    while n > 0:
        block = fh.read(min(_CHUNK, n))
        if not block:
            raise CorruptFeaturesError(f"{fh.name}: truncated")
        h.update(block)
        n -= len(block)
    return h.hexdigest()


class FeatureFileWriter:
    """A pre-allocated feature file whose rows are written in place (``os.pwrite``), layer by layer.

    The file is created at its final size (sparse) with its complete safetensors header, so rows of any
    layer and any word range can be written in any order and re-opened after an interruption. Nothing but
    the rows being written is held in memory (no writable memory map, whose dirty pages would count in
    the process's resident memory).
    """

    def __init__(self, path: Path, fd: int, n_layers: int, n_words: int, hidden: int, data_start: int):
        self.path, self._fd = path, fd
        self.n_layers, self.n_words, self.hidden = n_layers, n_words, hidden
        self.data_start = data_start
        self.layer_bytes = n_words * hidden * _ITEMSIZE

    @classmethod
    def create(cls, path: str | Path, n_layers: int, n_words: int, hidden: int,
               metadata: dict[str, str]) -> FeatureFileWriter:
        """A new file (an existing one is replaced) of ``n_layers`` layers of ``(n_words, hidden)``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = header_bytes(n_layers, n_words, hidden, metadata)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _pwrite_all(fd, head, 0)
            os.ftruncate(fd, len(head) + n_layers * n_words * hidden * _ITEMSIZE)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, n_layers, n_words, hidden, len(head))

    @classmethod
    def reopen(cls, path: str | Path, n_layers: int, n_words: int, hidden: int,
               metadata: dict[str, str]) -> FeatureFileWriter | None:
        """Re-open an unfinished file for writing, or ``None`` if its header or size is not the expected one.

        (then it must be created anew).
        """
        path = Path(path)
        head = header_bytes(n_layers, n_words, hidden, metadata)
        size = len(head) + n_layers * n_words * hidden * _ITEMSIZE
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return None
        if os.fstat(fd).st_size != size or os.pread(fd, len(head), 0) != head:
            os.close(fd)
            return None
        return cls(path, fd, n_layers, n_words, hidden, len(head))

    def _offset(self, layer: int, w0: int) -> int:
        return self.data_start + layer * self.layer_bytes + w0 * self.hidden * _ITEMSIZE

    def write_rows(self, layer: int, w0: int, rows: np.ndarray) -> None:
        """Write ``rows`` (``(n, hidden)`` float32, C-contiguous) as words ``[w0, w0 + n)`` of ``layer``."""
        if rows.dtype != np.float32 or rows.ndim != 2 or rows.shape[1] != self.hidden or not rows.flags.c_contiguous:
            raise ValueError(f"rows must be C-contiguous float32 (n, {self.hidden}); got {rows.dtype} {rows.shape}")
        if not (0 <= layer < self.n_layers and 0 <= w0 and w0 + rows.shape[0] <= self.n_words):
            raise IndexError(f"layer {layer} rows [{w0}, {w0 + rows.shape[0]}) out of range")
        _pwrite_all(self._fd, memoryview(rows).cast("B"), self._offset(layer, w0))

    def read_rows(self, layer: int, w0: int, w1: int) -> bytes:
        """The bytes of words ``[w0, w1)`` of ``layer`` as stored."""
        n = (w1 - w0) * self.hidden * _ITEMSIZE
        out = os.pread(self._fd, n, self._offset(layer, w0))
        if len(out) != n:
            raise CorruptFeaturesError(f"{self.path}: truncated")
        return out

    def sync(self) -> None:
        """Make the written rows durable (``fdatasync``)."""
        (getattr(os, "fdatasync", None) or os.fsync)(self._fd)

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def finalize(self, final: str | Path) -> Path:
        """Sync, write the checksum sidecar of ``final``, and rename the file to ``final`` (atomic)."""
        final = Path(final)
        self.sync()
        self.close()
        sums = compute_checksums(self.path)
        atomic_write_json(checksum_path(final), sums, indent=None)  # first: no final file without checksums
        os.replace(self.path, final)
        fsync_dir(final.parent)
        return final

    def __enter__(self) -> FeatureFileWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data)
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
