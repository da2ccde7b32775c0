"""Fault injection for the results store, the staging area and the cache: truncated, flipped and
unchecksummed pieces, concurrent writers, read-only folders and a full disk.

Each case ends with the correct result or a clear :class:`BrainlikeError`, never a wrong number, and
what was stored before the fault is still there.
"""
from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainlike.errors import BrainlikeError
from brainlike.store import MANIFEST, ResultsStore

PIECES = [("a", "s1"), ("a", "s2"), ("b", "s1")]


def frame(model: str, subject: str, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"model": model, "subject": subject, "layer": np.arange(8), "r": rng.uniform(0.1, 0.9, 8)})


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["model", "subject", "layer"]).reset_index(drop=True)


@pytest.fixture
def filled(tmp_path):
    store = ResultsStore(tmp_path / "results")
    frames = {}
    for i, (m, s) in enumerate(PIECES):
        frames[(m, s)] = frame(m, s, i)
        store.write("scores", frames[(m, s)], model=m, subject=s)
    return store, frames


def piece_of(store: ResultsStore, model: str, subject: str) -> Path:
    return store._piece("scores", {"model": model, "subject": subject})


def expect_refused(store: ResultsStore, piece: Path, reason: str) -> None:
    """read, query and has() all refuse the damaged piece, naming it and the way out."""
    assert not store.has("scores", model="a", subject="s2")
    for call in (lambda: store.read("scores"), lambda: store.query("SELECT avg(r) FROM scores")):
        with pytest.raises(BrainlikeError, match=reason) as err:
            call()
        text = str(err.value)
        assert str(piece) in text and "brainlike run" in text


def refit_and_check(store: ResultsStore, frames: dict) -> None:
    """What a rerun does (has() is false, so the piece is fitted and written again): then every number is right."""
    store.write("scores", frames[("a", "s2")], model="a", subject="s2")
    assert store.has("scores", model="a", subject="s2")
    want = pd.concat(frames.values(), ignore_index=True)
    pd.testing.assert_frame_equal(_sorted(store.read("scores")), _sorted(want), check_dtype=False, check_exact=True)


# ------------------------------------------------------------------ damaged pieces
def test_truncated_piece(filled):
    store, frames = filled
    piece = piece_of(store, "a", "s2")
    others = {p: p.read_bytes() for p in (piece_of(store, "a", "s1"), piece_of(store, "b", "s1"))}
    piece.write_bytes(piece.read_bytes()[: piece.stat().st_size // 2])
    assert store.piece_status("scores", model="a", subject="s2") == "damaged"
    expect_refused(store, piece, "do not match their checksum")
    assert store.has("scores", model="a", subject="s1") and store.has("scores", model="b", subject="s1")
    assert all(p.read_bytes() == b for p, b in others.items())
    refit_and_check(store, frames)


def test_flipped_byte_that_parquet_itself_does_not_notice(filled):
    store, frames = filled
    piece = piece_of(store, "a", "s2")
    raw = bytearray(piece.read_bytes())
    value = frames[("a", "s2")]["r"].iloc[3]
    at = bytes(raw).find(struct.pack("<d", value))
    assert at > 0, "the r values are stored plain (no compression of random doubles)"
    raw[at + 6] ^= 0x01  # one bit of the exponent/mantissa: still a valid parquet file
    piece.write_bytes(bytes(raw))
    silently_wrong = pd.read_parquet(piece)["r"].iloc[3]
    assert silently_wrong != value  # a plain parquet reader returns a wrong number without complaint ...
    expect_refused(store, piece, "do not match their checksum")  # ... the store does not
    refit_and_check(store, frames)


@pytest.mark.parametrize("damage", ["delete", "garbage", "other piece's", "empty"])
def test_missing_or_bad_checksum(filled, damage):
    store, frames = filled
    piece = piece_of(store, "a", "s2")
    man = piece.parent / MANIFEST
    if damage == "delete":
        man.unlink()
    elif damage == "garbage":
        man.write_text("{not json")
    elif damage == "empty":
        man.write_bytes(b"")
    else:  # a manifest copied from another piece (a botched manual copy): partition and checksum differ
        other = json.loads((piece_of(store, "b", "s1").parent / MANIFEST).read_text())
        man.write_text(json.dumps({**other, "partition": {"model": "a", "subject": "s2"}}))
    expected = "do not match" if damage == "other piece's" else "no checksum"
    assert store.piece_status("scores", model="a", subject="s2") in ("unverified", "damaged")
    expect_refused(store, piece, expected)
    refit_and_check(store, frames)


def test_deleted_piece_is_simply_missing(filled):
    store, frames = filled
    piece = piece_of(store, "a", "s2")
    piece.unlink()
    assert store.piece_status("scores", model="a", subject="s2") == "missing"
    # the other pieces still read (the missing one is refitted by the next run)
    got = _sorted(store.read("scores"))
    want = _sorted(pd.concat([frames[("a", "s1")], frames[("b", "s1")]], ignore_index=True))
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=True)
    refit_and_check(store, frames)


# ------------------------------------------------------------------ read-only folders, full disks
def _raising(err: int):
    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))
    return fail


@pytest.mark.parametrize("err, message", [(errno.EROFS, "permission denied"), (errno.EACCES, "permission denied"),
                                          (errno.ENOSPC, "no space left")])
def test_rename_fails_old_piece_intact(filled, monkeypatch, err, message):
    store, frames = filled
    before = snapshot(store.root)
    monkeypatch.setattr(os, "replace", _raising(err))
    with pytest.raises(BrainlikeError, match=message):
        store.write("scores", frame("a", "s2", seed=99), model="a", subject="s2")
    with pytest.raises(BrainlikeError, match=message):  # a new piece: nothing half-written is left either
        store.write("scores", frame("c", "s1"), model="c", subject="s1")
    monkeypatch.undo()
    assert snapshot(store.root) == before
    assert store.has("scores", model="a", subject="s2") and not store.has("scores", model="c", subject="s1")
    pd.testing.assert_frame_equal(store.read("scores", where={"model": "a", "subject": "s2"}),
                                  frames[("a", "s2")], check_dtype=False, check_exact=True)


def test_disk_full_while_writing_the_piece(filled, monkeypatch):
    store, frames = filled
    before = snapshot(store.root)
    real = Path.write_bytes

    def half_then_full(self, data):
        real(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(BrainlikeError, match="no space left on the device while writing .*part.parquet"):
        store.write("scores", frame("a", "s2", seed=99), model="a", subject="s2")
    monkeypatch.undo()
    assert snapshot(store.root) == before  # the old piece and its checksum, and no temporary file
    refit_and_check(store, frames)


def test_disk_full_while_writing_the_checksum(filled, monkeypatch):
    """The new piece is in place but its checksum could not be written: the piece is never trusted (no
    number from it), and the next run refits it."""
    import brainlike.store as store_mod

    store, frames = filled
    real = store_mod.atomic_write_json

    def full(path, obj, **kw):
        raise BrainlikeError(f"no space left on the device while writing {path}; free some space")

    monkeypatch.setattr(store_mod, "atomic_write_json", full)
    with pytest.raises(BrainlikeError, match="no space left"):
        store.write("scores", frame("a", "s2", seed=99), model="a", subject="s2")
    monkeypatch.setattr(store_mod, "atomic_write_json", real)
    assert store.piece_status("scores", model="a", subject="s2") == "damaged"
    expect_refused(store, piece_of(store, "a", "s2"), "do not match their checksum")
    refit_and_check(store, frames)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions (covered by the EROFS case above)")
def test_really_read_only_folder(filled):
    store, frames = filled
    before = snapshot(store.root)
    folders = [p for p in store.root.rglob("*") if p.is_dir()] + [store.root]
    for d in folders:
        d.chmod(0o555)
    try:
        with pytest.raises(BrainlikeError, match="read-only"):
            store.write("scores", frame("a", "s2", seed=99), model="a", subject="s2")
        pd.testing.assert_frame_equal(_sorted(store.read("scores")),
                                      _sorted(pd.concat(frames.values(), ignore_index=True)), check_dtype=False)
    finally:
        for d in folders:
            d.chmod(0o755)
    assert snapshot(store.root) == before


def test_read_only_output_folder_stops_the_run_before_any_work(tmp_path, monkeypatch):
    from brainlike.pipelines.alignment import run_experiment
    from brainlike.spec import parse_spec

    real_open = os.open

    def no_lock(path, flags, *args):
        if str(path).endswith(".lock") and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_lock)
    with pytest.raises(BrainlikeError, match="read-only folder"):
        run_experiment(parse_spec({"models": ["stories260k"], "output": str(tmp_path / "out")}), progress=False)


# ------------------------------------------------------------------ concurrent writers and readers
def _writer(root: str, wid: int, rounds: int) -> None:
    store = ResultsStore(root)
    for k in range(rounds):
        store.write("scores", frame("shared", "s0", seed=100 + wid), model="shared", subject="s0")
        store.write("scores", frame(f"w{wid}", f"s{k}", seed=wid * 10 + k), model=f"w{wid}", subject=f"s{k}")


def _reader(root: str, rounds: int, out) -> None:
    store = ResultsStore(root)
    valid = {tuple(frame("shared", "s0", seed=100 + w)["r"]) for w in range(3)}
    bad = 0
    for _ in range(rounds):
        try:
            r = store.read("scores", where={"model": "shared"})["r"]
        except BrainlikeError:
            bad += 1
            continue
        bad += tuple(r) not in valid
    out.put(bad)


@pytest.mark.slow
def test_concurrent_writers_and_a_reader(tmp_path):
    root = tmp_path / "results"
    ResultsStore(root).write("scores", frame("shared", "s0", seed=100), model="shared", subject="s0")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(root), w, 6)) for w in range(3)]
    procs.append(ctx.Process(target=_reader, args=(str(root), 40, q)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert q.get(timeout=5) == 0  # the reader never saw an error or a mix of two writers' pieces
    store = ResultsStore(root)
    # every piece verifies, the shared one holds exactly one writer's rows, the others their writer's
    shared = store.read("scores", where={"model": "shared"})
    assert any(shared["r"].tolist() == frame("shared", "s0", seed=100 + w)["r"].tolist() for w in range(3))
    for w in range(3):
        for k in range(6):
            assert store.has("scores", model=f"w{w}", subject=f"s{k}")
            got = store.read("scores", where={"model": f"w{w}", "subject": f"s{k}"})
            np.testing.assert_array_equal(got["r"], frame(f"w{w}", f"s{k}", seed=w * 10 + k)["r"])
    assert not [p for p in root.rglob("*") if ".tmp" in p.name]


# ------------------------------------------------------------------ the sweep refits a damaged piece
def test_sweep_refits_only_the_damaged_piece(tmp_path):
    from brainlike.execution import ChunkStaging, FitTask, LocalExecutor, run_fits

    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 90, 5)).astype(np.float32)
    Ys = {s: (X[1] @ rng.standard_normal((5, 4)) + rng.standard_normal((90, 4))).astype(np.float32)
          for s in ("s1", "s2")}
    chans = ("c0", "c1", "c2", "c3")
    tasks = [FitTask("m", s, layers, chans, ("r",) * 4, n_splits=3, inner_splits=3, n_permutations=5,
                     responses_digest=s) for s in Ys for layers in ((0, 1), (2,))]
    store, staging = ResultsStore(tmp_path / "results"), ChunkStaging(tmp_path / "staging")

    def sweep():
        return run_fits(LocalExecutor(), store, staging, tasks, {("m", ()): X}, Ys, progress=False)

    first = sweep()
    assert first.chunks_fitted == 4
    ref = store.read("scores")
    piece = piece_of(store, "m", "s2")
    piece.write_bytes(piece.read_bytes()[:-40])
    with pytest.raises(BrainlikeError, match="damaged results piece"):
        store.read("scores")
    again = sweep()
    assert again.pieces_skipped == 1 and again.pieces_damaged == 1
    assert sorted(again.fitted) == [("m", "s2", "000-001"), ("m", "s2", "002-002")]
    pd.testing.assert_frame_equal(_sorted(store.read("scores")), _sorted(ref), check_exact=True)


# ------------------------------------------------------------------ staging and cache
def test_staging_chunk_truncated_or_without_manifest_is_refitted(tmp_path):
    from brainlike.analyses.layer_scores import fit_layer_chunk
    from brainlike.execution import ChunkStaging, FitTask

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((2, 60, 3)).astype(np.float32), rng.standard_normal((60, 2)).astype(np.float32)
    st = ChunkStaging(tmp_path)
    task = FitTask("m", "s", (0,), ("a", "b"), ("r", "r"), n_permutations=4, inner_splits=3)
    chunk = fit_layer_chunk(X, Y, layers=(0,), channels=("a", "b"), regions=("r", "r"), n_permutations=4,
                            inner_splits=3, progress=False)
    for damage in ("truncate", "manifest"):
        st.write(task, chunk)
        assert st.is_done(task)
        d = st.chunk_dir(task)
        if damage == "truncate":
            (d / "scores.parquet").write_bytes((d / "scores.parquet").read_bytes()[:30])
        else:
            (d / "manifest.json").unlink()
        assert not st.is_done(task), damage


def test_cache_meta_on_a_full_disk_keeps_the_old_meta(tmp_path, monkeypatch):
    from brainlike.cache import CacheEntry

    entry = CacheEntry(tmp_path, "k" * 24)
    entry.write_meta({"model": "m", "n": 1})
    before = (entry.dir / "meta.json").read_bytes()
    monkeypatch.setattr(os, "replace", _raising(errno.ENOSPC))
    with pytest.raises(BrainlikeError, match="no space left"):
        entry.write_meta({"model": "m", "n": 2})
    monkeypatch.undo()
    assert (entry.dir / "meta.json").read_bytes() == before
    assert json.loads(before) == {"model": "m", "n": 1}
    assert not [p for p in entry.dir.iterdir() if ".tmp" in p.name]
