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
        stim = read_stimulus(stimulus)
        feats = extract_features(model, stim, context_tokens=context_tokens, pooling=pooling, dtype=dtype)
        feats.save(out)
    except BrainlikeError as exc:
        _fail(exc)
    console.print(f"{feats.n_layers} layers × {feats.n_words} words × {feats.hidden_size} features → {out}")


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
