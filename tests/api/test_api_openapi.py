"""The OpenAPI document is complete (every jobs/queues path of the API reference, error
answers with ErrorBody, status enums from the contract, bearer security) and agrees with
the wire."""

from typing import Any

from jobtrack.api.schemas import ErrorBody, JobPublic
from jobtrack.api.state import state_of
from jobtrack.domain.status import JobStatus, PhaseStatus
from support.api import Api

#: every jobs and queues route of docs/reference/http-api.md
SPEC_ROUTES = {
    ("post", "/jobs"), ("get", "/jobs/{jobId}"), ("get", "/jobs"), ("patch", "/jobs/{jobId}"),
    ("post", "/jobs/{jobId}/cancel"), ("post", "/jobs/{jobId}/pause"),
    ("post", "/jobs/{jobId}/resume"), ("post", "/jobs/{jobId}/phases/{phase}/pause"),
    ("post", "/jobs/{jobId}/phases/{phase}/resume"), ("post", "/jobs/{jobId}/retry"),
    ("get", "/jobs/{jobId}/history"), ("post", "/queues/{queueName}/claim"),
    ("get", "/queues"), ("get", "/healthz"), ("get", "/readyz"),
}


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


async def test_every_spec_route_is_documented_with_its_errors(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented >= SPEC_ROUTES
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for method, path in SPEC_ROUTES:
        op = doc["paths"][path][method]
        responses = op["responses"]
        error_codes = {c for c in responses if c.startswith(("4", "5"))}
        if path in ("/healthz", "/readyz"):
            assert "security" not in op
            continue
        assert op["security"] == [{"HTTPBearer": []}]
        assert {"401", "429", "503"} <= error_codes, (method, path)
        if "{jobId}" in path:
            assert "404" in error_codes
        if method in ("post", "patch"):
            assert "413" in error_codes
        for code in error_codes:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)
        assert "X-RateLimit-Remaining" in responses[next(iter(
            c for c in responses if c.startswith("2")))]["headers"]
        assert "Retry-After" in responses["429"]["headers"]
    patch = doc["paths"]["/jobs/{jobId}"]["patch"]["responses"]
    assert "409" in patch
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # our envelope only


async def test_status_enums_come_from_the_contract(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert schemas["JobStatus"]["enum"] == [s.value for s in JobStatus]
    assert schemas["PhaseStatus"]["enum"] == [s.value for s in PhaseStatus]
    job = schemas["JobPublic"]["properties"]
    assert job["status"] == {"$ref": "#/components/schemas/JobStatus"}
    assert set(resolve(doc, schemas["QueueCounts"])["properties"]) == {s.value for s in JobStatus}
    params = doc["paths"]["/jobs"]["get"]["parameters"]
    status = next(p for p in params if p["name"] == "status")
    assert {"$ref": "#/components/schemas/JobStatus"} in status["schema"]["anyOf"]
    body = resolve(doc, doc["paths"]["/jobs/{jobId}"]["patch"]["requestBody"]["content"][
        "application/json"]["schema"])
    assert {"$ref": "#/components/schemas/JobStatus"} in body["properties"]["status"]["anyOf"]
    # every field of the wire job is documented, camelCase
    assert set(job) == {"jobId", "queueName", "name", "status", "step", "data", "result",
                        "error", "stats", "progress", "phases", "flowId", "parentJobId",
                        "attempt", "maxAttempts", "priority", "runAt", "cancelRequested",
                        "createdAt", "updatedAt", "startedAt", "completedAt"}


async def test_wire_jobs_validate_against_the_documented_schema(api: Api) -> None:
    """job_to_wire and JobPublic cannot drift: every shape a job takes validates."""
    plain = await api.create(data={"x": [1, {"y": None}]})
    phased = await api.create(phases=["a", "b"], priority=3, maxAttempts=2, delaySeconds=0)
    await api.claim(limit=10)
    await api.client.patch(f"/jobs/{phased['jobId']}", headers=api.auth(), json={
        "phase": {"name": "a", "progress": {"done": 1, "total": 3}}, "progress": 10,
        "stats": {"n": 1}})
    await api.client.patch(f"/jobs/{plain['jobId']}", headers=api.auth(), json={
        "status": "failed", "error": {"message": "boom", "type": "E", "code": "c"}})
    await api.client.post(f"/jobs/{phased['jobId']}/cancel", headers=api.auth())
    listed = (await api.client.get("/jobs", headers=api.auth())).json()["items"]
    assert len(listed) == 2
    for wire in listed:
        model = JobPublic.model_validate(wire)
        assert model.model_dump(mode="json", by_alias=True).keys() == wire.keys()
    error = (await api.client.get("/jobs/nope", headers=api.auth())).json()
    ErrorBody.model_validate(error)


async def test_the_document_says_what_the_server_refuses(api: Api) -> None:
    """Found by schemathesis (docs/targets.md R3, test_api_schemathesis): schema-valid input
    the server refused. A page ``limit`` goes up to the configured page size; phase names
    are unique; an integer may be written ``3.0`` (JSON Schema's integer)."""
    doc = (await api.client.get("/openapi.json")).json()
    page_size = state_of(api.app).settings.max_page_size
    for path in ("/jobs", "/flows", "/webhooks/{webhookId}/deliveries"):
        limit = next(p for p in doc["paths"][path]["get"]["parameters"]
                     if p["name"] == "limit")
        assert limit["schema"]["maximum"] == page_size, path
    phases = doc["components"]["schemas"]["JobCreate"]["properties"]["phases"]["anyOf"][0]
    assert phases["uniqueItems"] is True
    r = await api.client.post("/jobs", headers=api.auth(), json={
        "queueName": "q", "name": "n", "maxAttempts": 3.0, "priority": -2.0})
    assert r.status_code == 201, r.text
    assert (r.json()["job"]["maxAttempts"], r.json()["job"]["priority"]) == (3, -2)
