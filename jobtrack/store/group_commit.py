"""Group commit of new jobs: callers that enqueue at the same time share a transaction.

One commit per job is the limit of a caller that enqueues one job at a time; many callers
at once (web requests, ``asyncio.gather`` of enqueues) would each pay a commit of their
own. :class:`InsertBatcher` gives the first caller its own write at once (no added
wait; a job written alone is one statement, see :func:`insert_job`) and lets everyone who
arrives while it is being written join the next one, so the number of commits follows the
database's speed rather than the number of callers. Each caller is answered only after
the transaction holding its job has committed.

A batch that fails for a reason other than an unreachable database is written again job
by job, so one bad job (a clashing id, an idempotency key in use by a concurrent request)
fails alone.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from jobtrack.domain.records import Job
from jobtrack.errors import DatabaseUnavailable
from jobtrack.store.engine import Database
from jobtrack.store.jobs import insert_job, insert_jobs

#: most jobs written in one shared transaction
MAX_BATCH = 500


@dataclass(slots=True)
class _Waiting:
    job: Job
    actor: str
    answer: "asyncio.Future[tuple[Job, bool]]"


class InsertBatcher:
    """Inserts single jobs, sharing transactions between concurrent callers."""

    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._max = max_batch
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        #: transactions written so far (for tests and benchmarks)
        self.batches = 0

    async def insert(self, job: Job, *, actor: str) -> tuple[Job, bool]:
        """Store ``job`` (see :func:`insert_jobs`): the stored job, and whether it is new
        (False: its idempotency key was used before, and the first job comes back)."""
        answer: asyncio.Future[tuple[Job, bool]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(job, actor, answer))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        # shielded: a caller that gives up does not take the shared transaction with it
        return await asyncio.shield(answer)

    async def close(self) -> None:
        """Wait for the jobs already handed over to be written."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:self._max], self._waiting[self._max:]
            try:
                stored = await self._write(batch)
            except DatabaseUnavailable as exc:
                _fail(batch, exc)
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch, exc)
                else:
                    await self._write_one_by_one(batch)
            else:
                for waiting, result in zip(batch, stored, strict=True):
                    _answer(waiting, result)

    async def _write_one_by_one(self, batch: Sequence[_Waiting]) -> None:
        for waiting in batch:
            try:
                [result] = await self._write([waiting])
            except Exception as exc:
                _fail([waiting], exc)
            else:
                _answer(waiting, result)

    async def _write(self, batch: Sequence[_Waiting]) -> list[tuple[Job, bool]]:
        if len(batch) == 1 and batch[0].job.idempotency_key is None:
            # one caller alone: one statement, one round trip (no BEGIN and COMMIT)
            [waiting] = batch
            async with self._db.write_one() as conn:
                await insert_job(conn, waiting.job, actor=waiting.actor)
            self.batches += 1
            return [(waiting.job, True)]
        by_actor: dict[str, list[int]] = {}
        for i, waiting in enumerate(batch):
            by_actor.setdefault(waiting.actor, []).append(i)
        out: list[tuple[Job, bool] | None] = [None] * len(batch)
        async with self._db.write() as conn:
            for actor, positions in by_actor.items():
                done = await insert_jobs(conn, [batch[i].job for i in positions], actor=actor)
                for i, result in zip(positions, done, strict=True):
                    out[i] = result
        self.batches += 1
        return [r for r in out if r is not None]


def _answer(waiting: _Waiting, result: tuple[Job, bool]) -> None:
    if not waiting.answer.done():
        waiting.answer.set_result(result)


def _fail(batch: Sequence[_Waiting], exc: Exception) -> None:
    for waiting in batch:
        if not waiting.answer.done():
            waiting.answer.set_exception(exc)
