"""Two API processes on one database: a change made through one reaches the SSE and
WebSocket clients of the other (docs/reference/http-api.md: "Events are stored, so clients
connected to any API process see every change")."""

import asyncio
from pathlib import Path

import httpx
import orjson
from websockets.asyncio.client import connect

from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from support.keys import bearer, make_keys
from support.processes import api_process
from support.sse import SseReader


async def test_an_update_through_one_process_reaches_clients_of_another(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    keys = await make_keys(db)
    tuned = settings.model_copy(update={"event_poll_seconds": 0.02})
    with api_process(tuned, tmp_path) as url_a, api_process(tuned, tmp_path) as url_b:
        async with httpx.AsyncClient(base_url=url_a, headers=bearer(keys["a"])) as a, \
                httpx.AsyncClient(base_url=url_b, headers=bearer(keys["a"]), timeout=10) as b:
            job_id = (await a.post("/jobs", json={"queueName": "q", "name": "n"})).json()["jobId"]
            ws_url = url_b.replace("http://", "ws://") + "/ws"
            async with b.stream("GET", "/events", params={"jobId": job_id}) as stream, \
                    connect(ws_url, additional_headers=bearer(keys["a"])) as ws:
                sse = SseReader(stream)
                await sse.frame()  # connected
                await ws.recv()  # authenticated
                await ws.send(orjson.dumps({"action": "subscribe", "room": f"job:{job_id}"}))
                await ws.recv()  # subscribed
                r = await a.patch(f"/jobs/{job_id}", json={"progress": 42})
                assert r.status_code == 200
                via_sse = await sse.event()
                via_ws = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                if via_ws["type"] == "job.created":  # committed before the room was joined
                    via_ws = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert via_sse["type"] == via_ws["type"] == "job.progress"
    assert via_sse["data"]["jobId"] == via_ws["data"]["jobId"] == job_id
    assert via_sse["data"]["progress"]["done"] == 42
    assert via_sse["id"] == via_ws["id"]
