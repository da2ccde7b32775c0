"""Attention matrices as weighted directed graphs: density and entropy per head.

An attention matrix ``A`` of one head, ``(n_tokens, n_tokens)``, row ``i`` = query token ``i``, column
``j`` = key token ``j``, is read as a weighted directed graph with an edge ``i -> j`` of weight ``A[i, j]``.
Only *allowed* entries count: all ``n * n`` for bidirectional encoders, the lower triangle (``j <= i``,
``n (n + 1) / 2`` entries) for causal decoders. ``k_i`` is the number of allowed keys of query ``i``.

Measures (one value per head):

* ``density``: share of allowed entries with weight ``> threshold`` (absolute threshold, default 0.01).
* ``relative_density``: share of allowed entries with weight ``>= relative_threshold / k_i``, i.e. above
  ``relative_threshold`` times the uniform weight of their row (scale-free across sequence lengths).
* ``entropy``: mean over queries of the row entropy ``H_i = -sum_j A_ij ln A_ij`` (nats).
* ``normalized_entropy``: mean over queries with ``k_i > 1`` of ``H_i / ln k_i`` (0 = one-hot, 1 = uniform).
* ``effective_density``: threshold-free density ``sum_i exp(H_i) / sum_i k_i`` — ``exp(H_i)`` is the
  effective number of keys a query attends to (its perplexity).

Both densities and ``effective_density`` are 1 for uniform attention and ``n / #allowed`` for one-hot
attention (``1 / n`` for encoders, ``2 / (n + 1)`` for causal models).
"""
from __future__ import annotations

import numpy as np

from brainlike.errors import BrainlikeError

#: Column order of the per-head measures returned by :func:`attention_graph_stats`.
ATTENTION_MEASURES: tuple[str, ...] = ("density", "relative_density", "entropy", "normalized_entropy",
                                       "effective_density")


def allowed_mask(n_tokens: int, causal: bool) -> np.ndarray:
    """``(n_tokens, n_tokens)`` bool: entries a query may attend to (lower triangle when causal)."""
    if causal:
        return np.tril(np.ones((n_tokens, n_tokens), dtype=bool))
    return np.ones((n_tokens, n_tokens), dtype=bool)


def _as_heads(attn: np.ndarray) -> np.ndarray:
    a = np.asarray(attn, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise BrainlikeError(f"attention must be (n_heads, n_tokens, n_tokens) or (n_tokens, n_tokens); "
                             f"got shape {np.shape(attn)}")
    if a.shape[1] == 0:
        raise BrainlikeError("attention matrices must have at least one token")
    return a


def row_entropy(attn: np.ndarray, causal: bool) -> np.ndarray:
    """Entropy (nats) of each query's attention distribution over its allowed keys.

    Parameters
    ----------
    attn : np.ndarray
        ``(n_heads, n_tokens, n_tokens)`` or ``(n_tokens, n_tokens)`` attention weights (rows sum to 1).
    causal : bool
        only the lower triangle is allowed.

    Returns
    -------
    np.ndarray
        ``(n_heads, n_tokens)`` float64 entropies ``H_i = -sum_j A_ij ln A_ij`` (``0 ln 0 = 0``).
    """
    a = _as_heads(attn)
    a = np.where(allowed_mask(a.shape[1], causal)[None], a, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0)
    return -terms.sum(axis=-1)


def attention_graph_stats(
    attn: np.ndarray,
    causal: bool,
    threshold: float = 0.01,
    relative_threshold: float = 1.0,
) -> dict[str, np.ndarray]:
    """Graph density and entropy of each head's attention matrix.

    Parameters
    ----------
    attn : np.ndarray
        ``(n_heads, n_tokens, n_tokens)`` (or one ``(n_tokens, n_tokens)`` matrix) attention weights,
        rows = queries, columns = keys, each row summing to 1 over its allowed keys.
    causal : bool
        count only the lower triangle (decoder models).
    threshold : float
        absolute weight above which an entry is an edge (``density``).
    relative_threshold : float
        an entry is an edge for ``relative_density`` when its weight is at least this
        multiple of the uniform weight ``1 / k_i`` of its row.

    Returns
    -------
    dict[str, np.ndarray]
        ``{measure: (n_heads,) float64}`` for the measures in :data:`ATTENTION_MEASURES` (see module doc).
    """
    if not 0 <= threshold < 1:
        raise BrainlikeError(f"density threshold must be in [0, 1), got {threshold}")
    if relative_threshold <= 0:
        raise BrainlikeError(f"relative_threshold must be > 0, got {relative_threshold}")
    a = _as_heads(attn)
    n = a.shape[1]
    allowed = allowed_mask(n, causal)[None]
    k = allowed[0].sum(axis=1).astype(np.float64)  # (n,) allowed keys per query
    n_allowed = float(k.sum())
    density = ((a > threshold) & allowed).sum(axis=(1, 2)) / n_allowed
    # a tiny tolerance so that exactly-uniform rows (softmax of equal logits) count at relative_threshold=1
    rel_cut = relative_threshold / k[None, :, None] * (1 - 1e-5)
    relative_density = ((a >= rel_cut) & allowed).sum(axis=(1, 2)) / n_allowed
    h = row_entropy(a, causal)  # (heads, n)
    multi = k > 1
    normalized = (h[:, multi] / np.log(k[multi])[None]).mean(axis=1) if multi.any() else np.full(a.shape[0], np.nan)
    effective = np.exp(h).sum(axis=1) / n_allowed
    return {"density": density, "relative_density": relative_density, "entropy": h.mean(axis=1),
            "normalized_entropy": normalized, "effective_density": effective}


def attention_density(attn: np.ndarray, causal: bool, threshold: float = 0.01) -> np.ndarray:
    """Share of allowed entries above ``threshold``, per head: ``(n_heads,)`` float64 in ``[0, 1]``."""
    return attention_graph_stats(attn, causal, threshold)["density"]


def attention_entropy(attn: np.ndarray, causal: bool) -> np.ndarray:
    """Mean row entropy (nats) per head: ``(n_heads,)`` float64."""
    return row_entropy(attn, causal).mean(axis=1)


def query_rows_stats(attn: np.ndarray, causal: bool, rows: np.ndarray) -> dict[str, float]:
    """Effective density and normalised entropy of the attention of a subset of queries (e.g. the question tokens).

    Parameters
    ----------
    attn : np.ndarray
        ``(n_heads, n_tokens, n_tokens)`` attention weights of one layer.
    causal : bool
        only the lower triangle is allowed.
    rows : np.ndarray
        ``(n_tokens,)`` bool, the queries to keep.

    Returns
    -------
    dict[str, float]
        means over heads of ``q_effective_density`` (``sum_{i in rows} exp(H_i) / sum_{i in rows} k_i``) and
        ``q_normalized_entropy`` (mean of ``H_i / ln k_i`` over the rows with ``k_i > 1``). Two prompts whose
        kept queries have the same numbers of allowed keys (a length-matched control) compare without the
        length effect of a threshold.
    """
    a = _as_heads(attn)
    rows = np.asarray(rows, dtype=bool)
    if rows.shape != (a.shape[1],) or not rows.any():
        raise BrainlikeError(f"rows must be a non-empty ({a.shape[1]},) bool mask")
    idx = np.flatnonzero(rows)
    k = (idx + 1.0) if causal else np.full(len(idx), float(a.shape[1]))
    sub = a[:, idx, :]
    if causal:
        sub = np.where(np.arange(a.shape[1])[None, None, :] <= idx[None, :, None], sub, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(sub > 0, sub * np.log(np.where(sub > 0, sub, 1.0)), 0.0).sum(axis=-1)  # (heads, rows)
    multi = k > 1
    norm = float((h[:, multi] / np.log(k[multi])[None]).mean()) if multi.any() else float("nan")
    return {"q_effective_density": float((np.exp(h).sum(axis=1) / k.sum()).mean()), "q_normalized_entropy": norm}
