"""Concurrent reports on one job over HTTP: exactly one terminal transition wins, the
others are 409, and the history is a legal path (docs/reference/status-contract.md,
"Transitions")."""

import asyncio

from jobtrack.domain.status import JobStatus, allowed_targets
from support.api import Api

TERMINAL = {JobStatus.COMPLETED.value, JobStatus.FAILED.value}


async def test_twenty_racing_terminal_reports_one_wins(api: Api) -> None:
    job = await api.create(phases=["only"])
    await api.claim()
    url = f"/jobs/{job['jobId']}"
    bodies = [{"status": JobStatus.COMPLETED.value, "result": {"by": i}} if i % 2 else
              {"status": JobStatus.FAILED.value, "error": {"message": f"by {i}"}}
              for i in range(20)]
    answers = await asyncio.gather(*(api.client.patch(url, json=b, headers=api.auth())
                                     for b in bodies))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [409] * 19, [r.text for r in answers if r.status_code != 409]
    [winner] = [r.json() for r in answers if r.status_code == 200]
    assert winner["status"] in TERMINAL
    for loser in (r.json() for r in answers if r.status_code == 409):
        assert loser["error"]["code"] == "invalid_transition"
        assert loser["error"]["details"]["current"] == winner["status"]
    final = (await api.client.get(url, headers=api.auth())).json()
    assert final == winner
    history = (await api.client.get(f"{url}/history", headers=api.auth())).json()
    path = [(t["from"], t["to"]) for t in history]
    assert path == [(None, JobStatus.PENDING.value), (JobStatus.PENDING.value,
                    JobStatus.RUNNING.value), (JobStatus.RUNNING.value, winner["status"])]
    for t in history[1:]:
        assert JobStatus(t["to"]) in allowed_targets(JobStatus(t["from"]))


async def test_progress_reports_racing_a_cancel_lose_nothing(api: Api) -> None:
    job = await api.create()
    await api.claim()
    url = f"/jobs/{job['jobId']}"
    reports = [api.client.patch(url, json={"progress": i}, headers=api.auth())
               for i in range(10)]
    cancel = api.client.post(f"{url}/cancel", headers=api.auth())
    answers = await asyncio.gather(*reports, cancel)
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    final = (await api.client.get(url, headers=api.auth())).json()
    assert final["status"] == JobStatus.RUNNING.value and final["cancelRequested"] is True
    ack = await api.client.patch(url, json={"status": JobStatus.CANCELLED.value},
                                 headers=api.auth())
    assert ack.json()["status"] == JobStatus.CANCELLED.value
