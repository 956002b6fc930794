"""``/healthz`` (the process answers) and ``/readyz`` (the database answers too).
Neither needs a key, so load balancers and orchestrators can probe them."""

from fastapi import APIRouter

from jobtrack.api.deps import StateDep
from jobtrack.api.responses import errors
from jobtrack.api.schemas import Health
from jobtrack.errors import DatabaseUnavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=errors(503))
async def readyz(state: StateDep) -> Health:
    """The database is reachable; 503 otherwise, also when it has not answered within
    ``readyz_timeout_seconds`` (a hung database)."""
    if not await state.db.ping(timeout=state.settings.readyz_timeout_seconds):
        raise DatabaseUnavailable()
    return Health(status="ready")
