"""The Python entry point: register tasks, enqueue jobs, read and wait for them.

::

    app = jobtrack.App()                      # database from JOBTRACK_DATABASE_URL

    @app.task(queue="ingest", phases=["loading", "indexing"], max_attempts=3)
    async def ingest(ctx, document_id: str): ...

    async with app:
        job = await app.enqueue("ingest", document_id="d1", _priority=5)
        done = await app.wait(job.id, timeout=30)

Enqueue options are keyword arguments with a leading underscore (a job's own data never
starts with one): ``_queue``, ``_priority``, ``_delay`` (seconds or timedelta),
``_run_at``, ``_idempotency_key``, ``_max_attempts``, ``_phases``, and ``_opts``: BullMQ's
job options (``attempts``, ``delay`` in ms, ``backoff``, ``priority`` with 0 first,
``jobId``; see :func:`jobtrack.domain.spec.apply_bullmq`). A job is resolved
against its task's declaration (:mod:`jobtrack.domain.spec`): the task registered here,
or else the one a worker recorded in the database; data the task cannot take is refused
before anything is stored.
"""

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar, overload

from jobtrack.domain.flows import Flow
from jobtrack.domain.ids import new_id
from jobtrack.domain.records import Job
from jobtrack.domain.retry import RetryPolicy
from jobtrack.domain.spec import (
    DEFAULT_QUEUE,
    Submission,
    TaskDeclaration,
    job_of,
    resolve,
    submission,
)
from jobtrack.errors import ValidationFailed
from jobtrack.queue import flows as queue_flows
from jobtrack.queue.polling import poll_until
from jobtrack.queue.tasks import TaskRegistry, make_task
from jobtrack.settings import Settings
from jobtrack.store import jobs as store_jobs
from jobtrack.store import keys as store_keys
from jobtrack.store import registry as store_registry
from jobtrack.store.engine import Database
from jobtrack.store.group_commit import InsertBatcher
from jobtrack.store.migrate import prepare

F = TypeVar("F", bound=Callable[..., Any])

#: rows per statement batch of ``enqueue_many`` (one transaction for all)
ENQUEUE_CHUNK = 5000


class App:
    """Tasks, a database and a tenant: what both enqueuers and workers need."""

    def __init__(
        self, database_url: str | None = None, *, tenant: str = "default",
        settings: Settings | None = None,
    ) -> None:
        if settings is None:
            settings = Settings(database_url=database_url) if database_url else Settings()
        elif database_url:
            settings = settings.model_copy(update={"database_url": database_url})
        self.settings = settings
        self.tenant = tenant
        self.tasks = TaskRegistry()
        #: the URL was chosen in code (a worker CLI's --database-url does not override it)
        self.explicit_url = database_url is not None
        self._db: Database | None = None
        self._batcher: InsertBatcher | None = None
        self._tenant_ready = False
        self._schema_ready = False
        #: declarations read from the task registry, trusted for ``task_cache_seconds``
        self.declarations = store_registry.DeclarationCache(settings.task_cache_seconds)

    # --- configuration ------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return self.settings.database_url

    def use_database_url(self, url: str) -> None:
        """Take the URL a command line was given, unless one was chosen in code."""
        if self._db is not None:
            raise ValidationFailed("use_database_url() must come before the database opens")
        if not self.explicit_url:
            self.settings = self.settings.model_copy(update={"database_url": url})

    @overload
    def task(self, fn: F, /) -> F: ...

    @overload
    def task(
        self, fn: None = None, /, *, name: str | None = None, queue: str = DEFAULT_QUEUE,
        phases: Iterable[str] = (), max_attempts: int | None = None,
        retry: RetryPolicy | None = None, timeout: float | None = None,
    ) -> Callable[[F], F]: ...

    def task(
        self, fn: F | None = None, /, *, name: str | None = None, queue: str = DEFAULT_QUEUE,
        phases: Iterable[str] = (), max_attempts: int | None = None,
        retry: RetryPolicy | None = None, timeout: float | None = None,
    ) -> F | Callable[[F], F]:
        """Register ``async def f(ctx, **kwargs)`` or ``def f(ctx, **kwargs)`` as a task;
        the function is returned unchanged."""

        def register(func: F) -> F:
            self.tasks.add(make_task(func, name=name, queue=queue, phases=list(phases),
                                     max_attempts=max_attempts, retry=retry,
                                     timeout=timeout))
            return func

        return register(fn) if fn is not None else register

    # --- database -------------------------------------------------------------------

    @property
    def db(self) -> Database:
        """The database handle, opened on first use."""
        if self._db is None:
            self._db = Database(self.database_url, pool_size=self.settings.pool_size)
        return self._db

    async def open(self) -> None:
        """Open the database; a new SQLite one is migrated first (an outdated or
        PostgreSQL schema raises SchemaNotReady naming `jobtrack migrate`)."""
        if not self._schema_ready:
            await prepare(self.db)
            self._schema_ready = True

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
            self._batcher = None
        if self._db is not None:
            db, self._db = self._db, None
            self._tenant_ready = self._schema_ready = False
            await db.dispose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- enqueue --------------------------------------------------------------------

    def declared(self, name: str) -> TaskDeclaration | None:
        """The declaration of a task registered on this App, if any."""
        task = self.tasks.get(name)
        return task.declaration() if task is not None else None

    async def _resolve(self, subs: Sequence[Submission], now: datetime) -> list[Job]:
        """New jobs, each resolved against its task's declaration (this App's, or the one
        a worker recorded); :class:`ValidationFailed` for data the task cannot take."""
        await self.open()  # a new embedded database is migrated before it is read
        lookup = await store_registry.resolver(self.db, {s.name for s in subs},
                                               local=self.declared, cache=self.declarations)
        default = self.settings.default_max_attempts
        return [job_of(resolve(s, lookup(s), now=now, default_max_attempts=default),
                       id=new_id(), tenant=self.tenant, now=now) for s in subs]

    async def _insert(self, new: list[Job], now: datetime) -> list[Job]:
        out: list[Job] = []
        await self.open()
        async with self.db.write() as conn:
            if not self._tenant_ready:
                await store_keys.ensure_tenant(conn, self.tenant, now)
            for start in range(0, len(new), ENQUEUE_CHUNK):
                done = await store_jobs.insert_jobs(
                    conn, new[start:start + ENQUEUE_CHUNK], actor=f"app:{self.tenant}")
                out.extend(job for job, _ in done)
        self._tenant_ready = True
        return out

    async def enqueue(self, name: str, /, **kwargs: Any) -> Job:
        """Enqueue one job of task ``name``; ``_``-prefixed keywords are options.

        With ``_idempotency_key``, a key this tenant already used returns the first job.
        Data the task cannot take is refused here (:class:`ValidationFailed`).
        """
        data = {k: v for k, v in kwargs.items() if not k.startswith("_")}
        options = {k[1:]: v for k, v in kwargs.items() if k.startswith("_")}
        now = datetime.now(UTC)
        [job] = await self._resolve([submission(name, data, options)], now)
        if not self._tenant_ready:
            return (await self._insert([job], now))[0]
        # concurrent enqueues share commits (group commit); each returns once it is durable
        if self._batcher is None:
            self._batcher = InsertBatcher(self.db)
        stored, _ = await self._batcher.insert(job, actor=f"app:{self.tenant}")
        return stored

    async def enqueue_many(
        self, name: str, items: Iterable[Mapping[str, Any]], /, **options: Any
    ) -> list[Job]:
        """Enqueue one job per item (its data) in one transaction; ``options`` (without
        underscores: ``queue=``, ``priority=`` ...) apply to every job."""
        subs = [submission(name, item, options, prefix="") for item in items]
        if not subs:
            return []
        now = datetime.now(UTC)
        return await self._insert(await self._resolve(subs, now), now)

    async def enqueue_flow(self, flowname: str, root: queue_flows.FlowJob) -> Flow:
        """Enqueue a tree of jobs as one flow, children first (:mod:`jobtrack.queue.flows`)."""
        await self.open()
        return await queue_flows.enqueue_flow(self, flowname, root)

    def enqueue_sync(self, name: str, /, **kwargs: Any) -> Job:
        """:meth:`enqueue` for code without an event loop (opens its own connection)."""

        async def once() -> Job:
            app = App(settings=self.settings, tenant=self.tenant)
            app.tasks, app.declarations = self.tasks, self.declarations
            try:
                return await app.enqueue(name, **kwargs)
            finally:
                await app.close()

        return asyncio.run(once())

    # --- read -----------------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job | None:
        """One job of this app's tenant, with its phases; None if unknown."""
        await self.open()
        async with self.db.read() as conn:
            return await store_jobs.get_job(conn, job_id, tenant=self.tenant)

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Poll until the job is terminal; TimeoutError after ``timeout`` seconds."""
        return await poll_until(
            lambda: self.get_job(job_id), lambda job: job.is_terminal,
            missing=lambda: store_jobs.not_found(job_id),
            late=lambda job: f"job {job_id} is still {job.status.value} after {timeout} s",
            timeout=timeout)
