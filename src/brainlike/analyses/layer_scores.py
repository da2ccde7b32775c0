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
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from brainlike.encoding import EncodingOptions, contiguous_folds, cross_validated_encoding
from brainlike.encoding.options import merge_options
from brainlike.errors import BrainlikeError
from brainlike.models.features import Features
from brainlike.neural.stats import permutation_test


@dataclass
class LayerChunk:
    """Scores of some layers, and what the channel-level permutation test needs from them.

    Attributes
    ----------
    scores : pandas.DataFrame
        One row per (layer, channel) of the chunk's layers, as :func:`score_layers` returns them but
        without ``p_channel``.
    n_permutations : int
        Permutations behind ``p`` (0: no test).
    obs_max : ndarray (n_channels,) float64, or None
        Max over the chunk's layers of the observed permutation statistic (Pearson r, unitless).
    null_max : ndarray (n_permutations, n_channels) float64, or None
        Max over the chunk's layers of the null statistics.
    """

    scores: pd.DataFrame
    n_permutations: int = 0
    obs_max: np.ndarray | None = None
    null_max: np.ndarray | None = None

    @property
    def layers(self) -> list[int]:
        """The chunk's layer indices, sorted."""
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
    options: EncodingOptions | None = None,
    groups: np.ndarray | None = None,
    model: str | None = None,
    subject: str = "sub-01",
    progress: bool = True,
    **overrides: Any,
) -> LayerChunk:
    """Cross-validated ridge scores of the given layers (all by default); parameters as :func:`score_layers`.

    The permutation seed is the same for every layer, so chunks fitted separately (in other processes or
    on other machines) share the null shifts and :func:`combine_layer_chunks` gives the max-over-layers
    test of the whole model.

    Returns
    -------
    LayerChunk
        The chunk's rows (no ``p_channel``) and its max-over-layers permutation statistics.

    Raises
    ------
    BrainlikeError
        Features and responses of different lengths, NaN/inf responses, wrong numbers of channel names
        or regions, layers out of range, bad encoding options.
    """
    opts = merge_options(options, overrides)
    n_splits, n_permutations = opts.n_splits, opts.n_permutations
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
        res = cross_validated_encoding(X, Y, options=opts, groups=groups)
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
            perm = permutation_test(Y, res.predictions, groups=folds, n_permutations=n_permutations, seed=opts.seed)
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

    Parameters
    ----------
    chunks : sequence of LayerChunk
        Chunks of disjoint layers, fitted with the same ``n_permutations`` and seed.

    Returns
    -------
    pandas.DataFrame
        The rows of all chunks in layer order, with ``p_channel`` when the chunks hold permutations.

    Raises
    ------
    BrainlikeError
        No chunks, overlapping layers, different ``n_permutations`` or channels.
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
    options: EncodingOptions | None = None,
    groups: np.ndarray | None = None,
    model: str | None = None,
    subject: str = "sub-01",
    progress: bool = True,
    **overrides: Any,
) -> pd.DataFrame:
    """Cross-validated ridge encoding of ``responses`` from each layer's features.

    Parameters
    ----------
    features : Features or ndarray (n_layers, n_samples, n_features)
        Hidden states of every layer (0 = embeddings), one row per word / TR; any unit.
    responses : ndarray (n_samples, n_channels) or (n_samples,)
        Neural responses aligned to the feature rows (one row per word for word-locked ECoG, one per TR
        for fMRI); any unit.
    channels, regions : sequence of str (n_channels,), optional
        Channel names and region labels (defaults: ``ch000``..., ``"all"``).
    layers : sequence of int, optional
        Layer indices to fit (default all).
    options : EncodingOptions, optional
        Folds, alphas, backend, permutations and seed (default
        :class:`~brainlike.encoding.options.EncodingOptions`). With ``n_permutations`` > 0, a one-sided
        p-value per layer and channel from circular shifts of the held-out predictions within each
        outer fold (keeps autocorrelation; no refitting), and ``p_channel``, the same test on the max
        over the fitted layers (free of layer selection).
    groups : ndarray (n_samples,), optional
        Run labels for run-aware folds.
    model, subject : str, optional
        Labels of the rows (default: the features' model name, ``"sub-01"``).
    progress : bool
        Show a progress bar over layers.
    **overrides
        Fields of :class:`~brainlike.encoding.options.EncodingOptions` as keywords (``n_splits=4``),
        applied over ``options``.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, channel): ``model, subject, layer, relative_layer, channel, region, r``
        (mean over outer folds of the held-out Pearson r), ``r_pooled`` (r of the concatenated held-out
        predictions), ``alpha`` (median chosen alpha over folds), ``n_samples``; with permutations also
        ``p`` and ``p_channel``.
    """
    chunk = fit_layer_chunk(features, responses, channels=channels, regions=regions, layers=layers,
                            options=merge_options(options, overrides), groups=groups, model=model,
                            subject=subject, progress=progress)
    return combine_layer_chunks([chunk])


def best_layers(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (model, subject, channel): the layer with the highest r, its relative depth and r.

    Parameters
    ----------
    scores : pandas.DataFrame
        A table of :func:`score_layers`.

    Returns
    -------
    pandas.DataFrame
        ``model, subject, channel, region, best_layer, best_relative_layer, best_r``.
    """
    idx = scores.groupby(["model", "subject", "channel"], sort=False)["r"].idxmax()
    out = scores.loc[idx, ["model", "subject", "channel", "region", "layer", "relative_layer", "r"]]
    return out.rename(columns={"layer": "best_layer", "relative_layer": "best_relative_layer",
                               "r": "best_r"}).reset_index(drop=True)
