#!/usr/bin/env python
"""How the cost of a `brainlike run` sweep grows with models, layers, subjects and channels (voxels).

Measured pieces (wall-clock seconds, one process unless stated):

* **fits** — one layer-chunk fit task (:func:`brainlike.execution.fit_task`: nested CV ridge with the spec
  defaults, 5 outer × 5 inner contiguous folds, 17 alphas, plus the 200-permutation channel test) on
  synthetic LM-like features (power-law spectrum), varying one factor at a time around a base case:
  channels (targets), layers per task, hidden size (features per layer) and words (samples).
* **subjects** — a whole fit sweep (:func:`brainlike.execution.run_fits`: tasks, staging with checksums,
  combining chunks into store pieces) for 1, 2, 4 subjects, local executor.
* **executors** — the same sweep on the local executor and on a local Ray instance (``--ray-cpus``).
* **extraction** — hidden states of every layer for real offline models (no cache), per model.

Every series gets a power-law fit ``t ≈ a · x^b`` over its points (``b`` = scaling exponent) and the
cost model of ``docs/scaling.md`` is filled in from the base-case numbers. Writes a markdown table
(``--out``) with the command and the machine.

Usage::

    HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_scaling.py --out /tmp/scaling.md
    HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_scaling.py --quick   # smoke run, ~1 min
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

# BLAS threads per process (default 1, like a Ray task with 1 CPU): set before numpy loads
_THREADS = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _THREADS

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from brainlike.analyses.layer_scores import fit_layer_chunk  # noqa: E402
from brainlike.execution import (  # noqa: E402
    ChunkStaging,
    FitTask,
    LocalExecutor,
    layer_chunks,
    make_executor,
    responses_digest,
    run_fits,
)
from brainlike.store import ResultsStore  # noqa: E402

BASE = dict(n=1000, p=576, c=300, layers=1)  # words, hidden size (SmolLM2-135M), channels, layers per task
SERIES = {  # name: (factor, values, other changes to the base case)
    "channels": ("c", [100, 300, 1000, 3000, 10000], {}),
    "layers per task": ("layers", [1, 2, 4, 8, 16], {}),
    "hidden size": ("p", [64, 256, 576, 1024, 2048], {}),
    "words (samples)": ("n", [250, 500, 1000, 2000, 4000], {}),
    "words, hidden 2048 (kernel regime)": ("n", [500, 1000, 2000, 3000], {"p": 2048}),
}
N_PERM = 200


def lm_like(n: int, p: int, layers: int, seed: int = 0) -> np.ndarray:
    """``(layers, n, p)`` float32 features with a power-law spectrum (like LM hidden states)."""
    rng = np.random.default_rng(seed)
    scale = (np.arange(1, p + 1) ** -1.0).astype(np.float32)
    return np.stack([(rng.standard_normal((n, p)).astype(np.float32) * scale) @ _rotation(p, seed + k)
                     for k in range(layers)]).astype(np.float32)


def _rotation(p: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((p, p)))
    return q.astype(np.float32)


def responses(X: np.ndarray, c: int, seed: int = 1) -> np.ndarray:
    """``(n, c)`` targets: a random projection of the last layer (60 % of channels) plus noise."""
    rng = np.random.default_rng(seed)
    n, p = X.shape[1:]
    Y = rng.standard_normal((n, c)).astype(np.float32)
    k = int(0.6 * c)
    W = rng.standard_normal((p, k)).astype(np.float32)
    sig = X[-1] @ W
    Y[:, :k] += sig / sig.std(axis=0) * 0.5
    return Y


def timed(fn, repeat: int = 1) -> float:
    """Best wall-clock seconds of ``repeat`` calls."""
    return timed_cpu(fn, repeat)[0]


def timed_cpu(fn, repeat: int = 1) -> tuple[float, float]:
    """Best (wall, CPU) seconds of ``repeat`` calls; CPU time of this process (all its threads)."""
    best = (np.inf, np.inf)
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


def power_fit(x: list[float], t: list[float]) -> tuple[float, float]:
    """``t ≈ a · x^b``: least squares on logs; returns (a, b)."""
    b, loga = np.polyfit(np.log(x), np.log(t), 1)
    return float(np.exp(loga)), float(b)


def fit_series(quick: bool) -> tuple[list[str], dict[str, float]]:
    rows, base_t = [], {}
    for name, (key, values, change) in SERIES.items():
        if quick:
            values = values[:3]
        xs, ts, cs = [], [], []
        for v in values:
            cfg = {**BASE, **change, key: v}
            X = lm_like(cfg["n"], cfg["p"], cfg["layers"])
            Y = responses(X, cfg["c"])
            t, c = timed_cpu(lambda X=X, Y=Y: fit_layer_chunk(X, Y, n_permutations=N_PERM, progress=False),
                             repeat=2 if max(cfg["c"], cfg["p"], cfg["n"] // 2) <= 1000 and cfg["layers"] <= 2 else 1)
            xs.append(v)
            ts.append(t)
            cs.append(c)
            print(f"  fit {name}={v}: {t:.2f} s wall, {c:.2f} s CPU", flush=True)
            if cfg == BASE:
                base_t["fit"] = t
        _, b = power_fit(xs, cs)
        _, b2 = power_fit(xs[-3:], cs[-3:])
        cells = " / ".join(f"{x}: {t:.2f}" for x, t in zip(xs, ts))
        cpu = " / ".join(f"{c:.2f}" for c in cs)
        rows.append(f"| {name} | {cells} | {cpu} | {b:.2f} | {b2:.2f} |")
    return rows, base_t


def sweep(executor, subjects: int, layers: int, chunk: int, root: Path) -> tuple[float, float]:
    """(wall, driver CPU) seconds of :func:`run_fits` for one model × ``subjects`` × ``layers`` (base-case
    sizes); with the local executor the driver CPU time is all of the work."""
    X = lm_like(BASE["n"], BASE["p"], layers)
    Ys = {f"s{i}": responses(X, BASE["c"], seed=10 + i) for i in range(subjects)}
    shutil.rmtree(root, ignore_errors=True)
    chans = tuple(f"ch{i}" for i in range(BASE["c"]))
    t0, c0 = time.perf_counter(), time.process_time()
    feats = {("m", ()): executor.put(X)}
    resp = {s: executor.put(Y) for s, Y in Ys.items()}
    tasks = [FitTask("m", s, ls, chans, ("all",) * BASE["c"], n_permutations=N_PERM,
                     responses_digest=responses_digest(Y))
             for s, Y in Ys.items() for ls in layer_chunks(layers, chunk)]
    run_fits(executor, ResultsStore(root / "results"), ChunkStaging(root / "staging"), tasks, feats, resp,
             progress=False)
    return time.perf_counter() - t0, time.process_time() - c0


def subject_series(quick: bool, tmp: Path) -> list[str]:
    rows, xs, ts, cs = [], [], [], []
    for s in ([1, 2] if quick else [1, 2, 4]):
        t, c = sweep(LocalExecutor(), s, 4, 2, tmp / "subjects")
        xs.append(s)
        ts.append(t)
        cs.append(c)
        print(f"  sweep subjects={s}: {t:.2f} s wall, {c:.2f} s CPU", flush=True)
    _, b = power_fit(xs, cs)
    cells = " / ".join(f"{x}: {t:.2f}" for x, t in zip(xs, ts))
    rows.append(f"| subjects (sweep: 4 layers, 2 per task, {BASE['c']} channels each) | {cells} | "
                f"{' / '.join(f'{c:.2f}' for c in cs)} | {b:.2f} |")
    return rows


def executor_rows(quick: bool, tmp: Path, ray_cpus: int) -> list[str]:
    subjects, layers = (2, 4) if quick else (4, 8)
    rows = []
    t_local, c_local = sweep(LocalExecutor(), subjects, layers, 2, tmp / "exec-local")
    print(f"  local sweep: {t_local:.2f} s wall, {c_local:.2f} s CPU", flush=True)
    rows.append(f"| local (in-process, BLAS threads = {os.environ.get('OMP_NUM_THREADS', 'all')}; CPU s / wall s = "
                f"{c_local / t_local:.2f}: the share of a core this process got) | {t_local:.2f} | - | 1.00 |")
    try:
        import ray  # noqa: F401
    except ImportError:
        rows.append("| ray | not installed | - | - |")
        return rows
    t0 = time.perf_counter()
    ex = make_executor("ray", num_cpus=ray_cpus)
    t_init = time.perf_counter() - t0
    with ex:
        t_warm = sweep(ex, subjects, layers, 2, tmp / "exec-ray")[0]  # first use: workers start and import
        t_ray = sweep(ex, subjects, layers, 2, tmp / "exec-ray")[0]
    print(f"  ray sweep: init {t_init:.1f} s, first {t_warm:.2f} s, warm {t_ray:.2f} s", flush=True)
    rows.append(f"| ray, local instance, {ray_cpus} CPUs, 1 CPU per task (first sweep: worker start-up) | "
                f"{t_warm:.2f} | {t_init:.1f} | {t_local / t_warm:.2f} |")
    rows.append(f"| ray, same instance, warm workers | {t_ray:.2f} | - | {t_local / t_ray:.2f} |")
    return rows


def extraction_rows(quick: bool, tmp: Path) -> list[str]:
    from brainlike.data import default_story
    from brainlike.models import extract_features, load_model
    from brainlike.stimulus import Stimulus

    n_words = 200 if quick else 400
    stim = Stimulus.from_text(default_story(), words_per_second=2.5, name="aesop").subset(0, n_words)
    models = ["stories260k", "minilm-l6"] if quick else ["stories260k", "minilm-l6", "smollm2-135m"]
    rows, xs, ts = [], [], []
    for name in models:
        try:
            lm = load_model(name)
        except Exception as exc:  # a missing offline model
            rows.append(f"| {name} | not available ({type(exc).__name__}) | | | | |")
            continue
        n_params = sum(p.numel() for p in lm.model.parameters())
        t = timed(lambda lm=lm: extract_features(lm, stim, cache_dir=tmp / "cache", use_cache=False, progress=False))
        xs.append(n_params)
        ts.append(t)
        print(f"  extract {name}: {t:.2f} s", flush=True)
        rows.append(f"| {name} | {n_params / 1e6:.2f} M | {lm.n_layers + 1} × {lm.hidden_size} | {t:.2f} | "
                    f"{1e3 * t / n_words:.2f} |")
    if len(xs) >= 2:
        _, b = power_fit(xs, ts)
        rows.append(f"| power-law exponent vs parameters | | | b = {b:.2f} | |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="write the markdown results here")
    ap.add_argument("--quick", action="store_true", help="fewer, smaller points (smoke run)")
    ap.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS threads per process (default 1, like a 1-CPU Ray task)")
    ap.add_argument("--sections", nargs="+", default=["fits", "subjects", "executors", "extraction"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    load0 = os.getloadavg()[0]
    out = ["# Scaling of a sweep: models, layers, subjects, channels", "",
           "Command (repository root):", "", "```",
           "HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_scaling.py " + " ".join(sys.argv[1:]),
           "```", "",
           f"Machine: Python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
           f"BLAS threads per process: {os.environ.get('OMP_NUM_THREADS', 'all')}, "
           f"load average at start {load0:.1f} (a shared machine: timings move by ~20 %).", ""]
    base_t: dict[str, float] = {}
    try:
        if "fits" in args.sections:
            print("fits", flush=True)
            rows, base_t = fit_series(args.quick)
            out += ["## One fit task (nested CV ridge + 200-permutation channel test)", "",
                    f"Base case: {BASE['n']} words × {BASE['p']} features, {BASE['c']} channels, 1 layer; one "
                    "factor varied per row. `value: wall seconds`, then the CPU seconds of the same calls; b = "
                    "exponent of `CPU ≈ a·x^b` over all points and over the largest three.", "",
                    "| factor | value: wall s | CPU s | b (all) | b (largest 3) |", "|---|---|---|---:|---:|",
                    *rows, ""]
        if "subjects" in args.sections:
            print("subjects", flush=True)
            out += ["## Subjects (whole fit sweep, local executor)", "",
                    "| factor | value: wall s | CPU s | b (CPU) |", "|---|---|---|---:|",
                    *subject_series(args.quick, tmp), ""]
        if "executors" in args.sections:
            print("executors", flush=True)
            out += ["## Executors (same sweep)", "",
                    f"{'2 subjects × 4 layers' if args.quick else '4 subjects × 8 layers'}, 2 layers per task, "
                    f"{BASE['c']} channels.", "",
                    "| executor | seconds | start-up s | speed-up vs local |", "|---|---:|---:|---:|",
                    *executor_rows(args.quick, tmp, args.ray_cpus), ""]
        if "extraction" in args.sections:
            print("extraction", flush=True)
            out += ["## Feature extraction (CPU, float32, no cache)", "",
                    "| model | parameters | layers × hidden | seconds | ms per word |", "|---|---:|---|---:|---:|",
                    *extraction_rows(args.quick, tmp), ""]
        if "fit" in base_t:
            out += [f"Base-case fit: {base_t['fit']:.2f} s per (model, subject, layer) at {BASE['n']} words, "
                    f"{BASE['p']} features, {BASE['c']} channels.", ""]
        out.append(f"Load average at the end: {os.getloadavg()[0]:.1f}.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
