"""What the model-based test drives: the API app served by uvicorn on a free port (in the
test's own event loop), a key per tenant, an SSE reader, and the stored event log."""

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import uvicorn

from jobtrack.api.app import create_app
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.events import StoredEvent, read_after
from jobtrack.store.keys import create_key


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """``jobtrack serve``'s app on a free port of 127.0.0.1; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(20):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def new_tenant(db: Database) -> tuple[str, str]:
    """A fresh tenant and a key for it: ``(tenant, raw key)``."""
    tenant = f"model-{uuid.uuid4().hex[:12]}"
    async with db.write() as conn:
        raw, _ = await create_key(conn, tenant=tenant, admin=False, now=datetime.now(UTC))
    return tenant, raw


async def stored_after(db: Database, tenant: str, after: int) -> list[StoredEvent]:
    """Every stored event of ``tenant`` with an id above ``after``, oldest first."""
    out: list[StoredEvent] = []
    async with db.read() as conn:
        while True:
            page = await read_after(conn, after, tenant=tenant, limit=1000)
            out.extend(page)
            if len(page) < 1000:
                return out
            after = page[-1].id


class SseStream:
    """An open ``GET /events`` stream, read one event envelope at a time."""

    def __init__(self, client: httpx.AsyncClient, key: str, last_event_id: int) -> None:
        self._cm = client.stream("GET", "/events", headers={
            "Authorization": f"Bearer {key}", "Last-Event-ID": str(last_event_id)})
        self._lines: AsyncIterator[str] | None = None

    async def open(self) -> "SseStream":
        response = await self._cm.__aenter__()
        assert response.status_code == 200, response.status_code
        self._lines = response.aiter_lines()
        return self

    async def close(self) -> None:
        await self._cm.__aexit__(None, None, None)

    async def next_event(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next event frame's envelope (comments and the retry hint skipped)."""
        assert self._lines is not None
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if line.startswith(":"):
                    continue
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
                    continue
                if "data" in fields:
                    envelope: dict[str, Any] = orjson.loads(fields["data"])
                    assert fields.get("event") == envelope["type"], fields
                    assert fields.get("id") == str(envelope["id"]), fields
                    return envelope
                fields = {}
        raise EOFError("the event stream ended")

    async def read_until(self, last_id: int) -> list[dict[str, Any]]:
        """Events up to and including the one with id ``last_id``."""
        out: list[dict[str, Any]] = []
        while not out or out[-1]["id"] < last_id:
            out.append(await self.next_event())
        return out
