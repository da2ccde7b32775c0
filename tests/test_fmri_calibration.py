"""The calibration of a run's own null (brainlike.pipelines.fmri_calibration) and the report's figures of it."""
from __future__ import annotations

import numpy as np
import pytest

from brainlike.analyses.fmri_encoding import FMRIEncodingOptions, encode_group, encode_single
from brainlike.analyses.inference import null_calibration
from brainlike.pipelines.fmri_calibration import calibration_rows

ALPHAS = tuple(np.logspace(-1, 5, 7))


def _ar1(rng, shape, phi):
    e = rng.standard_normal(shape)
    x = np.empty_like(e)
    x[0] = e[0]
    for i in range(1, shape[0]):
        x[i] = phi * x[i - 1] + np.sqrt(1 - phi ** 2) * e[i]
    return x


def _null_fit(level):
    """Two layers of AR(1) features, 8 subjects x 2 ROIs of AR(1) noise (no effect anywhere), 60 shifts."""
    rng = np.random.default_rng(5)
    n = 240
    X = np.stack([_ar1(rng, (n, 10), 0.7) for _ in range(2)])
    data = _ar1(rng, (n, 8, 2), 0.6).transpose(1, 0, 2)
    opt = FMRIEncodingOptions(n_components=5, alphas=ALPHAS, n_shifts=60, min_shift=15, highpass=None,
                              inner_splits=3, delays=(1, 2))
    return (encode_group if level == "group" else encode_single)(X, data, opt), n


def test_calibration_rows_match_null_calibration_and_are_nominal_without_an_effect():
    ls, n = _null_fit("single")
    cal = calibration_rows(ls, "m", "single", ("A", "B"), n, n_flips=200)
    assert list(cal["roi"]) == ["A", "B", "all"] and (cal["n_shifts"] == 60).all()
    # the reference: null_calibration on the max-over-layers null of ROI A, unfolded (shifts, subjects, 1)
    best_null = ls.unfold(ls.null).max(axis=0)[..., :1]
    ref = null_calibration(best_null, ls.shifts, n, min_shift=15, n_folds=5, n_flips=200)
    row = cal.set_index("roi").loc["A"]
    assert row["fpr_best"] == ref.fpr_target and row["fpr_group"] == ref.fpr_group_empirical
    allr = cal.set_index("roi").loc["all"]
    assert abs(allr["null_mean"]) < 0.03
    assert abs(allr["null_mean"] - ls.null.mean()) < 1e-6
    for col in ("fpr_layer", "fpr_best", "fpr_group"):
        assert 0.0 <= allr[col] <= 0.12, col


def test_group_level_calibration_has_no_group_test():
    ls, n = _null_fit("group")
    cal = calibration_rows(ls, "m", "group", ("A", "B"), n)
    assert cal["fpr_group"].isna().all() and cal["fpr_best"].notna().all()
    assert (cal["fpr_best"] <= 0.15).all()


@pytest.mark.slow
def test_pipeline_tables_and_report_section_on_the_shipped_recording():
    """fmri_alignment on 5 listeners of the shipped recording with a random 'model' (no real effect): the
    calibration table, the null quantiles of the best layer, the variance partition's null and CI, and the
    report's calibration section."""
    from brainlike.models import Features
    from brainlike.neural.brennan import load_brennan2016
    from brainlike.neural.sources import SubjectData
    from brainlike.pipelines.alignment_fmri import fmri_alignment, fmri_summary
    from brainlike.report.fmri_report import fmri_sections

    rec = load_brennan2016()
    rec = rec.select(rec.subjects[:5])
    subjects = [SubjectData(ds, rec.stimulus) for ds in rec.datasets()]
    rng = np.random.default_rng(0)
    feats = Features(rng.standard_normal((3, len(rec.stimulus), 12)).astype(np.float32), "rand",
                     tuple(rec.stimulus.words))
    opt = FMRIEncodingOptions(n_components=5, alphas=ALPHAS, n_shifts=20, n_splits=3, inner_splits=2, delays=(1, 2))
    tables = fmri_alignment({"rand": (feats, None)}, subjects, opt, ["group", "single"], partition=True,
                            progress=False, partition_feature_shifts=10)
    cal = tables["fmri_calibration"]
    assert len(cal) == 2 * 2 * 7                     # (rand, controls) x (group, single) x (6 ROIs + all)
    assert cal.query("level == 'single'")["fpr_group"].notna().all()
    best = tables["fmri_best"]
    assert (best["null_max_q95"] >= best["null_max_median"]).all()
    vp = tables["fmri_variance_partition"]
    assert (vp["unique_lm_p"] >= 1 / 21 - 1e-12).all() and (vp["n_shifts"] == 20).all()
    # the stricter null (only the random model's columns shifted): p in [1/11, 1], q >= p, controls' rows none
    assert (vp["n_feature_shifts"] == 10).all()
    assert vp["unique_lm_p_features"].between(1 / 11 - 1e-12, 1).all()
    assert (vp["unique_lm_q_features"] >= vp["unique_lm_p_features"] - 1e-12).all()
    assert (vp["unique_lm_null_features_q95"] < 0.05).all()   # shifted random columns add ~nothing
    assert ((vp["single_unique_lm_ci_low"] <= vp["single_unique_lm_mean"])
            & (vp["single_unique_lm_mean"] <= vp["single_unique_lm_ci_high"])).all()
    tables["fmri_summary"] = fmri_summary(tables)
    titles = [s.title for s in fmri_sections(tables)]
    assert "Calibration of the null" in titles
