"""What a live subscriber wants to see: a tenant (or all, for admin keys) and one or more
filters, each matching on job, flow and queue. SSE takes one filter from its query
(``jobId``, ``flowId``, ``queueName`` combined); a WebSocket joins rooms, each a filter."""

import uuid
from dataclasses import dataclass
from typing import Final

from jobtrack.errors import ValidationFailed
from jobtrack.store.events import StoredEvent

#: WebSocket room kinds: ``job:ID``, ``flow:ID``, ``queue:NAME`` and ``all``
ROOM_KINDS: Final = ("job", "flow", "queue", "all")
MAX_ROOM_LENGTH: Final = 250


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Every field set must equal the event's; an empty filter matches every event."""

    job_id: str | None = None
    flow_id: str | None = None
    queue_name: str | None = None

    def matches(self, event: StoredEvent) -> bool:
        return (
            (self.job_id is None or event.job_id == self.job_id)
            and (self.flow_id is None or event.flow_id == self.flow_id)
            and (self.queue_name is None or event.queue_name == self.queue_name)
        )


def visible_to(tenant: str | None, event: StoredEvent) -> bool:
    """A tenant sees only its own events; ``None`` (an admin key) sees every tenant's."""
    return tenant is None or event.tenant == tenant


def canonical_id(value: str, field: str) -> str:
    """A job or flow id in the form events carry (lower-case UUID); ``ValidationFailed``
    for anything else (it could never match an event)."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValidationFailed(f"{field} must be an id (a UUID), got {value[:80]!r}",
                               details={"field": field}) from None


def parse_room(room: object) -> EventFilter:
    """The filter of a WebSocket room name; a clear ``ValidationFailed`` otherwise."""
    accepted = "job:ID, flow:ID, queue:NAME or all"
    if not isinstance(room, str) or not room or len(room) > MAX_ROOM_LENGTH:
        raise ValidationFailed(
            f"room must be a string: {accepted}", details={"field": "room", "accepted": accepted}
        )
    if room == "all":
        return EventFilter()
    kind, sep, value = room.partition(":")
    if not sep or not value or kind not in ROOM_KINDS[:3]:
        raise ValidationFailed(
            f"unknown room {room!r}: use {accepted}",
            details={"field": "room", "value": room, "accepted": accepted},
        )
    if kind == "job":
        return EventFilter(job_id=canonical_id(value, "room"))
    if kind == "flow":
        return EventFilter(flow_id=canonical_id(value, "room"))
    return EventFilter(queue_name=value)
