"""SyntaxGym 2020: the formula parser against the reference evaluator, planted effects, CIs, a real model."""
import importlib.util

import numpy as np
import pytest
import torch

from brainlike.analyses import syntaxgym as sg
from brainlike.errors import BrainlikeError


@pytest.fixture(scope="module")
def reference_predictions():
    """``sg_prediction.py`` of the brainscore-language wheel, loaded from its file (pyparsing grammar);
    importing the package itself would pull its heavy dependencies."""
    pytest.importorskip("pyparsing")
    path = sg.suites_dir().parent.parent / "sg_prediction.py"
    spec = importlib.util.spec_from_file_location("_sg_prediction_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_2020_suites_are_read_from_the_wheel():
    names = sg.suite_names()
    assert len(names) == 31 and "number_src" in names and "mvrr" in names
    suites = [sg.load_suite(n) for n in names]
    assert sum(len(s.items) for s in suites) == 799
    assert {s.metric for s in suites} == {"sum"}


def test_parser_agrees_with_the_reference_evaluator_on_every_formula(reference_predictions):
    rng = np.random.default_rng(0)
    n = 0
    for name in sg.suite_names():
        suite = sg.load_suite(name)
        for formula, expr in zip(suite.formulas, suite.predictions):
            ref = reference_predictions.Prediction(0, formula, "sum")
            regions = sg.referenced_regions(expr)
            assert {(c, int(r)) for c, r in regions} == ref.referenced_regions
            for trial in range(60):
                surp = {(c, int(r)): float(rng.gamma(2.0, 3.0)) for c, r in regions}
                if trial % 4 == 0:  # ties exercise "=" and the strict comparisons
                    for k in list(surp)[::2]:
                        surp[k] = 4.0
                assert expr(surp) == bool(ref.apply_prediction_formula(surp)), (name, formula, surp)
                n += 1
    assert n > 1500


def test_parser_precedence_star_numbers_and_errors():
    s = {("a", 1): 2.0, ("a", 2): 3.0, ("b", 1): 4.0, ("b", 2): 0.5}
    assert sg.parse_prediction("(1;%a%) + (2;%a%) > (1;%b%)")(s) is True  # 5 > 4: + binds before >
    assert sg.parse_prediction("(1;%a%)-(2;%a%)-(1;%b%) < -4.5")(s) is True  # left-assoc: (2-3)-4 = -5
    assert sg.parse_prediction("(*;%a%) = 5")(s) is True  # sum over the condition's regions
    assert sg.parse_prediction("(*;%b%) = 4.5009")(s) is True  # atol 1e-3 as the reference
    assert sg.parse_prediction("(1;%a%) > (1;%b%) | (2;%a%) > (2;%b%) & (1;%a%) > 100")(s) is False  # left to right
    for bad in ["(1;%a%) >", "((1;%a%) > 2", "(1;a) > 2", "(1;%a%) > 2 )", ""]:
        with pytest.raises(BrainlikeError, match="formula"):
            sg.parse_prediction(bad)
    with pytest.raises(BrainlikeError, match="region 3"):
        sg.parse_prediction("(3;%a%) > 1")(s)


def test_unknown_suite_names_the_choices():
    with pytest.raises(BrainlikeError, match="number_src"):
        sg.load_suite("number_sorc")


def _planted_predictor(suites: list[str], delta: float, seed: int = 0):
    """Word surprisal = noise, plus ``delta`` bits on the critical-region words of the ungrammatical
    ("mismatch") conditions: a model that knows agreement iff delta > 0."""
    rng = np.random.default_rng(seed)
    plan = {}
    for name in suites:
        suite = sg.load_suite(name)
        critical = {r for c, r in sg.referenced_regions(suite.predictions[0])}
        for item in suite.items:
            for cond in item["conditions"]:
                words, regions = sg.sentence_words(item, cond)
                bad = cond["condition_name"].startswith("mismatch")
                plan[" ".join(words)] = np.array([delta if bad and r in critical else 0.0 for r in regions])

    def predict(words, groups):
        words, groups = np.asarray(words, dtype=object), np.asarray(groups)
        out = np.empty(len(words))
        for g in np.unique(groups):
            idx = np.flatnonzero(groups == g)
            out[idx] = rng.exponential(4.0, len(idx)) + plan[" ".join(words[idx])]
        return out

    return predict


AGREEMENT = ["number_src", "number_orc", "number_prep", "reflexive_src_masc", "reflexive_prep_fem"]


def test_planted_agreement_is_recovered_and_a_null_model_is_at_chance():
    items = sg.evaluate_syntaxgym(_planted_predictor(AGREEMENT, 50.0), AGREEMENT)
    acc = sg.suite_accuracy(items)
    assert len(acc) == len(AGREEMENT) and (acc["accuracy"] == 1.0).all()
    reverse = sg.suite_accuracy(sg.evaluate_syntaxgym(_planted_predictor(AGREEMENT, -50.0), AGREEMENT))
    assert (reverse["accuracy"] == 0.0).all()
    # null: two independent comparisons of continuous noise per item -> chance = 1/4
    null = sg.evaluate_syntaxgym(_planted_predictor(AGREEMENT, 0.0, seed=1), AGREEMENT)
    overall = sg.overall_accuracy(null, n_boot=500).set_index("measure")
    assert overall.loc["item_mean", "ci_low"] < 0.25 < overall.loc["item_mean", "ci_high"]
    assert overall.loc["suite_mean", "ci_low"] < 0.25 < overall.loc["suite_mean", "ci_high"]
    assert overall.loc["item_mean", "n_items"] == 95


def test_wilson_interval_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(0, 19), (7, 19), (19, 19), (300, 799)]:
        np.testing.assert_allclose(sg.wilson_ci(k, n), proportion_confint(k, n, method="wilson"), atol=1e-10)


def test_empty_regions_count_zero_and_words_map_to_their_regions():
    suite = sg.load_suite("cleft")  # region 5 is empty in the np_* conditions
    seen = []

    def predict(words, groups):
        seen.append((list(words), list(groups)))
        return np.arange(len(words), dtype=float)

    reg = sg.region_surprisals(suite, predict, max_items=1)
    words, groups = seen[0]
    assert groups == sorted(groups) and len(set(groups)) == len(suite.items[0]["conditions"])
    np_match = reg[(reg["condition"] == "np_match")].set_index("region")
    assert np_match.loc[5, "surprisal"] == 0.0 and np_match.loc[5, "n_words"] == 0
    first = groups.index(1)  # "the meal" = the last two words of the np_match sentence
    last = len(groups) - 1 - groups[::-1].index(1)
    assert np_match.loc[6, "surprisal"] == last + (last - 1) and first < last - 1


def _direct_region_surprisal(lm, text_before: str, region: str) -> float:
    """-log2 p(region | text before) by one forward pass over the sentence (with BOS when the
    tokenizer defines one): the reference for the region surprisal."""
    bos = [lm.tokenizer.bos_token_id] if lm.tokenizer.bos_token_id is not None else []
    pre = lm.tokenizer(text_before, add_special_tokens=False)["input_ids"]
    full = lm.tokenizer((text_before + " " + region) if text_before else region,
                        add_special_tokens=False)["input_ids"]
    assert full[:len(pre)] == pre
    ids = torch.tensor([bos + full])
    with torch.inference_mode():
        logp = torch.log_softmax(lm.model(input_ids=ids).logits[0].double(), dim=-1)
    start = len(bos) + len(pre)
    return float(-sum(logp[t - 1, ids[0, t]] for t in range(start, ids.shape[1])) / np.log(2))


@pytest.mark.slow
def test_stories260k_region_surprisal_matches_a_direct_forward_pass(stories260k):
    pytest.importorskip("brainlike.models.surprisal")
    suite = sg.load_suite("number_src")
    reg = sg.region_surprisals(suite, sg.model_predictor(stories260k, cache_dir=None), max_items=2)
    item = suite.items[1]
    cond = item["conditions"][0]
    crit = 7
    before = " ".join(r["content"] for r in cond["regions"] if r["region_number"] < crit and r["content"])
    region = next(r["content"] for r in cond["regions"] if r["region_number"] == crit)
    got = reg[(reg["item"] == item["item_number"]) & (reg["condition"] == cond["condition_name"])
              & (reg["region"] == crit)]["surprisal"].item()
    np.testing.assert_allclose(got, _direct_region_surprisal(stories260k, before, region), rtol=1e-4)
    items = sg.evaluate_items(suite, reg)
    assert len(items) == 2 and items["n_predictions"].eq(1).all()
