"""PCA size per layer: a fixed size against sizes chosen per target inside the inner CV (issue 17, item 2).

On the Brennan et al. (2016) recording (27 listeners x 362 volumes x 6 ROIs), for every layer of a model, at
the three levels (group fit, single subjects, between subjects), without a null (the selection is inside the
inner CV, so a better held-out score is honest): the best-layer r per ROI (group) and the mean over subjects
of each subject's best-layer r (single, between), for each PCA setting; then the fit time of the demo's
encoding (7 layers, group + single level, 100 refitted shifts) per setting, as CPU seconds, with the
calibration of that fit's own null (:func:`brainlike.pipelines.fmri_calibration.calibration_rows`).

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_fmri_pcasize.py \\
        --model smollm2-135m --settings 20 10,20,40 10,20,40:pearson 0
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _brennan import ROIS, layer_design, load  # noqa: E402

from brainlike.analyses.fmri_encoding import (  # noqa: E402
    FMRIEncodingOptions,
    encode_between,
    encode_group,
    encode_single,
)
from brainlike.fileio import atomic_write_json  # noqa: E402
from brainlike.pipelines.fmri_calibration import calibration_rows  # noqa: E402


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _options(text: str, n_shifts: int) -> FMRIEncodingOptions:
    """``"20"``: fixed size; ``"10,20,40"``: a grid chosen in the inner CV (by R^2; ``"10,20,40:pearson"``: by
    the validation r); ``"0"``: no reduction."""
    text, _, score = text.partition(":")
    ks = tuple(int(v) for v in text.split(","))
    if ks == (0,):
        return FMRIEncodingOptions(n_shifts=n_shifts, reduction=None)
    return FMRIEncodingOptions(n_shifts=n_shifts, n_components=ks[0] if len(ks) == 1 else ks,
                               selection_score=score or "r2")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--settings", nargs="+", default=["20", "10,20,40"], help="PCA sizes: an int or a comma list")
    ap.add_argument("--layers", type=int, nargs="*", default=None, help="layers of the score sweep (default all)")
    ap.add_argument("--levels", nargs="+", default=["group", "single", "between"])
    ap.add_argument("--timing-shifts", type=int, default=100, help="shifts of the demo-like timing (0: skip)")
    ap.add_argument("--out", type=Path, default=Path("brainlike-out/bench/fmri_pcasize"))
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from brainlike.demo import DEMO_DEPTHS
    from brainlike.spec import depth_layers

    fns = {"group": encode_group, "single": encode_single, "between": encode_between}
    res: dict = {"model": args.model, "settings": {}}
    with threadpool_limits(1):
        data, stim, _ = load()
        X = layer_design(args.model, stim, data.shape[1])
        idx = np.arange(X.shape[0]) if args.layers is None else np.asarray(args.layers)
        demo_layers = list(depth_layers(DEMO_DEPTHS, X.shape[0]))
        for text in args.settings:
            opt = _options(text, 0)
            row: dict = {}
            for level in args.levels:
                c0 = _cpu()
                ls = fns[level](X[idx], data, opt)
                best = ls.unfold(ls.scores.max(axis=0))
                best = best if best.ndim == 1 else best.mean(axis=0)
                row[level] = {"best_r": dict(zip(ROIS, best.round(4).tolist())), "mean": round(float(best.mean()), 4),
                              "best_layer": dict(zip(ROIS, idx[ls.unfold(ls.scores.argmax(axis=0))].tolist()))
                              if level == "group" else None,
                              "cpu_s": round(_cpu() - c0, 1)}
                if opt.nested_components:
                    ks, counts = np.unique(ls.components, return_counts=True)
                    row[level]["chosen_k"] = dict(zip(ks.tolist(), (counts / counts.sum()).round(3).tolist()))
                print(text, level, row[level], flush=True)
            if args.timing_shifts:
                topt = _options(text, args.timing_shifts)
                c0, w0 = _cpu(), time.perf_counter()
                g = encode_group(X[demo_layers], data, topt)
                s = encode_single(X[demo_layers], data, topt)
                row["demo_fit"] = {"cpu_s": round(_cpu() - c0, 1), "wall_s": round(time.perf_counter() - w0, 1),
                                   "layers": demo_layers, "n_shifts": args.timing_shifts}
                # the calibration of this fit's own null (pipelines.fmri_calibration, as in the demo's report)
                for level, ls in (("group", g), ("single", s)):
                    cal = calibration_rows(ls, args.model, level, ROIS, data.shape[1])
                    per = cal[cal.roi != "all"]
                    row["demo_fit"][f"calibration_{level}"] = {
                        "all": cal[cal.roi == "all"].drop(columns=["model", "level", "roi"]).iloc[0].round(4).to_dict(),
                        "per_roi_null_mean": [round(float(v), 4) for v in (per.null_mean.min(), per.null_mean.max())],
                        "per_roi_fpr_best": [round(float(v), 4) for v in (per.fpr_best.min(), per.fpr_best.max())]}
                    row["demo_fit"][f"{level}_best_r"] = dict(zip(ROIS, ls.unfold(ls.scores.max(axis=0)).reshape(
                        -1, len(ROIS)).mean(axis=0).round(4).tolist()))
                print(text, "demo fit", row["demo_fit"], flush=True)
            res["settings"][text] = row
            atomic_write_json(args.out / "pcasize.json", res)
    print("wrote", args.out / "pcasize.json")


if __name__ == "__main__":
    main()
