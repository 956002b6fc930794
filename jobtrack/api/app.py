"""The app factory: ``create_app(settings)`` builds a FastAPI app whose lifespan opens and
closes the process's state, the composition root of :mod:`jobtrack.api.state` (database,
key cache, rate limiter, event hub, webhook loops, metrics). Nothing is created at import
time, so any number of apps (tests, two "processes" on one database) can coexist.

Run it with ``jobtrack serve`` or ``uvicorn --factory jobtrack.api.app:create_app``
(settings then come from ``JOBTRACK_*`` environment variables).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from jobtrack.api.errors import install_error_handlers
from jobtrack.api.jsonguard import body_depth_limit
from jobtrack.api.middleware import ApiGuard
from jobtrack.api.openapi import install_openapi
from jobtrack.api.routes import (
    actions,
    flows,
    health,
    jobs,
    queues,
    registry,
    stream,
    webhooks,
)
from jobtrack.api.routes import metrics as metrics_route
from jobtrack.api.socketio import PATH as SOCKETIO_PATH
from jobtrack.api.socketio import SeedSocketIO
from jobtrack.api.state import SLOT, ApiState, state_of
from jobtrack.api.telemetry import Metrics
from jobtrack.dashboard.page import router as dashboard_router
from jobtrack.settings import Settings


def _version() -> str:
    try:
        return version("jobtrack")
    except PackageNotFoundError:
        return "0"


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new API app for ``settings`` (default: from the environment)."""
    settings = settings or Settings()

    # the one object built before the lifespan: the middleware counts with it
    metrics = Metrics.new()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await ApiState.open(settings, metrics)
        setattr(app.state, SLOT, state)
        try:
            yield
        finally:
            setattr(app.state, SLOT, None)
            await state.close()

    app = FastAPI(title="jobtrack", version=_version(), lifespan=lifespan,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    setattr(app.state, SLOT, None)
    # the API's one middleware: body limits, answer headers, catch-all, HTTP metrics
    app.add_middleware(ApiGuard, max_body_bytes=settings.max_body_bytes,
                       max_json_depth=body_depth_limit(settings.flow_max_depth),
                       metrics=metrics.http)
    install_error_handlers(app)
    for module in (health, jobs, actions, queues, flows, stream, webhooks, registry):
        app.include_router(module.router)
    app.include_router(dashboard_router())  # GET /: the dashboard page
    # seed 003's Socket.IO events: the state through the same accessor, at connect time
    app.mount(SOCKETIO_PATH, SeedSocketIO(lambda: state_of(app)).asgi())
    app.include_router(metrics_route.router)  # GET /metrics
    install_openapi(app, _version(), max_page_size=settings.max_page_size)
    return app
