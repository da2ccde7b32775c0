"""One pass per prompt (capture + greedy answer from the prefill's KV cache), batched capture, and the
length-free attention test of the arithmetic-task geometry experiment."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainlike.analyses.geometry import attention_graph_stats, capture_prompt
from brainlike.analyses.geometry.arithmetic import build_task_prompt, generate_items, parse_integer
from brainlike.analyses.geometry.attention import query_rows_stats
from brainlike.analyses.geometry.capture import capture_batch
from brainlike.analyses.geometry.questions import generate_answer
from brainlike.analyses.geometry.reasoning import _density_contrast, attention_verdict
from brainlike.analyses.geometry.resampled_id import bootstrap_draws
from brainlike.errors import BrainlikeError

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def prompts(stories260k):
    items = generate_items(4, seed=2)
    return [build_task_prompt(it, ctx, k, stories260k.tokenizer, 0)[0]
            for it in items for ctx, k in [("examples", 0), ("examples", 2), ("irrelevant", 1)]]


def test_one_pass_equals_the_two_pass_path(stories260k, prompts):
    for text in prompts[:4]:
        two = capture_prompt(stories260k, text)
        reference = generate_answer(stories260k, text, 8)  # HF generate, a second forward pass
        one = capture_prompt(stories260k, text, generate_tokens=8)
        assert two.generated is None
        np.testing.assert_array_equal(one.mlp_inputs, two.mlp_inputs)
        np.testing.assert_array_equal(one.attention, two.attention)
        # the same greedy tokens, cut once the first non-empty line is complete (all the checker reads)
        assert reference.startswith(one.generated) and parse_integer(reference) == parse_integer(one.generated)
        rest = reference[len(one.generated):]
        assert rest == "" or "\n" in one.generated.lstrip()
    with pytest.raises(BrainlikeError, match="encoder"):
        capture_prompt(type(stories260k)(**{**stories260k.__dict__, "kind": "encoder"}), "x y", generate_tokens=2)


@pytest.mark.slow
def test_batched_capture_equals_one_prompt_at_a_time(stories260k, prompts):
    batch = capture_batch(stories260k, prompts, generate_tokens=6)
    lengths = {c.n_tokens for c in batch}
    assert len(lengths) > 3  # real padding happened
    for text, b in zip(prompts, batch):
        a = capture_prompt(stories260k, text, generate_tokens=6)
        np.testing.assert_array_equal(a.input_ids, b.input_ids)
        np.testing.assert_array_equal(a.offsets, b.offsets)
        np.testing.assert_array_equal(a.special, b.special)
        np.testing.assert_allclose(b.mlp_inputs, a.mlp_inputs, rtol=0, atol=1e-5 * np.abs(a.mlp_inputs).max())
        np.testing.assert_allclose(b.attention, a.attention, rtol=0, atol=1e-5)
        assert b.generated == a.generated


def test_query_rows_stats_against_whole_matrix_and_closed_forms():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 9, 9))
    for causal in (True, False):
        masked = np.where(np.tril(np.ones((9, 9), bool)) | (not causal), logits, -np.inf)
        attn = np.exp(masked - masked.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        whole = attention_graph_stats(attn, causal)
        every = query_rows_stats(attn, causal, np.ones(9, bool))
        assert every["q_effective_density"] == pytest.approx(whole["effective_density"].mean())
        assert every["q_normalized_entropy"] == pytest.approx(whole["normalized_entropy"].mean())
    rows = np.zeros(9, bool)
    rows[[5, 7]] = True  # keys allowed: 6 and 8 (causal)
    uniform = np.tril(np.ones((9, 9))) / np.arange(1, 10)[:, None]
    assert query_rows_stats(uniform, True, rows) == pytest.approx({"q_effective_density": 1.0,
                                                                   "q_normalized_entropy": 1.0})
    one_hot = np.eye(9)
    assert query_rows_stats(one_hot, True, rows) == pytest.approx({"q_effective_density": 2 / 14,
                                                                   "q_normalized_entropy": 0.0})
    with pytest.raises(BrainlikeError, match="non-empty"):
        query_rows_stats(one_hot, True, np.zeros(9, bool))


def test_density_contrast_finds_planted_effects_and_is_calibrated():
    n_q, n_layers, late = 60, 6, [4, 5]
    draws = bootstrap_draws(n_q, 50, seed=0)
    j = 3  # DENSITY_TEST_MEASURE's column
    rng = np.random.default_rng(1)
    p_null = []
    for seed in range(200):  # no effect: p roughly uniform, false positives near the nominal 5%
        base = rng.uniform(0.2, 0.6, (n_q, n_layers, 5))
        other = base + rng.normal(0, 0.02, base.shape)
        _, p = _density_contrast(base, other, late, draws, seed)
        p_null.append(p)
    assert 0.01 <= np.mean(np.array(p_null) < 0.05) <= 0.10
    base = rng.uniform(0.2, 0.6, (n_q, n_layers, 5))
    other = base + rng.normal(0, 0.02, base.shape)
    other[:, late, j] -= 0.01  # planted: condition A denser by 0.01 at late layers
    values, p = _density_contrast(base, other, late, draws, 0)
    lo, hi = values[0] + np.quantile(values[1:] - values[1:].mean(), [0.025, 0.975])
    assert p < 0.01 and lo < 0.01 < hi and lo > 0
    other[:, late, j] += 0.01
    other[:, :4, j] -= 0.5  # an early-layer difference does not leak into the late-layer test
    assert abs(_density_contrast(base, other, late, draws, 0)[0][0]) < 0.01


def test_attention_verdict_reads_the_chain():
    rows = [{"model": "m", "contrast": "length-matched", "control": c, "n_shots": 4,
             "effect": "delta_late_q_effective_density", "estimate": 0.02, "ci_low": 0.01, "ci_high": 0.03,
             "p_value": 0.001} for c in ("irrelevant-4", "shuffled-4")]
    rows += [{"model": "m", "contrast": "4 length-matched contrasts", "control": "", "n_shots": -1,
              "effect": f"corr_delta_q_effective_density_delta_late_id_{e}", "estimate": 0.8, "ci_low": 0.3,
              "ci_high": 0.95, "p_value": 0.01} for e in ("twonn", "mle")]
    assert attention_verdict(pd.DataFrame(rows), "m").endswith("holds here.")
    assert "attention is denser than" in attention_verdict(pd.DataFrame(rows), "m")
    rows[3]["ci_low"] = -0.2
    assert attention_verdict(pd.DataFrame(rows), "m").endswith("does not hold here.")
    for r in rows[:2]:
        r.update(estimate=-0.02, ci_low=-0.03, ci_high=-0.01)
    assert "attention is sparser than" in attention_verdict(pd.DataFrame(rows), "m")
    rows[0].update(estimate=0.02, ci_low=0.01, ci_high=0.03)  # denser than one control only
    text = attention_verdict(pd.DataFrame(rows), "m")
    assert "attention is not denser than" in text and "irrelevant-4: denser" in text
    assert "shuffled-4: sparser" in text
    assert "not tested" in attention_verdict(pd.DataFrame(rows[2:]), "m")
