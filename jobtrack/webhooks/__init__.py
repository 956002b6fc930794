"""Webhooks: tenants subscribe a URL to kinds of events; every matching event is stored
as a delivery first, then POSTed, signed, and retried with backoff until it is accepted.

- ``signing``: the HMAC signature and the delivery headers
- ``urls``: which URLs may be called (schemes, link-local and cloud metadata refused)
- ``registry``: create, list, read and delete subscriptions (the API and CLI call it)
- ``dispatcher``: the event log -> delivery rows, behind a stored cursor
- ``delivery``: one attempt over HTTP, and the loop that claims and attempts deliveries
- ``runner``: both loops together, inside the API process or on their own
"""
