"""Emergence of skills and skill tuples as models scale (Arora & Goyal 2023): configuration, tables, entry point.

Pipeline: model size ``N`` (with ``D = tokens_per_parameter * N``) -> scaling-law excess loss ``delta``
(nats/token) -> fraction of text pieces failed ``theta = clip(failures_per_nat * delta, 0, 1)`` -> fraction of
skills and of ``k'``-tuples competent at level ``1 - gamma``, by the paper's worst-case bound, by Markov's
inequality, by the exact random-failure formula, and by Monte Carlo on explicit random graphs (random and
adversarial failures). See docs/skills.md for the formulas and assumptions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm.auto import tqdm

from brainlike.analyses.skills.bounds import (
    markov_bound,
    noncompetent_bound,
    random_failure_competence,
    theorem14_noncompetent_bound,
)
from brainlike.analyses.skills.crossings import competence_crossings
from brainlike.analyses.skills.graph import random_skill_graph, simulate_competence
from brainlike.analyses.skills.scaling import (
    ScalingLaw,
    ScalingLawFit,
    compute_optimal_tokens,
    failure_fraction,
    fit_scaling_law,
    scale_for_excess_ratio,
)
from brainlike.errors import BrainlikeError

METHODS = ("bound", "markov", "random_exact", "simulation_random", "simulation_adversarial")


class ScalingPoint(BaseModel):
    """One observed training run: parameters, training tokens, final loss (nats/token)."""

    model_config = ConfigDict(extra="forbid")
    n_params: float = Field(gt=0)
    n_tokens: float = Field(gt=0)
    loss: float = Field(gt=0)


class TheoryConfig(BaseModel):
    """Settings of :func:`run_theory` (all optional; defaults reproduce the paper's setting with Chinchilla).

    Attributes
    ----------
    scaling_law : ScalingLaw
        ``L(N, D) = E + A/N^a + B/D^b`` parameters (ignored when points to fit are given).
    fit_points, fit_points_file : list[ScalingPoint] and Path, optional
        observed ``(n_params, n_tokens, loss)`` runs (a CSV or parquet file with
        those columns) to fit the law with scipy instead.
    tokens_per_parameter : float
        ``D / N`` along the scale sweep (Chinchilla-optimal: 20).
    n_params_min, n_params_max, n_scales : float, float and int
        the model sizes swept (log-spaced; default 1e8-1e16, 4 per decade, so that the sweep contains
        Theorem 14's 90 % points for pairs and triples, 3.3e14 and 1.5e15 with the defaults; the
        :attr:`TheoryResult.crossings` table solves for them whatever the sweep).
    failures_per_nat : float
        ``theta = failures_per_nat * excess loss`` (clipped to [0, 1]).
    gamma : float
        failure rate a competent skill may have (competence level ``1 - gamma``).
    n_skills, n_pieces, k : int
        the random skill graph (each of ``n_pieces`` text pieces needs ``k`` of the
        ``n_skills`` skills); the exact random-failure formula uses this size. The default (20 million
        pieces; a triple then has ~40 000 pieces) is large enough that the small-graph artefact (tuples
        crossing 10 % before single skills, see :attr:`TheoryResult.finite_size`) is gone (< 0.001
        decade; 0.04 decade at 2 million pieces, 0.42 at 20 000).
    simulation_n_pieces : int | None
        pieces of the explicit Monte Carlo graphs (default ``min(n_pieces, 20000)``:
        the adversarial search costs ~25 s per scale and tuple size at 2 million pieces).
    kprimes : list[int]
        tuple sizes ``k'`` to report (1 = single skills); each ``<= k``.
    curve_thetas : list[float]
        failure fractions for the competence-curve figure (single skills at ``theta``,
        ``k'``-tuples at ``theta / k'``).
    reference_n_params : float
        model size from which the scale-up table starts.
    n_graphs : int
        Monte Carlo graphs per scale; ``simulate`` / ``adversarial`` switch simulations off.
    finite_size_pieces : list[int]
        corpus sizes ``n_pieces`` of the finite-size table (exact random-failure
        formula on ``n_skills`` skills; empty list = no table).
    """

    model_config = ConfigDict(extra="forbid")

    scaling_law: ScalingLaw = Field(default_factory=ScalingLaw)
    fit_points: list[ScalingPoint] | None = None
    fit_points_file: Path | None = None
    tokens_per_parameter: float = Field(20.0, gt=0)
    n_params_min: float = Field(1e8, gt=0)
    n_params_max: float = Field(1e16, gt=0)
    n_scales: int = Field(33, ge=2, le=500)
    failures_per_nat: float = Field(1.0, gt=0)
    gamma: float = Field(0.25, gt=0, lt=1)
    n_skills: int = Field(40, ge=2)
    n_pieces: int = Field(20_000_000, ge=10)
    simulation_n_pieces: int | None = Field(None, ge=10)
    k: int = Field(6, ge=1)
    kprimes: list[int] = Field(default_factory=lambda: [1, 2, 3])
    curve_thetas: list[float] = Field(default_factory=lambda: [0.1, 0.05])
    n_curve_points: int = Field(40, ge=2)
    reference_n_params: float = Field(7e10, gt=0)
    n_graphs: int = Field(2, ge=1)
    finite_size_pieces: list[int] = Field(default_factory=lambda: [2_000, 20_000, 200_000, 2_000_000, 20_000_000])
    simulate: bool = True
    adversarial: bool = True
    seed: int = 0
    progress: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> TheoryConfig:
        if self.k > self.n_skills:
            raise ValueError(f"k={self.k} skills per text piece but only n_skills={self.n_skills}")
        bad = [kp for kp in self.kprimes if not 1 <= kp <= self.k]
        if bad or not self.kprimes:
            raise ValueError(f"kprimes must be non-empty and within 1..k={self.k}; got {self.kprimes}")
        if self.n_params_min >= self.n_params_max:
            raise ValueError("n_params_min must be below n_params_max")
        if any(n < 10 for n in self.finite_size_pieces):
            raise ValueError(f"finite_size_pieces must be at least 10 each; got {self.finite_size_pieces}")
        if any(not 0 < t < 1 for t in self.curve_thetas):
            raise ValueError(f"curve_thetas must be in (0, 1); got {self.curve_thetas}")
        return self


@dataclass
class TheoryResult:
    """Tables of :func:`run_theory` (tidy, one row per observation).

    Attributes
    ----------
    law : ScalingLaw
        the scaling law used (given or fitted).
    fit : ScalingLawFit | None
        the fit, when points were given.
    emergence : pd.DataFrame
        one row per (scale, k', method): ``n_params, n_tokens, loss, excess_loss, theta, gamma, k,
        kprime, method, competent_fraction, sd, n_graphs`` (``sd`` across Monte Carlo graphs, NaN for
        closed forms).
    curves : pd.DataFrame
        one row per (theta, k', gamma, method): ``theta, kprime, k, gamma, competence_level,
        method, competent_fraction`` (the paper's competence curves; ``method`` "bound" or "markov").
    thresholds : pd.DataFrame
        one row per (k', method): ``n_params_10, n_params_50, n_params_90`` (where the competent
        fraction first crosses 10/50/90 %; NaN if it never does or is already above at the smallest
        scale) and ``width_decades`` (log10 of 90 % / 10 %).
    scale_up : pd.DataFrame
        one row per k': ``kprime, n_params_ref, excess_ref, n_params_needed, excess_needed,
        scale_factor`` (size at which the excess loss is ``1/k'`` of the reference's), and
        ``single_skill_bound_ref`` / ``tuple_bound_needed`` (guaranteed competent fractions, our bound) and
        ``tuple_theorem14_ref`` / ``tuple_theorem14_needed`` (the paper's Theorem 14 at the reference size
        and at the size needed: the corollary says the latter is about ``single_skill_bound_ref``).
    theorem14 : pd.DataFrame
        one row per (scale, k'): the paper's Theorem 14 guarantee, ``n_params, theta, gamma, k,
        kprime, beta`` (``gamma / (k' theta)``), ``alpha`` (fraction of tuples that may fail more than
        ``gamma``), ``competent_fraction`` (``1 - alpha``), ``method = "theorem14"``. Its crossings are
        in :attr:`thresholds` too (method ``theorem14``).
    crossings : pd.DataFrame
        one row per (method, k', level): the model size at which the worst-case guarantee (``theorem14``,
        ``bound``, ``markov``) reaches 10 / 50 / 90 % competent, solved directly (always finite; see
        :func:`crossings.competence_crossings`), with ``theta_ratio`` and ``scale_factor`` against single skills.
    finite_size : pd.DataFrame
        one row per (n_pieces, k'): ``n_skills, n_pieces, kprime, mean_degree`` (pieces per
        tuple), ``n_params_10/50/90`` (crossings of the exact random-failure competence) and
        ``log10_lead_10`` (``log10`` of the single-skill over the tuple 10 % crossing: > 0 means the
        tuples reach 10 % *earlier*, the finite-size artefact).
    """

    config: TheoryConfig
    law: ScalingLaw
    fit: ScalingLawFit | None
    emergence: pd.DataFrame
    curves: pd.DataFrame
    thresholds: pd.DataFrame
    scale_up: pd.DataFrame
    theorem14: pd.DataFrame = field(default_factory=pd.DataFrame)
    finite_size: pd.DataFrame = field(default_factory=pd.DataFrame)
    crossings: pd.DataFrame = field(default_factory=pd.DataFrame)
    extra: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The result tables by table name."""
        out = {"theory_emergence": self.emergence, "theory_curves": self.curves,
               "theory_thresholds": self.thresholds, "theory_scale_up": self.scale_up,
               "theory_theorem14": self.theorem14}
        if len(self.crossings):
            out["theory_crossings"] = self.crossings
        if len(self.finite_size):
            out["theory_finite_size"] = self.finite_size
        if self.fit is not None:
            out["theory_scaling_fit"] = self.fit.points
        return out

    def figures(self) -> dict:
        """Matplotlib figures by name (emergence, competence curves, scaling fit when fitted)."""
        from brainlike.analyses.skills.plots import (
            plot_competence_curves,
            plot_emergence_panels,
            plot_scaling_fit,
        )

        figs = {"theory_emergence": plot_emergence_panels(self.emergence, self.theorem14, self.finite_size,
                                                          self.crossings),
                "theory_competence_curves": plot_competence_curves(self.curves)}
        if self.fit is not None:
            figs["theory_scaling_fit"] = plot_scaling_fit(self.fit.points, law=self.law)
        return figs

    def save(self, output_dir: str | Path, figures: bool = True) -> Path:
        """Write every table as parquet (and figures as PNG) into ``output_dir`` (crash-safe writes).

        Raises
        ------
        BrainlikeError
            ``output_dir`` cannot be written (read-only, a file, disk full).
        """
        from brainlike.fileio import atomic_write, atomic_write_text, ensure_writable_dir

        out = ensure_writable_dir(output_dir, "skill-theory output folder")
        for name, table in self.tables().items():
            atomic_write(out / f"{name}.parquet", lambda p, t=table: t.to_parquet(p, index=False))
        atomic_write_text(out / "theory_config.json", self.config.model_dump_json(indent=2))
        if figures:
            import matplotlib.pyplot as plt

            for name, fig in self.figures().items():
                atomic_write(out / f"{name}.png", lambda p, fig=fig: fig.savefig(p, format="png"))
                plt.close(fig)
        return out


def _points(config: TheoryConfig) -> pd.DataFrame | None:
    frames = []
    if config.fit_points:
        frames.append(pd.DataFrame([p.model_dump() for p in config.fit_points]))
    if config.fit_points_file is not None:
        path = Path(config.fit_points_file)
        if not path.exists():
            raise BrainlikeError(f"fit_points_file not found: {path}")
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        missing = {"n_params", "n_tokens", "loss"} - set(df.columns)
        if missing:
            raise BrainlikeError(f"{path}: missing columns {sorted(missing)} (need n_params, n_tokens, loss)")
        frames.append(df[["n_params", "n_tokens", "loss"]])
    return pd.concat(frames, ignore_index=True) if frames else None


def competence_curves(thetas, kprimes, k: int, gammas: np.ndarray | None = None) -> pd.DataFrame:
    """The paper's competence curves: guaranteed fraction of nodes competent at level ``1 - gamma``.

    For each base ``theta`` in ``thetas`` and ``k'`` in ``kprimes``, single skills are evaluated at ``theta`` and
    ``k'``-tuples at ``theta / k'`` (the excess loss after the scale-up of Corollary 13). Returns one row per
    (theta, kprime, gamma, method) with ``base_theta, theta, kprime, k, gamma, competence_level, method,
    competent_fraction``.
    """
    rows = []
    for base in thetas:
        g = np.linspace(min(0.999, base * 1.05), 0.6, 40) if gammas is None else np.asarray(gammas, float)
        for kp in kprimes:
            th = base / kp
            for gamma in g:
                if not 0 < gamma < 1:
                    continue
                rows.append((base, th, kp, k, gamma, 1 - gamma, "bound",
                             1 - noncompetent_bound(th, gamma, k, kp)))
                rows.append((base, th, kp, k, gamma, 1 - gamma, "markov", 1 - markov_bound(th, gamma)))
    return pd.DataFrame(rows, columns=["base_theta", "theta", "kprime", "k", "gamma", "competence_level", "method",
                                       "competent_fraction"])


def theorem14_table(sizes, thetas, gamma: float, k: int, kprimes) -> pd.DataFrame:
    """The paper's Theorem 14 guarantee along the scale sweep (see :attr:`TheoryResult.theorem14`).

    Parameters
    ----------
    sizes : array-like of shape (n_scales,)
        ``(n_scales,)`` model sizes (parameters).
    thetas : array-like of shape (n_scales,)
        ``(n_scales,)`` failed fraction of text pieces at each size.
    """
    rows = []
    for n, th in zip(np.asarray(sizes, float), np.asarray(thetas, float)):
        for kp in kprimes:
            a = theorem14_noncompetent_bound(float(th), gamma, k, kp)
            rows.append({"n_params": float(n), "theta": float(th), "gamma": gamma, "k": k, "kprime": kp,
                         "beta": gamma / (kp * th) if th > 0 else np.inf, "alpha": a, "competent_fraction": 1 - a,
                         "method": "theorem14"})
    return pd.DataFrame(rows)


def finite_size_table(sizes, thetas, gamma: float, k: int, kprimes, n_skills: int, pieces) -> pd.DataFrame:
    """Emergence crossings of the exact random-failure competence as a function of the corpus size.

    With independent failures a node of degree ``d`` is competent when ``Binomial(d, theta) <= gamma d``; a
    ``k'``-tuple has ``C(k, k') / C(n_skills, k')`` of the pieces, far fewer than a skill, so on a small corpus
    its failure rate is noisy and some tuples are "competent" by luck well before ``theta`` drops below
    ``gamma``: the tuples' 10 % crossing comes *before* the skills'. As ``n_pieces`` grows every node's rate
    concentrates at ``theta`` and all crossings meet at ``theta = gamma``.

    Returns
    -------
    pd.DataFrame
        One row per (n_pieces, k'), see :attr:`TheoryResult.finite_size`.
    """
    import math

    rows = []
    for n_pieces in pieces:
        curve = []
        for n, th in zip(np.asarray(sizes, float), np.asarray(thetas, float)):
            for kp in kprimes:
                curve.append({"n_params": float(n), "kprime": kp, "method": "random_exact",
                              "competent_fraction": random_failure_competence(float(th), gamma, n_skills,
                                                                              int(n_pieces), k, kp)})
        th_tab = emergence_thresholds(pd.DataFrame(curve)).set_index("kprime")
        for kp in kprimes:
            deg = n_pieces * math.comb(k, kp) / math.comb(n_skills, kp)
            rows.append({"n_skills": n_skills, "n_pieces": int(n_pieces), "kprime": kp, "mean_degree": deg,
                         **{c: float(th_tab.loc[kp, c]) for c in ("n_params_10", "n_params_50", "n_params_90")},
                         "log10_lead_10": float(np.log10(th_tab.loc[1, "n_params_10"] / th_tab.loc[kp, "n_params_10"]))
                         if 1 in th_tab.index else np.nan})
    return pd.DataFrame(rows)


def emergence_thresholds(emergence: pd.DataFrame, levels=(0.1, 0.5, 0.9)) -> pd.DataFrame:
    """Model sizes at which the competent fraction first crosses ``levels`` (log-linear interpolation)."""
    rows = []
    for (kp, method), df in emergence.groupby(["kprime", "method"], sort=True):
        df = df.sort_values("n_params")
        x, y = np.log10(df["n_params"].to_numpy()), df["competent_fraction"].to_numpy()
        vals = {}
        for lev in levels:
            above = np.flatnonzero(y >= lev)
            if above.size == 0:
                vals[lev] = np.nan
            elif above[0] == 0:
                vals[lev] = 10 ** x[0] if y[0] == lev else np.nan
            else:
                i = above[0]
                t = (lev - y[i - 1]) / (y[i] - y[i - 1])
                vals[lev] = 10 ** (x[i - 1] + t * (x[i] - x[i - 1]))
        rows.append({"kprime": kp, "method": method, **{f"n_params_{int(lev * 100)}": v for lev, v in vals.items()}})
    out = pd.DataFrame(rows)
    if {"n_params_10", "n_params_90"} <= set(out.columns):
        out["width_decades"] = np.log10(out["n_params_90"] / out["n_params_10"])
    return out


def run_theory(config: TheoryConfig | dict | None = None) -> TheoryResult:
    """Emergence curves for skills and skill tuples as model scale grows (see :class:`TheoryResult`)."""
    if config is None:
        config = TheoryConfig()
    elif not isinstance(config, TheoryConfig):
        from brainlike.config import validate_config

        config = validate_config(TheoryConfig, config, source="skill_theory", what="skill_theory settings",
                                 prefix="skill_theory")
    pts = _points(config)
    fit = None
    law = config.scaling_law
    if pts is not None:
        fit = fit_scaling_law(pts["n_params"], pts["n_tokens"], pts["loss"])
        law = fit.law
    tpp = config.tokens_per_parameter
    sizes = np.geomspace(config.n_params_min, config.n_params_max, config.n_scales)
    tokens = compute_optimal_tokens(sizes, tpp)
    excess = law.excess(sizes, tokens)
    thetas = failure_fraction(excess, config.failures_per_nat)
    gamma, k = config.gamma, config.k

    graphs = []
    if config.simulate:
        sim_pieces = config.simulation_n_pieces or min(config.n_pieces, 20_000)
        graphs = [random_skill_graph(config.n_skills, sim_pieces, k, seed=config.seed + 1000 * g)
                  for g in range(config.n_graphs)]
    ids = {(g, kp): graph.tuple_ids(kp) for g, graph in enumerate(graphs) for kp in config.kprimes}

    rows = []
    base = dict(gamma=gamma, k=k)
    for i in tqdm(range(len(sizes)), desc="skill theory", unit="scale", disable=not config.progress, leave=False):
        n, d, ex, th = float(sizes[i]), float(tokens[i]), float(excess[i]), float(thetas[i])
        common = dict(n_params=n, n_tokens=d, loss=law.E + ex, excess_loss=ex, theta=th, **base)
        for kp in config.kprimes:
            closed = {"bound": 1 - noncompetent_bound(th, gamma, k, kp),
                      "markov": 1 - markov_bound(th, gamma),
                      "random_exact": random_failure_competence(th, gamma, config.n_skills, config.n_pieces, k, kp)}
            for method, val in closed.items():
                rows.append({**common, "kprime": kp, "method": method, "competent_fraction": val, "sd": np.nan,
                             "n_graphs": 0, "graph_pieces": config.n_pieces if method == "random_exact" else 0})
            modes = ["random"] + (["adversarial"] if config.adversarial else [])
            for mode in modes if graphs else []:
                vals = [simulate_competence(graph, th, gamma, kp, mode=mode, seed=config.seed + 7919 * g + i,
                                            tuple_ids=ids[(g, kp)]).competent_fraction
                        for g, graph in enumerate(graphs)]
                rows.append({**common, "kprime": kp, "method": f"simulation_{mode}",
                             "competent_fraction": float(np.mean(vals)),
                             "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else np.nan, "n_graphs": len(vals),
                             "graph_pieces": graphs[0].n_pieces})
    emergence = pd.DataFrame(rows)
    curves = competence_curves(config.curve_thetas, config.kprimes, k)
    crossings = competence_crossings(law, gamma, k, config.kprimes, (0.1, 0.5, 0.9), config.failures_per_nat, tpp)
    t14 = theorem14_table(sizes, thetas, gamma, k, config.kprimes)
    finite = finite_size_table(sizes, thetas, gamma, k, config.kprimes, config.n_skills, config.finite_size_pieces)

    n0 = config.reference_n_params
    ex0 = float(law.excess(n0, n0 * tpp))
    th0 = float(failure_fraction(ex0, config.failures_per_nat))
    su = []
    for kp in config.kprimes:
        n1 = scale_for_excess_ratio(law, n0, kp, tpp)
        ex1 = float(law.excess(n1, n1 * tpp))
        th1 = float(failure_fraction(ex1, config.failures_per_nat))
        su.append({"kprime": kp, "n_params_ref": n0, "excess_ref": ex0, "theta_ref": th0, "n_params_needed": n1,
                   "excess_needed": ex1, "theta_needed": th1, "scale_factor": n1 / n0, "gamma": gamma,
                   "single_skill_bound_ref": 1 - noncompetent_bound(th0, gamma, k, 1),
                   "tuple_bound_needed": 1 - noncompetent_bound(th1, gamma, k, kp),
                   "tuple_theorem14_ref": 1 - theorem14_noncompetent_bound(th0, gamma, k, kp),
                   "tuple_theorem14_needed": 1 - theorem14_noncompetent_bound(th1, gamma, k, kp)})
    thresholds = emergence_thresholds(pd.concat([emergence, t14], ignore_index=True))
    return TheoryResult(config, law, fit, emergence, curves, thresholds, pd.DataFrame(su), t14, finite, crossings)

