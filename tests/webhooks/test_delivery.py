"""Dispatch and delivery against the real store, with ``httpx.MockTransport`` receivers:
signatures, retries and backoff, failure after the last attempt, per-job order, and no
double delivery when two processes dispatch and deliver on one database."""

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from jobtrack.domain.ids import new_id
from jobtrack.domain.status import DeliveryStatus
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.events import insert_events, last_id, read_after
from jobtrack.store.tables import webhook_deliveries
from jobtrack.store.webhooks import claim_due, list_deliveries
from jobtrack.webhooks import registry
from jobtrack.webhooks.delivery import Deliverer
from jobtrack.webhooks.dispatcher import Dispatcher
from jobtrack.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify

SECRET = "s3cret-s3cret-s3cret"


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "webhook_retry_base_seconds": 0.05, "webhook_retry_cap_seconds": 0.2,
        "webhook_max_attempts": 4, "webhook_timeout_seconds": 0.5,
    })


async def add_events(db: Database, rows: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    async with db.write() as conn:
        await insert_events(conn, [{"tenant": "t1", "at": now, "queue_name": "q", "job_id": None,
                                    "flow_id": None, "data": {}, **r} for r in rows])


async def hook(db: Database, settings: Settings, kinds: list[str], **kw: Any) -> str:
    created = await registry.create_webhook(db, settings, tenant="t1", url="http://127.0.0.1:9/in",
                                            events=kinds, secret=SECRET, **kw)
    return created.id


async def dispatch_all(db: Database, settings: Settings) -> int:
    dispatcher = Dispatcher(db, settings)
    total = 0
    while (n := await dispatcher.run_once()) or dispatcher.next_round_in() == 0:
        total += n
    return total


def mock_client(receiver: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(receiver))


async def deliver_all(deliverer: Deliverer, timeout: float = 10) -> None:
    """Run the delivery loop until nothing is pending."""
    task = asyncio.create_task(deliverer.run())
    try:
        async with asyncio.timeout(timeout):
            while True:
                async with deliverer.db.read() as conn:
                    pending = await conn.scalar(select(webhook_deliveries.c.id).where(
                        webhook_deliveries.c.status == DeliveryStatus.PENDING.value).limit(1))
                if pending is None:
                    return
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_dispatch_matches_kinds_tenant_flow_and_queue(db: Database, fast: Settings) -> None:
    flow = new_id()
    async with db.write() as conn:
        start = await last_id(conn)
    await Dispatcher(db, fast).prepare()
    everything = await hook(db, fast, ["all"])
    completed = await hook(db, fast, ["completed"])
    of_flow = await hook(db, fast, ["progress", "failed"], flow_id=flow)
    of_queue = await hook(db, fast, ["delta"], queue_name="emails")
    job = new_id()
    await add_events(db, [
        {"type": "job.created", "job_id": job, "queue_name": "emails"},
        {"type": "job.progress", "job_id": job, "flow_id": flow},
        {"type": "job.completed", "job_id": job},
        {"type": "flow.failed", "flow_id": flow},
        {"type": "job.completed", "tenant": "t2", "job_id": new_id()},  # another tenant
    ])
    assert await dispatch_all(db, fast) == 4 + 1 + 2 + 1
    async with db.read() as conn:
        got = {h: [d.event_type for d in reversed(await list_deliveries(conn, h, limit=50))]
               for h in (everything, completed, of_flow, of_queue)}
        assert await last_id(conn) == start + 5
    assert got == {
        everything: ["job.created", "job.progress", "job.completed", "flow.failed"],
        completed: ["job.completed"],
        of_flow: ["job.progress", "flow.failed"],
        of_queue: ["job.created"],
    }
    assert await dispatch_all(db, fast) == 0  # the cursor moved: nothing twice


async def test_signed_post_retried_until_accepted(db: Database, fast: Settings) -> None:
    await Dispatcher(db, fast).prepare()
    hook_id = await hook(db, fast, ["all"])
    await add_events(db, [{"type": "job.completed", "job_id": new_id(), "data": {"x": 1}}])
    await dispatch_all(db, fast)
    seen: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500 if len(seen) < 3 else 204, text="boom")

    deliverer = Deliverer(db, fast, client=mock_client(receiver))
    await deliver_all(deliverer)
    assert len(seen) == 3
    first = seen[0]
    assert first.headers[EVENT_HEADER] == "job.completed"
    assert first.headers["content-type"] == "application/json"
    assert verify(SECRET, first.content, first.headers[SIGNATURE_HEADER])
    assert {r.content for r in seen} == {first.content}  # the same bytes each attempt
    assert {r.headers[DELIVERY_HEADER] for r in seen} == {first.headers[DELIVERY_HEADER]}
    async with db.read() as conn:
        [delivery] = await list_deliveries(conn, hook_id, limit=5)
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.attempts == 3 and delivery.last_status_code == 204
    assert str(delivery.id) == first.headers[DELIVERY_HEADER]


async def test_failed_after_the_last_attempt_and_timeouts_count(
    db: Database, fast: Settings
) -> None:
    await Dispatcher(db, fast).prepare()
    hook_id = await hook(db, fast, ["all"])
    await add_events(db, [{"type": "job.failed", "job_id": new_id()},
                          {"type": "job.failed", "job_id": new_id()}])
    await dispatch_all(db, fast)

    def receiver(request: httpx.Request) -> httpx.Response:
        if request.headers[DELIVERY_HEADER].endswith(("1", "3", "5", "7", "9")):
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(503, text="down for maintenance")

    deliverer = Deliverer(db, fast, client=mock_client(receiver))
    await deliver_all(deliverer)
    async with db.read() as conn:
        deliveries = await list_deliveries(conn, hook_id, limit=5)
    assert {d.status for d in deliveries} == {DeliveryStatus.FAILED}
    assert all(d.attempts == fast.webhook_max_attempts for d in deliveries)
    errors = sorted(d.last_error or "" for d in deliveries)
    assert errors[0].startswith("HTTP 503: down for maintenance")
    assert errors[1].startswith("no answer within 0.5 s")


async def test_a_jobs_deliveries_keep_their_order(db: Database, fast: Settings) -> None:
    await Dispatcher(db, fast).prepare()
    await hook(db, fast, ["all"])
    jobs = [new_id() for _ in range(3)]
    await add_events(db, [{"type": "job.progress", "job_id": j, "data": {"n": n}}
                          for n in range(5) for j in jobs])
    await dispatch_all(db, fast)
    accepted: list[tuple[int, int]] = []
    tries: Counter[bytes] = Counter()

    def receiver(request: httpx.Request) -> httpx.Response:
        tries[request.content] += 1
        event = httpx.Response(200, content=request.content).json()
        if event["data"]["n"] % 2 == 0 and tries[request.content] == 1:
            return httpx.Response(500)  # every even step fails once
        accepted.append((event["data"]["n"], event["id"]))
        return httpx.Response(200)

    deliverer = Deliverer(db, fast.model_copy(update={"webhook_concurrency": 10}),
                          client=httpx.AsyncClient(transport=httpx.MockTransport(receiver)))
    await deliver_all(deliverer)
    assert len(accepted) == 15
    async with db.read() as conn:
        by_id = {e.id: e.job_id for e in await read_after(conn, 0)}
    for job in jobs:
        steps = [n for n, event_id in accepted if by_id[event_id] == job]
        assert steps == [0, 1, 2, 3, 4], f"job {job} got its events out of order: {steps}"


async def test_two_processes_never_dispatch_or_deliver_twice(
    db_url: str, fast: Settings
) -> None:
    db1, db2 = Database(db_url, pool_size=3), Database(db_url, pool_size=3)
    try:
        await Dispatcher(db1, fast).prepare()
        await hook(db1, fast, ["all"])
        await hook(db1, fast, ["all"])
        await add_events(db1, [{"type": "job.progress", "job_id": new_id()} for _ in range(40)])
        d1, d2 = Dispatcher(db1, fast), Dispatcher(db2, fast)
        counts = await asyncio.gather(*(d.run_once() for d in (d1, d2, d1, d2)))
        await add_events(db1, [{"type": "job.progress", "job_id": new_id()} for _ in range(10)])
        counts += await asyncio.gather(*(d.run_once() for d in (d1, d2, d1, d2)))
        assert sum(counts) == 2 * 50
        hits: Counter[str] = Counter()

        def receiver(request: httpx.Request) -> httpx.Response:
            hits[request.headers[DELIVERY_HEADER]] += 1
            return httpx.Response(200)

        def deliverer(db: Database) -> Deliverer:
            client = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
            return Deliverer(db, fast.model_copy(update={"webhook_concurrency": 7}),
                             client=client)

        await asyncio.gather(deliver_all(deliverer(db1)), deliver_all(deliverer(db2)))
        assert len(hits) == 100 and set(hits.values()) == {1}
    finally:
        await db1.dispose()
        await db2.dispose()


async def test_an_attempt_lost_with_its_process_is_made_again_after_the_lease(
    db: Database, fast: Settings
) -> None:
    await Dispatcher(db, fast).prepare()
    hook_id = await hook(db, fast, ["all"])
    await add_events(db, [{"type": "job.completed", "job_id": new_id()}])
    await dispatch_all(db, fast)
    now = datetime.now(UTC)
    async with db.write() as conn:  # a process claims it, then dies before any answer
        [claimed] = await claim_due(conn, now=now, lease_until=now + timedelta(seconds=0.3),
                                    limit=10)
    hits: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        hits.append(request.headers[DELIVERY_HEADER])
        return httpx.Response(200)

    started = time.monotonic()
    await deliver_all(Deliverer(db, fast, client=mock_client(receiver)))
    assert time.monotonic() - started >= 0.25  # not before the dead process's lease ended
    assert hits == [str(claimed.delivery.id)]
    async with db.read() as conn:
        [delivery] = await list_deliveries(conn, hook_id, limit=5)
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 2
