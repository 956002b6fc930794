"""The HTTP API's reusable field types and base models: bounded names and texts, JSON
documents jobtrack can store, whole numbers, UTC timestamps, statuses with their aliases,
and the camelCase base models every request and answer derives from."""

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from jobtrack.api.jsonguard import problem, text_problem
from jobtrack.domain.status import JobStatus, normalize_status
from jobtrack.errors import UnknownStatus

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def clean_text(value: str) -> str:
    """Refuse text the database cannot store (NUL, unpaired surrogates)."""
    bad = text_problem(value)
    if bad:
        raise PydanticCustomError("invalid_text", bad)
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return value


def _storable(value: Any) -> Any:
    bad = problem(value)
    if bad:
        raise PydanticCustomError("invalid_json", bad)
    return value


def _whole(value: Any) -> Any:
    """A JSON number without a fraction is an integer (``3.0`` is ``3``, as in JSON
    Schema); booleans and strings are still refused by the strict int after this."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _iso_datetime(value: Any) -> Any:
    """Only an ISO 8601 string is a date-time (as the document says): pydantic alone
    would also read a number, or a string of digits, as a Unix time."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _NUMBER.fullmatch(value.strip()):
        raise PydanticCustomError("datetime_type",
                                  "must be an ISO 8601 date-time string, e.g. "
                                  "2030-01-01T12:00:00Z")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("datetime_range", "date is out of range") from None


def canonical_status(value: Any) -> Any:
    """Aliases (``done``, ``processing``, ``CANCELED``...) become canonical statuses."""
    if isinstance(value, str):
        try:
            return normalize_status(value)
        except UnknownStatus as exc:
            raise PydanticCustomError(
                "invalid_status", "{message}", {"message": exc.message, "accepted": exc.accepted}
            ) from None
    return value


#: a queue, job, phase or step name
Name = Annotated[str, StringConstraints(min_length=1, max_length=200),
                 AfterValidator(clean_text), AfterValidator(_not_blank)]
#: the ordered phases of a job (their uniqueness is checked by the model)
PhaseNames = Annotated[list[Name], Field(max_length=100, json_schema_extra={"uniqueItems": True})]
#: free text of bounded length (error messages)
Text = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(clean_text)]
#: any JSON document jobtrack can store and send back
JsonValue = Annotated[Any, AfterValidator(_storable)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable)]
#: last in an integer's ``Annotated`` (after its bounds, which stay in the JSON Schema):
#: ``3.0`` is accepted as ``3``; ``true`` and ``"3"`` are still refused
WHOLE: Final = BeforeValidator(_whole)
Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Amount = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0, le=1e12)]
UtcDatetime = Annotated[datetime, BeforeValidator(_iso_datetime), AfterValidator(_utc)]
#: a job status; aliases accepted (deprecated), answered canonically
StatusIn = Annotated[JobStatus, BeforeValidator(canonical_status)]


class ApiModel(BaseModel):
    """Base of every API model: camelCase aliases, snake_case attributes."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)


class InputModel(ApiModel):
    """Base of request bodies: unknown fields are refused, so typos do not pass."""

    model_config = ConfigDict(extra="forbid")
