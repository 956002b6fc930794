"""Socket.IO at ``/socket.io``: seed 003's flow events, for its existing front ends.

A ``socket.io-client`` (v4) connects to the API's address and authenticates with an API
key, in the handshake ``auth: {token: "<key>"}`` or the header ``Authorization: Bearer
<key>``; a missing or bad key is a ``connect_error`` (its ``message``, and ``data``:
``{code, message, details}`` as in every error of the API). Each connection then
receives, for its key's tenant (every tenant for an admin key), the events seed 003
names, with its payloads:

- ``flow:created``: the flow (``GET /flows/{flowId}``'s summary: flowId, flowname, name,
  queueName, status, progress, result, error, timestamps);
- ``flow:updated``: ``{flowId, status, progress, updatedAt}`` at every change of a flow's
  status or progress (also when it ends);
- ``flow:job:updated``: ``{flowId, jobId, jobStatus, result?, error?}`` when a job of a
  flow changes status;
- ``flow:completed``: ``{flowId, result, completedAt}`` when a flow completes;
- ``flow:progress``: ``{flowId, progress, status}``, only to the room ``flow:{flowId}``,
  which a client joins with ``socket.emit("join", "flow:<flowId>")`` (also accepted:
  the bare id, ``{flowId}``, ``{room}``, and ``subscribe`` as the event name) and leaves
  with ``leave`` (or ``unsubscribe``). The acknowledgement is ``{ok: true, room}`` or
  ``{ok: false, error: {code, message, details}}``.

Events come from the process's :class:`~jobtrack.events.hub.EventHub`, which follows the
stored event log: a client sees changes made by any API process or worker on the same
database (with several processes, the long-polling transport needs sticky sessions:
clients use ``transports: ["websocket"]`` otherwise). Each connection is one hub
subscription, bounded like an SSE stream's (the bound applies to Engine.IO's send queue
too); a client too slow to take its events is disconnected, and reads the current state
again with ``GET /flows/{flowId}``.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import socketio  # type: ignore[import-untyped]

from jobtrack.api.auth import Caller
from jobtrack.api.state import ApiState
from jobtrack.domain.events import EventType
from jobtrack.errors import JobtrackError, RateLimited, Unauthorized, ValidationFailed
from jobtrack.events.filters import canonical_id
from jobtrack.events.hub import SLOW_SECONDS
from jobtrack.events.subscription import Subscription, SubscriptionClosed
from jobtrack.store.events import StoredEvent

log = logging.getLogger(__name__)

#: where the Socket.IO endpoint is mounted (the clients' default path)
PATH: Final = "/socket.io"
#: flow rooms one connection may join
MAX_ROOMS: Final = 100
JOIN_EVENTS: Final = ("join", "subscribe")
LEAVE_EVENTS: Final = ("leave", "unsubscribe")
#: seconds a new connection's first event waits for the connection to be acknowledged
CONNECT_WAIT_SECONDS: Final = 5.0

_FLOW_CHANGES: Final = frozenset({EventType.FLOW_UPDATED.value, EventType.FLOW_COMPLETED.value,
                                  EventType.FLOW_FAILED.value,
                                  EventType.FLOW_CANCELLED.value})


@dataclass(frozen=True, slots=True)
class Emit:
    """One Socket.IO event: its name, payload, and the flow room it goes to (None: to
    every connection of the tenant)."""

    name: str
    payload: dict[str, Any]
    room: str | None = None


def seed_events(event: StoredEvent) -> Iterator[Emit]:
    """Seed 003's Socket.IO events for one stored event (none for most job events)."""
    data = event.data
    if event.type == EventType.FLOW_CREATED.value:
        yield Emit("flow:created", data)
    elif event.type in _FLOW_CHANGES:
        flow_id = data["flowId"]
        yield Emit("flow:updated", {"flowId": flow_id, "status": data["status"],
                                    "progress": data["progress"],
                                    "updatedAt": data["updatedAt"]})
        yield Emit("flow:progress", {"flowId": flow_id, "progress": data["progress"],
                                     "status": data["status"]}, room=f"flow:{flow_id}")
        if event.type == EventType.FLOW_COMPLETED.value:
            yield Emit("flow:completed", {"flowId": flow_id, "result": data.get("result"),
                                          "completedAt": data.get("completedAt")})
    elif (event.flow_id is not None and event.job_id is not None
          and event.from_status is not None and event.to_status is not None
          and event.from_status != event.to_status):
        payload: dict[str, Any] = {"flowId": event.flow_id, "jobId": event.job_id,
                                   "jobStatus": event.to_status}
        for key in ("result", "error"):
            if data.get(key) is not None:
                payload[key] = data[key]
        yield Emit("flow:job:updated", payload)


def room_of(data: Any) -> str:
    """The flow room a ``join``/``leave`` names: ``flow:ID``, ``ID``, ``{flowId}`` or
    ``{room}``; ``ValidationFailed`` otherwise."""
    if isinstance(data, dict):
        data = data.get("flowId", data.get("room"))
    if not isinstance(data, str) or not data:
        raise ValidationFailed('join a flow room: "flow:<flowId>" (or {"flowId": ...})',
                               details={"field": "room"})
    value = data.removeprefix("flow:")
    return f"flow:{canonical_id(value, 'room')}"


def _error(exc: JobtrackError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message, "details": exc.details}


def _bearer(environ: dict[str, Any]) -> str | None:
    scheme, _, raw = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    return raw.strip() if scheme.lower() == "bearer" and raw.strip() else None


@dataclass(slots=True)
class _Connection:
    sub: Subscription
    rooms: set[str] = field(default_factory=set)
    task: "asyncio.Task[None] | None" = None


class SeedSocketIO:
    """The Socket.IO server of one API app (built by the app factory, used while its
    lifespan runs)."""

    def __init__(self, state: Callable[[], ApiState]) -> None:
        #: the API's state (:func:`jobtrack.api.state.state_of` of the app), read at connect
        self.state = state
        # authentication is by API key, never by cookie: any origin may connect
        self.sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*",
                                        logger=False, engineio_logger=False)
        self.connections: dict[str, _Connection] = {}
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        for name in JOIN_EVENTS:
            self.sio.on(name, self._join)
        for name in LEAVE_EVENTS:
            self.sio.on(name, self._leave)

    def asgi(self) -> Any:
        """The ASGI app to mount at :data:`PATH` (routing is the mount's)."""
        return socketio.ASGIApp(self.sio, socketio_path=None)

    async def _caller(self, environ: dict[str, Any], auth: Any) -> Caller:
        state = self.state()
        token = auth.get("token") if isinstance(auth, dict) else None
        raw = token if isinstance(token, str) and token.strip() else _bearer(environ)
        if raw is None:
            raise Unauthorized("missing API key: connect with auth: {token: '<key>'} or the "
                               "header 'Authorization: Bearer <key>'",
                               details={"field": "auth.token"})
        key = await state.keys.resolve(raw.strip())
        info = await state.limiter.acquire(key.id)
        if not info.allowed:
            raise RateLimited(retry_after=info.retry_after, limit=info.limit)
        return Caller(key)

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            caller = await self._caller(environ, auth)
            sub = self.state().hub.subscribe(caller.scope)
        except JobtrackError as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.message, _error(exc)) from None
        conn = self.connections[sid] = _Connection(sub)
        conn.task = asyncio.create_task(self._pump(sid, conn), name=f"jobtrack-socketio-{sid}")

    async def _disconnect(self, sid: str, *_reason: Any) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        conn.sub.close("the client went away")
        if conn.task is not None and conn.task is not asyncio.current_task():
            conn.task.cancel()

    async def _join(self, sid: str, data: Any = None) -> dict[str, Any]:
        return self._rooms(sid, data, join=True)

    async def _leave(self, sid: str, data: Any = None) -> dict[str, Any]:
        return self._rooms(sid, data, join=False)

    def _rooms(self, sid: str, data: Any, *, join: bool) -> dict[str, Any]:
        conn = self.connections.get(sid)
        try:
            room = room_of(data)
            if conn is None:
                raise ValidationFailed("not connected")
            if join:
                if room not in conn.rooms and len(conn.rooms) >= MAX_ROOMS:
                    raise ValidationFailed(f"at most {MAX_ROOMS} rooms per connection",
                                           details={"field": "room"})
                conn.rooms.add(room)
            else:
                conn.rooms.discard(room)
        except ValidationFailed as exc:
            return {"ok": False, "error": _error(exc)}
        return {"ok": True, "room": room}

    async def _wait_connected(self, sid: str) -> bool:
        """The connect acknowledgement goes out after the connect handler returns; no
        event may precede it."""
        loop = asyncio.get_running_loop()
        until = loop.time() + CONNECT_WAIT_SECONDS
        while not self.sio.manager.is_connected(sid, "/"):
            if sid not in self.connections or loop.time() > until:
                return False
            await asyncio.sleep(0.005)
        return True

    def _send_queue(self, sid: str) -> "asyncio.Queue[Any] | None":
        """Engine.IO's queue of packets for this client (None once it is gone)."""
        try:
            eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
            queue = getattr(self.sio.eio.sockets.get(eio_sid), "queue", None)
        except Exception:  # gone already
            return None
        return queue if isinstance(queue, asyncio.Queue) else None

    async def _caught_up(self, sid: str, sub: Subscription) -> None:
        """Wait while Engine.IO holds more than the subscription's bound of packets for
        this client. Its send queue has no bound of its own; waiting here leaves the
        events in the subscription, whose bound the hub enforces as for an SSE stream
        whose socket is full: a client that falls that far behind is dropped (and
        counted) by the hub, which ends the wait with ``SubscriptionClosed``."""
        queue = self._send_queue(sid)
        while queue is not None and queue.qsize() > sub.maxsize:
            if sub.closed_reason is not None:
                raise SubscriptionClosed(sub.closed_reason)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.join(), SLOW_SECONDS)

    async def _pump(self, sid: str, conn: _Connection) -> None:
        """Hand this connection's events to its client, until either side ends."""
        reason = "the server is shutting down"
        try:
            if not await self._wait_connected(sid):
                raise SubscriptionClosed("the connection was not acknowledged")
            while True:
                event = await conn.sub.get()
                for emit in seed_events(event):
                    if emit.room is None or emit.room in conn.rooms:
                        await self.sio.emit(emit.name, emit.payload, to=sid)
                await self._caught_up(sid, conn.sub)
        except SubscriptionClosed as exc:
            reason = exc.reason
        except asyncio.CancelledError:
            return
        except Exception:  # a send to a client that went away
            log.debug("socket.io connection %s ended", sid, exc_info=True)
        conn.sub.close(reason)
        log.info("socket.io connection %s closed: %s", sid, reason)
        with contextlib.suppress(Exception):
            await self.sio.disconnect(sid)
