"""``/jobs``: create, read, list, PATCH reports and history, on both databases."""

import asyncio
from datetime import UTC, datetime, timedelta

from jobtrack.api.schemas import JobPublic
from jobtrack.domain.ids import new_id
from jobtrack.domain.status import JobStatus, PhaseStatus, Step
from jobtrack.store.engine import Database
from support.api import Api, assert_error
from support.store import count_rows

PENDING, RUNNING = JobStatus.PENDING.value, JobStatus.RUNNING.value
COMPLETED, FAILED = JobStatus.COMPLETED.value, JobStatus.FAILED.value
CANCELLED = JobStatus.CANCELLED.value


async def test_create_answers_201_with_the_pending_job(api: Api) -> None:
    r = await api.client.post("/jobs", headers=api.auth(), json={
        "queueName": "index", "name": "index-repo", "data": {"repo": "a/b", "n": 1},
        "phases": ["loading", "chunking"], "priority": 5, "maxAttempts": 3})
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == PENDING and body["jobId"] == body["job"]["jobId"]
    job = JobPublic.model_validate(body["job"])
    assert (job.queue_name, job.name, job.priority, job.max_attempts, job.attempt) == (
        "index", "index-repo", 5, 3, 1)
    assert job.data == {"repo": "a/b", "n": 1}
    assert job.step == Step.QUEUED and job.cancel_requested is False
    assert [(p.name, p.status) for p in job.phases] == [
        ("loading", PhaseStatus.NOT_STARTED), ("chunking", PhaseStatus.NOT_STARTED)]
    got = await api.client.get(f"/jobs/{job.job_id}", headers=api.auth())
    assert got.status_code == 200 and got.json() == body["job"]


async def test_same_idempotency_key_answers_200_with_the_first_job(api: Api, db: Database) -> None:
    first = await api.client.post("/jobs", headers=api.auth(), json={
        "queueName": "q", "name": "n", "idempotencyKey": "k-1", "data": {"v": 1}})
    again = await api.client.post("/jobs", headers=api.auth(), json={
        "queueName": "q", "name": "n", "idempotencyKey": "k-1", "data": {"v": 2}})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["jobId"] == first.json()["jobId"]
    assert again.json()["job"]["data"] == {"v": 1}
    assert await count_rows(db) == 1
    # keys are per tenant: the same key in another tenant is another job
    other = await api.client.post("/jobs", headers=api.auth("b"), json={
        "queueName": "q", "name": "n", "idempotencyKey": "k-1"})
    assert other.status_code == 201 and other.json()["jobId"] != first.json()["jobId"]


async def test_delay_and_run_at_make_a_delayed_job(api: Api) -> None:
    delayed = await api.create(delaySeconds=3600)
    assert delayed["step"] == Step.DELAYED
    at = datetime.now(UTC) + timedelta(hours=2)
    scheduled = await api.create(runAt=at.isoformat())
    assert scheduled["step"] == Step.DELAYED
    assert datetime.fromisoformat(scheduled["runAt"]) == at
    naive = await api.create(runAt="2999-01-01T00:00:00")  # naive: read as UTC
    assert naive["runAt"] == "2999-01-01T00:00:00.000000Z"
    both = await api.client.post("/jobs", headers=api.auth(), json={
        "queueName": "q", "name": "n", "runAt": at.isoformat(), "delaySeconds": 1})
    assert "not both" in assert_error(both, 422, "validation_error")["message"]


async def test_create_refuses_missing_and_unknown_fields(api: Api, db: Database) -> None:
    missing = assert_error(await api.client.post("/jobs", headers=api.auth(),
                                                 json={"name": "n"}), 422)
    assert missing["details"]["field"] == "queueName"
    typo = assert_error(await api.client.post("/jobs", headers=api.auth(), json={
        "queueName": "q", "name": "n", "delay": 5}), 422)
    assert typo["details"]["field"] == "delay"
    dup = assert_error(await api.client.post("/jobs", headers=api.auth(), json={
        "queueName": "q", "name": "n", "phases": ["a", "a"]}), 422)
    assert dup["details"]["field"] == "phases"
    assert await count_rows(db) == 0


async def test_get_unknown_or_malformed_id_is_404(api: Api) -> None:
    assert_error(await api.client.get(f"/jobs/{new_id()}", headers=api.auth()), 404,
                 "not_found")
    assert_error(await api.client.get("/jobs/not-a-uuid", headers=api.auth()), 404)
    assert_error(await api.client.get("/jobs/" + "x" * 65, headers=api.auth()), 422)


async def test_list_filters_and_pages_newest_first(api: Api) -> None:
    made = [await api.create(queueName="q1" if i % 2 else "q2", name=f"n{i % 3}")
            for i in range(7)]
    newest_first = [j["jobId"] for j in reversed(made)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        r = await api.client.get("/jobs", params=params, headers=api.auth())
        assert r.status_code == 200
        page = r.json()
        seen += [j["jobId"] for j in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
        if len(seen) == 3:  # a job created between pages does not disturb the walk
            await api.create()
    assert seen == newest_first
    q1 = (await api.client.get("/jobs", params={"queueName": "q1"}, headers=api.auth())).json()
    assert {j["queueName"] for j in q1["items"]} == {"q1"} and len(q1["items"]) == 3
    n0 = (await api.client.get("/jobs", params={"name": "n0", "queueName": "q2"},
                               headers=api.auth())).json()
    assert [j["jobId"] for j in n0["items"]] == [made[6]["jobId"], made[0]["jobId"]]
    await api.claim(queue="q2")
    running = (await api.client.get("/jobs", params={"status": RUNNING},
                                    headers=api.auth())).json()
    assert [j["status"] for j in running["items"]] == [RUNNING]


async def test_list_refuses_bad_parameters(api: Api) -> None:
    bad_status = assert_error(await api.client.get("/jobs", params={"status": "weird"},
                                                   headers=api.auth()), 422)
    assert bad_status["details"]["accepted"] == [s.value for s in JobStatus]
    assert_error(await api.client.get("/jobs", params={"cursor": "nope"},
                                      headers=api.auth()), 422)
    assert_error(await api.client.get("/jobs", params={"limit": 0}, headers=api.auth()), 422)
    assert_error(await api.client.get("/jobs", params={"limit": "many"},
                                      headers=api.auth()), 422)
    over = assert_error(await api.client.get("/jobs", params={"limit": 501},
                                             headers=api.auth()), 422)
    assert over["details"]["field"] == "limit"


async def test_list_accepts_a_status_alias_with_a_deprecation_header(api: Api) -> None:
    await api.create()
    r = await api.client.get("/jobs", params={"status": "Queued"}, headers=api.auth())
    assert r.status_code == 200 and len(r.json()["items"]) == 1
    assert r.headers["deprecation"] == f'true; alias="queued"; canonical="{PENDING}"'
    plain = await api.client.get("/jobs", params={"status": PENDING}, headers=api.auth())
    assert "deprecation" not in plain.headers


async def test_patch_reports_progress_as_percentage_or_done_total(api: Api) -> None:
    job = await api.create()
    url = f"/jobs/{job['jobId']}"
    started = await api.client.patch(url, json={"status": RUNNING, "step": "warming"},
                                     headers=api.auth())
    assert started.status_code == 200
    assert started.json()["status"] == RUNNING and started.json()["step"] == "warming"
    pct = (await api.client.patch(url, json={"progress": 40}, headers=api.auth())).json()
    assert pct["progress"] == {"done": 40.0, "total": 100.0, "percentage": 40.0}
    frac = (await api.client.patch(url, json={"progress": {"done": 3, "total": 12}},
                                   headers=api.auth())).json()
    assert frac["progress"] == {"done": 3.0, "total": 12.0, "percentage": 25.0}
    done = (await api.client.patch(url, json={
        "status": COMPLETED, "result": {"files": 3}, "stats": {"symbols": 10}},
        headers=api.auth())).json()
    assert (done["status"], done["result"], done["stats"]) == (COMPLETED, {"files": 3},
                                                              {"symbols": 10})
    assert done["completedAt"] is not None
    for bad in (101, -1, "50", True, {"done": 1, "total": "x"}, {"done": 1, "extra": 2}):
        assert_error(await api.client.patch(url, json={"progress": bad}, headers=api.auth()),
                     422)


async def test_patch_failure_with_error_and_retry_by_attempts(api: Api) -> None:
    job = await api.create(maxAttempts=2)
    url = f"/jobs/{job['jobId']}"
    await api.client.patch(url, json={"status": RUNNING}, headers=api.auth())
    retried = (await api.client.patch(url, json={
        "status": FAILED, "error": {"message": "boom", "type": "ValueError"}},
        headers=api.auth())).json()
    assert (retried["status"], retried["attempt"]) == (PENDING, 2)  # attempts left: a retry
    await api.client.patch(url, json={"status": RUNNING}, headers=api.auth())
    failed = (await api.client.patch(url, json={"status": FAILED, "error": {"message": "x"}},
                                     headers=api.auth())).json()
    assert failed["status"] == FAILED and failed["error"] == {"message": "x"}
    bad = assert_error(await api.client.patch(url, json={"error": "just text"},
                                              headers=api.auth()), 422)
    assert bad["details"]["field"] == "error"


async def test_patch_alias_is_answered_canonically_with_deprecation(api: Api) -> None:
    job = await api.create()
    url = f"/jobs/{job['jobId']}"
    r = await api.client.patch(url, json={"status": "processing"}, headers=api.auth())
    assert r.status_code == 200 and r.json()["status"] == RUNNING
    assert r.headers["deprecation"] == f'true; alias="processing"; canonical="{RUNNING}"'
    r = await api.client.patch(url, json={"status": " DONE "}, headers=api.auth())
    assert r.json()["status"] == COMPLETED
    assert r.headers["deprecation"] == f'true; alias="done"; canonical="{COMPLETED}"'
    canonical = await api.client.post("/jobs", json={"queueName": "q", "name": "n"},
                                      headers=api.auth())
    assert "deprecation" not in canonical.headers


async def test_patch_unknown_status_names_the_five_canonical_values(api: Api) -> None:
    job = await api.create()
    for bad in ("stuck", "unknown", "", 3, ["running"]):
        err = assert_error(await api.client.patch(f"/jobs/{job['jobId']}",
                                                  json={"status": bad}, headers=api.auth()),
                           422, "validation_error")
        assert err["details"]["field"] == "status"
        assert err["details"]["accepted"] == [s.value for s in JobStatus]
        assert "pending" in err["message"] and "cancelled" in err["message"]


async def test_illegal_moves_are_409_naming_current_and_allowed(api: Api) -> None:
    job = await api.create()
    url = f"/jobs/{job['jobId']}"
    await api.client.patch(url, json={"status": RUNNING}, headers=api.auth())
    await api.client.patch(url, json={"status": COMPLETED}, headers=api.auth())
    err = assert_error(await api.client.patch(url, json={"status": RUNNING},
                                              headers=api.auth()), 409, "invalid_transition")
    assert err["details"]["current"] == COMPLETED and err["details"]["allowed"] == []
    assert "completed" in err["message"]
    other = await api.create()
    err = assert_error(await api.client.post(f"/jobs/{other['jobId']}/retry",
                                             headers=api.auth()), 409, "invalid_transition")
    assert err["details"]["current"] == PENDING
    # nothing moved: the job is still as it was
    again = await api.client.get(url, headers=api.auth())
    assert again.json()["status"] == COMPLETED


async def test_phases_drive_the_job_and_answer_phase_statuses(api: Api) -> None:
    job = await api.create(phases=["load", "embed"])
    url = f"/jobs/{job['jobId']}"
    r = (await api.client.patch(url, json={"phase": {"name": "load", "progress": 50}},
                                headers=api.auth())).json()
    assert r["status"] == RUNNING and r["step"] == "load"
    assert [p["status"] for p in r["phases"]] == [PhaseStatus.RUNNING, PhaseStatus.NOT_STARTED]
    assert r["phases"][0]["progress"]["percentage"] == 50.0
    r = (await api.client.patch(url, json={"phase": {"name": "load", "status": "completed"}},
                                headers=api.auth())).json()
    assert [p["status"] for p in r["phases"]] == [PhaseStatus.COMPLETED, PhaseStatus.RUNNING]
    assert r["step"] == "embed"
    unknown = assert_error(await api.client.patch(url, json={"phase": {"name": "nope"}},
                                                  headers=api.auth()), 422)
    assert unknown["details"]["accepted"] == ["load", "embed"]
    bad = assert_error(await api.client.patch(url, json={
        "phase": {"name": "embed", "status": "sleeping"}}, headers=api.auth()), 422)
    assert PhaseStatus.PAUSED.value in bad["details"]["accepted"]
    r = (await api.client.patch(url, json={"phase": {"name": "embed", "status": "completed"}},
                                headers=api.auth())).json()
    assert r["status"] == COMPLETED


async def test_history_lists_every_transition(api: Api) -> None:
    job = await api.create(maxAttempts=2)
    url = f"/jobs/{job['jobId']}"
    await api.claim()
    await api.client.patch(url, json={"status": FAILED}, headers=api.auth())  # retried
    await api.claim()
    await api.client.patch(url, json={"status": COMPLETED}, headers=api.auth())
    r = await api.client.get(f"{url}/history", headers=api.auth())
    assert r.status_code == 200
    steps = [(t["from"], t["to"], t["attempt"]) for t in r.json()]
    assert steps == [(None, PENDING, 1), (PENDING, RUNNING, 1), (RUNNING, PENDING, 2),
                     (PENDING, RUNNING, 2), (RUNNING, COMPLETED, 2)]
    assert all(t["by"].startswith("api:") and t["at"].endswith("Z") for t in r.json())
    assert_error(await api.client.get(f"/jobs/{new_id()}/history", headers=api.auth()), 404)


async def test_concurrent_creates_with_one_key_store_one_job(api: Api, db: Database) -> None:
    answers = await asyncio.gather(*(
        api.client.post("/jobs", headers=api.auth(), json={
            "queueName": "q", "name": "n", "idempotencyKey": "same"})
        for _ in range(5)))
    codes = sorted(r.status_code for r in answers if r.status_code in (200, 201))
    assert codes[0] in (200, 201) and codes.count(201) == 1
    assert all(r.status_code < 500 for r in answers)
    assert len({r.json()["jobId"] for r in answers if r.status_code < 300}) == 1
    assert await count_rows(db) == 1


async def test_a_phased_job_answers_how_far_it_is_in_one_number_form(api: Api) -> None:
    """The job's own ``progress`` comes from its phases (it was null for phased jobs), and
    numbers look the same in a PATCH answer and in a later GET (read back from storage)."""
    job = await api.create(phases=["load", "embed", "index", "notify"])
    url = f"/jobs/{job['jobId']}"
    assert job["progress"] is None  # nothing started yet
    answered = (await api.client.patch(url, json={
        "phase": {"name": "load", "progress": {"done": 1, "total": 4}}},
        headers=api.auth())).json()
    got = (await api.client.get(url, headers=api.auth())).json()
    assert answered["progress"] == got["progress"] == {
        "done": 0.25, "total": 4, "percentage": 6.25}
    for body in (answered, got):
        load = body["phases"][0]["progress"]
        assert load == {"done": 1, "total": 4, "percentage": 25}
        assert [type(load[k]) for k in ("done", "total", "percentage")] == [int] * 3
    await api.client.patch(url, json={"phase": {"name": "load", "status": "completed"}},
                           headers=api.auth())
    got = (await api.client.get(url, headers=api.auth())).json()
    assert got["progress"] == {"done": 1, "total": 4, "percentage": 25}
    listed = (await api.client.get("/jobs", headers=api.auth())).json()["items"]
    assert [j["progress"] for j in listed if j["jobId"] == job["jobId"]] == [got["progress"]]


async def test_a_key_reused_concurrently_answers_the_first_job_or_409(
    api: Api, db: Database
) -> None:
    """Concurrent creates with one Idempotency-Key, same or different bodies: one 201, the
    others the stored job (200) or 409 conflict; never 422 (the request was valid)."""
    for round_ in range(6):
        answers = await asyncio.gather(*(
            api.client.post("/jobs", headers=api.auth(), json={
                "queueName": "q", "name": "n", "idempotencyKey": f"race-{round_}",
                "data": {"v": i % 2}})
            for i in range(8)))
        codes = [r.status_code for r in answers]
        assert set(codes) <= {200, 201, 409} and codes.count(201) == 1, [
            r.text for r in answers]
        ids = {r.json()["jobId"] for r in answers if r.status_code < 300}
        assert len(ids) == 1
        for r in answers:
            if r.status_code == 409:
                assert r.json()["error"]["code"] == "conflict"
    assert await count_rows(db) == 6
