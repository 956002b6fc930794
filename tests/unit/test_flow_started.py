"""A flow is running from its first started job until it is terminal: an automatic retry
that leaves every job pending again does not take a started flow back to pending."""

from datetime import UTC, datetime, timedelta

from jobtrack.domain.flows import Flow, FlowProgress, plan_flow
from jobtrack.domain.status import FlowStatus, JobStatus

T0 = datetime(2026, 12, 2, tzinfo=UTC)


def _flow(total: int) -> Flow:
    return Flow(id="f", tenant="t", flowname="f", name="root", queue_name="q",
                root_job_id="r", status=FlowStatus.PENDING,
                progress=FlowProgress(total=total, pending=total),
                created_at=T0, updated_at=T0)


def test_a_started_flow_stays_running_when_its_only_running_job_is_retried() -> None:
    started = plan_flow(_flow(2), {JobStatus.PENDING: -1, JobStatus.RUNNING: 1}, T0).after
    assert started.status is FlowStatus.RUNNING and started.started_at == T0
    # the running job fails an attempt and waits for its next one: every job is pending
    retried = plan_flow(started, {JobStatus.RUNNING: -1, JobStatus.PENDING: 1},
                        T0 + timedelta(seconds=1))
    assert retried.after.progress.pending == 2
    assert retried.after.status is FlowStatus.RUNNING


def test_a_flow_no_job_of_which_started_is_pending() -> None:
    flow = plan_flow(_flow(2), {}, T0).after
    assert flow.status is FlowStatus.PENDING and flow.started_at is None
