"""Ground-truth simulator: synthetic ECoG and fMRI recordings driven by known layers of a model.

Channels are grouped into regions arranged along a processing hierarchy. Each region is driven by
early, middle or late layers, by a mix of layers, by an acoustic-like word-rate regressor, or by nothing
(pure noise). For a channel driven by layer(s) ``L`` with mixing weights ``a_l``, the word-level drive is

    drive[w] = Σ_l a_l · z(features[l])[w] @ v_l        (v_l ~ N(0, 1/p), a random projection)

normalised to unit variance. ECoG-like data place a response kernel (0–500 ms) at every word onset
scaled by the drive; fMRI-like data convolve the drive (impulses at word onsets) with nilearn's
Glover/SPM haemodynamic response and sample it every TR. Noise is AR(1) (plus slow drift for fMRI) and
scaled so that each channel has a chosen signal-to-noise ratio ``snr = var(signal) / var(noise)``.

Everything is seeded: the same arguments give the same arrays.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.signal import fftconvolve, lfilter

from brainlike.errors import NeuralDataError
from brainlike.neural.dataset import NeuralDataset
from brainlike.stimulus import Stimulus

__all__ = ["RegionSpec", "SimulationResult", "default_regions", "simulate_ecog", "simulate_fmri"]

KINDS = ("layer", "mix", "acoustic", "noise")


@dataclass(frozen=True)
class RegionSpec:
    """One simulated region.

    Attributes
    ----------
    name : str
        region label (e.g. ``"pSTG"``).
    kind : str
        ``"layer"`` (one driving layer), ``"mix"`` (several layers), ``"acoustic"`` (word rate:
        every word drives the channel equally) or ``"noise"`` (no signal).
    layers : tuple[int, ...]
        driving layer indices (0 = embeddings); one for ``"layer"``, several for ``"mix"``.
    weights : tuple[float, ...]
        mixing weight of each layer (default equal); normalised to sum 1.
    hierarchy : float
        position in the processing hierarchy (NaN for noise regions: not part of it).
    center : tuple[float, float, float]
        fake MNI coordinates of the region centre, mm.
    n_channels : int
        channels (electrodes/voxels) in the region.
    snr : tuple[float, float]
        ``(low, high)`` range of per-channel SNR (variance ratio), drawn log-uniformly.
    latency : float | None
        ECoG response peak after word onset, seconds (default from the hierarchy position).
    """

    name: str
    kind: str
    layers: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()
    hierarchy: float = float("nan")
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    n_channels: int = 20
    snr: tuple[float, float] = (0.5, 2.0)
    latency: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise NeuralDataError(f"region {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}")
        layers = tuple(int(x) for x in self.layers)
        object.__setattr__(self, "layers", layers)
        if self.kind == "layer" and len(layers) != 1:
            raise NeuralDataError(f"region {self.name!r}: kind 'layer' needs exactly one layer, got {layers}")
        if self.kind == "mix" and len(layers) < 2:
            raise NeuralDataError(f"region {self.name!r}: kind 'mix' needs two or more layers, got {layers}")
        if self.kind in ("acoustic", "noise") and layers:
            raise NeuralDataError(f"region {self.name!r}: kind {self.kind!r} takes no layers")
        weights = tuple(float(w) for w in self.weights) or tuple(1.0 for _ in layers)
        if len(weights) != len(layers):
            raise NeuralDataError(f"region {self.name!r}: {len(layers)} layers but {len(weights)} weights")
        if layers and (min(weights) < 0 or sum(weights) <= 0):
            raise NeuralDataError(f"region {self.name!r}: weights must be non-negative and not all zero")
        total = sum(weights) or 1.0
        object.__setattr__(self, "weights", tuple(w / total for w in weights))
        if self.n_channels < 0:
            raise NeuralDataError(f"region {self.name!r}: n_channels must be >= 0")
        lo, hi = self.snr
        if not (0 < lo <= hi):
            raise NeuralDataError(f"region {self.name!r}: snr range must satisfy 0 < low <= high, got {self.snr}")


def default_regions(
    n_layers: int,
    n_channels: int = 20,
    snr: tuple[float, float] = (0.5, 2.0),
    n_noise: int | None = None,
) -> list[RegionSpec]:
    """A language-network-like hierarchy for a model with ``n_layers`` layers (embeddings included).

    Regions (fake MNI centres, left hemisphere): ``HG`` acoustic word rate (hierarchy 0), ``pSTG`` early
    layer (~15 % depth, 1), ``aSTG`` middle layer (50 %, 2), ``IFG`` late layer (85 %, 3), ``AG`` equal mix
    of the middle and late layers (2.5), and ``OCC`` pure noise (NaN).

    Parameters
    ----------
    n_layers : int
        layers of the model (layer 0 = embeddings); at least 1.
    n_channels : int
        channels per region.
    snr : tuple[float, float]
        per-channel SNR range of the driven regions.
    n_noise : int | None
        channels in the noise region (default ``n_channels``; 0 drops it).
    """
    if n_layers < 1:
        raise NeuralDataError(f"n_layers must be >= 1, got {n_layers}")
    last = n_layers - 1
    early, middle, late = (int(round(f * last)) for f in (0.15, 0.5, 0.85))
    regions = [
        RegionSpec("HG", "acoustic", hierarchy=0.0, center=(-45.0, -20.0, 8.0), n_channels=n_channels, snr=snr),
        RegionSpec("pSTG", "layer", (early,), hierarchy=1.0, center=(-60.0, -32.0, 10.0), n_channels=n_channels,
                   snr=snr),
        RegionSpec("aSTG", "layer", (middle,), hierarchy=2.0, center=(-56.0, 0.0, -8.0), n_channels=n_channels,
                   snr=snr),
        RegionSpec("IFG", "layer", (late,), hierarchy=3.0, center=(-48.0, 24.0, 10.0), n_channels=n_channels,
                   snr=snr),
    ]
    if middle != late:
        regions.append(RegionSpec("AG", "mix", (middle, late), hierarchy=2.5, center=(-46.0, -64.0, 30.0),
                                  n_channels=n_channels, snr=snr))
    n_noise = n_channels if n_noise is None else n_noise
    if n_noise:
        regions.append(RegionSpec("OCC", "noise", hierarchy=float("nan"), center=(-20.0, -95.0, 0.0),
                                  n_channels=n_noise, snr=snr))
    return regions


@dataclass
class SimulationResult:
    """A simulated recording with its ground truth.

    Attributes
    ----------
    dataset : NeuralDataset
        the :class:`NeuralDataset` (``regions``, ``hierarchy`` and fake ``coords`` filled in;
        fMRI runs concatenated with ``runs`` labels).
    truth : pd.DataFrame
        one row per channel: ``channel``, ``region``, ``kind``, ``layers`` (tuple of driving
        layers), ``layer_weights`` (tuple, sums to 1), ``best_layer`` (the layer with the largest
        weight; -1 for acoustic/noise channels), ``snr`` (variance ratio; 0 for noise), ``is_noise``,
        ``hierarchy``, ``x``, ``y``, ``z`` (mm).
    stimuli : list[Stimulus]
        the stimulus of each run.
    drives : np.ndarray
        ``(n_words_total, n_channels)`` float32 word-level drive of each channel, words of all runs
        in order: unit variance for layer/mix channels, 1 for every word of acoustic channels, 0 for
        noise channels.
    projections : dict[str, np.ndarray]
        channel name → ``(len(layers), n_features)`` float32 projection vectors ``v_l``.
    params : dict
        the simulation settings (seed, sampling, noise parameters).
    """

    dataset: NeuralDataset
    truth: pd.DataFrame
    stimuli: list[Stimulus]
    drives: np.ndarray
    projections: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    @property
    def stimulus(self) -> Stimulus:
        """The stimulus (single-run simulations)."""
        if len(self.stimuli) != 1:
            raise NeuralDataError(f"{len(self.stimuli)} runs; use .stimuli")
        return self.stimuli[0]

    @property
    def driven(self) -> np.ndarray:
        """``(n_channels,)`` bool: channels with any signal."""
        return ~self.truth["is_noise"].to_numpy(bool)


# ---------------------------------------------------------------------------------------------- helpers
def _as_layers(features) -> np.ndarray:
    arr = features.layers if hasattr(features, "layers") else features
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise NeuralDataError(f"features must be (n_layers, n_words, n_features); got shape {arr.shape}")
    return arr


def _stack_runs(stimuli, features) -> tuple[list[Stimulus], np.ndarray]:
    stims = list(stimuli) if isinstance(stimuli, (list, tuple)) else [stimuli]
    if not stims or not all(isinstance(s, Stimulus) for s in stims):
        raise NeuralDataError("stimuli must be a Stimulus or a list of Stimulus")
    if isinstance(features, (list, tuple)):
        parts = [_as_layers(f) for f in features]
        if len(parts) != len(stims):
            raise NeuralDataError(f"{len(parts)} feature arrays but {len(stims)} stimuli")
        for i, (part, st) in enumerate(zip(parts, stims)):
            if part.shape[1] != len(st):
                raise NeuralDataError(f"run {i + 1} ({st.name!r}): {part.shape[1]} feature rows but {len(st)} words")
        if len({p.shape[0] for p in parts}) != 1 or len({p.shape[2] for p in parts}) != 1:
            raise NeuralDataError(f"runs have different (n_layers, n_features): {[p.shape for p in parts]}")
        feats = np.concatenate(parts, axis=1)
    else:
        feats = _as_layers(features)
        total = sum(len(s) for s in stims)
        if feats.shape[1] != total:
            raise NeuralDataError(
                f"features have {feats.shape[1]} words but the stimuli have {total}; features must cover "
                "the words of all runs in order")
    if not np.all(np.isfinite(feats)):
        raise NeuralDataError("features contain NaN or inf")
    return stims, feats


def _zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    return (x - x.mean(axis=0)) / sd


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    return x / sd


def _drives(feats: np.ndarray, stims: list[Stimulus], regions: list[RegionSpec], rng: np.random.Generator):
    """Word-level drives ``(n_words, n_channels)``, channel table rows, and projections."""
    n_layers, n_words, p = feats.shape
    for reg in regions:
        bad = [lay for lay in reg.layers if not 0 <= lay < n_layers]
        if bad:
            raise NeuralDataError(f"region {reg.name!r} uses layer(s) {bad} but the features have {n_layers} layers")
    z_cache: dict[int, np.ndarray] = {}

    def z(layer: int) -> np.ndarray:
        if layer not in z_cache:
            z_cache[layer] = _zscore(feats[layer])
        return z_cache[layer]

    n_ch = sum(r.n_channels for r in regions)
    drives = np.zeros((n_words, n_ch), dtype=np.float64)
    rows, projections = [], {}
    col = 0
    for reg in regions:
        lo, hi = reg.snr
        for k in range(reg.n_channels):
            name = f"{reg.name}-{k + 1:03d}"
            xyz = np.asarray(reg.center) + rng.normal(0.0, 4.0, 3)
            snr = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
            if reg.kind in ("layer", "mix"):
                vs = rng.normal(0.0, 1.0 / math.sqrt(p), size=(len(reg.layers), p))
                d = np.zeros(n_words)
                for a, lay, v in zip(reg.weights, reg.layers, vs):
                    part = z(lay) @ v
                    d += a * part / (part.std() or 1.0)
                drives[:, col] = d
                projections[name] = vs.astype(np.float32)
                best = int(reg.layers[int(np.argmax(reg.weights))])
            elif reg.kind == "acoustic":
                drives[:, col] = 1.0  # every word drives the channel equally: word rate
                best = -1
            else:
                best = -1
            rows.append(dict(channel=name, region=reg.name, kind=reg.kind, layers=reg.layers,
                             layer_weights=reg.weights, best_layer=best,
                             snr=0.0 if reg.kind == "noise" else snr, is_noise=reg.kind == "noise",
                             hierarchy=reg.hierarchy, x=xyz[0], y=xyz[1], z=xyz[2]))
            col += 1
    # unit variance for the feature-driven channels (the acoustic drive stays 1 per word)
    feat_cols = [i for i, r in enumerate(rows) if r["kind"] in ("layer", "mix")]
    if feat_cols:
        drives[:, feat_cols] = _unit(drives[:, feat_cols])
    return drives, pd.DataFrame(rows), projections


def _ar1_noise(rng: np.random.Generator, n: int, c: int, phi: float) -> np.ndarray:
    if not -1 < phi < 1:
        raise NeuralDataError(f"AR(1) coefficient must be in (-1, 1), got {phi}")
    e = rng.standard_normal((n, c))
    x = lfilter([1.0], [1.0, -phi], e, axis=0)
    return x


def _scale_to_snr(signal: np.ndarray, noise: np.ndarray, snr: np.ndarray, driven: np.ndarray) -> np.ndarray:
    """``signal`` scaled to unit variance plus ``noise`` scaled to variance ``1 / snr`` (noise-only: var 1)."""
    out = np.empty_like(noise)
    noise = _unit(noise)
    sig = _unit(signal)
    scale = np.where(driven, 1.0 / np.sqrt(np.where(driven, snr, 1.0)), 1.0)
    out[:] = noise * scale
    out[:, driven] += sig[:, driven]
    return out


def _kernel(sfreq: float, peak: float, window: tuple[float, float]) -> np.ndarray:
    """A raised-cosine response kernel inside ``window`` (s) peaking at ``peak`` (s), max 1."""
    t0, t1 = window
    t = np.arange(0.0, t1 + 0.5 / sfreq, 1.0 / sfreq)
    width = max(min(peak - t0, t1 - peak), 2.0 / sfreq)
    k = np.where(np.abs(t - peak) < width, 0.5 * (1 + np.cos(np.pi * (t - peak) / width)), 0.0)
    k[t < t0] = 0.0
    return k


# ---------------------------------------------------------------------------------------------- ECoG
def simulate_ecog(
    stimulus: Stimulus,
    features,
    *,
    regions: Sequence[RegionSpec] | None = None,
    sfreq: float = 100.0,
    window: tuple[float, float] = (0.0, 0.5),
    ar_coef: float = 0.8,
    padding: float = 1.0,
    seed: int = 0,
    subject: str = "sim-01",
) -> SimulationResult:
    """Synthesise ECoG-like, word-locked high-gamma responses.

    Each word onset triggers a raised-cosine response inside ``window`` (peak latency grows with the
    region's hierarchy position: 150 ms + 50 ms per level, unless ``RegionSpec.latency`` is set) with
    amplitude equal to the channel's word-level drive; AR(1) noise is added at each channel's SNR.

    Parameters
    ----------
    stimulus : Stimulus
        the words and their onsets (seconds).
    features : ndarray of shape (n_layers, n_words, n_features)
        ``(n_layers, n_words, n_features)`` array or an object with ``.layers`` of that shape.
    regions : Sequence[RegionSpec] | None
        region specs (default :func:`default_regions` for the number of layers).
    sfreq : float
        sampling rate in Hz.
    window : tuple[float, float]
        response window after word onset, seconds.
    ar_coef : float
        AR(1) coefficient of the noise at ``sfreq``.
    padding : float
        seconds of recording before the first word and after the last offset.
    seed : int
        random seed (projections, coordinates, SNRs, noise).
    subject : str
        subject label.

    Returns
    -------
    SimulationResult
        :class:`SimulationResult` with a ``(n_samples, n_channels)`` float32 dataset (modality ``"ecog"``).
    """
    if not sfreq > 0:
        raise NeuralDataError(f"sfreq must be positive, got {sfreq}")
    if not 0 <= window[0] < window[1]:
        raise NeuralDataError(f"window must satisfy 0 <= start < stop, got {window}")
    stims, feats = _stack_runs(stimulus, features)
    if len(stims) != 1:
        raise NeuralDataError("simulate_ecog takes one stimulus (one continuous recording)")
    stim = stims[0]
    regions = list(regions) if regions is not None else default_regions(feats.shape[0])
    rng = np.random.default_rng(seed)
    drives, truth, projections = _drives(feats, stims, regions, rng)
    n_ch = drives.shape[1]
    t_end = stim.offsets[-1] + max(padding, window[1])
    times = np.arange(0.0, t_end, 1.0 / sfreq)
    n = len(times)
    idx = np.clip(np.round(stim.onsets * sfreq).astype(int), 0, n - 1)
    signal = np.zeros((n, n_ch))
    col = 0
    for reg in regions:
        cols = slice(col, col + reg.n_channels)
        col += reg.n_channels
        if reg.kind == "noise" or reg.n_channels == 0:
            continue
        level = 0.0 if math.isnan(reg.hierarchy) else reg.hierarchy
        peak = reg.latency if reg.latency is not None else 0.15 + 0.05 * level
        peak = min(max(peak, window[0] + 1.0 / sfreq), window[1] - 1.0 / sfreq)
        kern = _kernel(sfreq, peak, window)
        sticks = np.zeros((n, reg.n_channels))
        np.add.at(sticks, idx, drives[:, cols])
        signal[:, cols] = fftconvolve(sticks, kern[:, None], axes=0)[:n]
    noise = _ar1_noise(rng, n, n_ch, ar_coef)
    driven = ~truth["is_noise"].to_numpy(bool)
    data = _scale_to_snr(signal, noise, truth["snr"].to_numpy(float), driven)
    ds = NeuralDataset(
        data=data.astype(np.float32), times=times, channels=truth["channel"].tolist(), subject=subject,
        modality="ecog", coords=truth[["x", "y", "z"]].to_numpy(), regions=truth["region"].tolist(),
        hierarchy=truth["hierarchy"].to_numpy(float),
        meta={"simulated": True, "seed": seed, "sfreq": sfreq, "window": window, "ar_coef": ar_coef})
    params = dict(kind="ecog", seed=seed, sfreq=sfreq, window=window, ar_coef=ar_coef)
    return SimulationResult(ds, truth, [stim], drives.astype(np.float32), projections, params)


# ---------------------------------------------------------------------------------------------- fMRI
def _hrf(model: str, dt: float = 0.01, length: float = 32.0) -> tuple[np.ndarray, np.ndarray]:
    from nilearn.glm.first_level import glover_hrf, spm_hrf

    funcs = {"glover": glover_hrf, "spm": spm_hrf}
    if model not in funcs:
        raise NeuralDataError(f"hrf_model must be one of {sorted(funcs)}, not {model!r}")
    oversampling = int(round(1.0 / dt))
    h = funcs[model](1.0, oversampling=oversampling, time_length=length)
    t = np.arange(len(h)) / oversampling
    return t, h / h.max()


def _drift(rng: np.random.Generator, n: int, c: int, tr: float, cutoff: float) -> np.ndarray:
    """Slow drift: random combination of cosines below ``cutoff`` Hz (a DCT basis), unit variance."""
    duration = n * tr
    k = max(1, int(math.floor(2 * duration * cutoff)))
    t = np.arange(n) * tr
    basis = np.stack([np.cos(np.pi * (j + 1) * (t + tr / 2) / duration) for j in range(k)], axis=1)
    basis += rng.normal(0.0, 1e-9, basis.shape)
    w = rng.normal(0.0, 1.0, (k, c)) / np.sqrt(np.arange(1, k + 1))[:, None]
    return _unit(basis @ w)


def simulate_fmri(
    stimuli: Stimulus | Sequence[Stimulus],
    features,
    *,
    regions: Sequence[RegionSpec] | None = None,
    tr: float = 2.0,
    n_trs: int | Sequence[int] | None = None,
    hrf_model: str = "glover",
    ar_coef: float = 0.3,
    drift_amplitude: float = 0.5,
    drift_cutoff: float = 1.0 / 128.0,
    tail: float = 20.0,
    seed: int = 0,
    subject: str = "sim-01",
) -> SimulationResult:
    """Synthesise fMRI-like BOLD for one or several runs (stories).

    The word-level drive of each channel (impulses at word onsets) is convolved with the haemodynamic
    response (nilearn's ``glover`` or ``spm`` HRF) and sampled at volume times ``i * tr`` of each run.
    Noise = AR(1) (``ar_coef`` per TR) + slow cosine drift (below ``drift_cutoff`` Hz) with
    ``drift_amplitude`` × the AR noise's standard deviation, independently per run and channel; then
    scaled to each channel's SNR. Signals are normalised over all runs together (so drive differences
    between runs remain).

    Parameters
    ----------
    stimuli : Stimulus | Sequence[Stimulus]
        one Stimulus per run (word times in seconds from the run's first volume).
    features : ndarray of shape (n_layers, n_words_total, n_features) or list
        ``(n_layers, n_words_total, n_features)`` covering the words of all runs in order, or a
        list with one such array per run (``.layers`` objects accepted).
    regions : Sequence[RegionSpec] | None
        region specs (default :func:`default_regions`).
    tr : float
        repetition time in seconds.
    n_trs : int | Sequence[int] | None
        volumes per run (default: enough to cover the last word plus ``tail`` seconds).
    hrf_model : str
        ``"glover"`` or ``"spm"``.
    ar_coef : float
        AR(1) coefficient per TR.
    drift_amplitude : float
        drift standard deviation relative to the AR noise.
    drift_cutoff : float
        highest drift frequency, Hz.
    tail : float
        seconds after the last word (default run length), for the HRF to return to baseline.
    seed : int
        random seed.
    subject : str
        subject label.

    Returns
    -------
    SimulationResult
        :class:`SimulationResult`; the dataset has modality ``"fmri"``, ``runs`` labels (the stimulus
        names, or ``run-1`` ...) and ``meta["tr"]``; sample times restart at 0 for each run plus a
        run offset (``meta["run_starts"]``), see :func:`brainlike.neural.fmri.concatenate_runs`.
    """
    from brainlike.neural.fmri import concatenate_runs

    if not tr > 0:
        raise NeuralDataError(f"tr must be positive, got {tr}")
    if drift_amplitude < 0:
        raise NeuralDataError(f"drift_amplitude must be >= 0, got {drift_amplitude}")
    stims, feats = _stack_runs(stimuli, features)
    if n_trs is None:
        lengths = [int(math.ceil((s.offsets[-1] + tail) / tr)) for s in stims]
    else:
        lengths = [int(n) for n in (n_trs if isinstance(n_trs, (list, tuple)) else [n_trs] * len(stims))]
        if len(lengths) != len(stims):
            raise NeuralDataError(f"{len(lengths)} run lengths for {len(stims)} runs")
    for s, n in zip(stims, lengths):
        if s.onsets[-1] >= n * tr:
            raise NeuralDataError(
                f"run {s.name!r}: the last word starts at {s.onsets[-1]:.1f} s, after the run ends "
                f"({n} volumes × {tr} s)")
    regions = list(regions) if regions is not None else default_regions(feats.shape[0])
    rng = np.random.default_rng(seed)
    drives, truth, projections = _drives(feats, stims, regions, rng)
    n_ch = drives.shape[1]
    hrf_t, hrf = _hrf(hrf_model)
    signals, noises = [], []
    w0 = 0
    for s, n in zip(stims, lengths):
        vol_t = np.arange(n) * tr
        lag = vol_t[:, None] - s.onsets[None, :]
        H = np.where((lag >= 0) & (lag <= hrf_t[-1]), np.interp(lag, hrf_t, hrf, left=0.0, right=0.0), 0.0)
        signals.append(H @ drives[w0:w0 + len(s)])
        w0 += len(s)
        noise = _unit(_ar1_noise(rng, n, n_ch, ar_coef))
        if drift_amplitude > 0:
            noise = noise + drift_amplitude * _drift(rng, n, n_ch, tr, drift_cutoff)
        noises.append(noise)
    signal = np.vstack(signals)
    noise = np.vstack(noises)
    driven = ~truth["is_noise"].to_numpy(bool)
    data = _scale_to_snr(signal, noise, truth["snr"].to_numpy(float), driven).astype(np.float32)
    labels = [s.name for s in stims]
    if len(set(labels)) != len(labels):
        labels = [f"run-{i + 1}" for i in range(len(stims))]
    runs, start = [], 0
    for n, _ in zip(lengths, labels):
        runs.append(NeuralDataset(
            data=data[start:start + n], times=np.arange(n) * tr, channels=truth["channel"].tolist(),
            subject=subject, modality="fmri", coords=truth[["x", "y", "z"]].to_numpy(),
            regions=truth["region"].tolist(), hierarchy=truth["hierarchy"].to_numpy(float),
            meta={"simulated": True, "seed": seed, "tr": tr, "hrf_model": hrf_model, "ar_coef": ar_coef,
                  "drift_amplitude": drift_amplitude}))
        start += n
    ds = concatenate_runs(runs, labels)
    params = dict(kind="fmri", seed=seed, tr=tr, n_trs=lengths, hrf_model=hrf_model, ar_coef=ar_coef,
                  drift_amplitude=drift_amplitude, drift_cutoff=drift_cutoff)
    return SimulationResult(ds, truth, stims, drives.astype(np.float32), projections, params)
