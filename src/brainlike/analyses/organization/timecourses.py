"""Neuron time courses on the fMRI time grid (before any haemodynamic convolution).

Word-level (or token-level) activations are brought to the TR grid by a sparse linear operator
``B`` of shape ``(n_trs, n_rows)``, so ``tr_level = B @ row_level``. Three choices:

* ``"mean"`` (default): the mean activation of the words whose onset falls in the TR's interval
  ``[i·tr, (i+1)·tr)``; TRs without words get 0 (= the neuron's mean level, because activations are
  centred per neuron over words first).
* ``"sum"``: the sum over those words (the word rate enters every neuron's time course).
* ``"lanczos"``: Lanczos interpolation at the volume times (Huth et al. 2016), from
  :func:`brainlike.neural.fmri.lanczos_matrix`.

Each neuron's TR-level time course is then z-scored and divided by ``sqrt(n_trs)`` (unit Euclidean
norm), so dictionary learning sees shapes only and its sparsity ``alpha`` is in correlation units.
Constant (dead) neurons become all-zero rows and are flagged.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from brainlike.errors import BrainlikeError

__all__ = ["BINNING", "frame_times", "iter_timecourses", "normalize_timecourses", "tr_matrix"]

BINNING = ("mean", "sum", "lanczos")


def frame_times(n_trs: int, tr: float, tr_offset: float = 0.0) -> np.ndarray:
    """``(n_trs,)`` float64 acquisition times in seconds: ``(i + tr_offset) * tr``."""
    if n_trs < 1 or not tr > 0:
        raise BrainlikeError(f"need n_trs >= 1 and tr > 0, got n_trs={n_trs}, tr={tr}")
    return (np.arange(n_trs, dtype=np.float64) + tr_offset) * tr


def tr_matrix(onsets: np.ndarray, n_trs: int, tr: float, method: str = "mean") -> sp.csr_matrix:
    """The ``(n_trs, n_rows)`` float64 operator taking row-level (word/token) values to TRs.

    Parameters
    ----------
    onsets : np.ndarray
        ``(n_rows,)`` seconds from the first volume, non-decreasing.
    n_trs : int
        number of volumes.
    tr : float
        repetition time, seconds.
    method : str
        ``"mean"``, ``"sum"`` or ``"lanczos"`` (see the module docstring).

    Raises
    ------
    BrainlikeError
        unknown method, or words after the end of the scan.
    """
    onsets = np.asarray(onsets, dtype=np.float64).reshape(-1)
    if method not in BINNING:
        raise BrainlikeError(f"binning must be one of {BINNING}, not {method!r}")
    if not tr > 0:
        raise BrainlikeError(f"tr must be positive, got {tr}")
    if len(onsets) and onsets.max() >= n_trs * tr:
        raise BrainlikeError(f"the last word starts at {onsets.max():.1f} s, after the scan ends ({n_trs} volumes "
                             f"× {tr} s = {n_trs * tr:.1f} s); give more volumes or check the word timing")
    if method == "lanczos":
        from brainlike.neural.fmri import lanczos_matrix

        return sp.csr_matrix(lanczos_matrix(onsets, frame_times(n_trs, tr), tr=tr))
    bins = np.floor(onsets / tr).astype(np.int64)
    mat = sp.csr_matrix((np.ones(len(onsets)), (bins, np.arange(len(onsets)))), shape=(n_trs, len(onsets)))
    if method == "mean":
        counts = np.asarray(mat.sum(axis=1)).reshape(-1)
        counts[counts == 0] = 1.0
        mat = sp.diags(1.0 / counts) @ mat
    return mat.tocsr()


def normalize_timecourses(rows: np.ndarray, binning: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Row-level activations → unit-norm, z-scored TR-level time courses.

    Parameters
    ----------
    rows : np.ndarray
        ``(n_rows, b)`` activations of ``b`` neurons (model units).
    binning : sp.csr_matrix
        ``(n_trs, n_rows)`` from :func:`tr_matrix`.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``(n_trs, b)`` float32 time courses (zero mean, unit Euclidean norm; all-zero for constant
        neurons) and a ``(b,)`` bool mask of constant neurons.
    """
    x = np.asarray(rows, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    tc = np.asarray(binning @ x)
    tc -= tc.mean(axis=0, keepdims=True)
    norm = np.linalg.norm(tc, axis=0)
    dead = norm <= 1e-8 * max(float(norm.max(initial=0.0)), 1e-30)
    norm[dead] = 1.0
    tc /= norm
    tc[:, dead] = 0.0
    return tc.astype(np.float32), dead


def iter_timecourses(activations, binning: sp.csr_matrix, block_size: int = 4096,
                     progress: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(neurons (b,), timecourses (n_trs, b) float32, dead (b,) bool)`` for blocks of neurons.

    The neurons of a :class:`~brainlike.models.neurons.NeuronActivations` (or an in-memory ``(n_rows, n_neurons)``
    array).
    """
    if isinstance(activations, np.ndarray):
        for a in range(0, activations.shape[1], block_size):
            b = min(a + block_size, activations.shape[1])
            tc, dead = normalize_timecourses(activations[:, a:b], binning)
            yield np.arange(a, b, dtype=np.int64), tc, dead
        return
    for neurons, block in activations.iter_blocks(block_size, progress=progress):
        tc, dead = normalize_timecourses(block, binning)
        yield neurons, tc, dead
