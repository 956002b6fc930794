"""A worker's entry in the task registry (:mod:`jobtrack.store.registry`).

On start the worker records itself and its task declarations; it refreshes its row with
the cadence of its lease heartbeat (``lease_seconds / 3``), records itself again if its
row was aged out meanwhile, and deletes it at a clean shutdown. Each refresh also deletes
workers silent for ``FORGET_LEASES`` lease periods. The registry only informs (and lets
enqueuers check jobs against declarations): a failed write is logged and tried again at
the next beat, never a reason to stop working.
"""

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version

from jobtrack.domain.registry import FORGET_LEASES, WorkerInfo
from jobtrack.queue.app import App
from jobtrack.store import registry

log = logging.getLogger("jobtrack.worker")


def _version() -> str:
    try:
        return version("jobtrack")
    except PackageNotFoundError:
        return "0"


class Presence:
    """Records one worker and its tasks, keeps the record fresh, removes it."""

    def __init__(self, app: App, *, worker_id: str, queues: Sequence[str],
                 concurrency: int) -> None:
        self.app = app
        now = datetime.now(UTC)
        self.info = WorkerInfo(
            id=worker_id, host=socket.gethostname(), pid=os.getpid(), queues=tuple(queues),
            concurrency=concurrency, version=_version(), started_at=now, heartbeat_at=now)
        self.declared = [task.declaration() for task in app.tasks]
        self.recorded = False

    async def enter(self) -> None:
        """Record the worker and its task declarations."""
        try:
            async with self.app.db.write() as conn:
                await registry.register_worker(conn, self.info, self.declared,
                                               datetime.now(UTC))
            self.recorded = True
        except Exception:
            log.exception("recording worker %s in the task registry failed; trying again "
                          "at the next heartbeat", self.info.id)

    async def beat(self) -> None:
        """Refresh the record (and record it again if it is gone)."""
        if not self.recorded:
            await self.enter()
            return
        now = datetime.now(UTC)
        lease = self.app.settings.lease_seconds
        try:
            async with self.app.db.write() as conn:
                self.recorded = await registry.heartbeat(
                    conn, self.info.id, now,
                    forget_before=now - timedelta(seconds=lease * FORGET_LEASES))
        except Exception:
            log.exception("worker heartbeat in the task registry failed; trying again")
            return
        if not self.recorded:
            await self.enter()

    async def run(self, pause: Callable[[float], Awaitable[bool]]) -> None:
        """Beat every ``lease_seconds / 3`` until ``pause`` says the worker stops."""
        while not await pause(self.app.settings.lease_seconds / 3):
            await self.beat()

    async def leave(self) -> None:
        """Delete the record (a clean shutdown); the task declarations stay."""
        try:
            async with self.app.db.write() as conn:
                await registry.remove_worker(conn, self.info.id)
        except Exception:
            log.exception("removing worker %s from the task registry failed; it ages out",
                          self.info.id)
