# -*- test-case-name: tests.sinks.test_mqtt -*-
"""MQTT: retained per-speaker state, live events, availability and commands on a broker.

The client is paho-mqtt 2.x driven by the reactor, without paho's network thread: paho's
socket is handed to the reactor as a file descriptor (``doRead`` → ``loop_read``, ``doWrite``
→ ``loop_write`` while paho has bytes to send, a ``LoopingCall`` → ``loop_misc`` for
keep-alive pings, see ``keepalive_check_interval``), so every paho callback runs in the
reactor thread. Only the connect itself (a name lookup, a blocking TCP connect and TLS
handshake inside paho) runs in a worker thread, through the ``run_blocking`` callable the
service passes in, bounded by paho's connect timeout.

The sink keeps what it needs to republish everything retained after a reconnect: the merged
variables of each speaker and service (``state``), each speaker's availability, and each
household's last topology and alarm list. Messages that arrive while the broker is
unreachable are not queued: retained state is republished on reconnect, and the number of
events that were not published is logged and published on ``<prefix>/bridge/gap``. A broker
that stays connected but stops reading is treated alike: once ``max_unsent`` messages wait in
paho's outgoing queue without it ever emptying, publishing pauses (events are counted as
missed) until the queue drains, then everything retained is republished and the gap
reported, so memory stays bounded. The topic layout is in ``sonosd.sinks.mqtt_topics`` and
``docs/mqtt.md``.
"""

from __future__ import annotations

import collections
import copy
import random as _random
import ssl
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import paho.mqtt.client as paho
from twisted.application.service import Service
from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.internet.interfaces import (
    IReactorFDSet,
    IReactorTime,
    IReadDescriptor,
    IWriteDescriptor,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sonosd.backoff import backoff_delay, describe_failure
from sonosd.config import MqttConfig
from sonosd.control.dispatch import ControllerLike, execute, failure_fields, parse_args
from sonosd.delivery.channel import error_body
from sonosd.delivery.clientjson import JsonRefused
from sonosd.delivery.filters import Filter
from sonosd.delivery.hub import ISink, Message, encode
from sonosd.peerlog import PeerLog
from sonosd.sinks.mqtt_topics import Topics, bridge_discovery, discovery, room_key, segment

log = Logger()

#: The messages that change a speaker's availability (``speaker.<status>``).
AVAILABILITY_MESSAGES = frozenset(
    {"speaker.online", "speaker.offline", "speaker.asleep", "speaker.upnp_disabled"}
)

#: Retained state is published with QoS 0. Its reliability comes from republishing every
#: retained topic after each reconnect: QoS 1 would make paho resend, after that republish,
#: the messages that were in flight when the connection dropped, putting stale state back.
QOS = 0
#: Events (and gap reports) are published with QoS 1: a message the broker never took (it
#: restarted while the message was on its way) is sent again after the reconnect instead of
#: vanishing without a count (issue 18's soak found such losses).
QOS_EVENT = 1
#: Event messages paho may have on the wire awaiting the broker's acknowledgement.
MAX_INFLIGHT = 100
#: The last will is stored by the broker at connect time, so QoS 1 costs nothing there.
QOS_WILL = 1

#: The most messages paho's outgoing queue may hold before publishing pauses (see the module
#: docstring): a stalled broker costs at most this many messages of memory.
MAX_UNSENT = 10_000


def keepalive_check_interval(keepalive: int) -> float:
    """How often paho's ``loop_misc`` runs for a keep-alive of ``keepalive`` seconds.

    paho sends its ping once ``keepalive`` seconds passed without a packet out, seen at the
    next check; the broker gives up after 1.5 x ``keepalive`` (MQTT 3.1.1, 3.1.2.10). Once a
    second is early enough for the usual 30 s, not for ``keepalive: 1`` (the ping would leave
    up to 2 s after the last packet): the check runs at least every quarter of it.
    """
    return min(1.0, keepalive / 4)


class MqttReactor(IReactorTime, IReactorFDSet):
    """What the MQTT sink needs of a reactor: a clock and file descriptor registration."""


class BlockingRunner(Protocol):
    """Runs a blocking callable off the reactor thread (``SocoRunner.run`` fits)."""

    def __call__(self, fn: Callable[[], Any]) -> Deferred[Any]:
        """Run ``fn`` in a thread; fire with its result."""


@implementer(IReadDescriptor, IWriteDescriptor)
class _PahoSocket:
    """paho's socket as a reactor file descriptor: readiness drives paho's loop calls."""

    def __init__(self, client: paho.Client, sock: Any, lost: Callable[[], None]) -> None:
        self._client = client
        self._sock = sock
        self._fileno = sock.fileno()
        self._lost = lost

    def fileno(self) -> int:
        return self._fileno

    def logPrefix(self) -> str:
        return "mqtt"

    def doRead(self) -> None:
        rc = self._client.loop_read()
        # TLS may hold decrypted bytes that the file descriptor no longer signals.
        pending = getattr(self._sock, "pending", None)
        while rc == paho.MQTT_ERR_SUCCESS and pending is not None and pending() > 0:
            rc = self._client.loop_read()
        if rc != paho.MQTT_ERR_SUCCESS:
            self._lost()

    def doWrite(self) -> None:
        if self._client.loop_write() != paho.MQTT_ERR_SUCCESS:
            self._lost()

    def connectionLost(self, reason: Failure) -> None:
        self._lost()

    def close(self) -> None:
        """Close the socket under paho (when the broker does not answer a disconnect)."""
        self._sock.close()


class _ClosingSSLSocket(ssl.SSLSocket):
    """A TLS socket that closes itself when its handshake fails.

    paho wraps the broker's TCP socket and runs the handshake itself; when that fails (a
    silent broker, an untrusted certificate) it drops the socket without closing it, and the
    descriptor (and the broker's half of the connection) would wait for Python's garbage
    collector. ``SSLContext.sslsocket_class`` is the standard library's hook for this.
    """

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def _default_client(config: MqttConfig) -> paho.Client:
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=config.client_id,
        protocol=paho.MQTTv311,
        clean_session=True,
        # paho would reconnect inside loop_read (blocking the reactor) on some refusals.
        reconnect_on_failure=False,
    )
    if config.username is not None:
        client.username_pw_set(config.username, config.password)
    if config.tls:
        context = ssl.create_default_context(cafile=config.ca_file)
        context.sslsocket_class = _ClosingSSLSocket
        client.tls_set_context(context)
    return client


@implementer(ISink)
class MqttSink(Service):
    """Publishes the household to an MQTT broker and runs the commands it receives.

    @param reactor: The reactor (clock and file descriptors).
    @param config: Broker, credentials, TLS, prefix, Home Assistant discovery.
    @param run_blocking: Runs paho's blocking connect in a thread.
    @param controller: Runs commands (no command topics are subscribed when ``None``).
    @param filter: Which messages are published and merged into the retained state.
    @param connect_timeout: Seconds for the TCP connect and TLS handshake.
    @param backoff_initial: The first reconnect delay, doubled after each failure.
    @param backoff_max: The longest reconnect delay.
    @param random: The jitter source.
    @param client_factory: Makes the paho client (tests; default from ``config``).
    @param drain_timeout: How long ``stopService`` waits for the broker to take the last
        messages and the disconnect.
    @param max_unsent: Messages published since paho's outgoing queue was last empty beyond
        which publishing pauses until it empties.

    @ivar drain_timeout: The bound ``stopService`` uses (the daemon sets it again when a reload
        changes ``subscription.shutdown_timeout``).
    """

    def __init__(
        self,
        reactor: MqttReactor,
        config: MqttConfig,
        run_blocking: BlockingRunner,
        *,
        controller: ControllerLike | None = None,
        filter: Filter | None = None,
        connect_timeout: float = 10.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        random: Callable[[], float] = _random.random,
        client_factory: Callable[[MqttConfig], paho.Client] = _default_client,
        drain_timeout: float = 3.0,
        max_unsent: int = MAX_UNSENT,
    ) -> None:
        self._reactor = reactor
        self._config = config
        self._run_blocking = run_blocking
        self._controller = controller
        self._filter = filter or Filter()
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._random = random
        self.drain_timeout = drain_timeout
        self._max_unsent = max(1, max_unsent)
        self.topics = Topics(config.prefix)

        self._client = client_factory(config)
        # An exception in one of our callbacks must never unwind paho's read loop.
        self._client.suppress_exceptions = True
        self._client.connect_timeout = connect_timeout
        self._client.will_set(self.topics.bridge_availability, "offline", qos=QOS_WILL, retain=True)
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        # The broker sends the last will after 1.5 x this keep-alive without a word from us.
        self._client.connect_async(config.host, config.port, keepalive=config.keepalive)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_register_write
        self._client.on_socket_unregister_write = self._on_unregister_write
        self._client.on_publish = self._on_publish

        self._descriptor: _PahoSocket | None = None
        self._misc = LoopingCall(self._loop_misc)
        self._misc.clock = reactor
        self._retry: Any = None
        self._failures = 0
        self._connecting = False
        self._stopping = False
        self._closed: list[Deferred[None]] = []
        self.connected = False

        # What is republished after every (re)connect.
        self._keys: dict[str, str] = {}
        self._owners: dict[str, str] = {}
        self._rooms: dict[str, str | None] = {}
        self._state: dict[str, dict[str, dict[str, Any]]] = {}
        self._availability: dict[str, str] = {}
        self._topologies: dict[str | None, bytes] = {}
        self._alarms: dict[str | None, bytes] = {}
        #: Per household, the invisible members of its topology.
        self._invisible_of: dict[str | None, set[str | None]] = {}
        self._announced: set[str] = set()

        self.published = 0
        # Published since paho's outgoing queue was last empty; over max_unsent: stalled.
        self._unsent = 0
        # Retained topics cleared (a removed speaker's, a renamed room's old ones) while the
        # broker could not be told: cleared first thing after the next (re)connect.
        self._clears: dict[str, None] = {}
        # Message ids of QoS 1 publishes the broker has not acknowledged yet.
        self._awaiting: set[int] = set()
        # The acknowledgement a clean stop waits for (its ``offline``), by message id.
        self._acked: dict[int, Deferred[None]] = {}
        self.stalled = False
        self.missed = 0
        self._missed_first: int | None = None
        self._missed_last: int | None = None
        self.connects = 0
        self.commands = 0
        #: Refused command payloads by ``("mqtt", reason)`` (exported as client errors).
        self.refused: collections.Counter[tuple[str, str]] = collections.Counter()
        self.peer_log = PeerLog(log, reactor)
        self.last_error: str | None = None
        # Why the broker refused the last CONNECT (its CONNACK reason, "Not authorized"):
        # paho's disconnect that follows only says "Unspecified error".
        self._refusal: str | None = None

    @property
    def _broker(self) -> str:
        """The broker, as peer-log lines name their source (it does not say who published)."""
        return f"mqtt broker {self._config.host}:{self._config.port}"

    def take_over(self, old: MqttSink) -> None:
        """Start from what ``old`` (the sink a reload replaces) knows: every speaker's merged
        state, availability and topic level, each household's topology and alarms, so that
        they are published at this sink's first connect, not only as the next events come."""
        self._keys.update(old._keys)
        self._owners.update(old._owners)
        self._rooms.update(old._rooms)
        self._state.update(copy.deepcopy(old._state))
        self._availability.update(old._availability)
        self._topologies.update(old._topologies)
        self._alarms.update(old._alarms)
        self._invisible_of.update(copy.deepcopy(old._invisible_of))
        # Events the old one could not publish are this one's gap to report (a reload that
        # fixes a wrong broker address follows a sink that never connected).
        if old.missed:
            self.missed += old.missed
            if self._missed_first is None:
                self._missed_first = old._missed_first
            self._missed_last = self._missed_last or old._missed_last
            # Reported by this sink now: the old one's stop does not count them again.
            old.missed = 0
            old._missed_first = old._missed_last = None
        self._clears.update(old._clears)

    # -- the hub's side ------------------------------------------------------------------

    def deliver(self, message: Message) -> None:
        """Merge ``message`` into the retained state and publish it; return at once."""
        if not self._filter.matches(message):
            return
        uid = message.speaker_uid
        if uid is None:
            if message.type == "topology.changed":
                household = message.body.get("household")
                self._topologies[household] = message.raw
                self._invisible_of[household] = _invisible_uids(message.body.get("groups", ()))
                self._publish(self.topics.bridge_topology(household), message.raw, retain=True)
                self._rekey()
            elif message.type == "alarms.changed":
                household = message.body.get("household")
                self._alarms[household] = message.raw
                self._publish(self.topics.bridge_alarms(household), message.raw, retain=True)
            self._publish_event(self.topics.bridge_event(message.type), message)
            return
        key = self._key_for(uid, message.room)
        if message.type == "event" and message.service is not None:
            self._merge(uid, key, message)
        elif message.type == "speaker.removed":
            self._publish_event(self.topics.event(key, message.type), message)
            self._forget(uid, key)
            return
        elif message.type in AVAILABILITY_MESSAGES:
            # The availability topic says online or offline (Home Assistant's payloads): a
            # speaker asleep or with UPnP off is not available; the message says which.
            online = message.type == "speaker.online"
            self._set_availability(uid, key, "online" if online else "offline")
        if uid not in self._availability and message.type == "event":
            self._set_availability(uid, key, "online")
        name = message.service if message.type == "event" and message.service else None
        self._publish_event(self.topics.event(key, name or message.type), message)

    def _merge(self, uid: str, key: str, message: Message) -> None:
        service = message.service
        assert service is not None
        body = message.body
        services = self._state.setdefault(uid, {})
        entry = services.setdefault(service, {"variables": {}})
        entry["speaker"] = body.get("speaker")
        entry["service"] = service
        entry["variables"].update(body.get("variables") or {})
        entry["id"] = message.id
        entry["time"] = body.get("time")
        self._publish(self.topics.state(key, service), encode(entry), retain=True)

    def _discovery(self, uid: str, key: str) -> list[tuple[str, dict[str, Any]]]:
        """The Home Assistant discovery documents of one speaker."""
        return discovery(
            self._config.discovery_prefix,
            self.topics,
            uid,
            key,
            self._rooms.get(uid),
            commands=self._controller is not None,
        )

    def _forget(self, uid: str, key: str) -> None:
        """A speaker no longer followed: its retained topics (and Home Assistant entities)
        are cleared."""
        self._publish(self.topics.availability(key), b"", retain=True)
        for service in self._state.pop(uid, {}):
            self._publish(self.topics.state(key, service), b"", retain=True)
        if self._config.homeassistant and uid in self._keys:
            for topic, _ in self._discovery(uid, key):
                self._publish(topic, b"", retain=True)
        self._availability.pop(uid, None)
        self._announced.discard(uid)
        self._rooms.pop(uid, None)
        if self._owners.get(key) == uid:
            del self._owners[key]
        self._keys.pop(uid, None)

    def _set_availability(self, uid: str, key: str, value: str) -> None:
        self._availability[uid] = value
        self._publish(self.topics.availability(key), value.encode(), retain=True)

    def _invisible(self, uid: str) -> bool:
        """Whether ``uid`` is an invisible member (a home theatre's sub or surround, the
        hidden half of a stereo pair) in its household's last topology."""
        return any(uid in uids for uids in self._invisible_of.values())

    def _key_for(self, uid: str, room: str | None) -> str:
        """The topic level of a speaker: its room (topic-safe), else its uid; stable.

        A room's key belongs to its visible speaker: an invisible member publishes under its
        uid, and gives the room's key up to the visible speaker if it got it first (before
        the topology said what it is).
        """
        if room is not None:
            self._rooms[uid] = room
        current = self._keys.get(uid)
        wanted = room_key(room)
        if wanted and self._invisible(uid):
            wanted = segment(uid)
        elif wanted:
            owner = self._owners.get(wanted, uid)
            if owner != uid and self._invisible(owner):
                self._rekey_to(owner, segment(owner))
            elif owner != uid:
                wanted = ""
        if not wanted:
            wanted = current or segment(uid)
        if current == wanted:
            return current
        self._rekey_to(uid, wanted)
        return wanted

    def _rekey_to(self, uid: str, key: str) -> None:
        """Give ``uid`` the topic level ``key`` (moving its retained topics if it had one)."""
        current = self._keys.get(uid)
        if current is not None:
            self._move(uid, current, key)
        self._keys[uid] = key
        self._owners[key] = uid
        if self.connected:
            self._announce(uid)

    def _rekey(self) -> None:
        """After a topology: invisible members that hold a room's key move to their uid, and
        the room's visible speaker takes the key over."""
        vacated = set()
        for uid, key in list(self._keys.items()):
            if self._invisible(uid) and key != segment(uid):
                vacated.add(key)
                self._rekey_to(uid, segment(uid))
        for uid, room in list(self._rooms.items()):
            key = room_key(room)
            if (
                key in vacated
                and not self._invisible(uid)
                and uid in self._keys
                and self._owners.get(key) is None
            ):
                self._rekey_to(uid, key)

    def _move(self, uid: str, old: str, new: str) -> None:
        """A renamed room: clear the old retained topics; the new ones follow."""
        log.info("speaker {uid} moves from {old} to {new} on MQTT", uid=uid, old=old, new=new)
        self._owners.pop(old, None)
        self._announced.discard(uid)
        self._publish(self.topics.availability(old), b"", retain=True)
        for service in self._state.get(uid, {}):
            self._publish(self.topics.state(old, service), b"", retain=True)
        self._keys[uid] = new
        self._owners[new] = uid
        if uid in self._availability:
            self._publish(self.topics.availability(new), self._availability[uid].encode(), True)
        for service, entry in self._state.get(uid, {}).items():
            self._publish(self.topics.state(new, service), encode(entry), retain=True)

    def _publish_event(self, topic: str, message: Message) -> None:
        if not self.connected or self.stalled:
            self.missed += 1
            if self._missed_first is None:
                self._missed_first = message.id
            self._missed_last = message.id
            return
        self._publish(topic, message.raw, retain=False, qos=QOS_EVENT)

    def _publish(self, topic: str, payload: bytes, retain: bool, qos: int = QOS) -> int | None:
        """Publish; the message id the broker will acknowledge (QoS 1), else ``None``."""
        if retain:
            # A topic cleared now must be cleared on the broker even if this publish never
            # reaches it; one set again needs no clearing (it is republished as it is).
            if payload:
                self._clears.pop(topic, None)
            else:
                self._clear_later(topic)
        if not self.connected or self.stalled:
            # Retained topics are republished once the broker reads again (_drained).
            return None
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
        except ValueError as error:
            # A topic MQTT refuses: a command's result topic holding a wildcard, from a broker
            # that let one by (room names are bounded and made topic-safe before this).
            # Throttled per reason, the broker being the one source (as for refused commands).
            self.peer_log.emit(
                self._broker,
                "bad_topic",
                "mqtt: cannot publish to {topic}: {error}",
                topic=topic[:200],
                error=error,
            )
            return None
        if info.rc == paho.MQTT_ERR_SUCCESS:
            if retain and not payload:
                self._clears.pop(topic, None)
            self.published += 1
            self._unsent += 1
            if qos:
                self._awaiting.add(info.mid)
            if self._unsent > self._max_unsent or len(self._awaiting) > self._max_unsent:
                self.stalled = True
                log.warn(
                    "mqtt broker {host}:{port} is not reading ({count} messages waiting): "
                    "publishing paused until it does",
                    host=self._config.host,
                    port=self._config.port,
                    count=max(self._unsent, len(self._awaiting)),
                )
            return info.mid if qos else None
        log.warn(
            "mqtt publish to {topic} failed: {error}",
            topic=topic,
            error=paho.error_string(info.rc),
        )
        return None

    def _clear_later(self, topic: str) -> None:
        """Remember ``topic`` as cleared until the broker has been sent the clearing; the
        oldest is forgotten past ``max_unsent`` topics (a peer renaming itself without end
        while the broker is away must not grow this without bound)."""
        self._clears.pop(topic, None)
        self._clears[topic] = None
        if len(self._clears) > self._max_unsent:
            dropped = next(iter(self._clears))
            del self._clears[dropped]
            log.warn(
                "mqtt: too many retained topics to clear once the broker is back; "
                "{topic} stays as it was",
                topic=dropped,
            )

    # -- connection ----------------------------------------------------------------------

    def startService(self) -> None:
        """Connect to the broker (and keep reconnecting with backoff)."""
        super().startService()
        self._stopping = False
        self._connect()

    def _connect(self) -> None:
        self._retry = None
        if self._stopping or self._connecting:
            return
        self._connecting = True
        Deferred.fromCoroutine(self._connect_once())

    async def _connect_once(self) -> None:
        config = self._config
        self._refusal = None
        try:
            rc = await self._run_blocking(self._client.reconnect)
        except Exception as error:
            self._connecting = False
            self._connect_failed(describe_failure(error)[1])
            return
        self._connecting = False
        sock = self._client.socket()
        if rc != paho.MQTT_ERR_SUCCESS or sock is None or self._stopping:
            self._abandon()
            if not self._stopping:
                self._connect_failed(paho.error_string(rc))
            return
        log.debug("mqtt connected to {host}:{port}", host=config.host, port=config.port)
        self._descriptor = _PahoSocket(self._client, sock, self._lost)
        self._reactor.addReader(self._descriptor)
        if self._client.want_write():
            self._reactor.addWriter(self._descriptor)
        self._misc.start(keepalive_check_interval(config.keepalive), now=False)

    def status(self) -> dict[str, Any]:
        """The broker connection and queue, for diagnostics and metrics."""
        return {
            "broker": f"{self._config.host}:{self._config.port}",
            "connected": self.connected,
            "failures": self._failures,
            "last_error": self.last_error,
            "queue": self._unsent,
            "stalled": self.stalled,
            "published": self.published,
            "missed": self.missed,
            "connects": self.connects,
            "commands": self.commands,
        }

    def _connect_failed(self, reason: str) -> None:
        self.last_error = reason
        self._failures += 1
        delay = backoff_delay(
            self._failures, self._backoff_initial, self._backoff_max, self._random
        )
        (log.warn if self._failures == 1 else log.debug)(
            "mqtt broker {host}:{port} unreachable ({reason}); retrying in {delay:.1f} s",
            host=self._config.host,
            port=self._config.port,
            reason=reason,
            delay=delay,
        )
        if not self._stopping:
            self._retry = self._reactor.callLater(delay, self._connect)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            # paho closes the socket and calls on_disconnect next, which retries.
            self._refusal = str(reason)
            log.error(
                "mqtt broker {host}:{port} refused the connection: {reason}",
                host=self._config.host,
                port=self._config.port,
                reason=str(reason),
            )
            return
        self._failures = 0
        self.connects += 1
        self.connected = True
        self._unsent = 0
        self.stalled = False
        log.info(
            "mqtt connected to {host}:{port} as {client_id}",
            host=self._config.host,
            port=self._config.port,
            client_id=self._config.client_id,
        )
        if self._controller is not None:
            client.subscribe(self.topics.commands, qos=1)
        self._publish(self.topics.bridge_availability, b"online", retain=True)
        self._republish()

    def _republish(self) -> None:
        """Everything retained, as after a broker restart that lost it; first the clearing
        of the topics removed meanwhile (a broker that kept its retained messages would
        hold them for ever)."""
        for topic in list(self._clears):
            self._publish(topic, b"", retain=True)
        if self._config.homeassistant:
            topic, document = bridge_discovery(self._config.discovery_prefix, self.topics)
            self._publish(topic, encode(document), retain=True)
        self._announced.clear()
        for uid in self._keys:
            self._announce(uid)
        for household, topology in self._topologies.items():
            self._publish(self.topics.bridge_topology(household), topology, retain=True)
        for household, alarms in self._alarms.items():
            self._publish(self.topics.bridge_alarms(household), alarms, retain=True)
        for uid, services in self._state.items():
            for service, entry in services.items():
                self._publish(self.topics.state(self._keys[uid], service), encode(entry), True)
        if self.missed:
            log.warn(
                "mqtt: {count} messages (ids {first} to {last}) were not published while the "
                "broker was unreachable or not reading; retained state is republished",
                count=self.missed,
                first=self._missed_first,
                last=self._missed_last,
            )
            gap = {
                "missed": self.missed,
                "first_id": self._missed_first,
                "last_id": self._missed_last,
            }
            self._publish(self.topics.bridge_gap, encode(gap), retain=False, qos=QOS_EVENT)
            self.missed = 0
            self._missed_first = self._missed_last = None

    def _announce(self, uid: str) -> None:
        """Availability and (optionally) HA discovery of one speaker."""
        if uid in self._announced:
            return
        self._announced.add(uid)
        key = self._keys[uid]
        if self._config.homeassistant:
            for topic, document in self._discovery(uid, key):
                self._publish(topic, encode(document), retain=True)
        if uid in self._availability:
            self._publish(self.topics.availability(key), self._availability[uid].encode(), True)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        was_connected = self.connected
        self.connected = False
        self._drop_socket()
        if self._stopping:
            return
        if was_connected:
            log.warn(
                "mqtt connection to {host}:{port} lost ({reason}); reconnecting",
                host=self._config.host,
                port=self._config.port,
                reason=str(reason),
            )
            self._failures = 0
        if self._retry is not None or self._connecting:
            return
        if was_connected:
            delay = self._next_delay()
            self._retry = self._reactor.callLater(delay, self._connect)
        else:
            refusal, self._refusal = self._refusal, None
            self._connect_failed(refusal or str(reason))

    def _next_delay(self) -> float:
        self._failures += 1
        return backoff_delay(self._failures, self._backoff_initial, self._backoff_max, self._random)

    def _abandon(self) -> None:
        """Close a socket paho opened that will not be used (sending DISCONNECT first)."""
        if self._client.socket() is not None:
            self._client.disconnect()
            self._client.loop_write()

    def _lost(self) -> None:
        """The socket failed under paho (it has closed it and called ``on_disconnect``)."""
        self._drop_socket()
        if self.connected:
            self._on_disconnect(self._client, None, None, "connection lost", None)

    def _drop_socket(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            self._reactor.removeReader(descriptor)
            self._reactor.removeWriter(descriptor)
        if self._misc.running:
            self._misc.stop()
        if descriptor is not None:
            waiting, self._closed = self._closed, []
            # No acknowledgement comes on a closed connection: a stop waiting for one (its
            # offline) need not wait out its bound (the broker dropped us: a reload's new
            # sink took the client id over, or the broker went away).
            acked, self._acked = list(self._acked.values()), {}
            for d in [*waiting, *acked]:
                d.callback(None)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._descriptor is not None and self._descriptor.fileno() == sock.fileno():
            self._drop_socket()

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Called from the connect thread too (paho queues CONNECT there): ignored until the
        # socket is handed to the reactor, which then checks want_write() itself.
        if self._descriptor is not None:
            self._reactor.addWriter(self._descriptor)

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Like registration, also called from the connect thread: only the reactor-driven
        # socket counts.
        if self._descriptor is not None:
            self._reactor.removeWriter(self._descriptor)
            self._drained()

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        # The broker acknowledged a QoS 1 message (QoS 0 ones: written to the socket).
        self._awaiting.discard(mid)
        acked = self._acked.pop(mid, None)
        if acked is not None:
            acked.callback(None)
        if self.stalled and not self._unsent:
            self._drained()

    def _drained(self) -> None:
        """paho's outgoing queue is empty: after a stall, catch the broker up (once the
        broker has also acknowledged most of what it was sent)."""
        self._unsent = 0
        if self.stalled and self.connected and len(self._awaiting) <= self._max_unsent // 2:
            self.stalled = False
            log.info("mqtt broker is reading again: republishing retained state")
            self._republish()

    def _loop_misc(self) -> None:
        if self._client.loop_misc() != paho.MQTT_ERR_SUCCESS:
            self._lost()

    # -- commands ------------------------------------------------------------------------

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        """One command; whatever its payload holds, answered on its result topic and never
        raising into paho's read loop (that would drop the connection)."""
        try:
            self._command(msg)
        except Exception:
            log.failure("mqtt command on {topic} failed", topic=_topic(msg))

    def _command(self, msg: paho.MQTTMessage) -> None:
        topic = _topic(msg)
        if topic is None:
            return  # Not UTF-8 (MQTT requires it; a broker that does not check lets it by).
        parsed = self.topics.parse_command(topic)
        if parsed is None or self._controller is None:
            return
        key, command = parsed
        # Lines about what a publisher sent are throttled per reason (PeerLog): the broker
        # does not say who published, and the topic's room key is the sender's to choose.
        source = self._broker
        if msg.retain:
            self.peer_log.emit(
                source,
                "retained",
                "mqtt: ignored retained command {topic}: commands must not be retained "
                "(they would run again at every reconnect)",
                topic=topic,
            )
            return
        self.commands += 1
        result_topic = self.topics.result(key, command)
        try:
            args = parse_args(bytes(msg.payload))
        except JsonRefused as refused:
            self.refused["mqtt", refused.reason] += 1
            self.peer_log.emit(
                source,
                refused.reason,
                "mqtt command {command} for {room} refused: {error}",
                command=command,
                room=key,
                error=refused,
            )
            # As the HTTP API answers the same body: status 400 and its error object.
            self._answer(
                result_topic,
                {"ok": False, "status": 400, **error_body("bad_request", str(refused))},
            )
            return
        # Any JSON value, null too, is echoed (docs/mqtt.md): absent only when not sent.
        echo = {"request_id": args.pop("request_id")} if "request_id" in args else {}
        # The key's speaker by its uid (a room name may repeat across households).
        speaker = self._owners.get(key) or key
        d = execute(self._controller, speaker, command, args)

        def done(result: Any) -> None:
            self._answer(result_topic, {"ok": True, "result": result, **echo})

        def failed(failure: Failure) -> None:
            status, error = failure_fields(failure)
            self._answer(result_topic, {"ok": False, "status": status, "error": error, **echo})

        d.addCallbacks(done, failed)

    def _answer(self, topic: str, body: Mapping[str, Any]) -> None:
        self._publish(topic, encode(body), retain=False)

    # -- stop ----------------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """Publish ``offline`` for the bridge, wait for the broker to acknowledge it, disconnect
        cleanly: all within ``drain_timeout``. Events left undelivered are counted in one
        warning (docs/deployment.md, SIGTERM)."""
        super().stopService()
        self._stopping = True
        self.peer_log.stop()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if not self.connected or self._descriptor is None:
            self.connected = False
            self._count_undelivered(None)
            return succeed(None)
        return Deferred.fromCoroutine(self._disconnect())

    def _count_undelivered(self, will: int | None) -> None:
        """Warn of the events this stop leaves undelivered: those not published since the
        last gap report (the broker was away or not reading) and those the broker has not
        acknowledged (``will``, the bridge's ``offline``, aside)."""
        count = self.missed + len(self._awaiting - {will})
        if count:
            log.warn(
                "mqtt broker {host}:{port}: {count} messages not delivered at shutdown",
                host=self._config.host,
                port=self._config.port,
                count=count,
            )

    async def _disconnect(self) -> None:
        started = self._reactor.seconds()
        # At QoS 1, as the last will: the broker has set the retained ``offline`` once it
        # acknowledges it, so a client that subscribes after the stop reads it (closing the
        # socket proves nothing: the broker may not have read the message yet).
        mid = self._publish(self.topics.bridge_availability, b"offline", True, QOS_WILL)
        if mid is not None:
            acked: Deferred[None] = Deferred()
            self._acked[mid] = acked
            acked.addTimeout(self.drain_timeout, self._reactor)
            try:
                await acked
            except TimeoutError:
                self._acked.pop(mid, None)
        self.connected = False
        # Unless the connection is gone already (the broker dropped it meanwhile).
        if self._descriptor is not None:
            await self._close(started)
        self._count_undelivered(mid)

    async def _close(self, started: float) -> None:
        """Send DISCONNECT and wait for the socket to close, within what is left of
        ``drain_timeout`` since ``started``; then close it ourselves."""
        closed: Deferred[None] = Deferred()
        self._closed.append(closed)
        self._client.disconnect()
        closed.addTimeout(
            max(0.0, self.drain_timeout - (self._reactor.seconds() - started)), self._reactor
        )
        try:
            await closed
        except TimeoutError:
            log.warn("mqtt broker did not take the disconnect in time; closing")
            descriptor = self._descriptor
            self._drop_socket()
            if descriptor is not None:
                descriptor.close()


def _invisible_uids(groups: Any) -> set[str | None]:
    """The uids of the invisible members of ``topology.changed`` groups, home-theatre
    satellites (nested under their soundbar) included."""
    found: set[str | None] = set()
    pending = [member for group in groups for member in group.get("members", ())]
    while pending:
        member = pending.pop()
        if member.get("invisible"):
            found.add(member.get("uid"))
        pending.extend(member.get("satellites", ()))
    return found


def _topic(msg: paho.MQTTMessage) -> str | None:
    """``msg``'s topic, or ``None`` when it is not UTF-8 (paho's ``topic`` raises then)."""
    try:
        return msg.topic
    except UnicodeDecodeError:
        return None
