"""BIDS iEEG (ECoG/sEEG) loading and high-gamma envelope extraction.

Layout of the Podcast ECoG dataset (OpenNeuro ds005574) and other BIDS-iEEG datasets::

    sub-01/ieeg/sub-01_task-podcast_ieeg.edf                     raw signal (or .vhdr / .fif / .set)
    sub-01/ieeg/sub-01_task-podcast_channels.tsv                 name, type, status (good/bad) ...
    sub-01/ieeg/sub-01_space-MNI152NLin2009aSym_electrodes.tsv   name, x, y, z (+ group / region)
    sub-01/ieeg/sub-01_space-MNI152NLin2009aSym_coordsystem.json units of x, y, z
    sub-01/ieeg/sub-01_task-podcast_events.tsv                   (optional) events / words
    derivatives/ecogprep/sub-01/ieeg/sub-01_task-podcast_desc-highgamma_ieeg.fif   preprocessed

High gamma: band-pass (MNE FIR) in each sub-band of 70–150 Hz, Hilbert envelope, each sub-band divided
by its mean (so the 1/f spectrum does not let the lowest band dominate), averaged, low-passed and
resampled to ``sfreq_out`` (default 100 Hz), and z-scored per channel.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.errors import NeuralDataError
from brainlike.neural.bids import (
    BIDSRecording,
    _resolve_stimulus,
    find_bids_file,
    find_sidecar,
    flat_channels,
    parse_bids_name,
)
from brainlike.neural.dataset import NeuralDataset

__all__ = ["HIGH_GAMMA_BANDS", "high_gamma_envelope", "load_bids_ieeg"]

#: Default high-gamma sub-bands (Hz): four 20-Hz bands covering 70–150 Hz.
HIGH_GAMMA_BANDS: tuple[tuple[float, float], ...] = ((70.0, 90.0), (90.0, 110.0), (110.0, 130.0), (130.0, 150.0))

_REGION_COLUMNS = ("region", "roi", "anat", "anatomy", "anatomical_label", "atlas", "label", "location", "group")
_KEEP_TYPES = ("ECOG", "SEEG", "DBS")
_UNITS_TO_MM = {"m": 1000.0, "cm": 10.0, "mm": 1.0}


def high_gamma_envelope(
    data: np.ndarray,
    sfreq: float,
    *,
    bands: Sequence[tuple[float, float]] = HIGH_GAMMA_BANDS,
    sfreq_out: float | None = 100.0,
    zscore: bool = True,
    line_freq: float | None = None,
    chunk_channels: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """High-gamma envelope of broadband recordings.

    Parameters
    ----------
    data : np.ndarray
        ``(n_samples, n_channels)`` voltage (any unit), sampled at ``sfreq``.
    sfreq : float
        sampling rate in Hz; must exceed twice the highest band edge.
    bands : Sequence[tuple[float, float]]
        ``(low, high)`` Hz sub-bands; their normalised envelopes are averaged. One band
        ``((70, 150),)`` gives the plain 70–150 Hz envelope.
    sfreq_out : float | None
        output rate in Hz (None keeps ``sfreq``); the envelope is low-passed before resampling.
    zscore : bool
        z-score every channel over time (else each channel is in units of its mean envelope).
    line_freq : float | None
        mains frequency (50/60 Hz); its harmonics inside the bands are notch-filtered first.
    chunk_channels : int
        channels processed at a time (memory: about 50 bytes × samples × this).

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``(envelope, times)``: ``(n_out, n_channels)`` float32 and ``(n_out,)`` seconds from the first sample.
    """
    import mne
    from scipy.fft import next_fast_len
    from scipy.signal import hilbert

    x = np.asarray(data, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise NeuralDataError(f"data must be (n_samples, n_channels); got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise NeuralDataError("data contain NaN or inf; exclude those channels first")
    bands = [(float(lo), float(hi)) for lo, hi in bands]
    if not bands or any(not 0 < lo < hi for lo, hi in bands):
        raise NeuralDataError(f"bands must be (low, high) pairs with 0 < low < high, got {bands}")
    top = max(hi for _, hi in bands)
    if sfreq <= 2 * top:
        raise NeuralDataError(
            f"sampling rate {sfreq} Hz is too low for a band up to {top} Hz (needs > {2 * top} Hz)")
    n = x.shape[0]
    if n < int(2 * sfreq):
        raise NeuralDataError(f"need at least 2 s of data for band-pass filtering, got {n / sfreq:.2f} s")
    if sfreq_out is not None and sfreq_out != sfreq and not 0 < sfreq_out < sfreq:
        raise NeuralDataError(f"sfreq_out must be in (0, {sfreq}) Hz, got {sfreq_out}")
    notch = None
    if line_freq:
        freqs = np.arange(line_freq, top + line_freq, line_freq)
        freqs = freqs[(freqs >= min(lo for lo, _ in bands) - 5) & (freqs < sfreq / 2)]
        notch = freqs if len(freqs) else None
    out_rate = sfreq if sfreq_out is None else sfreq_out
    nfft = next_fast_len(n)
    pieces = []
    for start in range(0, x.shape[1], chunk_channels):  # bounded memory for long, many-channel recordings
        xt = x[:, start:start + chunk_channels].T.copy()  # (channels, samples) for MNE
        if notch is not None:
            xt = mne.filter.notch_filter(xt, sfreq, notch, verbose="error")
        env = np.zeros_like(xt)
        for lo, hi in bands:
            filt = mne.filter.filter_data(xt, sfreq, lo, hi, verbose="error")
            e = np.abs(hilbert(filt, N=nfft, axis=-1)[:, :n])
            mean = e.mean(axis=1, keepdims=True)
            mean[mean == 0] = 1.0
            env += e / mean
        env /= len(bands)
        if out_rate != sfreq:
            env = mne.filter.resample(env, up=1.0, down=sfreq / out_rate, axis=-1, verbose="error")
        if zscore:
            sd = env.std(axis=1, keepdims=True)
            sd[sd == 0] = 1.0
            env = (env - env.mean(axis=1, keepdims=True)) / sd
        pieces.append(env.astype(np.float32))
    env = np.concatenate(pieces, axis=0)
    times = np.arange(env.shape[1]) / out_rate
    return env.T.astype(np.float32), times


def _read_tsv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a", "N/A"], keep_default_na=False, dtype=str)
    except Exception as exc:  # noqa: BLE001
        raise NeuralDataError(f"cannot read {path} as TSV: {exc}") from None


def _electrodes(path: Path, region_column: str | None, files: dict) -> tuple[dict, dict, str | None]:
    """Name → (x, y, z) in mm, name → region, and the region column used."""
    df = _read_tsv(path)
    cols = {c.lower(): c for c in df.columns}
    for need in ("name", "x", "y", "z"):
        if need not in cols:
            raise NeuralDataError(f"{path}: electrodes.tsv needs columns name, x, y, z (has {list(df.columns)})")
    scale = 1.0
    coordsys = find_sidecar(path, "coordsystem", ".json", optional_entities=("space", "acq"))
    if coordsys is not None:
        files["coordsystem"] = str(coordsys)
        try:
            unit = str(json.loads(coordsys.read_text()).get("iEEGCoordinateUnits", "mm")).lower()
        except ValueError as exc:
            raise NeuralDataError(f"{coordsys}: not valid JSON ({exc})") from None
        scale = _UNITS_TO_MM.get(unit, 1.0)
    xyz = {}
    for _, row in df.iterrows():
        vals = pd.to_numeric(pd.Series([row[cols["x"]], row[cols["y"]], row[cols["z"]]]), errors="coerce")
        xyz[str(row[cols["name"]]).strip()] = tuple(float(v) * scale for v in vals)
    if region_column is not None and region_column not in df.columns:
        raise NeuralDataError(f"{path}: no column {region_column!r} (has {list(df.columns)})")
    rcol = region_column or next((cols[c] for c in _REGION_COLUMNS if c in cols), None)
    regions = {}
    if rcol is not None:
        for name, reg in zip(df[cols["name"]], df[rcol]):
            regions[str(name).strip()] = str(reg).strip() if isinstance(reg, str) and reg.strip() else "unknown"
    return xyz, regions, rcol


def load_bids_ieeg(
    path: str | Path | None = None,
    *,
    root: str | Path | None = None,
    subject: str | None = None,
    task: str | None = None,
    session: str | None = None,
    run: str | int | None = None,
    acquisition: str | None = None,
    description: str | None = None,
    space: str | None = None,
    high_gamma: bool = True,
    bands: Sequence[tuple[float, float]] = HIGH_GAMMA_BANDS,
    sfreq_out: float | None = 100.0,
    zscore: bool = True,
    line_freq: float | None = None,
    channel_types: Sequence[str] = _KEEP_TYPES,
    region_column: str | None = None,
    channels_tsv: str | Path | None = None,
    electrodes_tsv: str | Path | None = None,
    stimulus=None,
    stimulus_onset: float | str = 0.0,
    word_column: str | None = None,
) -> BIDSRecording:
    """Load a BIDS iEEG recording (EDF, BrainVision, FIF or EEGLAB) with MNE, as a word-ready dataset.

    Give the file (``path``) or find it with ``root`` + ``subject``/``task``/``session``/``run``/
    ``acquisition``/``description`` under ``root/sub-*/[ses-*/]ieeg/*_ieeg.*``.

    Steps: read the signal (``mne.io.read_raw``); keep the channels whose ``channels.tsv`` type is in
    ``channel_types``; exclude channels marked ``bad`` in ``channels.tsv`` or in the file, and channels
    that are NaN or flat (all reported in ``excluded``); extract the high-gamma envelope
    (:func:`high_gamma_envelope`, or with ``high_gamma=False`` only resample/z-score, e.g. for Podcast's
    ``desc-highgamma`` derivative); attach electrode coordinates (mm; ``coordsystem.json`` units) and
    regions from ``electrodes.tsv`` (first of the columns region/roi/anat/atlas/label/location/group, or
    ``region_column``); read the words.

    Parameters
    ----------
    space : str | None
        pick ``*_space-<space>_electrodes.tsv`` when several exist.
    channels_tsv, electrodes_tsv : str | Path | None
        explicit sidecars (default: found by BIDS inheritance, also in the
        raw dataset for files under ``derivatives/``).
    stimulus : Stimulus, str, Path or None
        a :class:`Stimulus`, a word-timing file (Podcast: ``stimuli/podcast_transcript.csv``), or
        None for the words of the run's ``events.tsv`` (if it has a word column).
    stimulus_onset : float | str
        seconds added to the word times, or ``"events"`` (first onset in events.tsv).
    word_column : str | None
        the events.tsv column holding the words (default: word/words/text/token).

    Returns
    -------
    BIDSRecording
        :class:`BIDSRecording` with modality ``"ecog"`` (``"seeg"`` when every kept channel is sEEG),
        times in seconds from the first sample, ``meta["sfreq"]``; channels without a position in
        electrodes.tsv get NaN coordinates and region ``"unknown"`` (listed in ``meta["unlocalized"]``).

    Raises
    ------
    NeuralDataError
        missing files (named), unknown BIDS entities, channels.tsv not matching the
        recording, sampling rate too low, words outside the recording.
    """
    import mne

    if path is None:
        if root is None or subject is None:
            raise NeuralDataError("give path= or root= and subject= (plus task=, run= ...)")
        path = find_bids_file(root, datatype="ieeg", suffix="ieeg", extensions=(".edf", ".vhdr", ".fif", ".set"),
                              subject=subject, task=task, session=session, run=run, acquisition=acquisition,
                              description=description)
    path = Path(path)
    if not path.exists():
        raise NeuralDataError(f"iEEG file not found: {path}")
    parsed = parse_bids_name(path)
    if parsed.suffix != "ieeg":
        raise NeuralDataError(f"{path}: expected a *_ieeg.<ext> file (suffix 'ieeg'), got suffix {parsed.suffix!r}")
    files = {"data": str(path)}
    try:
        raw = mne.io.read_raw(str(path), preload=True, verbose="error")
    except Exception as exc:  # MNE raises many kinds
        raise NeuralDataError(f"cannot read {path} with MNE: {exc}") from None
    sfreq = float(raw.info["sfreq"])
    excluded: dict[str, str] = {}

    # channels.tsv: types and status
    ch_path = Path(channels_tsv) if channels_tsv is not None else find_sidecar(path, "channels", ".tsv")
    keep = list(raw.ch_names)
    if ch_path is not None:
        if not ch_path.exists():
            raise NeuralDataError(f"channels file not found: {ch_path}")
        files["channels"] = str(ch_path)
        cdf = _read_tsv(ch_path)
        if "name" not in cdf.columns:
            raise NeuralDataError(f"{ch_path}: channels.tsv needs a 'name' column (has {list(cdf.columns)})")
        names = [str(n).strip() for n in cdf["name"]]
        types = [str(t).upper() for t in cdf.get("type", pd.Series(["ECOG"] * len(cdf)))]
        status = [str(s).lower() for s in cdf.get("status", pd.Series(["good"] * len(cdf)))]
        desc = list(cdf.get("status_description", pd.Series([""] * len(cdf))))
        allowed = {t.upper() for t in channel_types}
        if not any(n in raw.ch_names for n in names):
            raise NeuralDataError(
                f"{ch_path}: none of its channels are in {path.name} (e.g. {names[:5]}; the file has "
                f"{raw.ch_names[:5]} ...)")
        missing = [n for n, t in zip(names, types) if n not in raw.ch_names and t in allowed]
        if missing:
            warnings.warn(f"{ch_path}: {len(missing)} channels listed but not in {path.name}: {missing[:5]}",
                          stacklevel=2)
        keep = []
        for name, typ, st, why in zip(names, types, status, desc):
            if name not in raw.ch_names:
                continue
            if typ not in allowed:
                continue  # EKG, TRIG, MISC ...: not brain channels, not reported as bad
            if st == "bad":
                excluded[name] = "marked bad in channels.tsv" + (f": {why}" if isinstance(why, str) and why else "")
                continue
            keep.append(name)
    for name in raw.info["bads"]:
        if name in keep:
            keep.remove(name)
            excluded[name] = "marked bad in the recording file"
    if not keep:
        raise NeuralDataError(f"{path}: no usable channel (types {list(channel_types)}, not marked bad)")
    data = raw.get_data(picks=keep).T  # (n_samples, n_channels), volts
    finite = np.isfinite(data).all(axis=0)
    flat = flat_channels(data)
    bad_now = [(ch, "contains NaN or inf" if not f else "flat (zero variance)")
               for ch, f, fl in zip(keep, finite, flat) if not f or fl]
    if bad_now:
        for ch, why in bad_now:
            excluded[ch] = why
        warnings.warn(f"{path}: excluded {len(bad_now)} NaN/flat channels: {[c for c, _ in bad_now][:5]}",
                      stacklevel=2)
        good = finite & ~flat
        keep = [ch for ch, g in zip(keep, good) if g]
        data = data[:, good]
        if not keep:
            raise NeuralDataError(f"{path}: every channel is NaN or flat")

    if high_gamma:
        env, times = high_gamma_envelope(data, sfreq, bands=bands, sfreq_out=sfreq_out, zscore=zscore,
                                         line_freq=line_freq)
        out_rate = sfreq_out or sfreq
    else:
        env = data
        out_rate = sfreq
        if sfreq_out is not None and sfreq_out != sfreq:
            import mne.filter

            env = mne.filter.resample(env.T, up=1.0, down=sfreq / sfreq_out, axis=-1, verbose="error").T
            out_rate = sfreq_out
        if zscore:
            sd = env.std(axis=0)
            sd[sd == 0] = 1.0
            env = (env - env.mean(axis=0)) / sd
        env = env.astype(np.float32)
        times = np.arange(env.shape[0]) / out_rate

    # electrodes.tsv: coordinates and regions
    el_path = Path(electrodes_tsv) if electrodes_tsv is not None else find_sidecar(
        path, "electrodes", ".tsv", optional_entities=("space", "acq"), prefer={"space": space} if space else None)
    coords = np.full((len(keep), 3), np.nan)
    regions = ["unknown"] * len(keep)
    rcol = None
    unlocalized = list(keep)
    if el_path is not None:
        if not el_path.exists():
            raise NeuralDataError(f"electrodes file not found: {el_path}")
        files["electrodes"] = str(el_path)
        xyz, regs, rcol = _electrodes(el_path, region_column, files)
        unlocalized = []
        for i, ch in enumerate(keep):
            if ch in xyz and np.all(np.isfinite(xyz[ch])):
                coords[i] = xyz[ch]
            else:
                unlocalized.append(ch)
            regions[i] = regs.get(ch, "unknown")
    types = set(raw.get_channel_types(picks=keep))
    modality = "seeg" if types == {"seeg"} else "ecog"
    try:
        space_label = parse_bids_name(el_path).entities.get("space") if el_path is not None else None
    except NeuralDataError:
        space_label = None
    meta = {
        "sfreq": float(out_rate), "sfreq_raw": sfreq, "entities": parsed.entities, "high_gamma": bool(high_gamma),
        "bands": [list(b) for b in bands] if high_gamma else None, "zscore": zscore, "region_column": rcol,
        "coordinate_space": space_label, "unlocalized": unlocalized, "excluded": dict(excluded),
        "run": "_".join(f"{k}-{v}" for k, v in parsed.entities.items() if k in ("ses", "task", "run")) or "run-1",
        "source": "bids",
    }
    ds = NeuralDataset(data=env, times=times, channels=keep, subject=f"sub-{parsed.entities['sub']}",
                       modality=modality, coords=coords, regions=regions, meta=meta)
    duration = raw.n_times / sfreq
    stim = _resolve_stimulus(stimulus, path, stimulus_onset, files, duration, word_column)
    return BIDSRecording(ds, stim, excluded, files)
