# -*- test-case-name: tests.sim.test_household -*-
"""The simulated Sonos household: speakers, their state, groups and the faults they can show.

One ``Household`` holds every ``Speaker``; its topology (who plays with whom, stereo pairs,
BootSeq, addresses) is the one ZoneGroupState all speakers report. Every change goes through
methods here, which then *publish*: each speaker compares the evented variables of the touched
services with what it last evented and hands what a real speaker would event (the changed
variables, and what ``sonosd.sim.eventrules`` says goes with them) to its GENA
``SubscriptionManager`` (``manager.notify(service, changed)``). SOAP actions, the admin API,
the activity generator and Python code all change state the same way, so all of them are seen
by subscribers alike.

The network side (listening on the speaker's address) is a ``NetworkPresence`` set by the
service that runs the household; faults (reboot, offline, address change) drive it. An
optional ``Announcer`` (the SSDP responder) is told when a speaker comes back (``alive``: after a
reboot, online again, new address) and when it goes offline (``byebye``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from sonosd.sim import catalog, eventrules, musicservices, variables
from sonosd.sim.addresses import loopback_range
from sonosd.sim.alarms import AlarmList
from sonosd.sim.battery import Battery
from sonosd.sim.description import offered_services
from sonosd.sim.didl import BROADCAST, Track
from sonosd.sim.favorites import Favorite, default_favorites, station_favorite, track_favorite
from sonosd.sim.library import Library
from sonosd.sim.models import DEFAULT_MODEL, MODELS, Identity, Model, household_id
from sonosd.sim.modes import HouseholdModes
from sonosd.sim.playlists import SavedQueues
from sonosd.sim.ramp import Ramp
from sonosd.sim.soap import SoapFaults, UPnPError
from sonosd.sim.speakerstate import Alarm, Group, Rendering
from sonosd.sim.transport import Prepare, Transport
from sonosd.sim.zonegroups import MemberView, VanishedView, ZoneGroupView, zone_group_state

log = Logger()

EventValue = str | Mapping[str, str]
FullState = Callable[[str], Mapping[str, EventValue]]

#: Models of a home-theatre set when the configured ones do not fit: an Arc, a Sub, two Ones.
HT_SOUNDBAR, HT_SUB, HT_SURROUND = "S19", "Sub", "S18"

DEFAULT_ROOMS = (
    "Living Room",
    "Kitchen",
    "Bedroom",
    "Office",
    "Bathroom",
    "Dining Room",
    "Hallway",
    "Garage",
    "Patio",
    "Study",
)


class SubscriptionManagerLike(Protocol):
    """What the household needs of ``sonosd.sim.gena.SubscriptionManager`` (docs/design.md)."""

    address: str
    server_header: str

    def render_subscribe(self, request: IRequest, service: str) -> bytes | int:
        """Answer a SUBSCRIBE (new or renewal) on ``service``'s event URL."""

    def render_unsubscribe(self, request: IRequest, service: str) -> bytes | int:
        """Answer an UNSUBSCRIBE on ``service``'s event URL."""

    def notify(self, service: str, changed: Mapping[str, EventValue]) -> object:
        """Send one NOTIFY with ``changed`` to every subscription of ``service``."""

    def forget_all(self) -> object:
        """Drop every subscription (reboot)."""

    def unsubscribe_all(self) -> object:
        """Drop every subscription, keeping the SID counter (UPnP switched off)."""

    def pause(self) -> object:
        """Stop sending NOTIFYs (offline)."""

    def resume(self) -> object:
        """Send NOTIFYs again."""

    def stop(self) -> object:
        """Stop all work (shutdown)."""


ManagerFactory = Callable[[Any, str, str, FullState, str], SubscriptionManagerLike]


class NetworkPresence(Protocol):
    """A speaker's presence on the network (``sonosd.sim.presence.SpeakerPresence``)."""

    @property
    def mode(self) -> str:
        """``up``, ``refuse`` (nothing listens) or ``hang`` (accepts, never answers)."""

    def go_down(self, mode: str) -> Deferred[None]:
        """Stop answering: ``refuse`` connections or ``hang`` them; cut open connections."""

    def come_up(self) -> Deferred[None]:
        """Answer again on the current address."""

    def move(self, address: str) -> Deferred[None]:
        """Listen on ``address`` instead."""

    def secure(self, on: bool) -> Deferred[None]:
        """Serve TLS on port 1443 too (``on``), or stop."""


class Announcer(Protocol):
    """Announces speakers on the network (``sonosd.sim.ssdp.SsdpResponder``: SSDP NOTIFYs)."""

    def alive(self, speaker: Speaker) -> None:
        """``speaker`` is (back) on the network, maybe with a new BootSeq or address."""

    def byebye(self, speaker: Speaker, reason: str) -> None:
        """``speaker`` leaves the network for ``reason``."""


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


class Speaker:
    """One simulated speaker: identity, state, and the faults it can be told to show."""

    def __init__(
        self,
        household: Household,
        index: int,
        identity: Identity,
        model: Model,
        name: str,
        address: str,
        port: int,
        boot_seq: int,
    ) -> None:
        self.household = household
        self.index = index
        self.identity = identity
        self.model = model
        self.name = name
        self.address = address
        self.port = port
        self.boot_seq = boot_seq
        self.offered = offered_services(model)
        self.rendering = Rendering()
        self.led_on = True
        self.buttons_locked = False
        self.invisible = False
        self.pair_partner: str | None = None
        self.channel_map = ""
        self.satellites: list[str] = []
        """On a home-theatre soundbar: its sub and surrounds (invisible, not group members)."""
        self.ht_primary: str | None = None
        """On a home-theatre satellite: the soundbar it is bonded to."""
        self.ht_channel = ""
        """On a satellite: ``SW``, ``LR`` or ``RR``."""
        self.own_name = ""
        """On a satellite: the room name it had before it was bonded (and takes back when
        it is removed from the home theatre)."""
        self.https_only = False
        """SOAP over HTTP answers 403; SOAP over TLS (port 1443) works."""
        self.art_redirect: str | None = None
        """A fault (a compromised or broken device; real speakers serve the image): album
        art requests (``/getaa``) answer ``302 Found`` to this URL instead."""
        self.art_type = "image/png"
        """The ``Content-Type`` album art is served with (the bytes stay a PNG): a fault for
        another type (``image/svg+xml``, ``text/html``), or one of the other raster types
        real speakers relay from music services (``image/jpeg``)."""
        self.battery: Battery | None = (
            Battery(level=household.rng.randint(40, 100)) if model.portable else None
        )
        self.transport = Transport(
            household.clock,
            identity.uid,
            household.rng,
            self._transport_changed,
            household.transition_delay,
            household.fetcher,
        )
        self.ramp = Ramp(household.clock, self.set_volume)
        #: ``ContainerUpdateIDs`` of the last content change this speaker evented.
        self.container_update_ids: str | None = None
        self.manager: SubscriptionManagerLike | None = None
        #: The ZoneGroupState this speaker shows while a change settles (``topology_settle``);
        #: ``None``: the household's.
        self.zgs_view: str | None = None
        #: The latest of the household's ZoneGroupState versions this speaker learnt.
        self.zgs_version = 0
        #: Hostile SOAP answers (docs/simulator.md, "Faults").
        self.soap_faults = SoapFaults()
        self.network: NetworkPresence | None = None
        self.vanished_reason: str | None = None
        #: Removed from its household (``leave_household``): in no ZoneGroupState any more.
        self.left_household = False
        self._published: dict[str, dict[str, EventValue]] = {}
        self._boot_call: IDelayedCall | None = None
        self._up_waiters: list[Deferred[None]] = []

    def __repr__(self) -> str:
        return f"<Speaker {self.name!r} {self.uid} {self.address}:{self.port}>"

    # -- identity and topology -------------------------------------------------------------

    @property
    def uid(self) -> str:
        """``RINCON_<MAC hex>01400``."""
        return self.identity.uid

    @property
    def location(self) -> str:
        """This speaker's device description URL (ZoneGroupState ``Location``)."""
        return f"http://{self.address}:{self.port}/xml/device_description.xml"

    @property
    def base_url(self) -> str:
        """``http://<address>:<port>``."""
        return f"http://{self.address}:{self.port}"

    @property
    def ht_sat_chan_map(self) -> str:
        """``HTSatChanMapSet``: the whole set on the soundbar, soundbar and self on a satellite
        (as the captured home-theatre ZoneGroupStates show); empty elsewhere."""
        if self.satellites:
            parts = [f"{self.uid}:LF,RF"]
            parts += [f"{uid}:{self.household.by_uid[uid].ht_channel}" for uid in self.satellites]
            return ";".join(parts)
        if self.ht_primary is not None:
            return f"{self.ht_primary}:LF,RF;{self.uid}:{self.ht_channel}"
        return ""

    @property
    def more_info(self) -> str:
        """DeviceProperties ``MoreInfo``: the battery state on portables, else empty."""
        return self.battery.more_info() if self.battery is not None else ""

    @property
    def group(self) -> Group:
        """The group this speaker belongs to."""
        return self.household.group_of(self.uid)

    @property
    def coordinator(self) -> Speaker:
        """The coordinator of this speaker's group (itself when it coordinates)."""
        return self.household.by_uid[self.group.coordinator]

    @property
    def is_coordinator(self) -> bool:
        """Whether this speaker coordinates its group."""
        return self.group.coordinator == self.uid

    @property
    def gena(self) -> Any:
        """The GENA ``SubscriptionManager`` (its ``faults``, ``subscriptions()`` ...)."""
        return self.manager

    @property
    def reachable(self) -> bool:
        """Whether the speaker answers on the network right now."""
        return self.network is None or self.network.mode == "up"

    def full_state(self, service: str) -> Mapping[str, EventValue]:
        """Every evented variable of ``service`` (what a SEQ 0 NOTIFY carries)."""
        return variables.full_state(self, service)

    # -- publishing ------------------------------------------------------------------------

    def baseline(self) -> None:
        """Remember the current evented state of every service, without eventing it."""
        for service in self.offered:
            self._published[service] = dict(self.full_state(service))

    def publish(self, service: str) -> None:
        """Event what changed in ``service`` since it was last evented, as a speaker does
        (``sonosd.sim.eventrules``: a transport change resends the track block ...)."""
        if service not in self.offered:
            return
        current = dict(self.full_state(service))
        changed = eventrules.event_for(service, self._published.get(service, {}), current)
        self._published[service] = current
        if changed and self.manager is not None:
            self.manager.notify(service, changed)

    def shown_zone_group_state(self) -> str | None:
        """The ZoneGroupState this speaker last evented (``None`` before its baseline)."""
        value = self._published.get("ZoneGroupTopology", {}).get("ZoneGroupState")
        return value if isinstance(value, str) else None

    def _transport_changed(self, kind: str) -> None:
        if kind == "queue":
            self.container_update_ids = f"Q:0,{self.transport.queue_update_id}"
            self.publish("Queue")
            self.publish("ContentDirectory")
            return
        for uid in self.group.members:
            self.household.by_uid[uid].publish("AVTransport")
        self.publish("DeviceProperties")

    # -- rendering -------------------------------------------------------------------------

    def set_volume(self, volume: int, channel: str = "Master") -> int:
        """Set the volume (clamped to 0..100) of ``channel``; returns the new value."""
        volume = _clamp(int(volume), 0, 100)
        if channel == "Master" and not self.ramp.stepping:
            self.ramp.cancel()
        if channel == "LF":
            self.rendering.balance_lf = volume
        elif channel == "RF":
            self.rendering.balance_rf = volume
        else:
            self.rendering.volume = volume
        self._rendering_changed()
        return volume

    def set_mute(self, mute: bool) -> None:
        """Mute or unmute."""
        self.rendering.mute = bool(mute)
        self._rendering_changed()

    def set_bass(self, bass: int) -> None:
        """Set the bass (clamped to -10..10)."""
        self.rendering.bass = _clamp(int(bass), -10, 10)
        self._rendering_changed()

    def set_treble(self, treble: int) -> None:
        """Set the treble (clamped to -10..10)."""
        self.rendering.treble = _clamp(int(treble), -10, 10)
        self._rendering_changed()

    def set_loudness(self, loudness: bool) -> None:
        """Switch loudness on or off."""
        self.rendering.loudness = bool(loudness)
        self._rendering_changed()

    def set_eq(self, eq_type: str, value: int) -> None:
        """``SetEQ``: night mode and dialog level on soundbars, sub settings on a soundbar
        bonded with a sub, surround settings on one bonded with two surrounds (402 otherwise,
        or for a level outside -15..15)."""
        field, low, high = self._eq_field(eq_type)
        if not low <= int(value) <= high:
            raise UPnPError(402, f"{eq_type} out of range")
        current = getattr(self.rendering, field)
        setattr(self.rendering, field, bool(value) if isinstance(current, bool) else int(value))
        self._rendering_changed()

    def get_eq(self, eq_type: str) -> int:
        """``GetEQ`` of the types ``set_eq`` takes (402 otherwise)."""
        field, _, _ = self._eq_field(eq_type)
        return int(getattr(self.rendering, field))

    def _eq_field(self, eq_type: str) -> tuple[str, int, int]:
        soundbar = {"NightMode": "night_mode", "DialogLevel": "dialog_level"}
        theatre = {
            "SubEnable": ("sub_enabled", 0, 1),
            "SubGain": ("sub_gain", -15, 15),
            "SurroundEnable": ("surround_enabled", 0, 1),
            "SurroundLevel": ("surround_level", -15, 15),
            "MusicSurroundLevel": ("music_surround_level", -15, 15),
            "SurroundMode": ("surround_mode", 0, 1),
        }
        if self.model.soundbar and eq_type in soundbar:
            return soundbar[eq_type], 0, 1
        channels = {self.household.by_uid[uid].ht_channel for uid in self.satellites}
        needed = {"SW"} if eq_type.startswith("Sub") else {"LR", "RR"}
        if eq_type in theatre and needed <= channels:
            return theatre[eq_type]
        raise UPnPError(402, f"EQ type {eq_type} not supported")

    def _rendering_changed(self) -> None:
        self.publish("RenderingControl")
        if self.pair_partner is not None and not self.invisible:
            # The visible half's RenderingControl is the room's: the hidden half follows it
            # (set on the hidden half, a change stays there: docs/simulator.md).
            partner = self.household.by_uid[self.pair_partner]
            partner.rendering = attrs.evolve(self.rendering)
            partner.publish("RenderingControl")
        for uid in self.group.members:
            self.household.by_uid[uid].publish("GroupRenderingControl")

    # -- group volume (on the coordinator) -------------------------------------------------

    def _rooms(self) -> list[Speaker]:
        """The visible members of this speaker's group: one per room (a stereo pair's
        hidden half follows its room's volume and mute)."""
        return [s for s in self.household.members_of(self.group) if not s.invisible]

    def group_volume(self) -> int:
        """The group's volume: the mean of its rooms' volumes."""
        members = self._rooms()
        return round(sum(s.rendering.volume for s in members) / len(members))

    def group_mute(self) -> bool:
        """Whether every room of the group is muted."""
        return all(s.rendering.mute for s in self._rooms())

    def set_group_volume(self, volume: int) -> int:
        """Move every room by the same amount so the mean becomes ``volume``."""
        target = _clamp(int(volume), 0, 100)
        members = self._rooms()
        delta = target - self.group_volume()
        for member in members:
            member.rendering.volume = (
                0 if target == 0 else _clamp(member.rendering.volume + delta, 0, 100)
            )
        for member in members:
            member._rendering_changed()
        return self.group_volume()

    def set_group_mute(self, mute: bool) -> None:
        """Mute or unmute every room of the group."""
        members = self._rooms()
        for member in members:
            member.rendering.mute = bool(mute)
        for member in members:
            member._rendering_changed()

    # -- device properties -----------------------------------------------------------------

    def rename(self, name: str) -> None:
        """``SetZoneAttributes``: a new room name (a stereo pair and a home theatre share it)."""
        speakers = [self]
        if self.pair_partner is not None:
            speakers.append(self.household.by_uid[self.pair_partner])
        speakers += [self.household.by_uid[uid] for uid in self.satellites]
        for speaker in speakers:
            speaker.name = name
            speaker.publish("DeviceProperties")
        self.household.topology_changed()

    def set_led(self, on: bool) -> None:
        """The status light (not evented)."""
        self.led_on = bool(on)

    # -- faults ----------------------------------------------------------------------------

    def reboot(self, downtime: float = 5.0) -> Deferred[None]:
        """Reboot: forget every SID, be unreachable for ``downtime`` s, come back with BootSeq+1.

        The Deferred fires once the speaker is unreachable; ``when_up()`` fires when it is
        back (then the new BootSeq is evented to every ZoneGroupTopology subscriber).
        """
        log.info("rebooting {speaker} for {downtime} s", speaker=self.name, downtime=downtime)
        if self.manager is not None:
            self.manager.forget_all()
        self.transport.halt()
        self._cancel_boot()
        down = self.network.go_down("refuse") if self.network is not None else succeed(None)

        def _schedule(_: object) -> None:
            self._boot_call = self.household.clock.callLater(downtime, self._booted)

        down.addCallback(_schedule)
        return down

    def update_firmware(self, version: str, downtime: float = 5.0) -> Deferred[None]:
        """Install firmware ``version``: reboot (see ``reboot``) and come back with it as
        ``softwareVersion`` (ZGS ``SoftwareVersion``, device description, ``Server`` headers).

        A real update always reboots the speaker, so BootSeq grows with the version.
        """
        if not version:
            raise ValueError("a firmware version must not be empty")
        down = self.reboot(downtime)

        def _install(_: object) -> None:
            self.model = attrs.evolve(self.model, software_version=version)
            if self.manager is not None:
                self.manager.server_header = self.model.server_header

        return down.addCallback(_install)

    def _booted(self) -> None:
        self._boot_call = None
        up = self.network.come_up() if self.network is not None else succeed(None)

        def _up(_: object) -> None:
            self.boot_seq += 1
            self.vanished_reason = None
            log.info(
                "{speaker} is back, BootSeq {boot_seq}", speaker=self.name, boot_seq=self.boot_seq
            )
            self.household.topology_changed()
            self.household.announce_alive(self)
            self._fire_up()

        up.addCallback(_up)

    def go_offline(
        self, mode: str = "refuse", vanish: bool = False, reason: str = "powered off"
    ) -> Deferred[None]:
        """Disappear: ``refuse`` connections or ``hang`` them; NOTIFYs stop.

        With ``vanish`` the household also lists the speaker under ``VanishedDevices``
        (with ``reason``, ``powered off`` by default) and events the topology, as a real
        household does after a while. SSDP says ``ssdp:byebye`` with that reason.
        """
        if mode not in ("refuse", "hang"):
            raise ValueError(f"offline mode must be 'refuse' or 'hang', not {mode!r}")
        if self.manager is not None:
            self.manager.pause()
        self.household.announce_byebye(self, reason)
        self._cancel_boot()
        down = self.network.go_down(mode) if self.network is not None else succeed(None)
        if vanish:
            self.vanished_reason = reason
            self.household.topology_changed()
        return down

    def come_online(self) -> Deferred[None]:
        """Answer again; NOTIFYs resume; a vanished speaker rejoins the topology."""
        self._cancel_boot()
        up = self.network.come_up() if self.network is not None else succeed(None)

        def _up(_: object) -> None:
            if self.manager is not None:
                self.manager.resume()
            if self.vanished_reason is not None:
                self.vanished_reason = None
                self.household.topology_changed()
            self.household.announce_alive(self)
            self._fire_up()

        return up.addCallback(_up)

    def set_https_only(self, on: bool) -> Deferred[None]:
        """HTTPS-only control: SOAP over HTTP answers 403, SOAP over TLS on 1443 works."""
        self.https_only = bool(on)
        if self.network is None:
            return succeed(None)
        return self.network.secure(self.https_only)

    # -- portables -------------------------------------------------------------------------

    def sleep(self, mode: str = "refuse") -> Deferred[None]:
        """A portable goes to sleep: it stops answering (``refuse`` or ``hang``) and every
        other speaker lists it under ``VanishedDevices`` with reason ``sleeping``."""
        self._portable("sleep")
        return self.go_offline(mode, vanish=True, reason="sleeping")

    def switch_to_bluetooth(self) -> Deferred[None]:
        """A portable switches to Bluetooth: it leaves the network, reason ``switch to
        bluetooth`` in ``VanishedDevices``."""
        self._portable("switch to Bluetooth")
        return self.go_offline("refuse", vanish=True, reason="switch to bluetooth")

    def wake(self) -> Deferred[None]:
        """A sleeping portable (or one back on Wi-Fi) answers again, with the same UID."""
        self._portable("wake")
        return self.come_online()

    def set_battery(
        self,
        level: int | None = None,
        power_source: str | None = None,
        temperature: int | None = None,
    ) -> Battery:
        """Change a portable's battery state (evented in DeviceProperties ``MoreInfo``)."""
        self._portable("have a battery")
        assert self.battery is not None
        changes: dict[str, Any] = {}
        if level is not None:
            changes["level"] = level
        if power_source is not None:
            changes["power_source"] = power_source
        if temperature is not None:
            changes["temperature"] = temperature
        self.battery = attrs.evolve(self.battery, **changes)
        self.publish("DeviceProperties")
        return self.battery

    @property
    def asleep(self) -> bool:
        """Whether a portable sleeps or plays over Bluetooth (off the network)."""
        return self.vanished_reason in ("sleeping", "switch to bluetooth")

    def _portable(self, what: str) -> None:
        if not self.model.portable:
            raise ValueError(f"{self.name} ({self.model.name}) cannot {what}: not a portable")

    # -- household membership ---------------------------------------------------------------

    def leave_household(self) -> None:
        """The speaker is removed from its household (in the Sonos app, or by a factory
        reset): it leaves its group, forgets every subscription, and every speaker's
        ZoneGroupState stops listing it (not even as vanished). ``ValueError`` for a speaker
        bonded to others (a stereo pair or a home theatre)."""
        if self.invisible or self.pair_partner is not None or self.satellites:
            raise ValueError(f"{self.name} is bonded to other speakers: it cannot leave alone")
        if self.left_household:
            return
        if len(self.group.members) > 1:
            self.household.unjoin(self)
        self.left_household = True
        if self.manager is not None:
            self.manager.forget_all()
        log.info("{speaker} left its household", speaker=self.name)
        self.household.topology_changed()

    def rejoin_household(self) -> None:
        """The speaker is set up in its household again: listed as a group of its own."""
        if not self.left_household:
            return
        self.left_household = False
        log.info("{speaker} rejoined its household", speaker=self.name)
        self.household.topology_changed()

    def change_address(self, address: str) -> Deferred[None]:
        """Listen on ``address`` instead (DHCP gave a new one); ZGS ``Location`` follows.

        @raise ValueError: ``address`` is no loopback address, or another speaker's.
        """
        try:
            loopback_range(address)
        except ValueError as error:
            raise ValueError(f"address: {error}") from None
        if address in self.household.by_address:
            raise ValueError(f"address: {address} is already used by another speaker")
        moved = self.network.move(address) if self.network is not None else succeed(None)

        def _moved(_: object) -> None:
            del self.household.by_address[self.address]
            self.address = address
            self.household.by_address[address] = self
            if self.manager is not None:
                self.manager.address = address
            self.household.topology_changed()
            self.household.announce_alive(self)

        return moved.addCallback(_moved)

    def burst(self, count: int, service: str = "RenderingControl") -> None:
        """``count`` quick changes of ``service`` (each one evented on its own)."""
        for step in range(count):
            if service == "RenderingControl":
                volume = self.rendering.volume
                self.set_volume(volume + 1 if volume < 100 and step % 2 == 0 else volume - 1)
            elif service == "GroupRenderingControl":
                self.coordinator.set_group_mute(not self.coordinator.group_mute())
            elif service == "AVTransport":
                self.coordinator.transport.set_crossfade(not self.coordinator.transport.crossfade)
            elif service == "Queue":
                self.transport.add_to_queue([catalog.SONGS[step % len(catalog.SONGS)]])
            else:
                raise ValueError(f"cannot burst {service}")

    def when_up(self) -> Deferred[None]:
        """A Deferred that fires when the speaker answers again (now, if it does)."""
        if self.reachable and self._boot_call is None:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._up_waiters.append(waiter)
        return waiter

    def _fire_up(self) -> None:
        waiters, self._up_waiters = self._up_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _cancel_boot(self) -> None:
        if self._boot_call is not None and self._boot_call.active():
            self._boot_call.cancel()
        self._boot_call = None

    def shutdown(self) -> None:
        """Stop every timer of this speaker."""
        self._cancel_boot()
        self.ramp.cancel()
        self.transport.halt()


class Household:
    """Every speaker of one household and its topology; see the module docstring."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        speakers: int = 3,
        base_address: str = "127.0.0.2",
        port: int = 1400,
        rooms: Sequence[str] = (),
        models: Sequence[str] = (),
        stereo_pair: bool = False,
        seed: int | None = None,
        transition_delay: float = 0.1,
        queue_tracks: int = 8,
        home_theatre: bool = False,
        modes: HouseholdModes | None = None,
        https_only: Iterable[int] = (),
        first_index: int = 0,
        taken_uids: set[str] | None = None,
        fetcher: Prepare | None = None,
    ) -> None:
        ht_start = speakers - 4
        if speakers < 1:
            raise ValueError("a household needs at least one speaker")
        if stereo_pair and speakers < 2:
            raise ValueError("a stereo pair needs at least two speakers")
        needed = 6 if stereo_pair else 4
        if home_theatre and speakers < needed:
            raise ValueError(
                f"a home theatre needs four speakers (soundbar, sub, two surrounds) besides "
                f"the others: at least {needed} speakers"
            )
        self.clock = clock
        self.rng = random.Random(seed)
        self.transition_delay = transition_delay
        #: Fetches http(s) URIs a speaker plays (``sonosd.sim.fetcher.Fetcher.probe``); without
        #: one, such URIs play as if reachable.
        self.fetcher = fetcher
        self.modes = modes if modes is not None else HouseholdModes()
        self.household_id = household_id(self.rng)
        self.speakers: list[Speaker] = []
        self.by_uid: dict[str, Speaker] = {}
        self.by_address: dict[str, Speaker] = {}
        self.groups: list[Group] = []
        self.favorites_update_id = 1
        self.system_update_id = 1
        self.library = Library()
        self.saved_queues = SavedQueues()
        #: ``{music service type: account serial number}``: the services it has accounts for.
        self.accounts: dict[int, int] = {
            service_type: serial
            for serial, service_type in enumerate(musicservices.DEFAULT_ACCOUNTS, start=1)
        }
        self.service_list_version = 1
        self._group_seq = self.rng.randint(10, 99)
        taken = taken_uids if taken_uids is not None else set()
        models = list(models)
        if home_theatre:
            models += [DEFAULT_MODEL] * (ht_start + 4 - len(models))
            if not MODELS.get(models[ht_start], MODELS[DEFAULT_MODEL]).soundbar:
                models[ht_start] = HT_SOUNDBAR
            models[ht_start + 1 : ht_start + 4] = [HT_SUB, HT_SURROUND, HT_SURROUND]
        https = set(https_only)
        base = loopback_range(base_address, speakers)
        for index in range(speakers):
            number = first_index + index
            name = rooms[index] if index < len(rooms) else _room_name(number)
            model_key = models[index] if index < len(models) else DEFAULT_MODEL
            if model_key not in MODELS:
                raise ValueError(f"unknown model {model_key!r}; known: {sorted(MODELS)}")
            identity = Identity.draw(self.rng)
            while identity.uid in taken:
                identity = Identity.draw(self.rng)
            taken.add(identity.uid)
            address = str(base + index)
            speaker = Speaker(
                self,
                number,
                identity,
                MODELS[model_key],
                name,
                address,
                port,
                boot_seq=self.rng.randint(20, 200),
            )
            speaker.https_only = index in https
            self.speakers.append(speaker)
            self.by_uid[speaker.uid] = speaker
            self.by_address[address] = speaker
            self.groups.append(Group(self._new_group_id(speaker.uid), speaker.uid, [speaker.uid]))
        if stereo_pair:
            self._pair(self.speakers[0], self.speakers[1])
        if home_theatre:
            self._bond_home_theatre(*self.speakers[ht_start : ht_start + 4])
        first = self.speakers[0].uid
        self.alarm_list = AlarmList(
            owner=first,
            alarms=[
                Alarm(1, "07:00:00", "02:00:00", "WEEKDAYS", True, first, volume=20),
                Alarm(2, "09:30:00", "01:00:00", "WEEKENDS", False, first),
            ],
        )
        songs = catalog.SONGS
        morning = self.saved_queues.create("Morning Mix", [songs[n] for n in (0, 5, 10, 15)])
        self.saved_queues.create("Dinner Party", [songs[n] for n in (2, 7, 12, 17, 19)])
        self.saved_queues.update_id = 1
        self.favorites: tuple[Favorite, ...] = default_favorites(
            first, (morning.number, morning.title)
        )
        for index, speaker in enumerate(self.speakers):
            songs = catalog.SONGS
            start = (index * 4) % len(songs)
            tracks = [songs[(start + n) % len(songs)] for n in range(queue_tracks)]
            speaker.transport.queue.extend(tracks)
            speaker.transport.queue_update_id = 1
            if tracks and not speaker.invisible:
                speaker.transport.uri = speaker.transport.queue_uri
                speaker.transport.track_no = 1
        self._zgs_cache: str | None = None
        #: The ZoneGroupState shown while a regroup settles (``regroup_delay``), and its timer.
        self._zgs_held: str | None = None
        self._settling: IDelayedCall | None = None
        #: Players still to learn a ZoneGroupState (``topology_settle``).
        self._learning: list[IDelayedCall] = []
        #: Counts the household's changes of ZoneGroupState, so that each speaker learns them
        #: in order.
        self._zgs_version = 0
        self.announcer: Announcer | None = None
        for speaker in self.speakers:
            speaker.baseline()

    # -- lookup ----------------------------------------------------------------------------

    def speaker(self, key: str | int) -> Speaker:
        """A speaker by index, UID, address or room name (case-insensitive); ``KeyError``."""
        if isinstance(key, int):
            return self.speakers[key]
        if key in self.by_uid:
            return self.by_uid[key]
        if key in self.by_address:
            return self.by_address[key]
        matches = [s for s in self.speakers if s.name.lower() == key.lower()]
        if matches:
            return sorted(matches, key=lambda s: s.invisible)[0]
        if key.isdigit() and int(key) < len(self.speakers):
            return self.speakers[int(key)]
        raise KeyError(key)

    def group_of(self, uid: str) -> Group:
        """The group that holds ``uid`` (a home-theatre satellite: its soundbar's group)."""
        for group in self.groups:
            if uid in group.members:
                return group
        speaker = self.by_uid.get(uid)
        if speaker is not None and speaker.ht_primary is not None:
            return self.group_of(speaker.ht_primary)
        raise KeyError(uid)

    def members_of(self, group: Group) -> list[Speaker]:
        """The speakers of ``group``, in order."""
        return [self.by_uid[uid] for uid in group.members]

    # -- topology --------------------------------------------------------------------------

    def zone_group_state(self) -> str:
        """The household's ZoneGroupState document (the same on every speaker): the one from
        before a join or unjoin until the household has regrouped (``regroup_delay``)."""
        if self._zgs_held is not None:
            return self._zgs_held
        if self._zgs_cache is None:
            self._zgs_cache = zone_group_state(self._group_views(), self._vanished_views())
        return self._zgs_cache

    def zone_group_state_of(self, speaker: Speaker) -> str:
        """The ZoneGroupState ``speaker`` shows (events, ``GetZoneGroupState``): its own view
        while a change settles (``topology_settle``), the household's otherwise."""
        return speaker.zgs_view if speaker.zgs_view is not None else self.zone_group_state()

    def _group_views(self) -> Iterable[ZoneGroupView]:
        for group in self.groups:
            members = tuple(
                self._member_view(s)
                for s in self.members_of(group)
                if s.vanished_reason is None and not s.left_household
            )
            if members:
                yield ZoneGroupView(group.group_id, group.coordinator, members)

    def _member_view(self, speaker: Speaker) -> MemberView:
        return MemberView(
            uid=speaker.uid,
            location=speaker.location,
            zone_name=speaker.name,
            boot_seq=speaker.boot_seq,
            software_version=speaker.model.software_version,
            invisible=speaker.invisible,
            channel_map=speaker.channel_map,
            ht_sat_chan_map=speaker.ht_sat_chan_map,
            satellites=tuple(
                self._member_view(self.by_uid[uid])
                for uid in speaker.satellites
                if self.by_uid[uid].vanished_reason is None
            ),
        )

    def _vanished_views(self) -> Iterable[VanishedView]:
        for s in self.speakers:
            if s.vanished_reason is not None and not s.left_household:
                yield VanishedView(
                    s.uid,
                    s.name,
                    s.vanished_reason,
                    s.identity.mac,
                    s.address,
                    model=s.model.number,
                    ht_sat_chan_map=s.ht_sat_chan_map,
                )

    def topology_changed(self) -> None:
        """The ZoneGroupState changed: event it (and group variables) on every speaker; with
        ``topology_settle``, each speaker events it when it learns it."""
        self._zgs_cache = None
        self._zgs_version += 1
        settling = self.modes.topology_settle > 0 and self._zgs_held is None
        if settling:
            self._learn_later()
        for speaker in self.speakers:
            if not settling:
                speaker.publish("ZoneGroupTopology")
            speaker.publish("GroupManagement")
            speaker.publish("GroupRenderingControl")
            speaker.publish("DeviceProperties")

    def _learn_later(self) -> None:
        """``topology_settle``: every speaker keeps showing what it showed and learns the new
        ZoneGroupState later, in household order, the last one ``topology_settle`` from now
        (docs/simulator.md, "Topology settle")."""
        new, version = self.zone_group_state(), self._zgs_version
        self._learning = [call for call in self._learning if call.active()]
        step = self.modes.topology_settle / len(self.speakers)
        for index, speaker in enumerate(self.speakers):
            if speaker.zgs_view is None:
                speaker.zgs_view = speaker.shown_zone_group_state()
            self._learning.append(
                self.clock.callLater(step * (index + 1), self._learn, speaker, new, version)
            )

    def _learn(self, speaker: Speaker, document: str, version: int) -> None:
        if version <= speaker.zgs_version:
            return  # It learnt a later one already.
        speaker.zgs_version = version
        speaker.zgs_view = None if version == self._zgs_version else document
        speaker.publish("ZoneGroupTopology")

    def _new_group_id(self, uid: str) -> str:
        self._group_seq += 1
        return f"{uid}:{self._group_seq}"

    def pair(self, left: Speaker, right: Speaker) -> None:
        """Bond ``left`` and ``right`` into a stereo pair at runtime, as the Sonos app does
        (``CreateStereoPair`` with ``<left>:LF,LF;<right>:RF,RF``): ``right`` leaves its
        group, takes the room's name, volume and EQ and becomes the pair's invisible member
        (from then on a change of the left speaker's RenderingControl is the room's, and the
        right one follows it); both show the pair's ``ChannelMapSet`` (evented in
        ZoneGroupState and DeviceProperties).

        ``ValueError`` when either speaker is already bonded, not in this household, or
        both are the same speaker.
        """
        if left is right:
            raise ValueError(f"{left.name} cannot pair with itself")
        for speaker in (left, right):
            if speaker.household is not self or speaker.left_household:
                raise ValueError(f"{speaker.name} is not in household {self.household_id}")
            bonded = speaker.pair_partner is not None or speaker.satellites
            if speaker.invisible or bonded or speaker.ht_primary is not None:
                raise ValueError(f"{speaker.name} is already bonded to other speakers")
        if len(self.group_of(right.uid).members) > 1:
            self.unjoin(right)
        right.transport.clear_source()
        self._pair(left, right)
        log.info("{left} and {right} paired", left=left.name, right=right.uid)
        self.topology_changed()
        for speaker in (left, right):
            speaker.publish("DeviceProperties")
            speaker.publish("AVTransport")

    def _pair(self, left: Speaker, right: Speaker) -> None:
        channel_map = f"{left.uid}:LF,LF;{right.uid}:RF,RF"
        left.pair_partner, right.pair_partner = right.uid, left.uid
        left.channel_map = right.channel_map = channel_map
        right.invisible = True
        right.name = left.name
        # The right speaker takes the room's volume, mute, EQ and balance (docs/simulator.md,
        # "Stereo pairs"); from now on the left speaker's changes are the room's.
        right.rendering = attrs.evolve(left.rendering)
        self.groups.remove(self.group_of(right.uid))
        self.group_of(left.uid).members.append(right.uid)

    def unpair(self, speaker: Speaker) -> tuple[Speaker, Speaker]:
        """Separate the stereo pair ``speaker`` is a half of (either half), as the Sonos
        app's "Separate" does (``SeparateStereoPair``): the right speaker is visible again,
        a group of its own, stopped, with its own queue as its source; it keeps the room
        name (Sonos renames neither speaker, so two rooms share it until one is renamed) and
        its volume and EQ. The left speaker stays where it was, in its group. Both
        lose their ``ChannelMapSet``; the topology is evented on every speaker.

        @return: The left and the right speaker.
        @raise ValueError: ``speaker`` is in no stereo pair.
        """
        if speaker.pair_partner is None:
            raise ValueError(f"{speaker.name} is not in a stereo pair")
        partner = self.by_uid[speaker.pair_partner]
        left, right = (partner, speaker) if speaker.invisible else (speaker, partner)
        self.group_of(left.uid).members.remove(right.uid)
        left.pair_partner = right.pair_partner = None
        left.channel_map = right.channel_map = ""
        self._stand_alone(right)
        log.info("{left} and {right} separated", left=left.name, right=right.uid)
        self.topology_changed()
        for half in (left, right):
            half.publish("AVTransport")
        return left, right

    def _stand_alone(self, speaker: Speaker) -> None:
        """Make a speaker just freed from a bond a room again: visible, a group of its own,
        stopped, with its own queue as its source when it has none."""
        speaker.invisible = False
        self.groups.append(Group(self._new_group_id(speaker.uid), speaker.uid, [speaker.uid]))
        if not speaker.transport.uri and speaker.transport.queue:
            speaker.transport.set_uri(speaker.transport.queue_uri, "", None)

    def _bond_home_theatre(
        self, soundbar: Speaker, sub: Speaker, left: Speaker, right: Speaker
    ) -> None:
        """A soundbar with a sub and two surrounds: invisible satellites of its member."""
        for satellite, channel in ((sub, "SW"), (left, "LR"), (right, "RR")):
            self._bond_satellite(soundbar, satellite, channel)

    def _bond_satellite(self, soundbar: Speaker, satellite: Speaker, channel: str) -> None:
        satellite.own_name = satellite.name
        satellite.ht_primary = soundbar.uid
        satellite.ht_channel = channel
        satellite.invisible = True
        satellite.name = soundbar.name
        self.groups.remove(self.group_of(satellite.uid))
        soundbar.satellites.append(satellite.uid)

    def add_satellite(self, soundbar: Speaker, satellite: Speaker, channel: str) -> None:
        """Bond ``satellite`` to the home theatre of ``soundbar`` on ``channel`` (``SW`` the
        sub, ``LR``/``RR`` the surrounds) at runtime, as the Sonos app does
        (``AddHTSatellite`` sent to the soundbar): the satellite leaves its group, takes the
        room's name and becomes an invisible ``<Satellite>`` of the soundbar's member; the
        soundbar's ``HTSatChanMapSet`` gains its entry (evented in the ZoneGroupState and in
        DeviceProperties of both).

        ``ValueError`` when ``soundbar`` cannot lead a home theatre (not a soundbar or Amp,
        or bonded itself), ``satellite`` is bonded already or does not fit ``channel`` (a
        sub on ``SW``, anything else but a soundbar on ``LR``/``RR``), the channel is taken,
        or either is not in this household or off the network (vanished). Dedicated fronts
        (``LF``/``RF``) are not modelled (``NotImplementedError``).
        """
        if channel in ("LF", "RF"):
            raise NotImplementedError("dedicated front satellites are not modelled")
        if channel not in ("SW", "LR", "RR"):
            raise ValueError(f"unknown home-theatre channel {channel!r}: SW, LR or RR")
        for speaker in (soundbar, satellite):
            if speaker.household is not self or speaker.left_household:
                raise ValueError(f"{speaker.name} is not in household {self.household_id}")
            if speaker.vanished_reason is not None:
                raise ValueError(f"{speaker.name} is off the network ({speaker.vanished_reason})")
        if not soundbar.model.home_theater:
            raise ValueError(f"{soundbar.name} ({soundbar.model.name}) is not a soundbar")
        if soundbar.invisible or soundbar.pair_partner is not None:
            raise ValueError(f"{soundbar.name} is bonded to other speakers")
        if satellite is soundbar:
            raise ValueError(f"{soundbar.name} cannot be its own satellite")
        bonded = satellite.pair_partner is not None or satellite.satellites
        if satellite.invisible or bonded or satellite.ht_primary is not None:
            raise ValueError(f"{satellite.name} is already bonded to other speakers")
        if (channel == "SW") != satellite.model.subwoofer or satellite.model.home_theater:
            raise ValueError(f"{satellite.name} ({satellite.model.name}) cannot play {channel}")
        if any(self.by_uid[uid].ht_channel == channel for uid in soundbar.satellites):
            raise ValueError(f"{soundbar.name} has a {channel} satellite already")
        if len(self.group_of(satellite.uid).members) > 1:
            self.unjoin(satellite)
        satellite.transport.clear_source()
        self._bond_satellite(soundbar, satellite, channel)
        log.info(
            "{satellite} bonded to {soundbar} as {channel}",
            satellite=satellite.uid,
            soundbar=soundbar.name,
            channel=channel,
        )
        self.topology_changed()
        satellite.publish("AVTransport")

    def remove_satellite(self, satellite: Speaker) -> Speaker:
        """Take ``satellite`` out of its home theatre at runtime, as the Sonos app does
        (``RemoveHTSatellite`` sent to the soundbar): it is visible again, a group of its
        own (stopped, its own queue as its source), with the room name it had before it
        was bonded; the soundbar's ``HTSatChanMapSet`` loses its entry and the satellite's
        is empty (evented in the ZoneGroupState and in DeviceProperties of both).

        @return: The soundbar it was bonded to.
        @raise ValueError: ``satellite`` is no home theatre's satellite.
        """
        if satellite.ht_primary is None:
            raise ValueError(f"{satellite.name} is not a home-theatre satellite")
        soundbar = self.by_uid[satellite.ht_primary]
        soundbar.satellites.remove(satellite.uid)
        satellite.ht_primary = None
        satellite.ht_channel = ""
        satellite.name = satellite.own_name or satellite.name
        self._stand_alone(satellite)
        log.info(
            "{satellite} removed from {soundbar}", satellite=satellite.name, soundbar=soundbar.name
        )
        self.topology_changed()
        satellite.publish("AVTransport")
        return soundbar

    def _unit(self, speaker: Speaker) -> list[Speaker]:
        """The speakers that move together: a speaker and its stereo partner."""
        unit = [speaker]
        if speaker.pair_partner is not None:
            unit.append(self.by_uid[speaker.pair_partner])
        return unit

    def join(self, speaker: Speaker, target: Speaker) -> None:
        """``SetAVTransportURI x-rincon:<target>``: ``speaker`` joins ``target``'s group."""
        if speaker.invisible:
            raise UPnPError(800, "an invisible stereo member cannot join")
        destination = self.group_of(target.uid)
        if speaker.uid in destination.members:
            return
        self._hold_topology()
        self._leave(speaker)
        for member in self._unit(speaker):
            destination.members.append(member.uid)
        for member in self._unit(speaker):
            member.transport.clear_source()
        log.info("{speaker} joined {coordinator}", speaker=speaker.name, coordinator=target.name)
        self._regrouped()
        for member in self.members_of(destination):
            member.publish("AVTransport")

    def unjoin(self, speaker: Speaker) -> tuple[str, str]:
        """``BecomeCoordinatorOfStandaloneGroup``: (delegated coordinator, new group ID)."""
        if speaker.invisible:
            raise UPnPError(800, "an invisible stereo member cannot leave its pair")
        group = self.group_of(speaker.uid)
        unit = self._unit(speaker)
        if len(group.members) == len(unit):
            return "", group.group_id
        self._hold_topology()
        was_coordinator = group.coordinator == speaker.uid
        delegated = self._leave(speaker)
        new_group = Group(self._new_group_id(speaker.uid), speaker.uid, [s.uid for s in unit])
        self.groups.append(new_group)
        if was_coordinator:
            speaker.transport.halt()
        if not speaker.transport.uri and speaker.transport.queue:
            speaker.transport.set_uri(speaker.transport.queue_uri, "", None)
        self._regrouped()
        for member in unit:
            member.publish("AVTransport")
        return delegated, new_group.group_id

    def _hold_topology(self) -> None:
        """A join or unjoin is about to change the groups: with ``regroup_delay``, keep
        showing the ZoneGroupState of now until the household has regrouped."""
        if self.modes.regroup_delay > 0 and self._zgs_held is None:
            self._zgs_held = self.zone_group_state()

    def _regrouped(self) -> None:
        """The groups changed: event the topology now, or ``regroup_delay`` after the last
        regroup (the speaker answered at once; its household takes that long to agree)."""
        if self._zgs_held is None:
            self.topology_changed()
            return
        if self._settling is not None and self._settling.active():
            self._settling.cancel()
        self._settling = self.clock.callLater(self.modes.regroup_delay, self._settled)

    def _settled(self) -> None:
        self._settling = None
        self._zgs_held = None
        log.info("{household}: regrouped", household=self.household_id)
        self.topology_changed()

    def _leave(self, speaker: Speaker) -> str:
        """Take ``speaker`` (and its partner) out of its group; returns the new coordinator."""
        group = self.group_of(speaker.uid)
        unit_uids = [s.uid for s in self._unit(speaker)]
        remaining = [uid for uid in group.members if uid not in unit_uids]
        if not remaining:
            self.groups.remove(group)
            return ""
        if group.coordinator not in unit_uids:
            group.members[:] = remaining
            return group.coordinator
        # The coordinator leaves: the next visible member takes over the playback.
        heir = next(uid for uid in remaining if not self.by_uid[uid].invisible)
        heir_speaker = self.by_uid[heir]
        _hand_over(speaker.transport, heir_speaker.transport)
        self.groups.remove(group)
        self.groups.append(Group(self._new_group_id(heir), heir, remaining))
        for uid in remaining:
            self.by_uid[uid].publish("AVTransport")
        return heir

    def set_modes(self, **changes: Any) -> HouseholdModes:
        """Switch household modes (``sonosd.sim.modes.HouseholdModes`` fields).

        Switching UPnP off drops every subscription of every speaker (no more NOTIFYs;
        renewals get 403 like any UPnP request); switching it back on announces the speakers
        on SSDP again. ``ValueError`` for an unknown mode or a bad value.
        """
        unknown = sorted(set(changes) - {f.name for f in attrs.fields(HouseholdModes)})
        if unknown:
            raise ValueError(f"unknown household modes {unknown}")
        was_on = self.modes.upnp
        self.modes = attrs.evolve(self.modes, **changes)
        if was_on and not self.modes.upnp:
            log.info("{household}: UPnP switched off", household=self.household_id)
            for speaker in self.speakers:
                if speaker.manager is not None:
                    speaker.manager.unsubscribe_all()
        elif self.modes.upnp and not was_on:
            log.info("{household}: UPnP switched on", household=self.household_id)
            for speaker in self.speakers:
                self.announce_alive(speaker)
        return self.modes

    def announce_alive(self, speaker: Speaker) -> None:
        """Tell the ``announcer`` (if any) that ``speaker`` is on the network."""
        if self.announcer is not None:
            self.announcer.alive(speaker)

    def announce_byebye(self, speaker: Speaker, reason: str) -> None:
        """Tell the ``announcer`` (if any) that ``speaker`` leaves the network."""
        if self.announcer is not None:
            self.announcer.byebye(speaker, reason)

    # -- household-wide content ------------------------------------------------------------

    @property
    def alarms(self) -> list[Alarm]:
        """Every alarm of the household (``alarm_list`` holds them and their version)."""
        return self.alarm_list.alarms

    def alarm_list_version(self) -> str:
        """``AlarmListVersion``: ``<uid>:<n>``."""
        return self.alarm_list.list_version

    def alarms_changed(self) -> None:
        """The alarm list changed: every speaker events its ``AlarmListVersion``."""
        for speaker in self.speakers:
            speaker.publish("AlarmClock")

    def set_favorites(self, favorites: Sequence[Favorite | Track]) -> None:
        """Replace the Sonos favorites (``FV:2``) and event the change (a plain ``Track`` is
        a station when it has no duration and is a broadcast, else a track)."""
        self.favorites = tuple(_as_favorite(item) for item in favorites)
        self.favorites_update_id += 1
        self.content_changed(f"FV:2,{self.favorites_update_id}")

    def playlists_changed(self) -> None:
        """The Sonos playlists changed: event ``SavedQueuesUpdateID`` on every speaker."""
        self.content_changed(f"SQ:,{self.saved_queues.update_id}")

    def set_accounts(self, accounts: Mapping[int, int]) -> None:
        """Replace the music-service accounts (``{service type: serial}``) and event the
        MusicServices ``ServiceListVersion``."""
        self.accounts = dict(accounts)
        self.service_list_version += 1
        for speaker in self.speakers:
            speaker.publish("MusicServices")

    def content_changed(self, containers: str) -> None:
        """Household content (favourites, playlists) changed: ContentDirectory events with
        ``ContainerUpdateIDs`` ``containers`` on every speaker."""
        self.system_update_id += 1
        for speaker in self.speakers:
            speaker.container_update_ids = containers
            speaker.publish("ContentDirectory")

    def shutdown(self) -> None:
        """Stop every timer of every speaker, and a regroup that is settling."""
        if self._settling is not None and self._settling.active():
            self._settling.cancel()
        self._settling = None
        for call in self._learning:
            if call.active():
                call.cancel()
        self._learning = []
        for speaker in self.speakers:
            speaker.shutdown()


def _as_favorite(item: Favorite | Track) -> Favorite:
    if isinstance(item, Favorite):
        return item
    if item.is_stream and item.upnp_class == BROADCAST:
        return station_favorite(item)
    return track_favorite(item)


def _hand_over(source: Transport, heir: Transport) -> None:
    """Delegated coordination: the heir plays what the old coordinator played."""
    heir.queue[:] = source.queue
    heir.queue_update_id += 1
    heir.play_mode = source.play_mode
    heir.crossfade = source.crossfade
    if source.on_queue:
        heir.set_uri(heir.queue_uri, "", None)
        heir.track_no = source.track_no
    elif source.uri:
        heir.set_uri(source.uri, source.uri_metadata, source.stream)
    if source.state in ("PLAYING", "TRANSITIONING"):
        heir.play()


def _room_name(index: int) -> str:
    base = DEFAULT_ROOMS[index % len(DEFAULT_ROOMS)]
    round_ = index // len(DEFAULT_ROOMS)
    return base if round_ == 0 else f"{base} {round_ + 1}"
