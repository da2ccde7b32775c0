"""Figures for the skill analyses (tidy table in, matplotlib Figure out; Agg backend)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from brainlike.plotting import fig_ax  # noqa: E402

_STYLES = {"theorem14": (0, (5, 1, 1, 1)),
           "bound": "-", "simulation_adversarial": "--", "simulation_random": ":", "random_exact": "-.",
           "markov": (0, (1, 3))}
_LABELS = {"theorem14": "Theorem 14 (paper)",
           "bound": "union bound, floor(k/k') (ours)", "simulation_adversarial": "simulation, adversarial",
           "simulation_random": "simulation, random failures", "random_exact": "exact, random failures",
           "markov": "Markov"}


def _fig_ax(ax, size=(6.4, 4.2)):
    return fig_ax(ax, size)


def plot_emergence(emergence: pd.DataFrame, ax=None, methods=("bound", "simulation_adversarial",
                                                              "simulation_random"), title: str | None = None):
    """Fraction of skills / ``k'``-tuples competent at level ``1 - gamma`` against model size (log x).

    Parameters
    ----------
    emergence : pd.DataFrame
        :attr:`TheoryResult.emergence` (``n_params, kprime, method, competent_fraction, sd``,
        ``gamma``).
    methods : tuple of str
        which methods to draw (colour = ``k'``, line style = method).
    """
    own = ax is None
    fig, ax = _fig_ax(ax)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, (kp, dk) in enumerate(emergence.groupby("kprime", sort=True)):
        for method in methods:
            d = dk[dk["method"] == method].sort_values("n_params")
            if d.empty:
                continue
            c = colors[j % len(colors)]
            label = f"k'={kp}, {_LABELS.get(method, method)}"
            ax.plot(d["n_params"], d["competent_fraction"], ls=_STYLES.get(method, "-"), color=c, lw=1.6,
                    label=label)
            if d["sd"].notna().any():
                ax.fill_between(d["n_params"], (d["competent_fraction"] - d["sd"]).clip(0, 1),
                                (d["competent_fraction"] + d["sd"]).clip(0, 1), color=c, alpha=0.12, lw=0)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("model parameters N (D = tokens per parameter × N)")
    gamma = emergence["gamma"].iloc[0] if "gamma" in emergence and len(emergence) else np.nan
    ax.set_ylabel(f"fraction competent (≤ {gamma:g} of pieces failed)")
    ax.set_title(title or "Emergence of skills and skill tuples with scale")
    ax.legend(fontsize=7, frameon=False)
    if own:
        fig.tight_layout()
    return fig


def plot_emergence_panels(emergence: pd.DataFrame, theorem14: pd.DataFrame | None = None,
                          finite_size: pd.DataFrame | None = None, crossings: pd.DataFrame | None = None):
    """Three panels: the worst case, independent failures and the finite-size check.

    (a) the worst case -- the paper's Theorem 14, our union bound and the simulated adversary (tuples need more scale:
    the paper's claim); (b) independent failures -- exact and simulated (no k'-lag); (c) the finite-size check: where
    the exact random-failure competence crosses 10 % and 90 % as the corpus grows (tuples crossing 10 % first is the
    small-graph artefact; the crossings meet).

    Parameters
    ----------
    emergence : pd.DataFrame
        :attr:`TheoryResult.emergence`.
    theorem14 : pd.DataFrame | None
        :attr:`TheoryResult.theorem14` (rows with ``method = "theorem14"``), optional.
    finite_size : pd.DataFrame | None
        :attr:`TheoryResult.finite_size`, optional (panel (c) is left empty without it).
    crossings : pd.DataFrame | None
        :attr:`TheoryResult.crossings`, optional: Theorem 14's 10 % and 90 % points are marked on panel (a)
        (circles and squares, colour = k') with the scale factor over single skills.
    """
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    worst = emergence if theorem14 is None or theorem14.empty else pd.concat(
        [theorem14.assign(sd=np.nan), emergence], ignore_index=True)
    plot_emergence(worst, ax=axes[0], methods=("theorem14", "bound", "simulation_adversarial"),
                   title="(a) worst case (the paper's setting): tuples emerge later")
    if crossings is not None and len(crossings):
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        c14 = crossings[(crossings["method"] == "theorem14") & crossings["level"].isin([0.1, 0.9])]
        for j, (kp, d) in enumerate(c14.groupby("kprime", sort=True)):
            for r in d.itertuples():             # scatter, not lines: ax.lines stays one line per curve
                axes[0].scatter([r.n_params], [r.level], marker="o" if r.level < 0.5 else "s", s=22,
                                facecolors="none", edgecolors=colors[j % len(colors)], zorder=3)
                if kp > 1 and r.scale_factor == r.scale_factor:
                    axes[0].annotate(f"{r.scale_factor:.0f}×", (r.n_params, r.level), fontsize=6,
                                     xytext=(3, -9 if r.level > 0.5 else 3), textcoords="offset points")
        axes[0].set_yticks([0, 0.1, 0.5, 0.9, 1])
        axes[0].grid(axis="y", color="0.88", lw=0.6)
        axes[0].set_xlabel("model parameters N; markers: Theorem 14's 10 % / 90 % points, "
                           "× = scale over single skills", fontsize=7)
    plot_emergence(emergence, ax=axes[1], methods=("random_exact", "simulation_random"),
                   title="(b) independent failures: no k'-lag")
    ax = axes[2]
    if finite_size is not None and len(finite_size):
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for j, (kp, d) in enumerate(finite_size.groupby("kprime", sort=True)):
            d = d.sort_values("n_pieces")
            ax.plot(d["n_pieces"], d["n_params_10"], "-o", color=colors[j % len(colors)], ms=3,
                    label=f"k'={kp}, 10 %")
            ax.plot(d["n_pieces"], d["n_params_90"], "--s", color=colors[j % len(colors)], ms=3,
                    label=f"k'={kp}, 90 %")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7, frameon=False)
    ax.set_xlabel("text pieces in the graph (n_pieces)")
    ax.set_ylabel("N where competence crosses (independent failures)")
    ax.set_title("(c) finite size: crossings meet as the graph grows")
    fig.tight_layout()
    return fig


def plot_competence_curves(curves: pd.DataFrame, ax=None, base_theta: float | None = None):
    """The paper's competence curves: guaranteed fraction of nodes at least ``competence_level`` competent.

    Single skills at ``theta`` and ``k'``-tuples at ``theta / k'`` (one base ``theta``; default the first).
    """
    fig, ax = _fig_ax(ax)
    base = curves["base_theta"].iloc[0] if base_theta is None else base_theta
    d0 = curves[np.isclose(curves["base_theta"], base)]
    for kp, d in d0[d0["method"] == "bound"].groupby("kprime", sort=True):
        d = d.sort_values("competence_level")
        th = d["theta"].iloc[0]
        ax.plot(d["competence_level"], d["competent_fraction"], lw=1.6,
                label=f"k'={kp} at θ={th:.3g}" + (" (θ/k')" if kp > 1 else ""))
    dm = d0[(d0["method"] == "markov") & (d0["kprime"] == d0["kprime"].min())].sort_values("competence_level")
    if not dm.empty:
        ax.plot(dm["competence_level"], dm["competent_fraction"], color="0.5", ls=":", label="Markov, k'=1")
    ax.set_xlabel("competence level 1 − γ")
    ax.set_ylabel("guaranteed fraction of skills / tuples")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Competence curves (base θ = {base:g})")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_scaling_fit(points: pd.DataFrame, ax=None, law=None):
    """Observed losses against model size (colour = log10 tokens) and the fitted law's curves."""
    fig, ax = _fig_ax(ax)
    sc = ax.scatter(points["n_params"], points["loss"], c=np.log10(points["n_tokens"]), cmap="viridis", s=18,
                    label="observed")
    if law is not None:
        grid = np.geomspace(points["n_params"].min(), points["n_params"].max(), 100)
        for d in np.unique(points["n_tokens"]):
            ax.plot(grid, law.loss(grid, d), color=plt.cm.viridis(
                (np.log10(d) - np.log10(points["n_tokens"].min()))
                / max(1e-9, np.ptp(np.log10(points["n_tokens"])))), lw=0.8)
    fig.colorbar(sc, ax=ax, label="log10 training tokens")
    ax.set_xscale("log")
    ax.set_xlabel("model parameters N")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("Scaling-law fit")
    fig.tight_layout()
    return fig


def plot_skillmix_scores(summary: pd.DataFrame, ax=None, metrics=("full_marks", "all_skills", "skill_fraction")):
    """Skill-Mix score against k (mean with confidence interval), one line per (generator, metric).

    Parameters
    ----------
    summary : pd.DataFrame
        :attr:`SkillMixResult.summary` (``generator, k, metric, mean, ci_low, ci_high``).
    """
    fig, ax = _fig_ax(ax)
    d = summary[summary["metric"].isin(metrics)]
    for (gen, metric), g in d.groupby(["generator", "metric"], sort=False):
        g = g.sort_values("k")
        y = g["mean"].to_numpy(dtype=float)
        err = np.vstack([y - g["ci_low"].to_numpy(dtype=float), g["ci_high"].to_numpy(dtype=float) - y])
        ax.errorbar(g["k"], y, yerr=np.nan_to_num(err), marker="o", ms=4, capsize=3, label=f"{gen}: {metric}")
    ax.set_xlabel("k (skills per prompt)")
    ax.set_ylabel("score (mean, 95% CI)")
    ax.set_ylim(-0.02, 1.02)
    ks = sorted(d["k"].unique())
    if ks:
        ax.set_xticks(ks)
    ax.set_title("Skill-Mix")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_skill_usage(skill_points: pd.DataFrame, ax=None, top: int = 30):
    """Fraction of graded items in which each skill was judged used (``skill, used``; ungraded rows skipped)."""
    d = skill_points.dropna(subset=["used"]).groupby("skill")["used"].agg(["mean", "count"])
    d = d.sort_values("mean").tail(top)
    fig, ax = _fig_ax(ax, size=(6.4, max(2.5, 0.22 * len(d) + 1)))
    ax.barh(d.index, d["mean"], color="C0")
    for i, (m, n) in enumerate(zip(d["mean"], d["count"])):
        ax.text(m + 0.01, i, f"n={n}", va="center", fontsize=6)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("fraction of graded items using the skill")
    ax.set_title("Skill usage")
    fig.tight_layout()
    return fig
