"""``GET /``: the dashboard, one static page (HTML, vanilla JS and CSS, no build step) that
needs no key to load. It asks for an API key, keeps it in the browser's storage and sends
it as ``Authorization: Bearer`` on every call to the API it makes.

The page is assembled once per app from the files in ``static/``: the stylesheet and the
script are inlined, with the status contract (:mod:`jobtrack.dashboard.contract`) embedded
as JSON and its colours as CSS rules. Being one answer, it is one route; its
``Content-Security-Policy`` admits exactly that inline script and style (by hash), and
lets the page talk to its own origin only.
"""

import base64
import hashlib
from dataclasses import dataclass
from importlib.resources import files
from typing import Final

import orjson
from fastapi import APIRouter
from starlette.responses import HTMLResponse

from jobtrack.dashboard.contract import page_contract, status_css

#: markers in static/index.html replaced by what they name
STYLE, CONTRACT, SCRIPT = "/*jobtrack:style*/", "/*jobtrack:contract*/", "/*jobtrack:script*/"
#: JSON inside <script>: nothing in it may close the element or open markup
_JSON_IN_HTML: Final = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"))


@dataclass(frozen=True, slots=True)
class Page:
    """The rendered page and the headers it is served with."""

    html: str
    headers: dict[str, str]


def _asset(name: str) -> str:
    return files("jobtrack.dashboard").joinpath("static", name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def contract_json() -> str:
    """:func:`page_contract` as JSON that is safe inside a ``<script>`` element."""
    data = orjson.dumps(page_contract())
    for raw, escaped in _JSON_IN_HTML:
        data = data.replace(raw, escaped)
    return data.decode()


def render() -> Page:
    """Assemble the page from ``static/`` and the status contract."""
    style = "\n" + status_css() + _asset("dashboard.css")
    script = "\n" + _asset("dashboard.js")
    html = _asset("index.html")
    for marker in (STYLE, CONTRACT, SCRIPT):
        if html.count(marker) != 1:
            raise RuntimeError(f"static/index.html must hold {marker} exactly once")
    html = (html.replace(STYLE, style).replace(CONTRACT, contract_json())
            .replace(SCRIPT, script))
    csp = "; ".join((
        "default-src 'none'",
        f"script-src {_sha256(script)}",
        f"style-src {_sha256(style)}",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ))
    return Page(html, {
        "Content-Security-Policy": csp,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    })


def router() -> APIRouter:
    """A router serving the dashboard at ``GET /`` (left out of the OpenAPI document)."""
    page = render()
    routes = APIRouter(include_in_schema=False)

    @routes.get("/", response_class=HTMLResponse)
    async def dashboard() -> HTMLResponse:
        """The dashboard page; it needs no key (its API calls do)."""
        return HTMLResponse(page.html, headers=page.headers)

    return routes
