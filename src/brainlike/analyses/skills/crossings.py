"""Where the guaranteed competence crosses a level: solved directly, not read off a sweep.

The worst-case guarantees of :mod:`brainlike.analyses.skills.bounds` fall monotonically as the failed fraction
``theta`` of text pieces grows, and ``theta`` falls monotonically with model size through the scaling law.
So the model size at which a guarantee reaches a level (10 %, 50 %, 90 % of skills or ``k'``-tuples) is two
one-dimensional roots: ``theta*`` with ``1 - alpha(theta*) = level`` (Brent's method on ``log theta``), then
``N*`` with ``failures_per_nat * excess(N*, tokens_per_parameter * N*) = theta*`` (Brent's method on
``log N``). Unlike a fixed sweep these points are always finite (the 90 % point of Theorem 14 for triples
lies near 1.5e15 parameters with Chinchilla's law, beyond a 1e8-1e14 sweep).
"""
from __future__ import annotations

import math

import pandas as pd
from scipy.optimize import brentq

from brainlike.analyses.skills.bounds import markov_bound, noncompetent_bound, theorem14_noncompetent_bound
from brainlike.analyses.skills.scaling import ScalingLaw, n_params_for_excess
from brainlike.errors import BrainlikeError

#: method name -> guaranteed competent fraction as a function of (theta, gamma, k, k')
GUARANTEES = {
    "theorem14": lambda th, g, k, kp: 1.0 - theorem14_noncompetent_bound(th, g, k, kp),
    "bound": lambda th, g, k, kp: 1.0 - noncompetent_bound(th, g, k, kp),
    "markov": lambda th, g, k, kp: 1.0 - markov_bound(th, g),
}


def _theta_max(method: str, gamma: float, kprime: int) -> float:
    """The largest ``theta`` with any guarantee (``beta > 1``)."""
    return gamma / kprime if method == "theorem14" else gamma


def theta_at_competence(level: float, gamma: float, k: int, kprime: int = 1, method: str = "theorem14") -> float:
    """The failed fraction ``theta*`` at which the guaranteed competent fraction equals ``level``.

    Parameters
    ----------
    level : float
        fraction of skills (``k' = 1``) or ``k'``-tuples guaranteed competent, in (0, 1).
    gamma : float
        allowed failure rate of a competent node, in (0, 1).
    k, kprime : int
        skills per text piece and tuple size.
    method : str
        ``"theorem14"`` (the paper's Theorem 14), ``"bound"`` (this package's union bound) or ``"markov"``.

    Returns
    -------
    float
        ``theta*`` in (0, gamma) (dimensionless fraction of text pieces); the guarantee is at least ``level``
        for every ``theta <= theta*``.
    """
    if method not in GUARANTEES:
        raise BrainlikeError(f"method must be one of {sorted(GUARANTEES)}, not {method!r}")
    if not 0.0 < level < 1.0:
        raise BrainlikeError(f"level (fraction guaranteed competent) must be in (0, 1), not {level}")
    guarantee = GUARANTEES[method]
    hi = math.log(_theta_max(method, gamma, kprime)) - 1e-9
    lo = math.log(1e-12)

    def f(log_theta: float) -> float:
        return guarantee(math.exp(log_theta), gamma, k, kprime) - level

    if f(lo) <= 0:
        raise BrainlikeError(f"no theta > 1e-12 reaches a guaranteed fraction of {level} ({method}, k'={kprime})")
    return float(math.exp(brentq(f, lo, hi, xtol=1e-13, rtol=1e-12)))


def n_params_at_theta(law: ScalingLaw, theta: float, failures_per_nat: float = 1.0,
                      tokens_per_parameter: float = 20.0) -> float:
    """Model size ``N*`` (parameters, with ``D = tokens_per_parameter * N``) whose failed fraction is ``theta``.

    Solves ``failures_per_nat * (A / N^a + B / D^b) = theta``; the excess loss falls monotonically with
    ``N``. Raises :class:`BrainlikeError` when even a one-parameter model fails less than ``theta``.
    """
    if not 0.0 < theta < 1.0:
        raise BrainlikeError(f"theta must be in (0, 1), not {theta}")
    if failures_per_nat * float(law.excess(1.0, tokens_per_parameter)) < theta:
        raise BrainlikeError(f"theta={theta} is reached below one parameter; use a smaller failures_per_nat")
    return n_params_for_excess(law, theta / failures_per_nat, tokens_per_parameter)


def competence_crossings(law: ScalingLaw, gamma: float, k: int, kprimes, levels=(0.1, 0.5, 0.9),
                         failures_per_nat: float = 1.0, tokens_per_parameter: float = 20.0,
                         methods=("theorem14", "bound", "markov")) -> pd.DataFrame:
    """Model sizes at which each guarantee first reaches each level, for every tuple size.

    Returns
    -------
    pd.DataFrame
        One row per (method, k', level): ``method, kprime, k, gamma, level, theta`` (``theta*``),
        ``excess_loss`` (nats/token, ``theta* / failures_per_nat``), ``n_params`` (``N*``; NaN when the
        law cannot reach that ``theta``),
        ``theta_ratio`` (``theta*`` of single skills over this ``theta*``: the factor by which the failed
        fraction must fall; the paper's Corollary says ``k'``) and ``scale_factor`` (``N*`` over the
        single-skill ``N*`` of the same method and level; NaN when ``k' = 1`` is not among ``kprimes``).
    """
    rows = []
    for method in methods:
        for level in levels:
            for kp in kprimes:
                th = theta_at_competence(level, gamma, k, kp, method)
                try:
                    n = n_params_at_theta(law, th, failures_per_nat, tokens_per_parameter)
                except BrainlikeError:       # a (fitted) law that never, or always, fails that little
                    n = float("nan")
                rows.append({"method": method, "kprime": int(kp), "k": k, "gamma": gamma, "level": float(level),
                             "theta": th, "excess_loss": th / failures_per_nat, "n_params": n})
    out = pd.DataFrame(rows)
    single = out[out["kprime"] == 1].set_index(["method", "level"])
    key = list(zip(out["method"], out["level"]))
    if len(single):
        out["theta_ratio"] = [single["theta"].get(kk, float("nan")) for kk in key] / out["theta"]
        out["scale_factor"] = out["n_params"] / [single["n_params"].get(kk, float("nan")) for kk in key]
    else:
        out["theta_ratio"] = out["scale_factor"] = float("nan")
    return out
