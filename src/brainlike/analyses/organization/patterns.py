"""Representative temporal patterns of artificial neurons by sparse dictionary learning (Sun et al. 2024).

Each neuron's TR-level time course ``x`` (unit norm, see :mod:`.timecourses`) is written as a sparse
combination of ``K`` shared temporal patterns (the dictionary ``D``, ``(K, n_trs)``, unit-norm rows)::

    x ≈ c @ D,     minimise ½‖x − c D‖² + alpha ‖c‖₁  subject to ‖D_k‖ ≤ 1

This is the online dictionary learning of Mairal et al. (2010), the algorithm of scikit-learn's
``MiniBatchDictionaryLearning``. ``backend="numpy"`` (default) runs the same mini-batch updates (the
inner statistics, forgetting factor and block-coordinate dictionary update are ported from scikit-learn)
with a sparse coder vectorised over the neurons of a batch (coordinate descent on the Gram matrix), which
is ~20× faster than scikit-learn's per-sample Lasso calls; ``backend="sklearn"`` uses
``MiniBatchDictionaryLearning`` itself. The tests check the coder against
:func:`sklearn.decomposition.sparse_encode` and both backends against planted dictionaries.
After fitting, the atoms are scaled to unit norm and every neuron is coded against them.

The sparse code ``c`` (``(K,)`` per neuron) gives the neuron's sub-group membership: neuron ``i``
belongs to the sub-group of pattern ``k`` when ``c[i, k] != 0``; its *primary* pattern is the one with
the largest ``|c|``. Because time courses have unit norm, ``alpha`` is in correlation units: a neuron
whose correlation with a pattern is below about ``alpha`` gets no code for it.

Streaming: the dictionary is fitted on a uniform random sample (reservoir sampling) of at most
``max_in_memory`` neurons drawn from all layers; when the model has more neurons, that dictionary
initialises a fresh online pass (inner statistics reset) of ``n_epochs`` epochs of mini-batch updates
streaming over all of them. Codes are computed for every neuron in a final pass.

Conventions: patterns are ordered by decreasing share of the codes' energy (``Σ_i c[i, k]²``), and each
pattern's sign is chosen so that its codes sum to a positive number (the sub-group follows the pattern
rather than its mirror image).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import MiniBatchDictionaryLearning
from tqdm.auto import tqdm

from brainlike.errors import BrainlikeError

__all__ = ["PatternLearner", "PatternResult", "sparse_encode"]

BlockSource = Callable[[], Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]]


@dataclass
class PatternResult:
    """Dictionary learning output for one model.

    Attributes
    ----------
    patterns : np.ndarray
        ``(K, n_trs)`` float32 representative temporal patterns (unit norm, TR grid, before HRF).
    codes : np.ndarray
        ``(n_neurons, K)`` float32 sparse codes (sub-group membership weights, correlation units).
    dead : np.ndarray
        ``(n_neurons,)`` bool, neurons with a constant time course (no codes).
    reconstruction_r2 : float
        fraction of the neurons' time-course variance explained by ``codes @ patterns``.
    seed : int
        the random seed of the fit.
    """

    patterns: np.ndarray
    codes: np.ndarray
    dead: np.ndarray
    reconstruction_r2: float
    seed: int

    @property
    def n_patterns(self) -> int:
        """The number of patterns ``K``."""
        return int(self.patterns.shape[0])

    def primary(self) -> np.ndarray:
        """``(n_neurons,)`` int64: each neuron's pattern with the largest ``|code|``, -1 when it has none."""
        best = np.abs(self.codes).argmax(axis=1)
        best[~(np.abs(self.codes) > 0).any(axis=1)] = -1
        return best.astype(np.int64)

    def members(self, k: int) -> np.ndarray:
        """Global indices of the neurons with a non-zero code for pattern ``k``."""
        return np.flatnonzero(self.codes[:, k] != 0)

    def pattern_table(self, times: np.ndarray, model: str = "") -> pd.DataFrame:
        """Tidy: one row per (pattern, volume) with ``model, pattern, volume, time`` (s) and ``value``."""
        k, t = self.patterns.shape
        return pd.DataFrame({"model": model, "pattern": np.repeat(np.arange(k), t),
                             "volume": np.tile(np.arange(t), k), "time": np.tile(np.asarray(times, float), k),
                             "value": self.patterns.reshape(-1).astype(np.float64)})

    def membership_table(self, neurons: pd.DataFrame, model: str = "") -> pd.DataFrame:
        """Tidy: one row per non-zero code with ``model, neuron, layer, unit, pattern, code`` and ``primary``.

        (True for the neuron's largest-|code| pattern).
        """
        i, k = np.nonzero(self.codes)
        prim = self.primary()
        return pd.DataFrame({"model": model, "neuron": i, "layer": neurons["layer"].to_numpy()[i],
                             "unit": neurons["unit"].to_numpy()[i], "pattern": k,
                             "code": self.codes[i, k].astype(np.float64), "primary": prim[i] == k})

    def layer_table(self, neurons: pd.DataFrame, model: str = "") -> pd.DataFrame:
        """Tidy: one row per (layer, pattern) with ``n_neurons`` in the layer, ``n_members`` (non-zero code).

        ``n_primary``, ``fraction`` = members / neurons and ``primary_fraction`` = primary / neurons.
        """
        layer = neurons["layer"].to_numpy()
        prim = self.primary()
        rows = []
        for lay in np.unique(layer):
            sel = layer == lay
            for k in range(self.n_patterns):
                nz = int((self.codes[sel, k] != 0).sum())
                rows.append({"model": model, "layer": int(lay), "pattern": k, "n_neurons": int(sel.sum()),
                             "n_members": nz, "n_primary": int((prim[sel] == k).sum()),
                             "fraction": nz / max(int(sel.sum()), 1),
                             "primary_fraction": int((prim[sel] == k).sum()) / max(int(sel.sum()), 1)})
        return pd.DataFrame(rows)


def sparse_encode(X: np.ndarray, D: np.ndarray, alpha: float, positive: bool = False, max_iter: int = 1000,
                  tol: float = 1e-7, coder: str = "numba") -> np.ndarray:
    """Lasso codes of every row of ``X`` against dictionary ``D``, vectorised over rows.

    Solves ``min_c ½‖x − c D‖² + alpha ‖c‖₁`` (``c ≥ 0`` if ``positive``) for each row by cyclic
    coordinate descent on the Gram matrix ``D Dᵀ`` — the objective of scikit-learn's
    ``sparse_encode(X, D, algorithm="lasso_cd", alpha=alpha)``.

    Parameters
    ----------
    X : np.ndarray
        ``(n, n_features)`` data.
    D : np.ndarray
        ``(K, n_features)`` dictionary.
    alpha : float
        L1 weight.
    max_iter : int
        coordinate-descent sweeps at most; ``tol``: stop when no code changes by more.
    coder : str
        ``"numba"`` (default): the same coordinate descent compiled, one row at a time, each row stopping
        when none of its codes changes by more than ``tol`` and skipping the Gram update of codes that
        stay zero (~20x faster on SmolLM2's neurons); ``"numpy"``: vectorised over the rows, all rows
        swept until none changes by more than ``tol``. Both reach scikit-learn's codes to 1e-6 (tests).

    Returns
    -------
    np.ndarray
        ``(n, K)`` float64 codes.
    """
    if coder not in ("numba", "numpy"):
        raise BrainlikeError(f"coder must be 'numba' or 'numpy', not {coder!r}")
    X = np.asarray(X, dtype=np.float64)
    D = np.asarray(D, dtype=np.float64)
    G = D @ D.T
    cx = X @ D.T
    if coder == "numba":
        c = np.zeros((X.shape[0], D.shape[0]))
        _cd_rows()(np.ascontiguousarray(cx), np.ascontiguousarray(G), float(alpha), bool(positive), int(max_iter),
                   float(tol), c)
        return c
    k_atoms = D.shape[0]
    c = np.zeros((X.shape[0], k_atoms))
    q = np.zeros_like(c)  # q = c @ G, kept up to date
    diag = np.diag(G)
    for _ in range(max_iter):
        delta_max = 0.0
        for k in range(k_atoms):
            if diag[k] <= 1e-12:
                continue
            r = cx[:, k] - q[:, k] + c[:, k] * diag[k]
            new = (np.maximum(r - alpha, 0.0) if positive
                   else np.sign(r) * np.maximum(np.abs(r) - alpha, 0.0)) / diag[k]
            delta = new - c[:, k]
            if np.any(delta):
                q += delta[:, None] * G[k][None, :]
                c[:, k] = new
                delta_max = max(delta_max, float(np.abs(delta).max()))
        if delta_max <= tol:
            break
    return c


_CD_ROWS = None


def _cd_rows():
    """The compiled per-row coordinate descent of :func:`sparse_encode` (compiled on first use, not cached on disk)."""
    global _CD_ROWS
    if _CD_ROWS is None:
        import numba

        @numba.njit(nogil=True)
        def cd_rows(cx, G, alpha, positive, max_iter, tol, c):  # pragma: no cover - compiled
            n, k_atoms = cx.shape
            q = np.zeros(k_atoms)
            for i in range(n):
                q[:] = 0.0                      # q = c[i] @ G, c[i] starts at 0
                for _ in range(max_iter):
                    delta_max = 0.0
                    for k in range(k_atoms):
                        d = G[k, k]
                        if d <= 1e-12:
                            continue
                        r = cx[i, k] - q[k] + c[i, k] * d
                        if positive:
                            new = max(r - alpha, 0.0) / d
                        else:
                            a = abs(r) - alpha
                            new = (a if r > 0 else -a) / d if a > 0 else 0.0
                        delta = new - c[i, k]
                        if delta != 0.0:
                            for j in range(k_atoms):
                                q[j] += delta * G[k, j]
                            c[i, k] = new
                            if abs(delta) > delta_max:
                                delta_max = abs(delta)
                    if delta_max <= tol:
                        break

        _CD_ROWS = cd_rows
    return _CD_ROWS


class _OnlineDictionary:
    """Mini-batch online dictionary learning (Mairal et al.

    2010), ported from scikit-learn's ``MiniBatchDictionaryLearning`` (inner statistics ``A``, ``B``, forgetting factor,
    block-coordinate dictionary update with resampling of unused atoms) with :func:`sparse_encode` as the coder.
    """

    def __init__(self, n_components: int, alpha: float, batch_size: int, positive: bool, rng: np.random.Generator,
                 init: str = "svd", coder: str = "numba"):
        self.k, self.alpha, self.batch_size, self.positive, self.rng = n_components, alpha, batch_size, positive, rng
        self.init_method, self.coder = init, coder
        self.step = 0

    def init(self, X: np.ndarray) -> None:
        """SVD initialisation, or ``"random"``: K distinct rows of ``X`` drawn with the seed.

        SVD as scikit-learn: the top right singular vectors scaled by their values, the same for every seed.
        """
        if self.init_method == "random":
            D = _random_init(X, self.k, self.rng)
        else:
            _, s, vt = np.linalg.svd(np.asarray(X, dtype=np.float64), full_matrices=False)
            D = s[: self.k, None] * vt[: self.k]
        if len(D) < self.k:
            D = np.vstack([D, np.zeros((self.k - len(D), X.shape[1]))])
        self.D = D
        self.A = np.zeros((self.k, self.k))
        self.B = np.zeros((X.shape[1], self.k))

    def partial_fit(self, X: np.ndarray) -> None:
        X = np.asarray(X, dtype=np.float64)
        code = sparse_encode(X, self.D, self.alpha, self.positive, coder=self.coder)
        bs = self.batch_size
        theta = (self.step + 1) * bs if self.step < bs - 1 else bs ** 2 + self.step + 1 - bs
        beta = (theta + 1 - bs) / (theta + 1)
        self.A = beta * self.A + code.T @ code / bs
        self.B = beta * self.B + X.T @ code / bs
        for k in range(self.k):
            if self.A[k, k] > 1e-6:
                self.D[k] += (self.B[:, k] - self.A[k] @ self.D) / self.A[k, k]
            else:  # an unused atom: restart it from a random sample (plus 1% noise)
                newd = X[self.rng.integers(len(X))]
                self.D[k] = newd + self.rng.normal(0, 0.01 * (newd.std() or 1.0), len(newd))
            self.D[k] /= max(np.linalg.norm(self.D[k]), 1.0)
        self.step += 1

    def fit(self, X: np.ndarray, n_epochs: int, progress: bool = False) -> None:
        self.init(X)
        for _ in tqdm(range(n_epochs), desc="dictionary", unit="epoch", disable=not progress, leave=False):
            order = self.rng.permutation(len(X))
            for a in range(0, len(X), self.batch_size):
                self.partial_fit(X[order[a:a + self.batch_size]])


class PatternLearner:
    """Sparse dictionary learning over neurons' time courses (scikit-learn-like).

    Parameters
    ----------
    n_patterns : int
        ``K``, the number of representative patterns.
    alpha : float
        sparsity (L1 weight) of the codes, in correlation units (typical 0.05–0.3).
    batch_size : int
        neurons per mini-batch.
    n_epochs : int
        passes over the in-memory sample (``max_iter`` of scikit-learn) and, for models with
        more than ``max_in_memory`` neurons, streaming passes over all neurons.
    max_in_memory : int
        largest number of neurons held in memory at once for the initial fit.
    positive_code : bool
        constrain codes to be non-negative.
    random_state : int
        seed (sampling, initialisation, mini-batch order).
    init : str
        ``"svd"`` (scikit-learn's default: deterministic given the sample, so seeds differ only by the
        mini-batch order) or ``"random"`` (K neurons' time courses drawn k-means++-style with the seed:
        seeds start from different dictionaries; use it to measure stability).
    backend : str
        ``"numpy"`` (vectorised port, default) or ``"sklearn"`` (``MiniBatchDictionaryLearning``).
    coder : str
        the sparse coder of the ``"numpy"`` backend and of :meth:`transform`: ``"numba"`` (compiled, default)
        or ``"numpy"`` (see :func:`sparse_encode`); the same objective and tolerance.
    progress : bool
        show progress bars.

    Attributes (after fitting):
        components_: ``(K, n_trs)`` unit-norm atoms, in fitting order and sign.
    """

    def __init__(self, n_patterns: int = 10, alpha: float = 0.1, batch_size: int = 256, n_epochs: int = 20,
                 max_in_memory: int = 20000, positive_code: bool = False, random_state: int = 0,
                 backend: str = "numpy", progress: bool = False, init: str = "svd", coder: str = "numba"):
        if init not in ("svd", "random"):
            raise BrainlikeError(f"init must be 'svd' or 'random', not {init!r}")
        if coder not in ("numba", "numpy"):
            raise BrainlikeError(f"coder must be 'numba' or 'numpy', not {coder!r}")
        if backend not in ("numpy", "sklearn"):
            raise BrainlikeError(f"backend must be 'numpy' or 'sklearn', not {backend!r}")
        if n_patterns < 1:
            raise BrainlikeError(f"n_patterns must be >= 1, got {n_patterns}")
        if alpha < 0:
            raise BrainlikeError(f"alpha must be >= 0, got {alpha}")
        if batch_size < 1 or n_epochs < 1 or max_in_memory < n_patterns:
            raise BrainlikeError("batch_size and n_epochs must be >= 1 and max_in_memory >= n_patterns")
        self.n_patterns = n_patterns
        self.alpha = alpha
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.max_in_memory = max_in_memory
        self.positive_code = positive_code
        self.random_state = random_state
        self.backend = backend
        self.progress = progress
        self.init = init
        self.coder = coder

    def _estimator(self, dict_init: np.ndarray | None = None) -> MiniBatchDictionaryLearning:
        return MiniBatchDictionaryLearning(
            n_components=self.n_patterns, alpha=self.alpha, max_iter=self.n_epochs, batch_size=self.batch_size,
            fit_algorithm="cd", transform_algorithm="lasso_cd", transform_alpha=self.alpha,
            positive_code=self.positive_code, random_state=self.random_state, shuffle=True, tol=0.0,
            max_no_improvement=None, dict_init=dict_init)

    def fit(self, X: np.ndarray) -> PatternLearner:
        """Fit on in-memory time courses ``X``: ``(n_neurons, n_trs)`` (rows as from :mod:`.timecourses`)."""
        X = np.asarray(X, dtype=np.float32)
        return self.fit_blocks(lambda: iter([(np.arange(len(X)), X.T, ~(np.abs(X) > 0).any(axis=1))]))

    def fit_blocks(self, source: BlockSource) -> PatternLearner:
        """Fit from a re-iterable block source.

        ``source()`` yields ``(neurons (b,), timecourses (n_trs, b), dead (b,))``
        (:func:`.timecourses.iter_timecourses`).
        """
        rng = np.random.default_rng(self.random_state)
        # pass 1: a uniform reservoir sample of live neurons from all layers
        sample, seen, n_trs = None, 0, None
        for _, tc, dead in source():
            n_trs = tc.shape[0]
            sample, seen = _reservoir_add(sample, tc[:, ~dead].T, seen, self.max_in_memory, rng)
        if sample is None or len(sample) < self.n_patterns:
            raise BrainlikeError(f"dictionary learning needs at least n_patterns={self.n_patterns} neurons with a "
                                 f"non-constant time course, found {0 if sample is None else len(sample)}")
        if self.n_patterns > n_trs:
            raise BrainlikeError(f"n_patterns={self.n_patterns} exceeds the number of volumes ({n_trs})")
        if self.backend == "sklearn":
            est = self._estimator(_random_init(sample, self.n_patterns, rng) if self.init == "random" else None)
            est.fit(sample.astype(np.float64))
            step = est.partial_fit
        else:
            est = _OnlineDictionary(self.n_patterns, self.alpha, self.batch_size, self.positive_code, rng, self.init,
                                    self.coder)
            est.fit(sample, self.n_epochs, self.progress)
            step = est.partial_fit
        if seen > len(sample):
            # streaming over all neurons: the sample's dictionary initialises a fresh online pass
            if self.backend == "sklearn":
                est._A[:], est._B[:], est.n_steps_ = 0.0, 0.0, 0  # scikit-learn's inner statistics
            else:
                est.A[:], est.B[:], est.step = 0.0, 0.0, 0
            for _ in tqdm(range(self.n_epochs), desc="dictionary (streaming)", unit="epoch",
                          disable=not self.progress, leave=False):
                for _, tc, dead in source():
                    live = tc[:, ~dead].T
                    live = live[rng.permutation(len(live))]
                    for a in range(0, len(live), self.batch_size):
                        if len(live[a:a + self.batch_size]) >= self.n_patterns:
                            step(live[a:a + self.batch_size].astype(np.float64))
        D = np.asarray(est.components_ if self.backend == "sklearn" else est.D, dtype=np.float64)
        norms = np.linalg.norm(D, axis=1, keepdims=True)
        self.components_ = D / np.where(norms > 0, norms, 1.0)
        self.n_neurons_seen_ = seen
        self.n_trs_ = n_trs
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``(n_neurons, K)`` float32 sparse codes of time courses ``X`` ``(n_neurons, n_trs)``.

        (raw dictionary order and sign; :meth:`result` applies the conventions).
        """
        self._check_fitted()
        X = np.asarray(X, dtype=np.float32)
        codes = np.zeros((len(X), self.n_patterns), dtype=np.float32)
        live = (np.abs(X) > 0).any(axis=1)
        if live.any():
            codes[live] = sparse_encode(X[live], self.components_, self.alpha, self.positive_code,
                                        coder=self.coder).astype(np.float32)
        return codes

    def result(self, source: BlockSource, n_neurons: int) -> PatternResult:
        """Codes of all neurons (one streaming pass) with the ordering/sign conventions applied."""
        self._check_fitted()
        D = self.components_.astype(np.float32)
        codes = np.zeros((n_neurons, self.n_patterns), dtype=np.float32)
        dead_all = np.zeros(n_neurons, dtype=bool)
        sse = sst = 0.0
        for neurons, tc, dead in source():
            c = self.transform(tc.T)
            codes[neurons] = c
            dead_all[neurons] = dead
            resid = tc.T - c @ D
            sse += float((resid[~dead].astype(np.float64) ** 2).sum())
            sst += float((tc.T[~dead].astype(np.float64) ** 2).sum())
        energy = (codes.astype(np.float64) ** 2).sum(axis=0)
        order = np.argsort(-energy, kind="stable")
        D, codes = D[order], codes[:, order]
        sign = np.where(codes.sum(axis=0) < 0, -1.0, 1.0).astype(np.float32)
        if self.positive_code:
            sign[:] = 1.0
        return PatternResult(patterns=D * sign[:, None], codes=codes * sign[None, :], dead=dead_all,
                             reconstruction_r2=1.0 - sse / sst if sst > 0 else float("nan"),
                             seed=int(self.random_state))

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise BrainlikeError("PatternLearner is not fitted yet: call fit() or fit_blocks() first")


def _random_init(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``(min(k, n), n_trs)`` float64.

    ``k`` distinct rows of ``X`` ``(n, n_trs)`` chosen with ``rng``, spread out as in k-means++: each next row is drawn
    with probability proportional to ``(1 - max |cos|)²`` to the rows already chosen, so two starting atoms rarely sit
    on the same sub-group.
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    k = min(k, n)
    unit = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-30)
    chosen = [int(rng.integers(n))]
    closest = np.abs(unit @ unit[chosen[0]])
    for _ in range(1, k):
        w = (1.0 - np.clip(closest, 0.0, 1.0)) ** 2
        w[chosen] = 0.0
        nxt = int(rng.choice(n, p=w / w.sum())) if w.sum() > 0 else int(rng.choice(np.setdiff1d(np.arange(n), chosen)))
        chosen.append(nxt)
        closest = np.maximum(closest, np.abs(unit @ unit[nxt]))
    return X[chosen].copy()


def _reservoir_add(sample: np.ndarray | None, block: np.ndarray, seen: int, capacity: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Reservoir sampling (algorithm R), vectorised over a block.

    Returns the updated ``(m, n_trs)`` sample (``m <= capacity``) and the number of rows seen so far.
    """
    block = np.asarray(block, dtype=np.float32)
    if sample is None:
        sample = np.empty((0, block.shape[1]), dtype=np.float32)
    room = max(capacity - len(sample), 0)
    if room:
        sample = np.concatenate([sample, block[:room]])
    rest = block[room:]
    if len(rest):
        n = seen + room + np.arange(len(rest))
        slots = (rng.random(len(rest)) * (n + 1)).astype(np.int64)
        hit = np.flatnonzero(slots < capacity)
        # the last row written to a slot wins, as in the sequential algorithm
        _, last = np.unique(slots[hit][::-1], return_index=True)
        keep = hit[::-1][last]
        sample[slots[keep]] = rest[keep]
    return sample, seen + len(block)
