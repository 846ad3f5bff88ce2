"""The household: every followed speaker kept evented, and what the daemon knows of them.

Data path: :mod:`~sonosd.household.supervisor` identifies each speaker and keeps one
:mod:`~sonosd.household.keepalive` supervisor per service (subscribe, renew, resubscribe,
poll when NOTIFYs do not arrive, resync by :mod:`~sonosd.household.resync` reads after a SEQ
gap); :mod:`~sonosd.household.discovery` finds speakers and notices reboots over SSDP.
Every event and read goes to :mod:`~sonosd.household.events`, which merges it into
:mod:`~sonosd.household.state` (per speaker, plus the :mod:`~sonosd.household.topology` of
groups) and publishes one JSON message to the hub (:mod:`sonosd.delivery`). A speaker is a
:mod:`~sonosd.household.speaker` handle: its SoCo object is built (and SoCo loaded) only when
a read through SoCo needs it.

May import: :mod:`sonosd.gena`, :mod:`sonosd.delivery`, and the foundation modules at the top
of the package (``config``, ``backoff``, ``blocking``, ``lazysoco``).
"""
