"""Seed 000: a legacy producer of job statuses and a TypeScript consumer of the canonical
ones (docs/examples/status_sync.md)."""
