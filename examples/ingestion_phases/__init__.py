"""Seeds 001/002: document ingestion in phases, with pause and resume of a phase
(docs/examples/ingestion_phases.md)."""
