"""Where the work of a sweep runs: in this process (``local``) or on a Ray cluster (``ray``).

* :mod:`~brainlike.execution.base` — the :class:`Executor` interface, :class:`Resources`;
  :mod:`~brainlike.execution.factory` — :func:`make_executor`
* :mod:`~brainlike.execution.local` / :mod:`~brainlike.execution.ray_backend` — the two backends
* :mod:`~brainlike.execution.tasks` — extraction and layer-chunk fit tasks
* :mod:`~brainlike.execution.staging` — checksummed finished chunks, for resume
* :mod:`~brainlike.execution.sweep` — scheduling fits and combining chunks into result pieces
"""
from brainlike.execution.base import Executor, Resources, TaskFuture
from brainlike.execution.factory import make_executor
from brainlike.execution.local import LocalExecutor
from brainlike.execution.staging import ChunkStaging
from brainlike.execution.sweep import FitReport, responses_digest, run_fits
from brainlike.execution.tasks import (
    ExtractTask,
    FeatureFile,
    FitTask,
    extract_task,
    features_digest,
    fit_task,
    layer_chunks,
    open_features,
)

__all__ = ["ChunkStaging", "Executor", "ExtractTask", "FeatureFile", "FitReport", "FitTask", "LocalExecutor",
           "Resources", "TaskFuture", "extract_task", "features_digest", "fit_task", "layer_chunks", "make_executor",
           "open_features", "responses_digest", "run_fits"]
