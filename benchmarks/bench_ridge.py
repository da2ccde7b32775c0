#!/usr/bin/env python
"""Benchmark of brainlike's ridge engine against himalaya and scikit-learn.

All methods run in one process on the same data. Protocol for every case: synthetic
"LM-like" features (power-law spectrum, offset) and targets (low-rank planted signal plus
noise of varying level; 20% of targets are pure noise), contiguous 80/20 train/test split,
each estimator fits on the training part with the same explicit 5 contiguous inner folds,
the same alpha grid and R^2 as the inner criterion, then predicts the test part; the held-out
Pearson r per target is compared with himalaya's.

Cases (``--cases``):
  a: n=5000, p=1024, t=200         b: n=3000, p=4096, t=10000       c: n=8000, p=768, t=50000
  sweep: 30 "layers" of case (a), brainlike only (fit + predict per layer)
  foldbias: bias of the fold-mean Pearson r against the test-fold size, on planted data (the
    measurement behind ``brainlike.encoding.folds.MIN_TEST_FOLD_SIZE``; seconds, no timing)

``--quick F`` scales n, p and t by F (e.g. 0.1) for a smoke run. Slow reference methods can be
run on a subset of targets (``--ref-targets``) with their time extrapolated linearly to all
targets (marked in the table). Peak memory: the process's resident set size is sampled every
5 ms while a method runs; "peak RSS" is the process peak during the call (data included),
"+RSS" the increase over the RSS just before the call.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_ridge.py --cases a b c sweep
    PYTHONPATH=src .venv/bin/python benchmarks/bench_ridge.py --quick 0.1
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from brainlike.encoding import RidgeCV, contiguous_folds, cross_validated_encoding, pearson_r  # noqa: E402

CASES = {
    "a": dict(n=5000, p=1024, t=200),
    "b": dict(n=3000, p=4096, t=10_000),
    "c": dict(n=8000, p=768, t=50_000),
}
GIB = float(1 << 30)


# --------------------------------------------------------------------------- memory sampling
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRSS:
    """Context manager sampling the RSS in a thread; ``peak`` and ``base`` in bytes."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self.base = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.base = _rss_bytes()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


# --------------------------------------------------------------------------- data
def make_data(n: int, p: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic features X (n, p) float32 and targets Y (n, t) float32."""
    rng = np.random.default_rng(seed)
    spec = (np.arange(1, p + 1) ** -0.6).astype(np.float32)  # power-law, like LM activations
    Z = rng.standard_normal((n, p), dtype=np.float32) * spec
    mix = rng.standard_normal((p, p), dtype=np.float32) / np.float32(np.sqrt(p))
    X = Z @ mix
    X += rng.standard_normal(p, dtype=np.float32) * 0.5  # feature offsets
    k = 16
    W1 = rng.standard_normal((p, k), dtype=np.float32)
    W2 = rng.standard_normal((k, t), dtype=np.float32)
    S = X @ W1
    S /= S.std(axis=0) + 1e-12
    Y = S @ W2
    Y /= Y.std(axis=0) + 1e-12
    snr = rng.uniform(0.05, 1.0, t).astype(np.float32)
    snr[rng.random(t) < 0.2] = 0.0  # pure-noise targets
    Y *= snr
    for start in range(0, t, 4096):  # noise in column blocks (bounded temporaries)
        sl = slice(start, min(t, start + 4096))
        Y[:, sl] += rng.standard_normal((n, sl.stop - sl.start), dtype=np.float32)
    Y += 3.0  # a non-zero mean, handled by the intercept
    return X, Y


# --------------------------------------------------------------------------- methods
def _pred64(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """float64 predictions from fitted coefficients (p, t) and intercepts (t,).

    Scores are compared on float64 predictions: float32 prediction arrays round away the
    ~1e-6-relative variations of targets that chose alpha ~1e7 around their intercept, which
    alone moves their Pearson r by up to ~1e-2 (for every method alike).
    """
    return X.astype(np.float64) @ np.asarray(coef, dtype=np.float64) + np.asarray(intercept, dtype=np.float64)


@dataclass
class Run:
    method: str
    seconds: float
    peak_gib: float
    delta_gib: float
    n_targets_run: int
    r: np.ndarray | None = None
    alphas: np.ndarray | None = None
    targets: np.ndarray | None = None
    note: str = ""
    total_seconds: float = 0.0


#: Timed runs per method (``--repeats``); the fastest is reported, for every method alike (the
#: first call in a process also pays first-touch page faults and thread-pool start-up).
REPEATS = 1


def _timed(fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], targets: np.ndarray) -> tuple[float, Any]:
    """Fastest of ``REPEATS`` calls of ``fn(targets)``: (seconds, result of the last call)."""
    best, out = float("inf"), None
    for _ in range(max(1, REPEATS)):
        gc.collect()
        t0 = time.perf_counter()
        out = fn(targets)
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_method(name: str, fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
               targets: np.ndarray, Y_test: np.ndarray, n_total: int, note: str = "") -> Run:
    """Run ``fn`` on ``targets`` (fastest of ``REPEATS`` runs); if they are a subset of ``n_total``
    targets, also run it on the first half of the subset and extrapolate the time linearly
    (fixed + per-target cost) from the two runs to ``n_total`` targets."""
    half_secs = None
    if targets.size < n_total:
        half = targets[::2]
        half_secs = (half.size, _timed(fn, half)[0])
        gc.collect()
    with PeakRSS() as mem:
        secs, (pred, alphas) = _timed(fn, targets)
    r = pearson_r(Y_test[:, targets], pred)
    run = Run(name, secs, mem.peak / GIB, (mem.peak - mem.base) / GIB, targets.size, r, np.asarray(alphas),
              targets, note)
    run.total_seconds = secs
    if half_secs is not None:
        n1, t1 = half_secs
        slope = (secs - t1) / max(1, targets.size - n1)
        how = "extrapolated linearly (fixed + per-target cost)"
        if slope <= 0:  # timing noise on a shared machine: fall back to proportional scaling
            slope = secs / targets.size
            how = "extrapolated proportionally (two-point fit was noisy)"
        run.total_seconds = secs + slope * (n_total - targets.size)
        run.note = (note + "; " if note else "") + (
            f"timed on {n1} and {targets.size} targets ({t1:.1f} s, {secs:.1f} s), {how}")
    return run


def bench_case(label: str, n: int, p: int, t: int, args: argparse.Namespace) -> list[Run]:
    X, Y = make_data(n, p, t, seed=args.seed)
    n_train = int(round(0.8 * n))
    X_tr, X_te = X[:n_train], X[n_train:]
    Y_tr, Y_te = Y[:n_train], Y[n_train:]
    # z-score with training statistics (as cross_validated_encoding does)
    mu, sd = X_tr.mean(0), X_tr.std(0) + 1e-12
    X_tr = (X_tr - mu) / sd
    X_te = (X_te - mu) / sd
    del X, Y
    gc.collect()
    folds = contiguous_folds(n_train, 5)
    alphas = np.logspace(-1, 7, args.n_alphas)
    all_t = np.arange(t)
    ref_t = all_t if args.ref_targets is None or args.ref_targets >= t else np.linspace(
        0, t - 1, args.ref_targets).astype(np.int64)
    runs: list[Run] = []

    def ours(backend: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        def fn(tg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            Ysub = Y_tr if tg.size == t else Y_tr[:, tg]
            m = RidgeCV(alphas=alphas, cv=folds, backend=backend, memory_budget_gb=args.budget)
            m.fit(X_tr, Ysub)
            return _pred64(X_te, m.coef_, m.intercept_), m.best_alphas_
        return fn

    runs.append(run_method("brainlike RidgeCV (numpy)", ours("numpy"), all_t, Y_te, t))
    print(f"  [{label}] brainlike numpy: {runs[-1].seconds:.1f} s", flush=True)
    if "torch" in args.backends and (label in args.torch_cases):
        runs.append(run_method("brainlike RidgeCV (torch cpu)", ours("torch_cpu"), all_t, Y_te, t))
        print(f"  [{label}] brainlike torch: {runs[-1].seconds:.1f} s", flush=True)
    if "cuda" in args.backends:
        import torch

        if torch.cuda.is_available():
            ours("torch_cuda")(all_t[: min(t, 256)])  # warm-up: CUDA context, cuBLAS/cuSOLVER handles
            runs.append(run_method(f"brainlike RidgeCV (torch {torch.cuda.get_device_name(0)})", ours("torch_cuda"),
                                   all_t, Y_te, t, "includes host-device copies"))
            print(f"  [{label}] brainlike cuda: {runs[-1].seconds:.1f} s", flush=True)

    if not args.no_himalaya:
        from himalaya.backend import set_backend
        from himalaya.kernel_ridge import KernelRidgeCV as HKRCV
        from himalaya.ridge import RidgeCV as HRCV
        from himalaya.scoring import r2_score as h_r2

        set_backend("numpy")

        def him(kernel: bool) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
            def fn(tg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                Ysub = np.ascontiguousarray(Y_tr[:, tg])
                batch = dict(n_targets_batch=args.him_batch) if args.him_batch else {}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if kernel:
                        m = HKRCV(alphas=alphas, kernel="linear", fit_intercept=True, cv=folds,
                                  solver_params=dict(score_func=h_r2, **batch))
                    else:
                        m = HRCV(alphas=alphas, fit_intercept=True, cv=folds,
                                 solver_params=dict(score_func=h_r2, **batch))
                    m.fit(X_tr, Ysub)
                    if kernel:  # himalaya's predict: linear K(X_te, X_tr) @ dual_coef_ + intercept_
                        coef = X_tr.astype(np.float64).T @ np.asarray(m.dual_coef_, dtype=np.float64)
                        pred = _pred64(X_te, coef, np.asarray(m.intercept_))
                    else:
                        pred = _pred64(X_te, np.asarray(m.coef_), np.asarray(m.intercept_))
                return pred, np.asarray(m.best_alphas_)
            return fn

        note = ""
        runs.append(run_method("himalaya RidgeCV", him(False), ref_t, Y_te, t, note))
        print(f"  [{label}] himalaya RidgeCV: {runs[-1].seconds:.1f} s on {ref_t.size} targets", flush=True)
        if label == "b" or args.kernel_all:
            runs.append(run_method("himalaya KernelRidgeCV", him(True), ref_t, Y_te, t, note))
            print(f"  [{label}] himalaya KernelRidgeCV: {runs[-1].seconds:.1f} s", flush=True)

    if not args.no_sklearn:
        from sklearn.linear_model import RidgeCV as SRCV

        sk_t = ref_t if args.sk_targets is None or args.sk_targets >= t else np.linspace(
            0, t - 1, args.sk_targets).astype(np.int64)

        def skl(tg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            m = SRCV(alphas=alphas, alpha_per_target=True, fit_intercept=True)
            m.fit(X_tr, Y_tr[:, tg])
            return _pred64(X_te, m.coef_.T, m.intercept_), np.asarray(m.alpha_)

        note = "LOO (GCV) inner CV, float64"
        runs.append(run_method("sklearn RidgeCV(alpha_per_target, LOO)", skl, sk_t, Y_te, t, note))
        print(f"  [{label}] sklearn: {runs[-1].seconds:.1f} s on {sk_t.size} targets", flush=True)
    return runs


def bench_sweep(n: int, p: int, t: int, n_layers: int, args: argparse.Namespace) -> tuple[float, float]:
    """Time brainlike on ``n_layers`` different feature matrices of case (a) shape."""
    rng = np.random.default_rng(args.seed + 1)
    _, Y = make_data(n, 8, t, seed=args.seed)
    n_train = int(round(0.8 * n))
    folds = contiguous_folds(n_train, 5)
    alphas = np.logspace(-1, 7, args.n_alphas)
    spec = (np.arange(1, p + 1) ** -0.6).astype(np.float32)
    total = 0.0
    with PeakRSS() as mem:
        for _ in range(n_layers):
            X = (rng.standard_normal((n, p), dtype=np.float32) * spec) @ (
                rng.standard_normal((p, p), dtype=np.float32) / np.float32(np.sqrt(p)))
            t0 = time.perf_counter()
            X_tr, X_te = X[:n_train], X[n_train:]
            mu, sd = X_tr.mean(0), X_tr.std(0) + 1e-12
            m = RidgeCV(alphas=alphas, cv=folds).fit((X_tr - mu) / sd, Y[:n_train])
            pearson_r(Y[n_train:], m.predict((X_te - mu) / sd))
            total += time.perf_counter() - t0
    return total, mem.peak / GIB


# --------------------------------------------------------------------------- report
def table(label: str, shape: dict[str, int], runs: list[Run]) -> str:
    ref = next((r for r in runs if r.method == "himalaya RidgeCV"), None)
    t = shape["t"]
    lines = [f"### Case ({label}): n={shape['n']}, p={shape['p']}, t={shape['t']}", "",
             "| method | seconds (all targets) | peak RSS GiB (targets run) | +RSS GiB "
             "| x faster than himalaya RidgeCV "
             "| max abs(dr) vs himalaya | same alpha vs himalaya | mean test r (targets run) | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    ref_secs = ref.total_seconds if ref else None
    for r in runs:
        secs = r.total_seconds
        speed = f"{ref_secs / secs:.1f}" if ref_secs else "-"
        if ref is not None and r is not ref and r.r is not None:
            common, ia, ib = np.intersect1d(r.targets, ref.targets, return_indices=True)
            d = np.sort(np.abs(r.r[ia] - ref.r[ib]))[::-1]
            big = int(np.sum(d > 1e-4))
            dr = f"{d[0]:.1e}"
            if big and big < d.size:  # say how far the other targets are
                dr += f" ({big} target{'s' if big > 1 else ''} > 1e-4; all others <= {d[big]:.1e})"
            same = f"{int(np.sum(np.isclose(r.alphas[ia], ref.alphas[ib], rtol=1e-4)))}/{ia.size}"
        else:
            dr = same = "-"
        est = "~" if r.n_targets_run != t else ""
        lines.append(f"| {r.method} | {est}{secs:.1f} | {r.peak_gib:.2f} | {r.delta_gib:.2f} | {speed} | {dr} | "
                     f"{same} | {np.mean(r.r):.4f} | {r.note} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- fold-size bias
FOLD_SIZES = (2, 3, 5, 10, 20, 40)


def bench_foldbias(args: argparse.Namespace) -> str:
    """Fold-mean r vs pooled r against the test-fold size, on planted data (markdown tables).

    (1) Scoring alone: predictions and targets drawn with a known correlation rho (2000 targets,
    400 samples cut into contiguous folds of m samples): mean over folds of the within-fold r,
    against the r of all samples pooled, and rho. (2) The pipeline: ``cross_validated_encoding``
    on planted data (n=200, p=10, 200 targets whose noiseless signal correlates rho=0.5 with the
    target), ``n_splits`` = 200 / m: mean ``fold_scores`` against the pooled ``scores``.
    """
    rng = np.random.default_rng(args.seed)
    lines = ["#### (1) scoring alone: mean within-fold r minus rho (pooled r minus rho in the last column)", "",
             "| rho | " + " | ".join(f"m={m}" for m in FOLD_SIZES) + " | pooled (n=400) |",
             "|---:|" + "---:|" * (len(FOLD_SIZES) + 1)]
    n, t = 400, 2000
    for rho in (0.2, 0.5, 0.9):
        x = rng.standard_normal((n, t))
        y = rho * x + np.sqrt(1 - rho * rho) * rng.standard_normal((n, t))
        cells = []
        for m in FOLD_SIZES:
            k = n // m
            fold_r = np.mean([pearson_r(y[i * m:(i + 1) * m], x[i * m:(i + 1) * m]) for i in range(k)], axis=0)
            cells.append(f"{float(np.mean(fold_r)) - rho:+.3f}")
        cells.append(f"{float(np.mean(pearson_r(y, x))) - rho:+.4f}")
        lines.append(f"| {rho} | " + " | ".join(cells) + " |")
    lines += ["", "#### (2) cross_validated_encoding (n=200, p=10, 200 targets, planted rho=0.5): "
              "mean fold r, pooled r and their difference", "",
              "| test fold m | n_splits | mean fold r | pooled r | fold - pooled |", "|---:|---:|---:|---:|---:|"]
    n, p, t, rho = 200, 10, 200, 0.5
    X = rng.standard_normal((n, p))
    S = X @ rng.standard_normal((p, t))
    S /= S.std(axis=0)
    Y = rho * S + np.sqrt(1 - rho * rho) * rng.standard_normal((n, t))
    for m in (2, 5, 10, 20, 40):
        res = cross_validated_encoding(X, Y, n_splits=n // m, inner_splits=5, min_test_size=2)
        fr = float(res.fold_scores.mean())
        pr = float(res.scores.mean())
        lines.append(f"| {m} | {n // m} | {fr:.3f} | {pr:.3f} | {fr - pr:+.3f} |")
    lines.append("| 1 | 200 (leave-one-out) | no r on 1 sample (0.0 before, refused now) | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["a", "b", "c", "sweep"],
                    choices=["a", "b", "c", "sweep", "foldbias"])
    ap.add_argument("--quick", type=float, default=1.0, help="scale factor for n, p, t (e.g. 0.1)")
    ap.add_argument("--n-alphas", type=int, default=10, help="alphas in np.logspace(-1, 7, N)")
    ap.add_argument("--budget", type=float, default=2.0, help="brainlike memory_budget_gb")
    ap.add_argument("--backends", nargs="+", default=["numpy", "torch"], choices=["numpy", "torch", "cuda"],
                    help="cuda: also time the torch backend on the GPU (all cases), when one is present")
    ap.add_argument("--torch-cases", nargs="+", default=["a"], help="cases on which to also time the torch backend")
    ap.add_argument("--ref-targets", type=int, default=None,
                    help="run himalaya (and sklearn) on this many evenly spaced targets, extrapolate time")
    ap.add_argument("--sk-targets", type=int, default=None, help="targets for sklearn (default: --ref-targets)")
    ap.add_argument("--him-batch", type=int, default=None, help="himalaya n_targets_batch")
    ap.add_argument("--no-himalaya", action="store_true")
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--kernel-all", action="store_true", help="also run himalaya KernelRidgeCV on (a) and (c)")
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2,
                    help="timed runs per method and case, the fastest reported (all methods alike)")
    args = ap.parse_args(argv)
    global REPEATS
    REPEATS = args.repeats

    import torch

    from brainlike.encoding import threads

    lapack = {threads.DEFAULT: f"default ({threads.lapack_threads()} for matrices >= {threads.SMALL_MATRIX})",
              threads.AUTO_LOAD: "auto-load", 0: "BLAS library setting"}.get(threads.LAPACK_THREADS,
                                                                             str(threads.LAPACK_THREADS))
    print(f"# brainlike ridge benchmark\n\nLAPACK threads: {lapack}; "
          f"Python {platform.python_version()}, numpy {np.__version__}, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, quick={args.quick}, n_alphas={args.n_alphas}, "
          f"fastest of {args.repeats} timed run(s) per method, "
          f"load average at start {os.getloadavg()[0]:.1f}\n",
          flush=True)
    out = []
    for label in args.cases:
        if label == "foldbias":
            txt = "### Fold-mean r against test-fold size (planted data)\n\n" + bench_foldbias(args)
        elif label == "sweep":
            shape = {k: max(8, int(round(v * args.quick))) for k, v in CASES["a"].items()}
            secs, peak = bench_sweep(shape["n"], shape["p"], shape["t"], args.layers, args)
            txt = (f"### Layer sweep: {args.layers} layers of case (a) shape {shape}\n\n"
                   f"brainlike RidgeCV (numpy), fit + predict + score per layer: **{secs:.1f} s total** "
                   f"({secs / args.layers:.2f} s/layer), peak RSS {peak:.2f} GiB")
        else:
            shape = {k: max(8, int(round(v * args.quick))) for k, v in CASES[label].items()}
            runs = bench_case(label, shape["n"], shape["p"], shape["t"], args)
            txt = table(label, shape, runs)
        txt += f"\n\n(load average after this case: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        print("\n" + txt + "\n", flush=True)
        out.append(txt)
        gc.collect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
