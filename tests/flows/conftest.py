"""Fixtures of the flow tests: the real API app on the test database, with keys for two
tenants."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from jobtrack.api.app import create_app
from jobtrack.api.state import state_of
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from jobtrack.store.keys import create_key


@dataclass
class Api:
    """An HTTP client on the app, with one key per tenant (``t1``, ``t2``) and an admin."""

    client: httpx.AsyncClient
    keys: dict[str, str]
    db: Database
    settings: Settings

    def auth(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}

    async def call(self, method: str, path: str, tenant: str = "t1",
                   **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, path, headers=self.auth(tenant), **kwargs)

    async def ok(self, method: str, path: str, tenant: str = "t1", status: int = 200,
                 **kwargs: Any) -> Any:
        response = await self.call(method, path, tenant, **kwargs)
        assert response.status_code == status, response.text
        return response.json()


@pytest.fixture
def flow_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"flow_max_depth": 4, "flow_max_jobs": 40,
                                       "rate_limit_per_minute": 1_000_000})


@pytest.fixture
async def api(flow_settings: Settings) -> AsyncIterator[Api]:
    app = create_app(flow_settings)
    async with app.router.lifespan_context(app):
        db: Database = state_of(app).db
        keys: dict[str, str] = {}
        async with db.write() as conn:
            for tenant, admin in (("t1", False), ("t2", False), ("admin", True)):
                keys[tenant], _ = await create_key(conn, tenant=tenant, admin=admin,
                                                   now=datetime.now(UTC))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://jobtrack") as client:
            yield Api(client, keys, db, flow_settings)
