"""The exported status contract (``contract/``): current, valid in its own language, and
in agreement with ``jobtrack.domain.status``.

The TypeScript checks need node and tsc (``npm install --prefix .tools typescript@5``).
Without them these tests skip locally and fail when ``CI`` is set.
"""

import ast
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import pytest
from graphql import GraphQLEnumType, GraphQLNonNull, GraphQLObjectType, build_schema
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from jobtrack.cli import app as cli_app
from jobtrack.contract import export
from jobtrack.contract.export import (
    GENERATED_BY,
    GRAPHQL,
    JSON_SCHEMA,
    TYPESCRIPT,
    check_current,
    render_all,
    write_all,
)
from jobtrack.domain.status import (
    GENERIC_ALIASES,
    REFUSED_VALUES,
    SOURCE_ALIASES,
    TERMINAL,
    JobStatus,
    PhaseStatus,
    Step,
    normalize_status,
)
from jobtrack.errors import UnknownStatus

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "contract"
TOOLS = REPO / ".tools"
JOB_VALUES = [s.value for s in JobStatus]
PHASE_VALUES = [s.value for s in PhaseStatus]


# --- files -------------------------------------------------------------------------


def test_checked_in_contract_is_current() -> None:
    assert check_current(CONTRACT) == [], "run `jobtrack contract export` and commit contract/"


def test_write_all_then_check_current(tmp_path: Path) -> None:
    target = tmp_path / "out"
    paths = write_all(target)
    assert sorted(p.name for p in paths) == sorted([GRAPHQL, JSON_SCHEMA, TYPESCRIPT])
    assert check_current(target) == []
    (target / GRAPHQL).write_text("# edited by hand\n")
    (target / TYPESCRIPT).unlink()
    assert check_current(target) == [GRAPHQL, TYPESCRIPT]


def test_line_ending_change_is_not_current(tmp_path: Path) -> None:
    write_all(tmp_path)
    path = tmp_path / JSON_SCHEMA
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert check_current(tmp_path) == [JSON_SCHEMA]


def test_rendering_is_deterministic_and_marked_generated() -> None:
    first, second = render_all(), render_all()
    assert first == second
    assert list(first) == sorted(first)
    for name, text in first.items():
        assert text.endswith("\n") and not text.endswith("\n\n"), name
        assert GENERATED_BY in "\n".join(text.splitlines()[:3]), name


def test_cli_writes_and_checks(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli_app, ["contract", "export", "--check", str(CONTRACT)]).exit_code == 0
    assert runner.invoke(cli_app, ["contract", "export", str(tmp_path)]).exit_code == 0
    assert runner.invoke(cli_app, ["contract", "export", "--check", str(tmp_path)]).exit_code == 0
    (tmp_path / TYPESCRIPT).write_text("// stale\n")
    stale = runner.invoke(cli_app, ["contract", "export", "--check", str(tmp_path)])
    assert stale.exit_code == 1
    assert TYPESCRIPT in stale.output


def test_generator_spells_no_status_by_hand() -> None:
    """Every value in the artifacts comes from the domain module, never a literal here."""
    spelled = {
        *JOB_VALUES, *PHASE_VALUES, *(s.value for s in Step), *GENERIC_ALIASES,
        *SOURCE_ALIASES, *(alias for table in SOURCE_ALIASES.values() for alias in table),
    }
    tree = ast.parse(Path(export.__file__).read_text(encoding="utf-8"))
    literals = {
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert literals & spelled == set()


# --- JSON Schema -------------------------------------------------------------------


@pytest.fixture(scope="module")
def json_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CONTRACT / JSON_SCHEMA).read_text(encoding="utf-8"))
    return schema


def test_json_schema_is_valid_draft_2020_12(json_schema: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(json_schema)
    assert json_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_json_schema_enums_equal_the_domain(json_schema: dict[str, Any]) -> None:
    defs = json_schema["$defs"]
    assert defs["JobStatusStatus"]["enum"] == JOB_VALUES
    assert defs["PhaseStatus"]["enum"] == PHASE_VALUES
    assert set(defs["TerminalJobStatus"]["enum"]) == {s.value for s in TERMINAL}
    assert defs["Step"]["type"] == "string"
    assert "enum" not in defs["Step"]  # a step may also be any phase name
    assert defs["Step"]["examples"] == [s.value for s in Step]


@pytest.mark.parametrize(
    ("instance", "valid"),
    [
        ({"status": "running", "step": "embedding"}, True),
        ({"status": "pending", "step": "waiting-children"}, True),
        ({"status": "done", "step": "queued"}, False),
        ({"status": "RUNNING", "step": "queued"}, False),
        ({"status": "pending"}, False),
        ({"status": "pending", "step": ""}, False),
    ],
)
def test_json_schema_validates_a_job_status(
    json_schema: dict[str, Any], instance: dict[str, str], valid: bool
) -> None:
    assert Draft202012Validator(json_schema).is_valid(instance) is valid


# --- GraphQL -----------------------------------------------------------------------


def test_graphql_sdl_parses_and_enums_equal_the_domain() -> None:
    sdl = (CONTRACT / GRAPHQL).read_text(encoding="utf-8")
    schema = build_schema(sdl + "\ntype Query { j: JobStatus }\n")
    job_status = schema.get_type("JobStatusStatus")
    phase_status = schema.get_type("PhaseStatus")
    assert isinstance(job_status, GraphQLEnumType)
    assert isinstance(phase_status, GraphQLEnumType)
    assert list(job_status.values) == JOB_VALUES
    assert list(phase_status.values) == PHASE_VALUES
    obj = schema.get_type("JobStatus")
    assert isinstance(obj, GraphQLObjectType)
    status, step = obj.fields["status"].type, obj.fields["step"].type
    assert isinstance(status, GraphQLNonNull) and status.of_type is job_status
    assert isinstance(step, GraphQLNonNull) and str(step.of_type) == "String"


def test_graphql_refuses_a_value_that_is_not_a_graphql_name() -> None:
    class Odd(StrEnum):
        WAITING_CHILDREN = "waiting-children"

    with pytest.raises(ValueError, match="waiting-children"):
        export._graphql_enum("Odd", Odd)


# --- TypeScript --------------------------------------------------------------------


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must check the TypeScript contract")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def tsc() -> list[str]:
    """How to run the TypeScript compiler: the local ``.tools`` install first."""
    if shutil.which("node") is None:
        _unavailable("node is not installed")
    npx = shutil.which("npx")
    if npx is not None and (TOOLS / "node_modules" / ".bin" / "tsc").exists():
        return [npx, "--no-install", "--prefix", str(TOOLS), "tsc"]
    found = shutil.which("tsc")
    if found is None:
        _unavailable("tsc not found; run `npm install --prefix .tools typescript@5`")
    return [found]


def _run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, f"{command[-1]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["--strict"], id="strict"),
        pytest.param(["--strict", "--noUncheckedIndexedAccess", "--exactOptionalPropertyTypes",
                      "--noImplicitReturns", "--noUnusedLocals", "--noUnusedParameters",
                      "--noPropertyAccessFromIndexSignature"], id="stricter"),
    ],
)
def test_typescript_compiles(tsc: list[str], flags: list[str], tmp_path: Path) -> None:
    _run([*tsc, *flags, "--noEmit", str(CONTRACT / TYPESCRIPT)], cwd=TOOLS)


def _normalize_cases() -> Iterator[tuple[str, str | None]]:
    """Every alias of every table in several spellings, and values that must be refused."""
    tables: list[tuple[str | None, Mapping[str, JobStatus]]] = [
        (None, GENERIC_ALIASES), *SOURCE_ALIASES.items()
    ]
    for source, table in tables:
        for alias in [*table, *REFUSED_VALUES.get(source or "", {})]:
            for spelling in (alias, alias.upper(), f"  {alias.title()} "):
                yield spelling, source
    for source in (None, *SOURCE_ALIASES):
        for odd in ("", "  ", "unknown", "stuck", "constructor", "__proto__", "toString",
                    "hasOwnProperty", "in progress"):
            yield odd, source
    for source in ("BullMQ", " Celery ", "sidekiq", "", "__proto__"):
        yield "active", source


def _python_answer(value: str, source: str | None) -> dict[str, str]:
    try:
        return {"ok": normalize_status(value, source).value}
    except UnknownStatus as err:
        return {"error": err.message}


_NODE_SCRIPT = """\
const contract = require(process.argv[2]);
const cases = JSON.parse(require("fs").readFileSync(process.argv[3], "utf8"));
const answers = cases.map(([value, source]) => {
  try {
    return {ok: contract.normalizeJobStatus(value, source === null ? undefined : source)};
  } catch (err) {
    if (!(err instanceof Error) || err.name !== "UnknownJobStatusError") throw err;
    return {error: err.message};
  }
});
const terminal = Object.values(contract.JOB_STATUS).filter(contract.isTerminalJobStatus);
process.stdout.write(JSON.stringify({
  answers,
  terminal,
  jobStatus: contract.JOB_STATUS,
  phaseStatus: contract.PHASE_STATUS,
}));
"""


def test_typescript_agrees_with_python(tsc: list[str], tmp_path: Path) -> None:
    _run([*tsc, "--strict", "--module", "commonjs", "--target", "es2020", "--outDir",
          str(tmp_path), str(CONTRACT / TYPESCRIPT)], cwd=TOOLS)
    cases = list(_normalize_cases())
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "check.js").write_text(_NODE_SCRIPT)
    out = json.loads(_run(["node", str(tmp_path / "check.js"),
                           str(tmp_path / "jobtrack-status.js"), str(tmp_path / "cases.json")],
                          cwd=tmp_path))
    for (value, source), answer in zip(cases, out["answers"], strict=True):
        assert answer == _python_answer(value, source), (value, source)
    assert out["terminal"] == [s.value for s in JobStatus if s in TERMINAL]
    assert out["jobStatus"] == {s.name: s.value for s in JobStatus}
    assert out["phaseStatus"] == {s.name: s.value for s in PhaseStatus}
