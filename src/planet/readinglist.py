"""Reading lists: OPML subscription lists whose feeds become subscriptions.

In a Venus config, a section whose ``content_type`` contains ``opml`` is a reading list: the
section name is an OPML file path or URL, and every feed in it is subscribed to, with the
outline's title as its name. Venus also knew ``foaf``, ``csv`` and ``config`` lists; planet
reads OPML only (:func:`unsupported_kind` names the others so the caller can warn).

Real lists are often not well-formed XML: a bare ``&`` in a title is common, and so is
unescaped HTML in a description (``description="...<a href="...">...</a>..."``, which ends the
quoted value early). :func:`parse_opml` reads a document as XML first and, when that fails,
picks the outlines out of it leniently, the way an HTML tokenizer reads attributes but without
letting a stray ``>`` or quote end an outline early. Neither reading expands a DTD entity: a
document declaring a DOCTYPE or ENTITY is never given to the XML parser.

Pure and picklable, like :mod:`planet.parse`: no Twisted here, so parsing may run in a
worker process or thread.
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree as ET

from attrs import frozen

__all__ = [
    "ListedFeed",
    "ReadingList",
    "ReadingListError",
    "is_reading_list",
    "load_opml_file",
    "parse_opml",
    "read_opml",
    "read_opml_file",
    "skipped_note",
    "unsupported_kind",
]

_UNSUPPORTED_KINDS = ("foaf", "csv", "config")
_FEED_SCHEMES = ("http", "https")
# Byte order marks, longest first: a UTF-32-LE mark starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# The encoding named by an XML declaration in an ASCII-compatible document.
_XML_DECL_ENCODING = re.compile(
    rb"""\s*<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._:-]*)["']"""
)
_DECL_SNIFF_BYTES = 1024
# expat would expand internal entities (billion laughs); such documents are read leniently.
_DTD = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_MAX_TAG_IN_MESSAGE = 40
#: Skipped xmlUrls kept per list (a hostile list may name thousands), and their length.
MAX_SKIPPED = 100
_MAX_SKIPPED_CHARS = 200
#: Skipped xmlUrls named in a warning line.
_SKIPPED_IN_NOTE = 3


@frozen
class ListedFeed:
    """One feed of a reading list."""

    #: Absolute http(s) feed URL (the outline's ``xmlUrl``), its scheme lowercased.
    url: str
    #: The outline's ``title`` (else ``text``), as plain text; None when it has neither.
    name: str | None = None


@frozen
class ReadingList:
    """What an OPML document lists: its feeds, and the ``xmlUrl`` values that name no
    http(s) feed (``feed://``, ``ftp://``, ``javascript:``, a relative URL without a base)."""

    feeds: tuple[ListedFeed, ...] = ()
    #: The skipped values as written (one line, shortened), each once, the first
    #: :data:`MAX_SKIPPED`; :attr:`skipped_count` counts them all.
    skipped: tuple[str, ...] = ()
    skipped_count: int = 0


def skipped_note(skipped: tuple[str, ...], count: int | None = None) -> str:
    """``2 entries not subscribed: their xmlUrl is not an http(s) URL (ftp://a, feed://b)``."""
    count = len(skipped) if count is None else count
    shown = ", ".join(skipped[:_SKIPPED_IN_NOTE])
    more = ", ..." if count > _SKIPPED_IN_NOTE else ""
    entries = "1 entry" if count == 1 else f"{count} entries"
    its = "its" if count == 1 else "their"
    return f"{entries} not subscribed: {its} xmlUrl is not an http(s) URL ({shown}{more})"


class ReadingListError(Exception):
    """A reading list could not be read; str(err) is one readable line."""


def is_reading_list(options: Mapping[str, str]) -> bool:
    """Whether a config section with these keys is an OPML reading list planet reads."""
    return "opml" in _content_type(options)


def unsupported_kind(options: Mapping[str, str]) -> str | None:
    """The kind (``foaf``, ``csv``, ``config``) of a Venus reading list planet cannot read.

    None for an OPML list (see :func:`is_reading_list`) and for a section that is no
    reading list at all.
    """
    content_type = _content_type(options)
    if "opml" in content_type:
        return None
    for kind in _UNSUPPORTED_KINDS:
        if kind in content_type:
            return kind
    return None


def _content_type(options: Mapping[str, str]) -> str:
    return (options.get("content_type") or "").lower()


def load_opml_file(path: str) -> list[ListedFeed]:
    """The feeds of the OPML file at ``path``; raise :class:`ReadingListError`."""
    return list(read_opml_file(path).feeds)


def read_opml_file(path: str) -> ReadingList:
    """The feeds (and skipped entries) of the OPML file at ``path``; raise
    :class:`ReadingListError`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ReadingListError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return read_opml(data)
    except ReadingListError as e:
        raise ReadingListError(f"{path}: {e}") from None


def parse_opml(data: bytes, base_url: str | None = None) -> list[ListedFeed]:
    """The feeds of an OPML document: every ``<outline>`` with an ``xmlUrl``.

    Nested outlines are included, in document order; a URL listed again is dropped.
    Relative URLs are resolved against ``base_url`` (the list's own URL); URLs that are not
    absolute http(s) then are dropped. Entities are decoded once, as the document was read.
    Raise :class:`ReadingListError` when the document does not look like OPML at all.
    """
    return list(read_opml(data, base_url).feeds)


def read_opml(data: bytes, base_url: str | None = None) -> ReadingList:
    """As :func:`parse_opml`, with the ``xmlUrl`` values it dropped as no http(s) URL."""
    text = _decode(data)
    if not text.strip():
        raise ReadingListError("empty document, not an OPML reading list")
    collector = _Collector(base_url)
    if not _read_strictly(text, collector):
        collector = _Collector(base_url)
        _read_leniently(text, collector)
    if not collector.looks_like_opml:
        raise ReadingListError(_not_opml_message(_first_tag(text)))
    return ReadingList(
        tuple(collector.feeds), tuple(collector.skipped[:MAX_SKIPPED]), len(collector.skipped)
    )


def _not_opml_message(first_tag: str | None) -> str:
    if first_tag is None:
        return "not an OPML reading list: no markup found"
    if first_tag == "html":
        return "an HTML page, not an OPML reading list"
    if len(first_tag) > _MAX_TAG_IN_MESSAGE:
        first_tag = first_tag[:_MAX_TAG_IN_MESSAGE] + "..."
    return (
        f"not an OPML reading list: no <opml> or <outline> element (it starts with <{first_tag}>)"
    )


# -- decoding ----------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    """Text of ``data`` per its BOM, else its XML declaration, else UTF-8 (never raises)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, "replace")
    # XML 1.0 appendix F: a document without a BOM still starts with `<`.
    if data.startswith(b"\x00\x00\x00<"):
        return data.decode("utf-32-be", "replace")
    if data.startswith(b"<\x00\x00\x00"):
        return data.decode("utf-32-le", "replace")
    if data.startswith(b"\x00<"):
        return data.decode("utf-16-be", "replace")
    if data.startswith(b"<\x00"):
        return data.decode("utf-16-le", "replace")
    match = _XML_DECL_ENCODING.match(data[:_DECL_SNIFF_BYTES])
    if match:
        text = _decode_as(data, match.group(1).decode("ascii"))
        if text is not None:
            return text
    return data.decode("utf-8", "replace")


def _decode_as(data: bytes, encoding: str) -> str | None:
    """``data`` decoded as the declared ``encoding``, or None if that makes no sense."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return None
    # The declaration was read as ASCII, so the document is in no UTF-16/32 encoding.
    if name.startswith(("utf-16", "utf-32")):
        return None
    try:
        return data.decode(name, "replace").removeprefix("\ufeff")
    except (LookupError, UnicodeError, ValueError, TypeError):
        # Not a text encoding (base64, rot13...) or one that refuses "replace".
        return None


# -- reading -----------------------------------------------------------------------------


class _Collector:
    """Gathers feeds from outlines, whichever reading finds them."""

    def __init__(self, base_url: str | None) -> None:
        self.base_url = base_url
        self.feeds: list[ListedFeed] = []
        self.seen: set[str] = set()
        #: xmlUrls that are no http(s) URL, each once.
        self.skipped: list[str] = []
        self._skipped_seen: set[str] = set()
        self.looks_like_opml = False

    def outline(self, attrs: Iterable[tuple[str, str]]) -> None:
        """One ``<outline>`` with these attributes (names as written, values decoded)."""
        self.looks_like_opml = True
        # Attribute names compare case-insensitively (xmlUrl, xmlurl, XMLURL); the first
        # non-blank value of a name wins.
        values: dict[str, str] = {}
        for key, value in attrs:
            if value.strip():
                values.setdefault(_local_name(key), value)
        raw_url = values.get("xmlurl")
        if raw_url is None:
            return
        url = _feed_url(raw_url, self.base_url)
        if url is None:
            self._skip(raw_url)
            return
        if url in self.seen:
            return
        self.seen.add(url)
        name = _plain(values.get("title")) or _plain(values.get("text"))
        self.feeds.append(ListedFeed(url=url, name=name))

    def _skip(self, raw_url: str) -> None:
        # Shown in a log line and on the status page: one line, printable, short.
        shown = "".join(c if c.isprintable() else " " for c in raw_url)
        shown = " ".join(shown.split())[:_MAX_SKIPPED_CHARS]
        if shown and shown not in self._skipped_seen:
            self._skipped_seen.add(shown)
            self.skipped.append(shown)


def _local_name(name: str) -> str:
    """``name`` without an XML namespace (``{uri}x``) or prefix (``p:x``), lowercased."""
    return name.rpartition("}")[2].rpartition(":")[2].lower()


def _plain(value: str | None) -> str | None:
    """Whitespace collapsed; None when nothing is left."""
    if value is None:
        return None
    return " ".join(value.split()) or None


def _feed_url(value: str, base_url: str | None) -> str | None:
    """``value`` as an absolute http(s) URL, resolved against ``base_url``; else None."""
    url = value.strip()
    if any(c.isspace() or c < " " or c == "\x7f" for c in url):
        return None
    try:
        if base_url:
            url = urljoin(base_url, url)
        parts = urlsplit(url)
        if parts.scheme not in _FEED_SCHEMES or not parts.hostname:
            return None
    except ValueError:
        # A malformed authority, such as an unclosed IPv6 bracket.
        return None
    # urlsplit lowercases the scheme (so does urljoin): the same feed is spelt one way.
    return parts.scheme + url[len(parts.scheme) :]


class _XMLTarget:
    """ElementTree parser target: only start tags matter."""

    def __init__(self, collector: _Collector) -> None:
        self.collector = collector

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        name = _local_name(tag)
        if name == "opml":
            self.collector.looks_like_opml = True
        elif name == "outline":
            self.collector.outline(attrib.items())

    def close(self) -> None:
        return None


def _read_strictly(text: str, collector: _Collector) -> bool:
    """Read ``text`` as well-formed XML without a DTD; False if it is not that."""
    if _DTD.search(text):
        return False
    parser = ET.XMLParser(target=_XMLTarget(collector))  # noqa: S314 (no DTD: see _DTD)
    try:
        # A str is handed to expat as UTF-8, whatever the XML declaration says.
        parser.feed(text)
        parser.close()
    except (ET.ParseError, ValueError):
        # ValueError: text that cannot be encoded as UTF-8 (a lone surrogate).
        return False
    return True


# The lenient reading. Every pattern is matched in time linear in the text: names cannot
# start inside a name (look-behind), an unclosed comment or CDATA section runs to the end.
_HIDDEN = re.compile(r"<!--(?:.*?-->|.*)|<!\[CDATA\[(?:.*?\]\]>|.*)", re.DOTALL)
_PREFIX = r"(?:[A-Za-z_][-\w.]*:)?"
_OPML_TAG = re.compile(rf"<{_PREFIX}opml(?=[\s/>]|\Z)", re.IGNORECASE)
_OUTLINE_TAG = re.compile(rf"<{_PREFIX}outline(?=[\s/>]|\Z)", re.IGNORECASE)
# An outline's attributes run until the next outline starts or its parent ends: not until
# the first `>`, for a `<` or `"` in a value (`description="...<a href="...">...</a>..."`)
# must not lose the xmlUrl after it.
_OUTLINE_END = re.compile(
    rf"<{_PREFIX}outline(?=[\s/>]|\Z)|</{_PREFIX}(?:outline|body|opml)(?=[\s>]|\Z)",
    re.IGNORECASE,
)
_ATTRIBUTE = re.compile(
    r"""(?<![-\w:.])([A-Za-z_:][-\w:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"'][^\s>]*))"""
)
_FIRST_TAG = re.compile(r"<([A-Za-z][-\w:.]*)")
_HTML_DOCTYPE = re.compile(r"\s*<!doctype\s+html(?=[\s>]|\Z)", re.IGNORECASE)


def _read_leniently(text: str, collector: _Collector) -> None:
    """Pick outlines out of markup that is not XML: bare `&`, stray `<` and quotes, HTML
    entities, unclosed tags. Attribute values are decoded as HTML (``html.unescape``), and a
    DTD is never looked at, so its entities stay as written."""
    text = _HIDDEN.sub(" ", text)
    if _OPML_TAG.search(text):
        collector.looks_like_opml = True
    for tag in _OUTLINE_TAG.finditer(text):
        end = _OUTLINE_END.search(text, tag.end())
        chunk = text[tag.end() : end.start() if end else len(text)]
        collector.outline(
            (m.group(1), html.unescape(next(v for v in m.group(2, 3, 4) if v is not None)))
            for m in _ATTRIBUTE.finditer(chunk)
        )


def _first_tag(text: str) -> str | None:
    """The name of the first element in ``text``, lowercased, for messages."""
    text = _HIDDEN.sub(" ", text)
    if _HTML_DOCTYPE.match(text):
        return "html"
    match = _FIRST_TAG.search(text)
    return _local_name(match.group(1)) if match else None
