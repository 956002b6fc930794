"""The task registry's values: workers as they recorded themselves, the task declarations
they recorded, and their wire form (camelCase, ISO 8601 UTC) for ``GET /workers``,
``GET /tasks`` and the CLI's ``--json``."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from jobtrack.domain.spec import TaskDeclaration
from jobtrack.domain.wire import iso

#: lease periods without a heartbeat after which a worker is shown stale
STALE_LEASES: Final = 3
#: lease periods without a heartbeat after which a worker's row is deleted
FORGET_LEASES: Final = 120


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker as it recorded itself; ``running`` and ``stale`` are read, not stored."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    running: int = 0
    stale: bool = False


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A task declaration as stored: when and by which worker it was last recorded."""

    declaration: TaskDeclaration
    updated_at: datetime
    worker_id: str | None


def worker_to_wire(w: WorkerInfo) -> dict[str, Any]:
    """A worker as ``GET /workers`` answers it."""
    return {"workerId": w.id, "host": w.host, "pid": w.pid, "queues": list(w.queues),
            "concurrency": w.concurrency, "version": w.version, "runningJobs": w.running,
            "startedAt": iso(w.started_at), "heartbeatAt": iso(w.heartbeat_at),
            "stale": w.stale}


def task_to_wire(t: TaskRecord) -> dict[str, Any]:
    """A task declaration as ``GET /tasks`` answers it."""
    d = t.declaration
    return {"name": d.name, "queueName": d.queue, "phases": list(d.phases),
            "maxAttempts": d.max_attempts, "retry": dict(d.retry),
            "timeoutSeconds": d.timeout, "parameters": list(d.parameters),
            "requiredParameters": list(d.required), "acceptsAnyData": d.accepts_any,
            "updatedAt": iso(t.updated_at), "workerId": t.worker_id}
