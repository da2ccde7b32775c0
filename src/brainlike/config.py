"""The one way a spec is read: YAML loader, strict pydantic base, error format and stimulus resolver.

Every analysis config, every dataset section and ``brainlike run``'s spec are subclasses of
:class:`StrictModel` (unknown keys are errors) and are validated by :func:`validate_config`, whose error
message names the file and each offending field (``dataset.subjects: ...``). A story named in a spec
(``stimulus:``) is resolved by :func:`resolve_stimulus`, the same way in every analysis.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from brainlike.errors import BrainlikeError
from brainlike.stimulus import Stimulus, read_stimulus

M = TypeVar("M", bound=BaseModel)

BUILTIN_STIMULI = ("builtin:aesop",)


class StrictModel(BaseModel):
    """Base of every config: unknown keys are errors (a typo never silently falls back to a default)."""

    model_config = ConfigDict(extra="forbid")


class RunConfig(StrictModel):
    """Fields every spec of ``brainlike run`` has, whatever its analysis.

    Attributes
    ----------
    analysis : str
        The registered analysis that runs the spec (``brainlike run`` dispatches on it).
    name : str
        A label of the run (report title).
    output : str
        The output folder: ``<output>/results`` (the results store), ``<output>/report.html``,
        ``<output>/spec.yaml``; nothing is written outside it.
    seed : int
        Seeds every random choice of the run.
    report : bool
        Write ``report.html``.
    """

    analysis: str = "alignment"
    name: str = "experiment"
    output: str = "brainlike-out"
    seed: int = 0
    report: bool = True


#: the fields :class:`RunConfig` adds to an analysis' own settings
RUN_FIELDS = ("analysis", "name", "output", "seed", "report")


class StimulusSpec(StrictModel):
    """A story: ``builtin:aesop`` (shipped) or a word-timing file (``.tsv``, ``.TextGrid``) or a ``.txt`` text.

    Plain texts (the built-in story included) get simulated word times: ``words_per_second`` with a
    seeded ``jitter`` (fraction of a word's duration) so that word onsets are not perfectly periodic.
    """

    source: str = Field("builtin:aesop", description="builtin:aesop, or a .tsv / .TextGrid / .txt file")
    words_per_second: float = Field(2.5, gt=0, description="speech rate for plain text sources")
    jitter: float = Field(0.2, ge=0, lt=1, description="plain text: random variation of word durations (share)")
    n_words: int | None = Field(None, gt=10, description="use only the first N words")


def read_yaml_mapping(path: str | Path) -> dict:
    """A YAML file that must hold a mapping; missing files and bad YAML are clear errors."""
    path = Path(path)
    if not path.is_file():
        raise BrainlikeError(f"spec file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise BrainlikeError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise BrainlikeError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise BrainlikeError(f"{path}: the spec must be a mapping of fields")
    return raw


def format_validation_error(exc: ValidationError, source: str, what: str = "spec",
                            prefix: str = "") -> BrainlikeError:
    """One error for all problems of a config.

    ``<source>: invalid <what>`` and a line per field (``<prefix>.<field>.<subfield>: what is wrong (got ...)``).
    """
    lines = []
    for err in exc.errors():
        loc = ".".join([prefix] * bool(prefix) + [str(x) for x in err["loc"]]) or "(top level)"
        got = err.get("input")
        shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
        lines.append(f"  {loc}: {err['msg']}{shown}")
    return BrainlikeError(f"{source}: invalid {what}\n" + "\n".join(lines))


def validate_config(cls: type[M], raw: Any, source: str = "spec", what: str = "spec", prefix: str = "") -> M:
    """Validate ``raw`` (a mapping, or an instance already) as ``cls``.

    Errors name every field (after ``prefix``, the section the mapping came from).
    """
    if isinstance(raw, cls):
        return raw
    if not isinstance(raw, dict):
        raise BrainlikeError(f"{source}: expected a mapping of {what} fields, got {type(raw).__name__}")
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise format_validation_error(exc, source, what, prefix) from None


def resolve_stimulus(spec: StimulusSpec, seed: int = 0) -> Stimulus:
    """The story a spec names, with the same word times in every analysis that names it.

    Parameters
    ----------
    spec : StimulusSpec
        The ``stimulus:`` section.
    seed : int
        Seeds the jitter of simulated word times (plain texts only).

    Returns
    -------
    Stimulus
        Words with onsets/offsets in seconds (the first ``n_words`` when given).
    """
    src = spec.source
    if src == "builtin:aesop":
        from brainlike.data import default_story

        stim = Stimulus.from_text(default_story(), words_per_second=spec.words_per_second, jitter=spec.jitter,
                                  seed=seed, name="aesop")
    elif src.startswith("builtin:"):
        raise BrainlikeError(f"unknown built-in stimulus {src!r}; available: {', '.join(BUILTIN_STIMULI)}")
    else:
        stim = read_stimulus(src, words_per_second=spec.words_per_second, jitter=spec.jitter, seed=seed)
    if spec.n_words:
        stim = stim.subset(0, spec.n_words)
    return stim
