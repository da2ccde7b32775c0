"""A dataset and an analysis added the way a user adds one: this module plus one `register` line each.

* ``toy-ecog``: a recorded-style dataset (it brings its own words) whose channel ``driven`` follows the
  number of letters of each word and whose other channels are noise;
* ``word-lengths``: an analysis that tabulates the letters per word of a story.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from brainlike import Stimulus
from brainlike.config import RunConfig, StimulusSpec, StrictModel, resolve_stimulus
from brainlike.datasets import DatasetContext
from brainlike.neural import NeuralDataset
from brainlike.neural.sources import SubjectData
from brainlike.pipelines import AnalysisOutput, RunContext, Section


class ToyECoGConfig(StrictModel):
    n_words: int = Field(300, ge=50)
    n_noise: int = Field(3, ge=1)


class ToyECoG:
    Config = ToyECoGConfig
    needs_features = False
    modality = "ecog"

    def load(self, config: ToyECoGConfig, context: DatasetContext) -> list[SubjectData]:
        from brainlike.data import default_story

        words = default_story().split()[: config.n_words]
        stim = Stimulus.from_text(" ".join(words), words_per_second=2.0, name="toy")
        rng = np.random.default_rng(context.seed)
        sfreq, n = 50.0, int((stim.duration + 2.0) * 50)
        times = np.arange(n) / sfreq
        data = rng.standard_normal((n, 1 + config.n_noise)).astype(np.float32)
        lengths = np.array([len(w) for w in stim.words], dtype=float)
        lengths = (lengths - lengths.mean()) / lengths.std()
        for on, off, v in zip(stim.onsets, stim.offsets, lengths):
            data[(times >= on) & (times < off), 0] += 2.0 * v
        channels = ["driven"] + [f"noise{i}" for i in range(config.n_noise)]
        ds = NeuralDataset(data, times, channels, subject="toy-01", regions=["A"] + ["B"] * config.n_noise,
                           hierarchy=np.arange(1 + config.n_noise, dtype=float))
        return [SubjectData(ds, stim)]


class WordLengthsSpec(RunConfig):
    analysis: Literal["word-lengths"] = "word-lengths"
    name: str = "word-lengths"
    stimulus: StimulusSpec = Field(default_factory=StimulusSpec)


class WordLengths:
    Config = WordLengthsSpec
    title = "letters per word"

    def run(self, config: WordLengthsSpec, context: RunContext) -> AnalysisOutput:
        stim = resolve_stimulus(config.stimulus, seed=config.seed)
        table = pd.DataFrame({"word": stim.words, "onset": stim.onsets,
                              "letters": [len(w) for w in stim.words]})
        return AnalysisOutput(tables={"word_lengths": table},
                              sections=[Section("Word lengths", "", [], [("words", table.head(20))])])


TOY_ECOG = ToyECoG()
WORD_LENGTHS = WordLengths()
