"""Cross-model summaries of functional organization: diversity of patterns, consistency of networks.

Sun et al. (2024) compare models by how *diverse* their sub-groups' computational behaviours are and how
*consistently* the sub-groups map onto functional brain networks. The quantities here:

* ``pattern_diversity``: mean over pattern pairs of ``1 − |r|`` between their time courses (1 = all
  orthogonal, 0 = all identical up to sign).
* ``map_diversity``: the same between the patterns' t-maps (do different patterns engage different
  voxels?).
* ``network_coverage``: distinct networks assigned / networks in the atlas; ``network_entropy``:
  Shannon entropy of the assigned networks' distribution over assigned patterns, divided by
  ``log(n_networks)`` (0 = all to one network, 1 = spread evenly).
* ``consistency``: agreement of network assignments between two fits, over matched pattern pairs in
  which at least one pattern is assigned (NaN when none is): refits with other dictionary seeds, whose
  patterns are matched one-to-one by the Hungarian algorithm on ``|r|`` (``pattern_stability`` = mean
  matched ``|r|``), and GLMs fitted on the two halves of the volumes with the same patterns.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["assignment_agreement", "diversity_bootstrap", "diversity_chance", "map_diversity", "match_patterns",
           "mean_dissimilarity", "network_entropy", "pattern_diversity", "phase_randomize", "stability_chance"]


def _corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    na[na == 0] = 1.0
    nb[nb == 0] = 1.0
    return (a / na) @ (b / nb).T


def mean_dissimilarity(x: np.ndarray) -> float:
    """Mean over row pairs of ``1 − |Pearson r|`` for ``x`` ``(K, n)``; NaN when ``K < 2``."""
    k = len(x)
    if k < 2:
        return float("nan")
    r = np.abs(_corr_rows(x, x))
    iu = np.triu_indices(k, 1)
    return float(np.mean(1.0 - r[iu]))


def pattern_diversity(patterns: np.ndarray) -> float:
    """Diversity of ``(K, n_trs)`` temporal patterns (see module docstring)."""
    return mean_dissimilarity(patterns)


def map_diversity(maps: np.ndarray) -> float:
    """Diversity of ``(K, n_voxels)`` statistic maps (see module docstring)."""
    return mean_dissimilarity(maps)


def _unassigned(x) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))


def network_entropy(assigned: Sequence[str | None], n_networks: int) -> float:
    """Normalised entropy (0..1) of the networks assigned to patterns (``None``/NaN = unassigned, ignored)."""
    labels = [a for a in assigned if not _unassigned(a)]
    if not labels or n_networks < 2:
        return float("nan")
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(n_networks))


def match_patterns(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching of patterns ``a`` ``(K, n)`` and ``b`` ``(K', n)`` maximising total ``|r|``.

    Returns
    -------
    tuple[np.ndarray, np.ndarray, np.ndarray]
        ``(rows, cols, abs_r)``: indices into ``a`` and ``b`` (``min(K, K')`` pairs) and the pairs' ``|r|``.
    """
    r = np.abs(_corr_rows(a, b))
    rows, cols = linear_sum_assignment(-r)
    return rows, cols, r[rows, cols]


def assignment_agreement(labels_a: Sequence[str | None], labels_b: Sequence[str | None]) -> float:
    """Fraction of pairs with the same assigned network among pairs where at least one is assigned.

    (``None``/NaN = unassigned).
    """
    pairs = [(None if _unassigned(x) else x, None if _unassigned(y) else y) for x, y in zip(labels_a, labels_b)]
    pairs = [(x, y) for x, y in pairs if x is not None or y is not None]
    if not pairs:
        return float("nan")
    return float(np.mean([x == y for x, y in pairs]))


# ------------------------------------------------------------------------------ chance levels and CIs
def phase_randomize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row of ``x`` ``(K, n)`` with its Fourier phases replaced by uniform random ones (independently per row).

    The same power spectrum (autocorrelation), no relation to the other rows. ``(K, n)`` float64.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[1]
    f = np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1)
    phase = rng.uniform(0, 2 * np.pi, f.shape)
    phase[:, 0] = 0.0
    if n % 2 == 0:
        phase[:, -1] = 0.0
    return np.fft.irfft(np.abs(f) * np.exp(1j * phase), n=n, axis=1)


def diversity_chance(patterns: np.ndarray, n: int = 200, seed: int = 0) -> np.ndarray:
    """``(n,)`` :func:`pattern_diversity` of ``n`` sets of phase-randomised copies of ``patterns`` ``(K, n_trs)``.

    The diversity that K unrelated time courses with the patterns' spectra have by chance.
    """
    rng = np.random.default_rng(seed)
    return np.array([pattern_diversity(phase_randomize(patterns, rng)) for _ in range(n)])


def diversity_bootstrap(patterns: np.ndarray, n_boot: int = 500, seed: int = 0) -> np.ndarray:
    """``(n_boot,)`` :func:`pattern_diversity` over bootstrap resamples of the patterns.

    The K patterns are drawn with replacement and the mean ``1 - |r|`` is taken over the pairs of distinct draws (a
    pattern is never paired with its own copy). The spread says how much the diversity depends on which patterns the
    dictionary happened to find. (Resampling volumes instead would bias it: repeated blocks inflate every correlation.)
    """
    x = np.asarray(patterns, dtype=np.float64)
    k = len(x)
    if k < 3:
        return np.full(n_boot, pattern_diversity(x))
    d = 1.0 - np.abs(_corr_rows(x, x))
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, k, k)
        sub = d[np.ix_(idx, idx)]
        keep = idx[:, None] != idx[None, :]
        out[b] = sub[keep].mean()
    return out


def stability_chance(patterns: np.ndarray, n: int = 100, seed: int = 0) -> np.ndarray:
    """``(n,)`` mean Hungarian-matched ``|r|`` between ``patterns`` ``(K, n_trs)`` and phase-randomised copies.

    The pattern stability that two unrelated dictionaries with these spectra reach by chance (the matching picks the
    largest correlations, so it is above 0).
    """
    rng = np.random.default_rng(seed)
    return np.array([match_patterns(patterns, phase_randomize(patterns, rng))[2].mean() for _ in range(n)])
