"""Figures, summary text and report sections of an fMRI alignment run (tables of
:mod:`brainlike.pipelines.alignment_fmri` in, matplotlib Figures and :class:`Section` out)."""
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


def plot_group_layer_curves(scores: pd.DataFrame, ceilings: pd.DataFrame | None = None):
    """Group level: held-out r vs relative layer per ROI, one line per model, with the null's 95 % band
    (null mean ± 1.96 SD of the refitted shifts) and the noise ceiling of the group mean (dotted)."""
    g = scores[scores["level"] == "group"]
    rois = list(dict.fromkeys(g["roi"]))
    fig, axes = _grid(len(rois))
    for ax, roi in zip(axes, rois):
        d = g[g["roi"] == roi]
        for model, dm in d.groupby("model", sort=False):
            dm = dm.sort_values("relative_layer")
            x = dm["relative_layer"].to_numpy()
            if len(dm) == 1:  # a one-layer baseline: a horizontal line
                ax.axhline(float(dm["r"].iloc[0]), color="0.3", ls="--", lw=1, label=model)
                continue
            line, = ax.plot(x, dm["r"], marker="o", ms=2.5, lw=1.2, label=model)
            lo = dm["null_mean"] - 1.96 * dm["null_sd"]
            hi = dm["null_mean"] + 1.96 * dm["null_sd"]
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.12, lw=0)
        if ceilings is not None and roi in set(ceilings["roi"]):
            ax.axhline(float(ceilings.set_index("roi").loc[roi, "group_ceiling"]), color="k", ls=":", lw=1)
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_title(roi, fontsize=9)
    axes[0].legend(fontsize=6, frameon=False)
    fig.supxlabel("relative layer depth (0 = embeddings, 1 = last layer)", fontsize=8)
    fig.supylabel("held-out r (group mean; band: null 95 %, dotted: ceiling)", fontsize=8)
    fig.tight_layout()
    return fig


def plot_subject_layer_curves(layer_ci: pd.DataFrame, ceilings: pd.DataFrame | None = None, level: str = "single"):
    """Mean over subjects of the held-out r vs relative layer per ROI with its bootstrap 95 % CI over
    subjects; dotted: the leave-one-subject-out ISC (the ceiling of subject-level scores)."""
    d0 = layer_ci[layer_ci["level"] == level]
    rois = list(dict.fromkeys(d0["roi"]))
    fig, axes = _grid(len(rois))
    for ax, roi in zip(axes, rois):
        d = d0[d0["roi"] == roi]
        for model, dm in d.groupby("model", sort=False):
            dm = dm.sort_values("relative_layer")
            if len(dm) == 1:
                ax.axhline(float(dm["mean_r"].iloc[0]), color="0.3", ls="--", lw=1, label=model)
                continue
            line, = ax.plot(dm["relative_layer"], dm["mean_r"], lw=1.2, label=model)
            ax.fill_between(dm["relative_layer"], dm["ci_low"], dm["ci_high"], color=line.get_color(), alpha=0.2,
                            lw=0)
        if ceilings is not None and roi in set(ceilings["roi"]):
            ax.axhline(float(ceilings.set_index("roi").loc[roi, "loo_isc"]), color="k", ls=":", lw=1)
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_title(roi, fontsize=9)
    axes[0].legend(fontsize=6, frameon=False)
    fig.supxlabel("relative layer depth", fontsize=8)
    fig.supylabel(f"mean {level}-subject r (95 % CI over subjects)", fontsize=8)
    fig.tight_layout()
    return fig


def plot_null_vs_observed(null: pd.DataFrame, model: str):
    """The refitted circular-shift null of the group-level score at the model's best layer, per ROI, and the
    observed score (red)."""
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
                 + ". Baselines (the low-level controls, and random-weight twins where the spec lists them) are "
                 "findings, not targets: they are reported with the same statistics.")
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
    if "fmri_variance_partition" in tables and len(tables["fmri_variance_partition"]):
        sections.append(Section("Beyond the low-level controls", "Variance partitioning on the group mean at each "
                                "model's best layer: cross-validated R^2 of the controls alone (word rate, sound "
                                "power), the model alone and both (banded ridge); unique_lm is what the model adds "
                                "beyond the controls (no null for it yet).", [],
                                [("variance partition", tables["fmri_variance_partition"])]))
    if "fmri_group" in tables:
        sections.append(Section("Group-level tests", "Subjects' best-layer scores minus their own null means: "
                                "effect with a bootstrap 95 % CI over subjects, empirical (common shifts), "
                                "sign-flip and t-test p, FDR q across ROIs.", [],
                                [("group tests", tables["fmri_group"])]))
    return sections
