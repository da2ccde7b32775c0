"""The two nulls of the variance partition's unique LM R^2 on the real recording (issue 17, item 5).

Group mean of the 27 z-scored Brennan listeners, 6 ROIs; controls: word rate + sound power as in the
pipeline (:func:`brainlike.pipelines.alignment_fmri.control_design`); LM: one layer of a model. Unique R^2 of the LM
beyond the controls with (a) the target-shift null (targets shifted: controls and LM lose their alignment
together) and (b) the stricter feature-shift null (controls and targets aligned, only the LM's design
columns shifted, joint fit refitted). Each null's own calibration: every shifted copy in turn plays the
observed data against the copies >= ``min_shift`` from it (:func:`brainlike.analyses.inference.null_calibration`).

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_fmri_partition_null.py \\
        --model smollm2-135m --layers 5 30 --n-shifts 100
"""
from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _brennan import ROIS, layer_design, word_rate  # noqa: E402

from brainlike.analyses.fmri_encoding import FMRIEncodingOptions, zscore_subjects  # noqa: E402
from brainlike.analyses.inference import null_calibration  # noqa: E402
from brainlike.analyses.variance_partition import variance_partitioning  # noqa: E402
from brainlike.fileio import atomic_write_json  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--layers", type=int, nargs="+", default=[30])
    ap.add_argument("--n-shifts", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("brainlike-out/bench/fmri_partition_null"))
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from brainlike.neural.brennan import load_brennan2016

    res: dict = {"model": args.model, "n_shifts": args.n_shifts, "layers": {}}
    with threadpool_limits(1):
        rec = load_brennan2016()
        data = np.asarray(rec.data)
        stim = rec.stimulus_on_volume_clock()
        # the pipeline's low-level controls (pipelines.alignment_fmri.control_design): word rate from the
        # words and the mean over listeners of the dataset's other controls (sound power)
        dsets = rec.datasets()
        names = sorted(set(dsets[0].meta.get("controls", {})) - {"word_rate"})
        ctl = np.hstack([word_rate(stim, data.shape[1])] + [np.stack(
            [np.asarray(d.meta["controls"][nm], dtype=np.float64) for d in dsets]).reshape(
            len(dsets), data.shape[1], -1).mean(axis=0) for nm in names])
        res["controls"] = ["word_rate", *names]
        X = layer_design(args.model, stim, data.shape[1])
        Y = zscore_subjects(data).mean(axis=0)
        opt = FMRIEncodingOptions()
        for li in args.layers:
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            vp = variance_partitioning(X[li], ctl, Y, opt, n_shifts=args.n_shifts, n_feature_shifts=args.n_shifts)
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            row = {"unique_lm": dict(zip(ROIS, vp.unique_lm.round(4).tolist())),
                   "r2_controls": dict(zip(ROIS, vp.r2_controls.round(4).tolist())),
                   "cpu_s": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 1)}
            for name, nul, sh in (("targets", vp.null_unique_lm, vp.shifts),
                                  ("features", vp.null_unique_lm_features, vp.feature_shifts)):
                cal = null_calibration(nul, sh, data.shape[1], min_shift=opt.min_shift, n_folds=opt.n_splits)
                row[name] = {"p": dict(zip(ROIS, vp.pvalues_unique_lm(null=name).round(4).tolist())),
                             "null_mean": dict(zip(ROIS, nul.mean(axis=0).round(4).tolist())),
                             "null_q95": dict(zip(ROIS, np.quantile(nul, 0.95, axis=0).round(4).tolist())),
                             "calibration_null_mean": round(float(cal.null_mean), 4),
                             "calibration_fpr": round(float(cal.fpr_target), 4)}
            res["layers"][str(li)] = row
            print(li, row, flush=True)
            atomic_write_json(args.out / "partition_null.json", res)


if __name__ == "__main__":
    main()
