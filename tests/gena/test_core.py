"""Tests for sonosd.gena.core: the GENA client without SoCo (what the daemon subscribes with).

Its behaviour is tested through the public ``Subscription`` built on it
(tests/gena/test_subscription.py); here what is the core's own: no SoCo, its own errors and
events, a ``ServiceRef`` for a service.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

from soco.exceptions import SoCoException
from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from sonosd.gena import core
from sonosd.gena.event import Event
from tests.gena.test_subscription import (
    EVENT_URL,
    SID,
    SPEAKER,
    Answer,
    RecordingListener,
    ScriptedSpeaker,
)

#: Importing what the daemon's GENA side and household are made of loads none of SoCo's stack.
CHILD = """
import sys
import sonosd.gena.core, sonosd.gena.listener, sonosd.gena.eventxml
import sonosd.household.supervisor, sonosd.household.speaker, sonosd.household.events
import sonosd.control.controller, sonosd.service
print(sorted(m for m in ("soco", "requests", "urllib3", "lxml", "xmltodict") if m in sys.modules))
"""


def test_no_soco_imported() -> None:
    """The GENA core, the household, the controller and the service import no SoCo,
    requests, urllib3, lxml or xmltodict."""
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


#: Importing the whole GENA library, the SoCo-compatible module included, installs no reactor.
NO_REACTOR = """
import sys
import sonosd.gena, sonosd.gena.subscription, sonosd.gena.listener, sonosd.gena.core
import sonosd.gena.notifyport, sonosd.gena.notifyproto, sonosd.gena.httpclient
from sonosd.gena import Subscription, SubscriptionGone, GenaError, close_default_listener
print("twisted.internet.reactor" in sys.modules)
"""


def test_importing_the_library_installs_no_reactor() -> None:
    """docs/gena.md: library code never installs a reactor; it is passed in, and only the
    compatibility path imports the global one, lazily (SoCo's module imports it at once)."""
    done = subprocess.run(
        [sys.executable, "-c", NO_REACTOR], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def ref() -> core.ServiceRef:
    """The RenderingControl of the test speaker."""
    return core.ServiceRef(
        base_url=f"http://{SPEAKER}:1400",
        event_subscription_url=EVENT_URL,
        service_type="RenderingControl",
        uid="RINCON_1",
        household_id="Sonos_1",
    )


class BaseSubscriptionTests(SynchronousTestCase):
    """A BaseSubscription of a ServiceRef: SUBSCRIBE, events as they come, its own errors."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.speaker = ScriptedSpeaker()
        self.listener = RecordingListener()
        self.subscription = core.BaseSubscription(
            ref(),
            self.listener,
            reactor=self.clock,
            http=HTTPClient(RequestTraversalAgent(self.speaker)),
        )

    def test_subscribes_to_the_refs_event_url(self) -> None:
        """SUBSCRIBE goes to the ServiceRef's event URL; the speaker's address is the only
        NOTIFY source; the listener registers the SID."""
        self.successResultOf(self.subscription.subscribe(requested_timeout=600))
        assert self.speaker.methods() == ["SUBSCRIBE"]
        assert (self.subscription.sid, self.subscription.speaker_host) == (SID, SPEAKER)
        assert self.listener.registered == {SID: self.subscription}
        assert self.subscription.event_path == EVENT_URL

    def test_events_reach_the_callback_as_they_are(self) -> None:
        """The listener's Event reaches the callback unchanged (no SoCo Event is made)."""
        received: list[Any] = []
        self.subscription.callback = received.append
        event = Event(SID, "0", ref(), 1.0, {"volume": {"Master": "5"}})
        self.subscription.send_event(event)
        assert received == [event]

    def test_errors_are_the_cores(self) -> None:
        """A 412 fails with the core's SubscriptionGone, which is no SoCoException."""
        self.speaker.script.append(Answer(412, {}))
        failure = self.failureResultOf(self.subscription.subscribe(), core.SubscriptionGone)
        assert not isinstance(failure.value, SoCoException)
        assert failure.value.status == 412

    def test_listener_must_run(self) -> None:
        """Without a listener the subscription refuses to subscribe (UsageError)."""
        subscription = core.BaseSubscription(
            ref(), None, reactor=self.clock, http=HTTPClient(RequestTraversalAgent(self.speaker))
        )
        self.failureResultOf(subscription.subscribe(), core.UsageError)
        assert self.speaker.requests == []


def test_check_response_refuses_bad_sids_and_timeouts() -> None:
    """A granted SID that is not ``uuid:`` and up to 250 printable ASCII characters, and a
    TIMEOUT of ``Second-0`` or over 18 digits, fail with a GenaError naming the header and
    at most 40 characters of it; a Sonos SID and ``Second-99999999999999`` are taken."""
    sonos = "uuid:RINCON_000E58A0123401400_sub0000000123"
    taken = core.check_response(
        "SUBSCRIBE",
        200,
        {"sid": sonos, "timeout": "Second-99999999999999"},
        need_sid=True,
        need_timeout=True,
    )
    assert (taken.sid, taken.timeout) == (sonos, 99999999999999)
    refused = [
        ({"sid": "garbage"}, "SUBSCRIBE: bad GENA SID: 'garbage'"),
        ({"sid": "uuid:"}, "SUBSCRIBE: bad GENA SID: 'uuid:'"),
        ({"sid": "uuid:a b"}, "SUBSCRIBE: bad GENA SID: 'uuid:a b'"),
        ({"sid": "uuid:" + "x" * 251}, "SUBSCRIBE: bad GENA SID: 'uuid:" + "x" * 35 + "'"),
        ({"timeout": "Second-0"}, "SUBSCRIBE: bad GENA TIMEOUT: 'Second-0'"),
        (
            {"timeout": "Second-" + "9" * 19},
            "SUBSCRIBE: bad GENA TIMEOUT: 'Second-" + "9" * 19 + "'",
        ),
        (
            {"timeout": "Second-" + "9" * 5000},
            "SUBSCRIBE: bad GENA TIMEOUT: 'Second-" + "9" * 33 + "'",
        ),
    ]
    for change, message in refused:
        headers = {"sid": sonos, "timeout": "Second-600", **change}
        try:
            core.check_response("SUBSCRIBE", 200, headers, need_sid=True, need_timeout=True)
        except core.GenaError as error:
            assert (error.status, error.message) == (200, message)
        else:
            raise AssertionError(f"{change} was taken")


def test_service_ref_is_a_services_stand_in() -> None:
    """A ServiceRef answers what SoCo's Service answers for a subscription."""
    service = ref()
    assert service.service_id == "RenderingControl"
    assert service.base_url + service.event_subscription_url == (
        f"http://{SPEAKER}:1400/MediaRenderer/RenderingControl/Event"
    )


class ConnectionFailureTests(TestCase):
    """A speaker that refuses the connection, on the real reactor over loopback."""

    async def test_refused_connection_is_gena_error_none_caused_by_the_refusal(self) -> None:
        """A SUBSCRIBE whose connection is refused fails with ``GenaError(None)`` raised from
        the original error, so that ``__cause__`` tells a refusal from other failures."""
        from twisted.internet import reactor

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # Nothing listens on ``port`` now: the connection is refused.
        service = core.ServiceRef(
            f"http://127.0.0.1:{port}", EVENT_URL, "RenderingControl", "RINCON_1", "Sonos_1"
        )
        pool = HTTPConnectionPool(reactor, persistent=False)
        subscription = core.BaseSubscription(
            service,
            RecordingListener(),
            reactor=reactor,
            http=HTTPClient(Agent(reactor, pool=pool)),
            request_timeout=10.0,
        )
        with self.assertRaises(core.GenaError) as caught:
            await subscription.subscribe()
        assert caught.exception.status is None
        assert isinstance(caught.exception.__cause__, ConnectionRefusedError)
        assert not subscription.is_subscribed


def test_an_unsubscribe_answer_is_its_status() -> None:
    """An UNSUBSCRIBE answer's SID and TIMEOUT (speakers send none) are not read: a 200 with
    garbage in them ended the subscription all the same; its status still counts."""
    headers = {"sid": "garbage", "timeout": "Second-0"}
    answer = core.check_response("UNSUBSCRIBE", 200, headers, need_sid=False, need_timeout=False)
    assert answer == core.GenaResponse(200)
    try:
        core.check_response("UNSUBSCRIBE", 500, headers, need_sid=False, need_timeout=False)
    except core.GenaError as error:
        assert error.status == 500
    else:
        raise AssertionError("a 500 was taken")
