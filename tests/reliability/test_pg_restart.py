"""R6: PostgreSQL restarted mid-load. The API answers 503 during the outage and recovers
by itself; no job is lost.

The test runs its OWN throwaway PostgreSQL cluster (``initdb`` into a temporary
directory, a free port, ``pg_ctl start``/``stop``; as root they run as the ``postgres``
OS user), never the server the rest of the suite uses. Without ``initdb`` it skips,
except in CI (``CI`` set), where it fails.

Scenario: migrate; start a real ``jobtrack serve`` process and a real ``jobtrack worker``
process; enqueue jobs through the API continuously; ``pg_ctl stop -m fast``; for
``JOBTRACK_R6_OUTAGE_SECONDS`` (default 5) every database route must answer 503 with
the error envelope and ``Retry-After`` (``GET /jobs/{id}``, ``/readyz``, ``POST /jobs``)
while ``/healthz`` answers 200, and a second API process started during the outage must
come up too; then PostgreSQL starts again and, with no process restarted, the API
answers again, an event stream (the event hub's LISTEN connection) delivers again, and
the worker drains the queue: every job acknowledged with a 2xx ends completed, none is
left pending or running. The figures are printed.
"""

import asyncio
import contextlib
import os
import subprocess
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from jobtrack.store import migrate
from jobtrack.store.engine import Database
from jobtrack.store.tables import jobs
from support.api import assert_503
from support.cli import cli_key, command
from support.cluster import Cluster, throwaway_cluster
from support.keys import bearer
from support.polling import until
from support.processes import free_port, serve, stop_process, wait_http

pytestmark = pytest.mark.slow

OUTAGE = float(os.environ.get("JOBTRACK_R6_OUTAGE_SECONDS", "5"))
QUEUE = "r6"
#: concurrent enqueuers, and the pause each takes between two requests
ENQUEUERS = 3
ENQUEUE_PAUSE = 0.02

TASKS = """
import asyncio
import jobtrack

app = jobtrack.App()

@app.task(queue="r6")
async def nap(ctx, ms):
    await asyncio.sleep(ms / 1000)
    return ms
"""


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A fresh cluster, stopped and deleted afterwards (never the machine's server)."""
    with throwaway_cluster("jobtrack-r6-") as pg:
        yield pg



@dataclass
class Load:
    """What the enqueuers saw."""

    acked: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    outage_503: int = 0
    running: bool = True
    down: bool = False
    bad: list[str] = field(default_factory=list)


async def _enqueue(client: httpx.AsyncClient, load: Load, worker: int) -> None:
    n = 0
    while load.running:
        n += 1
        try:
            r = await client.post("/jobs", json={"queueName": QUEUE, "name": "nap",
                                                 "data": {"ms": 5 + n % 20}})
        except httpx.TransportError:
            load.transport_errors += 1
        else:
            if r.status_code in (200, 201):
                load.acked.append(r.json()["jobId"])
            else:
                load.refused[r.status_code] += 1
                if r.status_code == 503:
                    try:
                        assert_503(r)
                    except AssertionError as exc:
                        load.bad.append(str(exc))
                    if load.down:
                        load.outage_503 += 1
                else:
                    load.bad.append(f"POST /jobs answered {r.status_code}: {r.text}")
        await asyncio.sleep(ENQUEUE_PAUSE)


async def _counts(url: str) -> dict[str, int]:
    """Jobs of the load's queue by status (the event probe's queue has no worker)."""
    db = Database(url, pool_size=1)
    try:
        async with db.read() as conn:
            rows = (await conn.execute(
                select(jobs.c.status, func.count()).where(jobs.c.queue_name == QUEUE)
                .group_by(jobs.c.status))).all()
        return {str(status): int(n) for status, n in rows}
    finally:
        await db.dispose()


async def _statuses(url: str, ids: list[str]) -> Counter[str]:
    db = Database(url, pool_size=1)
    try:
        got: Counter[str] = Counter()
        found = 0
        async with db.read() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                rows = (await conn.execute(
                    select(jobs.c.status).where(jobs.c.id.in_(chunk)))).all()
                found += len(rows)
                got.update(str(status) for (status,) in rows)
        got["<missing>"] = len(ids) - found
        return got
    finally:
        await db.dispose()


async def _listen(base: str, auth: dict[str, str], seen: set[str]) -> None:
    """Follow an SSE stream of the probe queue, adding the job ids of its events."""
    async with (httpx.AsyncClient(base_url=base, headers=auth, timeout=None) as sc,
                sc.stream("GET", "/events", params={"queueName": "r6-events"}) as stream):
        assert stream.status_code == 200, await stream.aread()
        seen.add("<connected>")
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                seen.add(orjson.loads(line[5:])["data"].get("jobId"))


async def _first_event(base: str, auth: dict[str, str], client: httpx.AsyncClient,
                       timeout: float) -> tuple[float, str] | None:
    """Seconds until a job created now shows up on a fresh SSE stream, and its id; None
    when the stream is refused with 503 (the event hub has not reached the database)."""
    started = time.monotonic()
    async with (httpx.AsyncClient(base_url=base, headers=auth, timeout=timeout) as sc,
                sc.stream("GET", "/events", params={"queueName": "r6-events"}) as stream):
        if stream.status_code == 503:
            assert_503(httpx.Response(503, headers=stream.headers,
                                       content=await stream.aread()))
            return None
        assert stream.status_code == 200, await stream.aread()
        r = await client.post("/jobs", json={"queueName": "r6-events", "name": "probe"})
        assert r.status_code == 201, r.text
        job_id = r.json()["jobId"]
        async with asyncio.timeout(timeout):
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    event: dict[str, Any] = orjson.loads(line[5:])
                    if event["data"].get("jobId") == job_id:
                        return time.monotonic() - started, job_id
    raise AssertionError("the event stream ended")


@dataclass
class Scenario:
    """The processes, the client and the figures of one R6 run."""

    cluster: Cluster
    tmp: Path
    client: httpx.AsyncClient
    auth: dict[str, str]
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    load: Load = field(default_factory=Load)
    probes: Counter[str] = field(default_factory=Counter)
    figures: dict[str, float] = field(default_factory=dict)
    tasks: list["asyncio.Task[None]"] = field(default_factory=list)
    cold: subprocess.Popen[bytes] | None = None
    cold_base: str = ""
    probe_id: str = ""
    old_stream_seen: set[str] = field(default_factory=set)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def base(self) -> str:
        return str(self.client.base_url).rstrip("/")

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    async def warm_up(self) -> None:
        """Load running, jobs completing, an event stream open."""
        self.tasks = [asyncio.create_task(_enqueue(self.client, self.load, i))
                      for i in range(ENQUEUERS)]

        async def completing() -> bool:
            assert self.worker.poll() is None, self.log("worker")
            return (await _counts(self.url)).get("completed", 0) >= 50

        await until(completing, "the worker does not complete jobs", time.monotonic() + 60,
                     pause=0.2)
        self.probe_id = self.load.acked[0]
        stream = asyncio.create_task(_listen(self.base, self.auth, self.old_stream_seen))
        self.tasks.append(stream)

        async def connected() -> bool:
            assert not stream.done(), stream
            return "<connected>" in self.old_stream_seen

        await until(connected, "no event stream", time.monotonic() + 30)
        assert (await self.client.get(f"/jobs/{self.probe_id}")).status_code == 200

    async def outage(self) -> None:
        """Stop PostgreSQL; probe the API (and one started now) for OUTAGE seconds."""
        down_at = time.monotonic()
        await asyncio.to_thread(self.cluster.stop)
        self.load.down = True
        self.figures["down_at"] = down_at
        self.figures["stop_s"] = time.monotonic() - down_at
        acked_before = len(self.load.acked)
        cold_port = free_port()
        self.cold = serve(self.url, cold_port, self.tmp / "cold.log", self.env)
        self.cold_base = f"http://127.0.0.1:{cold_port}"
        # the outage lasts OUTAGE seconds, longer if the second API is slow to start
        while time.monotonic() - down_at < OUTAGE or (
                self.probes["cold 503"] == 0 and time.monotonic() - down_at < 60):
            await self._probe_down()
            await asyncio.sleep(0.1)
        assert self.cold.poll() is None, \
            f"an API started during the outage exited:\n{self.log('cold')}"
        assert self.probes["cold 503"] > 0, \
            f"an API started during the outage never answered:\n{self.log('cold')}"
        self.figures["acked_stopping"] = len(self.load.acked) - acked_before

    async def _probe_down(self) -> None:
        for path in (f"/jobs/{self.probe_id}", "/readyz", "/jobs"):
            assert_503(await self.client.get(path))
            self.probes["503"] += 1
        health = await self.client.get("/healthz")
        assert health.status_code == 200, health.text
        self.probes["/healthz"] += 1
        assert self.cold is not None
        if self.cold.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if (await self.client.get(f"{self.cold_base}/healthz")).status_code == 200:
                    assert_503(await self.client.get(f"{self.cold_base}/readyz"))
                    assert_503(await self.client.get(f"{self.cold_base}/jobs/{self.probe_id}"))
                    self.probes["cold 503"] += 2

    async def recover(self) -> None:
        """Start PostgreSQL; the API, the worker and the event streams come back."""
        await asyncio.to_thread(self.cluster.start)
        up_at = time.monotonic()
        self.load.down = False
        self.figures["outage_s"] = up_at - self.figures["down_at"]
        acked_at_restart = len(self.load.acked)
        deadline = up_at + 60

        async def api_answers() -> bool:
            r = await self.client.get(f"/jobs/{self.probe_id}")
            if r.status_code != 200:
                assert_503(r)  # anything but 200 or 503 is a failure
                return False
            return (await self.client.get("/readyz")).status_code == 200

        await until(api_answers, "the API did not recover", deadline)
        self.figures["api_recovery_s"] = time.monotonic() - up_at

        async def fresh_job_completed() -> bool:
            if len(self.load.acked) == acked_at_restart:
                return False
            fresh = self.load.acked[acked_at_restart]
            return (await _statuses(self.url, [fresh]))["completed"] == 1

        await until(fresh_job_completed, "the worker did not recover", deadline)
        self.figures["worker_recovery_s"] = time.monotonic() - up_at
        first = await _first_event(self.base, self.auth, self.client, timeout=20)
        assert first is not None, "the event hub did not recover"
        self.figures["event_s"] = time.monotonic() - up_at
        job_id = first[1]

        async def old_stream_delivers() -> bool:
            assert not self.tasks[-1].done(), "the stream opened before the outage ended"
            return job_id in self.old_stream_seen

        await until(old_stream_delivers, "the pre-outage stream got no event", deadline)
        # the API started during the outage serves requests and events now
        r = await self.client.get(f"{self.cold_base}/jobs/{self.probe_id}")
        assert r.status_code == 200, r.text

        async def cold_streams() -> bool:
            got = await _first_event(self.cold_base, self.auth, self.client, timeout=20)
            return got is not None

        await until(cold_streams, "the cold API's event hub never began", deadline, 0.2)
        self.figures["cold_event_s"] = time.monotonic() - up_at

    async def drain(self) -> dict[str, int]:
        """Stop the load; wait until no job of the load is pending or running."""
        self.load.running = False  # the enqueuers end after their request in flight
        self.tasks[-1].cancel()  # (the event stream)
        await asyncio.gather(*self.tasks, return_exceptions=True)
        counts: dict[str, int] = {}

        async def drained() -> bool:
            nonlocal counts
            assert self.worker.poll() is None, self.log("worker")
            counts = await _counts(self.url)
            return counts.get("pending", 0) == counts.get("running", 0) == 0

        await until(drained, "the queue was not drained", time.monotonic() + 90, 0.25)
        return counts


@pytest.mark.timeout(300)
async def test_postgres_restart_mid_load(cluster: Cluster, tmp_path: Path) -> None:
    url = cluster.url
    migrate.upgrade(url)
    # a lease shorter than the outage: jobs held across it must not be stalled on return
    env = {**os.environ, "JOBTRACK_DATABASE_URL": url,
           "JOBTRACK_RATE_LIMIT_PER_MINUTE": "10000000", "JOBTRACK_KEY_CACHE_SECONDS": "2",
           "JOBTRACK_LEASE_SECONDS": str(max(1.0, OUTAGE / 2)),
           "JOBTRACK_REAP_INTERVAL_SECONDS": "0.5"}
    auth = bearer(cli_key(url, "r6", env))
    (tmp_path / "r6tasks.py").write_text(textwrap.dedent(TASKS))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = serve(url, port, tmp_path / "api.log", env)
    with (tmp_path / "worker.log").open("ab") as out:
        worker = subprocess.Popen(
            command("worker", "r6tasks:app", "--concurrency", "20", "--no-migrate",
                    "--log-level", "WARNING", url=url),
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    run: Scenario | None = None
    try:
        wait_http(base, api, tmp_path / "api.log")
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=15) as client:
            run = Scenario(cluster, tmp_path, client, auth, api, worker, env=env)
            await run.warm_up()
            await run.outage()
            await run.recover()
            await asyncio.sleep(2)  # more load after the recovery
            counts = await run.drain()
        assert api.poll() is None and worker.poll() is None  # nothing was restarted
        load, f = run.load, run.figures
        acked = await _statuses(url, load.acked)
    finally:
        if run is not None:
            run.load.running = False
            for task in run.tasks:
                task.cancel()
            await asyncio.gather(*run.tasks, return_exceptions=True)
        for proc in (api, worker, run.cold if run else None):
            if proc is not None:
                stop_process(proc)
    print(f"\nR6 postgresql: {len(load.acked)} jobs acknowledged (2xx), "
          f"{acked['completed']} of them completed, {acked['<missing>']} lost; "
          f"{sum(counts.values())} stored (any beyond those: committed, but the answer was "
          f"lost to the outage), {counts.get('completed', 0)} completed, "
          f"{counts.get('failed', 0)} failed, {counts.get('running', 0)} running, "
          f"{counts.get('pending', 0)} pending; outage {f['outage_s']:.1f} s "
          f"(pg_ctl stop -m fast took {f['stop_s']:.1f} s, {f['acked_stopping']:.0f} "
          f"acknowledged meanwhile); during it {run.probes['503']} GET probes and "
          f"{load.outage_503} POST /jobs answered 503 (envelope, Retry-After), "
          f"{run.probes['cold 503']} on an API started during the outage, /healthz 200 "
          f"x{run.probes['/healthz']}, {load.transport_errors} transport errors; recovered "
          f"after restart: API {f['api_recovery_s']:.2f} s, worker {f['worker_recovery_s']:.2f} s, "
          f"SSE events {f['event_s']:.2f} s (the stream opened before the outage delivered "
          f"again), events on the API started during the outage {f['cold_event_s']:.1f} s")
    assert not load.bad, load.bad[:5]  # every refusal was a 503 envelope
    assert acked["<missing>"] == 0  # none lost
    assert acked["completed"] == len(load.acked)
    assert counts.get("running", 0) == counts.get("pending", 0) == 0
    assert counts.get("failed", 0) == 0
    assert load.outage_503 > 0
