"""Exclusive and shared file locks (``fcntl.flock``) that say who holds them.

One mechanism for every lock of brainlike: the output folder of ``brainlike run`` (one run at a time),
the results store (a write of a piece and its checksum is never interleaved with a read) and the
entries of the feature cache. The kernel releases a lock when its holder exits, also after ``kill -9``,
so a lock left by a dead run never blocks the next one.

The lock file is the one file brainlike writes in place instead of through
:func:`brainlike.fileio.atomic_write`: ``flock`` locks an inode, and replacing the file by a rename would
give the next process a fresh, unlocked inode. It holds one JSON line about the holder (pid, host, start
time, command), which a process that finds the lock taken reads to name the holder in its message.
It is never deleted (deleting it would break the lock the same way).
"""
from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from brainlike.errors import BrainlikeError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: locks are no-ops
    fcntl = None  # type: ignore[assignment]


class LockHeldError(BrainlikeError):
    """The lock is held by another process (the message names it)."""


def holder_info(path: str | Path) -> dict:
    """What the holder of the lock at ``path`` wrote about itself (``{}`` when unknown)."""
    try:
        text = Path(path).read_text(errors="replace").strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}


def describe_holder(info: dict) -> str:
    """``"pid 123 on host h since 2026-01-01 10:00 UTC (brainlike run zoo.yaml)"``, or ``"another process"``."""
    if not info.get("pid"):
        return "another process"
    text = f"pid {info['pid']} on host {info.get('host', '?')}"
    if info.get("since"):
        text += f" since {info['since']}"
    if info.get("command"):
        text += f" ({info['command']})"
    return text


def _write_holder(fd: int) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv and sys.argv[0] else ""}
    data = (json.dumps(info, sort_keys=True) + "\n").encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:  # the holder note is a courtesy; the lock itself is what matters
        pass


def _open(path: Path, what: str, optional: bool, create: bool) -> int | None:
    try:
        if not create:  # a reader: lock the file if a writer made one (a read-only fd can hold a flock)
            return os.open(path, os.O_RDONLY)
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if optional or not create:
            return None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise BrainlikeError(f"cannot lock {what}: cannot create {path} (read-only folder?); choose a folder "
                                 "you can write to") from None
        raise BrainlikeError(f"cannot lock {what}: cannot create {path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def file_lock(path: str | Path, *, shared: bool = False, timeout: float | None = None, what: str = "",
              on_wait: Callable[[str], None] | None = None, optional: bool = False,
              create: bool = True, note: bool = True) -> Iterator[None]:
    """Hold a lock on the file ``path`` (created when missing) for the ``with`` block.

    Parameters
    ----------
    path : str or Path
        The lock file; its folder is created when missing.
    shared : bool
        A shared (read) lock instead of an exclusive one; many shared holders may hold it at once.
    timeout : float or None
        Seconds to wait for a lock another process holds: ``None`` waits as long as it takes, ``0`` fails
        at once. When the time is up a :class:`LockHeldError` names the holder.
    what : str
        What the lock protects, for the messages (e.g. ``"the output folder brainlike-out/zoo"``).
    on_wait : callable, optional
        Called once with a message (who holds the lock) when the lock is taken and we start waiting.
    optional : bool
        Go on without a lock when the lock file cannot be created (a read-only folder): for readers.
    create : bool
        Create the lock file when missing; ``False`` (readers) goes on without a lock when there is none.
    note : bool
        Write who holds an exclusive lock into the lock file (for the messages of the processes that wait).

    Raises
    ------
    LockHeldError
        When another process still holds the lock after ``timeout`` seconds.
    BrainlikeError
        When the lock file cannot be created (read-only folder) and ``optional`` is false.
    """
    path = Path(path)
    what = what or str(path.parent)
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = _open(path, what, optional, create)
    if fd is None:  # no lock file, and the caller can do without one
        yield
        return
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            holder = describe_holder(holder_info(path))
            if deadline is not None and time.monotonic() >= deadline:
                raise LockHeldError(f"{what} is in use by {holder}; wait until it has finished (or stop it), or "
                                    "choose another output folder")
            if not told and on_wait is not None:
                on_wait(f"{what} is in use by {holder}; waiting for it to finish"
                        + ("" if timeout is None else f" (at most {timeout:g} s)"))
                told = True
            time.sleep(0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic())))
        if note and not shared:
            _write_holder(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock


#: seconds a second run into the same output folder waits for the first (default 0: it fails at once,
#: naming the run that holds the folder)
TIMEOUT_ENV = "BRAINLIKE_LOCK_TIMEOUT"


def _timeout_from_env() -> float | None:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return 0.0
    if raw.lower() in ("inf", "forever", "none"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BrainlikeError(f"${TIMEOUT_ENV} must be a number of seconds (or 'inf'), not {raw!r}") from None
    if value < 0:
        raise BrainlikeError(f"${TIMEOUT_ENV} must be >= 0 seconds, not {raw!r}")
    return value


#: output folders this process holds (the lock is re-entrant within a process: the runner and the
#: alignment sweep it calls take the same folder's lock)
_HELD: dict[Path, int] = {}


@contextlib.contextmanager
def output_lock(folder: str | Path, timeout: float | None | str = "env") -> Iterator[None]:
    """The exclusive lock of an output folder (``<folder>/.lock``): one ``brainlike run`` writes into it at a time.

    Parameters
    ----------
    folder : str or Path
        The output folder (created when missing).
    timeout : float, None or "env"
        Seconds to wait when another run holds the folder (``None``: as long as it takes); ``"env"``
        (default) reads ``$BRAINLIKE_LOCK_TIMEOUT``, 0 when unset: a second run fails at once with a
        :class:`LockHeldError` naming the pid, host, start time and command of the run holding it.
    """
    folder = Path(folder)
    key = folder.resolve()
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    wait = _timeout_from_env() if timeout == "env" else timeout
    with file_lock(folder / ".lock", timeout=wait, what=f"the output folder {folder}",
                   on_wait=lambda msg: print(msg, file=sys.stderr, flush=True)):
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]


def locks_output(fn: Callable) -> Callable:
    """Decorator: ``fn(spec, ...)`` runs holding :func:`output_lock` of ``spec.output``."""
    @functools.wraps(fn)
    def wrapper(spec, *args, **kwargs):
        with output_lock(spec.output):
            return fn(spec, *args, **kwargs)

    return wrapper
