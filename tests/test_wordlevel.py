"""Word-level datasets and regressions on surprisal (brainlike.datasets.wordlevel, analyses.wordlevel)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainlike.analyses.wordlevel import (
    WordLevelOptions,
    mixed_model,
    ols_terms,
    partial_correlation,
    split_half_words,
    wordlevel_tables,
)
from brainlike.errors import BrainlikeError

pytestmark = pytest.mark.usefixtures("single_thread")


def _table(rng, n_subjects=10, n_words=200, slope=0.0, noise=1.0, surprisal=None):
    """A tidy table with a planted surprisal slope (per subject x word)."""
    s = rng.gamma(2.0, 2.0, n_words) if surprisal is None else surprisal
    length = rng.integers(1, 10, n_words).astype(float)
    entropy = rng.gamma(2.0, 1.0, n_words)
    y = rng.normal(size=(n_subjects, 1)) + slope * s + 0.3 * length + rng.normal(0, noise, (n_subjects, n_words))
    return pd.DataFrame({"subject": np.repeat([f"s{k}" for k in range(n_subjects)], n_words),
                         "item": np.tile(np.arange(n_words) // 10, n_subjects),
                         "position": np.tile(np.arange(n_words) % 10 + 1, n_subjects), "word": "w",
                         "surprisal": np.tile(s, n_subjects), "entropy": np.tile(entropy, n_subjects),
                         "length": np.tile(length, n_subjects), "y": y.reshape(-1)})


@pytest.mark.slow
def test_null_tables_are_significant_at_the_nominal_rate():
    from brainlike.analyses.wordlevel import average_response

    rng = np.random.default_rng(1)
    p_avg, p_subj = [], []
    for _ in range(200):
        t = _table(rng, n_subjects=3, n_words=100, slope=0.0)
        p_avg.append(ols_terms(average_response(t, "y"), "y", ["surprisal", "length"])["p"].iloc[0])
        p_subj.append(ols_terms(t[t["subject"] == "s0"], "y", ["surprisal", "entropy", "length"])["p"].iloc[0])
    rate, rate_subj = np.mean(np.array(p_avg) < 0.05), np.mean(np.array(p_subj) < 0.05)
    # binomial(200, .05): 99% of rates fall in [.02, .09]
    assert 0.015 <= rate <= 0.095 and 0.015 <= rate_subj <= 0.095, (rate, rate_subj)


def test_planted_slope_is_found_within_its_ci_and_covariate_is_separated():
    rng = np.random.default_rng(2)
    t = _table(rng, n_subjects=12, n_words=300, slope=0.25, noise=3.0)
    out = wordlevel_tables(t, ["y"], WordLevelOptions(covariates=("length",), n_splits=50), model="m")
    avg = out["wordlevel_average"].iloc[0]
    assert avg["slope_ci_low"] <= 0.25 <= avg["slope_ci_high"] and avg["slope_p"] < 1e-6
    subj = out["wordlevel_subject_fits"].query("term == 'surprisal'")
    inside = ((subj["ci_low"] <= 0.25) & (0.25 <= subj["ci_high"])).mean()
    assert inside >= 0.75  # 95% intervals: most of 12 subjects
    terms = out["wordlevel_average_terms"].set_index("term")
    assert terms.loc["length", "ci_low"] <= 0.3 <= terms.loc["length", "ci_high"]
    assert terms.loc["entropy", "p"] > 0.01  # no planted entropy effect


def test_ols_terms_match_statsmodels_and_count_dropped_rows():
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(3)
    t = _table(rng, n_subjects=1, n_words=80, slope=0.5)
    t.loc[[3, 7], "y"] = np.nan
    out = ols_terms(t, "y", ["surprisal", "length"]).set_index("term")
    ref = smf.ols("y ~ surprisal + length", t.dropna(subset=["y"])).fit()
    np.testing.assert_allclose(out["coef"], ref.params[["surprisal", "length"]], rtol=1e-10)
    np.testing.assert_allclose(out["ci_low"], ref.conf_int().loc[["surprisal", "length"], 0], rtol=1e-10)
    assert (out["n"] == 78).all() and (out["n_dropped"] == 2).all()


def test_partial_correlation_matches_the_ols_t_identity():
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(4)
    n = 150
    z = rng.normal(size=n)
    x = 0.7 * z + rng.normal(size=n)
    y = 0.4 * x + 0.8 * z + rng.normal(size=n)
    df = pd.DataFrame({"x": x, "y": y, "z": z})
    pc = partial_correlation(df, "x", "y", ["z"])
    fit = smf.ols("y ~ x + z", df).fit()
    t, dof = fit.tvalues["x"], fit.df_resid
    assert pc["r"] == pytest.approx(np.sign(t) * np.sqrt(t ** 2 / (t ** 2 + dof)), abs=1e-10)
    assert pc["p"] == pytest.approx(fit.pvalues["x"], rel=1e-8)
    assert pc["ci_low"] < pc["r"] < pc["ci_high"] and pc["n_covariates"] == 1


def test_split_half_ceiling_recovers_a_planted_reliability():
    rng = np.random.default_rng(5)
    k, n = 10, 2000
    signal = rng.normal(size=n)
    data = signal + rng.normal(0, 2.0, (k, n))  # one subject: reliability 1/(1+4)
    planted = k * 1.0 / (k * 1.0 + 4.0)         # of the mean of k subjects
    sh = split_half_words(data, n_splits=100, seed=0)
    assert sh.reliability == pytest.approx(planted, abs=0.03)
    assert sh.low <= planted + 0.03 and sh.high >= planted - 0.03
    from brainlike.neural.stats import split_half_ceiling

    ref = split_half_ceiling(data[:, :, None], n_splits=100, seed=0, zscore=False)
    assert sh.reliability == pytest.approx(float(ref.reliability[0]), abs=0.01)
    data[rng.random(data.shape) < 0.1] = np.nan  # rejected trials: still estimable
    assert split_half_words(data, n_splits=100).reliability == pytest.approx(planted, abs=0.04)


def test_mixed_model_matches_statsmodels_directly():
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(6)
    t = _table(rng, n_subjects=8, n_words=60, slope=0.3, noise=2.0)
    out = mixed_model(t, "y", ["surprisal", "length"]).set_index("term")
    ref = smf.mixedlm("y ~ surprisal + length", t, groups=t["subject"]).fit(reml=True)
    np.testing.assert_allclose(out["coef"], ref.params[["surprisal", "length"]], rtol=1e-6)
    np.testing.assert_allclose(out["se"], ref.bse[["surprisal", "length"]], rtol=1e-6)
    assert out.loc["surprisal", "ci_low"] <= 0.3 <= out.loc["surprisal", "ci_high"]
    with_item = mixed_model(t, "y", ["surprisal", "length"], item=True).set_index("term")
    assert with_item.loc["surprisal", "ci_low"] <= 0.3 <= with_item.loc["surprisal", "ci_high"]


def test_tidy_table_errors_name_the_column(tmp_path):
    from brainlike.datasets.wordlevel import WordLevelConfig, tidy_table

    path = tmp_path / "t.tsv"
    pd.DataFrame({"subject": ["a", "a"], "item": [1, 1], "position": [1, 1], "word": ["x", "y"],
                  "rt": [300, 310]}).to_csv(path, sep="\t", index=False)
    with pytest.raises(BrainlikeError, match="'n400'"):
        tidy_table(WordLevelConfig(path=str(path), responses=["n400"]))
    with pytest.raises(BrainlikeError, match="position 1 twice"):
        tidy_table(WordLevelConfig(path=str(path), responses=["rt"]))
    with pytest.raises(BrainlikeError, match="not found"):
        tidy_table(WordLevelConfig(path=str(tmp_path / "missing.tsv")))


@pytest.mark.slow
def test_example_table_through_the_runner_recovers_the_planted_slope(tmp_path, shared_data):
    from brainlike.datasets.wordlevel import write_example
    from brainlike.runner import run_spec

    ex = write_example(tmp_path / "example.tsv", slope=0.4, n_subjects=8, n_sentences=12, noise=2.0)
    head = pd.read_csv(ex.path, sep="\t")
    assert list(head.columns) == ["subject", "item", "position", "word", "n400", "baseline", "frequency", "reject"]
    dataset = {"kind": "wordlevel", "path": str(ex.path), "responses": ["n400"], "reject": "reject",
               "frequency": "frequency", "baseline": "baseline"}
    out = run_spec({"output": str(tmp_path / "out"), "models": [{"name": "stories260k", "features": "surprisal"}],
                    "dataset": dataset, "analyses": {"capability": None, "wordlevel": {"mixed": True}}},
                   progress=False)
    avg = out.store.read("wordlevel_average").iloc[0]
    assert avg["model"] == "stories260k/surprisal" and avg["n_subjects"] == 8
    terms = out.store.read("wordlevel_average_terms").set_index("term")
    assert terms.loc["surprisal", "coef"] == pytest.approx(avg["slope"])
    # the planted slope inside the fit's 99% interval (a 95% one misses it one run in 20)
    assert abs(terms.loc["surprisal", "coef"] - 0.4) <= 2.58 * terms.loc["surprisal", "se"]
    assert avg["slope_ci_low"] < avg["slope"] < avg["slope_ci_high"] and avg["slope_p"] < 1e-6
    mixed = out.store.read("wordlevel_mixed").set_index("term")
    assert abs(mixed.loc["surprisal", "coef"] - 0.4) <= 2.58 * mixed.loc["surprisal", "se"]
    subj = out.store.read("wordlevel_subject_fits").query("term == 'surprisal'")
    assert ((subj["ci_low"] <= 0.4) & (0.4 <= subj["ci_high"])).mean() >= 0.75
    assert mixed.loc["surprisal", "n_dropped"] == int(head["reject"].sum())  # rejected trials left out
    pred = out.store.read("wordlevel_predictions")
    assert len(pred) == ex.n_words and np.isfinite(pred["surprisal"]).all()  # stories260k has BOS
    assert out.report is not None and "Per-word responses and surprisal" in out.report.read_text()

    null = write_example(tmp_path / "null.tsv", slope=0.0, n_subjects=8, n_sentences=12, noise=2.0, seed=1)
    res = run_spec({"output": str(tmp_path / "null"), "models": [{"name": "stories260k", "features": "surprisal"}],
                    "dataset": {**dataset, "path": str(null.path)}, "analyses": {"capability": None},
                    "report": False}, progress=False)
    assert res.store.read("wordlevel_average").iloc[0]["slope_p"] > 0.05


@pytest.mark.slow
def test_natural_stories_reading_times_follow_stories260k_surprisal(shared_data):
    """Real data (Natural Stories, CC BY-NC-SA, used in tests only): r(surprisal, log mean RT) = +.39 with
    full story context, as in ../shared/data/README.md."""
    from brainlike.datasets import DatasetContext
    from brainlike.datasets.wordlevel import WORDLEVEL, WordLevelConfig
    from brainlike.pipelines.alignment_wordlevel import model_predictions, subjects_table

    path = shared_data / "recordings" / "natural-stories-rt" / "processed_wordinfo.tsv"
    if not path.exists():
        pytest.skip("natural-stories-rt not in the shared data")
    cfg = WordLevelConfig(path=str(path), subject=None, position="zone", responses=["meanItemRT"], transform="log")
    subjects = WORDLEVEL.load(cfg, DatasetContext())
    words = subjects[0].dataset.meta["words"]
    pred = model_predictions("stories260k", words, context="reset", window=512)  # reset per story
    table = subjects_table(subjects).merge(pred[["item", "position", "surprisal", "entropy"]], on=["item", "position"])
    out = wordlevel_tables(table, ["meanItemRT"], WordLevelOptions(covariates=("length",)), model="stories260k")
    avg = out["wordlevel_average"].iloc[0]
    assert avg["n_words"] == 10256 and avg["n_dropped"] == 0
    assert avg["r"] == pytest.approx(0.39, abs=0.01)
    assert avg["r_ci_low"] > 0.35 and 0.15 < avg["partial_r"] < avg["r"]
