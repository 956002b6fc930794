"""The wire form of progress: one number form, whatever the numbers were stored as."""

import orjson
import pytest

from jobtrack.domain.records import Phase, Progress
from jobtrack.domain.status import PhaseStatus
from jobtrack.domain.wire import phase_to_wire, progress_to_wire


@pytest.mark.parametrize(("progress", "text"), [
    # as reported (ints) and as read back from a float column: the same JSON
    (Progress(6, 10), b'{"done":6,"total":10,"percentage":60}'),
    (Progress(6.0, 10.0), b'{"done":6,"total":10,"percentage":60}'),
    (Progress(1, 3), b'{"done":1,"total":3,"percentage":33.33}'),
    (Progress(1.5, None), b'{"done":1.5,"total":null,"percentage":null}'),
    (Progress(40.0, 100.0), b'{"done":40,"total":100,"percentage":40}'),
])
def test_progress_numbers_are_integers_where_integral(progress: Progress, text: bytes) -> None:
    assert orjson.dumps(progress_to_wire(progress)) == text


def test_phase_progress_has_the_same_form() -> None:
    phase = Phase("load", PhaseStatus.RUNNING, done=1.0, total=4.0)
    assert phase_to_wire(phase)["progress"] == {"done": 1, "total": 4, "percentage": 25}
    assert type(phase_to_wire(phase)["progress"]["done"]) is int
