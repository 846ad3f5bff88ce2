# -*- test-case-name: tests.test_systemd -*-
"""Telling systemd the truth: ``sd_notify`` over the ``NOTIFY_SOCKET`` datagram socket.

With ``Type=notify`` systemd counts the daemon as started only when it sends ``READY=1``
(sonosd sends it once the NOTIFY listener and the API listen), shows the last ``STATUS=``
line in ``systemctl status``, restarts the daemon when ``WATCHDOG=1`` stops coming for
``WatchdogSec``, and knows that a stop or a reload is under way from ``STOPPING=1`` and
``RELOADING=1`` (see ``sd_notify(3)``).

The protocol is one datagram per message of ``KEY=value`` lines to the ``AF_UNIX`` socket
named by ``$NOTIFY_SOCKET`` (a leading ``@`` names an abstract socket). The PyPI packages
were checked first: ``sdnotify`` has had no release since 2017; ``systemd-watchdog`` (kept
up) has no ``STOPPING``/``RELOADING`` and blocks on a full socket; ``systemd-python`` and
``cysystemd`` need libsystemd and a compiler. The protocol itself is the few lines below.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()

#: How often the ``STATUS=`` line is refreshed (it is sent only when it changed).
STATUS_INTERVAL = 5.0

#: The least time, in seconds, between two refreshes a change asks for (``changed``): a burst
#: of clients connecting or of subscriptions coming up is one refresh.
STATUS_COALESCE = 1.0


def notify_address(environ: Mapping[str, str]) -> str | bytes | None:
    """The socket address ``$NOTIFY_SOCKET`` names (abstract when it starts with ``@``)."""
    value = environ.get("NOTIFY_SOCKET", "")
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if not value.startswith("/"):
        # vsock: and other families of newer systemd: not for a daemon on a Pi.
        return None
    return value


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between two ``WATCHDOG=1``: half of ``$WATCHDOG_USEC``, when it is meant for
    this process (``$WATCHDOG_PID`` unset or ``pid``); ``None`` when no watchdog is set."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(pid):
        return None
    return int(usec) / 2_000_000


def status_line(text: str) -> str:
    """``text`` as one ``STATUS=`` value: a single line."""
    return " ".join(text.split())


class Notifier:
    """Sends ``sd_notify`` messages; does nothing when systemd did not ask for them.

    @param environ: Where ``NOTIFY_SOCKET`` is read (default: ``os.environ``).
    @param make_socket: Builds the datagram socket (tests pass their own).
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        make_socket: Callable[[], socket.socket] | None = None,
    ) -> None:
        self.address = notify_address(os.environ if environ is None else environ)
        self._make_socket = make_socket or (
            lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        )
        self._socket: socket.socket | None = None
        self._failed = False
        self.sent: list[str] = []

    @property
    def enabled(self) -> bool:
        """Whether systemd listens (``$NOTIFY_SOCKET`` is set)."""
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) as one message; never raise.

        @return: Whether the message went out.
        """
        if self.address is None:
            return False
        message = "\n".join(fields) + "\n"
        try:
            if self._socket is None:
                self._socket = self._make_socket()
                self._socket.setblocking(False)
            self._socket.sendto(message.encode("utf-8"), self.address)
        except OSError as error:
            if not self._failed:
                self._failed = True
                log.warn(
                    "cannot notify systemd at {address}: {error}",
                    address=os.environ.get("NOTIFY_SOCKET", "?"),
                    error=error.strerror or str(error),
                )
            return False
        self._failed = False
        self.sent.append(message)
        del self.sent[:-20]
        return True

    def close(self) -> None:
        """Close the socket."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class SystemdService(Service):
    """READY, STATUS, WATCHDOG, RELOADING and STOPPING for the daemon.

    Nothing is sent before ``ready()``: systemd must not count a daemon whose API could not
    listen as started. The watchdog ping runs in the reactor thread, so a blocked reactor
    stops it and systemd restarts the daemon.

    The ``STATUS=`` line is refreshed every ``STATUS_INTERVAL`` seconds, and soon after
    ``changed()`` says that something it counts changed (at most once every
    ``STATUS_COALESCE`` seconds however many changes come).

    @param clock: Schedules the status refresh and the watchdog pings.
    @param notifier: Sends the messages.
    @param status: Returns the one-line summary for ``STATUS=``.
    @param watchdog: Seconds between two ``WATCHDOG=1`` (``None``: no watchdog).
    """

    def __init__(
        self,
        clock: IReactorTime,
        notifier: Notifier,
        status: Callable[[], str],
        watchdog: float | None = None,
    ) -> None:
        self.notifier = notifier
        self._status = status
        self._clock = clock
        self._last_status: str | None = None
        self._refreshed_at = float("-inf")
        self._pending: IDelayedCall | None = None
        self._ready = False
        self._status_call = LoopingCall(self.refresh_status)
        self._status_call.clock = clock
        self._watchdog_call: LoopingCall | None = None
        self._watchdog = watchdog
        if watchdog is not None:
            self._watchdog_call = LoopingCall(self.notifier.send, "WATCHDOG=1")
            self._watchdog_call.clock = clock

    def ready(self) -> None:
        """The daemon serves: ``READY=1`` with the first status, then keep both fresh."""
        if self._ready or not self.notifier.enabled:
            return
        self._ready = True
        self._refreshed_at = self._clock.seconds()
        self._last_status = status_line(self._status())
        self.notifier.send("READY=1", f"STATUS={self._last_status}", f"MAINPID={os.getpid()}")
        if self.running:
            self._start_calls()

    def startService(self) -> None:
        """Start refreshing the status and pinging the watchdog once ``ready`` was said."""
        super().startService()
        if self._ready:
            self._start_calls()

    def _start_calls(self) -> None:
        if not self._status_call.running:
            self._status_call.start(STATUS_INTERVAL, now=False)
        if self._watchdog_call is not None and not self._watchdog_call.running:
            assert self._watchdog is not None
            self._watchdog_call.start(self._watchdog, now=True)

    def changed(self) -> None:
        """Something the status line counts changed (a client connected or left, a
        subscription became evented or stopped being so, a speaker came or went): refresh the
        line now, or ``STATUS_COALESCE`` seconds after the last refresh if that is later."""
        if not self._ready or not self.running or self._pending is not None:
            return
        delay = max(0.0, self._refreshed_at + STATUS_COALESCE - self._clock.seconds())
        # Even now (0 s): the changes of this reactor turn are one refresh.
        self._pending = self._clock.callLater(delay, self._refresh_changed)

    def _refresh_changed(self) -> None:
        self._pending = None
        self.refresh_status()

    def refresh_status(self) -> None:
        """Send ``STATUS=`` when the summary changed."""
        self._refreshed_at = self._clock.seconds()
        line = status_line(self._status())
        if line != self._last_status:
            self._last_status = line
            self.notifier.send(f"STATUS={line}")

    def reloading(self) -> None:
        """A reload starts (``RELOADING=1``, with the monotonic time systemd 253+ wants)."""
        if self._ready:
            usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def reloaded(self) -> None:
        """The reload is done: ``READY=1`` again, with the new status."""
        if self._ready:
            self._last_status = status_line(self._status())
            self.notifier.send("READY=1", f"STATUS={self._last_status}")

    def stopping(self) -> None:
        """The daemon is stopping: ``STOPPING=1`` (once)."""
        if self._ready:
            self._ready = False
            self.notifier.send("STOPPING=1", "STATUS=stopping")

    def stopService(self) -> None:
        """Stop the calls (``STOPPING=1`` was sent when the stop began)."""
        super().stopService()
        self.stopping()
        if self._pending is not None:
            if self._pending.active():
                self._pending.cancel()
            self._pending = None
        for call in (self._status_call, self._watchdog_call):
            if call is not None and call.running:
                call.stop()
        self.notifier.close()
