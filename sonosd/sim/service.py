# -*- test-case-name: tests.sim.test_tap,tests.sim.test_soco -*-
"""``HouseholdService``: a simulated household as a Twisted service (daemon, demo, tests).

Starting it makes every speaker listen on its own address (``base_address``, +1, +2, ...) and
port (and on the TLS port too for HTTPS-only speakers), gives each its GENA
``SubscriptionManager``, and starts the admin API, the activity generator and the SSDP
responder when configured. The speakers may form several households
(``sonosd.sim.neighbourhood``). Stopping it closes every port and connection and cancels every
timer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from sonosd.config import LOCAL_ADMIN, SimulateConfig, endpoint_is_local
from sonosd.sim.activity import ActivityGenerator
from sonosd.sim.admin import admin_site
from sonosd.sim.fetcher import Fetcher
from sonosd.sim.gena import DEFAULT_MODERATION
from sonosd.sim.household import Household, ManagerFactory, SubscriptionManagerLike
from sonosd.sim.neighbourhood import Neighbourhood
from sonosd.sim.presence import SpeakerPresence
from sonosd.sim.site import speaker_site
from sonosd.sim.ssdp import SsdpResponder

log = Logger()


def default_manager_factory(
    reactor: Any,
    uid: str,
    address: str,
    full_state: Any,
    server_header: str,
    *,
    moderation: float = DEFAULT_MODERATION,
) -> SubscriptionManagerLike:
    """A real ``sonosd.sim.gena.SubscriptionManager``."""
    from sonosd.sim.gena import SubscriptionManager

    manager: SubscriptionManagerLike = SubscriptionManager(
        reactor, uid, address, full_state, server_header, moderation=moderation
    )
    return manager


class HouseholdService(Service):
    """A simulated household; ``.household`` is the model (the first household when there
    are several: ``.households``, ``.neighbourhood``), ``.addresses`` where it listens.

    :param reactor: provides ``IReactorTCP``, ``IReactorSSL`` and ``IReactorTime``.
    :param config: speakers, base address, port, rooms, activity rate, admin endpoint, pair,
        households, home theatre, modes (``SimulateConfig``).
    :param seed: seeds identities and behaviour; by default derived from ``base_address`` so
        that a household restarted on the same addresses keeps its UIDs.
    :param models: model numbers per speaker (``S18``, ``S14`` ...), overriding
        ``config.models``; the rest are ``S18``.
    :param manager_factory: builds each speaker's GENA manager (tests pass fakes); by
        default a real one with ``config.moderation``.
    :param transition_delay: seconds spent in ``TRANSITIONING`` before ``PLAYING``.
    :param ssdp_port: when set, answer SSDP searches on this port of the SSDP group, joined on
        127.0.0.1 (1900 for SoCo's ``discover()``; 0 takes a free port, see ``ssdp.port``).
    """

    def __init__(
        self,
        reactor: Any,
        config: SimulateConfig,
        *,
        seed: int | None = None,
        models: Sequence[str] = (),
        manager_factory: ManagerFactory | None = None,
        transition_delay: float = 0.1,
        ssdp_port: int | None = None,
    ) -> None:
        self._reactor = reactor
        self.config = config
        if seed is None:
            seed = sum(ord(c) * 31**i for i, c in enumerate(config.base_address)) % 2**32
        self.seed = seed
        self.neighbourhood = Neighbourhood.build(
            reactor, config, seed=seed, models=models, transition_delay=transition_delay
        )
        self.households: list[Household] = self.neighbourhood.households
        self.household = self.households[0]
        if manager_factory is None:
            manager_factory = functools.partial(
                default_manager_factory, moderation=config.moderation
            )
        #: Fetches what the speakers are told to play (``sonosd.sim.fetcher``).
        self.fetcher = Fetcher(reactor)
        for household in self.households:
            household.fetcher = self.fetcher.probe
            for speaker in household.speakers:
                speaker.transport.prepare = self.fetcher.probe
        self._manager_factory = manager_factory
        self.activity = ActivityGenerator(reactor, self.neighbourhood, config.activity, seed + 1)
        self.presences: list[SpeakerPresence] = []
        if config.admin and not endpoint_is_local(config.admin):
            # The YAML and the command line check it; the embedding API too.
            raise ValueError(f"admin: {LOCAL_ADMIN}, got {config.admin!r}")
        self.admin_port: IListeningPort | None = None
        self.admin_ready: Deferred[IListeningPort] | None = None
        self.ssdp: SsdpResponder | None = None
        if ssdp_port is None:
            ssdp_port = config.ssdp_port
        if ssdp_port is not None:
            self.ssdp = SsdpResponder(reactor, self.households, port=ssdp_port)

    @property
    def addresses(self) -> list[str]:
        """Each speaker's current address, in speaker order (every household)."""
        return [speaker.address for speaker in self.neighbourhood.speakers]

    @property
    def admin_url(self) -> str | None:
        """``http://host:port`` of the admin API once it listens."""
        if self.admin_port is None:
            return None
        host = self.admin_port.getHost()
        return f"http://{host.host}:{host.port}"  # type: ignore[attr-defined]

    def startService(self) -> None:
        """Listen on every speaker's address; start the admin API and the activity."""
        super().startService()
        try:
            for speaker in self.neighbourhood.speakers:
                speaker.manager = self._manager_factory(
                    self._reactor,
                    speaker.uid,
                    speaker.address,
                    speaker.full_state,
                    speaker.model.server_header,
                )
                presence = SpeakerPresence(
                    self._reactor,
                    speaker_site(speaker),
                    speaker.address,
                    speaker.port,
                    tls_port=self.config.tls_port,
                )
                presence.secured = speaker.https_only
                presence.listen()
                speaker.network = presence
                self.presences.append(presence)
            if self.ssdp is not None:
                self.ssdp.startService()
        except Exception:
            log.failure("the simulated household could not start")
            self._teardown()
            raise
        for household in self.households:
            log.info(
                "simulated household {household} with {count} speakers on {first}..{last}:{port}",
                household=household.household_id,
                count=len(household.speakers),
                first=household.speakers[0].address,
                last=household.speakers[-1].address,
                port=self.config.port,
            )
        if self.config.admin:
            endpoint = serverFromString(self._reactor, self.config.admin)
            self.admin_ready = endpoint.listen(admin_site(self.neighbourhood, self.activity))
            self.admin_ready.addCallbacks(self._admin_listening, self._admin_failed)
        self.activity.start()

    def _admin_listening(self, port: IListeningPort) -> IListeningPort:
        self.admin_port = port
        log.info("simulator admin API on {url}", url=self.admin_url)
        return port

    def _admin_failed(self, failure: Any) -> Any:
        log.failure("the simulator admin API could not listen", failure)
        return failure

    def stopService(self) -> Deferred[Any]:
        """Close every port and connection, stop every manager and timer."""
        super().stopService()
        return self._teardown()

    def _teardown(self) -> Deferred[Any]:
        self.activity.stop()
        waits: list[Deferred[Any]] = []
        if self.ssdp is not None and self.ssdp.running:
            waits.append(self.ssdp.stopService())
        waits.extend(presence.stop() for presence in self.presences)
        self.presences = []
        for speaker in self.neighbourhood.speakers:
            if speaker.manager is not None:
                stopped = speaker.manager.stop()
                if isinstance(stopped, Deferred):
                    waits.append(stopped)
            speaker.network = None
        self.neighbourhood.shutdown()
        waits.append(self.fetcher.close())
        if self.admin_port is not None:
            stopped_admin = self.admin_port.stopListening()
            if stopped_admin is not None:
                waits.append(stopped_admin)
            self.admin_port = None
        return DeferredList(waits, consumeErrors=True)
