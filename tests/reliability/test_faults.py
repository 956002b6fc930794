"""R9, R10 and process kills: a fault suite on a throwaway PostgreSQL cluster.

Each scenario runs real processes on a database of its own, copied from a migrated
template on one throwaway cluster (``initdb`` in a temporary directory, a free port,
``pg_ctl``; never the machine's server): one ``jobtrack serve``, two ``jobtrack worker``
and posting clients (httpx, ``POST /jobs`` of no-op jobs, all along). Then a fault:

- **frozen**: SIGSTOP of the postmaster and every process under it, then SIGCONT;
- **stopped**: ``pg_ctl stop -m fast``, then ``pg_ctl start``;
- **crashed**: ``kill -9`` of the postmaster (PostgreSQL runs crash recovery on start);
- **workers killed**: SIGKILL of a worker while it runs jobs, restarted at once;
- **API killed**: SIGKILL of the API process under load, restarted on the same port;
- **re-claimed**: a job whose first run blocks is cancelled and retried from outside,
  and the same worker claims the new attempt while the old run still goes on (R10).

Each asserts: every job acknowledged (201) ends ``completed`` (none lost, no success
recorded as a failure: the tasks are deterministic no-ops), none is left pending or
running, and after a database fault every process recovers by itself (none restarted).
It prints a row of figures; the module prints them all as a table at the end.

Sizes: the default run is small (a few hundred jobs per scenario) and runs in the normal
suite; the full run (``-m slow``, or ``JOBTRACK_FAULTS_SCALE`` set) is 10x the jobs and
kills and 30 s outages, times ``JOBTRACK_FAULTS_SCALE`` (default 1). A frozen database
must be answered with 503 within ``JOBTRACK_FAULTS_ANSWER_BOUND`` seconds (default 16).
"""

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from jobtrack.domain.status import TERMINAL, JobStatus
from jobtrack.store import keys as store_keys
from jobtrack.store import migrate
from jobtrack.store.engine import Database
from support.api import assert_503
from support.cluster import Cluster, throwaway_cluster
from support.keys import bearer
from support.polling import until
from support.processes import free_port, serve, stop_process, wait_http, work

QUEUE = "faults"
COMPLETED, FAILED, CANCELLED = (JobStatus.COMPLETED.value, JobStatus.FAILED.value,
                                JobStatus.CANCELLED.value)
RUNNING, PENDING = JobStatus.RUNNING.value, JobStatus.PENDING.value
ENDED = {s.value for s in TERMINAL}
HOLD_QUEUE = "reclaim"
MAX_ATTEMPTS = 5
POSTERS = 4
POST_PAUSE = 0.02
#: a frozen database: every request sent while it lasts is answered within this. At the
#: default settings one statement is given up after 7 s (5 s, and 2 s past it), and a
#: request may make two before it can fail (its rate-limit lease, then its own query),
#: after a pool wait of up to 2 s: 16 s
ANSWER_BOUND = float(os.environ.get("JOBTRACK_FAULTS_ANSWER_BOUND", "16"))
SCALE = float(os.environ.get("JOBTRACK_FAULTS_SCALE", "1"))
#: seconds a scenario may take (the full run's grow with the scale)
TIMEOUT = int(500 * max(1.0, SCALE))

TASKS = """
import asyncio
from pathlib import Path

import jobtrack

app = jobtrack.App()


@app.task(queue="faults", retry=jobtrack.RetryPolicy(base=0.05, cap=0.2))
async def nap(ctx, ms):
    await asyncio.sleep(ms / 1000)
    return ms


@app.task(queue="reclaim")
async def hold(ctx, gate, seconds):
    # the first run blocks, with no checkpoint, until the test opens its gate; a later
    # attempt runs `seconds`; each returns its attempt
    if ctx.attempt == 1:
        try:
            while not Path(gate).exists():
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:  # the worker gave the run up (a lost lease)
            Path(gate + ".old-stopped").touch()
            raise
        Path(gate + ".old-done").touch()
    else:
        await asyncio.sleep(seconds)
    return {"attempt": ctx.attempt}
"""


@dataclass(frozen=True)
class Size:
    jobs: int  # at least this many acknowledged per scenario
    outage: float  # seconds a database fault lasts (a freeze: at least the bound + 5)
    kills: int  # worker or API kills
    reclaims: int  # jobs re-claimed (R10)


SIZES = {
    "ci": Size(jobs=200, outage=5, kills=2, reclaims=4),
    "full": Size(jobs=int(3000 * SCALE), outage=30 * SCALE, kills=int(10 * SCALE),
                 reclaims=int(20 * SCALE)),
}


@pytest.fixture(params=["ci", pytest.param("full", marks=pytest.mark.slow)])
def size(request: pytest.FixtureRequest) -> Size:
    if request.param == "full" and "slow" not in (request.config.option.markexpr or "") \
            and "JOBTRACK_FAULTS_SCALE" not in os.environ:
        pytest.skip("the full fault run: select it with -m slow or JOBTRACK_FAULTS_SCALE")
    return SIZES[request.param]


# --- the cluster and one database per scenario ------------------------------------------

@dataclass
class Template:
    cluster: Cluster
    name: str
    key: str


@pytest.fixture(scope="module")
def template() -> Iterator[Template]:
    """One throwaway cluster for the module, with a migrated template database and a key."""
    with throwaway_cluster("jobtrack-faults-") as pg:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE faults_template")
        url = pg.url_of("faults_template")
        migrate.upgrade(url)

        async def make_key() -> str:
            db = Database(url, pool_size=1)
            try:
                async with db.write() as conn:
                    raw, _ = await store_keys.create_key(conn, tenant="faults", admin=False,
                                                         now=datetime.now(UTC))
                return raw
            finally:
                await db.dispose()

        yield Template(pg, "faults_template", asyncio.run(make_key()))


FIGURES: list[dict[str, Any]] = []


@pytest.fixture(scope="module", autouse=True)
def figures_table() -> Iterator[None]:
    """Print every scenario's figures as one table at the end of the module."""
    yield
    if FIGURES:
        print("\n" + table(FIGURES))


COLUMNS = ("scenario", "posted", "acked", COMPLETED, "retried", "lost", FAILED, "503",
           "max answer s", "api recovery s", "workers recovery s")


def table(rows: list[dict[str, Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    cells = [[cell(r.get(c, "-")) for c in COLUMNS] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(v.rjust(w) for v, w in zip(row, widths, strict=True))
              for row in cells]
    return "\n".join(lines)


# --- processes ----------------------------------------------------------------------

@dataclass
class Fleet:
    """One API process and two workers on a database of their own."""

    cluster: Cluster
    database: str
    key: str
    tmp: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    queues: list[str] = field(default_factory=lambda: [QUEUE, QUEUE])
    #: every process ever started (all are stopped at the end)
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.cluster.url_of(self.database)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def start_api(self) -> subprocess.Popen[bytes]:
        self.api = serve(self.url, self.port, self.tmp / "api.log", self.env)
        self.started.append(self.api)
        return self.api

    def start_worker(self, i: int) -> subprocess.Popen[bytes]:
        proc = work(self.url, "faulttasks:app", self.queues[i], self.tmp / f"worker{i}.log",
                    self.env, self.tmp)
        if i < len(self.workers):
            self.workers[i] = proc
        else:
            self.workers.append(proc)
        self.started.append(proc)
        return proc

    def assert_alive(self) -> None:
        assert self.api is not None and self.api.poll() is None, self.log("api")
        for i, proc in enumerate(self.workers):
            assert proc.poll() is None, self.log(f"worker{i}")

    def stop(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.started:
            stop_process(proc)


@contextlib.asynccontextmanager
async def fleet(template: Template, tmp: Path, *, lease: float = 3.0,
                queues: list[str] | None = None) -> AsyncIterator[Fleet]:
    """A database copied from the template, the API and two workers on it, running."""
    pg = template.cluster
    if not pg.running():  # a scenario before this one failed with the server down
        pg.thaw()
        with contextlib.suppress(RuntimeError):
            pg.start()
    name = f"faults_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(pg.url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {template.name}')
    (tmp / "faulttasks.py").write_text(textwrap.dedent(TASKS))
    env = {**os.environ, "JOBTRACK_RATE_LIMIT_PER_MINUTE": "10000000",
           "JOBTRACK_KEY_CACHE_SECONDS": "2", "JOBTRACK_LEASE_SECONDS": str(lease),
           "JOBTRACK_REAP_INTERVAL_SECONDS": "0.5"}
    env.pop("JOBTRACK_DATABASE_URL", None)
    f = Fleet(pg, name, template.key, tmp, env)
    if queues is not None:
        f.queues = queues
    try:
        f.start_api()
        for i in range(2):
            f.start_worker(i)
        assert f.api is not None
        await asyncio.to_thread(wait_http, f.base, f.api, tmp / "api.log")
        yield f
    finally:
        await asyncio.to_thread(f.stop)


# --- load -----------------------------------------------------------------------------

@dataclass
class Answer:
    sent: float  # time.monotonic() when sent
    took: float  # seconds until the answer (or the transport error)
    status: int  # 0: a transport error


@dataclass
class Load:
    """Clients posting no-op jobs, and what they were answered."""

    client: httpx.AsyncClient
    acked: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    running: bool = True
    tasks: list["asyncio.Task[None]"] = field(default_factory=list)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._post(i)) for i in range(POSTERS)]

    async def stop(self) -> None:
        self.running = False
        await asyncio.gather(*self.tasks)

    async def cancel(self) -> None:
        self.running = False
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _post(self, poster: int) -> None:
        n = 0
        while self.running:
            n += 1
            sent = time.monotonic()
            try:
                r = await self.client.post("/jobs", json={
                    "queueName": QUEUE, "name": "nap", "maxAttempts": MAX_ATTEMPTS,
                    # every tenth job naps long enough to be running when a worker dies
                    "data": {"ms": 300 if n % 10 == poster else n % 20}})
            except httpx.TransportError:
                self.answers.append(Answer(sent, time.monotonic() - sent, 0))
                await asyncio.sleep(0.05)  # a closed port answers at once
                continue
            self.answers.append(Answer(sent, time.monotonic() - sent, r.status_code))
            if r.status_code == 201:
                self.acked.append(r.json()["jobId"])
            elif r.status_code == 503:
                try:
                    assert_503(r)
                except AssertionError as exc:
                    self.bad.append(str(exc))
            else:
                self.bad.append(f"POST /jobs answered {r.status_code}: {r.text}")
            await asyncio.sleep(POST_PAUSE)

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if start <= a.sent < end]

    def first_ack_after(self, moment: float) -> float | None:
        """When the first request sent after ``moment`` was acknowledged (monotonic)."""
        times = [a.sent + a.took for a in self.answers if a.sent >= moment and a.status == 201]
        return min(times) if times else None


# --- what the database says -------------------------------------------------------------

async def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True,
                                                     connect_timeout=10) as conn:
        cur = await conn.execute(sql, params)  # type: ignore[arg-type]
        return await cur.fetchall()


async def counts(url: str, queue: str = QUEUE) -> Counter[str]:
    rows = await query(url, "SELECT status, count(*) FROM jobs WHERE queue_name = %s "
                            "GROUP BY status", queue)
    return Counter({str(s): int(n) for s, n in rows})


async def statuses(url: str, ids: list[str]) -> Counter[str]:
    rows = await query(url, "SELECT status, count(*) FROM jobs WHERE id = ANY(%s) "
                            "GROUP BY status", ids)
    got = Counter({str(s): int(n) for s, n in rows})
    got["<missing>"] = len(ids) - sum(got.values())
    return got


async def retried(url: str) -> int:
    rows = await query(url, "SELECT count(*) FROM jobs WHERE queue_name = %s AND attempt > 1",
                       QUEUE)
    return int(rows[0][0])


def pid_of(worker_id: str | None) -> int | None:
    """The pid in a worker id (``host:pid:token``) or a worker's actor (``worker:<id>``)."""
    return int(worker_id.split(":")[-2]) if worker_id else None


async def completed_by(url: str, since: datetime) -> set[int]:
    """Pids of the workers that completed a job of the load after ``since``."""
    rows = await query(url, "SELECT DISTINCT actor FROM events WHERE queue_name = %s AND "
                            "to_status = %s AND at > %s", QUEUE, COMPLETED, since)
    return {p for (w,) in rows if (p := pid_of(w)) is not None}


async def running_on(url: str) -> dict[int, list[str]]:
    """Running jobs of the load by worker pid."""
    rows = await query(url, "SELECT worker_id, id FROM jobs WHERE queue_name = %s AND "
                            "status = %s", QUEUE, RUNNING)
    held: dict[int, list[str]] = {}
    for w, job_id in rows:
        if (p := pid_of(w)) is not None:
            held.setdefault(p, []).append(str(job_id))
    return held


async def starting_long_jobs(url: str) -> set[int]:
    """Pids of the workers that started a long (300 ms) job in the last 150 ms: killed
    now, they strand it."""
    rows = await query(url, "SELECT DISTINCT worker_id FROM jobs WHERE queue_name = %s AND "
                            "status = %s AND (data->>'ms')::int >= 300 AND "
                            "started_at > now() - interval '150 milliseconds'", QUEUE, RUNNING)
    return {p for (w,) in rows if (p := pid_of(w)) is not None}


# --- the shape of every scenario ------------------------------------------------------

@contextlib.asynccontextmanager
async def posting(name: str, fl: "Fleet", size: Size) -> AsyncIterator["Run"]:
    """A run of scenario ``name``: an HTTP client with the key, posters not started yet
    (``warm_up`` starts them; they are stopped however the run ends)."""
    auth = bearer(fl.key)
    async with httpx.AsyncClient(base_url=fl.base, headers=auth, timeout=120) as client:
        run = Run(name, fl, size, Load(client))
        try:
            yield run
        finally:
            await run.load.cancel()


@dataclass
class Run:
    name: str
    fleet: Fleet
    size: Size
    load: Load
    figures: dict[str, Any] = field(default_factory=dict)

    async def warm_up(self) -> None:
        """Load running and both workers completing jobs."""
        self.load.start()
        since = datetime.now(UTC)

        async def both_work() -> bool:
            self.fleet.assert_alive()
            return len(await completed_by(self.fleet.url, since)) == 2

        await until(both_work, "the workers do not complete jobs", time.monotonic() + 90, 0.2)

    async def recovered(self, up_at: float, up_wall: datetime) -> None:
        """Wait until the API answers again and every worker completes a job of the load;
        figures in seconds after ``up_at``."""
        client, fl = self.load.client, self.fleet
        deadline = up_at + 60

        async def api_answers() -> bool:
            fl.assert_alive()
            r = await client.get("/readyz")
            if r.status_code != 200:
                assert_503(r)  # anything else is a failure
                return False
            return self.load.first_ack_after(up_at) is not None

        await until(api_answers, "the API did not recover", deadline)
        ack = self.load.first_ack_after(up_at)
        assert ack is not None
        self.figures["api recovery s"] = max(0.0, ack - up_at)
        pids = {p.pid for p in fl.workers}

        async def workers_work() -> bool:
            fl.assert_alive()
            return pids <= await completed_by(fl.url, up_wall)

        await until(workers_work, "a worker did not recover", deadline, 0.1)
        self.figures["workers recovery s"] = time.monotonic() - up_at

    async def finish(self) -> None:
        """Post until ``size.jobs`` were acknowledged; stop; wait until the queue is
        drained; assert and print the figures."""
        fl, load = self.fleet, self.load

        async def enough() -> bool:
            fl.assert_alive()
            return len(load.acked) >= self.size.jobs

        await until(enough, "too few jobs acknowledged",
                    time.monotonic() + 60 + self.size.jobs / 10, 0.2)
        await load.stop()
        stored: Counter[str] = Counter()

        async def drained() -> bool:
            nonlocal stored
            fl.assert_alive()
            stored = await counts(fl.url)
            return stored[PENDING] == stored[RUNNING] == 0

        await until(drained, "the queue was not drained", time.monotonic() + 120, 0.25)
        acked = await statuses(fl.url, load.acked)
        self.figures.update({
            "scenario": self.name, "posted": len(load.answers), "acked": len(load.acked),
            COMPLETED: acked[COMPLETED], "retried": await retried(fl.url),
            "lost": acked["<missing>"], FAILED: stored[FAILED],
            "503": sum(1 for a in load.answers if a.status == 503)})
        FIGURES.append(self.figures)
        print("\n" + table([self.figures]))
        print(f"{self.name}: {sum(stored.values())} stored (any beyond the acknowledged: "
              f"committed, but the answer was lost), by status {dict(stored)}")
        assert not load.bad, load.bad[:5]
        assert acked["<missing>"] == 0, "an acknowledged job was lost"
        assert acked[COMPLETED] == len(load.acked), acked
        assert stored[FAILED] == stored[CANCELLED] == 0, stored


async def db_fault(name: str, fl: Fleet, size: Size, hold: float,
                   fault: Callable[[], Awaitable[None]],
                   repair: Callable[[], Awaitable[None]]) -> Run:
    """Warm up, apply ``fault`` for ``hold`` seconds while probing the API, ``repair``,
    and wait for every process to recover by itself (none is restarted)."""
    pids = [p.pid for p in [fl.api, *fl.workers] if p is not None]
    async with posting(name, fl, size) as run:
        client = run.load.client
        await run.warm_up()
        down_at = time.monotonic()
        await fault()
        probes: list[Answer] = []
        while time.monotonic() - down_at < hold:
            health = await client.get("/healthz", timeout=5)
            assert health.status_code == 200, health.text
            sent = time.monotonic()
            try:  # (a probe left hanging must not hold the fault's end back)
                r = await client.get("/readyz", timeout=ANSWER_BOUND + 1)
            except httpx.TimeoutException:
                probes.append(Answer(sent, time.monotonic() - sent, 0))
                continue
            probes.append(Answer(sent, time.monotonic() - sent, r.status_code))
            if sent - down_at > 1.0:  # requests of the fault's first moment may still pass
                assert_503(r)
            await asyncio.sleep(0.25)
        await repair()
        up_at, up_wall = time.monotonic(), datetime.now(UTC)
        # every request that could have been answered before the fault ended (in flight
        # when it began, or sent while it lasted) was answered within the bound
        during = [*run.load.between(0, up_at - ANSWER_BOUND), *probes]
        run.figures["max answer s"] = max((a.took for a in during), default=0.0)
        run.figures["outage s"] = up_at - down_at
        await run.recovered(up_at, up_wall)
        await run.finish()
        print(f"{name}: while it lasted ({up_at - down_at:.1f} s), "
              f"{spread(run.load.between(down_at, up_at), 503)} of POST /jobs and "
              f"{spread(probes, 503)} of GET /readyz answered 503; /healthz 200 throughout")
    assert [p.pid for p in [fl.api, *fl.workers] if p is not None] == pids  # no restart
    late = [a for a in during if a.took > ANSWER_BOUND]
    assert not late, (f"{len(late)} of {len(during)} requests during the fault took more "
                      f"than {ANSWER_BOUND} s (up to {run.figures['max answer s']:.1f} s)")
    assert sum(1 for a in run.load.between(down_at, up_at) if a.status == 503) > 0
    assert all(a.status in (201, 503) for a in run.load.answers), "a transport error"
    return run


def spread(answers: list[Answer], status: int) -> str:
    """``N in a-b s``: how many had ``status``, and how long they took."""
    took = [a.took for a in answers if a.status == status]
    return f"{len(took)} in {min(took):.2f}-{max(took):.2f} s" if took else "none"


# --- scenarios ------------------------------------------------------------------------

@pytest.mark.timeout(TIMEOUT)
async def test_database_frozen(template: Template, size: Size, tmp_path: Path) -> None:
    """SIGSTOP of the postmaster and its children: requests are answered 503 within the
    bound, not left hanging; after SIGCONT every process carries on by itself."""
    hold = max(size.outage, ANSWER_BOUND + 5)
    async with fleet(template, tmp_path) as fl:
        pg = fl.cluster
        frozen: list[int] = []

        async def freeze() -> None:
            frozen.append(pg.freeze())

        async def thaw() -> None:
            pg.thaw()

        try:
            run = await db_fault("frozen", fl, size, hold, freeze, thaw)
        finally:
            pg.thaw()
    print(f"frozen: {frozen[0]} PostgreSQL processes stopped for {run.figures['outage s']:.1f} s")


@pytest.mark.timeout(TIMEOUT)
async def test_database_stopped(template: Template, size: Size, tmp_path: Path) -> None:
    """``pg_ctl stop -m fast`` and start: 503 while it is down, recovery by itself."""
    async with fleet(template, tmp_path) as fl:
        pg = fl.cluster
        await db_fault("stopped", fl, size, size.outage, lambda: asyncio.to_thread(pg.stop),
                       lambda: asyncio.to_thread(pg.start))


@pytest.mark.timeout(TIMEOUT)
async def test_database_crashed(template: Template, size: Size, tmp_path: Path) -> None:
    """``kill -9`` of the postmaster; on start PostgreSQL runs crash recovery; nothing
    acknowledged is lost and every process recovers by itself."""
    async with fleet(template, tmp_path) as fl:
        pg = fl.cluster
        before = pg.crash_recoveries()
        killed: list[tuple[int, int]] = []

        async def crash() -> None:
            killed.append(await asyncio.to_thread(pg.crash))

        await db_fault("crashed", fl, size, size.outage, crash,
                       lambda: asyncio.to_thread(pg.start))
        assert pg.crash_recoveries() == before + 1  # it really crashed
    print(f"crashed: {killed[0][0]} PostgreSQL processes, {killed[0][1]} killed after the "
          "postmaster (the rest exited on its death); crash recovery ran on start")


@pytest.mark.timeout(TIMEOUT)
async def test_workers_killed(template: Template, size: Size, tmp_path: Path) -> None:
    """SIGKILL of a worker while it runs jobs, restarted at once, ``size.kills`` times:
    the jobs it held are reaped when their lease ends and run again."""
    rng = random.Random(9)
    async with fleet(template, tmp_path) as fl:
        async with posting("workers killed", fl, size) as run:
            await run.warm_up()
            stranded: list[tuple[datetime, list[str]]] = []
            deadline = time.monotonic() + 120 * size.kills
            while len(stranded) < size.kills:
                assert time.monotonic() < deadline, "no worker held a job to kill it with"
                busy = await starting_long_jobs(fl.url)
                victims = [i for i, p in enumerate(fl.workers) if p.pid in busy]
                if not victims:
                    await asyncio.sleep(0.05)
                    continue
                i = rng.choice(victims)
                proc = fl.workers[i]
                held = await running_on(fl.url)
                proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
                killed_at = datetime.now(UTC)
                stranded.append((killed_at, held.get(proc.pid, [])))
                fresh = fl.start_worker(i).pid

                async def replaced(t: datetime = killed_at, pid: int = fresh) -> bool:
                    fl.assert_alive()
                    return pid in await completed_by(fl.url, t)

                # the next kill once the replacement works: two workers, never none
                await until(replaced, "a restarted worker does no work",
                            time.monotonic() + 90, 0.1)
            await run.finish()
        # recovery: from a kill until the jobs it stranded were completed by someone else
        worst = 0.0
        for killed_at, ids in stranded:
            rows = await query(fl.url, "SELECT max(completed_at) FROM jobs WHERE id = ANY(%s)",
                               ids)
            if rows[0][0] is not None:
                worst = max(worst, (rows[0][0] - killed_at).total_seconds())
        run.figures["workers recovery s"] = worst
    print(f"workers killed: {len(stranded)} SIGKILLs, each just after the worker began a long job "
          f"({sum(len(ids) for _, ids in stranded)} stranded); the stranded jobs were "
          f"completed at most {worst:.2f} s after their worker died (lease 3 s)")
    assert run.figures["retried"] > 0  # the kills did strand jobs


@pytest.mark.timeout(TIMEOUT)
async def test_api_killed(template: Template, size: Size, tmp_path: Path) -> None:
    """SIGKILL of the API process under load, restarted on the same port: what it
    acknowledged before dying is stored; the new process acknowledges again."""
    async with fleet(template, tmp_path) as fl, posting("API killed", fl, size) as run:
        await run.warm_up()
        recoveries: list[float] = []
        for _ in range(size.kills):
            await asyncio.sleep(1.0)
            assert fl.api is not None
            killed_at = time.monotonic()
            fl.api.send_signal(signal.SIGKILL)
            await asyncio.to_thread(fl.api.wait)
            api = fl.start_api()
            await asyncio.to_thread(wait_http, fl.base, api, tmp_path / "api.log")

            async def acked_again(t: float = killed_at) -> bool:
                return run.load.first_ack_after(t) is not None

            await until(acked_again, "the restarted API acknowledges nothing",
                        time.monotonic() + 60)
            ack = run.load.first_ack_after(killed_at)
            assert ack is not None
            recoveries.append(ack - killed_at)
        run.figures["api recovery s"] = max(recoveries)
        await run.finish()
    refused = sum(1 for a in run.load.answers if a.status == 0)
    print(f"API killed: {size.kills} SIGKILLs under load, {refused} requests refused or cut "
          f"meanwhile; acknowledging again {min(recoveries):.2f}-{max(recoveries):.2f} s "
          "after the kill (restart included)")


@pytest.mark.timeout(TIMEOUT)
async def test_worker_reclaims_a_job_it_still_runs(template: Template, size: Size,
                                                   tmp_path: Path) -> None:
    """R10: a job whose first run blocks is cancelled (PATCH by an outside system after
    ``POST /cancel``) and retried; the same worker claims the new attempt while the old
    run still goes on. Half the time the old run ends first, half the time the new one:
    the job ends completed with the new run's result, never failed."""
    # worker 0 alone serves the blocking task's queue. The default lease (30 s): its
    # heartbeat (every 10 s) seldom falls between the cancel and the re-claim (when it
    # does, it stops the old run, and that re-claim overlaps nothing: counted apart)
    async with fleet(template, tmp_path, lease=30.0,
                     queues=[f"{QUEUE},{HOLD_QUEUE}", QUEUE]) as fl:
        async with posting("re-claimed", fl, size) as run:
            client = run.load.client
            await run.warm_up()
            # one after the other: each meets the heartbeat at another point of its round
            outcomes = [await reclaim(client, fl, tmp_path / f"gate{k}", old_first=k % 2 == 0)
                        for k in range(size.reclaims)]
            await run.finish()
        log = fl.log("worker0")
    collided = sum(1 for o in outcomes if o["collided"])
    good = sum(1 for o in outcomes if o["status"] == COMPLETED and o["result"] == {
        "attempt": 2})
    run.figures["re-claimed"] = f"{good}/{len(outcomes)}"
    print(f"re-claimed: {len(outcomes)} jobs cancelled and retried while their first run "
          f"blocked; in {collided} the same worker claimed the new attempt before the old "
          f"run ended; {good} completed with the new run's result; outcomes {outcomes}")
    assert collided > 0, "no re-claim overlapped the old run: the scenario did not happen"
    assert good == len(outcomes), outcomes
    assert "KeyError" not in log and "never retrieved" not in log, log


async def reclaim(client: httpx.AsyncClient, fl: Fleet, gate: Path, *,
                  old_first: bool) -> dict[str, Any]:
    """One re-claim: returns the job's final status and result, and whether the old run
    was still going when the new attempt was claimed."""
    seconds = 2.0 if old_first else 0.2
    r = await client.post("/jobs", json={"queueName": HOLD_QUEUE, "name": "hold",
                                         "maxAttempts": 2,
                                         "data": {"gate": str(gate), "seconds": seconds}})
    assert r.status_code == 201, r.text
    job_id = r.json()["jobId"]

    async def job() -> dict[str, Any]:
        got = await client.get(f"/jobs/{job_id}")
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body

    async def running(attempt: int) -> bool:
        body = await job()
        return body["status"] == RUNNING and body["attempt"] == attempt

    await until(lambda: running(1), "the blocking job was not claimed", time.monotonic() + 60)
    r = await client.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 200 and r.json()["cancelRequested"], r.text
    # the task never reaches a checkpoint: an outside system settles the cancel
    r = await client.patch(f"/jobs/{job_id}", json={"status": CANCELLED})
    assert r.status_code == 200 and r.json()["status"] == CANCELLED, r.text
    r = await client.post(f"/jobs/{job_id}/retry")
    assert r.status_code == 200 and r.json()["attempt"] == 2, r.text
    await until(lambda: running(2), "the new attempt was not claimed", time.monotonic() + 60)
    claims = await query(fl.url, "SELECT attempt, actor FROM events WHERE job_id = %s AND "
                                 "to_status = %s ORDER BY id", job_id, RUNNING)
    assert [(a, pid_of(w)) for a, w in claims] == [(1, fl.workers[0].pid),
                                                   (2, fl.workers[0].pid)]  # the same worker
    ended = (Path(f"{gate}.old-done"), Path(f"{gate}.old-stopped"))
    collided = not any(p.exists() for p in ended)
    if old_first:
        gate.touch()  # the old run ends while the new one runs
    else:
        async def finished() -> bool:
            return (await job())["status"] in ENDED

        await until(finished, "the new attempt did not finish", time.monotonic() + 60)
        gate.touch()  # the old run ends after the new one

    async def old_ended() -> bool:
        return any(p.exists() for p in ended)

    await until(old_ended, "the old run did not end", time.monotonic() + 60)

    async def terminal() -> bool:
        return (await job())["status"] in ENDED

    await until(terminal, "the job did not end", time.monotonic() + 60, 0.1)
    body = await job()
    return {"collided": collided, "old_first": old_first, "status": body["status"],
            "result": body["result"], "attempt": body["attempt"]}
