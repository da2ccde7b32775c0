"""Attention-graph density and entropy on constructed attention matrices (no model needed)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from brainlike.analyses.geometry import (
    allowed_mask,
    attention_density,
    attention_entropy,
    attention_graph_stats,
    row_entropy,
)
from brainlike.errors import BrainlikeError


def uniform(n: int, causal: bool) -> np.ndarray:
    """``(n, n)`` uniform attention over the allowed keys."""
    mask = allowed_mask(n, causal).astype(np.float64)
    return mask / mask.sum(axis=1, keepdims=True)


def one_hot(n: int, causal: bool, seed: int = 0) -> np.ndarray:
    """``(n, n)`` attention that puts all weight on one random allowed key per query."""
    rng = np.random.default_rng(seed)
    a = np.zeros((n, n))
    for i in range(n):
        a[i, rng.integers(0, i + 1) if causal else rng.integers(0, n)] = 1.0
    return a


def random_softmax(n_heads: int, n: int, causal: bool, temperature: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n_heads, n, n)) / temperature
    logits = np.where(allowed_mask(n, causal)[None], logits, -np.inf)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n", [2, 7, 40])
def test_uniform_attention_is_fully_dense(n, causal):
    stats = attention_graph_stats(uniform(n, causal), causal, threshold=0.5 / n)
    for measure in ("density", "relative_density", "effective_density", "normalized_entropy"):
        assert stats[measure][0] == pytest.approx(1.0, abs=1e-9), measure


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n", [3, 10, 50])
def test_one_hot_attention_has_one_edge_per_query(n, causal):
    expected = 2 / (n + 1) if causal else 1 / n  # n edges over n(n+1)/2 or n*n allowed entries
    stats = attention_graph_stats(one_hot(n, causal), causal, threshold=0.01)
    for measure in ("density", "relative_density", "effective_density"):
        assert stats[measure][0] == pytest.approx(expected, rel=1e-9), measure
    assert stats["entropy"][0] == pytest.approx(0.0, abs=1e-12)
    assert stats["normalized_entropy"][0] == pytest.approx(0.0, abs=1e-12)


def test_causal_denominator_counts_only_the_lower_triangle():
    n = 6
    a = uniform(n, causal=True)
    # as an encoder matrix, the zero upper triangle would halve the density: n(n+1)/2 of n*n entries
    assert attention_density(a, causal=True, threshold=0.05)[0] == pytest.approx(1.0)
    assert attention_density(a, causal=False, threshold=0.05)[0] == pytest.approx((n + 1) / (2 * n))


def test_density_counts_entries_above_the_threshold():
    a = np.array([[1.0, 0.0, 0.0], [0.7, 0.3, 0.0], [0.5, 0.3, 0.2]])
    assert attention_density(a, True, threshold=0.25)[0] == pytest.approx(5 / 6)  # 1, .7, .3, .5, .3
    assert attention_density(a, True, threshold=0.4)[0] == pytest.approx(3 / 6)
    # relative: at least the uniform weight of its row (1, 1/2, 1/3)
    rel = attention_graph_stats(a, True, relative_threshold=1.0)["relative_density"][0]
    assert rel == pytest.approx(3 / 6)  # 1.0 >= 1, .7 >= .5, .5 >= 1/3


@pytest.mark.parametrize("causal", [True, False])
def test_entropy_matches_scipy(causal):
    a = random_softmax(3, 12, causal, temperature=0.5, seed=1)
    h = row_entropy(a, causal)
    for head in range(3):
        for i in range(12):
            k = i + 1 if causal else 12
            assert h[head, i] == pytest.approx(scipy_entropy(a[head, i, :k].astype(np.float64)), rel=1e-5, abs=1e-7)
    assert np.allclose(attention_entropy(a, causal), h.mean(axis=1))
    # effective density = sum exp(H_i) / number of allowed entries
    n_allowed = allowed_mask(12, causal).sum()
    eff = attention_graph_stats(a, causal)["effective_density"]
    assert np.allclose(eff, np.exp(h).sum(axis=1) / n_allowed)


def test_measures_order_sharp_and_flat_attention():
    sharp = random_softmax(4, 30, True, temperature=0.1, seed=2)
    flat = random_softmax(4, 30, True, temperature=3.0, seed=2)
    s, f = attention_graph_stats(sharp, True), attention_graph_stats(flat, True)
    for measure in ("density", "effective_density", "entropy", "normalized_entropy"):
        assert (s[measure] < f[measure]).all(), measure
    # density falls as the threshold rises
    d = [attention_density(flat, True, t).mean() for t in (0.0, 0.01, 0.05, 0.2)]
    assert all(x >= y for x, y in zip(d, d[1:])) and d[0] == pytest.approx(1.0)


def test_bad_inputs_are_rejected():
    with pytest.raises(BrainlikeError, match="n_tokens"):
        attention_graph_stats(np.ones((2, 3, 4)), True)
    with pytest.raises(BrainlikeError, match="threshold"):
        attention_graph_stats(uniform(3, True), True, threshold=1.5)
