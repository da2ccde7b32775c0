"""Recorded BIDS datasets: iEEG/ECoG (word-locked high-gamma) for ``brainlike run``."""
from __future__ import annotations

from pydantic import Field, model_validator

from brainlike.config import StrictModel
from brainlike.datasets import DatasetContext
from brainlike.neural.sources import SubjectData, load_bids_ieeg_subjects


class BIDSiEEGConfig(StrictModel):
    """``dataset: {kind: bids-ieeg, path: ..., subjects: [...]}``."""

    path: str | None = Field(None, description="the BIDS root")
    subjects: list[str] | int | None = Field(None, description="BIDS subject labels (with or without sub-)")
    task: str | None = None
    stimulus: str | None = Field(None, description="word-timing file shared by all subjects (relative to the root "
                                 "or absolute); default: the words of each run's events.tsv")
    region_column: str | None = Field(None, description="electrodes.tsv column with region labels")
    hierarchy: str = Field("hierarchy", description="'distance:X,Y,Z' (mm from a point), 'order:A>B>C' (region "
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
        return load_bids_ieeg_subjects(config.path, config.subjects, task=config.task, hierarchy=config.hierarchy,
                                       stimulus=config.stimulus, region_column=config.region_column)


BIDS_IEEG = BIDSiEEG()
