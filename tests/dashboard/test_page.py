"""The dashboard page as served: no key needed, the status contract embedded from the
domain module (the script spells no status), colours for every status, and a CSP that
admits exactly the page's own inline script and style."""

import base64
import hashlib
import json
import re
from enum import StrEnum
from importlib.resources import files
from pathlib import Path

import httpx

from jobtrack.api.app import create_app
from jobtrack.dashboard.contract import (
    FLOW_STATUS_COLORS,
    JOB_STATUS_COLORS,
    PHASE_STATUS_COLORS,
    status_css,
)
from jobtrack.domain.events import EventType
from jobtrack.domain.status import RETRYABLE, TERMINAL, FlowStatus, JobStatus, PhaseStatus, Step
from jobtrack.settings import Settings

STATIC = files("jobtrack.dashboard").joinpath("static")


async def _page(tmp_path: Path) -> tuple[str, dict[str, str]]:
    # the lifespan (database) never runs: the page needs none
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://dashboard") as client:
        answer = await client.get("/")  # no Authorization header
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    return answer.text, dict(answer.headers)


def _element(html: str, opening: str, closing: str) -> str:
    match = re.search(re.escape(opening) + r"(.*?)" + re.escape(closing), html, re.DOTALL)
    assert match is not None, opening
    return match.group(1)


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


async def test_the_page_embeds_the_status_contract_of_the_domain_module(tmp_path: Path) -> None:
    html, _ = await _page(tmp_path)
    contract = json.loads(_element(
        html, '<script type="application/json" id="jobtrack-contract">', "</script>"))
    members = lambda enum: {m.name: m.value for m in enum}  # noqa: E731
    assert contract["JobStatus"] == members(JobStatus)
    assert list(contract["JobStatus"].values()) == [s.value for s in JobStatus]
    assert contract["PhaseStatus"] == members(PhaseStatus)
    assert contract["FlowStatus"] == members(FlowStatus)
    assert contract["Step"] == members(Step)
    assert contract["EventType"] == members(EventType)
    assert set(contract["terminal"]) == {s.value for s in TERMINAL}
    assert set(contract["retryable"]) == {s.value for s in RETRYABLE}


def test_the_script_spells_no_status_or_event_type() -> None:
    script = STATIC.joinpath("dashboard.js").read_text()
    spelled = [
        value for enum in (JobStatus, PhaseStatus, FlowStatus, Step, EventType)
        for value in (m.value for m in enum)
        if any(f"{q}{value}{q}" in script for q in "\"'`")
    ]
    assert spelled == [], "read these from the embedded contract (C.JobStatus...) instead"


def test_every_status_has_one_colour_and_a_css_rule() -> None:
    tables: list[tuple[str, type[StrEnum], object]] = [
        ("job", JobStatus, JOB_STATUS_COLORS), ("phase", PhaseStatus, PHASE_STATUS_COLORS),
        ("flow", FlowStatus, FLOW_STATUS_COLORS)]
    css = status_css()
    for kind, enum, colours in tables:
        assert set(colours) == set(enum)  # type: ignore[call-overload]
        for member in enum:
            assert f'[data-{kind}-status="{member.value}"]' in css
    assert len(set(JOB_STATUS_COLORS.values())) == len(JobStatus), "two statuses look alike"
    stylesheet = STATIC.joinpath("dashboard.css").read_text()
    assert not [m for m in (*JobStatus, *PhaseStatus) if f'"{m.value}"' in stylesheet], \
        "status colours are chosen in jobtrack/dashboard/contract.py only"


async def test_the_csp_admits_exactly_the_inline_script_and_style(tmp_path: Path) -> None:
    html, headers = await _page(tmp_path)
    csp = headers["content-security-policy"]
    script = _element(html, "<script>", "</script>")
    style = _element(html, "<style>", "</style>")
    assert f"script-src {_hash(script)}" in csp
    assert f"style-src {_hash(style)}" in csp
    assert "connect-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "/*jobtrack:" not in html  # every marker was filled


def test_the_page_is_not_an_api_operation(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"))
    assert "/" not in app.openapi()["paths"]
