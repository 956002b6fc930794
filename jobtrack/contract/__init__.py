"""The status contract exported for other languages, generated from ``jobtrack.domain.status``."""

from jobtrack.contract.export import ARTIFACTS, check_current, render_all, write_all

__all__ = ["ARTIFACTS", "check_current", "render_all", "write_all"]
