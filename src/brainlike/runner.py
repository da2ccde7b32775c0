"""One runner for every analysis: ``brainlike run SPEC.yaml``.

The spec's ``analysis:`` (default ``alignment``) names a registered analysis
(:data:`brainlike.registry.ANALYSES`); its ``Config`` validates the spec, its ``run`` does the work, and
the runner owns what is the same for all of them: the output layout, the results store, the report and
the error format. Output folder::

    <output>/spec.yaml     the validated spec, every default filled in
    <output>/results/      the results store: every table of the run (``brainlike results tables``)
    <output>/report.html   the self-contained report (unless ``report: false``)
    <output>/figures/      every figure of the report as a PNG file (for papers)
    <output>/...           whatever else the analysis writes (maps, figures, logs), never outside

Nothing is written outside the output folder.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from rich.console import Console

from brainlike.config import RunConfig, read_yaml_mapping
from brainlike.fileio import atomic_write_bytes, atomic_write_text, ensure_writable_dir
from brainlike.locking import output_lock
from brainlike.pipelines import AnalysisOutput, RunContext
from brainlike.registry import ANALYSES
from brainlike.spec import parse_spec
from brainlike.store import ResultsStore

__all__ = ["RunOutcome", "run_spec"]


@dataclass
class RunOutcome:
    """What :func:`run_spec` did.

    Attributes
    ----------
    config : RunConfig
        The validated spec.
    output : Path
        The output folder.
    store : ResultsStore
        The results store (``<output>/results``).
    report : Path or None
        ``report.html`` when written.
    seconds : float
        Wall time of the run.
    result : AnalysisOutput
        What the analysis returned.
    tables : dict
        Every table of the store after the run, ``{name: DataFrame}`` (read lazily: see :meth:`table`).
    """

    config: RunConfig
    output: Path
    store: ResultsStore
    report: Path | None
    seconds: float
    result: AnalysisOutput
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        """One table of the run's store."""
        if name not in self.tables:
            self.tables[name] = self.store.read(name)
        return self.tables[name]


def _raw_spec(spec: str | Path | dict) -> tuple[dict, str]:
    if isinstance(spec, dict):
        return dict(spec), "spec"
    return read_yaml_mapping(spec), str(spec)


def run_spec(spec: str | Path | dict | RunConfig, *, output: str | Path | None = None,
             overrides: dict[str, Any] | None = None, console: Console | None = None,
             progress: bool = True) -> RunOutcome:
    """Validate a spec, run its analysis, store every table and write the report.

    Parameters
    ----------
    spec : path, mapping or RunConfig
        A YAML file, its mapping, or a validated config.
    output : path, optional
        Overrides the spec's ``output`` folder.
    overrides : dict, optional
        Top-level fields to replace before validation (e.g. ``{"executor": "ray"}``); a field the
        analysis does not have is an error that names it.
    console : rich Console, optional
        Where messages go (default: stderr).
    progress : bool
        Show progress bars.

    Raises
    ------
    BrainlikeError
        For an invalid spec (every bad field named), an unknown analysis (closest names suggested) or
        bad input found while running.
    """
    console = console or Console(stderr=True)
    if isinstance(spec, RunConfig):
        raw, source = spec.model_dump(mode="python"), "spec"
    else:
        raw, source = _raw_spec(spec)
    if output is not None:
        raw["output"] = str(output)
    for key, value in (overrides or {}).items():
        raw[key] = value
    config = parse_spec(raw, source=source)
    plugin = ANALYSES.get(config.analysis)
    out = ensure_writable_dir(Path(config.output).expanduser().resolve(), "run output folder")
    with output_lock(out):  # one run at a time per output folder; a second one names the holder
        return _run_locked(config, plugin, out, console, progress)


def _run_locked(config: RunConfig, plugin, out: Path, console: Console, progress: bool) -> RunOutcome:
    store = ResultsStore(out / "results")
    t0 = time.time()
    atomic_write_text(out / "spec.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    ctx = RunContext(output=out, store=store, console=console, progress=progress)
    console.print(f"[bold]{config.name}[/]: {config.analysis} ({plugin.title}) → {out}")
    result = plugin.run(config, ctx)
    for name, df in result.tables.items():
        store.write(name, df)
    figures = _write_figures(result, out / "figures")
    report = None
    if config.report:
        from brainlike.report.html import write_report

        report = write_report(result.sections, out / "report.html", title=f"brainlike: {config.name}",
                              subtitle=result.subtitle or plugin.title)
    result.files.extend(figures)
    return RunOutcome(config, out, store, report, time.time() - t0, result, dict(result.tables))


def _write_figures(result: AnalysisOutput, folder: Path, dpi: int | None = None) -> list[Path]:
    """Every figure of the report sections as ``<folder>/<caption made safe>.png``.

    At :data:`brainlike.plotting.PNG_DPI` by default: the bytes the HTML report embeds (each figure rendered once).
    """
    from brainlike.plotting import PNG_DPI, figure_png

    paths: list[Path] = []
    for section in result.sections:
        for caption, fig in section.figures:
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(caption)).strip("._-") or "figure"
            name, i = f"{stem}.png", 1
            while folder / name in paths:
                i += 1
                name = f"{stem}-{i}.png"
            paths.append(atomic_write_bytes(folder / name, figure_png(fig, dpi or PNG_DPI)))
    return paths
