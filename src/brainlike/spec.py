"""Experiment specs: one YAML file, validated by pydantic, shared by the CLI and the Python API.

Example (see ``examples/zoo.yaml``)::

    name: zoo
    output: brainlike-out/zoo
    models: [stories260k, minilm-l6, smollm2-135m]
    stimulus: {source: "builtin:aesop", n_words: 600}
    dataset:
      kind: simulated-ecog
      subjects: 2
      planted: {smollm2-135m: 1.0, minilm-l6: 0.5, stories260k: 0.15}
    analyses:
      capability: {corpus: "shared:inaugural-2009", max_bytes: 8000}
      context: {windows: [1, 4, 16, 64]}
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from brainlike.errors import BrainlikeError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """A model of the zoo: ``name`` is a registered name, local path or hub id."""

    name: str
    label: str | None = None
    revision: str | None = None
    capability: float | None = Field(None, description="user-supplied benchmark score (higher = better)")

    @property
    def key(self) -> str:
        return self.label or self.name


class StimulusSpec(_Strict):
    source: str = Field("builtin:aesop", description="builtin:aesop, or a .tsv / .TextGrid / .txt file")
    words_per_second: float = Field(2.5, gt=0, description="speech rate for plain text sources")
    n_words: int | None = Field(None, gt=10, description="use only the first N words")


class FeatureSpec(_Strict):
    pooling: Literal["last", "mean"] = "last"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    max_window: int | None = Field(None, ge=2)
    batch_size: int = Field(16, ge=1)


class DatasetSpec(_Strict):
    """The neural data: a simulation, or real recordings in BIDS."""

    kind: Literal["simulated-ecog", "simulated-fmri", "bids-ieeg", "bids-fmri"] = "simulated-ecog"
    subjects: int | list[str] = Field(2, description="number of simulated subjects, or BIDS subject labels")
    planted: dict[str, float] = Field(default_factory=dict,
                                      description="simulation: how strongly each model's features drive the brain")
    channels_per_region: int = Field(12, ge=2)
    snr: tuple[float, float] = (0.3, 1.5)
    path: str | None = Field(None, description="BIDS root for real data")
    task: str | None = None
    stimulus: str | None = Field(None, description="BIDS: word-timing file shared by all subjects (relative to "
                                 "the root or absolute); default: the words of each run's events.tsv")
    region_column: str | None = Field(None, description="BIDS iEEG: electrodes.tsv column with region labels")
    hierarchy: str = Field("hierarchy", description="hierarchy position of each channel: 'hierarchy' (the "
                           "dataset's), 'distance:X,Y,Z' (mm from a point), 'order:A>B>C' (region order) or an "
                           "electrodes.tsv column")


class EncodingSpec(_Strict):
    window: tuple[float, float] = Field((0.0, 0.5), description="ECoG word-locked window, s after onset")
    n_splits: int = Field(5, ge=2)
    inner_splits: int = Field(5, ge=2)
    alphas: list[float] | None = None
    backend: Literal["numpy", "torch"] = "numpy"
    n_permutations: int = Field(200, ge=0, description="circular-shift permutations for channel p-values")
    significance: float = Field(0.05, gt=0, lt=1)


class CapabilitySpec(_Strict):
    corpus: str | None = Field("shared:inaugural-2009", description="held-out text for bits per byte")
    max_bytes: int = Field(8000, ge=100)
    window: int = Field(512, ge=8)


class ContextSpec(_Strict):
    windows: list[int] = Field(default_factory=lambda: [1, 4, 16, 64], description="preceding tokens per word")
    depths: list[float] | None = Field(None, description="relative depths (0 = embeddings, 1 = last layer) of the "
                                       "layers fitted at every context length; None = all layers")

    @field_validator("depths")
    @classmethod
    def _unit(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(not 0.0 <= d <= 1.0 for d in v)):
            raise ValueError("context depths must be a non-empty list of relative depths in [0, 1]")
        return v

    def layers(self, n_layers: int) -> tuple[int, ...]:
        """Layer indices (of ``n_layers`` hidden-state layers) fitted at every context length."""
        if self.depths is None:
            return tuple(range(n_layers))
        return tuple(sorted({int(round(d * (n_layers - 1))) for d in self.depths}))

    @field_validator("windows")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(w < 0 for w in v):
            raise ValueError("context windows must be a non-empty list of non-negative token counts")
        return sorted(set(v))


class AnalysesSpec(_Strict):
    capability: CapabilitySpec | None = Field(default_factory=CapabilitySpec)
    context: ContextSpec | None = None
    hierarchy_bootstrap: int = Field(2000, ge=100)


class RaySpec(_Strict):
    """Where and how tasks run (``executor: ray``); ``layer_chunk`` applies to both executors."""

    address: str | None = Field(None, description="Ray cluster: None = a local instance (or $RAY_ADDRESS), "
                                "'auto' = the cluster of this machine, 'ray://head:10001' = Ray client")
    num_cpus: int | None = Field(None, ge=1, description="cores of a local Ray instance (default: all)")
    num_gpus: int | None = Field(None, ge=0, description="GPUs of a local Ray instance (default: all)")
    layer_chunk: int = Field(8, ge=1, description="layers per encoding fit task (both executors: also the "
                             "unit of resume)")
    cpus_per_fit: float = Field(1.0, gt=0, description="cores reserved by each encoding fit task")
    gpus_per_extraction: float = Field(1.0, ge=0, description="GPUs per feature extraction task when the "
                                       "cluster has GPUs (0: extract on CPUs)")


class ExperimentSpec(_Strict):
    name: str = "experiment"
    output: str = "brainlike-out"
    seed: int = 0
    executor: Literal["local", "ray"] = Field("local", description="local: in this process; ray: Ray tasks")
    ray: RaySpec = Field(default_factory=RaySpec)
    models: list[ModelSpec]
    stimulus: StimulusSpec = Field(default_factory=StimulusSpec)
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    encoding: EncodingSpec = Field(default_factory=EncodingSpec)
    analyses: AnalysesSpec = Field(default_factory=AnalysesSpec)
    report: bool = True

    @field_validator("models", mode="before")
    @classmethod
    def _names_to_specs(cls, v):
        if not isinstance(v, list) or not v:
            raise ValueError("list at least one model")
        return [{"name": m} if isinstance(m, str) else m for m in v]

    @model_validator(mode="after")
    def _check(self) -> "ExperimentSpec":
        keys = [m.key for m in self.models]
        if len(set(keys)) != len(keys):
            raise ValueError(f"model names/labels must be unique: {keys}")
        # one results folder per label, also on case-insensitive file systems
        from brainlike.store import partition_dirname

        folders: dict[str, str] = {}
        for k in keys:
            other = folders.setdefault(partition_dirname(k).casefold(), k)
            if other != k:
                raise ValueError(f"model labels {other!r} and {k!r} would share one results folder (they differ "
                                 "only in case); give one of them another `label:`")
        unknown = set(self.dataset.planted) - set(keys)
        if unknown:
            raise ValueError(f"dataset.planted names models not in the zoo: {sorted(unknown)}")
        if self.dataset.kind.startswith("bids") and not self.dataset.path:
            raise ValueError(f"dataset.kind {self.dataset.kind} needs dataset.path (the BIDS root)")
        if self.dataset.kind.startswith("bids") and not isinstance(self.dataset.subjects, list):
            raise ValueError(f"dataset.kind {self.dataset.kind} needs dataset.subjects: a list of BIDS subject labels")
        if self.dataset.kind.endswith("fmri"):
            raise ValueError(f"dataset.kind {self.dataset.kind}: `brainlike run` sweeps word-locked (ECoG/iEEG) data "
                             "so far; fit fMRI with the Python API (brainlike.neural.fmri_design_layers + "
                             "score_layers, see docs/neural-data.md)")
        return self


def read_yaml_mapping(path: str | Path) -> dict:
    """A YAML file that must hold a mapping; missing files and bad YAML are clear errors."""
    path = Path(path)
    if not path.exists():
        raise BrainlikeError(f"spec file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BrainlikeError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise BrainlikeError(f"{path}: the spec must be a mapping of fields")
    return raw


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a YAML spec; errors name the offending field."""
    return parse_spec(read_yaml_mapping(path), source=str(path))


def parse_spec(raw: dict, source: str = "spec") -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
            lines.append(f"  {loc}: {err['msg']}")
        raise BrainlikeError(f"{source}: invalid spec\n" + "\n".join(lines)) from None
