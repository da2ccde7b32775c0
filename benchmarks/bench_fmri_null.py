"""Calibration study and measurements of the fMRI encoding on the real Brennan et al. (2016) recording.

For every model: the group, single-subject and between-subject fits of every layer (27 subjects x 6 ROIs,
``--n-shifts`` refitted circular shifts), then

* calibration: the headline score's mean on the shifted copies and the false-positive rates at .05 of the
  per-target empirical test, of the iid (Fisher) formula, and of the group tests (each shifted copy in
  turn playing the observed data; :func:`brainlike.analyses.inference.null_calibration`), averaged over
  layers;
* results: group-level best-layer r per ROI (max-statistic p over layers), single-subject counts
  significant (FDR over all subject x ROI pairs), group inference over subjects, between-subject r,
  and the variance partition (word rate vs the best layer);
* a figure: null histograms vs the observed scores.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_fmri_null.py --models stories260k smollm2-135m
    PYTHONPATH=src .venv/bin/python benchmarks/bench_fmri_null.py --components-sweep 5 10 20 40 0

Writes ``summary.json`` and ``null_vs_observed.png`` to ``--out`` (default brainlike-out/bench/fmri_null).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _brennan import ROIS, layer_design, load, word_rate  # noqa: E402

from brainlike.analyses.fmri_encoding import (  # noqa: E402
    FMRIEncodingOptions,
    encode_between,
    encode_group,
    encode_single,
    zscore_subjects,
)
from brainlike.analyses.inference import group_test, max_statistic_pvalues, null_calibration  # noqa: E402
from brainlike.analyses.variance_partition import variance_partitioning  # noqa: E402
from brainlike.fileio import atomic_write, atomic_write_json  # noqa: E402
from brainlike.neural.stats import fdr_correction  # noqa: E402


def _cal_mean(cals) -> dict:
    keys = ["null_mean", "null_sd", "iid_sd", "fpr_target", "fpr_analytic", "fpr_group_empirical",
            "fpr_group_signflip", "fpr_group_ttest", "fpr_group_signflip_indep", "fpr_group_ttest_indep"]
    out = {}
    for k in keys:
        vals = [getattr(c, k) for c in cals if getattr(c, k) is not None]
        if vals:
            out[k] = float(np.mean(vals))
    out["n_layers"] = len(cals)
    out["n_pseudo"] = cals[0].n_pseudo
    return out


def _subject_level(res) -> dict:
    """Best-over-layers results of a single/between LayerScores (target_shape (n_subjects, n_rois))."""
    best = res.scores.max(axis=0)
    p = max_statistic_pvalues(res.scores, res.null)
    fdr = fdr_correction(p)
    sub_best = res.unfold(best)
    sub_null = res.unfold(res.null.max(axis=0))  # (S, n_subjects, n_rois): null of the max over layers
    gt = group_test(sub_best, sub_null)
    sig = res.unfold(fdr.significant)
    return {
        "mean_best_r": dict(zip(ROIS, sub_best.mean(axis=0).round(4).tolist())),
        "mean_null_max_mean": dict(zip(ROIS, sub_null.mean(axis=(0, 1)).round(4).tolist())),
        "n_significant_fdr": dict(zip(ROIS, sig.sum(axis=0).tolist())),
        "n_subjects": int(sub_best.shape[0]),
        "group_effect": dict(zip(ROIS, gt.effect.round(4).tolist())),
        "group_ci": dict(zip(ROIS, np.stack([gt.ci_low, gt.ci_high], 1).round(4).tolist())),
        "group_p_empirical": dict(zip(ROIS, gt.p_empirical.round(5).tolist())),
        "group_p_signflip": dict(zip(ROIS, gt.p_signflip.round(5).tolist())),
        "group_p_ttest": dict(zip(ROIS, [float(f"{v:.3g}") for v in gt.p_ttest])),
        "group_significant_fdr": dict(zip(ROIS, gt.significant.tolist())),
    }


def run_model(model: str, data: np.ndarray, stim, opt: FMRIEncodingOptions, layers, do_vp: bool) -> tuple[dict, dict]:
    n = data.shape[1]
    X = layer_design(model, stim, n)
    idx = np.arange(X.shape[0]) if layers is None else np.asarray(layers)
    X = X[idx]
    times = {}
    t0 = time.perf_counter()
    g = encode_group(X, data, opt, progress=True)
    times["group_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = encode_single(X, data, opt, progress=True)
    times["single_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = encode_between(X, data, opt, progress=True)
    times["between_s"] = time.perf_counter() - t0
    kw = dict(min_shift=opt.min_shift, n_folds=opt.n_splits, n_flips=1000)
    cal = {
        "group": _cal_mean([null_calibration(g.null[li], g.shifts, n, **kw) for li in range(len(idx))]),
        "single": _cal_mean([null_calibration(s.unfold(s.null[li]), s.shifts, n, **kw) for li in range(len(idx))]),
        "between": _cal_mean([null_calibration(b.unfold(b.null[li]), b.shifts, n, **kw) for li in range(len(idx))]),
        "pooled_r_null_mean": {"group": float(g.pooled_null.mean()), "single": float(s.pooled_null.mean()),
                               "between": float(b.pooled_null.mean())},
    }
    gbest, gscore, gp = g.max_over_layers()
    gq = fdr_correction(gp)
    out = {
        "layers": idx.tolist(),
        "times": times,
        "group": {
            "best_layer": dict(zip(ROIS, idx[gbest].tolist())),
            "best_r": dict(zip(ROIS, gscore.round(4).tolist())),
            "p_max_over_layers": dict(zip(ROIS, gp.round(5).tolist())),
            "q_fdr": dict(zip(ROIS, gq.qvalues.round(5).tolist())),
            "pooled_r_at_best": dict(zip(ROIS, g.pooled_r[gbest, np.arange(6)].round(4).tolist())),
            "r_per_layer": g.scores.round(4).tolist(),
        },
        "single": _subject_level(s),
        "between": _subject_level(b),
        "calibration": cal,
    }
    if do_vp:
        li = int(np.argmax(g.scores.mean(axis=1)))
        rate = word_rate(stim, n)
        z = zscore_subjects(data)
        t0 = time.perf_counter()
        vg = variance_partitioning(X[li], rate, z.mean(axis=0), opt)
        zs = z.transpose(1, 0, 2).reshape(n, -1)
        vs = variance_partitioning(X[li], rate, zs, opt)
        times["variance_partition_s"] = time.perf_counter() - t0
        out["variance_partition"] = {
            "layer": int(idx[li]),
            "group": {k: dict(zip(ROIS, getattr(vg, k).round(4).tolist()))
                      for k in ("r2_controls", "r2_lm", "r2_joint", "unique_lm", "shared")},
            "single_mean": {k: dict(zip(ROIS, getattr(vs, k).reshape(-1, 6).mean(0).round(4).tolist()))
                            for k in ("r2_controls", "r2_lm", "r2_joint", "unique_lm", "shared")},
        }
    figdata = {"g": g, "s": s, "idx": idx}
    return out, figdata


def _figure(figs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(figs), 2, figsize=(11, 3.6 * len(figs)), squeeze=False)
    for row, (model, fd) in enumerate(figs.items()):
        g, s = fd["g"], fd["s"]
        gl = int(np.argmax(g.scores.mean(axis=1)))
        ax = axes[row, 0]
        ax.hist(g.null[gl].ravel(), bins=40, color="0.7", label=f"null ({g.null.shape[1]} shifts x 6 ROIs)")
        for r, roi in zip(g.scores[gl], ROIS):
            ax.axvline(r, lw=1.5)
            ax.text(r, ax.get_ylim()[1] * 0.9, roi, rotation=90, fontsize=7, ha="right")
        ax.set(title=f"{model}: group level, layer {int(fd['idx'][gl])}", xlabel="fold-mean r", ylabel="count")
        ax.legend(fontsize=7, loc="upper left")
        ax = axes[row, 1]
        ax.hist(s.null[gl].ravel(), bins=60, density=True, color="0.7", label="null (all shifts, subjects, ROIs)")
        ax.hist(s.scores[gl], bins=30, density=True, alpha=0.6, label="observed (27 subjects x 6 ROIs)")
        ax.hist(s.pooled_null[gl].ravel(), bins=60, density=True, histtype="step", color="k",
                label="null of pooled r (old headline)")
        ax.set(title=f"{model}: single subjects, layer {int(fd['idx'][gl])}", xlabel="r")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)


def components_sweep(models, comps, data, stim, out: Path) -> dict:
    """Single-subject and group best-layer r (no null) for several PCA sizes (0 = no reduction)."""
    res = {}
    for model in models:
        X = layer_design(model, stim, data.shape[1])
        for k in comps:
            opt = FMRIEncodingOptions(n_shifts=0, reduction="pca" if k else None, n_components=max(k, 1))
            t0 = time.perf_counter()
            s = encode_single(X, data, opt)
            g = encode_group(X, data, opt)
            best = s.unfold(s.scores.max(axis=0)).mean(axis=0)
            res[f"{model}/k={k}"] = {
                "single_mean_best_r": dict(zip(ROIS, best.round(4).tolist())),
                "group_best_r": dict(zip(ROIS, g.scores.max(axis=0).round(4).tolist())),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(model, k, res[f"{model}/k={k}"], flush=True)
    atomic_write_json(out / "components_sweep.json", res)
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["stories260k"])
    ap.add_argument("--n-shifts", type=int, default=200)
    ap.add_argument("--layers", type=int, nargs="*", default=None, help="layer indices (default: all)")
    ap.add_argument("--n-components", type=int, default=20)
    ap.add_argument("--gap", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (1 on a shared machine)")
    ap.add_argument("--no-variance-partition", action="store_true")
    ap.add_argument("--components-sweep", type=int, nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=Path("brainlike-out/bench/fmri_null"))
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads):
        data, stim, _ids = load()
        if args.components_sweep is not None:
            components_sweep(args.models, args.components_sweep, data, stim, args.out)
            return
        opt = FMRIEncodingOptions(n_shifts=args.n_shifts, n_components=args.n_components, gap=args.gap)
        summary = {"options": {k: getattr(opt, k) for k in ("n_splits", "gap", "highpass", "delays", "reduction",
                                                             "n_components", "n_shifts", "min_shift", "seed")},
                   "data": list(data.shape), "models": {}}
        figs = {}
        for model in args.models:
            out, fd = run_model(model, data, stim, opt, args.layers, not args.no_variance_partition)
            summary["models"][model] = out
            figs[model] = fd
            print(json.dumps({model: {k: out[k] for k in out if k != "group" or True}}, indent=1,
                             default=str)[:6000], flush=True)
        atomic_write_json(args.out / "summary.json", summary)
        _figure(figs, args.out / "null_vs_observed.png")
        print("wrote", args.out / "summary.json", args.out / "null_vs_observed.png")


if __name__ == "__main__":
    main()
