"""Which layers a pattern's neurons come from: the per-layer origin of the patterns (Sun et al. 2024).

A pattern's sub-group is the set of neurons with a non-zero code for it (:mod:`.patterns`). Its *depth* is the
``|code|``-weighted mean relative depth ``(layer - first) / (last - first)`` of its members (0 = first block,
1 = last), with a percentile bootstrap CI over the members, and the fractions of its members in the early, middle
and late thirds of the blocks. The chance depth is the mean depth of all live neurons (0.5 when all layers have
the same width): a pattern's sub-group drawn at random from the neurons has that depth.

The question the paper asks of the layers is whether the brain-mapped patterns come from particular depths. Here
the assigned patterns' mean depth is compared with all patterns' by a permutation of the assigned labels over the
patterns (:func:`assigned_depth`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from brainlike.errors import BrainlikeError

__all__ = ["assigned_depth", "layer_origin", "layer_thirds"]


def layer_thirds(layers: np.ndarray, n_groups: int = 3) -> np.ndarray:
    """``(n_neurons,)`` int64 group of each neuron's block: 0 (early) .. ``n_groups - 1`` (late).

    The distinct blocks, in order, are split into ``n_groups`` contiguous runs of (nearly) equal length
    (``numpy.array_split``); 30 blocks give 10 / 10 / 10, 18 give 6 / 6 / 6, 2 in 3 groups give 1 / 1 / 0.
    """
    layers = np.asarray(layers).reshape(-1)
    uniq = np.unique(layers)
    if n_groups < 1:
        raise BrainlikeError(f"n_groups must be >= 1, got {n_groups}")
    group_of = {}
    for g, part in enumerate(np.array_split(uniq, n_groups)):
        for lay in part:
            group_of[int(lay)] = g
    return np.array([group_of[int(v)] for v in layers], dtype=np.int64)


def _depth(layers: np.ndarray) -> np.ndarray:
    uniq = np.unique(layers)
    span = float(uniq.max() - uniq.min()) if len(uniq) > 1 else 1.0
    return (layers - uniq.min()) / span


def layer_origin(codes: np.ndarray, layers: np.ndarray, dead: np.ndarray | None = None,
                 assignments: pd.DataFrame | None = None, n_boot: int = 500, seed: int = 0,
                 model: str = "") -> pd.DataFrame:
    """One row per pattern: where its sub-group sits in depth.

    Parameters
    ----------
    codes : np.ndarray
        ``(n_neurons, K)`` sparse codes.
    layers : np.ndarray
        ``(n_neurons,)`` block number of each neuron.
    dead : np.ndarray | None
        ``(n_neurons,)`` bool, constant neurons (left out of the chance depth).
    assignments : pd.DataFrame | None
        one row per pattern with ``pattern, assigned`` and ``roi`` (or ``network``), copied into the table.
    n_boot : int
        bootstrap resamples of a pattern's members for the depth CI.
    seed : int
        seeds the bootstrap.
    model : str
        the model's name for the table.

    Returns
    -------
    pd.DataFrame
        ``model, pattern, n_members, depth, depth_low, depth_high, chance_depth, early, middle, late,
        peak_layer`` (+ ``assigned, roi`` from ``assignments``); ``depth`` in [0, 1], the fractions sum to 1.
    """
    codes = np.asarray(codes)
    layers = np.asarray(layers).reshape(-1)
    if codes.shape[0] != len(layers):
        raise BrainlikeError(f"{codes.shape[0]} neurons of codes, {len(layers)} layer labels")
    live = np.ones(len(layers), bool) if dead is None else ~np.asarray(dead, bool)
    depth = _depth(layers)
    third = layer_thirds(layers, 3)
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(codes.shape[1]):
        idx = np.flatnonzero(codes[:, k] != 0)
        row = {"model": model, "pattern": k, "n_members": len(idx)}
        if len(idx):
            w = np.abs(codes[idx, k]).astype(np.float64)
            d = depth[idx]
            boot = np.empty(n_boot)
            for b in range(n_boot):
                j = rng.integers(0, len(idx), len(idx))
                boot[b] = np.average(d[j], weights=w[j])
            frac = np.bincount(third[idx], weights=w, minlength=3) / w.sum()
            counts = pd.Series(w).groupby(layers[idx]).sum()
            row.update(depth=float(np.average(d, weights=w)), depth_low=float(np.percentile(boot, 2.5)),
                       depth_high=float(np.percentile(boot, 97.5)), early=float(frac[0]), middle=float(frac[1]),
                       late=float(frac[2]), peak_layer=int(counts.idxmax()))
        else:
            row.update(depth=np.nan, depth_low=np.nan, depth_high=np.nan, early=np.nan, middle=np.nan, late=np.nan,
                       peak_layer=-1)
        row["chance_depth"] = float(depth[live].mean())
        rows.append(row)
    out = pd.DataFrame(rows)
    if assignments is not None and len(assignments):
        label = "roi" if "roi" in assignments else "network"
        keep = assignments[["pattern", "assigned", label]].rename(columns={label: "roi"})
        out = out.merge(keep, on="pattern", how="left")
    return out


def assigned_depth(origin: pd.DataFrame, n_perm: int = 2000, seed: int = 0) -> dict:
    """The assigned patterns' mean depth against all patterns', by permuting the assigned labels.

    Parameters
    ----------
    origin : pd.DataFrame
        :func:`layer_origin` with an ``assigned`` column.
    n_perm : int
        permutations of ``assigned`` over the patterns with members.
    seed : int
        seeds the permutations.

    Returns
    -------
    dict
        ``assigned_depth`` (mean depth of the assigned patterns; NaN when none), ``all_depth`` (of all patterns),
        ``assigned_depth_p`` (two-sided permutation p of their difference; NaN when none or all are assigned).
    """
    ok = origin[origin["n_members"] > 0]
    d = ok["depth"].to_numpy(np.float64)
    a = ok["assigned"].to_numpy(bool) if "assigned" in ok else np.zeros(len(ok), bool)
    out = {"assigned_depth": float(d[a].mean()) if a.any() else float("nan"),
           "all_depth": float(d.mean()) if len(d) else float("nan"), "assigned_depth_p": float("nan")}
    if 0 < a.sum() < len(a):
        rng = np.random.default_rng(seed)
        obs = abs(d[a].mean() - d.mean())
        null = np.array([abs(d[rng.permutation(a)].mean() - d.mean()) for _ in range(n_perm)])
        out["assigned_depth_p"] = float((1 + (null >= obs - 1e-12).sum()) / (n_perm + 1))
    return out
