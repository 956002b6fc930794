"""The state-machine page draws exactly the transitions the contract allows."""

import re
from pathlib import Path

from jobtrack.domain.status import JOB_TRANSITIONS, RETRY_TRANSITIONS

DOC = Path(__file__).parents[2] / "docs" / "explanation" / "state-machine.md"


def test_every_edge_is_documented_and_nothing_more() -> None:
    text = DOC.read_text()
    block = text.split("```mermaid", 1)[1].split("```", 1)[0]
    drawn = set(re.findall(r"(\w+) -- \w+ --> (\w+)", block))
    code = {
        (a.value, b.value)
        for table in (JOB_TRANSITIONS, RETRY_TRANSITIONS)
        for a, targets in table.items()
        for b in targets
    }
    assert drawn == code
