"""Tests for sonosd.sinks.callbacks: ordered, bounded, isolated Python callbacks."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.logger import LogEvent, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sonosd.config import parse_config
from sonosd.delivery.hub import Hub
from sonosd.sinks import callbacks as callbacks_module
from sonosd.sinks.callbacks import (
    CallbackLoadError,
    CallbackSink,
    ThreadWorker,
    callable_name,
    load_callable,
)
from tests.paths import ROOT

SPEAKER = {"uid": "RINCON_000E58A0123401400", "name": "Kitchen", "host": "127.0.0.2"}


class SyncReactor(Clock):
    """A Clock whose ``callFromThread`` runs the call at once (the memory worker's thread)."""

    def callFromThread(self, f: Callable[..., object], *args: object, **kw: object) -> None:
        f(*args, **kw)


class MemoryWorker:
    """A worker that runs queued work only when the test says so."""

    def __init__(self) -> None:
        self.queue: list[Callable[[], None]] = []
        self.quitted = False

    def do(self, work: Callable[[], None]) -> None:
        self.queue.append(work)

    def quit(self) -> None:
        self.quitted = True

    def perform(self) -> None:
        self.queue.pop(0)()

    def perform_all(self) -> None:
        while self.queue:
            self.perform()


class Recorder:
    """A callback that records the ids it receives and the events it was given."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.events: list[Any] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any], event: Any) -> None:
        self.ids.append(body["id"])
        self.events.append(event)
        self.bodies.append(body)


def capture_logs(case: SynchronousTestCase) -> list[LogEvent]:
    """Collect every log event emitted during the test."""
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    case.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


class MemoryWorkerTests(SynchronousTestCase):
    """The sink's queueing, ordering and error handling, with workers run by hand."""

    def setUp(self) -> None:
        self.reactor = SyncReactor()
        self.workers: dict[str, MemoryWorker] = {}
        self.hub = Hub(self.reactor)

    def factory(self, name: str) -> MemoryWorker:
        worker = MemoryWorker()
        self.workers[name] = worker
        return worker

    def make_sink(self, *callbacks: Any, queue: int = 10) -> CallbackSink:
        sink = CallbackSink(self.reactor, callbacks, queue=queue, worker_factory=self.factory)
        self.hub.add_sink(sink)
        return sink

    def publish(self, count: int, event: object = None) -> None:
        for n in range(count):
            self.hub.publish("event", {"n": n}, speaker=SPEAKER, service="AVTransport", event=event)

    def test_order_and_arguments(self) -> None:
        """Each callback receives every message in order, as a dict plus the SoCo event."""
        recorder = Recorder()
        marker = object()
        self.make_sink(recorder)
        self.publish(3, event=marker)
        self.workers[callable_name(recorder)].perform_all()
        self.assertEqual(recorder.ids, [1, 2, 3])
        self.assertEqual(recorder.events, [marker, marker, marker])
        self.assertEqual(recorder.bodies[0]["speaker"]["name"], "Kitchen")

    def test_one_call_at_a_time(self) -> None:
        """Only one message per callback is handed to its worker until that call returns."""
        recorder = Recorder()
        sink = self.make_sink(recorder)
        self.publish(4)
        worker = self.workers[callable_name(recorder)]
        self.assertEqual(len(worker.queue), 1)
        self.assertEqual(sink.stats()[callable_name(recorder)]["queued"], 4)
        worker.perform()
        self.assertEqual(len(worker.queue), 1)
        self.assertEqual(recorder.ids, [1])

    def test_each_callback_gets_its_own_dict(self) -> None:
        """A callback that changes its body does not change what another callback receives."""

        def vandal(body: dict[str, Any], event: Any) -> None:
            body["speaker"]["name"] = "changed"

        recorder = Recorder()
        self.make_sink(vandal, recorder)
        self.publish(1)
        self.workers[callable_name(vandal)].perform_all()
        self.workers[callable_name(recorder)].perform_all()
        self.assertEqual(recorder.bodies[0]["speaker"]["name"], "Kitchen")

    def test_bounded_queue_drops_oldest(self) -> None:
        """A full queue drops its oldest messages, counts them and logs once per episode."""
        logs = capture_logs(self)
        recorder = Recorder()
        sink = self.make_sink(recorder, queue=3)
        self.publish(10)
        name = callable_name(recorder)
        # Message 1 went to the worker at once; 2..10 queued behind it, 3 kept.
        self.assertEqual(sink.stats()[name]["dropped"], 6)
        self.workers[name].perform_all()
        self.assertEqual(recorder.ids, [1, 8, 9, 10])
        lines = [
            (e["log_level"], e["log_format"].split(" ")[2], e.get("count"))
            for e in logs
            if e.get("callable") == name
        ]
        # A warning naming the callable at the first drop, the count once it caught up.
        self.assertEqual(lines, [(LogLevel.warn, "is", None), (LogLevel.warn, "caught", 6)])

    def test_raising_callback_logged_and_continues(self) -> None:
        """An exception is logged with the callable's name and the next message still comes."""
        logs = capture_logs(self)
        seen: list[int] = []

        def flaky(body: dict[str, Any], event: Any) -> None:
            seen.append(body["id"])
            if body["id"] == 1:
                raise RuntimeError("boom")

        sink = self.make_sink(flaky)
        self.publish(2)
        self.workers[callable_name(flaky)].perform_all()
        self.assertEqual(seen, [1, 2])
        stats = sink.stats()[callable_name(flaky)]
        self.assertEqual((stats["delivered"], stats["failed"]), (1, 1))
        failures = [e for e in logs if "log_failure" in e]
        self.assertEqual(len(failures), 1)
        self.assertEqual(failures[0]["callable"], callable_name(flaky))
        self.assertIsInstance(failures[0]["log_failure"].value, RuntimeError)
        self.flushLoggedErrors(RuntimeError)

    def test_remove(self) -> None:
        """A removed callback gets no more messages and its worker is told to quit."""
        recorder = Recorder()
        sink = self.make_sink(recorder)
        self.publish(2)
        worker = self.workers[callable_name(recorder)]
        sink.remove(recorder)
        self.assertTrue(worker.quitted)
        worker.perform_all()
        self.publish(1)
        self.assertEqual(recorder.ids, [1])
        self.assertEqual(sink.stats(), {})

    def test_stop_drains(self) -> None:
        """stopService waits for the queued messages, then ends the workers."""
        recorder = Recorder()
        sink = self.make_sink(recorder)
        sink.startService()
        self.publish(2)
        stopped = sink.stopService()
        self.assertNoResult(stopped)
        worker = self.workers[callable_name(recorder)]
        worker.perform_all()
        self.successResultOf(stopped)
        self.assertEqual(recorder.ids, [1, 2])
        self.assertTrue(worker.quitted)

    def test_stop_gives_up_after_timeout(self) -> None:
        """A callback still busy after drain_timeout is abandoned and the messages it did
        not finish, the call handed to its worker included, are counted in the log."""
        logs = capture_logs(self)
        recorder = Recorder()
        sink = CallbackSink(
            self.reactor, [recorder], drain_timeout=2.0, worker_factory=self.factory
        )
        self.hub.add_sink(sink)
        sink.startService()
        self.publish(3)
        stopped = sink.stopService()
        self.reactor.advance(1.9)
        self.assertNoResult(stopped)
        self.reactor.advance(0.2)
        self.successResultOf(stopped)
        worker = self.workers[callable_name(recorder)]
        self.assertTrue(worker.quitted)
        lost = [e for e in logs if e.get("count") == 3 and "not delivered" in e["log_format"]]
        self.assertEqual(len(lost), 1)
        # The call that was running finishes later without harm; nothing else runs.
        worker.perform_all()
        self.assertEqual(recorder.ids, [1])

    def test_default_queue_and_shutdown_bound(self) -> None:
        """As the daemon builds it (the defaults), a callable has 1,000 messages waiting at
        most and 5 s to finish them at shutdown; the messages it did not get are logged."""
        logs = capture_logs(self)
        recorder = Recorder()
        sink = CallbackSink(self.reactor, [recorder], worker_factory=self.factory)
        self.hub.add_sink(sink)
        sink.startService()
        self.publish(1_002)
        # One running, 1,000 waiting, the oldest waiting one dropped.
        stats = sink.stats()[callable_name(recorder)]
        self.assertEqual((stats["queued"], stats["dropped"]), (1_001, 1))
        stopped = sink.stopService()
        self.reactor.advance(4.9)
        self.assertNoResult(stopped)
        self.reactor.advance(0.2)
        self.successResultOf(stopped)
        lost = [e for e in logs if "not delivered" in e["log_format"]]
        self.assertEqual([e["count"] for e in lost], [1_001])

    def test_stop_with_nothing_queued(self) -> None:
        """stopService with idle callbacks finishes at once."""
        sink = self.make_sink(Recorder())
        sink.startService()
        self.successResultOf(sink.stopService())

    def test_the_documented_embedding(self) -> None:
        """As docs/callbacks.md embeds it: configured names and a callable added with its own
        name and queue, each counted under its name; ``remove`` stops calling it."""
        module = types.ModuleType("sonosd_test_callbacks_doc")
        recorder = Recorder()
        module.on_message = recorder  # type: ignore[attr-defined]
        sys.modules[module.__name__] = module
        self.addCleanup(sys.modules.pop, module.__name__)
        sink = CallbackSink(
            self.reactor, ["sonosd_test_callbacks_doc:on_message"], worker_factory=self.factory
        )
        printed: list[int] = []

        def printer(body: dict[str, Any], event: Any) -> None:
            printed.append(body["id"])

        sink.add(printer, name="printer", queue=100)
        self.hub.add_sink(sink)
        sink.startService()
        self.publish(102)
        self.assertEqual(
            {name: (stats["queued"], stats["dropped"]) for name, stats in sink.stats().items()},
            {"sonosd_test_callbacks_doc:on_message": (102, 0), "printer": (101, 1)},
        )
        for worker in self.workers.values():
            worker.perform_all()
        self.assertEqual((recorder.ids, printed), (list(range(1, 103)), [1, *range(3, 103)]))
        sink.remove(printer)
        self.publish(1)
        self.workers["sonosd_test_callbacks_doc:on_message"].perform_all()
        self.assertEqual((recorder.ids[-1], printed[-1]), (103, 102))
        self.assertEqual(list(sink.stats()), ["sonosd_test_callbacks_doc:on_message"])
        self.assertEqual(
            sink.stats()["sonosd_test_callbacks_doc:on_message"],
            {"delivered": 103, "failed": 0, "dropped": 0, "queued": 0},
        )

    def test_the_documented_configuration(self) -> None:
        """The ``sinks.callbacks`` example of docs/callbacks.md loads as written."""
        text = (ROOT / "docs" / "callbacks.md").read_text(encoding="utf-8")
        example = text[text.index("```yaml\n") + len("```yaml\n") :]
        example = example[: example.index("```")]
        config = parse_config(example, "callbacks.md")
        self.assertEqual(
            config.sinks.callbacks, ("myhome.sonos:on_message", "myhome.sonos:Recorder.handle")
        )

    def test_loads_configured_names(self) -> None:
        """Strings are imported as ``module:function`` and named so in stats."""
        module = types.ModuleType("sonosd_test_callbacks_mod")
        recorder = Recorder()
        module.handler = recorder  # type: ignore[attr-defined]
        sys.modules[module.__name__] = module
        self.addCleanup(sys.modules.pop, module.__name__)
        sink = self.make_sink("sonosd_test_callbacks_mod:handler")
        self.publish(1)
        self.workers["sonosd_test_callbacks_mod:handler"].perform_all()
        self.assertEqual(recorder.ids, [1])
        self.assertEqual(list(sink.stats()), ["sonosd_test_callbacks_mod:handler"])


class LoadCallableTests(SynchronousTestCase):
    """Loading ``package.module:function`` names from the configuration."""

    def test_function(self) -> None:
        """A module-level function is found."""
        self.assertIs(load_callable("json:dumps"), __import__("json").dumps)

    def test_nested_attribute(self) -> None:
        """A dotted attribute path after the colon is followed."""
        self.assertEqual(load_callable("json:JSONDecoder.decode").__name__, "decode")

    def test_missing_module(self) -> None:
        """An unimportable module gives one line naming the callable and the module."""
        with self.assertRaises(CallbackLoadError) as caught:
            load_callable("no_such_package_xyz.handlers:on_event")
        text = str(caught.exception)
        self.assertIn("'no_such_package_xyz.handlers:on_event'", text)
        self.assertIn("ModuleNotFoundError", text)
        self.assertNotIn("\n", text)

    def test_missing_attribute(self) -> None:
        """A missing function is named in one line of the documented form."""
        with self.assertRaises(CallbackLoadError) as caught:
            load_callable("json:no_such_function")
        self.assertEqual(
            str(caught.exception),
            "callback 'json:no_such_function': 'json' has no attribute 'no_such_function'",
        )

    def test_not_callable(self) -> None:
        """An attribute that cannot be called is refused."""
        with self.assertRaises(CallbackLoadError) as caught:
            load_callable("json:__name__")
        self.assertIn("not callable", str(caught.exception))

    def test_bad_syntax(self) -> None:
        """A name without ``:`` or with an empty side is refused."""
        for spec in ("json.dumps", ":dumps", "json:"):
            with self.assertRaises(CallbackLoadError):
                load_callable(spec)

    def test_import_error_inside_module(self) -> None:
        """A module that raises while importing is reported, not propagated."""
        module_name = "sonosd_test_callbacks_broken"
        sys.modules.pop(module_name, None)

        class Finder:
            def find_spec(self, name: str, path: object, target: object = None) -> None:
                if name == module_name:
                    raise ImportError("broken on purpose")

        finder = Finder()
        sys.meta_path.insert(0, finder)  # type: ignore[arg-type]
        self.addCleanup(sys.meta_path.remove, finder)  # type: ignore[arg-type]
        with self.assertRaises(CallbackLoadError) as caught:
            load_callable(f"{module_name}:f")
        self.assertIn("broken on purpose", str(caught.exception))


class ThreadedTests(TestCase):
    """Real worker threads: a slow or raising callback never holds up the others."""

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.hub = Hub(reactor)

    async def test_slow_and_raising_callbacks_do_not_block_others(self) -> None:
        """While one callback is stuck and another raises, a third receives every message."""
        release = threading.Event()
        self.addCleanup(release.set)
        reactor = self.reactor
        done: Deferred[list[int]] = Deferred()
        fast_ids: list[int] = []
        slow_ids: list[int] = []
        main_thread = threading.current_thread()
        threads: set[str] = set()
        slow_started = threading.Event()

        def slow(body: dict[str, Any], event: Any) -> None:
            slow_ids.append(body["id"])
            slow_started.set()
            release.wait(60)

        def bad(body: dict[str, Any], event: Any) -> None:
            raise ValueError("bad callback")

        def fast(body: dict[str, Any], event: Any) -> None:
            threads.add(threading.current_thread().name)
            assert threading.current_thread() is not main_thread
            fast_ids.append(body["id"])
            if len(fast_ids) == 20:
                reactor.callFromThread(done.callback, list(fast_ids))

        sink = CallbackSink(reactor, [slow, bad], queue=5, drain_timeout=5.0)
        sink.add(fast, queue=100)
        self.hub.add_sink(sink)
        sink.startService()
        for n in range(20):
            self.hub.publish("event", {"n": n}, speaker=SPEAKER, service="AVTransport")
        received = await done
        self.assertEqual(received, list(range(1, 21)))
        self.assertEqual(len(threads), 1)
        # The fast worker may finish before the slow one's thread has run at all.
        self.assertTrue(await deferToThread(slow_started.wait, 30))
        self.assertEqual(slow_ids, [1])
        self.assertEqual(sink.stats()[callable_name(slow)]["dropped"], 20 - 1 - 5)
        release.set()
        await sink.stopService()
        self.assertEqual(slow_ids, [1, 16, 17, 18, 19, 20])
        self.assertEqual(sink.stats()[callable_name(bad)]["failed"], 6)
        self.flushLoggedErrors(ValueError)

    async def test_the_soco_event_is_made_in_the_callables_thread(self) -> None:
        """The SoCo Event a callable gets is made from the daemon's event in the callable's
        own thread (so the reactor thread never loads SoCo for it), just before the call."""
        made_in: list[threading.Thread] = []
        called_in: list[tuple[threading.Thread, Any]] = []
        done: Deferred[None] = Deferred()
        daemon_event = object()

        def convert(event: object) -> object:
            made_in.append(threading.current_thread())
            return ("soco", event) if event is not None else None

        def record(body: dict[str, Any], event: Any) -> None:
            called_in.append((threading.current_thread(), event))
            self.reactor.callFromThread(done.callback, None)

        self.patch(callbacks_module, "soco_event", convert)
        sink = CallbackSink(self.reactor, [record])
        self.hub.add_sink(sink)
        sink.startService()
        self.hub.publish("event", {}, speaker=SPEAKER, service="AVTransport", event=daemon_event)
        await done
        await sink.stopService()
        [(thread, event)] = called_in
        self.assertEqual((made_in, event), ([thread], ("soco", daemon_event)))
        self.assertIsNot(thread, threading.main_thread())

    def test_thread_worker_quits(self) -> None:
        """A ThreadWorker runs its work in order on one thread and ends when told to."""
        ran: list[int] = []
        worker = ThreadWorker("test-worker")
        finished = threading.Event()
        for n in range(3):
            worker.do(lambda n=n: ran.append(n))  # type: ignore[misc]
        worker.do(finished.set)
        worker.quit()
        assert finished.wait(10)
        worker._thread.join(10)
        self.assertFalse(worker.alive)
        self.assertEqual(ran, [0, 1, 2])


@pytest.mark.parametrize("spec", ["json:loads", "os.path:join"])
def test_load_callable_returns_callable(spec: str) -> None:
    """Every well-formed importable name loads to a callable."""
    assert callable(load_callable(spec))
