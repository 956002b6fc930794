"""Workers pulling over HTTP: claim, report (heartbeat), finish; and the actions that
reach them through their own reports (cancel, pause, resume), plus retry."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from jobtrack.domain.status import JobStatus, PhaseStatus
from jobtrack.store.engine import Database
from jobtrack.store.tables import jobs
from support.api import Api, assert_error

PENDING, RUNNING = JobStatus.PENDING.value, JobStatus.RUNNING.value
COMPLETED, CANCELLED = JobStatus.COMPLETED.value, JobStatus.CANCELLED.value


async def lease_of(db: Database, job_id: str) -> tuple[str | None, datetime | None]:
    async with db.read() as conn:
        row = (await conn.execute(select(jobs.c.worker_id, jobs.c.lease_expires_at)
                                  .where(jobs.c.id == job_id))).one()
    return row.worker_id, row.lease_expires_at


async def test_external_worker_claims_reports_phases_and_completes(api: Api) -> None:
    job = await api.create(queueName="index", name="index-repo",
                           phases=["loading", "chunking", "embedding", "indexing"])
    [claimed] = await api.claim(queue="index", leaseSeconds=60)
    assert claimed["jobId"] == job["jobId"] and claimed["status"] == RUNNING
    assert claimed["step"] == "loading" and claimed["startedAt"] is not None
    url = f"/jobs/{job['jobId']}"
    for i, phase in enumerate(["loading", "chunking", "embedding", "indexing"]):
        r = await api.client.patch(url, headers=api.auth(), json={
            "phase": {"name": phase, "progress": {"done": 5, "total": 10}}})
        assert r.status_code == 200
        assert r.json()["step"] == phase and r.json()["cancelRequested"] is False
        r = await api.client.patch(url, headers=api.auth(), json={
            "phase": {"name": phase, "status": "completed"}})
        statuses = [p["status"] for p in r.json()["phases"]]
        assert statuses[: i + 1] == [PhaseStatus.COMPLETED] * (i + 1)
    final = (await api.client.get(url, headers=api.auth())).json()
    assert final["status"] == COMPLETED and final["completedAt"] is not None
    assert await api.claim(queue="index") == []


async def test_claim_order_limit_names_and_empty_body(api: Api) -> None:
    low = await api.create(name="a", priority=0)
    high = await api.create(name="b", priority=9)
    other = await api.create(name="c")
    later = await api.create(name="a", delaySeconds=3600)
    r = await api.client.post("/queues/q/claim", headers=api.auth())  # no body: one job
    assert [j["jobId"] for j in r.json()["items"]] == [high["jobId"]]
    only_c = await api.claim(names=["c"], limit=10)
    assert [j["jobId"] for j in only_c] == [other["jobId"]]
    rest = await api.claim(limit=10)
    assert [j["jobId"] for j in rest] == [low["jobId"]]  # the delayed job is not due
    assert later["step"] == "delayed"
    assert await api.claim(queue="elsewhere") == []
    for bad in ({"limit": 0}, {"limit": 101}, {"leaseSeconds": 0}, {"names": "a"},
                {"limit": "2"}, {"workers": 1}):
        assert_error(await api.client.post("/queues/q/claim", json=bad, headers=api.auth()),
                     422)


async def test_patch_by_the_lease_holder_renews_the_lease(api: Api, db: Database) -> None:
    job = await api.create()
    await api.claim(leaseSeconds=30)
    holder, first = await lease_of(db, job["jobId"])
    assert holder is not None and first is not None
    assert first - datetime.now(UTC) <= timedelta(seconds=30)
    # another key (the admin, seeing every tenant) reports: no heartbeat from it
    await api.client.patch(f"/jobs/{job['jobId']}", json={"progress": 10},
                           headers=api.auth("admin"))
    assert await lease_of(db, job["jobId"]) == (holder, first)
    r = await api.client.patch(f"/jobs/{job['jobId']}", json={}, headers=api.auth())
    assert r.status_code == 200
    _, renewed = await lease_of(db, job["jobId"])
    assert renewed is not None and renewed > first
    assert renewed - datetime.now(UTC) > timedelta(seconds=25)  # the claim's term again


async def test_cancel_pending_now_running_through_the_workers_report(api: Api) -> None:
    waiting = await api.create()
    r = await api.client.post(f"/jobs/{waiting['jobId']}/cancel", headers=api.auth())
    assert r.status_code == 200 and r.json()["status"] == CANCELLED
    job = await api.create()
    await api.claim()
    r = await api.client.post(f"/jobs/{job['jobId']}/cancel", headers=api.auth())
    assert r.json()["status"] == RUNNING and r.json()["cancelRequested"] is True
    report = await api.client.patch(f"/jobs/{job['jobId']}", json={"progress": 50},
                                    headers=api.auth())
    assert report.json()["cancelRequested"] is True  # the worker learns of it here
    ack = await api.client.patch(f"/jobs/{job['jobId']}", json={"status": CANCELLED},
                                 headers=api.auth())
    assert ack.json()["status"] == CANCELLED
    again = assert_error(await api.client.post(f"/jobs/{job['jobId']}/cancel",
                                               headers=api.auth()), 409, "invalid_transition")
    assert again["details"]["current"] == CANCELLED


async def test_pause_and_resume_reach_the_worker_in_its_reports(api: Api) -> None:
    job = await api.create(phases=["one", "two"])
    url = f"/jobs/{job['jobId']}"
    not_running = assert_error(await api.client.post(f"{url}/pause", headers=api.auth()), 409,
                               "conflict")
    assert not_running["details"]["status"] == PENDING
    await api.claim()
    paused = (await api.client.post(f"{url}/pause", headers=api.auth())).json()
    assert paused["status"] == RUNNING
    assert [p["status"] for p in paused["phases"]] == [PhaseStatus.PAUSED,
                                                       PhaseStatus.NOT_STARTED]
    report = (await api.client.patch(url, json={"progress": 10}, headers=api.auth())).json()
    assert report["phases"][0]["status"] == PhaseStatus.PAUSED
    resumed = (await api.client.post(f"{url}/resume", headers=api.auth())).json()
    assert resumed["phases"][0]["status"] == PhaseStatus.RUNNING
    named = (await api.client.post(f"{url}/phases/one/pause", headers=api.auth())).json()
    assert named["phases"][0]["status"] == PhaseStatus.PAUSED
    named = (await api.client.post(f"{url}/phases/one/resume", headers=api.auth())).json()
    assert named["phases"][0]["status"] == PhaseStatus.RUNNING
    unknown = assert_error(await api.client.post(f"{url}/phases/zzz/pause",
                                                 headers=api.auth()), 422)
    assert unknown["details"]["accepted"] == ["one", "two"]
    wrong = assert_error(await api.client.post(f"{url}/phases/two/resume",
                                               headers=api.auth()), 409, "invalid_transition")
    assert wrong["details"]["current"] == PhaseStatus.NOT_STARTED
    flat = await api.create()
    await api.claim()
    assert_error(await api.client.post(f"/jobs/{flat['jobId']}/pause", headers=api.auth()),
                 409, "conflict")


async def test_an_unknown_phase_is_422_whatever_the_job_status(api: Api) -> None:
    """The phase name is checked before the job's state: 422 naming the phase, never a
    409 that suggests waiting would help."""
    job = await api.create(phases=["one", "two"])
    flat = await api.create()
    for url in (f"/jobs/{job['jobId']}", f"/jobs/{flat['jobId']}"):  # pending
        for action in ("pause", "resume"):
            err = assert_error(await api.client.post(f"{url}/phases/zzz/{action}",
                                                     headers=api.auth()), 422,
                               "validation_error")
            assert err["details"]["value"] == "zzz" and "zzz" in err["message"]
    await api.client.post(f"/jobs/{job['jobId']}/cancel", headers=api.auth())
    err = assert_error(await api.client.post(f"/jobs/{job['jobId']}/phases/zzz/pause",
                                             headers=api.auth()), 422, "validation_error")
    assert err["details"]["accepted"] == ["one", "two"]
    # a declared phase of a job that is not running is still a conflict
    assert_error(await api.client.post(f"/jobs/{job['jobId']}/phases/one/pause",
                                       headers=api.auth()), 409, "conflict")


async def test_retry_runs_a_failed_or_cancelled_job_again(api: Api) -> None:
    job = await api.create()
    url = f"/jobs/{job['jobId']}"
    await api.claim()
    await api.client.patch(url, json={"status": "failed", "error": {"message": "x"}},
                           headers=api.auth())
    r = await api.client.post(f"{url}/retry", headers=api.auth())
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["attempt"], r.json()["error"]) == (PENDING, 2, None)
    assert [j["jobId"] for j in await api.claim()] == [job["jobId"]]
    await api.client.patch(url, json={"status": COMPLETED}, headers=api.auth())
    assert_error(await api.client.post(f"{url}/retry", headers=api.auth()), 409,
                 "invalid_transition")
