"""The organization analysis end to end (Sun et al. 2024, arXiv 2410.19542), driven by a config.

For every model: MLP neuron activations per word (:mod:`brainlike.models.neurons`) → TR-level,
z-scored time courses (:mod:`.timecourses`) → K representative patterns by sparse dictionary learning
(:mod:`.patterns`) → HRF-convolved pattern regressors of a voxel-wise GLM, one t-map per pattern with FDR
correction (:mod:`.glm`) → overlap with functional network templates and a permutation null
(:mod:`.networks`) → diversity / consistency metrics (:mod:`.metrics`).

The brain data are either given (a 4-D NIfTI + atlas, or an ``(n_trs, n_columns)`` array + one label
per column), or simulated from the first model's neurons (:mod:`.simulate`): then the planted
sub-group → network assignment is known and the ``recovery`` table says whether it was found.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from brainlike.analyses.organization.brain import BrainData
from brainlike.analyses.organization.glm import GLMResult, design_matrix, fit_glm, hrf_regressors
from brainlike.analyses.organization.layers import assigned_depth, layer_origin, layer_thirds
from brainlike.analyses.organization.metrics import (
    assignment_agreement,
    diversity_bootstrap,
    diversity_chance,
    map_diversity,
    match_patterns,
    network_entropy,
    pattern_diversity,
    stability_chance,
)
from brainlike.analyses.organization.networks import NetworkAtlas, load_atlas, match_networks, overlap_scores
from brainlike.analyses.organization.patterns import PatternLearner, PatternResult
from brainlike.analyses.organization.roi import ROIOrganization, circular_shifts, cosine_drifts, roi_organization
from brainlike.analyses.organization.simulate import SimulatedOrganization, plant_groups, simulate_network_fmri
from brainlike.analyses.organization.timecourses import frame_times, iter_timecourses, tr_matrix
from brainlike.config import RUN_FIELDS, StimulusSpec, format_validation_error, resolve_stimulus
from brainlike.config import StrictModel as _Strict
from brainlike.errors import BrainlikeError
from brainlike.models.neurons import NeuronActivations, NeuronOptions, extract_neurons
from brainlike.stimulus import Stimulus

__all__ = ["ModelOrganization", "OrganizationConfig", "OrganizationResult", "ROIRecording", "analyse_model_roi",
           "brennan_recording", "load_stimulus", "run_organization"]


#: the story of the analysis: the same reader and word times as every other analysis
StimulusConfig = StimulusSpec


class DataConfig(_Strict):
    """Brain data: ``simulated`` (ground truth from a model's neurons), ``nifti``, ``array``, or ``brennan2016``.

    (the real ROI recording shipped with brainlike: 27 listeners x 362 volumes x 6 ROIs, analysed per subject, see
    :mod:`.roi`).
    """

    kind: Literal["simulated", "nifti", "array", "brennan2016"] = "simulated"
    bold: str | None = Field(None, description="4-D NIfTI (nifti) or .npy (n_trs, n_columns) (array)")
    mask: str | None = Field(None, description="nifti: brain mask image (default: non-constant voxels)")
    tr: float | None = Field(None, gt=0, description="seconds (nifti default: header); simulated default 2.0")
    tr_offset: float = Field(0.0, description="volume i is at (i + tr_offset) * tr s on the stimulus clock")
    # simulation
    planted_model: str | None = Field(None, description="simulated: model whose neurons drive the voxels "
                                                        "(default: the first model)")
    n_groups: int = Field(3, ge=1, description="simulated: planted neuron sub-groups (= driven networks)")
    n_networks: int = Field(6, ge=2, description="simulated: networks in the atlas")
    snr: float = Field(0.3, gt=0, description="simulated: signal/noise variance ratio in driven voxels")
    grid: int = Field(12, ge=4)
    n_null_driven: int = Field(0, ge=0, description="simulated: networks driven by an AR(1) signal the model does "
                                                    "not contain (a null the analysis must not assign)")
    seed: int = 0
    # brennan2016
    radius: Literal["6mm", "10mm"] = Field("6mm", description="brennan2016: ROI sphere radius")
    subjects: list[str] | None = Field(None, description="brennan2016: subject labels (default all 27)")

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.kind in ("nifti", "array") and not self.bold:
            raise ValueError(f"data.kind {self.kind!r} needs data.bold")
        if self.kind == "array" and not self.tr:
            raise ValueError("data.kind 'array' needs data.tr")
        if self.kind == "simulated" and self.n_networks <= self.n_groups + self.n_null_driven:
            raise ValueError("simulated data need more networks than planted groups (null networks)")
        return self


class NeuronsConfig(_Strict):
    level: Literal["word", "token"] = "word"
    pooling: Literal["last", "mean"] = "last"
    layers: list[int] | None = Field(None, description="1-based blocks (default all)")
    max_window: int | None = Field(None, ge=2)
    chunk_rows: int = Field(256, ge=1)
    block_size: int = Field(4096, ge=1, description="neurons per block when streaming")
    binning: Literal["mean", "sum", "lanczos"] = Field("mean", description="words → TRs")


class PatternsConfig(_Strict):
    n_patterns: int = Field(64, ge=1, description="K representative patterns (64 as in Sun et al. 2024)")
    alpha: float = Field(0.1, ge=0, description="sparsity of the codes (correlation units)")
    batch_size: int = Field(256, ge=1)
    n_epochs: int = Field(20, ge=1)
    max_in_memory: int = Field(20000, ge=10)
    positive_code: bool = False
    backend: Literal["numpy", "sklearn"] = "numpy"
    coder: Literal["numba", "numpy"] = Field("numba", description="sparse coder: compiled (numba) or vectorised numpy "
                                             "(same objective and tolerance)")
    init: Literal["svd", "random"] = Field("svd", description="dictionary initialisation of the main fit")
    seed: int = 0


class GLMConfig(_Strict):
    hrf_model: Literal["glover", "spm"] = "glover"
    oversampling: int = Field(16, ge=1)
    high_pass: float | None = Field(1.0 / 128.0, ge=0, description="cosine drift cut-off, Hz")
    noise_model: Literal["ols", "ar1"] = "ar1"
    tail: Literal["two-sided", "greater"] = "two-sided"
    fdr_alpha: float = Field(0.05, gt=0, lt=1)


class NetworksConfig(_Strict):
    atlas: str | None = Field(None, description="yeo7, yeo17, schaefer-<n>-<7|17>, or a label file "
                                                "(required unless the data are simulated)")
    names: str | None = Field(None, description="names table (index, name[, network])")
    group_parcels: bool | None = None
    data_dir: str | None = None
    metric: Literal["dice", "jaccard", "correlation"] = "dice"
    null: Literal["voxels", "shift"] = Field("voxels", description="voxels: shuffle the voxels' network labels "
                                             "(tests spatial clustering only); shift: circularly shift the pattern "
                                             "regressors and refit the GLM (tests the temporal coupling)")
    n_shifts: int = Field(200, ge=1, description="null: shift -- distinct circular lags")
    min_shift: int = Field(20, ge=1, description="null: shift -- smallest lag, volumes")
    n_permutations: int = Field(1000, ge=0)
    alpha: float = Field(0.05, gt=0, lt=1)
    seed: int = 0


class ConsistencyConfig(_Strict):
    seeds: list[int] = Field(default_factory=lambda: [1, 2], description="extra dictionary-learning seeds")
    halves: bool = Field(True, description="GLM on each half of the volumes with the same patterns")
    init: Literal["random", "svd"] = Field("random", description="initialisation of the refits: random (each seed "
                                           "starts elsewhere) or svd (deterministic: only the batch order differs)")
    n_chance: int = Field(200, ge=1, description="phase-randomised pattern sets for the chance levels")
    n_boot: int = Field(500, ge=1, description="block-bootstrap resamples of the volumes (diversity CI)")


class RoiConfig(_Strict):
    """The per-subject ROI analysis of a real recording (``data.kind: brennan2016``), see :mod:`.roi`."""

    controls: bool = Field(True, description="word rate and sound power as nuisance regressors")
    n_shifts: int = Field(200, ge=2, description="refitted circular shifts of the pattern regressors (the null)")
    min_shift: int = Field(20, ge=1, description="smallest shift, volumes")
    n_boot: int = Field(1000, ge=10, description="bootstrap resamples of subjects (consistency CI)")
    alpha: float = Field(0.05, gt=0, lt=1, description="FDR level")


class SweepConfig(_Strict):
    """Sensitivity to K and the dictionary's alpha: every combination refitted (real-recording path)."""

    n_patterns: list[int] = Field(default_factory=list, description="K values, e.g. [8, 16, 32, 64]")
    alpha: list[float] = Field(default_factory=list, description="alpha values (default: patterns.alpha)")
    n_shifts: int = Field(100, ge=2)
    n_boot: int = Field(200, ge=10)


class LayerGroupsConfig(_Strict):
    """Patterns learned separately from contiguous groups of blocks (real-recording path): which depth maps."""

    n_groups: int = Field(0, ge=0, description="groups of blocks (3: early / middle / late thirds); 0: off")
    n_shifts: int = Field(100, ge=2, description="refitted circular shifts per group")
    n_boot: int = Field(200, ge=10)


class OrganizationConfig(_Strict):
    """The whole analysis (YAML ``organization:`` section or a standalone spec)."""

    name: str = "organization"
    models: list[str] = Field(..., min_length=1)
    stimulus: StimulusConfig = Field(default_factory=StimulusConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    neurons: NeuronsConfig = Field(default_factory=NeuronsConfig)
    patterns: PatternsConfig = Field(default_factory=PatternsConfig)
    glm: GLMConfig = Field(default_factory=GLMConfig)
    networks: NetworksConfig = Field(default_factory=NetworksConfig)
    consistency: ConsistencyConfig = Field(default_factory=ConsistencyConfig)
    roi: RoiConfig = Field(default_factory=RoiConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    layer_groups: LayerGroupsConfig = Field(default_factory=LayerGroupsConfig)

    @model_validator(mode="after")
    def _check(self) -> OrganizationConfig:
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"model names must be unique: {self.models}")
        if self.data.kind not in ("simulated", "brennan2016") and not self.networks.atlas:
            raise ValueError("real data need networks.atlas (yeo7, schaefer-400-7, or a label file)")
        if self.data.planted_model and self.data.planted_model not in self.models:
            raise ValueError(f"data.planted_model {self.data.planted_model!r} is not in models")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> OrganizationConfig:
        """Read a YAML file (the whole file, or its ``organization:`` section); errors name the field."""
        from brainlike.config import read_yaml_mapping

        raw = read_yaml_mapping(path)
        if "organization" in raw and isinstance(raw["organization"], dict):
            raw = raw["organization"]
        # a `brainlike run` spec's own fields
        raw = {k: v for k, v in raw.items() if k not in RUN_FIELDS or k in cls.model_fields}
        return cls.parse(raw, source=str(path))

    @classmethod
    def parse(cls, raw: dict, source: str = "config") -> OrganizationConfig:
        """The validated config from a dict; a validation error names ``source``."""
        from pydantic import ValidationError

        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise format_validation_error(exc, source, "organization config") from None


def load_stimulus(cfg: StimulusSpec, seed: int = 0) -> Stimulus:
    """The stimulus named by the config (:func:`brainlike.config.resolve_stimulus`)."""
    return resolve_stimulus(cfg, seed=seed)


# ------------------------------------------------------------------------------------------ per model
@dataclass
class ModelOrganization:
    """Everything computed for one model.

    Attributes
    ----------
    model : str
        name.
    neurons : pd.DataFrame
        neuron table (``neuron, layer, unit``).
    patterns : PatternResult
        the main :class:`PatternResult` (``config.patterns.seed``).
    regressors : np.ndarray
        ``(n_trs, K)`` float64 HRF-convolved, z-scored pattern regressors.
    glm : GLMResult | None
        :class:`GLMResult` on all volumes.
    overlaps, assignments : pd.DataFrame
        tables from :func:`.networks.match_networks`.
    consistency : pd.DataFrame
        one row per comparison (``kind`` = ``seed`` or ``halves``).
    metrics : dict
        the model's row of the metrics table.
    roi : ROIOrganization | None
        the per-subject ROI analysis (real recording; then ``glm`` is None and ``assignments`` is
        ``roi.assignments``).
    sweep : pd.DataFrame
        one row per (K, alpha) of the sensitivity sweep (real recording).
    origin : pd.DataFrame
        one row per pattern: the depth of its sub-group (:func:`.layers.layer_origin`; real recording).
    layer_groups : pd.DataFrame
        one row per group of blocks whose neurons were fitted on their own (real recording).
    """

    model: str
    neurons: pd.DataFrame
    patterns: PatternResult
    regressors: np.ndarray
    glm: GLMResult | None
    overlaps: pd.DataFrame
    assignments: pd.DataFrame
    consistency: pd.DataFrame
    metrics: dict
    roi: ROIOrganization | None = None
    sweep: pd.DataFrame = field(default_factory=pd.DataFrame)
    origin: pd.DataFrame = field(default_factory=pd.DataFrame)
    layer_groups: pd.DataFrame = field(default_factory=pd.DataFrame)


#: the largest TR-level time-course matrix (bytes) kept in memory across the fits of one model
MEMORY_TIMECOURSES = 1 << 30


def _memory_blocks(acts: NeuronActivations, binning, block_size: int, progress: bool) -> list | None:
    """All blocks of time courses, computed once, when they fit in :data:`MEMORY_TIMECOURSES`; else None (stream).

    SmolLM2-135M on the 362 Brennan volumes: 46,080 x 362 x 4 bytes = 67 MB, read and normalised once instead of
    twice per fit.
    """
    if acts.n_neurons * binning.shape[0] * 4 > MEMORY_TIMECOURSES:
        return None
    return list(iter_timecourses(acts, binning, block_size=block_size, progress=progress))


def _source(acts: NeuronActivations, binning, block_size: int, progress: bool, keep: np.ndarray | None = None,
            blocks: list | None = None):
    """A re-iterable block source of time courses.

    ``keep`` ``(n_neurons,)`` bool restricts it to some neurons; ``blocks`` (from :func:`_memory_blocks`) serves
    them from memory.
    """
    def base():
        if blocks is not None:
            return iter(blocks)
        return iter_timecourses(acts, binning, block_size=block_size, progress=progress)

    if keep is None:
        return base

    def only():
        for neurons, tc, dead in base():
            sel = keep[neurons]
            if sel.any():
                yield neurons[sel], tc[:, sel], dead[sel]
    return only


def _learn(acts, binning, cfg: OrganizationConfig, seed: int, progress: bool, init: str | None = None,
           n_patterns: int | None = None, alpha: float | None = None,
           keep: np.ndarray | None = None, blocks: list | None = None) -> PatternResult:
    p = cfg.patterns
    learner = PatternLearner(n_patterns=n_patterns or p.n_patterns, alpha=p.alpha if alpha is None else alpha,
                             batch_size=p.batch_size, n_epochs=p.n_epochs,
                             max_in_memory=p.max_in_memory, positive_code=p.positive_code, random_state=seed,
                             backend=p.backend, progress=progress, init=init or p.init, coder=p.coder)
    src = _source(acts, binning, cfg.neurons.block_size, progress, keep, blocks)
    return learner.fit_blocks(src).result(src, acts.n_neurons)


def _map_and_match(patterns: np.ndarray, data: BrainData, atlas: NetworkAtlas, cfg: OrganizationConfig,
                   model: str, progress: bool, rows: slice | None = None):
    regs = hrf_regressors(patterns, data.tr, cfg.glm.hrf_model, cfg.glm.oversampling, data.tr_offset)
    design = design_matrix(regs, data.tr, cfg.glm.high_pass, data.tr_offset)
    Y = data.bold
    X = design.to_numpy()
    if rows is not None:
        Y, X = Y[rows], X[rows]
        X = X[:, np.abs(X).sum(axis=0) > 0]  # drop drift columns that vanish on a half
    glm = fit_glm(Y, X, len(patterns), cfg.glm.noise_model, cfg.glm.tail, cfg.glm.fdr_alpha)
    stat = np.abs(glm.t) if cfg.glm.tail == "two-sided" else glm.t
    net = cfg.networks
    overlaps, assignments = match_networks(glm.significant, stat, atlas, net.metric,
                                           net.n_permutations if net.null == "voxels" else 0, net.alpha,
                                           net.seed, model, progress)
    if net.null == "shift":
        _shift_null(overlaps, assignments, Y, X, len(patterns), atlas, cfg)
    return regs, glm, overlaps, assignments


def _shift_null(overlaps: pd.DataFrame, assignments: pd.DataFrame, Y: np.ndarray, X: np.ndarray, k: int,
                atlas: NetworkAtlas, cfg: OrganizationConfig) -> None:
    """Temporal null of the voxel path, in place.

    The K pattern columns of the design ``X`` are circularly shifted together (drifts and intercept stay), the GLM is
    refitted and the maps matched again; a pattern's p-value is the share of shifts whose best overlap reaches the
    observed one (BH across patterns). Unlike the voxel shuffle this tests whether the pattern-brain coupling is real.
    """
    from scipy import stats as sstats

    net = cfg.networks
    lags = circular_shifts(len(Y), net.n_shifts, net.min_shift, net.seed)
    obs = assignments["score"].to_numpy()
    n_ids = len(atlas.ids)
    pair_obs = overlaps[net.metric].to_numpy().reshape(k, n_ids)
    ge_best, ge_pair = np.zeros(k), np.zeros((k, n_ids))
    for lag in lags:
        Xs = X.copy()
        Xs[:, :k] = np.roll(X[:, :k], int(lag), axis=0)
        g = fit_glm(Y, Xs, k, cfg.glm.noise_model, cfg.glm.tail, cfg.glm.fdr_alpha)
        stat = np.abs(g.t) if cfg.glm.tail == "two-sided" else g.t
        null = overlap_scores(g.significant, stat, atlas.labels, atlas.ids)[net.metric]
        ge_best += null.max(axis=1) >= obs - 1e-12
        ge_pair += null >= pair_obs - 1e-12
    p = (1 + ge_best) / (len(lags) + 1)
    q = sstats.false_discovery_control(p, method="bh")
    assignments["p_value"], assignments["q_value"] = p, q
    assignments["assigned"] = (q < net.alpha) & (obs > 0)
    assignments["assigned_network"] = [n if a else None
                                       for n, a in zip(assignments["network"], assignments["assigned"])]
    overlaps["p_value"] = ((1 + ge_pair) / (len(lags) + 1)).reshape(-1)


def _chance_metrics(main: PatternResult, cfg: OrganizationConfig) -> dict:
    """Diversity with its block-bootstrap CI and chance level, and the chance level of the stability."""
    c = cfg.consistency
    pats = main.patterns.astype(np.float64)
    boot = diversity_bootstrap(pats, c.n_boot, seed=cfg.patterns.seed)
    chance = diversity_chance(pats, c.n_chance, seed=cfg.patterns.seed)
    stab = stability_chance(pats, max(10, c.n_chance // 4), seed=cfg.patterns.seed)
    div = pattern_diversity(pats)
    return {"pattern_diversity": div, "diversity_low": float(np.percentile(boot, 2.5)),
            "diversity_high": float(np.percentile(boot, 97.5)), "diversity_chance": float(chance.mean()),
            "diversity_chance_p95": float(np.percentile(chance, 95)),
            "diversity_p": float((1 + (chance >= div - 1e-12).sum()) / (len(chance) + 1)),
            "stability_chance": float(stab.mean()), "stability_chance_p95": float(np.percentile(stab, 95))}


def analyse_model(acts: NeuronActivations, stimulus: Stimulus, data: BrainData, atlas: NetworkAtlas,
                  cfg: OrganizationConfig, progress: bool = False) -> ModelOrganization:
    """Patterns, maps, network assignments, consistency and metrics for one model's activations."""
    model = acts.model
    binning = tr_matrix(acts.row_onsets(stimulus), data.n_trs, data.tr, cfg.neurons.binning)
    main = _learn(acts, binning, cfg, cfg.patterns.seed, progress)
    regs, glm, overlaps, assignments = _map_and_match(main.patterns, data, atlas, cfg, model, progress)
    labels = assignments["assigned_network"].tolist()
    rows = []
    for seed in cfg.consistency.seeds:
        if seed == cfg.patterns.seed:
            continue
        other = _learn(acts, binning, cfg, seed, progress, init=cfg.consistency.init)
        _, _, _, asg = _map_and_match(other.patterns, data, atlas, cfg, model, progress)
        a, b, r = match_patterns(main.patterns, other.patterns)
        other_labels = asg["assigned_network"].tolist()
        rows.append({"model": model, "kind": "seed", "other": f"seed={seed}",
                     "agreement": assignment_agreement([labels[i] for i in a], [other_labels[j] for j in b]),
                     "pattern_r": float(r.mean())})
    if cfg.consistency.halves:
        half = data.n_trs // 2
        parts = [_map_and_match(main.patterns, data, atlas, cfg, model, progress, rows=s)[3]["assigned_network"]
                 for s in (slice(0, half), slice(half, data.n_trs))]
        rows.append({"model": model, "kind": "halves", "other": "second half",
                     "agreement": assignment_agreement(parts[0].tolist(), parts[1].tolist()),
                     "pattern_r": 1.0})
    consistency = pd.DataFrame(rows, columns=["model", "kind", "other", "agreement", "pattern_r"])
    seeds = consistency[consistency["kind"] == "seed"]
    halves = consistency[consistency["kind"] == "halves"]
    metrics = {
        "model": model, "n_neurons": acts.n_neurons, "n_layers": len(acts.layers), "n_patterns": main.n_patterns,
        "reconstruction_r2": main.reconstruction_r2, **_chance_metrics(main, cfg),
        "map_diversity": map_diversity(glm.t), "n_assigned": int(assignments["assigned"].sum()),
        "n_networks_assigned": int(assignments.loc[assignments["assigned"], "network"].nunique()),
        "network_coverage": assignments.loc[assignments["assigned"], "network"].nunique() / len(atlas.ids),
        "network_entropy": network_entropy(labels, len(atlas.ids)),
        "consistency_seeds": float(seeds["agreement"].mean()) if len(seeds) else float("nan"),
        "pattern_stability": float(seeds["pattern_r"].mean()) if len(seeds) else float("nan"),
        "consistency_halves": float(halves["agreement"].mean()) if len(halves) else float("nan"),
        "n_significant_voxels": int(glm.significant.any(axis=0).sum()),
    }
    return ModelOrganization(model, acts.neuron_table(), main, regs, glm, overlaps, assignments, consistency, metrics)


@dataclass(frozen=True)
class ROIRecording:
    """A multi-subject ROI recording ready for :func:`.roi.roi_organization`.

    Attributes
    ----------
    Y : np.ndarray
        ``(n_subjects, n_vol, n_roi)`` z-scored time courses.
    nuisance : np.ndarray
        ``(n_subjects, n_vol, q)`` controls (optional), cosine drifts and an intercept.
    rois : tuple[str, ...]
        ROI names; ``subjects``: labels; ``tr``: s; ``source``: where it came from.
    """

    Y: np.ndarray
    nuisance: np.ndarray
    rois: tuple[str, ...]
    subjects: tuple[str, ...]
    tr: float
    source: str = ""

    @property
    def n_volumes(self) -> int:
        """The number of volumes."""
        return int(self.Y.shape[1])


def brennan_recording(cfg: OrganizationConfig) -> tuple[ROIRecording, Stimulus]:
    """The shipped Brennan et al. (2016) recording as an :class:`ROIRecording`, and its words.

    The words are on the volume clock (volume ``i`` at ``2 i`` s, i.e. TextGrid time ``20 + 2 i`` s).
    """
    from brainlike.neural.brennan import brennan2016_dataset, brennan_design_controls

    d = cfg.data
    rec = brennan2016_dataset({"radius": d.radius, "subjects": d.subjects})
    drifts = cosine_drifts(rec.n_volumes, rec.tr, cfg.glm.high_pass)
    cols = [np.broadcast_to(drifts, (rec.n_subjects,) + drifts.shape)]
    if cfg.roi.controls:
        cols.insert(0, brennan_design_controls(rec))
    out = ROIRecording(rec.zscored(), np.concatenate(cols, axis=2), tuple(rec.rois), tuple(rec.subjects), rec.tr,
                       rec.source)
    return out, rec.stimulus_on_volume_clock()


def _roi_fit(patterns: np.ndarray, rec: ROIRecording, cfg: OrganizationConfig, model: str,
             n_shifts: int | None = None, n_boot: int | None = None) -> tuple[np.ndarray, ROIOrganization]:
    regs = hrf_regressors(patterns, rec.tr, cfg.glm.hrf_model, cfg.glm.oversampling, 0.0)
    r = cfg.roi
    return regs, roi_organization(rec.Y, regs, rec.nuisance, rec.rois, n_shifts=n_shifts or r.n_shifts,
                                  min_shift=r.min_shift, alpha=r.alpha, n_boot=n_boot or r.n_boot,
                                  seed=cfg.patterns.seed, model=model)


def analyse_model_roi(acts: NeuronActivations, stimulus: Stimulus, rec: ROIRecording, cfg: OrganizationConfig,
                      progress: bool = False) -> ModelOrganization:
    """Patterns -> per-subject ROI GLMs with the refitted shift null, and the checks, for one model.

    The checks: subject consistency, seed stability (random initialisations), chance levels, and the K/alpha sweep.
    """
    model = acts.model
    binning = tr_matrix(acts.row_onsets(stimulus), rec.n_volumes, rec.tr, cfg.neurons.binning)
    blocks = _memory_blocks(acts, binning, cfg.neurons.block_size, progress)
    main = _learn(acts, binning, cfg, cfg.patterns.seed, progress, blocks=blocks)
    regs, roi = _roi_fit(main.patterns, rec, cfg, model)
    labels = roi.assignments["assigned_roi"].tolist()
    rows = []
    for seed in cfg.consistency.seeds:
        if seed == cfg.patterns.seed:
            continue
        other = _learn(acts, binning, cfg, seed, progress, init=cfg.consistency.init, blocks=blocks)
        _, roi_o = _roi_fit(other.patterns, rec, cfg, model, n_boot=10)
        a, b, r = match_patterns(main.patterns, other.patterns)
        other_labels = roi_o.assignments["assigned_roi"].tolist()
        rows.append({"model": model, "kind": "seed", "other": f"seed={seed}",
                     "agreement": assignment_agreement([labels[i] for i in a], [other_labels[j] for j in b]),
                     "pattern_r": float(r.mean())})
    consistency = pd.DataFrame(rows, columns=["model", "kind", "other", "agreement", "pattern_r"])
    sweep = []
    ks = cfg.sweep.n_patterns
    alphas = cfg.sweep.alpha or ([cfg.patterns.alpha] if ks else [])
    for k in ks or ([cfg.patterns.n_patterns] if alphas else []):
        for al in alphas:
            if k == cfg.patterns.n_patterns and al == cfg.patterns.alpha:
                res, fit = main, roi
            else:
                res = _learn(acts, binning, cfg, cfg.patterns.seed, progress, n_patterns=k, alpha=al, blocks=blocks)
                fit = _roi_fit(res.patterns, rec, cfg, model, cfg.sweep.n_shifts, cfg.sweep.n_boot)[1]
            sweep.append({"model": model, "n_patterns": k, "alpha": al,
                          **_fit_summary(res, fit, cfg.patterns.seed, ROI_SUMMARY_KEYS)})
    seeds = consistency
    asg = roi.assignments
    neurons = acts.neuron_table()
    layer_of = neurons["layer"].to_numpy()
    origin = layer_origin(main.codes, layer_of, main.dead, asg, seed=cfg.patterns.seed, model=model)
    groups = _layer_groups(acts, binning, rec, cfg, model, layer_of, progress, blocks)
    metrics = {
        "model": model, "n_neurons": acts.n_neurons, "n_layers": len(acts.layers), "n_patterns": main.n_patterns,
        "reconstruction_r2": main.reconstruction_r2, **_chance_metrics(main, cfg), **roi.summary,
        "n_assigned": int(asg["assigned"].sum()),
        "network_entropy": network_entropy(labels, len(rec.rois)),
        "consistency_seeds": float(seeds["agreement"].mean()) if len(seeds) else float("nan"),
        "pattern_stability": float(seeds["pattern_r"].mean()) if len(seeds) else float("nan"),
        **assigned_depth(origin, seed=cfg.patterns.seed),
    }
    return ModelOrganization(model, neurons, main, regs, None, pd.DataFrame(), asg, consistency, metrics,
                             roi=roi, sweep=pd.DataFrame(sweep), origin=origin, layer_groups=groups)


#: the ROI fit's summary fields a sweep row or a layer-group row reports
ROI_SUMMARY_KEYS = ("n_assigned_roi", "n_rois_assigned", "roi_consistency", "roi_consistency_low",
                    "roi_consistency_high", "roi_consistency_chance", "roi_consistency_p")


def _fit_summary(res: PatternResult, fit: ROIOrganization, seed: int, keys: tuple[str, ...]) -> dict:
    """One pattern fit as table-row fields.

    Reconstruction, diversity with its chance level, the ROI fit's ``keys`` (in that order) and the ROIs of its
    assigned patterns.
    """
    ch = diversity_chance(res.patterns, 100, seed=seed)
    return {"reconstruction_r2": res.reconstruction_r2, "pattern_diversity": pattern_diversity(res.patterns),
            "diversity_chance": float(ch.mean()), **{key: fit.summary[key] for key in keys},
            "assigned_rois": _assigned_rois(fit.assignments)}


def _assigned_rois(assignments: pd.DataFrame) -> str:
    """The ROIs of the assigned patterns, with counts: ``"LATL:2,LIFG:1"`` (empty when none)."""
    counts = assignments.loc[assignments["assigned"], "roi"].value_counts().sort_index()
    return ",".join(f"{roi}:{n}" for roi, n in counts.items())


def _layer_groups(acts: NeuronActivations, binning, rec: ROIRecording, cfg: OrganizationConfig, model: str,
                  layer_of: np.ndarray, progress: bool, blocks: list | None = None) -> pd.DataFrame:
    """Patterns of each group of blocks fitted on their own, through the same ROI GLMs and shift null."""
    lg = cfg.layer_groups
    if not lg.n_groups:
        return pd.DataFrame()
    group = layer_thirds(layer_of, lg.n_groups)
    names = {3: ("early", "middle", "late")}.get(lg.n_groups, tuple(f"group{g + 1}" for g in range(lg.n_groups)))
    rows = []
    for g in range(lg.n_groups):
        keep = group == g
        if keep.sum() < cfg.patterns.n_patterns:
            continue
        res = _learn(acts, binning, cfg, cfg.patterns.seed, progress, keep=keep, blocks=blocks)
        fit = _roi_fit(res.patterns, rec, cfg, model, lg.n_shifts, lg.n_boot)[1]
        rows.append({"model": model, "group": names[g], "first_layer": int(layer_of[keep].min()),
                     "last_layer": int(layer_of[keep].max()), "n_neurons": int(keep.sum()),
                     "n_patterns": res.n_patterns,
                     **_fit_summary(res, fit, cfg.patterns.seed,
                                    ROI_SUMMARY_KEYS[:2] + ("n_significant_pairs",) + ROI_SUMMARY_KEYS[2:])})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ results
@dataclass
class OrganizationResult:
    """Results of :func:`run_organization`.

    Attributes
    ----------
    config : dict
        the config as a dict.
    models : dict[str, ModelOrganization]
        per-model :class:`ModelOrganization`.
    data : BrainData
        the brain data used (geometry for maps).
    atlas : NetworkAtlas
        the network labels of the data's columns.
    times : np.ndarray
        ``(n_trs,)`` volume times, seconds.
    simulation : SimulatedOrganization | None
        the simulated data set with its ground truth (``data.kind == "simulated"``).
    planted_groups : list[np.ndarray]
        simulated: global neuron indices of each planted group (of the planted model).
    seconds : float
        wall time.
    """

    config: dict
    models: dict[str, ModelOrganization]
    data: BrainData
    atlas: NetworkAtlas
    times: np.ndarray
    simulation: SimulatedOrganization | None = None
    planted_groups: list[np.ndarray] = field(default_factory=list)
    planted_model: str | None = None
    seconds: float = 0.0

    def _concat(self, frames) -> pd.DataFrame:
        frames = list(frames)
        full = [f for f in frames if len(f)]
        if full:
            return pd.concat(full, ignore_index=True)
        return frames[0].iloc[:0].copy() if frames else pd.DataFrame()

    def patterns_table(self) -> pd.DataFrame:
        """``model, pattern, volume, time, value``: the patterns on the TR grid (before HRF)."""
        return self._concat([m.patterns.pattern_table(self.times, name) for name, m in self.models.items()])

    def membership_table(self) -> pd.DataFrame:
        """``model, neuron, layer, unit, pattern, code, primary``: non-zero sparse codes."""
        return self._concat([m.patterns.membership_table(m.neurons, name) for name, m in self.models.items()])

    def layers_table(self) -> pd.DataFrame:
        """``model, layer, pattern, n_neurons, n_members, n_primary, fraction``."""
        return self._concat([m.patterns.layer_table(m.neurons, name) for name, m in self.models.items()])

    def maps_table(self) -> pd.DataFrame:
        """``model, pattern, voxel, t, r, p, q, significant, network`` (+ ``i, j, k`` for volumes)."""
        names = np.array([self.atlas.names.get(int(i), "none") for i in self.atlas.labels], dtype=object)
        return self._concat([m.glm.table(name, coords=self.data.coords(), networks=names)
                             for name, m in self.models.items() if m.glm is not None])

    def roi_effects_table(self) -> pd.DataFrame:
        """Real ROI recording: one row per model x pattern x ROI (see :func:`.roi.roi_organization`)."""
        return self._concat([m.roi.effects for m in self.models.values() if m.roi is not None])

    def sweep_table(self) -> pd.DataFrame:
        """Real ROI recording: one row per model x K x alpha of the sensitivity sweep."""
        return self._concat([m.sweep for m in self.models.values()])

    def origin_table(self) -> pd.DataFrame:
        """Real ROI recording: one row per model x pattern, the depth of its sub-group (:mod:`.layers`)."""
        return self._concat([m.origin for m in self.models.values()])

    def layer_groups_table(self) -> pd.DataFrame:
        """Real ROI recording: one row per model x group of blocks fitted on their own."""
        return self._concat([m.layer_groups for m in self.models.values()])

    def overlaps_table(self) -> pd.DataFrame:
        """The network overlaps of every model, one table."""
        return self._concat([m.overlaps for m in self.models.values()])

    def assignments_table(self) -> pd.DataFrame:
        """The network assignments of every model, one table."""
        return self._concat([m.assignments for m in self.models.values()])

    def consistency_table(self) -> pd.DataFrame:
        """The subject consistency of every model, one table."""
        return self._concat([m.consistency for m in self.models.values()])

    def metrics_table(self) -> pd.DataFrame:
        """One row per model: diversity, coverage, consistency (see :mod:`.metrics`)."""
        return pd.DataFrame([m.metrics for m in self.models.values()])

    def recovery_table(self) -> pd.DataFrame:
        """Simulated data.

        One row per planted group with the pattern of the planted model that best matches its signal (``pattern``,
        ``pattern_r``), the planted and the assigned network, ``recovered`` (assigned == planted), and member
        precision/recall of the pattern's primary neurons (``precision``, ``recall``, ``chance`` = group size /
        neurons).
        """
        if self.simulation is None or self.planted_model not in self.models:
            return pd.DataFrame()
        m = self.models[self.planted_model]
        sim = self.simulation
        pats = m.patterns.patterns.astype(np.float64)
        asg = m.assignments.set_index("pattern")
        prim = m.patterns.primary()
        rows = []
        for _, t in sim.truth[sim.truth["kind"] == "neurons"].iterrows():
            g = int(t["group"])
            s = sim.signals[:, g].astype(np.float64)
            r = np.array([np.corrcoef(p, s)[0, 1] for p in pats])
            k = int(np.abs(r).argmax())
            members = np.flatnonzero(prim == k)
            hits = np.intersect1d(members, self.planted_groups[g]).size
            rows.append({"model": m.model, "group": g, "group_size": len(self.planted_groups[g]),
                         "planted_network": t["network"], "pattern": k, "pattern_r": float(r[k]),
                         "assigned_network": asg.loc[k, "assigned_network"], "q_value": float(asg.loc[k, "q_value"]),
                         "recovered": asg.loc[k, "assigned_network"] == t["network"],
                         "precision": hits / max(len(members), 1), "recall": hits / len(self.planted_groups[g]),
                         "chance": len(self.planted_groups[g]) / len(m.neurons)})
        return pd.DataFrame(rows)

    def tables(self) -> dict[str, pd.DataFrame]:
        """All tidy tables by name (``maps`` is one row per pattern × voxel and can be large)."""
        out = {"patterns": self.patterns_table(), "membership": self.membership_table(),
               "layers": self.layers_table(), "maps": self.maps_table(), "overlaps": self.overlaps_table(),
               "assignments": self.assignments_table(), "consistency": self.consistency_table(),
               "metrics": self.metrics_table()}
        if any(m.roi is not None for m in self.models.values()):
            out["roi_effects"] = self.roi_effects_table()
            out["sweep"] = self.sweep_table()
            out["origin"] = self.origin_table()
            out["layer_groups"] = self.layer_groups_table()
        if self.simulation is not None:
            out["recovery"] = self.recovery_table()
            out["truth"] = self.simulation.truth
        return out

    def figures(self) -> dict[str, object]:
        """Matplotlib figures by name (see :mod:`.plots`)."""
        from brainlike.analyses.organization import plots

        tables = self.tables()
        figs = {"metrics": plots.plot_model_metrics(tables["metrics"])}
        for name in self.models:
            sel = {k: v[v["model"] == name] for k, v in tables.items() if "model" in v}
            figs[f"patterns_{name}"] = plots.plot_patterns(sel["patterns"])
            figs[f"layers_{name}"] = plots.plot_layer_membership(sel["layers"])
            if self.models[name].roi is not None:
                figs[f"roi_{name}"] = plots.plot_roi_effects(sel["roi_effects"], sel["assignments"])
                continue
            figs[f"overlap_{name}"] = plots.plot_overlap(sel["overlaps"], sel["assignments"])
            figs[f"maps_{name}"] = plots.plot_pattern_maps(sel["maps"])
        return figs

    def file_stems(self) -> dict[str, str]:
        """Model name -> the name used for its files.

        Safe characters only (a model given as a folder path such as ``/models/llama`` becomes ``models_llama``), unique
        among the models.
        """
        return _file_stems(list(self.models))


def _file_stems(names: list[str]) -> dict[str, str]:
    import hashlib
    import re

    out: dict[str, str] = {}
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-") or "model"
        if stem in out.values():
            stem = f"{stem}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        out[name] = stem
    return out


# ------------------------------------------------------------------------------------------ driver
def _brain_data(cfg: OrganizationConfig) -> BrainData:
    d = cfg.data
    if d.kind == "nifti":
        return BrainData.from_nifti(d.bold, mask=d.mask, tr=d.tr, tr_offset=d.tr_offset)
    return BrainData.from_array(d.bold, d.tr, tr_offset=d.tr_offset)


def run_organization(
    config: OrganizationConfig | dict,
    stimulus: Stimulus | None = None,
    data: BrainData | None = None,
    atlas: NetworkAtlas | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> OrganizationResult:
    """Run the organization analysis for every model of ``config``.

    Parameters
    ----------
    config : OrganizationConfig | dict
        :class:`OrganizationConfig` (or a dict of its fields).
    stimulus : Stimulus | None
        overrides ``config.stimulus``.
    data : BrainData | None
        overrides ``config.data`` (then ``atlas`` or ``config.networks.atlas`` gives the labels).
    atlas : NetworkAtlas | None
        network labels of ``data``'s columns (overrides ``config.networks.atlas``).
    device : str
        torch device for the models.
    progress : bool
        progress bars.

    Returns
    -------
    OrganizationResult
        :class:`OrganizationResult` (write it with ``brainlike run``: tables to the results store, maps
        under the output folder).
    """
    t0 = time.perf_counter()
    cfg = config if isinstance(config, OrganizationConfig) else OrganizationConfig.parse(dict(config))
    rec = None
    if data is None and cfg.data.kind == "brennan2016":
        rec, rec_stim = brennan_recording(cfg)
        if stimulus is not None and (stimulus.words != rec_stim.words
                                     or not np.allclose(stimulus.onsets, rec_stim.onsets)):
            raise BrainlikeError(f"data.kind 'brennan2016' is aligned to its own words (the {len(rec_stim.words)} "
                                 f"words of Alice, chapter 1, on the volume clock); the stimulus given "
                                 f"({stimulus.name!r}, {len(stimulus.words)} words) is another story: drop it")
        stimulus = rec_stim
    stim = stimulus or load_stimulus(cfg.stimulus)
    nopt = NeuronOptions(cfg.neurons.level, cfg.neurons.pooling,
                         tuple(cfg.neurons.layers) if cfg.neurons.layers else None,
                         cfg.neurons.max_window, cfg.neurons.chunk_rows)
    acts = {}
    for name in cfg.models:
        acts[name] = extract_neurons(name, stim, nopt, device=device, progress=progress)
    sim, groups, planted = None, [], None
    if rec is not None:
        data = BrainData.from_array(rec.Y.mean(axis=0), rec.tr, name="brennan2016")
        atlas = NetworkAtlas(np.arange(1, len(rec.rois) + 1), dict(enumerate(rec.rois, start=1)), "brennan2016 ROIs")
        models = {name: analyse_model_roi(a, stim, rec, cfg, progress) for name, a in acts.items()}
        return OrganizationResult(cfg.model_dump(), models, data, atlas, frame_times(data.n_trs, data.tr), None, [],
                                  None, time.perf_counter() - t0)
    if data is None and cfg.data.kind == "simulated":
        planted = cfg.data.planted_model or cfg.models[0]
        tr = cfg.data.tr or 2.0
        n_trs = int(np.ceil((stim.duration + 20.0) / tr))
        a = acts[planted]
        binning = tr_matrix(a.row_onsets(stim), n_trs, tr, cfg.neurons.binning)
        tc = np.concatenate([b for _, b, _ in iter_timecourses(a, binning, cfg.neurons.block_size)], axis=1)
        groups, signals = plant_groups(tc, cfg.data.n_groups, seed=cfg.data.seed)
        sim = simulate_network_fmri(signals, tr, n_networks=cfg.data.n_networks, grid=cfg.data.grid,
                                    snr=cfg.data.snr, seed=cfg.data.seed, n_null_driven=cfg.data.n_null_driven)
        data = sim.data
        atlas = atlas or NetworkAtlas(sim.atlas[sim.data.mask], sim.names, "simulated")
    elif data is None:
        data = _brain_data(cfg)
    if atlas is None:
        if not cfg.networks.atlas:
            raise BrainlikeError("give an atlas (networks.atlas) for these data")
        atlas = load_atlas(cfg.networks.atlas, data, cfg.networks.names, cfg.networks.group_parcels,
                           cfg.networks.data_dir)
    if len(atlas.labels) != data.n_voxels:
        raise BrainlikeError(f"the atlas labels {len(atlas.labels)} columns, the data have {data.n_voxels}")
    models = {name: analyse_model(a, stim, data, atlas, cfg, progress) for name, a in acts.items()}
    result = OrganizationResult(cfg.model_dump(), models, data, atlas,
                                frame_times(data.n_trs, data.tr, data.tr_offset), sim, groups, planted,
                                time.perf_counter() - t0)
    return result
