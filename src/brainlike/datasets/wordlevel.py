"""``dataset: {kind: wordlevel}``: tidy per-word response tables (ERP amplitudes, reading times).

One row per subject x word, in a TSV, CSV or parquet file. The columns (names configurable, see
:class:`WordLevelConfig`; documented in ``docs/next-word.md``):

============ ==========================================================================================
``subject``  subject label (omit the mapping, ``subject: null``, for a table of per-word means: one
             pseudo-subject ``all``)
``item``     sentence / item / story id: the words of an item are read in order
``position`` position of the word in its item (1, 2, ...); rows are sorted by (item, position)
``word``     the word as displayed (no spaces)
responses    one or more numeric columns (e.g. ``n400`` in uV, ``rt`` in ms)
``reject``   optional: true/1 marks a rejected trial (its responses become NaN)
covariates   optional numeric columns: ``frequency`` (e.g. log frequency), ``baseline`` (pre-word
             amplitude), any other
============ ==========================================================================================

``length`` (characters of the word without surrounding punctuation) and ``position`` are always
available as covariates. ``context: reset`` (default) scores every item on its own (a sentence read in
isolation, or a whole story); ``continuous`` reads all items in order as one text.
:func:`write_example` writes such a table with a planted surprisal slope (the tests use it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from brainlike.config import StrictModel
from brainlike.datasets import DatasetContext
from brainlike.errors import BrainlikeError
from brainlike.neural.dataset import NeuralDataset
from brainlike.neural.sources import SubjectData
from brainlike.stimulus import Stimulus

#: ``NeuralDataset.modality`` of word-level subjects (the alignment analysis dispatches on it).
MODALITY = "wordlevel"


class WordLevelConfig(StrictModel):
    """The ``dataset:`` section of a word-level table."""

    path: str = Field(description="a .tsv, .csv or .parquet file, one row per subject x word")
    subject: str | None = Field("subject", description="subject column (null: a table of means, one pseudo-subject)")
    item: str = Field("item", description="sentence/item/story id column")
    position: str = Field("position", description="word position within the item")
    word: str = Field("word", description="word column")
    responses: list[str] = Field(default_factory=lambda: ["response"], min_length=1,
                                 description="numeric response columns (an ERP amplitude, a reading time)")
    reject: str | None = Field(None, description="column flagging rejected trials (true/1)")
    frequency: str | None = Field(None, description="word frequency column (e.g. log frequency), a covariate")
    baseline: str | None = Field(None, description="baseline column (e.g. pre-word amplitude), a covariate")
    covariates: list[str] = Field(default_factory=list, description="other numeric covariate columns")
    context: Literal["reset", "continuous"] = Field("reset", description="reset: every item read on its own; "
                                                    "continuous: all items in order as one text")
    transform: Literal["none", "log"] = Field("none", description="log: natural log of the responses (RTs)")
    window: int = Field(512, ge=4, description="tokens per forward pass for the predictions")


def read_table(path: str | Path) -> pd.DataFrame:
    """A word-level table from ``.tsv``/``.txt`` (tab), ``.csv`` or ``.parquet``.

    Raises
    ------
    BrainlikeError
        the file is missing or has another suffix.
    """
    path = Path(path)
    if not path.exists():
        raise BrainlikeError(f"word-level table not found: {path}; check dataset.path")
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".txt"):
        return pd.read_csv(path, sep="\t", keep_default_na=True)
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    raise BrainlikeError(f"{path}: a word-level table must be .tsv, .csv or .parquet")


def word_length(words: pd.Series) -> np.ndarray:
    """Characters of each word without surrounding punctuation (at least 1)."""
    stripped = words.astype(str).str.strip(".,;:!?\"'()[]{}-")
    return np.maximum(stripped.str.len().to_numpy(), 1).astype(np.float64)


def tidy_table(config: WordLevelConfig) -> pd.DataFrame:
    """The file as the analysis reads it.

    Columns ``subject``, ``item``, ``position``, ``word``, ``length``, the responses (NaN where rejected; logged with
    ``transform: log``), ``reject`` and the covariates, sorted by subject, item and position.

    Raises
    ------
    BrainlikeError
        a mapped column is missing, a response is not numeric, a (subject, item, position)
        repeats, or one (item, position) has different words for different subjects.
    """
    raw = read_table(config.path)
    src = str(config.path)
    mapping = {"item": config.item, "position": config.position, "word": config.word}
    if config.subject is not None:
        mapping["subject"] = config.subject
    extra = [c for c in (config.reject, config.frequency, config.baseline, *config.covariates) if c]
    for name in [*mapping.values(), *config.responses, *extra]:
        if name not in raw.columns:
            raise BrainlikeError(f"{src}: no column {name!r} (columns: {list(raw.columns)}); fix the dataset "
                                 "column mapping")
    df = pd.DataFrame({k: raw[v] for k, v in mapping.items()})
    if "subject" not in df:
        df["subject"] = "all"
    df["subject"] = df["subject"].astype(str)
    df["word"] = df["word"].astype(str).str.strip()
    if (df["word"] == "").any() or df["word"].str.contains(r"\s").any():
        bad = df.loc[(df["word"] == "") | df["word"].str.contains(r"\s"), "word"].iloc[0]
        raise BrainlikeError(f"{src}: word {bad!r} is empty or contains a space; one word per row")
    df["position"] = pd.to_numeric(df["position"], errors="coerce")
    if df["position"].isna().any():
        raise BrainlikeError(f"{src}: column {config.position!r} must hold numeric word positions")
    df["length"] = word_length(df["word"])
    for name in config.responses:
        vals = pd.to_numeric(raw[name], errors="coerce")
        if vals.notna().sum() == 0:
            raise BrainlikeError(f"{src}: response column {name!r} holds no numbers")
        if config.transform == "log":
            vals = np.log(vals.where(vals > 0))
        df[name] = vals.astype(np.float64)
    rejected = np.zeros(len(df), dtype=bool)
    if config.reject:
        rej = raw[config.reject]
        rejected = rej.astype(str).str.lower().isin(["1", "true", "yes", "1.0"]).to_numpy()
        df.loc[rejected, list(config.responses)] = np.nan
    df["reject"] = rejected
    for name, col in (("frequency", config.frequency), ("baseline", config.baseline)):
        if col:
            df[name] = pd.to_numeric(raw[col], errors="coerce").astype(np.float64)
    for col in config.covariates:
        df[col] = pd.to_numeric(raw[col], errors="coerce").astype(np.float64)
    dup = df.duplicated(["subject", "item", "position"])
    if dup.any():
        r = df[dup].iloc[0]
        raise BrainlikeError(f"{src}: subject {r['subject']} has item {r['item']} position {r['position']} twice")
    words = df.groupby(["item", "position"])["word"].nunique()
    if (words > 1).any():
        item, pos = words[words > 1].index[0]
        raise BrainlikeError(f"{src}: item {item} position {pos} has different words for different subjects")
    return df.sort_values(["subject", "item", "position"], kind="stable").reset_index(drop=True)


def word_list(table: pd.DataFrame) -> pd.DataFrame:
    """The distinct words (``item``, ``position``, ``word``, ``length``) in reading order."""
    return (table.drop_duplicates(["item", "position"])[["item", "position", "word", "length"]]
            .sort_values(["item", "position"], kind="stable").reset_index(drop=True))


class WordLevelDataset:
    """The ``wordlevel`` dataset plugin: one :class:`SubjectData` per subject (``modality="wordlevel"``).

    ``dataset.data`` is ``(n_words, n_responses)`` float32 over the distinct words in reading order (NaN
    where the subject has no valid value); ``dataset.meta["table"]`` is the subject's tidy rows
    (:func:`tidy_table`), ``meta["words"]`` the word list and ``meta["config"]`` the config. The
    stimulus holds the distinct words (timing: 0.3 s a word, not used).
    """

    Config = WordLevelConfig
    needs_features = False
    modality = MODALITY

    def load(self, config: WordLevelConfig, context: DatasetContext) -> list[SubjectData]:
        """The subjects' recordings for ``config``."""
        table = tidy_table(config)
        words = word_list(table)
        n = len(words)
        stim = Stimulus.from_words(list(words["word"]), np.arange(n) * 0.3, name=Path(config.path).stem)
        index = pd.MultiIndex.from_frame(words[["item", "position"]])
        out = []
        for subject, rows in table.groupby("subject", sort=True):
            resp = rows.set_index(["item", "position"])[list(config.responses)].reindex(index)
            ds = NeuralDataset(resp.to_numpy(np.float32), np.arange(n) * 0.3, list(config.responses),
                               subject=str(subject), modality=MODALITY,
                               meta={"table": rows.reset_index(drop=True), "words": words, "config": config})
            out.append(SubjectData(ds, stim))
        return out


WORDLEVEL = WordLevelDataset()


@dataclass(frozen=True)
class ExampleTable:
    """What :func:`write_example` wrote.

    Attributes
    ----------
    path : Path
        the table.
    slope : float
        planted response units (uV) per bit of surprisal.
    model : str
        the model whose surprisal was planted.
    context : str
        its context mode.
    n_subjects : int
        subjects.
    n_words : int
        distinct words.
    """

    path: Path
    slope: float
    model: str
    context: str
    n_subjects: int
    n_words: int


def example_sentences(n: int = 30) -> list[str]:
    """``n`` sentences of the package's default story (Aesop's fables, public domain)."""
    import re

    from brainlike.data import default_story

    text = " ".join(default_story().split())
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]
    return sentences[:n]


def write_example(path: str | Path, *, model: str = "stories260k", slope: float = 0.4, n_subjects: int = 12,
                  n_sentences: int = 30, noise: float = 1.0, reject_rate: float = 0.05,
                  context: Literal["reset", "continuous"] = "reset", seed: int = 0,
                  cache_dir: str | Path | None = None) -> ExampleTable:
    """Write a word-level table (an N400-like amplitude, ``n400`` in uV) with a planted surprisal slope.

    ``n400 = subject offset + slope * surprisal + 0.2 * length + 0.5 * baseline + noise`` per subject x
    word, where ``surprisal`` is ``model``'s (bits, :func:`brainlike.models.surprisal.word_predictions`
    with ``context``), ``baseline`` a per-trial N(0, 1) pre-word amplitude, ``noise`` N(0, ``noise``), and
    a fraction ``reject_rate`` of the trials is flagged in ``reject``. ``slope=0`` writes a null table.
    Columns: ``subject, item, position, word, n400, baseline, frequency, reject`` (``frequency``: a
    made-up log frequency, unrelated to the response). A word without a prediction (no BOS) gets no
    surprisal term.

    Returns
    -------
    ExampleTable
    """
    from brainlike.fileio import atomic_write
    from brainlike.models.surprisal import word_predictions

    rng = np.random.default_rng(seed)
    rows = []
    for i, sentence in enumerate(example_sentences(n_sentences)):
        for j, w in enumerate(sentence.split()):
            rows.append({"item": i + 1, "position": j + 1, "word": w})
    words = pd.DataFrame(rows)
    pred = word_predictions(model, list(words["word"]), groups=list(words["item"]), context=context,
                            cache_dir=cache_dir)
    s = np.nan_to_num(pred.surprisal, nan=0.0)
    length = word_length(words["word"])
    freq = rng.normal(0, 1, len(words))
    frames = []
    for k in range(n_subjects):
        baseline = rng.normal(0, 1, len(words))
        y = rng.normal(0, 1) + slope * s + 0.2 * length + 0.5 * baseline + rng.normal(0, noise, len(words))
        frames.append(words.assign(subject=f"sub-{k + 1:02d}", n400=y, baseline=baseline, frequency=freq,
                                   reject=(rng.random(len(words)) < reject_rate).astype(int)))
    table = pd.concat(frames, ignore_index=True)[["subject", "item", "position", "word", "n400", "baseline",
                                                  "frequency", "reject"]]
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))
    elif path.suffix.lower() == ".csv":
        atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: table.to_csv(tmp, sep="\t", index=False))
    return ExampleTable(path, float(slope), pred.model, context, n_subjects, len(words))
