"""The settings of a cross-validated encoding fit, held once: :class:`EncodingOptions`.

One frozen, validated dataclass travels from the spec (:meth:`brainlike.spec.EncodingSpec.options`)
through :func:`~brainlike.analyses.layer_scores.score_layers`,
:func:`~brainlike.analyses.layer_scores.fit_layer_chunk` and the sweep's
:class:`~brainlike.execution.FitTask` to :func:`~brainlike.encoding.cross_validated_encoding`, instead of
the same keyword arguments declared in every signature. Data (features, responses, run ``groups``) are
not options: they stay arguments.

Imports: validation, folds, backends.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from brainlike.encoding.backends import _BACKEND_NAMES, Backend
from brainlike.encoding.folds import MIN_TEST_FOLD_SIZE
from brainlike.encoding.validation import EncodingError, check_alphas

__all__ = ["EncodingOptions", "merge_options"]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


@dataclass(frozen=True)
class EncodingOptions:
    """How a nested cross-validated ridge encoding model is fitted and tested.

    Parameters
    ----------
    n_splits : int
        Outer contiguous folds (>= 2); the held-out scores come from them.
    inner_splits : int
        Inner contiguous folds (>= 2) that choose alpha per target inside each outer training set.
    alphas : tuple of float, optional
        Candidate ridge penalties (unitless, for z-scored features when ``standardize``); None means
        :data:`~brainlike.encoding.validation.DEFAULT_ALPHAS`. Arrays and lists are stored as a tuple
        of floats, so options stay hashable and comparable.
    backend : {"numpy", "torch", "torch_cpu", "torch_cuda"} or Backend
        Array backend of the ridge engine.
    fit_intercept : bool
        Fit an unpenalised intercept per target.
    standardize : bool
        z-score the feature columns with each outer training fold's statistics.
    memory_budget_gb : float
        Working memory of the target chunks, GiB (> 0).
    gap : int
        Samples dropped from the training sets on both sides of every test block (>= 0).
    min_test_size : int
        Smallest outer test fold, samples (>= 2: a Pearson r needs two).
    n_permutations : int
        Circular-shift permutations of the held-out predictions for the channel p-values (>= 0;
        0: no test). Used by :func:`~brainlike.analyses.layer_scores.score_layers`, not by
        :func:`~brainlike.encoding.cross_validated_encoding`.
    seed : int
        Seed of the permutation shifts (>= 0).

    Raises
    ------
    EncodingError
        When a field is out of range or of the wrong type; the message names the field.
    """

    n_splits: int = 5
    inner_splits: int = 5
    alphas: tuple[float, ...] | None = None
    backend: str | Backend = "numpy"
    fit_intercept: bool = True
    standardize: bool = True
    memory_budget_gb: float = 2.0
    gap: int = 0
    min_test_size: int = MIN_TEST_FOLD_SIZE
    n_permutations: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("n_splits", 2), ("inner_splits", 2), ("gap", 0), ("n_permutations", 0), ("seed", 0)):
            v = getattr(self, name)
            if not _is_int(v) or v < low:
                raise EncodingError(f"EncodingOptions.{name} must be an int >= {low}, got {v!r}")
            object.__setattr__(self, name, int(v))
        v = self.min_test_size
        if not _is_int(v) or v < 2:
            raise EncodingError(f"min_test_size must be an int >= 2 (a correlation needs 2 samples), got {v!r}")
        object.__setattr__(self, "min_test_size", int(v))
        if self.alphas is not None:
            object.__setattr__(self, "alphas", tuple(float(a) for a in check_alphas(self.alphas)))
        if not isinstance(self.backend, Backend) and (not isinstance(self.backend, str)
                                                      or self.backend not in _BACKEND_NAMES):
            raise EncodingError(f"EncodingOptions.backend must be one of {_BACKEND_NAMES} or a Backend, "
                                f"got {self.backend!r}")
        for name in ("fit_intercept", "standardize"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise EncodingError(f"EncodingOptions.{name} must be True or False, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        m = self.memory_budget_gb
        if isinstance(m, bool) or not isinstance(m, (int, float, np.number)) or not np.isfinite(m) or m <= 0:
            raise EncodingError(f"EncodingOptions.memory_budget_gb must be a number > 0 (GiB), got {m!r}")
        object.__setattr__(self, "memory_budget_gb", float(m))

    @property
    def alpha_grid(self) -> np.ndarray:
        """The candidate penalties, float64 array of shape (n_alphas,) (the default grid when unset)."""
        return check_alphas(None if self.alphas is None else np.asarray(self.alphas))

    def replace(self, **changes: Any) -> EncodingOptions:
        """A copy with ``changes`` applied (validated again).

        Raises
        ------
        EncodingError
            For a name that is not a field of :class:`EncodingOptions`.
        """
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise EncodingError(f"unknown encoding option(s) {unknown}; the fields are "
                                f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes) if changes else self


def merge_options(options: EncodingOptions | None, overrides: dict[str, Any]) -> EncodingOptions:
    """``options`` (default :class:`EncodingOptions`) with the keyword ``overrides`` applied.

    Parameters
    ----------
    options : EncodingOptions, optional
        The base settings.
    overrides : dict
        Field name -> value, from the backwards-compatible keyword arguments of the public functions
        (``cross_validated_encoding(X, Y, n_splits=3)``); they win over ``options``.

    Returns
    -------
    EncodingOptions

    Raises
    ------
    EncodingError
        For an unknown option name or a bad value.
    """
    if options is not None and not isinstance(options, EncodingOptions):
        raise EncodingError(f"options must be an EncodingOptions, got {type(options).__name__}")
    return (options or EncodingOptions()).replace(**overrides)
