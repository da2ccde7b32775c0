"""Ridge-regression encoding models: language-model features -> brain recordings.

Public API::

    contiguous_folds(n_samples, n_splits=5, groups=None)      # time-ordered (group-aware) K-fold
    cross_validated_encoding(X, Y, ...) -> EncodingResult      # nested CV, held-out predictions
    RidgeCV(alphas=DEFAULT_ALPHAS, cv=5, backend="numpy", ...) # alpha per target, fast engine
    BandedRidgeCV(bands, ...)                                  # per-band penalty scalings
    pearson_r(y_true, y_pred), r2_score(y_true, y_pred)        # column-wise scores
    get_backend("numpy" | "torch" | "torch_cpu" | "torch_cuda")

All bad-input errors are :class:`EncodingError`, a ``ValueError`` subclass.
"""
from brainlike.encoding.backends import Backend, EncodingError, available_backends, get_backend
from brainlike.encoding.cv import EncodingResult, contiguous_folds, cross_validated_encoding
from brainlike.encoding.metrics import pearson_r, r2_score
from brainlike.encoding.ridge import DEFAULT_ALPHAS, BandedRidgeCV, RidgeCV

__all__ = [
    "DEFAULT_ALPHAS",
    "Backend",
    "BandedRidgeCV",
    "EncodingError",
    "EncodingResult",
    "RidgeCV",
    "available_backends",
    "contiguous_folds",
    "cross_validated_encoding",
    "get_backend",
    "pearson_r",
    "r2_score",
]
