"""An executor by name.

Kept apart from :mod:`.base` so that the backends import the interface, not the other way round.
"""
from __future__ import annotations

from brainlike.errors import BrainlikeError
from brainlike.execution.base import Executor


def make_executor(kind: str = "local", *, address: str | None = None, num_cpus: int | None = None,
                  num_gpus: int | None = None) -> Executor:
    """An executor by name: ``"local"`` (in-process, sequential) or ``"ray"``.

    Parameters
    ----------
    kind : {"local", "ray"}
        The executor.
    address : str, optional
        Ray only: ``None`` starts a local Ray instance (or joins ``$RAY_ADDRESS``), ``"auto"`` joins the
        cluster this machine belongs to, ``"ray://head:10001"`` a remote one.
    num_cpus, num_gpus : int, optional
        Ray only, for a local instance: cores and GPUs to give it.

    Returns
    -------
    Executor

    Raises
    ------
    BrainlikeError
        For an unknown ``kind``.
    """
    if kind == "local":
        from brainlike.execution.local import LocalExecutor

        return LocalExecutor()
    if kind == "ray":
        from brainlike.execution.ray_backend import RayExecutor

        return RayExecutor(address=address, num_cpus=num_cpus, num_gpus=num_gpus)
    raise BrainlikeError(f"executor must be 'local' or 'ray', not {kind!r}")
