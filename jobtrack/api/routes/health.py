"""``/healthz`` (the process answers) and ``/readyz`` (the database answers too).
Neither needs a key, so load balancers and orchestrators can probe them."""

from fastapi import APIRouter

from jobtrack.api.deps import DbDep
from jobtrack.api.responses import errors
from jobtrack.api.schemas import Health
from jobtrack.errors import DatabaseUnavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=errors(503))
async def readyz(db: DbDep) -> Health:
    """The database is reachable; 503 otherwise."""
    if not await db.ping():
        raise DatabaseUnavailable()
    return Health(status="ready")
