"""The whole real-data fMRI sweep, batched vs one subject at a time: wall time and peak memory.

Sweep: every zoo model x every layer x the 27 Brennan subjects x 6 ROIs at the single-subject level,
with ``--n-shifts`` refitted circular shifts (:func:`brainlike.analyses.fmri_encoding.encode_single`).

* batched: all subjects x ROIs x (1 + shifts) are target columns of one fit per layer and fold
  (27 x 6 x 201 = 32,562 targets);
* per subject: the same call with one subject's 6 ROIs x (1 + shifts) targets, 27 times.

Both modes use the same shifts and give the same scores (checked: max |difference|); each mode runs in
its own process so that its peak resident memory (``ru_maxrss``) is its own; CPU time (user + system)
is reported beside the wall time because on a shared machine the wall time mostly measures the other
jobs. Features are extracted (cached) before timing.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_fmri_sweep.py \\
        --models stories260k minilm-l6 smollm2-135m gemma3-270m
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _brennan import layer_design, load  # noqa: E402

ZOO = ("stories260k", "minilm-l6", "smollm2-135m", "gemma3-270m")


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def _prepare(models: list[str], out: str) -> None:
    """Extract (cached) features and write every model's TR design and the data as .npy files, so that
    the timed processes never import torch or load a model."""
    data, stim, _ = load()
    np.save(Path(out) / "data.npy", data)
    for m in models:
        np.save(Path(out) / f"design-{m}.npy", layer_design(m, stim, data.shape[1]))


def _worker(mode: str, models: list[str], n_shifts: int, threads: int, out: str, layers: int | None) -> None:
    from threadpoolctl import threadpool_limits

    from brainlike.analyses.fmri_encoding import FMRIEncodingOptions, encode_single

    with threadpool_limits(threads):
        data = np.load(Path(out) / "data.npy")
        designs = {m: np.load(Path(out) / f"design-{m}.npy") for m in models}
        if layers:
            designs = {m: x[:layers] for m, x in designs.items()}
        base = _rss_mb()
        opt = FMRIEncodingOptions(n_shifts=n_shifts)
        res = {}
        c0 = _cpu_s()
        t0 = time.perf_counter()
        for m, X in designs.items():
            tm = time.perf_counter()
            if mode == "batched":
                r = encode_single(X, data, opt)
                scores, null = r.unfold(r.scores), r.unfold(r.null)
            else:
                parts = [encode_single(X, data[i:i + 1], opt) for i in range(data.shape[0])]
                scores = np.concatenate([p.unfold(p.scores) for p in parts], axis=1)
                null = np.concatenate([p.unfold(p.null) for p in parts], axis=2)
            res[m] = {"seconds": time.perf_counter() - tm, "n_layers": int(X.shape[0]),
                      "targets_per_fit": int((1 + n_shifts) * data.shape[2]
                                             * (data.shape[0] if mode == "batched" else 1))}
            np.save(Path(out) / f"{mode}-{m}-scores.npy", scores)
            np.save(Path(out) / f"{mode}-{m}-null.npy", null)
        wall = time.perf_counter() - t0
        cpu = _cpu_s() - c0
    Path(out, f"{mode}.json").write_text(json.dumps(
        {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": _rss_mb(), "rss_before_fit_mb": base, "models": res}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(ZOO))
    ap.add_argument("--n-shifts", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layers", type=int, default=None, help="first N layers per model only (quick runs)")
    ap.add_argument("--modes", nargs="+", default=["batched", "per-subject"])
    ap.add_argument("--out", type=Path, default=Path("brainlike-out/bench/fmri_sweep"))
    ap.add_argument("--skip-prepare", action="store_true", help="reuse the designs already in --out")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    # extract (and cache) the features first, outside the timed runs
    if not args.skip_prepare:
        p = ctx.Process(target=_prepare, args=(args.models, str(args.out)))
        p.start()
        p.join()
    for mode in args.modes:
        p = ctx.Process(target=_worker, args=(mode, args.models, args.n_shifts, args.threads, str(args.out),
                                              args.layers))
        p.start()
        p.join()
        if p.exitcode:
            raise SystemExit(f"{mode} run failed (exit code {p.exitcode})")
    # both modes' records in --out (a mode may have been run by an earlier call with the same --out)
    rep = {m: json.loads((args.out / f"{m}.json").read_text()) for m in ("batched", "per-subject")
           if (args.out / f"{m}.json").exists()}
    if {"batched", "per-subject"} <= set(rep):
        diffs = []
        for m in args.models:
            a = np.load(args.out / f"batched-{m}-null.npy")
            b = np.load(args.out / f"per-subject-{m}-null.npy")
            sa = np.load(args.out / f"batched-{m}-scores.npy")
            sb = np.load(args.out / f"per-subject-{m}-scores.npy")
            diffs.append(max(float(np.abs(a - b).max()), float(np.abs(sa - sb).max())))
        rep["max_abs_diff"] = max(diffs)
        rep["time_ratio_per_subject_over_batched"] = rep["per-subject"]["wall_s"] / rep["batched"]["wall_s"]
        rep["cpu_ratio_per_subject_over_batched"] = rep["per-subject"]["cpu_s"] / rep["batched"]["cpu_s"]
        rep["memory_ratio_per_subject_over_batched"] = (rep["per-subject"]["peak_rss_mb"]
                                                        / rep["batched"]["peak_rss_mb"])
    rep["n_shifts"] = args.n_shifts
    from brainlike.fileio import atomic_write_json

    atomic_write_json(args.out / "sweep.json", rep)
    print(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()
