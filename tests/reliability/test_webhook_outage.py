"""R5: the webhook receiver is down for a while (first answering 503, then with its port
closed), then back. Jobs keep changing through the API all along. In the end every
event was delivered (exactly once after deduplicating on ``X-Jobtrack-Delivery``), every
signature is valid, nothing is lost, and each job's events arrived in order.

The outage lasts ``JOBTRACK_R5_OUTAGE_SECONDS`` (default 30, as docs/targets.md says); retries
use fast settings (backoff from 0.2 s, capped at 2 s). The test prints its figures.
"""

import asyncio
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from jobtrack.domain.status import DeliveryStatus
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.tables import events, webhook_deliveries
from jobtrack.webhooks.signing import verify
from support.keys import bearer, new_key
from support.servers import api_client
from support.webhooks import Receiver

pytestmark = pytest.mark.slow

OUTAGE = float(os.environ.get("JOBTRACK_R5_OUTAGE_SECONDS", "30"))
JOBS = 12
STEPS = 6  # progress reports per job, spread over the whole run


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    key = await new_key(db, "r5")
    tuned = settings.model_copy(update={
        "rate_limit_per_minute": 1_000_000, "event_poll_seconds": 0.02,
        "webhook_retry_base_seconds": 0.2, "webhook_retry_cap_seconds": 2.0,
        "webhook_max_attempts": 1000, "webhook_timeout_seconds": 1.0,
    })
    async with api_client(tuned, bearer(key)) as client:
        yield client


async def test_receiver_down_then_back_loses_nothing(
    api: httpx.AsyncClient, db: Database
) -> None:
    answer = {"status": 200}  # what the receiver answers now
    receiver = Receiver(answer=lambda _n, _body: answer["status"])
    receiver.start()
    try:
        created = await api.post("/webhooks", json={
            "url": receiver.url, "events": ["all"]})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        jobs = [(await api.post("/jobs", json={"queueName": "r5", "name": f"j{i}"})).json()
                ["jobId"] for i in range(JOBS)]

        async def report(step: int) -> None:
            body: dict[str, Any] = {"progress": step * 10}
            if step == 1:
                body["status"] = "running"
            for job_id in jobs:
                r = await api.patch(f"/jobs/{job_id}", json=body)
                assert r.status_code == 200, r.text

        run = OUTAGE + 4
        started = time.monotonic()
        await report(1)
        await asyncio.sleep(1)
        answer["status"] = 503                     # down, part 1: answers 503
        for step in range(2, STEPS):
            await asyncio.sleep(OUTAGE / 2 / (STEPS - 2))
            if step == STEPS // 2:
                receiver.stop()                    # down, part 2: port closed
            await report(step)
        await asyncio.sleep(max(0.0, started + 1 + OUTAGE - time.monotonic()))
        answer["status"] = 200
        receiver.start()                           # back
        back_at = time.monotonic()
        for job_id in jobs:
            r = await api.patch(f"/jobs/{job_id}", json={"status": "completed"})
            assert r.status_code == 200, r.text

        async def settled() -> bool:
            async with db.read() as conn:
                pending = await conn.scalar(select(func.count()).where(
                    webhook_deliveries.c.status == DeliveryStatus.PENDING.value))
            return pending == 0

        async with asyncio.timeout(run):
            while not await settled():
                await asyncio.sleep(0.1)
        recovered_in = time.monotonic() - back_at
    finally:
        receiver.stop()

    async with db.read() as conn:
        stored = {r.id: r.job_id for r in await conn.execute(
            select(events.c.id, events.c.job_id).where(events.c.tenant == "r5"))}
        attempts = await conn.scalar(select(func.sum(webhook_deliveries.c.attempts)))
        failed = await conn.scalar(select(func.count()).where(
            webhook_deliveries.c.status == DeliveryStatus.FAILED.value))
    unique: dict[int, dict[str, Any]] = {}
    duplicates = 0
    order: dict[str, list[int]] = defaultdict(list)
    accepted = receiver.delivered()
    refused = len(receiver.got) - len(accepted)
    for delivery_id, envelope in ((r.delivery_id, r.envelope) for r in accepted):
        if delivery_id in unique:
            duplicates += 1
            continue
        unique[delivery_id] = envelope
        order[envelope["data"]["jobId"]].append(envelope["id"])
    delivered_ids = [e["id"] for e in unique.values()]
    print(f"\nR5: outage {OUTAGE:g} s (503 then port closed); {len(stored)} events stored, "
          f"{len(unique)} delivered, {duplicates} duplicate receipts, {refused} answered "
          f"503, {attempts} attempts in all, {failed} failed; all delivered "
          f"{recovered_in:.1f} s after the receiver came back")
    assert failed == 0
    assert sorted(delivered_ids) == sorted(stored), "an event was lost or sent twice"
    assert all(verify(secret, r.body, r.signature) for r in accepted), \
        "a signature did not verify"
    for job_id, ids in order.items():
        assert ids == sorted(ids), f"job {job_id}: events out of order {ids}"
    assert len(order) == JOBS and all(len(ids) == STEPS + 1 for ids in order.values())
