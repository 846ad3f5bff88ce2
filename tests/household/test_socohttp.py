"""Tests for sonosd.household.socohttp: SoCo's answers from speakers are bounded in size and
time and refused with a DTD, against simulated speakers told to answer like hostile ones."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from typing import Any

import pytest
import soco
import soco.core
import soco.services
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from sonosd.config import SimulateConfig
from sonosd.household import socohttp
from sonosd.household.socohttp import AnswerRefused, BoundedRequests
from sonosd.sim.service import HouseholdService
from sonosd.sim.soap import SoapFaults, hostile_answer
from tests.conftest import free_loopback_base
from tests.soco_helpers import in_thread
from tests.stdlib_http import serving


class BoundedSocoTests(TestCase):
    """SoCo calls against a simulated speaker with SOAP faults, through the bounded HTTP."""

    timeout = 60

    def setUp(self) -> Deferred[Any]:
        config = SimulateConfig(speakers=1, base_address=free_loopback_base(count=1))
        self.service = HouseholdService(reactor, config)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.speaker = self.service.household.speakers[0]
        saved = {name: module.requests for name, module in self.modules()}
        saved["prettify"] = soco.services.prettify
        socohttp.install(BoundedRequests(max_bytes=1_000_000, deadline=2.0))
        self.addCleanup(self.restore, saved)
        done: Deferred[Any] = Deferred()
        done.callback(None)
        return done

    @staticmethod
    def modules() -> list[tuple[str, Any]]:
        return [("soco.services", soco.services), ("soco.core", soco.core)]

    def restore(self, saved: dict[str, Any]) -> None:
        for name, module in self.modules():
            module.requests = saved[name]
        soco.services.prettify = saved["prettify"]

    async def volume(self) -> Any:
        device = soco.SoCo(self.speaker.address)
        return await in_thread(
            lambda: device.renderingControl.GetVolume([("InstanceID", 0), ("Channel", "Master")])
        )

    async def test_plain_answers_pass(self) -> None:
        """An ordinary answer reaches SoCo unchanged."""
        self.speaker.set_volume(33)
        self.assertEqual((await self.volume())["CurrentVolume"], "33")

    async def test_no_proxy_from_the_environment_and_one_connection_per_request(self) -> None:
        """A proxy named in the environment is not used for speakers (they are on the local
        network), and each request asks the speaker to close the connection after it."""
        self.speaker.set_volume(21)
        bounded = BoundedRequests(deadline=2.0)
        url = f"http://{self.speaker.address}:1400/xml/device_description.xml"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("http_proxy", "http://127.0.0.1:9")
            patch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
            self.assertEqual((await self.volume())["CurrentVolume"], "21")
            answer = await in_thread(lambda: bounded.get(url, timeout=2))
        self.assertEqual(answer.status_code, 200)
        self.assertEqual(answer.headers.get("Connection", "").lower(), "close")

    async def test_oversized_answer_is_refused(self) -> None:
        """An answer over max_bytes is refused before it is read whole or parsed."""
        self.speaker.soap_faults.padding = 5_000_000
        with self.assertRaises(AnswerRefused) as refused:
            await self.volume()
        self.assertIn("over 1000000 bytes", str(refused.exception))

    async def test_expanding_dtd_is_refused(self) -> None:
        """An answer declaring entities is refused (SoCo's parser would expand 5 MB)."""
        self.speaker.soap_faults.doctype = True
        with self.assertRaises(AnswerRefused) as refused:
            await self.volume()
        self.assertIn("document type or entity", str(refused.exception))

    async def test_a_dripping_answer_is_cut_at_the_deadline(self) -> None:
        """An answer dripping 1 KiB every 0.5 s is cut at the 2 s deadline, not read for 10 s."""
        self.speaker.soap_faults.padding = 20_000
        self.speaker.soap_faults.drip = 0.5
        started = time.monotonic()
        with self.assertRaises(AnswerRefused) as refused:
            await self.volume()
        self.assertIn("took more than 2 s", str(refused.exception))
        self.assertLess(time.monotonic() - started, 9.0)


class Answer:
    """What the watchdog shuts: a streamed answer's socket."""

    def __init__(self) -> None:
        self.left, self.right = socket.socketpair()
        self.raw = type("Raw", (), {"_connection": type("C", (), {"sock": self.left})()})()

    def shut(self) -> bool:
        """Whether the socket was shut (a read returns at once with nothing, though the other
        end is open)."""
        self.left.settimeout(0.1)
        try:
            return self.left.recv(1) == b""
        except TimeoutError:
            return False
        finally:
            self.left.close()
            self.right.close()


def test_watchdog_shuts_late_answers_only() -> None:
    """One watchdog thread shuts the socket of an answer past its deadline, not of one
    disarmed in time; disarmed deadlines far ahead are dropped, not kept until due."""
    watchdog = socohttp.Watchdog()
    late, early = Answer(), Answer()
    now = time.monotonic()
    watchdog.arm(now + 0.2, late)  # type: ignore[arg-type]
    watchdog.disarm(watchdog.arm(now + 0.1, early))  # type: ignore[arg-type]
    for _ in range(500):
        watchdog.disarm(watchdog.arm(now + 3600, early))  # type: ignore[arg-type]
    assert len(watchdog._due) < 200
    time.sleep(0.5)
    assert late.shut()
    assert not early.shut()


def test_watchdog_outlives_an_answer_it_cannot_shut() -> None:
    """An answer whose socket cannot be shut is logged; later deadlines are still kept."""

    class Broken:
        @property
        def raw(self) -> object:
            raise RuntimeError("no raw")

    watchdog = socohttp.Watchdog()
    watchdog.arm(time.monotonic(), Broken())  # type: ignore[arg-type]
    late = Answer()
    watchdog.arm(time.monotonic() + 0.2, late)  # type: ignore[arg-type]
    time.sleep(0.5)
    assert late.shut()
    assert watchdog._thread is not None and watchdog._thread.is_alive()


def test_no_cookies_kept_between_calls() -> None:
    """A cookie an answer sets is not sent with the next call (as requests.request)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (self.headers.get("Cookie") or "none").encode()
            self.send_response(200)
            self.send_header("Set-Cookie", "session=1; Path=/")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    with serving(Handler) as base:
        url = f"{base}/"
        bounded = BoundedRequests(deadline=5.0)
        assert bounded.get(url, timeout=5).content == b"none"
        assert bounded.get(url, timeout=5).content == b"none"


def test_pretty_request_only_when_shown() -> None:
    """SoCo's request body is pretty-printed when a debug line shows it, not before."""
    from soco.utils import prettify

    body = "<s:Envelope xmlns:s='x'><s:Body/></s:Envelope>"
    assert str(socohttp.Pretty(body)) == prettify(body)
    assert socohttp.Pretty("not xml").text == "not xml"


def test_nested_documents_with_a_dtd_are_refused() -> None:
    """A DTD escaped once or twice inside an out-argument is found too."""
    bounded = BoundedRequests()
    once = (
        b"<s:Envelope><u:R><X>&lt;!DOCTYPE a [&lt;!ENTITY b 'c'&gt;]&gt;&lt;a/&gt;</X></u:R>"
        b"</s:Envelope>"
    )
    twice = once.replace(b"&lt;", b"&amp;lt;").replace(b"&gt;", b"&amp;gt;")
    refs = once.replace(b"&lt;!", b"&#60;&#33;")
    for body in (once, twice, refs):
        with pytest.raises(AnswerRefused):
            bounded.check(body, "http://speaker/")
    bounded.check(b"<s:Envelope><X>&lt;DIDL-Lite/&gt; &amp;amp; </X></s:Envelope>", "u")


@settings(max_examples=100)
@given(
    st.integers(0, 3_000_000),
    st.booleans(),
    st.binary(max_size=200),
)
def test_hostile_answers_are_refused_by_rule(padding: int, doctype: bool, filler: bytes) -> None:
    """Whatever a hostile speaker adds, the answer is accepted only within the size bound and
    without a DTD at any checked level."""
    answer = b"<s:Envelope><s:Body><u:GetVolumeResponse><CurrentVolume>3</CurrentVolume>"
    answer += filler.replace(b"<", b"&lt;") + b"</u:GetVolumeResponse></s:Body></s:Envelope>"
    hostile = hostile_answer(answer, SoapFaults(padding=padding, doctype=doctype))
    bounded = BoundedRequests(max_bytes=2_000_000)
    try:
        bounded.check_size(len(hostile), "u")
        bounded.check(hostile, "u")
    except AnswerRefused:
        assert doctype or len(hostile) > 2_000_000 or b"!" in filler
    else:
        assert not doctype and len(hostile) <= 2_000_000


def test_one_session_per_pool_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each thread sends all its calls through one requests session of its own (docs/design.md,
    Speed: no proxy or .netrc lookups per call), and threads never share one."""

    import requests

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            """Quiet."""

    used: list[tuple[str, int]] = []
    original = requests.Session.request

    def recording(self: requests.Session, *args: Any, **kwargs: Any) -> Any:
        used.append((threading.current_thread().name, id(self)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording)
    with serving(Handler) as base:
        url = f"{base}/"
        bounded = BoundedRequests(deadline=5.0)
        sessions: dict[str, object] = {}

        def calls() -> None:
            for _ in range(3):
                assert bounded.get(url, timeout=5).content == b"ok"
            sessions[threading.current_thread().name] = socohttp._session()

        workers = [threading.Thread(target=calls, name=f"pool-{n}") for n in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
    assert sorted(name for name, _ in used) == ["pool-0"] * 3 + ["pool-1"] * 3
    by_thread = {name: {session for n, session in used if n == name} for name, _ in used}
    assert by_thread == {name: {id(session)} for name, session in sessions.items()}
    assert by_thread["pool-0"] != by_thread["pool-1"]
