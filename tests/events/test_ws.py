"""``GET /ws``: WebSocket rooms over a real server (``websockets`` client), both backends."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from jobtrack.api.app import create_app
from jobtrack.api.state import state_of
from jobtrack.settings import Settings
from support.keys import bearer
from support.servers import serving


@pytest.fixture
async def base_url(settings: Settings) -> AsyncIterator[str]:
    tuned = settings.model_copy(update={"rate_limit_per_minute": 1_000_000,
                                        "event_poll_seconds": 0.01})
    async with serving(tuned) as url:
        yield url


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws"


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def quiet(ws: ClientConnection, seconds: float) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return True
    return False


async def send(ws: ClientConnection, **message: Any) -> None:
    await ws.send(orjson.dumps(message).decode())


async def job_and_patch(base: str, key: str, *progress: int) -> str:
    async with httpx.AsyncClient(base_url=base, headers=bearer(key)) as c:
        r = await c.post("/jobs", json={"queueName": "emails", "name": "n"})
        job_id: str = r.json()["jobId"]
        for pct in progress:
            assert (await c.patch(f"/jobs/{job_id}", json={"progress": pct})).status_code == 200
    return job_id


async def test_header_auth_rooms_and_unsubscribe(base_url: str, keys: dict[str, str]) -> None:
    async with connect(ws_url(base_url), additional_headers=bearer(keys["a"])) as ws:
        hello = await recv(ws)
        assert hello == {"type": "authenticated", "tenant": "tenant-a", "admin": False}
        job_id = await job_and_patch(base_url, keys["a"])
        await send(ws, action="subscribe", room=f"job:{job_id}")
        assert await recv(ws) == {"type": "subscribed", "room": f"job:{job_id}"}
        await job_and_patch(base_url, keys["a"])  # another job: not in the room
        async with httpx.AsyncClient(base_url=base_url, headers=bearer(keys["a"])) as c:
            await c.patch(f"/jobs/{job_id}", json={"progress": 30})
            event = await recv(ws)
            if event["type"] == "job.created":  # created after this socket connected
                event = await recv(ws)
            assert event["type"] == "job.progress" and event["data"]["jobId"] == job_id
            assert set(event) == {"id", "type", "at", "data"}
            await send(ws, action="unsubscribe", room=f"job:{job_id}")
            assert await recv(ws) == {"type": "unsubscribed", "room": f"job:{job_id}"}
            await c.patch(f"/jobs/{job_id}", json={"progress": 60})
        assert await quiet(ws, 0.4)


async def test_first_message_auth_and_queue_and_all_rooms(
    base_url: str, keys: dict[str, str]
) -> None:
    async with connect(ws_url(base_url)) as ws:
        await send(ws, action="auth", key=keys["a"])
        assert (await recv(ws))["type"] == "authenticated"
        await send(ws, action="subscribe", room="queue:emails")
        await send(ws, action="subscribe", room="all")
        assert [(await recv(ws))["room"] for _ in range(2)] == ["queue:emails", "all"]
        job_id = await job_and_patch(base_url, keys["a"], 10)
        got = [await recv(ws) for _ in range(2)]  # each event once, however many rooms match
        assert [e["type"] for e in got] == ["job.created", "job.progress"]
        assert all(e["data"]["jobId"] == job_id for e in got)
        assert await quiet(ws, 0.3)


async def test_bad_keys_are_refused(base_url: str, keys: dict[str, str]) -> None:
    async with connect(ws_url(base_url), additional_headers=bearer("jt_nope")) as ws:
        error = await recv(ws)
        assert error["type"] == "error" and error["error"]["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    async with connect(ws_url(base_url)) as ws:
        await send(ws, action="subscribe", room="all")  # no auth first
        assert (await recv(ws))["error"]["code"] == "unauthorized"
        with pytest.raises(ConnectionClosed):
            await ws.recv()


async def test_other_tenants_rooms_see_nothing(base_url: str, keys: dict[str, str]) -> None:
    job_id = await job_and_patch(base_url, keys["a"])
    async with connect(ws_url(base_url), additional_headers=bearer(keys["b"])) as spy, \
            connect(ws_url(base_url), additional_headers=bearer(keys["admin"])) as admin:
        await recv(spy)
        await recv(admin)
        for room in (f"job:{job_id}", "queue:emails", "all"):
            await send(spy, action="subscribe", room=room)
            await recv(spy)
        await send(admin, action="subscribe", room="all")
        await recv(admin)
        async with httpx.AsyncClient(base_url=base_url, headers=bearer(keys["a"])) as c:
            await c.patch(f"/jobs/{job_id}", json={"progress": 5})
        seen = await recv(admin)  # an admin's "all" sees every tenant
        assert seen["data"]["jobId"] == job_id
        assert await quiet(spy, 0.4), "tenant b saw tenant a's event"


async def test_bad_messages_get_errors_and_the_connection_stays(
    base_url: str, keys: dict[str, str]
) -> None:
    async with connect(ws_url(base_url), additional_headers=bearer(keys["a"])) as ws:
        await recv(ws)
        await ws.send("not json")
        assert (await recv(ws))["error"]["code"] == "validation_error"
        await send(ws, action="subscribe", room="job:not-an-id")
        assert "UUID" in (await recv(ws))["error"]["message"]
        await send(ws, action="subscribe", room="planet:mars")
        error = await recv(ws)
        assert error["type"] == "error" and "job:ID" in error["error"]["message"]
        await send(ws, action="dance")
        assert "accepted" in (await recv(ws))["error"]["details"]
        await send(ws, action="ping")
        assert await recv(ws) == {"type": "pong"}


async def test_a_dropped_subscriber_is_closed_with_1013_and_the_reason(
    settings: Settings, keys: dict[str, str]
) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 1_000_000}))
    async with serving(settings, app=app) as url, \
            connect(ws_url(url), additional_headers=bearer(keys["a"])) as ws:
        await recv(ws)
        hub = state_of(app).hub
        # (the other subscriber, of every tenant, is the job metrics' own)
        [sub] = [s for s in hub._subscribers if s.tenant is not None]
        # what the hub does to a subscriber whose buffer stays full (see test_hub.py):
        sub.close("too slow: 1000 events waiting to be sent; reconnect with the last event id")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1013 and closed.value.rcvd.reason.startswith("too slow")


@pytest.mark.parametrize("first", ["not json", '{"action": "auth", "key": %s}' % ("9" * 5000),
                                   '{"action": "auth", "n": 1e999}', "[1, 2]"])
async def test_a_first_message_that_is_no_auth_object_closes_with_1008(
    base_url: str, keys: dict[str, str], first: str
) -> None:
    """A policy violation (1008), not "try again later" (1013): retrying the same first
    message can never work."""
    async with connect(ws_url(base_url)) as ws:
        await ws.send(first)
        error = await recv(ws)
        assert error["type"] == "error"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_huge_numbers_in_messages_are_errors_and_the_connection_stays(
    base_url: str, keys: dict[str, str]
) -> None:
    async with connect(ws_url(base_url), additional_headers=bearer(keys["a"])) as ws:
        await recv(ws)
        await ws.send('{"action": "subscribe", "room": %s}' % ("9" * 5000))
        assert (await recv(ws))["error"]["code"] == "validation_error"
        await send(ws, action="subscribe", room="job:" + "9" * 5000)
        assert (await recv(ws))["error"]["code"] == "validation_error"
        await send(ws, action="ping")
        assert await recv(ws) == {"type": "pong"}
