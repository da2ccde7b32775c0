"""Variance partitioning: how much a language-model layer adds beyond low-level control regressors.

Three cross-validated fits on the same folds as :func:`brainlike.analyses.fmri_encoding.encode_layers`
(contiguous test blocks, ``gap`` volumes dropped around them, PCA of the layer fitted on the training
volumes, FIR delays after the reduction):

* controls only (e.g. word rate): :class:`brainlike.encoding.RidgeCV`;
* LM only (the layer's components): :class:`brainlike.encoding.RidgeCV`;
* joint: :class:`brainlike.encoding.BandedRidgeCV` with the bands [controls, LM] (each band its own
  penalty scaling, chosen per target), so a weak band does not drag the other's penalty.

Each fit is scored by the fold-mean R^2 and the fold-mean Pearson r. The R^2 of a test block is
``1 - SS_res / SS_tot`` after centring the predictions on the block's own mean, i.e. without the offset
between the training mean (the intercept) and the block's mean: that offset is slow drift that no
stimulus model predicts, and on the Brennan ROIs it alone drives the plain block R^2 to -1 and below
(it is the same fold-wise mean shift that biases the pooled r, see
:mod:`brainlike.analyses.fmri_encoding`). The LM's unique contribution is ``R2_joint - R2_controls``, the
controls' ``R2_joint - R2_lm``, the shared part ``R2_controls + R2_lm - R2_joint`` (the usual set
algebra; a part can be slightly negative from estimation noise).

Two refitted nulls of ``unique_lm``:

* ``n_shifts``: the *targets* are circularly shifted; the controls and the LM lose their alignment with the
  targets together (all three fits refitted on every copy);
* ``n_feature_shifts`` (stricter): the controls stay aligned with the targets and only the LM's design
  columns are circularly shifted; the joint (banded) fit is refitted on every shift and compared with the
  observed controls-only fit. This is the null of "the LM adds nothing beyond the controls": a target
  driven by the controls keeps its controls R^2 in every null copy.

With a grid of PCA sizes (``options.n_components`` a tuple) the partition uses the largest size (the
banded ridge's penalties regularise it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainlike.analyses.fmri_encoding import (
    FMRIEncodingOptions,
    _with_shifts,
    circular_shifts,
    gapped_folds,
    highpass_dct,
    reduce_and_delay,
)
from brainlike.encoding import BandedRidgeCV, RidgeCV, pearson_r
from brainlike.errors import BrainlikeError

__all__ = ["VariancePartition", "variance_partitioning"]


@dataclass(frozen=True)
class VariancePartition:
    """Cross-validated variance partition per target.

    Attributes
    ----------
    r2_controls, r2_lm, r2_joint : ndarray (n_targets,) float64
        Fold-mean R^2 (unitless, can be negative) of the controls-only, LM-only and joint fits.
    r_controls, r_lm, r_joint : ndarray (n_targets,) float64
        Fold-mean Pearson r of the same fits.
    band_weights : ndarray (n_folds, 2, n_targets) float64
        Joint fit's selected band weighting per fold ([controls, LM], columns sum to 1).
    null_unique_lm : ndarray (n_shifts, n_null_targets) float64
        ``unique_lm`` of every circularly shifted (refitted) copy of the (first ``n_null_targets``)
        targets; empty (0, n_null_targets) without a null.
    shifts : ndarray (n_shifts,) int64
        The circular shifts (volumes) of those copies.
    null_unique_lm_features : ndarray (n_feature_shifts, n_null_targets) float64, optional
        ``r2_joint`` refitted with the LM design columns circularly shifted (controls and targets aligned)
        minus the observed ``r2_controls``: the stricter null of ``unique_lm``.
    feature_shifts : ndarray (n_feature_shifts,) int64, optional
        The circular shifts (volumes) of the LM columns.
    """

    r2_controls: np.ndarray
    r2_lm: np.ndarray
    r2_joint: np.ndarray
    r_controls: np.ndarray
    r_lm: np.ndarray
    r_joint: np.ndarray
    band_weights: np.ndarray
    null_unique_lm: np.ndarray | None = None
    shifts: np.ndarray | None = None
    null_unique_lm_features: np.ndarray | None = None
    feature_shifts: np.ndarray | None = None

    @property
    def unique_lm(self) -> np.ndarray:
        """(n_targets,) R^2 the LM adds beyond the controls: ``r2_joint - r2_controls``."""
        return self.r2_joint - self.r2_controls

    @property
    def unique_controls(self) -> np.ndarray:
        """(n_targets,) ``r2_joint - r2_lm``."""
        return self.r2_joint - self.r2_lm

    def pvalues_unique_lm(self, null: str = "targets") -> np.ndarray:
        """(n_targets,) one-sided empirical p of ``unique_lm`` against a shift null (NaN without one).

        Parameters
        ----------
        null : {"targets", "features"}
            ``"targets"``: the target-shift null (``null_unique_lm``); ``"features"``: the stricter null
            with the controls aligned and the LM columns shifted (``null_unique_lm_features``).
        """
        from brainlike.analyses.inference import empirical_pvalues

        if null not in ("targets", "features"):
            raise BrainlikeError(f"null must be 'targets' or 'features', not {null!r}")
        nul = self.null_unique_lm if null == "targets" else self.null_unique_lm_features
        out = np.full(self.unique_lm.shape, np.nan)
        if nul is not None and len(nul):
            m = nul.shape[1]
            out[:m] = empirical_pvalues(self.unique_lm[:m], nul, axis=0)
        return out

    @property
    def shared(self) -> np.ndarray:
        """(n_targets,) ``r2_controls + r2_lm - r2_joint``."""
        return self.r2_controls + self.r2_lm - self.r2_joint


def _r2(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Offset-free R^2 inside one test block: both series centred on their own block means."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    p = p - p.mean(axis=0) + y.mean(axis=0)
    ss_res = ((y - p) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    out = np.zeros(y.shape[1])
    ok = ss_tot > 0
    out[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    return out


def variance_partitioning(
    lm_features: np.ndarray,
    controls: np.ndarray,
    Y: np.ndarray,
    options: FMRIEncodingOptions = FMRIEncodingOptions(),
    *,
    Y_eval: np.ndarray | None = None,
    n_random: int = 8,
    n_shifts: int = 0,
    n_null_targets: int | None = None,
    n_feature_shifts: int = 0,
) -> VariancePartition:
    """Controls-only, LM-only and joint (banded) cross-validated fits of the same targets.

    Parameters
    ----------
    lm_features : ndarray (n_volumes, p)
        Undelayed TR-level features of one layer (reduced by ``options.reduction`` in each fold).
    controls : ndarray (n_volumes, q) or (n_volumes,)
        Undelayed control regressors shared by all targets (e.g. word rate built from the word times;
        z-scored in each fold, not reduced).
    Y : ndarray (n_volumes, n_targets)
        Targets (any unit).
    options : FMRIEncodingOptions
        Folds, gap, high-pass filter of the targets, delays, reduction and alphas (``n_shifts`` is not
        used).
    Y_eval : ndarray (n_volumes, n_targets), optional
        Scored targets (default ``Y``), as in :func:`~brainlike.analyses.fmri_encoding.encode_layers`.
    n_random : int
        Random band weightings tried by :class:`~brainlike.encoding.BandedRidgeCV`.
    n_shifts : int
        Circularly shifted, refitted copies of the targets for the null of ``unique_lm`` (0: none; shifts
        drawn with ``options.min_shift`` and ``options.seed``, the same as the layer null's for the same
        ``n_shifts``).
    n_null_targets : int, optional
        Only the first ``n_null_targets`` columns of ``Y`` get shifted copies (default: all); the others
        are fitted once, in the same fits (e.g. the group mean with its null beside every subject without
        one: one set of decompositions for both).
    n_feature_shifts : int
        Circular shifts of the LM design columns for the stricter null of ``unique_lm`` (0: none): the
        controls and the targets stay aligned, the joint fit is refitted per shift (one design, hence one
        set of decompositions, per shift and fold). Shifts drawn with ``options.min_shift`` and
        ``options.seed + 1``; only the observed first ``n_null_targets`` targets are refitted.

    Returns
    -------
    VariancePartition
    """
    Y = np.asarray(Y, dtype=np.float32)
    Y = Y[:, None] if Y.ndim == 1 else Y
    n, t = Y.shape
    E = Y if Y_eval is None else np.asarray(Y_eval, dtype=np.float32).reshape(n, -1)
    C = np.asarray(controls, dtype=np.float64).reshape(n, -1) if np.size(controls) else None
    X = np.asarray(lm_features)
    if C is None or X.ndim != 2 or X.shape[0] != n or E.shape != Y.shape:
        raise BrainlikeError(f"lm_features must be (n_volumes={n}, p), controls (n_volumes, q) and Y_eval like Y "
                             f"{Y.shape}; got {X.shape}, {np.shape(controls)}, {E.shape}")
    if options.highpass is not None:
        same = E is Y
        Y = highpass_dct(Y, options.tr, options.highpass)
        E = Y if same else highpass_dct(E, options.tr, options.highpass)
    shifts = circular_shifts(n, n_shifts, options.min_shift, options.seed) if n_shifts else \
        np.zeros(0, dtype=np.int64)
    m = t if n_null_targets is None else int(n_null_targets)
    if not 0 <= m <= t:
        raise BrainlikeError(f"n_null_targets must be between 0 and the {t} targets, got {n_null_targets}")
    same = E is Y
    Y = np.hstack([Y, _with_shifts(Y[:, :m], shifts)[:, m:]])
    E = Y if same else np.hstack([E, _with_shifts(E[:, :m], shifts)[:, m:]])
    T = Y.shape[1]
    q = C.shape[1]
    folds = gapped_folds(np.arange(n), options.n_splits, options.gap)
    alphas = np.asarray(options.alphas)
    acc = {k: np.zeros(T) for k in ("r2c", "r2l", "r2j", "rc", "rl", "rj")}
    weights = np.empty((len(folds), 2, t))
    fshifts = circular_shifts(n, n_feature_shifts, options.min_shift, options.seed + 1) if n_feature_shifts and m else \
        np.zeros(0, dtype=np.int64)
    r2j_f = np.zeros((fshifts.size, m))
    for k, (train, test) in enumerate(folds):
        D, width = reduce_and_delay(X, train, options, extra=C)
        cols = np.arange(D.shape[1])
        is_ctrl = (cols % width) < q
        inner = gapped_folds(train, options.inner_splits, options.gap)
        kw = dict(alphas=alphas, cv=inner, backend=options.backend, memory_budget_gb=options.memory_budget_gb)
        fits = {
            "c": (RidgeCV(**kw), is_ctrl),
            "l": (RidgeCV(**kw), ~is_ctrl),
            "j": (BandedRidgeCV(bands=[np.flatnonzero(is_ctrl), np.flatnonzero(~is_ctrl)], n_random=n_random,
                                random_state=options.seed, **kw), slice(None)),
        }
        for name, (model, sel) in fits.items():
            model.fit(D[train][:, sel], Y[train])
            pred = model.predict(D[test][:, sel])
            acc["r2" + name] += _r2(E[test], pred)
            acc["r" + name] += pearson_r(E[test], pred)
            if name == "j":
                weights[k] = model.band_weights_[:, :t]
        for j, sh in enumerate(fshifts):  # stricter null: LM columns shifted, controls and targets aligned
            Ds = D.copy()
            Ds[:, ~is_ctrl] = np.roll(D[:, ~is_ctrl], int(sh), axis=0)
            model = fits["j"][0].fit(Ds[train], Y[train, :m])
            r2j_f[j] += _r2(E[test, :m], model.predict(Ds[test]))
    K = len(folds)
    avg = {k: v / K for k, v in acc.items()}
    null = (avg["r2j"][t:] - avg["r2c"][t:]).reshape(shifts.size, m)
    return VariancePartition(
        r2_controls=avg["r2c"][:t], r2_lm=avg["r2l"][:t], r2_joint=avg["r2j"][:t],
        r_controls=avg["rc"][:t], r_lm=avg["rl"][:t], r_joint=avg["rj"][:t], band_weights=weights,
        null_unique_lm=null, shifts=shifts,
        null_unique_lm_features=r2j_f / K - avg["r2c"][None, :m] if fshifts.size else None,
        feature_shifts=fshifts if fshifts.size else None)
