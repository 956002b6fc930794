"""R3: schemathesis over ``/openapi.json`` with auth, against the ASGI app on a SQLite
file database: for every documented operation (except the streams ``/events`` and
``/ws``), generated valid and invalid requests never get a 5xx, and every answer agrees
with the document (status code, content type, headers, body schema).

``test_api_fuzz.py`` sends seeded random bodies to the jobs and queues routes; this one
lets schemathesis derive the requests from the OpenAPI document itself, so the document
is tested too. ``JOBTRACK_R3_MAX_EXAMPLES`` sets the examples per operation and mode
(default 50), ``JOBTRACK_R3_SEED`` explores another sequence.
"""

import asyncio
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from jobtrack.api.app import create_app
from jobtrack.settings import Settings
from jobtrack.store.engine import Database
from support.api import running
from support.keys import bearer, make_keys

pytestmark = pytest.mark.slow

MAX_EXAMPLES = int(os.environ.get("JOBTRACK_R3_MAX_EXAMPLES", "50"))
#: a fixed sequence by default; set a seed to explore others
SEED = os.environ.get("JOBTRACK_R3_SEED")
#: only the paths matching this regular expression (while investigating a failure)
ONLY = os.environ.get("JOBTRACK_R3_ONLY")


@dataclass
class Target:
    """The app under test, keys for it, and ids of objects that exist in it."""

    app: FastAPI
    keys: dict[str, str]
    ids: dict[str, str]


async def _prepare(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """Keys, and a job (with phases), a flow and a webhook of tenant ``a``."""
    db = Database(settings.database_url)
    try:
        keys = await make_keys(db)
    finally:
        await db.dispose()
    async with running(settings, keys) as api:
        job = await api.create(phases=["one", "two"], maxAttempts=3)
        flow = await api.client.post("/flows", headers=api.auth(), json={
            "flowname": "r3", "name": "root", "queueName": "q",
            "children": [{"name": "child", "queueName": "q"}]})
        hook = await api.client.post("/webhooks", headers=api.auth(), json={
            "url": "http://127.0.0.1:9/r3", "events": ["all"]})
        assert flow.status_code == 201 and hook.status_code == 201, (flow.text, hook.text)
    ids = {"jobId": job["jobId"], "phase": "one", "queueName": "q",
           "flowId": flow.json()["flowId"], "rootJobId": flow.json()["flow"]["rootJobId"],
           "webhookId": hook.json()["webhookId"]}
    return keys, ids


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Target]:
    """An app on its own SQLite file (schemathesis runs its lifespan), keys and objects."""
    path = tmp_path_factory.mktemp("r3") / "jobtrack.db"
    shutil.copyfile(sqlite_template, path)
    settings = Settings(database_url=f"sqlite:///{path}", rate_limit_per_minute=10**9)
    keys, ids = asyncio.run(_prepare(settings))
    yield Target(create_app(settings), keys, ids)
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()


#: 422 answers to schema-valid input that JSON Schema cannot foresee. By the field the
#: error names: an opaque page ``cursor`` that no page issued; a webhook ``url`` refused
#: by its scheme or by where its host resolves to (DNS); a step or phase that is not one
#: of the job's own phases (``phase.name``: each job has its list). By the error type:
#: ``exclusive`` (``runAt`` and ``delaySeconds`` together: alternatives),
#: ``invalid_json`` (``data`` the database cannot store: integers past 64 bits),
#: ``blank`` (a name of whitespace only). A BullMQ option in ``opts`` that contradicts the
#: native field beside it (``details.conflictsWith``). Anything else refused must be
#: refused by the document too.
SEMANTIC = {"cursor", "url", "phase.name"}
SEMANTIC_TYPES = {"exclusive", "invalid_json", "blank"}


def _semantic(response: Any) -> bool:
    """A 422 for one of the reasons above."""
    if response.status_code != 422:
        return False
    details = response.json()["error"]["details"] or {}
    kinds = {e.get("type") for e in details.get("errors", ())}
    return (details.get("field") in SEMANTIC or "conflictsWith" in details
            or (bool(kinds) and kinds <= SEMANTIC_TYPES))


#: the status of every answer checked (for the printed figures)
STATUSES: Counter[int] = Counter()


def positive_data_accepted(ctx: Any, response: Any, case: schemathesis.Case[Any]) -> bool | None:
    """schemathesis's ``positive_data_acceptance``, but for the reasons above."""
    STATUSES[response.status_code] += 1
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if _semantic(response):
            return None
        raise


def _run(operation: Any, mode: GenerationMode, auth: dict[str, str],
         path: dict[str, str] | None = None) -> str | None:
    """Hypothesis over one operation in one mode; the failure report, or None."""

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=SEED is None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    def check(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers=auth, excluded_checks=[positive_data_acceptance],
                               additional_checks=[positive_data_accepted])

    if SEED is not None:
        check = seed(int(SEED))(check)
    try:
        check()
    except Unsatisfiable:  # no parameter to make invalid (negative mode)
        return None
    except (Exception, FailureGroup) as exc:
        where = " on existing objects" if path else ""
        return f"{operation.method.upper()} {operation.path} ({mode.value}{where}): " \
            + _describe(exc)
    return None


def _describe(exc: BaseException) -> str:
    """The exception and, for a group (schemathesis, hypothesis), its members."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, BaseExceptionGroup):
        text += "".join("\n  - " + _describe(sub).replace("\n", "\n    ")
                        for sub in exc.exceptions)
    return text


def _existing(operation: Any, ids: dict[str, str]) -> dict[str, str]:
    """Path parameters naming objects that exist (a job of the flow for flow routes)."""
    names = [p.name for p in operation.path_parameters]
    path = {name: ids[name] for name in names}
    if "flowId" in path and "jobId" in path:
        path["jobId"] = ids["rootJobId"]
    return path


@pytest.mark.timeout(300)
# schemathesis's negative strategies draw from ``random`` (hypothesis warns about it)
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
def test_openapi_contract(target: Target) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", target.app).exclude(
        path_regex=r"^/(events|ws)$")
    if ONLY:
        schema = schema.include(path_regex=ONLY)
    # NUL characters are refused (PostgreSQL cannot store them: test_api_hostile, R8);
    # the key is ours, so schemathesis does not generate Authorization headers itself
    schema.config.generation.update(allow_x00=False, with_security_parameters=False)
    auth = bearer(target.keys['a'])
    failures: list[str] = []
    STATUSES.clear()
    operations = runs = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        operations += 1
        # random ids first (mostly 404), then positive input on objects that exist
        passes: list[tuple[GenerationMode, dict[str, str] | None]] = [
            (GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        path = _existing(operation, target.ids)
        if path:
            passes.append((GenerationMode.POSITIVE, path))
        for mode, fixed in passes:
            runs += 1
            failure = _run(operation, mode, auth, fixed)
            if failure is not None:
                failures.append(failure)
    by_class = Counter(f"{status // 100}xx" for status in STATUSES.elements())
    print(f"\nR3: {operations} operations, {runs} runs (positive, negative, positive on "
          f"existing objects) of up to {MAX_EXAMPLES} examples: {STATUSES.total()} requests, "
          f"{dict(sorted(by_class.items()))}, {len(failures)} run(s) failing; statuses "
          f"{dict(sorted(STATUSES.items()))}")
    assert operations > 20 or ONLY
    assert not failures, "\n\n".join(failures)
