"""API keys for tests: the usual three (two tenants and an admin), one for a fresh
tenant, one made on a database URL, and the bearer header."""

import uuid
from datetime import UTC, datetime

from jobtrack.store.engine import Database
from jobtrack.store.keys import create_key

#: (key name, tenant, admin)
KEYS = (("a", "tenant-a", False), ("b", "tenant-b", False), ("admin", "ops", True))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_key(db: Database, tenant: str, *, admin: bool = False) -> str:
    """A raw key for ``tenant``, committed."""
    async with db.write() as conn:
        raw, _ = await create_key(conn, tenant=tenant, admin=admin, now=datetime.now(UTC))
    return raw


async def make_keys(db: Database,
                    keys: tuple[tuple[str, str, bool], ...] = KEYS) -> dict[str, str]:
    """Raw keys by name, for ``(name, tenant, admin)`` triples (default :data:`KEYS`)."""
    made: dict[str, str] = {}
    async with db.write() as conn:
        for name, tenant, admin in keys:
            made[name], _ = await create_key(conn, tenant=tenant, admin=admin,
                                             now=datetime.now(UTC))
    return made


async def new_tenant(db: Database) -> tuple[str, str]:
    """A fresh tenant and a key for it: ``(tenant, raw key)``."""
    tenant = f"model-{uuid.uuid4().hex[:12]}"
    return tenant, await new_key(db, tenant)


async def key_at(url: str, tenant: str, *, admin: bool = False) -> str:
    """A raw key for ``tenant`` in the database at ``url`` (a pool opened for it)."""
    db = Database(url, pool_size=1)
    try:
        return await new_key(db, tenant, admin=admin)
    finally:
        await db.dispose()
