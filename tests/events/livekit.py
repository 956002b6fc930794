"""Real servers for the live-update tests: the API app served by uvicorn on a free port
(in this process, or as separate processes), keys, and small SSE/WebSocket readers."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI

from jobtrack.api.app import create_app
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.keys import create_key

#: (key name, tenant, admin)
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


def free_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@asynccontextmanager
async def serving(
    settings: Settings, port: int = 0, app: FastAPI | None = None
) -> AsyncIterator[str]:
    """The API app for ``settings`` (or ``app``) served by uvicorn in this event loop (on
    ``port``, or a free one); its base URL."""
    sock = free_socket(port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app or create_app(settings), log_level="warning", lifespan="on",
                            ws="websockets-sansio", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextmanager
def api_process(settings: Settings) -> Iterator[str]:
    """The API as a separate OS process (``uvicorn --factory``); its base URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "JOBTRACK_DATABASE_URL": settings.database_url,
           "JOBTRACK_RATE_LIMIT_PER_MINUTE": "1000000",
           "JOBTRACK_EVENT_POLL_SECONDS": str(settings.event_poll_seconds)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "jobtrack.api.app:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--ws", "websockets-sansio"],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"API process did not start (exit {proc.poll()})")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SseReader:
    """Reads an SSE response frame by frame: ``(fields, comments)`` per frame."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def frame(self, timeout: float = 5.0) -> tuple[dict[str, str], list[str]]:
        fields: dict[str, str] = {}
        comments: list[str] = []
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if not line:
                    if fields or comments:
                        return fields, comments
                    continue
                if line.startswith(":"):
                    comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        raise EOFError("stream ended")

    async def event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next event frame (comments and retry hints skipped), parsed."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError
            fields, _ = await self.frame(left)
            if "data" in fields:
                envelope: dict[str, Any] = orjson.loads(fields["data"])
                assert fields.get("event") == envelope["type"]
                if "id" in fields:
                    assert int(fields["id"]) == envelope["id"]
                return envelope

    async def events(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        return [await self.event(timeout) for _ in range(n)]

    async def silent(self, seconds: float) -> bool:
        """True when no event frame arrives for ``seconds``."""
        try:
            await self.event(seconds)
        except TimeoutError:
            return True
        return False
