"""The results store: read-only SQL, parameters, one folder per label, clear errors for missing stores.

Every refused query is also checked to leave the store's files byte for byte as they were.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from brainlike.cli import app
from brainlike.errors import BrainlikeError
from brainlike.locking import LockHeldError, output_lock
from brainlike.store import ResultsStore, partition_dirname


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (relative path → bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def flat(text: str) -> str:
    """``text`` without any white space (the CLI's messages are wrapped to the terminal width)."""
    return "".join(text.split())


def _scores(model: str, subject: str, seed: int, n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"model": model, "subject": subject, "layer": np.arange(n) % 3,
                         "channel": [f"e{i}" for i in range(n)], "r": rng.standard_normal(n)})


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    s = ResultsStore(tmp_path / "results")
    for i, (m, sub) in enumerate([("a", "s1"), ("a", "s2"), ("b", "s1")]):
        s.write("scores", _scores(m, sub, i), model=m, subject=sub)
    s.write("brain_scores", pd.DataFrame({"model": ["a", "b"], "brain_score": [0.3, 0.1]}))
    return s


# ------------------------------------------------------------------ read-only queries
REFUSED = {
    "COPY (SELECT 'x') TO '{piece}'": "COPY",
    "COPY scores TO '{root}/dump.csv'": "COPY",
    "SELECT * FROM read_csv('/etc/passwd')": "read or write a file",
    "SELECT * FROM read_parquet('{piece}')": "read or write a file",
    "SELECT * FROM glob('/etc/*')": "read or write a file",
    "ATTACH '{root}/new.duckdb' AS x": "ATTACH",
    "INSTALL httpfs": "INSTALL",
    "LOAD httpfs": "LOAD",
    "SET enable_external_access = true": "SET",
    "PRAGMA database_list": "PRAGMA",
    "CREATE TABLE t AS SELECT 1": "CREATE",
    "DROP TABLE scores": "DROP",
    "SELECT 1; COPY (SELECT 1) TO '{root}/x.csv'": "2 statements",
    "": "empty",
    "   \n ": "empty",
    "-- only a comment": "no statement",
    "SELEC model FROM scores": "does not parse",
}


@pytest.mark.parametrize("sql, expected", list(REFUSED.items()))
def test_refused_queries_leave_the_store_as_it_was(store, sql, expected):
    piece = next((store.root / "scores").rglob("part.parquet"))
    sql = sql.format(piece=piece, root=store.root)
    before = snapshot(store.root)
    with pytest.raises(BrainlikeError, match=expected):
        store.query(sql)
    assert snapshot(store.root) == before  # nothing overwritten, nothing created (not even a lock file)
    assert store.read("scores").shape == (18, 5)


def test_cli_refuses_writes_and_file_reads(store):
    before = snapshot(store.root)
    piece = next((store.root / "scores").rglob("part.parquet"))
    run = CliRunner().invoke
    for sql, expected in ((f"COPY (SELECT 'x') TO '{piece}'", "not a COPY statement"),
                          ("SELECT * FROM read_csv('/etc/passwd')", "read or write a file"),
                          ("", "empty")):
        res = run(app, ["results", "query", sql, "--store", str(store.root)])
        assert res.exit_code == 2, res.output
        assert flat(expected) in flat(res.output) and "Traceback" not in res.output
    assert snapshot(store.root) == before
    # the next reader still sees the whole table (the crash of the issue: KeyError 'subject')
    res = run(app, ["results", "query", "SELECT count(DISTINCT subject) AS n FROM scores", "--store",
                    str(store.root), "--csv"])
    assert res.exit_code == 0 and res.stdout.split() == ["n", "2"]


def test_queries_give_the_pandas_answer_with_parameters(store):
    every = pd.concat([_scores("a", "s1", 0), _scores("a", "s2", 1), _scores("b", "s1", 2)])
    want = every[every["subject"] == "s1"].groupby("model", as_index=False)["r"].mean()
    got = store.query("WITH s AS (SELECT * FROM scores WHERE subject = ?) SELECT model, avg(r) AS r FROM s "
                      "GROUP BY model ORDER BY model", ["s1"])
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    named = store.query("SELECT brain_score FROM brain_scores WHERE model = $m", {"m": "b"})
    assert named["brain_score"].tolist() == [0.1]
    # a value that is SQL in a string is only a value
    assert store.query("SELECT count(*) AS n FROM scores WHERE model = ?", ["a' OR '1'='1"])["n"].item() == 0


def test_query_connection_is_locked_down(store):
    got = store.query("SELECT current_setting('enable_external_access') AS ext, "
                      "current_setting('lock_configuration') AS locked, current_setting('temp_directory') AS tmp")
    assert got.iloc[0].tolist() == [False, True, ""]


def test_output_folder_instead_of_store_gets_a_hint(store):
    with pytest.raises(BrainlikeError, match="did you mean --store"):
        ResultsStore(store.root.parent).query("SELECT * FROM scores")


def test_query_loads_only_the_tables_it_names(store, monkeypatch):
    loaded = []
    real = ResultsStore._load
    monkeypatch.setattr(ResultsStore, "_load", lambda self, t: loaded.append(t) or real(self, t))
    store.query("SELECT * FROM brain_scores")
    assert loaded == ["brain_scores"]


# ------------------------------------------------------------------ parameters, apostrophes
def test_apostrophes_in_paths_and_labels(tmp_path):
    s = ResultsStore(tmp_path / "o'brien lab" / "results")
    df = _scores("o'brien's model", "s'1", 3)
    s.write("scores", df, model="o'brien's model", subject="s'1")
    s.write("scores", _scores("plain", "s1", 4), model="plain", subject="s1")
    assert s.has("scores", model="o'brien's model", subject="s'1")
    back = s.read("scores", where={"model": "o'brien's model", "subject": "s'1"})
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert s.query("SELECT count(*) AS n FROM scores")["n"].item() == 12
    with pytest.raises(TypeError, match="dict"):
        s.read("scores", where="model = 'plain'")


@pytest.mark.slow
def test_run_and_resume_with_apostrophes_in_output_and_label(tmp_path, shared_data):
    """The real `brainlike run`, into `o'brien lab`, with a model label holding a quote; run, then resume
    (the resume reads the capability cache back by label)."""
    from brainlike.pipelines.alignment import run_experiment
    from brainlike.spec import parse_spec

    spec = parse_spec({
        "name": "quote", "output": str(tmp_path / "o'brien lab" / "out"), "seed": 2,
        "models": [{"name": "stories260k", "label": "o'brien's 260k"}], "stimulus": {"n_words": 120},
        "dataset": {"subjects": 1, "channels_per_region": 2},
        "encoding": {"n_splits": 3, "inner_splits": 3, "n_permutations": 10},
        "analyses": {"capability": {"corpus": "shared:inaugural-2009", "max_bytes": 300}, "hierarchy_bootstrap": 100},
        "report": False, "ray": {"layer_chunk": 6},
    })
    first = run_experiment(spec, progress=False)
    cap = first.tables["capability"]
    # the capability table is long (one row per model and measure): bits per byte and per word here
    assert set(cap["model"]) == {"o'brien's 260k"}
    assert np.isfinite(cap.loc[cap["measure"] == "bits_per_byte:inaugural-2009", "value"]).all()
    again = run_experiment(spec, progress=False)  # every piece is reused, the capability read back
    pd.testing.assert_frame_equal(again.tables["capability"], cap, check_dtype=False)
    pd.testing.assert_frame_equal(again.store.read("scores"), first.store.read("scores"))


# ------------------------------------------------------------------ one folder per label
@pytest.mark.parametrize("a, b", [("tiny/v1", "tiny_v1"), ("α-model", "β-model"), ("", "_"), ("x" * 300, "x" * 301)])
def test_labels_that_sanitise_alike_keep_their_own_results(tmp_path, a, b):
    s = ResultsStore(tmp_path)
    da, db = _scores(a, "s1", 1), _scores(b, "s1", 2)
    s.write("scores", da, model=a, subject="s1")
    s.write("scores", db, model=b, subject="s1")
    assert partition_dirname(a) != partition_dirname(b)
    assert all(len(f"model={partition_dirname(v)}".encode()) < 255 for v in (a, b))
    pd.testing.assert_frame_equal(s.read("scores", where={"model": a}), da, check_dtype=False)
    pd.testing.assert_frame_equal(s.read("scores", where={"model": b}), db, check_dtype=False)


def test_a_folder_collision_is_refused_naming_both_labels(tmp_path, monkeypatch):
    """Where two labels do share a folder (a case-insensitive file system; simulated here with the old
    lossy naming), the second write and has() are refused and the first label's results stay."""
    import brainlike.store as store_mod

    monkeypatch.setattr(store_mod, "partition_dirname", lambda v: store_mod._SAFE.sub("_", str(v)))
    s = ResultsStore(tmp_path)
    first = _scores("tiny/v1", "s1", 1)
    s.write("scores", first, model="tiny/v1", subject="s1")
    before = snapshot(tmp_path)
    with pytest.raises(BrainlikeError, match=r"model 'tiny/v1' and model 'tiny_v1' map to the same folder"):
        s.write("scores", _scores("tiny_v1", "s1", 2), model="tiny_v1", subject="s1")
    with pytest.raises(BrainlikeError, match="tiny/v1"):
        s.has("scores", model="tiny_v1", subject="s1")
    assert snapshot(tmp_path) == before
    pd.testing.assert_frame_equal(s.read("scores"), first, check_dtype=False)


def test_spec_refuses_labels_that_differ_only_in_case():
    from brainlike.spec import parse_spec

    with pytest.raises(BrainlikeError, match="'Tiny' and 'tiny'"):
        parse_spec({"models": [{"name": "stories260k", "label": "Tiny"}, {"name": "stories260k", "label": "tiny"}]})
    spec = parse_spec({"models": [{"name": "stories260k", "label": "tiny/v1"},
                                  {"name": "stories260k", "label": "tiny_v1"}]})
    assert [m.key for m in spec.models] == ["tiny/v1", "tiny_v1"]


# ------------------------------------------------------------------ missing stores
def test_missing_store_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope" / "results"
    run = CliRunner().invoke
    for args in (["results", "tables", "--store", str(missing)],
                 ["results", "query", "SELECT 1", "--store", str(missing)]):
        res = run(app, args)
        assert res.exit_code == 2, res.output
        assert flat(f"no results store at {missing}") in flat(res.output)
    with pytest.raises(BrainlikeError, match="no results store"):
        ResultsStore(missing).read("scores")
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run(app, ["results", "tables", "--store", str(empty)])
    assert res.exit_code == 0 and flat("holds no tables") in flat(res.output)


def test_results_tables_lists_tables(store):
    res = CliRunner().invoke(app, ["results", "tables", "--store", str(store.root)])
    assert res.exit_code == 0 and res.stdout.split() == ["brain_scores", "scores"]


# ------------------------------------------------------------------ the output-folder lock
def _hold_lock(folder: str, ready, release) -> None:
    with output_lock(folder, timeout=0):
        ResultsStore(Path(folder) / "results").write("scores", _scores("a", "s1", 9), model="a", subject="s1")
        ready.set()
        release.wait(30)


def test_a_second_run_into_the_same_folder_names_the_first(tmp_path):
    from brainlike.pipelines.alignment import run_experiment
    from brainlike.spec import parse_spec

    out = tmp_path / "out"
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(out), ready, release))
    holder.start()
    try:
        assert ready.wait(60), "the first process did not take the lock"
        before = snapshot(out)
        spec = parse_spec({"models": ["stories260k"], "output": str(out)})
        with pytest.raises(LockHeldError, match=f"in use by pid {holder.pid} on host"):
            run_experiment(spec, progress=False)  # refused before any work
        assert snapshot(out) == before
        # with a timeout, a waiter gets the folder once the holder is done
        t0 = time.monotonic()
        release.set()
        with output_lock(out, timeout=30):
            waited = time.monotonic() - t0
        assert waited < 30
    finally:
        release.set()
        holder.join(30)
    assert holder.exitcode == 0
    assert ResultsStore(out / "results").has("scores", model="a", subject="s1")


def test_lock_is_released_when_its_holder_dies(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    assert ready.wait(60)
    os.kill(holder.pid, 9)
    holder.join(30)
    with output_lock(tmp_path, timeout=5):  # the kernel dropped the dead holder's lock
        pass


def test_lock_timeout_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLIKE_LOCK_TIMEOUT", "soon")
    with pytest.raises(BrainlikeError, match="BRAINLIKE_LOCK_TIMEOUT"), output_lock(tmp_path):
        pass
