"""Shared pieces of the end-to-end daemon tests: configuration, waiting, recording, HTTP.

The in-process tests (``tests/test_daemon.py``) build the whole ``SonosdService`` on the real
reactor; the subprocess tests (``tests/test_daemon_process.py``) run ``twistd``. Every wait is
bounded so that a broken daemon fails a test instead of hanging it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema
from twisted.internet import reactor as global_reactor
from twisted.internet.task import deferLater
from twisted.web.client import Agent, HTTPConnectionPool
from zope.interface import implementer

from sonosd.delivery.hub import ISink, Message
from tests.paths import ROOT

reactor: Any = global_reactor

#: The bound of every wait, in seconds.
WAIT = 20.0

#: The room names of the simulated speakers, in speaker order.
ROOMS = ("Kitchen", "Living Room", "Office")

#: Short subscription timers, to compress reboots and retries into seconds.
FAST_SUBSCRIPTION = {
    "request_timeout": 2.0,
    "backoff_initial": 0.2,
    "backoff_max": 0.5,
    "no_event_grace": 3.0,
    "poll_interval": 1.0,
    "availability_interval": 0.25,
    "shutdown_timeout": 2.0,
}


async def until(check: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Wait (polling every 20 ms) until ``check()`` is true; fail after ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout
    while not check():
        if reactor.seconds() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await deferLater(reactor, 0.02)


@implementer(ISink)
class Recorder:
    """A hub sink that keeps every message, in order."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def deliver(self, message: Message) -> None:
        self.messages.append(message)

    def of(
        self, type: str, uid: str | None = None, service: str | None = None, since: int = 0
    ) -> list[Message]:
        """The messages of ``type``, optionally about one speaker and service, from the
        ``since``-th message on."""
        return [
            m
            for m in self.messages[since:]
            if m.type == type
            and (uid is None or m.speaker_uid == uid)
            and (service is None or m.service == service)
        ]

    def has_volume(self, speaker: Any, since: int = 0) -> bool:
        """Whether a RenderingControl event of ``speaker`` (a simulated one) carries its
        current master volume, from the ``since``-th message on."""
        volume = speaker.rendering.volume
        return any(
            volume_of(m.body) == volume
            for m in self.of("event", speaker.uid, "RenderingControl", since=since)
        )

    def initial_events(self, uid: str, service: str) -> list[Message]:
        """The SEQ 0 (full state) events of one service of one speaker."""
        return [m for m in self.of("event", uid, service) if m.body.get("seq") == 0]


def volume_of(body: Mapping[str, Any]) -> object:
    """The master volume an ``event`` message body carries, or ``None``."""
    variables = body.get("variables") or {}
    volume = variables.get("volume") if isinstance(variables, Mapping) else None
    return volume.get("Master") if isinstance(volume, Mapping) else None


def is_volume_event(body: Mapping[str, Any], uid: str, volume: int) -> bool:
    """Whether ``body`` is a RenderingControl event of ``uid`` with master volume ``volume``."""
    return (
        body.get("type") == "event"
        and (body.get("speaker") or {}).get("uid") == uid
        and body.get("service") == "RenderingControl"
        and volume_of(body) == volume
    )


#: What ``record_callback`` received: ``(body, event)`` pairs, from the callbacks' threads.
CALLBACK_CALLS: list[tuple[dict[str, Any], Any]] = []
_CALLBACK_LOCK = threading.Lock()


def record_callback(body: dict[str, Any], event: Any) -> None:
    """A ``sinks.callbacks`` target (``tests.daemon_helpers:record_callback``)."""
    with _CALLBACK_LOCK:
        CALLBACK_CALLS.append((body, event))


def callback_calls() -> list[tuple[dict[str, Any], Any]]:
    """A copy of what ``record_callback`` received so far."""
    with _CALLBACK_LOCK:
        return list(CALLBACK_CALLS)


def daemon_yaml(
    base: str,
    *,
    api: str = "tcp:0:interface=127.0.0.1",
    simulate: bool = True,
    devices: tuple[str, ...] = (),
    callbacks: tuple[str, ...] = (),
    speakers: int = len(ROOMS),
) -> str:
    """A daemon configuration (YAML text) for loopback tests.

    @param base: The first simulated speaker's address.
    @param simulate: Run the household in process (else follow ``devices``).
    """
    document: dict[str, Any] = {
        "listener": {"interface": "127.0.0.1", "port": 0},
        "api": {"listen": api},
        "subscription": FAST_SUBSCRIPTION,
        "soco": {"threads": 4, "call_timeout": 5.0},
        "log": {"level": "info"},
    }
    if simulate:
        document["simulate"] = {
            "speakers": speakers,
            "base_address": base,
            "rooms": list(ROOMS[:speakers]),
            "activity": 0,
        }
    if devices:
        document["devices"] = [{"host": host} for host in devices]
    if callbacks:
        document["sinks"] = {"callbacks": list(callbacks)}
    # JSON is YAML: no quoting surprises.
    return json.dumps(document, indent=2)


def free_tcp_port(interface: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``interface`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((interface, 0))
        port: int = probe.getsockname()[1]
        return port


#: docs/messages.md: "the tests validate every message the code produces against" the schema.
MESSAGE_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((ROOT / "sonosd" / "message.schema.json").read_text(encoding="utf-8"))
)


def schema_errors(body: Mapping[str, Any]) -> list[str]:
    """What in a message body (its JSON, as a client reads it) breaks the message schema."""
    return [
        f"{error.message} at /{'/'.join(map(str, error.absolute_path))}"
        for error in MESSAGE_SCHEMA.iter_errors(json.loads(json.dumps(body)))
    ]


def start_recorded(case: Any, service: Any) -> Recorder:
    """Start a daemon's service with a L{Recorder} on its hub; stopped when the test ends,
    after checking every message the daemon published, and its last snapshot, against the
    message schema."""
    recorder = Recorder()
    service.hub.add_sink(recorder)
    service.startService()
    case.addCleanup(lambda: service.stopService() if service.running else None)
    case.addCleanup(check_schema, recorder, service.hub)
    return recorder


def check_schema(recorder: Recorder, hub: Any) -> None:
    """Fail when a recorded message, or the hub's snapshot, breaks the message schema."""
    bodies = [message.body for message in recorder.messages]
    bodies.append(hub.snapshot())
    broken = [(body, errors) for body in bodies if (errors := schema_errors(body))]
    if broken:
        body, errors = broken[0]
        raise AssertionError(
            f"{len(broken)} messages break message.schema.json, the first "
            f"{json.dumps(body)[:500]}: {'; '.join(errors)}"
        )


def http_agent(case: Any) -> Agent:
    """An HTTP agent without persistent connections (nothing left open after a test)."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    case.addCleanup(pool.closeCachedConnections)
    return Agent(reactor, pool=pool)
