"""Matplotlib figures of layer-wise alignment results (tidy tables in, Figure out)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainlike.plotting import fig_ax  # noqa: E402


def plot_layer_scores(scores: pd.DataFrame, ax=None, x: str = "layer", title: str | None = None):
    """Mean held-out r (± standard error across channels) against layer, one line per region.

    Parameters
    ----------
    scores : pd.DataFrame
        table with columns ``layer`` (or ``relative_layer``), ``region``, ``channel``, ``r``;
        one model (several models: use :func:`plot_models_relative_depth`).
    x : str
        ``"layer"`` or ``"relative_layer"``.
    """
    fig, ax = fig_ax(ax)
    for region, df in scores.groupby("region", sort=True):
        g = df.groupby(x)["r"]
        mean, se = g.mean(), g.std(ddof=1) / np.sqrt(g.count())
        ax.plot(mean.index, mean.values, marker="o", ms=3, label=f"{region} (n={df['channel'].nunique()})")
        ax.fill_between(mean.index, (mean - se).values, (mean + se).values, alpha=0.2)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("layer (0 = embeddings)" if x == "layer" else "relative layer depth")
    ax.set_ylabel("encoding performance (Pearson r)")
    ax.set_title(title or (scores["model"].iloc[0] if "model" in scores else ""))
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_models_relative_depth(scores: pd.DataFrame, ax=None, title: str = "score vs relative layer"):
    """Mean r over channels against relative depth, one line per model."""
    fig, ax = fig_ax(ax)
    for model, df in scores.groupby("model", sort=False):
        mean = df.groupby("relative_layer")["r"].mean()
        ax.plot(mean.index, mean.values, marker="o", ms=3, label=model)
    ax.set_xlabel("relative layer depth")
    ax.set_ylabel("mean encoding r")
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
