"""What routes ask FastAPI for: the per-process state (:class:`~jobtrack.api.state.ApiState`,
the API's composition root), the database, the settings and the authenticated,
rate-limited caller.

``Caller`` is the one place a request is authenticated (``Authorization: Bearer <key>``)
and charged against its key's rate limit; any route that takes it is tenant-scoped
through ``caller.scope`` and documented with the bearer security scheme.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from jobtrack.api.auth import Caller
from jobtrack.api.middleware import request_context
from jobtrack.api.state import ApiState, state_of
from jobtrack.errors import RateLimited
from jobtrack.settings import Settings
from jobtrack.store.engine import Database


async def api_state(conn: HTTPConnection) -> ApiState:
    # async on purpose: FastAPI runs a plain ``def`` dependency on a worker thread,
    # a thread hop per request for a dictionary lookup. ``HTTPConnection``: the WebSocket
    # route takes the same dependency.
    return state_of(conn.app)


StateDep = Annotated[ApiState, Depends(api_state)]


async def _db(state: StateDep) -> Database:
    return state.db


async def _settings(state: StateDep) -> Settings:
    return state.settings


DbDep = Annotated[Database, Depends(_db)]
SettingsDep = Annotated[Settings, Depends(_settings)]

_bearer = HTTPBearer(auto_error=False, description="an API key from `jobtrack keys create`")


async def authenticate(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Resolve the bearer key (401 if missing or unknown) and charge one request to it
    (429 over the limit). The rate-limit headers go on the answer either way."""
    key = await state.keys.resolve(credentials.credentials if credentials else None)
    info = await state.limiter.acquire(key.id)
    request_context(request.scope).rate = info
    if not info.allowed:
        raise RateLimited(retry_after=info.retry_after, limit=info.limit)
    return Caller(key)


CallerDep = Annotated[Caller, Depends(authenticate)]
