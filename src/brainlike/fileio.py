"""Crash-safe file writes: the one helper every module of brainlike uses to put a file on disk.

A file is written to a temporary name beside its destination, flushed to disk (``fsync``), renamed over
the destination (atomic on POSIX) and the folder entry is synced too, so a reader sees either the old
file or the whole new one, also after a crash or ``kill -9``. Temporary names start with
:data:`TMP_MARK` and end with the destination's name (so writers that choose a format by the file
extension, like nibabel, still work), and a later run can find and delete the leftovers of a killed one
(:func:`clean_tmp`).

This module sits at the bottom of the package: it imports nothing from brainlike but the errors.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brainlike.errors import BrainlikeError

#: prefix of the names of temporary files (``.brainlike-tmp-<pid>-<name>``)
TMP_MARK = ".brainlike-tmp-"


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, as a hex string (read in ``block``-byte pieces)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for b in iter(lambda: fh.read(block), b""):
            h.update(b)
    return h.hexdigest()


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where the OS does not support it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tmp_name(name: str) -> str:
    """The temporary name under which this process writes the file ``name``."""
    return f"{TMP_MARK}{os.getpid()}-{name}"


def _io_error(exc: OSError, path: Path) -> BrainlikeError:
    if exc.errno == errno.ENOSPC:
        return BrainlikeError(f"no space left on the device while writing {path}; free some space (or choose "
                              "another output folder) and run the same command again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BrainlikeError(f"cannot write {path}: permission denied (read-only folder?); choose a folder "
                              "you can write to")
    return BrainlikeError(f"cannot write {path}: {exc.strerror or exc}")


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Write a file crash-safely: ``write(tmp)`` then fsync, rename to ``path`` and sync the folder.

    Parameters
    ----------
    path : str or Path
        The destination; its folder is created when missing.
    write : callable
        ``write(tmp)`` writes the whole content to the temporary path ``tmp`` (any writer that takes a
        path: ``df.to_parquet``, ``save_file``, ``Path.write_text`` ...).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    BrainlikeError
        When the folder is read-only or the disk is full (the temporary file is removed and the old
        file, if any, is left as it was).
    """
    path = Path(path)
    tmp = path.with_name(tmp_name(path.name))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise _io_error(exc, path) from None
    finally:
        try:
            if tmp.exists():
                tmp.unlink()
        except OSError:
            pass
    return path


def ensure_writable_dir(folder: str | Path, what: str = "output folder") -> Path:
    """Create ``folder`` when missing and check that files can be written in it.

    The check writes and deletes a probe file: call it before long work so that a read-only folder
    fails at once, not at the end.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    BrainlikeError
        ``folder`` (or one of its parents) is a file, or it is read-only / not permitted / on a full disk;
        the message names the folder and ``what`` it is for.
    """
    folder = Path(folder)
    hint = "choose a folder you can write to"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BrainlikeError(f"cannot use {folder} as the {what}: it (or a folder above it) is a file; "
                             f"{hint}") from None
    except OSError as exc:
        raise BrainlikeError(f"cannot create the {what} {folder}: {_reason(exc)}; {hint}") from None
    if not folder.is_dir():
        raise BrainlikeError(f"cannot use {folder} as the {what}: it is not a folder; {hint}")
    probe = folder / f".brainlike-write-probe{TMP_MARK}{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BrainlikeError(f"cannot write in the {what} {folder}: {_reason(exc)}; {hint}") from None
    return folder


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied (read-only folder?)"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """:func:`atomic_write` of a bytes object."""
    return atomic_write(path, lambda p: Path(p).write_bytes(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write` of a text (UTF-8 by default)."""
    return atomic_write(path, lambda p: Path(p).write_text(text, encoding=encoding))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """:func:`atomic_write` of a JSON document (keys sorted, so equal objects give equal bytes)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True, default=str))


def clean_tmp(root: str | Path) -> list[Path]:
    """Delete the temporary files that killed writes left below ``root``; returns them."""
    root = Path(root)
    if not root.exists():
        return []
    stale = [p for p in root.rglob(f"{TMP_MARK}*") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
