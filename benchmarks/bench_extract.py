#!/usr/bin/env python
"""Benchmark of streaming feature extraction: peak memory vs depth, and throughput vs a bare forward loop.

(a) Memory. SmolLM2-135M with all 30 blocks vs the same model cut to its first 5 blocks, on the same
    ~2000-word text (the embedded Aesop story, repeated to length), each run in a fresh subprocess.
    After the model is loaded (and cut) the process's peak-RSS counter is reset (Linux ``clear_refs``),
    so "overhead" = peak RSS during extraction - RSS after load; "peak" = the process peak during
    extraction. Implementations:

    * ``stream``  — :func:`brainlike.models.extract_features` (hooks, one layer at a time to disk);
    * ``legacy``  — the previous implementation (``output_hidden_states`` per window, stacked to numpy,
      an in-RAM ``(n_layers + 1, n_words, hidden)`` array, one ``safetensors.save_file``), reproduced here;
    * ``bare``    — a bare ``model(**inputs, output_hidden_states=True)`` loop over the same windows that
      keeps nothing beyond each call (what any hidden-state loop costs at least);
    * ``forward`` — the transformer body alone (no hidden states, no KV cache): the floor set by the
      model's own forward pass.

    Each cell runs with glibc's default allocator settings and with a fixed mmap threshold
    (``MALLOC_MMAP_THRESHOLD_=131072``): by default glibc raises its mmap threshold after freeing a
    large block, so later large activations come from the heap and fragment it, and even the bare
    forward's RSS grows with depth.

(b) Throughput, one process, interleaved repeats (order alternates): ``extract_features`` into a fresh
    cache folder each time (everything included: tokenization, hooks, disk writes, fsyncs, checksums,
    memory-mapped load) vs bare loops over exactly the same token windows:
    ``base(**inputs, output_hidden_states=True)`` (the transformer body, as extraction runs it) and
    ``model(**inputs, output_hidden_states=True)`` (with the LM head). Medians over repeats.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_extract.py --repeats 5 --out /tmp/extract.md
    PYTHONPATH=src .venv/bin/python benchmarks/bench_extract.py --words 300 --repeats 1   # smoke run
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

MODEL = "smollm2-135m"
MIB = float(1 << 20)


# ----------------------------------------------------------------------------------------- helpers
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:  # "5" resets VmHWM (peak RSS) to the current RSS
        fh.write("5")


def _stimulus(n_words: int):
    from brainlike import Stimulus
    from brainlike.data import default_story

    words = default_story().split()
    words = (words * (n_words // len(words) + 1))[:n_words]
    return Stimulus.from_text(" ".join(words), name=f"aesop-{n_words}")


def prepare_models(folder: Path) -> dict[int, Path]:
    """SmolLM2 saved as Hugging Face folders (float32 safetensors): all 30 blocks, and cut to its first 5.

    The memory runs load these folders, so neither process holds the freed memory of dropped blocks (a
    model loaded whole and cut in place keeps those blocks' heap free for the forward pass, which hides
    its activations from the RSS and would flatter the 5-block runs)."""
    from brainlike.models import load_model

    out = {30: folder / "smollm2-30", 5: folder / "smollm2-5"}
    if all((p / "config.json").exists() for p in out.values()):
        return out
    lm = load_model(MODEL)
    model = lm.model
    model.hf_quantizer = None  # de-quantised float32 weights; transformers refuses to save a GGUF quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for blocks in (30, 5):  # 30 first: cutting is in place
        model.model.layers = model.model.layers[:blocks]
        model.config.num_hidden_layers = blocks
        model.save_pretrained(out[blocks])
        lm.tokenizer.save_pretrained(out[blocks])
    return out


def _load(folder: str):
    """Load a model folder with all its weights resident in anonymous memory (as a GGUF-loaded model's
    are): safetensors weights are memory-mapped and would otherwise be paged in during the first forward
    pass, counting as extraction overhead."""
    from brainlike.models import load_model

    lm = load_model(folder)
    with torch.no_grad():
        for t in list(lm.model.parameters()) + list(lm.model.buffers()):
            t.data = t.data.clone()
    gc.collect()
    return lm


def _windows(lm, stim) -> list[np.ndarray]:
    """The token windows extraction runs (special tokens included), from its own planner."""
    from brainlike.models import extract as ex
    from brainlike.models.alignment import tokenize_words

    tw = tokenize_words(lm.tokenizer, stim.words)
    window = min(2048, lm.max_tokens) - len(tw.prefix) - len(tw.suffix)
    units = ex._plan_units(tw, ex.ExtractionOptions(), window, len(tw.prefix))
    pre, suf = np.array(tw.prefix, dtype=np.int64), np.array(tw.suffix, dtype=np.int64)
    return [np.concatenate([pre, seq, suf]) for u in units for seq, _ in u.items]


@torch.inference_mode()
def _bare_loop(module, windows: list[np.ndarray], **kwargs) -> None:
    kwargs.setdefault("output_hidden_states", True)
    for ids in windows:
        out = module(input_ids=torch.from_numpy(ids)[None], attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                     **kwargs)
        del out


def _legacy_extract(lm, stim, path: Path) -> None:
    """The pre-streaming implementation (version 1 of extract_features), for memory comparison."""
    from safetensors.numpy import save_file

    from brainlike.models import extract as ex
    from brainlike.models.alignment import tokenize_words

    tw = tokenize_words(lm.tokenizer, stim.words)
    window = min(2048, lm.max_tokens) - len(tw.prefix) - len(tw.suffix)
    units = ex._plan_units(tw, ex.ExtractionOptions(), window, len(tw.prefix))
    pre, suf = np.array(tw.prefix, dtype=np.int64), np.array(tw.suffix, dtype=np.int64)
    layers = np.zeros((lm.n_layers + 1, len(stim), lm.hidden_size), dtype=np.float32)
    for unit in units:
        seqs = [np.concatenate([pre, seq, suf]) for seq, _ in unit.items]
        with torch.inference_mode():  # version 1's _forward: one unpadded window, model defaults (KV cache on)
            ids = torch.from_numpy(seqs[0])[None]
            out = ex._base_module(lm.model)(input_ids=ids, attention_mask=torch.ones_like(ids),
                                            output_hidden_states=True)
            hs = torch.stack([h.float() for h in out.hidden_states]).cpu().numpy()
        del out
        words, vecs = [], []
        for b, (_, word_rows) in enumerate(unit.items):
            for w, rows in word_rows:
                words.append(w)
                vecs.append(hs[:, b, rows.stop - 1])
        layers[:, np.array(words)] = np.stack(vecs, axis=1)
        del hs, vecs
    save_file({f"layer_{k:03d}": np.ascontiguousarray(layers[k]) for k in range(len(layers))}, str(path),
              metadata={"words": json.dumps(list(stim.words))})


# -------------------------------------------------------------------------------------- (a) memory
def child_memory(impl: str, folder: str, n_words: int) -> dict:
    """Runs in a fresh subprocess: one extraction, returns RSS numbers in MiB."""
    torch.set_num_threads(1)  # memory does not depend on speed; one thread keeps runs comparable
    stim = _stimulus(n_words)
    lm = _load(folder)
    windows = _windows(lm, stim)
    with tempfile.TemporaryDirectory() as tmp:
        from brainlike.models import extract_features
        from brainlike.models.alignment import tokenize_words

        tokenize_words(lm.tokenizer, stim.words)  # warm the tokenizer outside the measurement
        gc.collect()
        rss0 = _status_kib("VmRSS")
        _reset_peak()
        t0 = time.perf_counter()
        if impl == "stream":
            extract_features(lm, stim, cache_dir=tmp, progress=False)
        elif impl == "legacy":
            _legacy_extract(lm, stim, Path(tmp) / "features.safetensors")
        elif impl == "bare":
            _bare_loop(lm.model, windows)
        else:  # "forward": the transformer body alone, nothing kept (the floor)
            from brainlike.models.extract import _base_module

            _bare_loop(_base_module(lm.model), windows, output_hidden_states=False, use_cache=False)
        seconds = time.perf_counter() - t0
        peak = _status_kib("VmHWM")
    return {"impl": impl, "blocks": lm.n_layers, "n_words": n_words, "n_tokens": int(sum(map(len, windows))),
            "rss_after_load_mib": rss0 / 1024, "peak_mib": peak / 1024, "overhead_mib": (peak - rss0) / 1024,
            "features_mib": (lm.n_layers + 1) * n_words * lm.hidden_size * 4 / MIB, "seconds": seconds}


def run_memory(n_words: int, repeats: int, mallocs: list[str], models: dict[int, Path]) -> list[dict]:
    rows = []
    for malloc in mallocs:
        env = dict(os.environ)
        if malloc == "fixed":  # glibc: a fixed mmap threshold (no dynamic raise), so freed blocks go back
            env["MALLOC_MMAP_THRESHOLD_"] = "131072"
        for impl in ("stream", "legacy", "bare", "forward"):
            for blocks in (30, 5):
                runs = []
                for _ in range(repeats):
                    cmd = [sys.executable, os.path.abspath(__file__), "--child", impl, str(models[blocks]),
                           str(n_words)]
                    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    if res.returncode != 0:
                        raise RuntimeError(res.stderr[-3000:])
                    runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
                med = {k: (statistics.median(r[k] for r in runs) if isinstance(runs[0][k], float) else runs[0][k])
                       for k in runs[0]}
                med["overhead_all_mib"] = [round(r["overhead_mib"], 1) for r in runs]
                med["malloc"] = malloc
                print(json.dumps(med), flush=True)
                rows.append(med)
    return rows


# ---------------------------------------------------------------------------------- (b) throughput
def run_throughput(n_words: int, repeats: int) -> dict:
    from brainlike.models import extract as ex
    from brainlike.models import extract_features, load_model

    stim = _stimulus(n_words)
    lm = load_model(MODEL)
    windows = _windows(lm, stim)
    n_tokens = int(sum(map(len, windows)))
    base = ex._base_module(lm.model)
    _bare_loop(base, windows[:1])  # warm-up
    times: dict[str, list[float]] = {"extract": [], "bare_base": [], "bare_model": []}

    def t_extract() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            extract_features(lm, stim, cache_dir=tmp, progress=False)
            return time.perf_counter() - t0

    def t_bare(module) -> float:
        t0 = time.perf_counter()
        _bare_loop(module, windows)
        return time.perf_counter() - t0

    runners = {"extract": t_extract, "bare_base": lambda: t_bare(base), "bare_model": lambda: t_bare(lm.model)}
    for r in range(repeats):
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        for name in order:
            gc.collect()
            times[name].append(runners[name]())
        print(json.dumps({k: round(v[-1], 3) for k, v in times.items()}), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios_base = [b / e for e, b in zip(times["extract"], times["bare_base"])]
    ratios_model = [b / e for e, b in zip(times["extract"], times["bare_model"])]
    return {"n_words": n_words, "n_tokens": n_tokens, "n_windows": len(windows), "threads": torch.get_num_threads(),
            "times": times, "median_s": med,
            "words_per_s": {k: n_words / v for k, v in med.items()},
            "tokens_per_s": {k: n_tokens / v for k, v in med.items()},
            "ratio_vs_base_median": statistics.median(ratios_base),
            "ratio_vs_model_median": statistics.median(ratios_model)}


# ------------------------------------------------------------------------------------------ report
def markdown(mem: list[dict], thr: dict | None, args) -> str:
    lines = ["# Feature extraction benchmark (streaming, issue 9)", "",
             "Command (repository root):", "", "```",
             f"PYTHONPATH=src .venv/bin/python benchmarks/bench_extract.py --words {args.words} "
             f"--repeats {args.repeats} --mem-repeats {args.mem_repeats} --malloc {' '.join(args.malloc)}"
             + (f" --threads {args.threads}" if args.threads else "") + f" --out {args.out}", "```", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other engineers; load average "
             f"{os.getloadavg()[0]:.1f} at the end), torch {torch.__version__}, float32 on CPU. "
             f"Text: the embedded Aesop story repeated to {args.words} words; model {MODEL} (hidden 576).", ""]
    if mem:
        lines += ["## (a) Peak memory vs depth", "",
                  "Fresh subprocess per run (1 torch thread); overhead = peak RSS during extraction - RSS after the "
                  f"model is loaded (median of {args.mem_repeats}); 'features' = size of all layers' features of the "
                  "text. malloc: `default` = glibc defaults; `fixed` = `MALLOC_MMAP_THRESHOLD_=131072` (glibc no "
                  "longer raises its mmap threshold, so the forward pass's large freed blocks go back to the OS).", "",
                  "| malloc | implementation | blocks | tokens | features (MiB) | RSS after load (MiB) | peak (MiB) | "
                  "**overhead (MiB)** | runs | time (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in mem:
            lines.append(f"| {r['malloc']} | {r['impl']} | {r['blocks']} | {r['n_tokens']} | {r['features_mib']:.0f} | "
                         f"{r['rss_after_load_mib']:.0f} | {r['peak_mib']:.0f} | **{r['overhead_mib']:.0f}** | "
                         f"{r['overhead_all_mib']} | {r['seconds']:.1f} |")
        by = {(r["malloc"], r["impl"], r["blocks"]): r["overhead_mib"] for r in mem}
        lines.append("")
        for malloc in dict.fromkeys(r["malloc"] for r in mem):
            parts = []
            for impl in ("stream", "legacy", "bare", "forward"):
                if (malloc, impl, 30) in by and (malloc, impl, 5) in by:
                    parts.append(f"{impl} {by[(malloc, impl, 30)] - by[(malloc, impl, 5)]:+.0f} MiB")
            lines.append(f"* malloc `{malloc}`, overhead growth from 5 to 30 blocks: " + ", ".join(parts) + ".")
            if (malloc, "forward", 30) in by:
                lines.append(f"  stream minus the bare forward floor: 30 blocks "
                             f"{by[(malloc, 'stream', 30)] - by[(malloc, 'forward', 30)]:+.0f} MiB, 5 blocks "
                             f"{by[(malloc, 'stream', 5)] - by[(malloc, 'forward', 5)]:+.0f} MiB.")
        lines.append("")
    if thr:
        m, w, t = thr["median_s"], thr["words_per_s"], thr["tokens_per_s"]
        lines += ["## (b) Throughput", "",
                  f"{thr['n_words']} words, {thr['n_windows']} windows, {thr['n_tokens']} forwarded tokens, "
                  f"{thr['threads']} torch threads; {len(thr['times']['extract'])} interleaved repeats, medians.", "",
                  "| loop | median (s) | words/s | tokens/s | all runs (s) |", "|---|---|---|---|---|"]
        names = {"extract": "extract_features (streamed, cached, checksummed)",
                 "bare_base": "bare `base(**inputs, output_hidden_states=True)`",
                 "bare_model": "bare `model(**inputs, output_hidden_states=True)` (with LM head)"}
        for k in ("extract", "bare_base", "bare_model"):
            lines.append(f"| {names[k]} | {m[k]:.2f} | {w[k]:.0f} | {t[k]:.0f} | "
                         f"{[round(x, 2) for x in thr['times'][k]]} |")
        per_run = [round(b / e, 3) for e, b in zip(thr["times"]["extract"], thr["times"]["bare_base"])]
        lines += ["", f"Throughput ratio extract / bare body loop (median of per-repeat ratios {per_run}): "
                      f"**{thr['ratio_vs_base_median']:.3f}**; vs the full-model loop: "
                      f"{thr['ratio_vs_model_median']:.3f}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--words", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5, help="throughput repeats")
    ap.add_argument("--mem-repeats", type=int, default=2, help="subprocess runs per memory cell")
    ap.add_argument("--malloc", nargs="+", default=["default", "fixed"], choices=["default", "fixed"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the throughput part")
    ap.add_argument("--skip", choices=["memory", "throughput"], action="append", default=[])
    ap.add_argument("--out", default=None, help="write a markdown report here")
    ap.add_argument("--models-dir", default=None, help="where to keep the 30- and 5-block model folders "
                    "(default: a temporary folder)")
    ap.add_argument("--child", nargs=3, metavar=("IMPL", "FOLDER", "WORDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        impl, folder, words = args.child
        print(json.dumps(child_memory(impl, folder, int(words))))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    mem = []
    if "memory" not in args.skip:
        with tempfile.TemporaryDirectory() as tmp:
            models = prepare_models(Path(args.models_dir or tmp))
            mem = run_memory(args.words, args.mem_repeats, args.malloc, models)
    thr = run_throughput(args.words, args.repeats) if "throughput" not in args.skip else None
    report = markdown(mem, thr, args)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
