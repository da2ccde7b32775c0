"""Figures of the geometry experiment: per-layer curves with and without context (tidy tables in).

Colours distinguish (model, condition); with several models the x axis is relative depth
(``layer / n_layers``), otherwise the block index.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainlike.errors import BrainlikeError  # noqa: E402
from brainlike.plotting import fig_ax  # noqa: E402

_LINESTYLES = {"twonn": "-", "mle": "--"}
_LABELS = {"density": "attention graph density", "relative_density": "relative attention density",
           "effective_density": "effective density (exp entropy / allowed)", "entropy": "attention entropy (nats)",
           "normalized_entropy": "normalized attention entropy"}



def _need(table: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BrainlikeError(f"{what} needs columns {missing}; got {list(table.columns)}")
    if table.empty:
        raise BrainlikeError(f"{what}: the table is empty")


def _x(table: pd.DataFrame) -> tuple[str, str]:
    if table["model"].nunique() > 1:
        return "relative_layer", "relative depth (block / n_blocks)"
    return "layer", "transformer block"


def _finish(fig, ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(ax.get_lines()) > 6:  # many curves: legend beside the axes
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()


def plot_attention_density(table: pd.DataFrame, ax=None, measure: str = "density"):
    """Attention measure against layer: mean over heads (± s.e.m. across heads), one line per (model, condition).

    Parameters
    ----------
    table : pd.DataFrame
        :attr:`GeometryResult.attention` (or ``attention_prompts``): ``model, condition, layer,
        relative_layer, head`` and ``measure``.
    measure : str
        ``density``, ``relative_density``, ``effective_density``, ``entropy`` or
        ``normalized_entropy``.
    """
    _need(table, ["model", "condition", "layer", "relative_layer", "head", measure], "plot_attention_density")
    fig, ax = fig_ax(ax)
    x, xlabel = _x(table)
    for (model, condition), df in table.groupby(["model", "condition"], sort=False):
        per_head = df.groupby([x, "head"])[measure].mean().groupby(level=0)
        mean, se = per_head.mean(), per_head.std(ddof=1) / np.sqrt(per_head.count())
        ax.plot(mean.index, mean.values, marker="o", ms=3, label=f"{model} · {condition}")
        ax.fill_between(mean.index, (mean - se.fillna(0)).values, (mean + se.fillna(0)).values, alpha=0.2)
    _finish(fig, ax, xlabel, _LABELS.get(measure, measure), f"{_LABELS.get(measure, measure)} per layer")
    return fig


def plot_attention_heads(table: pd.DataFrame, ax=None, measure: str = "density", model: str | None = None,
                         condition: str | None = None):
    """Heat map of an attention measure, layers × heads, for one model and condition.

    Parameters
    ----------
    table : pd.DataFrame
        :attr:`GeometryResult.attention`.
    model, condition : str | None
        which (default: the first in the table).
    """
    _need(table, ["model", "condition", "layer", "head", measure], "plot_attention_heads")
    model = model or table["model"].iloc[0]
    condition = condition or table["condition"].iloc[0]
    df = table[(table["model"] == model) & (table["condition"] == condition)]
    if df.empty:
        raise BrainlikeError(f"no attention rows for model {model!r} and condition {condition!r}")
    grid = df.pivot_table(index="layer", columns="head", values=measure, aggfunc="mean")
    fig, ax = fig_ax(ax)
    im = ax.imshow(grid.values, aspect="auto", origin="lower", cmap="viridis",
                   extent=(-0.5, grid.shape[1] - 0.5, grid.index.min() - 0.5, grid.index.max() + 0.5))
    fig.colorbar(im, ax=ax, label=_LABELS.get(measure, measure))
    ax.set_xlabel("head")
    ax.set_ylabel("transformer block")
    ax.set_title(f"{model} · {condition}")
    fig.tight_layout()
    return fig


def plot_intrinsic_dimension(table: pd.DataFrame, ax=None, estimator: str | None = None):
    """Intrinsic dimension of the MLP input against layer, one line per (model, condition); solid = TwoNN, dashed = MLE.

    Parameters
    ----------
    table : pd.DataFrame
        :attr:`GeometryResult.intrinsic_dimension`.
    estimator : str | None
        plot only this estimator (default: all).
    """
    _need(table, ["model", "condition", "layer", "relative_layer", "estimator", "intrinsic_dimension"],
          "plot_intrinsic_dimension")
    if estimator is not None:
        table = table[table["estimator"] == estimator]
        if table.empty:
            raise BrainlikeError(f"no rows for estimator {estimator!r}")
    fig, ax = fig_ax(ax)
    x, xlabel = _x(table)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, ((model, condition), df) in enumerate(table.groupby(["model", "condition"], sort=False)):
        for est, d in df.groupby("estimator", sort=False):
            d = d.sort_values(x)
            ax.plot(d[x], d["intrinsic_dimension"], marker="o", ms=3, color=colors[k % len(colors)],
                    ls=_LINESTYLES.get(est, ":"), label=f"{model} · {condition} · {est}")
    _finish(fig, ax, xlabel, "intrinsic dimension of MLP input", "intrinsic dimension per layer")
    return fig


def plot_linear_regions(table: pd.DataFrame, ax=None, estimator: str = "twonn"):
    """log10 of the bound on the number of linear regions each MLP can carve, given its input's intrinsic dimension.

    Against layer; one line per (model, condition).

    Parameters
    ----------
    table : pd.DataFrame
        :attr:`GeometryResult.linear_regions`.
    estimator : str
        which dimension estimate the bound uses (falls back to the first available).
    """
    _need(table, ["model", "condition", "layer", "relative_layer", "estimator", "log10_regions"],
          "plot_linear_regions")
    if estimator not in set(table["estimator"]):
        estimator = table["estimator"].iloc[0]
    table = table[table["estimator"] == estimator]
    fig, ax = fig_ax(ax)
    x, xlabel = _x(table)
    for (model, condition), df in table.groupby(["model", "condition"], sort=False):
        df = df.sort_values(x)
        ax.plot(df[x], df["log10_regions"], marker="o", ms=3, label=f"{model} · {condition}")
    _finish(fig, ax, xlabel, "log10 max. linear regions", f"linear-region bound per layer (d from {estimator})")
    return fig


def plot_context_accuracy(table: pd.DataFrame, ax=None):
    """Exact-match accuracy per condition (bars, grouped by model) with the binomial standard error.

    Parameters
    ----------
    table : pd.DataFrame
        :attr:`GeometryResult.accuracy` (one row per question: ``model, condition, correct``).
    """
    _need(table, ["model", "condition", "correct"], "plot_context_accuracy")
    fig, ax = fig_ax(ax)
    g = table.groupby(["model", "condition"], sort=False)["correct"]
    acc, n = g.mean().astype(float), g.size()
    models = list(dict.fromkeys(table["model"]))
    conditions = list(dict.fromkeys(table["condition"]))
    width = 0.8 / len(conditions)
    for j, condition in enumerate(conditions):
        xs, ys, es = [], [], []
        for i, model in enumerate(models):
            if (model, condition) in acc.index:
                p, k = acc[(model, condition)], n[(model, condition)]
                xs.append(i + (j - (len(conditions) - 1) / 2) * width)
                ys.append(p)
                es.append(np.sqrt(p * (1 - p) / k))
        ax.bar(xs, ys, width=width, yerr=es, capsize=3, label=condition)
    ax.set_xticks(range(len(models)), models)
    ax.set_ylim(0, 1)
    ax.set_ylabel("exact-match accuracy")
    ax.set_title("accuracy with and without context")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_context_effect(table: pd.DataFrame, ax=None, measure: str = "id_twonn"):
    """Change of a per-layer measure with context (condition − ``none``) against layer.

    Parameters
    ----------
    table : pd.DataFrame
        :meth:`GeometryResult.context_effect` (``model, condition, layer, relative_layer, measure,
        change``).
    measure : str
        e.g. ``density``, ``effective_density``, ``id_twonn``, ``id_mle``, ``log10_regions_twonn``.
    """
    _need(table, ["model", "condition", "layer", "relative_layer", "measure", "change"], "plot_context_effect")
    table = table[table["measure"] == measure]
    if table.empty:
        raise BrainlikeError(f"no rows for measure {measure!r}")
    fig, ax = fig_ax(ax)
    x, xlabel = _x(table)
    for (model, condition), df in table.groupby(["model", "condition"], sort=False):
        df = df.sort_values(x)
        ax.plot(df[x], df["change"], marker="o", ms=3, label=f"{model} · {condition}")
    ax.axhline(0, color="0.6", lw=0.8)
    _finish(fig, ax, xlabel, f"change in {measure} vs no context", f"effect of context on {measure}")
    return fig
