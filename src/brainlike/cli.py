"""The `brainlike` command line (typer)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from brainlike.errors import BrainlikeError, RunInterrupted
from brainlike.stimulus import read_stimulus  # noqa: F401 - the one stimulus reader (used by `extract`)

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="How brain-like is this language model, where, and why?")
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from brainlike import __version__

        print(f"brainlike {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """How brain-like is this language model, where, and why?"""  # noqa: D400 (the CLI help text)


def _interrupted(exc: KeyboardInterrupt) -> None:
    """Ctrl-C: say how far the run got and how to resume; exit 130 (the shell's code for SIGINT)."""
    done = f" ({exc.progress()})" if isinstance(exc, RunInterrupted) else " (finished pieces are kept)"
    console.print(f"[yellow]interrupted[/]; rerun the same command to resume{done}")
    raise typer.Exit(code=130) from None


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def demo(
    out: Path = typer.Option(Path("brainlike-demo"), "--output", "-o", "--out", help="output folder"),
    model: str = typer.Option("smollm2-135m", help="model name or path"),
    simulated: bool = typer.Option(False, "--simulated", help="the simulated-ECoG demo (planted answer) instead "
                                   "of the real fMRI recording"),
    n_words: int | None = typer.Option(None, help="--simulated: use only the first N words of the story"),
    seed: int = typer.Option(0, help="random seed (null shifts; the simulated recording)"),
) -> None:
    """Layer-wise alignment on a REAL fMRI recording (Brennan et al. 2016, shipped), with nulls and ceilings."""
    from brainlike.demo import run_demo, run_simulated_demo

    try:
        if simulated:
            result = run_simulated_demo(out, model=model, n_words=n_words, seed=seed, console=console)
        else:
            result = run_demo(out, model=model, seed=seed, console=console)
    except BrainlikeError as exc:
        _fail(exc)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    console.print(f"[green]done[/] in {result.seconds:.0f} s. Results in [bold]{result.out_dir}[/]:")
    for p in result.files:
        console.print(f"  {p}")
    print(result.out_dir)


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="print the table as JSON (to stdout)")) -> None:
    """List the registered models: family, parameters, layers, hidden size, licence, installed, kind."""
    from rich import box
    from rich.table import Table

    from brainlike.models.catalog import as_json as to_json
    from brainlike.models.catalog import format_params, zoo_table

    infos = zoo_table()
    if as_json:
        print(to_json(infos))
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  caption="numbers from the installed files (config.json, GGUF header, ONNX graph); "
                          "from brainlike's record when not installed")
    for col in ("name", "family", "params", "layers", "hidden", "licence", "installed", "kind"):
        table.add_column(col, justify="right" if col in ("params", "layers", "hidden") else "left",
                         no_wrap=col != "installed")
    for i in infos:
        installed = "[green]available[/]" if i.installed else f"[yellow]not installed: {i.install}[/]"
        table.add_row(i.name, i.family, format_params(i.n_params), str(i.n_layers), str(i.hidden_size), i.licence,
                      installed, i.kind)
    console.print(table)


@app.command()
def extract(
    model: str = typer.Argument(..., help="registered name, local folder, .gguf file or hub id"),
    stimulus: Path = typer.Argument(..., help="word timing file (.tsv or .TextGrid) or a plain .txt text"),
    out: Path = typer.Option(Path("features.safetensors"), help="output safetensors file"),
    context_tokens: int | None = typer.Option(None, help="exact preceding tokens per word (default: all)"),
    pooling: str = typer.Option("last", help="'last' token of each word or 'mean' of its tokens"),
    dtype: str = typer.Option("float32", help="float32 | float16 | bfloat16"),
) -> None:
    """Extract word-level hidden states of every layer to a safetensors file (cached, resumable)."""
    from brainlike.models import extract_features

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


def _run_and_report(spec: Path, output: Path | None, overrides: dict | None = None) -> None:
    """Run a spec through the one runner; print where everything went; exit non-zero on failures."""
    from brainlike.runner import run_spec

    try:
        outcome = run_spec(spec, output=output, overrides=overrides, console=console)
    except BrainlikeError as exc:
        _fail(exc)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    tables = outcome.store.tables()
    if outcome.result.failures:  # never "done" when items failed
        console.print(f"[bold red]error:[/] {outcome.result.message} (partial results: {len(tables)} tables in "
                      f"{outcome.store.root}{f', report {outcome.report}' if outcome.report else ''})")
        raise typer.Exit(code=1)
    console.print(f"[green]done[/] in {outcome.seconds:.0f} s; {len(tables)} tables in {outcome.store.root}: "
                  f"{', '.join(tables)}")
    if outcome.report:
        console.print(f"report: {outcome.report}")


_OUTPUT_HELP = "output folder (overrides the spec's `output`)"


@app.command()
def run(spec: Path = typer.Argument(..., help="spec (YAML); its `analysis:` picks the analysis (default alignment)"),
        output: Path | None = typer.Option(None, "--output", "-o", "--out", help=_OUTPUT_HELP),
        executor: str | None = typer.Option(None, help="alignment: override the spec's executor: 'local' (this "
                                               "process) or 'ray' (a local Ray instance, $RAY_ADDRESS or the "
                                               "spec's ray.address)")) -> None:
    """Run any spec: alignment, organization, geometry, skill-theory or skillmix (resumable)."""
    if executor is not None and executor not in ("local", "ray"):
        _fail(BrainlikeError(f"--executor must be 'local' or 'ray', not {executor!r}"))
    _run_and_report(spec, output, {"executor": executor} if executor is not None else None)


def _alias(analysis: str):
    def command(spec: Path = typer.Argument(..., help=f"{analysis} spec (YAML, e.g. examples/{analysis}.yaml)"),
                output: Path | None = typer.Option(None, "--output", "-o", "--out", help=_OUTPUT_HELP)) -> None:
        _run_and_report(spec, output, {"analysis": analysis})

    command.__doc__ = f"`brainlike run` for a {analysis} spec (the spec's `analysis:` may be left out)."
    return command


app.command("geometry")(_alias("geometry"))
app.command("organization")(_alias("organization"))
app.command("skill-theory")(_alias("skill-theory"))
app.command("skillmix")(_alias("skillmix"))


@app.command()
def plugins() -> None:
    """List the registered datasets, analyses and metrics (models: `brainlike models`)."""
    from brainlike.registry import ANALYSES, DATASETS, METRICS

    for title, reg in (("analyses", ANALYSES), ("datasets", DATASETS), ("metrics", METRICS)):
        console.print(f"[bold]{title}[/]")
        for name, desc in reg.describe().items():
            console.print(f"  [bold]{name}[/]: {desc}")


results_app = typer.Typer(help="Query a results store with SQL (DuckDB).", no_args_is_help=True)
app.add_typer(results_app, name="results")


@results_app.command("query")
def results_query(sql: str = typer.Argument(..., help="SQL over the store's tables, e.g. 'SELECT * FROM brain_scores'"),
                  store: Path = typer.Option(Path("brainlike-out/results"), help="results folder"),
                  csv: bool = typer.Option(False, help="print CSV instead of a table")) -> None:
    """Run one read-only SQL statement (SELECT / WITH ... SELECT) over the parquet tables of a results store.

    The query cannot read or write other files, attach databases, install extensions or change settings;
    a damaged piece of a table is refused (rerun `brainlike run`), never read.
    """
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

    rs = ResultsStore(store)
    try:
        rs.require()
    except BrainlikeError as exc:
        _fail(exc)
    names = rs.tables()
    if not names:
        console.print(f"[yellow]{store} holds no tables yet[/]")
    for t in names:
        print(t)


def main() -> None:  # pragma: no cover - console entry
    """The console entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
