"""A `brainlike run` killed (SIGKILL) in the middle of the encoding fits resumes without refitting finished
chunks, never reads a partial or corrupt piece, and ends with exactly the tables of an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from brainlike.execution import ChunkStaging, FitTask
from brainlike.store import ResultsStore

pytestmark = pytest.mark.slow

N_LAYERS = 6  # stories260k: embeddings + 5 blocks
SUBJECTS = ("sim-01", "sim-02")

# `brainlike run` with every fit task slowed down (so the kill lands mid-fit) and logged when it finishes
RUNNER = textwrap.dedent("""
    import os, sys, time
    import brainlike.execution.sweep as sweep
    real = sweep.fit_task
    def logged_fit(task, features, responses):
        time.sleep(float(os.environ["FIT_DELAY"]))
        out = real(task, features, responses)
        with open(os.environ["FIT_LOG"], "a") as fh:
            fh.write(f"{task.subject} {task.chunk_id}\\n")
        return out
    sweep.fit_task = logged_fit
    from brainlike.cli import app
    sys.argv = ["brainlike", "run", sys.argv[1], "--executor", "local"]
    app()
""")


def _spec(tmp_path: Path, out: Path) -> dict:
    return {"name": "kill", "output": str(out), "models": ["stories260k"], "seed": 1,
            "stimulus": {"n_words": 300}, "dataset": {"subjects": len(SUBJECTS), "channels_per_region": 6},
            "encoding": {"n_splits": 4, "inner_splits": 3, "n_permutations": 50},
            "analyses": {"capability": None, "hierarchy_bootstrap": 100}, "report": False,
            "ray": {"layer_chunk": 1}}


def _start(tmp_path: Path, spec_file: Path, log: Path, delay: float) -> subprocess.Popen:
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "FIT_LOG": str(log), "FIT_DELAY": str(delay), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(runner), str(spec_file)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _manifests(out: Path) -> dict[tuple[str, str], Path]:
    """Finished chunks in staging: (subject, chunk id) → chunk folder."""
    found = {}
    for man in (out / "staging" / "scores").rglob("manifest.json"):
        d = man.parent
        found[(d.parent.name.split("=", 1)[1], d.name.split("=", 1)[1])] = d
    return found


def _fitted(log: Path) -> list[tuple[str, str]]:
    return [tuple(line.split()) for line in log.read_text().splitlines()] if log.exists() else []


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in ("model", "subject", "layer", "channel", "region") if k in df.columns]
    return df.sort_values(keys).reset_index(drop=True)


def test_sigkill_mid_fit_resumes_without_refitting(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "killed"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(_spec(tmp_path, out)))
    all_chunks = {(s, f"{k:03d}-{k:03d}") for s in SUBJECTS for k in range(N_LAYERS)}

    # 1. run, and SIGKILL it once the first subject is combined and the second has some finished chunks
    log1 = tmp_path / "fits-1.log"
    proc = _start(tmp_path, spec_file, log1, delay=0.3)
    store = ResultsStore(out / "results")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        staged = [k for k in _manifests(out) if k[0] == SUBJECTS[1]]
        if store.has("scores", model="stories260k", subject=SUBJECTS[0]) and len(staged) >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    log_text = proc.stdout.read()
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed mid-fit:\n{log_text[-3000:]}"
    assert not store.has("scores", model="stories260k", subject=SUBJECTS[1])

    # state at the kill: one combined piece, some finished chunks of the other subject
    piece = out / "results" / "scores" / "model=stories260k" / f"subject={SUBJECTS[0]}" / "part.parquet"
    piece_stat = piece.stat()
    staged = _manifests(out)
    assert {s for s, _ in staged} == {SUBJECTS[1]} and 2 <= len(staged) < N_LAYERS
    # damage it the ways a crash or a bad copy can: a torn temporary file in staging and in the store,
    # and one finished chunk whose bytes changed after its manifest was written
    some_chunk = sorted(staged)[0]
    (staged[some_chunk] / "scores.parquet.tmp-4242").write_bytes(b"PAR1 torn")
    (piece.parent / ".part.parquet.tmp4242").write_bytes(b"PAR1 torn")
    corrupt = sorted(staged)[-1]
    perm = staged[corrupt] / "perm.safetensors"
    raw = bytearray(perm.read_bytes())
    raw[-5] ^= 0xFF
    perm.write_bytes(bytes(raw))

    # 2. run again: only the missing and the corrupt chunks are fitted
    log2 = tmp_path / "fits-2.log"
    proc = _start(tmp_path, spec_file, log2, delay=0.0)
    text = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, text[-3000:]
    refitted = set(_fitted(log2))
    reused = set(staged) - {corrupt}
    assert refitted == {c for c in all_chunks if c[0] == SUBJECTS[1]} - reused
    assert corrupt in refitted
    assert "chunks reused" in text
    # the combined piece finished before the kill was neither rewritten nor refitted
    assert (piece.stat().st_ino, piece.stat().st_mtime_ns) == (piece_stat.st_ino, piece_stat.st_mtime_ns)
    assert not {c for c in refitted if c[0] == SUBJECTS[0]}
    # nothing partial is left anywhere, and staging is gone once everything is combined
    leftovers = [p for p in out.rglob("*") if ".tmp" in p.name]
    assert leftovers == [] and not (out / "staging").exists()

    # 3. identical to an uninterrupted run
    from brainlike.pipelines.alignment import run_experiment
    from brainlike.spec import parse_spec

    ref = run_experiment(parse_spec(_spec(tmp_path, tmp_path / "reference")), progress=False).store
    for table in ("scores", "brain_scores", "best_layers", "significance"):
        pd.testing.assert_frame_equal(_sorted(store.read(table)), _sorted(ref.read(table)), check_exact=True)


def test_chunk_written_by_another_configuration_is_refitted(tmp_path):
    """Staged chunks carry the task's configuration: other settings never reuse them."""
    import numpy as np

    from brainlike.analyses.layer_scores import fit_layer_chunk

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((2, 80, 4)).astype(np.float32), rng.standard_normal((80, 3)).astype(np.float32)
    st = ChunkStaging(tmp_path)
    task = FitTask("m", "s", (1,), ("a", "b", "c"), ("r",) * 3, n_permutations=5, inner_splits=3)
    st.write(task, fit_layer_chunk(X, Y, layers=(1,), n_permutations=5, inner_splits=3, progress=False))
    assert st.is_done(task)
    for change in ({"n_permutations": 6}, {"seed": 1}, {"alphas": (1.0, 10.0)}, {"features_digest": "x"}):
        assert not st.is_done(FitTask(**{**task.__dict__, **change})), change
    (st.chunk_dir(task) / "manifest.json").write_text("{not json")
    assert not st.is_done(task)
