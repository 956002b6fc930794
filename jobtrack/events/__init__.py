"""Live event fan-out: every process reads the stored event log (the truth) in id order,
without skipping a transaction that commits late, and hands each event to its own
in-process subscribers (SSE streams, WebSocket rooms, the webhook dispatcher).

- ``filters``: what a subscriber wants (tenant, job, flow, queue; WebSocket rooms)
- ``ordered``: the gap-safe reader of the event log
- ``subscription``: a bounded per-subscriber buffer
- ``hub``: the per-process ``EventHub``
- ``follow``: replay after ``Last-Event-ID``, then live, without duplicates or gaps
"""
