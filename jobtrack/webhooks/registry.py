"""Webhook subscriptions: create (validated, secret generated when none is given), list,
read, delete. Every function is scoped by tenant (``None``: an admin, every tenant);
another tenant's webhook is not found, like a missing one."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jobtrack.domain.events import WEBHOOK_KINDS
from jobtrack.domain.ids import is_id, new_id
from jobtrack.errors import NotFound, ValidationFailed
from jobtrack.store.engine import Database
from jobtrack.store.events import last_id
from jobtrack.store.webhooks import (
    Delivery,
    Webhook,
    ensure_cursor,
    insert_webhook,
    list_deliveries,
    list_webhooks,
)
from jobtrack.store.webhooks import delete_webhook as store_delete
from jobtrack.store.webhooks import get_webhook as store_get
from jobtrack.webhooks.signing import new_secret
from jobtrack.webhooks.urls import Resolver, check_url

if TYPE_CHECKING:  # (pydantic-settings loads only where settings are built: CLI start-up)
    from jobtrack.settings import Settings

KINDS = tuple(WEBHOOK_KINDS)
MIN_SECRET, MAX_SECRET = 16, 200


def not_found(webhook_id: str) -> NotFound:
    return NotFound(f"webhook {webhook_id!r} not found", details={"webhookId": webhook_id})


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """The event kinds, each one known, without repeats; ``ValidationFailed`` otherwise."""
    if not kinds:
        raise ValidationFailed("events must list at least one kind",
                               details={"field": "events", "accepted": list(KINDS)})
    unknown = [k for k in kinds if k not in WEBHOOK_KINDS]
    if unknown:
        raise ValidationFailed(
            f"unknown event kind(s) {', '.join(map(repr, unknown))}; accepted: "
            + ", ".join(KINDS), details={"field": "events", "value": unknown,
                                         "accepted": list(KINDS)})
    return tuple(dict.fromkeys(kinds))


async def create_webhook(
    db: Database,
    settings: "Settings",
    *,
    tenant: str,
    url: str,
    events: Sequence[str],
    secret: str | None = None,
    flow_id: str | None = None,
    queue_name: str | None = None,
    resolver: Resolver | None = None,
) -> Webhook:
    """Validate and store a subscription; its secret is in the result (shown once).

    The dispatch cursor is created with it if no dispatcher ever ran: events from now on
    are delivered even when the delivery loop starts later, in another process
    (``jobtrack webhooks run`` with ``webhooks_in_api`` off)."""
    kinds = check_kinds(events)
    await check_url(url, block_private=settings.webhook_block_private, resolver=resolver)
    if secret is not None and not MIN_SECRET <= len(secret) <= MAX_SECRET:
        raise ValidationFailed(f"secret must be {MIN_SECRET} to {MAX_SECRET} characters",
                               details={"field": "secret"})
    if flow_id is not None:
        if not is_id(flow_id):
            raise ValidationFailed("flowId must be a flow id (a UUID)",
                                   details={"field": "flowId", "value": flow_id})
        flow_id = str(uuid.UUID(flow_id))  # the form events carry
    hook = Webhook(id=new_id(), tenant=tenant, url=url, events=kinds,
                   secret=secret or new_secret(), created_at=datetime.now(UTC),
                   flow_id=flow_id, queue_name=queue_name)
    # (the dispatcher, with the event feed and psycopg, loads only when a webhook is made)
    from jobtrack.webhooks.dispatcher import CURSOR

    async with db.write() as conn:
        await ensure_cursor(conn, CURSOR, start=await last_id(conn), now=hook.created_at)
        await insert_webhook(conn, hook)
    return hook


async def get_webhook(db: Database, webhook_id: str, *, tenant: str | None) -> Webhook:
    async with db.read() as conn:
        hook = await store_get(conn, webhook_id, tenant=tenant)
    if hook is None:
        raise not_found(webhook_id)
    return hook


async def webhooks(db: Database, *, tenant: str | None) -> list[Webhook]:
    async with db.read() as conn:
        return await list_webhooks(conn, tenant=tenant)


async def delete_webhook(db: Database, webhook_id: str, *, tenant: str | None) -> None:
    """Delete a webhook and its deliveries; pending ones are never attempted."""
    async with db.write() as conn:
        if not await store_delete(conn, webhook_id, tenant=tenant):
            raise not_found(webhook_id)


async def deliveries(
    db: Database, webhook_id: str, *, tenant: str | None, limit: int, before: int | None = None
) -> list[Delivery]:
    """A webhook's deliveries, newest first."""
    async with db.read() as conn:
        if await store_get(conn, webhook_id, tenant=tenant) is None:
            raise not_found(webhook_id)
        return await list_deliveries(conn, webhook_id, limit=limit, before=before)
