"""The one job specification: a submission plus its task's declaration give the job's
fields (defaults, precedence, checks), whatever interface the submission came from."""

from datetime import UTC, datetime, timedelta

import pytest

from jobtrack.domain.spec import (
    DEFAULT_QUEUE,
    Submission,
    SubmissionNode,
    TaskDeclaration,
    pick,
    resolve,
    resolve_tree,
    submission,
)
from jobtrack.errors import ValidationFailed

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
INGEST = TaskDeclaration(name="ingest", queue="ingest", phases=("load", "index"),
                         max_attempts=3, parameters=("document_id", "pages", "flowId"),
                         required=("document_id", "flowId"))


def test_the_submission_wins_then_the_declaration_then_the_defaults() -> None:
    declared = resolve(Submission("ingest", {"document_id": "d"}), INGEST, now=NOW,
                       default_max_attempts=2)
    assert (declared.queue_name, declared.phases, declared.max_attempts, declared.priority,
            declared.run_at) == ("ingest", ("load", "index"), 3, 0, None)
    given = resolve(Submission("ingest", {"document_id": "d"}, queue="bulk", max_attempts=7,
                               priority=4, phases=("load", "index"), delay=30,
                               run_at=NOW + timedelta(days=1)),
                    INGEST, now=NOW, default_max_attempts=2)
    assert (given.queue_name, given.max_attempts, given.priority, given.run_at) == (
        "bulk", 7, 4, NOW + timedelta(seconds=30))  # a delay wins over runAt
    bare = resolve(Submission("other", {"x": 1}, phases=()), None, now=NOW,
                   default_max_attempts=2)
    assert (bare.queue_name, bare.phases, bare.max_attempts, bare.data) == (
        DEFAULT_QUEUE, (), 2, {"x": 1})  # undeclared: taken as sent


def test_data_and_phases_are_checked_against_the_declaration() -> None:
    def refused(sub: Submission, where: str = "") -> dict[str, object]:
        with pytest.raises(ValidationFailed) as exc:
            resolve(sub, INGEST, now=NOW, default_max_attempts=1, where=where)
        assert exc.value.details is not None
        return dict(exc.value.details)

    assert refused(Submission("ingest", {"documentId": "d"}))["field"] == "data.documentId"
    assert refused(Submission("ingest", {"pages": 1}))["field"] == "data.document_id"
    assert refused(Submission("ingest", {"document_id": "d"}, phases=("index", "load")),
                   where="children[2].")["field"] == "children[2].phases"
    assert refused(Submission("ingest", {"document_id": "d"}, phases=("a", "a")))[
        "field"] == "phases"
    # flowId is jobtrack's to give: never required from, nor refused in, a submission
    ok = resolve(Submission("ingest", {"document_id": "d", "flowId": "f"}), INGEST, now=NOW,
                 default_max_attempts=1)
    assert ok.data == {"document_id": "d", "flowId": "f"}
    anything = TaskDeclaration(name="loose", accepts_any=True, phases=())
    assert resolve(Submission("loose", {"any": 1}, phases=("x",)), anything, now=NOW,
                   default_max_attempts=1).phases == ("x",)  # declares none: takes any


def test_a_declaration_is_picked_by_name_and_queue() -> None:
    gpu = TaskDeclaration(name="embed", queue="gpu")
    cpu = TaskDeclaration(name="embed", queue="cpu")
    assert pick("embed", "gpu", [cpu, gpu]) is gpu
    assert pick("embed", "other", [cpu, gpu]) is None
    assert pick("embed", None, [gpu]) is gpu
    assert pick("embed", None, []) is None
    with pytest.raises(ValidationFailed, match="give the queue"):
        pick("embed", None, [cpu, gpu])


def test_python_options_and_trees_resolve_the_same_way() -> None:
    with pytest.raises(ValidationFailed, match="_colour"):
        submission("ingest", {}, {"colour": "red"})
    sub = submission("ingest", {"document_id": "d"}, {"priority": 3, "delay": timedelta(1)})
    assert (sub.priority, sub.delay) == (3, timedelta(1))
    tree = SubmissionNode(Submission("publish", {}), [
        SubmissionNode(Submission("ingest", {"document_id": "a"})),
        SubmissionNode(Submission("ingest", {"document": "b"}))])
    with pytest.raises(ValidationFailed) as exc:
        resolve_tree(tree, lambda s: INGEST if s.name == "ingest" else None, now=NOW,
                     default_max_attempts=1)
    assert exc.value.details == {"field": "children[1].data.document",
                                 "accepted": list(INGEST.parameters)}
    tree = SubmissionNode(Submission("publish", {}), tree.children[:1])
    root = resolve_tree(tree, lambda s: INGEST if s.name == "ingest" else None, now=NOW,
                        default_max_attempts=1)
    [child] = root.children
    assert (root.queue_name, root.max_attempts, child.queue_name, tuple(child.phases),
            child.max_attempts) == (DEFAULT_QUEUE, 1, "ingest", ("load", "index"), 3)
