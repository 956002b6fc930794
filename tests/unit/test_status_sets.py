"""Sets of statuses the rest of the code shares, defined once in the status contract."""

from jobtrack.domain.status import FLOW_TERMINAL, TERMINAL, FlowStatus


def test_a_flow_is_finished_in_the_statuses_a_job_is() -> None:
    assert {FlowStatus(s.value) for s in TERMINAL} == FLOW_TERMINAL
    assert FlowStatus.PENDING not in FLOW_TERMINAL and FlowStatus.RUNNING not in FLOW_TERMINAL
