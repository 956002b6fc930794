"""``jobtrack webhooks run``: the delivery loop as a process of its own.

The API runs with ``webhooks_in_api`` off (it stores events and deliveries' subscriptions,
and never calls out); a real ``jobtrack webhooks run`` subprocess dispatches and delivers
to a real HTTP receiver, including an event stored before it started, and stops cleanly
on SIGTERM. ``webhooks ls`` and ``webhooks deliveries`` then show what happened.
"""

import asyncio
from pathlib import Path

from sqlalchemy import select

from jobtrack.api.app import create_app
from jobtrack.domain.status import DeliveryStatus, JobStatus
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.tables import webhook_deliveries
from jobtrack.webhooks.signing import verify
from support.cli import command, invoke
from support.keys import bearer, new_key
from support.polling import eventually
from support.processes import running
from support.servers import asgi_client
from support.webhooks import receiving

FAST = {"JOBTRACK_EVENT_POLL_SECONDS": "0.02", "JOBTRACK_WEBHOOK_RETRY_BASE_SECONDS": "0.2"}


async def test_webhooks_run_delivers_from_its_own_process(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    key = await new_key(db, "hooks")
    settings = Settings(database_url=db_url, webhooks_in_api=False,
                        rate_limit_per_minute=1_000_000, event_poll_seconds=0.02)
    app = create_app(settings)
    with receiving() as receiver:
        async with asgi_client(app, bearer(key)) as api:
            r = await api.post("/webhooks", json={"url": receiver.url, "events": ["all"]})
            assert r.status_code == 201, r.text
            hook_id, secret = r.json()["webhookId"], r.json()["secret"]
            r = await api.post("/jobs", json={"queueName": "q", "name": "n"})
            job_id = r.json()["jobId"]
            await asyncio.sleep(0.5)
            assert receiver.receipts() == [], "the API delivered with webhooks_in_api off"

            with running(command("webhooks", "run", "--no-migrate", "--concurrency", "4",
                                 url=db_url), tmp_path, "webhooks", FAST) as proc:
                # the event stored before the process started is delivered too
                await eventually(lambda: len(receiver.receipts()) >= 1, 30,
                                 f"delivery of job.created\n{proc.output()}")
                for body in ({"status": JobStatus.RUNNING.value}, {"progress": 50},
                             {"status": JobStatus.COMPLETED.value, "result": {"ok": 1}}):
                    r = await api.patch(f"/jobs/{job_id}", json=body)
                    assert r.status_code == 200, r.text
                await eventually(lambda: len(receiver.receipts()) >= 4, 30,
                                 f"four deliveries\n{proc.output()}")
                took = proc.stop()
                assert proc.proc.returncode == 0, proc.output()
                assert took < 10, f"webhooks run took {took:.1f} s to stop"
                assert "webhooks stopped: 4 deliveries stored, 4 delivered" in proc.output()

    got = receiver.receipts()
    assert [g.event_type for g in got] == ["job.created", "job.updated", "job.progress",
                                           "job.completed"]
    assert all(verify(secret, g.body, g.signature) for g in got)
    assert all(g.envelope["data"]["jobId"] == job_id for g in got)
    ids = [g.envelope["id"] for g in got]
    assert ids == sorted(ids)
    async with db.read() as conn:
        statuses = (await conn.execute(select(webhook_deliveries.c.status))).scalars().all()
    assert statuses == [DeliveryStatus.DELIVERED.value] * 4

    code, out, _ = await asyncio.to_thread(invoke, db_url, "webhooks", "ls")
    assert code == 0 and hook_id in out and receiver.url in out and "hooks" in out
    assert secret not in out
    code, out, _ = await asyncio.to_thread(invoke, db_url, "webhooks", "deliveries", hook_id)
    assert code == 0 and out.count(DeliveryStatus.DELIVERED.value) == 4
    assert "job.completed" in out and job_id in out
    code, _, err = await asyncio.to_thread(invoke, db_url, "webhooks", "deliveries",
                                           "01a209ed-0000-7000-8000-000000000000")
    assert code == 1 and "not found" in err
