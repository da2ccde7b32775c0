"""``dataset: {kind: brennan2016}``: the REAL fMRI recording of Brennan et al. (2016).

27 listeners of *Alice in Wonderland*, chapter 1, in 6 language ROIs (shipped inside the package, CC BY 4.0).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from brainlike.config import StrictModel
from brainlike.datasets import DatasetContext
from brainlike.neural.brennan import Brennan2016, load_brennan2016
from brainlike.neural.sources import SubjectData


class Brennan2016Config(StrictModel):
    """The ``dataset:`` section of the Brennan 2016 recording (all optional)."""

    path: str | None = Field(None, description="the authors' folder (holding alice_data_shared/); default: the "
                             "compact copy shipped with brainlike")
    radius: Literal["6mm", "10mm"] = Field("6mm", description="ROI sphere radius")
    subjects: list[str] | None = Field(None, description="subject labels (s18, s22, ...); default: all 27")
    textgrid: str | None = Field(None, description="the TextGrid, when it is not beside alice_data_shared/")


class Brennan2016Dataset:
    """The ``brennan2016`` dataset plugin: one :class:`SubjectData` per listener (``modality="fmri"``).

    Each subject's ``dataset.times`` are the volumes' acquisition times on the TextGrid clock
    (``20 + 2 i`` s) and ``stimulus`` holds the words on the same clock. :meth:`recording` gives the whole
    :class:`~brainlike.neural.brennan.Brennan2016` (controls, group predictors, noise ceilings).
    """

    Config = Brennan2016Config
    needs_features = False
    modality = "fmri"

    def recording(self, config: Brennan2016Config) -> Brennan2016:
        """The Brennan 2016 recording for ``config``."""
        return load_brennan2016(config.path, radius=config.radius, textgrid=config.textgrid,
                                subjects=config.subjects)

    def load(self, config: Brennan2016Config, context: DatasetContext) -> list[SubjectData]:
        """The subjects' recordings for ``config``."""
        rec = self.recording(config)
        return [SubjectData(ds, rec.stimulus) for ds in rec.datasets()]


BRENNAN2016 = Brennan2016Dataset()
