"""Finished layer chunks of unfinished (model, subject) fits, kept on disk so a killed run resumes.

Layout (under ``<output>/staging``)::

    <table>/model=<m>/subject=<s>[/context=<n>]/layers=<first>-<last>/
        scores.parquet       the chunk's rows (no p_channel yet)
        perm.safetensors     obs_max (n_channels,), null_max (n_permutations, n_channels) — with permutations
        manifest.json        written last: sha256 of both files and the task's configuration

Every file is written with :func:`brainlike.fileio.atomic_write` (temporary name, fsync, rename, folder
sync; checksums by :func:`brainlike.fileio.sha256_file`, as for the pieces of the results store), and the
manifest comes last, so a chunk either has a manifest whose checksums match its files or it is not
finished; a run that finds a missing, mismatching or corrupt chunk fits it again. Temporary files of a
killed run are removed by :meth:`ChunkStaging.clean_tmp`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file

from brainlike.analyses.layer_scores import LayerChunk
from brainlike.execution.tasks import FitTask
from brainlike.fileio import atomic_write, atomic_write_json, clean_tmp, sha256_file
from brainlike.store import partition_dirname


def task_config(task: FitTask) -> str:
    """A digest of everything that determines a chunk's numbers."""
    blob = json.dumps(dataclasses.asdict(task), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


class ChunkStaging:
    """Finished chunks of layer fits, with checksums.

    Parameters
    ----------
    root : str or Path
        The staging folder (e.g. ``<output>/staging``).
    table : str
        The results table the chunks belong to (a sub-folder of ``root``).
    """

    def __init__(self, root: str | Path, table: str = "scores"):
        self.root = Path(root)
        self.table = table

    def group_dir(self, partition: dict) -> Path:
        """The folder of one (model, subject[, tag]) piece's chunks."""
        path = self.root / self.table
        for k, v in partition.items():
            path = path / f"{k}={partition_dirname(v)}"
        return path

    def chunk_dir(self, task: FitTask) -> Path:
        """The folder of one chunk: ``<group_dir>/layers=<first>-<last>``."""
        return self.group_dir(task.partition) / f"layers={task.chunk_id}"

    def write(self, task: FitTask, chunk: LayerChunk) -> Path:
        """Store a finished chunk (files first, manifest last)."""
        d = self.chunk_dir(task)
        files = {"scores.parquet": lambda p: chunk.scores.to_parquet(p, index=False)}
        if chunk.n_permutations > 0:
            arrays = {"obs_max": np.ascontiguousarray(chunk.obs_max, dtype=np.float64),
                      "null_max": np.ascontiguousarray(chunk.null_max, dtype=np.float64)}
            files["perm.safetensors"] = lambda p: save_file(arrays, str(p))
        (d / "manifest.json").unlink(missing_ok=True)  # an older manifest must not vouch for new files
        sums = {name: sha256_file(atomic_write(d / name, fn)) for name, fn in files.items()}
        manifest = {"config": task_config(task), "layers": list(task.layers), "n_permutations": chunk.n_permutations,
                    "sha256": sums}
        return atomic_write_json(d / "manifest.json", manifest)

    def _manifest(self, task: FitTask) -> dict | None:
        path = self.chunk_dir(task) / "manifest.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def is_done(self, task: FitTask) -> bool:
        """A manifest for this exact task whose checksums match the files."""
        man = self._manifest(task)
        if man is None or man.get("config") != task_config(task):
            return False
        d = self.chunk_dir(task)
        try:
            return all(sha256_file(d / name) == digest for name, digest in man["sha256"].items())
        except (OSError, KeyError, TypeError, AttributeError):
            return False

    def read(self, task: FitTask) -> LayerChunk:
        """A finished chunk (call :meth:`is_done` first)."""
        d = self.chunk_dir(task)
        man = self._manifest(task) or {}
        scores = pd.read_parquet(d / "scores.parquet")
        n_perm = int(man.get("n_permutations", 0))
        if n_perm > 0:
            arrays = load_file(str(d / "perm.safetensors"))
            return LayerChunk(scores, n_perm, arrays["obs_max"], arrays["null_max"])
        return LayerChunk(scores, 0)

    def discard(self, task: FitTask) -> None:
        """Remove a chunk (unfinished, stale or corrupt)."""
        shutil.rmtree(self.chunk_dir(task), ignore_errors=True)

    def remove_group(self, partition: dict) -> None:
        """Drop the chunks of a piece once its combined table is in the results store."""
        shutil.rmtree(self.group_dir(partition), ignore_errors=True)

    def prune(self) -> None:
        """Remove empty folders (left once every piece is combined)."""
        if not self.root.exists():
            return
        for d in sorted((p for p in self.root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            if not any(d.iterdir()):
                d.rmdir()
        if not any(self.root.iterdir()):
            self.root.rmdir()

    def clean_tmp(self) -> list[Path]:
        """Delete temporary files left by a killed run; returns them."""
        return clean_tmp(self.root)
