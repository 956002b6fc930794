"""``examples/flows_across_queues``: seed 003's flow across queues on a real
``jobtrack serve``. The producer creates the flow with ``POST /flows``; a real
``jobtrack worker`` runs the ``ingest`` child and the parent; the external worker claims
the ``embed`` child over HTTP and reports it with ``PUT /flows/{flowId}/jobs/{jobId}``;
the node listener (the real ``socket.io-client``) prints the seed's events of the flow.
Asserts seed 003's objectives and testing plan (docs/examples/flows_across_queues.md
names each check).

Needs node and socket.io-client (``scripts/install --for-tests`` puts it in ``.tools``):
skipped without them locally, failed in CI, as tests/seeds/test_socketio.py does."""

import io
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from rich.console import Console

from examples.flows_across_queues.external_worker import EMBED_QUEUE, ExternalWorker
from examples.flows_across_queues.producer import FLOWNAME, create_flow
from examples.flows_across_queues.tasks import INGEST_QUEUE, PUBLISH_QUEUE
from jobtrack import FlowStatus, JobStatus
from support.cli import cli_key
from support.keys import bearer
from support.processes import REPO, process, serving, working

LISTENER = REPO / "examples" / "flows_across_queues" / "listener.cjs"
NODE_MODULES = REPO / ".tools" / "node_modules"
WORKER_ENV = {"FLOW_STEP_SECONDS": "0.05"}
PAGES = CHUNKS = 4
#: the seed's Socket.IO events
SEED_EVENTS = {"flow:created", "flow:updated", "flow:job:updated", "flow:progress",
               "flow:completed"}


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the Socket.IO listener")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def node_client() -> None:
    if shutil.which("node") is None:
        _unavailable("node is not installed")
    if not (NODE_MODULES / "socket.io-client").is_dir():
        _unavailable("socket.io-client not found in .tools (run scripts/install --for-tests)")


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()
            if line.startswith("{")]


def _wait_line(log: Path, proc: "subprocess.Popen[bytes]",
               check: Callable[[dict[str, Any]], bool], timeout: float = 30) -> None:
    """Until the listener printed a line for which ``check`` holds."""
    deadline = time.monotonic() + timeout
    while not any(check(line) for line in _lines(log)):
        assert proc.poll() is None, f"listener exited {proc.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"listener is silent:\n{log.read_text()}"
        time.sleep(0.05)


def _counts(latest: dict[str, str], total: int) -> dict[str, int]:
    """A flow's job counts from the latest status of each job (unseen jobs: pending)."""
    seen = Counter(latest.values())
    counts = {s.value: seen[s.value] for s in JobStatus if s is not JobStatus.PENDING}
    counts[JobStatus.PENDING.value] = total - sum(counts.values())
    return counts


def test_a_flow_across_two_queues_with_an_external_worker_and_a_socket_io_listener(
        db_url: str, tmp_path: Path, node_client: None) -> None:
    key = cli_key(db_url, "docs")
    auth = bearer(key)
    log = tmp_path / "listener.log"
    reports: list[dict[str, Any]] = []
    midway: list[dict[str, Any]] = []
    with serving(db_url, tmp_path) as base, \
            httpx.Client(base_url=base, headers=auth, timeout=10) as http:

        def look_midway(answer: dict[str, Any]) -> None:
            """After each progress report: the flow as a reader sees it then."""
            reports.append(answer)
            midway.append(http.get(f"/flows/{answer['flowId']}",
                                   params={"include": "jobs"}).json())

        with process(["node", str(LISTENER), base, key, FLOWNAME, "90"], log,
                     env={"NODE_PATH": str(NODE_MODULES)}) as listener:
            _wait_line(log, listener, lambda line: line.get("listening") == FLOWNAME)
            created = create_flow(base, key, document="manual.pdf", pages=PAGES,
                                  chunks=CHUNKS)
            flow_id = created["flowId"]
            _wait_line(log, listener, lambda line: "joined" in line)
            external = ExternalWorker(base, key, pause=0.2, console=Console(file=io.StringIO()))
            try:
                with working(db_url, "examples.flows_across_queues.tasks:app", tmp_path,
                             INGEST_QUEUE, PUBLISH_QUEUE, env=WORKER_ENV):
                    [embedded] = external.run(jobs=1, timeout=60, on_report=look_midway)
                    code = listener.wait(timeout=60)
            finally:
                external.close()
        flow = http.get(f"/flows/{flow_id}", params={"include": "jobs"}).json()
        jobs = http.get("/jobs", params={"flowId": flow_id}).json()["items"]

    lines = _lines(log)
    assert code == 0, log.read_text()
    events = [(line["event"], line["payload"]) for line in lines if "event" in line]
    names = [name for name, _ in events]
    by_queue = {job["queueName"]: job for job in jobs}
    root, extract, embed = by_queue[PUBLISH_QUEUE], by_queue[INGEST_QUEUE], by_queue[EMBED_QUEUE]

    # POST /flows: one consistent string flowId, and the flowname
    assert isinstance(flow_id, str) and created["flow"]["flowId"] == flow_id
    assert "id" not in created["flow"] and created["flow"]["flowname"] == FLOWNAME
    assert created["flow"]["status"] == FlowStatus.PENDING
    # flowId injection: every job of the flow, on each of the three queues, carries it,
    # and the worker's task received it
    assert set(by_queue) == {PUBLISH_QUEUE, INGEST_QUEUE, EMBED_QUEUE} and len(jobs) == 3
    for job in jobs:
        assert job["flowId"] == job["data"]["flowId"] == flow_id
    assert extract["result"]["flowId"] == flow_id
    assert extract["parentJobId"] == embed["parentJobId"] == root["jobId"]

    # the flow completed, with the parent's result, once every job completed
    assert flow["status"] == FlowStatus.COMPLETED and flow["result"] == root["result"]
    assert flow["progress"] == {"total": 3, "completed": 3, "failed": 0, "cancelled": 0,
                                "running": 0, "pending": 0, "percentage": 100,
                                "steps": {"delayed": 0, "waitingChildren": 0, "paused": 0,
                                          "stuck": 0}}
    assert {job["status"] for job in jobs} == {JobStatus.COMPLETED}

    # the external worker's reports: its progress on the job, the job in the flow
    assert [r["progress"]["percentage"] for r in reports] == [25, 50, 75, 100]
    assert embedded["status"] == JobStatus.COMPLETED
    assert embedded["result"] == {"chunks": CHUNKS, "vectors": CHUNKS * 16}
    for answer, seen in zip(reports, midway, strict=True):
        [child] = [c for c in seen["jobs"]["children"] if c["jobId"] == embed["jobId"]]
        assert child["progress"] == answer["progress"] and child["status"] == JobStatus.RUNNING
        assert seen["progress"]["running"] >= 1  # counting the external child
        assert seen["progress"]["completed"] < 3

    # the listener: the seed's events only, of this flow only, created first and
    # completed last, each once
    assert set(names) == SEED_EVENTS
    assert {payload["flowId"] for _, payload in events} == {flow_id}
    assert names[0] == "flow:created" and names[-1] == "flow:completed"
    assert names.count("flow:created") == names.count("flow:completed") == 1
    assert events[0][1] == created["flow"]
    assert events[-1][1] == {"flowId": flow_id, "result": flow["result"],
                             "completedAt": flow["completedAt"]}
    # every job: running, then completed; the parent started after both children completed
    job_updates = [(p["jobId"], p["jobStatus"]) for n, p in events if n == "flow:job:updated"]
    for job in jobs:
        assert [s for j, s in job_updates if j == job["jobId"]] == [JobStatus.RUNNING,
                                                                    JobStatus.COMPLETED]
    assert job_updates.index((root["jobId"], JobStatus.RUNNING)) > max(
        job_updates.index((extract["jobId"], JobStatus.COMPLETED)),
        job_updates.index((embed["jobId"], JobStatus.COMPLETED)))
    embed_done = next(p for n, p in events if n == "flow:job:updated"
                      and p["jobId"] == embed["jobId"] and p["jobStatus"] == JobStatus.COMPLETED)
    assert embed_done["result"] == embedded["result"]
    # each flow:updated counts exactly the job changes announced before it (so the
    # external child's running and completed reports show up in the flow's progress)
    latest: dict[str, str] = {}
    updates = []
    for name, payload in events:
        if name == "flow:job:updated":
            latest[payload["jobId"]] = payload["jobStatus"]
        elif name == "flow:updated":
            updates.append(payload)
            progress = payload["progress"]
            assert {k: v for k, v in progress.items() if k not in ("total", "percentage")} \
                == _counts(latest, 3), (payload, latest)
    # flow:progress (the room) follows each flow:updated with the same figures
    in_room = [p for n, p in events if n == "flow:progress"]
    assert [(p["status"], p["progress"]) for p in in_room] == [
        (u["status"], u["progress"]) for u in updates]
    # progress never goes backwards, and reaches 100
    percentages = [u["progress"]["percentage"] for u in updates]
    completed = [u["progress"]["completed"] for u in updates]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    assert completed == sorted(completed) and completed[-1] == 3
    assert updates[-1]["status"] == FlowStatus.COMPLETED
    # the flow's status: running from its first started job until it completed, never
    # back to pending
    statuses = [u["status"] for u in updates]
    first_running = statuses.index(FlowStatus.RUNNING)
    assert set(statuses[first_running:-1]) == {FlowStatus.RUNNING}, statuses
