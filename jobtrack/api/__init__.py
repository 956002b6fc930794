"""The HTTP API (``docs/reference/http-api.md``): a FastAPI app built by
:func:`jobtrack.api.app.create_app`; nothing is created at import time."""
