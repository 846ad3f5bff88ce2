# -*- test-case-name: tests.gena.test_xmlguard -*-
"""What every XML document from the network must be before a parser sees it.

Speakers send XML in NOTIFY bodies, and inside them escaped XML documents (``LastChange``,
``ZoneGroupState``, DIDL-Lite metadata) that are parsed again. A document type declaration
is what lets XML cost more than its size: internal entities expand (expat allows 100 times the
input per parse, and a nested document got its own allowance: a 24 KB NOTIFY became a 90 MB
value, issue 18), external ones point elsewhere. Real speakers never send one. So:

- :func:`check_document` refuses a document that declares a DTD or an entity, or whose
  encoding is not UTF-8 (or one of the ASCII-compatible encodings expat reads natively:
  US-ASCII, and ISO-8859-1 under any name Python's codecs read as it, :func:`accepted_encoding`),
  so that the byte scan for ``<!DOCTYPE`` cannot be dodged by an exotic encoding;
- :func:`check_text` refuses a decoded value that carries a DTD (the nested documents, and
  any value another parser may read later, SoCo's included);
- :func:`check_answer` refuses a SOAP answer (or a device description) that does either, at
  the top or in a document escaped in it, or that holds more tags than it may: a parse costs
  memory and time per element, whatever the answer's size;
- a :class:`Budget` is shared by a document and every document nested in it: each parse
  charges its size and an upper bound of its elements (the count of ``<``), so nested parses
  inherit what is left of the outer one instead of getting a fresh allowance.

Without a DTD no entity can expand: every reference (``&lt;``, ``&#60;``) is longer than what
it stands for, so a parse never produces more text than it reads.
"""

from __future__ import annotations

import html
import re
from encodings import normalize_encoding
from encodings.aliases import aliases as _codec_aliases
from typing import Final

import attrs

MAX_ELEMENTS: Final = 50_000
"""The most elements (counted as ``<``) one NOTIFY and the documents nested in it may hold;
a ZoneGroupState of 200 speakers has about 1,000."""

NESTING_FACTOR: Final = 2
"""A NOTIFY body's budget is this many times its size: the body itself, then the nested
documents (which can only be shorter than the body that carries them)."""

MAX_ANSWER_TAGS: Final = 100_000
"""The most tags (counted as ``<``, so an element is one or two) a SOAP answer and the
documents escaped in it may hold together: a Browse of 1,000 queue items has about 20,000, a
ZoneGroupState of 200 speakers about 2,000. Parsing costs about 100 bytes of memory and a
microsecond of CPU per tag, whatever the answer's size: 4 MiB of ``<a/>`` would be a million
elements (over 100 MB, seconds of the reactor)."""

NESTING: Final = 3
"""How many levels of escaped documents inside a SOAP answer :func:`check_answer` checks (an
out-argument that is a document, DIDL metadata inside it, DIDL inside a Browse result)."""

_ENCODINGS: Final = frozenset({"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1"})
#: What XML allows as an encoding name (``EncName``), lower-cased.
_ENC_NAME: Final = re.compile(r"[a-z][a-z0-9._-]*\Z")
_DECLARATION: Final = re.compile(rb"<\?xml[^>]{0,200}?encoding\s*=\s*[\"']([^\"']{0,40})[\"']")
_DTD_MARKS: Final = (b"<!DOCTYPE", b"<!ENTITY")
_DTD_TEXT: Final = ("<!DOCTYPE", "<!ENTITY")


class UnsafeXml(ValueError):
    """A document breaks one of the rules.

    @ivar reason: ``dtd``, ``encoding`` or ``over_budget`` (for counters).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@attrs.define
class Budget:
    """What one document and the documents nested in it may cost together.

    @ivar size: Characters (or bytes) still allowed to be parsed.
    @ivar elements: Elements still allowed.
    """

    size: int
    elements: int = MAX_ELEMENTS

    @classmethod
    def for_body(cls, body: bytes | str) -> Budget:
        """The budget of a NOTIFY body and everything nested in it."""
        return cls(size=NESTING_FACTOR * len(body) + 4096)

    def charge(self, document: bytes | str) -> None:
        """Take ``document``'s size and element count from the budget.

        @raise UnsafeXml: ``over_budget`` when either runs out.
        """
        self.size -= len(document)
        self.elements -= (
            document.count(b"<") if isinstance(document, bytes) else document.count("<")
        )
        if self.size < 0:
            raise UnsafeXml("over_budget", "nested documents larger than the event")
        if self.elements < 0:
            raise UnsafeXml("over_budget", f"more than {MAX_ELEMENTS} elements in one event")


def is_wide(document: bytes) -> bool:
    """Whether ``document`` is in UTF-16 or UTF-32 (a byte-order mark, or a NUL byte among its
    first four): an encoding refused, however its first character reads in ASCII."""
    head = document[:4]
    return head[:2] in (b"\xfe\xff", b"\xff\xfe") or b"\x00" in head


def accepted_encoding(name: str) -> bool:
    """Whether a document may declare the encoding ``name`` (any case): UTF-8, US-ASCII, or
    ISO-8859-1 under any name XML allows that Python's codecs read as ISO-8859-1 (``latin-1``,
    ``latin1``, ``l1``, ``cp819``, ``iso_8859_1``...).

    For a name expat does not know itself, Python's parsers ask Python's codecs: every such
    name of ISO-8859-1 is then read byte for byte as ISO-8859-1 is, so it can hide nothing
    from the byte scan (lxml, the topology's fallback parser, reads some of them as
    ISO-8859-1 and refuses the rest as unsupported: nothing hidden either way). The name is
    looked up in the codecs' table of aliases, as ``codecs.lookup`` does, without importing
    anything a sender names.
    """
    name = name.strip().lower()
    if name in _ENCODINGS:
        return True
    if _ENC_NAME.match(name) is None:
        return False
    norm = normalize_encoding(name)
    aliased = _codec_aliases.get(norm) or _codec_aliases.get(norm.replace(".", "_"))
    return (aliased or norm) == "latin_1"


def check_document(document: bytes, budget: Budget | None = None) -> None:
    """Refuse a document (as received, bytes) that may cost more than its size to parse.

    @raise UnsafeXml: ``encoding`` for a UTF-16/32 document or a declared encoding other than
        UTF-8, US-ASCII or ISO-8859-1 (:func:`accepted_encoding`); ``dtd`` for a document
        type or entity declaration;
        ``over_budget`` when ``budget`` runs out.
    """
    if is_wide(document):
        raise UnsafeXml("encoding", "the document is not UTF-8")
    head = document[:4]
    start = 3 if head[:3] == b"\xef\xbb\xbf" else 0
    if document.startswith(b"<?xml", start):
        declared = _DECLARATION.match(document, start)
        if declared is not None:
            name = declared.group(1).decode("latin-1").strip().lower()
            if not accepted_encoding(name):
                raise UnsafeXml("encoding", f"encoding {name!r} is not accepted (use UTF-8)")
    # Both marks hold a "!": looking for that one byte (memchr) costs a twentieth of looking
    # for either mark, and a speaker's documents seldom hold one.
    if b"!" in document:
        for mark in _DTD_MARKS:
            if mark in document:
                raise UnsafeXml("dtd", "a document type or entity declaration is not accepted")
    if budget is not None:
        budget.charge(document)


def check_text(text: str, budget: Budget | None = None) -> None:
    """Refuse a decoded value that carries a DTD (a nested document, or any value some parser
    may read later); charge ``budget`` when one is given (the value is about to be parsed).

    A ``str`` is parsed as UTF-8 whatever its declaration says, so only the DTD matters.

    @raise UnsafeXml: ``dtd``, or ``over_budget``.
    """
    if "!" in text:
        for mark in _DTD_TEXT:
            if mark in text:
                raise UnsafeXml("dtd", "a nested document declares a DTD or an entity")
    if budget is not None:
        budget.charge(text)


def check_answer(document: bytes, levels: int = NESTING, max_tags: int = MAX_ANSWER_TAGS) -> None:
    """Refuse a SOAP answer that declares a DTD or an entity, at the top or in a document
    escaped in it up to ``levels`` deep (out-arguments that are documents themselves:
    ``TrackMetaData``, ``ZoneGroupState``, DIDL inside a Browse result), that is not UTF-8,
    or whose tags, with those of the documents escaped in it, are more than ``max_tags``.

    @raise UnsafeXml: As :func:`check_document` and :func:`check_text`; ``over_budget`` for
        too many tags.
    """
    check_document(document)
    _count_tags(document.count(b"<"), max_tags)
    text = document.decode("utf-8", "replace")
    for _ in range(levels):
        if "&" not in text:
            break
        unescaped = unescape_predefined(text)
        if unescaped is None:
            unescaped = html.unescape(text)
            if unescaped == text:
                break  # only a bare "&" (a URI's): the levels below would read the same
        text = unescaped
        check_text(text)
        # The unescaped text holds the tags of the levels above and those of this one.
        _count_tags(text.count("<"), max_tags)


def unescape_predefined(text: str) -> str | None:
    """``text`` with XML's five predefined references (``&lt;``, ``&gt;``, ``&quot;``,
    ``&apos;``, ``&amp;``) replaced, or ``None`` if it holds any other reference or a bare
    ``&``. Where it gives a text, that text is ``html.unescape``'s, at a tenth of the cost
    (``html.unescape`` calls back into Python for every reference).

    ``&amp;`` goes last: none of the four others can appear inside it, and what it leaves
    (``&lt;`` from ``&amp;lt;``) is not replaced again.
    """
    # The five cannot overlap and each holds one "&": the counts tell whether every "&"
    # starts one of them, without replacing anything when one does not.
    count = text.count
    if count("&") != count("&amp;") + count("&lt;") + count("&gt;") + count("&quot;") + count(
        "&apos;"
    ):
        return None
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    return text.replace("&apos;", "'").replace("&amp;", "&")


def _count_tags(tags: int, most: int) -> None:
    if tags > most:
        raise UnsafeXml("over_budget", f"more than {most} tags in one answer")
