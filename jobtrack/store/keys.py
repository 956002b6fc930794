"""Tenants, API keys (only a sha256 of each key is stored) and rate-limit quota leases."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from jobtrack.domain.ids import new_id
from jobtrack.store.tables import api_keys, rate_limits, tenants

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from jobtrack.store.reader import Reads

KEY_PREFIX = "jt_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What a request's key says about it; never the key itself."""

    id: str
    tenant: str
    admin: bool
    prefix: str


def hash_key(raw: str) -> str:
    """Keys are 32 random bytes, so a fast hash is enough (no password stretching)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def _upsert(conn: AsyncConnection):  # type: ignore[no-untyped-def]
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


async def ensure_tenant(conn: AsyncConnection, name: str, now: datetime) -> None:
    stmt = _upsert(conn)(tenants).values(name=name, created_at=now)
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=[tenants.c.name]))


async def create_key(
    conn: AsyncConnection, *, tenant: str, admin: bool, now: datetime, label: str | None = None
) -> tuple[str, ApiKey]:
    """Create a key for ``tenant`` (created if new); return the raw key, shown once."""
    await ensure_tenant(conn, tenant, now)
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=new_id(), tenant=tenant, admin=admin, prefix=raw[:11])
    await conn.execute(
        api_keys.insert().values(
            id=key.id, tenant=tenant, prefix=key.prefix, key_hash=hash_key(raw), admin=admin,
            label=label, created_at=now,
        )
    )
    return raw, key


async def lookup_key(conn: AsyncConnection, raw: str) -> ApiKey | None:
    """The live key with this value, or None (unknown or revoked)."""
    row = (
        await conn.execute(
            select(api_keys.c.id, api_keys.c.tenant, api_keys.c.admin, api_keys.c.prefix)
            .where(api_keys.c.key_hash == hash_key(raw), api_keys.c.revoked_at.is_(None))
        )
    ).first()
    return None if row is None else ApiKey(row.id, row.tenant, row.admin, row.prefix)


async def revoke_key(conn: AsyncConnection, key_id: str, now: datetime) -> bool:
    result = await conn.execute(
        update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


async def list_keys(conn: Reads) -> list[dict[str, object]]:
    rows = await conn.execute(
        select(api_keys.c.id, api_keys.c.tenant, api_keys.c.prefix, api_keys.c.admin,
               api_keys.c.label, api_keys.c.created_at, api_keys.c.revoked_at)
        .order_by(api_keys.c.created_at)
    )
    return [dict(r) for r in rows.mappings()]


async def lease_quota(
    conn: AsyncConnection, *, key_id: str, window_start: int, want: int, limit: int
) -> tuple[int, int]:
    """Take up to ``want`` requests of the key's quota in this window, in one statement.

    Returns ``(granted, used)``: ``used`` is the window's total claimed by every process.
    The counter only ever grows by ``want``, so ``used - want`` is what it was before and
    no grant can push the total of granted requests past ``limit``.
    """
    stmt = _upsert(conn)(rate_limits).values(key_id=key_id, window_start=window_start,
                                             used=want)
    stmt = stmt.on_conflict_do_update(
        index_elements=[rate_limits.c.key_id, rate_limits.c.window_start],
        set_={"used": rate_limits.c.used + stmt.excluded.used},
    ).returning(rate_limits.c.used)
    used = int(await conn.scalar(stmt) or 0)
    before = used - want
    granted = max(0, min(want, limit - before))
    return granted, used


async def forget_windows(conn: AsyncConnection, before: int) -> int:
    """Drop rate-limit counters of windows that started before ``before``."""
    result = await conn.execute(delete(rate_limits).where(rate_limits.c.window_start < before))
    return int(result.rowcount or 0)
