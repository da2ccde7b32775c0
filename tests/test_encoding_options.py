"""EncodingOptions: validated once, passed end to end, identifies staged chunks."""
from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from brainlike.analyses.layer_scores import fit_layer_chunk, score_layers
from brainlike.encoding import EncodingError, EncodingOptions, cross_validated_encoding
from brainlike.execution import ChunkStaging, FitTask
from brainlike.execution.staging import task_config


@pytest.mark.parametrize("bad, match", [
    ({"n_splits": 1}, "n_splits must be an int >= 2"),
    ({"inner_splits": 2.5}, "inner_splits must be an int >= 2"),
    ({"gap": -1}, "gap must be an int >= 0"),
    ({"n_permutations": True}, "n_permutations must be an int"),
    ({"min_test_size": 1}, "min_test_size must be an int >= 2"),
    ({"alphas": [0.0, 1.0]}, "alphas must be finite and strictly positive"),
    ({"backend": "cupy"}, "backend must be one of"),
    ({"standardize": "yes"}, "standardize must be True or False"),
    ({"memory_budget_gb": 0}, "memory_budget_gb must be a number > 0"),
])
def test_bad_options_name_the_field(bad, match):
    with pytest.raises(EncodingError, match=match):
        EncodingOptions(**bad)


def test_options_are_hashable_and_normalised():
    a = EncodingOptions(alphas=np.array([1.0, 10.0]), n_splits=np.int64(4))
    b = EncodingOptions(alphas=[1, 10], n_splits=4)
    assert a == b and hash(a) == hash(b) and a.alphas == (1.0, 10.0) and type(a.n_splits) is int
    np.testing.assert_array_equal(a.alpha_grid, [1.0, 10.0])
    assert EncodingOptions().alpha_grid.size == 17
    assert a.replace(seed=3).seed == 3 and a.seed == 0
    with pytest.raises(EncodingError, match="unknown encoding option"):
        a.replace(n_split=3)


def test_options_and_keywords_give_the_same_fit():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 6))
    Y = X @ rng.standard_normal((6, 3)) + rng.standard_normal((90, 3))
    opts = EncodingOptions(n_splits=3, inner_splits=3, alphas=(0.1, 10.0, 1e3), gap=2)
    by_opts = cross_validated_encoding(X, Y, options=opts)
    by_kw = cross_validated_encoding(X, Y, n_splits=3, inner_splits=3, alphas=[0.1, 10.0, 1e3], gap=2)
    np.testing.assert_array_equal(by_opts.scores, by_kw.scores)
    np.testing.assert_array_equal(by_opts.alphas, by_kw.alphas)
    # keywords win over the options, and really change the fit
    other = cross_validated_encoding(X, Y, options=opts, n_splits=5)
    assert other.fold_scores.shape == (5, 3) and by_opts.fold_scores.shape == (3, 3)
    with pytest.raises(EncodingError, match="unknown encoding option"):
        cross_validated_encoding(X, Y, nsplits=3)


def test_layer_scores_take_options_or_keywords():
    rng = np.random.default_rng(1)
    F = rng.standard_normal((2, 80, 4)).astype(np.float32)
    Y = (F[1] @ rng.standard_normal((4, 2)) + rng.standard_normal((80, 2))).astype(np.float32)
    opts = EncodingOptions(n_splits=4, inner_splits=3, n_permutations=9, seed=2)
    a = score_layers(F, Y, options=opts, progress=False)
    b = score_layers(F, Y, n_splits=4, inner_splits=3, n_permutations=9, seed=2, progress=False)
    assert a.equals(b) and "p_channel" in a
    c = fit_layer_chunk(F, Y, options=opts, seed=5, progress=False)
    assert c.n_permutations == 9 and not np.array_equal(c.null_max, fit_layer_chunk(F, Y, options=opts,
                                                                                    progress=False).null_max)


def test_fit_task_holds_one_options_field_and_identifies_chunks(tmp_path):
    legacy = FitTask("m", "s", (0, 1), ("a",), ("r",), n_splits=3, inner_splits=3, n_permutations=5,
                     responses_digest="d")
    task = FitTask("m", "s", (0, 1), ("a",), ("r",), EncodingOptions(n_splits=3, inner_splits=3, n_permutations=5),
                   responses_digest="d")
    assert [f.name for f in dataclasses.fields(task)].count("options") == 1
    assert legacy == task and task_config(legacy) == task_config(task)
    assert pickle.loads(pickle.dumps(task)) == task  # executors ship tasks to other processes
    assert dataclasses.replace(task, subject="t").options == task.options
    changed = FitTask(**{**task.__dict__, "n_permutations": 6})
    assert changed.options.n_permutations == 6 and changed != task and task_config(changed) != task_config(task)
    # resume: a staged chunk is reused for equal options only
    rng = np.random.default_rng(2)
    F, Y = rng.standard_normal((2, 60, 3)).astype(np.float32), rng.standard_normal((60, 1)).astype(np.float32)
    st = ChunkStaging(tmp_path)
    st.write(task, fit_layer_chunk(F, Y, layers=task.layers, channels=task.channels, regions=task.regions,
                                   options=task.options, progress=False))
    assert st.is_done(legacy) and st.is_done(FitTask(**task.__dict__))
    for change in ({"gap": 1}, {"fit_intercept": False}, {"backend": "torch_cpu"}, {"alphas": (1.0,)}):
        assert not st.is_done(dataclasses.replace(task, options=task.options.replace(**change))), change


def test_spec_builds_the_options():
    from brainlike.spec import EncodingSpec

    enc = EncodingSpec(n_splits=4, inner_splits=3, alphas=[1.0, 100.0], n_permutations=50)
    opts = enc.options(7)
    assert opts == EncodingOptions(n_splits=4, inner_splits=3, alphas=(1.0, 100.0), n_permutations=50, seed=7)
    assert enc.options(7, n_permutations=0).n_permutations == 0
