"""Seed 003's Socket.IO events from a real ``jobtrack serve`` process, read by the
``python-socketio`` client and by the real ``socket.io-client`` npm package under node:
names and payloads as the seed writes them, tenant-scoped, the room ``flow:{flowId}``
joined by an event the client emits, and fed from the stored event log (a change written
by another process reaches the clients too)."""

import asyncio
import json
import os
import shutil
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio  # type: ignore[import-untyped]

from jobtrack.domain.flows import FlowNode
from jobtrack.domain.status import FlowStatus, JobStatus
from jobtrack.store import flows as store_flows
from jobtrack.store.engine import Database
from support.api import Served

RUNNING, COMPLETED = JobStatus.RUNNING.value, JobStatus.COMPLETED.value
CANCELLED = JobStatus.CANCELLED.value
FLOW_COMPLETED, FLOW_CANCELLED = FlowStatus.COMPLETED.value, FlowStatus.CANCELLED.value
SEED_EVENTS = ("flow:created", "flow:updated", "flow:job:updated", "flow:completed",
               "flow:progress")
ROOT = Path(__file__).parents[2]
NODE_CLIENT = Path(__file__).with_name("socketio_client.cjs")
NODE_MODULES = ROOT / ".tools" / "node_modules"


class Recorder:
    """A python-socketio client that records every seed event it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.got: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.arrived = asyncio.Event()
        for name in SEED_EVENTS:
            self.client.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Any:
        async def record(payload: dict[str, Any]) -> None:
            self.got[name].append(payload)
            self.arrived.set()
        return record

    async def wait_for(self, name: str, check: Any = None, timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                for payload in self.got[name]:
                    if check is None or check(payload):
                        return payload
                self.arrived.clear()
                await self.arrived.wait()


async def _connect(url: str, **kwargs: Any) -> Recorder:
    rec = Recorder()
    await rec.client.connect(url, transports=["websocket"], wait_timeout=10, **kwargs)
    return rec


async def _create_flow(http: httpx.AsyncClient, served: Served) -> tuple[dict[str, Any],
                                                                          dict[str, str]]:
    r = await http.post("/flows", headers=served.auth(), json={
        "flowname": "ingest-pdf", "name": "index", "queueName": "index",
        "children": [{"name": "extract", "queueName": "extract"}]})
    assert r.status_code == 201, r.text
    flow: dict[str, Any] = r.json()["flow"]
    listed = await http.get("/jobs", params={"flowId": flow["flowId"]}, headers=served.auth())
    jobs = {j["name"]: j["jobId"] for j in listed.json()["items"]}
    return flow, jobs


async def _report(http: httpx.AsyncClient, served: Served, flow_id: str, job_id: str,
                  **body: Any) -> None:
    r = await http.put(f"/flows/{flow_id}/jobs/{job_id}", json=body, headers=served.auth())
    assert r.status_code == 200, r.text


async def _run_flow(http: httpx.AsyncClient, served: Served, flow_id: str,
                    jobs: dict[str, str]) -> None:
    """Drive the flow to completion the way an external worker would."""
    for name, result in (("extract", {"pages": 3}), ("index", {"indexed": 3})):
        await _report(http, served, flow_id, jobs[name], status=RUNNING)
        await _report(http, served, flow_id, jobs[name], status=COMPLETED, result=result)


async def test_seed_events_names_payloads_rooms_and_tenants(served: Served) -> None:
    a = await _connect(served.url, auth={"token": served.keys["a"]})
    # the header works as well as the handshake's auth
    by_header = await _connect(served.url, headers=served.auth("a"))
    b = await _connect(served.url, auth={"token": served.keys["b"]})
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
            flow, jobs = await _create_flow(http, served)
            flow_id = flow["flowId"]
            created = await a.wait_for("flow:created", lambda p: p["flowId"] == flow_id)
            assert created == flow  # the seed's FlowResponse: the flow summary
            ack = await a.client.call("join", f"flow:{flow_id}", timeout=5)
            assert ack == {"ok": True, "room": f"flow:{flow_id}"}
            await _run_flow(http, served, flow_id, jobs)
            summary = (await http.get(f"/flows/{flow_id}", headers=served.auth())).json()
        # events carry the flow's stored counters; the per-step counts are counted on read
        counters = {k: v for k, v in summary["progress"].items() if k != "steps"}

        done = await a.wait_for("flow:completed", lambda p: p["flowId"] == flow_id)
        assert done == {"flowId": flow_id, "result": summary["result"],
                        "completedAt": summary["completedAt"]}
        job_updates = [(p["jobId"], p["jobStatus"]) for p in a.got["flow:job:updated"]]
        assert job_updates == [(jobs["extract"], RUNNING), (jobs["extract"], COMPLETED),
                               (jobs["index"], RUNNING), (jobs["index"], COMPLETED)]
        finished = a.got["flow:job:updated"][-1]
        assert finished == {"flowId": flow_id, "jobId": jobs["index"], "jobStatus": COMPLETED,
                            "result": {"indexed": 3}}
        last = a.got["flow:updated"][-1]
        assert last == {"flowId": flow_id, "status": FLOW_COMPLETED,
                        "progress": counters, "updatedAt": summary["updatedAt"]}
        assert set(last["progress"]) >= {"total", "completed", "failed", "percentage"}
        progress = await a.wait_for("flow:progress", lambda p: p["status"] == FLOW_COMPLETED)
        assert progress == {"flowId": flow_id, "progress": counters,
                            "status": FLOW_COMPLETED}
        # the room is joined by the client: the header client never joined it
        await by_header.wait_for("flow:completed", lambda p: p["flowId"] == flow_id)
        assert by_header.got["flow:progress"] == []
        assert len(by_header.got["flow:job:updated"]) == 4
        # another tenant sees nothing of it
        assert all(not b.got[name] for name in SEED_EVENTS)
        bad = await b.client.call("join", "flow:not-an-id", timeout=5)
        assert bad["ok"] is False and bad["error"]["code"] == "validation_error"
    finally:
        for rec in (a, by_header, b):
            await rec.client.disconnect()


async def test_a_cancelled_flow_and_a_room_left(served: Served) -> None:
    a = await _connect(served.url, auth={"token": served.keys["a"]})
    try:
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
            (kept, _), (left, _) = [await _create_flow(http, served) for _ in range(2)]
            for flow in (kept, left):
                ack = await a.client.call("join", {"flowId": flow["flowId"]}, timeout=5)
                assert ack == {"ok": True, "room": f"flow:{flow['flowId']}"}
            ack = await a.client.call("leave", left["flowId"], timeout=5)
            assert ack == {"ok": True, "room": f"flow:{left['flowId']}"}
            for flow in (kept, left):
                r = await http.post(f"/flows/{flow['flowId']}/cancel", headers=served.auth())
                assert r.status_code == 200, r.text
        for flow in (kept, left):
            await a.wait_for("flow:updated", lambda p, f=flow: p["flowId"] == f["flowId"]
                             and p["status"] == FLOW_CANCELLED)
        await a.wait_for("flow:progress", lambda p: p["flowId"] == kept["flowId"]
                         and p["status"] == FLOW_CANCELLED)
        cancelled_jobs = [p for p in a.got["flow:job:updated"] if p["jobStatus"] == CANCELLED]
        assert {p["flowId"] for p in cancelled_jobs} == {kept["flowId"], left["flowId"]}
        await asyncio.sleep(0.3)
        assert {p["flowId"] for p in a.got["flow:progress"]} == {kept["flowId"]}
        assert a.got["flow:completed"] == []  # seed 003 has no event for a cancelled flow
    finally:
        await a.client.disconnect()


async def test_a_change_written_by_another_process_reaches_clients(
    served: Served, db: Database
) -> None:
    admin = await _connect(served.url, auth={"token": served.keys["admin"]})
    a = await _connect(served.url, auth={"token": served.keys["a"]})
    try:
        async with db.write() as conn:  # this test's process, not the server's
            flow, _ = await store_flows.create_flow(
                conn, FlowNode(name="root", queue_name="q"), tenant="tenant-b",
                flowname="elsewhere", now=datetime.now(UTC), actor="test", max_depth=32,
                max_jobs=100, default_max_attempts=1)
        seen = await admin.wait_for("flow:created", lambda p: p["flowId"] == flow.id)
        assert seen["flowname"] == "elsewhere"
        await asyncio.sleep(0.5)  # tenant a must not get tenant b's flow
        assert a.got["flow:created"] == []
    finally:
        await admin.client.disconnect()
        await a.client.disconnect()


async def test_a_missing_or_bad_key_is_refused(served: Served) -> None:
    for kwargs in ({}, {"auth": {"token": "jt_nonsense"}}):
        client = socketio.AsyncClient(reconnection=False)
        refused: list[Any] = []
        client.on("connect_error", refused.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(served.url, transports=["websocket"], wait_timeout=5,
                                 **kwargs)
        assert refused and refused[0]["data"]["code"] == "unauthorized", refused
        assert "key" in refused[0]["message"]


def _node_client_available() -> bool:
    if shutil.which("node") and (NODE_MODULES / "socket.io-client").is_dir():
        return True
    if os.environ.get("CI"):
        pytest.fail("node and socket.io-client (scripts/install puts it in .tools/) are "
                    "required in CI")
    pytest.skip("node or .tools/node_modules/socket.io-client missing (run scripts/install)")


async def test_the_socket_io_client_npm_package_receives_the_seed_events(
    served: Served
) -> None:
    _node_client_available()
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        flow, jobs = await _create_flow(http, served)
        flow_id = flow["flowId"]
        node = await asyncio.create_subprocess_exec(
            "node", str(NODE_CLIENT), served.url, served.keys["a"], flow_id,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_PATH": str(NODE_MODULES)})
        assert node.stdout is not None
        try:
            async with asyncio.timeout(15):
                first = json.loads(await node.stdout.readline())
            assert first == {"joined": {"ok": True, "room": f"flow:{flow_id}"}}, first
            await _run_flow(http, served, flow_id, jobs)
            async with asyncio.timeout(20):
                out, err = await node.communicate()
        finally:
            if node.returncode is None:
                node.kill()
                await node.wait()
    assert node.returncode == 0, err.decode()
    got = [json.loads(line) for line in out.decode().splitlines()]
    names = [e["event"] for e in got]
    assert names.count("flow:job:updated") == 4
    assert "flow:updated" in names and "flow:progress" in names
    assert names[-1] == "flow:completed"
    assert got[-1]["payload"]["flowId"] == flow_id
    assert {e["payload"]["flowId"] for e in got} == {flow_id}


async def _subscribers(http: httpx.AsyncClient, served: Served,
                       name: str = "jobtrack_event_subscribers") -> float:
    body = (await http.get("/metrics", headers=served.auth("admin"))).text
    for line in body.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


@pytest.mark.parametrize("serve_env", [{"JOBTRACK_EVENT_QUEUE_SIZE": "5"}])
async def test_a_client_that_stops_reading_is_dropped_and_a_fast_one_is_not(
    served: Served, serve_env: dict[str, str]
) -> None:
    fast = await _connect(served.url, auth={"token": served.keys["a"]})
    eio = f"{served.url}/socket.io/?EIO=4&transport=polling"
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        # a long-polling client that connects, then never polls again: what is sent to
        # it waits in the server's Engine.IO queue
        opened = await http.get(eio)
        sid = json.loads(opened.text[1:])["sid"]
        auth = "40" + json.dumps({"token": served.keys["a"]})  # connect, with the key
        assert (await http.post(f"{eio}&sid={sid}", content=auth)).text == "OK"
        assert (await http.get(f"{eio}&sid={sid}")).text.startswith("40")
        assert await _subscribers(http, served) == 2
        flows = []
        for i in range(20):  # a burst four times the queue size
            r = await http.post("/flows", headers=served.auth(), json={
                "flowname": f"burst-{i}", "name": "n", "queueName": "q"})
            flows.append(r.json()["flow"]["flowId"])
        async with asyncio.timeout(10):
            while await _subscribers(http, served) != 1:
                await asyncio.sleep(0.1)
        dropped = "jobtrack_event_subscribers_dropped_total"
        assert await _subscribers(http, served, dropped) == 1
        # what was queued for it is still delivered, then the disconnect packet ("41")
        received = ""
        async with asyncio.timeout(10):
            while not received.endswith("\x1e41"):
                received += "\x1e" + (await http.get(f"{eio}&sid={sid}")).text
        # at most the two bounds: Engine.IO's queue (5, and the packet that passed it)
        # and the subscription's buffer (5)
        assert 5 < received.count('42["flow:created"') <= 2 * 5 + 1
        # the reader that keeps up got every event of the burst and is still connected
        await fast.wait_for("flow:created", lambda p: p["flowId"] == flows[-1])
        assert [p["flowId"] for p in fast.got["flow:created"]] == flows
        assert fast.client.connected
    await fast.client.disconnect()
