"""Limits of request bodies that follow from what they are: a number too large to be
one the API stores is named as such, and a flow as deep as ``JOBTRACK_FLOW_MAX_DEPTH``
allows is never refused for its JSON nesting."""

from typing import Any

import pytest

from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from support.api import assert_error, running
from support.store import count_rows


def chain(depth: int, data: Any = None) -> dict[str, Any]:
    """A flow ``depth`` levels deep (its deepest job carries ``data``)."""
    node: dict[str, Any] = {"name": f"n{depth}", "queueName": "q"}
    if data is not None:
        node["data"] = data
    for level in range(depth - 1, 0, -1):
        node = {"name": f"n{level}", "queueName": "q", "children": [node]}
    return {"flowname": "deep", **node}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize("digits", [25, 4_301, 5_000, 100_000])
async def test_a_huge_integer_is_named_too_large_not_unreadable(
    api_settings: Settings, keys: dict[str, str], db: Database, digits: int
) -> None:
    async with running(api_settings, keys) as api:
        body = b'{"queueName": "q", "name": "n", "data": {"n": ' + b"9" * digits + b"}}"
        r = await api.client.post("/jobs", content=body,
                                  headers={**api.auth(), "Content-Type": "application/json"})
        err = assert_error(r, 422, "validation_error")
        assert "64 bits" in err["message"], err
        assert "UTF-8" not in err["message"]
        negative = body.replace(b'"n": 9', b'"n": -9')
        r = await api.client.post("/jobs", content=negative,
                                  headers={**api.auth(), "Content-Type": "application/json"})
        assert "64 bits" in assert_error(r, 422, "validation_error")["message"]
    assert await count_rows(db) == 0


async def test_long_digit_runs_in_strings_and_fractions_are_fine(
    api_settings: Settings, keys: dict[str, str]
) -> None:
    async with running(api_settings, keys) as api:
        body = (b'{"queueName": "q", "name": "n", "data": {"s": "' + b"9" * 5000
                + b'", "f": 0.' + b"1" * 5000 + b"}}")
        r = await api.client.post("/jobs", content=body,
                                  headers={**api.auth(), "Content-Type": "application/json"})
        assert r.status_code == 201, r.text
        r = await api.client.post("/jobs", content=b"\xff\xfe not json",
                                  headers={**api.auth(), "Content-Type": "application/json"})
        assert "not UTF-8 JSON" in assert_error(r, 422, "validation_error")["message"]


@pytest.mark.parametrize("max_depth", [32, 60])
async def test_a_flow_as_deep_as_the_setting_allows_is_accepted(
    api_settings: Settings, keys: dict[str, str], max_depth: int
) -> None:
    """Each level of a flow is two levels of JSON (the job, its ``children``): the body's
    depth limit follows ``flow_max_depth``, and the deepest job may still carry data."""
    deep = api_settings.model_copy(update={"flow_max_depth": max_depth})
    async with running(deep, keys) as api:
        r = await api.client.post("/flows", json=chain(max_depth, data=nested(60)),
                                  headers=api.auth())
        assert r.status_code == 201, r.text
        assert r.json()["flow"]["progress"]["total"] == max_depth
        r = await api.client.post("/flows", json=chain(max_depth + 1), headers=api.auth())
        err = assert_error(r, 422, "validation_error")
        assert f"deeper than the limit of {max_depth} levels" in err["message"], err
