"""Organization on real brains: patterns as fixed regressors of ROI time courses per subject, the refitted
temporal null, subject consistency, chance levels, random initialisations and the simulator's null network.

Ground truth: planted pattern -> ROI couplings in synthetic multi-subject data that share a stimulus-driven
response the patterns do not contain (must be recovered); patterns unrelated to the brain, on the synthetic
data and on the real Brennan (2016) recording (must be assigned at no more than the nominal rate).
"""
import numpy as np
import pytest
from scipy.signal import lfilter

from brainlike.analyses.organization import OrganizationConfig, PatternLearner, run_organization
from brainlike.analyses.organization.glm import hrf_regressors
from brainlike.analyses.organization.metrics import (
    diversity_bootstrap,
    diversity_chance,
    match_patterns,
    pattern_diversity,
    phase_randomize,
)
from brainlike.analyses.organization.roi import circular_shifts, cosine_drifts, fit_roi_glm, roi_organization

pytestmark = pytest.mark.usefixtures("single_thread")

TR = 2.0


def _ar1(rng, shape, phi=0.6):
    return lfilter([1.0], [1.0, -phi], rng.normal(size=shape), axis=-1)


def _zs(x, axis):
    return (x - x.mean(axis=axis, keepdims=True)) / x.std(axis=axis, keepdims=True)


def _synthetic(seed, n_subj=16, n_vol=240, n_roi=4, k=6, planted=None, amp=0.5):
    """Subjects share a stimulus-driven response in every ROI (unrelated to the patterns) plus AR(1) noise;
    ``planted`` maps pattern -> ROI with coupling ``amp`` (in units of the noise SD) in every subject."""
    rng = np.random.default_rng(seed)
    pats = _ar1(rng, (k, n_vol))
    regs = hrf_regressors(pats, TR)
    shared = hrf_regressors(_ar1(rng, (n_roi, n_vol)), TR)           # the same in every subject
    Y = 0.6 * shared[None] + _ar1(rng, (n_subj, n_roi, n_vol), 0.3).transpose(0, 2, 1)
    for p, r in (planted or {}).items():
        Y[:, :, r] += amp * regs[:, p][None]
    nuis = cosine_drifts(n_vol, TR)
    return _zs(Y, 1), regs, nuis


def test_roi_glm_equals_statsmodels_ols():
    import statsmodels.api as sm

    Y, regs, nuis = _synthetic(0, n_subj=2, planted={0: 1})
    lag = 37
    beta, t = fit_roi_glm(Y, regs, nuis, shifts=np.array([0, lag]))
    for i, shifted in enumerate((regs, np.roll(regs, lag, axis=0))):
        X = np.column_stack([shifted, nuis])
        for s in range(2):
            for r in range(Y.shape[2]):
                fit = sm.OLS(Y[s, :, r], X).fit()
                np.testing.assert_allclose(beta[i, s, :, r], fit.params[:regs.shape[1]], rtol=1e-6, atol=1e-9)
                np.testing.assert_allclose(t[i, s, :, r], fit.tvalues[:regs.shape[1]], rtol=1e-6, atol=1e-8)


def test_circular_shifts_are_distinct_and_far_enough():
    lags = circular_shifts(100, 500, 20, seed=1)
    assert len(lags) == 61 and len(set(lags)) == 61          # every admissible lag once, no more
    assert lags.min() >= 20 and lags.max() <= 80


def test_planted_couplings_are_recovered_and_unrelated_patterns_are_not():
    Y, regs, nuis = _synthetic(1, planted={0: 2, 1: 0})
    res = roi_organization(Y, regs, nuis, ["A", "B", "C", "D"], n_shifts=150, n_boot=200, seed=0)
    asg = res.assignments.set_index("pattern")
    assert asg.loc[0, "assigned_roi"] == "C" and asg.loc[1, "assigned_roi"] == "A", asg
    for p in (0, 1):  # every subject agrees, far above the chance level of the shifts
        assert asg.loc[p, "consistency"] > asg.loc[p, "chance_p95"]
        assert asg.loc[p, "consistency_low"] <= asg.loc[p, "consistency"] <= asg.loc[p, "consistency_high"]
    assert not asg.loc[2:, "assigned"].any(), asg
    eff = res.effects.set_index(["pattern", "roi"])
    assert eff.loc[(0, "C"), "ci_low"] > 0 and eff.loc[(0, "C"), "significant"]
    assert res.summary["roi_consistency_p"] < 0.05 or res.summary["roi_consistency"] > res.summary[
        "roi_consistency_chance"]


def test_shift_null_is_calibrated_where_the_t_over_subjects_is_not():
    """No planted coupling: the shift null's p < .05 at about the nominal rate, assignments rare; the t over
    subjects is liberal because all subjects share the chance correlation with the stimulus response."""
    p_shift, p_subj, n_assigned, n_patterns = [], [], 0, 0
    for seed in range(6):
        Y, regs, nuis = _synthetic(100 + seed)
        res = roi_organization(Y, regs, nuis, ["A", "B", "C", "D"], n_shifts=150, n_boot=20, seed=seed)
        p_shift.append(res.effects["p_value"].to_numpy())
        p_subj.append(res.effects["p_subjects"].to_numpy())
        n_assigned += int(res.assignments["assigned"].sum())
        n_patterns += len(res.assignments)
    fp_shift = np.mean(np.concatenate(p_shift) < 0.05)
    fp_subj = np.mean(np.concatenate(p_subj) < 0.05)
    assert fp_shift < 0.11, fp_shift                 # 144 tests: nominal 0.05, binomial 99% bound ~0.10
    assert n_assigned / n_patterns <= 0.1, n_assigned
    assert fp_subj > 2 * max(fp_shift, 0.05), (fp_subj, fp_shift)


@pytest.mark.slow
def test_real_recording_null_patterns_are_not_assigned():
    """On the Brennan (2016) recording, patterns that are unrelated to the story (AR(1) noise): z near 0
    on average, p < .05 at the nominal rate, no more assignments than the nominal rate."""
    from brainlike.analyses.organization.run import brennan_recording

    cfg = OrganizationConfig.parse({"models": ["stories260k"], "data": {"kind": "brennan2016"}})
    rec, stim = brennan_recording(cfg)
    assert rec.Y.shape == (27, 362, 6) and stim.onsets.min() >= 0 and stim.onsets.max() < 362 * TR
    rng = np.random.default_rng(3)
    zs, ps, n_assigned = [], [], 0
    for rep in range(2):
        regs = hrf_regressors(_ar1(rng, (12, rec.n_volumes), 0.5), TR)
        res = roi_organization(rec.Y, regs, rec.nuisance, rec.rois, n_shifts=80, n_boot=10, seed=rep)
        zs.append(res.effects["z"].to_numpy())
        ps.append(res.effects["p_value"].to_numpy())
        n_assigned += int(res.assignments["assigned"].sum())
    z, p = np.concatenate(zs), np.concatenate(ps)
    assert abs(z.mean()) < 0.25 and 0.6 < z.std() < 1.4, (z.mean(), z.std())
    assert np.mean(p < 0.05) < 0.11, np.mean(p < 0.05)   # 144 tests
    assert n_assigned <= 2, n_assigned


@pytest.mark.slow
def test_brennan_pipeline_tables(shared_data):
    cfg = {"models": ["stories260k"], "data": {"kind": "brennan2016"},
           "patterns": {"n_patterns": 8, "n_epochs": 5}, "roi": {"n_shifts": 40, "n_boot": 20},
           "consistency": {"seeds": [1], "n_chance": 20, "n_boot": 20},
           "sweep": {"n_patterns": [4, 8], "alpha": [0.1], "n_shifts": 10, "n_boot": 10},
           "layer_groups": {"n_groups": 3, "n_shifts": 10, "n_boot": 10}}
    res = run_organization(cfg, progress=False)
    tables = res.tables()
    eff, asg, m, sweep = tables["roi_effects"], tables["assignments"], tables["metrics"], tables["sweep"]
    assert len(eff) == 8 * 6 and set(eff["roi"]) == {"LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"}
    assert len(asg) == 8 and (asg["n_subjects"] == 27).all()
    assert ((0 <= asg["chance"]) & (asg["chance"] <= 1)).all()
    row = m.iloc[0]
    assert row["diversity_low"] <= row["pattern_diversity"] <= row["diversity_high"]
    assert 0 < row["diversity_chance"] < 1 and 0 < row["stability_chance"] < 1
    assert row["roi_consistency_low"] <= row["roi_consistency"] <= row["roi_consistency_high"]
    assert sorted(sweep["n_patterns"]) == [4, 8] and sweep["model"].eq("stories260k").all()
    n_listed = sweep["assigned_rois"].map(lambda v: sum(int(x.split(":")[1]) for x in v.split(",") if x))
    assert n_listed.tolist() == sweep["n_assigned_roi"].tolist()
    assert "roi_stories260k" in res.figures()
    # the depth of every pattern's neurons, and patterns per third of the 5 blocks (2 / 2 / 1)
    origin, groups = tables["origin"], tables["layer_groups"]
    assert len(origin) == 8 and origin["assigned"].eq(asg["assigned"]).all()
    assert ((origin["depth_low"] <= origin["depth"]) & (origin["depth"] <= origin["depth_high"])).all()
    assert groups["group"].tolist() == ["early", "middle", "late"]
    assert groups["first_layer"].tolist() == [1, 3, 5] and groups["n_neurons"].sum() == row["n_neurons"]
    assert "assigned_depth_p" in m


# ------------------------------------------------------------------------------------------ chance levels
def test_phase_randomisation_keeps_the_spectrum_and_gives_the_analytic_chance_diversity():
    rng = np.random.default_rng(0)
    x = _ar1(rng, (5, 300), 0.7)
    y = phase_randomize(x, rng)
    np.testing.assert_allclose(np.abs(np.fft.rfft(y, axis=1)), np.abs(np.fft.rfft(x - x.mean(1, keepdims=True),
                                                                                   axis=1)), rtol=1e-8, atol=1e-8)
    assert np.abs(np.corrcoef(x[0], y[0])[0, 1]) < 0.3
    # white patterns of n samples: E[1 - |r|] = 1 - sqrt(2 / (pi n)) (r ~ N(0, 1/n))
    white = rng.normal(size=(20, 400))
    ch = diversity_chance(white, 100, seed=1)
    assert abs(ch.mean() - (1 - np.sqrt(2 / (np.pi * 400)))) < 0.004
    # autocorrelated patterns have a lower chance diversity: a fixed ~0.96 is not the chance level
    assert diversity_chance(_ar1(rng, (20, 400), 0.9), 50, seed=1).mean() < ch.mean() - 0.03
    boot = diversity_bootstrap(white, 300, seed=2)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    assert lo <= pattern_diversity(white) <= hi


def test_random_initialisation_measures_stability_that_svd_init_inflates():
    """Neurons without shared structure: SVD-initialised fits with different seeds start from the same
    dictionary and end close together; random initialisations do not. A planted dictionary is found from
    random initialisations too."""
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(600, 120)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)

    def stab(init):
        a, b = (PatternLearner(8, 0.1, n_epochs=5, random_state=s, init=init).fit(noise).components_ for s in (1, 2))
        return match_patterns(a, b)[2].mean()

    assert stab("svd") > stab("random") + 0.2
    # a planted dictionary (5 atoms, each neuron follows one of them) is found from random starts too
    atoms = rng.normal(size=(5, 120))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    member = rng.integers(0, 5, 2000)
    X = atoms[member] * (rng.choice([-1, 1], 2000) * rng.uniform(0.5, 1.5, 2000))[:, None]
    X = X + 0.3 * rng.normal(size=X.shape) / np.sqrt(120)
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    found = [match_patterns(PatternLearner(5, 0.1, batch_size=128, n_epochs=10, random_state=s, init="random")
                            .fit(X).components_, atoms)[2].min() for s in range(4)]
    assert sum(f > 0.95 for f in found) >= 3, found   # a random start can end in a local minimum


# ------------------------------------------------------------------------------------------ voxel path
@pytest.mark.slow
def test_simulated_null_network_is_not_assigned_under_the_shift_null(shared_data):
    """The simulator's null network follows an AR(1) signal no neuron contains: with the refitted temporal
    null no pattern is assigned to it, while the planted networks are still recovered."""
    cfg = {"models": ["stories260k"], "stimulus": {"jitter": 0.0},
           "patterns": {"n_patterns": 8, "alpha": 0.1, "n_epochs": 20},
           "glm": {"noise_model": "ols"},
           "networks": {"null": "shift", "n_shifts": 200},
           "consistency": {"seeds": [], "halves": False, "n_chance": 20, "n_boot": 20},
           "data": {"kind": "simulated", "snr": 0.3, "n_groups": 3, "n_networks": 6, "n_null_driven": 2,
                    "seed": 0}}
    res = run_organization(cfg, progress=False)
    truth = res.simulation.truth
    assert (truth["kind"] == "null_signal").sum() == 2
    rec = res.recovery_table()
    assert rec["recovered"].all(), rec
    asg = res.models["stories260k"].assignments
    unrelated = set(truth.loc[truth["kind"] != "neurons", "network"])
    assert not set(asg.loc[asg["assigned"], "assigned_network"]) & unrelated, asg


def test_real_recording_uses_its_own_words_never_the_specs_story(shared_data, monkeypatch):
    """The Brennan BOLD follows Alice, chapter 1: neurons read from another story (the spec's default built-in
    story) would be regressed on a recording of a different text. The pipeline passes no stimulus, and an
    explicit other story is refused."""
    from brainlike.analyses.organization.run import load_stimulus
    from brainlike.config import StimulusSpec
    from brainlike.errors import BrainlikeError
    from brainlike.pipelines import organization as pipe

    cfg = {"models": ["stories260k"], "data": {"kind": "brennan2016"}}
    with pytest.raises(BrainlikeError, match="its own words"):
        run_organization(cfg, stimulus=load_stimulus(StimulusSpec()), progress=False)
    seen = {}

    def fake(cfg, stimulus=None, progress=False):
        seen["stimulus"] = stimulus
        raise RuntimeError("stop here")

    monkeypatch.setattr(pipe, "run_organization", fake)
    spec = pipe.OrganizationSpec(**cfg)
    with pytest.raises(RuntimeError, match="stop here"):
        pipe.ORGANIZATION.run(spec, type("Ctx", (), {"progress": False})())
    assert seen["stimulus"] is None
