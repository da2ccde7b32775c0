"""Skill-Mix grading: the rubric prompt, robust parsing of a grader's answer, and per-item scores.

Rubric (Yu et al. 2023, adapted): one point per requested skill that the text clearly uses, one point if it
stays on the topic, one point if it respects the sentence limit, one point if it makes sense: ``k + 3``
points. The grader is asked for a JSON object; :func:`parse_grade` also accepts JSON in code fences or
surrounded by prose, single quotes, trailing commas, Python ``True``/``False``, yes/no values, nested
``{"skills": {...}}`` or flat keys, lists of ``{"skill": ..., "used": ...}``, case and punctuation
differences in skill names, and ``name: 1`` lines. An answer that does not give every point is
*ungradable* (kept, with the reason, and excluded from the averages unless asked otherwise).
"""
from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field

from brainlike.analyses.skills.clients import Messages

RUBRIC_KEYS = ("topic", "sentence_limit", "makes_sense")

_ALIASES = {
    "topic": ("topic", "on_topic", "ontopic", "topic_kept", "topickept", "stays_on_topic", "relevant", "topic_point"),
    "sentence_limit": ("sentence_limit", "sentencelimit", "sentences", "length", "limit", "within_limit",
                       "sentence_count_ok", "short_enough", "sentence_limit_point"),
    "makes_sense": ("makes_sense", "makessense", "sense", "coherent", "coherence", "sensible", "meaningful",
                    "makes_sense_point"),
}
_YES = {"1", "yes", "y", "true", "t", "used", "pass", "passed", "present", "correct", "ok", "✓", "✔", "1.0",
        "1 point", "one", "full"}
_NO = {"0", "no", "n", "false", "f", "unused", "not used", "fail", "failed", "absent", "missing", "incorrect",
       "✗", "✘", "x", "0.0", "0 points", "0 point", "zero", "none", "null"}


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", str(s).lower())


def grading_messages(answer: str, skills: list[tuple[str, str]], topic: str, max_sentences: int) -> Messages:
    """The grader's prompt.

    Parameters
    ----------
    answer : str
        the generated text (the part after ``Answer:`` when present).
    skills : list[tuple[str, str]]
        ``(name, definition)`` of the requested skills.
    topic : str
        the requested topic.
    max_sentences : int
        the sentence limit the text had to respect.
    """
    defs = "\n".join(f"- {n}: {d}" for n, d in skills)
    keys = ", ".join(f'"{n}": 0 or 1' for n, _ in skills)
    user = (f"Grade the text between <text> and </text>. It was written to illustrate these skills:\n{defs}\n"
            f"in the context of the topic \"{topic}\", in at most {max_sentences} sentence"
            f"{'s' if max_sentences != 1 else ''}.\n\n<text>\n{answer.strip()}\n</text>\n\n"
            "Give 1 point per skill that the text clearly uses (0 if it is absent or only named), 1 point if the "
            "text is about the topic, 1 point if it respects the sentence limit, and 1 point if it makes sense "
            "as natural text.\nReply with only this JSON object, no other text:\n"
            f'{{"skills": {{{keys}}}, "topic": 0 or 1, "sentence_limit": 0 or 1, "makes_sense": 0 or 1}}')
    return [{"role": "system", "content": "You are a strict, fair grader of short texts. You answer in JSON."},
            {"role": "user", "content": user}]


@dataclass
class ParsedGrade:
    """A grader answer turned into points.

    Attributes
    ----------
    skill_points : dict[str, int | None]
        requested skill name -> 0/1, or None when the grader did not say.
    topic, sentence_limit, makes_sense : int | None
        0/1 or None.
    ungradable : bool
        True when any point is missing.
    reason : str
        why it is ungradable ("" otherwise).
    method : str
        how it was parsed: ``"json"``, ``"json-repaired"``, ``"lines"`` or ``"none"``.
    """

    skill_points: dict[str, int | None]
    topic: int | None = None
    sentence_limit: int | None = None
    makes_sense: int | None = None
    ungradable: bool = True
    reason: str = ""
    method: str = "none"
    extra: dict = field(default_factory=dict)


def to_point(value) -> int | None:
    """A grader's value as a point: 1, 0 or None (unrecognised)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            return None
        if value in (0, 1):
            return int(value)
        if 0 < value < 1:
            return int(value >= 0.5)
        return None
    if isinstance(value, dict):
        for key in ("used", "point", "points", "score", "value", "present", "pass"):
            if key in value:
                return to_point(value[key])
        return None
    if isinstance(value, str):
        v = value.strip().lower().rstrip(".!")
        if v in _YES:
            return 1
        if v in _NO:
            return 0
        m = re.match(r"^\s*(yes|no|true|false|[01](?:\.0)?)\b", v)
        if m:
            return to_point(m.group(1))
        m = re.match(r"^\s*([01])\s*/\s*1\b", v)
        if m:
            return int(m.group(1))
    return None


def _json_candidates(text: str):
    """Dicts decoded from ``text``: first as-is, then after light repairs. Yields ``(dict, repaired)``."""
    t = re.sub(r"```(?:json|JSON)?", "\n", text)
    dec = json.JSONDecoder()
    for repaired, src in ((False, t), (True, _repair(t))):
        for m in re.finditer(r"[{\[]", src):
            try:
                obj, _ = dec.raw_decode(src[m.start():])
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj, repaired
            elif isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
                yield {"skills": obj}, repaired


def _repair(text: str) -> str:
    t = text
    t = re.sub(r"\bTrue\b", "true", t)
    t = re.sub(r"\bFalse\b", "false", t)
    t = re.sub(r"\bNone\b", "null", t)
    t = re.sub(r"'([^'\n]*?)'(\s*[:,}\]])", r'"\1"\2', t)      # 'key': / 'value',
    t = re.sub(r"([{,]\s*)'([^'\n]*?)'", r'\1"\2"', t)
    t = re.sub(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_ \-]*?)\s*:", lambda m: f'{m.group(1)}"{m.group(2).strip()}":', t)
    t = re.sub(r",\s*([}\]])", r"\1", t)                         # trailing commas
    t = re.sub(r":\s*(yes|no|used|unused)\b", r': "\1"', t, flags=re.I)
    return t


def _match_skill(key: str, names: list[str]) -> str | None:
    nk = _norm(key)
    normed = {_norm(n): n for n in names}
    if nk in normed:
        return normed[nk]
    close = difflib.get_close_matches(nk, list(normed), n=1, cutoff=0.85)
    return normed[close[0]] if close else None


def _rubric_key(key: str) -> str | None:
    nk = _norm(key)
    for target, aliases in _ALIASES.items():
        if nk in {_norm(a) for a in aliases}:
            return target
    return None


def _fill_from_dict(obj: dict, names: list[str], grade: ParsedGrade) -> None:
    for key, value in obj.items():
        nk = _norm(key)
        if nk in {"skills", "skill", "skillpoints", "skillsused", "points", "scores"} and isinstance(value, dict):
            _fill_from_dict(value, names, grade)
            continue
        if nk in {"skills", "skillpoints", "skillsused"} and isinstance(value, list):
            for entry in value:
                if isinstance(entry, dict):
                    nm = entry.get("skill", entry.get("name"))
                    if nm is not None:
                        s = _match_skill(str(nm), names)
                        if s is not None and grade.skill_points.get(s) is None:
                            grade.skill_points[s] = to_point(entry)
                elif isinstance(entry, str):  # a list of the skills used
                    s = _match_skill(entry, names)
                    if s is not None:
                        grade.skill_points[s] = 1
            if all(isinstance(e, str) for e in value):
                for s in names:
                    if grade.skill_points.get(s) is None:
                        grade.skill_points[s] = 0
            continue
        target = _rubric_key(key)
        if target is not None:
            if getattr(grade, target) is None:
                setattr(grade, target, to_point(value))
            continue
        s = _match_skill(key, names)
        if s is not None and grade.skill_points.get(s) is None:
            grade.skill_points[s] = to_point(value)


def _split_line(line: str) -> tuple[str, str] | None:
    t = re.sub(r"^\s*(?:[-*•>]|\d+[.)])\s*", "", line).strip()
    for sep in (":", "=", " - ", " – ", " — "):
        if sep in t:
            key, value = t.split(sep, 1)
            key = re.sub(r"^(?:points?|score)\s+for\s+", "", key.strip().strip("\"'`*_ "), flags=re.I)
            return key.strip().strip("\"'`*_ "), value.strip().strip("\"'`*_ ")
    return None


def _fill_from_lines(text: str, names: list[str], grade: ParsedGrade) -> bool:
    found = False
    for line in text.splitlines():
        kv = _split_line(line)
        if kv is None or not kv[0] or len(kv[0]) > 80:
            continue
        key, value = kv
        point = to_point(re.split(r"[(,;]", value)[0].strip())
        if point is None:
            continue
        target = _rubric_key(key)
        if target is not None and getattr(grade, target) is None:
            setattr(grade, target, point)
            found = True
            continue
        s = _match_skill(key, names)
        if s is not None and grade.skill_points.get(s) is None:
            grade.skill_points[s] = point
            found = True
    return found


def _missing(grade: ParsedGrade) -> list[str]:
    miss = [s for s, v in grade.skill_points.items() if v is None]
    miss += [k for k in RUBRIC_KEYS if getattr(grade, k) is None]
    return miss


def parse_grade(text: str, skill_names: list[str]) -> ParsedGrade:
    """Parse a grader's answer for the requested skills (see the module docstring for what is accepted)."""
    names = list(skill_names)
    best: ParsedGrade | None = None
    text = text if isinstance(text, str) else ""
    for obj, repaired in _json_candidates(text):
        g = ParsedGrade({n: None for n in names}, method="json-repaired" if repaired else "json")
        _fill_from_dict(obj, names, g)
        if best is None or len(_missing(g)) < len(_missing(best)):
            best = g
        if not _missing(g):
            break
    if best is None or _missing(best):
        g = ParsedGrade({n: None for n in names}, method="lines")
        if _fill_from_lines(text, names, g) and (best is None or len(_missing(g)) < len(_missing(best))):
            best = g
    if best is None:
        return ParsedGrade({n: None for n in names}, ungradable=True, method="none",
                           reason="empty answer" if not text.strip() else "no JSON object or 'name: value' lines")
    miss = _missing(best)
    best.ungradable = bool(miss)
    best.reason = f"missing: {', '.join(miss)}" if miss else ""
    return best


#: inflections allowed after the whole last word of a skill name
_WORD_SUFFIXES = ("s", "es", "ed", "ing")
#: derivations allowed after the whole last word when it is longer than 3 letters ("metaphorical"; not "punic")
_WORD_DERIVATIONS = ("al", "ally", "ic", "ical", "ically", "ly")
#: after a final "y" is dropped ("irony" -> "iron-"): only endings that replace the "y" ("ironies", "ironic"),
#: never ones that attach to a bare word ("irons", "ironed", "ironing" are about irons, not irony)
_Y_SUFFIXES = ("ies", "ied", "ic", "ical", "ically", "ial")
#: after a final "e" is dropped ("hyperbole" -> "hyperbol-", "slope" -> "slop-")
_E_SUFFIXES = ("ic", "ical", "ically", "ing")


def _alternatives(stem: str, suffixes) -> str:
    return re.escape(stem) + "(?:" + "|".join(sorted(suffixes, key=len, reverse=True)) + ")"


def skill_name_pattern(name: str) -> re.Pattern:
    """Regex that finds ``name`` written out in a text (the Skill-Mix rule: do not name the skill).

    Only the part of the name before a parenthesis counts ("complex question (loaded ...)" -> "complex
    question"), as in the authors' reference code. Whole words, case-insensitive, the words of the name
    separated by spaces or hyphens; the last word may carry a simple inflection or derivation:

    * the whole word plus ``-s -es -ed -ing`` and, for words of more than 3 letters, ``-al -ally -ic -ical
      -ically -ly`` ("metaphors", "metaphorical", "puns", not "punic"; a final consonant after a single vowel
      may double before ``-ed -ing -er``: "punning");
    * a final ``y`` replaced by ``-ies -ied -ic -ical -ically -ial`` ("ironies", "ironic", "fallacies");
    * a final ``e`` replaced by ``-ic -ical -ically -ing`` ("hyperbolic").

    So "irony" matches "ironic" but not "irons" or "ironing"; "pun" matches "puns" but not "punch" or
    "punchline"; "simile" not "similar"; "red herring" matches "red-herrings". Derivations that change
    the stem ("personify" for "personification") are not matched.
    """
    core = name.split("(")[0]
    words = [w for w in re.split(r"[\s\-]+", core.strip().lower()) if w]
    if not words:
        raise ValueError(f"empty skill name {name!r}")
    last = words[-1]
    alts = [_alternatives(last, ("",) + _WORD_SUFFIXES + (_WORD_DERIVATIONS if len(last) > 3 else ()))]
    if len(last) > 3 and last.endswith("y"):
        alts.append(_alternatives(last[:-1], _Y_SUFFIXES))
    if len(last) > 3 and last.endswith("e"):
        alts.append(_alternatives(last[:-1], _E_SUFFIXES) + "|" + re.escape(last) + "d")
    if re.search(r"[^aeiou][aeiou][bdgklmnprt]$", last):
        alts.append(_alternatives(last + last[-1], ("ed", "ing", "er")))
    head = "".join(re.escape(w) + r"[\s\-]+" for w in words[:-1])
    return re.compile(r"(?<![\w])" + head + "(?:" + "|".join(alts) + r")(?![\w])", re.IGNORECASE)


def named_skills(text: str, names: list[str]) -> list[str]:
    """The skills of ``names`` whose name the text writes out (see :func:`skill_name_pattern`).

    Skill-Mix forbids naming the skills; such a skill gets 0 points whatever the grader says.
    """
    text = text or ""
    return [n for n in names if skill_name_pattern(n).search(text)]


def count_sentences(text: str) -> int:
    """Sentences in ``text`` (the rule the sentence limit is checked with, in code).

    A sentence is a run of text ended by ``.``, ``!`` or ``?`` (possibly followed by closing quotes or
    brackets) and then whitespace, or by the end of the text; runs without a letter or digit are not
    counted; the dots of ``Mr. Mrs. Ms. Dr. St. Prof. vs. etc. e.g. i.e.`` and of decimals (``3.5``) do not
    end a sentence; ``...`` followed by a space does. ``"It rained. We ran!"`` has 2.
    """
    t = re.sub(r"\b(Mr|Mrs|Ms|Dr|St|Prof|vs|etc|e\.g|i\.e)\.", r"\1", text.strip())
    parts = [p for p in re.split(r"(?<=[.!?])[\"')\]]*\s+", t) if re.search(r"\w", p)]
    return len(parts)


def extract_answer(response: str) -> str:
    """The text the generator was asked to put after ``Answer:``.

    (up to ``Explanation:``, on a new line or after a space; the explanation names the skills and must not be graded),
    else all of it.
    """
    m = re.search(r"answer\s*:\s*(.*?)(?:\s\**explanation\**\s*:|$)", response, flags=re.I | re.S)
    out = m.group(1) if m else response
    return out.strip().strip('"').strip()


@dataclass
class ItemScores:
    """Scores of one graded item (NaN when ungradable), with Skill-Mix's metrics (Yu et al. 2023, Sec. 3).

    ``points`` out of ``max_points = k + 3``; ``score = points / max_points``;
    ``full_marks`` ("Ratio of Full Marks": 1 if all ``k + 3`` points are earned);
    ``all_skills`` ("Ratio of All Skills": 1 if all ``k`` skill points are earned and at least 2 of the 3
    other points -- topic, sentence limit, makes sense);
    ``skill_fraction`` ("Skill Fraction": the fraction of the ``k`` skill points earned if all 3 other points
    are, else 0).
    """

    points: float
    max_points: int
    score: float
    full_marks: float
    all_skills: float
    skill_fraction: float


def item_scores(grade: ParsedGrade, k: int) -> ItemScores:
    """The scores of one item from its parsed grade (NaN scores when it is ungradable)."""
    nan = float("nan")
    if grade.ungradable:
        return ItemScores(nan, k + 3, nan, nan, nan, nan)
    sp = [int(v) for v in grade.skill_points.values()]
    other = int(grade.topic) + int(grade.sentence_limit) + int(grade.makes_sense)
    pts = sum(sp) + other
    return ItemScores(float(pts), k + 3, pts / (k + 3), float(pts == k + 3), float(all(sp) and other >= 2),
                      sum(sp) / len(sp) if other == 3 else 0.0)
