"""Stimulus: the words a participant heard or read, with their timing.

A :class:`Stimulus` holds ``n_words`` words with onset and offset times in seconds from the start of the
recording. It can be read from a TSV file (columns ``word``, ``onset``, ``offset`` — or BIDS-style
``onset``, ``duration`` and a word column), from a Praat TextGrid (a word tier), or made from plain text
with a constant speech rate (for simulations and demos).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
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

    Attributes:
        words: ``n_words`` strings, in presentation order; punctuation attached to a word is kept.
        onsets: ``(n_words,)`` float64, seconds from recording start.
        offsets: ``(n_words,)`` float64, seconds; ``offsets[i] >= onsets[i]`` and
            ``offsets[i] <= onsets[i + 1]``.
        name: a label for tables and figures.
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
        path = Path(path)
        self.to_frame().to_csv(path, sep="\t", index=False)
        return path

    def subset(self, start: int, stop: int) -> "Stimulus":
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
    ) -> "Stimulus":
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
    ) -> "Stimulus":
        """Split ``text`` on whitespace and give the words a constant-rate timing.

        Args:
            words_per_second: speech rate (natural speech is about 2–3 words/s).
            start: onset of the first word, seconds.
            jitter: standard deviation of a random relative change of each word's duration (0 = none).
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
    def from_tsv(cls, path: str | Path, word_column: str | None = None, name: str | None = None) -> "Stimulus":
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
            raise StimulusError(f"{path}: no word column; expected one of {_WORD_COLUMNS} (columns: {list(df.columns)})")
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
    def from_textgrid(cls, path: str | Path, tier: str | None = None, name: str | None = None) -> "Stimulus":
        """Read a word tier of a Praat TextGrid (long or short text format).

        ``tier`` defaults to the first interval tier whose name contains "word" (else the first interval
        tier). Intervals whose text is empty or a silence mark (``sp``, ``sil``, ...) are skipped.
        """
        path = Path(path)
        if not path.exists():
            raise StimulusError(f"TextGrid file not found: {path}")
        raw = path.read_bytes()
        for enc in ("utf-8-sig", "utf-16", "latin-1"):
            try:
                content = raw.decode(enc)
                if "TextGrid" in content or "IntervalTier" in content:
                    break
            except UnicodeDecodeError:
                continue
        tiers = _parse_textgrid(content, path)
        if not tiers:
            raise StimulusError(f"{path}: no interval tier found")
        if tier is None:
            chosen = next((t for t in tiers if "word" in t[0].lower()), tiers[0])
        else:
            matches = [t for t in tiers if t[0] == tier]
            if not matches:
                raise StimulusError(f"{path}: no tier named {tier!r}; tiers: {[t[0] for t in tiers]}")
            chosen = matches[0]
        rows = [(xmin, xmax, text) for xmin, xmax, text in chosen[1] if text.strip().lower() not in SILENCE_MARKS]
        if not rows:
            raise StimulusError(f"{path}: tier {chosen[0]!r} has no words")
        on, off, words = zip(*rows)
        return cls(tuple(w.strip() for w in words), np.array(on), np.array(off), name or path.stem)


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
    back = np.flatnonzero(offsets < onsets)
    if back.size:
        i = int(back[0])
        raise StimulusError(f"stimulus {name!r}: {row(i)} ends ({offsets[i]}) before it starts ({onsets[i]})")
    nonmono = np.flatnonzero(np.diff(onsets) < 0)
    if nonmono.size:
        i = int(nonmono[0]) + 1
        raise StimulusError(
            f"stimulus {name!r}: onsets are not monotonic: {row(i)} starts at {onsets[i]} s, before the previous "
            f"word ({onsets[i - 1]} s)")
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
    # items: "ooTextFile", "TextGrid", xmin, xmax, n_tiers, then per tier: class, name, xmin, xmax, n, (xmin, xmax, text)*
    try:
        pos = 2
        pos += 2  # xmin xmax
        n_tiers = int(items[pos]); pos += 1
        tiers = []
        for _ in range(n_tiers):
            cls, name = str(items[pos]), str(items[pos + 1]); pos += 2
            pos += 2  # tier xmin xmax
            n = int(items[pos]); pos += 1
            if cls == "IntervalTier":
                intervals = []
                for _k in range(n):
                    xmin, xmax, text = float(items[pos]), float(items[pos + 1]), str(items[pos + 2])
                    intervals.append((xmin, xmax, text)); pos += 3
                tiers.append((name, intervals))
            else:  # TextTier: (time, mark) pairs
                pos += 2 * n
        return tiers
    except (IndexError, ValueError, TypeError) as exc:
        raise StimulusError(f"{path}: not a readable Praat TextGrid ({exc})") from None
