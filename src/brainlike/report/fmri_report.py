"""Figures, summary text and report sections of an fMRI alignment run.

(tables of :mod:`brainlike.pipelines.alignment_fmri` in, matplotlib Figures and :class:`Section` out).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from brainlike.plotting import fig_ax
from brainlike.report.html import Section


def _grid(n: int, size: float = 3.0):
    import matplotlib.pyplot as plt

    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 0.5, size * rows * 0.85), dpi=110, sharex=True,
                             sharey=True, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _layer_curves(d0: pd.DataFrame, y: str, lo: pd.Series, hi: pd.Series, ceilings: pd.DataFrame | None,
                  ceiling_column: str, band_alpha: float, line_kw: dict):
    """Held-out r (column ``y``) vs relative layer per ROI, one line per model with its band ``lo``-``hi``.

    A one-layer baseline is a dashed horizontal line; the ROI's ``ceiling_column`` of ``ceilings`` is dotted.
    """
    rois = list(dict.fromkeys(d0["roi"]))
    fig, axes = _grid(len(rois))
    for ax, roi in zip(axes, rois):
        d = d0[d0["roi"] == roi]
        for model, dm in d.groupby("model", sort=False):
            dm = dm.sort_values("relative_layer")
            if len(dm) == 1:  # a one-layer baseline: a horizontal line
                ax.axhline(float(dm[y].iloc[0]), color="0.3", ls="--", lw=1, label=model)
                continue
            x = dm["relative_layer"].to_numpy()
            line, = ax.plot(x, dm[y], lw=1.2, label=model, **line_kw)
            ax.fill_between(x, lo.loc[dm.index], hi.loc[dm.index], color=line.get_color(), alpha=band_alpha, lw=0)
        if ceilings is not None and roi in set(ceilings["roi"]):
            ax.axhline(float(ceilings.set_index("roi").loc[roi, ceiling_column]), color="k", ls=":", lw=1)
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_title(roi, fontsize=9)
    axes[0].legend(fontsize=6, frameon=False)
    return fig


def plot_group_layer_curves(scores: pd.DataFrame, ceilings: pd.DataFrame | None = None):
    """Group level: held-out r vs relative layer per ROI, one line per model, with the null's 95 % band.

    The band is the null mean ± 1.96 SD of the refitted shifts; dotted: the noise ceiling of the group mean.
    """
    g = scores[scores["level"] == "group"]
    fig = _layer_curves(g, "r", g["null_mean"] - 1.96 * g["null_sd"], g["null_mean"] + 1.96 * g["null_sd"],
                        ceilings, "group_ceiling", 0.12, {"marker": "o", "ms": 2.5})
    fig.supxlabel("relative layer depth (0 = embeddings, 1 = last layer)", fontsize=8)
    fig.supylabel("held-out r (group mean; band: null 95 %, dotted: ceiling)", fontsize=8)
    fig.tight_layout()
    return fig


def plot_subject_layer_curves(layer_ci: pd.DataFrame, ceilings: pd.DataFrame | None = None, level: str = "single"):
    """Mean over subjects of the held-out r vs relative layer per ROI with its bootstrap 95 % CI over subjects.

    Dotted: the leave-one-subject-out ISC (the ceiling of subject-level scores).
    """
    d0 = layer_ci[layer_ci["level"] == level]
    fig = _layer_curves(d0, "mean_r", d0["ci_low"], d0["ci_high"], ceilings, "loo_isc", 0.2, {})
    fig.supxlabel("relative layer depth", fontsize=8)
    fig.supylabel(f"mean {level}-subject r (95 % CI over subjects)", fontsize=8)
    fig.tight_layout()
    return fig


def plot_null_vs_observed(null: pd.DataFrame, model: str):
    """The refitted circular-shift null of the group-level score at the model's best layer, per ROI.

    The observed score is the red line.
    """
    d0 = null[null["model"] == model]
    rois = list(dict.fromkeys(d0["roi"]))
    fig, axes = _grid(len(rois), size=2.6)
    for ax, roi in zip(axes, rois):
        d = d0[d0["roi"] == roi]
        ax.hist(d["null_r"], bins=30, color="0.6")
        ax.axvline(float(d["observed_r"].iloc[0]), color="tab:red", lw=1.5)
        ax.set_title(f"{roi} (layer {int(d['layer'].iloc[0])})", fontsize=8)
    fig.supxlabel(f"{model}: group-level r under shifted targets (grey) and observed (red)", fontsize=8)
    fig.tight_layout()
    return fig


def plot_subject_nulls(best: pd.DataFrame, model: str, level: str = "single"):
    """Per ROI, every subject's observed best-layer r beside its max-over-layers null.

    The observed r (red) beside the median and 95th percentile of its max-over-layers null (grey bar: the score it must
    beat), subjects sorted by observed r.
    """
    d0 = best[(best["model"] == model) & (best["level"] == level)]
    rois = list(dict.fromkeys(d0["roi"]))
    fig, axes = _grid(len(rois), size=2.6)
    for ax, roi in zip(axes, rois):
        d = d0[d0["roi"] == roi].sort_values("r").reset_index(drop=True)
        x = np.arange(len(d))
        ax.vlines(x, d["null_max_median"], d["null_max_q95"], color="0.6", lw=2.5)
        ax.plot(x, d["r"], "o", color="tab:red", ms=3)
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_title(roi, fontsize=8)
        ax.set_xticks([])
    fig.supxlabel(f"{model}, {level} subjects (sorted): observed best-layer r (red) vs the null's median-95th "
                  "percentile (grey)", fontsize=7)
    fig.tight_layout()
    return fig


def plot_calibration(cal: pd.DataFrame, model: str):
    """The run's own null, each shifted copy in turn playing the data.

    Mean of the headline score under the null (left, target 0 +- .02) and the false-positive rates of the tests at alpha
    (right, band [.02, .08]) per ROI and level.
    """
    import matplotlib.pyplot as plt

    d = cal[(cal["model"] == model) & (cal["roi"] != "all")]
    rois = list(dict.fromkeys(d["roi"]))
    levels = list(dict.fromkeys(d["level"]))
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=110)
    tests = [("fpr_best", "best layer (corrected)", "o"), ("fpr_group", "group over subjects", "s")]
    for i, level in enumerate(levels):
        dl = d[d["level"] == level].set_index("roi").reindex(rois)
        x = np.arange(len(rois)) + (i - (len(levels) - 1) / 2) * 0.8 / max(len(levels), 1)
        a0.plot(x, dl["null_mean"], "o", label=level)
        for col, name, marker in tests:
            if dl[col].notna().any():
                a1.plot(x, dl[col], marker, label=f"{level}: {name}", ms=4)
    a0.axhspan(-0.02, 0.02, color="0.9")
    a0.axhline(0, color="0.5", lw=0.6)
    a0.set_ylabel("null mean of the headline r")
    alpha = float(d["alpha"].iloc[0]) if len(d) else 0.05
    a1.axhspan(0.02, 0.08, color="0.9")
    a1.axhline(alpha, color="0.5", lw=0.6)
    a1.set_ylabel(f"false-positive rate at alpha = {alpha:g}")
    for ax in (a0, a1):
        ax.set_xticks(range(len(rois)), rois, fontsize=7)
        ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return fig


def calibration_text(cal: pd.DataFrame, model: str) -> str:
    """One sentence per level: the measured null mean and false-positive rates over all ROIs."""
    d = cal[(cal["model"] == model) & (cal["roi"] == "all")]
    parts = []
    for _, row in d.iterrows():
        s = (f"{row['level']} level ({int(row['n_shifts'])} shifts): null mean {row['null_mean']:+.3f}, "
             f"false-positive rate of the best-layer test {row['fpr_best']:.3f}")
        if pd.notna(row["fpr_group"]):
            s += f", of the group test over subjects {row['fpr_group']:.3f} (sign-flip {row['fpr_group_signflip']:.3f})"
        parts.append(s)
    return (f"Calibration of this run's own null for {model} (each refitted shifted copy in turn taken as the data "
            f"and tested against the others, alpha = {float(d['alpha'].iloc[0]) if len(d) else 0.05:g}): "
            + "; ".join(parts) + ". Target: null mean within +-0.02 of 0, false-positive rate within "
            "[.02, .08]; a per-ROI rate is a proportion of about n_shifts copies (SE ~ .02 at 100 shifts). "
            "benchmarks/bench_fmri_null.py is the many-shift version of this check.")


def plot_best_layers(best: pd.DataFrame):
    """Best relative layer per ROI at the group level, one marker series per model."""
    g = best[(best["level"] == "group") & (best["best_relative_layer"].notna())]
    g = g[g.groupby("model")["best_layer"].transform("max") > 0]  # one-layer baselines have no depth
    fig, ax = fig_ax(size=(6, 3.2))
    rois = list(dict.fromkeys(g["roi"]))
    models = list(dict.fromkeys(g["model"]))
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        d = g[g["model"] == model].set_index("roi").reindex(rois)
        ax.plot(np.arange(len(rois)) + (i - (len(models) - 1) / 2) * width, d["best_relative_layer"], "o",
                label=model)
    ax.set_xticks(range(len(rois)), rois)
    ax.set_ylabel("best relative layer (group level)")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def summary_text(summary: pd.DataFrame, ceilings: pd.DataFrame, n_subjects: int, n_shifts: int) -> str:
    """A plain-language paragraph of what was found (numbers from the tables)."""
    if summary.empty:
        return "No scores."
    best = summary.sort_values("group_r", ascending=False).iloc[0]
    top = summary[summary["model"] == best["model"]].sort_values("group_r", ascending=False)
    sig = top[top["group_p"] < 0.05]["roi"].tolist()
    parts = [f"Across {n_subjects} listeners, the best-predicted model was {best['model']}: at its best layer it "
             f"predicts the group-mean time course of {best['roi']} with held-out r = {best['group_r']:.2f} "
             f"(noise ceiling {best['group_ceiling']:.2f}). Significant at p < .05 against {n_shifts} refitted "
             f"circular shifts, corrected for the choice of layer: {', '.join(sig) if sig else 'no ROI'}."]
    if "single_n_significant_subjects" in summary:
        row = top.iloc[0]
        parts.append(f"Single subjects: in {row['roi']}, {int(row['single_n_significant_subjects'])} of "
                     f"{int(row['single_n_subjects'])} subjects are significant (FDR), median r = "
                     f"{row['single_median_r']:.2f} [{row['single_median_r_ci_low']:.2f}, "
                     f"{row['single_median_r_ci_high']:.2f}].")
    others = summary.groupby("model", sort=False)["group_r"].mean().sort_values(ascending=False)
    parts.append("Mean group-level best-layer r over ROIs: " + "; ".join(f"{m} {v:.2f}" for m, v in others.items())
                 + ". Baselines (the low-level controls; where the spec asks for them, random-weight twins "
                 "'<model>@random' and shuffled-word baselines '<model>@shuffled', the same model on the story's "
                 "words in a random order, each word's features put back at its own time) are findings, not "
                 "targets: they are reported with the same statistics and CIs.")
    return " ".join(parts)


def fmri_sections(tables: dict[str, pd.DataFrame]) -> list[Section]:
    """Report sections of an fMRI alignment run."""
    summary, ceil = tables["fmri_summary"], tables.get("noise_ceilings")
    scores = tables["fmri_scores"]
    n_subj = int(ceil["n_subjects"].iloc[0]) if ceil is not None else 0
    null = tables.get("fmri_null")
    n_shifts = int(null.groupby(["model", "roi"]).size().max()) if null is not None and len(null) else 0
    sections = [Section("Summary", summary_text(summary, ceil, n_subj, n_shifts), [],
                        [("per model and ROI (group level; single- and between-subject tests)", summary),
                         ("noise ceilings", ceil)] if ceil is not None else [("summary", summary)])]
    figs = [("group_r_vs_relative_layer", plot_group_layer_curves(scores, ceil))]
    if "fmri_layer_ci" in tables and (tables["fmri_layer_ci"]["level"] == "single").any():
        figs.append(("single_subject_r_vs_relative_layer", plot_subject_layer_curves(tables["fmri_layer_ci"], ceil)))
    figs.append(("best_relative_layer_per_roi", plot_best_layers(tables["fmri_best"])))
    sections.append(Section("Score by layer", "Held-out r (mean over contiguous folds, each fold's r inside its "
                            "test block; PCA and ridge fitted on the training volumes only) against relative "
                            "layer depth, per ROI.", figs, []))
    if null is not None and len(null):
        model = summary.sort_values("group_r", ascending=False)["model"].iloc[0]
        sections.append(Section("Null distribution", "The same fit on circularly shifted targets (refitted, "
                                "shifts of at least the spec's min_shift volumes): the score is centred on 0 "
                                "under the null, and the observed score is compared with it.",
                                [(f"null_vs_observed_{model}", plot_null_vs_observed(null, model))], []))
    cal = tables.get("fmri_calibration")
    if cal is not None and len(cal) and null is not None and len(null):
        figs_c = [(f"calibration_{model}", plot_calibration(cal, model))]
        best = tables["fmri_best"]
        if "null_max_q95" in best and ((best["model"] == model) & (best["level"] == "single")).any():
            figs_c.insert(0, (f"single_null_vs_observed_{model}", plot_subject_nulls(best, model)))
        sections.append(Section("Calibration of the null", calibration_text(cal, model), figs_c,
                                [("null mean and false-positive rates (this run's own null)", cal)]))
    if "fmri_variance_partition" in tables and len(tables["fmri_variance_partition"]):
        sections.append(Section("Beyond the low-level controls", "Variance partitioning on the group mean at each "
                                "model's best layer: cross-validated R^2 of the controls alone (word rate, sound "
                                "power), the model alone and both (banded ridge); unique_lm is what the model adds "
                                "beyond the controls, tested against the same refitted circular shifts of the "
                                "targets (all three fits refitted: unique_lm_null_mean, unique_lm_p, FDR "
                                "unique_lm_q across ROIs); with encoding.fmri.partition_feature_shifts, also the "
                                "stricter null that keeps the controls and targets aligned and shifts only the "
                                "model's columns (unique_lm_p_features, unique_lm_q_features; NaN when off); "
                                "single_unique_lm_*: the subjects' mean unique R^2 "
                                "with a bootstrap 95 % CI over subjects (no null at that level).", [],
                                [("variance partition", tables["fmri_variance_partition"])]))
    if "fmri_group" in tables:
        sections.append(Section("Group-level tests", "Subjects' best-layer scores minus their own null means: "
                                "effect with a bootstrap 95 % CI over subjects, empirical (common shifts), "
                                "sign-flip and t-test p, FDR q across ROIs.", [],
                                [("group tests", tables["fmri_group"])]))
    return sections
