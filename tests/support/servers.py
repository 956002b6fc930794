"""The API app in this process: started (its lifespan run) behind an httpx client that
talks ASGI, or served by uvicorn on a free port of 127.0.0.1 in the test's event loop."""

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from jobtrack.api.app import create_app
from jobtrack.settings import Settings

BASE_URL = "http://jobtrack.test"


@asynccontextmanager
async def asgi_client(app: FastAPI, headers: Mapping[str, str] | None = None
                      ) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` started (lifespan run: hub and webhook loops start) behind an ASGI client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL,
                                     headers=headers) as client:
            yield client


def api_client(settings: Settings, headers: Mapping[str, str] | None = None
               ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """The API app for ``settings`` behind an ASGI client (see :func:`asgi_client`)."""
    return asgi_client(create_app(settings), headers)


def free_socket(port: int = 0) -> socket.socket:
    """A TCP socket bound to 127.0.0.1 (``port``, or a free one), not yet listening."""
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
