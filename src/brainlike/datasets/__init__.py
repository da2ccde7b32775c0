"""Registered datasets: a spec's ``dataset:`` section → the subjects of a run (:class:`SubjectData`).

A dataset plugin (registered in :data:`brainlike.registry.DATASETS`) is an object with

* ``Config``: a :class:`brainlike.config.StrictModel` subclass validating the ``dataset:`` section
  (its ``kind`` key names the plugin and is not part of ``Config``);
* ``needs_features``: True when the data are generated from the zoo's own features (simulations);
* ``load(config, context) -> list[SubjectData]``: every subject with its recording and its words.

Adding a dataset is one module with such an object plus one line in :mod:`brainlike.registry`
(or ``DATASETS.register(...)`` in your own code, or an entry point; see ``docs/architecture.md``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator

from brainlike.config import StrictModel, format_validation_error
from brainlike.errors import BrainlikeError
from brainlike.neural.sources import SubjectData
from brainlike.stimulus import Stimulus

__all__ = ["DatasetContext", "HierarchySpec", "DatasetPlugin", "SubjectData", "dataset_plugin", "validate_dataset"]


def _hierarchy_form(v: str) -> str:
    from brainlike.errors import NeuralDataError
    from brainlike.neural.sources import parse_hierarchy

    try:
        parse_hierarchy(v)  # checked when the spec is read, before any model or data is loaded
    except NeuralDataError as exc:
        raise ValueError(str(exc)) from None
    return v


#: a ``dataset.hierarchy`` string, its form checked when the spec is validated
HierarchySpec = Annotated[str, AfterValidator(_hierarchy_form)]


@dataclass(frozen=True)
class DatasetContext:
    """What a dataset plugin may use while loading.

    Attributes
    ----------
    stimulus : Stimulus or None
        The spec's own story (``stimulus:``): the words a simulation is generated from. Recorded
        datasets bring their words and ignore it.
    features : dict
        ``{model key: Features}`` of the zoo, for plugins with ``needs_features`` (else empty).
    seed : int
        The run's seed.
    """

    stimulus: Stimulus | None = None
    features: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


class DatasetPlugin(Protocol):
    """What a dataset plugin provides: its config model and a ``load`` method."""

    Config: type[StrictModel]
    needs_features: bool

    def load(self, config: Any, context: DatasetContext) -> list[SubjectData]:
        """The subjects' recordings for ``config``."""
        ...


def dataset_plugin(kind: str) -> DatasetPlugin:
    """The registered dataset plugin of a ``kind`` (with did-you-mean for a typo)."""
    from brainlike.registry import DATASETS

    return DATASETS.get(kind)


def validate_dataset(section: dict, source: str = "spec") -> tuple[str, StrictModel]:
    """``(kind, config)`` of a ``dataset:`` section, validated by its plugin's ``Config``."""
    from pydantic import ValidationError

    if not isinstance(section, dict):
        raise BrainlikeError(f"{source}: dataset must be a mapping with a `kind`")
    section = dict(section)
    kind = section.pop("kind", "simulated-ecog")
    plugin = dataset_plugin(kind)
    try:
        return kind, plugin.Config.model_validate(section)
    except ValidationError as exc:
        raise format_validation_error(exc, f"{source}: dataset (kind {kind})", "dataset section") from None
