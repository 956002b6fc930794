"""The dashboard served at ``GET /``: one static page and the router factory that serves it
(:func:`jobtrack.dashboard.page.router`, mounted by :func:`jobtrack.api.app.create_app`).

It sits in the layer just below the interfaces (``jobtrack.api`` mounts it) and reads
nothing but the status contract: the page itself talks to the HTTP API from the browser.
"""
