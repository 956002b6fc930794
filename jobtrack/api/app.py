"""The app factory: ``create_app(settings)`` builds a FastAPI app whose lifespan owns the
process's database engine, API-key cache and rate limiter. Nothing is created at import
time, so any number of apps (tests, two "processes" on one database) can coexist.

Run it with ``jobtrack serve`` or ``uvicorn --factory jobtrack.api.app:create_app``
(settings then come from ``JOBTRACK_*`` environment variables).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from jobtrack.api.auth import KeyCache
from jobtrack.api.deps import ApiState
from jobtrack.api.errors import install_error_handlers
from jobtrack.api.jsonguard import body_depth_limit
from jobtrack.api.middleware import ApiGuard
from jobtrack.api.openapi import install_openapi
from jobtrack.api.ratelimit import RateLimiter
from jobtrack.api.routes import (
    actions,
    flows,
    health,
    jobs,
    metrics,
    queues,
    registry,
    stream,
    webhooks,
)
from jobtrack.api.socketio import PATH as SOCKETIO_PATH
from jobtrack.api.socketio import SeedSocketIO
from jobtrack.dashboard.page import router as dashboard_router
from jobtrack.settings import Settings
from jobtrack.store.engine import Database, Timeouts
from jobtrack.store.group_commit import InsertBatcher
from jobtrack.store.registry import DeclarationCache


def _version() -> str:
    try:
        return version("jobtrack")
    except PackageNotFoundError:
        return "0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new API app for ``settings`` (default: from the environment)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url, pool_size=settings.pool_size,
                      timeouts=Timeouts.of(settings))
        state = app.state.jobtrack = ApiState(
            settings=settings,
            db=db,
            keys=KeyCache(db, ttl=settings.key_cache_seconds),
            limiter=RateLimiter(db, limit=settings.rate_limit_per_minute,
                                chunk=settings.chunk()),
            declarations=DeclarationCache(settings.task_cache_seconds),
            inserter=InsertBatcher(db),
        )
        await stream.start_live(app, db, settings)
        try:
            yield
        finally:
            await stream.stop_live(app)
            await state.inserter.close()
            app.state.jobtrack = None
            await db.dispose()

    app = FastAPI(title="jobtrack", version=_version(), lifespan=lifespan,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.jobtrack = None
    app.add_middleware(ApiGuard, max_body_bytes=settings.max_body_bytes,
                       max_json_depth=body_depth_limit(settings.flow_max_depth))
    install_error_handlers(app)
    for module in (health, jobs, actions, queues, flows, stream, webhooks, registry):
        app.include_router(module.router)
    app.include_router(dashboard_router())  # GET /: the dashboard page
    app.mount(SOCKETIO_PATH, SeedSocketIO(app).asgi())  # seed 003's Socket.IO events
    metrics.install(app)  # GET /metrics, and the HTTP request counters
    install_openapi(app, _version(), max_page_size=settings.max_page_size)
    return app
