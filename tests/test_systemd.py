"""Tests for sonosd.systemd: the sd_notify datagrams, on a real unix datagram socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from sonosd.systemd import (
    Notifier,
    SystemdService,
    notify_address,
    status_line,
    watchdog_interval,
)


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A unix datagram socket standing in for systemd's notification socket."""
    path = str(tmp_path / "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.setblocking(False)
    try:
        yield receiver, path
    finally:
        receiver.close()


def received(receiver: socket.socket) -> list[str]:
    """Every datagram waiting on ``receiver``."""
    messages = []
    while True:
        try:
            messages.append(receiver.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_address_forms() -> None:
    """A path is used as is, @name is an abstract socket, anything else is not for us."""
    assert notify_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert notify_address({"NOTIFY_SOCKET": "@sonosd"}) == b"\0sonosd"
    assert notify_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None
    assert notify_address({}) is None


def test_watchdog_interval_is_half_the_timeout_for_this_process() -> None:
    """WATCHDOG_USEC gives the interval only when WATCHDOG_PID is unset or this process."""
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, 7) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 7) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, 7) is None
    assert watchdog_interval({}, 7) is None


def test_status_line_is_one_line() -> None:
    """Line breaks in a status would end the STATUS= field: they become spaces."""
    assert status_line("2 speakers\n  1 evented") == "2 speakers 1 evented"


def test_notifier_sends_one_datagram_per_message(systemd: tuple[socket.socket, str]) -> None:
    """send() writes KEY=value lines as one datagram to the socket NOTIFY_SOCKET names."""
    receiver, path = systemd
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.send("READY=1", "STATUS=ok")
    assert received(receiver) == ["READY=1\nSTATUS=ok\n"]
    notifier.close()


def test_notifier_without_systemd_does_nothing() -> None:
    """Without NOTIFY_SOCKET nothing is sent and nothing fails."""
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.send("READY=1")


def test_notifier_survives_a_missing_socket(tmp_path: Path) -> None:
    """A socket that is gone makes send() return False (logged once), never raise."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not notifier.send("READY=1")
    assert not notifier.send("WATCHDOG=1")


def test_service_says_nothing_before_ready(systemd: tuple[socket.socket, str]) -> None:
    """Started but not ready: no READY, no STATUS, no WATCHDOG (systemd must keep waiting)."""
    receiver, path = systemd
    clock = Clock()
    service = SystemdService(clock, Notifier({"NOTIFY_SOCKET": path}), lambda: "x", 1.0)
    service.startService()
    clock.advance(10)
    assert received(receiver) == []


def test_service_lifecycle(systemd: tuple[socket.socket, str]) -> None:
    """READY with the status, WATCHDOG at the interval, STATUS on change, RELOADING then
    READY around a reload, STOPPING at the stop, then nothing."""
    receiver, path = systemd
    clock = Clock()
    status = ["1 speaker: 0 evented"]
    service = SystemdService(clock, Notifier({"NOTIFY_SOCKET": path}), lambda: status[0], 2.0)
    service.startService()
    service.ready()
    first = received(receiver)
    assert first[0].startswith("READY=1\nSTATUS=1 speaker: 0 evented\nMAINPID=")
    assert first[1:] == ["WATCHDOG=1\n"]
    clock.advance(2.0)
    assert received(receiver) == ["WATCHDOG=1\n"]
    status[0] = "1 speaker: 1 evented"
    clock.advance(3.0)  # 5 s: the status refresh, and the watchdog at 4 s
    assert sorted(received(receiver)) == ["STATUS=1 speaker: 1 evented\n", "WATCHDOG=1\n"]
    clock.advance(5.0)
    assert "STATUS=1 speaker: 1 evented\n" not in received(receiver)
    service.reloading()
    service.reloaded()
    reload = received(receiver)
    assert reload[0].startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert reload[1] == "READY=1\nSTATUS=1 speaker: 1 evented\n"
    service.stopService()
    assert received(receiver) == ["STOPPING=1\nSTATUS=stopping\n"]
    clock.advance(60)
    assert received(receiver) == []
    assert not clock.getDelayedCalls()


def test_a_change_refreshes_the_status_at_most_once_a_second(
    systemd: tuple[socket.socket, str],
) -> None:
    """``changed()`` sends a changed STATUS= at the end of the turn, not at the 5 s refresh;
    changes within a second of the last refresh are one refresh a second after it; a change
    that leaves the line as it was sends nothing; the periodic refresh still runs; nothing is
    pending after the stop."""
    receiver, path = systemd
    clock = Clock()
    status = ["0 clients"]
    reads: list[float] = []

    def read() -> str:
        reads.append(clock.seconds())
        return status[0]

    service = SystemdService(clock, Notifier({"NOTIFY_SOCKET": path}), read)
    service.startService()
    service.changed()  # before READY=1: nothing to refresh (READY carries the line)
    assert not clock.getDelayedCalls()
    clock.advance(2.0)
    service.ready()
    assert received(receiver)[0].startswith("READY=1\nSTATUS=0 clients\n")
    status[0] = "1 client"
    service.changed()
    service.changed()
    clock.advance(0)
    assert received(receiver) == []  # within a second of READY's line
    clock.advance(0.5)
    assert received(receiver) == []
    clock.advance(0.5)  # 3 s: a second after READY, one refresh for both changes
    assert received(receiver) == ["STATUS=1 client\n"]
    assert reads == [2.0, 3.0]
    clock.advance(1.5)  # 4.5 s: a change over a second after the last refresh is sent now
    status[0] = "2 clients"
    service.changed()
    clock.advance(0)
    assert received(receiver) == ["STATUS=2 clients\n"]
    for count in range(3, 7):  # a burst within the second: one refresh, a second after
        status[0] = f"{count} clients"
        service.changed()
        clock.advance(0.125)
    assert received(receiver) == []
    clock.advance(0.5)  # 5.5 s
    assert received(receiver) == ["STATUS=6 clients\n"]
    assert reads == [2.0, 3.0, 4.5, 5.5]
    clock.advance(1.0)  # 6.5 s: a change that leaves the line as it was
    service.changed()
    clock.advance(0)
    assert received(receiver) == []
    status[0] = "0 clients"  # unsaid: the periodic refresh (READY at 2 s, every 5 s) tells
    clock.advance(0.5)
    assert received(receiver) == ["STATUS=0 clients\n"]
    status[0] = "1 client"
    service.changed()  # due at 8 s, when the service has stopped
    service.stopService()
    assert received(receiver) == ["STOPPING=1\nSTATUS=stopping\n"]
    assert not clock.getDelayedCalls()
