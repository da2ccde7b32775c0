"""Ridge-regression encoding models: language-model features -> brain recordings.

Public API::

    contiguous_folds(n_samples, n_splits=5, groups=None, gap=0)  # time-ordered (group-aware) K-fold
    EncodingOptions(n_splits=5, inner_splits=5, alphas=None, ...)  # the settings of a fit, frozen
    cross_validated_encoding(X, Y, options=None, groups=None, **overrides) -> EncodingResult
    RidgeCV(alphas=DEFAULT_ALPHAS, cv=5, backend="numpy", ...)   # alpha per target, fast engine
    BandedRidgeCV(bands, ...)                                    # per-band penalty scalings
    pearson_r(y_true, y_pred), r2_score(y_true, y_pred)          # column-wise scores
    get_backend("numpy" | "torch" | "torch_cpu" | "torch_cuda")

All bad-input errors are :class:`EncodingError`, a ``ValueError`` subclass.

Modules, each with one job; imports only go down this list (no cycles)::

    validation   EncodingError, DEFAULT_ALPHAS, check_xy, check_alphas      (bottom)
    metrics      pearson_r, r2_score                                          (bottom)
    threads      fixed BLAS/LAPACK thread counts of the factorisations        -> validation
    folds        contiguous_folds, resolve_cv, MIN_TEST_FOLD_SIZE             -> validation
    backends     numpy / torch array backends                                 -> validation, threads
    spectral     the ridge engine: decompositions, scores of all alphas, refit -> backends
    options      EncodingOptions (validated settings of a fit)               -> validation, folds, backends
    estimators   RidgeCV, BandedRidgeCV (scikit-learn estimators)             -> all of the above
    cv           cross_validated_encoding, EncodingResult                     -> estimators, folds
"""
from brainlike.encoding.backends import Backend, available_backends, get_backend
from brainlike.encoding.cv import EncodingResult, cross_validated_encoding
from brainlike.encoding.estimators import BandedRidgeCV, RidgeCV
from brainlike.encoding.folds import contiguous_folds
from brainlike.encoding.metrics import pearson_r, r2_score
from brainlike.encoding.options import EncodingOptions
from brainlike.encoding.validation import DEFAULT_ALPHAS, EncodingError

__all__ = [
    "DEFAULT_ALPHAS",
    "Backend",
    "BandedRidgeCV",
    "EncodingError",
    "EncodingOptions",
    "EncodingResult",
    "RidgeCV",
    "available_backends",
    "contiguous_folds",
    "cross_validated_encoding",
    "get_backend",
    "pearson_r",
    "r2_score",
]
