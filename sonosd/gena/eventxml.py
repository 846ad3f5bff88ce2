# -*- test-case-name: tests.gena.test_eventxml -*-
"""Event bodies parsed to SoCo's values, faster; evented variables turned into plain JSON.

``parse_event_xml`` gives the same dict as ``soco.events_base.parse_event_xml`` (SoCo 0.32.4)
for the same body: the same key names (``camel_to_underscore``, quirks included), the same
LastChange handling and the same DIDL objects, ``ThirdPartyMediaServersX`` redacted. It costs
less because:

- the body, its LastChange document and DIDL metadata are read first by the compiled reader
  (``sonosd.gena._shape.tree3``, a C extension built by ``setup.py`` where a C compiler is):
  a document of three levels whose third holds only text, read into ElementTree's tree in one
  pass, or ``None`` for anything a parser must judge, which the readers below then take;
- key names come from a table filled once per distinct tag instead of two regular expressions
  per variable;
- a body whose variables are escaped documents (LastChange, ZoneGroupState) is read with
  expat's callbacks and its text buffered, rather than built into a tree one entity reference
  at a time;
- a small body in the exact shape speakers write (``<e:propertyset>`` with one variable per
  ``<e:property>``, a LastChange ``Event`` of self-closing ``val`` elements) is read with a
  few string searches instead of an XML parser (``_simple_properties``,
  ``_simple_last_change``): a volume change costs a quarter of what two parsers cost. Any
  other shape, and anything in it an XML parser would have to judge (character references,
  whitespace in values, an undeclared prefix, a character XML forbids), goes to the parsers;
- DIDL metadata is not parsed while the event is: each DIDL value is a ``LazyDidl`` that
  builds SoCo's object (with SoCo's own code) the first time it is used, and compares equal
  to it. The daemon's JSON path never builds DIDL objects: ``variables_to_json`` reads the
  fields it needs with the C XML parser and caches them by DIDL text (AVTransport resends the
  same track metadata with every change, and every group member sends it too).

Unlike SoCo's function, ours is not cached, so every call returns a new dict that callers may
mutate; DIDL objects are never shared between events either.

Unlike SoCo's, it refuses what could cost more than the body's size (``sonosd.gena.xmlguard``,
issue 18): a DTD or entity declaration in the body or in any value (the nested LastChange,
ZoneGroupState and DIDL documents included), an encoding other than UTF-8, nested documents
beyond the body's :class:`~sonosd.gena.xmlguard.Budget`, and a value over ``MAX_VALUE``
characters (``ZoneGroupState`` excepted: it grows with the household and is bounded by the
body). Each refusal is an :class:`UnsafeEvent` naming the rule.
"""

from __future__ import annotations

import re
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from xml.etree import ElementTree
from xml.parsers import expat

from twisted.logger import Logger

from sonosd.gena.xmlguard import Budget, UnsafeXml, check_document, check_text
from sonosd.gena.xmlguard import unescape_predefined as _unescape

_tree3: Callable[[bytes], Any] | None
try:
    from sonosd.gena._shape import tree3 as _tree3
except ImportError:  # installed where no C compiler was found (setup.py)
    _tree3 = None


def reader() -> str:
    """Which reader takes the speakers' documents first: ``compiled`` (``gena._shape``) or
    ``python`` (it was not built: the string readers and the parsers, at a higher CPU cost per
    event: docs/benchmarks.md)."""
    return "compiled" if _tree3 is not None else "python"


log = Logger()

MAX_VALUE = 65_536
"""The longest value (characters) an evented variable may have, ZoneGroupState excepted; the
largest real ones (DIDL metadata) are a few kilobytes."""

#: Variables not held to ``MAX_VALUE``: the topology grows with the household, and a
#: LastChange document is parsed within the event's budget and its values checked one by one.
_UNLIMITED = frozenset({"ZoneGroupState", "LastChange"})

_PROPERTY = "{urn:schemas-upnp-org:event-1-0}property"
_PROPERTY_EXPAT = _PROPERTY[1:]
_INSTANCES = (
    "{urn:schemas-upnp-org:metadata-1-0/AVT/}InstanceID",
    "{urn:schemas-upnp-org:metadata-1-0/RCS/}InstanceID",
    "{urn:schemas-sonos-com:metadata-1-0/Queue/}QueueID",
)
_MAX_NAMES = 8192

# SoCo is not imported here: an idle daemon parses events without it (issue 17). What the
# parser needs of it is below, checked against SoCo's by tests/gena/test_eventxml.py; its
# DIDL classes are loaded when a ``LazyDidl`` is first used (``_soco_didl``).

#: SoCo's ``soco.events_base.REDACTED_VARIABLES``: variables whose values hold credentials.
REDACTED_VARIABLES: tuple[str, ...] = ("ThirdPartyMediaServersX",)
#: SoCo's ``soco.events_base.REDACTED_VALUE``: what such a variable's value becomes.
REDACTED_VALUE = "[redacted]"

_FIRST_CAP = re.compile("(.)([A-Z][a-z]+)")
_ALL_CAP = re.compile("([a-z0-9])([A-Z])")


def camel_to_underscore(name: str) -> str:
    """``soco.utils.camel_to_underscore``: SoCo's name for an evented variable, quirks
    included (``ZonePlayerUUIDsInGroup`` -> ``zone_player_uui_ds_in_group``)."""
    return _ALL_CAP.sub(r"\1_\2", _FIRST_CAP.sub(r"\1_\2", name)).lower()


_plain_names: dict[str, str] = {}
_last_change_names: dict[str, str] = {}


class MalformedEvent(ValueError):
    """An event body SoCo's parser would also reject (not XML, a LastChange without text or
    without an instance element, a channel value clashing with a plain one).

    @ivar reason: What the listener counts it as (``unparsable``).
    """

    reason = "unparsable"


class UnsafeEvent(MalformedEvent):
    """An event body refused because it could cost more than its size (SoCo would parse it).

    @ivar reason: ``dtd``, ``encoding``, ``over_budget`` or ``value_too_large``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _plain_name(tag: str) -> str:
    name = _plain_names.get(tag)
    if name is None:
        name = camel_to_underscore(tag)
        if len(_plain_names) < _MAX_NAMES:
            _plain_names[tag] = name
    return name


def _last_change_name(tag: str) -> str:
    name = _last_change_names.get(tag)
    if name is None:
        bare = tag.split("}", 1)[1] if tag.startswith("{") else tag
        name = camel_to_underscore(bare)
        if len(_last_change_names) < _MAX_NAMES:
            _last_change_names[tag] = name
    return name


def _soco_didl(tag: str, didl: str) -> Any:
    """SoCo's DIDL handling for one LastChange value: its object, or a ``SoCoFault``.

    SoCo lets a few malformed documents escape as ``IndexError``/``TypeError`` and so fail
    the whole event; here they become a ``SoCoFault`` for that value only, because the value
    is resolved after the event has been delivered.
    """
    from soco.data_structures_entry import from_didl_string
    from soco.exceptions import EventParseException, SoCoException, SoCoFault

    try:
        check_text(didl)
        return from_didl_string.__wrapped__(didl)[0]
    except (SoCoException, IndexError, TypeError, AttributeError, ValueError) as exc:
        log.debug("event variable {tag} has illegal DIDL metadata: {error}", tag=tag, error=exc)
        return SoCoFault(EventParseException(tag, didl, exc))


class LazyDidl:
    """A DIDL-Lite value of an event, parsed by SoCo the first time it is used.

    It behaves as the object SoCo's parser would have produced (a ``DidlObject`` subclass, or
    a ``SoCoFault``): attribute access, ``isinstance``, ``==``, ``repr``, ``copy`` and pickling
    all go to that object. ``type()`` is the one thing that tells them apart; use
    ``resolve(value)`` to get the real object.

    @ivar didl: The DIDL-Lite document as sent by the speaker.
    @ivar tag: The variable's name, for SoCo's fault message.
    """

    __slots__ = ("_value", "didl", "tag")

    def __init__(self, didl: str, tag: str) -> None:
        object.__setattr__(self, "didl", didl)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "_value", None)

    def _resolve(self) -> Any:
        value = object.__getattribute__(self, "_value")
        if value is None:
            value = _soco_didl(self.tag, self.didl)
            object.__setattr__(self, "_value", value)
        return value

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return type(self._resolve())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resolve(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._resolve(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._resolve(), name)

    def __getitem__(self, key: Any) -> Any:
        return self._resolve()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._resolve()[key] = value

    def __eq__(self, other: object) -> bool:
        if type(other) is LazyDidl:
            other = other._resolve()
        result = self._resolve() == other
        return bool(result)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._resolve())

    def __str__(self) -> str:
        return str(self._resolve())

    def __dir__(self) -> list[str]:
        return dir(self._resolve())

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self._resolve().__reduce_ex__(protocol)


def resolve(value: Any) -> Any:
    """The real object behind a ``LazyDidl`` (parsing it now if needed); other values as is."""
    if type(value) is LazyDidl:
        return value._resolve()
    return value


def parse_event_xml(body: bytes, budget: Budget | None = None) -> dict[str, Any]:
    """Parse a NOTIFY body (``<e:propertyset>``) into SoCo's ``event.variables`` shape.

    @param body: The body as received (bytes; the XML declaration, if any, names the encoding).
    @param budget: What the body and its nested documents may cost (default: the body's,
        ``Budget.for_body``).
    @return: A new dict (callers may mutate it): variable name (SoCo's) to a string, ``None``,
        a channel dict (``{"Master": "40", ...}``) or, for DIDL-Lite LastChange values, a
        ``LazyDidl`` equal to SoCo's ``DidlObject`` (or ``SoCoFault``).
    @raise MalformedEvent: Where SoCo's parser raises.
    @raise UnsafeEvent: For a body or value the daemon refuses (see the module docstring).
    """
    if budget is None:
        budget = Budget.for_body(body)
    try:
        check_document(body, budget)
        result: dict[str, Any] = {}
        for tag, text in _properties(body):
            if text is not None:
                _check_value(tag, text)
            if tag == "LastChange":
                _parse_last_change(text, result, budget)
            elif tag in REDACTED_VARIABLES:
                result[_plain_name(tag)] = REDACTED_VALUE
            else:
                result[_plain_name(tag)] = text
    except UnsafeXml as unsafe:
        raise UnsafeEvent(unsafe.reason, str(unsafe)) from None
    return result


def _check_value(tag: str, text: str) -> None:
    """A variable's value: no DTD, and at most ``MAX_VALUE`` characters unless exempt."""
    check_text(text)
    if len(text) > MAX_VALUE and tag not in _UNLIMITED:
        raise UnsafeEvent(
            "value_too_large",
            f"{tag} is {len(text)} characters long, over the limit of {MAX_VALUE}",
        )


def _properties(body: bytes) -> list[tuple[str, str | None]]:
    """``(tag, text)`` of each child of each ``e:property`` of the root, in document order."""
    shape = _tree3(body) if _tree3 is not None else None
    if shape is not None:
        return [
            (tag, text)
            for property_tag, _, variables in shape[2]
            if property_tag == _PROPERTY
            for tag, _, text in variables
        ]
    simple = _simple_properties(body)
    if simple is not None:
        return simple
    try:
        # ElementTree's tree builder pays for every entity reference in a text (LastChange
        # and ZoneGroupState are escaped documents: hundreds of them), expat's callbacks for
        # every element: the body's counts of "&" and "<" tell which costs less.
        if body.count(b"&") > body.count(b"<"):
            reader = _PropertySet()
            _parse(reader, body)
            return reader.variables
        tree = ElementTree.fromstring(body)
    except (ElementTree.ParseError, *_XML_ERRORS) as exc:
        raise MalformedEvent(f"event body is not XML: {exc}") from exc
    return [(variable.tag, variable.text) for prop in tree.iterfind(_PROPERTY) for variable in prop]


def _parse_last_change(text: str | None, result: dict[str, Any], budget: Budget) -> None:
    if text is None:
        raise MalformedEvent("LastChange without a value")
    document = text.encode("utf-8")
    check_document(document, budget)
    items = _shape_last_change(document) if _tree3 is not None else _simple_last_change(text)
    if items is None:
        items = _tree_last_change(document)
    names = _last_change_names
    for element_tag, channel, value in items:
        tag = names.get(element_tag) or _last_change_name(element_tag)
        if value is not None:
            _check_value(element_tag, value)
            if value.startswith("<DIDL-Lite"):
                value = LazyDidl(value, tag)
        if channel is None:
            result[tag] = value
            continue
        channels = result.get(tag)
        if channels is None:
            channels = result[tag] = {}
        elif type(channels) is not dict:
            raise MalformedEvent(f"{tag} has both a plain and a per-channel value")
        channels[channel] = value


def _tree_last_change(document: bytes) -> list[tuple[str, str | None, Any]]:
    """``(tag, channel, value)`` of each child of the LastChange document's first instance
    element, read with ElementTree (``value``: the ``val`` attribute, else the text)."""
    try:
        last_change = ElementTree.fromstring(document)
    except ElementTree.ParseError as exc:
        raise MalformedEvent(f"LastChange is not XML: {exc}") from exc
    instance = None
    for path in _INSTANCES:
        instance = last_change.find(path)
        if instance is not None:
            break
    if instance is None:
        raise MalformedEvent("LastChange without InstanceID or QueueID")
    items: list[tuple[str, str | None, Any]] = []
    for element in instance:
        value = element.get("val")
        if value is None:
            value = element.text
        items.append((element.tag, element.get("channel"), value))
    return items


def _shape_last_change(document: bytes) -> list[tuple[str, str | None, Any]] | None:
    """``_tree_last_change`` of a document ``_tree3`` reads, or ``None``."""
    assert _tree3 is not None
    shape = _tree3(document)
    if shape is None:
        return None
    for path in _INSTANCES:
        for tag, _, elements in shape[2]:
            if tag == path:
                return [
                    (element_tag, attributes.get("channel"), attributes.get("val", text))
                    for element_tag, attributes, text in elements
                ]
    return None


# -- the shape speakers write, read without a parser ---------------------------------------------
#
# Only what a speaker really sends is read here, and only when nothing in it needs an XML
# parser's judgement: the readers give up (``None``) on anything else, and the parsers above
# then read the document, accept it or reject it as they always did.

#: The largest body, or LastChange document, read without a parser: beyond this the escaped
#: DIDL metadata dominates, and expat unescapes it faster than string replaces do.
SIMPLE_MAX = 2048

_SIMPLE_OPEN = b'<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">'
_SIMPLE_CLOSE = b"</e:propertyset>"
_SPACE = re.compile(rb"[ \t\n]*+")
_SIMPLE_VARIABLE = re.compile(rb"<e:property>[ \t\n]*+<([A-Za-z_][A-Za-z0-9_]*+)>")
_SIMPLE_PROPERTY_END = re.compile(rb"[ \t\n]*+</e:property>")
#: Bytes XML forbids in a document (``\r`` is refused apart: a parser would translate it).
_NOT_XML_BYTES = bytes(range(0x09)) + b"\x0b\x0c" + bytes(range(0x0E, 0x20))


def _simple_properties(body: bytes) -> list[tuple[str, str | None]] | None:
    """``_properties`` of a small body in the speakers' own shape, or ``None``."""
    if len(body) > SIMPLE_MAX or b"\r" in body or b"]]>" in body:
        return None
    if len(body.translate(None, _NOT_XML_BYTES)) != len(body):
        return None
    body = body.strip(b" \t\n")
    if not (body.startswith(_SIMPLE_OPEN) and body.endswith(_SIMPLE_CLOSE)):
        return None
    end = len(body) - len(_SIMPLE_CLOSE)
    position = _SPACE.match(body, len(_SIMPLE_OPEN)).end()  # type: ignore[union-attr]
    variables: list[tuple[str, str | None]] = []
    while position < end:
        opening = _SIMPLE_VARIABLE.match(body, position)
        if opening is None:
            return None
        name = opening.group(1)
        start = opening.end()
        stop = body.find(b"<", start)
        closing = b"</" + name + b">"
        if not body.startswith(closing, stop):
            return None
        property_end = _SIMPLE_PROPERTY_END.match(body, stop + len(closing))
        if property_end is None:
            return None
        text = _simple_text(body[start:stop])
        if text is None:
            return None
        variables.append((name.decode("ascii"), text or None))
        position = _SPACE.match(body, property_end.end()).end()  # type: ignore[union-attr]
    return variables if position == end else None


def _simple_text(raw: bytes) -> str | None:
    """Character data with only the five predefined entity references, unescaped; ``None``
    for anything else (character references, other entities, bytes that are not UTF-8 or
    characters XML forbids)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.isascii() and ("\ufffe" in text or "\uffff" in text):
        return None
    return _unescape(text) if "&" in text else text


_NAME = "[A-Za-z_][A-Za-z0-9_]*+"
_SIMPLE_EVENT = re.compile(
    rf'<Event xmlns="([^"<&]*+)"((?: xmlns:{_NAME}="[^"<&]*+")*+)>'
    r'<(InstanceID|QueueID) val="[0-9]++">'
)
_SIMPLE_PREFIX = re.compile(rf' xmlns:({_NAME})="([^"]*+)"')
#: Namespaces expat refuses a prefix to be bound to ("" undeclares one; "}" is its
#: separator in ElementTree's tags; those of xml and xmlns are reserved to them).
_SIMPLE_BAD_URIS = frozenset(
    {"", "http://www.w3.org/XML/1998/namespace", "http://www.w3.org/2000/xmlns/"}
)
_SIMPLE_ITEM = re.compile(
    rf'<({_NAME})(?::({_NAME}))?(?: channel="([^"<&\t\n\r]*+)")? val="([^"<]*+)"/>'
)
_SIMPLE_INSTANCES = frozenset(
    {
        ("urn:schemas-upnp-org:metadata-1-0/AVT/", "InstanceID"),
        ("urn:schemas-upnp-org:metadata-1-0/RCS/", "InstanceID"),
        ("urn:schemas-sonos-com:metadata-1-0/Queue/", "QueueID"),
    }
)


def _simple_last_change(text: str) -> list[tuple[str, str | None, Any]] | None:
    """``_tree_last_change`` of a small LastChange document in the speakers' own shape (one
    instance element of self-closing elements with a ``val`` and maybe a ``channel``
    attribute, prefixes declared on ``Event``), or ``None``."""
    if len(text) > SIMPLE_MAX:
        return None
    event = _SIMPLE_EVENT.match(text)
    if event is None:
        return None
    namespace, declarations, instance = event.groups()
    if (namespace, instance) not in _SIMPLE_INSTANCES:
        return None
    declared = _SIMPLE_PREFIX.findall(declarations) if declarations else []
    prefixes = [prefix for prefix, _ in declared]
    if len(set(prefixes)) != len(prefixes) or "xml" in prefixes or "xmlns" in prefixes:
        return None
    if any(uri in _SIMPLE_BAD_URIS or "}" in uri for _, uri in declared):
        return None
    items: list[tuple[str, str | None, Any]] = []
    position = event.end()
    match = _SIMPLE_ITEM.match
    while (item := match(text, position)) is not None:
        first, local, channel, value = item.groups()
        if local is not None and first not in prefixes:
            return None
        if "&" in value or not value.isprintable():
            # A parser normalises a tab or a line end in an attribute value to a space.
            if "\t" in value or "\n" in value or "\r" in value:
                return None
            if "&" in value and (value := _unescape(value)) is None:
                return None
        items.append((first if local is None else local, channel, value))
        position = item.end()
    if text[position:] != f"</{instance}></Event>":
        return None
    return items


# -- reading a propertyset with expat ------------------------------------------------------------
#
# The parser is set up as ElementTree sets up its own (the same expat, namespace processing
# with "}" after the namespace, undefined entities rejected), so it accepts and rejects the same
# documents; the reader keeps ElementTree's tags (``{namespace}name``) and its meaning of an
# element's text (the character data before its first child; ``None`` when there is none).


class _UndefinedEntity(ValueError):
    """An entity reference that was never declared (ElementTree's "undefined entity")."""


_XML_ERRORS = (expat.ExpatError, _UndefinedEntity)


def _parse(reader: _PropertySet, document: bytes) -> None:
    """Feed ``document`` to ``reader``.

    @raise expat.ExpatError: If it is not well-formed.
    @raise _UndefinedEntity: If it refers to an entity it does not declare.
    """
    parser = expat.ParserCreate(None, "}")
    # One data callback per run of text rather than one per entity reference.
    parser.buffer_text = True
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    parser.SkippedEntityHandler = _skipped_entity
    # check_document has refused any DTD already; this keeps the parser from ever reading one.
    parser.StartDoctypeDeclHandler = _doctype
    parser.Parse(document, True)


def _doctype(*_: object) -> None:
    raise UnsafeXml("dtd", "a document type declaration is not accepted")


def _skipped_entity(name: str, is_parameter_entity: bool) -> None:
    if not is_parameter_entity:
        raise _UndefinedEntity(f"undefined entity &{name};")


class _PropertySet:
    """The variables of a propertyset: ``(tag, text)`` for each child of each ``e:property``
    child of the root, in document order."""

    __slots__ = ("_depth", "_in_property", "_parts", "variables")

    def __init__(self) -> None:
        self.variables: list[tuple[str, str | None]] = []
        self._depth = 0
        self._in_property = False
        # The text of the variable being read, in pieces, until its first child starts.
        self._parts: list[str] | None = None

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        self._flush()
        depth = self._depth = self._depth + 1
        if depth == 2:
            self._in_property = tag == _PROPERTY_EXPAT
        elif depth == 3 and self._in_property:
            self.variables.append(("{" + tag if "}" in tag else tag, None))
            self._parts = []

    def end(self, tag: str) -> None:
        self._flush()
        self._depth -= 1

    def data(self, text: str) -> None:
        if self._parts is not None:
            self._parts.append(text)

    def _flush(self) -> None:
        parts = self._parts
        if parts is not None:
            self._parts = None
            if parts:
                tag, _ = self.variables[-1]
                self.variables[-1] = (tag, "".join(parts))


# -- JSON --------------------------------------------------------------------------------------

_INT = "int"
_BOOL = "bool"

# Evented variables whose UPnP type is numeric or boolean (from the SCPDs of a Sonos One fw 95
# and an Amp fw 79, samples/service_descriptions/, plus the LastChange-only ones the SCPDs
# list as unevented). Every other variable stays a string.
_WIRE_TYPES: Mapping[str, Mapping[str, str]] = {
    "AVTransport": {
        "CurrentCrossfadeMode": _BOOL,
        "NumberOfTracks": _INT,
        "CurrentTrack": _INT,
        "CurrentSection": _INT,
        "SleepTimerGeneration": _INT,
        "SnoozeRunning": _BOOL,
        "AlarmRunning": _BOOL,
        "AlarmIDRunning": _INT,
        "RestartPending": _BOOL,
        "DirectControlIsSuspended": _BOOL,
        "QueueUpdateID": _INT,
    },
    "RenderingControl": {
        "Mute": _BOOL,
        "Volume": _INT,
        "VolumeDB": _INT,
        "Bass": _INT,
        "Treble": _INT,
        "EQValue": _INT,
        "Loudness": _BOOL,
        "SupportsOutputFixed": _BOOL,
        "OutputFixed": _BOOL,
        "HeadphoneConnected": _BOOL,
        "SpeakerSize": _INT,
        "SubEnabled": _BOOL,
        "SubGain": _INT,
        "SubCrossover": _INT,
        "SubPolarity": _INT,
        "SonarEnabled": _BOOL,
        "SonarCalibrationAvailable": _BOOL,
        "NightMode": _BOOL,
        "SurroundEnabled": _BOOL,
        "SurroundLevel": _INT,
        "MusicSurroundLevel": _INT,
        "HeightChannelLevel": _INT,
        "RoomCalibrationEnabled": _BOOL,
        "RoomCalibrationAvailable": _BOOL,
        "SupportsMaxDialogLevel": _BOOL,
        "SpeechEnhanceEnabled": _BOOL,
    },
    "GroupRenderingControl": {
        "GroupMute": _BOOL,
        "GroupVolume": _INT,
        "GroupVolumeChangeable": _BOOL,
    },
    "Queue": {"UpdateID": _INT, "Curated": _BOOL},
    "AlarmClock": {"TimeGeneration": _INT},
    "AudioIn": {
        "LineInConnected": _BOOL,
        "LeftLineInLevel": _INT,
        "RightLineInLevel": _INT,
        "Playing": _BOOL,
    },
    "ContentDirectory": {
        "SystemUpdateID": _INT,
        "ShareIndexInProgress": _BOOL,
        "Browseable": _BOOL,
        "RadioFavoritesUpdateID": _INT,
        "RadioLocationUpdateID": _INT,
    },
    "DeviceProperties": {
        "Invisible": _BOOL,
        "IsZoneBridge": _BOOL,
        "AirPlayEnabled": _BOOL,
        "SupportsAudioIn": _BOOL,
        "SupportsAudioClip": _BOOL,
        "IsIdle": _BOOL,
        "HTBondedZoneCommitState": _INT,
        "Orientation": _INT,
        "RoomCalibrationState": _INT,
        "TVConfigurationError": _BOOL,
        "HdmiCecAvailable": _BOOL,
        "WirelessMode": _INT,
        "WirelessLeafOnly": _BOOL,
        "HasConfiguredSSID": _BOOL,
        "ChannelFreq": _INT,
        "BehindWifiExtender": _INT,
        "WifiEnabled": _BOOL,
        "EthLink": _BOOL,
        "SecureRegState": _INT,
        "VoiceConfigState": _INT,
        "MicEnabled": _INT,
        "ConnectionType": _INT,
        "SvcActive": _BOOL,
        "AvailableHeadphoneSessions": _INT,
    },
    "GroupManagement": {"GroupCoordinatorIsLocal": _BOOL, "ResetVolumeAfter": _BOOL},
    "HTControl": {"TOSLinkConnected": _BOOL, "RemoteConfigured": _BOOL},
    "SystemProperties": {"UpdateID": _INT, "UpdateIDX": _INT, "VoiceUpdateID": _INT},
}

#: Per service, SoCo's variable name to ``"int"`` or ``"bool"``.
VARIABLE_TYPES: Mapping[str, Mapping[str, str]] = {
    service: {camel_to_underscore(wire): kind for wire, kind in types.items()}
    for service, types in _WIRE_TYPES.items()
}

# Variables never forwarded in JSON: credentials (SoCo already redacts the value).
NEVER_FORWARDED = frozenset(camel_to_underscore(name) for name in REDACTED_VARIABLES)

_TRUE = frozenset({"1", "true", "True", "TRUE", "yes", "on"})
_FALSE = frozenset({"0", "false", "False", "FALSE", "no", "off"})
_json_names: dict[str, str] = {}


def json_name(name: str) -> str:
    """A variable's name in JSON: SoCo's name with its ``IDs`` quirk undone.

    ``container_update_i_ds`` becomes ``container_update_ids`` and
    ``zone_player_uui_ds_in_group`` becomes ``zone_player_uuids_in_group``; every other name
    is SoCo's.
    """
    result = _json_names.get(name)
    if result is None:
        result = name.replace("uui_ds", "uuids").replace("_i_ds", "_ids")
        if len(_json_names) < _MAX_NAMES:
            _json_names[name] = result
    return result


def _typed(kind: str | None, value: str) -> Any:
    if kind == _INT:
        try:
            return int(value)
        except ValueError:
            return value
    if kind == _BOOL:
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    return value


def variables_to_json(
    service: str,
    variables: Mapping[str, Any],
    base_url: str | None = None,
    *,
    zone_group_state: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Turn ``parse_event_xml``-shaped variables into plain JSON values.

    - names: ``json_name`` (SoCo's, with the ``IDs`` quirk undone);
    - strings: typed (``int``/``bool``) where ``VARIABLE_TYPES`` knows the variable and the
      value parses, else the string as sent (``"NOT_IMPLEMENTED"`` stays a string);
    - channel dicts: kept, each value typed;
    - DIDL metadata: ``didl_to_json`` objects; faulty metadata ``{"error": "..."}``;
    - ``ThirdPartyMediaServersX``: dropped.

    @param service: The service name (``RenderingControl``), which selects the type table.
    @param variables: The variables (not modified).
    @param base_url: ``http://host:port`` of the speaker, to make album art URIs absolute.
    @param zone_group_state: If given, applied to a ``zone_group_state`` string to give its
        JSON (the event processor passes the parsed topology); otherwise it stays a string.
    """
    columns = _columns.get(service)
    if columns is None:
        columns = _columns[service] = {}
    result: dict[str, Any] = {}
    for name, value in variables.items():
        column = columns.get(name)
        if column is None:
            column = _column(service, name, columns)
        key, kind = column
        if key is None:
            continue
        if kind is None and type(value) is str:
            result[key] = value
        elif kind is _ZONE_GROUP_STATE and zone_group_state is not None and value:
            result[key] = zone_group_state(value)
        else:
            result[key] = _value_to_json(kind, value, base_url)
    return result


_ZONE_GROUP_STATE = "zone_group_state"
# Per service, SoCo's name to (JSON name or None if never forwarded, kind): what
# variables_to_json does with a variable, worked out once per name.
_columns: dict[str, dict[str, tuple[str | None, str | None]]] = {}


def _column(
    service: str, name: str, columns: dict[str, tuple[str | None, str | None]]
) -> tuple[str | None, str | None]:
    if name in NEVER_FORWARDED:
        column: tuple[str | None, str | None] = (None, None)
    elif name == _ZONE_GROUP_STATE:
        column = (json_name(name), _ZONE_GROUP_STATE)
    else:
        column = (json_name(name), VARIABLE_TYPES.get(service, {}).get(name))
    if len(columns) < _MAX_NAMES:
        columns[name] = column
    return column


def _value_to_json(kind: str | None, value: Any, base_url: str | None) -> Any:
    # Exact types first: cheaper than isinstance() on ABCs, and isinstance() on a LazyDidl
    # would parse it with SoCo.
    value_type = type(value)
    if value_type is str:
        return _typed(kind, value)
    if value is None:
        return None
    if value_type is LazyDidl:
        return didl_to_json(value, base_url)
    if value_type is dict:
        return {
            str(key): _typed(kind, item)
            if type(item) is str
            else _value_to_json(kind, item, base_url)
            for key, item in value.items()
        }
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _typed(kind, value)
    if isinstance(value, Mapping):
        return {str(key): _value_to_json(kind, item, base_url) for key, item in value.items()}
    return didl_to_json(value, base_url)


# -- DIDL to JSON ------------------------------------------------------------------------------

_DC = "{http://purl.org/dc/elements/1.1/}"
_UPNP = "{urn:schemas-upnp-org:metadata-1-0/upnp/}"
_R = "{urn:schemas-rinconnetworks-com:metadata-1-0/}"
_CLASS = _UPNP + "class"
_RES = "{urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/}res"
_DIDL_FIELDS = (
    ("title", _DC + "title"),
    ("artist", _DC + "creator"),
    ("album", _UPNP + "album"),
    ("album_artist", _R + "albumArtist"),
    ("album_art_uri", _UPNP + "albumArtURI"),
    ("stream_content", _R + "streamContent"),
    ("radio_show", _R + "radioShowMd"),
    ("upnp_class", _CLASS),
)
_DIDL_CACHE_SIZE = 256
_didl_cache: OrderedDict[str, dict[str, Any]] = OrderedDict()


def didl_to_json(value: Any, base_url: str | None = None) -> dict[str, Any]:
    """Plain JSON for DIDL metadata: a ``LazyDidl``, a SoCo ``DidlObject`` or a ``SoCoFault``.

    The object always has the same keys: ``title``, ``artist`` (``dc:creator``), ``album``,
    ``album_artist``, ``album_art_uri``, ``duration`` (``H:MM:SS`` as sent), ``uri``,
    ``protocol_info``, ``item_id``, ``parent_id``, ``upnp_class``, ``stream_content`` (what a
    radio station is playing), ``radio_show``; missing ones are ``null``. A relative album
    art URI (``/getaa?...``) is made absolute with ``base_url`` when it is given. Faulty
    metadata gives ``{"error": "..."}``.
    """
    fields = _didl_fields_cached(value) if type(value) is LazyDidl else _didl_object_fields(value)
    if "error" not in fields and base_url is not None:
        art = fields.get("album_art_uri")
        if isinstance(art, str) and art.startswith("/"):
            fields["album_art_uri"] = base_url.rstrip("/") + art
    return fields


def _didl_fields_cached(value: LazyDidl) -> dict[str, Any]:
    didl = value.didl
    fields = _didl_cache.get(didl)
    if fields is not None:
        _didl_cache.move_to_end(didl)
        return dict(fields)
    try:
        # Events were checked when parsed, and control calls check their whole answer;
        # checked again as the last step before any parser sees it.
        check_text(didl)
    except UnsafeXml as unsafe:
        return {"error": str(unsafe)}
    fields = _didl_fields(didl)
    if fields is None:
        # Not well-formed for a strict parser: SoCo's lenient one decides.
        fields = _didl_object_fields(value._resolve())
    _didl_cache[didl] = fields
    if len(_didl_cache) > _DIDL_CACHE_SIZE:
        _didl_cache.popitem(last=False)
    return dict(fields)


def _didl_fields(didl: str) -> dict[str, Any] | None:
    """Fields of the first item of a well-formed DIDL document (``None``: leave it to SoCo)."""
    item = _shape_item(didl) if _tree3 is not None else None
    if item is None:
        # ElementTree here: with a dozen elements and little escaped text, its C tree builder
        # costs less than expat's Python callbacks.
        try:
            root = ElementTree.fromstring(didl)
        except ElementTree.ParseError:
            return None
        if len(root) == 0:
            return None
        element = root[0]
        item = element.attrib, [(child.tag, child.attrib, child.text) for child in element]
    attributes, children = item
    # Each tag's first element (the earlier ones written last).
    first = {tag: (child_attributes, text) for tag, child_attributes, text in reversed(children)}
    if _CLASS not in first or attributes.get("id") is None:
        return None
    # As ElementTree's findtext: "" for an element without text, None for no element.
    get = first.get
    fields: dict[str, Any] = {
        key: None if (found := get(path)) is None else (found[1] or "")
        for key, path in _DIDL_FIELDS
    }
    # As SoCo's objects have them: an empty title, the class without a service's subclass.
    fields["title"] = fields["title"] or ""
    upnp_class = fields["upnp_class"]
    for separator in (".#", "#"):
        if separator in upnp_class:
            upnp_class = upnp_class[: upnp_class.find(separator)]
    fields["upnp_class"] = upnp_class
    fields["item_id"] = attributes.get("id")
    fields["parent_id"] = attributes.get("parentID")
    resource = first.get(_RES)
    if resource is None:
        fields.update(duration=None, uri=None, protocol_info=None)
    else:
        resource_attributes, uri = resource
        fields.update(
            duration=resource_attributes.get("duration"),
            uri=uri,
            protocol_info=resource_attributes.get("protocolInfo"),
        )
    return fields


def _shape_item(
    didl: str,
) -> tuple[Mapping[str, str], list[tuple[str, Mapping[str, str], str | None]]] | None:
    """The attributes and the children (tag, attributes, text) of the first element of a DIDL
    document ``_tree3`` reads, or ``None``."""
    assert _tree3 is not None
    try:
        shape = _tree3(didl.encode("utf-8"))
    except UnicodeEncodeError:
        return None
    if shape is None or not shape[2]:
        return None
    _, attributes, children = shape[2][0]
    return attributes, children


def _didl_object_fields(value: Any) -> dict[str, Any]:
    # A SoCoFault exists only once SoCo is loaded.
    faults = sys.modules.get("soco.exceptions")
    if faults is not None and isinstance(value, faults.SoCoFault):
        return {"error": str(value.exception.__cause__ or value.exception)}
    resources = getattr(value, "resources", None) or []
    resource = resources[0] if resources else None
    fields: dict[str, Any] = {
        "title": getattr(value, "title", None),
        "artist": getattr(value, "creator", None),
        "album": getattr(value, "album", None),
        "album_artist": getattr(value, "album_artist", None),
        "album_art_uri": getattr(value, "album_art_uri", None),
        "stream_content": getattr(value, "stream_content", None),
        "radio_show": getattr(value, "radio_show", None),
        "upnp_class": getattr(value, "item_class", None),
        "item_id": getattr(value, "item_id", None),
        "parent_id": getattr(value, "parent_id", None),
        "duration": getattr(resource, "duration", None),
        "uri": getattr(resource, "uri", None),
        "protocol_info": getattr(resource, "protocol_info", None),
    }
    return {key: item if item is None else str(item) for key, item in fields.items()}
