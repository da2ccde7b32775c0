"""The context experiment (run_geometry) on stories260k and MiniLM, the question set, and the config."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest

from brainlike.analyses.geometry import (
    GeometryConfig,
    GeometryResult,
    build_prompt,
    estimate_intrinsic_dimension,
    exact_match,
    generate_answer,
    load_questions,
    log10_linear_region_bound,
    measure_prompts,
    normalize_answer,
    plot_attention_density,
    plot_attention_heads,
    plot_context_accuracy,
    plot_context_effect,
    plot_intrinsic_dimension,
    plot_linear_regions,
    prepare_points,
    run_geometry,
)
from brainlike.errors import BrainlikeError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "geometry_questions.yaml"
CONDITIONS = ["none", "passage", "fewshot"]


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def stories_result(stories260k) -> GeometryResult:
    config = GeometryConfig(models=["stories260k"], n_questions=8, conditions=CONDITIONS, progress=False, seed=3)
    return run_geometry(config, models={"stories260k": stories260k})


def test_context_experiment_tables_cover_every_condition_and_layer(stories_result):
    r = stories_result
    ids = r.intrinsic_dimension
    assert len(ids) == 3 * 5 * 2
    assert set(ids["condition"]) == set(CONDITIONS) and set(ids["layer"]) == {1, 2, 3, 4, 5}
    assert ids["n_points"].nunique() == 1 and ids["n_points"].iloc[0] >= 100  # same sample size everywhere
    assert (ids["intrinsic_dimension"] > 0).all() and (ids["intrinsic_dimension"] < 64).all()
    assert np.allclose(ids["relative_layer"], ids["layer"] / 5)
    att = r.attention
    assert len(att) == 3 * 5 * 8 and (att["n_prompts"] == 8).all()
    assert len(r.attention_prompts) == 3 * 8 * 5 * 8
    assert r.attention_prompts[["density", "effective_density"]].apply(lambda c: c.between(0, 1).all()).all()
    tokens = r.attention_prompts.groupby("condition")["n_tokens"].mean()
    assert tokens["passage"] > tokens["none"] and tokens["fewshot"] > tokens["none"]
    # prompts are scored on the same questions in every condition
    by_cond = r.attention_prompts.groupby("condition")["question_id"].apply(lambda s: tuple(sorted(set(s))))
    assert by_cond.nunique() == 1 and len(by_cond.iloc[0]) == 8


def test_summary_is_the_mean_over_prompts(stories_result):
    r = stories_result
    row = r.attention.query("condition == 'passage' and layer == 3 and head == 5").iloc[0]
    raw = r.attention_prompts.query("condition == 'passage' and layer == 3 and head == 5")
    assert row["density"] == pytest.approx(raw["density"].mean())
    assert row["entropy"] == pytest.approx(raw["entropy"].mean())


def test_intrinsic_dimension_rows_are_the_estimates_of_the_pooled_mlp_inputs(stories_result, stories260k):
    r = stories_result
    config = GeometryConfig(**r.config)
    questions = load_questions()
    rng = np.random.default_rng(config.seed)
    asked = [questions[i] for i in np.sort(rng.choice(len(questions), size=8, replace=False))]
    order = asked + [q for q in questions if q not in asked]
    prompts = [build_prompt(order, i, "none", config.n_shots, config.seed)[0] for i in range(8)]
    geo = measure_prompts(stories260k, prompts, progress=False)
    row = r.intrinsic_dimension.query("condition == 'none' and layer == 4 and estimator == 'twonn'").iloc[0]
    X = prepare_points(geo.points[3], None, config.seed)
    expected = estimate_intrinsic_dimension(X, "twonn", max_points=int(row["n_points"]), seed=config.seed + 4,
                                            deduplicate=False)
    assert row["intrinsic_dimension"] == pytest.approx(expected)


def test_linear_region_table_uses_the_bound(stories_result):
    lr = stories_result.linear_regions
    assert (lr["width"] == 172).all() and len(lr) == len(stories_result.intrinsic_dimension)
    for _, row in lr.iterrows():
        assert row["dim_used"] == int(np.ceil(row["intrinsic_dimension"]))
        assert row["log10_regions"] == pytest.approx(log10_linear_region_bound(172, row["dim_used"]))
        assert row["log10_regions"] < row["log10_regions_ambient"] <= row["log10_regions_max"]
    ordered = lr.sort_values("dim_used")
    assert ordered["log10_regions"].is_monotonic_increasing


def test_accuracy_and_context_effect(stories_result):
    r = stories_result
    acc = r.accuracy
    assert len(acc) == 3 * 8 and acc["correct"].dtype == bool
    assert acc["generated"].map(lambda v: type(v) is str).all()
    summary = r.accuracy_summary()
    assert list(summary["condition"]) == CONDITIONS and (summary["n_questions"] == 8).all()
    effect = r.context_effect()
    assert set(effect["condition"]) == {"passage", "fewshot"}
    assert {"density", "effective_density", "id_twonn", "id_mle", "log10_regions_twonn"} <= set(effect["measure"])
    row = effect.query("condition == 'fewshot' and layer == 2 and measure == 'id_mle'").iloc[0]
    ids = r.intrinsic_dimension.query("layer == 2 and estimator == 'mle'").set_index("condition")["intrinsic_dimension"]
    assert row["change"] == pytest.approx(ids["fewshot"] - ids["none"])
    with pytest.raises(BrainlikeError, match="baseline"):
        r.context_effect(baseline="cot")


def test_save_load_and_figures(stories_result, tmp_path):
    r = stories_result
    r.save(tmp_path / "geo")
    back = GeometryResult.load(tmp_path / "geo")
    for name in GeometryResult.TABLES:
        pd.testing.assert_frame_equal(getattr(back, name), getattr(r, name), check_dtype=False)
    assert back.config == r.config
    figs = r.figures()
    assert set(figs) >= {"attention_density", "intrinsic_dimension", "linear_regions", "accuracy"}
    assert len(plot_attention_density(r.attention).axes[0].lines) == 3  # one line per condition
    assert len(plot_intrinsic_dimension(r.intrinsic_dimension).axes[0].lines) == 6  # conditions x estimators
    assert len(plot_linear_regions(r.linear_regions).axes[0].lines) == 3
    for fig in (plot_attention_heads(r.attention, condition="passage"), plot_context_accuracy(r.accuracy),
                plot_context_effect(r.context_effect(), measure="effective_density")):
        assert isinstance(fig, matplotlib.figure.Figure)
    with pytest.raises(BrainlikeError, match="needs columns"):
        plot_intrinsic_dimension(r.attention)


def test_accuracy_scores_a_planted_answer(stories260k, tmp_path):
    # answers planted to be the model's own greedy continuation must all score as correct; others must not
    questions = load_questions()[:4]
    items = []
    for i, q in enumerate(questions):
        generated = generate_answer(stories260k, build_prompt(questions, i, "none")[0], max_new_tokens=3)
        items.append({"id": q.id, "question": q.question, "answer": normalize_answer(generated)[0],
                      "passage": q.passage})
    path = tmp_path / "planted.json"
    path.write_text(json.dumps(items))
    r = run_geometry({"models": ["stories260k"], "questions": str(path), "conditions": ["none"],
                      "estimators": ["twonn"], "max_new_tokens": 3, "progress": False})
    assert r.accuracy["correct"].all()
    for item in items:
        item["answer"] = "zebra" + item["answer"]
    path.write_text(json.dumps(items))
    r = run_geometry({"models": ["stories260k"], "questions": str(path), "conditions": ["none"],
                      "estimators": ["twonn"], "max_new_tokens": 3, "progress": False})
    assert not r.accuracy["correct"].any()


def test_encoder_context_experiment(minilm):
    r = run_geometry({"models": ["minilm-l6"], "n_questions": 6, "conditions": ["none", "passage"],
                      "estimators": ["twonn"], "token_scope": "question", "progress": False},
                     models={"minilm-l6": minilm})
    assert r.accuracy.empty and any("encoder" in n for n in r.notes)
    assert r.models.iloc[0]["kind"] == "encoder" and r.models.iloc[0]["mlp_width"] == 1536
    assert len(r.intrinsic_dimension) == 2 * 6
    assert (r.intrinsic_dimension["token_scope"] == "question").all()
    assert len(r.attention) == 2 * 6 * 12
    # question scope: the same question tokens are pooled in both conditions
    assert r.intrinsic_dimension["n_points"].nunique() == 1


# ---------------------------------------------------------------- questions and config


def test_builtin_question_set():
    qs = load_questions()
    assert len(qs) >= 20 and len({q.id for q in qs}) == len(qs)
    assert all(q.passage and len(q.examples) == 3 for q in qs)
    assert {q.category for q in qs} == {"fact", "arithmetic"}
    for q in qs:  # the passage holds the answer
        assert any(a.lower() in q.passage.lower() for a in q.answers), q.id
    examples = [e for q in qs for e in q.examples]
    assert len(set(examples)) == len(examples) and not {e[0] for e in examples} & {q.question for q in qs}


def test_prompts_share_the_question_segment():
    qs = load_questions()
    texts = {}
    for cond in CONDITIONS:
        text, (a, b) = build_prompt(qs, 4, cond)
        assert text[a:b] == qs[4].question and text.endswith("Answer:")
        texts[cond] = text
    assert texts["passage"].startswith(qs[4].passage)
    assert texts["fewshot"].count("Question:") == 4 and qs[4].examples[0][0] in texts["fewshot"]
    custom = [q.__class__(q.id, q.question, q.answer, q.aliases, None, q.category) for q in qs[:3]]
    text, _ = build_prompt(custom, 0, "fewshot", n_shots=2, seed=1)  # no own examples: other questions
    assert custom[0].question not in text.split("\n")[0] and text.count("Question:") == 3
    with pytest.raises(BrainlikeError, match="no passage"):
        build_prompt(custom, 0, "passage")


@pytest.mark.parametrize("generated, answers, expected", [
    (" Paris.\nQuestion: what", ["Paris"], True),
    (" the lion is strong", ["Lion"], True),
    (" William Shakespeare wrote", ["Shakespeare", "william shakespeare"], True),
    (" 12 apples", ["12", "twelve"], True),
    (" 125", ["12"], False),
    (" Parisian", ["Paris"], False),
    ("\nParis", ["Paris"], True),  # leading whitespace is ignored
    (" I think Paris", ["Paris"], False),  # the answer must come first
    (" twenty-five", ["25", "twenty-five"], True),
])
def test_exact_match(generated, answers, expected):
    assert exact_match(generated, answers) is expected


def test_config_validation_and_example_file(tmp_path):
    with pytest.raises(BrainlikeError, match="modle"):
        GeometryConfig.parse({"modle": ["x"]})
    with pytest.raises(BrainlikeError, match="conditions"):
        GeometryConfig.parse({"conditions": ["none", "chain-of-thought"]})
    with pytest.raises(BrainlikeError, match="density_threshold"):
        GeometryConfig.parse({"density_threshold": 2})
    with pytest.raises(BrainlikeError, match="not found"):
        GeometryConfig.parse(tmp_path / "missing.yaml")
    config = GeometryConfig.parse(EXAMPLE)
    assert set(config.conditions) >= {"none", "passage"} and config.models
    nested = tmp_path / "nested.yaml"
    nested.write_text("geometry:\n  models: [stories260k]\n  seed: 4\n")
    assert GeometryConfig.parse(nested).seed == 4
    bad = tmp_path / "q.json"
    bad.write_text(json.dumps([{"question": "Why?"}]))
    with pytest.raises(BrainlikeError, match="lacks 'answer'"):
        load_questions(bad)
