"""Helpers for the HTTP API tests: a started app (lifespan run) on the test's real
database, an httpx client talking ASGI to it, keys for two tenants and an admin."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from jobtrack.api.app import create_app
from jobtrack.settings import Settings
from jobtrack.store import tables
from jobtrack.store.engine import Database
from jobtrack.store.keys import create_key

#: (key name, tenant, admin)
KEYS = (("a", "tenant-a", False), ("b", "tenant-b", False), ("admin", "ops", True))


@dataclass
class Api:
    """A running app, its client and its keys (raw, by name)."""

    app: FastAPI
    client: httpx.AsyncClient
    keys: dict[str, str]

    def auth(self, who: str = "a") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    async def create(self, who: str = "a", **body: Any) -> dict[str, Any]:
        """Create a job (queue ``q``, name ``n`` unless given); return the job object."""
        payload = {"queueName": "q", "name": "n", **body}
        r = await self.client.post("/jobs", json=payload, headers=self.auth(who))
        assert r.status_code == 201, r.text
        job: dict[str, Any] = r.json()["job"]
        return job

    async def claim(self, who: str = "a", queue: str = "q", **body: Any) -> list[dict[str, Any]]:
        r = await self.client.post(f"/queues/{queue}/claim", json=body, headers=self.auth(who))
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


async def make_keys(db: Database) -> dict[str, str]:
    keys: dict[str, str] = {}
    async with db.write() as conn:
        for name, tenant, admin in KEYS:
            raw, _ = await create_key(conn, tenant=tenant, admin=admin, now=datetime.now(UTC))
            keys[name] = raw
    return keys


@asynccontextmanager
async def running(settings: Settings, keys: dict[str, str]) -> AsyncIterator[Api]:
    """Start an app for ``settings`` (its lifespan included) and a client for it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://jobtrack.test") as c:
            yield Api(app, c, keys)


async def count_rows(db: Database, table: str = "jobs") -> int:
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(
            tables.metadata.tables[table])) or 0)


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """``r`` is an error envelope with this status (and code); return its ``error``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error
