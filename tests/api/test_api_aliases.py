"""The status-alias window: aliases are accepted (with a ``Deprecation`` answer naming the
setting that ends the window) until ``accept_status_aliases`` is turned off; then every
place a status is input refuses them with a 422 naming the canonical values."""

from collections.abc import AsyncIterator

import pytest

from jobtrack.domain.status import JobStatus
from jobtrack.settings import Settings
from support.api import Api, assert_error, running

PENDING, RUNNING, COMPLETED = (s.value for s in (JobStatus.PENDING, JobStatus.RUNNING,
                                                 JobStatus.COMPLETED))
CANONICAL = [s.value for s in JobStatus]
SETTING = "JOBTRACK_ACCEPT_STATUS_ALIASES"


@pytest.fixture
async def strict(api_settings: Settings, keys: dict[str, str]) -> AsyncIterator[Api]:
    """An API that no longer accepts aliases (the deployment is migrated)."""
    async with running(api_settings.model_copy(update={"accept_status_aliases": False}),
                       keys) as started:
        yield started


def _refused(r: object, alias: str, canonical: str) -> None:
    error = assert_error(r, 422)  # type: ignore[arg-type]
    assert error["details"]["field"] == "status"
    assert error["details"]["value"] == alias
    assert error["details"]["canonical"] == canonical
    assert error["details"]["accepted"] == CANONICAL
    for value in CANONICAL:
        assert value in error["message"]
    assert SETTING in error["message"]


async def _flow(api: Api) -> tuple[str, str]:
    r = await api.client.post("/flows", headers=api.auth(), json={
        "flowname": "f", "name": "root", "queueName": "q",
        "children": [{"name": "child", "queueName": "other"}]})
    assert r.status_code == 201, r.text
    flow = r.json()["flow"]
    jobs = await api.client.get("/jobs", params={"flowId": flow["flowId"], "name": "child"},
                                headers=api.auth())
    return flow["flowId"], jobs.json()["items"][0]["jobId"]


async def test_aliases_are_accepted_with_a_note_naming_the_setting(api: Api) -> None:
    job = await api.create()
    r = await api.client.patch(f"/jobs/{job['jobId']}", json={"status": "processing"},
                               headers=api.auth())
    assert r.status_code == 200 and r.json()["status"] == RUNNING
    assert 'canonical="running"' in r.headers["deprecation"]
    assert SETTING in r.headers["warning"] and "processing" in r.headers["warning"]
    listed = await api.client.get("/jobs", params={"status": "queued"}, headers=api.auth())
    assert listed.status_code == 200 and SETTING in listed.headers["warning"]
    plain = await api.client.get("/jobs", params={"status": PENDING}, headers=api.auth())
    assert "warning" not in plain.headers and "deprecation" not in plain.headers


async def test_a_migrated_deployment_refuses_aliases_everywhere(strict: Api) -> None:
    api = strict
    job = await api.create()
    url = f"/jobs/{job['jobId']}"
    _refused(await api.client.patch(url, json={"status": "processing"}, headers=api.auth()),
             "processing", RUNNING)
    _refused(await api.client.patch(url, json={"status": "STARTED"}, headers=api.auth()),
             "STARTED", RUNNING)
    _refused(await api.client.get("/jobs", params={"status": "queued"}, headers=api.auth()),
             "queued", PENDING)
    _refused(await api.client.get("/flows", params={"status": "done"}, headers=api.auth()),
             "done", COMPLETED)
    flow_id, child = await _flow(api)
    _refused(await api.client.put(f"/flows/{flow_id}/jobs/{child}", json={"status": "active"},
                                  headers=api.auth()), "active", RUNNING)
    # nothing was changed by a refused report
    assert (await api.client.get(url, headers=api.auth())).json()["status"] == PENDING
    # canonical values still work, with no deprecation note
    ok = await api.client.patch(url, json={"status": RUNNING}, headers=api.auth())
    assert ok.status_code == 200, ok.text
    assert "deprecation" not in ok.headers and "warning" not in ok.headers
    listed = await api.client.get("/jobs", params={"status": RUNNING}, headers=api.auth())
    assert [j["jobId"] for j in listed.json()["items"]] == [job["jobId"]]


def test_the_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().accept_status_aliases is True
    monkeypatch.setenv(SETTING, "false")
    assert Settings().accept_status_aliases is False
