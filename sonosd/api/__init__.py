"""The HTTP API: REST, Server-Sent Events, WebSocket, health and metrics on one site.

The last stage for pulling clients: :mod:`~sonosd.api.site` assembles the resources, checks
tokens (:mod:`~sonosd.api.auth`) and serves the household's snapshot and views
(:mod:`~sonosd.api.resources`, :mod:`~sonosd.api.views`), the event streams
(:mod:`~sonosd.api.sse`, :mod:`~sonosd.api.ws`) and commands (:mod:`~sonosd.api.commands`).

May import: :mod:`sonosd.delivery`, :mod:`sonosd.control` (dispatch only) and the foundation
modules; never :mod:`sonosd.sinks` (the two are siblings).
"""
