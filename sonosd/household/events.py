# -*- test-case-name: tests.household.test_events -*-
"""Events become messages: SoCo Events and the daemon's own observations, as documented JSON.

``EventProcessor`` is the one place that builds message bodies (docs/messages.md, checked
against sonosd/message.schema.json):

- ``on_event``: a NOTIFY's ``Event`` → an ``event`` message with plain JSON ``variables``;
  the speaker's merged state is updated; a ZoneGroupTopology event also records that
  speaker's view of the household topology, and once the speakers that report one agree (or
  ``settle_timeout`` after they began to differ, the view most of them show) the household
  topology is updated and ``topology.changed`` published when the grouping changed
  (docs/supervisor.md, "Topology while a change settles").
- ``on_state``: variables read by control calls (resync after a SEQ gap, polling when
  NOTIFYs do not arrive) → an ``event`` message with ``source`` ``resync``/``poll`` carrying
  only what differs from the merged state (nothing changed: no message). A client that
  applies every ``event`` message in order thus ends with the speaker's state.
- ``speaker_availability`` (``speaker.online``, ``speaker.offline``, ``speaker.asleep``,
  ``speaker.upnp_disabled``, published only when the status changes), ``speaker_removed``,
  ``subscription_lost``, ``subscription_restored``, ``events_gap``: the supervisor's
  messages.
- ``alarms_changed``: the alarm list read after a new ``AlarmListVersion``
  (``sonosd.household.alarms``), kept in the state and published as ``alarms.changed``.

Variable observers (``add_variables_observer``) see every service's variables as they are
merged, from events and from state reads alike.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from sonosd.delivery.hub import Hub, Message
from sonosd.gena.eventxml import variables_to_json
from sonosd.gena.sequence import skipped
from sonosd.household.resync import comparable
from sonosd.household.state import HouseholdState, SpeakerRef
from sonosd.household.topology import (
    SpeakerViews,
    Topology,
    TopologyError,
    parse_zone_group_state,
)

log = Logger()

TOPOLOGY_SERVICE = "ZoneGroupTopology"
#: Seconds the speakers' views of a household may differ before the daemon takes the one most
#: of them show (a speaker that stays behind must not hold the household back for good).
SETTLE_TIMEOUT = 10.0
#: Documents remembered per household, so that an event carries a document once, not once per
#: speaker, and not again when a lagging speaker sends an older one.
_SHOWN_DOCUMENTS = 4

#: Called with the speaker, the service and its JSON variables after each merge.
VariablesObserver = Callable[[SpeakerRef, str, Mapping[str, Any]], object]


class _WallClock:
    def seconds(self) -> float:
        return time.time()


def parse_seq(value: object) -> int | None:
    """A GENA SEQ (SoCo gives a string) as an int; ``None`` if absent or not a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str | bytes):
        try:
            return int(value)
        except ValueError:
            return None
    return None


class EventProcessor:
    """Turns events and state reads into messages, keeping ``state`` up to date.

    @param hub: Where messages are published.
    @param state: The household state to merge into.
    @param clock: The time of state updates, and the settle timeout's timer (default: the
        wall clock, without a settle timeout).
    @param settle_timeout: Seconds the speakers' views of a household's topology may differ
        before the one most of them show is taken.
    """

    def __init__(
        self,
        hub: Hub,
        state: HouseholdState,
        clock: IReactorTime | None = None,
        settle_timeout: float = SETTLE_TIMEOUT,
    ) -> None:
        self._hub = hub
        self._state = state
        self._clock: Any = clock if clock is not None else _WallClock()
        #: Seconds the speakers' views may differ (the settle rule); tests shorten it.
        self.settle_timeout = settle_timeout
        # Per household: the documents its speakers sent lately (each is shown in one event),
        # each reporting speaker's latest view, the document taken as the household's, and
        # the timer that ends a disagreement.
        self._shown: dict[str | None, OrderedDict[str, Topology | None]] = {}
        self._views: dict[str | None, SpeakerViews] = {}
        self._taken: dict[str | None, str] = {}
        self._settling: dict[str | None, IDelayedCall] = {}
        self._observers: list[VariablesObserver] = []
        self.topology_errors = 0
        self.topology_duplicates = 0

    def add_variables_observer(self, observer: VariablesObserver) -> None:
        """Call ``observer(speaker, service, variables)`` after every event or state read is
        merged (an observer that raises is logged; the others still run)."""
        self._observers.append(observer)

    def _observe(self, ref: SpeakerRef, service: str, fields: Mapping[str, Any]) -> None:
        for observer in self._observers:
            try:
                observer(ref, service, fields)
            except Exception:
                log.failure("variables observer {observer!r} failed", observer=observer)

    @property
    def state(self) -> HouseholdState:
        """The household state this processor maintains."""
        return self._state

    # -- events --------------------------------------------------------------------------

    def on_event(self, speaker: SpeakerRef, service: str, event: Any) -> Message:
        """Publish the ``event`` message of a SoCo ``Event`` and merge it into the state.

        @param speaker: The speaker the NOTIFY came from.
        @param service: The service name (``AVTransport``).
        @param event: A ``soco.events_base.Event`` (``seq``, ``variables``); its variables
            are not modified.
        @return: The ``event`` message.
        """
        ref = self._state.ensure(speaker)
        variables: Mapping[str, Any] = getattr(event, "variables", None) or {}
        seq = parse_seq(getattr(event, "seq", None))
        variables, topology = self._take_topology(ref, variables)
        fields = self._json(ref, service, variables, topology)
        self._state.merge(
            ref.uid,
            service,
            _without_topology(fields),
            seq=seq,
            time=self._clock.seconds(),
            source="notify",
        )
        ref = self._state.by_uid(ref.uid) or ref
        message = self._hub.publish(
            "event",
            {"seq": seq, "source": "notify", "variables": fields},
            speaker=ref.to_json(),
            service=service,
            event=event,
        )
        self._settle(ref, topology, fields)
        if self._observers:
            self._observe(ref, service, fields)
        return message

    def on_state(
        self,
        speaker: SpeakerRef,
        service: str,
        variables: Mapping[str, Any],
        source: str = "poll",
    ) -> Message | None:
        """Merge variables read by control calls; publish what changed.

        @param variables: In ``parse_event_xml``'s shape (as ``StateReader.read`` gives).
        @param source: ``poll``, ``resync`` or ``position`` (a track position read, which
            does not count as the service's last update in its mark).
        @return: An ``event`` message (``seq`` null) with the changed variables only, or
            ``None`` when nothing changed.
        """
        ref = self._state.ensure(speaker)
        variables, topology = self._take_topology(ref, variables)
        fields = self._json(ref, service, variables, topology)
        changed = self._state.merge(
            ref.uid,
            service,
            _without_topology(fields),
            seq=None,
            time=self._clock.seconds(),
            source=source,
            mark=source != "position",
        )
        if topology is not None:
            changed["zone_group_state"] = fields["zone_group_state"]
        message: Message | None = None
        if changed:
            ref = self._state.by_uid(ref.uid) or ref
            message = self._hub.publish(
                "event",
                {"seq": None, "source": source, "variables": changed},
                speaker=ref.to_json(),
                service=service,
            )
        self._settle(ref, topology, fields)
        if self._observers and changed:
            self._observe(ref, service, changed)
        return message

    def on_zone_group_state(
        self, document: str | bytes, household: str | None = None
    ) -> Message | None:
        """Take a ZoneGroupState read with GetZoneGroupState (any speaker's of ``household``)
        as the household's, whatever the speakers' events say.

        @return: The ``topology.changed`` message, or ``None`` if nothing it reports changed.
        @raise TopologyError: If the document cannot be parsed.
        """
        topology = parse_zone_group_state(document).tagged(household)
        return self._apply_topology(topology, topology.to_json())

    def _take_topology(
        self, ref: SpeakerRef, variables: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], Topology | None]:
        """Split the ZoneGroupState off ``variables`` and record it as ``ref``'s view.

        @return: The variables, and the parsed topology of ``ref``'s household when the
            document is new to that household; a document its speakers sent lately (the same
            one every other speaker sends, or an older one a lagging speaker still shows) is
            left out of the variables, parsed once at most."""
        text = variables.get("zone_group_state")
        if not isinstance(text, str) or not text:
            return variables, None
        household = ref.household
        shown = self._shown.setdefault(household, OrderedDict())
        if text in shown:
            self.topology_duplicates += 1
            topology = shown[text]
            shown.move_to_end(text)
            if topology is not None:
                self._views.setdefault(household, SpeakerViews()).report(ref.uid, text)
            return _without_topology(variables), None
        try:
            topology = parse_zone_group_state(text).tagged(household)
        except TopologyError as error:
            # The speaker's document, not our fault: one line, no traceback.
            self.topology_errors += 1
            log.warn(
                "unparseable ZoneGroupState from {speaker}: {error}",
                speaker=ref.name or ref.uid,
                error=str(error)[:200],
            )
            topology = None
        if topology is not None:
            same = next((old for old, known in shown.items() if known == topology), None)
            if same is not None:
                # The same topology written otherwise (another speaker may order the groups
                # its own way): one view, not a disagreement that waits for settle_timeout.
                self.topology_duplicates += 1
                shown.move_to_end(same)
                self._views.setdefault(household, SpeakerViews()).report(ref.uid, same)
                return _without_topology(variables), None
        self._remember(household, text, topology)
        if topology is None:
            return variables, None
        views = self._views.setdefault(household, SpeakerViews())
        # A speaker a new document lists as vanished (asleep, powered off) cannot show that
        # document itself: its last view, from before it vanished, stops counting at once.
        for device in topology.vanished:
            if device.uid != ref.uid:
                views.forget(device.uid)
        views.report(ref.uid, text)
        return variables, topology

    def _remember(self, household: str | None, text: str, topology: Topology | None) -> None:
        shown = self._shown.setdefault(household, OrderedDict())
        shown[text] = topology
        views = self._views.get(household)
        for old in list(shown):
            if len(shown) <= _SHOWN_DOCUMENTS:
                break
            if old != self._taken.get(household) and (views is None or old not in views):
                del shown[old]

    def _settle(self, ref: SpeakerRef, shown: Topology | None, fields: Mapping[str, Any]) -> None:
        """After ``ref``'s event or read: take the document its household's speakers agree
        on, or start the settle timeout while they differ. ``shown``: the topology the event
        carried (its JSON in ``fields`` is reused)."""
        views = self._views.get(ref.household)
        if views is None:
            return
        document = views.view_of(ref.uid)
        if document is not None and views.agreed() is None and self._same_groups(ref, document):
            # Only BootSeq, addresses or versions differ from the household's topology: nothing
            # a client acts on, and the supervisor needs a reboot's BootSeq at once.
            self._take(ref.household, document, shown, fields.get("zone_group_state"))
            return
        self._decide(ref.household, shown, fields.get("zone_group_state"))

    def _same_groups(self, ref: SpeakerRef, document: str) -> bool:
        taken = self._taken.get(ref.household)
        documents = self._shown.get(ref.household)
        if taken is None or documents is None or taken == document:
            return False
        old, new = documents.get(taken), documents.get(document)
        return old is not None and new is not None and not new.changed_from(old)

    def _decide(
        self, household: str | None, shown: Topology | None = None, json: Any = None
    ) -> None:
        views = self._views.get(household)
        if views is None or not len(views):
            return
        agreed = views.agreed()
        if agreed is None:
            timer = self._settling.get(household)
            if (timer is None or not timer.active()) and hasattr(self._clock, "callLater"):
                self._settling[household] = self._clock.callLater(
                    self.settle_timeout, self._settle_late, household
                )
            return
        timer = self._settling.pop(household, None)
        if timer is not None and timer.active():
            timer.cancel()
        self._take(household, agreed, shown, json)

    def _settle_late(self, household: str | None) -> None:
        self._settling.pop(household, None)
        views = self._views.get(household)
        document = None if views is None else views.most_held()
        if document is None or document == self._taken.get(household):
            return
        log.info(
            "the speakers of {household} still show {count} topologies after {seconds} s: "
            "taking the one most of them show",
            household=household,
            count=views.documents() if views is not None else 0,
            seconds=self.settle_timeout,
        )
        self._take(household, document)

    def _take(
        self,
        household: str | None,
        document: str,
        shown: Topology | None = None,
        json: Any = None,
    ) -> None:
        """Make ``document`` the household's topology (a no-op if it is already)."""
        if self._taken.get(household) == document:
            return
        documents = self._shown.get(household)
        topology = None if documents is None else documents.get(document)
        if topology is None:
            return  # Never: a document a speaker shows, or the one taken, stays remembered.
        self._taken[household] = document
        if shown is not topology:
            json = None
        self._apply_topology(topology, json)

    def forget_view(self, speaker: SpeakerRef) -> None:
        """``speaker`` no longer reports its household's topology (offline, removed, its
        ZoneGroupTopology subscription lost): its last view no longer holds the others back."""
        for household, views in list(self._views.items()):
            if views.forget(speaker.uid):
                self._decide(household)

    def _json(
        self,
        ref: SpeakerRef,
        service: str,
        variables: Mapping[str, Any],
        topology: Topology | None,
    ) -> dict[str, Any]:
        def zone_group_state(text: str) -> Any:
            return text if topology is None else topology.to_json()

        return variables_to_json(
            service, variables, ref.base_url, zone_group_state=zone_group_state
        )

    def _apply_topology(self, topology: Topology, shown: Any) -> Message | None:
        """Take ``topology`` into the state; publish ``topology.changed`` when what that
        message reports changed (``shown``: the topology's JSON the event already carries,
        reused rather than built again)."""
        old = self._state.set_topology(topology)
        if old is topology or not topology.changed_from(old):
            return None
        if not isinstance(shown, dict):
            shown = topology.to_json()
        return self._hub.publish("topology.changed", shown)

    # -- the supervisor's messages -------------------------------------------------------

    def speaker_availability(
        self, speaker: SpeakerRef, status: str, reason: str | None = None
    ) -> Message | None:
        """Record ``speaker``'s availability ``status``; publish ``speaker.<status>``
        (``speaker.online``, ``speaker.offline``, ``speaker.asleep``,
        ``speaker.upnp_disabled``) when the status changed.

        @param reason: Why (``identified``, ``connection refused``, ``sleeping``...).
        @return: The message, or ``None`` if the status was already ``status``.
        """
        ref = self._state.ensure(speaker)
        if not self._state.set_availability(ref.uid, status, reason, time=self._clock.seconds()):
            return None
        availability = self._state.availability(ref.uid).to_json()
        message = self._hub.publish(
            f"speaker.{status}",
            {"reason": reason, "availability": availability},
            speaker=ref.to_json(),
        )
        if status != "online":
            self.forget_view(ref)
        return message

    def speaker_online(self, speaker: SpeakerRef, reason: str | None = None) -> Message | None:
        """Mark ``speaker`` online; publish ``speaker.online`` if it was not."""
        return self.speaker_availability(speaker, "online", reason)

    def speaker_offline(self, speaker: SpeakerRef, reason: str) -> Message | None:
        """Mark ``speaker`` offline; publish ``speaker.offline`` if it was not."""
        return self.speaker_availability(speaker, "offline", reason)

    def speaker_removed(self, speaker: SpeakerRef, reason: str) -> Message | None:
        """Forget ``speaker`` (it left its household, or became an invisible member) and
        publish ``speaker.removed``; ``None`` if it was not known."""
        ref = self._state.by_uid(speaker.uid)
        if ref is None:
            return None
        self._state.remove(ref.uid)
        message = self._hub.publish("speaker.removed", {"reason": reason}, speaker=ref.to_json())
        self.forget_view(ref)
        return message

    def subscription_lost(self, speaker: SpeakerRef, service: str, reason: str) -> Message:
        """Publish ``subscription.lost``: events of ``service`` stop until it is restored."""
        ref = self._state.ensure(speaker)
        message = self._hub.publish(
            "subscription.lost", {"reason": reason}, speaker=ref.to_json(), service=service
        )
        if service == TOPOLOGY_SERVICE:
            self.forget_view(ref)
        return message

    def subscription_restored(
        self, speaker: SpeakerRef, service: str, reason: str | None = None
    ) -> Message:
        """Publish ``subscription.restored``: ``service`` is subscribed again (its state is
        re-read; what changed meanwhile follows as ``event`` messages)."""
        ref = self._state.ensure(speaker)
        return self._hub.publish(
            "subscription.restored", {"reason": reason}, speaker=ref.to_json(), service=service
        )

    def alarms_changed(
        self, version: str, alarms: list[dict[str, Any]], household: str | None = None
    ) -> Message:
        """Keep ``household``'s alarm list read at ``version`` and publish ``alarms.changed``
        with it."""
        self._state.set_alarms(version, alarms, household)
        return self._hub.publish(
            "alarms.changed", {"household": household, "version": version, "alarms": alarms}
        )

    def events_gap(
        self,
        speaker: SpeakerRef,
        service: str,
        expected: int | None,
        got: int | None,
        reason: str | None = None,
    ) -> Message:
        """Publish ``events.gap``: NOTIFYs were lost (a resync follows as ``event`` messages
        with ``source`` ``resync``).

        @param expected: The SEQ that was due next (``None`` when unknown).
        @param got: The SEQ that arrived instead; ``None`` when no NOTIFY showed the loss (the
            consistency check found the state differing from the speaker's). ``missed`` counts
            the SEQs between them across the wrap from 4294967295 to 1.
        @param reason: How the loss was found; by default, the SEQ jump.
        """
        ref = self._state.ensure(speaker)
        missed = None if got is None or expected is None else skipped(expected, got)
        if reason is None:
            reason = f"SEQ {got} arrived, {expected} was expected"
        return self._hub.publish(
            "events.gap",
            {"expected": expected, "got": got, "missed": missed, "reason": reason},
            speaker=ref.to_json(),
            service=service,
        )

    def differences(
        self, speaker: SpeakerRef, service: str, variables: Mapping[str, Any]
    ) -> list[str]:
        """What the state says differently from ``variables`` read from the speaker.

        @param variables: In ``parse_event_xml``'s shape (read by control calls).
        @return: One ``"name: <state> here, <read> on the speaker"`` per differing value (per
            channel for channel variables); only values the state has are compared, and
            only those ``household.resync.comparable`` keeps (forms that may legitimately
            differ are left out).
        """
        known = self._state.variables(speaker.uid, service)
        read = comparable(service, known, variables_to_json(service, variables))
        found = []
        for name, value in read.items():
            if name not in known:
                continue
            mine = known[name]
            if isinstance(value, dict) and isinstance(mine, dict):
                for channel, item in value.items():
                    if channel in mine and mine[channel] != item:
                        found.append(
                            f"{name} {channel}: {mine[channel]} here, {item} on the speaker"
                        )
            elif mine != value:
                found.append(f"{name}: {mine} here, {value} on the speaker")
        return found


def _without_topology(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    # The topology is household state, kept once (not per speaker).
    if "zone_group_state" not in fields:
        return fields
    return {name: value for name, value in fields.items() if name != "zone_group_state"}
