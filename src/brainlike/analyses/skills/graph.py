"""Explicit random skill graphs and Monte Carlo simulation of which skills (and skill tuples) a model masters.

A :class:`SkillGraph` holds ``n_pieces`` text pieces, each needing ``k`` distinct skills drawn uniformly
from ``n_skills`` (the Arora–Goyal random bipartite graph). Given a set of failed pieces, every skill or
``k'``-tuple gets a failure rate (failed pieces among those that contain it); it is *competent* at level
``1 - gamma`` when that rate is at most ``gamma``. Two ways to choose the failed pieces:

* ``"random"`` — each piece fails independently with probability ``theta`` (the benign case);
* ``"adversarial"`` — a worst-case search: for a random set ``Z`` of ``alpha`` of the nodes, fail the
  ``round(theta * n_pieces)`` pieces that contain most members of ``Z`` (ties broken at random); try a grid
  of ``alpha`` and keep the outcome with the most non-competent nodes. The paper's bound must hold against
  it (:func:`brainlike.analyses.skills.bounds.noncompetent_bound`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from brainlike.errors import BrainlikeError


@dataclass(frozen=True)
class SkillGraph:
    """A bipartite skill graph.

    Attributes
    ----------
    pieces : np.ndarray
        ``(n_pieces, k)`` int64 skill ids of each text piece, sorted within a row, distinct.
    n_skills : int
        number of skills (ids ``0 .. n_skills-1``).
    """

    pieces: np.ndarray
    n_skills: int

    @property
    def n_pieces(self) -> int:
        """The number of text pieces."""
        return int(self.pieces.shape[0])

    @property
    def k(self) -> int:
        """The number of skills per text piece."""
        return int(self.pieces.shape[1])

    def tuple_ids(self, kprime: int = 1) -> np.ndarray:
        """``(n_pieces, C(k, k'))`` int64 ids of the ``k'``-subsets of each piece (colex rank in ``0 ..

        C(n_skills, k')-1``; for ``k' = 1`` the skill ids).
        """
        if not 1 <= kprime <= self.k:
            raise BrainlikeError(f"k' must be between 1 and k={self.k}, not {kprime}")
        if kprime == 1:
            return self.pieces.astype(np.int64)
        combos = list(_combinations(self.k, kprime))
        ids = np.zeros((self.n_pieces, len(combos)), dtype=np.int64)
        for c, pos in enumerate(combos):
            for i, p in enumerate(pos, start=1):
                ids[:, c] += _comb_vec(self.pieces[:, p], i)
        return ids

    def n_nodes(self, kprime: int = 1) -> int:
        """``C(n_skills, k')``: the number of possible ``k'``-tuples."""
        return math.comb(self.n_skills, kprime)


def _combinations(n: int, r: int):
    from itertools import combinations

    return combinations(range(n), r)


def _comb_vec(x: np.ndarray, i: int) -> np.ndarray:
    """``C(x, i)`` elementwise for small non-negative int arrays, exact in int64."""
    out = np.ones_like(x, dtype=np.int64)
    for j in range(i):
        out = out * (x.astype(np.int64) - j)
    return out // math.factorial(i)


def random_skill_graph(n_skills: int, n_pieces: int, k: int, seed: int = 0) -> SkillGraph:
    """Each of ``n_pieces`` text pieces picks ``k`` distinct skills uniformly at random (seeded)."""
    if k < 1 or k > n_skills:
        raise BrainlikeError(f"need 1 <= k <= n_skills, got k={k}, n_skills={n_skills}")
    if n_pieces < 1:
        raise BrainlikeError(f"n_pieces must be positive, not {n_pieces}")
    rng = np.random.default_rng(seed)
    pieces = np.empty((n_pieces, k), dtype=np.int64)
    chunk = max(1, 2_000_000 // n_skills)
    for start in range(0, n_pieces, chunk):
        stop = min(n_pieces, start + chunk)
        keys = rng.random((stop - start, n_skills))
        pieces[start:stop] = np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)
    return SkillGraph(pieces, n_skills)


def failure_rates(tuple_ids: np.ndarray, failed: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-node failure rates.

    Parameters
    ----------
    tuple_ids : np.ndarray
        ``(n_pieces, m)`` node ids per piece (from :meth:`SkillGraph.tuple_ids`).
    failed : np.ndarray
        ``(n_pieces,)`` bool, the failed pieces.
    n_nodes : int
        number of possible nodes.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``rates`` ``(n_nodes,)`` float64 (NaN for nodes no piece contains) and ``degrees`` ``(n_nodes,)`` int64.
    """
    deg = np.bincount(tuple_ids.ravel(), minlength=n_nodes)
    bad = np.bincount(tuple_ids[failed].ravel(), minlength=n_nodes)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(deg > 0, bad / np.maximum(deg, 1), np.nan)
    return rates, deg


def competent_fraction(rates: np.ndarray, gamma: float) -> float:
    """Fraction of nodes (with at least one piece) whose failure rate is at most ``gamma``."""
    r = rates[np.isfinite(rates)]
    if r.size == 0:
        raise BrainlikeError("no node has any text piece: increase n_pieces")
    return float(np.mean(r <= gamma + 1e-12))


def random_failures(n_pieces: int, theta: float, rng: np.random.Generator) -> np.ndarray:
    """``(n_pieces,)`` bool: each piece fails independently with probability ``theta``."""
    return rng.random(n_pieces) < theta


def adversarial_failures(tuple_ids: np.ndarray, theta: float, z_mask: np.ndarray,
                         rng: np.random.Generator) -> np.ndarray:
    """Fail the ``round(theta * n_pieces)`` pieces with most nodes in ``Z`` (``z_mask`` ``(n_nodes,)`` bool)."""
    n = tuple_ids.shape[0]
    n_fail = int(round(theta * n))
    hits = z_mask[tuple_ids].sum(axis=1).astype(np.float64)
    order = np.lexsort((rng.random(n), -hits))
    failed = np.zeros(n, dtype=bool)
    failed[order[:n_fail]] = True
    return failed


@dataclass
class SimulationOutcome:
    """One Monte Carlo evaluation on one graph.

    Attributes
    ----------
    competent_fraction : float
        fraction of nodes competent at level ``1 - gamma``.
    failed_fraction : float
        realised fraction of pieces failed.
    worst_alpha : float
        for ``"adversarial"``, the size (fraction of nodes) of the targeted set ``Z`` that did
        most damage (0 for ``"random"``).
    n_nodes : int
        nodes with at least one piece.
    mean_degree : float
        mean pieces per node.
    """

    competent_fraction: float
    failed_fraction: float
    worst_alpha: float
    n_nodes: int
    mean_degree: float


DEFAULT_ALPHAS = np.concatenate([np.geomspace(0.002, 0.5, 14)])


def simulate_competence(graph: SkillGraph, theta: float, gamma: float, kprime: int = 1, mode: str = "random",
                        seed: int = 0, alphas: np.ndarray | None = None,
                        tuple_ids: np.ndarray | None = None) -> SimulationOutcome:
    """Fraction of ``k'``-tuples competent at level ``1 - gamma`` when a fraction ``theta`` of pieces fail.

    ``mode="random"``: independent failures. ``mode="adversarial"``: worst outcome over targeted sets ``Z``
    of sizes ``alphas`` (fractions of the nodes that occur in the graph; default 14 values from 0.002 to
    0.5) and over random failures. ``tuple_ids`` may be passed to reuse :meth:`SkillGraph.tuple_ids`.
    """
    if not 0 <= theta <= 1:
        raise BrainlikeError(f"theta must be in [0, 1], not {theta}")
    if mode not in {"random", "adversarial"}:
        raise BrainlikeError(f"mode must be 'random' or 'adversarial', not {mode!r}")
    rng = np.random.default_rng(seed)
    ids = graph.tuple_ids(kprime) if tuple_ids is None else tuple_ids
    n_nodes = graph.n_nodes(kprime)
    failed = random_failures(graph.n_pieces, theta, rng)
    rates, deg = failure_rates(ids, failed, n_nodes)
    present = np.flatnonzero(deg > 0)
    best = (competent_fraction(rates, gamma), float(failed.mean()), 0.0)
    if mode == "adversarial" and 0 < theta < 1:
        for alpha in (DEFAULT_ALPHAS if alphas is None else np.asarray(alphas, dtype=np.float64)):
            size = int(round(alpha * present.size))
            if size < 1:
                continue
            z = np.zeros(n_nodes, dtype=bool)
            z[rng.choice(present, size=size, replace=False)] = True
            failed_a = adversarial_failures(ids, theta, z, rng)
            rates_a, _ = failure_rates(ids, failed_a, n_nodes)
            frac = competent_fraction(rates_a, gamma)
            if frac < best[0]:
                best = (frac, float(failed_a.mean()), float(alpha))
    return SimulationOutcome(best[0], best[1], best[2], int(present.size), float(deg[present].mean()))


def simulated_concentration(graph: SkillGraph, theta: float, alpha: float, seed: int = 0) -> float:
    """Monte Carlo counterpart of :func:`bounds.adversarial_concentration` on an explicit graph (skills only).

    ``e(Y, Z) / (theta * e(T, Z))`` for a random ``Z`` of ``round(alpha * n_skills)`` skills and the adversarial ``Y``.
    """
    rng = np.random.default_rng(seed)
    z = np.zeros(graph.n_skills, dtype=bool)
    z[rng.choice(graph.n_skills, size=int(round(alpha * graph.n_skills)), replace=False)] = True
    hits = z[graph.pieces].sum(axis=1)
    failed = adversarial_failures(graph.pieces, theta, z, rng)
    return float(hits[failed].sum() / (failed.mean() * hits.sum()))
