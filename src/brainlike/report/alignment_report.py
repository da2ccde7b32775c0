"""Figures and the HTML report of a layer-wise alignment run (Mischler et al. 2024 style)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from brainlike.plotting import fig_ax
from brainlike.report.html import Section, write_report


def plot_layer_curves(curve: pd.DataFrame, ax=None):
    """Mean r over significant channels vs relative layer depth, one line per model (± SE)."""
    fig, ax = fig_ax(ax)
    for model, d in curve.groupby("model", sort=False):
        d = d.sort_values("relative_layer")
        ax.plot(d["relative_layer"], d["mean_r"], marker="o", ms=3, label=model)
        if "se_r" in d:
            ax.fill_between(d["relative_layer"], d["mean_r"] - d["se_r"], d["mean_r"] + d["se_r"], alpha=0.15)
    ax.set_xlabel("relative layer depth (0 = embeddings, 1 = last layer)")
    ax.set_ylabel("mean encoding r (significant electrodes)")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_score_vs_capability(per_model: pd.DataFrame, capability: pd.DataFrame, metric: str = "brain_score",
                             measure: str | None = None, ax=None):
    """Scatter of a per-model metric against one capability measure, and a least-squares line.

    The measure with its CI when it has one. ``capability``: the long ``capability`` table (``measure``,
    ``value``, ...) or a frame with a ``capability`` column (one row per model).
    """
    fig, ax = fig_ax(ax)
    if "measure" in capability.columns:
        measure = measure or str(capability["measure"].iloc[0])
        cap = capability[capability["measure"] == measure].rename(columns={"value": "capability"})
    else:
        cap = capability
    cols = [c for c in ("model", "capability", "ci_low", "ci_high") if c in cap.columns]
    d = per_model.merge(cap[cols], on="model").dropna(subset=[metric, "capability"])
    if {"ci_low", "ci_high"} <= set(d.columns) and d["ci_low"].notna().any():
        ax.errorbar(d["capability"], d[metric], xerr=[d["capability"] - d["ci_low"], d["ci_high"] - d["capability"]],
                    fmt="none", ecolor="0.6", lw=1)
    ax.scatter(d["capability"], d[metric], s=30)
    for _, row in d.iterrows():
        ax.annotate(row["model"], (row["capability"], row[metric]), fontsize=8, xytext=(4, 2),
                    textcoords="offset points")
    if len(d) >= 2 and np.ptp(d["capability"]) > 0:
        slope, icpt = np.polyfit(d["capability"], d[metric], 1)
        xs = np.linspace(d["capability"].min(), d["capability"].max(), 20)
        ax.plot(xs, slope * xs + icpt, color="0.4", lw=1, ls="--")
    ax.set_xlabel(measure.replace("_", " ") if measure else "capability (higher = better)")
    ax.set_ylabel(metric.replace("_", " "))
    fig.tight_layout()
    return fig


def plot_best_layer_by_region(best: pd.DataFrame, order: list[str] | None = None, ax=None):
    """Best relative layer of significant electrodes, by region (mean ± SE), one marker series per model."""
    fig, ax = fig_ax(ax)
    d = best[best.get("significant", True)] if "significant" in best else best
    regions = (order or list(d.groupby("region")["hierarchy"].mean().sort_values().index) if "hierarchy" in d
               else sorted(d["region"].unique()))
    models = list(d["model"].unique())
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        g = d[d["model"] == model].groupby("region")["best_relative_layer"]
        mean, se = g.mean().reindex(regions), (g.std(ddof=1) / np.sqrt(g.count())).reindex(regions)
        ax.errorbar(np.arange(len(regions)) + (i - (len(models) - 1) / 2) * width, mean, yerr=se, fmt="o",
                    ms=4, capsize=2, label=model)
    ax.set_xticks(range(len(regions)), regions)
    ax.set_xlabel("region (ordered by hierarchy position)")
    ax.set_ylabel("best relative layer")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_context_curves(context: pd.DataFrame, ax=None):
    """Mean r (over layers' best) vs context window, per model and region."""
    fig, ax = fig_ax(ax)
    best = context.groupby(["model", "region", "context"], as_index=False)["mean_r"].max()
    for (model, region), d in best.groupby(["model", "region"], sort=False):
        d = d.sort_values("context")
        ax.plot(d["context"].clip(lower=0.5), d["mean_r"], marker="o", ms=3, label=f"{model} · {region}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context window (preceding tokens; 0 plotted at 0.5)")
    ax.set_ylabel("peak-layer mean r")
    ax.legend(fontsize=6, frameon=False, ncol=2)
    fig.tight_layout()
    return fig


def alignment_sections(tables: dict[str, pd.DataFrame]) -> list[Section]:
    """The report sections of an alignment run, from its tables (word-locked or fMRI)."""
    if "fmri_summary" in tables:
        from brainlike.report.fmri_report import fmri_sections

        return fmri_sections(tables) + _capability_sections(tables)
    if "wordlevel_average" in tables:
        from brainlike.report.wordlevel_report import wordlevel_sections

        return wordlevel_sections(tables) + _capability_sections(tables)
    sections = [
        Section("Brain score by layer", "Mean held-out Pearson r over significant electrodes against relative layer "
                "depth; the brain score of a model is the peak of its curve.",
                [("score vs relative layer, per model", plot_layer_curves(tables["layer_curve"]))],
                [("brain score per model", tables["brain_scores"])]),
        Section("Hierarchy alignment", "Spearman correlation between each electrode's position in the processing "
                "hierarchy and the relative depth of its best layer (bootstrap 95% CI over electrodes).",
                [("best relative layer by region", plot_best_layer_by_region(tables["best_layers"]))],
                [("hierarchy alignment per model", tables["hierarchy"])]),
    ]
    sections += _capability_sections(tables)
    if "context" in tables:
        ctx = tables["context"]
        pivot = ctx.groupby(["model", "region", "context"], as_index=False)["mean_r"].max()
        sections.append(Section("Context length", "Encoding performance when every word is processed with exactly "
                                "N preceding tokens.", [("context curves", plot_context_curves(ctx))],
                                [("peak-layer mean r by context", pivot)]))
    return sections


def _capability_sections(tables: dict[str, pd.DataFrame]) -> list[Section]:
    if "capability" not in tables:
        return []
    per_model, cap = tables["brain_scores"], tables["capability"]
    measures = [m for m in dict.fromkeys(cap.dropna(subset=["value"])["measure"])]
    figs = [(f"brain score vs {m}", plot_score_vs_capability(per_model, cap, measure=m))
            for m in measures if m.startswith(("syntaxgym", "bits_per_word", "spec", "pll_bits_per_word"))][:6]
    if "rho" in per_model and measures:
        figs.append(("hierarchy alignment vs capability",
                     plot_score_vs_capability(per_model, cap, metric="rho", measure=measures[0])))
    excluded = cap[cap["value"].isna()]
    lines = "".join(f" Excluded: {r.model} from {r.measure} ({r.note})." for r in excluded.itertuples())
    out = [("capability", cap)]
    if "syntaxgym" in tables:
        out.append(("SyntaxGym 2020 accuracy per suite (Wilson 95% CI over items)", tables["syntaxgym"]))
    if "capability_correlation" in tables:
        out.append(("correlation across models (bootstrap CIs over models; p by permutations of model labels, "
                    "p_min the smallest attainable)", tables["capability_correlation"]))
    return [Section("Brain-likeness vs capability", "Capability measures: bits per byte and bits per word on "
                    "held-out text (lower = better; correlated as minus bits), SyntaxGym 2020 accuracy (the mean "
                    "over suites of the fraction of items whose predictions all hold; higher = better), or the "
                    "spec's score." + lines, figs, out)]


def alignment_report(spec, tables: dict[str, pd.DataFrame], path: str | Path) -> Path:
    """Write the HTML report of a run from its tables."""
    return write_report(alignment_sections(tables), path, title=f"brainlike: {spec.name}",
                        subtitle=f"{len(spec.models)} models, dataset {spec.dataset_kind}")
