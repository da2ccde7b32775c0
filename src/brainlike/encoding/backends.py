"""Array backends for the ridge engine: numpy (CPU) and torch (CPU, or CUDA when present).

The engine in :mod:`brainlike.encoding.spectral` is written once against the small
:class:`Backend` interface below (modelled on himalaya's backend abstraction).
Arithmetic (``+ - * / @``, slicing, ``None`` broadcasting, ``.T``) is shared by numpy
arrays and torch tensors; everything that differs between the two (creation, dtype casts,
reductions, eigendecomposition, indexing with index arrays, transfer to numpy) goes through
a backend method.

Backends are chosen by name with :func:`get_backend`:

* ``"numpy"``: numpy arrays, ``numpy.linalg.eigh`` (LAPACK ``syevd``) and scipy's Cholesky, with
  the thread counts of :mod:`brainlike.encoding.threads` (fixed, not load-dependent).
* ``"torch"``: torch tensors on CUDA if ``torch.cuda.is_available()``, else on CPU.
* ``"torch_cpu"`` / ``"torch_cuda"``: torch on an explicit device.

Dtypes are given as strings, ``"float32"`` or ``"float64"``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from typing_extensions import override

import brainlike.encoding.threads as _threads
from brainlike.encoding.validation import EncodingError

__all__ = [
    "Backend",
    "NumpyBackend",
    "TorchBackend",
    "EncodingError",
    "get_backend",
    "available_backends",
]

Array = Any  # np.ndarray or torch.Tensor

_DTYPES = ("float32", "float64")


def _check_dtype(dtype: str) -> str:
    if dtype not in _DTYPES:
        raise EncodingError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    return dtype


class Backend:
    """Interface of an array backend (see module docstring).

    All methods take and return backend arrays unless stated otherwise. ``dtype`` arguments
    are the strings ``"float32"`` or ``"float64"``.
    """

    name: str = "abstract"

    # ----- creation / transfer
    def asarray(self, x: Any, dtype: str | None = None) -> Array:  # pragma: no cover - abstract
        """Convert ``x`` (numpy array or backend array) to a backend array of ``dtype``."""
        raise NotImplementedError

    def to_numpy(self, x: Array) -> np.ndarray:  # pragma: no cover - abstract
        """Return ``x`` as a numpy array (a copy when it lives on another device)."""
        raise NotImplementedError

    def zeros(self, shape: tuple[int, ...], dtype: str) -> Array:  # pragma: no cover
        """A zero-filled backend array of ``shape`` and ``dtype``."""
        raise NotImplementedError

    def cast(self, x: Array, dtype: str) -> Array:  # pragma: no cover
        """Return ``x`` converted to ``dtype`` (no copy if it already has it)."""
        raise NotImplementedError

    def take(self, x: Array, idx: np.ndarray, axis: int = 0) -> Array:  # pragma: no cover
        """Gather ``x`` along ``axis`` at integer indices ``idx`` (numpy int array)."""
        raise NotImplementedError

    def index(self, idx: np.ndarray) -> Any:  # pragma: no cover
        """Convert an int index array (numpy) into an index usable on backend arrays."""
        raise NotImplementedError

    # ----- reductions
    def sum(self, x: Array, axis: int) -> Array:  # pragma: no cover
        """Sum along ``axis``, in the dtype of ``x``."""
        raise NotImplementedError

    def mean(self, x: Array, axis: int) -> Array:  # pragma: no cover
        """Mean along ``axis``, in the dtype of ``x``."""
        raise NotImplementedError

    def sumsq64(self, x: Array, axis: int = 0) -> Array:  # pragma: no cover
        """Sum of squares along ``axis``, accumulated and returned in float64."""
        raise NotImplementedError

    def sum64(self, x: Array, axis: int = 0) -> Array:  # pragma: no cover
        """Sum along ``axis``, accumulated and returned in float64 (no float64 copy of ``x``)."""
        raise NotImplementedError

    # ----- linear algebra
    def mul64(self, a: Array, b: Array) -> Array:  # pragma: no cover
        """Element-wise ``a * b`` computed and returned in float64 (exact for float32 inputs)."""
        raise NotImplementedError

    def eigh(self, a: Array) -> tuple[Array, Array]:  # pragma: no cover
        """Eigendecomposition of a symmetric matrix ``a`` (k, k).

        Returns ``(w, v)``: eigenvalues ``w`` (k,) in ascending order and orthonormal
        eigenvectors ``v`` (k, k) as columns, in the dtype of ``a``.
        """
        raise NotImplementedError

    def solve_spd(self, a: Array, b: Array) -> Array:  # pragma: no cover
        """Solve ``a x = b`` for a symmetric positive definite ``a`` (k, k) by Cholesky.

        ``b`` is (k, m); returns ``x`` (k, m). Raises ``numpy.linalg.LinAlgError`` when
        ``a`` is not numerically positive definite.
        """
        raise NotImplementedError

    def maximum(self, x: Array, value: float) -> Array:  # pragma: no cover
        """Element-wise ``max(x, value)``."""
        raise NotImplementedError

    def sqrt(self, x: Array) -> Array:  # pragma: no cover
        """Element-wise square root."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on CPU); used around timings."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NumpyBackend(Backend):
    """numpy arrays; symmetric eigendecompositions with ``scipy.linalg.eigh``."""

    name = "numpy"

    @override
    def asarray(self, x: Any, dtype: str | None = None) -> np.ndarray:
        if dtype is None:
            return np.asarray(x)
        return np.asarray(x, dtype=_check_dtype(dtype))

    @override
    def to_numpy(self, x: Array) -> np.ndarray:
        return np.asarray(x)

    @override
    def zeros(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        return np.zeros(shape, dtype=_check_dtype(dtype))

    @override
    def cast(self, x: np.ndarray, dtype: str) -> np.ndarray:
        return x.astype(_check_dtype(dtype), copy=False)

    @override
    def take(self, x: np.ndarray, idx: np.ndarray, axis: int = 0) -> np.ndarray:
        return np.take(x, idx, axis=axis)

    @override
    def index(self, idx: np.ndarray) -> np.ndarray:
        return np.asarray(idx, dtype=np.int64)

    @override
    def sum(self, x: np.ndarray, axis: int) -> np.ndarray:
        return x.sum(axis=axis)

    @override
    def mean(self, x: np.ndarray, axis: int) -> np.ndarray:
        return x.mean(axis=axis)

    @override
    def sumsq64(self, x: np.ndarray, axis: int = 0) -> np.ndarray:
        if x.dtype == np.float64:
            return np.einsum("ij,ij->j", x, x) if axis == 0 and x.ndim == 2 else (x * x).sum(axis)
        # float32 squares (exact to float32 rounding), accumulated in float64
        return np.square(x).sum(axis=axis, dtype=np.float64)

    @override
    def sum64(self, x: np.ndarray, axis: int = 0) -> np.ndarray:
        return x.sum(axis=axis, dtype=np.float64)

    @override
    def mul64(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.multiply(a, b, dtype=np.float64)

    @override
    def eigh(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if a.shape[0] == 0:
            return np.zeros(0, dtype=a.dtype), np.zeros((0, 0), dtype=a.dtype)
        # numpy's syevd (divide and conquer): the most robust timing on Gram matrices of
        # language-model features, whose clustered small eigenvalues can slow syevr (MRRR) down
        # several-fold (1920 x 1920 float64 here: evd 0.52 s / evr 0.77 s with 2 threads, 0.90 /
        # 1.09 s with 1). numpy's, not scipy's: scipy bundles a second OpenBLAS whose idle worker
        # threads spin on the same cores as numpy's after every GEMM (median of 8 eigendecompositions
        # right after a GEMM: 0.58 s with numpy's LAPACK, 0.68 s with scipy's).
        # Threads: brainlike.encoding.threads.lapack_threads().
        with _threads.blas_threads(_threads.lapack_threads(a.shape[0])):
            w, v = np.linalg.eigh(a)
        return w, v

    @override
    def solve_spd(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import scipy.linalg

        # see eigh; measured 0.22 s vs 2.5 s under load
        with _threads.blas_threads(_threads.lapack_threads(a.shape[0])):
            c, low = scipy.linalg.cho_factor(a, lower=True, check_finite=False)
        return scipy.linalg.cho_solve((c, low), b, check_finite=False)

    @override
    def maximum(self, x: np.ndarray, value: float) -> np.ndarray:
        return np.maximum(x, value)

    @override
    def sqrt(self, x: np.ndarray) -> np.ndarray:
        return np.sqrt(x)


class TorchBackend(Backend):
    """torch tensors on one device (``"cpu"`` or ``"cuda"``); ``torch.linalg.eigh``."""

    name = "torch"

    def __init__(self, device: str | None = None) -> None:
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is a dependency
            raise EncodingError("the torch backend needs PyTorch installed") from exc
        self._torch = torch
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EncodingError("backend 'torch_cuda' requested but CUDA is not available")
        self.device = torch.device(device)
        self.name = f"torch_{self.device.type}"

    def _dt(self, dtype: str) -> Any:
        return {"float32": self._torch.float32, "float64": self._torch.float64}[_check_dtype(dtype)]

    @override
    def asarray(self, x: Any, dtype: str | None = None) -> Any:
        torch = self._torch
        if isinstance(x, torch.Tensor):
            t = x.to(self.device)
        else:
            arr = np.asarray(x)
            if dtype is not None:
                arr = arr.astype(_check_dtype(dtype), copy=False)
            if not arr.flags.c_contiguous and not arr.flags.f_contiguous:
                arr = np.ascontiguousarray(arr)
            if not arr.flags.writeable:  # torch.from_numpy warns on read-only memory
                arr = arr.copy()
            t = torch.from_numpy(arr).to(self.device)
        if dtype is not None:
            t = t.to(self._dt(dtype))
        return t

    @override
    def to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, self._torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    @override
    def zeros(self, shape: tuple[int, ...], dtype: str) -> Any:
        return self._torch.zeros(shape, dtype=self._dt(dtype), device=self.device)

    @override
    def cast(self, x: Any, dtype: str) -> Any:
        return x.to(self._dt(dtype))

    @override
    def take(self, x: Any, idx: np.ndarray, axis: int = 0) -> Any:
        index = self._torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)
        return self._torch.index_select(x, axis, index)

    @override
    def index(self, idx: np.ndarray) -> Any:
        return self._torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)

    @override
    def sum(self, x: Any, axis: int) -> Any:
        return x.sum(dim=axis)

    @override
    def mean(self, x: Any, axis: int) -> Any:
        return x.mean(dim=axis)

    @override
    def sumsq64(self, x: Any, axis: int = 0) -> Any:
        return (x * x).sum(dim=axis, dtype=self._torch.float64)

    @override
    def sum64(self, x: Any, axis: int = 0) -> Any:
        return x.sum(dim=axis, dtype=self._torch.float64)

    @override
    def mul64(self, a: Any, b: Any) -> Any:
        return a.to(self._torch.float64) * b.to(self._torch.float64)

    @override
    def eigh(self, a: Any) -> tuple[Any, Any]:
        if a.shape[0] == 0:
            return a.new_zeros(0), a.new_zeros((0, 0))
        w, v = self._torch.linalg.eigh(a)
        return w, v

    @override
    def solve_spd(self, a: Any, b: Any) -> Any:
        L, info = self._torch.linalg.cholesky_ex(a)
        if int(info) != 0:
            raise np.linalg.LinAlgError("matrix is not positive definite")
        return self._torch.cholesky_solve(b, L)

    @override
    def maximum(self, x: Any, value: float) -> Any:
        return self._torch.clamp(x, min=value)

    @override
    def sqrt(self, x: Any) -> Any:
        return self._torch.sqrt(x)

    @override
    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)

    def __repr__(self) -> str:
        return f"TorchBackend(device={str(self.device)!r})"


_BACKEND_NAMES = ("numpy", "torch", "torch_cpu", "torch_cuda")


def available_backends() -> list[str]:
    """Names accepted by :func:`get_backend` that work on this machine."""
    names = ["numpy"]
    try:
        import torch

        names += ["torch", "torch_cpu"]
        if torch.cuda.is_available():
            names.append("torch_cuda")
    except ImportError:  # pragma: no cover
        pass
    return names


def get_backend(backend: str | Backend = "numpy") -> Backend:
    """Return a :class:`Backend` from a name or pass an instance through.

    Parameters
    ----------
    backend : {"numpy", "torch", "torch_cpu", "torch_cuda"} or Backend
        ``"torch"`` picks CUDA when available, else CPU.

    Raises
    ------
    EncodingError (a ValueError)
        For an unknown name, or ``"torch_cuda"`` without CUDA.
    """
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str) or backend not in _BACKEND_NAMES:
        raise EncodingError(f"unknown backend {backend!r}; choose one of {_BACKEND_NAMES}")
    if backend == "numpy":
        return NumpyBackend()
    if backend == "torch":
        return TorchBackend(None)
    if backend == "torch_cpu":
        return TorchBackend("cpu")
    return TorchBackend("cuda")
