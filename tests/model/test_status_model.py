"""R11: a model-based test of the whole status contract.

A hypothesis ``RuleBasedStateMachine`` drives random sequences of public operations
against a real server (the API app served by uvicorn) on SQLite and PostgreSQL: it
creates jobs (with and without phases) and flows (nested, on two queues), claims jobs
over the HTTP worker protocol, reports statuses, phases, steps and progress
(``PATCH /jobs/{id}``, ``PUT /flows/{flowId}/jobs/{jobId}``), pauses and resumes jobs and
phases, cancels jobs and flows, retries, and lets leases run out (the reaper, the store's
stall path). After every step it reads everything back and checks the invariants listed
in ``docs/explanation/state-machine.md`` ("What the model-based test checks").

Each hypothesis example is a fresh tenant on one server and database per backend, so the
examples stay independent and cheap. ``JOBTRACK_MODEL_EXAMPLES`` (and
``JOBTRACK_MODEL_STEPS``) run the longer version, marked ``slow``.
"""

import asyncio
import os
from collections import Counter
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from jobtrack.domain.events import EventType
from jobtrack.domain.status import (
    GENERIC_ALIASES,
    JOB_TRANSITIONS,
    RETRYABLE,
    TERMINAL,
    FlowStatus,
    JobStatus,
    PhaseStatus,
)
from jobtrack.domain.wire import iso
from jobtrack.queue.reaper import reap
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.events import StoredEvent
from support.events import stored_after
from support.keys import bearer, new_tenant
from support.servers import serving
from support.sse import SseStream

J, P, F = JobStatus, PhaseStatus, FlowStatus
T = TypeVar("T")

QUEUES = ("q1", "q2")
PHASES = ("load", "chunk", "index")
#: what reporters send: mostly canonical values, sometimes an alias the contract accepts
_CANONICAL = st.sampled_from([s.value for s in JobStatus])
REPORTED = st.one_of(_CANONICAL, _CANONICAL, _CANONICAL,
                     st.sampled_from(sorted(set(GENERIC_ALIASES) - set(JobStatus))))
#: at most this many jobs and flows per example, so operations meet the same jobs again
MAX_JOBS, MAX_FLOWS = 6, 2
#: a phase report: a new status, or progress only (None)
PHASE_MOVES = (P.RUNNING, P.PAUSED, P.COMPLETED, P.FAILED, None)
EXAMPLES_ENV, STEPS_ENV = "JOBTRACK_MODEL_EXAMPLES", "JOBTRACK_MODEL_STEPS"
#: shrinking a failure replays it hundreds of times against the server: only on request
SHRINK_ENV = "JOBTRACK_MODEL_SHRINK"
#: the codes a refused request may have (anything else but 200/201 is a failure)
REFUSED = (409, 422)


@dataclass
class Env:
    """One served app and its database, shared by every example of a test."""

    runner: asyncio.Runner
    db: Database
    client: httpx.AsyncClient


@dataclass
class Seen:
    """What the model last observed of a job."""

    wire: dict[str, Any] | None = None
    history: int = 0
    #: the attempt during which the job's current error was written
    error_attempt: int | None = None
    #: claimed over HTTP and not finished since: it holds a lease
    leased: bool = False


@dataclass
class FlowSeen:
    """What the model last observed of a flow."""

    wire: dict[str, Any] | None = None
    #: cancelled by a user (the flow, or its root job)
    cancelled: bool = False


@dataclass
class StepNotes:
    """What the current step did, for the invariants that depend on it."""

    retried: set[str] = field(default_factory=set)
    unchanged: set[str] = field(default_factory=set)
    expect: dict[str, set[str]] = field(default_factory=dict)
    stalled: bool = False


# --- strategies --------------------------------------------------------------------


@st.composite
def flow_trees(draw: st.DrawFn, depth: int = 1) -> dict[str, Any]:
    """A ``FlowJob`` tree: up to 3 levels, children on both queues, some phased."""
    node: dict[str, Any] = {"name": f"step{depth}", "queueName": draw(st.sampled_from(QUEUES))}
    opts: dict[str, Any] = {}
    phases = draw(st.integers(0, len(PHASES)))
    if phases:
        opts["phases"] = list(PHASES[:phases])
    attempts = draw(st.integers(1, 3))
    if attempts > 1:
        opts["maxAttempts"] = attempts
    if opts:
        node["opts"] = opts
    if depth < 3:
        n = draw(st.integers(0, 2 if depth == 1 else 1))
        if n:
            node["children"] = [draw(flow_trees(depth + 1)) for _ in range(n)]
    return node


# --- the spec's rules, written out for the checks ------------------------------------


def expected_flow_statuses(
    counts: Counter[str], total: int, *, cancelled: bool, before: str | None, reopened: bool
) -> set[str]:
    """status.md "Flow status from its jobs", with "never back from running to pending"
    (a retried job may reopen a finished flow)."""
    if counts[J.FAILED]:
        return {F.FAILED}
    if total and counts[J.COMPLETED] == total:
        return {F.COMPLETED}
    if cancelled:
        return {F.CANCELLED} | ({F.RUNNING, F.PENDING} if reopened else set())
    if not counts[J.PENDING] and not counts[J.RUNNING]:
        return {F.CANCELLED}  # every job finished, some cancelled: it can never complete
    if counts[J.RUNNING] or counts[J.COMPLETED] or counts[J.CANCELLED]:
        return {F.RUNNING}
    if reopened:
        return {F.PENDING, F.RUNNING}
    if before is not None and before != F.PENDING:
        return {F.RUNNING}  # started: it never goes back to pending
    return {F.PENDING}


def check_phases(job: dict[str, Any]) -> None:
    """status.md "Job status from phases": a job never contradicts its phases."""
    phases = [P(p["status"]) for p in job["phases"]]
    if not phases:
        return
    status = J(job["status"])
    live = [i for i, p in enumerate(phases) if p in (P.RUNNING, P.PAUSED)]
    what = f"job {job['jobId']} is {status.value} with phases {[p.value for p in phases]}"
    if status is J.COMPLETED:
        assert all(p is P.COMPLETED for p in phases), what
    elif status is J.RUNNING:
        assert len(live) == 1, what
        [i] = live
        assert all(p is P.COMPLETED for p in phases[:i]), what
        assert all(p is P.NOT_STARTED for p in phases[i + 1:]), what
        assert job["step"] == job["phases"][i]["name"], f"{what}, step {job['step']!r}"
    elif status is J.PENDING:
        assert all(p is P.NOT_STARTED for p in phases), what
    elif status is J.FAILED:
        assert not live, what
        assert P.FAILED in phases or all(p is P.NOT_STARTED for p in phases), what
    else:
        assert not live, what


def check_history(
    job: dict[str, Any], hist: list[dict[str, Any]], seen: Seen, *, retried: bool
) -> None:
    """The job's history (its stored transitions) continues from what was last observed
    with legal moves only, and replays to its current status and attempt."""
    assert hist, f"job {job['jobId']} has no history"
    assert hist[0]["from"] is None and hist[0]["to"] == J.PENDING and hist[0]["attempt"] == 1
    prev = seen.wire
    status = None if prev is None else prev["status"]
    attempt = 1 if prev is None else prev["attempt"]
    new = hist[seen.history:]
    retries = 0
    for h in new:
        move = f"job {job['jobId']}: {h['from']} -> {h['to']} (attempt {h['attempt']})"
        assert h["from"] == status, f"{move} does not continue from {status}"
        if status is None:
            assert h["to"] == J.PENDING and h["attempt"] == 1, move
        elif J(status) in RETRYABLE and h["to"] == J.PENDING:
            retries += 1
            assert retried and retries == 1, f"{move} without the retry action"
            assert h["attempt"] == attempt + 1, move
        elif status == J.RUNNING and h["to"] == J.PENDING:
            assert attempt < job["maxAttempts"], f"{move}: no attempts left"
            assert h["attempt"] == attempt + 1, move
        else:
            assert J(h["to"]) in JOB_TRANSITIONS[J(status)], f"{move} is not allowed"
            assert h["attempt"] == attempt, move
        status, attempt = h["to"], h["attempt"]
    assert status == job["status"], f"job {job['jobId']}: history ends {status}, job is " \
        f"{job['status']}"
    assert attempt == job["attempt"], f"job {job['jobId']}: history attempt {attempt}"
    assert job["attempt"] <= job["maxAttempts"], f"job {job['jobId']}: attempt past the last"


def phases_percentage(phases: list[dict[str, Any]]) -> float | None:
    """How far a phased job is, from its phases (state-machine.md, "Attempts, errors and
    progress"); None before any phase started."""
    if all(p["status"] == P.NOT_STARTED for p in phases):
        return None
    totals = [p["progress"]["total"] for p in phases]
    parts = [None if not size or size <= 0 else
             size if p["status"] == P.COMPLETED or p["progress"]["done"] > size
             else p["progress"]["done"] for p, size in zip(phases, totals, strict=True)]
    if all(part is not None for part in parts):
        return 100.0 * sum(parts) / sum(totals)  # type: ignore[arg-type]
    counted = sum((1.0 if p["status"] == P.COMPLETED else 0.0) if part is None
                  else part / size for p, part, size in zip(phases, parts, totals, strict=True))
    return 100.0 * counted / len(phases)


def check_progress(job: dict[str, Any], before: dict[str, Any] | None) -> None:
    """A phased job's progress comes from its phases each time they move."""
    if not job["phases"] or (before is not None and before["phases"] == job["phases"]):
        return
    expected = phases_percentage(job["phases"])
    got = None if job["progress"] is None else job["progress"]["percentage"]
    assert (got is None) == (expected is None) and (
        expected is None or abs(min(expected, 100.0) - got) <= 0.01), (
        f"job {job['jobId']}: progress {job['progress']} from phases {job['phases']}")


def check_error(job: dict[str, Any], error_attempt: int | None) -> None:
    """No terminal job carries another attempt's error; a completed job has none."""
    if job["status"] == J.COMPLETED:
        assert job["error"] is None, f"completed job {job['jobId']} has error {job['error']}"
    elif job["status"] in TERMINAL and job["error"] is not None:
        assert error_attempt == job["attempt"], (
            f"job {job['jobId']} is {job['status']} in attempt {job['attempt']} with the error "
            f"of attempt {error_attempt}: {job['error']}")


def tree_jobs(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node["children"]:
        yield from tree_jobs(child)


# --- the machine -------------------------------------------------------------------


class StatusContract(RuleBasedStateMachine):
    """Random public operations on one tenant; every invariant checked after each."""

    env: ClassVar[Env]

    def __init__(self) -> None:
        super().__init__()
        self.tenant, key = self.run(new_tenant(self.env.db))
        self.headers = bearer(key)
        self.key = key
        self.jobs: dict[str, Seen] = {}
        self.flows: dict[str, FlowSeen] = {}
        self.events: list[dict[str, Any]] = []
        self.folded_jobs: dict[str, dict[str, Any]] = {}
        self.folded_flows: dict[str, dict[str, Any]] = {}
        self.notes = StepNotes()
        self.errors = 0
        self.unchecked = False
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.fingerprints: set[tuple[str, str]] = set()
        self.stream = self.run(SseStream(self.env.client, key, 0).open())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        self.unchecked = True  # until the invariants pass after this step
        return self.env.runner.run(coro)

    async def call(self, method: str, path: str, body: Any = None,
                   params: dict[str, Any] | None = None) -> httpx.Response:
        r = await self.env.client.request(method, path, json=body, params=params,
                                          headers=self.headers)
        assert r.status_code < 500, f"{method} {path} {body}: {r.status_code} {r.text}"
        return r

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.run(self.call(method, path, body))

    def teardown(self) -> None:
        self.env.runner.run(self.final_checks())

    async def final_checks(self) -> None:
        """Once per example: ``GET /events`` from 0 replays exactly what the live stream
        delivered, each job's ``GET /jobs/{id}/history`` is its stored transitions, and
        each flow's job tree is its jobs."""
        await self.stream.close()
        if self.unchecked:
            return  # a step or a check failed: that is the failure to report
        replay = await SseStream(self.env.client, self.key, 0).open()
        try:
            got = await replay.read_until(self.events[-1]["id"]) if self.events else []
        finally:
            await replay.close()
        assert got == self.events, "the replay from 0 differs from the live stream"
        for job_id in self.jobs:
            r = await self.call("GET", f"/jobs/{job_id}/history")
            assert r.status_code == 200, r.text
            assert r.json() == self.history[job_id], f"job {job_id}: history"
        for flow_id in self.flows:
            r = await self.call("GET", f"/flows/{flow_id}", params={"include": "jobs"})
            assert r.status_code == 200, r.text
            tree = list(tree_jobs(r.json()["jobs"]))
            assert sorted(j["jobId"] for j in tree) == sorted(
                j for j, s in self.jobs.items() if s.wire and s.wire["flowId"] == flow_id)
            for node in tree:
                kids = node.pop("children")
                assert node == self.jobs[node["jobId"]].wire, f"flow {flow_id}: tree"
                assert {k["parentJobId"] for k in kids} <= {node["jobId"]}

    # --- picking -------------------------------------------------------------------

    def pick(self, data: st.DataObject, *, phased: bool = False,
             in_flow: bool = False) -> dict[str, Any]:
        """A job; mostly an unfinished one (finished ones only refuse or retry)."""
        choices = [s.wire for _, s in sorted(self.jobs.items()) if s.wire is not None
                   and (not phased or s.wire["phases"]) and (not in_flow or s.wire["flowId"])]
        active = [j for j in choices if j["status"] not in TERMINAL]
        if active and data.draw(st.integers(0, 3), label="unfinished"):
            choices = active
        job_id = data.draw(st.sampled_from([j["jobId"] for j in choices]), label="job")
        wire = self.jobs[job_id].wire
        assert wire is not None
        return wire

    def has(self, *, phased: bool = False, in_flow: bool = False) -> bool:
        return any(s.wire is not None and (not phased or s.wire["phases"])
                   and (not in_flow or s.wire["flowId"]) for s in self.jobs.values())

    def new_error(self, job: dict[str, Any]) -> dict[str, Any]:
        self.errors += 1
        return {"message": f"boom #{self.errors} in attempt {job['attempt']}", "code": "boom"}

    def answered(self, r: httpx.Response, job: dict[str, Any]) -> None:
        """A refused request stores nothing; a finished job refuses every report."""
        if r.status_code in REFUSED:
            self.notes.unchanged.add(job["jobId"])
        else:
            assert r.status_code == 200, r.text
            assert job["status"] not in TERMINAL, f"a {job['status']} job accepted {r.request}"

    # --- rules ---------------------------------------------------------------------

    @precondition(lambda self: len(self.jobs) < MAX_JOBS)
    @rule(queue=st.sampled_from(QUEUES), phases=st.integers(0, len(PHASES)),
          attempts=st.integers(1, 3))
    def create_job(self, queue: str, phases: int, attempts: int) -> None:
        body: dict[str, Any] = {"queueName": queue, "name": "single", "maxAttempts": attempts}
        if phases:
            body["phases"] = list(PHASES[:phases])
        r = self.request("POST", "/jobs", body)
        assert r.status_code == 201, r.text
        self.jobs[r.json()["jobId"]] = Seen()

    @precondition(lambda self: len(self.jobs) < MAX_JOBS and len(self.flows) < MAX_FLOWS)
    @rule(tree=flow_trees())
    def create_flow(self, tree: dict[str, Any]) -> None:
        r = self.request("POST", "/flows", {"flowname": "model", **tree})
        assert r.status_code == 201, r.text
        self.flows[r.json()["flowId"]] = FlowSeen()

    @rule(queue=st.sampled_from(QUEUES))
    def claim(self, queue: str) -> None:
        now = datetime.now(UTC)
        waiting = {s.wire["jobId"] for s in self.jobs.values() if s.wire is not None
                   and s.wire["queueName"] == queue and s.wire["status"] == J.PENDING
                   and s.wire["step"] != "waiting-children"}
        runnable = {s.wire["jobId"] for s in self.jobs.values() if s.wire is not None
                    and s.wire["jobId"] in waiting
                    and datetime.fromisoformat(s.wire["runAt"]) <= now}
        r = self.request("POST", f"/queues/{queue}/claim", {"leaseSeconds": 60})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert len(items) == (1 if runnable else len(items)) <= 1, (runnable, items)
        for job in items:
            assert job["jobId"] in waiting, f"claimed {job['jobId']}, runnable: {runnable}"
            self.jobs[job["jobId"]].leased = True
            self.notes.expect[job["jobId"]] = {J.RUNNING}

    @precondition(lambda self: self.has())
    @rule(data=st.data(), fail=st.booleans())
    def work(self, data: st.DataObject, fail: bool) -> None:
        """An external worker moves a job on the way workers do: starts a pending job,
        finishes (or fails) the current phase of a running one, or the job itself."""
        job = self.pick(data)
        body: dict[str, Any] = {"status": J.RUNNING.value}
        current = [p["name"] for p in job["phases"] if p["status"] in (P.RUNNING, P.PAUSED)]
        if job["status"] == J.RUNNING and current:
            move = P.FAILED if fail else P.COMPLETED
            body = {"phase": {"name": current[0], "status": move.value}}
        elif job["status"] == J.RUNNING:
            body = {"status": (J.FAILED if fail else J.COMPLETED).value}
        if fail and job["status"] == J.RUNNING:
            body["error"] = self.new_error(job)
        self.answered(self.request("PATCH", f"/jobs/{job['jobId']}", body), job)

    @precondition(lambda self: self.has())
    @rule(data=st.data(), status=REPORTED, error=st.booleans())
    def report(self, data: st.DataObject, status: str, error: bool) -> None:
        job = self.pick(data)
        body: dict[str, Any] = {"status": status}
        if error:
            body["error"] = self.new_error(job)
        self.answered(self.request("PATCH", f"/jobs/{job['jobId']}", body), job)

    @precondition(lambda self: self.has(in_flow=True))
    @rule(data=st.data(), status=REPORTED, error=st.booleans())
    def report_flow_job(self, data: st.DataObject, status: str, error: bool) -> None:
        job = self.pick(data, in_flow=True)
        body: dict[str, Any] = {"status": status, "result": {"by": "flow report"}}
        if error:
            body["error"] = self.new_error(job)
        r = self.request("PUT", f"/flows/{job['flowId']}/jobs/{job['jobId']}", body)
        self.answered(r, job)

    @precondition(lambda self: self.has(phased=True))
    @rule(data=st.data(), move=st.sampled_from(PHASE_MOVES), done=st.integers(0, 10))
    def report_phase(self, data: st.DataObject, move: PhaseStatus | None, done: int) -> None:
        job = self.pick(data, phased=True)
        name = data.draw(st.sampled_from([p["name"] for p in job["phases"]]))
        phase: dict[str, Any] = {"name": name, "progress": {"done": done, "total": 10}}
        if move is not None:
            phase["status"] = move.value
        self.answered(self.request("PATCH", f"/jobs/{job['jobId']}", {"phase": phase}), job)

    @precondition(lambda self: self.has())
    @rule(data=st.data(), pct=st.integers(0, 100))
    def report_progress(self, data: st.DataObject, pct: int) -> None:
        job = self.pick(data)
        body: dict[str, Any] = {"progress": pct}
        if job["phases"] and data.draw(st.booleans()):
            body = {"step": data.draw(st.sampled_from([p["name"] for p in job["phases"]]))}
        self.answered(self.request("PATCH", f"/jobs/{job['jobId']}", body), job)

    @precondition(lambda self: self.has())
    @rule(data=st.data(), resume=st.booleans(), named=st.booleans())
    def pause_or_resume(self, data: st.DataObject, resume: bool, named: bool) -> None:
        job = self.pick(data)
        action = "resume" if resume else "pause"
        path = f"/jobs/{job['jobId']}/{action}"
        if named and job["phases"]:
            name = data.draw(st.sampled_from([p["name"] for p in job["phases"]]))
            path = f"/jobs/{job['jobId']}/phases/{name}/{action}"
        r = self.request("POST", path)
        if r.status_code in REFUSED:
            self.notes.unchanged.add(job["jobId"])
        else:
            assert r.status_code == 200 and job["status"] == J.RUNNING, (job, r.text)
            self.notes.expect[job["jobId"]] = {J.RUNNING}

    @precondition(lambda self: self.has())
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job = self.pick(data)
        r = self.request("POST", f"/jobs/{job['jobId']}/cancel")
        if job["status"] in TERMINAL:
            assert r.status_code == 409, r.text
            self.notes.unchanged.add(job["jobId"])
            return
        assert r.status_code == 200, r.text
        # a running job is cancelled when its worker reports: it keeps running until then
        self.notes.expect[job["jobId"]] = {J.CANCELLED} if job["status"] == J.PENDING \
            else {J.RUNNING}

    @precondition(lambda self: self.flows)
    @rule(data=st.data())
    def cancel_flow(self, data: st.DataObject) -> None:
        flow_id = data.draw(st.sampled_from(sorted(self.flows)))
        r = self.request("POST", f"/flows/{flow_id}/cancel")
        assert r.status_code == 200, r.text
        self.flows[flow_id].cancelled = True
        for s in self.jobs.values():
            if s.wire is not None and s.wire["flowId"] == flow_id \
                    and s.wire["status"] == J.PENDING:
                self.notes.expect[s.wire["jobId"]] = {J.CANCELLED}

    @precondition(lambda self: self.has())
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        job = self.pick(data)
        r = self.request("POST", f"/jobs/{job['jobId']}/retry")
        if J(job["status"]) in RETRYABLE:
            assert r.status_code == 200, r.text
            self.notes.retried.add(job["jobId"])
            self.notes.expect[job["jobId"]] = {J.PENDING}
        else:
            assert r.status_code == 409, r.text
            self.notes.unchanged.add(job["jobId"])

    @rule()
    def stall(self) -> None:
        """Every lease runs out: the reaper stalls the jobs claimed over HTTP."""
        self.run(reap(self.env.db, now=datetime.now(UTC) + timedelta(hours=1)))
        self.notes.stalled = True
        for s in self.jobs.values():
            if s.leased and s.wire is not None and s.wire["status"] == J.RUNNING:
                self.notes.expect[s.wire["jobId"]] = {J.PENDING, J.FAILED, J.CANCELLED}

    # --- invariants ----------------------------------------------------------------

    @invariant()
    def contract_holds(self) -> None:
        jobs, flows, stored = self.run(self.observe())
        self.check_events(stored)
        assert set(self.jobs) <= set(jobs), "a job disappeared"
        for job_id, job in jobs.items():
            self.check_job(job, self.jobs.setdefault(job_id, Seen()))
        assert set(flows) == set(self.flows), "flows appeared or disappeared"
        for flow in flows.values():
            self.check_flow(flow, jobs)
        self.remember(jobs, flows)
        self.unchecked = False

    async def observe(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]],
                                     list[StoredEvent]]:
        """Every job and flow of the tenant, and the events stored since the last step
        (checked equal to what the live stream delivered)."""
        r = await self.call("GET", "/jobs", params={"limit": 500})
        assert r.status_code == 200 and r.json()["nextCursor"] is None, r.text
        jobs = {j["jobId"]: j for j in r.json()["items"]}
        flows: dict[str, dict[str, Any]] = {}
        if self.flows:
            r = await self.call("GET", "/flows", params={"limit": 500})
            assert r.status_code == 200 and r.json()["nextCursor"] is None, r.text
            flows = {f["flowId"]: f for f in r.json()["items"]}
        last = self.events[-1]["id"] if self.events else 0
        stored = await stored_after(self.env.db, self.tenant, last)
        live = await self.stream.read_until(stored[-1].id) if stored else []
        assert live == [e.envelope() for e in stored], \
            "the live stream differs from the stored event log"
        return jobs, flows, stored

    def check_events(self, stored: list[StoredEvent]) -> None:
        """Each event stored once, ids strictly increasing; folded in order into the
        jobs and flows they describe, and into each job's history."""
        ids = [e["id"] for e in self.events[-1:]] + [e.id for e in stored]
        assert ids == sorted(set(ids)), f"event ids not strictly increasing: {ids}"
        for e in stored:
            envelope = e.envelope()
            fingerprint = (e.type, repr(e.data))
            assert fingerprint not in self.fingerprints, f"event stored twice: {envelope}"
            self.fingerprints.add(fingerprint)
            self.events.append(envelope)
            data = e.data
            if e.type.startswith("flow."):
                self.folded_flows[data["flowId"]] = data
                continue
            if e.type == EventType.JOB_CREATED:
                assert data["jobId"] not in self.folded_jobs, f"job created twice: {envelope}"
                self.folded_jobs[data["jobId"]] = dict(data)
            else:
                assert data["jobId"] in self.folded_jobs, f"event before job.created: {envelope}"
                self.folded_jobs[data["jobId"]].update(data)
            if e.to_status is not None:
                self.history.setdefault(data["jobId"], []).append({
                    "from": e.from_status, "to": e.to_status, "step": e.step,
                    "at": iso(e.at), "attempt": e.attempt, "by": e.actor})

    def check_job(self, job: dict[str, Any], seen: Seen) -> None:
        job_id = job["jobId"]
        assert self.folded_jobs.get(job_id) == job, (
            f"job {job_id}: its events replay to {self.folded_jobs.get(job_id)}, "
            f"the job is {job}")
        if job_id in self.notes.unchanged:
            assert job == seen.wire, f"a refused request changed job {job_id}"
        if job_id in self.notes.expect:
            assert job["status"] in self.notes.expect[job_id], (
                f"job {job_id} is {job['status']}, expected {self.notes.expect[job_id]}")
        if seen.leased and self.notes.stalled:
            assert job["status"] != J.RUNNING, f"job {job_id}: its lease ran out"
        check_history(job, self.history.get(job_id, []), seen,
                      retried=job_id in self.notes.retried)
        check_phases(job)
        check_progress(job, seen.wire)
        check_error(job, self.error_attempt(job, seen))

    def error_attempt(self, job: dict[str, Any], seen: Seen) -> int | None:
        if job["error"] is None:
            return None
        if seen.wire is not None and job["error"] == seen.wire["error"]:
            return seen.error_attempt
        # written by this step, in the attempt the job was in before it
        return seen.wire["attempt"] if seen.wire is not None else 1

    def check_flow(self, flow: dict[str, Any], jobs: dict[str, dict[str, Any]]) -> None:
        flow_id = flow["flowId"]
        seen = self.flows[flow_id]
        assert self.folded_flows.get(flow_id) == flow, (
            f"flow {flow_id}: its events replay to {self.folded_flows.get(flow_id)}, "
            f"the flow is {flow}")
        members = [j for j in jobs.values() if j["flowId"] == flow_id]
        for job in members:
            kids = [k for k in members if k["parentJobId"] == job["jobId"]]
            if job["status"] in (J.RUNNING, J.COMPLETED):
                assert all(k["status"] == J.COMPLETED for k in kids), \
                    f"parent {job['jobId']} is {job['status']} before its children completed"
        counts = Counter(j["status"] for j in members)
        progress = flow["progress"]
        assert progress["total"] == len(members), (flow_id, progress, len(members))
        for s in JobStatus:
            assert progress[s.value] == counts[s], (flow_id, progress, counts)
        if jobs[flow["rootJobId"]]["status"] == J.CANCELLED:
            seen.cancelled = True
        reopened = any(j["jobId"] in self.notes.retried for j in members)
        before = None if seen.wire is None else seen.wire["status"]
        allowed = expected_flow_statuses(counts, len(members), cancelled=seen.cancelled,
                                         before=before, reopened=reopened)
        assert flow["status"] in allowed, (
            f"flow {flow_id} is {flow['status']} (was {before}), expected {allowed}; "
            f"jobs: {dict(counts)}, cancelled by a user: {seen.cancelled}")
        if reopened and flow["status"] != F.CANCELLED:
            seen.cancelled = False  # a retry reopened it

    def remember(self, jobs: dict[str, dict[str, Any]],
                 flows: dict[str, dict[str, Any]]) -> None:
        for job_id, job in jobs.items():
            seen = self.jobs[job_id]
            seen.error_attempt = self.error_attempt(job, seen)
            seen.wire = job
            seen.history = len(self.history.get(job_id, []))
            if job["status"] != J.RUNNING:
                seen.leased = False
        for flow_id, flow in flows.items():
            self.flows[flow_id].wire = flow
        self.notes = StepNotes()


# --- the tests ---------------------------------------------------------------------


def run_model(db_url: str, *, examples: int, steps: int) -> None:
    """Run the machine on ``db_url``: one server, a fresh tenant per example."""
    settings_ = Settings(database_url=db_url, rate_limit_per_minute=1_000_000_000,
                         event_poll_seconds=0.01, webhooks_in_api=False,
                         progress_interval_seconds=0.0)
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()

        async def start() -> Env:
            db = Database(db_url, pool_size=2)
            stack.push_async_callback(db.dispose)
            url = await stack.enter_async_context(serving(settings_))
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=url,
                                                                       timeout=30))
            return Env(runner, db, client)

        env = runner.run(start())
        try:
            machine = type("StatusContractOnDb", (StatusContract,), {"env": env})
            run_state_machine_as_test(machine, settings=settings(
                max_examples=examples, stateful_step_count=steps, deadline=None,
                phases=[p for p in Phase if p is not Phase.shrink or os.environ.get(SHRINK_ENV)],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ))
        finally:
            runner.run(stack.aclose())


@pytest.mark.timeout(300)  # ~20 s on an idle 2-core machine; much more when it is busy
def test_status_contract_model(db_url: str) -> None:
    """Bounded for every run: 15 random sequences of up to 20 operations per backend."""
    run_model(db_url, examples=15, steps=20)


@pytest.mark.slow
@pytest.mark.timeout(0)
@pytest.mark.skipif(EXAMPLES_ENV not in os.environ,
                    reason=f"the long model run: set {EXAMPLES_ENV} (and {STEPS_ENV})")
def test_status_contract_model_long(db_url: str) -> None:
    run_model(db_url, examples=int(os.environ[EXAMPLES_ENV]),
              steps=int(os.environ.get(STEPS_ENV, "50")))
