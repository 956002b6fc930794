"""R5: the webhook receiver is down for a while (first answering 503, then with its port
closed), then back. Jobs keep changing through the API all along. In the end every
event was delivered (exactly once after deduplicating on ``X-Jobtrack-Delivery``), every
signature is valid, nothing is lost, and each job's events arrived in order.

The outage lasts ``JOBTRACK_R5_OUTAGE_SECONDS`` (default 30, as docs/targets.md says); retries
use fast settings (backoff from 0.2 s, capped at 2 s). The test prints its figures.
"""

import asyncio
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from jobtrack.api.app import create_app
from jobtrack.domain.status import DeliveryStatus
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.keys import create_key
from jobtrack.store.tables import events, webhook_deliveries
from jobtrack.webhooks.signing import DELIVERY_HEADER, SIGNATURE_HEADER, verify

pytestmark = pytest.mark.slow

OUTAGE = float(os.environ.get("JOBTRACK_R5_OUTAGE_SECONDS", "30"))
JOBS = 12
STEPS = 6  # progress reports per job, spread over the whole run


@dataclass
class Log:
    """What the receiver saw, shared with its handler threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    status: int = 200
    accepted: list[tuple[int, dict[str, Any], bool]] = field(default_factory=list)
    refused: int = 0
    secret: str = ""


class Receiver:
    """A plain ``http.server`` endpoint in a thread that can answer 503 or go away."""

    def __init__(self, log: Log) -> None:
        self.log = log
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        log = self.log

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with log.lock:
                    status = log.status
                    if status < 300:
                        valid = verify(log.secret, body, self.headers[SIGNATURE_HEADER])
                        log.accepted.append((int(self.headers[DELIVERY_HEADER]),
                                             orjson.loads(body), valid))
                    else:
                        log.refused += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the port: connections are refused until ``start``."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
async def key(db: Database) -> str:
    async with db.write() as conn:
        raw, _ = await create_key(conn, tenant="r5", admin=False, now=datetime.now(UTC))
    return raw


@pytest.fixture
async def api(settings: Settings, key: str) -> AsyncIterator[httpx.AsyncClient]:
    tuned = settings.model_copy(update={
        "rate_limit_per_minute": 1_000_000, "event_poll_seconds": 0.02,
        "webhook_retry_base_seconds": 0.2, "webhook_retry_cap_seconds": 2.0,
        "webhook_max_attempts": 1000, "webhook_timeout_seconds": 1.0,
    })
    app = create_app(tuned)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r5.test",
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            yield client


async def test_receiver_down_then_back_loses_nothing(
    api: httpx.AsyncClient, db: Database
) -> None:
    log = Log()
    receiver = Receiver(log)
    receiver.start()
    try:
        created = await api.post("/webhooks", json={
            "url": f"http://127.0.0.1:{receiver.port}/hook", "events": ["all"]})
        assert created.status_code == 201, created.text
        log.secret = created.json()["secret"]
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
        with log.lock:
            log.status = 503                       # down, part 1: answers 503
        for step in range(2, STEPS):
            await asyncio.sleep(OUTAGE / 2 / (STEPS - 2))
            if step == STEPS // 2:
                receiver.stop()                    # down, part 2: port closed
            await report(step)
        await asyncio.sleep(max(0.0, started + 1 + OUTAGE - time.monotonic()))
        with log.lock:
            log.status = 200
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
    for delivery_id, envelope, _valid in log.accepted:
        if delivery_id in unique:
            duplicates += 1
            continue
        unique[delivery_id] = envelope
        order[envelope["data"]["jobId"]].append(envelope["id"])
    delivered_ids = [e["id"] for e in unique.values()]
    print(f"\nR5: outage {OUTAGE:g} s (503 then port closed); {len(stored)} events stored, "
          f"{len(unique)} delivered, {duplicates} duplicate receipts, {log.refused} answered "
          f"503, {attempts} attempts in all, {failed} failed; all delivered "
          f"{recovered_in:.1f} s after the receiver came back")
    assert failed == 0
    assert sorted(delivered_ids) == sorted(stored), "an event was lost or sent twice"
    assert all(valid for _, _, valid in log.accepted), "a signature did not verify"
    for job_id, ids in order.items():
        assert ids == sorted(ids), f"job {job_id}: events out of order {ids}"
    assert len(order) == JOBS and all(len(ids) == STEPS + 1 for ids in order.values())
