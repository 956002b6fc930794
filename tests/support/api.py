"""The HTTP API as the tests talk to it: a started app with its client and keys
(``Api``), a served API's address and keys (``Served``), and the assertions on the
error envelope."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from jobtrack.api.app import create_app
from jobtrack.api.state import state_of
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from support.keys import bearer
from support.servers import asgi_client


@dataclass
class Api:
    """A running app, its client and its keys (raw, by name); ``who`` is the key used
    when a call names none."""

    app: FastAPI
    client: httpx.AsyncClient
    keys: dict[str, str]
    who: str = "a"

    @property
    def db(self) -> Database:
        """The app's own database (the lifespan's)."""
        return state_of(self.app).db

    @property
    def settings(self) -> Settings:
        return state_of(self.app).settings

    def auth(self, who: str | None = None) -> dict[str, str]:
        return bearer(self.keys[who or self.who])

    async def call(self, method: str, path: str, tenant: str | None = None,
                   **kwargs: Any) -> httpx.Response:
        """``method path`` with the key of ``tenant`` (default :attr:`who`)."""
        return await self.client.request(method, path, headers=self.auth(tenant), **kwargs)

    async def ok(self, method: str, path: str, tenant: str | None = None, status: int = 200,
                 **kwargs: Any) -> Any:
        """:meth:`call` answered ``status``; its JSON body."""
        response = await self.call(method, path, tenant, **kwargs)
        assert response.status_code == status, response.text
        return response.json()

    async def create(self, who: str | None = None, **body: Any) -> dict[str, Any]:
        """Create a job (queue ``q``, name ``n`` unless given); return the job object."""
        payload = {"queueName": "q", "name": "n", **body}
        r = await self.client.post("/jobs", json=payload, headers=self.auth(who))
        assert r.status_code == 201, r.text
        job: dict[str, Any] = r.json()["job"]
        return job

    async def claim(self, who: str | None = None, queue: str = "q",
                    **body: Any) -> list[dict[str, Any]]:
        r = await self.client.post(f"/queues/{queue}/claim", json=body, headers=self.auth(who))
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


@asynccontextmanager
async def running(settings: Settings, keys: dict[str, str], who: str = "a"
                  ) -> AsyncIterator[Api]:
    """Start an app for ``settings`` (its lifespan included) and a client for it."""
    app = create_app(settings)
    async with asgi_client(app) as client:
        yield Api(app, client, keys, who)


@dataclass
class Served:
    """A running ``jobtrack serve``: its base URL and raw keys by name."""

    url: str
    keys: dict[str, str]

    def auth(self, who: str = "a") -> dict[str, str]:
        return bearer(self.keys[who])


def _said(r: httpx.Response) -> str:
    """What a failed assertion shows of ``r`` (the request, where it has one)."""
    try:
        return f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}"
    except RuntimeError:  # a response built by hand has no request
        return f"{r.status_code} {r.text}"


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """``r`` is an error envelope with this status (and code); return its ``error``."""
    assert r.status_code == status, _said(r)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


def assert_503(r: httpx.Response) -> None:
    """A 503 ``database_unavailable`` in the error envelope, with Retry-After."""
    assert_error(r, 503, "database_unavailable")
    assert int(r.headers["retry-after"]) >= 1
