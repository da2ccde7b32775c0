"""Closed forms of the Arora–Goyal skill-graph theory (all logarithms natural).

Setting: skills ``S`` (``n_skills``), text pieces ``T`` (``n_pieces``); each piece needs ``k`` distinct skills
drawn uniformly at random. The model fails a set ``Y`` of pieces of measure ``theta``. A *node* is a skill
(``k' = 1``) or a ``k'``-tuple of skills; its edges go to the pieces that need all of its skills. A node is
*competent at level* ``1 - gamma`` when at most a fraction ``gamma`` of its pieces are in ``Y``.

* :func:`noncompetent_bound` — the paper's worst-case guarantee (their Theorem on the fraction of skills,
  and on ``k'``-tuples): for *every* ``Y`` of measure ``theta``, the fraction of nodes whose failure rate
  exceeds ``gamma = beta * theta`` is below ``alpha`` whenever
  ``H(theta) + r * H(alpha) - floor(k / k') * theta * KL(beta*alpha || alpha) < 0``
  (``H`` the binary entropy, ``KL`` the Bernoulli relative entropy
  ``KL(p||q) = -H(p) - p log q - (1-p) log(1-q)``, which turns this into the paper's
  ``H(theta) + k theta (H(beta alpha) - beta alpha log(1/alpha) - (1 - beta alpha) log(1/(1-alpha))) < 0``
  for ``k' = 1``; ``r = n_nodes / n_pieces``, 0 in the paper's infinite-corpus limit).
* :func:`theorem14_noncompetent_bound` — the paper's Theorem 14 as published (same condition as for
  single skills, conclusion at failure level ``beta * theta * k'``); :func:`noncompetent_bound` with
  ``k' > 1`` is this package's own (more conservative) union-bound derivation with ``floor(k / k')``.
* :func:`markov_bound` — the trivial bound ``theta / gamma`` the theorem improves on.
* :func:`random_failure_competence` — exact expected competent fraction when each piece fails
  independently with probability ``theta`` (a binomial mixture), the reference for Monte Carlo checks.
* :func:`adversarial_concentration` — the exact (infinite-corpus) best the adversary can do against one
  fixed random set of skills: the top-``theta`` mean of the hypergeometric overlap.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.optimize import brentq
from scipy.special import xlogy

from brainlike.errors import BrainlikeError


def entropy(x) -> np.ndarray:
    """Binary entropy ``H(x) = -x ln x - (1-x) ln(1-x)`` in nats (``H(0) = H(1) = 0``)."""
    x = np.asarray(x, dtype=np.float64)
    return -xlogy(x, x) - xlogy(1.0 - x, 1.0 - x)


def kl_bernoulli(p, q) -> np.ndarray:
    """Relative entropy ``KL(Bern(p) || Bern(q))`` in nats; ``q`` must be in (0, 1)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    return xlogy(p, p) - xlogy(p, q) + xlogy(1.0 - p, 1.0 - p) - xlogy(1.0 - p, 1.0 - q)


def _check(theta: float, gamma: float, k: int, kprime: int) -> None:
    if not 0.0 <= theta <= 1.0:
        raise BrainlikeError(f"theta (fraction of text pieces failed) must be in [0, 1], not {theta}")
    if not 0.0 < gamma < 1.0:
        raise BrainlikeError(f"gamma (allowed failure rate of a competent skill) must be in (0, 1), not {gamma}")
    if k < 1 or kprime < 1 or kprime > k:
        raise BrainlikeError(f"need 1 <= k' <= k (skills per text piece), got k={k}, k'={kprime}")


def union_bound_margin(alpha, theta: float, beta: float, m: float, nodes_per_piece: float = 0.0) -> np.ndarray:
    """``m * theta * KL(beta*alpha || alpha) - H(theta) - nodes_per_piece * H(alpha)``; positive = guarantee.

    ``m = floor(k / k')`` is the number of independent ``k'``-tuples a text piece carries. ``alpha`` in
    ``(0, 1/beta]``.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    return (m * theta * kl_bernoulli(np.minimum(beta * alpha, 1.0), alpha) - entropy(theta)
            - nodes_per_piece * entropy(alpha))


def markov_bound(theta: float, gamma: float) -> float:
    """Markov's inequality: at most ``theta / gamma`` of (degree-regular) nodes fail more than ``gamma``."""
    return float(min(1.0, theta / gamma))


def noncompetent_bound(theta: float, gamma: float, k: int, kprime: int = 1, nodes_per_piece: float = 0.0) -> float:
    """Worst-case upper bound on the fraction of ``k'``-tuples whose failure rate exceeds ``gamma``.

    Parameters
    ----------
    theta : float
        fraction (measure) of text pieces the model fails.
    gamma : float
        allowed failure rate of a competent node (competence level ``1 - gamma``); ``beta = gamma/theta``.
    k : int
        skills per text piece.
    kprime : int
        tuple size (1 = single skills).
    nodes_per_piece : float
        ``n_nodes / n_pieces`` for the union over node sets (0 = the paper's limit of a
        corpus much larger than the number of nodes).

    Returns
    -------
    float
        ``alpha``: the smallest value satisfying the union-bound condition (see module docstring), capped by
        :func:`markov_bound`; 1.0 when ``gamma <= theta`` (no guarantee), 0.0 when ``theta == 0``.
    """
    _check(theta, gamma, k, kprime)
    if theta == 0.0:
        return 0.0
    return _smallest_alpha(theta, gamma / theta, k // kprime, nodes_per_piece)


def _smallest_alpha(theta: float, beta: float, m: float, nodes_per_piece: float = 0.0) -> float:
    """Smallest ``alpha`` in ``(0, 1/beta]`` with :func:`union_bound_margin` ``> 0``.

    1/beta if none; 1 if ``beta <= 1``.
    """
    if beta <= 1.0:
        return 1.0
    markov = 1.0 / beta
    grid = np.geomspace(1e-12, markov, 4000)
    margin = union_bound_margin(grid, theta, beta, m, nodes_per_piece)
    ok = np.flatnonzero(margin > 0)
    if ok.size == 0:
        return float(markov)
    i = int(ok[0])
    if i == 0:
        return float(grid[0])
    a = brentq(lambda x: float(union_bound_margin(x, theta, beta, m, nodes_per_piece)), grid[i - 1], grid[i],
               xtol=1e-14)
    return float(min(a, markov))


def theorem14_noncompetent_bound(theta: float, gamma: float, k: int, kprime: int = 1) -> float:
    """The paper's Theorem 14 (Arora & Goyal 2023): fraction of ``k'``-tuples that may fail more than ``gamma``.

    Theorem 14, as stated in the paper: if ``alpha, beta, theta > 0``, ``beta > 1``, ``alpha * beta < 1``
    satisfy the *single-skill* condition of the basic theorem,
    ``H(theta) + k theta (H(beta alpha) - beta alpha log(1/alpha) - (1 - beta alpha) log(1/(1 - alpha))) < 0``,
    then (with high probability over the random skill graph) for every set ``Y`` of text pieces of measure
    ``theta`` at most an ``alpha`` fraction of the ``k'``-tuples have more than a ``beta theta k'`` fraction
    of their edges to ``Y``. A tuple competent at level ``1 - gamma`` therefore needs
    ``beta = gamma / (k' theta)``: the tuple guarantee at ``theta`` equals the single-skill guarantee at the
    same ``beta`` -- which is the single-skill guarantee once ``theta`` falls to ``theta / k'`` (the paper's
    "k'-fold reduction of the excess loss", its Corollary of Theorem 14) up to the ``H(theta)`` term.

    Parameters
    ----------
    theta : float
        measure of the failed text pieces, in [0, 1].
    gamma : float
        allowed failure rate of a competent tuple, in (0, 1).
    k : int
        skills per text piece.
    kprime : int
        tuple size.

    Returns
    -------
    float
        ``alpha`` in [0, 1] (capped by Markov, ``1/beta``; 1.0 when ``gamma <= k' theta``: no guarantee).
    """
    _check(theta, gamma, k, kprime)
    if theta == 0.0:
        return 0.0
    return _smallest_alpha(theta, gamma / (kprime * theta), k)


def competence_bound(theta: float, gamma: float, k: int, kprime: int = 1, nodes_per_piece: float = 0.0) -> float:
    """``1 - noncompetent_bound``: guaranteed fraction of ``k'``-tuples competent at level ``1 - gamma``."""
    return 1.0 - noncompetent_bound(theta, gamma, k, kprime, nodes_per_piece)


def node_edge_probability(n_skills: int, k: int, kprime: int = 1) -> float:
    """Probability that a random text piece (``k`` distinct skills of ``n_skills``) contains a given ``k'``-tuple.

    ``C(k, k') / C(n_skills, k')``.
    """
    if k > n_skills:
        raise BrainlikeError(f"a text piece needs k={k} distinct skills but there are only {n_skills}")
    return math.comb(k, kprime) / math.comb(n_skills, kprime)


def random_failure_competence(theta: float, gamma: float, n_skills: int, n_pieces: int | None, k: int,
                              kprime: int = 1) -> float:
    """Expected fraction of ``k'``-tuples competent at level ``1 - gamma`` when pieces fail independently.

    Each piece fails with probability ``theta``. A tuple's degree is ``Binomial(n_pieces, p)`` with ``p`` from
    :func:`node_edge_probability`; given degree ``d >= 1`` its failures are ``Binomial(d, theta)`` and it is
    competent when ``failures <= gamma * d``. Tuples that no piece contains (degree 0) are left out, as in
    the simulation. ``n_pieces=None`` gives the infinite-corpus limit (1 if ``theta <= gamma`` else 0).
    """
    _check(theta, gamma, k, kprime)
    if n_pieces is None:
        return 1.0 if theta <= gamma else 0.0
    p = node_edge_probability(n_skills, k, kprime)
    deg = stats.binom(n_pieces, p)
    lo, hi = int(max(1, deg.ppf(1e-12))), int(max(1, deg.isf(1e-12)))
    d = np.arange(lo, hi + 1)
    w = deg.pmf(d)
    w = w / (1.0 - deg.pmf(0))
    ok = stats.binom.cdf(np.floor(gamma * d + 1e-9), d, theta)
    return float(np.sum(w * ok))


def top_mean(values: np.ndarray, probs: np.ndarray, theta: float) -> float:
    """Mean of a discrete distribution's top-``theta`` tail (``E[X | X in the top theta quantile]``)."""
    order = np.argsort(values)[::-1]
    v, p = np.asarray(values, dtype=np.float64)[order], np.asarray(probs, dtype=np.float64)[order]
    take = np.minimum(p, np.maximum(0.0, theta - np.concatenate([[0.0], np.cumsum(p)[:-1]])))
    return float(np.sum(take * v) / theta)


def adversarial_concentration(theta: float, alpha: float, k: int, n_skills: int | None = None) -> float:
    """How much an adversary can concentrate failures on one random set ``Z`` of ``alpha`` of the skills.

    Returns ``rho = max_Y e(Y, Z) / (theta * e(T, Z))``: the failure rate of ``Z``'s edges when the failed
    pieces ``Y`` (measure ``theta``) are those with most skills in ``Z``, divided by ``theta``. In the
    infinite-corpus limit a piece's overlap with ``Z`` is hypergeometric (``n_skills`` given) or
    ``Binomial(k, alpha)``; ``rho`` is its top-``theta`` mean over its mean. The union-bound theorem says
    ``rho < beta`` whenever its condition holds at ``(alpha, beta)``.
    """
    if not (0 < theta <= 1 and 0 < alpha < 1):
        raise BrainlikeError("adversarial_concentration needs 0 < theta <= 1 and 0 < alpha < 1")
    c = np.arange(k + 1)
    if n_skills is None:
        probs = stats.binom.pmf(c, k, alpha)
    else:
        probs = stats.hypergeom.pmf(c, n_skills, int(round(alpha * n_skills)), k)
    return top_mean(c, probs, theta) / float(np.sum(c * probs))
