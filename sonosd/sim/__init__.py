"""The Sonos household simulator: speakers on loopback addresses that SoCo and sonosd can drive.

Start with ``twistd -n sonos-sim`` or embed ``sonosd.sim.service.HouseholdService``; see
``docs/simulator.md``.
"""
