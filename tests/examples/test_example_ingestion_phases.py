"""``examples/ingestion_phases``: a real ``jobtrack serve`` and a real worker of the
example's task; the example's script ingests a document, pausing and resuming its
``embedding`` phase. Asserts the phase rules of seeds 001/002
(docs/examples/ingestion_phases.md names them)."""

from pathlib import Path
from typing import Any

import httpx

from examples.ingestion_phases.run import PAUSED_PHASE, ingest
from examples.ingestion_phases.tasks import PHASES, QUEUE, TASK
from jobtrack import JobStatus, PhaseStatus
from support.cli import cli_key
from support.keys import bearer
from support.processes import serving, working

WORKER_ENV = {"INGEST_STEP_SECONDS": "0.1"}


def derived(phases: list[dict[str, Any]]) -> str:
    """The job status the seeds derive from the phases: any failed, failed; all
    completed, completed; any running or paused, running; none started, pending; else
    (between two phases) running."""
    statuses = [PhaseStatus(p["status"]) for p in phases]
    if PhaseStatus.FAILED in statuses:
        return JobStatus.FAILED
    if all(s is PhaseStatus.COMPLETED for s in statuses):
        return JobStatus.COMPLETED
    if all(s is PhaseStatus.NOT_STARTED for s in statuses):
        return JobStatus.PENDING
    return JobStatus.RUNNING


def phase(job: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in job["phases"] if p["name"] == name)
    return found


async def test_pause_and_resume_a_phase_while_a_real_worker_ingests(
        db_url: str, tmp_path: Path) -> None:
    key = cli_key(db_url, "docs")
    with serving(db_url, tmp_path) as base, \
            working(db_url, "examples.ingestion_phases.tasks:app", tmp_path, QUEUE,
                    env=WORKER_ENV):
        run = await ingest(base, key, document="manual.pdf", pages=5, hold=2.0)
        auth = bearer(key)
        with httpx.Client(base_url=base, headers=auth, timeout=10) as http:
            history = http.get(f"/jobs/{run.job_id}/history").json()
            # a finished job is never restarted, paused or resumed
            refused_pause = http.post(f"/jobs/{run.job_id}/phases/{PAUSED_PHASE}/pause")
            refused_restart = http.patch(f"/jobs/{run.job_id}",
                                         json={"status": JobStatus.RUNNING})
            broken = http.post("/jobs", json={
                "queueName": QUEUE, "name": TASK, "phases": PHASES,
                "data": {"document": "empty.pdf", "pages": 0}}).json()["jobId"]
            failed = http.get(f"/jobs/{broken}").json()
            for _ in range(600):
                if failed["status"] != JobStatus.FAILED:
                    failed = http.get(f"/jobs/{broken}").json()

    # the job's status is the aggregate of its phases, in every state the script saw
    assert run.seen[0]["status"] == JobStatus.PENDING
    for job in [*run.seen, *run.paused]:
        assert job["status"] == derived(job["phases"]), job
        assert [p["name"] for p in job["phases"]] == PHASES
        assert all(p["status"] in set(PhaseStatus) for p in job["phases"])
    assert {j["step"] for j in run.seen} >= set(PHASES)

    # pause: the phase is paused, the job stays running at that step, the worker waits
    for job in run.paused:
        assert job["status"] == JobStatus.RUNNING
        assert job["step"] == PAUSED_PHASE
        assert phase(job, PAUSED_PHASE)["status"] == PhaseStatus.PAUSED
        assert phase(job, "loading")["status"] == PhaseStatus.COMPLETED
        assert phase(job, "indexing")["status"] == PhaseStatus.NOT_STARTED
    held = [phase(job, PAUSED_PHASE)["progress"] for job in run.paused[-2:]]
    assert held[0] == held[1] and held[0]["done"] < held[0]["total"]
    # resume: running again from where it stopped, then through to the end
    assert run.resumed is not None
    assert phase(run.resumed, PAUSED_PHASE)["status"] == PhaseStatus.RUNNING
    assert phase(run.resumed, PAUSED_PHASE)["progress"]["done"] >= held[0]["done"]

    # progress: per phase, never backwards; every unit done at the end
    for name in PHASES:
        done = [phase(j, name)["progress"]["done"] for j in run.seen]
        assert done == sorted(done), (name, done)
    final = run.final
    assert final is not None and final["status"] == JobStatus.COMPLETED
    assert all(p["status"] == PhaseStatus.COMPLETED for p in final["phases"])
    assert all(p["progress"]["done"] == p["progress"]["total"] for p in final["phases"])
    assert all(p["progress"]["percentage"] == 100 for p in final["phases"])
    assert final["result"] == {"document": "manual.pdf", "pages": 5, "chunks": 20}
    # the pause never showed in the job's own status history
    assert [h["to"] for h in history] == [JobStatus.PENDING, JobStatus.RUNNING,
                                          JobStatus.COMPLETED]
    assert refused_pause.status_code == 409
    assert refused_restart.status_code == 409
    assert refused_restart.json()["error"]["code"] == "invalid_transition"

    # a failed phase fails the job
    assert failed["status"] == JobStatus.FAILED == derived(failed["phases"])
    assert phase(failed, "loading")["status"] == PhaseStatus.FAILED
    assert "no pages" in failed["error"]["message"]
