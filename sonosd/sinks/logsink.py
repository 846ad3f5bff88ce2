# -*- test-case-name: tests.sinks.test_logsink -*-
"""A sink that logs every message as one readable line (the demo's view of the household).

One line per message, never a dump: an event shows its first few changed values, and a full
state (the first event of a subscription, a resync, a poll) only how many variables it
carries. Availability, subscription and gap messages are not logged here: the supervisor
says each in its own words (with the reason), and saying it twice would be noise.
``log.messages: false`` switches these lines off.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from itertools import islice
from typing import Any

from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from sonosd.delivery.hub import ISink, Message

log = Logger()

_MAX_VALUE = 60


def _short(value: Any) -> str:
    kind = type(value)
    if kind is str:  # most values: checked first, without the isinstance calls below
        text = "<xml>" if value.startswith("<") else value
        return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"
    if kind is int or kind is bool or value is None:
        return str(value)
    if kind is list or kind is tuple or (kind is not dict and isinstance(value, list | tuple)):
        return f"[{len(value)}]"
    mapping = kind is dict or isinstance(value, Mapping)
    if mapping and "groups" in value:
        return f"{len(value['groups'])} groups"
    if isinstance(value, str) and value.startswith("<"):
        return "<xml>"
    if mapping:
        if "title" in value:
            parts = [str(value.get(k)) for k in ("title", "artist", "album") if value.get(k)]
            text = " / ".join(parts)
        elif "Master" in value:
            text = str(value["Master"])
        else:
            text = ",".join(f"{k}={_short(v)}" for k, v in value.items())
    else:
        text = str(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


#: Message types the supervisor logs itself (see the module docstring).
SAID_ELSEWHERE = frozenset(
    {
        "speaker.online",
        "speaker.offline",
        "speaker.asleep",
        "speaker.upnp_disabled",
        "speaker.removed",
        "subscription.lost",
        "subscription.restored",
        "events.gap",
    }
)


def summarise(body: Mapping[str, Any], limit: int = 6) -> str:
    """One human line for a message body: who, what, and the first few changed values."""
    speaker = body.get("speaker") or {}
    who = speaker.get("name") or speaker.get("uid") or "household"
    kind = body.get("type", "?")
    if kind == "event":
        variables = body.get("variables") or {}
        if body.get("seq") == 0 or body.get("source") in ("resync", "poll"):
            how = {"resync": "resynced", "poll": "polled"}.get(str(body.get("source")), "full")
            return (
                f"#{body.get('id')} {who} {body.get('service')} {how} state, "
                f"{len(variables)} variables"
            )
        shown = [f"{k}={_short(v)}" for k, v in islice(variables.items(), limit)]
        more = len(variables) - len(shown)
        if more > 0:
            shown.append(f"(+{more} more)")
        return f"#{body.get('id')} {who} {body.get('service')} seq={body.get('seq')} " + " ".join(
            shown
        )
    details = {k: v for k, v in body.items() if k not in ("id", "run", "time", "type", "speaker")}
    extra = " ".join(f"{k}={_short(v)}" for k, v in details.items())
    return f"#{body.get('id')} {who} {kind} {extra}".rstrip()


@implementer(ISink)
class LogSink:
    """Logs each message as one line through twisted.logger (``log.messages``).

    @ivar enabled: Whether messages are logged (a reload may switch it).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def deliver(self, message: Message) -> None:
        """Log ``message`` (when enabled); a track position read, which comes every
        ``position_interval`` while a group plays, at debug level."""
        if not self.enabled or message.type in SAID_ELSEWHERE:
            return
        body = message.body
        # What log.info("{line}", ...) emits, without Logger.emit's check that the level is
        # one (it sorts the levels on every call: a fifth of the cost of a line).
        log.observer(
            {
                "line": summarise(body),
                "message_id": message.id,
                "log_logger": log,
                "log_level": LogLevel.debug if body.get("source") == "position" else LogLevel.info,
                "log_namespace": log.namespace,
                "log_source": log.source,
                "log_format": "{line}",
                "log_time": time.time(),
            }
        )
