"""Chinchilla-style scaling law ``L(N, D) = E + A / N**a + B / D**b`` and the excess loss it implies.

``N`` is the number of model parameters and ``D`` the number of training tokens; losses are in nats per
token. The *excess* (reducible) loss ``L - E`` drives the Arora–Goyal skill theory: it is mapped to the
fraction ``theta`` of text pieces the model fails (:func:`failure_fraction`).

The default parameters are Hoffmann et al. (2022), approach 3: ``E = 1.69, A = 406.4, B = 410.7,
a = 0.34, b = 0.28``. :func:`fit_scaling_law` fits all five parameters to user ``(N, D, loss)`` points with
a robust (Huber) least-squares fit of ``log L`` from several starting points, as Hoffmann et al. did.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import brentq, least_squares, nnls

from brainlike.errors import BrainlikeError


class ScalingLaw(BaseModel):
    """``L(N, D) = E + A / N**a + B / D**b`` (nats per token). Defaults: Chinchilla (Hoffmann et al. 2022)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    E: float = Field(1.69, ge=0, description="irreducible loss (nats/token)")
    A: float = Field(406.4, gt=0, description="parameter-term coefficient")
    B: float = Field(410.7, gt=0, description="data-term coefficient")
    a: float = Field(0.34, gt=0, le=3, description="parameter exponent")
    b: float = Field(0.28, gt=0, le=3, description="data exponent")

    def loss(self, n_params, n_tokens) -> np.ndarray:
        """Predicted loss (nats/token), float64, broadcast over ``n_params`` and ``n_tokens``."""
        return self.E + self.excess(n_params, n_tokens)

    def excess(self, n_params, n_tokens) -> np.ndarray:
        """Excess (reducible) loss ``A / N**a + B / D**b`` in nats/token, float64."""
        n = np.asarray(n_params, dtype=np.float64)
        d = np.asarray(n_tokens, dtype=np.float64)
        if np.any(n <= 0) or np.any(d <= 0):
            raise BrainlikeError("model size N and token count D must be positive")
        return self.A / n ** self.a + self.B / d ** self.b


CHINCHILLA = ScalingLaw()


def failure_fraction(excess_loss, failures_per_nat: float = 1.0) -> np.ndarray:
    """Fraction ``theta`` of text pieces failed, from the excess loss (nats/token).

    ``theta = clip(failures_per_nat * excess_loss, 0, 1)``. With ``failures_per_nat = 1`` this is the bound
    ``P(wrong answer) = 1 - p <= -ln p`` for a cloze answer sampled from the model when the ideal model is
    certain of it, so the excess cross-entropy on cloze answers bounds the error rate (the assumption
    documented in docs/skills.md). ``1 / ln 2`` is the variant for arg-max answers.
    """
    if failures_per_nat <= 0:
        raise BrainlikeError(f"failures_per_nat must be positive, not {failures_per_nat}")
    x = np.asarray(excess_loss, dtype=np.float64)
    return np.clip(failures_per_nat * x, 0.0, 1.0)


def compute_optimal_tokens(n_params, tokens_per_parameter: float = 20.0) -> np.ndarray:
    """Training tokens ``D = tokens_per_parameter * N`` (Chinchilla's rule of thumb: 20)."""
    return np.asarray(n_params, dtype=np.float64) * tokens_per_parameter


def n_params_for_excess(law: ScalingLaw, excess: float, tokens_per_parameter: float = 20.0,
                        at_least: float = 1.0) -> float:
    """The model size ``N >= at_least`` (parameters, ``D = tokens_per_parameter * N``) whose excess loss is ``excess``.

    Brent's method on ``log N`` (the excess loss falls monotonically with ``N``), the upper end of the bracket
    widened by decades of ``e^10`` until it holds the root. ``excess`` in nats/token; a size below ``at_least``
    is not searched (the caller checks that ``at_least`` is not already past the root).
    """
    target = math.log(excess)

    def f(log_n: float) -> float:
        n = math.exp(log_n)
        return math.log(float(law.excess(n, n * tokens_per_parameter))) - target

    lo = math.log(at_least)
    hi = lo + 10.0
    while f(hi) > 0:
        hi += 10.0
        if hi > lo + 700:
            raise BrainlikeError(f"the scaling law never brings the excess loss down to {excess:.3g} nats/token")
    return float(math.exp(brentq(f, lo, hi, xtol=1e-12)))


def scale_for_excess_ratio(law: ScalingLaw, n_params: float, ratio: float,
                           tokens_per_parameter: float = 20.0) -> float:
    """The model size ``N'`` whose excess loss is ``excess(N) / ratio`` (``D = tokens_per_parameter * N``).

    Arora & Goyal: reducing the excess loss (hence ``theta``) by a factor ``k'`` makes the model as competent
    on ``k'``-tuples of skills as it was on single skills. With Chinchilla's law one halving costs about
    an order of magnitude in ``N``.
    """
    if ratio < 1:
        raise BrainlikeError(f"ratio must be >= 1, not {ratio}")
    if ratio == 1:
        return float(n_params)
    target = float(law.excess(n_params, n_params * tokens_per_parameter)) / ratio
    return n_params_for_excess(law, target, tokens_per_parameter, at_least=n_params)


def _grid_starts(N, D, L, exponent_bounds, n_grid: int = 24, n_keep: int = 4) -> list[tuple]:
    """Starting points by variable projection.

    For each (a, b) on a grid, ``E, A, B`` by non-negative least squares of the relative error (linear for fixed
    exponents); the ``n_keep`` best become starts.
    """
    grid = np.linspace(max(exponent_bounds[0], 0.05), min(exponent_bounds[1], 1.5), n_grid)
    cands = []
    for a in grid:
        xa = N ** -a
        for b in grid:
            X = np.column_stack([np.ones_like(L), xa, D ** -b]) / L[:, None]
            coef, rnorm = nnls(X, np.ones_like(L))
            cands.append((rnorm, a, b, coef))
    cands.sort(key=lambda c: c[0])
    out = []
    for _, a, b, (E, A, B) in cands[:n_keep]:
        E = float(np.clip(E, 1e-3 * L.min(), 0.999 * L.min()))
        A, B = max(A, 1e-6), max(B, 1e-6)
        out.append((np.log(E), np.log(A), np.log(B), a, b))
    return out


@dataclass
class ScalingLawFit:
    """A scaling law fitted to observed points.

    Attributes
    ----------
    law : ScalingLaw
        the fitted parameters.
    points : pd.DataFrame
        one row per observation: ``n_params, n_tokens, loss, predicted, excess_predicted,
        log_residual`` (``log(predicted) - log(loss)``).
    rmse_log : float
        root-mean-square of the log residuals.
    n_starts : int
        number of optimiser starting points tried.
    """

    law: ScalingLaw
    points: pd.DataFrame
    rmse_log: float
    n_starts: int


def fit_scaling_law(n_params, n_tokens, loss, *, huber_delta: float = 1e-3,
                    exponent_bounds: tuple[float, float] = (0.01, 2.0)) -> ScalingLawFit:
    """Fit ``E, A, B, a, b`` to observed ``(N, D, loss)`` points.

    Parameters
    ----------
    n_params : array-like of shape (n_points,)
        ``(n_points,)`` model sizes (parameters).
    n_tokens : array-like of shape (n_points,)
        ``(n_points,)`` training tokens.
    loss : array-like of shape (n_points,)
        ``(n_points,)`` final losses in nats/token.
    huber_delta : float
        Huber threshold on the log-loss residual (Hoffmann et al. use 1e-3).

    Minimises the Huber loss of ``log L_pred - log L`` (``E, A, B`` in log space) with scipy's
    ``least_squares`` from 4 starting points found by variable projection (a grid over the exponents with
    ``E, A, B`` by non-negative least squares); returns the best. At least 5 points with two or more
    distinct ``N`` and ``D`` are needed, and in practice a range of both (a decade or more) for the
    exponents to be identifiable.
    """
    N = np.asarray(n_params, dtype=np.float64).reshape(-1)
    D = np.asarray(n_tokens, dtype=np.float64).reshape(-1)
    L = np.asarray(loss, dtype=np.float64).reshape(-1)
    if not (N.size == D.size == L.size):
        raise BrainlikeError(f"n_params, n_tokens and loss must have the same length ({N.size}, {D.size}, {L.size})")
    if N.size < 5:
        raise BrainlikeError(f"fitting 5 scaling-law parameters needs at least 5 points, got {N.size}")
    if not (np.isfinite(N).all() and np.isfinite(D).all() and np.isfinite(L).all()):
        raise BrainlikeError("scaling-law points contain NaN or inf")
    if (N <= 0).any() or (D <= 0).any() or (L <= 0).any():
        raise BrainlikeError("scaling-law points must have positive N, D and loss")
    if np.unique(N).size < 2 or np.unique(D).size < 2:
        raise BrainlikeError("scaling-law points need at least two distinct N and two distinct D values")
    logN, logD, logL = np.log(N), np.log(D), np.log(L)

    def residual(p: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            pred = np.exp(p[0]) + np.exp(p[1] - p[3] * logN) + np.exp(p[2] - p[4] * logD)
            r = np.log(pred) - logL
        return np.nan_to_num(r, nan=1e6, posinf=1e6, neginf=-1e6)

    lo = [-np.inf, -np.inf, -np.inf, exponent_bounds[0], exponent_bounds[0]]
    hi = [np.log(L.min()), np.inf, np.inf, exponent_bounds[1], exponent_bounds[1]]
    starts = _grid_starts(N, D, L, exponent_bounds)
    best = None
    n_starts = 0
    for s in starts:
        n_starts += 1
        x0 = np.clip(np.array(s, dtype=np.float64), np.array(lo) + 1e-9, np.array(hi) - 1e-9)
        try:
            res = least_squares(residual, x0, bounds=(lo, hi), loss="huber", f_scale=huber_delta, max_nfev=2000)
        except (ValueError, FloatingPointError):
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        raise BrainlikeError("the scaling-law fit failed from every starting point")
    p = best.x
    law = ScalingLaw(E=float(np.exp(p[0])), A=float(np.exp(p[1])), B=float(np.exp(p[2])), a=float(p[3]),
                     b=float(p[4]))
    pred = law.loss(N, D)
    table = pd.DataFrame({"n_params": N, "n_tokens": D, "loss": L, "predicted": pred,
                          "excess_predicted": pred - law.E, "log_residual": np.log(pred) - logL})
    return ScalingLawFit(law, table, float(np.sqrt(np.mean(table["log_residual"] ** 2))), n_starts)
