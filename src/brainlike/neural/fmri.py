"""fMRI alignment: word-level features → a TR-level design matrix.

The standard story-listening pipeline (Huth et al. 2016; LeBel et al. 2023):

1. **Lanczos downsampling** of word-level features ``(n_words, p)`` at word times to the volume times
   of each run (a windowed-sinc low-pass filter with its cutoff at the TR's Nyquist frequency, summed
   over the words near each volume — so a feature of ones becomes the word rate).
2. **z-scoring** of every feature within each run (statistics over the kept volumes).
3. **Finite-impulse-response (FIR) delays**: the downsampled features are copied at delays of
   1–4 TRs (default), so ridge regression can learn each voxel's haemodynamic response. Delays are
   applied *within* each run; the first volumes of a run never see features of the previous run.
4. **Trimming** of the first/last volumes of each run (scanner onset transients, the end of the story).

Runs (stories) are concatenated; the returned run labels make
``contiguous_folds(n, n_splits, groups=design.runs)`` hold out whole runs, so no test run is seen
in training.

Timing convention: volume ``i`` of a run is at ``(i + tr_offset) * tr`` seconds on that run's clock
(BIDS: onsets are measured from the first volume; ``tr_offset=0``). Word times must be on the same
clock; shift them when the story starts after the first volume (see ``brainlike.neural.bids``).
``word_time="middle", tr_offset=0.5`` reproduces Huth/LeBel's convention (word mid-times, volume
centres).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from brainlike.errors import NeuralDataError
from brainlike.neural.dataset import NeuralDataset
from brainlike.stimulus import Stimulus

__all__ = [
    "FMRIDesign",
    "concatenate_runs",
    "fmri_design",
    "fmri_design_layers",
    "fmri_responses",
    "lanczos_downsample",
    "lanczos_kernel",
    "lanczos_matrix",
    "make_delayed",
    "run_lengths",
]

DEFAULT_DELAYS: tuple[int, ...] = (1, 2, 3, 4)


# ---------------------------------------------------------------------------------------------- Lanczos
def lanczos_kernel(t: np.ndarray, cutoff: float, window: int = 3) -> np.ndarray:
    """The Lanczos kernel ``sinc(t·cutoff) · sinc(t·cutoff / window)`` (zero beyond ``window`` lobes).

    Parameters
    ----------
    t : np.ndarray
        time lags in seconds, any shape.
    cutoff : float
        frequency in Hz at which the kernel's first zero falls (``1 / tr`` puts the pass band
        edge at the TR's Nyquist frequency ``1 / (2 tr)``).
    window : int
        number of sinc lobes on each side (``a``; Huth/LeBel use 3).

    Returns
    -------
    np.ndarray
        float64 array of ``t``'s shape; 1 at ``t = 0``.
    """
    x = np.asarray(t, dtype=np.float64) * cutoff
    val = np.sinc(x) * np.sinc(x / window)
    val[np.abs(x) > window] = 0.0
    return val


def lanczos_matrix(
    old_times: np.ndarray,
    new_times: np.ndarray,
    *,
    cutoff_mult: float = 1.0,
    window: int = 3,
    tr: float | None = None,
    normalize: bool = False,
) -> sp.csr_matrix:
    """Sparse interpolation matrix ``M`` with ``new = M @ old`` (Lanczos downsampling).

    Parameters
    ----------
    old_times : np.ndarray
        ``(n_old,)`` seconds (word times).
    new_times : np.ndarray
        ``(n_new,)`` seconds (volume times), evenly spaced.
    cutoff_mult : float
        cutoff as a multiple of ``1 / tr`` (below 1 smooths more).
    window : int
        Lanczos lobes ``a``.
    tr : float | None
        sampling interval of ``new_times`` in seconds (default: their mean spacing).
    normalize : bool
        divide each row by its sum, so ``M`` averages instead of sums (a constant feature
        stays constant instead of becoming ``value × words per TR``). Huth/LeBel sum (False).

    Returns
    -------
    sp.csr_matrix
        ``(n_new, n_old)`` CSR float64 matrix; only words within ``window / cutoff`` s contribute.
    """
    old = np.asarray(old_times, dtype=np.float64).reshape(-1)
    new = np.asarray(new_times, dtype=np.float64).reshape(-1)
    if tr is None:
        if len(new) < 2:
            raise NeuralDataError("lanczos_matrix needs tr when there is only one new time")
        tr = float(np.mean(np.diff(new)))
    if not tr > 0:
        raise NeuralDataError(f"tr must be positive, got {tr}")
    if not cutoff_mult > 0 or window < 1:
        raise NeuralDataError(f"cutoff_mult must be > 0 and window >= 1, got {cutoff_mult}, {window}")
    if len(old) > 1 and np.any(np.diff(old) < 0):
        raise NeuralDataError("word times must be sorted (non-decreasing)")
    cutoff = cutoff_mult / tr
    half = window / cutoff
    lo = np.searchsorted(old, new - half, side="left")
    hi = np.searchsorted(old, new + half, side="right")
    counts = hi - lo
    rows = np.repeat(np.arange(len(new)), counts)
    # column index = lo[row] + position within the row
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    cols = starts + np.arange(counts.sum())
    vals = lanczos_kernel(new[rows] - old[cols], cutoff, window)
    mat = sp.csr_matrix((vals, (rows, cols)), shape=(len(new), len(old)))
    if normalize:
        sums = np.asarray(mat.sum(axis=1)).reshape(-1)
        sums[sums == 0] = 1.0
        mat = sp.diags(1.0 / sums) @ mat
    return mat.tocsr()


def lanczos_downsample(
    data: np.ndarray,
    old_times: np.ndarray,
    new_times: np.ndarray,
    *,
    cutoff_mult: float = 1.0,
    window: int = 3,
    tr: float | None = None,
    normalize: bool = False,
) -> np.ndarray:
    """Lanczos-downsample ``(n_old, p)`` data at ``old_times`` to ``new_times`` (Huth's ``lanczosinterp2D``).

    Returns
    -------
    np.ndarray
        ``(n_new, p)`` float32 (``(n_new,)`` for 1-D input).
    """
    arr = np.asarray(data, dtype=np.float64)
    one_d = arr.ndim == 1
    arr = arr[:, None] if one_d else arr
    if arr.shape[0] != len(np.asarray(old_times).reshape(-1)):
        raise NeuralDataError(f"{arr.shape[0]} rows of data but {len(np.asarray(old_times).reshape(-1))} times")
    mat = lanczos_matrix(old_times, new_times, cutoff_mult=cutoff_mult, window=window, tr=tr, normalize=normalize)
    out = np.asarray(mat @ arr, dtype=np.float32)
    return out[:, 0] if one_d else out


# ---------------------------------------------------------------------------------------------- delays
def make_delayed(x: np.ndarray, delays: Sequence[int] = DEFAULT_DELAYS) -> np.ndarray:
    """Stack delayed copies of ``x`` (FIR model): column block ``j`` is ``x`` shifted down by ``delays[j]``.

    Row ``t`` of block ``j`` holds ``x[t - delays[j]]`` (zeros where that is before the start, or after
    the end for negative delays). Nothing wraps around.

    Parameters
    ----------
    x : np.ndarray
        ``(n_trs, p)`` features of one run.
    delays : Sequence[int]
        integer delays in TRs.

    Returns
    -------
    np.ndarray
        ``(n_trs, p * len(delays))`` float32.
    """
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    delays = _check_delays(delays)
    n, p = x.shape
    out = np.zeros((n, p * len(delays)), dtype=np.float32)
    for j, d in enumerate(delays):
        _shift_into(out[:, j * p:(j + 1) * p], x, d)
    return out


def _shift_into(dst: np.ndarray, src: np.ndarray, d: int) -> None:
    n = src.shape[0]
    if abs(d) >= n:
        dst[:] = 0
    elif d > 0:
        dst[:d] = 0
        dst[d:] = src[:n - d]
    elif d < 0:
        dst[n + d:] = 0
        dst[:n + d] = src[-d:]
    else:
        dst[:] = src


def _check_delays(delays: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(d) for d in delays)
    if not out:
        raise NeuralDataError("at least one delay is needed")
    if any(float(d) != int(d) for d in delays):
        raise NeuralDataError(f"delays are in TRs and must be integers, got {list(delays)}")
    if len(set(out)) != len(out):
        raise NeuralDataError(f"delays must be distinct, got {list(delays)}")
    return out


# ---------------------------------------------------------------------------------------------- design
@dataclass
class FMRIDesign:
    """A TR-level design for run-aware encoding.

    Attributes
    ----------
    X : np.ndarray
        float32 design, ``(n_kept, n_features * n_delays)`` (:func:`fmri_design`) or
        ``(n_layers, n_kept, n_features * n_delays)`` (:func:`fmri_design_layers`). Column block
        ``j`` (of width ``n_features``) holds the features delayed by ``delays[j]`` TRs.
    runs : np.ndarray
        ``(n_kept,)`` run label of every kept volume (pass as ``groups`` to ``contiguous_folds``).
    keep : np.ndarray
        ``(n_total,)`` bool over the concatenated volumes of all runs: which were kept after
        trimming (use it to trim the recordings; :func:`fmri_responses` does).
    times : np.ndarray
        ``(n_kept,)`` float64 volume times in seconds on each run's own clock.
    delays : tuple[int, ...]
        the FIR delays in TRs.
    tr : float
        repetition time in seconds.
    n_features : int
        features per delay (``p``).
    run_labels : tuple[str, ...]
        the run labels in order.
    n_trs : tuple[int, ...]
        volumes per run before trimming.
    """

    X: np.ndarray
    runs: np.ndarray
    keep: np.ndarray
    times: np.ndarray
    delays: tuple[int, ...]
    tr: float
    n_features: int
    run_labels: tuple[str, ...]
    n_trs: tuple[int, ...]

    @property
    def n_samples(self) -> int:
        """The number of samples (volumes)."""
        return int(self.runs.shape[0])

    @property
    def default_n_splits(self) -> int:
        """Folds for run-aware CV.

        The number of runs (leave-one-run-out), at most 5; use with
        ``brainlike.encoding.contiguous_folds(design.n_samples, design.default_n_splits, groups=design.runs)``.
        """
        return min(len(self.run_labels), 5)

    def layer(self, index: int) -> np.ndarray:
        """The ``(n_kept, n_features * n_delays)`` design of one layer (a view, no copy)."""
        if self.X.ndim != 3:
            raise NeuralDataError("this design has no layer axis (built by fmri_design, not fmri_design_layers)")
        return self.X[index]


def run_lengths(dataset: NeuralDataset) -> tuple[list[str], list[int]]:
    """Run labels (in order of first appearance) and the number of volumes of each run.

    Raises
    ------
    NeuralDataError
        a run's volumes are not contiguous in the dataset.
    """
    if dataset.runs is None:
        return [str(dataset.meta.get("run", "run-1"))], [dataset.n_samples]
    runs = np.asarray(dataset.runs).astype(str)
    change = np.flatnonzero(runs[1:] != runs[:-1]) + 1
    starts = np.concatenate([[0], change])
    labels = [str(runs[s]) for s in starts]
    if len(set(labels)) != len(labels):
        dup = next(lab for lab in labels if labels.count(lab) > 1)
        raise NeuralDataError(f"run {dup!r} is split into several pieces; the volumes of a run must be contiguous")
    lengths = np.diff(np.concatenate([starts, [len(runs)]])).tolist()
    return labels, [int(n) for n in lengths]


def _dataset_tr(dataset: NeuralDataset) -> float:
    if "tr" in dataset.meta:
        return float(dataset.meta["tr"])
    if dataset.n_samples < 2:
        raise NeuralDataError("cannot infer the TR from a dataset with one volume; pass tr=")
    d = np.diff(dataset.times)
    if dataset.runs is not None:
        runs = np.asarray(dataset.runs).astype(str)
        d = d[runs[1:] == runs[:-1]]
    return float(np.median(d))


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _layers_array(features) -> np.ndarray:
    arr = features.layers if hasattr(features, "layers") else features
    return np.asarray(arr)


def _resolve_runs(stimuli, n_trs, tr, run_labels):
    """Normalise stimuli / run lengths / TR / labels for one or several runs."""
    stims = _as_list(stimuli)
    if not stims or not all(isinstance(s, Stimulus) for s in stims):
        raise NeuralDataError("stimuli must be a Stimulus or a list of Stimulus (one per run)")
    if isinstance(n_trs, NeuralDataset):
        labels, lengths = run_lengths(n_trs)
        tr = _dataset_tr(n_trs) if tr is None else tr
        if run_labels is None:
            run_labels = labels
    else:
        lengths = [int(n) for n in _as_list(n_trs)]
    if tr is None:
        raise NeuralDataError("tr (seconds) is required when n_trs is not a NeuralDataset")
    tr = float(tr)
    if not tr > 0:
        raise NeuralDataError(f"tr must be positive, got {tr}")
    if len(lengths) != len(stims):
        raise NeuralDataError(
            f"{len(stims)} stimuli (runs) but {len(lengths)} run lengths; give one Stimulus per run, in the "
            "order of the runs in the recording")
    if run_labels is None:
        names = [s.name for s in stims]
        run_labels = names if len(set(names)) == len(names) else [f"run-{i + 1}" for i in range(len(stims))]
    run_labels = [str(r) for r in run_labels]
    if len(run_labels) != len(stims) or len(set(run_labels)) != len(run_labels):
        raise NeuralDataError(f"need {len(stims)} distinct run labels, got {run_labels}")
    names = [s.name for s in stims]
    if sorted(names) == sorted(run_labels) and names != run_labels:
        raise NeuralDataError(
            f"the stimuli are named like the runs but in another order (stimuli {names}, runs {run_labels}); "
            "give one Stimulus per run in the order of the runs in the recording")
    return stims, lengths, tr, run_labels


def _split_features(features, stims: list[Stimulus], has_layers: bool) -> list[np.ndarray]:
    """Per-run feature arrays; a single array covering all runs is split by the runs' word counts."""
    axis = 1 if has_layers else 0
    want = [len(s) for s in stims]
    per_run = isinstance(features, (list, tuple)) and len(features) > 0 and all(
        hasattr(f, "layers") or isinstance(f, np.ndarray) for f in features)
    if per_run:
        parts = [_layers_array(f) if has_layers else np.asarray(f) for f in features]
        if len(parts) != len(stims):
            raise NeuralDataError(f"{len(parts)} feature arrays but {len(stims)} stimuli (runs)")
    else:
        arr = _layers_array(features) if has_layers else np.asarray(features)
        if len(stims) == 1:
            parts = [arr]
        else:
            if arr.ndim < axis + 1 or arr.shape[axis] != sum(want):
                got = arr.shape[axis] if arr.ndim > axis else "?"
                raise NeuralDataError(
                    f"features cover {got} words but the {len(stims)} runs have {sum(want)} words "
                    f"({want}); pass one feature array per run or features for all words in run order")
            parts = np.split(arr, np.cumsum(want)[:-1], axis=axis)
    ndim = 3 if has_layers else 2
    for i, (part, stim) in enumerate(zip(parts, stims)):
        if part.ndim != ndim:
            shape = "(n_layers, n_words, n_features)" if has_layers else "(n_words, n_features)"
            raise NeuralDataError(f"run {i + 1} ({stim.name!r}): features must be {shape}, got shape {part.shape}")
        if part.shape[axis] != len(stim):
            raise NeuralDataError(
                f"run {i + 1} ({stim.name!r}): features have {part.shape[axis]} words but the stimulus has "
                f"{len(stim)} words")
        if not np.all(np.isfinite(part)):
            raise NeuralDataError(f"run {i + 1} ({stim.name!r}): features contain NaN or inf")
    return parts


def _word_times(stim: Stimulus, word_time: str) -> np.ndarray:
    if word_time == "onset":
        return stim.onsets
    if word_time == "middle":
        return (stim.onsets + stim.offsets) / 2.0
    raise NeuralDataError(f"word_time must be 'onset' or 'middle', not {word_time!r}")


def _plan(stims, lengths, tr, run_labels, *, trim_start, trim_end, tr_offset, word_time, cutoff_mult,
          window, normalize):
    """Per-run Lanczos matrices and kept-volume bookkeeping (shared by the 2-D and 3-D builders)."""
    if trim_start < 0 or trim_end < 0:
        raise NeuralDataError(f"trim_start/trim_end must be >= 0, got {trim_start}, {trim_end}")
    plans = []
    for stim, n, label in zip(stims, lengths, run_labels):
        if n <= trim_start + trim_end:
            raise NeuralDataError(
                f"run {label!r} has {n} volumes; trimming {trim_start} + {trim_end} leaves none")
        times = (np.arange(n) + tr_offset) * tr
        wt = _word_times(stim, word_time)
        end = n * tr
        late = np.flatnonzero(stim.onsets >= end)
        if late.size:
            i = int(late[0])
            raise NeuralDataError(
                f"run {label!r}: {late.size} words start after the recording ends ({n} volumes × {tr} s = "
                f"{end:.1f} s); first: word {i + 1} {stim.words[i]!r} at {stim.onsets[i]:.2f} s. Check the TR, "
                "the run order and the stimulus onset shift")
        mat = lanczos_matrix(wt, times, cutoff_mult=cutoff_mult, window=window, tr=tr, normalize=normalize)
        keep = np.zeros(n, dtype=bool)
        keep[trim_start:n - trim_end] = True
        plans.append((mat, keep, times))
    return plans


def _zscore_kept(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    mu = x[keep].mean(axis=0)
    sd = x[keep].std(axis=0)
    sd[sd == 0] = 1.0
    return (x - mu) / sd


def _fill_run(dst: np.ndarray, down: np.ndarray, keep: np.ndarray, delays: tuple[int, ...], zscore: bool) -> None:
    """Write the delayed, trimmed features of one run into ``dst`` ``(n_kept_run, p * n_delays)``."""
    if zscore:
        down = _zscore_kept(down, keep)
    p = down.shape[1]
    kept_idx = np.flatnonzero(keep)
    n = down.shape[0]
    for j, d in enumerate(delays):
        src = kept_idx - d
        ok = (src >= 0) & (src < n)
        block = dst[:, j * p:(j + 1) * p]
        block[~ok] = 0.0
        block[ok] = down[src[ok]]


def fmri_design(
    features,
    stimuli: Stimulus | Sequence[Stimulus],
    n_trs: int | Sequence[int] | NeuralDataset,
    *,
    tr: float | None = None,
    delays: Sequence[int] = DEFAULT_DELAYS,
    trim_start: int = 5,
    trim_end: int = 5,
    cutoff_mult: float = 1.0,
    window: int = 3,
    word_time: str = "onset",
    tr_offset: float = 0.0,
    zscore: bool = True,
    normalize: bool = False,
    run_labels: Sequence[str] | None = None,
) -> FMRIDesign:
    """Build the TR-level FIR design of one feature space for one or several runs.

    Parameters
    ----------
    features : array-like of shape (n_words, p) or list of ndarray
        ``(n_words, p)`` word-level features of one run; or a list with one such array per
        run; or one array with the words of all runs stacked in run order.
    stimuli : Stimulus | Sequence[Stimulus]
        the :class:`~brainlike.stimulus.Stimulus` of each run (word times in seconds on that
        run's clock, 0 = first volume).
    n_trs : int | Sequence[int] | NeuralDataset
        volumes per run (an int or one per run), or the :class:`NeuralDataset` itself (then run
        lengths, run labels and the TR come from it).
    tr : float | None
        repetition time in seconds (required unless ``n_trs`` is a dataset).
    delays : Sequence[int]
        FIR delays in TRs (default 1–4, i.e. 2–8 s at TR = 2 s).
    trim_start, trim_end : int
        volumes dropped at the start/end of every run.
    cutoff_mult, window : float and int
        Lanczos cutoff (× 1/tr) and lobes ``a``.
    word_time : str
        ``"onset"`` or ``"middle"`` (Huth/LeBel use word mid-times).
    tr_offset : float
        volume time within the TR as a fraction (0 = acquisition start, 0.5 = centre).
    zscore : bool
        z-score every downsampled feature within each run (over the kept volumes).
    normalize : bool
        average instead of sum the words under the Lanczos kernel.
    run_labels : Sequence[str] | None
        labels for the runs (default: the dataset's, else the stimulus names).

    Returns
    -------
    FMRIDesign
        :class:`FMRIDesign` with ``X`` of shape ``(n_kept, p * len(delays))`` float32.

    Raises
    ------
    NeuralDataError
        mismatched word counts, words after the end of a run, bad trimming.
    """
    delays = _check_delays(delays)
    stims, lengths, tr, labels = _resolve_runs(stimuli, n_trs, tr, run_labels)
    parts = _split_features(features, stims, has_layers=False)
    plans = _plan(stims, lengths, tr, labels, trim_start=trim_start, trim_end=trim_end, tr_offset=tr_offset,
                  word_time=word_time, cutoff_mult=cutoff_mult, window=window, normalize=normalize)
    p = parts[0].shape[1]
    if any(part.shape[1] != p for part in parts):
        raise NeuralDataError(f"runs have different feature sizes: {[part.shape[1] for part in parts]}")
    n_kept = sum(int(k.sum()) for _, k, _ in plans)
    X = np.empty((n_kept, p * len(delays)), dtype=np.float32)
    row = 0
    for part, (mat, keep, _t) in zip(parts, plans):
        down = np.asarray(mat @ part.astype(np.float64))
        k = int(keep.sum())
        _fill_run(X[row:row + k], down, keep, delays, zscore)
        row += k
    return _design(X, plans, labels, delays, tr, p, lengths)


def fmri_design_layers(
    features,
    stimuli: Stimulus | Sequence[Stimulus],
    n_trs: int | Sequence[int] | NeuralDataset,
    **kwargs,
) -> FMRIDesign:
    """Like :func:`fmri_design`, for every layer of a model at once.

    Parameters
    ----------
    features : array-like of shape (n_layers, n_words, p) or list
        ``(n_layers, n_words, p)`` (or an object with a ``.layers`` attribute of that shape)
        for one run, a list of those per run, or one array with the words of all runs stacked along
        axis 1 in run order. Any float dtype; the output is float32.
    stimuli, n_trs, **kwargs
        as in :func:`fmri_design`.

    Returns
    -------
    FMRIDesign
        :class:`FMRIDesign` with ``X`` of shape ``(n_layers, n_kept, p * n_delays)`` float32. Memory:
        only this output plus one layer of one run in float64 at a time (the Lanczos matrix is sparse and
        computed once per run).
    """
    delays = _check_delays(kwargs.pop("delays", DEFAULT_DELAYS))
    tr = kwargs.pop("tr", None)
    run_labels = kwargs.pop("run_labels", None)
    zscore = kwargs.pop("zscore", True)
    plan_kw = {k: kwargs.pop(k) for k in ("trim_start", "trim_end", "cutoff_mult", "window", "word_time",
                                         "tr_offset", "normalize") if k in kwargs}
    if kwargs:
        raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
    defaults = dict(trim_start=5, trim_end=5, cutoff_mult=1.0, window=3, word_time="onset", tr_offset=0.0,
                    normalize=False)
    defaults.update(plan_kw)
    stims, lengths, tr, labels = _resolve_runs(stimuli, n_trs, tr, run_labels)
    parts = _split_features(features, stims, has_layers=True)
    n_layers, _, p = parts[0].shape
    if any(part.shape[0] != n_layers or part.shape[2] != p for part in parts):
        raise NeuralDataError(f"runs have different (n_layers, n_features): {[part.shape for part in parts]}")
    plans = _plan(stims, lengths, tr, labels, **defaults)
    n_kept = sum(int(k.sum()) for _, k, _ in plans)
    X = np.empty((n_layers, n_kept, p * len(delays)), dtype=np.float32)
    row = 0
    for part, (mat, keep, _t) in zip(parts, plans):
        k = int(keep.sum())
        for layer in range(n_layers):
            down = np.asarray(mat @ np.asarray(part[layer], dtype=np.float64))
            _fill_run(X[layer, row:row + k], down, keep, delays, zscore)
        row += k
    return _design(X, plans, labels, delays, tr, p, lengths)


def _design(X, plans, labels, delays, tr, p, lengths) -> FMRIDesign:
    runs = np.concatenate([np.full(int(k.sum()), lab, dtype=object) for (_, k, _), lab in zip(plans, labels)])
    keep = np.concatenate([k for _, k, _ in plans])
    times = np.concatenate([t[k] for _, k, t in plans])
    return FMRIDesign(X=X, runs=runs.astype(str), keep=keep, times=times, delays=tuple(delays), tr=float(tr),
                      n_features=int(p), run_labels=tuple(labels), n_trs=tuple(int(n) for n in lengths))


def fmri_responses(dataset: NeuralDataset, design: FMRIDesign, *, zscore: bool = True) -> np.ndarray:
    """The recordings trimmed like ``design`` (and z-scored within each run): the regression targets.

    Parameters
    ----------
    dataset : NeuralDataset
        ``(n_total, n_channels)`` untrimmed recordings of the same runs in the same order, or
        recordings already trimmed to ``design.n_samples`` volumes (e.g. LeBel's preprocessed files).
    design : FMRIDesign
        from :func:`fmri_design` / :func:`fmri_design_layers`.
    zscore : bool
        z-score each channel within each run (constant channels become 0).

    Returns
    -------
    np.ndarray
        ``(n_kept, n_channels)`` float32.

    Raises
    ------
    NeuralDataError
        the number of volumes matches neither the untrimmed nor the trimmed design, or the
        dataset contains NaN/flat channels (drop them first with ``dataset.drop_bad_channels()``).
    """
    bad = dataset.bad_channels()
    if bad:
        raise NeuralDataError(
            f"{len(bad)} channels are NaN or flat (first: {bad[:5]}); exclude them with "
            "dataset.drop_bad_channels() and report them")
    n = dataset.n_samples
    if n == design.keep.shape[0]:
        Y = dataset.data[design.keep]
    elif n == design.n_samples:
        Y = dataset.data
    else:
        raise NeuralDataError(
            f"the recording has {n} volumes but the design expects {design.keep.shape[0]} (runs "
            f"{dict(zip(design.run_labels, design.n_trs))}) or {design.n_samples} after trimming")
    if dataset.runs is not None and n == design.keep.shape[0]:
        labels, lengths = run_lengths(dataset)
        if list(lengths) != list(design.n_trs):
            raise NeuralDataError(f"run lengths differ: recording {lengths}, design {list(design.n_trs)}")
    Y = np.array(Y, dtype=np.float32)
    if zscore:
        for lab in design.run_labels:
            sel = design.runs == lab
            mu = Y[sel].mean(axis=0)
            sd = Y[sel].std(axis=0)
            sd[sd == 0] = 1.0
            Y[sel] = (Y[sel] - mu) / sd
    return Y


def concatenate_runs(datasets: Sequence[NeuralDataset], labels: Sequence[str] | None = None) -> NeuralDataset:
    """Concatenate runs of one subject (same channels) into one dataset with run labels.

    Times are shifted so they keep increasing: run ``k`` starts one sampling interval after run ``k-1``
    ends; ``meta["run_starts"]`` maps each label to that shift (s). ``meta["tr"]`` is kept.

    Parameters
    ----------
    datasets : Sequence[NeuralDataset]
        one :class:`NeuralDataset` per run, with identical channel names.
    labels : Sequence[str] | None
        run labels (default: each dataset's ``meta["run"]``, else ``run-1``, ``run-2`` ...).
    """
    datasets = list(datasets)
    if not datasets:
        raise NeuralDataError("no runs to concatenate")
    first = datasets[0]
    for i, ds in enumerate(datasets[1:], start=2):
        if ds.channels != first.channels:
            missing = sorted(set(first.channels) ^ set(ds.channels))[:5]
            raise NeuralDataError(
                f"run {i} has different channels than run 1 (e.g. {missing}); select the common channels first")
    if labels is None:
        labels = [str(ds.meta.get("run", f"run-{i + 1}")) for i, ds in enumerate(datasets)]
        if len(set(labels)) != len(labels):
            labels = [f"run-{i + 1}" for i in range(len(datasets))]
    labels = [str(lab) for lab in labels]
    if len(labels) != len(datasets) or len(set(labels)) != len(labels):
        raise NeuralDataError(f"need {len(datasets)} distinct run labels, got {labels}")
    times, runs, starts = [], [], {}
    offset = 0.0
    for ds, lab in zip(datasets, labels):
        step = 1.0 / ds.sfreq if ds.n_samples > 1 else float(ds.meta.get("tr", 1.0))
        t = ds.times - ds.times[0]
        starts[lab] = offset - float(ds.times[0])
        times.append(t + offset)
        runs.append(np.full(ds.n_samples, lab, dtype=object))
        offset = float(times[-1][-1]) + step
    meta = dict(first.meta)
    meta["run_starts"] = starts
    meta["runs"] = labels
    meta.pop("run", None)
    return replace(first, data=np.vstack([ds.data for ds in datasets]), times=np.concatenate(times),
                   runs=np.concatenate(runs).astype(str), meta=meta)
