"""The generated arithmetic task (items, checker, contexts), the resampled ID estimators against
scikit-dimension, and the task experiment on stories260k."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from brainlike.analyses.geometry import estimate_intrinsic_dimension, linear_subspace, run_geometry, sphere
from brainlike.analyses.geometry.arithmetic import (
    build_context,
    build_task_prompt,
    chance_rate,
    check_answer,
    generate_items,
    parse_integer,
    shuffled_answers,
)
from brainlike.analyses.geometry.reasoning import count_patterns, task_conditions, verdict
from brainlike.analyses.geometry.resampled_id import (
    bootstrap_draws,
    centred_ci,
    distance_matrix,
    id_from_distances,
    resampled_ids,
    swap_null,
)
from brainlike.errors import BrainlikeError

pytestmark = pytest.mark.usefixtures("single_thread")


def _solve(question: str) -> int:
    """An independent solver of the generated problems (reads the text, not the generator)."""
    bare = re.fullmatch(r"What is (\d+) ([+-]) (\d+)\?", question)
    if bare:
        a, op, b = int(bare[1]), bare[2], int(bare[3])
        return a + b if op == "+" else a - b
    total = int(re.search(r"has (\d+) ", question)[1])
    for verb, n in re.findall(r"(gets|finds|buys|gives away|loses|eats) (\d+)", question):
        total += int(n) if verb in ("gets", "finds", "buys") else -int(n)
    return total


def test_generated_items_are_correct_distinct_and_graded():
    items = generate_items(120, seed=5)
    assert [it.difficulty for it in items[:8]] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert len({it.question for it in items}) == 120
    asked = {it.question for it in items}
    for it in items:
        assert _solve(it.question) == it.answer >= 0
        assert len(it.examples) == 8 and len({q for q, _ in it.examples}) == 8
        assert not {q for q, _ in it.examples} & asked
        for q, a in it.examples:
            assert _solve(q) == a
        if it.difficulty:  # one add/subtract verb per step
            assert len(re.findall(r"(gets|finds|buys|gives away|loses|eats) \d", it.question)) == it.difficulty
    assert generate_items(10, seed=5)[3] == items[3] and generate_items(10, seed=6)[3] != items[3]
    with pytest.raises(BrainlikeError, match="difficulties"):
        generate_items(4, difficulties=[5])


@pytest.mark.parametrize("text, value", [
    (" 12", 12), ("12.", 12), (" 12 apples", 12), ("The answer is 12", 12), (" -3", -3), ("12.0", 12),
    ("3.5", None), (" twelve", None), ("", None), ("  \n 7\nQuestion: 8", 7), (" none\n 7", None),
    ("12,000", 12), ("x-3", -3), (" 4 + 5 = 9", 4),
])
def test_parse_integer(text, value):
    assert parse_integer(text) == value


def test_check_answer():
    assert check_answer(" 12.\nQuestion:", 12) and not check_answer(" 125", 12)
    assert not check_answer(" twelve", 12) and not check_answer("", 0) and check_answer(" 0", 0)
    assert check_answer(" -3", -3) and not check_answer(" 3", -3)


def test_chance_rate_is_the_guessing_accuracy():
    items = generate_items(400, difficulties=[1], seed=0)
    rng = np.random.default_rng(0)
    answers = np.array([it.answer for it in items])
    guesses = rng.choice(answers, size=(200, len(answers)))  # guess from the answer distribution
    assert chance_rate(items) == pytest.approx((guesses == answers).mean(), abs=0.01)


def test_contexts(stories260k):
    tok = stories260k.tokenizer
    item = generate_items(4, seed=1)[2]
    assert build_context(item, "examples", 0) == "" == build_context(item, "irrelevant", 0, tok)
    four, eight = build_context(item, "examples", 4), build_context(item, "examples", 8)
    assert eight.startswith(four) and four.count("Question:") == 4
    wrong = shuffled_answers(item, 4)
    assert [q for q, _ in wrong] == [q for q, _ in item.examples[:4]]
    assert all(a != b for (_, a), (_, b) in zip(wrong, item.examples[:4]))
    assert shuffled_answers(item, 1)[0][1] != item.examples[0][1]
    n_ex = len(tok(four, add_special_tokens=False)["input_ids"])
    irr = build_context(item, "irrelevant", 4, tok)
    assert abs(len(tok(irr, add_special_tokens=False)["input_ids"]) - n_ex) <= 2 and not re.search(r"\d", irr)
    prompt, (a, b), prefix = build_task_prompt(item, "shuffled", 4)
    assert prompt[a:b] == item.question and prompt.startswith(prefix) and prompt.endswith("Answer:")
    with pytest.raises(BrainlikeError, match="tokenizer"):
        build_context(item, "irrelevant", 2)
    assert [c for c, _, _ in task_conditions([0, 2], ["irrelevant", "shuffled"])] == [
        "examples-0", "examples-2", "irrelevant-2", "shuffled-2"]


# ------------------------------------------------------------------ estimators


@pytest.mark.parametrize("X, true_dim", [(linear_subspace(800, 5, 96, seed=1), 5), (sphere(800, 3, 64, seed=2), 3)])
def test_distance_based_estimators_equal_scikit_dimension(X, true_dim):
    D = distance_matrix(X)
    from sklearn.metrics import pairwise_distances

    np.testing.assert_allclose(D, pairwise_distances(X.astype(np.float64)), atol=1e-6)
    for est in ("twonn", "mle"):
        ref = estimate_intrinsic_dimension(X, est, max_points=None, deduplicate=False)
        assert id_from_distances(D, est) == pytest.approx(ref, rel=1e-9)
        assert ref == pytest.approx(true_dim, rel=0.15)


def test_bootstrap_ci_covers_and_null_is_calibrated():
    # 60 "questions" with 6 points each on a 4-d subspace; condition B identical in law (no effect) or 8-d
    def cloud(dim, seed):
        return linear_subspace(360, dim, 48, seed=seed)

    owner = np.repeat(np.arange(60), 6)
    draws = bootstrap_draws(60, 40, seed=0)
    assert draws.shape == (40, 30) and all(len(set(d)) == 30 for d in draws)
    ids = resampled_ids(distance_matrix(cloud(4, 0)), owner, draws, 3, ["twonn", "mle"])
    assert ids.shape == (41, 2) and np.all(np.abs(ids[0] - 4) < 1.0)
    lo, hi = centred_ci(ids[0, 0], ids[1:, 0])
    assert lo < 4 < hi
    labels = np.r_[np.ones(360, bool), np.zeros(360, bool)]
    both = np.concatenate([owner, owner])
    p_values, replicates = [], []

    def point(Y):
        return resampled_ids(distance_matrix(Y), owner, draws[:0], 3, ["twonn"])[0, 0]

    for seed in range(8):  # no effect: p roughly uniform
        X = np.concatenate([cloud(4, 10 + seed), cloud(4, 50 + seed)])
        null = swap_null(distance_matrix(X), both, labels, 3, ["twonn"], 40, seed=seed)
        diff = point(X[:360]) - point(X[360:])
        replicates.append(point(X[:360]))
        p_values.append((1 + np.sum(np.abs(null[:, 0]) >= abs(diff))) / 41)
    # the half-sampling CI is as wide as the spread of independent replicates (2 x 1.96 sd)
    assert 0.4 < (hi - lo) / (2 * 1.96 * np.std(replicates, ddof=1)) < 2.5
    assert np.mean(np.array(p_values) < 0.05) <= 0.25
    X = np.concatenate([cloud(8, 3), cloud(4, 4)])  # planted effect: found
    null = swap_null(distance_matrix(X), both, labels, 3, ["twonn"], 40)
    diff = point(X[:360]) - point(X[360:])
    assert diff > 2 and np.all(np.abs(null[:, 0]) < diff)


def test_count_patterns_matches_brute_force():
    rng = np.random.default_rng(0)
    W, b, X = rng.standard_normal((12, 3)), rng.standard_normal(12), rng.standard_normal((500, 3))
    expected = len({tuple(row) for row in ((X @ W.T + b) > 0)})
    assert count_patterns(X, W, b) == expected
    assert count_patterns(np.repeat(X[:5], 3, axis=0), W, b) == len({tuple(r) for r in (X[:5] @ W.T + b) > 0})


# ------------------------------------------------------------------ the experiment on stories260k


@pytest.fixture(scope="module")
def task_result(stories260k):
    config = {"models": ["stories260k"], "task": "arithmetic", "n_questions": 8, "shots": [0, 2],
              "tokens_per_question": 3, "n_bootstrap": 10, "max_new_tokens": 3, "progress": False, "seed": 1}
    return run_geometry(config, models={"stories260k": stories260k})


@pytest.mark.slow
def test_task_experiment_tables(task_result):
    r = task_result
    conds = {"examples-0", "examples-2", "irrelevant-2", "shuffled-2"}
    assert set(r.layers["condition"]) == conds and set(r.layers["layer"]) == set(range(1, 6))
    ids = r.layers[r.layers["measure"].str.startswith("id_")]
    assert len(ids) == 4 * 5 * 2 and (ids["estimate"] > 0).all() and (ids["estimate"] < 64).all()
    assert (ids["ci_low"] <= ids["ci_high"]).all() and ids["n_points"].min() >= 20
    dens = r.layers[r.layers["measure"] == "density"]
    assert dens["estimate"].between(0, 1).all()
    acc = r.accuracy
    assert len(acc) == 4 * 8 and acc["correct"].dtype == bool
    assert (acc["correct"] == [check_answer(g, a) for g, a in zip(acc["generated"], acc["answer"])]).all()
    ctx = acc.groupby("condition")["n_context_tokens"].mean()
    assert ctx["examples-0"] == 0 and abs(ctx["irrelevant-2"] - ctx["examples-2"]) <= 2
    assert abs(ctx["shuffled-2"] - ctx["examples-2"]) <= 2
    pat = r.activation_patterns
    assert len(pat) == 4 * 5 and (pat["width"] == 172).all()
    assert (pat["n_patterns"] <= pat["n_points"]).all() and (pat["n_patterns"] >= 1).all()
    effects = set(r.chain["effect"])
    assert {"delta_late_id_twonn", "delta_late_id_mle", "delta_accuracy", "corr_late_id_twonn_accuracy"} <= effects
    matched = r.chain[r.chain["contrast"] == "length-matched"]
    assert set(matched["control"]) == {"irrelevant-2", "shuffled-2"}
    assert matched["p_value"].between(0, 1).all()
    summary = r.accuracy_summary
    overall = summary[summary["difficulty"] == -1]
    assert len(overall) == 4 and (overall["n"] == 8).all()
    assert (overall["ci_low"] <= overall["accuracy"]).all() and (overall["accuracy"] <= overall["ci_high"]).all()
    assert len(r.verdicts) == 1 and r.verdicts["verdict"].iloc[0].startswith("stories260k: the prediction")


def test_verdict_reads_the_chain():
    import pandas as pd

    rows = [{"model": "m", "contrast": "length-matched", "n_shots": 4, "effect": e, "ci_low": lo}
            for e, lo in [("delta_late_id_twonn", 0.2), ("delta_late_id_mle", 0.1), ("delta_accuracy", 0.05)]]
    rows += [{"model": "m", "contrast": "7 conditions", "n_shots": -1, "effect": "corr_late_id_twonn_accuracy",
              "ci_low": 0.3}]
    assert "holds here" in verdict(pd.DataFrame(rows), "m")
    rows[2]["ci_low"] = -0.1
    text = verdict(pd.DataFrame(rows), "m")
    assert "does not hold" in text and "not supported: accuracy rises" in text


def test_encoders_are_excluded_with_a_note(minilm):
    r = run_geometry({"models": ["minilm-l6"], "task": "arithmetic", "n_questions": 4, "shots": [0, 1],
                      "n_bootstrap": 10, "progress": False}, models={"minilm-l6": minilm})
    assert r.layers.empty and not r.models["included"].iloc[0]
    assert any("encoder" in n for n in r.notes) and "encoder" in r.models["note"].iloc[0]


@pytest.mark.slow
def test_task_example_runs_through_brainlike_run(tmp_path, shared_data):
    import yaml
    from typer.testing import CliRunner

    from brainlike.cli import app

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples" / "geometry.yaml").read_text())
    assert raw["task"] == "arithmetic" and "minilm-l6" in raw["models"]
    raw.update(models=["stories260k", "minilm-l6"], n_questions=4, shots=[0, 1], controls=["irrelevant"],
               tokens_per_question=6, n_bootstrap=10, max_new_tokens=2, output=str(tmp_path / "out"))
    spec = tmp_path / "task.yaml"
    spec.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(app, ["run", str(spec)])
    assert res.exit_code == 0, res.output
    store = tmp_path / "out" / "results"
    listed = set(CliRunner().invoke(app, ["results", "tables", "--store", str(store)]).output.split())
    assert {"geometry_task_layers", "geometry_task_chain", "geometry_task_accuracy_summary",
            "geometry_task_activation_patterns"} <= listed
    q = CliRunner().invoke(app, ["results", "query", "SELECT count(*) AS n FROM geometry_task_chain",
                                 "--store", str(store), "--csv"])
    assert q.exit_code == 0 and int(q.output.split()[1]) > 0
    html = (tmp_path / "out" / "report.html").read_text()
    assert "minilm-l6 is an encoder" in html and "the prediction" in html
