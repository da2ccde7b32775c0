"""Cross-validated fMRI encoding at three levels, with a refitted circular-shift null in the same fit.

Per layer, for each outer fold (contiguous test block, ``gap`` volumes dropped from training on each side):

0. the targets are high-pass filtered (SPM's DCT filter, 128 s by default: slow drifts would survive the
   circular shifts and bias the null upwards);
1. the layer's *undelayed* TR-level features ``(n_volumes, p)`` (Lanczos-downsampled word features,
   e.g. ``fmri_design_layers(..., delays=(0,), trim_start=0, trim_end=0).X``) are z-scored with the
   training volumes' statistics and reduced by PCA fitted on the training volumes only (a fixed size, or a
   grid of sizes chosen per target with alpha inside the inner CV: :func:`fit_nested_components`);
2. the FIR delays are applied *after* the reduction, on the whole time series of components
   (``n_components * n_delays`` columns instead of ``p * n_delays``: the PCA is fitted once per fold on
   ``p`` columns, the delayed copies of a component share its loading, and the delay of a test volume
   reaches back into stimulus time only, never into a response);
3. ridge with one alpha per target (:class:`brainlike.encoding.RidgeCV`, inner contiguous folds of the
   training volumes, with the same gap) predicts the test block;
4. the score of a fold is Pearson r inside the test block; the **headline score is the mean over folds**
   (``LayerScores.scores``). The r of all held-out predictions concatenated (``pooled_r``) is kept as a
   labelled extra only: every fold's predictions carry that fold's training mean, which is
   anti-correlated with the test block's own mean, so on autocorrelated data its null mean is strongly
   negative (about -0.2 to -0.45 on the Brennan ROIs).

The null: ``n_shifts`` circular shifts of the targets (never of the design) by at least ``min_shift``
volumes from zero, one shift per null copy shared by all targets (all subjects and ROIs keep their
mutual correlation), the same shifts for every layer. The shifted copies are extra target columns of the
same fit: one decomposition per fold serves the observed and all null targets, and every null copy is
refitted (alpha selection included) exactly like the observed one.

Three levels (:func:`encode_group`, :func:`encode_single`, :func:`encode_between`) take the recordings as
``(n_subjects, n_volumes, n_rois)``; :func:`encode_layers` is the array-level engine under all three.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from brainlike.encoding import RidgeCV, contiguous_folds, pearson_r
from brainlike.errors import BrainlikeError

__all__ = [
    "FMRIEncodingOptions",
    "LayerScores",
    "circular_shifts",
    "encode_between",
    "encode_group",
    "encode_layers",
    "encode_single",
    "fit_nested_components",
    "gapped_folds",
    "highpass_dct",
    "reduce_and_delay",
    "zscore_subjects",
]

_LEVELS = ("group", "single", "between", "custom")


@dataclass(frozen=True)
class FMRIEncodingOptions:
    """Options of the cross-validated fMRI encoding and its null.

    Attributes
    ----------
    n_splits : int
        Outer contiguous folds (default 5: test blocks of ~72 volumes = 2.4 min on Brennan's 362).
    gap : int
        Volumes dropped from training on each side of a test block (and of every inner validation
        block). Default 5 (10 s at TR = 2 s, about the length of the BOLD response to a word). On the
        Brennan ROIs the fast (haemodynamic) part of the autocorrelation has decayed by then (0.73 at
        lag 1, 0.33 at lag 5; a slow-drift tail of ~0.22 remains at lag 15 that no practical gap
        removes); measured null mean of the headline score on 27 subjects x 6 ROIs x 200 shifts
        (stories260k layer 4): +0.0037 with gap 0, +0.0026 with 2, +0.0015 with 5, +0.0005 with 10,
        false-positive rate .052-.053 in all four.
    tr : float
        Repetition time, seconds (only used to turn ``highpass`` into a number of DCT regressors).
    highpass : float or None
        High-pass cutoff of the targets, seconds (SPM's discrete-cosine filter, :func:`highpass_dct`;
        default 128 s as in SPM; None: off). Needed on the Brennan recording: slow drifts shared by the targets and
        the features survive a circular shift (a shifted trend is still a trend) and give the null a
        positive mean (SmolLM2-135M, group level, 200 shifts: +0.032 and +0.060 at layers 6 and 30
        without the filter, -0.005 and -0.004 with it; false-positive rate .062/.066 -> .050/.048).
        The filter is a fixed projection of the whole series (11 cosines for 362 volumes at TR 2 s),
        applied before the shifts.
    delays : tuple of int
        FIR delays in volumes, applied after the reduction (default 1-4: 2-8 s at TR = 2 s).
    reduction : {"pca", None}
        Per-layer dimensionality reduction fitted on the training volumes of each fold.
    n_components : int or tuple of int
        PCA components per layer (capped by the number of training volumes and of features). A tuple of
        two or more sizes (e.g. ``(10, 20, 40)``) is a grid chosen *inside* the inner CV, jointly with
        alpha and per target (:func:`fit_nested_components`): in every inner fold the z-scoring and the
        PCA are refitted on the inner training volumes (one SVD serves every size: the scores of k
        components are the first k columns of the largest fit), every (size, alpha) is scored on the
        inner validation block, and the best pair is refitted on the outer training volumes; the null
        copies choose their own. The outer test block is never seen, so the score stays unbiased.
        Default 20, chosen by measurement on the Brennan recording (SmolLM2-135M, all 31 layers: the
        mean single-subject best-layer r is highest with 20 of 5 / 10 / 20 / 40 / no reduction, and
        the group-level r is within .011 of the best; benchmarks/RESULTS.md). With the fold-mean score
        the full 576-feature design also works (single-subject r within .012), at ~30x the
        columns. The grid ``(10, 20, 40)`` chosen in the inner CV is *not* the default: on the same
        recording it scores lower than the fixed 20 at group level (mean best-layer r .475 by R^2 /
        .493 by r vs .498) and equal at single-subject level (.2145 vs .215), at ~3x the fit time
        (benchmarks/bench_fmri_pcasize.py): with 5 inner blocks of ~56 volumes the choice of a size
        per target is noisier than what it gains.
    alphas : tuple of float
        Ridge penalties (in units of the reduced design's ``X^T X``), 0.1 to 1e7 by half decades.
    inner_splits : int
        Inner contiguous folds of the training volumes for the alpha of each target.
    selection_score : {"r2", "pearson"}
        Inner-CV criterion of the (size, alpha) choice when ``n_components`` is a grid (the fixed size's
        alpha is always chosen by R^2). "pearson" is the headline's own score: the validation r, blind to
        the offset between a block's mean and the training mean (slow drift no stimulus model predicts).
    standardize : bool
        z-score the layer's features with the training volumes' statistics before the PCA.
    n_shifts : int
        Circularly shifted null copies of the targets (0: no null).
    min_shift : int
        Smallest circular shift, volumes, from zero in either direction (default 20 = 40 s).
    seed : int
        Seed of the shifts.
    backend : str
        Array backend of the ridge engine ("numpy", "torch", "torch_cuda", ...).
    memory_budget_gb : float
        Working memory of the ridge engine's target chunks.
    """

    n_splits: int = 5
    gap: int = 5
    tr: float = 2.0
    highpass: float | None = 128.0
    delays: tuple[int, ...] = (1, 2, 3, 4)
    reduction: str | None = "pca"
    n_components: int | tuple[int, ...] = 20
    alphas: tuple[float, ...] = tuple(float(a) for a in np.logspace(-1, 7, 17))
    inner_splits: int = 5
    selection_score: str = "r2"
    standardize: bool = True
    n_shifts: int = 200
    min_shift: int = 20
    seed: int = 0
    backend: str = "numpy"
    memory_budget_gb: float = 2.0

    def __post_init__(self) -> None:
        if self.reduction not in ("pca", None):
            raise BrainlikeError(f"FMRIEncodingOptions.reduction must be 'pca' or None, not {self.reduction!r}")
        if self.selection_score not in ("r2", "pearson"):
            raise BrainlikeError(f"FMRIEncodingOptions.selection_score must be 'r2' or 'pearson', "
                                 f"not {self.selection_score!r}")
        if self.highpass is not None and not (self.highpass > 0 and self.tr > 0):
            raise BrainlikeError("FMRIEncodingOptions.highpass and tr must be positive seconds (or highpass None)")
        if self.n_splits < 2 or self.inner_splits < 2:
            raise BrainlikeError("FMRIEncodingOptions.n_splits and inner_splits must be at least 2")
        nc = self.n_components
        bad = f"FMRIEncodingOptions.n_components must be an int >= 1 or a list of them, got {nc!r}"
        if isinstance(nc, (list, tuple, np.ndarray)):
            grid = tuple(sorted({int(k) for k in nc}))
            if not grid or grid[0] < 1 or any(float(k) != int(k) for k in nc):
                raise BrainlikeError(bad)
            object.__setattr__(self, "n_components", grid[0] if len(grid) == 1 else grid)
        elif isinstance(nc, (bool, np.bool_)) or not isinstance(nc, (int, np.integer)):
            raise BrainlikeError(bad)
        else:
            object.__setattr__(self, "n_components", int(nc))
        if self.gap < 0 or self.min_shift < 1 or self.n_shifts < 0 or min(self.component_grid) < 1:
            raise BrainlikeError("FMRIEncodingOptions: gap >= 0, min_shift >= 1, n_shifts >= 0 and "
                                 "n_components >= 1 are required")
        if not self.delays or len(set(self.delays)) != len(self.delays):
            raise BrainlikeError(f"FMRIEncodingOptions.delays must be distinct integers, got {self.delays}")
        object.__setattr__(self, "delays", tuple(int(d) for d in self.delays))
        object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))

    @property
    def component_grid(self) -> tuple[int, ...]:
        """The PCA sizes as a sorted tuple (one element for a fixed size)."""
        nc = self.n_components
        return nc if isinstance(nc, tuple) else (int(nc),)

    @property
    def nested_components(self) -> bool:
        """Whether the PCA size is chosen in the inner CV (a grid of two or more sizes with ``reduction="pca"``)."""
        return self.reduction == "pca" and isinstance(self.n_components, tuple)


@dataclass(frozen=True)
class LayerScores:
    """Scores of every layer for every target, with their refitted circular-shift null.

    Attributes
    ----------
    scores : ndarray (n_layers, n_targets) float64
        Headline score: mean over outer folds of the Pearson r inside each test block (unitless).
    fold_scores : ndarray (n_layers, n_folds, n_targets) float64
        Pearson r inside each test block.
    null : ndarray (n_layers, n_shifts, n_targets) float32
        The headline score of every shifted copy (refitted), same shifts for all layers.
    shifts : ndarray (n_shifts,) int64
        Circular shifts (volumes) of the null copies, in ``[min_shift, n_volumes - min_shift]``.
    alphas : ndarray (n_layers, n_folds, n_targets) float64
        Penalty selected per fold for the observed targets.
    pooled_r : ndarray (n_layers, n_targets) float64
        Extra, not a headline: r of the concatenated held-out predictions (negatively biased under the
        null on autocorrelated data, see the module docstring).
    pooled_null : ndarray (n_layers, n_shifts, n_targets) float32
        ``pooled_r`` of the shifted copies (to measure that bias).
    level : str
        "group", "single", "between" or "custom".
    target_shape : tuple of int
        Shape the target axis unfolds to: ``(n_rois,)`` for "group", ``(n_subjects, n_rois)`` otherwise.
    options : FMRIEncodingOptions
    components : ndarray (n_layers, n_folds, n_targets) int64, optional
        PCA size used per fold for the observed targets (selected per target with a grid; 0 without
        reduction).
    """

    scores: np.ndarray
    fold_scores: np.ndarray
    null: np.ndarray
    shifts: np.ndarray
    alphas: np.ndarray
    pooled_r: np.ndarray
    pooled_null: np.ndarray
    level: str
    target_shape: tuple[int, ...]
    options: FMRIEncodingOptions = field(repr=False)
    components: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_layers(self) -> int:
        """The number of layers."""
        return int(self.scores.shape[0])

    def null_mean(self) -> np.ndarray:
        """(n_layers, n_targets) float64 mean of the null scores of every target."""
        return self.null.mean(axis=1, dtype=np.float64)

    def pvalues(self) -> np.ndarray:
        """(n_layers, n_targets) one-sided empirical p per layer and target: ``(1 + #{null >= obs}) / (1 + S)``."""
        from brainlike.analyses.inference import empirical_pvalues

        return empirical_pvalues(self.scores, self.null, axis=1)

    def max_over_layers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best layer per target, corrected for the choice of layer by the max-statistic null.

        Returns
        -------
        best_layer : ndarray (n_targets,) int
        best_score : ndarray (n_targets,) float64
            Headline score of the best layer.
        pvalue : ndarray (n_targets,) float64
            ``(1 + #{max over layers of null >= best_score}) / (1 + S)`` (same shift for every layer).
        """
        from brainlike.analyses.inference import max_statistic_pvalues

        best = np.argmax(self.scores, axis=0)
        return best, self.scores.max(axis=0), max_statistic_pvalues(self.scores, self.null)

    def unfold(self, arr: np.ndarray) -> np.ndarray:
        """Reshape the last (target) axis of ``arr`` to :attr:`target_shape`."""
        return np.asarray(arr).reshape(*np.shape(arr)[:-1], *self.target_shape)


# ------------------------------------------------------------------------------------------------ folds
def gapped_folds(indices: np.ndarray, n_splits: int, gap: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous folds of ``indices`` (sorted time indices) with ``gap`` volumes left out around each test block.

    Parameters
    ----------
    indices : ndarray (n,) int
        Sorted volume indices (time positions) of the samples to split.
    n_splits : int
        Number of contiguous test blocks (:func:`brainlike.encoding.contiguous_folds` on the positions).
    gap : int
        Samples whose time index is within ``gap`` volumes of the test block's are dropped from training.

    Returns
    -------
    list of (train, test)
        int64 *positions* into ``indices`` (not time indices).

    Raises
    ------
    BrainlikeError
        When a fold has fewer than 3 training samples left.
    """
    t = np.asarray(indices, dtype=np.int64)
    out = []
    for train, test in contiguous_folds(t.size, n_splits):
        lo, hi = t[test].min() - gap, t[test].max() + gap
        tr = train[(t[train] < lo) | (t[train] > hi)]
        if tr.size < 3:
            raise BrainlikeError(f"a fold keeps only {tr.size} training volumes with gap={gap}; use fewer folds "
                                 "or a smaller gap")
        out.append((tr, test))
    return out


def circular_shifts(n_volumes: int, n_shifts: int, min_shift: int, seed: int) -> np.ndarray:
    """Random circular shifts (volumes) at least ``min_shift`` from zero in both directions.

    Draws without replacement from ``[min_shift, n_volumes - min_shift]`` when there are enough distinct
    shifts, with replacement otherwise.

    Returns
    -------
    ndarray (n_shifts,) int64
    """
    lo, hi = int(min_shift), int(n_volumes) - int(min_shift)
    if hi < lo:
        raise BrainlikeError(f"min_shift={min_shift} leaves no circular shift for {n_volumes} volumes; lower it")
    rng = np.random.default_rng(seed)
    pool = np.arange(lo, hi + 1)
    replace = n_shifts > pool.size
    return np.sort(rng.choice(pool, size=n_shifts, replace=replace)).astype(np.int64)


def highpass_dct(Y: np.ndarray, tr: float, cutoff: float) -> np.ndarray:
    """Remove slow drifts: project out the constant and the DCT-II cosines of period >= ``cutoff`` (SPM).

    Parameters
    ----------
    Y : ndarray (n_volumes, n_targets)
        Time series (any unit).
    tr : float
        Repetition time, seconds.
    cutoff : float
        Cutoff period, seconds (SPM default 128): cosines ``k = 1 .. floor(2 n tr / cutoff)``.

    Returns
    -------
    ndarray (n_volumes, n_targets) float32: the residuals (zero mean).
    """
    Y = np.asarray(Y, dtype=np.float64)
    n = Y.shape[0]
    K = int(np.floor(2.0 * n * tr / cutoff))
    t = np.arange(n)
    B = np.column_stack([np.ones(n)] + [np.cos(np.pi * k * (t + 0.5) / n) for k in range(1, K + 1)])
    Q, _ = np.linalg.qr(B)
    return (Y - Q @ (Q.T @ Y)).astype(np.float32)


def _with_shifts(Y: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """``[Y, roll(Y, s_1), ...]`` along the columns: (n, (1 + S) * t) float32."""
    n, t = Y.shape
    out = np.empty((n, (1 + shifts.size) * t), dtype=np.float32)
    out[:, :t] = Y
    for j, s in enumerate(shifts, start=1):
        out[:, j * t:(j + 1) * t] = np.roll(Y, int(s), axis=0)
    return out


# ------------------------------------------------------------------------------------------------ design
def _delay(Z: np.ndarray, delays: Sequence[int]) -> np.ndarray:
    """FIR copies of ``Z`` (n, k): block j holds ``Z[t - delays[j]]`` (zeros outside), (n, k * n_delays) float64."""
    n, k = Z.shape
    out = np.zeros((n, k * len(delays)))
    for j, d in enumerate(delays):
        blk = out[:, j * k:(j + 1) * k]
        if d >= 0:
            blk[d:] = Z[:n - d] if d else Z
        else:
            blk[:n + d] = Z[-d:]
    return out


def _zscore_on(Z: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``Z`` (n, p) z-scored with the mean and SD of ``rows`` (a constant column is only centred)."""
    mu = Z[rows].mean(axis=0)
    sd = Z[rows].std(axis=0)
    sd[sd == 0] = 1.0
    return (Z - mu) / sd


def reduce_and_delay(X: np.ndarray, train: np.ndarray, options: FMRIEncodingOptions,
                     *, extra: np.ndarray | None = None, n_components: int | None = None) -> tuple[np.ndarray, int]:
    """One fold's design: z-score and PCA fitted on ``train`` rows, applied to all rows, then FIR delays.

    Parameters
    ----------
    X : ndarray (n_volumes, p)
        Undelayed TR-level features of one layer (any unit).
    train : ndarray (n_train,) int
        Training rows (time indices into ``X``).
    options : FMRIEncodingOptions
    extra : ndarray (n_volumes, q), optional
        Undelayed control regressors (e.g. word rate): z-scored on ``train`` but not reduced, placed
        *before* the reduced features (in each delay block's column order: controls, then components).
    n_components : int, optional
        PCA size (default ``options.n_components``; the largest size of a grid).

    Returns
    -------
    design : ndarray (n_volumes, (q + k) * n_delays) float64
        Delayed design; column block j (width q + k) is delay ``options.delays[j]``.
    width : int
        ``q + k``, columns per delay.
    """
    from sklearn.decomposition import PCA

    Z = np.asarray(X, dtype=np.float64)
    if options.standardize:
        Z = _zscore_on(Z, train)
    if options.reduction == "pca":
        k = min(n_components or max(options.component_grid), train.size - 1, Z.shape[1])
        pca = PCA(n_components=k, svd_solver="full").fit(Z[train])
        Z = pca.transform(Z)
    if extra is not None:
        Z = np.hstack([_zscore_on(np.asarray(extra, dtype=np.float64).reshape(Z.shape[0], -1), train), Z])
    return _delay(Z, options.delays), Z.shape[1]


def _pca_scores(X: np.ndarray, rows: np.ndarray, k: int, standardize: bool) -> np.ndarray:
    """Scores of the first ``k`` principal components fitted on ``rows``, for every row: (n, k) float64.

    z-scoring (when ``standardize``) and centring use the statistics of ``rows``; the columns are nested
    (the scores of ``j < k`` components are the first ``j`` columns).
    """
    Z = np.asarray(X, dtype=np.float64)
    Z = _zscore_on(Z, rows) if standardize else Z - Z[rows].mean(axis=0)
    Zr = Z[rows]
    Zr = Zr - Zr.mean(axis=0)  # already ~0; exact centring of the fitted rows
    if Zr.shape[0] < Zr.shape[1]:  # leading right singular vectors from the (n_rows, n_rows) Gram matrix
        w, u = np.linalg.eigh(Zr @ Zr.T)
        w, u = w[::-1][:k], u[:, ::-1][:, :k]
        vt = (u.T @ Zr) / np.sqrt(np.maximum(w, 1e-300))[:, None]
    else:
        vt = np.linalg.svd(Zr, full_matrices=False)[2][:k]
    return Z @ vt.T


def _delayed_columns(width: int, k: int, n_delays: int) -> np.ndarray:
    """Columns of the first ``k`` components in a delayed design of ``width`` components per delay block."""
    return (np.arange(n_delays)[:, None] * width + np.arange(k)[None, :]).ravel()


def fit_nested_components(
    X: np.ndarray, Y: np.ndarray, train: np.ndarray, test: np.ndarray,
    inner: Sequence[tuple[np.ndarray, np.ndarray]], options: FMRIEncodingOptions,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One outer fold with the PCA size chosen per target, jointly with alpha, in the inner CV.

    For every inner fold, the z-scoring and a PCA of the largest size are fitted on the inner training
    volumes (one SVD; the scores of k components are its first k columns), the FIR delays are applied,
    and the validation R^2 of every (size, alpha) is computed by the spectral ridge engine (one
    decomposition per size). Per target, the pair with the best mean validation R^2 over the inner folds
    wins (ties: larger alpha, then smaller size); the pipeline is refitted on all training volumes with
    that size and alpha and predicts the test volumes. The same procedure as
    ``GridSearchCV(Pipeline([StandardScaler(), PCA(k), Ridge(alpha)]), cv=inner, scoring="r2")`` per
    target (tests/test_fmri_encoding.py).

    Parameters
    ----------
    X : ndarray (n_volumes, p)
        Undelayed features of one layer (any unit).
    Y : ndarray (n_volumes, n_targets)
        Targets (any unit; only ``train`` rows are used).
    train, test : ndarray (n_train,), (n_test,) int
        Outer training and test volumes (time indices).
    inner : list of (train, validation)
        Inner folds as *positions* into ``train`` (:func:`gapped_folds` of ``train``).
    options : FMRIEncodingOptions
        ``component_grid``, ``alphas``, ``delays``, ``standardize``, ``backend``, ``memory_budget_gb``.

    Returns
    -------
    predictions : ndarray (n_test, n_targets) float64
        Test-block predictions, Y units.
    alphas : ndarray (n_targets,) float64
        Selected penalty per target.
    components : ndarray (n_targets,) int64
        Selected PCA size per target (after capping by the training volumes and features).
    """
    from brainlike.encoding.backends import get_backend
    from brainlike.encoding.spectral import TIE_SLOPE, _RidgeEngine, chunk_size, vecmat64

    Y = np.asarray(Y, dtype=np.float32)
    n_t = Y.shape[1]
    B = get_backend(options.backend)
    alphas = np.asarray(options.alphas, dtype=np.float64)
    nd = len(options.delays)
    kw = dict(fit_intercept=True, solver="auto", backend=B, dtype="float32", score_func="r2", method="auto")
    cv_kw = {**kw, "score_func": options.selection_score}

    def sizes(n_rows: int) -> tuple[int, ...]:
        return tuple(sorted({min(k, n_rows - 1, X.shape[1]) for k in options.component_grid}))

    grid = sizes(min(tr.size for tr, _ in inner))  # sizes every inner fold can fit
    cv = np.zeros((len(grid), alphas.size, n_t))
    for itr, iva in inner:
        rows_tr, rows_va = train[itr], train[iva]
        rows = np.concatenate([rows_tr, rows_va])
        C = _delay(_pca_scores(X, rows_tr, grid[-1], options.standardize), options.delays)[rows]
        fold = [(np.arange(rows_tr.size), np.arange(rows_tr.size, rows.size))]
        engines = [_RidgeEngine(C[:, _delayed_columns(grid[-1], k, nd)], fold, alphas, need_refit=False, **cv_kw)
                   for k in grid]
        big = engines[-1]
        step = min(chunk_size(e, n_t, options.memory_budget_gb) for e in engines)
        for a in range(0, n_t, step):
            # one centred target chunk and one X^T Y (largest size) for all sizes: the design of k
            # components is a column subset of the largest one's, so its X^T Y is a row subset
            Y0_b, _ = big.center_targets(Y[rows, a:a + step])
            T_b = big.X_b.T @ Y0_b if big.needs_T else None
            for gi, (k, eng) in enumerate(zip(grid, engines)):
                T_k = None if T_b is None or not eng.needs_T else T_b[_delayed_columns(grid[-1], k, nd)]
                cv[gi, :, a:a + step] += eng.cv_scores(Y0_b, T_k)
            del Y0_b, T_b
        del engines, big
    cv /= len(inner)
    cv[~np.isfinite(cv)] = -np.inf
    cv += TIE_SLOPE * np.log(alphas)[None, :, None]
    flat = np.argmax(cv.reshape(-1, n_t), axis=0)  # first maximum: smaller size on exact ties
    k_idx, a_idx = np.divmod(flat, alphas.size)
    a_sel = alphas[a_idx]
    full = sizes(train.size)
    C = _delay(_pca_scores(X, train, full[-1], options.standardize), options.delays)
    pred = np.empty((test.size, n_t))
    k_sel = np.empty(n_t, dtype=np.int64)
    for gi, k in enumerate(grid):
        cols = np.flatnonzero(k_idx == gi)
        if not cols.size:
            continue
        k_fit = min(k, full[-1])
        D = C[:, _delayed_columns(full[-1], k_fit, nd)]
        eng = _RidgeEngine(D[train], [], alphas, need_cv=False, **kw)
        step = chunk_size(eng, cols.size, options.memory_budget_gb)
        for a in range(0, cols.size, step):
            c = cols[a:a + step]
            Y0_b, y_mean = eng.center_targets(Y[train][:, c])
            W = B.to_numpy(eng.refit(Y0_b, a_sel[c], n_targets=cols.size, n_chunks=-(-cols.size // step)))
            intercept = y_mean - vecmat64(eng.x_mean, W)
            pred[:, c] = D[test] @ W.astype(np.float64) + intercept[None, :]
        k_sel[cols] = k_fit
    return pred, a_sel, k_sel


def _inner_folds(train: np.ndarray, options: FMRIEncodingOptions) -> list[tuple[np.ndarray, np.ndarray]]:
    return gapped_folds(train, options.inner_splits, options.gap)


def _check_design(design_per_layer, n_volumes: int) -> list[np.ndarray]:
    if isinstance(design_per_layer, (list, tuple)):
        layers = [np.asarray(x) for x in design_per_layer]
    else:
        arr = np.asarray(design_per_layer)
        layers = [arr] if arr.ndim == 2 else list(arr)
    for i, x in enumerate(layers):
        if x.ndim != 2 or x.shape[0] != n_volumes:
            raise BrainlikeError(f"layer {i} of the design has shape {x.shape}; expected ({n_volumes}, n_features) "
                                 "(undelayed TR-level features, one row per volume of Y)")
        if not np.all(np.isfinite(x)):
            raise BrainlikeError(f"layer {i} of the design contains NaN or inf")
    return layers


# ------------------------------------------------------------------------------------------------ engine
def encode_layers(
    design_per_layer,
    Y: np.ndarray,
    options: FMRIEncodingOptions = FMRIEncodingOptions(),
    *,
    Y_eval: np.ndarray | None = None,
    level: str = "custom",
    target_shape: tuple[int, ...] | None = None,
    progress: bool = False,
) -> LayerScores:
    """Cross-validated encoding of every layer for every target, observed and circularly shifted.

    Parameters
    ----------
    design_per_layer : ndarray (n_layers, n_volumes, p) or list of (n_volumes, p_l) arrays
        Undelayed TR-level features per layer (e.g. ``fmri_design_layers(feats, stim, n_volumes, tr=tr,
        delays=(0,), trim_start=0, trim_end=0).X``); delays are applied after the reduction.
    Y : ndarray (n_volumes, n_targets)
        Fitted targets (any unit; one contiguous run, time order).
    options : FMRIEncodingOptions
    Y_eval : ndarray (n_volumes, n_targets), optional
        Targets the test-block predictions are scored against (default ``Y``); e.g. the held-out
        subject's series when ``Y`` is the mean of the other subjects. Shifted like ``Y``.
    level, target_shape : str, tuple of int
        Labels stored in the result.
    progress : bool
        Show a progress bar over layers (tqdm).

    Returns
    -------
    LayerScores
    """
    Y = np.asarray(Y, dtype=np.float32)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or not np.all(np.isfinite(Y)):
        raise BrainlikeError(f"Y must be a finite (n_volumes, n_targets) array, got shape {Y.shape}")
    n, t = Y.shape
    E = Y if Y_eval is None else np.asarray(Y_eval, dtype=np.float32).reshape(n, -1)
    if E.shape != Y.shape:
        raise BrainlikeError(f"Y_eval has shape {E.shape} but Y has {Y.shape}; they must match column for column")
    if level not in _LEVELS:
        raise BrainlikeError(f"level must be one of {_LEVELS}, not {level!r}")
    layers = _check_design(design_per_layer, n)
    if options.highpass is not None:
        same = E is Y
        Y = highpass_dct(Y, options.tr, options.highpass)
        E = Y if same else highpass_dct(E, options.tr, options.highpass)
    shifts = circular_shifts(n, options.n_shifts, options.min_shift, options.seed) if options.n_shifts else \
        np.zeros(0, dtype=np.int64)
    Yall = _with_shifts(Y, shifts)
    Eall = Yall if E is Y else _with_shifts(E, shifts)
    folds = gapped_folds(np.arange(n), options.n_splits, options.gap)
    inner = [_inner_folds(tr, options) for tr, _ in folds]
    L, K, S = len(layers), len(folds), shifts.size
    fold_scores = np.empty((L, K, t))
    null = np.empty((L, S, t), dtype=np.float32)
    alphas = np.empty((L, K, t))
    components = np.zeros((L, K, t), dtype=np.int64)
    it = range(L)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"{level} encoding", unit="layer")
    e64 = Eall.astype(np.float64)
    e_sum = e64.sum(axis=0)
    e_ss = (e64 * e64).sum(axis=0) - e_sum * e_sum / n
    del e64
    pooled = np.empty((L, 1 + S, t))
    for li in it:
        acc = np.zeros((S, t))
        p_sum = np.zeros(Yall.shape[1])
        p_ss = np.zeros(Yall.shape[1])
        ep = np.zeros(Yall.shape[1])
        for k, (train, test) in enumerate(folds):
            if options.nested_components:
                pred, a_sel, k_sel = fit_nested_components(layers[li], Yall, train, test, inner[k], options)
                components[li, k] = k_sel[:t]
            else:
                D, width = reduce_and_delay(layers[li], train, options)
                model = RidgeCV(alphas=np.asarray(options.alphas), cv=inner[k], backend=options.backend,
                                memory_budget_gb=options.memory_budget_gb)
                model.fit(D[train], Yall[train])
                pred = model.predict(D[test])
                a_sel = model.best_alphas_
                if options.reduction == "pca":
                    components[li, k] = width  # the capped PCA size (no controls in this design)
                del model
            r = pearson_r(Eall[test], pred)
            fold_scores[li, k] = r[:t]
            acc += r[t:].reshape(S, t)
            alphas[li, k] = a_sel[:t]
            p64 = pred.astype(np.float64)
            p_sum += p64.sum(axis=0)
            p_ss += np.einsum("ij,ij->j", p64, p64)
            ep += np.einsum("ij,ij->j", Eall[test].astype(np.float64), p64)
            del pred, p64
        null[li] = (acc / K).astype(np.float32)
        var_p = p_ss - p_sum * p_sum / n
        cov = ep - e_sum * p_sum / n
        den = np.sqrt(np.maximum(var_p, 0) * np.maximum(e_ss, 0))
        pr = np.where(den > 1e-12 * np.maximum(p_ss, 1e-300), cov / np.where(den > 0, den, 1.0), 0.0)
        pooled[li] = np.clip(pr, -1, 1).reshape(1 + S, t)
    return LayerScores(scores=fold_scores.mean(axis=1), fold_scores=fold_scores, null=null, shifts=shifts,
                       alphas=alphas, pooled_r=pooled[:, 0],
                       pooled_null=pooled[:, 1:].astype(np.float32), level=level,
                       target_shape=tuple(target_shape) if target_shape else (t,), options=options,
                       components=components)


# ------------------------------------------------------------------------------------------------ levels
def zscore_subjects(data: np.ndarray) -> np.ndarray:
    """z-score every subject's ROI series over time.

    Parameters
    ----------
    data : ndarray (n_subjects, n_volumes, n_rois)
        BOLD signal (any unit).

    Returns
    -------
    ndarray (n_subjects, n_volumes, n_rois) float32, unitless (constant series become 0).

    Raises
    ------
    BrainlikeError
        Wrong shape, NaN/inf, or a subject whose series are all constant (e.g. Brennan's s33: exclude it).
    """
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 3:
        raise BrainlikeError(f"data must be (n_subjects, n_volumes, n_rois), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise BrainlikeError("data contain NaN or inf; exclude those subjects or ROIs first")
    sd = arr.std(axis=1, keepdims=True)
    flat = np.flatnonzero((sd == 0).all(axis=(1, 2)))
    if flat.size:
        raise BrainlikeError(f"subject(s) at index {flat.tolist()} have constant (e.g. all-zero) series; "
                             "exclude them before encoding")
    sd[sd == 0] = 1.0
    return ((arr - arr.mean(axis=1, keepdims=True)) / sd).astype(np.float32)


def encode_group(design_per_layer, data: np.ndarray, options: FMRIEncodingOptions = FMRIEncodingOptions(),
                 **kw) -> LayerScores:
    """Group level: targets = the ROIs of the mean of the z-scored subjects.

    Parameters
    ----------
    design_per_layer : see :func:`encode_layers`
    data : ndarray (n_subjects, n_volumes, n_rois)

    Returns
    -------
    LayerScores with ``target_shape = (n_rois,)``.
    """
    z = zscore_subjects(data)
    return encode_layers(design_per_layer, z.mean(axis=0), options, level="group",
                         target_shape=(z.shape[2],), **kw)


def encode_single(design_per_layer, data: np.ndarray, options: FMRIEncodingOptions = FMRIEncodingOptions(),
                  **kw) -> LayerScores:
    """Single-subject level: every subject x ROI series is a target of one shared fit.

    Returns
    -------
    LayerScores with ``target_shape = (n_subjects, n_rois)``.
    """
    z = zscore_subjects(data)
    s, n, r = z.shape
    Y = z.transpose(1, 0, 2).reshape(n, s * r)
    return encode_layers(design_per_layer, Y, options, level="single", target_shape=(s, r), **kw)


def encode_between(design_per_layer, data: np.ndarray, options: FMRIEncodingOptions = FMRIEncodingOptions(),
                   **kw) -> LayerScores:
    """Between-subject level: fit on the mean of the other subjects, score on the held-out subject.

    The test block is held out in time too (the same outer folds), so the model never sees the test
    volumes of anyone.

    Returns
    -------
    LayerScores with ``target_shape = (n_subjects, n_rois)``.
    """
    z = zscore_subjects(data)
    s, n, r = z.shape
    if s < 2:
        raise BrainlikeError("the between-subject level needs at least 2 subjects")
    loo = (z.sum(axis=0, keepdims=True) - z) / (s - 1)
    Y = loo.transpose(1, 0, 2).reshape(n, s * r)
    E = z.transpose(1, 0, 2).reshape(n, s * r)
    return encode_layers(design_per_layer, Y, options, Y_eval=E, level="between", target_shape=(s, r), **kw)
