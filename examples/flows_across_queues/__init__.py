"""Seed 003: a flow whose children run on two queues, one by a jobtrack worker and one by
an external worker over HTTP, followed live by a Socket.IO client
(docs/examples/flows_across_queues.md)."""
