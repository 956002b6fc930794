"""Helpers the webhook tests share: keys, the API app on the test's database, and a real
HTTP receiver (uvicorn on a free port) that records what it gets and answers as told."""

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobtrack.api.app import create_app
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.keys import create_key
from jobtrack.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify

KEYS = (("a", "tenant-a", False), ("b", "tenant-b", False), ("admin", "ops", True))


async def make_keys(db: Database) -> dict[str, str]:
    keys: dict[str, str] = {}
    async with db.write() as conn:
        for name, tenant, admin in KEYS:
            raw, _ = await create_key(conn, tenant=tenant, admin=admin, now=datetime.now(UTC))
            keys[name] = raw
    return keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API app (lifespan run: hub and webhook loops start) behind an ASGI client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://jobtrack.test") as c:
            yield c


@dataclass
class Received:
    """One POST the receiver got."""

    delivery_id: int
    event_type: str
    signature: str
    body: bytes
    answered: int

    @property
    def envelope(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.body)
        return value


@dataclass
class Receiver:
    """A webhook endpoint; ``answer(n)`` gives the status for the n-th request (from 0)."""

    answer: Callable[[int, bytes], int] = lambda _n, _body: 200
    got: list[Received] = field(default_factory=list)
    url: str = ""
    _count: int = 0
    _server: uvicorn.Server | None = None
    _task: "asyncio.Task[None] | None" = None
    _port: int = 0

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        status = self.answer(self._count, body)
        self._count += 1
        self.got.append(Received(
            int(request.headers[DELIVERY_HEADER]), request.headers[EVENT_HEADER],
            request.headers[SIGNATURE_HEADER], body, status,
        ))
        return Response(b"ok" if status < 300 else b"try later", status_code=status)

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self._port}/hook"
        app = Starlette(routes=[Route("/hook", self.handle, methods=["POST"])])
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Close the port (the receiver is down until ``start`` again)."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    def delivered(self) -> list[Received]:
        return [r for r in self.got if r.answered < 300]

    def valid(self, secret: str) -> bool:
        return all(verify(secret, r.body, r.signature) for r in self.got)


@asynccontextmanager
async def receiving(answer: Callable[[int, bytes], int] | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver() if answer is None else Receiver(answer=answer)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds; fail the test after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)
