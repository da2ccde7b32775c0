"""The default executor: tasks run in this process, one after the other."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from typing_extensions import override

from brainlike.execution.base import Executor, Resources, TaskFuture

_PENDING = object()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


class LocalFuture(TaskFuture):
    """Runs its task when the result is first asked for.

    So a sweep that writes each result as it comes keeps one result in memory at a time.
    """

    def __init__(self, fn: Callable[..., Any], args: tuple):
        self._fn, self._args = fn, args
        self._value: Any = _PENDING

    @override
    def result(self) -> Any:
        if self._value is _PENDING:
            args = tuple(a.result() if isinstance(a, LocalFuture) else a for a in self._args)
            try:
                self._value = self._fn(*args)
            except BaseException as exc:  # remembered: asking again re-raises instead of re-running
                self._value = _Failed(exc)
            self._fn = self._args = None  # type: ignore[assignment]  # drop references to inputs
        if isinstance(self._value, _Failed):
            raise self._value.exc
        return self._value

    def done(self) -> bool:
        """Whether the task has run."""
        return self._value is not _PENDING


class LocalExecutor(Executor):
    """In-process, sequential; resource requests are ignored (GPU tasks use a GPU if torch sees one)."""

    name = "local"

    @override
    def submit(self, fn: Callable[..., Any], *args: Any, resources: Resources = Resources()) -> LocalFuture:
        return LocalFuture(fn, args)

    @override
    def as_completed(self, futures: Iterable[TaskFuture]) -> Iterator[TaskFuture]:
        for f in futures:  # submission order: each runs here, when its turn comes
            f.result()
            yield f

    @property
    @override
    def has_gpus(self) -> bool:
        try:
            import torch

            return bool(torch.cuda.is_available())
        except Exception:  # pragma: no cover - torch is a dependency
            return False
