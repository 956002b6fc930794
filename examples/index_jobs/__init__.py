"""Seed 004: a repository-indexing service whose jobs users poll
(docs/examples/index_jobs.md)."""
