"""Runnable examples; ``jobtrack demo`` uses :mod:`jobtrack.examples.ingestion`."""
