"""The HTTP API (``shared/spec/api.md``): a FastAPI app built by
:func:`jobtrack.api.app.create_app`; nothing is created at import time."""
