"""Delivery: messages from the household to every client, once and in order.

Data path: :mod:`~sonosd.delivery.hub` stamps each message with its id, serialises it once,
keeps it in the replay ring and hands it to every sink; :mod:`~sonosd.delivery.filters`
selects what a client asked for. What the client channels share lives here too:
:mod:`~sonosd.delivery.channel` (a client joining at a snapshot or a replay point, resets,
the error object), :mod:`~sonosd.delivery.flow` (bounded per-client buffers),
:mod:`~sonosd.delivery.endpoint` (listening on an endpoint string),
:mod:`~sonosd.delivery.drain` (bounded waiting at shutdown) and
:mod:`~sonosd.delivery.metrics` (the Prometheus registry the rest registers on).
The channels themselves are :mod:`sonosd.api` and :mod:`sonosd.sinks`.

May import: nothing of sonosd but the foundation modules; it must not know the GENA side or
the household (messages are plain data).
"""
