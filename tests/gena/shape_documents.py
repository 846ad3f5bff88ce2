"""Documents for sonosd.gena._shape's tests: ElementTree's three-level reading of a document,
a builder of hostile documents from pieces, and the real ones among the samples.

Plain Python (no pytest, no Hypothesis): the AddressSanitizer child of tests/gena/test_shape.py
imports it too. The builder takes ``choose`` (pick one of a sequence), so Hypothesis (which
shrinks the choices) and a seeded ``random.Random`` drive the same pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from xml.etree import ElementTree

from tests.paths import SAMPLES

T = TypeVar("T")
Choose = Callable[[Sequence[Any]], Any]


class _NotTheShape(Exception):
    pass


def et_shape(document: bytes) -> Any:
    """ElementTree's reading of ``document`` in ``tree3``'s terms: ``(tag, attributes,
    children)`` for levels 1-2, ``(tag, attributes, text)`` for level 3. ``None`` when the
    tree is not of that shape (a fourth level, or text beside elements at levels 1-2).

    @raise Exception: Where ElementTree refuses the document (ParseError, or LookupError for
        an unknown declared encoding).
    """
    root = ElementTree.fromstring(document)

    def blank(text: str | None) -> bool:
        return text is None or text.strip(" \t\n") == ""

    def read(element: ElementTree.Element, depth: int) -> Any:
        if depth == 3:
            if len(element):
                raise _NotTheShape("a fourth level")
            return (element.tag, dict(element.attrib), element.text)
        if not blank(element.text) or any(not blank(child.tail) for child in element):
            raise _NotTheShape("text beside elements")
        return (element.tag, dict(element.attrib), [read(child, depth + 1) for child in element])

    try:
        return read(root, 1)
    except _NotTheShape:
        return None


# -- pieces ---------------------------------------------------------------------------------------

#: Element and attribute names: plain, prefixed (declared or not), non-ASCII, reserved
#: prefixes, two colons, names that are no names.
NAMES = [
    b"a",
    b"b",
    b"Event",
    b"_u",
    b"a.b-c1",
    b"p:a",
    b"q:a",
    b"e:property",
    b"ns:x",
    b"xml:lang",
    b"xmlns:p",
    b"xmlns",
    b"xmlfoo",
    b"XmL:a",
    b"\xc3\xa9t\xc3\xa9",
    b"p:\xc3\xa9",
    b"a:b:c",
    b"1a",
    b":a",
    b"a:",
    b"-a",
]
#: Attribute names: as NAMES, weighted to the plain and the prefixed.
ATTRIBUTE_NAMES = [b"a", b"b", b"val", b"channel", b"p:a", b"q:a", b"p:b", *NAMES]
#: Namespace URIs: plain, empty, with "}", the reserved ones, escaped.
URIS = [
    b"u",
    b"urn:x",
    b"http://u/",
    b"",
    b"a}b",
    b"http://www.w3.org/XML/1998/namespace",
    b"http://www.w3.org/2000/xmlns/",
    b"&amp;u",
    b"u&#65;",
    b" ",
    b"\xc3\xa9",
]
DECLARATIONS = [b"xmlns", b"xmlns:p", b"xmlns:q", b"xmlns:e", b"xmlns:ns", b"xmlns:xml"]
#: Pieces of text and attribute values: the five references, other references, bare "&"
#: and "<", "]]>", whitespace, control bytes, non-characters, invalid UTF-8, markup.
TEXTS = [
    b"x",
    b"Hello world",
    b"0",
    b" ",
    b"&lt;",
    b"&gt;",
    b"&amp;",
    b"&quot;",
    b"&apos;",
    b"&#65;",
    b"&#x41;",
    b"&nbsp;",
    b"&",
    b"&amp",
    b"<",
    b">",
    b"]]>",
    b"]]",
    b"]",
    b"\t",
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\x01",
    b"\x1f",
    b"\x7f",
    b"'",
    b'"',
    b"\xc3\xa9",
    b"\xe2\x82\xac",
    b"\xf0\x9f\x8e\xb5",
    b"\xef\xbf\xbe",
    b"\xef\xbf\xbf",
    b"\xef\xbf\xbd",
    b"\xef\xb7\x90",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xc3",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"<!--c-->",
    b"<?pi x?>",
    b"<![CDATA[x]]>",
    b"&lt;DIDL-Lite xmlns=&quot;u&quot;&gt;",
]
SPACES = [b" ", b"  ", b"\n", b"\t", b"\r\n", b"\r", b"", b"\x0b"]
EQUALS = [b"=", b"=", b" = ", b"\n=\t", b" "]
QUOTES = [b'"', b'"', b"'", b""]
PROLOGS = [
    b"",
    b"",
    b"",
    b" \n",
    b"\r\n",
    b"\xef\xbb\xbf",
    b'<?xml version="1.0"?>',
    b'<?xml version="1.0" encoding="UTF-8"?>\n',
    b"<!-- c -->",
    b"<!DOCTYPE a>",
    b"<?pi?>",
    b"\x00",
]
EPILOGS = [b"", b"", b"", b"\n", b" \t\r\n", b"<!-- c -->", b"x", b"<a/>", b"\x00", b"<?pi?>"]
SELF_CLOSING = [b"/>", b"/>", b" />", b"/ >", b"\n/>"]
END_SPACES = [b"", b"", b"", b" ", b"\n\t", b"\r"]
BETWEEN = [b"", b"", b"\n", b"\n  ", b" \t", b"\r\n", b"x", b"&amp;", b"<!--c-->", b"<?p?>"]


#: The pieces a reader must accept: most of a document is made of them, so that the hostile
#: piece among them decides.
GOOD_NAMES = [b"a", b"b", b"Event", b"_u", b"a.b-c1", b"e:property", b"p:a", b"ns:x"]
GOOD_TEXTS = [t for t in TEXTS[:40] if t not in (b"&#65;", b"&#x41;", b"&nbsp;", b"&", b"&amp")]
GOOD_TEXTS = [t for t in GOOD_TEXTS if t not in (b"<", b"]]>", b"\r", b"\r\n", b"\x00", b"\x01")]
GOOD_TEXTS = [t for t in GOOD_TEXTS if t not in (b"\x1f", b"\xef\xbf\xbe", b"\xef\xbf\xbf")]
GOOD_VALUES = [t for t in GOOD_TEXTS if t not in (b"\t", b"\n")]
#: The root's usual declarations: the prefixes of GOOD_NAMES, the default namespace.
ROOT_DECLARATIONS = b' xmlns:e="urn:e" xmlns:p="urn:p" xmlns:ns="urn:p"'


def _pick(choose: Choose, good: Sequence[T], every: Sequence[T]) -> T:
    """Mostly one of ``good``, sometimes any of ``every`` (the first choice: good)."""
    return choose(every) if choose(range(8)) == 7 else choose(good)  # type: ignore[no-any-return]


def _text(choose: Choose, count: int, good: Sequence[bytes]) -> bytes:
    return b"".join(_pick(choose, good, TEXTS) for _ in range(choose(range(count + 1))))


def _attribute(choose: Choose) -> bytes:
    if choose(range(3)) == 2:
        name = choose(DECLARATIONS)
        value = choose(URIS)
    else:
        name = _pick(choose, ATTRIBUTE_NAMES[:7], ATTRIBUTE_NAMES)
        value = _text(choose, 3, GOOD_VALUES)
    quote = _pick(choose, QUOTES[:3], QUOTES)
    space = _pick(choose, SPACES[:5], SPACES)
    return space + name + _pick(choose, EQUALS[:4], EQUALS) + quote + value + quote


def _element(choose: Choose, depth: int, levels: int) -> bytes:
    name = _pick(choose, GOOD_NAMES, NAMES)
    start = b"<" + name
    if depth == 1 and choose(range(4)):
        start += ROOT_DECLARATIONS
    if choose(range(4)) == 3:
        start += b" " + choose(DECLARATIONS) + b'="' + choose(URIS) + b'"'
    start += b"".join(_attribute(choose) for _ in range(choose(range(4))))
    if choose(range(5)) == 0:
        return start + choose(SELF_CLOSING)
    if depth >= levels:
        content = _text(choose, 4, GOOD_TEXTS)
    else:
        content = _pick(choose, BETWEEN[:6], BETWEEN)
        for _ in range(choose(range(4))):
            content += _element(choose, depth + 1, levels) + _pick(choose, BETWEEN[:6], BETWEEN)
    end = _pick(choose, [name], NAMES)
    return start + b">" + content + b"</" + end + choose(END_SPACES) + b">"


def build_document(choose: Choose) -> bytes:
    """A document of 1-4 levels made of the pieces above, each picked with ``choose``."""
    levels = choose((1, 2, 3, 3, 3, 4))
    prolog = _pick(choose, PROLOGS[:4], PROLOGS)
    return prolog + _element(choose, 1, levels) + _pick(choose, EPILOGS[:5], EPILOGS)


def mutate(document: bytes, choose: Choose) -> bytes:
    """``document`` with a byte inserted, deleted or flipped at a chosen place."""
    if not document:
        return bytes([choose(range(256))])
    at = choose(range(len(document)))
    how = choose(("insert", "delete", "flip"))
    if how == "insert":
        return document[:at] + bytes([choose(range(256))]) + document[at:]
    if how == "delete":
        return document[:at] + document[at + 1 :]
    flipped = document[at] ^ (1 << choose(range(8)))
    return document[:at] + bytes([flipped]) + document[at + 1 :]


# -- the real documents ---------------------------------------------------------------------------


def http_body(raw: bytes) -> bytes:
    """The body of a captured HTTP request (CRLF or LF line endings)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        if separator in raw:
            return raw.split(separator, 1)[1]
    raise ValueError("no body")


def sample_bodies() -> dict[str, bytes]:
    """Every real NOTIFY body among the samples, by file name."""
    bodies = {path.name: path.read_bytes() for path in sorted(SAMPLES.glob("events/*.xml"))}
    for path in sorted(SAMPLES.glob("gena_notify_raw/*.http")):
        bodies[path.name] = http_body(path.read_bytes())
    return bodies


def real_documents() -> Iterator[tuple[str, bytes]]:
    """(id, document) of every NOTIFY body among the samples, every LastChange document in
    them and every DIDL-Lite value in those; ids name the file, the variable and the element."""
    for name, body in sample_bodies().items():
        yield name, body
        for variable in ElementTree.fromstring(body).iter("LastChange"):
            last_change = (variable.text or "").encode("utf-8")
            yield f"{name}:LastChange", last_change
            for element in ElementTree.fromstring(last_change).iter():
                for value in (element.get("val"), element.text):
                    if value is not None and value.startswith("<DIDL-Lite"):
                        local = element.tag.rpartition("}")[2]
                        yield f"{name}:LastChange:{local}", value.encode("utf-8")
