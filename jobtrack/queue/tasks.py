"""Tasks: the functions a worker can run, registered on an :class:`~jobtrack.queue.app.App`.

A task is ``async def f(ctx, **kwargs)`` (run on the worker's event loop) or a plain
``def f(ctx, **kwargs)`` (run in the worker's thread pool): its first parameter is the job
context, and the job's data comes as keyword arguments after it. The signature is checked
when the task is declared, so a function without the context (Celery style,
``def add(x, y)``) is refused then, not when its first job runs. The registry is an object
owned by one App, never a module-level global.
"""

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobtrack.domain.retry import RetryPolicy
from jobtrack.domain.spec import DEFAULT_QUEUE, RESERVED_DATA_KEYS, TaskDeclaration
from jobtrack.errors import TaskNotFound, ValidationFailed

#: names a task's first parameter (the job context) may have without an annotation
CONTEXT_NAMES = frozenset({"ctx", "context", "_ctx", "_context", "_"})
#: annotations that mark the first parameter as the job context
CONTEXT_TYPES = frozenset({"JobContext", "SyncJobContext"})

P = inspect.Parameter


@dataclass(frozen=True, slots=True)
class Task:
    """One registered task and how its jobs run."""

    name: str
    fn: Callable[..., Any]
    queue: str = DEFAULT_QUEUE
    phases: tuple[str, ...] = ()
    #: attempts a job of this task gets; None: the settings' ``default_max_attempts``
    max_attempts: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: seconds one attempt may run; None: no limit
    timeout: float | None = None
    is_async: bool = True
    #: data keys the function accepts; None: any (it takes ``**kwargs``)
    accepts: frozenset[str] | None = None
    #: the keyword parameters after the context, in order, and those without a default
    parameters: tuple[str, ...] = ()
    required: tuple[str, ...] = ()

    def declaration(self) -> TaskDeclaration:
        """What this task says about its jobs (recorded in the task registry)."""
        r = self.retry
        return TaskDeclaration(
            name=self.name, queue=self.queue, phases=self.phases,
            max_attempts=self.max_attempts,
            retry={"base": r.base, "factor": r.factor, "cap": r.cap, "jitter": r.jitter},
            timeout=self.timeout, parameters=self.parameters, required=self.required,
            accepts_any=self.accepts is None,
        )

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
    params = _data_parameters(task_name, fn)
    var_kw = any(p.kind is P.VAR_KEYWORD for p in params)
    named = [p for p in params if p.kind in (P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY)]
    return Task(
        name=task_name,
        fn=fn,
        queue=queue,
        phases=tuple(phases),
        max_attempts=max_attempts,
        retry=retry or RetryPolicy(),
        timeout=timeout,
        is_async=inspect.iscoroutinefunction(fn),
        accepts=None if var_kw else frozenset(p.name for p in named),
        parameters=tuple(p.name for p in named),
        required=tuple(p.name for p in named if p.default is P.empty),
    )



def _is_context(param: inspect.Parameter) -> bool:
    if param.kind is P.VAR_POSITIONAL:
        return True  # def f(*args, **kwargs): the context is args[0]
    if param.kind not in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
        return False
    hint = param.annotation
    hint_name = hint if isinstance(hint, str) else getattr(hint, "__name__", "")
    if hint is not P.empty:
        return str(hint_name).rsplit(".", 1)[-1] in CONTEXT_TYPES or param.name in CONTEXT_NAMES
    return param.name in CONTEXT_NAMES or param.name.startswith("ctx")


def _data_parameters(task_name: str, fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters that take the job's data: everything after the context, which
    must come first (positional) and may not be followed by positional-only ones."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return [P("kwargs", P.VAR_KEYWORD)]  # no signature to read (a builtin): trust it
    shown = ", ".join(p.name for p in params)
    fix = (f"declare it as def {task_name}(ctx, {shown}) (the job's data comes as keyword "
           "arguments after the context)")
    if not params or not _is_context(params[0]):
        got = f"its first parameter is {params[0].name!r}" if params else "it takes none"
        raise ValidationFailed(
            f"task {task_name!r}: the first parameter of a task must be the job context "
            f"(ctx), but {got}; {fix}",
            details={"field": "fn", "task": task_name})
    rest = params[1:]
    for p in rest:
        if p.kind in (P.POSITIONAL_ONLY, P.VAR_POSITIONAL):
            raise ValidationFailed(
                f"task {task_name!r}: parameter {p.name!r} cannot be given by keyword; "
                "a task's data parameters come after the context and are passed by name",
                details={"field": "fn", "task": task_name})
    return rest


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
