"""NeuralDataset: recordings as ``(n_samples, n_channels)`` with times, channel positions and regions."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from brainlike.errors import NeuralDataError


@dataclass
class NeuralDataset:
    """Neural recordings of one subject.

    Attributes
    ----------
    data : np.ndarray
        ``(n_samples, n_channels)`` float32 responses (e.g. high-gamma power in z units for ECoG,
        BOLD percent signal change for fMRI).
    times : np.ndarray
        ``(n_samples,)`` float64 sample times in seconds, on the stimulus clock, increasing.
    channels : list[str]
        ``n_channels`` channel names (electrodes or voxels/vertices).
    subject : str
        subject label.
    modality : str
        ``"ecog"`` (or ``"ieeg"``/``"meg"``) for word-locked analyses, ``"fmri"`` for TR-sampled.
    coords : np.ndarray | None
        ``(n_channels, 3)`` float positions in mm (e.g. MNI), or None.
    regions : list[str] | None
        ``n_channels`` region labels (e.g. ``"STG"``, ``"IFG"``), or None.
    hierarchy : np.ndarray | None
        ``(n_channels,)`` float position of each channel in the processing hierarchy (a region
        order, a distance from primary auditory cortex in mm, a latency in s), or None.
    runs : np.ndarray | None
        ``(n_samples,)`` run/story labels for run-aware cross-validation, or None (one run).
    meta : dict
        free-form provenance (file names, sampling rate, preprocessing).
    """

    data: np.ndarray
    times: np.ndarray
    channels: list[str]
    subject: str = "sub-01"
    modality: str = "ecog"
    coords: np.ndarray | None = None
    regions: list[str] | None = None
    hierarchy: np.ndarray | None = None
    runs: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = _numeric(self.data, "data", np.float32)
        if self.data.ndim == 1:
            self.data = self.data[:, None]
        if self.data.ndim != 2:
            raise NeuralDataError(f"data must be (n_samples, n_channels); got shape {self.data.shape}")
        n, c = self.data.shape
        self.times = _numeric(self.times, "times", np.float64).reshape(-1)
        if len(self.times) != n:
            raise NeuralDataError(f"{n} samples in data but {len(self.times)} sample times")
        bad_t = np.flatnonzero(~np.isfinite(self.times))
        if bad_t.size:
            i = int(bad_t[0])
            raise NeuralDataError(f"times: sample {i} is {self.times[i]} ({bad_t.size} of {n} sample times are NaN "
                                  "or infinite); every sample needs a finite time in seconds")
        if n > 1 and not np.all(np.diff(self.times) > 0):
            i = int(np.flatnonzero(np.diff(self.times) <= 0)[0]) + 1
            raise NeuralDataError(f"sample times must increase; sample {i} ({self.times[i]} s) does not")
        self.channels = [str(ch) for ch in self.channels]
        if len(self.channels) != c:
            raise NeuralDataError(f"{c} channels in data but {len(self.channels)} channel names")
        if len(set(self.channels)) != c:
            raise NeuralDataError("channel names must be unique")
        if self.coords is not None:
            self.coords = _numeric(self.coords, "coords", np.float64)
            if self.coords.shape != (c, 3):
                raise NeuralDataError(f"coords must be (n_channels, 3) = ({c}, 3); got {self.coords.shape}")
        if self.regions is not None:
            self.regions = [str(r) for r in self.regions]
            if len(self.regions) != c:
                raise NeuralDataError(f"{c} channels but {len(self.regions)} region labels")
        if self.hierarchy is not None:
            self.hierarchy = _numeric(self.hierarchy, "hierarchy", np.float64).reshape(-1)
            if len(self.hierarchy) != c:
                raise NeuralDataError(f"{c} channels but {len(self.hierarchy)} hierarchy positions")
        if self.runs is not None:
            self.runs = np.asarray(self.runs).reshape(-1)
            if len(self.runs) != n:
                raise NeuralDataError(f"{n} samples but {len(self.runs)} run labels")

    @property
    def n_samples(self) -> int:
        """The number of samples."""
        return self.data.shape[0]

    @property
    def n_channels(self) -> int:
        """The number of channels."""
        return self.data.shape[1]

    @property
    def sfreq(self) -> float:
        """Median sampling rate in Hz."""
        return float(1.0 / np.median(np.diff(self.times))) if self.n_samples > 1 else float("nan")

    def bad_channels(self) -> list[str]:
        """Channels that contain NaN/inf or are flat (zero variance): they cannot be modelled."""
        finite = np.isfinite(self.data).all(axis=0)
        with np.errstate(invalid="ignore"):
            flat = np.nanstd(self.data, axis=0) == 0
        return [ch for ch, ok, fl in zip(self.channels, finite, flat) if not ok or fl]

    def select_channels(self, keep: list[str] | np.ndarray) -> NeuralDataset:
        """A copy with only the given channels (names or boolean mask / integer indices)."""
        keep = list(keep)
        if keep and isinstance(keep[0], str):
            pos = {ch: i for i, ch in enumerate(self.channels)}
            missing = [k for k in keep if k not in pos]
            if missing:
                raise NeuralDataError(f"unknown channels: {missing[:5]}")
            idx = np.array([pos[k] for k in keep], dtype=int)
        else:
            arr = np.asarray(keep)
            idx = np.flatnonzero(arr) if arr.dtype == bool else arr.astype(int)
        return replace(
            self,
            data=self.data[:, idx],
            channels=[self.channels[i] for i in idx],
            coords=None if self.coords is None else self.coords[idx],
            regions=None if self.regions is None else [self.regions[i] for i in idx],
            hierarchy=None if self.hierarchy is None else self.hierarchy[idx],
            meta=dict(self.meta),
        )

    def drop_bad_channels(self) -> tuple[NeuralDataset, list[str]]:
        """Exclude NaN/flat channels; returns the clean dataset and the names dropped (report them)."""
        bad = set(self.bad_channels())
        if not bad:
            return self, []
        keep = [ch for ch in self.channels if ch not in bad]
        if not keep:
            raise NeuralDataError("every channel is NaN or flat")
        return self.select_channels(keep), [ch for ch in self.channels if ch in bad]

    def channel_table(self):
        """A pandas table with one row per channel: channel, region, hierarchy, x, y, z."""
        import pandas as pd

        df = pd.DataFrame({"channel": self.channels})
        df["region"] = self.regions if self.regions is not None else "all"
        df["hierarchy"] = self.hierarchy if self.hierarchy is not None else np.nan
        if self.coords is not None:
            df["x"], df["y"], df["z"] = self.coords.T
        return df


def _numeric(values, field: str, dtype) -> np.ndarray:
    """``values`` as a ``dtype`` array.

    Or a :class:`NeuralDataError` naming ``field`` and the first value that is not a number (strings are refused even
    when they look like numbers: convert them first).
    """
    try:
        arr = np.asarray(values)
    except ValueError as exc:  # ragged nested lists
        raise NeuralDataError(f"{field} must be a rectangular array of numbers ({exc})") from None
    if arr.dtype.kind in "biuf":
        return arr.astype(dtype, copy=False)
    if arr.dtype.kind == "c":
        raise NeuralDataError(f"{field} is complex ({arr.dtype}); pass real numbers (e.g. np.abs or .real)")
    if arr.dtype.kind in "OUS":
        flat = arr.reshape(-1)

        def where(i: int) -> tuple[int, ...]:
            return tuple(int(x) for x in np.unravel_index(i, arr.shape))

        def is_number(v) -> bool:
            try:
                float(v)
                return True
            except (TypeError, ValueError):
                return False

        # the first element that is not a number at all, else the first string (strings are never parsed)
        bad = next((i for i, v in enumerate(flat) if not is_number(v)), None)
        if bad is None:
            bad = next((i for i, v in enumerate(flat) if isinstance(v, (str, bytes))), None)
        if bad is not None:
            v = flat[bad]
            shown = repr(v.item() if isinstance(v, np.generic) else v)
            raise NeuralDataError(
                f"{field} must be numbers, but element {where(bad)} is {shown} ({type(v).__name__}); convert "
                "the values to numbers first (np.asarray(x, dtype=float) or pd.to_numeric)")
        return arr.astype(dtype)
    raise NeuralDataError(f"{field} must be numbers, not {arr.dtype} values")
