"""Recording fakes for simulator tests: a GENA manager and a network presence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed

from sonosd.sim.gena import GenaFaults


class RecordingManager:
    """Implements what the household needs of ``SubscriptionManager``; records every call."""

    def __init__(
        self, reactor: Any, uid: str, address: str, full_state: Any, server_header: str
    ) -> None:
        self.uid = uid
        self.address = address
        self.full_state = full_state
        self.server_header = server_header
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self.calls: list[str] = []
        self.faults = GenaFaults()
        self.paused = False

    def render_subscribe(self, request: Any, service: str) -> bytes:
        self.calls.append(f"subscribe {service}")
        return b""

    def render_unsubscribe(self, request: Any, service: str) -> bytes:
        self.calls.append(f"unsubscribe {service}")
        return b""

    def notify(self, service: str, changed: Mapping[str, Any]) -> None:
        self.notifications.append((service, dict(changed)))

    def of(self, service: str) -> list[dict[str, Any]]:
        """The changed-variable dicts notified for ``service``."""
        return [changed for name, changed in self.notifications if name == service]

    def forget_all(self) -> None:
        self.calls.append("forget_all")

    def unsubscribe_all(self) -> None:
        self.calls.append("unsubscribe_all")

    def pause(self) -> None:
        self.paused = True
        self.calls.append("pause")

    def resume(self) -> None:
        self.paused = False
        self.calls.append("resume")

    def stop(self) -> None:
        self.calls.append("stop")

    def subscriptions(self) -> list[dict[str, Any]]:
        return []

    def stats(self) -> dict[str, int]:
        return {"sent": 0, "failed": 0, "dropped": 0, "subscriptions": 0}

    def send_unknown_sid(self, callback_url: str, service: str) -> Deferred[int]:
        self.calls.append(f"unknown-sid {callback_url} {service}")
        return succeed(412)


@attrs.define
class FakePresence:
    """A network presence that changes mode at once and records what it was told."""

    mode: str = "up"
    address: str = ""
    calls: list[str] = attrs.field(factory=list)

    def go_down(self, mode: str) -> Deferred[None]:
        self.mode = mode
        self.calls.append(f"down {mode}")
        return succeed(None)

    def come_up(self) -> Deferred[None]:
        self.mode = "up"
        self.calls.append("up")
        return succeed(None)

    def move(self, address: str) -> Deferred[None]:
        self.address = address
        self.calls.append(f"move {address}")
        return succeed(None)

    def secure(self, on: bool) -> Deferred[None]:
        self.calls.append(f"secure {on}")
        return succeed(None)
