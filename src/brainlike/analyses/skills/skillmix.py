"""Skill-Mix (Yu et al. 2023): ask a model to combine k random skills on a random topic, grade, aggregate.

Flow of :func:`run_skillmix`: skill and topic lists (package files or the user's) -> seeded draws of ``k``
distinct skills + 1 topic for every ``k`` in ``ks`` -> generation prompt -> generator client -> the text after
``Answer:`` -> rubric prompt -> grader client -> :func:`grading.parse_grade` -> per-item scores -> one JSON line
appended (and fsynced) to ``records.jsonl`` per finished item, so an interrupted run resumes without redoing
finished items -> tidy parquet tables (items, per-skill points, summary by ``k`` with confidence intervals).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm.auto import tqdm

from brainlike.analyses.skills.aggregate import best_of_generations, summarize_scores
from brainlike.analyses.skills.agreement import grading_agreement
from brainlike.analyses.skills.clients import ChatClient, ClientConfig, ClientError, Messages, make_client
from brainlike.analyses.skills.grading import (
    ParsedGrade,
    count_sentences,
    extract_answer,
    grading_messages,
    item_scores,
    named_skills,
    parse_grade,
)
from brainlike.cache import default_cache_dir
from brainlike.config import validate_config
from brainlike.errors import BrainlikeError
from brainlike.fileio import atomic_write, atomic_write_text, ensure_writable_dir

PROMPT_VERSION = "skillmix-v2"


@dataclass(frozen=True)
class Skill:
    """A skill: short ``name``, a one-sentence ``definition`` and an ``example`` (may be empty)."""

    name: str
    definition: str
    example: str = ""


def _read_lines(path: Path | None, default: str) -> tuple[list[tuple[int, str]], str]:
    if path is None:
        text = files("brainlike.data").joinpath(default).read_text(encoding="utf-8")
        where = f"brainlike/data/{default}"
    else:
        p = Path(path)
        if not p.exists():
            raise BrainlikeError(f"file not found: {p}")
        text, where = p.read_text(encoding="utf-8"), str(p)
    lines = [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), start=1)]
    return [(i, ln) for i, ln in lines if ln and not ln.startswith("#")], where


def load_skills(path: str | Path | None = None) -> list[Skill]:
    """Skills from a text file, one per line: ``name | definition | example`` (``#`` comments; tabs also separate).

    Default: the list shipped with brainlike (45 skills). Names must be unique.
    """
    rows, where = _read_lines(Path(path) if path else None, "skills.txt")
    skills, seen = [], {}
    for i, line in rows:
        parts = [p.strip() for p in (line.split("\t") if "\t" in line else line.split("|"))]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise BrainlikeError(f"{where}, line {i}: expected 'name | definition | example', got {line[:80]!r}")
        key = parts[0].lower()
        if key in seen:
            raise BrainlikeError(f"{where}, line {i}: skill {parts[0]!r} already defined on line {seen[key]}")
        seen[key] = i
        skills.append(Skill(parts[0], parts[1], " | ".join(parts[2:]).strip()))
    if not skills:
        raise BrainlikeError(f"{where}: no skills")
    return skills


def load_topics(path: str | Path | None = None) -> list[str]:
    """Topics, one per line (``#`` comments). Default: the list shipped with brainlike. Must be unique."""
    rows, where = _read_lines(Path(path) if path else None, "topics.txt")
    topics, seen = [], {}
    for i, line in rows:
        if line.lower() in seen:
            raise BrainlikeError(f"{where}, line {i}: topic {line!r} already listed on line {seen[line.lower()]}")
        seen[line.lower()] = i
        topics.append(line)
    if not topics:
        raise BrainlikeError(f"{where}: no topics")
    return topics


@dataclass(frozen=True)
class SkillMixItem:
    """One evaluation item: ``k`` distinct skills and a topic. ``item_id`` is ``k{k}-{index:04d}``."""

    item_id: str
    k: int
    index: int
    skills: tuple[Skill, ...]
    topic: str

    @property
    def skill_names(self) -> list[str]:
        """The names of the skills."""
        return [s.name for s in self.skills]


def draw_items(skills: list[Skill], topics: list[str], ks, n_per_k: int, seed: int = 0) -> list[SkillMixItem]:
    """``n_per_k`` items for each ``k``: ``k`` distinct skills and one topic drawn uniformly at random.

    The draws for one ``k`` come from ``numpy.random.default_rng([seed, k])``, so they do not depend on the
    other ``k`` values and raising ``n_per_k`` keeps the earlier items (a run can be extended).
    """
    out = []
    for k in ks:
        k = int(k)
        if not 1 <= k <= len(skills):
            raise BrainlikeError(f"k={k} needs between 1 and {len(skills)} (the number of skills)")
        rng = np.random.default_rng([int(seed), k])
        for i in range(int(n_per_k)):
            idx = rng.choice(len(skills), size=k, replace=False)
            t = int(rng.integers(len(topics)))
            out.append(SkillMixItem(f"k{k}-{i:04d}", k, i, tuple(skills[j] for j in idx), topics[t]))
    return out


def max_sentences_for(k: int, rule: str | int) -> int:
    """Sentence limit: ``"k-1"`` -> ``max(1, k-1)`` (Skill-Mix), ``"k"`` -> ``k``, or a fixed number."""
    if rule == "k-1":
        return max(1, k - 1)
    if rule == "k":
        return k
    return int(rule)


def generation_messages(item: SkillMixItem, max_sentences: int) -> Messages:
    """The generator's prompt for ``item``."""
    names = ", ".join(item.skill_names)
    defs = "\n".join(f"- {s.name}: {s.definition}." + (f" Example: {s.example}" if s.example else "")
                     for s in item.skills)
    plural = "s" if max_sentences != 1 else ""
    user = (f"Please write a short, natural piece of text about {item.topic} that illustrates all of the "
            f"following skill{'s' if item.k > 1 else ''}: {names}.\n\nDefinitions and examples:\n{defs}\n\n"
            f"Requirements: at most {max_sentences} sentence{plural}; stay on the topic of {item.topic}; do not "
            "name the skills in the text; the text must make sense.\n"
            "Begin the text with \"Answer:\" and then, on a new line beginning with \"Explanation:\", say "
            "briefly how each skill is used.")
    return [{"role": "system", "content": "You are a skilled writer who follows instructions exactly."},
            {"role": "user", "content": user}]


def revision_messages(item: SkillMixItem, max_sentences: int, first_answer: str) -> Messages:
    """The self-revision round of Skill-Mix.

    The generator sees its first answer and is asked to check every requirement and give a corrected version in the same
    format.
    """
    plural = "s" if max_sentences != 1 else ""
    names = ", ".join(item.skill_names)
    user = (f"Check your answer against every requirement: it must illustrate each skill ({names}); stay on the "
            f"topic of {item.topic}; have at most {max_sentences} sentence{plural}; not name any of the skills; "
            "and make sense. If any requirement is not met, revise the text. Reply again in the same format: "
            "\"Answer:\" with the (revised) text, then a line beginning with \"Explanation:\".")
    return [*generation_messages(item, max_sentences), {"role": "assistant", "content": first_answer},
            {"role": "user", "content": user}]


class SkillMixConfig(BaseModel):
    """Settings of :func:`run_skillmix`.

    Attributes
    ----------
    generator : ClientConfig
        the model under test (:class:`ClientConfig`: ``kind`` "openai" with ``base_url``, or "hf").
    grader : ClientConfig | None
        the grading model (default: the generator itself).
    skills_file, topics_file : Path | None
        user lists (default: the lists shipped with brainlike).
    ks, n_per_k, seed : list[int], int and int
        ``n_per_k`` seeded draws for every ``k``.
    max_sentences : Literal['k-1', 'k'] | int
        ``"k-1"`` (Skill-Mix; at least 1), ``"k"`` or a fixed number.
    output_dir : Path | None
        where ``records.jsonl`` and the parquet tables go (default: the brainlike cache).
    resume : bool
        reuse finished items found in ``records.jsonl`` (False moves the old log aside).
    confidence, n_boot, ungradable_as_zero : float, int and bool
        aggregation settings.
    stop_after_failures : int
        stop the run (:class:`BrainlikeError`, finished items kept for the next run)
        when this many items in a row failed (an unreachable or broken endpoint); 0 never stops.
    graders : list[ClientConfig]
        more graders (``grader`` first, then these); every item is graded by each.
    n_gradings : int
        grading rounds per grader and item (seeds differ); the item's points are the majority
        over the rounds that could be parsed (a tie gives 0); agreement between rounds and graders is
        reported (Cohen's kappa).
    n_generations : int
        independent generations (each with its revision round, each graded) per draw of skills and
        topic; a draw's metrics are the maximum over them, metric by metric, as in the Skill-Mix reference
        code (3 generation rounds there). Raising it keeps the rounds already done.
    revise : bool
        the Skill-Mix self-revision round (the generator is shown its answer and asked to check the
        requirements and revise); the revised answer is graded.
    code_checks : bool
        check the sentence limit (:func:`grading.count_sentences`) and that no skill is named
        (:func:`grading.named_skills`) in code; a violation sets that point to 0 whatever the grader says.
    fail_on_ungradable : bool
        count items no grader could grade as failures (non-zero exit of ``brainlike run``).
    """

    model_config = ConfigDict(extra="forbid")

    generator: ClientConfig
    grader: ClientConfig | None = None
    skills_file: Path | None = None
    topics_file: Path | None = None
    ks: list[int] = Field(default_factory=lambda: [1, 2, 3])
    n_per_k: int = Field(20, ge=1, le=100_000)
    seed: int = 0
    max_sentences: Literal["k-1", "k"] | int = "k-1"
    output_dir: Path | None = None
    resume: bool = True
    confidence: float = Field(0.95, gt=0, lt=1)
    n_boot: int = Field(2000, ge=100)
    ungradable_as_zero: bool = False
    progress: bool = True
    stop_after_failures: int = Field(5, ge=0)
    graders: list[ClientConfig] = Field(default_factory=list)
    n_gradings: int = Field(1, ge=1, le=20)
    n_generations: int = Field(1, ge=1, le=20)
    revise: bool = True
    code_checks: bool = True
    fail_on_ungradable: bool = True

    def grader_configs(self) -> list[ClientConfig]:
        """The graders' settings: ``grader`` then ``graders`` (empty: the generator grades itself)."""
        return ([self.grader] if self.grader is not None else []) + list(self.graders)

    @field_validator("ks")
    @classmethod
    def _ks(cls, v: list[int]) -> list[int]:
        if not v or any(k < 1 for k in v) or len(set(v)) != len(v):
            raise ValueError(f"ks must be distinct positive integers, got {v}")
        return sorted(v)


@dataclass
class SkillMixResult:
    """Results of :func:`run_skillmix` (tables are tidy).

    Attributes
    ----------
    items : pd.DataFrame
        one row per (item, grader): ``item_key, item_id, k, index, skills`` (list), ``topic,
        max_sentences, generator, grader, prompt, first_response, first_answer, revision_prompt, response,
        answer, named_skills, n_gradings, n_gradable_rounds, grader_sentence_limit_point, n_sentences,
        sentence_limit_auto, gen_attempts, gen_latency_s, grade_prompt, grade_response, grade_attempts,
        grade_latency_s, topic_point, sentence_limit_point, makes_sense_point, ungradable,
        ungradable_reason, parse_method, points, max_points, score, full_marks, all_skills,
        skill_fraction, status`` ("done"/"error"), ``error, seed, created_at``.
    skill_points : pd.DataFrame
        one row per (item, grader, skill): ``item_key, item_id, generator, grader, k, skill,
        used`` (1/0 after the code checks, NaN when ungradable), ``named, ungradable, status``.
    summary : pd.DataFrame
        one row per (generator, grader, k, metric), see :func:`aggregate.summarize_scores`.
    gradings : pd.DataFrame
        one row per (item, grader, round): the grader's raw answer and ``points`` (list).
    agreement : pd.DataFrame
        one row per pair of gradings, see :func:`agreement.grading_agreement`.
    output_dir : Path
        the folder with ``records.jsonl``, ``items.parquet``, ``skill_points.parquet``,
        ``summary.parquet`` and ``config.json``.
    n_reused, n_new : int
        items taken from an earlier run's log / computed now.
    """

    config: SkillMixConfig
    items: pd.DataFrame
    skill_points: pd.DataFrame
    summary: pd.DataFrame
    output_dir: Path
    n_reused: int
    n_new: int
    gradings: pd.DataFrame = field(default_factory=pd.DataFrame)
    agreement: pd.DataFrame = field(default_factory=pd.DataFrame)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The result tables by table name."""
        return {"skillmix_items": self.items, "skillmix_skill_points": self.skill_points,
                "skillmix_summary": self.summary, "skillmix_gradings": self.gradings,
                "skillmix_agreement": self.agreement}

    @property
    def n_items(self) -> int:
        """The number of distinct items."""
        return int(self.items["item_key"].nunique())

    @property
    def n_failed(self) -> int:
        """Items whose generation or grading failed (``status == "error"``); a rerun retries them."""
        return int(self.items.loc[self.items["status"] != "done", "item_key"].nunique())

    @property
    def n_ungradable(self) -> int:
        """Items that were generated and graded but that some grader's answers could not be parsed for."""
        done = self.items[self.items["status"] == "done"]
        return int(done.loc[done["ungradable"], "item_key"].nunique())

    @property
    def n_problems(self) -> int:
        """Failed items, plus ungradable ones when ``fail_on_ungradable`` (what makes the run fail)."""
        return self.n_failed + (self.n_ungradable if self.config.fail_on_ungradable else 0)

    def failure_message(self) -> str:
        """One sentence: how many items failed or were ungradable and why (distinct reasons, counted), or ""."""
        msg = _failure_message(self.items.drop_duplicates("item_key").to_dict("records"), self.output_dir)
        if self.config.fail_on_ungradable and self.n_ungradable:
            done = self.items[(self.items["status"] == "done") & self.items["ungradable"]]
            why = _reasons([{"error": f"{r['grader']}: {r['ungradable_reason'] or 'unparsable'}"}
                            for r in done.to_dict("records")])
            n_done = self.n_items - self.n_failed
            part = (f"{self.n_ungradable} of {n_done} graded Skill-Mix items were ungradable ({why}); use a "
                    "stronger grader or more grading rounds (n_gradings), or set fail_on_ungradable: false")
            msg = f"{msg}; {part}" if msg else part
        return msg

    def figures(self) -> dict:
        """The figures of the run by name."""
        from brainlike.analyses.skills.plots import plot_skill_usage, plot_skillmix_scores

        return {"skillmix_scores": plot_skillmix_scores(self.summary),
                "skillmix_skill_usage": plot_skill_usage(self.skill_points)}

    def save_figures(self, output_dir: str | Path | None = None) -> list[Path]:
        """Write the figures as PNG (default: into :attr:`output_dir`); returns the paths."""
        import matplotlib.pyplot as plt

        from brainlike.fileio import atomic_write

        out = ensure_writable_dir(Path(output_dir) if output_dir is not None else self.output_dir,
                                  "Skill-Mix output folder")
        paths = []
        for name, fig in self.figures().items():
            paths.append(atomic_write(out / f"{name}.png", lambda p, fig=fig: fig.savefig(p, format="png")))
            plt.close(fig)
        return paths


def _reasons(failed: list[dict]) -> str:
    """The distinct errors of failed records with their counts, most frequent first."""
    counts: dict[str, int] = {}
    for r in failed:
        why = str(r.get("error") or "unknown error").split(" (gave up")[0]
        counts[why] = counts.get(why, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])
    return "; ".join(f"{n}x {text}" for text, n in top[:3]) + ("; ..." if len(top) > 3 else "")


def _failure_message(records: list[dict], out: Path) -> str:
    failed = [r for r in records if r.get("status") != "done"]
    if not failed:
        return ""
    return (f"{len(failed)} of {len(records)} Skill-Mix items failed ({_reasons(failed)}); fix the endpoint and "
            f"run the same command again: finished items in {out / 'records.jsonl'} are kept and the failed ones "
            "retried")


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _identity(cfg: ClientConfig | None, client: ChatClient) -> dict:
    return cfg.identity() if cfg is not None else {"client": client.name}


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RecordLog:
    """Append-only JSON-lines log of finished items (each line written, flushed and fsynced)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        """All complete records (a torn last line from a crash is skipped)."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and "item_key" in rec:
                    out.append(rec)
        return out

    def append(self, record: dict) -> None:
        """Append one record as a JSON line."""
        line = json.dumps({k: _clean(v) for k, v in record.items()}, ensure_ascii=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            needs_newline = self.path.exists() and self.path.stat().st_size > 0 and _last_byte(self.path) != b"\n"
            with open(self.path, "a", encoding="utf-8") as fh:
                if needs_newline:
                    fh.write("\n")
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise BrainlikeError(f"cannot append to {self.path}: {exc.strerror or exc}; choose an output folder "
                                 "you can write to") from None


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1)


def _grading(grader: ChatClient, grade_cfg: ClientConfig, gmsgs: Messages, item: SkillMixItem, rnd: int,
             seed: int) -> dict:
    """One grading round (raises :class:`ClientError` when the grader cannot be reached)."""
    r = grader.chat(gmsgs, max_tokens=grade_cfg.max_tokens, temperature=grade_cfg.temperature, seed=seed + 7919 * rnd)
    parsed = parse_grade(r.text, item.skill_names)
    return {"grader": grader.name, "round": rnd, "response": r.text, "attempts": r.attempts,
            "latency_s": round(r.latency_s, 4), "skill_points": [parsed.skill_points[n] for n in item.skill_names],
            "topic": parsed.topic, "sentence_limit": parsed.sentence_limit, "makes_sense": parsed.makes_sense,
            "ungradable": parsed.ungradable, "reason": parsed.reason, "method": parsed.method}


def _evaluate(item: SkillMixItem, key: str, cfg: SkillMixConfig, gen: ChatClient, gen_cfg: ClientConfig,
              graders: list[tuple[ChatClient, ClientConfig]], generation: int = 0) -> dict:
    """Generate (and revise) one item's text, grade it ``n_gradings`` times by every grader: one record.

    ``generation`` numbers the item's independent generation rounds (its seeds differ).
    """
    max_sent = max_sentences_for(item.k, cfg.max_sentences)
    seed = int(cfg.seed) * 1_000_003 + item.k * 10_007 + item.index + 104_729 * int(generation)
    msgs = generation_messages(item, max_sent)
    rec = {"item_key": key, "item_id": item.item_id, "k": item.k, "index": item.index,
           "generation": int(generation),
           "skills": item.skill_names, "topic": item.topic, "max_sentences": max_sent, "generator": gen.name,
           "graders": [g.name for g, _ in graders], "prompt": msgs[-1]["content"], "first_response": None,
           "first_answer": None, "revision_prompt": None, "response": None, "answer": None, "n_sentences": None,
           "sentence_limit_auto": None, "named_skills": [], "gen_attempts": None, "gen_latency_s": None,
           "grade_prompt": None, "gradings": [], "status": "error", "error": "", "seed": seed,
           "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    try:
        g = gen.chat(msgs, max_tokens=gen_cfg.max_tokens, temperature=gen_cfg.temperature, seed=seed)
        attempts, latency, text = g.attempts, g.latency_s, g.text
        rec.update(first_response=g.text, first_answer=extract_answer(g.text))
        if cfg.revise:
            rmsgs = revision_messages(item, max_sent, g.text)
            rec["revision_prompt"] = rmsgs[-1]["content"]
            g2 = gen.chat(rmsgs, max_tokens=gen_cfg.max_tokens, temperature=gen_cfg.temperature, seed=seed + 1)
            attempts, latency, text = attempts + g2.attempts, latency + g2.latency_s, g2.text
    except ClientError as exc:
        rec["error"] = f"generation failed: {exc}"
        return rec
    answer = extract_answer(text)
    n_sent = count_sentences(answer)
    rec.update(response=text, answer=answer, n_sentences=n_sent, sentence_limit_auto=int(n_sent <= max_sent),
               named_skills=named_skills(answer, item.skill_names), gen_attempts=attempts,
               gen_latency_s=round(latency, 4))
    gmsgs = grading_messages(answer, [(s.name, s.definition) for s in item.skills], item.topic, max_sent)
    rec["grade_prompt"] = gmsgs[-1]["content"]
    for grader, grade_cfg in graders:
        for rnd in range(cfg.n_gradings):
            try:
                rec["gradings"].append(_grading(grader, grade_cfg, gmsgs, item, rnd, seed))
            except ClientError as exc:
                rec["error"] = f"grading failed ({grader.name}, round {rnd + 1}): {exc}"
                return rec
    rec["status"] = "done"
    return rec


def _consensus(rounds: list[dict], k: int) -> ParsedGrade | None:
    """Majority vote per point over the gradable rounds of one grader (a tie gives 0); None if none gradable."""
    ok = [r for r in rounds if not r.get("ungradable")]
    if not ok:
        return None
    pts = np.array([[*r["skill_points"], r["topic"], r["sentence_limit"], r["makes_sense"]] for r in ok], float)
    maj = (pts.mean(axis=0) > 0.5).astype(int)
    return ParsedGrade({f"s{i}": int(v) for i, v in enumerate(maj[:k])}, topic=int(maj[k]),
                       sentence_limit=int(maj[k + 1]), makes_sense=int(maj[k + 2]), ungradable=False,
                       method=ok[0].get("method", ""))


_FLOAT_COLS = ["points", "score", "full_marks", "all_skills", "skill_fraction", "gen_latency_s", "grade_latency_s",
               "topic_point", "sentence_limit_point", "makes_sense_point", "n_sentences", "sentence_limit_auto",
               "gen_attempts", "grade_attempts", "grader_sentence_limit_point"]

_DROP = ("gradings", "graders")


def _item_rows(rec: dict, cfg: SkillMixConfig) -> tuple[list[dict], list[dict], list[dict]]:
    """Rows of the items (one per grader), skill-points and gradings tables for one record."""
    items, skills, gradings = [], [], []
    names = rec["skills"]
    named = set(rec.get("named_skills") or [])
    base = {k: v for k, v in rec.items() if k not in _DROP}
    base.setdefault("generation", 0)
    for grader in rec.get("graders") or []:
        rounds = [g for g in rec.get("gradings") or [] if g["grader"] == grader]
        for g in rounds:
            pts = [*g["skill_points"], g["topic"], g["sentence_limit"], g["makes_sense"]]
            gradings.append({"item_key": rec["item_key"], "item_id": rec["item_id"], "k": rec["k"],
                             "generator": rec["generator"], "grader": grader, "round": g["round"],
                             "response": g["response"], "attempts": g["attempts"], "latency_s": g["latency_s"],
                             "ungradable": bool(g["ungradable"]), "reason": g["reason"], "method": g["method"],
                             "points": [int(p) if p is not None else -1 for p in pts]})
        row = {**base, "grader": grader, "n_gradings": len(rounds),
               "n_gradable_rounds": sum(not g["ungradable"] for g in rounds),
               "grade_response": rounds[0]["response"] if rounds else None,
               "grade_attempts": sum(g["attempts"] for g in rounds) if rounds else None,
               "grade_latency_s": round(sum(g["latency_s"] for g in rounds), 4) if rounds else None,
               "topic_point": None, "sentence_limit_point": None, "grader_sentence_limit_point": None,
               "makes_sense_point": None, "ungradable": True,
               "ungradable_reason": (rounds[0]["reason"] if rounds else ""), "parse_method": "none",
               "points": None, "max_points": rec["k"] + 3, "score": None, "full_marks": None, "all_skills": None,
               "skill_fraction": None}
        final = [None] * len(names)
        grade = _consensus(rounds, rec["k"]) if rec["status"] == "done" else None
        if grade is not None:
            row["grader_sentence_limit_point"] = grade.sentence_limit
            if cfg.code_checks:      # the rules checked in code override the grader, as in Skill-Mix's code:
                grade.sentence_limit = int(rec["sentence_limit_auto"])     # the counted sentences decide
                for i, n in enumerate(names):
                    if n in named:
                        grade.skill_points[f"s{i}"] = 0
            sc = item_scores(grade, rec["k"])
            final = list(grade.skill_points.values())
            row.update(topic_point=grade.topic, sentence_limit_point=grade.sentence_limit,
                       makes_sense_point=grade.makes_sense, ungradable=False, ungradable_reason="",
                       parse_method=grade.method, points=sc.points, score=sc.score, full_marks=sc.full_marks,
                       all_skills=sc.all_skills, skill_fraction=sc.skill_fraction)
        items.append(row)
        for name, pt in zip(names, final):
            skills.append({"item_key": rec["item_key"], "item_id": rec["item_id"], "generator": rec["generator"],
                           "grader": grader, "k": rec["k"], "skill": name,
                           "used": float(pt) if pt is not None else float("nan"), "named": name in named,
                           "ungradable": row["ungradable"], "status": rec["status"]})
    return items, skills, gradings


def _tables(records: list[dict], cfg: SkillMixConfig) -> dict[str, pd.DataFrame]:
    rows, skill_rows, grading_rows = [], [], []
    for rec in records:
        a, b, c = _item_rows(rec, cfg)
        rows += a
        skill_rows += b
        grading_rows += c
    items = pd.DataFrame(rows)
    if items.empty:
        raise BrainlikeError("no Skill-Mix items were evaluated")
    for c in _FLOAT_COLS:
        items[c] = pd.to_numeric(items[c], errors="coerce").astype("float64")
    items["ungradable"] = items["ungradable"].astype(bool)
    summary = summarize_scores(best_of_generations(items), confidence=cfg.confidence,
                               ungradable_as_zero=cfg.ungradable_as_zero, n_boot=cfg.n_boot, seed=cfg.seed)
    gradings = pd.DataFrame(grading_rows, columns=["item_key", "item_id", "k", "generator", "grader", "round",
                                                   "response", "attempts", "latency_s", "ungradable", "reason",
                                                   "method", "points"])
    agreement = grading_agreement(gradings, confidence=cfg.confidence, n_boot=min(cfg.n_boot, 1000), seed=cfg.seed)
    return {"items": items, "skill_points": pd.DataFrame(skill_rows), "summary": summary, "gradings": gradings,
            "agreement": agreement}


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda p: df.to_parquet(p, index=False))


def run_skillmix(config: SkillMixConfig | dict, *, generator: ChatClient | None = None,
                 grader: ChatClient | list[ChatClient] | None = None) -> SkillMixResult:
    """Run (or resume) a Skill-Mix evaluation and write its tables.

    Parameters
    ----------
    config : SkillMixConfig | dict
        a :class:`SkillMixConfig` (or a dict that validates as one).
    generator, grader : ChatClient or None (grader: also a list of ChatClient)
        ready clients that replace the ones the config describes (e.g. a
        :class:`ScriptedClient` grader, or a list of them for several graders); their ``name`` identifies
        them in tables and resume keys.

    Items whose generation or grading failed after the client's retries are kept with ``status="error"``
    and retried by the next run; ``KeyboardInterrupt`` stops the run with every finished item saved.
    """
    cfg = config if isinstance(config, SkillMixConfig) else validate_config(
        SkillMixConfig, config, source="skillmix", what="skillmix settings", prefix="skillmix")
    skills = load_skills(cfg.skills_file)
    topics = load_topics(cfg.topics_file)
    if max(cfg.ks) > len(skills):
        raise BrainlikeError(f"k={max(cfg.ks)} is more than the {len(skills)} skills in the list")
    items = draw_items(skills, topics, cfg.ks, cfg.n_per_k, cfg.seed)

    gen_cfg = cfg.generator
    gen = generator or make_client(gen_cfg)
    if cfg.n_generations > 1 and generator is None and gen_cfg.temperature == 0:
        import warnings

        warnings.warn(f"skillmix: n_generations={cfg.n_generations} with generator temperature 0 gives the same "
                      "text in every round for a deterministic model; set generator.temperature > 0 (the "
                      "Skill-Mix reference code samples at 0.7)", stacklevel=2)
    grade_cfgs = cfg.grader_configs()
    if grader is not None:
        given = grader if isinstance(grader, list) else [grader]
        graders = [(c, grade_cfgs[0] if grade_cfgs else gen_cfg) for c in given]
        grade_ids = [_identity(None, c) for c in given]
    elif not grade_cfgs:
        graders, grade_ids = [(gen, gen_cfg)], [_identity(gen_cfg if generator is None else None, gen)]
    else:
        graders = [(make_client(c), c) for c in grade_cfgs]
        grade_ids = [_identity(c, g) for g, c in graders]
    if len({g.name for g, _ in graders}) != len(graders):
        raise BrainlikeError("the Skill-Mix graders must have different names (model names); got "
                             f"{[g.name for g, _ in graders]}")
    gen_id = _identity(gen_cfg if generator is None else None, gen)
    grade_id = grade_ids[0] if len(grade_ids) == 1 else grade_ids

    run_key = _hash({"v": PROMPT_VERSION, "gen": gen_id, "grader": grade_id, "seed": cfg.seed,
                     "max_sentences": cfg.max_sentences, "skills": [s.__dict__ for s in skills], "topics": topics,
                     "revise": cfg.revise, "n_gradings": cfg.n_gradings})
    out = Path(cfg.output_dir) if cfg.output_dir else default_cache_dir() / "skillmix" / run_key
    ensure_writable_dir(out, "Skill-Mix output folder")
    log = RecordLog(out / "records.jsonl")
    if not cfg.resume and log.path.exists():
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        os.replace(log.path, out / f"records-{stamp}.jsonl.bak")
    done = {r["item_key"]: r for r in log.read() if r.get("status") == "done"} if cfg.resume else {}

    records, n_reused, n_new, in_a_row = [], 0, 0, 0
    tries = [(item, g) for item in items for g in range(cfg.n_generations)]
    for n_seen, (item, g) in enumerate(tqdm(tries, desc="skill-mix", unit="item", disable=not cfg.progress,
                                            leave=False)):
        key = _hash({"run": run_key, "item": item.item_id, "skills": item.skill_names, "topic": item.topic,
                     **({"generation": g} if g else {})})
        if key in done:
            records.append(done[key])
            n_reused += 1
            continue
        rec = _evaluate(item, key, cfg, gen, gen_cfg, graders, generation=g)
        log.append(rec)
        records.append(json.loads(json.dumps({k: _clean(v) for k, v in rec.items()})))
        n_new += 1
        in_a_row = in_a_row + 1 if rec["status"] != "done" else 0
        if cfg.stop_after_failures and in_a_row >= cfg.stop_after_failures and n_seen + 1 < len(tries):
            raise BrainlikeError(
                f"stopped the Skill-Mix run after {in_a_row} failed items in a row ({len(tries) - n_seen - 1} of "
                f"{len(tries)} not tried): {_reasons(records[-in_a_row:])}; fix the endpoint (is the server "
                "running? is base_url right?) and run the same command again (finished items are kept)")

    t = _tables(records, cfg)
    for name in ("items", "skill_points", "summary", "gradings", "agreement"):
        _write_parquet(t[name], out / f"{name}.parquet")
    atomic_write_text(out / "config.json", cfg.model_dump_json(indent=2))
    return SkillMixResult(cfg, t["items"], t["skill_points"], t["summary"], out, n_reused, n_new, t["gradings"],
                          t["agreement"])
