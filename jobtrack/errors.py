"""Every error jobtrack raises on purpose. Each class's docstring is its default message.

Hierarchy::

    JobtrackError
    ├── InvalidTransition      a status or phase change the contract forbids
    ├── Conflict               a request that clashes with the current state
    ├── NotFound               missing, or belongs to another tenant (the same to callers)
    ├── ValidationFailed       bad input: names the field and what is accepted
    │   └── UnknownStatus      a status value no alias table knows
    ├── Unauthorized           missing or unknown API key
    ├── Forbidden              a key without the right (e.g. an admin route)
    ├── RateLimited            the key spent its quota for the current window
    ├── PayloadTooLarge        a request body over the configured limit
    ├── DatabaseUnavailable    the database cannot be reached
    └── TaskNotFound           a worker was asked to run a task name it does not know

The API maps each class to an HTTP status in one table (``jobtrack.api.errors``).
"""

from typing import Any, ClassVar


class JobtrackError(Exception):
    """Something went wrong in jobtrack."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details
        super().__init__(self.message)


class InvalidTransition(JobtrackError):
    """This status change is not allowed."""

    code = "invalid_transition"

    def __init__(
        self,
        *,
        current: str,
        target: str,
        allowed: list[str],
        subject: str = "job",
        message: str | None = None,
    ) -> None:
        self.current = current
        self.target = target
        self.allowed = allowed
        targets = ", ".join(allowed) if allowed else "none"
        super().__init__(
            message
            or f"{subject} cannot move from {current!r} to {target!r}; allowed from "
            f"{current!r}: {targets}",
            details={"subject": subject, "current": current, "target": target, "allowed": allowed},
        )


class Conflict(JobtrackError):
    """The request conflicts with the current state."""

    code = "conflict"


class WriteConflict(Conflict):
    """The write collided with a concurrent one (a deadlock the database broke by rolling
    this transaction back): nothing was written; the same request may simply be retried."""

    code = "write_conflict"


class NotFound(JobtrackError):
    """Not found."""

    code = "not_found"


class ValidationFailed(JobtrackError):
    """The input is not valid."""

    code = "validation_error"


class UnknownStatus(ValidationFailed):
    """Unknown status value."""

    code = "invalid_status"

    def __init__(
        self,
        *,
        value: str,
        accepted: list[str],
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        self.value = value
        self.accepted = accepted
        text = message or (
            f"unknown status {value!r}"
            + (f" ({reason})" if reason else "")
            + "; canonical values: "
            + ", ".join(accepted)
        )
        super().__init__(text, details={"value": value, "accepted": accepted})


class Unauthorized(JobtrackError):
    """A valid API key is required: send 'Authorization: Bearer <key>'."""

    code = "unauthorized"


class Forbidden(JobtrackError):
    """This key may not do that."""

    code = "forbidden"


class RateLimited(JobtrackError):
    """Rate limit exceeded for this key."""

    code = "rate_limited"

    def __init__(self, *, retry_after: int, limit: int) -> None:
        self.retry_after = retry_after
        self.limit = limit
        super().__init__(
            f"rate limit of {limit} requests per minute exceeded; retry in {retry_after} s",
            details={"limit": limit, "retryAfter": retry_after},
        )


class PayloadTooLarge(JobtrackError):
    """The request body is too large."""

    code = "payload_too_large"


class DatabaseUnavailable(JobtrackError):
    """The database is unavailable; try again shortly."""

    code = "database_unavailable"


class TaskNotFound(JobtrackError):
    """No task is registered under this name."""

    code = "task_not_found"
