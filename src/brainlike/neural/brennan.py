"""Brennan et al. (2016): real fMRI of 27 people listening to *Alice in Wonderland*, shipped in the package.

The authors' data share (CC BY 4.0): mean BOLD time courses of six left-lateralised language regions of
interest (plus the right anterior temporal lobe), 362 volumes at TR 2 s, for each participant who heard
chapter 1 of *Alice's Adventures in Wonderland* (12.4 min); per-subject word-rate and sound-power
regressors (HRF-convolved), SPM head-motion parameters, twelve group predictors and the word alignment
(Praat TextGrid).

* :func:`load_brennan2016` reads the compact copy shipped in ``brainlike/data/brennan2016`` (``path=None``,
  checksums verified against its manifest) or the authors' own folder layout.
* :class:`Brennan2016` holds the recording: ``data`` ``(n_subjects, n_volumes, n_rois)``, the words,
  the control regressors, and :meth:`Brennan2016.datasets` (one :class:`NeuralDataset` per subject) for
  the generic fMRI code.
* :func:`brennan_design_controls` stacks the low-level control regressors for encoding.
* :func:`brennan2016_dataset` turns a spec section into a recording (the dataset registry's hook).
* :func:`write_compact_copy` converts the authors' folder into the shipped copy (how it was made).

Timing (checked in the tests): volume row ``i`` (0-based) was acquired at TextGrid time ``20 + 2 i`` s.
The scanner ran 372 volumes; the authors discarded the first 10 (the 20 s of silence that pads the
audio), so the motion files (372 rows) and the group predictors (372 rows) lose their first 10 rows here.

Subject ``s33``'s time courses are all zeros in both radii: it is excluded (``rec.excluded``) and a
warning says so.

Reference: Brennan, J. R., Stabler, E. P., Van Wagenen, S. E., Luh, W.-M., & Hale, J. T. (2016).
Abstract linguistic structure correlates with temporal activity during naturalistic comprehension.
*Brain and Language*, 157-158, 81-94. https://doi.org/10.1016/j.bandl.2016.04.008
"""
from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.errors import BrainlikeError
from brainlike.fileio import atomic_write, atomic_write_json, atomic_write_text, sha256_file
from brainlike.neural.dataset import NeuralDataset
from brainlike.neural.stats import noise_ceiling_table
from brainlike.stimulus import Stimulus

__all__ = [
    "BRENNAN_CONTROL_NAMES",
    "BRENNAN_GROUP_PREDICTORS",
    "BRENNAN_RADII",
    "BRENNAN_ROIS",
    "Brennan2016",
    "brennan2016_dataset",
    "brennan_control_names",
    "brennan_design_controls",
    "load_brennan2016",
    "shipped_copy_dir",
    "write_compact_copy",
]

#: The six regions of interest, in the column order of the authors' files: left / right anterior temporal
#: lobe, left posterior temporal lobe, left inferior parietal lobule, left premotor, left inferior frontal gyrus.
BRENNAN_ROIS: tuple[str, ...] = ("LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG")
#: Sphere radii of the ROIs the authors give (folders ``6mm/`` and ``10mm/``).
BRENNAN_RADII: tuple[str, ...] = ("6mm", "10mm")
#: Column names of ``sept18-generic-predictors-under-hrf-with-logfrqhal.txt`` (from the authors' README).
BRENNAN_GROUP_PREDICTORS: tuple[str, ...] = (
    "rate_conv", "frq_conv_orth", "break_conv_orth", "tdp_conv_orth", "tdx_conv_orth", "bup_conv_orth",
    "bux_conv_orth", "cfgsurp_conv_orth", "bigramlex_conv_orth", "trigramlex_conv_orth", "bigrampos_conv_orth",
    "trigrampos_conv_orth")
#: SPM realignment parameters: translations (mm) then rotations (rad).
MOTION_NAMES: tuple[str, ...] = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
#: Columns of :func:`brennan_design_controls` without / with motion.
BRENNAN_CONTROL_NAMES: tuple[str, ...] = ("word_rate", "sound_power") + MOTION_NAMES

TR = 2.0
#: TextGrid time (s) of the first kept volume (the 10 discarded volumes cover the 20 s of padding).
FIRST_VOLUME_TIME = 20.0
N_VOLUMES = 362
N_DISCARDED = 10

CITATION = (
    "Brennan, J. R., Stabler, E. P., Van Wagenen, S. E., Luh, W.-M., & Hale, J. T. (2016). Abstract linguistic "
    "structure correlates with temporal activity during naturalistic comprehension. Brain and Language, "
    "157-158, 81-94. https://doi.org/10.1016/j.bandl.2016.04.008")
LICENSE = (
    "The fMRI time courses and regressors (alice_data_shared) and the Praat word annotation (alice_stim_shared) "
    "are licensed by Jonathan Brennan under the Creative Commons Attribution 4.0 International License "
    "(CC BY 4.0, http://creativecommons.org/licenses/by/4.0/). The audiobook (LibriVox) is in the public domain. "
    "Cite the paper when you use the data.")

_STIM_NAME = "brennan2016-alice"
_TEXTGRID = "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"
_GROUP_FILE = "sept18-generic-predictors-under-hrf-with-logfrqhal.txt"
_MANIFEST = "manifest.json"
_FORMAT = 1
_SUBJECT = re.compile(r"^(s\d+)-timecourses\.txt$")


# ---------------------------------------------------------------------------------------------- the recording
@dataclass(frozen=True, eq=False)
class Brennan2016:
    """The Brennan et al. (2016) *Alice* fMRI recording (one ROI radius).

    Attributes
    ----------
    data : np.ndarray
        ``(n_subjects, n_volumes, n_rois)`` float64 mean BOLD signal per ROI in the authors' raw scanner
        units (not z-scored; the two scanner protocols differ in scale). From the shipped copy the values
        are the authors' to float32 precision.
    subjects : tuple of str
        Subject labels (``"s18"``, ``"s22"``, ...), 27 with the full data.
    excluded : dict of str to str
        Subjects left out and why, e.g. ``{"s33": "all-zero time courses"}``.
    rois : tuple of str
        :data:`BRENNAN_ROIS`.
    tr : float
        Repetition time, s (2.0).
    volume_times : np.ndarray
        ``(n_volumes,)`` acquisition time of every volume on the TextGrid clock, s: ``20 + 2 i``.
    stimulus : Stimulus
        The 2,127 spoken words (silences ``sp`` dropped), onsets/offsets in s on the TextGrid clock.
    controls : dict of str to np.ndarray
        Low-level regressors as the authors give them: ``"word_rate"`` and ``"sound_power"``
        ``(n_subjects, n_volumes)`` (HRF-convolved, arbitrary units), ``"motion"``
        ``(n_subjects, n_volumes, 6)`` (SPM realignment: mm, mm, mm, rad, rad, rad).
    group_predictors : pandas.DataFrame
        ``n_volumes`` rows (the 10 discarded volumes dropped) x the authors' 12 group regressors
        (:data:`BRENNAN_GROUP_PREDICTORS`), index ``volume``.
    radius : str
        ``"6mm"`` or ``"10mm"``.
    source : str
        Where it was read from (the shipped copy's folder or the authors' folder).
    citation, license : str
        The paper to cite and the licence of the data.
    """

    data: np.ndarray
    subjects: tuple[str, ...]
    excluded: dict[str, str]
    rois: tuple[str, ...]
    tr: float
    volume_times: np.ndarray
    stimulus: Stimulus
    controls: dict[str, np.ndarray]
    group_predictors: pd.DataFrame
    radius: str
    source: str
    citation: str = CITATION
    license: str = LICENSE

    @property
    def n_subjects(self) -> int:
        """The number of subjects."""
        return int(self.data.shape[0])

    @property
    def n_volumes(self) -> int:
        """The number of volumes."""
        return int(self.data.shape[1])

    def datasets(self) -> list[NeuralDataset]:
        """One :class:`NeuralDataset` per subject, for the generic fMRI code (``fmri_design_layers`` ...).

        Returns
        -------
        list of NeuralDataset
            ``data`` ``(n_volumes, n_rois)`` (float32, raw units), ``times`` = :attr:`volume_times`,
            ``channels`` = ``regions`` = the ROI names, ``modality="fmri"``, ``meta["tr"] = 2.0``.
            The fMRI design code (``fmri_design``, ``fmri_design_layers``) puts volume ``i`` at
            ``i * tr`` (``tr_offset=0``): give it :meth:`stimulus_on_volume_clock`, the words with the
            first kept volume at 0 s, not :attr:`stimulus` (TextGrid clock, 20 s later).
        """
        return [
            NeuralDataset(
                data=self.data[i], times=self.volume_times, channels=list(self.rois), subject=s, modality="fmri",
                regions=list(self.rois),
                meta={"tr": self.tr, "dataset": "brennan2016", "radius": self.radius, "source": self.source,
                      "first_volume_time": float(self.volume_times[0]), "run": _STIM_NAME})
            for i, s in enumerate(self.subjects)
        ]

    def zscored(self) -> np.ndarray:
        """``(n_subjects, n_volumes, n_rois)`` every subject's time courses z-scored per ROI over time."""
        return _zscore(self.data, axis=1)

    def mean(self) -> np.ndarray:
        """``(n_volumes, n_rois)`` group mean time course: each subject is **z-scored per ROI first**, then averaged.

        z-scoring keeps the subjects of the larger-unit scanner protocol from dominating the mean; the
        result is in units of within-subject standard deviations (not z-scored again).
        """
        return self.zscored().mean(axis=0)

    def stimulus_on_volume_clock(self) -> Stimulus:
        """The words with times shifted so that the first kept volume is at 0 s (BIDS convention).

        Use it with ``fmri_design(..., tr_offset=0)``: volume ``i`` is then at ``2 i`` s, as on the TextGrid
        clock volume ``i`` is at ``20 + 2 i`` s.
        """
        shift = float(self.volume_times[0])
        st = self.stimulus
        return Stimulus(st.words, st.onsets - shift, st.offsets - shift, st.name)

    def select(self, subjects: Sequence[str]) -> Brennan2016:
        """A copy with only the given subjects, in the given order.

        Raises
        ------
        BrainlikeError
            An unknown or excluded subject.
        """
        idx = [self._subject_index(s) for s in subjects]
        if not idx:
            raise BrainlikeError("select() needs at least one subject")
        return replace(
            self, data=self.data[idx], subjects=tuple(self.subjects[i] for i in idx),
            controls={k: v[idx] for k, v in self.controls.items()})

    def _subject_index(self, s: str) -> int:
        s = _subject_label(s)
        if s in self.excluded:
            raise BrainlikeError(f"Brennan 2016 subject {s} is excluded ({self.excluded[s]}); leave it out of subjects")
        if s not in self.subjects:
            raise BrainlikeError(f"Brennan 2016 has no subject {s!r}; subjects: {', '.join(self.subjects)}")
        return self.subjects.index(s)

    def noise_ceilings(self, n_splits: int = 100, seed: int = 0) -> pd.DataFrame:
        """Per-ROI noise ceilings, to report beside (never instead of) raw encoding scores.

        Returns
        -------
        pandas.DataFrame
            One row per ROI: ``roi``; ``loo_isc`` (mean over subjects of r with the mean of the others, the
            ceiling for per-subject scores) and ``loo_isc_sem``; ``split_half_r``, ``reliability``
            (Spearman–Brown), ``reliability_low``/``reliability_high`` (95 % interval over splits) and
            ``group_ceiling`` = sqrt(reliability) (the ceiling for scores against :meth:`mean`);
            ``n_subjects``, ``radius``. Subjects are z-scored per ROI first.
        """
        return noise_ceiling_table(self.data, self.rois, n_splits=n_splits, seed=seed).assign(radius=self.radius)


def _zscore(x: np.ndarray, axis: int) -> np.ndarray:
    c = x - x.mean(axis=axis, keepdims=True)
    sd = c.std(axis=axis, keepdims=True)
    return c / np.where(sd > 0, sd, 1.0)


def _subject_label(s) -> str:
    """``"s18"`` from ``"s18"``, ``"18"`` or ``18``."""
    if isinstance(s, bool):
        raise BrainlikeError(f"subject labels look like 's18' (or 18); got {s!r}")
    if isinstance(s, (int, np.integer)):
        return f"s{int(s)}"
    if isinstance(s, str):
        t = s.strip()
        return f"s{t}" if t.isdigit() else t
    raise BrainlikeError(f"subject labels look like 's18' (or 18); got {s!r}")


def brennan_control_names(motion: bool = False) -> tuple[str, ...]:
    """Column names of :func:`brennan_design_controls`: word rate, sound power (and the 6 motion parameters)."""
    return BRENNAN_CONTROL_NAMES if motion else BRENNAN_CONTROL_NAMES[:2]


def brennan_design_controls(rec: Brennan2016, *, motion: bool = False, zscore: bool = True) -> np.ndarray:
    """Low-level control regressors per subject, ready for an encoding model.

    The baseline every language-model score of this dataset is compared with: how much of a region's
    response the acoustic envelope and the rate of words already explain (and head motion).

    Parameters
    ----------
    rec : Brennan2016
        The recording.
    motion : bool
        Append the 6 head-motion parameters (the authors model them as nuisance regressors).
    zscore : bool
        z-score every column within each subject over the volumes (the authors z-transform word rate and
        sound power and scale motion by its standard deviation; centring too makes the columns ready for
        ridge regression without an intercept).

    Returns
    -------
    np.ndarray
        ``(n_subjects, n_volumes, k)`` float64, ``k = 2`` (word rate, sound power) or ``8`` with motion;
        names in :func:`brennan_control_names`. They are already HRF-convolved: use them without FIR
        delays, and trim the same volumes as the responses.
    """
    cols = [rec.controls["word_rate"][..., None], rec.controls["sound_power"][..., None]]
    if motion:
        cols.append(rec.controls["motion"])
    X = np.concatenate(cols, axis=2).astype(np.float64)
    return _zscore(X, axis=1) if zscore else X


# ---------------------------------------------------------------------------------------------- loading
def shipped_copy_dir() -> Path:
    """The folder of the compact copy shipped inside the package (``brainlike/data/brennan2016``)."""
    return Path(str(files("brainlike.data").joinpath("brennan2016")))


def load_brennan2016(
    path: str | Path | None = None,
    radius: str = "6mm",
    *,
    textgrid: str | Path | None = None,
    subjects: Sequence[str | int] | None = None,
    verify: bool = True,
) -> Brennan2016:
    """Load the Brennan et al. (2016) *Alice* fMRI recording.

    Parameters
    ----------
    path : str, Path or None
        None: the compact copy shipped in the package (no network, checksums verified). Otherwise the
        authors' data share: the folder holding ``alice_data_shared/`` and ``alice_stim_shared/``, or
        ``alice_data_shared`` itself (then give ``textgrid=`` unless ``../alice_stim_shared`` exists), or a
        folder written by :func:`write_compact_copy`.
    radius : str
        ROI sphere radius: ``"6mm"`` or ``"10mm"``.
    textgrid : str, Path or None
        The word alignment ``DownTheRabbitHoleFinal_exp120_pad_1.TextGrid`` when it is not in the layout.
    subjects : sequence or None
        Keep only these subjects (``"s18"`` or ``18``), in this order; None: all with data.
    verify : bool
        Check SHA-256 checksums: the shipped/compact copy against its manifest (always recommended), the
        authors' folder against a ``SHA256SUMS`` file beside ``alice_data_shared`` when there is one.

    Returns
    -------
    Brennan2016
        The recording; subjects whose time courses are all zeros, flat or not finite are excluded,
        listed in ``excluded`` and reported with a warning.

    Raises
    ------
    BrainlikeError
        A missing or malformed file, a checksum mismatch (damaged copy), an unknown radius or subject.
    """
    radius = _check_radius(radius)
    if path is None:
        rec = _load_compact(shipped_copy_dir(), radius, verify=verify, shipped=True)
    else:
        root = Path(path).expanduser()
        if not root.exists():
            raise BrainlikeError(f"Brennan 2016 folder not found: {root}; point path= at the folder holding "
                                 "alice_data_shared/ (or leave it out to use the copy shipped with brainlike)")
        if (root / _MANIFEST).is_file():
            rec = _load_compact(root, radius, verify=verify, shipped=False)
        else:
            rec = _load_authors(root, radius, textgrid=textgrid, verify=verify)
    if rec.excluded:
        warnings.warn("Brennan 2016: excluded " + ", ".join(f"{s} ({why})" for s, why in rec.excluded.items()),
                      stacklevel=2)
    if subjects is not None:
        rec = rec.select(list(subjects))
    return rec


def _check_radius(radius) -> str:
    r = str(radius).strip().lower()
    if r.isdigit():
        r += "mm"
    if r not in BRENNAN_RADII:
        raise BrainlikeError(f"radius must be one of {', '.join(BRENNAN_RADII)}; got {radius!r}")
    return r


def _layout(root: Path, textgrid: str | Path | None) -> tuple[Path, Path, Path | None]:
    """(alice_data_shared folder, TextGrid file, folder that may hold SHA256SUMS)."""
    if (root / "alice_data_shared").is_dir():
        data_dir, sums_root = root / "alice_data_shared", root
    elif any((root / r).is_dir() for r in BRENNAN_RADII):
        data_dir, sums_root = root, (root.parent if (root.parent / "SHA256SUMS").is_file() else None)
    else:
        raise BrainlikeError(f"{root} is not the Brennan 2016 data share: expected alice_data_shared/ (or the "
                             "6mm/ and 10mm/ folders) inside it")
    if textgrid is not None:
        tg = Path(textgrid).expanduser()
    else:
        cands = [data_dir.parent / "alice_stim_shared" / _TEXTGRID, data_dir / _TEXTGRID]
        tg = next((c for c in cands if c.is_file()), None)
        if tg is None:
            raise BrainlikeError(f"the word alignment {_TEXTGRID} is not beside {data_dir}; pass textgrid= "
                                 "(it is in the authors' alice_stim_shared/ folder)")
    if not tg.is_file():
        raise BrainlikeError(f"TextGrid not found: {tg}; pass textgrid= the authors' {_TEXTGRID}")
    return data_dir, tg, sums_root


def _read_table(path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    try:
        arr = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise BrainlikeError(f"cannot read {path} as a table of numbers: {exc}") from None
    if shape is not None:
        want = shape if len(shape) == 2 else (shape[0], 1)
        if arr.shape != want:
            raise BrainlikeError(f"{path}: expected {want[0]} rows x {want[1]} columns, found {arr.shape[0]} x "
                                 f"{arr.shape[1]}; is this the authors' unmodified file?")
    return arr


def _one(data_dir: Path, pattern: str, what: str) -> Path:
    hits = sorted(data_dir.glob(pattern))
    if len(hits) != 1:
        raise BrainlikeError(f"{data_dir}: expected one {what} file matching {pattern}, found {len(hits)}")
    return hits[0]


def _drop_leading(arr: np.ndarray, n_vol: int, path: Path) -> np.ndarray:
    """The last ``n_vol`` rows of a file that includes the discarded volumes (or all when it has ``n_vol``)."""
    if arr.shape[0] == n_vol:
        return arr
    if arr.shape[0] == n_vol + N_DISCARDED:
        return arr[N_DISCARDED:]
    raise BrainlikeError(f"{path}: {arr.shape[0]} rows, expected {n_vol} or {n_vol + N_DISCARDED} (with the "
                         f"{N_DISCARDED} discarded volumes)")


def _exclusion_reason(tc: np.ndarray) -> str | None:
    if not np.all(np.isfinite(tc)):
        return "NaN or inf values"
    if not np.any(tc):
        return "all-zero time courses"
    flat = [roi for roi, sd in zip(BRENNAN_ROIS, tc.std(axis=0)) if sd == 0]
    if flat:
        return f"flat time course in {', '.join(flat)}"
    return None


def _verify_sums(sums_root: Path, used: list[Path]) -> None:
    sums = sums_root / "SHA256SUMS"
    listed: dict[str, str] = {}
    for line in sums.read_text().splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            listed[str(Path(parts[1].lstrip("*")))] = parts[0].lower()
    for p in used:
        rel = str(Path(p).resolve().relative_to(sums_root.resolve()))
        want = listed.get(rel)
        if want is not None and sha256_file(p) != want:
            raise BrainlikeError(f"{p} does not match its SHA-256 in {sums}: the file is damaged or was changed; "
                                 "download it again")


def _read_authors(root: Path, textgrid: str | Path | None = None, verify: bool = True,
                  radii: Sequence[str] = BRENNAN_RADII) -> dict:
    """Everything in the authors' layout, as float64 arrays, with the sources read and excluded subjects."""
    data_dir, tg, sums_root = _layout(root, textgrid)
    first = data_dir / radii[0]
    if not first.is_dir():
        raise BrainlikeError(f"{data_dir}: no {radii[0]}/ folder of ROI time courses")
    labels = sorted((m.group(1) for f in first.iterdir() if (m := _SUBJECT.match(f.name))),
                    key=lambda s: int(s[1:]))
    if not labels:
        raise BrainlikeError(f"{first}: no sNN-timecourses.txt files")
    used: list[Path] = []
    tcs: dict[str, list[np.ndarray]] = {r: [] for r in radii}
    rate, snd, mot, keep, excluded = [], [], [], [], {}
    for s in labels:
        per_radius = {}
        for r in radii:
            p = data_dir / r / f"{s}-timecourses.txt"
            if not p.is_file():
                raise BrainlikeError(f"{p} is missing (subject {s} has a {radii[0]} file)")
            per_radius[r] = _read_table(p, (N_VOLUMES, len(BRENNAN_ROIS)))
            used.append(p)
        reason = next((why for r in radii if (why := _exclusion_reason(per_radius[r])) is not None), None)
        if reason is not None:
            excluded[s] = reason
            continue
        p_rate, p_snd = data_dir / f"{s}-rate.txt", data_dir / f"{s}-sndpwr.txt"
        p_mot = _one(data_dir, f"{s}-rp_*.txt", f"{s} motion (rp_)")
        for p in (p_rate, p_snd):
            if not p.is_file():
                raise BrainlikeError(f"{p} is missing")
        keep.append(s)
        for r in radii:
            tcs[r].append(per_radius[r])
        rate.append(_read_table(p_rate, (N_VOLUMES,))[:, 0])
        snd.append(_read_table(p_snd, (N_VOLUMES,))[:, 0])
        m = _read_table(p_mot)
        if m.shape[1] != 6:
            raise BrainlikeError(f"{p_mot}: expected 6 motion columns, found {m.shape[1]}")
        mot.append(_drop_leading(m, N_VOLUMES, p_mot))
        used += [p_rate, p_snd, p_mot]
    if not keep:
        raise BrainlikeError(f"{data_dir}: every subject's time courses are empty or flat")
    p_grp = data_dir / _GROUP_FILE
    if not p_grp.is_file():
        raise BrainlikeError(f"{p_grp} (the group predictors) is missing")
    grp = _drop_leading(_read_table(p_grp), N_VOLUMES, p_grp)
    if grp.shape[1] != len(BRENNAN_GROUP_PREDICTORS):
        raise BrainlikeError(f"{p_grp}: expected {len(BRENNAN_GROUP_PREDICTORS)} columns, found {grp.shape[1]}")
    used += [p_grp, tg]
    if verify and sums_root is not None and (sums_root / "SHA256SUMS").is_file():
        _verify_sums(sums_root, used)
    try:
        stim = Stimulus.from_textgrid(tg, name=_STIM_NAME)
    except BrainlikeError as exc:
        raise BrainlikeError(f"cannot read the word alignment {tg}: {exc}") from None
    licences = [p for p in (data_dir / "LICENSE.txt", tg.parent / "LICENSE.txt") if p.is_file()]
    return {
        "timecourses": {r: np.stack(v) for r, v in tcs.items()}, "subjects": tuple(keep), "excluded": excluded,
        "word_rate": np.stack(rate), "sound_power": np.stack(snd), "motion": np.stack(mot), "group": grp,
        "stimulus": stim, "used": used, "root": data_dir.parent if sums_root is None else sums_root,
        "licences": licences, "data_dir": data_dir,
    }


def _volume_times(n: int) -> np.ndarray:
    return FIRST_VOLUME_TIME + TR * np.arange(n, dtype=np.float64)


def _group_frame(grp: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame(np.asarray(grp, dtype=np.float64), columns=list(BRENNAN_GROUP_PREDICTORS))
    df.index.name = "volume"
    return df


def _load_authors(root: Path, radius: str, *, textgrid, verify: bool) -> Brennan2016:
    raw = _read_authors(root, textgrid=textgrid, verify=verify, radii=(radius,))
    n = raw["timecourses"][radius].shape[1]
    return Brennan2016(
        data=raw["timecourses"][radius], subjects=raw["subjects"], excluded=raw["excluded"], rois=BRENNAN_ROIS,
        tr=TR, volume_times=_volume_times(n), stimulus=raw["stimulus"],
        controls={"word_rate": raw["word_rate"], "sound_power": raw["sound_power"], "motion": raw["motion"]},
        group_predictors=_group_frame(raw["group"]), radius=radius, source=str(raw["data_dir"]))


# ---------------------------------------------------------------------------------------------- compact copy
def _npy_files(radii: Sequence[str]) -> dict[str, str]:
    out = {f"timecourses_{r}": f"timecourses_{r}.npy" for r in radii}
    out.update(word_rate="word_rate.npy", sound_power="sound_power.npy", motion="motion.npy",
               group_predictors="group_predictors.npy")
    return out


def _save_npy(path: Path, arr: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to the temporary name
            np.save(fh, np.ascontiguousarray(arr, dtype=np.float32), allow_pickle=False)
    atomic_write(path, write)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False).astype(np.float64)
    except (OSError, ValueError) as exc:
        raise BrainlikeError(f"cannot read {path}: {exc}; reinstall brainlike or load the authors' files") from None


def write_compact_copy(src: str | Path, dst: str | Path, *, textgrid: str | Path | None = None) -> Path:
    """Convert the authors' data share into the compact copy that ships with brainlike.

    Writes, into ``dst`` (every file crash-safely): ``timecourses_6mm.npy`` and ``timecourses_10mm.npy``
    ``(n_subjects, 362, 6)``, ``word_rate.npy`` / ``sound_power.npy`` ``(n_subjects, 362)``, ``motion.npy``
    ``(n_subjects, 362, 6)`` (the first 10 of the 372 rows dropped), ``group_predictors.npy`` ``(362, 12)``
    (same) — all float32 ``.npy`` without pickle —, ``words.tsv`` (``word``, ``onset``, ``offset`` in s on
    the TextGrid clock, to the microsecond, silences dropped), ``LICENSE.txt``, ``CITATION.txt``,
    ``README.md`` and ``manifest.json`` (subjects, excluded subjects, names, and the SHA-256 of every file
    written and of every source file read). Subjects with no usable data (``s33``) are left out and
    listed in the manifest.

    Parameters
    ----------
    src : str or Path
        The authors' folder (as for :func:`load_brennan2016`).
    dst : str or Path
        Output folder (created).
    textgrid : str, Path or None
        The TextGrid when it is not in the layout.

    Returns
    -------
    Path
        ``dst``.
    """
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    raw = _read_authors(src, textgrid=textgrid, verify=True)
    arrays = {f"timecourses_{r}": raw["timecourses"][r] for r in BRENNAN_RADII}
    arrays.update(word_rate=raw["word_rate"], sound_power=raw["sound_power"], motion=raw["motion"],
                  group_predictors=raw["group"])
    names = _npy_files(BRENNAN_RADII)
    for key, fname in names.items():
        _save_npy(dst / fname, arrays[key])
    st = raw["stimulus"]
    lines = ["word\tonset\toffset"] + [f"{w}\t{a:.6f}\t{b:.6f}" for w, a, b in zip(st.words, st.onsets, st.offsets)]
    atomic_write_text(dst / "words.tsv", "\n".join(lines) + "\n")
    lic = [LICENSE, ""] + [f"--- {p.parent.name}/{p.name} (the authors' text) ---\n{p.read_text().strip()}\n"
                           for p in raw["licences"]]
    atomic_write_text(dst / "LICENSE.txt", "\n".join(lic))
    atomic_write_text(dst / "CITATION.txt", _citation_text())
    root = Path(raw["root"]).resolve()
    sources = {}
    for p in raw["used"]:
        rp = Path(p).resolve()
        key = str(rp.relative_to(root)) if rp.is_relative_to(root) else rp.name
        sources[key] = sha256_file(p)
    atomic_write_text(dst / "README.md", _readme_text(raw, sources))
    written = sorted(list(names.values()) + ["words.tsv", "LICENSE.txt", "CITATION.txt", "README.md"])
    manifest = {
        "format": _FORMAT, "dataset": "brennan2016-alice", "subjects": list(raw["subjects"]),
        "excluded": raw["excluded"], "rois": list(BRENNAN_ROIS), "radii": list(BRENNAN_RADII),
        "group_predictors": list(BRENNAN_GROUP_PREDICTORS), "motion": list(MOTION_NAMES), "tr": TR,
        "first_volume_time": FIRST_VOLUME_TIME, "n_volumes": N_VOLUMES, "n_discarded": N_DISCARDED,
        "n_words": len(st), "dtype": "float32",
        "files": {f: sha256_file(dst / f) for f in written}, "sources": sources,
    }
    atomic_write_json(dst / _MANIFEST, manifest)
    return dst


def _citation_text() -> str:
    return (
        f"{CITATION}\n\n"
        "@article{brennan2016abstract,\n"
        "  title   = {Abstract linguistic structure correlates with temporal activity during naturalistic "
        "comprehension},\n"
        "  author  = {Brennan, Jonathan R. and Stabler, Edward P. and Van Wagenen, Sarah E. and Luh, Wen-Ming "
        "and Hale, John T.},\n"
        "  journal = {Brain and Language},\n  volume  = {157-158},\n  pages   = {81--94},\n  year    = {2016},\n"
        "  doi     = {10.1016/j.bandl.2016.04.008}\n}\n")


def _readme_text(raw: dict, sources: dict[str, str]) -> str:
    n = len(raw["subjects"])
    excl = "; ".join(f"{s}: {why}" for s, why in raw["excluded"].items()) or "none"
    src_lines = "\n".join(f"    {h}  {k}" for k, h in sorted(sources.items()))
    return f"""# Brennan et al. (2016) *Alice* fMRI — compact copy shipped with brainlike

Licence: CC BY 4.0 (LICENSE.txt). Cite: CITATION.txt. Load it with
`brainlike.neural.brennan.load_brennan2016()`; the loader checks every file against manifest.json.

Converted from the authors' data share (alice_data_shared/, alice_stim_shared/) by
`brainlike.neural.brennan.write_compact_copy(src, dst)`; a test converts the copy in the project's
shared data again and checks that it reproduces these files.

| file | shape | from |
|---|---|---|
| timecourses_6mm.npy, timecourses_10mm.npy | ({n}, 362, 6) | 6mm/ and 10mm/sNN-timecourses.txt; \
columns {" ".join(BRENNAN_ROIS)}; raw scanner units |
| word_rate.npy, sound_power.npy | ({n}, 362) | sNN-rate.txt, sNN-sndpwr.txt (HRF-convolved) |
| motion.npy | ({n}, 362, 6) | sNN-rp_*.txt (SPM8 realignment: 3 translations mm, 3 rotations rad); \
the first 10 of 372 rows dropped |
| group_predictors.npy | (362, 12) | {_GROUP_FILE}; first 10 of 372 rows dropped; columns in manifest.json |
| words.tsv | 2127 words | {_TEXTGRID}, word tier, "sp" (silence) dropped; onset/offset in s to 1 µs |

All arrays are float32 `.npy` (no pickle): the authors' text files carry at most 8 significant digits,
float32 keeps 7 (relative error below 6e-8 on the time courses). Subjects, in array order:
{", ".join(raw["subjects"])}. Excluded: {excl}.

Timing: volume row i (0-based) was acquired at TextGrid time 20 + 2 i s (TR 2 s; the 10 volumes the
authors discarded are the 20 s of silence that pad the audio). This is not stated by the authors; it
is checked in tests/test_brennan.py (word rate from the TextGrid, convolved with SPM's HRF, correlates
best with the authors' sNN-rate.txt at this offset). The motion files' row i + 10 is volume i (checked
too: head jerks line up with jumps of the ROI signals at this offset and at no other).

Source files (SHA-256, as in the shared copy's SHA256SUMS):

{src_lines}
"""


def _load_compact(folder: Path, radius: str, *, verify: bool, shipped: bool) -> Brennan2016:
    what = "the Brennan 2016 copy shipped with brainlike" if shipped else f"the Brennan 2016 copy in {folder}"
    fix = ("reinstall brainlike (pip install --force-reinstall brainlike) or pass path= to the authors' folder"
           if shipped else "write it again with write_compact_copy() or pass path= to the authors' folder")
    mpath = folder / _MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
        files_ = dict(manifest["files"])
        subjects = tuple(str(s) for s in manifest["subjects"])
        excluded = {str(k): str(v) for k, v in dict(manifest.get("excluded", {})).items()}
        rois, tr = tuple(str(r) for r in manifest["rois"]), float(manifest["tr"])
        n_v, t0 = int(manifest["n_volumes"]), float(manifest["first_volume_time"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BrainlikeError(f"{what} is damaged: cannot read {mpath} ({type(exc).__name__}: {exc}); {fix}") from None
    if manifest.get("format") != _FORMAT:
        raise BrainlikeError(f"{mpath}: format {manifest.get('format')!r}, this brainlike reads {_FORMAT}; {fix}")
    if rois != BRENNAN_ROIS:
        raise BrainlikeError(f"{what} is damaged: {mpath} lists ROIs {rois}, expected {BRENNAN_ROIS}; {fix}")
    names = _npy_files((radius,))
    for f in list(names.values()) + ["words.tsv", "LICENSE.txt", "CITATION.txt"]:
        p = folder / f
        if f not in files_:
            raise BrainlikeError(f"{what} is damaged: {mpath} does not list {f}; {fix}")
        if not p.is_file():
            raise BrainlikeError(f"{what} is damaged: {p} is missing; {fix}")
        if verify and sha256_file(p) != files_[f]:
            raise BrainlikeError(f"{what} is damaged: {p} does not match its SHA-256 in {mpath}; {fix}")
    tc = _load_npy(folder / names[f"timecourses_{radius}"])
    n_s = len(subjects)
    arrays = {k: _load_npy(folder / names[k]) for k in ("word_rate", "sound_power", "motion", "group_predictors")}
    want_shapes = {"timecourses": (n_s, n_v, len(BRENNAN_ROIS)), "word_rate": (n_s, n_v), "sound_power": (n_s, n_v),
                   "motion": (n_s, n_v, 6), "group_predictors": (n_v, len(BRENNAN_GROUP_PREDICTORS))}
    for k, want in want_shapes.items():
        got = tc.shape if k == "timecourses" else arrays[k].shape
        if got != want:
            raise BrainlikeError(f"{what} is damaged: {k} has shape {got}, the manifest implies {want}; {fix}")
    try:
        stim = Stimulus.from_tsv(folder / "words.tsv", name=_STIM_NAME)
    except BrainlikeError as exc:
        raise BrainlikeError(f"{what} is damaged: {exc}; {fix}") from None
    return Brennan2016(
        data=tc, subjects=subjects, excluded=excluded, rois=rois, tr=tr,
        volume_times=t0 + tr * np.arange(n_v, dtype=np.float64), stimulus=stim,
        controls={"word_rate": arrays["word_rate"], "sound_power": arrays["sound_power"], "motion": arrays["motion"]},
        group_predictors=_group_frame(arrays["group_predictors"]), radius=radius, source=str(folder),
        license=(folder / "LICENSE.txt").read_text(), citation=CITATION)


# ---------------------------------------------------------------------------------------------- registry hook
_SECTION_KEYS = ("kind", "path", "radius", "subjects", "textgrid", "verify")


def brennan2016_dataset(section: Mapping) -> Brennan2016:
    """The dataset registry's hook: a spec section → the recording.

    Parameters
    ----------
    section : mapping
        ``{"path": None | str, "radius": "6mm" | "10mm", "subjects": None | [labels], "textgrid": None | str,
        "verify": bool}``, all optional (defaults: the shipped copy, 6 mm, all subjects). A ``kind`` key (the
        registry's dispatch name) is ignored.

    Returns
    -------
    Brennan2016

    Raises
    ------
    BrainlikeError
        An unknown field or a field of the wrong type or value (the message names the field).
    """
    if not isinstance(section, Mapping):
        raise BrainlikeError(f"the brennan2016 dataset section must be a mapping, got {type(section).__name__}")
    unknown = sorted(set(section) - set(_SECTION_KEYS))
    if unknown:
        raise BrainlikeError(f"dataset: unknown field(s) {', '.join(map(str, unknown))} for brennan2016; "
                             f"allowed: {', '.join(_SECTION_KEYS)}")
    path = section.get("path")
    if path is not None and not isinstance(path, (str, Path)):
        raise BrainlikeError(f"dataset.path must be a folder path or null, got {path!r}")
    textgrid = section.get("textgrid")
    if textgrid is not None and not isinstance(textgrid, (str, Path)):
        raise BrainlikeError(f"dataset.textgrid must be a file path or null, got {textgrid!r}")
    radius = section.get("radius", "6mm")
    if radius is None:
        radius = "6mm"
    if not isinstance(radius, (str, int)) or isinstance(radius, bool):
        raise BrainlikeError(f"dataset.radius must be '6mm' or '10mm', got {radius!r}")
    try:
        radius = _check_radius(radius)
    except BrainlikeError:
        raise BrainlikeError(f"dataset.radius must be '6mm' or '10mm', got {radius!r}") from None
    subjects = section.get("subjects")
    if subjects is not None:
        if isinstance(subjects, (str, int)) or not isinstance(subjects, Sequence) or not subjects:
            raise BrainlikeError(f"dataset.subjects must be a non-empty list of labels like s18 (or null for all), "
                                 f"got {subjects!r}")
        try:
            subjects = [_subject_label(s) for s in subjects]
        except BrainlikeError as exc:
            raise BrainlikeError(f"dataset.subjects: {exc}") from None
        if len(set(subjects)) != len(subjects):
            raise BrainlikeError(f"dataset.subjects lists a subject twice: {subjects}")
    verify = section.get("verify", True)
    if not isinstance(verify, bool):
        raise BrainlikeError(f"dataset.verify must be true or false, got {verify!r}")
    rec = load_brennan2016(path, radius, textgrid=textgrid, verify=verify)
    if subjects is not None:
        try:
            rec = rec.select(subjects)
        except BrainlikeError as exc:
            raise BrainlikeError(f"dataset.subjects: {exc}") from None
    return rec
