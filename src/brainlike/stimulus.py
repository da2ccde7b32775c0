"""Stimulus: the words a participant heard or read, with their timing.

A :class:`Stimulus` holds ``n_words`` words with onset and offset times in seconds from the start of the
recording. It can be read from a TSV file (columns ``word``, ``onset``, ``offset`` — or BIDS-style
``onset``, ``duration`` and a word column), from a Praat TextGrid (a word tier), or made from plain text
with a constant speech rate (for simulations and demos).

Files are read by one reader everywhere (the command line, specs, the organization analysis and the BIDS
loaders): :func:`read_word_timings` for word-timing files of every format the public datasets use, and
:func:`read_stimulus` (the same, plus plain ``.txt`` text with constant-rate timing). The constructors
:meth:`Stimulus.from_tsv` / :meth:`Stimulus.from_textgrid` are the strict readers of the canonical forms
(every row timed, no overlap at all).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.errors import StimulusError

#: Tokens in a TextGrid word tier that mark silence rather than words.
SILENCE_MARKS = frozenset({"", "sp", "sil", "<sil>", "{sl}", "{lg}", "{ns}", "<unk>", "#", "spn"})

_WORD_COLUMNS = ("word", "words", "text", "token", "trial_type", "value")


@dataclass(frozen=True)
class Stimulus:
    """Words with timing.

    Attributes
    ----------
    words : tuple of str (n_words,)
        In presentation order; punctuation attached to a word is kept.
    onsets : ndarray (n_words,) float64
        Seconds from recording start.
    offsets : ndarray (n_words,) float64
        Seconds; ``offsets[i] >= onsets[i]`` and ``offsets[i] <= onsets[i + 1]``.
    name : str
        A label for tables and figures.
    """

    words: tuple[str, ...]
    onsets: np.ndarray
    offsets: np.ndarray
    name: str = "stimulus"
    _hash: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        words = tuple(str(w) for w in self.words)
        onsets = np.asarray(self.onsets, dtype=np.float64).reshape(-1)
        offsets = np.asarray(self.offsets, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "onsets", onsets)
        object.__setattr__(self, "offsets", offsets)
        _validate(words, onsets, offsets, self.name)
        onsets.setflags(write=False)
        offsets.setflags(write=False)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def text(self) -> str:
        """The words joined by single spaces (the text fed to a language model)."""
        return " ".join(self.words)

    @property
    def duration(self) -> float:
        """Seconds from 0 to the last offset."""
        return float(self.offsets[-1])

    def hash(self) -> str:
        """A content hash (sha256 hex, 16 chars) of words and timing, used as a cache key."""
        if not self._hash:
            h = hashlib.sha256()
            h.update(json.dumps(self.words, ensure_ascii=False).encode())
            h.update(np.ascontiguousarray(self.onsets).tobytes())
            h.update(np.ascontiguousarray(self.offsets).tobytes())
            object.__setattr__(self, "_hash", h.hexdigest()[:16])
        return self._hash

    def text_hash(self) -> str:
        """A hash of the words only (features depend on the words, not on their timing)."""
        return hashlib.sha256(json.dumps(self.words, ensure_ascii=False).encode()).hexdigest()[:16]

    def to_frame(self) -> pd.DataFrame:
        """A table with columns ``word``, ``onset``, ``offset`` (seconds)."""
        return pd.DataFrame({"word": list(self.words), "onset": self.onsets, "offset": self.offsets})

    def to_tsv(self, path: str | Path) -> Path:
        """Write ``word, onset, offset`` as a TSV file (crash-safe, see :mod:`brainlike.fileio`)."""
        from brainlike.fileio import atomic_write

        return atomic_write(path, lambda p: self.to_frame().to_csv(p, sep="\t", index=False))

    def subset(self, start: int, stop: int) -> Stimulus:
        """Words ``start:stop`` (timing kept)."""
        return Stimulus(self.words[start:stop], self.onsets[start:stop], self.offsets[start:stop], self.name)

    # ------------------------------------------------------------------ readers
    @classmethod
    def from_words(
        cls,
        words: list[str],
        onsets: np.ndarray | list[float],
        offsets: np.ndarray | list[float] | None = None,
        name: str = "stimulus",
    ) -> Stimulus:
        """From lists; missing offsets become the next word's onset (last word: onset + 0.3 s)."""
        onsets = np.asarray(onsets, dtype=np.float64)
        if offsets is None:
            offsets = np.append(onsets[1:], onsets[-1] + 0.3) if len(onsets) else onsets
        return cls(tuple(words), onsets, np.asarray(offsets, dtype=np.float64), name)

    @classmethod
    def from_text(
        cls,
        text: str,
        words_per_second: float = 2.5,
        start: float = 0.5,
        name: str = "text",
        jitter: float = 0.0,
        seed: int = 0,
    ) -> Stimulus:
        """Split ``text`` on whitespace and give the words a constant-rate timing.

        Parameters
        ----------
        text : str
            Words separated by whitespace.
        words_per_second : float
            Speech rate (natural speech is about 2-3 words/s).
        start : float
            Onset of the first word, seconds.
        name : str
            The stimulus label.
        jitter : float
            Standard deviation of a random relative change of each word's duration (0 = none).
        seed : int
            Seed of the jitter.

        Returns
        -------
        Stimulus

        Raises
        ------
        StimulusError
            No words, or a rate that is not positive.
        """
        words = text.split()
        if not words:
            raise StimulusError("the text contains no words")
        if words_per_second <= 0:
            raise StimulusError(f"words_per_second must be positive, got {words_per_second}")
        rng = np.random.default_rng(seed)
        durations = np.full(len(words), 1.0 / words_per_second)
        if jitter > 0:
            durations *= np.exp(rng.normal(0.0, jitter, len(words)))
        onsets = start + np.concatenate([[0.0], np.cumsum(durations)[:-1]])
        return cls(tuple(words), onsets, onsets + durations * 0.9, name)

    @classmethod
    def from_tsv(cls, path: str | Path, word_column: str | None = None, name: str | None = None) -> Stimulus:
        """Read a tab-separated word timing file.

        Columns: ``onset`` (s) and either ``offset`` (s) or ``duration`` (s), plus a word column (``word``,
        ``text``, ``token``, ``trial_type`` or ``value``; or ``word_column``). BIDS ``events.tsv`` files
        work as they are. ``n/a`` is treated as missing and reported.
        """
        path = Path(path)
        if not path.exists():
            raise StimulusError(f"stimulus file not found: {path}")
        try:
            df = pd.read_csv(path, sep="\t", na_values=["n/a", "N/A", "NaN", "nan", ""],
                             keep_default_na=False, dtype={word_column: str} if word_column else None)
        except Exception as exc:  # pandas raises many kinds
            raise StimulusError(f"cannot read {path} as TSV: {exc}") from exc
        cols = {c.lower().strip(): c for c in df.columns}
        if "onset" not in cols:
            raise StimulusError(f"{path}: no 'onset' column (columns: {list(df.columns)})")
        wcol = word_column or next((cols[c] for c in _WORD_COLUMNS if c in cols), None)
        if wcol is None or wcol not in df.columns:
            raise StimulusError(f"{path}: no word column; expected one of {_WORD_COLUMNS} "
                                f"(columns: {list(df.columns)})")
        onsets = pd.to_numeric(df[cols["onset"]], errors="coerce").to_numpy(np.float64)
        if "offset" in cols:
            offsets = pd.to_numeric(df[cols["offset"]], errors="coerce").to_numpy(np.float64)
        elif "duration" in cols:
            offsets = onsets + pd.to_numeric(df[cols["duration"]], errors="coerce").to_numpy(np.float64)
        else:
            raise StimulusError(f"{path}: needs an 'offset' or a 'duration' column (columns: {list(df.columns)})")
        words = [("" if (isinstance(w, float) and math.isnan(w)) else str(w).strip()) for w in df[wcol].tolist()]
        try:
            return cls(tuple(words), onsets, offsets, name or path.stem)
        except StimulusError as exc:
            # rows in the file are 1-based and follow the header line
            raise StimulusError(f"{path}: {exc} (file line = row + 1 for the header)") from None

    @classmethod
    def from_textgrid(cls, path: str | Path, tier: str | None = None, name: str | None = None) -> Stimulus:
        """Read a word tier of a Praat TextGrid (long or short text format).

        ``tier`` defaults to the first interval tier whose name contains "word" (``word``, ``words``,
        ``Speaker - words``); a TextGrid without such a tier is an error naming the tiers it has (a phones
        tier is never read as words unless named by ``tier``). Intervals whose text is empty or a silence
        mark (``sp``, ``sil``, ...) are skipped.
        """
        path = Path(path)
        tier_name, intervals = _textgrid_tier(path, tier)
        rows = [(xmin, xmax, text) for xmin, xmax, text in intervals if text.strip().lower() not in SILENCE_MARKS]
        if not rows:
            raise StimulusError(f"{path}: tier {tier_name!r} has no words")
        on, off, words = zip(*rows)
        return cls(tuple(w.strip() for w in words), np.array(on), np.array(off), name or path.stem)


def _check_order(onsets: np.ndarray, offsets: np.ndarray, row: Callable[[int], str], where: str,
                 hint: str = "") -> None:
    """Raise at the first word that ends before it starts, or starts before the previous word.

    Parameters
    ----------
    onsets, offsets : ndarray (n_words,) float64
        Word times, seconds.
    row : callable
        Word index -> how the message names it (``"row 3 (word 'cat')"``).
    where : str
        What the message starts with (the stimulus or the file).
    hint : str
        Appended to the message of unsorted onsets.

    Raises
    ------
    StimulusError
        Naming the first offending word and its times.
    """
    back = np.flatnonzero(offsets < onsets)
    if back.size:
        i = int(back[0])
        raise StimulusError(f"{where}: {row(i)} ends ({offsets[i]} s) before it starts ({onsets[i]} s)")
    unsorted = np.flatnonzero(np.diff(onsets) < 0)
    if unsorted.size:
        i = int(unsorted[0]) + 1
        raise StimulusError(f"{where}: onsets are not monotonic: {row(i)} starts at {onsets[i]} s, before the "
                            f"previous word ({onsets[i - 1]} s){hint}")


def _validate(words: tuple[str, ...], onsets: np.ndarray, offsets: np.ndarray, name: str) -> None:
    n = len(words)
    if n == 0:
        raise StimulusError(f"stimulus {name!r} has no words")
    if len(onsets) != n or len(offsets) != n:
        raise StimulusError(f"stimulus {name!r}: {n} words but {len(onsets)} onsets and {len(offsets)} offsets")

    def row(i: int) -> str:
        return f"row {i + 1} (word {words[i]!r})"

    for i, w in enumerate(words):
        if not w.strip():
            raise StimulusError(f"stimulus {name!r}: {row(i)} is empty")
        if any(ch.isspace() for ch in w.strip()):
            raise StimulusError(f"stimulus {name!r}: {row(i)} contains whitespace; give one word per row")
    bad = np.flatnonzero(~np.isfinite(onsets) | ~np.isfinite(offsets))
    if bad.size:
        raise StimulusError(f"stimulus {name!r}: {row(int(bad[0]))} has a missing or non-finite onset/offset")
    neg = np.flatnonzero(onsets < 0)
    if neg.size:
        raise StimulusError(f"stimulus {name!r}: {row(int(neg[0]))} has a negative onset {onsets[neg[0]]}")
    _check_order(onsets, offsets, row, f"stimulus {name!r}")
    tol = 1e-6
    overlap = np.flatnonzero(offsets[:-1] > onsets[1:] + tol)
    if overlap.size:
        i = int(overlap[0])
        raise StimulusError(
            f"stimulus {name!r}: {row(i + 1)} starts at {onsets[i + 1]} s, before the previous word ends "
            f"({offsets[i]} s): overlapping words")


_TG_TIER = re.compile(r'class\s*=\s*"IntervalTier"\s*name\s*=\s*"(?P<name>[^"]*)"', re.S)


def _parse_textgrid(content: str, path: Path) -> list[tuple[str, list[tuple[float, float, str]]]]:
    """Parse interval tiers of a TextGrid (long or short format) into (name, [(xmin, xmax, text)])."""
    # Tokenise: quoted strings (with "" escapes), numbers, and flags; this covers both formats.
    content = re.sub(r"\[\s*\d*\s*\]", " ", content)  # long format: drop `item [1]:` / `intervals [3]:` indices
    tokens = re.findall(r'"((?:[^"]|"")*)"|([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)|(<exists>|<absent>)', content)
    items: list[str | float] = []
    for s, num, _flag in tokens:
        if num:
            items.append(float(num))
        elif _flag:
            continue
        else:
            items.append(s.replace('""', '"'))
    # items: "ooTextFile", "TextGrid", xmin, xmax, n_tiers,
    # then per tier: class, name, xmin, xmax, n, (xmin, xmax, text)*
    try:
        pos = 2
        pos += 2  # xmin xmax
        n_tiers = int(items[pos])
        pos += 1
        tiers = []
        for _ in range(n_tiers):
            cls, name = str(items[pos]), str(items[pos + 1])
            pos += 2
            pos += 2  # tier xmin xmax
            n = int(items[pos])
            pos += 1
            if cls == "IntervalTier":
                intervals = []
                for _k in range(n):
                    xmin, xmax, text = float(items[pos]), float(items[pos + 1]), str(items[pos + 2])
                    intervals.append((xmin, xmax, text))
                    pos += 3
                tiers.append((name, intervals))
            else:  # TextTier: (time, mark) pairs
                pos += 2 * n
        return tiers
    except (IndexError, ValueError, TypeError) as exc:
        raise StimulusError(f"{path}: not a readable Praat TextGrid ({exc})") from None


def _textgrid_tier(path: Path, tier: str | None) -> tuple[str, list[tuple[float, float, str]]]:
    """The chosen interval tier of a TextGrid: (name, [(xmin, xmax, text)])."""
    if not path.exists():
        raise StimulusError(f"TextGrid file not found: {path}")
    raw = path.read_bytes()
    content = None
    for enc in ("utf-8-sig", "utf-16", "latin-1"):  # Praat writes UTF-8 or UTF-16; old files latin-1
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
        if "TextGrid" in text or "IntervalTier" in text:
            content = text
            break
    if content is None:
        raise StimulusError(f"{path}: not a Praat TextGrid (no 'TextGrid' header in UTF-8, UTF-16 or latin-1)")
    tiers = _parse_textgrid(content, path)
    if not tiers:
        raise StimulusError(f"{path}: no interval tier found")
    names = [t[0] for t in tiers]
    if tier is not None:
        matches = [t for t in tiers if t[0] == tier]
        if not matches:
            raise StimulusError(f"{path}: no tier named {tier!r}; tiers: {names}")
        return matches[0]
    chosen = next((t for t in tiers if "word" in t[0].lower()), None)
    if chosen is None:
        raise StimulusError(
            f"{path}: no word tier (no interval tier named like 'words'); tiers found: {names}. Name the tier that "
            "holds the words with tier='<name>' (Python: read_stimulus(path, tier=...)), or rename it to 'words'")
    return chosen


# ------------------------------------------------------------------------------------ the one file reader
_WORD_COLS = ("word", "words", "text", "token", "trial_type", "value")
_NA = ["n/a", "N/A", "NaN", "nan", ""]

#: overlaps between consecutive words up to this many seconds are clipped (forced aligners overlap words by
#: a frame or two); larger ones are an error naming the row.
MAX_OVERLAP_S = 0.05


def read_text_file(path: str | Path, encoding: str = "utf-8", what: str = "text file") -> str:
    """The text of a file, with a clear error for a missing file or bytes that are not ``encoding``.

    Raises
    ------
    StimulusError
        The file is missing, or a byte is not valid in ``encoding`` (the message gives the byte's offset
        and line, and how to convert the file or pass another encoding).
    """
    path = Path(path)
    if not path.is_file():
        raise StimulusError(f"{what} not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise StimulusError(f"unknown text encoding {encoding!r} for {path}") from None
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise StimulusError(
            f"{path} is not {encoding} text: byte 0x{raw[exc.start]:02x} at offset {exc.start} (line {line}) is "
            f"invalid; convert the file (e.g. `iconv -f latin1 -t utf-8 {path.name} > {path.stem}-utf8"
            f"{path.suffix}`) or pass its encoding (encoding='latin-1')") from None
    return text[1:] if text.startswith("\ufeff") else text


def read_word_timings(
    path: str | Path,
    *,
    onset_shift: float = 0.0,
    name: str | None = None,
    word_column: str | None = None,
    tier: str | None = None,
    encoding: str = "utf-8",
    max_overlap: float = MAX_OVERLAP_S,
) -> Stimulus:
    """Read words with onset/offset times from any of the public datasets' formats (the one reader).

    * ``.TextGrid`` — Praat (LeBel ds003020 ``derivative/TextGrids/<story>.TextGrid``); the word tier (a
      tier named like ``words``, or ``tier``); a TextGrid without one is an error naming its tiers.
    * ``.tsv`` — BIDS ``events.tsv`` with a word column, or any TSV with ``onset`` and ``offset`` or
      ``duration``.
    * ``.csv`` — a table with a header (``word,start,end`` as in Podcast's ``podcast_transcript.csv``, or
      ``word,onset,offset``), or Gentle's header-less ``align.csv`` (``word,aligned_word,onset,offset``,
      as in Narratives ``stimuli/gentle/<task>/align.csv``).
    * ``.json`` — Gentle ``align.json`` (``{"words": [{"word", "start", "end", "case"}, ...]}``).

    Policy (the same for every format and every caller): words without an onset (not found by the
    aligner) or without text are dropped and counted in a ``warnings.warn``; a missing offset becomes the
    onset; an offset before its onset, onsets out of order, or an overlap of more than ``max_overlap``
    seconds with the next word are errors naming the row; smaller overlaps are clipped to the next onset
    (counted in a warning). Times are then shifted by ``onset_shift`` seconds onto the recording's clock.

    Parameters
    ----------
    path : str or Path
        The file.
    onset_shift : float
        Seconds added to every time.
    name : str, optional
        The stimulus label (default the file's stem).
    word_column : str, optional
        The table column with the words (default ``word``/``words``/``text``/``token``/``trial_type``/
        ``value``).
    tier : str, optional
        The TextGrid tier with the words.
    encoding : str
        Text encoding of ``.tsv`` / ``.csv`` / ``.json`` files.
    max_overlap : float
        The largest overlap (s) between consecutive words that is clipped.

    Returns
    -------
    Stimulus
        The timed words, ``onsets``/``offsets`` in seconds, ``(n_words,)`` each.

    Raises
    ------
    StimulusError
        Missing file, unknown format, undecodable bytes, no word/time columns, bad timing.
    """
    path = Path(path)
    if not path.exists():
        raise StimulusError(f"word-timing file not found: {path}")
    label = name or path.stem
    suffix = path.name.lower()
    if suffix.endswith(".textgrid"):
        _, intervals = _textgrid_tier(path, tier)
        rows = [(a, b, t) for a, b, t in intervals if t.strip().lower() not in SILENCE_MARKS]
        words = [t for _, _, t in rows]
        on = np.array([a for a, _, _ in rows], dtype=float)
        off = np.array([b for _, b, _ in rows], dtype=float)
    elif suffix.endswith(".json"):
        words, on, off = _read_gentle_json(path, encoding)
    elif suffix.endswith(".tsv") or suffix.endswith(".csv"):
        words, on, off = _read_word_table(path, word_column, encoding)
    else:
        raise StimulusError(f"{path}: unknown word-timing format; expected .TextGrid, .tsv, .csv or Gentle .json "
                            "(or .txt plain text)")
    return _timed_stimulus(words, on, off, onset_shift, label, path, max_overlap)


def read_stimulus(
    path: str | Path,
    *,
    words_per_second: float = 2.5,
    jitter: float = 0.0,
    seed: int = 0,
    encoding: str = "utf-8",
    word_column: str | None = None,
    tier: str | None = None,
    name: str | None = None,
) -> Stimulus:
    """A Stimulus from any word-timing file (:func:`read_word_timings`) or a ``.txt`` text.

    A ``.txt`` file is plain text given a constant-rate timing (:meth:`Stimulus.from_text` at
    ``words_per_second``, with a seeded ``jitter`` of word durations); it must be ``encoding`` (UTF-8 by
    default; a latin-1 file is an error that says where the first bad byte is and how to convert it, or
    pass ``encoding="latin-1"``).

    Raises
    ------
    StimulusError
        See :func:`read_word_timings` and :func:`read_text_file`.
    """
    path = Path(path)
    if path.suffix.lower() == ".txt":
        text = read_text_file(path, encoding, what="text file")
        return Stimulus.from_text(text, words_per_second=words_per_second, jitter=jitter, seed=seed,
                                  name=name or path.stem)
    if not path.exists():
        raise StimulusError(f"stimulus file not found: {path}")
    return read_word_timings(path, word_column=word_column, tier=tier, name=name, encoding=encoding)


def _read_gentle_json(path: Path, encoding: str):
    text = read_text_file(path, encoding, what="word-timing file")
    try:
        doc = json.loads(text)
        entries = doc["words"]
        if not isinstance(entries, list):
            raise TypeError("'words' is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise StimulusError(f"{path}: not a Gentle alignment (expected a 'words' list): {exc}") from None
    words, on, off = [], [], []
    for i, e in enumerate(entries, start=1):
        if not isinstance(e, dict):
            raise StimulusError(f"{path}: words[{i - 1}] is not an object")
        ok = e.get("case", "success") == "success" and "start" in e and "end" in e
        words.append(str(e.get("word", "")))
        try:
            on.append(float(e["start"]) if ok else math.nan)
            off.append(float(e["end"]) if ok else math.nan)
        except (TypeError, ValueError):
            raise StimulusError(f"{path}: words[{i - 1}] has a start/end that is not a number") from None
    return words, np.array(on, dtype=float), np.array(off, dtype=float)


def _read_word_table(path: Path, word_column: str | None, encoding: str):
    sep = "\t" if path.name.lower().endswith(".tsv") else ","
    text = read_text_file(path, encoding, what="word-timing file")

    def parse(**kw):
        try:
            return pd.read_csv(io.StringIO(text), sep=sep, na_values=_NA, keep_default_na=False, dtype=str, **kw)
        except Exception as exc:  # pandas raises many kinds
            raise StimulusError(f"cannot read {path} as a {'TSV' if sep == chr(9) else 'CSV'} table: {exc}") from None

    df = parse()
    cols = {str(c).lower().strip(): c for c in df.columns}
    has_header = any(k in cols for k in ("onset", "start", "offset", "end", "duration")) or word_column
    if not has_header:
        # Gentle align.csv: word, aligned word, onset, offset (no header)
        df = parse(header=None)
        if df.shape[1] < 4:
            raise StimulusError(
                f"{path}: no header with onset/start columns, and not a Gentle align.csv "
                f"(4 columns: word, aligned word, onset, offset); found {df.shape[1]} columns")
        df = df.iloc[:, :4]
        df.columns = ["word", "aligned", "onset", "offset"]
        cols = {c: c for c in df.columns}
    on_col = cols.get("onset") or cols.get("start")
    if on_col is None:
        raise StimulusError(f"{path}: no 'onset' or 'start' column (columns: {list(df.columns)})")
    wcol = word_column or next((cols[c] for c in _WORD_COLS if c in cols), None)
    if wcol is None or wcol not in df.columns:
        raise StimulusError(f"{path}: no word column; expected one of {_WORD_COLS} (columns: {list(df.columns)})")

    def numbers(col) -> np.ndarray:
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(float)
        bad = np.flatnonzero(np.isnan(vals) & df[col].notna().to_numpy())
        if bad.size:
            i = int(bad[0])
            raise StimulusError(f"{path}: row {i + 1}: {col!r} is {df[col].iloc[i]!r}, not a number of seconds")
        return vals

    on = numbers(on_col)
    if "offset" in cols or "end" in cols:
        off = numbers(cols.get("offset") or cols.get("end"))
    elif "duration" in cols:
        off = on + numbers(cols["duration"])
    else:
        raise StimulusError(f"{path}: needs an offset/end or a duration column (columns: {list(df.columns)})")
    words = ["" if not isinstance(w, str) else w.strip() for w in df[wcol].tolist()]
    return words, on, off


def _timed_stimulus(words, on, off, shift: float, name: str, path: Path, max_overlap: float) -> Stimulus:
    """Apply the one timing policy (see :func:`read_word_timings`) to parsed rows."""
    words = [str(w).strip() for w in words]
    on = np.asarray(on, dtype=float)
    off = np.asarray(off, dtype=float)
    keep = np.isfinite(on) & np.array([bool(w) for w in words], dtype=bool)
    dropped = int((~keep).sum())
    if dropped:
        first = int(np.flatnonzero(~keep)[0])
        warnings.warn(f"{path}: {dropped} of {len(words)} words have no timing (not aligned) or no text and were "
                      f"dropped (first: row {first + 1})", stacklevel=3)
    rows = np.flatnonzero(keep) + 1  # 1-based rows of the file (after a header)
    words = [w for w, k in zip(words, keep) if k]
    on, off = on[keep], off[keep]
    if not words:
        raise StimulusError(f"{path}: no timed words")
    off = np.where(np.isfinite(off), off, on)

    def row(i: int) -> str:
        return f"row {rows[i]} (word {words[i]!r})"

    _check_order(on, off, row, str(path), "; the words must be in the order they were heard")
    overlap = off[:-1] - on[1:]
    big = np.flatnonzero(overlap > max_overlap + 1e-9)
    if big.size:
        i = int(big[0])
        raise StimulusError(
            f"{path}: {row(i + 1)} starts at {on[i + 1]} s, {overlap[i]:.3f} s before the previous word ends "
            f"({off[i]} s): overlapping words (overlaps up to max_overlap={max_overlap} s are clipped; fix the "
            "times or raise max_overlap)")
    clip = np.flatnonzero(overlap > 1e-9)
    if clip.size:
        warnings.warn(f"{path}: {clip.size} word offsets overlapped the next word by at most "
                      f"{overlap[clip].max() * 1000:.0f} ms and were clipped to its onset", stacklevel=3)
        off = off.copy()
        off[clip] = on[clip + 1]
    spaced = [i for i, w in enumerate(words) if any(ch.isspace() for ch in w)]
    if spaced:
        warnings.warn(f"{path}: {len(spaced)} entries hold several words (first: {row(spaced[0])}); their spaces "
                      "became '_' (one timed entry is one word)", stacklevel=3)
        words = ["_".join(w.split()) for w in words]
    on, off = on + shift, off + shift
    if on[0] < 0:
        raise StimulusError(f"{path}: shifting by {shift} s puts the first word at {on[0]:.2f} s, before the recording")
    try:
        return Stimulus(tuple(words), on, off, name)
    except StimulusError as exc:
        raise StimulusError(f"{path}: {exc}") from None
