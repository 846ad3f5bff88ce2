"""Tests for sonosd.gena._shape (the speakers' event shape read in C): for any bytes, tree3
answers None or exactly ElementTree's reading of a document ElementTree accepts; it never
raises but TypeError, never reads out of bounds and leaks nothing."""

from __future__ import annotations

import array
import contextlib
import gc
import importlib
import os
import random
import subprocess
import sys
import sysconfig
import tracemalloc
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sonosd.gena import eventxml
from sonosd.gena.eventxml import MalformedEvent, UnsafeEvent, parse_event_xml
from tests.gena.shape_documents import (
    GOOD_TEXTS,
    TEXTS,
    build_document,
    et_shape,
    mutate,
    real_documents,
)
from tests.paths import ROOT


def _shape_module() -> Any:
    try:
        return importlib.import_module("sonosd.gena._shape")
    except ImportError as exc:  # pragma: no cover - the failure this guards against
        pytest.fail(f"the C reader sonosd.gena._shape was not built ({exc}): run setup.py")


tree3 = _shape_module().tree3

REAL = list(real_documents())
#: The one real DIDL value ElementTree refuses (``<res x-rincon-stream>``, no attribute value).
MALFORMED = "avtransport_lastchange_linein_soco.xml:LastChange:AVTransportURIMetaData"


def test_the_c_reader_is_built_and_used() -> None:
    """The module imports here (the Makefile's venv builds it) and eventxml reads with it."""
    module = _shape_module()
    assert module.__file__.endswith(sysconfig.get_config_var("EXT_SUFFIX"))
    assert eventxml._tree3 is module.tree3


def assert_contract(document: bytes) -> None:
    """tree3's answer is None, or ElementTree accepts the document and reads the same."""
    answer = tree3(document)
    if answer is None:
        return
    try:
        expected = et_shape(document)
    except Exception as refused:
        message = f"tree3 read {document!r}, ElementTree refuses it: {refused}"
        raise AssertionError(message) from refused
    assert answer == expected, document


# -- 1. differential: built documents, mutations, raw bytes --------------------------------------

#: The choices of one document, drawn at once (a draw per piece cost ~30 ms a document):
#: a tape Hypothesis shrinks toward 0, the builders' first (good) option; or a seed of
#: random.Random, whose choices are as often hostile as the builders' weights say (a short
#: tape runs out, and then makes every choice the first).
TAPE = st.lists(st.integers(0, 1 << 16), max_size=400)


def tape_chooser(tape: list[int]) -> Any:
    """A ``choose`` taking the next number of ``tape`` modulo the options (the first option
    once the tape runs out)."""
    numbers = iter(tape)

    def choose(options: Any) -> Any:
        return options[next(numbers, 0) % len(options)]

    return choose


CHOOSERS = st.one_of(
    TAPE.map(tape_chooser), st.integers(0, 1 << 32).map(lambda seed: random.Random(seed).choice)
)


@settings(deadline=None, max_examples=600)
@given(st.data())
@example(b'<a xmlns:p="http://www.w3.org/XML/1998/namespace"/>')
@example(b'<a xmlns="http://www.w3.org/2000/xmlns/"><b/></a>')
def test_built_documents_read_as_elementtree_does(data: st.DataObject | bytes) -> None:
    """1-4 levels of hostile pieces, sometimes mutated: None, or ElementTree's reading."""
    if isinstance(data, bytes):
        assert_contract(data)
        return

    choose = data.draw(CHOOSERS)
    document = build_document(choose)
    for _ in range(data.draw(st.integers(0, 3))):
        document = mutate(document, choose)
    assert_contract(document)


@settings(deadline=None, max_examples=300)
@given(st.sampled_from([document for _, document in REAL]), st.data())
def test_mutated_real_documents_read_as_elementtree_does(
    document: bytes, data: st.DataObject
) -> None:
    """A real document with bytes inserted, deleted or flipped: None, or ElementTree's reading."""

    choose = data.draw(CHOOSERS)
    for _ in range(data.draw(st.integers(1, 4))):
        document = mutate(document, choose)
    assert_contract(document)


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=200))
def test_any_bytes_read_as_elementtree_does(document: bytes) -> None:
    """Bytes of no shape at all: None, or ElementTree's reading."""
    assert_contract(document)


def _escape(text: bytes) -> bytes:
    return text.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")


#: Declarations on a LastChange ``Event``: the speakers' own, and ones expat refuses.
EVENT_DECLARATIONS = (
    b"",
    b' xmlns:r="urn:schemas-rinconnetworks-com:metadata-1-0/"',
    b' xmlns:r=""',
    b' xmlns:r="u}v"',
    b' xmlns:r="http://www.w3.org/2000/xmlns/"',
)


def _event_body(choose: Any) -> bytes:
    """A NOTIFY body of hostile values, with a LastChange document of hostile values."""
    pieces = GOOD_TEXTS if choose(range(4)) else TEXTS

    def text() -> bytes:
        return b"".join(choose(pieces) for _ in range(choose(range(4))))

    changes = b"".join(
        b"<" + name + b' val="' + _escape(text()).replace(b'"', b"&quot;") + b'"/>'
        for name in (choose((b"TransportState", b"CurrentTrackURI", b"Mute")),) * choose(range(3))
    )
    last_change = (
        b'<Event xmlns="urn:schemas-upnp-org:metadata-1-0/AVT/"'
        + choose(EVENT_DECLARATIONS)
        + b'><InstanceID val="0">'
        + changes
        + choose((b"", text()))
        + b"</InstanceID></Event>"
    )
    variables = b"".join(
        b"<e:property><" + name + b">" + text() + b"</" + name + b"></e:property>"
        for name in (choose((b"Volume", b"ZoneName", b"A_B")),) * choose(range(3))
    )
    return (
        b"<e:propertyset "
        + EVENT_NS
        + b">"
        + variables
        + b"<e:property><LastChange>"
        + _escape(last_change)
        + b"</LastChange></e:property></e:propertyset>"
    )


def _read_event(document: bytes) -> Any:
    try:
        return parse_event_xml(document)
    except (MalformedEvent, UnsafeEvent) as refused:
        return type(refused)


@settings(deadline=None, max_examples=300)
@given(CHOOSERS)
def test_events_read_as_without_the_c_reader(choose: Any) -> None:
    """parse_event_xml gives the same variables (or refusal) with the compiled reader as
    without it: what it reads, and what it declines to the parsers."""
    document = _event_body(choose)
    with_reader = _read_event(document)
    saved = eventxml._tree3
    eventxml._tree3 = None
    try:
        without = _read_event(document)
    finally:
        eventxml._tree3 = saved
    assert with_reader == without, document


# -- 2. the real documents -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "document"), REAL, ids=[name for name, _ in REAL])
def test_real_documents_are_read(name: str, document: bytes) -> None:
    """Every sample NOTIFY body, its LastChange document and its DIDL values are read, as
    ElementTree reads them; the one DIDL the reference shows malformed is declined."""
    if name == MALFORMED:
        with pytest.raises(ElementTree.ParseError):
            ElementTree.fromstring(document)
        assert tree3(document) is None
        return
    answer = tree3(document)
    assert answer is not None
    assert answer == et_shape(document)


def test_the_real_documents_are_all_there() -> None:
    """Bodies, LastChange documents and DIDL values of both sample folders were found."""
    kinds = {name.count(":") for name, _ in REAL}
    assert kinds == {0, 1, 2}
    assert any(name.endswith(".http") for name, _ in REAL)
    assert MALFORMED in {name for name, _ in REAL}


EDGES = {
    "32 namespace declarations": b"<a"
    + b"".join(b' xmlns:n%d="u%d"' % (i, i) for i in range(32))
    + b"/>",
    "32 attributes": b"<a" + b"".join(b' a%d="%d"' % (i, i) for i in range(32)) + b"/>",
    "a prefix declared again below": b'<a xmlns:p="u"><p:b xmlns:p="v"><p:c/></p:b><p:b/></a>',
    "the default namespace, and no namespace on attributes": (
        b'<a xmlns="u" b="1"><b xmlns="v" c="2"><c/></b><b><c>x</c></b></a>'
    ),
    "two prefixes of one namespace, distinct attributes": (
        b'<a xmlns:p="u" xmlns:q="u"><b p:x="1" q:y="2" x="3"/></a>'
    ),
    "empty and blank texts": b"<a><b><c>  </c><c></c><c/></b></a>",
    "spaces everywhere they may be": b"<a\txmlns:p\n=\n\"u\"\r\n><b p:x = '1' /></a \n>\n",
    "]]> in an attribute value": b'<a b="]]&gt;]]>"/>',
    "a blank namespace": b'<a xmlns=" "/>',
    "carriage returns in tags and between elements": (
        b'\r\n<a\rb="1"\r\nc=\r"2">\r\n<b>\r<c>x</c\r></b\r\n></a\r>\r'
    ),
    "names with . and - on both sides of the colon": b'<p.q-r:a.b xmlns:p.q-r="u" p.q-r:x-y="1"/>',
    "a prefix used before its declaration in one tag": b'<a p:x="1" xmlns:p="u"/>',
    "a prefixed and a plain attribute of one local name": b'<a xmlns:a="x" a:b="1" b="2"/>',
    "one namespace declared again below": (
        b'<a xmlns:p="u" xmlns="v"><b xmlns:p="u" xmlns="v"/></a>'
    ),
    "names expat keeps: xmlns, p:xmlns, p:xml, xmlnsx": (
        b'<xmlns xmlns:p="u" xmlnsx="1" p:xmlns="2" p:xml="3"><p:xmlns/></xmlns>'
    ),
    "]] > and ]> in a text": b"<a><b><c>]] >]>]</c></b></a>",
    "C1 controls, U+FEFF, U+FFFD and U+10FFFF": (
        b'<a b="\xc2\x85\x7f"><b><c>\xc2\x80\xef\xbb\xbf\xef\xbf\xbd\xf4\x8f\xbf\xbf</c></b></a>'
    ),
    "references escaped twice, and > in a value": b'<a x="&amp;lt;>"><b><c>&amp;amp;></c></b></a>',
    "a namespace with {": b'<a xmlns="{u"/>',
}


@pytest.mark.parametrize("edge", list(EDGES))
def test_edges_are_read(edge: str) -> None:
    """Documents at the edge of a rule (the limits themselves, scoping) are read, as
    ElementTree reads them."""
    answer = tree3(EDGES[edge])
    assert answer is not None
    assert answer == et_shape(EDGES[edge])


#: Documents next to an edge that ElementTree refuses: tree3 declines each.
REFUSED_EDGES = {
    "xmlns: alone": b'<a xmlns:="u"/>',
    "one prefix declared twice in a tag, one namespace": b'<a xmlns:p="u" xmlns:p="u"/>',
    "two prefixes of one namespace on one local name": (
        b'<a xmlns:p="u" xmlns:q="u" p:x="1" q:x="2"/>'
    ),
    "]]> in a text": b"<a><b><c>]]]></c></b></a>",
    "an end tag naming the prefix of the same namespace": b'<p:a xmlns:p="u" xmlns:q="u"></q:a>',
    "a space after </": b"<a></ a>",
    "U+FFFF in a value": b'<a b="\xef\xbf\xbf"/>',
    "a surrogate in a text": b"<a><b><c>\xed\xa0\x80</c></b></a>",
    "an empty document": b"",
    "only spaces": b" \r\n\t",
}


@pytest.mark.parametrize("edge", list(REFUSED_EDGES))
def test_refused_edges_are_declined(edge: str) -> None:
    """Documents ElementTree refuses next to an edge tree3 reads are declined."""
    with pytest.raises(ElementTree.ParseError):
        ElementTree.fromstring(REFUSED_EDGES[edge])
    assert tree3(REFUSED_EDGES[edge]) is None


# -- 3. declines, one rule each, and the fallback still answers ----------------------------------

EVENT_NS = b'xmlns:e="urn:schemas-upnp-org:event-1-0"'


def body(variables: bytes, root_attributes: bytes = b"", after: bytes = b"") -> bytes:
    """A NOTIFY body of one property holding ``variables``."""
    return (
        b"<e:propertyset "
        + EVENT_NS
        + root_attributes
        + b"><e:property>"
        + variables
        + b"</e:property></e:propertyset>"
        + after
    )


def et_variables(document: bytes) -> dict[str, str | None]:
    """ElementTree's variables of a NOTIFY body, named as parse_event_xml names them."""
    root = ElementTree.fromstring(document)
    return {
        eventxml._plain_name(variable.tag): variable.text
        for prop in root.iterfind(eventxml._PROPERTY)
        for variable in prop
    }


MANY_NAMESPACES = b"".join(b' xmlns:n%d="urn:n%d"' % (i, i) for i in range(33))

BODY_DECLINES = {
    "comment": body(b"<A>1</A><!-- c --><B>2</B>"),
    "processing instruction": body(b"<A>1</A><?pi x?><B>2</B>"),
    "xml declaration": b'<?xml version="1.0" encoding="utf-8"?>' + body(b"<A>1</A>"),
    "doctype": b"<!DOCTYPE e:propertyset>" + body(b"<A>1</A>"),
    "cdata": body(b"<A><![CDATA[1 < 2]]></A>"),
    "character reference": body(b"<A>&#65;&#x42;</A>"),
    "unknown entity": body(b"<A>&nbsp;</A>"),
    "bare ampersand": body(b"<A>a & b</A>"),
    "carriage return in text": body(b"<A>1\r\n2</A>"),
    "]]> in text": body(b"<A>a]]>b</A>"),
    "undeclared prefix": body(b"<u:A>1</u:A>"),
    "reserved prefix": body(b'<A xml:lang="en">1</A>'),
    "xml namespace bound to another prefix": body(
        b"<A>1</A>", b' xmlns:x="http://www.w3.org/XML/1998/namespace"'
    ),
    "xmlns namespace as the default": body(b'<A xmlns="http://www.w3.org/2000/xmlns/">1</A>'),
    "fourth level": body(b"<A>1<B>2</B></A>"),
    "text beside elements at level 2": body(b"<A>1</A>stray"),
    "text beside elements at level 1": body(b"<A>1</A>").replace(
        b"</e:propertyset>", b"x</e:propertyset>"
    ),
    "something after the root": body(b"<A>1</A>", after=b"<e:propertyset/>"),
    "not utf-8": body(b"<A>caf\xe9</A>"),
    "U+FFFE": body(b"<A>\xef\xbf\xbe</A>"),
    "U+FFFF in an attribute": body(b'<A v="\xef\xbf\xbf">1</A>'),
    "more than 32 namespace declarations in scope": body(b"<A>1</A>", MANY_NAMESPACES),
    "empty default namespace": body(b'<A xmlns="">1</A>'),
    "empty prefixed namespace": body(b'<A xmlns:u="">1</A>'),
    "non-ascii name": body("<Ä>1</Ä>".encode()),
}


@pytest.mark.parametrize("rule", list(BODY_DECLINES))
def test_body_decline(rule: str) -> None:
    """A NOTIFY body breaking one rule is declined; where ElementTree accepts it
    parse_event_xml still gives ElementTree's variables, else a clear refusal."""
    document = BODY_DECLINES[rule]
    assert tree3(document) is None
    try:
        expected = et_variables(document)
    except ElementTree.ParseError:
        with pytest.raises((MalformedEvent, UnsafeEvent)):
            parse_event_xml(document)
        return
    if rule in ("doctype",):
        # ElementTree reads a DOCTYPE; sonosd refuses any (tests/gena/test_xmlguard.py).
        with pytest.raises(UnsafeEvent):
            parse_event_xml(document)
        return
    assert parse_event_xml(document) == expected


def didl(res_attributes: bytes, root_attributes: bytes = b"") -> bytes:
    """A DIDL-Lite item whose ``<res>`` carries ``res_attributes``."""
    return (
        b'<DIDL-Lite xmlns:dc="http://purl.org/dc/elements/1.1/"'
        b' xmlns:upnp="urn:schemas-upnp-org:metadata-1-0/upnp/"'
        b' xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/"' + root_attributes + b">"
        b'<item id="-1" parentID="-2"><res' + res_attributes + b">x-file:///a.mp3</res>"
        b"<dc:title>T</dc:title><upnp:class>object.item.audioItem.musicTrack</upnp:class>"
        b"</item></DIDL-Lite>"
    )


MANY_ATTRIBUTES = b"".join(b' a%d="%d"' % (i, i) for i in range(33))

DIDL_DECLINES = {
    "tab in an attribute value": didl(b' protocolInfo="http-get:*:\taudio/mpeg:*"'),
    "line feed in an attribute value": didl(b' protocolInfo="http-get:*:\naudio/mpeg:*"'),
    "carriage return in an attribute value": didl(b' protocolInfo="http-get:*:\raudio/mpeg:*"'),
    "duplicate attribute": didl(b' protocolInfo="a" protocolInfo="b"'),
    "duplicate attribute via two prefixes": didl(
        b' u:protocolInfo="a" v:protocolInfo="b"', b' xmlns:u="urn:u" xmlns:v="urn:u"'
    ),
    "more than 32 attributes on one element": didl(b' protocolInfo="p"' + MANY_ATTRIBUTES),
    "no space between attributes": didl(b' protocolInfo="p"duration="0:01:00"'),
}


@pytest.mark.parametrize("rule", list(DIDL_DECLINES))
def test_didl_decline(rule: str) -> None:
    """A DIDL value breaking one rule is declined; where ElementTree accepts it _didl_fields
    still gives ElementTree's title, id, URI and protocol info, else None (SoCo decides)."""
    document = DIDL_DECLINES[rule]
    assert tree3(document) is None
    fields = eventxml._didl_fields(document.decode("utf-8"))
    try:
        item = ElementTree.fromstring(document)[0]
    except ElementTree.ParseError:
        assert fields is None
        return
    res = item.find("{urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/}res")
    assert res is not None
    assert fields is not None
    assert fields["title"] == "T"
    assert fields["item_id"] == item.get("id") == "-1"
    assert fields["uri"] == res.text == "x-file:///a.mp3"
    assert fields["protocol_info"] == res.get("protocolInfo")


def test_last_change_decline_keeps_the_values() -> None:
    """A LastChange document tree3 declines (a tab in a value) is read by the parsers: the
    value is ElementTree's (the tab normalised to a space)."""
    last_change = (
        b'<Event xmlns="urn:schemas-upnp-org:metadata-1-0/AVT/"><InstanceID val="0">'
        b'<TransportState val="PLAYING"/><CurrentTrackURI val="a\tb"/></InstanceID></Event>'
    )
    assert tree3(last_change) is None
    escaped = last_change.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")
    variables = parse_event_xml(body(b"<LastChange>" + escaped + b"</LastChange>"))
    assert variables["transport_state"] == "PLAYING"
    assert variables["current_track_uri"] == "a b"


#: Namespace declarations on a LastChange ``Event`` that expat refuses, the prefix unused.
BAD_DECLARATIONS = {
    "an empty namespace": b'xmlns:r=""',
    'a "}" in the namespace': b'xmlns:r="u}v"',
    "the namespace of xml": b'xmlns:r="http://www.w3.org/XML/1998/namespace"',
    "the namespace of xmlns": b'xmlns:r="http://www.w3.org/2000/xmlns/"',
}


@pytest.mark.parametrize("declaration", list(BAD_DECLARATIONS))
def test_last_change_bad_declaration_is_refused_with_or_without_the_reader(
    declaration: str,
) -> None:
    """A LastChange document whose Event declares a namespace expat refuses is refused as
    unparsable with the compiled reader and without it (the string reader used without it
    once read it)."""
    last_change = (
        b'<Event xmlns="urn:schemas-upnp-org:metadata-1-0/AVT/" '
        + BAD_DECLARATIONS[declaration]
        + b'><InstanceID val="0"><TransportState val="PLAYING"/></InstanceID></Event>'
    )
    with pytest.raises(ElementTree.ParseError):
        ElementTree.fromstring(last_change)
    document = body(b"<LastChange>" + _escape(last_change) + b"</LastChange>")
    assert _read_event(document) is MalformedEvent
    saved = eventxml._tree3
    eventxml._tree3 = None
    try:
        assert _read_event(document) is MalformedEvent
    finally:
        eventxml._tree3 = saved


# -- 4. bounds -----------------------------------------------------------------------------------

FOUR_MB = 4 * 1024 * 1024


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"<a>" * (FOUR_MB // 3), id="deep nesting"),
        pytest.param(b"<a>" * (FOUR_MB // 6) + b"</a>" * (FOUR_MB // 8), id="deep and closed"),
        pytest.param(b"<a" + b' b="c"' * (FOUR_MB // 6) + b"/>", id="a million attributes"),
        pytest.param(b"<a" + b" xmlns:p='u'" * (FOUR_MB // 12) + b"/>", id="a million xmlns"),
        pytest.param(b"<a><b><c>" + b"x" * FOUR_MB + b"</c></b></a>>", id="huge text, junk"),
        pytest.param(b"<a><b><c>" + b"&am" * (FOUR_MB // 3) + b"</c></b></a>", id="no entity"),
        pytest.param(b"<a><b " + b"c='" * (FOUR_MB // 3) + b"/></b></a>", id="open values"),
        pytest.param(b" " * FOUR_MB, id="only spaces"),
    ],
)
def test_four_megabytes_are_declined(document: bytes) -> None:
    """A 4 MB document of none of the shape (deep, a million attributes...) is answered
    None, without reading it beyond where it leaves the shape."""
    assert len(document) >= FOUR_MB - 8
    assert tree3(document) is None


def test_a_million_children_are_read() -> None:
    """A megabyte of second-level elements (262,144) is read whole."""
    answer = tree3(b"<a>" + b"<b/>" * (FOUR_MB // 16) + b"</a>")
    assert answer is not None
    assert len(answer[2]) == FOUR_MB // 16
    assert answer[2][-1] == ("b", {}, [])


def test_huge_text_is_read() -> None:
    """4 MB of text at the third level is read whole."""
    answer = tree3(b"<a><b><c>" + b"x&lt;" * (FOUR_MB // 5) + b"</c></b></a>")
    assert answer is not None
    assert answer[2][0][2][0][2] == "x<" * (FOUR_MB // 5)


def test_any_buffer_is_read() -> None:
    """bytes, bytearray and memoryview (a slice too) are read alike."""
    document = b'<a x="1"><b><c>t</c></b></a>'
    expected = ("a", {"x": "1"}, [("b", {}, [("c", {}, "t")])])
    assert tree3(document) == expected
    assert tree3(bytearray(document)) == expected
    assert tree3(memoryview(document)) == expected
    assert tree3(memoryview(b"  " + document + b"junk")[2:-4]) == expected
    assert tree3(memoryview(b"  " + document + b"junk")[2:-3]) is None
    assert tree3(array.array("B", document)) == expected
    assert tree3(memoryview(document[:28]).cast("B", (4, 7))) == tree3(document[:28])


def test_a_strided_buffer_is_refused_as_elementtree_refuses_it() -> None:
    """A buffer that is not contiguous raises BufferError, as ElementTree does (the one
    error besides TypeError: it has bytes, but not in one piece)."""
    strided = memoryview(b"<<aa//>>")[::2]
    with pytest.raises(BufferError):
        ElementTree.fromstring(strided)
    with pytest.raises(BufferError):
        tree3(strided)


@pytest.mark.parametrize("argument", ["<a/>", None, 1, ["<a/>"]])
def test_no_buffer_is_a_type_error(argument: Any) -> None:
    """A str (or anything without a buffer) raises TypeError."""
    with pytest.raises(TypeError):
        tree3(argument)


# -- 5. no references leak -----------------------------------------------------------------------

LEAK_DOCUMENTS: list[Any] = [
    *(document for _, document in REAL[:6]),
    b'<a xmlns="u" xmlns:p="v" p:x="1"><b><c y="&amp;">t</c></b></a>',
    body(b"<A>1</A><B>2</B>"),
    *BODY_DECLINES.values(),
    *DIDL_DECLINES.values(),
    b'<a xmlns:p="u" xmlns:q="u" p:x="1" q:x="2"/>',
    b"<a><b><c>\xff</c></b></a>",
    b'<a x="\xff"/>',
    b'<a xmlns:p="\xff"/>',
    b"<a><b><c>1</c><c>&bogus;</c></b></a>",
    "<a/>",
    None,
]


def test_no_memory_grows_over_many_calls() -> None:
    """20,000 calls over accepted, declined and erroring documents leave no memory behind."""

    def calls(times: int) -> None:
        for _ in range(times):
            for document in LEAK_DOCUMENTS:
                with contextlib.suppress(TypeError):
                    tree3(document)

    rounds = 20_000 // len(LEAK_DOCUMENTS)
    calls(rounds // 4)  # warm up: interned strings, free lists
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        objects = len(gc.get_objects())
        calls(rounds)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # A leaked tuple or string per call would be megabytes; a few stray frames are not.
    assert grown < 64 * 1024, grown
    assert len(gc.get_objects()) - objects < 100


def test_buffers_are_released() -> None:
    """Every call releases the document's buffer: a bytes object's reference count is back
    where it was, and a bytearray can be resized again (not while a buffer is exported)."""
    for document in LEAK_DOCUMENTS:
        if not isinstance(document, bytes):
            continue
        count = sys.getrefcount(document)
        for _ in range(100):
            tree3(document)
        assert sys.getrefcount(document) == count, document
        resizable = bytearray(document)
        tree3(resizable)
        tree3(memoryview(resizable)[1:])
        resizable.extend(b" ")
        assert resizable.endswith(b" ")


# -- 7. AddressSanitizer ---------------------------------------------------------------------------

CHILD = """
import ctypes, random, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import _shape
from tests.gena.shape_documents import build_document, mutate, real_documents

def exact(document):
    # A buffer of exactly len(document) bytes (malloc'd: PYTHONMALLOC=malloc), so a read
    # one byte past its end lands in ASan's red zone, not in a bytes object's trailing NUL.
    buffer = (ctypes.c_char * max(len(document), 1))()
    ctypes.memmove(buffer, document, len(document))
    return memoryview(buffer)[: len(document)]

documents = [document for _, document in real_documents()]
rng = random.Random(17)
for _ in range(3000):
    document = build_document(rng.choice)
    for _ in range(rng.randrange(3)):
        document = mutate(document, rng.choice)
    documents.append(document)
for document in documents:
    for size in range(len(document) + 1) if len(document) < 64 else (len(document),):
        _shape.tree3(exact(document[:size]))
    _shape.tree3(document)
try:
    _shape.tree3("<a/>")
except TypeError:
    pass
print("read", len(documents))
"""


def _asan_runtime() -> str:
    found = subprocess.run(
        ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert os.path.isabs(found), f"gcc has no AddressSanitizer runtime: {found}"
    return found


def test_address_sanitizer_finds_nothing(tmp_path: Path) -> None:
    """_shape.c built with AddressSanitizer and UBSan reads the real documents, thousands of
    built and mutated ones and every prefix of the short ones without an error."""
    include = sysconfig.get_paths()["include"]
    module = tmp_path / ("_shape" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer",
            f"-I{include}",
            str(ROOT / "sonosd" / "gena" / "_shape.c"),
            "-o",
            str(module),
        ],
        check=True,
        capture_output=True,
    )
    environment = {
        **os.environ,
        "LD_PRELOAD": _asan_runtime(),
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=99",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        "PYTHONMALLOC": "malloc",
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), str(ROOT)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "ERROR: AddressSanitizer" not in child.stderr, child.stderr[-4000:]
    assert "runtime error" not in child.stderr, child.stderr[-4000:]
    assert child.returncode == 0, child.stderr[-4000:]
    assert child.stdout.startswith("read "), child.stdout


def test_many_namespaces_leave_the_reading_right() -> None:
    """The reader keeps the '{uri}' prefixes it has seen (at most 64, then it starts again):
    documents declaring hundreds of namespaces, then a real one, all read as ElementTree."""
    for index in range(300):
        document = f'<p:a xmlns:p="urn:x:{index}"><p:b q="1"><p:c>t</p:c></p:b></p:a>'.encode()
        assert tree3(document) == et_shape(document)
    for _, document in REAL[:5]:
        assert tree3(document) == et_shape(document)
