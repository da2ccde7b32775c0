"""Loaders for public story-listening datasets in (or near) BIDS layout.

* :func:`load_bids_fmri` — one fMRI run: a NIfTI volume (``*_bold.nii[.gz]``, optional mask and atlas)
  or GIfTI surface data (``*_hemi-L_*.func.gii``; both hemispheres with ``hemi="both"``) as used by
  Narratives (OpenNeuro ds002345) and LeBel et al. 2023 (ds003020), with the words from the run's
  ``events.tsv`` or a word-timing file (TextGrid, Gentle ``align.csv``/``align.json``, TSV/CSV).
* :func:`load_bids_fmri_runs` — several runs/stories of one subject concatenated with run labels.
* :func:`read_word_timings` — a word-timing file of any of those formats as a :class:`Stimulus`.
* :func:`load_lebel_responses` — LeBel's preprocessed ``derivative/preprocessed_data/<subj>/<story>.hf5``.
* :func:`load_pereira2018` — Pereira et al. 2018 sentence-level fMRI (``data_384sentences.mat``).
* BIDS iEEG (Podcast ECoG, ds005574) lives in :mod:`brainlike.neural.ieeg`.

Every problem with the files raises :class:`~brainlike.errors.NeuralDataError` naming the file and what
was expected. Channels that are NaN or flat are excluded and reported (``warnings.warn`` and
``recording.excluded``), never silently averaged.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.errors import NeuralDataError, StimulusError
from brainlike.neural.dataset import NeuralDataset
from brainlike.stimulus import Stimulus
from brainlike.stimulus import read_word_timings as _read_word_timings

__all__ = [
    "BIDSName",
    "BIDSRecording",
    "PereiraData",
    "find_bids_file",
    "find_sidecar",
    "load_bids_fmri",
    "load_bids_fmri_runs",
    "load_lebel_responses",
    "load_pereira2018",
    "parse_bids_name",
    "read_word_timings",
    "stimulus_onset_from_events",
]

#: BIDS entities (raw and derivatives) in their canonical order: short key → long name.
BIDS_ENTITIES: dict[str, str] = {
    "sub": "subject", "ses": "session", "sample": "sample", "task": "task", "tracksys": "tracksys",
    "acq": "acquisition", "nuc": "nucleus", "voi": "volume", "ce": "ceagent", "trc": "tracer",
    "stain": "stain", "rec": "reconstruction", "dir": "direction", "run": "run", "mod": "modality",
    "echo": "echo", "flip": "flip", "inv": "inversion", "mt": "mtransfer", "part": "part", "proc": "processing",
    "hemi": "hemisphere", "space": "space", "split": "split", "recording": "recording", "chunk": "chunk",
    "seg": "segmentation", "res": "resolution", "den": "density", "label": "label", "atlas": "atlas",
    "roi": "roi", "from": "from", "to": "to", "mode": "mode", "model": "model", "subset": "subset",
    "desc": "description",
}
_LONG_TO_SHORT = {v: k for k, v in BIDS_ENTITIES.items()}


# ---------------------------------------------------------------------------------------------- names
@dataclass(frozen=True)
class BIDSName:
    """A parsed BIDS file name: entities (short keys, e.g.

    ``{"sub": "01", "task": "podcast"}``), the suffix (``"bold"``, ``"ieeg"``, ``"events"``; None when the name ends
    with an entity, as in Narratives' ``..._desc-clean.func.gii``) and the extension (``".nii.gz"``, ``".func.gii"``).
    """

    entities: dict
    suffix: str | None
    extension: str


def parse_bids_name(path: str | Path) -> BIDSName:
    """Parse ``sub-01_ses-1_task-x_run-1_bold.nii.gz`` into entities, suffix and extension.

    Raises
    ------
    NeuralDataError
        a key that is not a BIDS entity, a malformed part, or no ``sub-`` entity.
    """
    name = Path(path).name
    stem, dot, ext = name.partition(".")
    parts = stem.split("_")
    suffix = None
    if parts and "-" not in parts[-1]:
        suffix = parts.pop()
    entities: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("-")
        if not sep or not key or not value:
            raise NeuralDataError(
                f"{path}: {part!r} is not a BIDS key-value pair; expected names like "
                "sub-<label>_task-<label>[_run-<index>]_<suffix>.<ext>")
        if key not in BIDS_ENTITIES:
            raise NeuralDataError(
                f"{path}: unknown BIDS entity {key!r} (in {part!r}); known entities: {', '.join(BIDS_ENTITIES)}")
        if key in entities:
            raise NeuralDataError(f"{path}: entity {key!r} appears twice")
        entities[key] = value
    if "sub" not in entities:
        raise NeuralDataError(f"{path}: a BIDS data file name must start with sub-<label>")
    return BIDSName(entities, suffix, dot + ext if dot else "")


def _entity_filters(kwargs: dict) -> dict[str, str]:
    out = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        short = key if key in BIDS_ENTITIES else _LONG_TO_SHORT.get(key)
        if short is None:
            raise NeuralDataError(f"unknown BIDS entity {key!r}; use one of {sorted(_LONG_TO_SHORT)}")
        value = str(value)
        out[short] = value[len(short) + 1:] if value.startswith(short + "-") else value
    return out


def find_bids_file(
    root: str | Path,
    *,
    datatype: str,
    suffix: str | None | tuple,
    extensions: Sequence[str],
    **entities,
) -> Path:
    """The one file under ``root/sub-<label>/[ses-<label>/]<datatype>/`` matching the entities.

    Parameters
    ----------
    root : str | Path
        dataset (or derivatives pipeline) root directory.
    datatype : str
        ``"func"``, ``"ieeg"``, ``"anat"`` ...
    suffix : str | None | tuple
        e.g. ``"bold"`` / ``"ieeg"`` (None: names that end with an entity, as Narratives'
        ``..._desc-clean.func.gii``); a tuple accepts several.
    extensions : Sequence[str]
        accepted extensions, e.g. ``(".nii.gz", ".nii")``.
    **entities
        ``subject="01", task="pieman", run=1, space=..., hemi="L", desc=...`` (long or short
        keys). Entities not given may take any value.

    Raises
    ------
    NeuralDataError
        unknown entity names, no matching file (the message shows the pattern searched),
        or several matching files (the message lists them; add entities to choose).
    """
    root = Path(root)
    suffixes = suffix if isinstance(suffix, tuple) else (suffix,)
    want = _entity_filters(entities)
    if "sub" not in want:
        raise NeuralDataError("find_bids_file needs subject=")
    if not root.is_dir():
        raise NeuralDataError(f"BIDS root not found: {root}")
    sub_dir = root / f"sub-{want['sub']}"
    dirs = [sub_dir / datatype]
    dirs += sorted(p / datatype for p in sub_dir.glob("ses-*") if "ses" not in want or p.name == f"ses-{want['ses']}")
    hits = []
    for d in dirs:
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if not any(f.name.endswith(e) for e in extensions):
                continue
            try:
                parsed = parse_bids_name(f)
            except NeuralDataError:
                continue
            if parsed.suffix not in suffixes:
                continue
            if all(parsed.entities.get(k) == v for k, v in want.items()):
                hits.append(f)
    pattern = "_".join(f"{k}-{v}" for k, v in want.items()) + "*" + "|".join(f"_{s}" for s in suffixes if s)
    if not hits:
        raise NeuralDataError(
            f"no {datatype} file matching {pattern}{{{','.join(extensions)}}} under {sub_dir} "
            f"(searched {', '.join(str(d) for d in dirs)})")
    if len(hits) > 1:
        raise NeuralDataError(
            f"{len(hits)} files match {pattern}: {[h.name for h in hits]}; give more entities "
            "(run=, session=, space=, desc=, acquisition=) to pick one")
    return hits[0]


def _bids_roots(path: Path) -> list[Path]:
    """Dataset roots for a data file: its own root and, inside ``derivatives/<pipeline>``, the raw root."""
    roots = []
    for parent in path.parents:
        if parent.name.startswith("sub-") and parent.parent not in roots:
            roots.append(parent.parent)
        if parent.name in ("derivatives", "derivative"):
            roots.append(parent.parent)
            break
    return roots


def find_sidecar(
    data_path: str | Path,
    suffix: str,
    extension: str,
    *,
    optional_entities: Sequence[str] = (),
    prefer: dict | None = None,
) -> Path | None:
    """A sidecar of ``data_path`` (events.tsv, channels.tsv, electrodes.tsv, bold.json ...), or None.

    Candidates are files ``*_<suffix><extension>`` next to the data file, in the same
    ``sub-*/[ses-*/]<datatype>`` folder of the raw dataset (for files inside ``derivatives/``), and at the
    dataset roots (BIDS inheritance, e.g. ``task-x_bold.json``). A candidate applies when each of its
    entities equals the data file's (entities in ``optional_entities``, e.g. ``space`` for
    electrodes.tsv, may be absent from the data file); the most specific candidate wins, ``prefer``
    (e.g. ``{"space": "MNI152NLin2009aSym"}``) breaks ties.
    """
    data_path = Path(data_path)
    try:
        data_ent = parse_bids_name(data_path).entities
    except NeuralDataError:
        data_ent = {}
    prefer = _entity_filters(prefer or {})
    dirs = [data_path.parent]
    rel = [data_path.parent.name]
    if data_path.parent.parent.name.startswith("ses-"):
        rel = [data_path.parent.parent.parent.name, data_path.parent.parent.name, data_path.parent.name]
    elif data_path.parent.parent.name.startswith("sub-"):
        rel = [data_path.parent.parent.name, data_path.parent.name]
    for root in _bids_roots(data_path):
        dirs.append(root.joinpath(*rel))
        if len(rel) == 3:
            dirs.append(root.joinpath(rel[0], rel[2]))
        dirs.append(root)
    seen, best, best_key = set(), None, None
    for d in dirs:
        if not d.is_dir() or d in seen:
            continue
        seen.add(d)
        for f in sorted(d.glob(f"*_{suffix}{extension}")) + sorted(d.glob(f"{suffix}{extension}")):
            ent = _loose_entities(f, suffix, extension)
            if ent is None:
                continue
            ok = all(data_ent.get(k) == v or (k in optional_entities and k not in data_ent) for k, v in ent.items())
            if not ok or any(prefer.get(k, v) != v for k, v in ent.items() if k in prefer):
                continue
            key = (len(ent), sum(1 for k in prefer if ent.get(k) == prefer[k]), -len(seen))
            if best_key is None or key > best_key:
                best, best_key = f, key
    return best


def _loose_entities(path: Path, suffix: str, extension: str) -> dict | None:
    """Entities of a sidecar name (may lack ``sub-``, e.g. ``task-x_bold.json``); None if not parseable."""
    stem = path.name[: -len(extension)]
    if stem == suffix:
        return {}
    if not stem.endswith("_" + suffix):
        return None
    ent = {}
    for part in stem[: -len(suffix) - 1].split("_"):
        key, sep, value = part.partition("-")
        if not sep or key not in BIDS_ENTITIES:
            return None
        ent[key] = value
    return ent


# ---------------------------------------------------------------------------------------------- words
def read_word_timings(
    path: str | Path,
    *,
    onset_shift: float = 0.0,
    name: str | None = None,
    word_column: str | None = None,
    tier: str | None = None,
) -> Stimulus:
    """Read words with onset/offset times.

    :func:`brainlike.stimulus.read_word_timings` (the one reader of every format: TextGrid, TSV, CSV with a header or
    Gentle's ``align.csv``, Gentle ``align.json``; one timing policy), with its errors raised as
    :class:`NeuralDataError` for the loaders.

    Raises
    ------
    NeuralDataError
        missing file, unknown format, no word/time columns, bad timing.
    """
    try:
        return _read_word_timings(path, onset_shift=onset_shift, name=name, word_column=word_column, tier=tier)
    except StimulusError as exc:
        raise NeuralDataError(str(exc)) from None


def stimulus_onset_from_events(events_path: str | Path, trial_type: str | None = None) -> float:
    """The time (s) at which the audio starts: the first onset in a BIDS ``events.tsv``.

    Narratives' ``events.tsv`` lists the parts of the audio file (music, story) with their onsets on the
    scanner clock; the Gentle word times are relative to the start of the audio file, i.e. to the first
    onset. ``trial_type`` restricts the rows (e.g. ``"story"``).
    """
    path = Path(events_path)
    if not path.exists():
        raise NeuralDataError(f"events file not found: {path}")
    df = pd.read_csv(path, sep="\t", na_values=["n/a"])
    if "onset" not in df.columns:
        raise NeuralDataError(f"{path}: no 'onset' column (columns: {list(df.columns)})")
    if trial_type is not None:
        if "trial_type" not in df.columns:
            raise NeuralDataError(f"{path}: no 'trial_type' column to select {trial_type!r}")
        df = df[df["trial_type"].astype(str) == trial_type]
    on = pd.to_numeric(df["onset"], errors="coerce").dropna()
    if on.empty:
        raise NeuralDataError(f"{path}: no onsets" + (f" with trial_type {trial_type!r}" if trial_type else ""))
    return float(on.min())


def _events_stimulus(events: Path, shift: float, word_column: str | None = None) -> Stimulus | None:
    """The words of an events.tsv with a word column (``word``/``words``/``text``/``token`` or ``word_column``).

    Else None (events files often only mark the story's start).
    """
    df = pd.read_csv(events, sep="\t", na_values=["n/a"], keep_default_na=False, dtype=str)
    cols = {c.lower(): c for c in df.columns}
    if word_column is not None and word_column not in df.columns:
        raise NeuralDataError(f"{events}: no column {word_column!r} (columns: {list(df.columns)})")
    wcol = word_column or next((cols[c] for c in ("word", "words", "text", "token") if c in cols), None)
    if wcol is None or "onset" not in cols:
        return None
    return read_word_timings(events, onset_shift=shift, name=events.stem, word_column=wcol)


@dataclass
class BIDSRecording:
    """A loaded recording.

    Attributes
    ----------
    dataset : NeuralDataset
        the :class:`NeuralDataset` (bad channels already excluded).
    stimulus : Stimulus | None
        the words heard during the recording (on the recording's clock), or None.
    excluded : dict[str, str]
        channel name → why it was excluded (marked bad, NaN, flat ...).
    files : dict[str, str]
        role (``"data"``, ``"events"``, ``"channels"``, ``"electrodes"``, ``"mask"`` ...) → path.
    """

    dataset: NeuralDataset
    stimulus: Stimulus | None
    excluded: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def _resolve_stimulus(stimulus, data_path: Path, stimulus_onset, files: dict, duration: float,
                      word_column: str | None = None) -> Stimulus | None:
    """Stimulus from an object, a file, or the data file's events.tsv; shifted; checked against ``duration``."""
    events = find_sidecar(data_path, "events", ".tsv")
    if isinstance(stimulus_onset, str):
        if stimulus_onset != "events":
            raise NeuralDataError(f"stimulus_onset must be seconds or 'events', not {stimulus_onset!r}")
        if events is None:
            raise NeuralDataError(f"stimulus_onset='events' but no events.tsv was found for {data_path}")
        shift = stimulus_onset_from_events(events)
        files["events"] = str(events)
    else:
        shift = float(stimulus_onset or 0.0)
    if isinstance(stimulus, Stimulus):
        stim = stimulus if shift == 0 else Stimulus(stimulus.words, stimulus.onsets + shift,
                                                    stimulus.offsets + shift, stimulus.name)
    elif stimulus is not None:
        stim = read_word_timings(stimulus, onset_shift=shift)
        files["words"] = str(stimulus)
    elif events is not None:
        stim = _events_stimulus(events, shift, word_column)
        if stim is not None:
            files["events"] = str(events)
    else:
        stim = None
    if stim is not None:
        late = np.flatnonzero(stim.onsets >= duration)
        if late.size:
            i = int(late[0])
            raise NeuralDataError(
                f"{data_path}: {late.size} words start after the recording ends ({duration:.1f} s); first: word "
                f"{i + 1} {stim.words[i]!r} at {stim.onsets[i]:.2f} s. Check stimulus_onset and that the word "
                "times belong to this run")
    return stim


def flat_channels(data: np.ndarray) -> np.ndarray:
    """``(n_channels,)`` bool.

    Channels whose standard deviation is 0 or below 1e-8 of their peak magnitude (constant up to rounding, e.g. an
    unplugged EDF channel stored as one digital value).
    """
    with np.errstate(invalid="ignore"):
        sd = np.nanstd(data, axis=0)
        peak = np.nanmax(np.abs(data), axis=0) if data.shape[0] else np.zeros(data.shape[1])
    return (sd == 0) | (sd <= 1e-8 * peak)


def _exclude_bad(ds: NeuralDataset, path: Path, excluded: dict) -> NeuralDataset:
    """Drop NaN/flat channels, recording why, and warn once with the count."""
    finite = np.isfinite(ds.data).all(axis=0)
    flat = flat_channels(ds.data)
    bad = ~finite | flat
    if not bad.any():
        return ds
    for ch, f_ok, fl in zip(ds.channels, finite, flat):
        if not f_ok:
            excluded[ch] = "contains NaN or inf"
        elif fl:
            excluded[ch] = "flat (zero variance)"
    names = [ch for ch, b in zip(ds.channels, bad) if b]
    warnings.warn(f"{path}: excluded {len(names)} of {ds.n_channels} channels that are NaN or flat "
                  f"(first: {names[:5]}); see recording.excluded", stacklevel=3)
    if bad.all():
        raise NeuralDataError(f"{path}: every channel is NaN or flat")
    return ds.select_channels(~bad)


# ---------------------------------------------------------------------------------------------- fMRI
def _tr_from_sidecar(path: Path) -> tuple[float | None, Path | None]:
    for suffix in ("bold", "func"):
        js = find_sidecar(path, suffix, ".json")
        if js is not None:
            try:
                meta = json.loads(js.read_text())
            except ValueError as exc:
                raise NeuralDataError(f"{js}: not valid JSON ({exc})") from None
            if "RepetitionTime" in meta:
                return float(meta["RepetitionTime"]), js
    return None, None


def _tr_from_nifti(img) -> float | None:
    zooms = img.header.get_zooms()
    if len(zooms) < 4 or not zooms[3] > 0:
        return None
    tr = float(zooms[3])
    try:
        unit = img.header.get_xyzt_units()[1]
    except Exception:  # noqa: BLE001 - header without units
        unit = "sec"
    return tr / 1000.0 if unit == "msec" else tr / 1e6 if unit == "usec" else tr


def _load_mask(mask, img, path: Path) -> np.ndarray:
    import nibabel as nib

    if isinstance(mask, np.ndarray):
        arr = mask.astype(bool)
    else:
        mimg = nib.load(str(mask)) if isinstance(mask, (str, Path)) else mask
        if mimg.shape[:3] != img.shape[:3] or not np.allclose(mimg.affine, img.affine, atol=1e-3):
            from nilearn.image import resample_to_img

            mimg = resample_to_img(mimg, nib.Nifti1Image(np.zeros(img.shape[:3], np.int8), img.affine),
                                   interpolation="nearest", force_resample=True, copy_header=True)
        arr = np.asarray(mimg.dataobj).astype(bool)
    if arr.shape != img.shape[:3]:
        raise NeuralDataError(f"mask shape {arr.shape} does not match the volume {img.shape[:3]} of {path}")
    if not arr.any():
        raise NeuralDataError(f"the mask for {path} selects no voxel")
    return arr


def _atlas_labels(atlas, labels, img, ijk: np.ndarray, path: Path) -> list[str]:
    import nibabel as nib

    aimg = nib.load(str(atlas)) if isinstance(atlas, (str, Path)) else atlas
    if aimg.shape[:3] != img.shape[:3] or not np.allclose(aimg.affine, img.affine, atol=1e-3):
        from nilearn.image import resample_to_img

        aimg = resample_to_img(aimg, nib.Nifti1Image(np.zeros(img.shape[:3], np.int8), img.affine),
                               interpolation="nearest", force_resample=True, copy_header=True)
    vals = np.asarray(aimg.dataobj)[tuple(ijk.T)].astype(int)
    lut = _label_table(labels)
    return [lut.get(int(v), "unlabeled" if v == 0 else f"label-{int(v)}") for v in vals]


def _label_table(labels) -> dict[int, str]:
    if labels is None:
        return {}
    if isinstance(labels, dict):
        return {int(k): str(v) for k, v in labels.items()}
    if isinstance(labels, (list, tuple)):
        return {i: str(v) for i, v in enumerate(labels)}
    path = Path(labels)
    if not path.exists():
        raise NeuralDataError(f"atlas label file not found: {path}")
    df = pd.read_csv(path, sep=None, engine="python")
    cols = {c.lower(): c for c in df.columns}
    idx = cols.get("index") or cols.get("label") or df.columns[0]
    name = cols.get("name") or cols.get("region") or df.columns[1]
    return {int(i): str(n) for i, n in zip(df[idx], df[name])}


def _load_volume(path: Path, mask, atlas, atlas_labels, excluded: dict, files: dict):
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several kinds
        raise NeuralDataError(f"cannot read {path} as NIfTI: {exc}") from None
    if img.ndim != 4:
        raise NeuralDataError(f"{path}: expected a 4-D BOLD volume (x, y, z, time), got shape {img.shape}")
    data = np.asarray(img.dataobj, dtype=np.float32)
    if mask is not None:
        sel = _load_mask(mask, img, path)
        files["mask"] = str(mask) if isinstance(mask, (str, Path)) else "array"
        n_outside = int((~sel).sum())
    else:
        sel = np.any(data != 0, axis=3) | np.any(~np.isfinite(data), axis=3)
        n_outside = int((~sel).sum())
    ijk = np.argwhere(sel)
    ts = data[sel].T  # (n_trs, n_voxels)
    coords = nib.affines.apply_affine(img.affine, ijk)
    names = [f"vox_{i}_{j}_{k}" for i, j, k in ijk]
    regions = _atlas_labels(atlas, atlas_labels, img, ijk, path) if atlas is not None else None
    if atlas is not None:
        files["atlas"] = str(atlas)
    return ts, names, coords, regions, _tr_from_nifti(img), {"n_outside_mask": n_outside, "shape": img.shape[:3],
                                                             "affine": img.affine.tolist()}


def _read_gifti(path: Path) -> tuple[np.ndarray, float | None]:
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise NeuralDataError(f"cannot read {path} as GIfTI: {exc}") from None
    arrays = [np.asarray(d.data) for d in img.darrays]
    if not arrays:
        raise NeuralDataError(f"{path}: GIfTI file has no data arrays")
    if len(arrays) == 1 and arrays[0].ndim == 2:
        data = arrays[0].T if arrays[0].shape[0] > arrays[0].shape[1] else arrays[0]
    else:
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            raise NeuralDataError(f"{path}: expected one 1-D data array per time point (n_vertices,)")
        data = np.stack(arrays)
    step = None
    meta = img.darrays[0].meta
    if meta is not None and "TimeStep" in meta:
        try:
            step = float(meta["TimeStep"]) / 1000.0  # GIfTI TimeStep is in ms
        except ValueError:
            step = None
    return data.astype(np.float32), step


def _surface_coords(surface, n_vertices: int, hemi: str) -> np.ndarray | None:
    import nibabel as nib

    if surface is None:
        return None
    surface = Path(surface)
    if not surface.exists():
        raise NeuralDataError(f"surface file not found: {surface}")
    if surface.name.endswith(".gii"):
        img = nib.load(str(surface))
        points = next((np.asarray(d.data) for d in img.darrays if np.asarray(d.data).ndim == 2
                       and np.asarray(d.data).shape[1] == 3 and np.asarray(d.data).dtype.kind == "f"), None)
    else:  # FreeSurfer geometry, e.g. $SUBJECTS_DIR/fsaverage6/surf/lh.pial
        try:
            points = nib.freesurfer.read_geometry(str(surface))[0]
        except Exception as exc:  # noqa: BLE001
            raise NeuralDataError(f"cannot read {surface} as a GIfTI or FreeSurfer surface: {exc}") from None
    if points is None:
        raise NeuralDataError(f"{surface}: no (n_vertices, 3) float point set (a *.surf.gii is expected)")
    if points.shape[0] != n_vertices:
        raise NeuralDataError(
            f"{surface}: {points.shape[0]} vertices but the {hemi} data have {n_vertices}; use the surface of "
            "the data's space (e.g. fsaverage6 for space-fsaverage6)")
    return points.astype(np.float64)


def _surface_regions(annot, n_vertices: int) -> list[str] | None:
    if annot is None:
        return None
    import nibabel as nib

    path = Path(annot)
    if path.name.endswith(".annot"):
        labels, _ctab, names = nib.freesurfer.read_annot(str(path))
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        out = [names[i] if 0 <= i < len(names) else "unlabeled" for i in labels]
    else:
        img = nib.load(str(path))
        labels = np.asarray(img.darrays[0].data).astype(int)
        table = img.labeltable.get_labels_as_dict() if img.labeltable is not None else {}
        out = [table.get(int(i), "unlabeled" if i == 0 else f"label-{int(i)}") for i in labels]
    if len(out) != n_vertices:
        raise NeuralDataError(f"{annot}: {len(out)} labels but the data have {n_vertices} vertices")
    return out


def load_bids_fmri(
    path: str | Path | None = None,
    *,
    root: str | Path | None = None,
    subject: str | None = None,
    task: str | None = None,
    session: str | None = None,
    run: str | int | None = None,
    space: str | None = None,
    hemi: str | None = None,
    desc: str | None = None,
    mask=None,
    atlas=None,
    atlas_labels=None,
    surface=None,
    annotation=None,
    tr: float | None = None,
    stimulus=None,
    stimulus_onset: float | str = 0.0,
    word_column: str | None = None,
) -> BIDSRecording:
    """Load one fMRI run (NIfTI volume or GIfTI surface) and, if available, its words.

    Give the file (``path``) or find it with ``root`` + entities (``subject``, ``task``, ``session``,
    ``run``, ``space``, ``hemi``, ``desc``) under ``root/sub-*/[ses-*/]func/``.

    Parameters
    ----------
    path : str | Path | None
        ``*_bold.nii[.gz]`` or ``*.func.gii`` (for ``hemi="both"`` the ``hemi-L`` file; the
        ``hemi-R`` file next to it is loaded too).
    mask : str, Path, nibabel image or ndarray of bool, optional
        for volumes: a NIfTI mask (path/image, resampled to the BOLD grid with nearest neighbour)
        or a boolean array; without it, voxels that are zero at every time point are treated as
        outside the brain (counted in ``meta["n_outside_mask"]``).
    atlas, atlas_labels
        for volumes: a label image and its names (dict index→name, list, or a
        TSV/CSV with index/name columns) giving each voxel's region.
    surface : str, Path or tuple of (str, Path), optional
        for GIfTI: ``*.surf.gii`` (or FreeSurfer ``lh.pial``) with the vertex positions (mm) of the
        data's space; for ``hemi="both"`` a ``(left, right)`` pair. Without it coords are None.
    annotation : str, Path or tuple of (str, Path), optional
        for GIfTI: a FreeSurfer ``.annot`` or ``.label.gii`` per hemisphere giving regions.
    tr : float | None
        repetition time (s); default from the sidecar JSON ``RepetitionTime`` (BIDS inheritance, raw
        dataset for derivatives), else the NIfTI header / GIfTI ``TimeStep``.
    stimulus : Stimulus, str, Path or None
        a :class:`Stimulus`, a word-timing file (see :func:`read_word_timings`), or None to use
        the words of the run's ``events.tsv`` when it has a word column.
    stimulus_onset : float | str
        seconds added to the word times (when the story starts after the first volume),
        or ``"events"``: the first onset of the run's events.tsv (Narratives).
    word_column : str | None
        the events.tsv column holding the words (default: word/words/text/token).

    Returns
    -------
    BIDSRecording
        :class:`BIDSRecording`; the dataset has modality ``"fmri"``, ``times = i * tr`` (s from the first
        volume), ``meta["tr"]``, channels ``vox_i_j_k`` (coords in mm from the affine) or ``L_<vertex>`` /
        ``R_<vertex>``. NaN/flat voxels or vertices (e.g. the medial wall) are excluded and listed in
        ``excluded``.

    Raises
    ------
    NeuralDataError
        missing/ambiguous files, unknown BIDS entities, no TR, words after the end.
    """
    if path is None:
        if root is None or subject is None:
            raise NeuralDataError("give path= or root= and subject= (plus task=, run= ...)")
        if hemi is not None:
            hemi_l = "L" if hemi == "both" else hemi
            path = find_bids_file(root, datatype="func", suffix=("bold", None), extensions=(".func.gii",),
                                  subject=subject, task=task, session=session, run=run, space=space, hemi=hemi_l,
                                  desc=desc)
        else:
            path = find_bids_file(root, datatype="func", suffix="bold", extensions=(".nii.gz", ".nii"),
                                  subject=subject, task=task, session=session, run=run, space=space, desc=desc)
    path = Path(path)
    if not path.exists():
        raise NeuralDataError(f"fMRI file not found: {path}")
    parsed = parse_bids_name(path)
    excluded: dict[str, str] = {}
    files = {"data": str(path)}
    meta: dict = {"entities": parsed.entities}
    name = path.name
    if name.endswith(".nii") or name.endswith(".nii.gz"):
        ts, names, coords, regions, header_tr, extra = _load_volume(path, mask, atlas, atlas_labels, excluded, files)
        meta.update(extra)
    elif name.endswith(".func.gii") or name.endswith(".gii"):
        ts, names, coords, regions, header_tr = _load_surface(path, parsed, hemi, surface, annotation, files)
    else:
        raise NeuralDataError(f"{path}: expected a NIfTI (.nii/.nii.gz) or GIfTI (.func.gii) file")
    if tr is None:
        tr, js = _tr_from_sidecar(path)
        if js is not None:
            files["sidecar"] = str(js)
        tr = tr if tr is not None else header_tr
    if tr is None or not tr > 0:
        raise NeuralDataError(
            f"{path}: no repetition time found (no sidecar JSON with RepetitionTime and none in the file "
            "header); pass tr= in seconds (Narratives: 1.5, LeBel: 2.0)")
    n_trs = ts.shape[0]
    meta.update(tr=float(tr), run=_run_label(parsed.entities), source="bids")
    ds = NeuralDataset(data=ts, times=np.arange(n_trs) * float(tr), channels=names,
                       subject=f"sub-{parsed.entities['sub']}", modality="fmri", coords=coords, regions=regions,
                       meta=meta)
    ds = _exclude_bad(ds, path, excluded)
    ds.meta["excluded"] = dict(excluded)
    stim = _resolve_stimulus(stimulus, path, stimulus_onset, files, n_trs * float(tr), word_column)
    return BIDSRecording(ds, stim, excluded, files)


def _run_label(ent: dict) -> str:
    parts = [f"{k}-{ent[k]}" for k in ("ses", "task", "run") if k in ent]
    return "_".join(parts) or "run-1"


def _load_surface(path: Path, parsed: BIDSName, hemi, surface, annotation, files: dict):
    file_hemi = parsed.entities.get("hemi")
    if hemi == "both":
        if file_hemi not in ("L", "R"):
            raise NeuralDataError(f"{path}: hemi='both' needs a file name with hemi-L or hemi-R")
        paths = {h: path.with_name(path.name.replace(f"hemi-{file_hemi}", f"hemi-{h}")) for h in ("L", "R")}
    else:
        h = hemi or file_hemi or "L"
        paths = {h: path}
    surfaces = surface if isinstance(surface, (list, tuple)) else [surface] * len(paths)
    annots = annotation if isinstance(annotation, (list, tuple)) else [annotation] * len(paths)
    if len(surfaces) != len(paths) or len(annots) != len(paths):
        raise NeuralDataError(f"give one surface/annotation per hemisphere ({len(paths)})")
    blocks, names, coords, regions, steps = [], [], [], [], []
    for (h, p), surf, annot in zip(paths.items(), surfaces, annots):
        if not p.exists():
            raise NeuralDataError(f"GIfTI file not found: {p} (expected the hemi-{h} file next to {path.name})")
        data, step = _read_gifti(p)
        files[f"data_{h}"] = str(p)
        n_v = data.shape[1]
        blocks.append(data)
        names += [f"{h}_{v}" for v in range(n_v)]
        c = _surface_coords(surf, n_v, f"hemi-{h}")
        coords.append(c)
        r = _surface_regions(annot, n_v)
        regions.append(r)
        steps.append(step)
    if len({b.shape[0] for b in blocks}) != 1:
        raise NeuralDataError(f"{path}: the hemispheres have different numbers of time points "
                              f"{[b.shape[0] for b in blocks]}")
    data = np.hstack(blocks)
    all_coords = None if any(c is None for c in coords) else np.vstack(coords)
    all_regions = None if any(r is None for r in regions) else [x for r in regions for x in r]
    return data, names, all_coords, all_regions, steps[0]


def load_bids_fmri_runs(
    paths: Sequence[str | Path],
    stimuli: Sequence | None = None,
    *,
    labels: Sequence[str] | None = None,
    **kwargs,
) -> tuple[NeuralDataset, list[Stimulus]]:
    """Load several runs/stories of one subject and concatenate them (run-aware CV needs the labels).

    Channels missing (or excluded as NaN/flat) in any run are dropped from all runs, and reported.

    Parameters
    ----------
    paths : Sequence[str | Path]
        one fMRI file per run.
    stimuli : Sequence | None
        one Stimulus / word-timing file per run (None: from each run's events.tsv).
    labels : Sequence[str] | None
        run labels (default: the ``task``/``run`` entities).
    **kwargs
        passed to :func:`load_bids_fmri` (``tr``, ``mask``, ``stimulus_onset`` ...).

    Returns
    -------
    tuple[NeuralDataset, list[Stimulus]]
        ``(dataset, stimuli)``: the concatenated dataset (``runs`` labels, ``meta["tr"]``) and one Stimulus
        per run, for :func:`brainlike.neural.fmri.fmri_design_layers`.
    """
    from brainlike.neural.fmri import concatenate_runs

    paths = list(paths)
    if not paths:
        raise NeuralDataError("no runs given")
    stims_in = list(stimuli) if stimuli is not None else [None] * len(paths)
    if len(stims_in) != len(paths):
        raise NeuralDataError(f"{len(paths)} runs but {len(stims_in)} stimuli")
    recs = [load_bids_fmri(p, stimulus=s, **kwargs) for p, s in zip(paths, stims_in)]
    for p, rec in zip(paths, recs):
        if rec.stimulus is None:
            raise NeuralDataError(f"{p}: no words found; pass stimuli= (word-timing files or Stimulus objects)")
    trs = {round(r.dataset.meta["tr"], 6) for r in recs}
    if len(trs) != 1:
        raise NeuralDataError(f"runs have different TRs: {sorted(trs)}")
    common = set(recs[0].dataset.channels)
    for r in recs[1:]:
        common &= set(r.dataset.channels)
    if not common:
        raise NeuralDataError("the runs have no channel in common")
    dropped = sorted(set().union(*[set(r.dataset.channels) for r in recs]) - common)
    if dropped:
        warnings.warn(f"{len(dropped)} channels are missing or excluded in some runs and were dropped from all "
                      f"(first: {dropped[:5]})", stacklevel=2)
    order = [ch for ch in recs[0].dataset.channels if ch in common]
    runs = [r.dataset.select_channels(order) for r in recs]
    labels = list(labels) if labels is not None else [r.dataset.meta["run"] for r in recs]
    if len(set(labels)) != len(labels):
        labels = [f"run-{i + 1}" for i in range(len(recs))]
    ds = concatenate_runs(runs, labels)
    ds.meta["excluded"] = {k: v for r in recs for k, v in r.excluded.items()}
    ds.meta["dropped_not_in_all_runs"] = dropped
    return ds, [r.stimulus for r in recs]


def load_lebel_responses(path: str | Path, *, key: str = "data", tr: float = 2.0, run: str | None = None,
                         subject: str | None = None) -> NeuralDataset:
    """LeBel et al. 2023 preprocessed responses: ``derivative/preprocessed_data/<UTS0x>/<story>.hf5``.

    The file holds ``data`` ``(n_trs, n_voxels)``, already trimmed and z-scored: LeBel's code aligns its
    rows with volumes 10 … n−6 of a run of ``n = n_trs + 15`` volumes whose audio starts at 10 s. Align it
    with ``fmri_design_layers(feats, stims, [n_trs + 15], tr=2.0, trim_start=10, trim_end=5,
    word_time="middle", tr_offset=0.5)`` and word times shifted by 10 s (docs/neural-data.md). Needs
    ``h5py`` (``pip install h5py``).
    """
    path = Path(path)
    if not path.exists():
        raise NeuralDataError(f"LeBel response file not found: {path}")
    try:
        import h5py
    except ImportError:
        raise NeuralDataError("reading .hf5 files needs h5py: pip install h5py") from None
    with h5py.File(path, "r") as f:
        if key not in f:
            raise NeuralDataError(f"{path}: no dataset {key!r} (has {list(f.keys())})")
        data = np.asarray(f[key], dtype=np.float32)
    if data.ndim != 2:
        raise NeuralDataError(f"{path}: expected (n_trs, n_voxels), got shape {data.shape}")
    ds = NeuralDataset(data=data, times=np.arange(data.shape[0]) * tr,
                       channels=[f"vox_{i}" for i in range(data.shape[1])],
                       subject=subject or path.parent.name, modality="fmri",
                       meta={"tr": tr, "run": run or path.stem, "source": str(path), "pretrimmed": True})
    return ds


# ---------------------------------------------------------------------------------------------- Pereira
@dataclass
class PereiraData:
    """Pereira et al. 2018 sentence-level fMRI.

    Attributes
    ----------
    dataset : NeuralDataset
        ``(n_sentences, n_voxels)`` responses (one sample per sentence; ``times`` = sentence index
        in s, ``runs`` = passage labels so CV can hold out whole passages), regions from the atlas.
    sentences : list[str]
        the ``n_sentences`` sentences, in order.
    stimulus : Stimulus
        all words with a synthetic timing (one sentence every 4 s) for feature extraction.
    word_sentence : np.ndarray
        ``(n_words,)`` int, the sentence of every word of ``stimulus`` (average word
        features per sentence with it).
    """

    dataset: NeuralDataset
    sentences: list[str]
    stimulus: Stimulus
    word_sentence: np.ndarray


def _mat_scalar(obj):
    """Unwrap 1×1 MATLAB cell/struct arrays."""
    while isinstance(obj, np.ndarray) and obj.dtype == object and obj.size == 1:
        obj = obj.reshape(-1)[0]
    return obj


def _mat_field(obj, name: str):
    obj = _mat_scalar(obj)
    if isinstance(obj, dict):
        return obj[name]
    if hasattr(obj, "_fieldnames"):
        if name not in obj._fieldnames:
            raise KeyError(name)
        return getattr(obj, name)
    raise KeyError(name)


def _mat_strings(x) -> list[str]:
    arr = np.asarray(x, dtype=object).reshape(-1)
    out = []
    for v in arr:
        while isinstance(v, np.ndarray) and v.size == 1 and v.dtype == object:
            v = v.reshape(-1)[0]
        if isinstance(v, np.ndarray):
            v = "".join(v.astype(str).reshape(-1)) if v.dtype.kind in "US" else str(v.reshape(-1)[0])
        out.append(str(v))
    return out


def load_pereira2018(
    path: str | Path,
    *,
    atlas: str | None = "languageLH",
    subject: str | None = None,
    key: str = "examples_passagesentences",
) -> PereiraData:
    """Load one subject's ``data_384sentences.mat`` / ``data_243sentences.mat`` (Pereira et al. 2018).

    Parameters
    ----------
    path : str | Path
        the ``.mat`` file (``<subject>/data_384sentences.mat`` from the OSF project).
    atlas : str | None
        the ``meta.atlases`` entry whose ``meta.rois`` name each voxel's region (e.g.
        ``"languageLH"``, ``"aal"``, ``"gordon"``); voxels outside every region get ``"none"``.
        None: no regions.
    key : str
        the response matrix (sentences × voxels).

    Coordinates: ``meta.colToCoord`` (1-based voxel indices) mapped to mm with ``meta.matrix`` when present.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.exists():
        raise NeuralDataError(f"Pereira file not found: {path}")
    try:
        mat = loadmat(str(path), squeeze_me=False, struct_as_record=False)
    except NotImplementedError:
        raise NeuralDataError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save as v7") from None
    except Exception as exc:  # noqa: BLE001
        raise NeuralDataError(f"cannot read {path} as a MATLAB file: {exc}") from None
    for need in (key, "keySentences"):
        if need not in mat:
            raise NeuralDataError(f"{path}: no variable {need!r} "
                                  f"(has {sorted(k for k in mat if not k.startswith('__'))})")
    data = np.asarray(mat[key], dtype=np.float32)
    if data.ndim != 2:
        raise NeuralDataError(f"{path}: {key} must be (n_sentences, n_voxels), got {data.shape}")
    sentences = _mat_strings(mat["keySentences"])
    n, v = data.shape
    if len(sentences) != n:
        raise NeuralDataError(f"{path}: {n} response rows but {len(sentences)} sentences")
    passages = np.asarray(mat.get("labelsPassageForEachSentence", np.arange(n))).reshape(-1)
    passages = np.array([_mat_scalar(p) for p in passages])
    if len(passages) != n:
        raise NeuralDataError(f"{path}: {n} sentences but {len(passages)} passage labels")
    coords, regions = None, None
    meta_struct = mat.get("meta")
    if meta_struct is not None:
        try:
            ijk = np.asarray(_mat_field(meta_struct, "colToCoord"), dtype=float).reshape(v, 3) - 1.0
            try:
                affine = np.asarray(_mat_field(meta_struct, "matrix"), dtype=float).reshape(4, 4)
                coords = ijk @ affine[:3, :3].T + affine[:3, 3]
            except (KeyError, AttributeError, ValueError):
                coords = ijk
        except (KeyError, AttributeError, ValueError):
            coords = None
        if atlas is not None:
            regions = _pereira_regions(meta_struct, atlas, v, path)
    elif atlas is not None:
        raise NeuralDataError(f"{path}: no 'meta' struct, so atlas {atlas!r} is unavailable; pass atlas=None")
    ds = NeuralDataset(data=data, times=np.arange(n, dtype=float), channels=[f"vox_{i}" for i in range(v)],
                       subject=subject or path.parent.name or "pereira", modality="fmri", coords=coords,
                       regions=regions, runs=np.array([f"passage-{p}" for p in passages]),
                       meta={"source": str(path), "unit": "sentence", "atlas": atlas})
    ds_clean = _exclude_bad(ds, path, excl := {})
    ds_clean.meta["excluded"] = excl
    words, onsets, word_sentence = [], [], []
    t = 0.5
    for si, sent in enumerate(sentences):
        toks = sent.split()
        for j, w in enumerate(toks):
            words.append(w)
            onsets.append(t + j * 0.4)
            word_sentence.append(si)
        t += max(4.0, 0.4 * len(toks) + 0.5)
    stim = Stimulus.from_words(words, onsets, name=path.stem)
    return PereiraData(ds_clean, sentences, stim, np.asarray(word_sentence, dtype=int))


def _pereira_regions(meta_struct, atlas: str, n_vox: int, path: Path) -> list[str]:
    try:
        atlases = _mat_strings(_mat_field(meta_struct, "atlases"))
        rois = np.asarray(_mat_field(meta_struct, "rois"), dtype=object).reshape(-1)
        cols = np.asarray(_mat_field(meta_struct, "roiColumns"), dtype=object).reshape(-1)
        if len(rois) != len(atlases) or len(cols) != len(atlases):
            raise KeyError(f"{len(atlases)} atlases but {len(rois)} roi lists and {len(cols)} column lists")
    except (KeyError, AttributeError) as exc:
        raise NeuralDataError(f"{path}: meta lacks atlases/rois/roiColumns ({exc})") from None
    if atlas not in atlases:
        raise NeuralDataError(f"{path}: atlas {atlas!r} not in meta.atlases {atlases}")
    a = atlases.index(atlas)
    names = _mat_strings(rois[a])
    columns = np.asarray(cols[a], dtype=object).reshape(-1)
    if len(columns) != len(names):
        raise NeuralDataError(f"{path}: atlas {atlas!r} has {len(names)} regions but {len(columns)} column lists")
    out = ["none"] * n_vox
    for name, col in zip(names, columns):
        idx = np.asarray(col, dtype=int).reshape(-1) - 1  # MATLAB 1-based
        for i in idx:
            if 0 <= i < n_vox:
                out[i] = name
    return out
