"""Plugin registries: datasets, analyses and metrics (models have theirs in :mod:`brainlike.models.registry`).

Modelled on brain-score language's ``data_registry`` / ``metric_registry`` / ``benchmark_registry``: a
registry maps a name to a plugin, and built-in plugins are registered *lazily* as ``"module:attribute"``
strings, so listing names imports nothing and a plugin's heavy dependencies load only when it is used.

Three ways to add a plugin:

* a built-in: one new module plus one line in :func:`_builtins` below;
* in your own code: ``ANALYSES.register("my-analysis", MyAnalysis())`` (or a ``"pkg.mod:obj"`` string);
* from another package: an entry point in the group ``brainlike.datasets`` / ``brainlike.analyses`` /
  ``brainlike.metrics`` whose value is ``"pkg.mod:obj"``; it is found on first use.

What a plugin is (see ``docs/architecture.md``):

* a **dataset** has ``Config`` (a :class:`brainlike.config.StrictModel` subclass for the spec's
  ``dataset:`` section) and ``load(config, context) -> list[SubjectData]``;
* an **analysis** has ``Config`` (the whole spec, a subclass of :class:`brainlike.config.RunConfig`) and
  ``run(config, context) -> AnalysisOutput``;
* a **metric** is a function ``metric(y_true, y_pred) -> ndarray (n_targets,)``.

This module sits at the bottom of the package (it imports nothing from brainlike but the errors).
"""
from __future__ import annotations

import difflib
import importlib
from importlib import metadata
from typing import Any, Generic, TypeVar

from brainlike.errors import BrainlikeError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named plugins of one kind, loaded on first use.

    Parameters
    ----------
    kind : str
        What the plugins are (``"dataset"``, ``"analysis"``, ``"metric"``): used in messages.
    group : str, optional
        The entry-point group read for plugins of other packages (default ``brainlike.<kind>s``, with
        ``analysis`` → ``brainlike.analyses``).
    """

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        plural = kind[:-2] + "es" if kind.endswith("is") else kind + "s"
        self.group = group or f"brainlike.{plural}"
        self._entries: dict[str, Any] = {}
        self._descriptions: dict[str, str] = {}
        self._entry_points_read = False

    def register(self, name: str, plugin: T | str, description: str = "", *, replace: bool = False) -> None:
        """Add a plugin under ``name`` (an object, or ``"module:attribute"`` to import on first use).

        Raises
        ------
        BrainlikeError
            When the name is taken and ``replace`` is False.
        """
        if not isinstance(name, str) or not name:
            raise BrainlikeError(f"a {self.kind} needs a non-empty name, got {name!r}")
        if name in self._entries and not replace:
            raise BrainlikeError(f"a {self.kind} named {name!r} is already registered (pass replace=True)")
        self._entries[name] = plugin
        self._descriptions[name] = description

    def unregister(self, name: str) -> None:
        """Remove a plugin (tests use this to clean up)."""
        self._entries.pop(name, None)
        self._descriptions.pop(name, None)

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        for ep in metadata.entry_points(group=self.group):
            self._entries.setdefault(ep.name, ep.value)
            self._descriptions.setdefault(ep.name, f"from {ep.value}")

    def names(self) -> list[str]:
        """The registered names, sorted."""
        self._read_entry_points()
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        """``{name: description}`` for every plugin (imports nothing)."""
        self._read_entry_points()
        return {n: self._descriptions.get(n, "") for n in self.names()}

    def __contains__(self, name: object) -> bool:
        self._read_entry_points()
        return name in self._entries

    def get(self, name: str) -> T:
        """The plugin called ``name`` (imported now if it was registered lazily).

        Raises
        ------
        BrainlikeError
            For an unknown name (with the closest registered names), or a plugin that fails to import.
        """
        self._read_entry_points()
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), list(self._entries), n=3, cutoff=0.5)
            hint = f" — did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise BrainlikeError(f"unknown {self.kind} {name!r}{hint} (registered: {', '.join(self.names())})")
        plugin = self._entries[name]
        if isinstance(plugin, str):
            plugin = _import_target(plugin, f"{self.kind} {name!r}")
            self._entries[name] = plugin
        return plugin


def _import_target(target: str, what: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise BrainlikeError(f"{what} could not be loaded from {target!r}: {exc}") from None
    return obj


#: ``dataset:`` kinds of a spec
DATASETS: Registry = Registry("dataset")
#: analyses that ``brainlike run`` dispatches to (the spec's ``analysis:``)
ANALYSES: Registry = Registry("analysis")
#: scores of predictions: ``metric(y_true, y_pred) -> (n_targets,)``
METRICS: Registry = Registry("metric")


def _builtins() -> None:
    d = DATASETS.register
    d("simulated-ecog", "brainlike.datasets.simulated:SIMULATED_ECOG",
      "simulated ECoG driven by the zoo's own layers, with planted brain-likeness per model")
    d("simulated-fmri", "brainlike.datasets.simulated:SIMULATED_FMRI",
      "simulated BOLD (HRF, AR(1) noise, drift) driven by the zoo's own layers")
    d("bids-ieeg", "brainlike.datasets.bids:BIDS_IEEG", "a BIDS iEEG/ECoG dataset (e.g. the Podcast ECoG, ds005574)")
    d("bids-fmri", "brainlike.datasets.bids:BIDS_FMRI",
      "a BIDS fMRI dataset (NIfTI/GIfTI runs with events; e.g. Narratives ds002345, LeBel ds003020)")
    d("brennan2016", "brainlike.datasets.brennan:BRENNAN2016",
      "REAL fMRI: Brennan et al. 2016, 27 listeners, 6 language ROIs (shipped in the package, CC BY 4.0)")
    d("wordlevel", "brainlike.datasets.wordlevel:WORDLEVEL",
      "tidy per-word response tables (ERP amplitudes, reading times), regressed on each model's surprisal")
    a = ANALYSES.register
    a("alignment", "brainlike.pipelines.alignment:ALIGNMENT",
      "layer-wise brain alignment of a model zoo (Mischler et al. 2024)")
    a("organization", "brainlike.pipelines.organization:ORGANIZATION",
      "neuron sub-groups -> temporal patterns -> functional networks (Sun et al. 2024)")
    a("geometry", "brainlike.pipelines.geometry:GEOMETRY",
      "attention density, intrinsic dimension and context (Cosentino & Shekkizhar 2024)")
    a("skill-theory", "brainlike.pipelines.skills:SKILL_THEORY",
      "skill emergence on random skill-text graphs under scaling laws (Arora & Goyal 2023)")
    a("skillmix", "brainlike.pipelines.skills:SKILLMIX", "a Skill-Mix evaluation (Yu et al. 2023)")
    m = METRICS.register
    m("pearson", "brainlike.encoding.metrics:pearson_r", "Pearson r per target")
    m("r2", "brainlike.encoding.metrics:r2_score", "coefficient of determination per target")


_builtins()
