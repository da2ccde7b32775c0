"""The subjects of an experiment spec: recorded (BIDS iEEG) or simulated, with hierarchy positions.

``brainlike run`` needs, per subject, the recording, the words on that recording's clock, and each
channel's position in the processing hierarchy (Mischler et al. 2024 correlate it with the channel's
best layer). Recorded data come with their own words (events.tsv or a transcript file), so the features
are extracted on those words; simulated subjects are generated from the spec's stimulus.

Hierarchy positions (``dataset.hierarchy`` in the spec):

* ``"hierarchy"``: the dataset's own positions (the simulator's level; a BIDS dataset has none);
* ``"distance:X,Y,Z"``: Euclidean distance (mm) of each electrode from a point in the electrodes'
  space, e.g. posteromedial Heschl's gyrus (MNI ``-42,-22,8`` on the left) for "distance from primary
  auditory cortex";
* ``"order:HG>STG>MTG>IFG"``: the rank of each electrode's region in that order (others: NaN, left out);
* any other name: a numeric column of the dataset's ``electrodes.tsv`` (e.g. a response latency).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.errors import NeuralDataError
from brainlike.neural.dataset import NeuralDataset
from brainlike.stimulus import Stimulus


@dataclass
class SubjectData:
    """One subject of an experiment.

    Attributes
    ----------
    dataset : NeuralDataset
        the recording, bad channels excluded; ``dataset.hierarchy`` holds the positions.
    stimulus : Stimulus
        the words with their times on this recording's clock (s).
    truth : pd.DataFrame | None
        simulation ground truth (``channel, planted_level, is_noise``), None for recordings.
    """

    dataset: NeuralDataset
    stimulus: Stimulus
    truth: pd.DataFrame | None = None


def parse_hierarchy(how: str | None) -> tuple[str, object]:
    """The form of a ``dataset.hierarchy`` string, checked before any data are loaded.

    Returns
    -------
    tuple
        ``("hierarchy", None)``, ``("distance", ndarray (3,) mm)``, ``("order", [region, ...])`` or
        ``("column", name)``.

    Raises
    ------
    NeuralDataError
        A malformed ``distance:`` point or an ``order:`` with fewer than two regions.
    """
    how = (how or "hierarchy").strip()
    if how == "hierarchy":
        return "hierarchy", None
    if how.startswith("distance:"):
        try:
            point = np.array([float(v) for v in how.split(":", 1)[1].split(",")])
        except ValueError:
            point = np.zeros(0)
        if point.shape != (3,):
            raise NeuralDataError(f"dataset.hierarchy {how!r}: expected 'distance:X,Y,Z' with three numbers (mm)")
        return "distance", point
    if how.startswith("order:"):
        order = [r.strip() for r in how.split(":", 1)[1].split(">") if r.strip()]
        if len(order) < 2:
            raise NeuralDataError(f"dataset.hierarchy {how!r}: give at least two regions, e.g. 'order:STG>IFG'")
        return "order", order
    return "column", how


def hierarchy_positions(ds: NeuralDataset, how: str, electrodes_tsv: str | Path | None = None) -> np.ndarray:
    """``(n_channels,)`` float hierarchy position of every channel of ``ds`` (NaN where unknown).

    ``how`` is one of the forms listed in the module docstring.
    """
    kind, value = parse_hierarchy(how)
    how = (how or "hierarchy").strip()
    if kind == "hierarchy":
        if ds.hierarchy is None:
            raise NeuralDataError(
                f"{ds.subject}: the dataset gives no hierarchy positions; set dataset.hierarchy to "
                "'distance:X,Y,Z' (mm from a point), 'order:REGION>REGION>...' or an electrodes.tsv column")
        return np.asarray(ds.hierarchy, dtype=np.float64)
    if kind == "distance":
        if ds.coords is None:
            raise NeuralDataError(f"{ds.subject}: no electrode coordinates, so {how!r} cannot be computed")
        return np.linalg.norm(np.asarray(ds.coords, dtype=np.float64) - value[None, :], axis=1)
    if kind == "order":
        order = value
        if ds.regions is None:
            raise NeuralDataError(f"{ds.subject}: no electrode regions, so {how!r} cannot be computed")
        rank = {r.lower(): float(i) for i, r in enumerate(order)}
        return np.array([rank.get(str(r).lower(), np.nan) for r in ds.regions])
    if electrodes_tsv is None:
        raise NeuralDataError(f"{ds.subject}: dataset.hierarchy {how!r} names an electrodes.tsv column, "
                              "but the recording has no electrodes.tsv")
    table = pd.read_csv(electrodes_tsv, sep="\t", na_values=["n/a"])
    if how not in table.columns or "name" not in table.columns:
        raise NeuralDataError(f"{electrodes_tsv}: no column {how!r} (columns: {list(table.columns)})")
    values = pd.to_numeric(table[how], errors="coerce")
    by_name = dict(zip(table["name"].astype(str), values))
    return np.array([by_name.get(ch, np.nan) for ch in ds.channels], dtype=np.float64)


def load_bids_ieeg_subjects(
    root: str | Path,
    subjects: list[str],
    *,
    task: str | None = None,
    hierarchy: str = "hierarchy",
    stimulus: str | Path | None = None,
    region_column: str | None = None,
) -> list[SubjectData]:
    """Load BIDS iEEG subjects for a sweep (high-gamma envelope at 100 Hz, z-scored).

    Parameters
    ----------
    root : str | Path
        the BIDS dataset root.
    subjects : list[str]
        subject labels (with or without ``sub-``).
    task : str | None
        the BIDS task entity (e.g. ``podcast``).
    hierarchy : str
        how to place channels in the hierarchy (module docstring).
    stimulus : str | Path | None
        a word-timing file shared by all subjects (Podcast: ``stimuli/podcast_transcript.csv``,
        relative to ``root`` or absolute); None for each run's events.tsv words.
    region_column : str | None
        electrodes.tsv column with the region labels.

    Raises
    ------
    NeuralDataError
        a subject without words, subjects who heard different words (run them as
        separate specs), or a hierarchy that cannot be computed.
    """
    from brainlike.neural.ieeg import load_bids_ieeg

    if not subjects:
        raise NeuralDataError("dataset.subjects must list the BIDS subject labels to load")
    stim_path = None
    if stimulus is not None:
        stim_path = Path(stimulus) if Path(stimulus).is_absolute() else Path(root) / stimulus
    out: list[SubjectData] = []
    for label in subjects:
        rec = load_bids_ieeg(root=root, subject=str(label).removeprefix("sub-"), task=task, stimulus=stim_path,
                             region_column=region_column)
        if rec.stimulus is None or len(rec.stimulus) == 0:
            raise NeuralDataError(f"{rec.files.get('data')}: no words found (events.tsv has no word column); "
                                  "give dataset.stimulus (a word-timing file)")
        ds = rec.dataset
        ds.hierarchy = hierarchy_positions(ds, hierarchy, rec.files.get("electrodes"))
        out.append(SubjectData(ds, rec.stimulus))
    check_same_words(out)
    return out


def check_same_words(subjects: list[SubjectData]) -> None:
    """Raise unless every subject heard the same words (one feature extraction serves them all)."""
    for s in subjects[1:]:
        if s.stimulus.words != subjects[0].stimulus.words:
            raise NeuralDataError(f"{s.dataset.subject} heard different words than {subjects[0].dataset.subject}; "
                                  "one spec sweeps subjects of one stimulus (run the others as another spec)")
