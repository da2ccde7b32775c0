"""Encoding scores for every layer of a model: the core table of layer-wise brain alignment.

:func:`score_layers` fits all layers at once. For distributed sweeps the same work splits into layer
chunks: :func:`fit_layer_chunk` fits some layers and keeps, per channel, the max over its layers of the
observed and null permutation statistics; :func:`combine_layer_chunks` takes the max over chunks and
adds the channel-level ``p_channel``. The max is associative, so any chunking gives exactly the table
that :func:`score_layers` gives.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from brainlike.encoding import contiguous_folds, cross_validated_encoding
from brainlike.errors import BrainlikeError
from brainlike.models.features import Features
from brainlike.neural.stats import permutation_test


@dataclass
class LayerChunk:
    """Scores of some layers, and what the channel-level permutation test needs from them.

    Attributes:
        scores: one row per (layer, channel) of the chunk's layers, as :func:`score_layers` returns them
            but without ``p_channel``.
        n_permutations: permutations behind ``p`` (0: no test).
        obs_max: ``(n_channels,)`` max over the chunk's layers of the observed permutation statistic, or None.
        null_max: ``(n_permutations, n_channels)`` max over the chunk's layers of the null statistics, or None.
    """

    scores: pd.DataFrame
    n_permutations: int = 0
    obs_max: np.ndarray | None = None
    null_max: np.ndarray | None = None

    @property
    def layers(self) -> list[int]:
        return sorted(set(int(k) for k in self.scores["layer"]))


def _layer_array(features: Features | np.ndarray) -> np.ndarray:
    arr = features.layers if isinstance(features, Features) else features
    if not isinstance(arr, np.ndarray):
        arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim != 3:
        raise BrainlikeError(f"features must be (n_layers, n_samples, n_features); got shape {arr.shape}")
    return arr  # memory-mapped features stay on disk; each layer is read when it is fitted


def fit_layer_chunk(
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
) -> LayerChunk:
    """Cross-validated ridge scores of the given layers (all by default); arguments as :func:`score_layers`.

    The permutation seed is the same for every layer, so chunks fitted separately (in other processes or
    on other machines) share the null shifts and :func:`combine_layer_chunks` gives the max-over-layers
    test of the whole model.
    """
    arr = _layer_array(features)
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
    bad_layers = [k for k in layers if not 0 <= k < n_layers]
    if bad_layers:
        raise BrainlikeError(f"layers {bad_layers} out of range: the features have {n_layers} layers "
                             f"(0..{n_layers - 1})")
    name = model or (features.model if isinstance(features, Features) else "model")
    frames = []
    obs_max = null_max = None  # max over layers: a channel-level test free of layer selection
    folds = None
    for k in tqdm(layers, desc=f"encoding {name}", unit="layer", disable=not progress, leave=False):
        X = np.asarray(arr[k], dtype=np.float32)
        res = cross_validated_encoding(X, Y, n_splits=n_splits, inner_splits=inner_splits, alphas=alphas,
                                       groups=groups, backend=backend)
        frame = pd.DataFrame({
            "model": name, "subject": subject, "layer": k, "relative_layer": k / max(n_layers - 1, 1),
            "channel": channels, "region": regions, "r": res.fold_scores.mean(axis=0).astype(np.float64),
            "r_pooled": res.scores.astype(np.float64),
            "alpha": np.median(res.alphas, axis=0).astype(np.float64), "n_samples": Y.shape[0],
        })
        if n_permutations > 0:
            if folds is None:
                folds = np.empty(Y.shape[0], dtype=np.int64)
                for f, (_, test) in enumerate(contiguous_folds(Y.shape[0], n_splits, groups)):
                    folds[test] = f
            # the same seed for every layer: the same shifts, so the max over layers of the null is valid
            perm = permutation_test(Y, res.predictions, groups=folds, n_permutations=n_permutations, seed=seed)
            frame["p"] = perm.pvalues.astype(np.float64)
            obs_max = perm.scores if obs_max is None else np.maximum(obs_max, perm.scores)
            null_max = perm.null if null_max is None else np.maximum(null_max, perm.null)
        frames.append(frame)
    if not frames:
        raise BrainlikeError("no layers to fit")
    return LayerChunk(pd.concat(frames, ignore_index=True), n_permutations, obs_max, null_max)


def combine_layer_chunks(chunks: Sequence[LayerChunk]) -> pd.DataFrame:
    """The table of :func:`score_layers` from chunks of the same (model, subject), in layer order.

    ``p_channel = (1 + #{max-over-layers null >= max-over-layers observed}) / (1 + n_permutations)`` with
    the maxima taken over every chunk (each chunk holds the max over its own layers).
    """
    if not chunks:
        raise BrainlikeError("no layer chunks to combine")
    chunks = sorted(chunks, key=lambda c: min(c.layers))
    perms = {c.n_permutations for c in chunks}
    if len(perms) != 1:
        raise BrainlikeError(f"layer chunks were fitted with different n_permutations: {sorted(perms)}")
    seen: set[int] = set()
    for c in chunks:
        overlap = seen & set(c.layers)
        if overlap:
            raise BrainlikeError(f"layer chunks overlap in layers {sorted(overlap)}")
        seen |= set(c.layers)
    n_perm = perms.pop()
    frames = [c.scores for c in chunks]
    if n_perm > 0:
        shapes = {(c.obs_max.shape, c.null_max.shape) for c in chunks}
        if len(shapes) != 1:
            raise BrainlikeError("layer chunks disagree on the channels: permutation arrays of shapes "
                                 f"{sorted(shapes)}")
        obs_max = chunks[0].obs_max
        null_max = chunks[0].null_max
        for c in chunks[1:]:
            obs_max = np.maximum(obs_max, c.obs_max)
            null_max = np.maximum(null_max, c.null_max)
        p_channel = ((1 + (null_max >= obs_max[None, :]).sum(axis=0)) / (1 + n_perm)).astype(np.float64)
        n_ch = p_channel.shape[0]
        if any(len(f) % n_ch for f in frames):
            raise BrainlikeError(f"layer chunk tables must hold {n_ch} channels per layer")
        # rows are layer-major with the channels in the same order in every layer
        frames = [f.assign(p_channel=np.tile(p_channel, len(f) // n_ch)) for f in frames]
    return pd.concat(frames, ignore_index=True)


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
            held-out predictions within each outer fold (keeps autocorrelation; no refitting), and
            ``p_channel``, the same test on the max over the fitted layers (free of layer selection).

    Returns:
        A tidy table, one row per (layer, channel): ``model, subject, layer, relative_layer, channel,
        region, r`` (held-out Pearson r over all outer folds), ``alpha`` (median chosen alpha over folds).
    """
    chunk = fit_layer_chunk(features, responses, channels=channels, regions=regions, layers=layers,
                            n_splits=n_splits, inner_splits=inner_splits, alphas=alphas, groups=groups,
                            backend=backend, model=model, subject=subject, n_permutations=n_permutations,
                            seed=seed, progress=progress)
    return combine_layer_chunks([chunk])


def best_layers(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (model, subject, channel): the layer with the highest r, its relative depth and r."""
    idx = scores.groupby(["model", "subject", "channel"], sort=False)["r"].idxmax()
    out = scores.loc[idx, ["model", "subject", "channel", "region", "layer", "relative_layer", "r"]]
    return out.rename(columns={"layer": "best_layer", "relative_layer": "best_relative_layer",
                               "r": "best_r"}).reset_index(drop=True)
