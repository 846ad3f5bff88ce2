"""twistd plugin: ``twistd -n sonosd -c config.yaml``.

Importing this file imports nothing of sonosd, SoCo or YAML: twistd scans every plugin file
to build its ``--help`` listing, and the real work lives in ``sonosd.tap``.
"""

from twisted.application.service import ServiceMaker

sonosd = ServiceMaker(
    "sonosd",
    "sonosd.tap",
    "Sonos event bridge: GENA subscriptions to WebSocket, SSE, webhooks, MQTT and callbacks.",
    "sonosd",
)
