"""Recorded BIDS datasets: iEEG/ECoG (word-locked high-gamma) for ``brainlike run``."""
from __future__ import annotations

from pydantic import Field, model_validator

from brainlike.config import StrictModel
from brainlike.datasets import DatasetContext, HierarchySpec
from brainlike.errors import NeuralDataError
from brainlike.neural.sources import SubjectData, load_bids_ieeg_subjects


class BIDSiEEGConfig(StrictModel):
    """``dataset: {kind: bids-ieeg, path: ..., subjects: [...]}``."""

    path: str | None = Field(None, description="the BIDS root")
    subjects: list[str] | int | None = Field(None, description="BIDS subject labels (with or without sub-)")
    task: str | None = None
    stimulus: str | None = Field(None, description="word-timing file shared by all subjects (relative to the root "
                                 "or absolute); default: the words of each run's events.tsv")
    region_column: str | None = Field(None, description="electrodes.tsv column with region labels")
    hierarchy: HierarchySpec = Field(
        "hierarchy", description="'distance:X,Y,Z' (mm from a point), 'order:A>B>C' (region "
                           "order) or an electrodes.tsv column")

    @model_validator(mode="after")
    def _check(self) -> BIDSiEEGConfig:
        if not self.path:
            raise ValueError("dataset.kind bids-ieeg needs dataset.path (the BIDS root)")
        if not isinstance(self.subjects, list) or not self.subjects:
            raise ValueError("dataset.kind bids-ieeg needs dataset.subjects: a list of BIDS subject labels")
        return self


class BIDSiEEG:
    """The ``bids-ieeg`` dataset plugin (e.g. the Podcast ECoG dataset, OpenNeuro ds005574)."""

    Config = BIDSiEEGConfig
    needs_features = False
    modality = "ecog"

    def load(self, config: BIDSiEEGConfig, context: DatasetContext) -> list[SubjectData]:
        """The subjects' recordings for ``config``."""
        return load_bids_ieeg_subjects(config.path, config.subjects, task=config.task, hierarchy=config.hierarchy,
                                       stimulus=config.stimulus, region_column=config.region_column)


BIDS_IEEG = BIDSiEEG()


class BIDSfMRIConfig(StrictModel):
    """``dataset: {kind: bids-fmri, path: ..., subjects: [...], task: ...}``.

    One run per subject, of one story (Narratives ds002345, LeBel ds003020 ...), in parcels (``atlas``) or
    voxels/vertices.
    """

    path: str = Field(..., description="the BIDS root (or a derivatives pipeline root, e.g. fMRIPrep's)")
    subjects: list[str] = Field(..., min_length=1, description="BIDS subject labels (with or without sub-)")
    task: str | None = None
    run: str | None = None
    space: str | None = Field(None, description="e.g. MNI152NLin2009cAsym, fsaverage6")
    desc: str | None = Field(None, description="e.g. preproc")
    hemi: str | None = Field(None, description="surface data: L or R")
    mask: str | None = Field(None, description="brain mask image (volume data)")
    atlas: str | None = Field(None, description="a label image: one target per parcel (mean of its voxels)")
    atlas_labels: str | None = Field(None, description="names of the atlas labels (a TSV/TXT)")
    stimulus: str | None = Field(None, description="word-timing file shared by all subjects (relative to the root "
                                 "or absolute); default: each run's events.tsv")
    stimulus_onset: float | str = Field(0.0, description="seconds from the first volume to the story's start, or "
                                        "the events.tsv trial_type that marks it")
    tr: float | None = Field(None, gt=0, description="seconds (default: the sidecar JSON / NIfTI header)")


class BIDSfMRI:
    """The ``bids-fmri`` dataset plugin (one story per spec; every subject's run of it)."""

    Config = BIDSfMRIConfig
    needs_features = False
    modality = "fmri"

    def load(self, config: BIDSfMRIConfig, context: DatasetContext) -> list[SubjectData]:
        """The subjects' recordings for ``config``."""
        from pathlib import Path

        from brainlike.neural.bids import load_bids_fmri

        root = Path(config.path)
        stim = None
        if config.stimulus is not None:
            stim = Path(config.stimulus) if Path(config.stimulus).is_absolute() else root / config.stimulus
        out = []
        for label in config.subjects:
            rec = load_bids_fmri(root=root, subject=str(label).removeprefix("sub-"), task=config.task, run=config.run,
                                 space=config.space, desc=config.desc, hemi=config.hemi, mask=config.mask,
                                 atlas=config.atlas, atlas_labels=config.atlas_labels, tr=config.tr, stimulus=stim,
                                 stimulus_onset=config.stimulus_onset)
            if rec.stimulus is None or len(rec.stimulus) == 0:
                raise NeuralDataError(f"sub-{label}: no words found (events.tsv has no word column); give "
                                      "dataset.stimulus (a word-timing file)")
            out.append(SubjectData(rec.dataset, rec.stimulus))
        return out


BIDS_FMRI = BIDSfMRI()
