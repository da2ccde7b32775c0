"""Scheduling the encoding fits of a sweep on an executor, with resume.

One task per (model, subject, layer chunk). The driver writes each finished chunk to
:class:`~brainlike.execution.staging.ChunkStaging` as it arrives; when the last chunk of a (model,
subject) is in, the chunks are combined (max-over-layers ``p_channel``) into one piece of the results
store and the staging folder of that pair is removed. A run started again skips pairs whose piece
is stored and matches its checksum (a damaged piece is fitted again) and chunks whose checksummed
staging files match.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from brainlike.analyses.layer_scores import combine_layer_chunks
from brainlike.errors import RunInterrupted
from brainlike.execution.base import Executor, Resources
from brainlike.execution.staging import ChunkStaging
from brainlike.execution.tasks import FitTask, fit_task
from brainlike.store import ResultsStore


def responses_digest(Y: np.ndarray) -> str:
    """sha256 of the responses as float32 (C order) and their shape."""
    a = np.ascontiguousarray(Y, dtype=np.float32)
    return hashlib.sha256(str(a.shape).encode() + a.tobytes()).hexdigest()


@dataclass
class FitReport:
    """What :func:`run_fits` did."""

    pieces_skipped: int = 0     # (model, subject[, tag]) pieces already in the results store
    pieces_damaged: int = 0     # pieces found cut short, changed or without checksum: fitted again
    chunks_reused: int = 0      # chunks finished by an earlier, interrupted run
    chunks_discarded: int = 0   # unfinished / stale / corrupt chunk folders found and fitted again
    fitted: list[tuple[str, str, str]] = field(default_factory=list)  # (model, subject, chunk id) fitted now

    @property
    def chunks_fitted(self) -> int:
        """How many chunks were fitted in this run."""
        return len(self.fitted)


def _key(t: FitTask) -> tuple:
    return (t.model, t.subject, t.tag)


def run_fits(
    executor: Executor,
    store: ResultsStore,
    staging: ChunkStaging,
    tasks: list[FitTask],
    features: dict[Any, Any],
    responses: dict[str, Any],
    *,
    resources: Resources = Resources(),
    progress: bool = True,
) -> FitReport:
    """Fit every chunk not yet done and write one ``staging.table`` piece per (model, subject[, tag]).

    Parameters
    ----------
    executor : Executor
        Runs the fit tasks.
    store : ResultsStore
        Receives one piece of ``staging.table`` per (model, subject[, tag]).
    staging : ChunkStaging
        Finished chunks (reused when their configuration matches).
    tasks : list of FitTask
        The full plan, every chunk of every piece (finished work is skipped here).
    features : dict
        ``(model, tag)`` -> what :func:`fit_task` takes as features: a future of an extraction task,
        :class:`~brainlike.models.Features` or a :class:`~brainlike.execution.tasks.FeatureFile`.
    responses : dict
        Subject -> responses ndarray (n_samples, n_channels) float32, or an :meth:`Executor.put` handle.
    resources : Resources
        What each fit task asks for.
    progress : bool
        Show a progress bar.

    Returns
    -------
    FitReport
        What was skipped, reused, discarded and fitted.
    """
    table = staging.table
    report = FitReport()
    groups: dict[tuple, list[FitTask]] = {}
    for t in tasks:
        groups.setdefault(_key(t), []).append(t)
    done: dict[tuple, set[str]] = {}
    todo: list[FitTask] = []
    for g, ts in groups.items():
        part = ts[0].partition
        status = store.piece_status(table, **part)
        if status == "ok":
            staging.remove_group(part)  # combined already; chunks may be left from a kill after the write
            report.pieces_skipped += 1
            continue
        if status != "missing":  # damaged or unverified: never trusted, fitted again
            report.pieces_damaged += 1
        done[g] = set()
        for t in ts:
            if staging.is_done(t):
                done[g].add(t.chunk_id)
                report.chunks_reused += 1
            else:
                if staging.chunk_dir(t).exists():
                    report.chunks_discarded += 1
                    staging.discard(t)
                todo.append(t)

    def finish(g: tuple) -> None:
        ts = groups[g]
        if len(done[g]) < len(ts):
            return
        part = ts[0].partition
        combined = combine_layer_chunks([staging.read(t) for t in ts])
        store.write(table, combined, **part)
        staging.remove_group(part)

    for g in list(done):  # pieces whose chunks were all finished before an interruption
        finish(g)
    futures = {executor.submit(fit_task, t, features[(t.model, t.tag)], responses[t.subject], resources=resources): t
               for t in todo}
    bar = tqdm(total=len(futures), desc=f"{table} fits ({executor.name})", unit="chunk", disable=not progress)
    try:
        for fut in executor.as_completed(list(futures)):
            t = futures.pop(fut)
            staging.write(t, fut.result())
            done[_key(t)].add(t.chunk_id)
            report.fitted.append((t.model, t.subject, t.chunk_id))
            bar.update(1)
            finish(_key(t))
    except KeyboardInterrupt:
        # done: chunks of finished pieces, chunks reused, and those fitted (and staged) now
        done_now = len(tasks) - len(todo) + len(report.fitted)
        raise RunInterrupted(done_now, len(tasks), f"{table} layer-chunk fits") from None
    finally:
        bar.close()
    staging.prune()
    return report
