"""Organization analysis, building blocks: TR binning, dictionary learning, GLM, network overlap, metrics.

Each block is checked against a reference library (scikit-learn, nilearn, scipy) or a planted ground truth.
"""
import numpy as np
import pandas as pd
import pytest

from brainlike.analyses.organization import metrics as M
from brainlike.analyses.organization.brain import BrainData
from brainlike.analyses.organization.glm import design_matrix, fit_glm, hrf_regressors
from brainlike.analyses.organization.networks import (
    NetworkAtlas,
    load_atlas,
    match_networks,
    network_of_parcel,
    overlap_scores,
)
from brainlike.analyses.organization.patterns import PatternLearner, sparse_encode
from brainlike.analyses.organization.timecourses import normalize_timecourses, tr_matrix
from brainlike.errors import BrainlikeError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


# ------------------------------------------------------------------------------------------ time courses
def test_tr_binning():
    onsets = np.array([0.1, 0.5, 2.2, 5.9])
    mean = tr_matrix(onsets, 4, 2.0, "mean").toarray()
    np.testing.assert_allclose(mean, [[0.5, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_allclose(tr_matrix(onsets, 4, 2.0, "sum").toarray().sum(axis=1), [2, 1, 1, 0])
    lz = tr_matrix(onsets, 4, 2.0, "lanczos")
    assert lz.shape == (4, 4) and lz.toarray()[0, 0] > 0.9  # a word 0.1 s from volume 0
    with pytest.raises(BrainlikeError, match="after the scan ends"):
        tr_matrix(onsets, 2, 2.0)
    with pytest.raises(BrainlikeError, match="binning"):
        tr_matrix(onsets, 4, 2.0, "median")


def test_normalized_timecourses():
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.normal(size=40) + 5.0, np.full(40, 3.0), rng.normal(size=40)])
    binning = tr_matrix(np.arange(40) * 0.5, 12, 2.0)
    tc, dead = normalize_timecourses(rows, binning)
    assert tc.shape == (12, 3) and tc.dtype == np.float32
    np.testing.assert_array_equal(dead, [False, True, False])
    np.testing.assert_allclose(np.linalg.norm(tc[:, [0, 2]], axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(tc.mean(axis=0), 0.0, atol=1e-6)
    assert not tc[:, 1].any()
    # the TR value is the mean of its 4 words (up to centring and scaling)
    manual = rows[:, 0].reshape(10, 4).mean(axis=1) - rows[:, 0].mean()
    manual = np.concatenate([manual, [0.0, 0.0]])
    manual -= manual.mean()
    np.testing.assert_allclose(tc[:, 0], manual / np.linalg.norm(manual), atol=1e-6)


# ------------------------------------------------------------------------------------------ dictionary
def test_sparse_encode_matches_sklearn():
    from sklearn.decomposition import sparse_encode as sk_encode

    rng = np.random.default_rng(1)
    D = rng.normal(size=(6, 80))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.normal(size=(40, 80)) * 0.1
    for positive in (False, True):
        ours = sparse_encode(X, D, 0.05, positive=positive)
        ref = sk_encode(X, D, algorithm="lasso_cd", alpha=0.05, positive=positive, max_iter=5000)
        np.testing.assert_allclose(ours, ref, atol=1e-6)
        assert 0.1 < (ours != 0).mean() < 0.9  # genuinely sparse, not trivially empty
        if positive:
            assert ours.min() >= 0


def _planted_dictionary(seed=0, n=2000, t=120, k=5):
    rng = np.random.default_rng(seed)
    D = rng.normal(size=(k, t))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    member = rng.integers(0, k, n)
    X = D[member] * (rng.choice([-1, 1], n) * rng.uniform(0.5, 1.5, n))[:, None]
    X += 0.3 * rng.normal(size=(n, t)) / np.sqrt(t)
    return X / np.linalg.norm(X, axis=1, keepdims=True), D, member


def _objective(X, learner):
    codes = learner.transform(X)
    return 0.5 * ((X - codes @ learner.components_) ** 2).sum() + learner.alpha * np.abs(codes).sum()


def test_dictionary_learning_recovers_planted_patterns():
    X, D, member = _planted_dictionary()
    fits = {name: PatternLearner(5, alpha=0.1, n_epochs=10, batch_size=128, random_state=0, **kw).fit(X)
            for name, kw in {"numpy": {}, "sklearn": {"backend": "sklearn"},
                             "streaming": {"max_in_memory": 300}}.items()}
    for name, fit in fits.items():
        r = np.abs(fit.components_ @ D.T)  # (learned, true)
        assert r.max(axis=0).min() > 0.95, (name, r.max(axis=0))
        primary = np.abs(fit.transform(X)).argmax(axis=1)
        assert (r.argmax(axis=1)[primary] == member).mean() > 0.99, name
    # the vectorised port reaches scikit-learn's objective
    assert _objective(X, fits["numpy"]) < 1.05 * _objective(X, fits["sklearn"])
    assert fits["streaming"].n_neurons_seen_ == len(X)


def test_pattern_result_conventions():
    X, D, member = _planted_dictionary(seed=2, n=600)
    learner = PatternLearner(5, alpha=0.1, n_epochs=5, random_state=3).fit(X)

    def source():
        return iter([(np.arange(300), X[:300].T, np.zeros(300, bool)), (np.arange(300, 600), X[300:].T,
                                                                       np.zeros(300, bool))])

    res = learner.result(source, 600)
    energy = (res.codes.astype(float) ** 2).sum(axis=0)
    assert np.all(np.diff(energy) <= 1e-9)  # ordered by code energy
    assert np.all(res.codes.sum(axis=0) > 0)  # sign convention
    assert 0.8 < res.reconstruction_r2 <= 1.0
    neurons = pd.DataFrame({"neuron": np.arange(600), "layer": np.repeat([1, 2], 300),
                            "unit": np.tile(np.arange(300), 2)})
    mem = res.membership_table(neurons, "m")
    assert len(mem) == int((res.codes != 0).sum()) and mem["primary"].sum() == int((res.primary() >= 0).sum())
    layers = res.layer_table(neurons, "m")
    assert set(layers.columns) >= {"layer", "pattern", "fraction", "primary_fraction"}
    np.testing.assert_allclose(layers.groupby("layer")["primary_fraction"].sum(), 1.0)
    with pytest.raises(BrainlikeError, match="not fitted"):
        PatternLearner(3).transform(X)
    with pytest.raises(BrainlikeError, match="exceeds the number of volumes"):
        PatternLearner(200).fit(X[:, :150][:, :100])


# ------------------------------------------------------------------------------------------ GLM
def test_hrf_regressor_peaks_after_the_event():
    pattern = np.zeros((1, 40))
    pattern[0, 5] = 1.0
    reg = hrf_regressors(pattern, tr=1.0)[:, 0]
    assert 4 <= reg.argmax() - 5 <= 7  # Glover HRF peaks ~5 s after the block
    assert abs(reg.mean()) < 1e-9 and np.isclose(reg.std(), 1.0)


def test_glm_matches_nilearn_and_controls_false_positives():
    from nilearn.glm.contrasts import compute_contrast
    from nilearn.glm.first_level import run_glm
    from scipy import stats

    rng = np.random.default_rng(0)
    n_trs, k = 200, 3
    regs = hrf_regressors(rng.normal(size=(k, n_trs)), 2.0)
    design = design_matrix(regs, 2.0)
    assert list(design.columns[:k]) == ["pattern_0", "pattern_1", "pattern_2"] and design.columns[-1] == "constant"
    effect = np.zeros((k, 300))
    effect[1, :100] = 0.5  # voxels 0-99 follow pattern 1
    Y = regs @ effect + rng.normal(size=(n_trs, 300)) + 50.0
    res = fit_glm(Y, design, k, noise_model="ols")
    labels, results = run_glm(Y, design.to_numpy(), noise_model="ols")
    for j in range(k):
        con = compute_contrast(labels, results, np.eye(design.shape[1])[j], stat_type="t")
        np.testing.assert_allclose(res.t[j], con.stat(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(stats.t.sf(res.t[j], res.dof), con.p_value(), rtol=1e-3, atol=1e-8)
    np.testing.assert_allclose(res.q[1], stats.false_discovery_control(res.p[1]))
    assert res.significant[1, :100].mean() > 0.9  # planted voxels found
    assert res.significant[:, 100:].sum() + res.significant[[0, 2]].sum() <= 3  # the rest is null
    np.testing.assert_allclose(res.r, res.t / np.sqrt(res.t.astype(float) ** 2 + res.dof), rtol=1e-5)
    one = fit_glm(Y, design, k, tail="greater")
    assert not one.significant[1][one.t[1] < 0].any()
    ar1 = fit_glm(Y, design, k, noise_model="ar1")
    assert np.corrcoef(ar1.t[1], res.t[1])[0, 1] > 0.95 and ar1.significant[1, :100].mean() > 0.9
    table = res.table("m")
    assert len(table) == k * 300 and set(table.columns) >= {"model", "pattern", "voxel", "t", "q", "significant"}
    with pytest.raises(BrainlikeError, match="rank deficient"):
        fit_glm(Y, np.column_stack([regs[:, 0], regs[:, 0], np.ones(n_trs)]), 2)


# ------------------------------------------------------------------------------------------ networks
def test_overlap_scores_hand_example():
    labels = np.array([1, 1, 1, 1, 2, 2, 2, 0, 0, 0])
    sig = np.zeros((2, 10), bool)
    sig[0, [0, 1, 2, 7]] = True  # 3 of network 1's 4 voxels + an unlabelled one
    sig[1, [4, 5, 6]] = True  # exactly network 2
    stat = sig.astype(float) + np.linspace(0, 0.1, 10)
    out = overlap_scores(sig, stat, labels, np.array([1, 2]))
    np.testing.assert_allclose(out["dice"], [[6 / 8, 0], [0, 1]])
    np.testing.assert_allclose(out["jaccard"], [[3 / 5, 0], [0, 1]])
    for k in range(2):
        for j, net in enumerate([1, 2]):
            np.testing.assert_allclose(out["correlation"][k, j], np.corrcoef(stat[k], labels == net)[0, 1])
    np.testing.assert_array_equal(out["n_overlap"], [[3, 0], [0, 3]])


def test_network_assignment_and_permutation_null():
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 2, 3, 0], 150)
    atlas = NetworkAtlas(labels, {1: "A", 2: "B", 3: "C"})
    sig = np.zeros((32, 600), bool)
    sig[0, labels == 2] = True  # a map that is network B
    sig[1, rng.choice(np.flatnonzero(labels == 3), 40, replace=False)] = True  # inside C
    for k in range(2, 32):  # null maps: 30 random voxels each
        sig[k, rng.choice(600, 30, replace=False)] = True
    stat = sig + rng.normal(0, 0.1, sig.shape)
    for metric in ("dice", "correlation"):
        overlaps, asg = match_networks(sig, stat, atlas, metric=metric, n_permutations=1000, seed=1)
        assert asg.loc[0, "assigned_network"] == "B" and asg.loc[1, "assigned_network"] == "C"
        assert asg.loc[0, "p_value"] == pytest.approx(1 / 1001)
        null_p = asg.loc[2:, "p_value"].to_numpy()
        assert 0.0 <= (null_p < 0.05).mean() <= 0.15  # calibrated: ~5% by chance
        assert asg.loc[2:, "assigned"].sum() == 0  # FDR across patterns
        assert len(overlaps) == 32 * 3 and set(overlaps["network"]) == {"A", "B", "C"}
    with pytest.warns(UserWarning, match="permutations cannot reach"):
        match_networks(sig, stat, atlas, n_permutations=100)
    with pytest.raises(BrainlikeError, match="metric"):
        match_networks(sig, stat, atlas, metric="cosine")


def test_atlas_loading(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(0)
    mask = np.zeros((6, 6, 6), bool)
    mask[1:5, 1:5, 1:5] = True
    data = BrainData(rng.normal(size=(20, int(mask.sum()))), 2.0, mask, np.diag([4.0, 4.0, 4.0, 1.0]))
    # a label image at twice the resolution (2 mm), split into two halves along x
    fine = np.zeros((12, 12, 12), np.int16)
    fine[:6] = 3
    fine[6:] = 7
    nib.Nifti1Image(fine, np.diag([2.0, 2.0, 2.0, 1.0])).to_filename(tmp_path / "atlas.nii.gz")
    pd.DataFrame({"index": [3, 7], "name": ["7Networks_LH_Vis_1", "7Networks_RH_Default_2"]}).to_csv(
        tmp_path / "names.tsv", sep="\t", index=False)
    atlas = load_atlas(tmp_path / "atlas.nii.gz", data, names=tmp_path / "names.tsv")
    coords = data.coords()
    expected = np.where(coords[:, 0] < 3, 3, 7)
    np.testing.assert_array_equal(atlas.labels, expected)
    assert atlas.names == {3: "7Networks_LH_Vis_1", 7: "7Networks_RH_Default_2"}
    grouped = load_atlas(tmp_path / "atlas.nii.gz", data, names=tmp_path / "names.tsv", group_parcels=True)
    assert sorted(grouped.names.values()) == ["Default", "Vis"]
    assert network_of_parcel("17Networks_LH_DorsAttnA_ParOcc_1") == "DorsAttnA"
    # parcel data: one label per column, from .npy or a GIfTI label file
    parcels = BrainData.from_array(rng.normal(size=(20, 8)), tr=2.0)
    np.save(tmp_path / "labels.npy", np.array([1, 1, 2, 2, 0, 0, 2, 1]))
    assert load_atlas(tmp_path / "labels.npy", parcels, names=["Visual", "Default"]).names == {1: "Visual",
                                                                                             2: "Default"}
    table = nib.gifti.GiftiLabelTable()
    for key, name in [(0, "???"), (1, "Vis"), (2, "Default")]:
        lab = nib.gifti.GiftiLabel(key)
        lab.label = name
        table.labels.append(lab)
    gii = nib.gifti.GiftiImage(labeltable=table, darrays=[nib.gifti.GiftiDataArray(
        np.array([1, 1, 2, 2, 0, 0, 2, 1], np.int32), intent="NIFTI_INTENT_LABEL")])
    nib.save(gii, tmp_path / "lh.label.gii")
    surf = load_atlas(tmp_path / "lh.label.gii", parcels)
    assert surf.names == {1: "Vis", 2: "Default"} and surf.templates().shape == (2, 8)
    with pytest.raises(BrainlikeError, match="labels for 8 data columns"):
        load_atlas(np.array([1, 2, 3]), parcels)
    with pytest.raises(BrainlikeError, match="unknown atlas"):
        load_atlas("schaefer-banana", parcels)


# ------------------------------------------------------------------------------------------ metrics
def test_metrics():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(50, 4)))
    orth = q.T - q.T.mean(axis=1, keepdims=True)
    assert M.pattern_diversity(orth) > 0.9
    assert M.pattern_diversity(np.vstack([orth[0], -orth[0], 2 * orth[0]])) == pytest.approx(0.0, abs=1e-12)
    perm = np.array([2, 0, 3, 1])
    rows, cols, r = M.match_patterns(orth, orth[perm] + 0.01 * rng.normal(size=(4, 50)))
    np.testing.assert_array_equal(perm[cols], rows)
    assert r.min() > 0.95
    assert M.assignment_agreement(["A", None, "B", float("nan")], ["A", None, "C", None]) == 0.5
    assert np.isnan(M.assignment_agreement([None, None], [float("nan"), None]))
    assert M.network_entropy(["A", "B", None], 4) == pytest.approx(np.log(2) / np.log(4))
    assert M.network_entropy(["A", "A"], 4) == 0.0
