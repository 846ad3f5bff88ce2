# -*- test-case-name: tests.gena.test_event -*-
"""One received event, with the API of ``soco.events_base.Event`` and without SoCo.

The listener builds one per accepted NOTIFY. The daemon's subscriptions hand it on as it is;
``sonosd.gena.Subscription`` (the SoCo-compatible class) gives its callback SoCo's own
``Event`` with the same fields. SoCo's class is not used here because importing any of SoCo
imports all of it (with requests and lxml: ~11 MB an idle daemon does not need; issue 17).
"""

from __future__ import annotations

from typing import Any


class Event:
    """A read-only received event, as SoCo's: ``sid``, ``seq`` (a string), ``service``,
    ``timestamp`` and ``variables``; each variable is also an attribute.

    @raise AttributeError: For an attribute that is neither a field nor a variable sent.
    @raise TypeError: On any attribute assignment (SoCo's events are read-only too).
    """

    sid: str
    seq: str
    service: Any
    timestamp: float
    variables: dict[str, Any]

    def __init__(
        self,
        sid: str,
        seq: str,
        service: Any,
        timestamp: float,
        variables: dict[str, Any] | None = None,
    ) -> None:
        fields = self.__dict__
        fields["sid"] = sid
        fields["seq"] = seq
        fields["timestamp"] = timestamp
        fields["service"] = service
        fields["variables"] = variables if variables is not None else {}

    def __getattr__(self, name: str) -> Any:
        variables = self.__dict__.get("variables", {})
        if name in variables:
            return variables[name]
        raise AttributeError(f"No such attribute: {name}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("Event object does not support attribute assignment")

    def __repr__(self) -> str:
        return f"<Event {self.sid} seq {self.seq}>"
