"""Executors: layer-chunked fits combine to the unchunked table, and Ray gives the local executor's results.

The Ray test starts a local Ray instance (2 CPUs) inside the test and shuts it down afterwards.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainlike.analyses.layer_scores import combine_layer_chunks, fit_layer_chunk, score_layers
from brainlike.encoding import contiguous_folds, cross_validated_encoding
from brainlike.errors import BrainlikeError
from brainlike.execution import ChunkStaging, FitTask, LocalExecutor, Resources, layer_chunks, make_executor
from brainlike.neural.stats import permutation_test


@pytest.fixture(scope="module")
def planted():
    """6 layers; channels 0-3 are driven by layer 4 (the rest is noise)."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((6, 160, 10)).astype(np.float32)
    Y = rng.standard_normal((160, 8)).astype(np.float32)
    Y[:, :4] += 0.8 * X[4] @ rng.standard_normal((10, 4)).astype(np.float32)
    return X, Y


def _ref_p_channel(X, Y, n_perm, n_splits=5, inner_splits=3, seed=0):
    """The max-over-layers permutation p-value, computed directly from per-layer tests."""
    folds = np.empty(Y.shape[0], dtype=np.int64)
    for f, (_, test) in enumerate(contiguous_folds(Y.shape[0], n_splits)):
        folds[test] = f
    obs, null = [], []
    for k in range(X.shape[0]):
        res = cross_validated_encoding(X[k], Y, n_splits=n_splits, inner_splits=inner_splits)
        perm = permutation_test(Y, res.predictions, groups=folds, n_permutations=n_perm, seed=seed)
        obs.append(perm.scores)
        null.append(perm.null)
    obs_max, null_max = np.max(obs, axis=0), np.max(null, axis=0)
    return (1 + (null_max >= obs_max).sum(axis=0)) / (1 + n_perm)


def test_chunked_fits_combine_to_the_unchunked_table(planted):
    X, Y = planted
    full = score_layers(X, Y, n_permutations=60, inner_splits=3, progress=False)
    # ground truth for the channel-level test, independent of the chunk machinery
    p_ref = _ref_p_channel(X, Y, 60)
    np.testing.assert_allclose(full.groupby("channel", sort=False)["p_channel"].first().to_numpy(), p_ref)
    assert (p_ref[:4] < 0.05).all() and (p_ref[4:] > 0.05).all()
    # any chunking, fitted in any order, gives exactly the same table
    for chunking in ([(5,), (0, 1, 2), (3, 4)], layer_chunks(6, 4), layer_chunks(6, 1)):
        chunks = [fit_layer_chunk(X, Y, layers=c, n_permutations=60, inner_splits=3, progress=False) for c in chunking]
        pd.testing.assert_frame_equal(combine_layer_chunks(chunks[::-1]), full, check_exact=True)
    # the chunk's own p_channel would differ (the max is over fewer layers): the combination matters
    alone = combine_layer_chunks([fit_layer_chunk(X, Y, layers=(0, 1), n_permutations=60, inner_splits=3,
                                                  progress=False)])
    assert not np.allclose(alone["p_channel"].to_numpy()[:4], full[full.layer <= 1]["p_channel"].to_numpy()[:4])


def test_combine_rejects_inconsistent_chunks(planted):
    X, Y = planted
    a = fit_layer_chunk(X, Y, layers=(0, 1), n_permutations=10, inner_splits=3, progress=False)
    b = fit_layer_chunk(X, Y, layers=(1, 2), n_permutations=10, inner_splits=3, progress=False)
    c = fit_layer_chunk(X, Y, layers=(3,), n_permutations=20, inner_splits=3, progress=False)
    with pytest.raises(BrainlikeError, match="overlap"):
        combine_layer_chunks([a, b])
    with pytest.raises(BrainlikeError, match="n_permutations"):
        combine_layer_chunks([a, c])
    with pytest.raises(BrainlikeError, match="out of range"):
        fit_layer_chunk(X, Y, layers=(6,), progress=False)
    assert layer_chunks(7, 3) == [(0, 1, 2), (3, 4, 5), (6,)]


def test_staging_detects_corrupt_and_stale_chunks(tmp_path, planted):
    X, Y = planted
    st = ChunkStaging(tmp_path / "staging")
    task = FitTask("m", "s1", (0, 1), tuple(f"c{i}" for i in range(8)), ("r",) * 8, n_permutations=10,
                   inner_splits=3, responses_digest="abc")
    chunk = fit_layer_chunk(X, Y, layers=task.layers, channels=task.channels, regions=task.regions,
                            n_permutations=10, inner_splits=3, progress=False)
    assert not st.is_done(task)
    st.write(task, chunk)
    assert st.is_done(task)
    back = st.read(task)
    pd.testing.assert_frame_equal(back.scores, chunk.scores, check_exact=True)
    np.testing.assert_array_equal(back.null_max, chunk.null_max)
    # the same chunk for other responses is not reused
    assert not st.is_done(FitTask(**{**task.__dict__, "responses_digest": "other"}))
    # a flipped byte in the permutation arrays fails the checksum
    perm = st.chunk_dir(task) / "perm.safetensors"
    raw = bytearray(perm.read_bytes())
    raw[-3] ^= 0xFF
    perm.write_bytes(bytes(raw))
    assert not st.is_done(task)
    # temporary files of a killed write are cleaned
    from brainlike.fileio import TMP_MARK

    (st.chunk_dir(task) / f"{TMP_MARK}123-scores.parquet").write_bytes(b"partial")  # a killed write's leftover
    assert [p.name for p in st.clean_tmp()] == [f"{TMP_MARK}123-scores.parquet"]


def _tiny_spec(out, executor):
    from brainlike.spec import parse_spec

    return parse_spec({
        "name": "tiny", "output": str(out), "models": ["stories260k"], "executor": executor, "seed": 3,
        "stimulus": {"n_words": 200},
        "dataset": {"subjects": 2, "channels_per_region": 3, "planted": {"stories260k": 1.0}},
        "encoding": {"n_splits": 3, "inner_splits": 3, "n_permutations": 30},
        "analyses": {"capability": None, "context": {"windows": [2]}, "hierarchy_bootstrap": 100},
        "report": False, "ray": {"layer_chunk": 2},
    })


def _sorted(df, keys):
    return df.sort_values([k for k in keys if k in df.columns]).reset_index(drop=True)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is in the 'test' extra: pip install -e '.[test]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_executors_map_and_chain_futures(ray_cluster):
    def _double(x):  # local functions travel by value (this test module is not importable on workers)
        return 2 * x

    def _add(a, b):
        return a + b

    for ex in (LocalExecutor(), make_executor("ray")):
        with ex:
            assert ex.map(_double, [1, 2, 3]) == [2, 4, 6]
            a = ex.submit(_double, 5, resources=Resources(num_cpus=1))
            b = ex.submit(_add, a, ex.put(np.arange(3)))  # a future as an argument: its result goes in
            np.testing.assert_array_equal(b.result(), [10, 11, 12])
            assert {int(np.sum(f.result())) for f in ex.as_completed([a, b])} == {10, 33}
    assert ray_cluster.is_initialized()  # the executor did not shut down a cluster it did not start
    with pytest.raises(BrainlikeError, match="executor"):
        make_executor("slurm")


@pytest.mark.slow
def test_ray_executor_gives_the_local_results(tmp_path, shared_data, ray_cluster, monkeypatch):
    from brainlike.pipelines.alignment import run_experiment

    results = {}
    for executor in ("ray", "local"):  # separate feature caches: both executors extract
        monkeypatch.setenv("BRAINLIKE_CACHE", str(tmp_path / f"cache-{executor}"))
        res = run_experiment(_tiny_spec(tmp_path / executor, executor), progress=False)
        results[executor] = res.store
        assert not (tmp_path / executor / "staging").exists()  # chunks were combined and cleaned up
        assert list((tmp_path / f"cache-{executor}" / "features").iterdir())  # features went to this cache
    keys = ["model", "subject", "context", "layer", "channel"]
    for table in ("scores", "context_scores", "brain_scores", "best_layers"):
        a, b = (_sorted(results[k].read(table), keys) for k in ("local", "ray"))
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    scores, channels = results["local"].read("scores"), results["local"].read("channels")
    n_ch = channels.groupby("subject").size()
    assert scores.groupby("subject").size().to_dict() == (6 * n_ch).to_dict()  # 6 layers × every channel
    assert scores["p_channel"].notna().all()


def test_executor_in_spec_and_cli(tmp_path):
    from typer.testing import CliRunner

    from brainlike.cli import app
    from brainlike.spec import parse_spec

    spec = parse_spec({"models": ["stories260k"], "executor": "ray", "ray": {"address": "auto", "layer_chunk": 4}})
    assert spec.executor == "ray" and spec.ray.address == "auto" and spec.ray.layer_chunk == 4
    with pytest.raises(BrainlikeError, match="executor"):
        parse_spec({"models": ["stories260k"], "executor": "dask"})
    with pytest.raises(BrainlikeError, match="ray.layer_chunk"):
        parse_spec({"models": ["stories260k"], "ray": {"layer_chunk": 0}})
    path = tmp_path / "spec.yaml"
    path.write_text("models: [stories260k]\n")
    res = CliRunner().invoke(app, ["run", str(path), "--executor", "slurm"])
    assert res.exit_code == 2 and "--executor must be 'local' or 'ray'" in res.output
