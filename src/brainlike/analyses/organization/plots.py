"""Figures of the organization analysis (tidy tables in, matplotlib Figure out; Agg backend).

Every function takes the rows of one model (filter by ``model`` first) unless it says otherwise.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainlike.errors import BrainlikeError  # noqa: E402
from brainlike.plotting import fig_ax  # noqa: E402

__all__ = ["plot_layer_membership", "plot_model_metrics", "plot_overlap", "plot_pattern_maps", "plot_patterns",
           "plot_roi_effects"]


def _fig_ax(ax, size=(6, 4)):
    return fig_ax(ax, size)


def _title(df: pd.DataFrame, what: str) -> str:
    models = df["model"].unique() if "model" in df and len(df) else []
    return f"{models[0]}: {what}" if len(models) == 1 else what


def plot_patterns(patterns: pd.DataFrame, ax=None):
    """The K representative patterns over time, stacked (table: ``pattern, time, value``)."""
    fig, ax = _fig_ax(ax, (7, 5))
    ks = sorted(patterns["pattern"].unique())
    for i, k in enumerate(ks):
        d = patterns[patterns["pattern"] == k].sort_values("time")
        v = d["value"].to_numpy()
        scale = np.abs(v).max() or 1.0
        ax.plot(d["time"], i + 0.45 * v / scale, lw=0.8)
    ax.set_yticks(range(len(ks)), [f"P{k}" for k in ks])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pattern")
    ax.set_title(_title(patterns, "representative temporal patterns"))
    fig.tight_layout()
    return fig


def plot_layer_membership(layers: pd.DataFrame, ax=None, value: str = "primary_fraction"):
    """Heatmap layer × pattern of the fraction of a layer's neurons whose primary pattern it is.

    (``value="fraction"``: with any non-zero code) (table: ``layer, pattern, <value>``).
    """
    fig, ax = _fig_ax(ax)
    grid = layers.pivot_table(index="layer", columns="pattern", values=value, aggfunc="mean")
    im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", origin="lower")
    ax.set_xticks(range(grid.shape[1]), [f"P{k}" for k in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [str(k) for k in grid.index])
    ax.set_xlabel("pattern")
    ax.set_ylabel("layer (block)")
    labels = {"fraction": "fraction of the layer's neurons (any code)",
              "primary_fraction": "fraction of the layer's neurons (primary)"}
    fig.colorbar(im, ax=ax, label=labels.get(value, value))
    ax.set_title(_title(layers, "sub-group membership by layer"))
    fig.tight_layout()
    return fig


def plot_overlap(overlaps: pd.DataFrame, assignments: pd.DataFrame | None = None, ax=None, metric: str = "dice"):
    """Heatmap pattern × network of the overlap ``metric``.

    Assigned networks are marked with ``*`` (tables: ``pattern, network, <metric>`` and ``pattern, assigned_network``).
    """
    fig, ax = _fig_ax(ax, (7, 4.5))
    grid = overlaps.pivot_table(index="pattern", columns="network", values=metric, aggfunc="mean", sort=False)
    im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="magma", vmin=0 if metric != "correlation" else None)
    ax.set_yticks(range(grid.shape[0]), [f"P{k}" for k in grid.index])
    ax.set_xticks(range(grid.shape[1]), list(grid.columns), rotation=45, ha="right")
    if assignments is not None and len(assignments):
        cols = list(grid.columns)
        for _, row in assignments.iterrows():
            if row.get("assigned_network") is not None and row["assigned_network"] in cols and \
                    row["pattern"] in grid.index:
                ax.text(cols.index(row["assigned_network"]), list(grid.index).index(row["pattern"]), "*",
                        ha="center", va="center", color="cyan", fontsize=14, fontweight="bold")
    fig.colorbar(im, ax=ax, label=metric)
    ax.set_xlabel("network")
    ax.set_ylabel("pattern")
    ax.set_title(_title(overlaps, f"pattern maps vs networks ({metric}; * = assigned)"))
    fig.tight_layout()
    return fig


def plot_pattern_maps(maps: pd.DataFrame, ax=None, patterns: list[int] | None = None, max_patterns: int = 6):
    """Volume data (``i, j, k`` columns).

    Axial maximum-|t| projections of the first patterns' maps, significant voxels outlined. Other data: mean |t| per
    network and pattern (needs ``network``).

    With ``ax`` given, only the first pattern is drawn into it.
    """
    if not len(maps):
        raise BrainlikeError("no map rows to plot")
    ks = patterns or sorted(maps["pattern"].unique())[:max_patterns]
    if not {"i", "j", "k"} <= set(maps.columns):
        if "network" not in maps:
            raise BrainlikeError("maps need i/j/k coordinates or a network column to be plotted")
        fig, ax = _fig_ax(ax, (7, 4))
        m = maps[maps["pattern"].isin(ks)].assign(abs_t=lambda d: d["t"].abs())
        grid = m.pivot_table(index="network", columns="pattern", values="abs_t", aggfunc="mean")
        grid.plot.bar(ax=ax, width=0.8)
        ax.set_ylabel("mean |t|")
        ax.set_title(_title(maps, "map strength per network"))
        fig.tight_layout()
        return fig
    shape = (int(maps["i"].max()) + 1, int(maps["j"].max()) + 1)
    if ax is None:
        fig, axes = plt.subplots(1, len(ks), figsize=(2.0 * len(ks) + 1.2, 2.6), dpi=110, squeeze=False,
                                 layout="constrained")
        axes = axes[0]
    else:
        fig, axes = ax.figure, [ax]
        ks = ks[:1]
    vmax = float(maps.loc[maps["pattern"].isin(ks), "t"].abs().max()) or 1.0
    for a, k in zip(axes, ks):
        d = maps[maps["pattern"] == k]
        img = np.zeros(shape)
        sig = np.zeros(shape, dtype=bool)
        i, j = d["i"].to_numpy(int), d["j"].to_numpy(int)
        np.maximum.at(img, (i, j), d["t"].abs().to_numpy())
        np.logical_or.at(sig, (i, j), d["significant"].to_numpy(bool))
        im = a.imshow(img.T, origin="lower", cmap="hot", vmin=0, vmax=vmax)
        if sig.any():
            a.contour(sig.T.astype(float), levels=[0.5], colors="cyan", linewidths=0.6)
        a.set_title(f"P{k}", fontsize=9)
        a.set_xticks([])
        a.set_yticks([])
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="max |t| (axial projection)")
    fig.suptitle(_title(maps, "pattern t-maps"), fontsize=10)
    return fig


def plot_model_metrics(metrics: pd.DataFrame, ax=None, x: str = "pattern_diversity", y: str = "consistency_seeds"):
    """Models in the diversity–consistency plane (table: one row per model with ``x`` and ``y``)."""
    fig, ax = _fig_ax(ax, (5, 4))
    ax.scatter(metrics[x], metrics[y], s=40)
    for _, row in metrics.iterrows():
        ax.annotate(str(row["model"]), (row[x], row[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.margins(0.2)
    ax.set_title("functional organization across models")
    fig.tight_layout()
    return fig


def plot_roi_effects(effects: pd.DataFrame, assignments: pd.DataFrame, ax=None):
    """Pattern x ROI heatmap of ``z`` against the refitted shift null (real ROI recording).

    ``*`` on the assigned ROI of each assigned pattern and the pattern's subject consistency (vs chance) on the right.

    Tables: ``effects`` (``pattern, roi, z``) and ``assignments`` (``pattern, roi, assigned, consistency,
    chance``) of one model.
    """
    if effects.empty:
        raise BrainlikeError("no ROI effects to plot")
    grid = effects.pivot(index="pattern", columns="roi", values="z")
    rois = list(dict.fromkeys(effects["roi"]))
    grid = grid[rois]
    k = len(grid)
    fig, ax = _fig_ax(ax, (6, max(3.0, 0.12 * k + 1.5)))
    lim = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    asg = assignments.set_index("pattern")
    for i, p in enumerate(grid.index):
        if p in asg.index and bool(asg.loc[p, "assigned"]):
            ax.text(rois.index(asg.loc[p, "roi"]), i, "*", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(rois)), rois)
    step = max(1, k // 16)
    ax.set_yticks(range(0, k, step), [f"P{p}" for p in grid.index[::step]])
    ax.set_xlabel("ROI")
    ax.set_ylabel("pattern")
    fig.colorbar(im, ax=ax, label="z vs refitted shift null")
    cons = assignments["consistency"].mean() if "consistency" in assignments else float("nan")
    chance = assignments["chance"].mean() if "chance" in assignments else float("nan")
    ax.set_title(_title(effects, f"pattern -> ROI (* assigned); subject consistency {cons:.2f} (chance {chance:.2f})"),
                 fontsize=9)
    fig.tight_layout()
    return fig
