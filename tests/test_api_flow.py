"""Tests for sonosd.api.flow: the bounded per-client queue driven by producer signals."""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer
from zope.interface.verify import verifyObject

from sonosd.api.flow import ClientQueue


class Recorder:
    """Collects written frames and overflow reports."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.overflows: list[int] = []

    def queue(self, limit: int) -> ClientQueue[str]:
        return ClientQueue(limit, self.written.append, self.overflows.append)


def test_is_a_push_producer() -> None:
    """The queue provides IPushProducer, so a transport can pause it."""
    assert verifyObject(IPushProducer, Recorder().queue(3))


def test_writes_at_once_while_not_paused() -> None:
    """Frames are written immediately while the transport accepts data."""
    recorder = Recorder()
    queue = recorder.queue(2)
    queue.offer("a")
    queue.offer("b")
    assert recorder.written == ["a", "b"]
    assert len(queue) == 0
    assert queue.sent == 2


def test_queues_while_paused_and_drains_in_order() -> None:
    """Paused frames wait and are written in order on resume."""
    recorder = Recorder()
    queue = recorder.queue(3)
    queue.pauseProducing()
    queue.offer("a")
    queue.offer("b")
    assert recorder.written == []
    queue.resumeProducing()
    queue.offer("c")
    assert recorder.written == ["a", "b", "c"]


def test_overflow_closes_and_reports_once() -> None:
    """More than limit waiting frames closes the queue, drops them and reports once."""
    recorder = Recorder()
    queue = recorder.queue(2)
    queue.pauseProducing()
    for frame in "abcde":
        queue.offer(frame)
    assert recorder.overflows == [3]
    assert queue.closed
    assert len(queue) == 0
    queue.resumeProducing()
    assert recorder.written == []


def test_send_that_pauses_stops_the_drain() -> None:
    """A write that makes the transport pause keeps the rest queued."""
    written: list[str] = []
    queue: ClientQueue[str] = ClientQueue(
        10, lambda frame: (written.append(frame), queue.pauseProducing()), lambda n: None
    )
    queue.pauseProducing()
    queue.offer("a")
    queue.offer("b")
    queue.resumeProducing()
    assert written == ["a"]
    assert len(queue) == 1


def test_prime_goes_first_and_is_not_limited() -> None:
    """Primed frames precede later offers and do not count against the limit."""
    recorder = Recorder()
    queue = recorder.queue(1)
    queue.pauseProducing()
    queue.prime(iter(["s1", "s2", "s3", "s4"]))
    queue.offer("live")
    assert recorder.overflows == []
    queue.resumeProducing()
    assert recorder.written == ["s1", "s2", "s3", "s4", "live"]


def test_prime_is_pulled_lazily() -> None:
    """A primed iterable is consumed only as the transport accepts data."""
    pulled: list[int] = []

    def frames() -> object:
        for index in range(5):
            pulled.append(index)
            yield str(index)

    written: list[str] = []
    queue: ClientQueue[str] = ClientQueue(
        5, lambda frame: (written.append(frame), queue.pauseProducing()), lambda n: None
    )
    queue.prime(frames())  # type: ignore[arg-type]
    assert written == ["0"]
    assert pulled == [0]


def test_stop_producing_closes() -> None:
    """stopProducing (the connection is gone) drops everything."""
    recorder = Recorder()
    queue = recorder.queue(3)
    queue.pauseProducing()
    queue.offer("a")
    queue.stopProducing()
    queue.offer("b")
    queue.resumeProducing()
    assert recorder.written == []
