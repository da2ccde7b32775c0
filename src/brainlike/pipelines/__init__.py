"""Analysis plugins that ``brainlike run`` dispatches to, one module each.

An analysis plugin (registered in :data:`brainlike.registry.ANALYSES`) is an object with

* ``Config``: the whole spec's pydantic class, a subclass of :class:`brainlike.config.RunConfig`
  (so ``analysis``, ``name``, ``output``, ``seed`` and ``report`` mean the same everywhere);
* ``title``: a heading for the report;
* ``run(config, context) -> AnalysisOutput``: the work. Tables it returns are written to the results
  store by the runner (a plugin may also write pieces itself during a long run, for resume); report
  sections it returns make ``report.html``.

The runner (:func:`brainlike.runner.run_spec`) owns the output layout, the lock on the output folder,
the store and the report; a plugin never writes outside ``context.output``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from rich.console import Console

from brainlike.config import RunConfig
from brainlike.report.html import Section
from brainlike.store import ResultsStore

__all__ = ["AnalysisOutput", "AnalysisPlugin", "RunContext", "Section"]


@dataclass(frozen=True)
class RunContext:
    """What the runner gives an analysis.

    Attributes
    ----------
    output : Path
        The run's output folder (absolute). Everything the analysis writes goes below it.
    store : ResultsStore
        The results store at ``<output>/results``.
    console : Console
        Where progress messages go (stderr).
    progress : bool
        Show progress bars.
    """

    output: Path
    store: ResultsStore
    console: Console
    progress: bool = True


@dataclass
class AnalysisOutput:
    """What an analysis returns.

    Attributes
    ----------
    tables : dict
        ``{table name: DataFrame}``; the runner writes each to the results store (replacing the table).
    sections : list of Section
        Report sections (figures and tables) in order.
    subtitle : str
        A line under the report's title.
    failures : int
        Items that failed (e.g. Skill-Mix requests); a run with failures exits non-zero.
    message : str
        A one-line summary printed at the end (what failed and why, when ``failures``).
    files : list of Path
        Other files the analysis wrote (below the output folder).
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    subtitle: str = ""
    failures: int = 0
    message: str = ""
    files: list[Path] = field(default_factory=list)


class AnalysisPlugin(Protocol):
    """What an analysis plugin provides: its config model, a title and a ``run`` method."""

    Config: type[RunConfig]
    title: str

    def run(self, config: Any, context: RunContext) -> AnalysisOutput:
        """Run the analysis of ``config``."""
        ...
