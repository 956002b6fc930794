"""Tasks: the functions a worker can run, registered on an :class:`~jobtrack.queue.app.App`.

A task is ``async def f(ctx, **kwargs)`` (run on the worker's event loop) or a plain
``def f(ctx, **kwargs)`` (run in the worker's thread pool). The registry is an object
owned by one App, never a module-level global.
"""

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobtrack.domain.retry import RetryPolicy
from jobtrack.errors import TaskNotFound, ValidationFailed

#: keys jobtrack itself puts into a job's data (a flow job carries its ``flowId``)
RESERVED_DATA_KEYS = frozenset({"flowId"})


@dataclass(frozen=True, slots=True)
class Task:
    """One registered task and how its jobs run."""

    name: str
    fn: Callable[..., Any]
    queue: str = "default"
    phases: tuple[str, ...] = ()
    #: attempts a job of this task gets; None: the settings' ``default_max_attempts``
    max_attempts: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: seconds one attempt may run; None: no limit
    timeout: float | None = None
    is_async: bool = True
    #: data keys the function accepts; None: any (it takes ``**kwargs``)
    accepts: frozenset[str] | None = None

    def arguments(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments for one job: its data, less keys jobtrack added that the
        function does not take."""
        if self.accepts is None or not RESERVED_DATA_KEYS & data.keys():
            return dict(data)
        return {k: v for k, v in data.items()
                if k not in RESERVED_DATA_KEYS or k in self.accepts}


def make_task(
    fn: Callable[..., Any],
    *,
    name: str | None,
    queue: str,
    phases: Sequence[str],
    max_attempts: int | None,
    retry: RetryPolicy | None,
    timeout: float | None,
) -> Task:
    """Check a task's options and describe it."""
    if not callable(fn):
        raise ValidationFailed(f"a task must be a function, not {type(fn).__name__}")
    task_name = name or getattr(fn, "__name__", None)
    if not task_name:
        raise ValidationFailed("this task needs a name: pass @app.task(name=...)")
    if len(set(phases)) != len(phases):
        raise ValidationFailed(f"task {task_name!r}: phase names must be unique")
    if max_attempts is not None and max_attempts < 1:
        raise ValidationFailed(f"task {task_name!r}: max_attempts must be at least 1")
    if timeout is not None and timeout <= 0:
        raise ValidationFailed(f"task {task_name!r}: timeout must be positive seconds")
    params = inspect.signature(fn).parameters.values()
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return Task(
        name=task_name,
        fn=fn,
        queue=queue,
        phases=tuple(phases),
        max_attempts=max_attempts,
        retry=retry or RetryPolicy(),
        timeout=timeout,
        is_async=inspect.iscoroutinefunction(fn),
        accepts=None if var_kw else frozenset(p.name for p in params),
    )


class TaskRegistry:
    """The tasks of one App, by name."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}

    def add(self, task: Task) -> None:
        if task.name in self._tasks:
            raise ValidationFailed(f"a task named {task.name!r} is already registered")
        self._tasks[task.name] = task

    def get(self, name: str) -> Task | None:
        return self._tasks.get(name)

    def __getitem__(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise TaskNotFound(f"no task named {name!r}; registered: {known}",
                               details={"name": name}) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def queues(self) -> list[str]:
        """Every queue a task is registered on, in registration order."""
        return list(dict.fromkeys(t.queue for t in self._tasks.values()))
