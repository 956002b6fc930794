"""Runnable examples of jobtrack, one per seed system (docs/examples/); run them from the
repository root, e.g. ``python -m examples.ingestion_phases.run``."""
