"""Fixtures of the flow tests: the real API app on the test database, with keys for two
tenants (``t1``, the default caller, and ``t2``) and an admin."""

from collections.abc import AsyncIterator

import pytest

from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from support.api import Api, running
from support.keys import make_keys

#: (key name, tenant, admin)
FLOW_KEYS = (("t1", "t1", False), ("t2", "t2", False), ("admin", "admin", True))


@pytest.fixture
def flow_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"flow_max_depth": 4, "flow_max_jobs": 40,
                                       "rate_limit_per_minute": 1_000_000})


@pytest.fixture
async def api(flow_settings: Settings, db: Database) -> AsyncIterator[Api]:
    keys = await make_keys(db, FLOW_KEYS)
    async with running(flow_settings, keys, who="t1") as started:
        yield started
