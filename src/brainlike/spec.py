"""Specs of ``brainlike run``: one YAML file, validated by pydantic, shared by the CLI and the Python API.

:func:`load_spec` / :func:`parse_spec` read any spec: its ``analysis:`` (default ``alignment``) names the
registered analysis (:data:`brainlike.registry.ANALYSES`) whose ``Config`` validates the rest. This module
also holds the alignment analysis's spec (:class:`ExperimentSpec`) and its sections.

Example of an alignment spec (see ``examples/zoo.yaml``)::

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
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from brainlike.config import RunConfig, StimulusSpec, read_yaml_mapping, validate_config
from brainlike.config import StrictModel as _Strict
from brainlike.errors import BrainlikeError

if TYPE_CHECKING:
    from brainlike.encoding.options import EncodingOptions

__all__ = ["AnalysesSpec", "CapabilitySpec", "ContextSpec", "EncodingSpec", "ExperimentSpec", "FeatureSpec",
           "ModelSpec", "RaySpec", "StimulusSpec", "load_spec", "parse_spec", "read_yaml_mapping"]


class ModelSpec(_Strict):
    """A model of the zoo: ``name`` is a registered name, local path or hub id."""

    name: str
    label: str | None = None
    revision: str | None = None
    capability: float | None = Field(None, description="user-supplied benchmark score (higher = better)")
    features: Literal["hidden", "surprisal"] = Field(
        "hidden", description="hidden: every layer's hidden states; surprisal: the model's next-word predictions "
        "(one layer of 2 columns: surprisal and entropy, bits; causal LMs only)")

    @property
    def key(self) -> str:
        """The model's label in tables."""
        if self.label:
            return self.label
        return self.name if self.features == "hidden" else f"{self.name}/{self.features}"


class FeatureSpec(_Strict):
    """How features are extracted."""

    pooling: Literal["last", "mean"] = "last"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    max_window: int | None = Field(None, ge=2)
    batch_size: int = Field(16, ge=1)


def check_depths(v: list[float] | None, what: str) -> list[float] | None:
    """Relative layer depths: None, or a non-empty list of numbers in [0, 1] (0 = embeddings, 1 = last)."""
    if v is not None and (not v or any(not 0.0 <= d <= 1.0 for d in v)):
        raise ValueError(f"{what} depths must be a non-empty list of relative depths in [0, 1]")
    return v


def depth_layers(depths: list[float], n_layers: int) -> tuple[int, ...]:
    """The layer indices (of ``n_layers`` hidden-state layers) nearest to the relative depths, sorted."""
    return tuple(sorted({int(round(d * (n_layers - 1))) for d in depths}))


class FMRISpec(_Strict):
    """fMRI encoding (datasets of ``modality == "fmri"``).

    See :class:`~brainlike.analyses.fmri_encoding.FMRIEncodingOptions`.
    """

    levels: list[Literal["group", "single", "between"]] = Field(
        default_factory=lambda: ["group", "single", "between"], min_length=1,
        description="group: the mean of the z-scored subjects; single: every subject; between: fit on the others")
    n_splits: int = Field(5, ge=2, description="outer contiguous folds")
    gap: int = Field(5, ge=0, description="volumes dropped from training on each side of a test block")
    delays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4], min_length=1, description="FIR delays, volumes")
    n_components: int | list[int] | None = Field(20, description="PCA components per layer, fitted on the "
                                                 "training volumes of each fold (null: no reduction; a list such as "
                                                 "[10, 20, 40]: chosen per target with alpha in the inner CV)")
    selection_score: Literal["r2", "pearson"] = Field("r2", description="inner-CV criterion of the PCA size and "
                                                      "alpha when n_components is a list")
    n_shifts: int = Field(200, ge=0, description="refitted circular shifts of the targets (the null)")
    min_shift: int = Field(20, ge=1, description="smallest shift, volumes")
    partition_feature_shifts: int = Field(0, ge=0, description="variance partition: circular shifts of the LM "
                                          "columns only (controls and targets aligned, joint fit refitted) for the "
                                          "stricter null of the unique R^2 (0: only the target-shift null)")
    highpass: float | None = Field(128.0, gt=0, description="DCT high-pass of the targets, s (null: off)")
    depths: list[float] | None = Field(None, description="relative depths of the layers to fit (None: all)")

    @field_validator("depths")
    @classmethod
    def _unit(cls, v: list[float] | None) -> list[float] | None:
        return check_depths(v, "fmri")

    @field_validator("n_components")
    @classmethod
    def _sizes(cls, v: int | list[int] | None) -> int | list[int] | None:
        if v is not None and min([v] if isinstance(v, int) else v or [0]) < 1:
            raise ValueError("fmri.n_components must be >= 1, a non-empty list of sizes >= 1, or null")
        return v

    def options(self, seed: int, inner_splits: int, alphas: list[float] | None, backend: str):
        from brainlike.analyses.fmri_encoding import FMRIEncodingOptions

        kw = {} if alphas is None else {"alphas": tuple(alphas)}
        return FMRIEncodingOptions(n_splits=self.n_splits, gap=self.gap, delays=tuple(self.delays),
                                   reduction="pca" if self.n_components else None,
                                   n_components=(tuple(self.n_components) if isinstance(self.n_components, list)
                                                 else self.n_components or 1), n_shifts=self.n_shifts,
                                   selection_score=self.selection_score,
                                   min_shift=self.min_shift, highpass=self.highpass, inner_splits=inner_splits,
                                   seed=seed, backend=backend, **kw)

    def layers(self, n_layers: int) -> list[int] | None:
        return None if self.depths is None else list(depth_layers(self.depths, n_layers))


class EncodingSpec(_Strict):
    """The encoding settings."""

    window: tuple[float, float] = Field((0.0, 0.5), description="ECoG word-locked window, s after onset")
    n_splits: int = Field(5, ge=2)
    inner_splits: int = Field(5, ge=2)
    alphas: list[float] | None = None
    backend: Literal["numpy", "torch"] = "numpy"
    n_permutations: int = Field(200, ge=0, description="circular-shift permutations for channel p-values")
    significance: float = Field(0.05, gt=0, lt=1)
    fmri: FMRISpec = Field(default_factory=FMRISpec, description="fMRI datasets: levels, folds, reduction, null")

    @field_validator("window")
    @classmethod
    def _window(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError(f"encoding.window must be (start, end) with start < end in s after onset, got {v}")
        return v

    def options(self, seed: int = 0, **overrides: Any) -> EncodingOptions:
        """The :class:`~brainlike.encoding.options.EncodingOptions` of the word-locked (ECoG) fits.

        Parameters
        ----------
        seed : int
            The run's seed (of the permutation shifts).
        **overrides
            Other fields, e.g. ``n_permutations=0`` for the context-length fits.

        Returns
        -------
        EncodingOptions
        """
        from brainlike.encoding.options import EncodingOptions

        return EncodingOptions(n_splits=self.n_splits, inner_splits=self.inner_splits,
                               alphas=None if self.alphas is None else tuple(self.alphas), backend=self.backend,
                               n_permutations=self.n_permutations, seed=seed).replace(**overrides)


class CapabilitySpec(_Strict):
    """Capability measures per model (:func:`brainlike.analyses.capability.capability_measures`).

    Every corpus (``corpus`` and ``corpora``) gives bits per byte and bits per word (causal LMs) or the
    pseudo-log-likelihood versions (encoders with a masked-LM head); ``syntaxgym`` adds SyntaxGym 2020
    accuracy (causal LMs). Models that cannot have a measure get a row saying why.
    """

    corpus: str | None = Field("shared:inaugural-2009", description="held-out text for bits per byte")
    corpora: list[str] = Field(default_factory=list, description="more held-out texts (each: bits per byte and "
                               "per word), e.g. [shared:tinyshakespeare, shared:wikitext2, shared:inaugural-2009]")
    max_bytes: int = Field(8000, ge=100)
    window: int = Field(512, ge=8)
    syntaxgym: Literal["all"] | list[str] | None = Field(None, description="SyntaxGym 2020 suites ('all': the 31 "
                                                         "suites; a list of suite names; null: none)")
    syntaxgym_max_items: int | None = Field(None, ge=1, description="only the first items of every suite")
    n_boot: int = Field(2000, ge=100, description="bootstrap resamples for the CIs (SyntaxGym, correlations)")

    @property
    def all_corpora(self) -> list[str]:
        """``corpus`` then ``corpora``, without repeats."""
        return list(dict.fromkeys(([self.corpus] if self.corpus else []) + list(self.corpora)))

    @property
    def syntaxgym_suites(self) -> list[str] | None:
        """None: no SyntaxGym; ``[]``: all suites; else the names."""
        return None if self.syntaxgym is None else ([] if self.syntaxgym == "all" else list(self.syntaxgym))


class ContextSpec(_Strict):
    """The context settings."""

    windows: list[int] = Field(default_factory=lambda: [1, 4, 16, 64], description="preceding tokens per word")
    depths: list[float] | None = Field(None, description="relative depths (0 = embeddings, 1 = last layer) of the "
                                       "layers fitted at every context length; None = all layers")

    @field_validator("depths")
    @classmethod
    def _unit(cls, v: list[float] | None) -> list[float] | None:
        return check_depths(v, "context")

    def layers(self, n_layers: int) -> tuple[int, ...]:
        """Layer indices (of ``n_layers`` hidden-state layers) fitted at every context length."""
        return tuple(range(n_layers)) if self.depths is None else depth_layers(self.depths, n_layers)

    @field_validator("windows")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(w < 0 for w in v):
            raise ValueError("context windows must be a non-empty list of non-negative token counts")
        return sorted(set(v))


class WordLevelSpec(_Strict):
    """Word-level datasets (``dataset: {kind: wordlevel}``): the regressions on each model's surprisal.

    See :class:`~brainlike.analyses.wordlevel.WordLevelOptions`.
    """

    predictors: list[Literal["surprisal", "entropy"]] = Field(default_factory=lambda: ["surprisal", "entropy"],
                                                              min_length=1)
    covariates: list[str] = Field(default_factory=lambda: ["length", "position", "frequency", "baseline"],
                                  description="covariates of every fit (those the table lacks are skipped)")
    n_splits: int = Field(200, ge=1, description="random halves of the subjects for the split-half ceiling")
    partial: bool = Field(True, description="partial correlation of surprisal with the response given the covariates")
    mixed: bool = Field(False, description="also a mixed model (statsmodels MixedLM, random intercept per subject)")
    mixed_item: bool = Field(False, description="the mixed model also gets a variance component per item")

    def options(self, seed: int):
        from brainlike.analyses.wordlevel import WordLevelOptions

        return WordLevelOptions(predictors=tuple(self.predictors), covariates=tuple(self.covariates),
                                n_splits=self.n_splits, partial=self.partial, mixed=self.mixed,
                                mixed_item=self.mixed_item, seed=seed)


class AnalysesSpec(_Strict):
    """The analyses to run."""

    capability: CapabilitySpec | None = Field(default_factory=CapabilitySpec)
    context: ContextSpec | None = None
    hierarchy_bootstrap: int = Field(2000, ge=100)
    controls: bool = Field(True, description="fMRI: also score the low-level regressors (word rate, the "
                           "dataset's own, e.g. sound power) as a baseline model")
    surprisal_control: str | None = Field(None, description="fMRI: add this causal LM's per-word surprisal and "
                                          "entropy to the low-level control band (controls model and variance "
                                          "partition)")
    wordlevel: WordLevelSpec = Field(default_factory=WordLevelSpec, description="word-level datasets")
    shuffled_words: bool = Field(False, description="fMRI: also score every model (random-weight twins "
                                 "excepted) on the story's words in a shuffled order, features put back at the "
                                 "words' original positions (only context order destroyed): '<model>@shuffled'")


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


class ExperimentSpec(RunConfig):
    """The spec of the alignment analysis (``analysis: alignment``, the default).

    ``dataset`` is a mapping whose ``kind`` names a registered dataset (:data:`brainlike.registry.DATASETS`);
    the rest of it is validated by that dataset's ``Config`` (:attr:`dataset_config`).
    """

    analysis: Literal["alignment"] = "alignment"
    name: str = "experiment"
    executor: Literal["local", "ray"] = Field("local", description="local: in this process; ray: Ray tasks")
    ray: RaySpec = Field(default_factory=RaySpec)
    models: list[ModelSpec]
    stimulus: StimulusSpec = Field(default_factory=StimulusSpec)
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    dataset: dict[str, Any] = Field(default_factory=lambda: {"kind": "simulated-ecog"},
                                    description="kind: a registered dataset; the other keys: its config")
    encoding: EncodingSpec = Field(default_factory=EncodingSpec)
    analyses: AnalysesSpec = Field(default_factory=AnalysesSpec)
    _dataset: Any = PrivateAttr(None)

    @field_validator("models", mode="before")
    @classmethod
    def _names_to_specs(cls, v):
        if not isinstance(v, list) or not v:
            raise ValueError("list at least one model")
        return [{"name": m} if isinstance(m, str) else m for m in v]

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_kind(cls, v):
        if not isinstance(v, dict):
            raise ValueError("dataset must be a mapping with a `kind` (a registered dataset)")
        return {"kind": "simulated-ecog", **v}

    @model_validator(mode="after")
    def _check(self) -> ExperimentSpec:
        from brainlike.datasets import validate_dataset

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
        try:
            _, self._dataset = validate_dataset(self.dataset, source="dataset")
        except BrainlikeError as exc:
            raise ValueError(str(exc)) from None
        unknown = set(getattr(self._dataset, "planted", {}) or {}) - set(keys)
        if unknown:
            raise ValueError(f"dataset.planted names models not in the zoo: {sorted(unknown)}")
        return self

    @property
    def dataset_kind(self) -> str:
        """The registered dataset kind of ``dataset``."""
        return str(self.dataset["kind"])

    @property
    def dataset_config(self) -> Any:
        """``dataset`` validated by its plugin's ``Config``."""
        return self._dataset


def load_spec(path: str | Path) -> RunConfig:
    """Read and validate a YAML spec of any registered analysis; errors name the offending field."""
    return parse_spec(read_yaml_mapping(path), source=str(path))


def parse_spec(raw: dict, source: str = "spec") -> RunConfig:
    """Validate a spec mapping with the ``Config`` of its ``analysis`` (default ``alignment``)."""
    from brainlike.registry import ANALYSES

    if not isinstance(raw, dict):
        raise BrainlikeError(f"{source}: the spec must be a mapping of fields")
    name = raw.get("analysis", "alignment")
    plugin = ANALYSES.get(name)
    return validate_config(plugin.Config, raw, source=source, what=f"{name} spec")
