"""Live updates: ``GET /events`` (Server-Sent Events) and ``GET /ws`` (WebSocket rooms).

WebSocket: authenticate with ``Authorization: Bearer <key>`` on the upgrade request, or
with a first message ``{"action": "auth", "key": "..."}``; then ``{"action": "subscribe",
"room": "flow:ID"}`` and ``unsubscribe`` (rooms ``job:ID``, ``flow:ID``, ``queue:NAME``,
``all``). The server sends envelopes as JSON text frames, acknowledgements
``{"type": "subscribed" | "unsubscribed", "room"}``, and errors
``{"type": "error", "error": {"code", "message", "details"}}``. A bad key is answered
with an error and close code 1008 (so is a first message that is no auth object); a
client too slow to take its events is closed with
1013 and the reason.

Both read from the process's :class:`~jobtrack.events.hub.EventHub`, which follows the
stored event log, so a client sees every change made through any API process or worker
on the same database. Both authenticate with the same keys (and key cache) as every
other route, and a key sees its tenant's events only (an admin key: every tenant's).

SSE frames: ``id: <id>``, ``event: <type>``, ``data: <envelope JSON>`` where the envelope
is ``{id, type, at, data}``; ``retry:`` first, a comment every ``sse_keepalive_seconds``.
``Last-Event-ID`` (header, or ``lastEventId`` in the query) replays the stored events
after that id before going live, with no duplicate and no gap; a stream opened without
one starts with an ``id:`` of the position it starts from, to resume from. A
``Last-Event-ID`` above the newest stored event (a database restored from an older
backup) resumes from the newest event: the stream starts like a fresh one, with the
``id:`` of its position. An event delivered after
an event with a higher id (a transaction that stayed open past the hub's gap timeout)
is sent without an ``id:`` line, so the client's resume point never moves backwards.
"""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from starlette.responses import StreamingResponse

from jobtrack.api.auth import Caller
from jobtrack.api.deps import CallerDep, StateDep
from jobtrack.api.params import QueryText
from jobtrack.api.responses import AUTHENTICATED, errors
from jobtrack.api.state import ApiState
from jobtrack.errors import (
    DatabaseUnavailable,
    JobtrackError,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from jobtrack.events.filters import EventFilter, canonical_id, parse_room
from jobtrack.events.follow import Item, follow, resume_point
from jobtrack.events.subscription import Subscription, SubscriptionClosed

router = APIRouter(tags=["live updates"])

#: reconnect delay suggested to SSE clients (milliseconds)
RETRY_MS = 1000
#: WebSocket: seconds to send a key, rooms per connection, close codes, client actions
WS_AUTH_SECONDS = 10.0
MAX_ROOMS = 100
POLICY_VIOLATION, TRY_AGAIN_LATER = 1008, 1013
MAX_REASON_BYTES = 123
ACTIONS: Final = ("subscribe", "unsubscribe", "auth", "ping")


def sse_frame(item: Item) -> bytes:
    """One event as an SSE frame (no ``id:`` for a late event, see the module doc)."""
    event = item.event
    data = orjson.dumps(event.envelope())
    head = b"" if item.late else b"id: %d\n" % event.id
    return head + b"event: " + event.type.encode() + b"\ndata: " + data + b"\n\n"


def _last_event_id(header: str | None, query: int | None) -> int | None:
    if header is None or not header.strip():
        return query
    try:
        value = int(header.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise ValidationFailed("Last-Event-ID must be an event id (a whole number >= 0)",
                               details={"field": "Last-Event-ID", "in": "header"})
    return value


async def _frames(
    sub: Subscription, follower: AsyncGenerator[Item | None], *, resumed: bool
) -> AsyncIterator[bytes]:
    try:
        # a fresh stream starts with the hub's position as its id, so a client that
        # reconnects before any event arrived still resumes from here (no event lost)
        start = b"" if resumed else b"id: %d\n" % sub.start
        yield b"retry: %d\n%s: connected\n\n" % (RETRY_MS, start)
        async for item in follower:
            yield b": keep-alive\n\n" if item is None else sse_frame(item)
    except SubscriptionClosed as exc:
        yield b": closed: " + exc.reason.encode() + b"\n\n"
    finally:
        sub.close("the client went away")  # also when the stream never started
        await follower.aclose()


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"description": "a text/event-stream of event envelopes",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}},
               **errors(*AUTHENTICATED)},
)
async def events(
    request: Request,
    caller: CallerDep,
    state: StateDep,
    job_id: Annotated[QueryText | None, Query(alias="jobId", max_length=64)] = None,
    flow_id: Annotated[QueryText | None, Query(alias="flowId", max_length=64)] = None,
    queue_name: Annotated[QueryText | None, Query(alias="queueName", max_length=200)] = None,
    last_event_id_query: Annotated[int | None, Query(alias="lastEventId", ge=0)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
) -> StreamingResponse:
    """Server-Sent Events of the caller's tenant, filtered by job, flow and queue (all
    given filters must match); ``Last-Event-ID`` replays what the client missed."""
    after = _last_event_id(last_event_id, last_event_id_query)
    hub = state.hub
    flt = EventFilter(job_id=job_id and canonical_id(job_id, "jobId"),
                      flow_id=flow_id and canonical_id(flow_id, "flowId"), queue_name=queue_name)
    late = hub.late_ranges
    sub = hub.subscribe(caller.scope, [flt])  # before answering: nothing falls in between
    try:
        after = await resume_point(state.db, sub, after)
    except BaseException:
        sub.close("the stream did not start")
        raise
    follower = follow(state.db, sub, after=after, flt=flt, late_ranges=late,
                      keepalive=state.settings.sse_keepalive_seconds)
    return StreamingResponse(
        _frames(sub, follower, resumed=after is not None), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.websocket("/ws")
async def websocket(ws: WebSocket, state: StateDep) -> None:
    """WebSocket rooms (see the module doc)."""
    await ws.accept()
    try:
        caller = await _ws_caller(ws, state)
    except JobtrackError as exc:
        await _ws_send(ws, _error(exc))
        await ws.close(_close_code(exc), _reason(exc.message))
        return
    except WebSocketDisconnect:
        return
    try:
        sub = state.hub.subscribe(caller.scope, ())
    except JobtrackError as exc:  # the hub has not reached the database yet
        await _ws_send(ws, _error(exc))
        await ws.close(TRY_AGAIN_LATER, _reason(exc.message))
        return
    await _ws_send(ws, {"type": "authenticated", "tenant": caller.tenant,
                        "admin": caller.admin})
    await _Rooms(ws, sub).serve()


async def _ws_caller(ws: WebSocket, state: ApiState) -> Caller:
    """The caller of a WebSocket: by header, else by a first ``auth`` message."""
    header = ws.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if not (scheme.lower() == "bearer" and raw.strip()):
        try:
            first = await asyncio.wait_for(_receive(ws), WS_AUTH_SECONDS)
        except TimeoutError:
            raise Unauthorized(f"no key within {WS_AUTH_SECONDS:g} s: send the header "
                               "'Authorization: Bearer <key>' or a first message "
                               '{"action": "auth", "key": "..."}') from None
        message = _parse(first)
        if message.get("action") != "auth" or not isinstance(message.get("key"), str):
            raise Unauthorized('the first message must be {"action": "auth", "key": "..."} '
                               "(or send the header 'Authorization: Bearer <key>')")
        raw = message["key"]
    key = await state.keys.resolve(raw.strip())
    info = await state.limiter.acquire(key.id)
    if not info.allowed:
        raise RateLimited(retry_after=info.retry_after, limit=info.limit)
    return Caller(key)


class _Rooms:
    """One authenticated WebSocket: its rooms, the reader of its messages and the
    sender of its events (the subscription's bounded buffer is the send queue)."""

    def __init__(self, ws: WebSocket, sub: Subscription) -> None:
        self.ws = ws
        self.sub = sub
        self.rooms: dict[str, EventFilter] = {}
        self.lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self.lock:  # acks (reader) and events (sender) never interleave
            await _ws_send(self.ws, message)

    async def serve(self) -> None:
        sender = asyncio.create_task(self._send_events())
        try:
            while True:
                await self._handle(await _receive(self.ws))
        except (WebSocketDisconnect, RuntimeError):  # closed by the client or by the sender
            pass
        finally:
            self.sub.close("the client went away")
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _send_events(self) -> None:
        try:
            while True:
                event = await self.sub.get()
                await self.send(event.envelope())
        except SubscriptionClosed as exc:
            with contextlib.suppress(Exception):
                await self.ws.close(TRY_AGAIN_LATER, _reason(exc.reason))
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    async def _handle(self, text: str) -> None:
        try:
            message = _parse(text)
            action = message.get("action")
            if action in ("subscribe", "unsubscribe"):
                room = message.get("room")
                flt = parse_room(room)
                assert isinstance(room, str)
                if action == "subscribe":
                    if room not in self.rooms and len(self.rooms) >= MAX_ROOMS:
                        raise ValidationFailed(f"at most {MAX_ROOMS} rooms per connection",
                                               details={"field": "room"})
                    self.rooms[room] = flt
                else:
                    self.rooms.pop(room, None)
                self.sub.filters = set(self.rooms.values())
                await self.send({"type": f"{action}d", "room": room})
            elif action == "auth":
                await self.send({"type": "authenticated"})
            elif action == "ping":
                await self.send({"type": "pong"})
            else:
                raise ValidationFailed(
                    f"unknown action {action!r}; accepted: {', '.join(ACTIONS)}",
                    details={"field": "action", "accepted": list(ACTIONS)})
        except ValidationFailed as exc:
            await self.send(_error(exc))


async def _receive(ws: WebSocket) -> str:
    """The next client message, text or binary (UTF-8 JSON either way)."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
    return str(text)


def _parse(text: str) -> dict[str, Any]:
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        message = None
    if not isinstance(message, dict):
        raise ValidationFailed('each message must be a JSON object such as {"action": '
                               '"subscribe", "room": "flow:ID"}', details={"field": "message"})
    return message


def _close_code(exc: JobtrackError) -> int:
    """Closing before authentication: 1013 when the same connection may succeed later (over
    the rate limit, the database unavailable), else 1008 (a bad key, a first message that
    is no auth object: trying again as is cannot work)."""
    if isinstance(exc, RateLimited | DatabaseUnavailable):
        return TRY_AGAIN_LATER
    return POLICY_VIOLATION


def _error(exc: JobtrackError) -> dict[str, Any]:
    return {"type": "error",
            "error": {"code": exc.code, "message": exc.message, "details": exc.details}}


def _reason(text: str) -> str:
    """A close reason: at most 123 bytes of UTF-8."""
    return text.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


async def _ws_send(ws: WebSocket, message: dict[str, Any]) -> None:
    await ws.send_text(orjson.dumps(message).decode())
