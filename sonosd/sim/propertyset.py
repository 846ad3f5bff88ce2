# -*- test-case-name: tests.sim.test_propertyset -*-
"""GENA event bodies (``<e:propertyset>``) exactly as Sonos speakers write them.

Pure functions, no I/O. The simulator calls :func:`build_propertyset` once per state change
(not once per subscriber), and the load generator calls it thousands of times a second, so the
static parts are escaped once and cached.

Shapes (``docs/simulator-gena.md``, ``sonos-protocol.md`` §3.5):

- plain services: one ``<e:property><Name>text</Name></e:property>`` per variable, the text
  XML-escaped;
- ``AVTransport``, ``RenderingControl`` and ``Queue``: a single ``LastChange`` property whose
  text is an escaped ``<Event xmlns=...>`` document, with one ``<Name val="..."/>`` element per
  variable inside ``<InstanceID val="0">`` (``<QueueID val="0">`` for the queue). A channel
  variable (a mapping value) becomes one element per channel with a ``channel=`` attribute.
  Values are escaped as attributes and the document escaped again as text, so DIDL-Lite
  metadata values appear escaped twice in the body, as on the wire.

Escaping is homomorphic over concatenation, so the escaped ``<Event>`` document is assembled
from pre-escaped fragments and doubly-escaped values rather than built then escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Final

EventValue = str | Mapping[str, str]
"""A variable's value: text, or ``{channel: text}`` for RenderingControl channel variables."""

_EVENT_NS: Final = "urn:schemas-upnp-org:event-1-0"
_RINCON_NS: Final = "urn:schemas-rinconnetworks-com:metadata-1-0/"

# service -> (namespace of <Event>, instance element, always declare xmlns:r)
_LAST_CHANGE: Final[dict[str, tuple[str, str, bool]]] = {
    "AVTransport": ("urn:schemas-upnp-org:metadata-1-0/AVT/", "InstanceID", True),
    "RenderingControl": ("urn:schemas-upnp-org:metadata-1-0/RCS/", "InstanceID", False),
    "Queue": ("urn:schemas-sonos-com:metadata-1-0/Queue/", "QueueID", False),
}

LAST_CHANGE_SERVICES: Final = frozenset(_LAST_CHANGE)
"""Services whose variables travel inside one escaped ``LastChange`` document."""

_OPEN: Final = f'<e:propertyset xmlns:e="{_EVENT_NS}">'
_CLOSE: Final = "</e:propertyset>"

# A variable name: an XML name, optionally with the ``r:`` (rinconnetworks) prefix.
_NAME_RE: Final = re.compile(r"(?:r:)?[A-Za-z_][A-Za-z0-9_.\-]*\Z")
# Characters XML 1.0 cannot carry at all, not even as character references.
_INVALID_XML_RE: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# Values at least this long (DIDL metadata, ZoneGroupState) repeat across events and
# speakers: their escaped form is cached.
_CACHE_FROM: Final = 64


def is_last_change(service: str) -> bool:
    """Return whether ``service`` events a single ``LastChange`` variable."""
    return service in _LAST_CHANGE


def build_propertyset(service: str, variables: Mapping[str, EventValue]) -> bytes:
    """Return the NOTIFY body announcing ``variables`` of ``service``, as UTF-8 bytes.

    :param service: the SoCo-style service name (``AVTransport``, ``RenderingControl``,
        ``Queue``, ``ZoneGroupTopology``, ``MR_ConnectionManager``, ...).
    :param variables: wire names (``TransportState``, ``r:NextTrackURI``, ``Volume``) to
        values, in the order they appear in the body. A mapping value (``{"Master": "40"}``)
        is a channel variable and is only allowed in LastChange services.
    :raises ValueError: a name that is not an XML name, or a value holding a character XML
        cannot carry (control characters other than tab, newline and carriage return).
    :raises TypeError: a channel variable in a plain-variable service.
    """
    spec = _LAST_CHANGE.get(service)
    if spec is None:
        return _build_plain(variables)
    return _build_last_change(spec, variables)


def _build_plain(variables: Mapping[str, EventValue]) -> bytes:
    parts = [_OPEN]
    append = parts.append
    for name, value in variables.items():
        if not isinstance(value, str):
            raise TypeError(f"{name}: channel values exist only in LastChange services")
        open_tag, close_tag = _plain_tags(name)
        append(open_tag)
        append(_escape_text(value))
        append(close_tag)
    append(_CLOSE)
    return "".join(parts).encode("utf-8")


def _build_last_change(spec: tuple[str, str, bool], variables: Mapping[str, EventValue]) -> bytes:
    namespace, instance, with_r = spec
    if not with_r:
        with_r = any(name.startswith("r:") for name in variables)
    parts = [_last_change_head(namespace, instance, with_r)]
    append = parts.append
    for name, value in variables.items():
        if isinstance(value, str):
            append(_lc_open(name, None))
            append(_escape_value_twice(value))
            append(_LC_CLOSE_EMPTY)
        else:
            for channel, channel_value in value.items():
                append(_lc_open(name, channel))
                append(_escape_value_twice(channel_value))
                append(_LC_CLOSE_EMPTY)
    append(_last_change_tail(instance))
    return "".join(parts).encode("utf-8")


_LC_CLOSE_EMPTY: Final = "&quot;/&gt;"


@lru_cache(maxsize=16)
def _last_change_head(namespace: str, instance: str, with_r: bool) -> str:
    declarations = f'xmlns="{namespace}"'
    if with_r:
        declarations += f' xmlns:r="{_RINCON_NS}"'
    inner = f'<Event {declarations}><{instance} val="0">'
    return f"{_OPEN}<e:property><LastChange>{_escape_text(inner)}"


@lru_cache(maxsize=8)
def _last_change_tail(instance: str) -> str:
    return f"{_escape_text(f'</{instance}></Event>')}</LastChange></e:property>{_CLOSE}"


@lru_cache(maxsize=4096)
def _plain_tags(name: str) -> tuple[str, str]:
    _check_name(name)
    return f"<e:property><{name}>", f"</{name}></e:property>"


@lru_cache(maxsize=4096)
def _lc_open(name: str, channel: str | None) -> str:
    """The escaped ``<Name [channel="C"] val="`` fragment of a LastChange element."""
    _check_name(name)
    if channel is None:
        return f"&lt;{name} val=&quot;"
    return f"&lt;{name} channel=&quot;{_escape_value_twice(channel)}&quot; val=&quot;"


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"not an XML variable name: {name!r}")


def check_chars(value: str) -> None:
    """Refuse ``value`` if it holds a character XML 1.0 cannot carry, not even as a character
    reference (a control character, U+FFFE, U+FFFF).

    @raise ValueError: Naming the first such character.
    """
    bad = _INVALID_XML_RE.search(value)
    if bad is not None:
        raise ValueError(f"character {bad.group()!r} cannot be carried by XML")


def _escaper(replacements: tuple[tuple[str, str], ...]) -> Callable[[str], str]:
    """An escaping function applying ``replacements`` in order (``&`` first), which checks
    the value's characters and caches long values' results."""

    def escape_uncached(value: str) -> str:
        check_chars(value)
        for char, replacement in replacements:
            if char in value:
                value = value.replace(char, replacement)
        return value

    escape_cached = lru_cache(maxsize=256)(escape_uncached)

    def escape(value: str) -> str:
        if len(value) >= _CACHE_FROM:
            return escape_cached(value)
        return escape_uncached(value)

    return escape


# A value as element text, as Sonos escapes it (quotes too; CR kept as a reference).
_escape_text: Final = _escaper(
    (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("\r", "&#13;")),
)

# A value as an attribute of the inner document, then that as element text. Raw whitespace
# controls become character references: attribute-value normalisation would make them spaces.
_escape_value_twice: Final = _escaper(
    (
        ("&", "&amp;amp;"),
        ("<", "&amp;lt;"),
        (">", "&amp;gt;"),
        ('"', "&amp;quot;"),
        ("\n", "&amp;#10;"),
        ("\r", "&amp;#13;"),
        ("\t", "&amp;#9;"),
    ),
)
