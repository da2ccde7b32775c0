"""The `brainlike` command line (typer)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from brainlike.errors import BrainlikeError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="How brain-like is this language model, where, and why?")
console = Console(stderr=True)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def demo(
    out: Path = typer.Option(Path("brainlike-demo"), help="output folder"),
    model: str = typer.Option("smollm2-135m", help="model name or path"),
    n_words: Optional[int] = typer.Option(None, help="use only the first N words of the story"),
    seed: int = typer.Option(0, help="random seed of the simulated recording"),
) -> None:
    """Run the layer-wise alignment pipeline on the embedded story and a simulated ECoG recording."""
    from brainlike.demo import run_demo

    try:
        result = run_demo(out, model=model, n_words=n_words, seed=seed, console=console)
    except BrainlikeError as exc:
        _fail(exc)
    console.print(f"[green]done[/] in {result.seconds:.0f} s. Results in [bold]{result.out_dir}[/]:")
    for p in result.files:
        console.print(f"  {p}")
    print(result.out_dir)


@app.command()
def models() -> None:
    """List the registered models (offline packaged models first)."""
    from brainlike.models.registry import registered_models, resolve_model

    for name, desc in registered_models().items():
        try:
            resolve_model(name)
            status = "[green]available[/]"
        except BrainlikeError as exc:
            status = f"[yellow]not installed[/] ({exc})"
        console.print(f"[bold]{name}[/]: {desc} — {status}")


@app.command()
def extract(
    model: str = typer.Argument(..., help="registered name, local folder, .gguf file or hub id"),
    stimulus: Path = typer.Argument(..., help="word timing file (.tsv or .TextGrid) or a plain .txt text"),
    out: Path = typer.Option(Path("features.safetensors"), help="output safetensors file"),
    context_tokens: Optional[int] = typer.Option(None, help="exact preceding tokens per word (default: all)"),
    pooling: str = typer.Option("last", help="'last' token of each word or 'mean' of its tokens"),
    dtype: str = typer.Option("float32", help="float32 | float16 | bfloat16"),
) -> None:
    """Extract word-level hidden states of every layer to a safetensors file (cached, resumable)."""
    from brainlike.models import extract_features
    from brainlike.stimulus import Stimulus

    try:
        if out.is_dir():  # checked before the (long) extraction; nothing is written next to the folder
            raise BrainlikeError(f"--out {out} is a folder; give the feature file's name, e.g. "
                                 f"--out {out / 'features.safetensors'}")
        stim = read_stimulus(stimulus)
        feats = extract_features(model, stim, context_tokens=context_tokens, pooling=pooling, dtype=dtype)
        feats.save(out)
    except BrainlikeError as exc:
        _fail(exc)
    console.print(f"{feats.n_layers} layers × {feats.n_words} words × {feats.hidden_size} features → {out}")


@app.command()
def run(spec: Path = typer.Argument(..., help="experiment spec (YAML)"),
        output: Optional[Path] = typer.Option(None, help="override the spec's output folder"),
        executor: Optional[str] = typer.Option(None, help="override the spec's executor: 'local' (this process) "
                                               "or 'ray' (a local Ray instance, $RAY_ADDRESS or the spec's ray.address)")) -> None:
    """Run an experiment spec: the model × subject × layer sweep, analyses, store and report (resumable)."""
    from brainlike.experiment import run_experiment
    from brainlike.spec import load_spec

    try:
        s = load_spec(spec)
        if output is not None:
            s = s.model_copy(update={"output": str(output)})
        if executor is not None:
            if executor not in ("local", "ray"):
                raise BrainlikeError(f"--executor must be 'local' or 'ray', not {executor!r}")
            s = s.model_copy(update={"executor": executor})
        result = run_experiment(s, console=console)
    except BrainlikeError as exc:
        _fail(exc)
    console.print(f"[green]done[/] in {result.seconds:.0f} s; tables in {result.store.root}: "
                  f"{', '.join(result.store.tables())}")
    if result.report:
        console.print(f"report: {result.report}")


def _section_report(title: str, sections: list[tuple[str, str, dict, dict]], out: Path) -> Path:
    """A self-contained HTML report from (heading, text, figures, tables) tuples."""
    from brainlike.report.html import Section, write_report

    return write_report([Section(h, t, list(figs.items()), [(k, v) for k, v in tabs.items() if len(v)])
                         for h, t, figs, tabs in sections], out / "report.html", title=title)


@app.command()
def geometry(spec: Path = typer.Argument(..., help="geometry config (YAML, e.g. examples/geometry.yaml)"),
             out: Path = typer.Option(Path("brainlike-out/geometry"), help="output folder")) -> None:
    """Attention-graph density, intrinsic dimension and linear regions per layer, with and without context."""
    from brainlike.analyses.geometry import run_geometry

    try:
        result = run_geometry(spec)
        result.save(out)
        tables = {"accuracy by condition": result.accuracy_summary(), "intrinsic dimension": result.intrinsic_dimension,
                  "linear regions (log10 bound)": result.linear_regions}
        report = _section_report("brainlike: representation geometry", [
            ("Geometry per layer", "Attention graph density and intrinsic dimension (TwoNN, MLE) of the MLP input per "
             "layer, for each context condition.", result.figures(), tables)], out)
    except BrainlikeError as exc:
        _fail(exc)
    console.print(f"[green]done[/]: tables in {out}, report {report}")


@app.command()
def organization(spec: Path = typer.Argument(..., help="organization config (YAML, e.g. examples/organization.yaml)"),
                 out: Path = typer.Option(Path("brainlike-out/organization"), help="output folder")) -> None:
    """Sun et al. 2024: neuron sub-groups → temporal patterns → voxel maps → functional networks."""
    from brainlike.analyses.organization import OrganizationConfig, run_organization

    try:
        result = run_organization(OrganizationConfig.from_yaml(spec))
        result.save(out)
        tabs = result.tables()
        report = _section_report("brainlike: functional organization", [
            ("Patterns and networks", "Representative temporal patterns of MLP neurons, their voxel maps and the "
             "functional network each is assigned to (permutation null, FDR).", result.figures(),
             {k: tabs[k] for k in ("assignments", "metrics", "consistency", "recovery") if k in tabs})], out)
    except BrainlikeError as exc:
        _fail(exc)
    console.print(f"[green]done[/]: results in {out}, report {report}")


@app.command()
def skills(spec: Path = typer.Argument(..., help="skills spec (YAML with analyses.skill_theory / analyses.skillmix)"),
           out: Path = typer.Option(Path("brainlike-out/skills"), help="output folder")) -> None:
    """Arora–Goyal skill-emergence theory and/or a Skill-Mix evaluation."""
    from brainlike.analyses.skills import run_skillmix, run_theory
    from brainlike.spec import read_yaml_mapping

    try:
        raw = read_yaml_mapping(spec).get("analyses", {})
        if not raw.get("skill_theory") and not raw.get("skillmix"):
            raise BrainlikeError(f"{spec}: needs analyses.skill_theory and/or analyses.skillmix")
        sections = []
        if raw.get("skill_theory"):
            theory = run_theory(raw["skill_theory"])
            theory.save(out / "theory")
            sections.append(("Skill emergence (theory)", "Competence on skills and k-tuples of skills as model scale "
                             "grows: Monte Carlo on random skill graphs and closed-form bounds.", theory.figures(),
                             theory.tables()))
        if raw.get("skillmix"):
            mix = run_skillmix({**raw["skillmix"], "output_dir": str(out / "skillmix")})
            tabs = mix.tables()
            sections.append(("Skill-Mix", "Scores by k with confidence intervals.", mix.figures(),
                             {k: v for k, v in tabs.items() if "summary" in k}))
        report = _section_report("brainlike: skills", sections, out)
    except BrainlikeError as exc:
        _fail(exc)
    console.print(f"[green]done[/]: results in {out}, report {report}")


results_app = typer.Typer(help="Query a results store with SQL (DuckDB).", no_args_is_help=True)
app.add_typer(results_app, name="results")


@results_app.command("query")
def results_query(sql: str = typer.Argument(..., help="SQL over the store's tables, e.g. 'SELECT * FROM brain_scores'"),
                  store: Path = typer.Option(Path("brainlike-out/results"), help="results folder"),
                  csv: bool = typer.Option(False, help="print CSV instead of a table")) -> None:
    """Run SQL over the parquet tables of a results store."""
    from brainlike.store import ResultsStore

    try:
        df = ResultsStore(store).query(sql)
    except BrainlikeError as exc:
        _fail(exc)
    print(df.to_csv(index=False) if csv else df.to_string(index=False, max_rows=200))


@results_app.command("tables")
def results_tables(store: Path = typer.Option(Path("brainlike-out/results"), help="results folder")) -> None:
    """List the tables of a results store."""
    from brainlike.store import ResultsStore

    for t in ResultsStore(store).tables():
        print(t)


def read_stimulus(path: Path):
    """A Stimulus from a .tsv / .TextGrid timing file or a .txt text (constant-rate timing)."""
    from brainlike.stimulus import Stimulus

    suffix = path.suffix.lower()
    if suffix == ".textgrid":
        return Stimulus.from_textgrid(path)
    if suffix == ".txt":
        if not path.exists():
            raise BrainlikeError(f"text file not found: {path}")
        return Stimulus.from_text(path.read_text(encoding="utf-8"), name=path.stem)
    return Stimulus.from_tsv(path)


def main() -> None:  # pragma: no cover - console entry
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
