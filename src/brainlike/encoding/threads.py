"""Thread counts of the BLAS/LAPACK factorisations (eigh, Cholesky) of the numpy backend.

The count is fixed by configuration, never by the machine's load at call time, so that the same
inputs give the same bits in every run (a blocked LAPACK routine may round differently with another
number of BLAS threads). It is set, in order of precedence, by :func:`set_lapack_threads`, by the
environment variable ``BRAINLIKE_LAPACK_THREADS`` read at import, or by the default:

* default (unset, ``""``, ``"auto"`` or ``"all"``): one thread for matrices smaller than
  ``SMALL_MATRIX`` x ``SMALL_MATRIX`` (threads gain little there), else every core this process
  may run on (``len(os.sched_getaffinity(0))``, fixed for the process);
* a number ``n >= 1``: ``n`` threads for every factorisation;
* ``0``: leave the BLAS library's own setting alone (no threadpoolctl call);
* ``"auto-load"`` (explicit opt-in, not reproducible): the cores not busy with other processes at
  call time, as brainlike did before (blocked LAPACK routines collapse when BLAS threads spin on
  oversubscribed cores: on a 2-core machine shared with other jobs a 1920 x 1920 float64
  eigendecomposition took 3 s with one thread and 48 s with two).

Why fixed: OpenBLAS's eigh and Cholesky of an 1100 x 1100 matrix differ by ~3e-13 between 1 and 2
threads, and are identical run after run for the same count. The price of the default on an
*oversubscribed* machine: case (a) of ``benchmarks/bench_ridge.py`` took 16-52 s with two threads
against 6.6 s with ``BRAINLIKE_LAPACK_THREADS=1`` on the 2-core development machine shared with five
other jobs (benchmarks/RESULTS.md); set 1 there.

GEMMs are not limited here: they use the BLAS library's setting (fixed when it loads, e.g. by
``OPENBLAS_NUM_THREADS``). Limits are applied with threadpoolctl.

Imports only :mod:`brainlike.encoding.validation` (for its error class).
"""
from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = [
    "AUTO_LOAD",
    "DEFAULT",
    "SMALL_MATRIX",
    "blas_threads",
    "lapack_threads",
    "set_lapack_threads",
]

#: Setting value of the default policy (see module docstring).
DEFAULT = -2
#: Setting value of the explicit, load-dependent ``"auto-load"`` policy.
AUTO_LOAD = -1
#: Under the default policy, matrices smaller than this are factorised on one thread.
SMALL_MATRIX = 1024
#: Environment variable read at import.
ENV_VAR = "BRAINLIKE_LAPACK_THREADS"


def _lapack_env(value: str) -> int:
    """Parse a ``BRAINLIKE_LAPACK_THREADS`` value into a setting (``DEFAULT``, ``AUTO_LOAD`` or n >= 0)."""
    value = value.strip().lower()
    if value in ("", "auto", "all", "default"):
        return DEFAULT
    if value == "auto-load":
        return AUTO_LOAD
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        warnings.warn(f"{ENV_VAR}={value!r} is not a thread count >= 0, 'auto' or 'auto-load'; using the "
                      "default (all cores of this process for large matrices)", stacklevel=2)
        return DEFAULT
    return n


#: Current setting: ``DEFAULT``, ``AUTO_LOAD``, 0 (library setting) or a thread count.
LAPACK_THREADS: int = _lapack_env(os.environ.get(ENV_VAR, ""))


def set_lapack_threads(threads: int | str | None) -> int:
    """Set the thread count of later factorisations; returns the previous setting.

    Parameters
    ----------
    threads : int, str or None
        ``None`` / ``"auto"``: the default policy; an int >= 1: that many threads; 0: the BLAS
        library's setting; ``"auto-load"``: the load-dependent choice (not reproducible).
    """
    global LAPACK_THREADS
    previous = LAPACK_THREADS
    if threads is None:
        LAPACK_THREADS = DEFAULT
    elif isinstance(threads, str):
        LAPACK_THREADS = _lapack_env(threads)
    elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        from brainlike.encoding.validation import EncodingError

        raise EncodingError(f"LAPACK threads must be an int >= 0, 'auto' or 'auto-load', got {threads!r}")
    else:
        LAPACK_THREADS = threads
    return previous


def _affinity_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _runnable_tasks() -> int | None:
    """Tasks running or ready to run system-wide right now (``/proc/loadavg``), None if unknown."""
    try:
        with open("/proc/loadavg") as fh:
            return int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return None


def _own_runnable_tasks() -> int:
    """Threads of this process that are running or ready to run (``/proc/self/task/*/stat``).

    The calling thread included; 1 if unknown. The BLAS library's own worker threads spin for a
    while after each GEMM and are counted here, so that they are not mistaken for other work.
    """
    n = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:  # pragma: no cover - not Linux
        return 1
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                stat = fh.read()
        except OSError:  # the thread ended meanwhile
            continue
        n += stat[stat.rfind(")") + 2: stat.rfind(")") + 3] == "R"
    return max(1, n)


def lapack_threads(size: int = SMALL_MATRIX) -> int:
    """Threads for the next factorisation of a ``size`` x ``size`` matrix (0: library setting).

    An explicit count is returned as is. The default policy gives 1 below ``SMALL_MATRIX``, else
    the cores of this process's affinity. ``"auto-load"`` gives 1 below ``SMALL_MATRIX``, else this
    process's cores minus the runnable tasks that are not threads of this process (the smallest of
    three readings 1 ms apart), at least 1.
    """
    if LAPACK_THREADS >= 0:
        return LAPACK_THREADS
    if size < SMALL_MATRIX:
        return 1
    cores = _affinity_cores()
    if LAPACK_THREADS == DEFAULT:
        return cores
    readings = []
    for _ in range(3):
        r = _runnable_tasks()
        if r is None:
            return 1
        readings.append(max(0, r - _own_runnable_tasks()))
        time.sleep(0.001)
    return max(1, min(cores, cores - min(readings)))


_CONTROLLER: Any = None


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Limit BLAS threads to ``n`` inside the block (no-op for n <= 0 or without threadpoolctl).

    One ``ThreadpoolController`` is kept for the process: building one scans the loaded
    libraries, ~30 ms per factorisation otherwise (measured: 0.5 s of a 21 s fit).
    """
    global _CONTROLLER
    if n <= 0:
        yield
        return
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
            yield
            return
        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=n, user_api="blas"):
        yield
