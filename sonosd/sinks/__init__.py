"""Push sinks: the hub's messages pushed to callbacks, webhooks, MQTT, the local stream, the log.

The last stage for pushed clients, beside :mod:`sonosd.api`. Each sink implements
``sonosd.delivery.hub.ISink`` and owns its buffering, backpressure and reconnects.

May import: :mod:`sonosd.delivery`, :mod:`sonosd.control` (dispatch, for MQTT commands) and
the foundation modules; never :mod:`sonosd.api` (the two are siblings).
"""
