"""The calibration of a run's own null: null mean and false-positive rates from its shifted copies.

Every refitted circular-shift copy of the targets in turn plays the observed data and is tested against the
other copies (those whose shift differs from it by at least ``min_shift``), exactly as the observed data
are tested (:func:`brainlike.analyses.inference.null_calibration`). Per (model, level, ROI) and over all
ROIs (``roi == "all"``):

* ``null_mean`` / ``null_sd``: the headline score (fold-mean r) of the shifted copies, over every fitted
  layer, shift (and subject): should be ~0;
* ``fpr_layer``: false-positive rate of the per-layer empirical test at the layer with the best observed
  mean score in that ROI;
* ``fpr_best``: of the best-layer test corrected for the choice of layer (max over layers of the null, the
  ``p_max`` of ``fmri_best``);
* ``fpr_group`` / ``fpr_group_signflip`` (single and between levels): of the group test over subjects of
  the best-layer scores minus their null means (the ``fmri_group`` test), empirical and sign-flip.

With ``n_shifts`` copies a per-ROI rate is a proportion of about ``n_shifts`` pseudo-observed copies per
target (binomial SE ~ .02 at 100 shifts for the group level): the "all" rows pool the ROIs.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from brainlike.analyses.fmri_encoding import LayerScores
from brainlike.analyses.inference import null_calibration

__all__ = ["calibration_rows"]


def calibration_rows(ls: LayerScores, model: str, level: str, rois: tuple[str, ...], n_volumes: int, *,
                     alpha: float = 0.05, n_flips: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per ROI and one over all ROIs (``roi == "all"``) of the calibration of ``ls``'s null.

    Parameters
    ----------
    ls : LayerScores
        Scores and refitted null of one model at one level: ``null`` (n_layers, n_shifts, n_targets), the
        targets unfolding to ``(n_rois,)`` (group) or ``(n_subjects, n_rois)``.
    model, level : str
        Labels of the rows.
    rois : tuple of str
        ROI names, in the order of the last target axis.
    n_volumes : int
        Length of the fitted series (for the circular distance between shifts).
    alpha : float
        Nominal level of the tests.
    n_flips, seed : int
        Sign flips per group test and seed.

    Returns
    -------
    DataFrame
        Columns ``model, level, roi, n_shifts, null_mean, null_sd, fpr_layer, fpr_best, fpr_group,
        fpr_group_signflip, alpha`` (NaN where a test does not apply or there are fewer than 10 shifts).
    """
    opt = ls.options
    S = ls.null.shape[1]
    null = ls.unfold(ls.null).astype(np.float64)          # (L, S, R) or (L, S, n_subj, R)
    scores = ls.unfold(ls.scores)                          # (L, R) or (L, n_subj, R)
    if null.ndim == 3:                                     # group level: one "subject"
        null, scores = null[:, :, None], scores[:, None]
    best_null = null.max(axis=0)                           # (S, n_subj, R)
    mean_scores = scores.mean(axis=1)                      # (L, R)
    rows = []
    for j, roi in enumerate((*rois, "all")):
        sel = slice(None) if roi == "all" else slice(j, j + 1)
        row = {"model": model, "level": level, "roi": roi, "n_shifts": S,
               "null_mean": float(null[..., sel].mean()) if S else np.nan,
               "null_sd": float(null[..., sel].std()) if S else np.nan,
               "fpr_layer": np.nan, "fpr_best": np.nan, "fpr_group": np.nan, "fpr_group_signflip": np.nan,
               "alpha": alpha}
        if S >= 10:
            kw = dict(min_shift=opt.min_shift, n_folds=opt.n_splits, alpha=alpha, n_flips=n_flips, seed=seed)
            layer = np.argmax(mean_scores[:, sel], axis=0)               # best observed layer per ROI
            at_layer = np.stack([null[k, :, :, sel][..., i] for i, k in enumerate(layer)], axis=-1)
            row["fpr_layer"] = null_calibration(at_layer.reshape(S, -1), ls.shifts, n_volumes, **kw).fpr_target
            bn = best_null[..., sel]
            cal = null_calibration(bn if bn.shape[1] >= 2 else bn.reshape(S, -1), ls.shifts, n_volumes, **kw)
            row["fpr_best"] = cal.fpr_target
            if cal.fpr_group_empirical is not None:
                row["fpr_group"], row["fpr_group_signflip"] = cal.fpr_group_empirical, cal.fpr_group_signflip
        rows.append(row)
    return pd.DataFrame(rows)
