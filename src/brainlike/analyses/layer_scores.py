"""Encoding scores for every layer of a model: the core table of layer-wise brain alignment."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from brainlike.encoding import contiguous_folds, cross_validated_encoding
from brainlike.errors import BrainlikeError
from brainlike.models.features import Features
from brainlike.neural.stats import permutation_test


def score_layers(
    features: Features | np.ndarray,
    responses: np.ndarray,
    *,
    channels: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    n_splits: int = 5,
    inner_splits: int = 5,
    alphas: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    backend: str = "numpy",
    model: str | None = None,
    subject: str = "sub-01",
    n_permutations: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Cross-validated ridge encoding of ``responses`` from each layer's features.

    Args:
        features: :class:`Features` or an array ``(n_layers, n_samples, n_features)``.
        responses: ``(n_samples, n_channels)`` neural responses aligned to the feature rows (e.g. one row
            per word for word-locked ECoG, one per TR for fMRI).
        channels / regions: ``n_channels`` names and region labels (defaults: ``ch000``…, ``"all"``).
        layers: layer indices to fit (default all, 0 = embeddings).
        n_splits / inner_splits: outer contiguous folds (scores) and inner folds (alpha per channel).
        groups: ``(n_samples,)`` run labels for run-aware folds.
        n_permutations: if > 0, a one-sided p-value per layer and channel from circular shifts of the
            held-out predictions within each outer fold (keeps autocorrelation; no refitting).

    Returns:
        A tidy table, one row per (layer, channel): ``model, subject, layer, relative_layer, channel,
        region, r`` (held-out Pearson r over all outer folds), ``alpha`` (median chosen alpha over folds).
    """
    arr = features.layers if isinstance(features, Features) else np.asarray(features, dtype=np.float32)
    if arr.ndim != 3:
        raise BrainlikeError(f"features must be (n_layers, n_samples, n_features); got shape {arr.shape}")
    Y = np.asarray(responses, dtype=np.float32)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.shape[0] != arr.shape[1]:
        raise BrainlikeError(f"features have {arr.shape[1]} rows (words/TRs) but responses have {Y.shape[0]}; "
                             "align the responses to the stimulus first")
    if not np.isfinite(Y).all():
        bad = np.flatnonzero(~np.isfinite(Y).all(axis=0))
        raise BrainlikeError(f"responses contain NaN/inf in {bad.size} channels (first: column {bad[0]}); "
                             "exclude them (NeuralDataset.drop_bad_channels)")
    n_ch = Y.shape[1]
    channels = list(channels) if channels is not None else [f"ch{i:03d}" for i in range(n_ch)]
    regions = list(regions) if regions is not None else ["all"] * n_ch
    if len(channels) != n_ch or len(regions) != n_ch:
        raise BrainlikeError(f"{n_ch} channels but {len(channels)} names and {len(regions)} regions")
    n_layers = arr.shape[0]
    layers = list(range(n_layers)) if layers is None else [int(k) for k in layers]
    name = model or (features.model if isinstance(features, Features) else "model")
    frames = []
    obs_max = null_max = None  # max over layers: a channel-level test free of layer selection
    for k in tqdm(layers, desc=f"encoding {name}", unit="layer", disable=not progress, leave=False):
        res = cross_validated_encoding(arr[k], Y, n_splits=n_splits, inner_splits=inner_splits, alphas=alphas,
                                       groups=groups, backend=backend)
        frame = pd.DataFrame({
            "model": name, "subject": subject, "layer": k, "relative_layer": k / max(n_layers - 1, 1),
            "channel": channels, "region": regions, "r": res.fold_scores.mean(axis=0).astype(np.float64),
            "r_pooled": res.scores.astype(np.float64),
            "alpha": np.median(res.alphas, axis=0).astype(np.float64), "n_samples": Y.shape[0],
        })
        if n_permutations > 0:
            folds = np.empty(Y.shape[0], dtype=np.int64)
            for f, (_, test) in enumerate(contiguous_folds(Y.shape[0], n_splits, groups)):
                folds[test] = f
            # the same seed for every layer: the same shifts, so the max over layers of the null is valid
            perm = permutation_test(Y, res.predictions, groups=folds, n_permutations=n_permutations, seed=seed)
            frame["p"] = perm.pvalues.astype(np.float64)
            obs_max = perm.scores if obs_max is None else np.maximum(obs_max, perm.scores)
            null_max = perm.null if null_max is None else np.maximum(null_max, perm.null)
        frames.append(frame)
    if n_permutations > 0:
        p_channel = (1 + (null_max >= obs_max[None, :]).sum(axis=0)) / (1 + n_permutations)
        for frame in frames:
            frame["p_channel"] = p_channel.astype(np.float64)
    return pd.concat(frames, ignore_index=True)


def best_layers(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (model, subject, channel): the layer with the highest r, its relative depth and r."""
    idx = scores.groupby(["model", "subject", "channel"], sort=False)["r"].idxmax()
    out = scores.loc[idx, ["model", "subject", "channel", "region", "layer", "relative_layer", "r"]]
    return out.rename(columns={"layer": "best_layer", "relative_layer": "best_relative_layer", "r": "best_r"}).reset_index(drop=True)
