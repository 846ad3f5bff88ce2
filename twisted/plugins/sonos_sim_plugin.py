"""twistd plugin: ``twistd -n sonos-sim --speakers 3``, a simulated Sonos household.

Importing this file imports nothing of sonosd; the simulator lives in ``sonosd.sim.tap``.
"""

from twisted.application.service import ServiceMaker

sonos_sim = ServiceMaker(
    "sonos-sim",
    "sonosd.sim.tap",
    "A simulated Sonos household on loopback addresses (device descriptions, SOAP, GENA).",
    "sonos-sim",
)
