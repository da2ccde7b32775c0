"""The tasks of a sweep: feature extraction per model, encoding fits per (model, subject, layer chunk).

Task functions are module-level and take small frozen dataclasses, so any executor can ship them to
another process or machine. Features travel as a :class:`FeatureFile` (a path into the on-disk feature
cache, memory-mapped by the task: only the chunk's layers are read) when the cache memory-maps them, and
otherwise as the :class:`~brainlike.models.Features` object itself (Ray keeps one copy per node).
"""
from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brainlike.analyses.layer_scores import LayerChunk, fit_layer_chunk
from brainlike.encoding import EncodingOptions
from brainlike.encoding.options import merge_options
from brainlike.errors import BrainlikeError
from brainlike.models import ExtractionOptions, Features, extract_features, load_model
from brainlike.models.extract import cached_features
from brainlike.models.surprisal import surprisal_features
from brainlike.stimulus import Stimulus


@dataclass(frozen=True)
class FeatureFile:
    """Features that live in one memory-mapped file: ``layers`` = ``shape`` ``dtype`` at ``offset`` bytes.

    Opening it maps the file again (no copy), in whichever process or machine the task runs, so the file
    must be on storage that machine sees (``$BRAINLIKE_CACHE`` on a shared file system for a cluster).
    """

    filename: str
    offset: int
    shape: tuple[int, int, int]
    dtype: str
    model: str
    words: tuple[str, ...]
    options: dict = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, features: Features) -> FeatureFile | None:
        """The file behind ``features.layers`` when it is a whole, C-contiguous memory map; else None."""
        a = features.layers
        if not (isinstance(a, np.memmap) and a.filename and isinstance(a.base, mmap.mmap) and a.flags.c_contiguous
                and a.ndim == 3):
            return None
        return cls(str(a.filename), int(a.offset), tuple(int(s) for s in a.shape), a.dtype.str, features.model,
                   tuple(features.words), dict(features.options))

    def open(self) -> Features:
        """Map the file again (read-only, no copy) as :class:`~brainlike.models.Features`."""
        layers = np.memmap(self.filename, dtype=np.dtype(self.dtype), mode="r", offset=self.offset, shape=self.shape)
        return Features(layers=layers, model=self.model, words=self.words, options=dict(self.options))


def open_features(source: Features | FeatureFile) -> Features:
    """:class:`Features` from what an extraction task returned."""
    return source.open() if isinstance(source, FeatureFile) else source


@dataclass(frozen=True)
class ExtractTask:
    """Hidden states of every layer of one model for the stimulus (cached on disk, resumable).

    Attributes
    ----------
    model : str
        Registered name, local path or hub id.
    key : str
        The model's label in the results.
    stimulus : Stimulus
        The words.
    options : ExtractionOptions
        How the hidden states are taken.
    cache_dir : str
        The feature cache root (must be shared storage on a cluster).
    revision : str or None
        Hub revision of the model.
    device : {"auto", "cpu", "cuda"}
        ``"auto"``: a GPU when the worker has one.
    progress : bool
        Show a progress bar.
    """

    model: str
    key: str
    stimulus: Stimulus
    options: ExtractionOptions
    cache_dir: str
    revision: str | None = None
    device: str = "auto"
    progress: bool = False
    features: str = "hidden"


def extract_task(task: ExtractTask) -> Features | FeatureFile:
    """Run one extraction; returns a :class:`FeatureFile` when the features are memory-mapped from disk.

    ``task.features == "surprisal"``: the model's next-word predictions instead
    (:func:`surprisal_features`: one layer, columns surprisal and entropy in bits).
    """
    device = task.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if task.features == "surprisal":
        lm = load_model(task.model, revision=task.revision, device=device)
        return surprisal_features(lm, task.stimulus, task.key, cache_dir=task.cache_dir, progress=task.progress)
    if task.features != "hidden":
        raise BrainlikeError(f"{task.key}: unknown features {task.features!r} (hidden or surprisal)")
    feats = cached_features(task.model, task.stimulus, task.options, task.cache_dir, task.revision)
    if feats is not None:  # a warm run never loads the model
        feats.model = task.key
        return FeatureFile.of(feats) or feats
    lm = load_model(task.model, dtype=task.options.dtype, revision=task.revision, device=device)
    feats = extract_features(lm, task.stimulus, task.options, cache_dir=task.cache_dir, device=device,
                             progress=task.progress)
    feats.model = task.key
    return FeatureFile.of(feats) or feats


def features_digest(task: ExtractTask) -> str:
    """Identity of the features an extraction task gives (model, revision, options, words)."""
    import hashlib
    import json

    parts = {"model": task.model, "revision": task.revision, "options": task.options.__dict__,
             "words": task.stimulus.text_hash()}
    if task.features != "hidden":  # hidden-state digests stay as they were (resume of older runs)
        parts["features"] = task.features
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def layer_chunks(n_layers: int, chunk: int) -> list[tuple[int, ...]]:
    """Consecutive layer indices ``0..n_layers-1`` in chunks of at most ``chunk`` layers."""
    if n_layers < 1 or chunk < 1:
        raise BrainlikeError(f"need n_layers >= 1 and chunk >= 1, got {n_layers} and {chunk}")
    return [tuple(range(a, min(a + chunk, n_layers))) for a in range(0, n_layers, chunk)]


@dataclass(frozen=True)
class FitTask:
    """Cross-validated ridge of one subject's responses on some layers of one model.

    Parameters
    ----------
    model, subject : str
        Labels of the piece (model key, subject id).
    layers : tuple of int
        The chunk's layer indices.
    channels, regions : tuple of str (n_channels,)
        Channel names and region labels of the responses' columns.
    options : EncodingOptions
        Folds, alphas, backend, permutations and seed of the fit (default
        :class:`~brainlike.encoding.options.EncodingOptions`).
    features_digest, responses_digest : str
        Identify the inputs (model and extraction options; sha256 of the responses), so a chunk left by
        a run on other inputs is never reused.
    tag : tuple of (str, int or str) pairs
        Extra partition keys of the result piece (``(("context", 8),)`` for a context-length fit).
    **overrides
        Fields of :class:`EncodingOptions` as keywords (``n_permutations=10``), applied over
        ``options``: the constructor of earlier versions took them one by one.

    Notes
    -----
    Equality and the staging digest (:func:`brainlike.execution.staging.task_config`) cover every field,
    the options included, so a chunk fitted with other settings is fitted again.
    """

    model: str
    subject: str
    layers: tuple[int, ...]
    channels: tuple[str, ...]
    regions: tuple[str, ...]
    options: EncodingOptions = field(default_factory=EncodingOptions)
    features_digest: str = ""
    responses_digest: str = ""
    tag: tuple[tuple[str, int | str], ...] = ()

    def __init__(self, model: str, subject: str, layers: tuple[int, ...], channels: tuple[str, ...],
                 regions: tuple[str, ...], options: EncodingOptions | None = None, features_digest: str = "",
                 responses_digest: str = "", tag: tuple[tuple[str, int | str], ...] = (),
                 **overrides: Any) -> None:
        values = {"model": model, "subject": subject, "layers": tuple(int(k) for k in layers),
                  "channels": tuple(channels), "regions": tuple(regions),
                  "options": merge_options(options, overrides), "features_digest": features_digest,
                  "responses_digest": responses_digest, "tag": tuple(tag)}
        for k, v in values.items():
            object.__setattr__(self, k, v)

    @property
    def partition(self) -> dict:
        """Partition keys of the (model, subject[, tag]) piece this chunk belongs to."""
        return {"model": self.model, "subject": self.subject, **dict(self.tag)}

    @property
    def chunk_id(self) -> str:
        """``"003-005"``: first and last layer of the chunk."""
        return f"{self.layers[0]:03d}-{self.layers[-1]:03d}"


def fit_task(task: FitTask, features: Features | FeatureFile, responses: np.ndarray) -> LayerChunk:
    """Fit the task's layers.

    Parameters
    ----------
    task : FitTask
        What to fit and how.
    features : Features or FeatureFile
        The model's features (all layers; only the task's are read).
    responses : ndarray (n_samples, n_channels) float32
        The subject's responses, aligned to the feature rows.

    Returns
    -------
    LayerChunk
    """
    return fit_layer_chunk(open_features(features), responses, channels=task.channels, regions=task.regions,
                           layers=task.layers, options=task.options, model=task.model, subject=task.subject,
                           progress=False)
