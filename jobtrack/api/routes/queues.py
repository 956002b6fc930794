"""``/queues``: the operator's overview, and claiming jobs for workers that pull over HTTP.

An external worker (any language) claims with ``POST /queues/{queueName}/claim``; each
job it gets is ``running`` under a lease held by its key. It reports with
``PATCH /jobs/{jobId}``: every such report renews the lease (the heartbeat) and answers
the job, so the worker also learns of a cancel (``cancelRequested``) or a paused phase.
A job whose lease runs out is treated as stalled by the reaper.
"""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Body
from starlette.responses import Response

from jobtrack.api.deps import CallerDep, StateDep
from jobtrack.api.params import QueueName, holder_id, utcnow
from jobtrack.api.responses import AUTHENTICATED, errors, json_response
from jobtrack.api.schemas import ClaimRequest, ClaimResult, QueueInfo
from jobtrack.domain.wire import job_to_wire
from jobtrack.store.claim import claim
from jobtrack.store.queues import queue_overview

router = APIRouter(tags=["queues"])


@router.get(
    "/queues", response_model=None,
    responses={200: {"model": list[QueueInfo], "description": "every queue with jobs"},
               **errors(401, 429, 503)},
)
async def list_queues(caller: CallerDep, state: StateDep) -> Response:
    """Jobs per status, stuck jobs and the oldest wait of each queue of the caller's
    tenant (every tenant's, merged by queue name, for an admin key)."""
    now = utcnow()
    async with state.db.read() as conn:
        stats = await queue_overview(conn, tenant=caller.scope, now=now,
                                     stuck_after=state.settings.stuck_after_seconds)
    return json_response([
        {
            "queueName": s.queue_name,
            "counts": {status.value: n for status, n in s.counts.items()},
            "stuck": s.stuck,
            "steps": {"delayed": s.delayed, "waitingChildren": s.waiting_children,
                      "paused": s.paused, "stuck": s.stuck},
            "oldestPendingAge": None if s.oldest_pending_at is None
            else round(max(0.0, (now - s.oldest_pending_at).total_seconds()), 3),
        }
        for s in stats
    ])


@router.post(
    "/queues/{queueName}/claim", response_model=None,
    responses={200: {"model": ClaimResult, "description": "the claimed jobs (maybe none)"},
               **errors(*AUTHENTICATED)},
)
async def claim_jobs(
    queue_name: QueueName,
    caller: CallerDep,
    state: StateDep,
    body: Annotated[ClaimRequest | None, Body()] = None,
) -> Response:
    """Claim up to ``limit`` runnable jobs of the queue (highest priority, then oldest);
    each becomes ``running`` under a lease of ``leaseSeconds`` held by the caller's key."""
    request = body or ClaimRequest.model_validate({})
    term = request.lease_seconds or state.settings.lease_seconds
    now = utcnow()
    async with state.db.write() as conn:
        jobs = await claim(
            conn, queues=[queue_name], worker_id=holder_id(caller.key, term),
            limit=request.limit, now=now, lease_until=now + timedelta(seconds=term),
            names=request.names, tenant=caller.scope, actor=caller.actor,
        )
    return json_response({"items": [job_to_wire(j) for j in jobs]})
