"""The HTTP API: REST, Server-Sent Events, WebSocket, health, metrics and the dashboard.

The last stage for pulling clients: :mod:`~sonosd.api.site` assembles the resources, checks
tokens (:mod:`~sonosd.api.auth`) and serves the household's snapshot and views
(:mod:`~sonosd.api.resources`, :mod:`~sonosd.api.views`), the event streams
(:mod:`~sonosd.api.sse`, :mod:`~sonosd.api.ws`) and commands (:mod:`~sonosd.api.commands`);
it serves the web dashboard (:mod:`~sonosd.api.dashboard`, files in ``static/``) and proxies
album art (:mod:`~sonosd.api.art`).

May import: :mod:`sonosd.delivery`, :mod:`sonosd.control` (dispatch, and the command names),
:mod:`sonosd.gena.httpclient` (the quiet connection pool) and the foundation modules; never
:mod:`sonosd.sinks` (the two are siblings).
"""
