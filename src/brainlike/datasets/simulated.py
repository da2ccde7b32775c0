"""Simulated ECoG whose regions are driven by the zoo's own layers, with planted brain-likeness per model.

For planted-recovery and null tests only: the answer is known because it was planted. Claims about
brains come from recorded datasets (see :mod:`brainlike.datasets.brennan`).
"""
from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from brainlike.config import StrictModel
from brainlike.datasets import DatasetContext, HierarchySpec
from brainlike.errors import BrainlikeError
from brainlike.models import Features
from brainlike.neural.sources import SubjectData, hierarchy_positions

#: relative depths of the hierarchy levels of the simulated brain (see :func:`zoo_levels`)
LEVEL_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def zoo_levels(features: dict[str, Features], planted: dict[str, float]) -> np.ndarray:
    """Pseudo-features of a simulated brain whose representations mix the models' layers.

    Level ``j`` (relative depth ``LEVEL_DEPTHS[j]``) concatenates, for every model ``m``, its z-scored layer
    at that relative depth scaled by ``sqrt(w_m / p_m)``: a random projection of level ``j`` then draws
    variance ``∝ w_m`` from model ``m``. Models with larger planted weight are therefore more brain-like.

    Returns
    -------
    ndarray
        ``(len(LEVEL_DEPTHS), n_words, Σ p_m)`` float32.
    """
    blocks = []
    for name, feats in features.items():
        w = float(planted.get(name, 0.0))
        if w <= 0:
            continue
        layers = [int(round(d * (feats.n_layers - 1))) for d in LEVEL_DEPTHS]
        scale = np.sqrt(w / feats.hidden_size)
        blocks.append(np.stack([_zscore(feats.layers[k].astype(np.float64)) * scale for k in layers]))
    if not blocks:
        raise BrainlikeError("dataset.planted gives no model a positive weight")
    return np.concatenate(blocks, axis=2).astype(np.float32)


def _planted_levels(kind: str, config, context: DatasetContext) -> np.ndarray:
    """:func:`zoo_levels` of the zoo's features with the spec's planted weights (default: all models 1)."""
    if context.stimulus is None or not context.features:
        raise BrainlikeError(f"{kind} needs the run's stimulus and the zoo's features")
    return zoo_levels(context.features, config.planted or {k: 1.0 for k in context.features})


class SimulatedECoGConfig(StrictModel):
    """``dataset: {kind: simulated-ecog, ...}``."""

    subjects: int | list[str] = Field(2, description="number of simulated subjects, or their labels")
    planted: dict[str, float] = Field(default_factory=dict,
                                      description="how strongly each model's features drive the brain")
    channels_per_region: int = Field(12, ge=2)
    snr: tuple[float, float] = (0.3, 1.5)
    hierarchy: HierarchySpec = Field(
        "hierarchy", description="'hierarchy' (the simulator's level), 'distance:X,Y,Z' or "
                           "'order:A>B>C'")

    @field_validator("subjects")
    @classmethod
    def _some_subjects(cls, v: int | list[str]) -> int | list[str]:
        if (isinstance(v, int) and v < 1) or (isinstance(v, list) and not v):
            raise ValueError(f"simulate at least 1 subject (a count >= 1 or a list of labels), got {v!r}")
        return v

    def labels(self) -> list[str]:
        """The subject labels."""
        if isinstance(self.subjects, list):
            if not self.subjects:
                raise BrainlikeError("dataset.subjects: list at least one subject label")
            return [str(s) for s in self.subjects]
        if self.subjects < 1:
            raise BrainlikeError(f"dataset.subjects: simulate at least 1 subject (got {self.subjects})")
        return [f"sim-{i + 1:02d}" for i in range(self.subjects)]


class SimulatedECoG:
    """The ``simulated-ecog`` dataset plugin."""

    Config = SimulatedECoGConfig
    needs_features = True
    modality = "ecog"

    def load(self, config: SimulatedECoGConfig, context: DatasetContext) -> list[SubjectData]:
        """Simulated subjects (with their ground truth tables) from the zoo's features."""
        from brainlike.neural.simulate import default_regions, simulate_ecog

        levels = _planted_levels("simulated-ecog", config, context)
        out = []
        for i, label in enumerate(config.labels()):
            regions = default_regions(levels.shape[0], n_channels=config.channels_per_region, snr=config.snr)
            sim = simulate_ecog(context.stimulus, levels, regions=regions, seed=context.seed + 1000 * i,
                                subject=label)
            ds = sim.dataset
            ds.hierarchy = hierarchy_positions(ds, config.hierarchy)
            truth = sim.truth[["channel", "best_layer", "is_noise"]].rename(columns={"best_layer": "planted_level"})
            out.append(SubjectData(ds, context.stimulus, truth))
        return out


SIMULATED_ECOG = SimulatedECoG()


class SimulatedFMRIConfig(SimulatedECoGConfig):
    """``dataset: {kind: simulated-fmri, ...}``: BOLD (HRF, AR(1) noise, slow drift) at ``tr`` s."""

    channels_per_region: int = Field(2, ge=1)
    tr: float = Field(2.0, gt=0, description="repetition time, s")
    ar_coef: float = Field(0.3, ge=0, lt=1, description="AR(1) coefficient of the noise per volume")


class SimulatedFMRI:
    """The ``simulated-fmri`` dataset plugin.

    Every subject hears the spec's story; regions are driven by the zoo's layers at planted depths (:func:`zoo_levels`),
    one target per channel.
    """

    Config = SimulatedFMRIConfig
    needs_features = True
    modality = "fmri"

    def load(self, config: SimulatedFMRIConfig, context: DatasetContext) -> list[SubjectData]:
        """The subjects' recordings for ``config``."""
        from brainlike.neural.simulate import default_regions, simulate_fmri

        levels = _planted_levels("simulated-fmri", config, context)
        regions = default_regions(levels.shape[0], n_channels=config.channels_per_region, snr=config.snr)
        out = []
        for i, label in enumerate(config.labels()):
            sim = simulate_fmri(context.stimulus, levels, regions=regions, tr=config.tr, ar_coef=config.ar_coef,
                                seed=context.seed + 1000 * i, subject=label)
            ds = sim.dataset
            ds.meta.setdefault("tr", config.tr)
            truth = sim.truth[["channel", "best_layer", "is_noise"]].rename(columns={"best_layer": "planted_level"})
            out.append(SubjectData(ds, context.stimulus, truth))
        return out


SIMULATED_FMRI = SimulatedFMRI()
