"""A local, Opper-compatible `GET /v2/analytics/usage` server for demos and tests.

Standard library only, so it runs wherever the client's tests run. Start it with
`python -m localserver --port 0`; it prints `listening on http://HOST:PORT` when ready.
"""

from localserver.app import UsageServer, serve

__all__ = ["UsageServer", "serve"]
