"""Ray backend: tasks become ``ray.remote`` tasks on a local Ray instance or a cluster.

Start a cluster however your site does it (``ray start --head`` in a SLURM job, KubeRay on Kubernetes;
see ``docs/scaling.md``) and point the spec at it (``ray: {address: auto}``) or set ``$RAY_ADDRESS``.
Without an address a local instance is started (and stopped again at :meth:`RayExecutor.shutdown`).
If Ray is already initialised in this process (a notebook, a test), that instance is used as it is.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from typing_extensions import override

from brainlike.errors import BrainlikeError
from brainlike.execution.base import Executor, Resources, TaskFuture

#: environment variables handed to the workers of a cluster (a local instance inherits the environment)
FORWARDED_ENV = ("BRAINLIKE_CACHE", "BRAINLIKE_SHARED_DATA", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME",
                 "TOKENIZERS_PARALLELISM")


def _ray():
    try:
        import ray
    except ImportError:
        raise BrainlikeError("executor 'ray' needs Ray: pip install 'brainlike[ray]' "
                             "(or pip install 'ray>=2.40')") from None
    return ray


class RayFuture(TaskFuture):
    """A Ray object reference."""

    def __init__(self, ref):
        self.ref = ref

    @override
    def result(self) -> Any:
        ray = _ray()
        try:
            return ray.get(self.ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BrainlikeError):  # a clear error stays a clear error
                raise cause from None
            raise


class RayExecutor(Executor):
    """Runs tasks with Ray.

    Parameters
    ----------
    address : str, optional
        ``None`` (``$RAY_ADDRESS`` if set, else a new local instance), ``"auto"`` or ``"host:port"`` (the
        cluster this machine is part of), ``"ray://head:10001"`` (Ray client).
    num_cpus, num_gpus : int, optional
        Cores/GPUs of a new local instance (ignored when joining a cluster).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None):
        ray = _ray()
        self._owns = False
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS") or None
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:  # a fresh local instance: its workers inherit this environment
                kwargs.update(num_cpus=num_cpus, num_gpus=num_gpus)
            else:
                env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
                if env:
                    kwargs["runtime_env"] = {"env_vars": env}
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise BrainlikeError(f"cannot start or join a Ray cluster (address={address!r}): {exc}") from None
            self._owns = True
        self._remotes: dict[Callable, Any] = {}
        self._gpus = float(ray.cluster_resources().get("GPU", 0.0))

    @property
    @override
    def has_gpus(self) -> bool:
        return self._gpus > 0

    def _remote(self, fn: Callable) -> Any:
        if fn not in self._remotes:
            self._remotes[fn] = _ray().remote(fn)
        return self._remotes[fn]

    @override
    def submit(self, fn: Callable[..., Any], *args: Any, resources: Resources = Resources()) -> RayFuture:
        opts: dict[str, Any] = {"num_cpus": resources.num_cpus,
                                "num_gpus": resources.num_gpus if self.has_gpus else 0}
        if resources.memory_gb:
            opts["memory"] = int(resources.memory_gb * 2**30)
        # futures and put() handles become top-level ObjectRefs: Ray resolves them (zero-copy for arrays)
        args = tuple(a.ref if isinstance(a, RayFuture) else a for a in args)
        return RayFuture(self._remote(fn).options(**opts).remote(*args))

    @override
    def put(self, value: Any) -> Any:
        return _ray().put(value)

    @override
    def as_completed(self, futures: Iterable[TaskFuture]) -> Iterator[TaskFuture]:
        ray = _ray()
        by_ref = {f.ref: f for f in futures}  # type: ignore[attr-defined]
        pending = list(by_ref)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                yield by_ref[ref]

    @override
    def shutdown(self) -> None:
        if self._owns:
            _ray().shutdown()
            self._owns = False
