"""The Sonos household simulator: speakers on loopback addresses that SoCo and sonosd can drive.

Start with ``twistd -n sonos-sim`` or embed ``sonosd.sim.service.HouseholdService``; see
``docs/simulator.md``.

May import: nothing of sonosd outside ``sonosd.sim`` but the configuration
(``sonosd.config.SimulateConfig``, shared with the daemon's ``simulate:`` section): the
simulator stands for the speakers and must not share the daemon's code.
"""
