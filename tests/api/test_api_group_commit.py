"""POST /jobs from many clients at once: their jobs share commits (group commit), and
each client is answered with its own job, stored."""

import asyncio

from jobtrack.api.state import state_of
from support.api import Api
from support.store import count_rows


async def test_concurrent_posts_share_commits(api: Api) -> None:
    state = state_of(api.app)
    before = state.inserter.batches
    answers = await asyncio.gather(*(
        api.client.post("/jobs", headers=api.auth(),
                        json={"queueName": "q", "name": "n", "data": {"i": i}})
        for i in range(40)))
    assert [r.status_code for r in answers] == [201] * 40
    assert [r.json()["job"]["data"]["i"] for r in answers] == list(range(40))
    assert await count_rows(state.db) == 40
    assert state.inserter.batches - before < 40 / 2, state.inserter.batches - before
