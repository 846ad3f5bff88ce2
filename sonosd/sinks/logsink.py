# -*- test-case-name: tests.sinks.test_logsink -*-
"""A sink that logs every message as one readable line (the demo's view of the household)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from sonosd.delivery.hub import ISink, Message

log = Logger()

_MAX_VALUE = 60


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"[{len(value)}]"
    if isinstance(value, Mapping) and "groups" in value:
        return f"{len(value['groups'])} groups"
    if isinstance(value, str) and value.startswith("<"):
        return "<xml>"
    if isinstance(value, Mapping):
        if "title" in value:
            parts = [str(value.get(k)) for k in ("title", "artist", "album") if value.get(k)]
            text = " / ".join(parts)
        elif set(value) >= {"Master"}:
            text = str(value["Master"])
        else:
            text = ",".join(f"{k}={_short(v)}" for k, v in value.items())
    else:
        text = str(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def summarise(body: Mapping[str, Any], limit: int = 6) -> str:
    """One human line for a message body: who, what, and the first few changed values."""
    speaker = body.get("speaker") or {}
    who = speaker.get("name") or speaker.get("uid") or "household"
    kind = body.get("type", "?")
    if kind == "event":
        variables = body.get("variables") or {}
        shown = [f"{k}={_short(v)}" for k, v in list(variables.items())[:limit]]
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
    """Logs each message as one line through twisted.logger."""

    def deliver(self, message: Message) -> None:
        """Log ``message``."""
        log.info("{line}", line=summarise(message.body), message_id=message.id)
