"""What every test folder shares, written once and imported as ``support.<module>``
(``pythonpath = ["tests"]`` in pyproject.toml's pytest configuration):

- ``keys``: API keys (two tenants and an admin, a fresh tenant, one by URL) and the
  bearer header;
- ``cli``: the ``jobtrack`` command line, in this process or as a subprocess command,
  and a key from ``jobtrack keys create``;
- ``processes``: real subprocesses (``jobtrack serve``, ``jobtrack worker``, the API under
  ``uvicorn --factory``) on free ports, waited for and stopped cleanly;
- ``servers``: the API app in this process, behind an ASGI client or served by uvicorn
  on a free port;
- ``api``: the HTTP API test client (``Api``), a served API's address and keys
  (``Served``), and the error envelope's assertions;
- ``polling``: waiting until something holds (``wait_until``, ``eventually``, ``until``);
- ``sse``: Server-Sent Events readers;
- ``store``: jobs written and read through the real store and writer;
- ``events``: the stored event log and hub subscriptions;
- ``flows``: flows made, driven and recounted through the real store;
- ``webhooks``: a real HTTP webhook receiver;
- ``cluster``: a throwaway PostgreSQL cluster the fault tests stop, freeze and crash.
"""
