"""Tests for sonosd.gena.xmlguard: no DTD, UTF-8, and one budget for nested documents."""

from __future__ import annotations

import codecs
import html
from encodings.aliases import aliases
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sonosd.gena.xmlguard import (
    MAX_ANSWER_TAGS,
    MAX_ELEMENTS,
    NESTING,
    Budget,
    UnsafeXml,
    accepted_encoding,
    check_answer,
    check_document,
    check_text,
    unescape_predefined,
)

PROPERTYSET = b'<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"/>'


@pytest.mark.parametrize(
    "document",
    [
        b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
        b'<?xml version="1.0"?>\n<!DOCTYPE a SYSTEM "http://evil/x.dtd"><a/>',
        b"\xef\xbb\xbf<!DOCTYPE a><a/>",
        b'<a><![CDATA[<!ENTITY x "y">]]></a>',
    ],
)
def test_dtd_is_refused(document: bytes) -> None:
    """A document type or entity declaration anywhere is refused as dtd."""
    with pytest.raises(UnsafeXml) as refused:
        check_document(document)
    assert refused.value.reason == "dtd"


@pytest.mark.parametrize(
    "document",
    [
        "<a/>".encode("utf-16"),
        "<a/>".encode("utf-16-be"),
        "<a/>".encode("utf-32-le"),
        b'<?xml version="1.0" encoding="cp500"?><a/>',
        b"<?xml version='1.0' encoding='UTF-7'?><a/>",
    ],
)
def test_other_encodings_are_refused(document: bytes) -> None:
    """UTF-16/32 and declared encodings that are not ASCII-compatible are refused."""
    with pytest.raises(UnsafeXml) as refused:
        check_document(document)
    assert refused.value.reason == "encoding"


@pytest.mark.parametrize(
    "document",
    [
        PROPERTYSET,
        b'<?xml version="1.0" encoding="utf-8"?>' + PROPERTYSET,
        b"<?xml version='1.0' encoding='US-ASCII'?>" + PROPERTYSET,
        b'\xef\xbb\xbf<?xml version="1.0" encoding="ISO-8859-1" ?>' + PROPERTYSET,
        b'<?xml version="1.0"?>' + PROPERTYSET,
        b"  <a>&lt;!DOCTYPE is only text here&gt;</a>",
        b'<a b="Hey!">Ho! Let\'s go!</a>',
    ],
)
def test_plain_documents_pass(document: bytes) -> None:
    """UTF-8 (or ASCII, Latin-1) documents without a DTD pass."""
    check_document(document)


def test_budget_is_shared_by_nested_documents() -> None:
    """Each parse takes its size and elements from one budget; the nested ones run it out."""
    budget = Budget.for_body(b"x" * 1000)
    assert budget.size == 2 * 1000 + 4096
    check_document(b"<a>" + b"x" * 997 + b"</a>", budget)
    check_text("<b/>" * 500, budget)
    with pytest.raises(UnsafeXml) as refused:
        check_text("<c>" + "y" * 4000 + "</c>", budget)
    assert refused.value.reason == "over_budget"


def test_element_budget() -> None:
    """More than MAX_ELEMENTS elements in one event are refused."""
    with pytest.raises(UnsafeXml, match=f"more than {MAX_ELEMENTS} elements"):
        check_document(b"<a/>" * (MAX_ELEMENTS + 1), Budget(size=10**9))


def test_nested_text_with_a_dtd_is_refused() -> None:
    """A decoded value that declares a DTD is refused; one that mentions it in text is not."""
    with pytest.raises(UnsafeXml):
        check_text('<!DOCTYPE Event [<!ENTITY a "b">]><Event/>')
    check_text("<Event>!DOCTYPE</Event>")


@given(st.binary(max_size=300))
def test_any_bytes_pass_or_are_refused_by_rule(document: bytes) -> None:
    """Whatever the bytes, check_document passes or names one of its rules."""
    try:
        check_document(document, Budget.for_body(document))
    except UnsafeXml as refused:
        assert refused.reason in ("dtd", "encoding", "over_budget")
    else:
        assert b"<!DOCTYPE" not in document and b"<!ENTITY" not in document


@given(st.text(max_size=300))
def test_any_text_passes_or_is_refused_for_its_dtd(text: str) -> None:
    """check_text refuses exactly the values that carry a declaration."""
    carries = "<!DOCTYPE" in text or "<!ENTITY" in text
    try:
        check_text(text)
    except UnsafeXml:
        assert carries
    else:
        assert not carries


def test_answer_nested_dtd_refused_within_its_levels() -> None:
    """A SOAP answer with a DTD escaped once, twice or three times in it is refused; deeper
    than the levels checked it is text no parser of the daemon reads."""
    dtd = "<!DOCTYPE x [<!ENTITY a 'b'>]><x/>"
    for depth in range(4):
        text = dtd
        for _ in range(depth):
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        document = f"<r><v>{text}</v></r>".encode()
        if depth == 0:
            document = dtd.encode()
        with pytest.raises(UnsafeXml):
            check_answer(document)
    check_answer(b"<r><v>&lt;DIDL-Lite&gt;&amp;amp;&lt;/DIDL-Lite&gt;</v></r>")


def test_answer_tags_are_bounded_with_those_escaped_in_it() -> None:
    """An answer of more than MAX_ANSWER_TAGS tags is refused, counted with the tags of the
    documents escaped in it (a Browse result), however few bytes each costs; a Browse of
    1,000 queue items is far within."""
    flat = b"<r>" + b"<a/>" * MAX_ANSWER_TAGS + b"</r>"
    with pytest.raises(UnsafeXml, match="more than 100000 tags in one answer") as refused:
        check_answer(flat)
    assert refused.value.reason == "over_budget"
    escaped = b"<r><Result>" + b"&lt;a/&gt;" * (MAX_ANSWER_TAGS - 1) + b"</Result></r>"
    with pytest.raises(UnsafeXml, match="more than 100000 tags"):
        check_answer(escaped)
    check_answer(escaped, levels=0)  # Not unescaped: text, as a parser would read it.
    item = (
        "<item id='Q:0/1'><dc:title>t</dc:title><dc:creator>c</dc:creator>"
        "<upnp:album>a</upnp:album><upnp:albumArtURI>/getaa</upnp:albumArtURI>"
        "<upnp:class>object.item.audioItem.musicTrack</upnp:class><res>x-file:1</res></item>"
    )
    didl = f"<DIDL-Lite>{item * 1000}</DIDL-Lite>"
    check_answer(f"<r><Result>{escape(didl)}</Result></r>".encode())
    with pytest.raises(UnsafeXml, match="more than 10 tags"):
        check_answer(b"<r>" + b"<a/>" * 10 + b"</r>", max_tags=10)


#: Texts made of references, near-references and bare ampersands: what the fast unescape must
#: tell apart from what only ``html.unescape`` reads (``&#60;``, ``&not``, ``&ltimes;``...).
REFERENCE_TEXTS = st.lists(
    st.sampled_from(
        [
            "&lt;",
            "&gt;",
            "&quot;",
            "&apos;",
            "&amp;",
            "&amp;lt;",
            "&#60;",
            "&#x3c;",
            "&not",
            "&ltimes;",
            "&lt",
            "&amp",
            "&",
            ";",
            "a",
            "<",
            "!",
            "&flags=8",
            "&nbsp;",
            "é",
            " ",
        ]
    ),
    max_size=12,
).map("".join)


@given(REFERENCE_TEXTS | st.text(alphabet="&;#ltgamp<!x ", max_size=30))
def test_predefined_unescape_is_html_unescape_or_none(text: str) -> None:
    """Where the five-reference unescape gives a text, it is html.unescape's."""
    unescaped = unescape_predefined(text)
    assert unescaped is None or unescaped == html.unescape(text)
    five = ("&lt;", "&gt;", "&quot;", "&apos;", "&amp;")
    starts = [i for i, c in enumerate(text) if c == "&"]
    if all(text.startswith(five, i) for i in starts):
        assert unescaped is not None


def _answer_verdict_by_html_unescape(document: bytes, levels: int = NESTING) -> str | None:
    """check_answer's rules with ``html.unescape`` at every level (the slow path): the
    reason of the refusal, or ``None``."""
    try:
        check_document(document)
        if document.count(b"<") > MAX_ANSWER_TAGS:
            return "over_budget"
        text = document.decode("utf-8", "replace")
        for _ in range(levels):
            if "&" not in text:
                break
            text = html.unescape(text)
            check_text(text)
            if text.count("<") > MAX_ANSWER_TAGS:
                return "over_budget"
    except UnsafeXml as unsafe:
        return unsafe.reason
    return None


@st.composite
def nested_answers(draw: st.DrawFn) -> bytes:
    """SOAP-like answers with a value escaped one to four times, some with a DTD or with
    references only HTML knows, at any level."""
    text = draw(REFERENCE_TEXTS) + draw(st.sampled_from(["", "<!DOCTYPE x>", "<x/>", "<!-- -->"]))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        text = escape(text) + draw(REFERENCE_TEXTS)
    return f"<r><v>{text}</v></r>".encode()


@given(nested_answers())
def test_answer_verdict_is_that_of_html_unescape(document: bytes) -> None:
    """check_answer refuses what it would with html.unescape at every level, for the same
    reason, and passes the rest."""
    expected = _answer_verdict_by_html_unescape(document)
    try:
        check_answer(document)
    except UnsafeXml as unsafe:
        assert unsafe.reason == expected
    else:
        assert expected is None


def test_answer_with_a_bare_ampersand_still_checks_the_levels_below() -> None:
    """A URI's bare "&" at one level does not stop the DTD check of a document escaped
    further down."""
    dtd = escape(escape("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>"))
    with pytest.raises(UnsafeXml, match="DTD"):
        check_answer(f"<r><v>uri?a=1&amp;b=2 {dtd}</v></r>".encode())


#: Every name Python's codecs give ISO-8859-1 (their aliases, and the codec's own name).
LATIN_1_NAMES = sorted(
    {"latin_1", *(name for name, codec in aliases.items() if codec == "latin_1")}
)


def reads_as_latin_1(name: str) -> bool:
    """What Python's codecs make of ``name``: ISO-8859-1, or anything else."""
    try:
        return codecs.lookup(name).name == "iso8859-1"
    except LookupError:
        return False


def declaring(name: str, text: bytes = b"caf\xe9") -> bytes:
    return b'<?xml version="1.0" encoding="' + name.encode("ascii") + b'"?><a>' + text + b"</a>"


@st.composite
def latin_1_names(draw: st.DrawFn) -> str:
    """A name of ISO-8859-1 as XML allows it, in any case, its separators ``-`` or ``_`` (a
    dot is no separator to Python's codecs: ``latin.1`` names nothing)."""
    name = draw(st.sampled_from([n for n in LATIN_1_NAMES if n[0].isalpha()]))
    spelled = "".join(
        draw(st.sampled_from("-_")) if c == "_" else draw(st.sampled_from([c.lower(), c.upper()]))
        for c in name
    )
    return spelled


@given(latin_1_names())
def test_every_name_of_iso_8859_1_passes_and_reads_as_it(name: str) -> None:
    """A document declaring ISO-8859-1 by any name Python's codecs know it by (``latin-1``,
    ``latin1``, ``L1``, ``cp819``...) passes the guard, and the parser reads it byte for byte
    as one declaring ISO-8859-1: the name cannot hide a declaration from the scan."""
    assert reads_as_latin_1(name)
    check_document(declaring(name))
    expected = ElementTree.fromstring(declaring("ISO-8859-1")).text
    assert ElementTree.fromstring(declaring(name)).text == expected == "caf\u00e9"
    with pytest.raises(UnsafeXml) as refused:
        check_document(declaring(name, b'<!DOCTYPE a [<!ENTITY x "y">]>'))
    assert refused.value.reason == "dtd"


@given(
    st.one_of(
        st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,14}", fullmatch=True),
        st.sampled_from(sorted(aliases)),
        latin_1_names(),
    )
)
def test_a_declared_name_passes_only_as_utf_8_ascii_or_iso_8859_1(name: str) -> None:
    """Any other name XML allows is refused unless Python's codecs read it as ISO-8859-1
    (or it is one of UTF-8 and US-ASCII's usual names), whatever codec it names: cp500,
    UTF-7, UTF-16 and the rest could hide a declaration from the byte scan."""
    expected = name.lower() in {"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1"} or (
        name[0].isalpha() and reads_as_latin_1(name)
    )
    assert accepted_encoding(name) is expected
    if expected:
        check_document(declaring(name))
    else:
        with pytest.raises(UnsafeXml) as refused:
            check_document(declaring(name))
        assert refused.value.reason == "encoding"
        assert f"encoding {name.lower()!r} is not accepted" in str(refused.value)


@pytest.mark.parametrize("name", ["8859", "latin-1:1987", "latin 1", "lat\u00edn1", ""])
def test_a_name_xml_does_not_allow_is_refused(name: str) -> None:
    """A name Python's codecs would take but XML does not allow (a digit first, a colon, a
    space, a letter beyond ASCII) is refused as an encoding, not left to the parser."""
    assert not accepted_encoding(name)
