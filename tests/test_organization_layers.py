"""The compiled sparse coder (the speed-up of the SmolLM2 / Gemma3 runs) and the layer origin of the patterns.

References: scikit-learn's ``sparse_encode`` (codes), the vectorised numpy coder (the patterns learned on
stories260k's neurons must be the same up to permutation), planted sub-groups at known depths (layer origin) and
random assignments (the permutation p of the assigned depth must not be small more often than nominal).
"""
import numpy as np
import pandas as pd
import pytest

from brainlike.analyses.organization import PatternLearner
from brainlike.analyses.organization.layers import assigned_depth, layer_origin, layer_thirds
from brainlike.analyses.organization.metrics import match_patterns
from brainlike.analyses.organization.patterns import sparse_encode
from brainlike.analyses.organization.timecourses import iter_timecourses, tr_matrix
from brainlike.errors import BrainlikeError

pytestmark = pytest.mark.usefixtures("single_thread")


def test_compiled_coder_equals_numpy_and_sklearn():
    from sklearn.decomposition import sparse_encode as sk_encode

    rng = np.random.default_rng(4)
    D = rng.normal(size=(12, 90))
    D[3] = 0.8 * D[2] + 0.2 * D[3]          # correlated atoms: the coordinate descent needs many sweeps
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.normal(size=(300, 90)) * 0.1
    for positive in (False, True):
        fast = sparse_encode(X, D, 0.03, positive=positive, coder="numba")
        slow = sparse_encode(X, D, 0.03, positive=positive, coder="numpy")
        ref = sk_encode(X, D, algorithm="lasso_cd", alpha=0.03, positive=positive, max_iter=5000)
        np.testing.assert_allclose(fast, slow, atol=1e-5)   # correlated atoms: both stop at tol 1e-7 per step
        np.testing.assert_allclose(fast, ref, atol=1e-5)
        assert 0.05 < (fast != 0).mean() < 0.95
    with pytest.raises(BrainlikeError, match="coder"):
        sparse_encode(X, D, 0.1, coder="fortran")


@pytest.mark.slow   # the extraction (shared with tests/test_organization.py's fixture); the fits take ~1 s
def test_compiled_coder_learns_the_same_patterns_on_stories260k(shared_data):
    """The speed-up must not change the result: on stories260k's 860 MLP neurons reading the built-in story
    (240 volumes), K = 16 patterns learned with the compiled and the numpy coder match one-to-one with r > .99."""
    from brainlike.analyses.organization.run import load_stimulus
    from brainlike.config import StimulusSpec
    from brainlike.models.neurons import NeuronOptions, extract_neurons

    stim = load_stimulus(StimulusSpec(jitter=0.0))   # the story and options of tests/test_organization.py
    acts = extract_neurons("stories260k", stim, NeuronOptions(), progress=False)
    n_trs = int(np.ceil((stim.duration + 20.0) / 2.0))
    binning = tr_matrix(acts.row_onsets(stim), n_trs, 2.0, "mean")
    X = np.concatenate([tc for _, tc, _ in iter_timecourses(acts, binning)], axis=1).T
    fits = {c: PatternLearner(16, 0.1, n_epochs=3, random_state=0, coder=c).fit(X) for c in ("numba", "numpy")}
    _, _, r = match_patterns(fits["numba"].components_, fits["numpy"].components_)
    assert r.min() > 0.99, r
    codes = fits["numba"].transform(X)
    np.testing.assert_allclose(codes, fits["numpy"].transform(X), atol=1e-3)
    assert 0.01 < (codes != 0).mean() < 0.9


def test_layer_thirds_split_blocks_evenly():
    for n_layers, sizes in ((30, [10, 10, 10]), (18, [6, 6, 6]), (5, [2, 2, 1])):
        layers = np.repeat(np.arange(1, n_layers + 1), 4)
        g = layer_thirds(layers)
        assert np.bincount(g).tolist() == [4 * s for s in sizes]
        assert np.all(np.diff(g) >= 0)   # contiguous, in depth order


def test_layer_origin_recovers_planted_depths():
    """Pattern 0's members sit in the last third, pattern 1's in the first, pattern 2's everywhere."""
    rng = np.random.default_rng(0)
    layers = np.repeat(np.arange(1, 13), 50)                     # 12 blocks x 50 neurons
    codes = np.zeros((len(layers), 3))
    late, early = layers >= 9, layers <= 4
    codes[rng.choice(np.flatnonzero(late), 80, replace=False), 0] = rng.uniform(0.2, 1, 80)
    codes[rng.choice(np.flatnonzero(early), 80, replace=False), 1] = rng.uniform(0.2, 1, 80)
    codes[rng.choice(len(layers), 80, replace=False), 2] = rng.uniform(0.2, 1, 80)
    asg = pd.DataFrame({"pattern": [0, 1, 2], "assigned": [True, False, False], "roi": ["LATL", "LIFG", "LPTL"]})
    o = layer_origin(codes, layers, assignments=asg, n_boot=200).set_index("pattern")
    assert o.loc[0, "late"] == pytest.approx(1.0) and o.loc[1, "early"] == pytest.approx(1.0)
    assert o.loc[0, "depth_low"] > 8 / 11 - 1e-9 and o.loc[1, "depth_high"] < 3 / 11 + 1e-9
    assert o.loc[2, "depth_low"] < 0.5 < o.loc[2, "depth_high"]   # random members: the chance depth
    assert o["chance_depth"].eq(0.5).all()
    np.testing.assert_allclose(o[["early", "middle", "late"]].sum(axis=1), 1.0)
    assert o.loc[0, "assigned"] and o.loc[0, "roi"] == "LATL" and 9 <= o.loc[0, "peak_layer"] <= 12


def test_assigned_depth_permutation_p_finds_a_planted_depth_and_is_calibrated():
    rng = np.random.default_rng(1)
    depth = rng.uniform(0, 1, 64)
    origin = pd.DataFrame({"pattern": np.arange(64), "n_members": 10, "depth": depth, "assigned": depth > 0.85})
    planted = assigned_depth(origin, n_perm=500)
    assert planted["assigned_depth"] > 0.85 and planted["assigned_depth_p"] < 0.01
    # assignments unrelated to depth: p < .05 at about the nominal rate
    ps = []
    for s in range(120):
        r = np.random.default_rng(100 + s)
        o = origin.assign(depth=r.uniform(0, 1, 64), assigned=r.random(64) < 0.1)
        ps.append(assigned_depth(o, n_perm=200, seed=s)["assigned_depth_p"])
    ps = np.array(ps)[~np.isnan(ps)]
    assert np.mean(ps < 0.05) < 0.1, np.mean(ps < 0.05)
    none = assigned_depth(origin.assign(assigned=False))
    assert np.isnan(none["assigned_depth"]) and np.isnan(none["assigned_depth_p"])
