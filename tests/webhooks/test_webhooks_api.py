"""``/webhooks`` over HTTP on both backends: CRUD, validation, tenant isolation, and
delivery end to end to a real local receiver (answering 500, then 200)."""

from collections.abc import AsyncIterator

import httpx
import pytest

from jobtrack.settings import Settings
from support.keys import bearer
from support.polling import eventually
from support.servers import api_client
from support.webhooks import receiving


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "rate_limit_per_minute": 1_000_000, "event_poll_seconds": 0.01,
        "webhook_retry_base_seconds": 0.05, "webhook_retry_cap_seconds": 0.2,
        "webhook_timeout_seconds": 2.0,
    })


@pytest.fixture
async def client(hook_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(hook_settings) as c:
        yield c


async def test_create_read_list_delete(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    a, b = bearer(keys["a"]), bearer(keys["b"])
    r = await client.post("/webhooks", headers=a, json={
        "url": "http://127.0.0.1:9/hook", "events": ["completed", "failed"],
        "queueName": "emails"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert created["events"] == ["completed", "failed"] and created["queueName"] == "emails"
    hook_id = created["webhookId"]
    mine = await client.post("/webhooks", headers=a, json={
        "url": "https://127.0.0.1/x", "events": ["all"], "secret": "my-own-secret-1234"})
    assert mine.json()["secret"] == "my-own-secret-1234"

    listed = (await client.get("/webhooks", headers=a)).json()["items"]
    assert [h["webhookId"] for h in listed] == [hook_id, mine.json()["webhookId"]]
    assert all("secret" not in h for h in listed)
    one = (await client.get(f"/webhooks/{hook_id}", headers=a)).json()
    assert one == {k: v for k, v in created.items() if k != "secret"}
    assert (await client.get("/webhooks", headers=b)).json()["items"] == []
    admin = (await client.get("/webhooks", headers=bearer(keys["admin"]))).json()["items"]
    assert len(admin) == 2

    for method, path in (("GET", f"/webhooks/{hook_id}"), ("DELETE", f"/webhooks/{hook_id}"),
                         ("GET", f"/webhooks/{hook_id}/deliveries")):
        r = await client.request(method, path, headers=b)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, path)
    assert (await client.delete(f"/webhooks/{hook_id}", headers=a)).status_code == 204
    assert (await client.get(f"/webhooks/{hook_id}", headers=a)).status_code == 404
    assert (await client.delete(f"/webhooks/{hook_id}", headers=a)).status_code == 404
    assert (await client.get("/webhooks/not-an-id", headers=a)).status_code == 404


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"url": "ftp://example.com/x", "events": ["all"]}, "url", "scheme 'ftp'"),
    ({"url": "http://169.254.169.254/latest", "events": ["all"]}, "url", "metadata"),
    ({"url": "http://[fe80::1]/", "events": ["all"]}, "url", "link-local"),
    ({"url": "http://metadata.google.internal/", "events": ["all"]}, "url", "metadata"),
    ({"url": "http://127.0.0.1/x", "events": ["everything"]}, "events", "accepted"),
    ({"url": "http://127.0.0.1/x", "events": []}, "events", "at least"),
    ({"url": "http://127.0.0.1/x", "events": ["all"], "secret": "short"}, "secret", ""),
    ({"url": "http://127.0.0.1/x", "events": ["all"], "flowId": "nope"}, "flowId", "UUID"),
    ({"url": "http://127.0.0.1/x", "events": ["all"], "extra": 1}, "extra", ""),
    ({"events": ["all"]}, "url", "required"),
])
async def test_invalid_webhooks_are_422_naming_the_field(
    client: httpx.AsyncClient, keys: dict[str, str], body: dict[str, object], field: str,
    says: str,
) -> None:
    r = await client.post("/webhooks", headers=bearer(keys["a"]), json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["details"]["field"] == field
    assert says in error["message"]


async def test_private_addresses_refused_when_configured(
    hook_settings: Settings, keys: dict[str, str]
) -> None:
    strict = hook_settings.model_copy(update={"webhook_block_private": True})
    async with api_client(strict) as client:
        r = await client.post("/webhooks", headers=bearer(keys["a"]),
                              json={"url": "http://127.0.0.1:8080/hook", "events": ["all"]})
    assert r.status_code == 422
    assert "JOBTRACK_WEBHOOK_BLOCK_PRIVATE" in r.json()["error"]["message"]


async def test_delivered_signed_to_a_real_receiver_after_a_500(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    a = bearer(keys["a"])
    with receiving(lambda n, _body: 500 if n == 0 else 200) as receiver:
        created = (await client.post("/webhooks", headers=a, json={
            "url": receiver.url, "events": ["progress", "completed"]})).json()
        job = (await client.post("/jobs", headers=a,
                                 json={"queueName": "q", "name": "n"})).json()["job"]
        await client.patch(f"/jobs/{job['jobId']}", headers=a, json={"progress": 50})
        await client.patch(f"/jobs/{job['jobId']}", headers=a, json={"status": "running"})
        await client.patch(f"/jobs/{job['jobId']}", headers=a,
                           json={"status": "completed", "result": {"ok": True}})
        await eventually(lambda: len(receiver.delivered()) == 2)

        async def both_recorded() -> bool:  # the receiver answers before the row is written
            items = (await client.get(f"/webhooks/{created['webhookId']}/deliveries",
                                      headers=a)).json()["items"]
            return len(items) == 2 and all(d["deliveredAt"] is not None for d in items)

        await eventually(both_recorded)
    assert receiver.valid(created["secret"])
    types = [r.event_type for r in receiver.delivered()]
    assert types == ["job.progress", "job.completed"]  # created/updated: not subscribed
    assert [r.answered for r in receiver.got] == [500, 200, 200]
    assert receiver.got[0].body == receiver.got[1].body  # the retry sends the same bytes
    done = receiver.delivered()[1].envelope
    assert done["type"] == "job.completed" and done["data"]["result"] == {"ok": True}
    log = (await client.get(f"/webhooks/{created['webhookId']}/deliveries",
                            headers=a)).json()
    first, second = reversed(log["items"])
    assert first["status"] == "delivered" and first["attempts"] == 2
    assert first["lastStatusCode"] == 200 and first["eventType"] == "job.progress"
    assert second["attempts"] == 1 and second["deliveredAt"] is not None
    assert first["deliveryId"] == receiver.got[0].delivery_id
    page = (await client.get(f"/webhooks/{created['webhookId']}/deliveries", headers=a,
                             params={"limit": 1})).json()
    assert len(page["items"]) == 1 and page["nextCursor"] is not None
    rest = (await client.get(f"/webhooks/{created['webhookId']}/deliveries", headers=a,
                             params={"limit": 1, "cursor": page["nextCursor"]})).json()
    assert rest["items"][0]["deliveryId"] == first["deliveryId"]
