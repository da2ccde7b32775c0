"""The executor interface: run picklable task functions somewhere, get their results back.

Small on purpose (like :mod:`concurrent.futures`): :meth:`Executor.submit` a module-level function with
its arguments and a :class:`Resources` request, get a :class:`TaskFuture`; :meth:`Executor.as_completed`
yields futures as they finish. A future may be passed as an argument of a later task: the backend hands
the task the result (on Ray without a round trip through the driver). :meth:`Executor.put` shares a large
read-only object (an array of responses) with many tasks.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Resources:
    """What one task needs.

    Attributes
    ----------
    num_cpus : float
        CPU cores (Ray reserves them and sets the task's thread count accordingly).
    num_gpus : float
        GPUs; a backend without GPUs drops the request (the task then runs on the CPU).
    memory_gb : float or None
        Memory to reserve, GiB (None: no reservation).
    """

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_gb: float | None = None


class TaskFuture(ABC):
    """A handle on a submitted task."""

    @abstractmethod
    def result(self) -> Any:
        """The task's return value (runs or waits for it); re-raises the task's exception."""


class Executor(ABC):
    """Runs tasks; a context manager (``with make_executor("ray") as ex: ...``)."""

    name: str = "executor"

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any, resources: Resources = Resources()) -> TaskFuture:
        """Schedule ``fn(*args)``; ``fn`` must be importable (module level) and its arguments picklable.

        Arguments that are futures of this executor are replaced by their results.
        """

    @abstractmethod
    def as_completed(self, futures: Iterable[TaskFuture]) -> Iterator[TaskFuture]:
        """Yield the futures as their tasks finish (in any order)."""

    def put(self, value: Any) -> Any:
        """A handle to pass ``value`` to many tasks without copying it for each (default: the value)."""
        return value

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], resources: Resources = Resources()) -> list[Any]:
        """``[fn(*args) for args in zip(*iterables)]``, run by the executor; results in input order."""
        futures = [self.submit(fn, *args, resources=resources) for args in zip(*iterables)]
        return [f.result() for f in futures]

    @property
    def has_gpus(self) -> bool:
        """Whether GPU requests can be met (tasks asking for GPUs get one)."""
        return False

    def shutdown(self) -> None:  # noqa: B027 - an optional hook, a no-op unless a backend overrides it
        """Release workers/connections (no-op by default)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
