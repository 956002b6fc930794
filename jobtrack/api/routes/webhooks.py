"""``/webhooks``: subscribe a URL to kinds of events, list, read and delete subscriptions,
and read each one's delivery log. Tenant-scoped like every route: another tenant's
webhook is a 404. The secret is answered once, by ``POST``; reads never show it."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator, Field, StringConstraints
from starlette.responses import Response

from jobtrack.api.deps import CallerDep, StateDep
from jobtrack.api.fields import ApiModel, InputModel, Name, clean_text
from jobtrack.api.params import check_page_size
from jobtrack.api.responses import AUTHENTICATED, errors, json_response
from jobtrack.domain.status import DeliveryStatus
from jobtrack.domain.wire import iso
from jobtrack.store.webhooks import Delivery, Webhook
from jobtrack.webhooks import registry

router = APIRouter(tags=["webhooks"])

WebhookId = Annotated[str, Path(alias="webhookId", min_length=1, max_length=64,
                                description="the webhook's id (a UUID)")]
Kind = Annotated[str, Field(json_schema_extra={"enum": list(registry.KINDS)})]


class WebhookCreate(InputModel):
    """``POST /webhooks``. Kinds: ``progress``, ``completed``, ``failed``, ``delta`` (created,
    updated, cancelled) or ``all``. Without a ``secret`` one is generated."""

    url: Annotated[str, StringConstraints(min_length=1, max_length=2000),
                   AfterValidator(clean_text)] = Field(description="http or https URL")
    events: Annotated[list[Kind], Field(min_length=1, max_length=len(registry.KINDS))]
    secret: Annotated[str, StringConstraints(min_length=registry.MIN_SECRET,
                                             max_length=registry.MAX_SECRET),
                      AfterValidator(clean_text)] | None = None
    flow_id: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="only events of this flow")
    queue_name: Name | None = Field(None, description="only events of this queue")


class WebhookPublic(ApiModel):
    webhook_id: str
    url: str
    events: list[Kind]
    flow_id: str | None
    queue_name: str | None
    created_at: str


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="signs every delivery (HMAC-SHA256); shown only once")


class WebhookList(ApiModel):
    items: list[WebhookPublic]


class DeliveryPublic(ApiModel):
    delivery_id: int
    event_id: int
    event_type: str
    job_id: str | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: str | None = Field(description="pending deliveries: the next attempt")
    last_status_code: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


class DeliveryPage(ApiModel):
    """Newest first; pass ``nextCursor`` as ``cursor`` for the next page."""

    items: list[DeliveryPublic]
    next_cursor: str | None


def webhook_to_wire(hook: Webhook, *, with_secret: bool = False) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "webhookId": hook.id, "url": hook.url, "events": list(hook.events),
        "flowId": hook.flow_id, "queueName": hook.queue_name, "createdAt": iso(hook.created_at),
    }
    if with_secret:
        wire["secret"] = hook.secret
    return wire


def delivery_to_wire(d: Delivery) -> dict[str, Any]:
    pending = d.status is DeliveryStatus.PENDING
    return {
        "deliveryId": d.id, "eventId": d.event_id, "eventType": d.event_type,
        "jobId": d.job_id, "status": d.status.value, "attempts": d.attempts,
        "nextAttemptAt": iso(d.next_attempt_at) if pending else None,
        "lastStatusCode": d.last_status_code, "lastError": d.last_error,
        "createdAt": iso(d.created_at), "deliveredAt": iso(d.delivered_at),
    }


@router.post("/webhooks", status_code=201, response_model=None,
             responses={201: {"model": WebhookCreated, "description": "created"},
                        **errors(*AUTHENTICATED)})
async def create_webhook(
    body: WebhookCreate, caller: CallerDep, state: StateDep
) -> Response:
    """Subscribe a URL; 422 names a refused URL's reason (scheme, link-local or metadata
    address, or private when ``JOBTRACK_WEBHOOK_BLOCK_PRIVATE`` is set)."""
    hook = await registry.create_webhook(
        state.db, state.settings, tenant=caller.tenant, url=body.url, events=body.events,
        secret=body.secret, flow_id=body.flow_id, queue_name=body.queue_name,
    )
    if state.webhooks is not None:
        state.webhooks.dispatcher.webhooks_changed()
    return json_response(webhook_to_wire(hook, with_secret=True), 201)


@router.get("/webhooks", response_model=None,
            responses={200: {"model": WebhookList, "description": "the caller's webhooks"},
                       **errors(*AUTHENTICATED)})
async def list_webhooks(caller: CallerDep, state: StateDep) -> Response:
    """Every webhook of the caller's tenant (every tenant's for an admin key), oldest first."""
    hooks = await registry.webhooks(state.db, tenant=caller.scope)
    return json_response({"items": [webhook_to_wire(h) for h in hooks]})


@router.get("/webhooks/{webhookId}", response_model=None,
            responses={200: {"model": WebhookPublic, "description": "the webhook"},
                       **errors(*AUTHENTICATED, 404)})
async def read_webhook(webhook_id: WebhookId, caller: CallerDep, state: StateDep) -> Response:
    """One webhook (without its secret)."""
    hook = await registry.get_webhook(state.db, webhook_id, tenant=caller.scope)
    return json_response(webhook_to_wire(hook))


@router.delete("/webhooks/{webhookId}", status_code=204, response_model=None,
               responses={204: {"description": "deleted"}, **errors(*AUTHENTICATED, 404)})
async def delete_webhook(webhook_id: WebhookId, caller: CallerDep, state: StateDep) -> Response:
    """Delete a webhook; its pending deliveries are dropped."""
    await registry.delete_webhook(state.db, webhook_id, tenant=caller.scope)
    return Response(status_code=204)


@router.get("/webhooks/{webhookId}/deliveries", response_model=None,
            responses={200: {"model": DeliveryPage, "description": "deliveries, newest first"},
                       **errors(*AUTHENTICATED, 404)})
async def list_deliveries(
    webhook_id: WebhookId,
    caller: CallerDep,
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
    cursor: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]+$",
                                        description="nextCursor of the previous page")] = None,
) -> Response:
    """The delivery log: status, attempts, last status code and error of each delivery."""
    check_page_size(limit, state.settings.max_page_size)
    items = await registry.deliveries(state.db, webhook_id, tenant=caller.scope, limit=limit,
                                      before=int(cursor) if cursor else None)
    next_cursor = str(items[-1].id) if len(items) == limit else None
    return json_response({"items": [delivery_to_wire(d) for d in items],
                          "nextCursor": next_cursor})
