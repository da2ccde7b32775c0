"""Mischler et al. 2024 analyses on tidy layer-score tables.

All functions take the table written by :func:`brainlike.analyses.layer_scores.score_layers` (one row per
model × subject × layer × channel with ``r``; optionally ``p`` from a permutation test) and return tidy
tables.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from brainlike.errors import BrainlikeError

CHANNEL_KEYS = ["model", "subject", "channel"]


def significant_channels(scores: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per (model, subject, channel): whether the channel is predicted better than chance.

    With a ``p_channel`` column (max-over-layers permutation test from ``score_layers``): that p-value,
    then Benjamini–Hochberg across the channels of each model and subject. With only ``p`` (per layer):
    the smallest p over layers, Bonferroni-corrected for the number of layers, then Benjamini–Hochberg
    across the channels of each model and subject.
    Without one: a one-sided test of ``r > 0`` from the Fisher z of the best-layer r (Bonferroni over
    layers, BH across channels), which assumes independent samples and is therefore liberal for
    autocorrelated data — use permutation p-values for papers.

    Returns
    -------
    pd.DataFrame
        columns ``model, subject, channel, p_channel, q, significant``.
    """
    n_layers = scores.groupby(["model", "subject"])["layer"].nunique()
    g = scores.groupby(CHANNEL_KEYS, sort=False)
    if "p_channel" in scores.columns:  # max-over-layers permutation test: already corrected for the layers
        p = g["p_channel"].first().to_frame("p_min")
        n_layers = n_layers * 0 + 1
    elif "p" in scores.columns:
        p = g["p"].min().to_frame("p_min")
    else:
        if "n_samples" not in scores.columns:
            raise BrainlikeError("scores need a 'p' or an 'n_samples' column to test significance")
        best = g.agg(r=("r", "max"), n=("n_samples", "first"))
        z = np.arctanh(np.clip(best["r"].to_numpy(), -0.999999, 0.999999)) * np.sqrt(np.maximum(best["n"] - 3, 1))
        p = pd.DataFrame({"p_min": stats.norm.sf(z)}, index=best.index)
    p = p.reset_index()
    p["p_channel"] = np.minimum(1.0, p["p_min"] * p.set_index(["model", "subject"]).index.map(n_layers).to_numpy())
    p["q"] = p.groupby(["model", "subject"])["p_channel"].transform(
        lambda s: stats.false_discovery_control(s.to_numpy()))
    p["significant"] = p["q"] < alpha
    return p[CHANNEL_KEYS + ["p_channel", "q", "significant"]]


def brain_scores(scores: pd.DataFrame, significance: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Brain score per model: peak over layers of the mean r over significant channels.

    Returns
    -------
    tuple[pd.DataFrame, pd.DataFrame]
        ``(summary, curve)``: summary has one row per model (``brain_score``, ``peak_layer``,
        ``peak_relative_layer``, ``n_channels``, ``n_significant``, ``basis``: "significant channels", or
        "all channels (none significant)" when no channel of any model is significant); curve has the layer-wise mean r
        (``model, layer, relative_layer, mean_r, se_r, n_channels``) over significant channels, pooled
        across subjects.
    """
    significance = significance if significance is not None else significant_channels(scores)
    sig = scores.merge(significance[CHANNEL_KEYS + ["significant"]], on=CHANNEL_KEYS)
    use = sig[sig["significant"]]
    if use.empty:
        use = sig  # nothing significant: report over all channels, flagged by n_significant = 0
    curve = use.groupby(["model", "layer", "relative_layer"], as_index=False).agg(
        mean_r=("r", "mean"), se_r=("r", lambda s: s.std(ddof=1) / np.sqrt(len(s)) if len(s) > 1 else np.nan),
        n_channels=("r", "size"))
    peak = curve.loc[curve.groupby("model")["mean_r"].idxmax()]
    counts = significance.groupby("model").agg(n_channels=("significant", "size"), n_significant=("significant", "sum"))
    summary = peak.rename(columns={"mean_r": "brain_score", "layer": "peak_layer",
                                   "relative_layer": "peak_relative_layer"})[
        ["model", "brain_score", "peak_layer", "peak_relative_layer"]].merge(counts, on="model")
    summary["basis"] = np.where(summary["n_significant"] > 0, "significant channels",
                                "all channels (none significant)")
    return summary.reset_index(drop=True), curve


def best_relative_layers(scores: pd.DataFrame) -> pd.DataFrame:
    """Per channel: the best layer and its depth normalised to [0, 1] (0 = embeddings, 1 = last layer)."""
    idx = scores.groupby(CHANNEL_KEYS, sort=False)["r"].idxmax()
    cols = [c for c in CHANNEL_KEYS + ["region", "hierarchy", "layer", "relative_layer", "r"] if c in scores.columns]
    out = scores.loc[idx, cols].rename(columns={"layer": "best_layer", "relative_layer": "best_relative_layer",
                                                "r": "best_r"})
    return out.reset_index(drop=True)


def hierarchy_alignment(
    best: pd.DataFrame,
    position: str = "hierarchy",
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Spearman correlation between channels' hierarchy position and their best relative layer, per model.

    Parameters
    ----------
    best : pd.DataFrame
        from :func:`best_relative_layers` (restrict it to significant channels first).
    position : str
        the column giving each channel's position in the processing hierarchy (a region order,
        a distance from primary auditory cortex, a latency).
    n_boot : int
        bootstrap resamples of channels for the confidence interval.

    Returns
    -------
    pd.DataFrame
        one row per model: ``rho``, ``p`` (Spearman), ``ci_low``, ``ci_high``, ``n_channels``.
    """
    if position not in best.columns:
        raise BrainlikeError(f"no {position!r} column: give each channel a hierarchy position "
                             "(NeuralDataset.hierarchy)")
    rng = np.random.default_rng(seed)
    rows = []
    for model, df in best.groupby("model", sort=False):
        df = df.dropna(subset=[position])
        x, y = df[position].to_numpy(float), df["best_relative_layer"].to_numpy(float)
        if len(df) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
            rows.append(dict(model=model, rho=np.nan, p=np.nan, ci_low=np.nan, ci_high=np.nan, n_channels=len(df)))
            continue
        rho, p = stats.spearmanr(x, y)
        idx = rng.integers(0, len(df), size=(n_boot, len(df)))
        boots = np.array([_spearman(x[i], y[i]) for i in idx])
        lo, hi = np.nanquantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
        rows.append(dict(model=model, rho=float(rho), p=float(p), ci_low=float(lo), ci_high=float(hi),
                         n_channels=len(df)))
    return pd.DataFrame(rows, columns=["model", "rho", "p", "ci_low", "ci_high", "n_channels"])


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return np.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def capability_correlation(
    per_model: pd.DataFrame,
    capability: pd.DataFrame,
    metrics: tuple[str, ...] = ("brain_score", "rho"),
    capability_column: str = "capability",
    n_perm: int = 10000,
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Correlation across models of brain score / hierarchy alignment with capability.

    Parameters
    ----------
    per_model : pd.DataFrame
        one row per model with the ``metrics`` columns.
    capability : pd.DataFrame
        one row per model with ``capability_column`` (higher = more capable; pass
        ``-bits_per_byte`` for perplexity-based capability).
    n_boot : int
        bootstrap resamples of models for the CIs of Pearson r and Spearman rho (percentile;
        resamples whose values are all tied are dropped).

    Returns
    -------
    pd.DataFrame
        one row per metric: ``pearson_r`` (``pearson_ci_low``, ``pearson_ci_high``), ``spearman_rho``
        (``spearman_ci_low``, ``spearman_ci_high``), ``p_perm`` (two-sided permutation p-value of Pearson r
        over model labels; exact enumeration of all n! orders when there are at most 8 models, else
        ``(1 + #{|r_perm| >= |r|}) / (1 + n_perm)``), ``p_min`` (the smallest p the test can give: 1/n! or
        1/(1 + n_perm); with few models no correlation can be significant), ``n_models``, ``models``.
    """
    df = per_model.merge(capability[["model", capability_column]], on="model")
    rng = np.random.default_rng(seed)
    rows = []
    for m in metrics:
        if m not in df.columns:
            continue
        d = df.dropna(subset=[m, capability_column])
        x, y = d[capability_column].to_numpy(float), d[m].to_numpy(float)
        n = len(d)
        base = dict(metric=m, n_models=n, models=", ".join(map(str, d["model"])))
        if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
            rows.append(dict(base, pearson_r=np.nan, pearson_ci_low=np.nan, pearson_ci_high=np.nan,
                             spearman_rho=np.nan, spearman_ci_low=np.nan, spearman_ci_high=np.nan, p_perm=np.nan,
                             p_min=np.nan))
            continue
        r = float(np.corrcoef(x, y)[0, 1])
        if n <= 8:
            import itertools
            import math

            perms = np.array(list(itertools.permutations(range(n))))
            null = np.array([np.corrcoef(x, y[p])[0, 1] for p in perms])
            p_perm = float((np.sum(np.abs(null) >= abs(r) - 1e-12)) / len(null))
            p_min = 1.0 / math.factorial(n)
        else:
            null = np.array([np.corrcoef(x, y[rng.permutation(n)])[0, 1] for _ in range(n_perm)])
            p_perm = float((1 + np.sum(np.abs(null) >= abs(r) - 1e-12)) / (1 + n_perm))
            p_min = 1.0 / (1 + n_perm)
        boots_p, boots_s = [], []
        for _ in range(n_boot):
            i = rng.integers(0, n, n)
            if np.ptp(x[i]) == 0 or np.ptp(y[i]) == 0:
                continue
            boots_p.append(np.corrcoef(x[i], y[i])[0, 1])
            boots_s.append(_spearman(x[i], y[i]))
        q = [(1 - ci) / 2, 1 - (1 - ci) / 2]
        (plo, phi), (slo, shi) = (np.nanquantile(b, q) if len(b) else (np.nan, np.nan) for b in (boots_p, boots_s))
        rows.append(dict(base, pearson_r=r, pearson_ci_low=float(plo), pearson_ci_high=float(phi),
                         spearman_rho=float(stats.spearmanr(x, y)[0]), spearman_ci_low=float(slo),
                         spearman_ci_high=float(shi), p_perm=p_perm, p_min=p_min))
    cols = ["metric", "pearson_r", "pearson_ci_low", "pearson_ci_high", "spearman_rho", "spearman_ci_low",
            "spearman_ci_high", "p_perm", "p_min", "n_models", "models"]
    return pd.DataFrame(rows, columns=cols)


def context_curves(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean r per (model, context, layer, region) from scores computed at several context windows.

    ``scores`` must have a ``context`` column (tokens; ``-1`` or NaN for "all"). Also returns, per
    row, ``gain`` = mean r minus the mean r at the shortest context of the same model/layer/region.
    """
    if "context" not in scores.columns:
        raise BrainlikeError("scores need a 'context' column (one sweep per context window)")
    cur = scores.groupby(["model", "context", "layer", "relative_layer", "region"], as_index=False)["r"].mean()
    shortest = cur.loc[cur.groupby(["model", "layer", "region"])["context"].idxmin()][
        ["model", "layer", "region", "r"]].rename(columns={"r": "r_shortest"})
    cur = cur.merge(shortest, on=["model", "layer", "region"])
    cur["gain"] = cur["r"] - cur["r_shortest"]
    return cur.rename(columns={"r": "mean_r"}).drop(columns="r_shortest")
