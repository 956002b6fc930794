"""The HTTP API reference lists exactly the routes the app serves, and names only real
settings and the webhook headers the code sends."""

import re
from collections.abc import Iterable
from pathlib import Path

from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from jobtrack.api.app import create_app
from jobtrack.api.socketio import PATH as SOCKETIO_PATH
from jobtrack.settings import Settings
from jobtrack.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER

DOC = Path(__file__).parents[2] / "docs" / "reference" / "http-api.md"

#: a reference table row: | `METHOD` | `/path` | ...
ROW = re.compile(r"^\|\s*`(GET|POST|PUT|PATCH|DELETE)`\s*\|\s*`(/[^`]*)`\s*\|", re.MULTILINE)
#: served, but part of Swagger UI's machinery rather than the API
NOT_PUBLIC = {("GET", "/docs/oauth2-redirect")}


def _walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[tuple[str, str]]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # FastAPI >= 0.165 keeps included routers as one entry
            context = getattr(route, "include_context", None)
            yield from _walk(included.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, WebSocketRoute):
            yield "GET", prefix + route.path  # the upgrade request
        elif isinstance(route, Mount) and route.path == SOCKETIO_PATH:
            # Engine.IO: long-polling GET and POST, and the WebSocket upgrade (a GET)
            yield from (("GET", f"{route.path}/"), ("POST", f"{route.path}/"))
        elif isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, prefix + route.path
        else:
            raise AssertionError(f"unexpected route {route!r}: teach this test about it")


def served(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, WebSocket upgrades as GET."""
    return set(_walk(app.routes)) - NOT_PUBLIC


def documented() -> list[tuple[str, str]]:
    return ROW.findall(DOC.read_text())


def app_for(tmp_path: Path) -> FastAPI:
    # the database is opened by the lifespan only, which never runs here
    return create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"))


def test_the_walk_finds_every_openapi_operation(tmp_path: Path) -> None:
    app = app_for(tmp_path)
    operations = {(method.upper(), path)
                  for path, ops in app.openapi()["paths"].items() for method in ops}
    assert operations <= served(app)
    assert ("GET", "/ws") in served(app)


def test_every_route_is_documented_and_nothing_more(tmp_path: Path) -> None:
    rows = documented()
    assert len(rows) == len(set(rows)), "a route is listed twice"
    assert set(rows) == served(app_for(tmp_path))


def test_documented_settings_exist() -> None:
    named = set(re.findall(r"JOBTRACK_([A-Z][A-Z_]*[A-Z])", DOC.read_text()))
    assert named
    assert {n.lower() for n in named} <= set(Settings.model_fields)


def test_webhook_headers_are_the_ones_sent() -> None:
    text = DOC.read_text()
    for header in (EVENT_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER):
        assert f"`{header}`" in text
    assert set(re.findall(r"X-Jobtrack-[A-Za-z]+", text)) == {
        EVENT_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER}
