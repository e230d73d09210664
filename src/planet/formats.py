"""Pure renderers of the river as syndication documents: Atom (paged), RSS 2.0, OPML, JSON Feed.

Each function takes plain values and returns the document as UTF-8 bytes; no Twisted here, so
the web layer can run them off the reactor thread and cache the bytes per store version.

XML is built with :mod:`xml.etree.ElementTree`, so every document is well-formed whatever
the feeds contained, and every text and attribute value first goes through
:func:`~planet.sanitize.strip_xml_illegal`: characters XML 1.0 forbids (``\\x1b``, ``\\x00``,
lone surrogates) never reach an output (python/planet#459). The JSON Feed gets the same
treatment, so all four documents carry the same text.

Namespaced XML is written with literal prefixed tag names and explicit ``xmlns`` attributes
rather than through :func:`ET.register_namespace`, whose process-wide prefix map would
otherwise decide how other documents are serialized.

Paths of the documents relative to the planet's ``link`` are :data:`ATOM_PATH`,
:data:`RSS20_PATH`, :data:`OPML_PATH` and :data:`JSON_FEED_PATH`; page ``N`` > 1 of a paged
document is at ``<path>?page=N``. When the planet has no ``link``, links are relative to the
site root (``/atom.xml``); ids, which must be absolute, fall back to a stable ``urn:``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import urljoin
from xml.etree import ElementTree as ET

from planet import __version__
from planet.config import Config
from planet.model import Entry
from planet.render import (
    EntryFields,
    FeedView,
    atom_entry_id,
    entry_fields,
    feed_of,
    is_absolute_iri,
    iso_utc,
)
from planet.sanitize import html_to_text, strip_xml_illegal

__all__ = [
    "ATOM_PATH",
    "JSON_FEED_PATH",
    "JSON_FEED_VERSION",
    "OPML_PATH",
    "RSS20_PATH",
    "document_url",
    "render_atom",
    "render_json_feed",
    "render_opml",
    "render_rss20",
]

ATOM_PATH = "atom.xml"
RSS20_PATH = "rss20.xml"
OPML_PATH = "opml.xml"
JSON_FEED_PATH = "feed.json"

ATOM_NS = "http://www.w3.org/2005/Atom"
DC_NS = "http://purl.org/dc/elements/1.1/"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
OPML_DOCS = "http://opml.org/spec2.opml"

_Attrs = Mapping[str, "str | None"]


# -- shared helpers --------------------------------------------------------------------------


def document_url(config: Config, path: str, page: int = 1) -> str:
    """The URL of ``path`` (page ``page``): absolute under ``config.link``, else root-relative."""
    href = path if page <= 1 else f"{path}?page={page}"
    if not config.link:
        return "/" + href
    try:
        return urljoin(config.link, href)
    except ValueError:
        # A link urlsplit refuses (``http://[oops/``) is still used as is, as config warned.
        base, slash, _ = config.link.rpartition("/")
        return base + slash + href if slash else "/" + href


def _home_url(config: Config) -> str:
    """The planet's HTML page."""
    return config.link or "/"


def _planet_id(config: Config) -> str:
    """An absolute IRI naming the planet: its link when absolute, else a stable URN."""
    link = config.link.strip()
    if is_absolute_iri(link):
        return link
    return "urn:planet:" + hashlib.sha256(config.name.encode("utf-8", "replace")).hexdigest()[:32]


def _clean(value: str) -> str:
    return strip_xml_illegal(value)


def _first(*values: str) -> str:
    """The first of ``values`` not empty once cleaned, cleaned; else ``""``."""
    for value in values:
        cleaned = _clean(value)
        if cleaned:
            return cleaned
    return ""


def _sub(
    parent: ET.Element, tag: str, text: str | None = None, attrs: _Attrs | None = None
) -> ET.Element:
    """Append ``<tag>``; text and attribute values are cleaned, attributes set to None left out."""
    el = ET.SubElement(parent, tag)
    for name, value in (attrs or {}).items():
        if value is not None:
            el.set(name, _clean(value))
    if text is not None:
        el.text = _clean(text)
    return el


def _xml(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _rfc822(when: datetime) -> str:
    return format_datetime(when.astimezone(timezone.utc), usegmt=True)


def _newest(entries: Sequence[EntryFields], now: datetime) -> datetime:
    return max((e.updated for e in entries), default=now)


#: How many times markup inside markup (``&amp;lt;b&amp;gt;``) is taken apart before the
#: rest is given up on.
_TEXT_ROUNDS = 8


def plain_text(text: str) -> str:
    """``text`` made to read the same as plain text and as HTML, for RSS 2.0 elements.

    RSS 2.0 never said whether ``title`` or ``dc:creator`` hold text or HTML, and many
    readers render them as HTML: a title whose text is ``<img src=x onerror=...>`` (stored
    as text, so escaped once in the XML) becomes an element there. Tags are dropped and
    character references decoded until nothing changes (what is left has no tag and no
    reference, so both readings agree); ``Tom & Jerry`` and ``1 < 2`` stay as they are.
    """
    for _ in range(_TEXT_ROUNDS):
        if "<" not in text and "&" not in text:
            return text
        plain = html_to_text(text)
        if plain == text:
            return text
        text = plain
    # Still changing after that many rounds: nothing of it can be markup any more.
    return text.replace("<", "").replace("&", "")


# -- Atom 1.0 with RFC 5005 paging ------------------------------------------------------------


def render_atom(
    config: Config,
    entries: Sequence[Entry],
    feeds: Mapping[str, FeedView],
    now: datetime,
    page: int = 1,
    has_next: bool = False,
) -> bytes:
    """Page ``page`` of the river as Atom 1.0, linked to its neighbours as an RFC 5005 paged feed.

    ``entries`` are the entries of this page in river order; ``has_next`` says whether older
    entries follow on page ``page + 1``.
    """
    shown = [entry_fields(e) for e in entries]
    root = ET.Element("feed", {"xmlns": ATOM_NS})
    _sub(root, "title", config.name, {"type": "text"})
    _sub(root, "id", _planet_id(config))
    _link(root, "self", document_url(config, ATOM_PATH, page), "application/atom+xml")
    _link(root, "alternate", _home_url(config), "text/html")
    _link(root, "first", document_url(config, ATOM_PATH), "application/atom+xml")
    if page > 1:
        _link(root, "previous", document_url(config, ATOM_PATH, page - 1), "application/atom+xml")
    if has_next:
        _link(root, "next", document_url(config, ATOM_PATH, page + 1), "application/atom+xml")
    _sub(root, "updated", iso_utc(_newest(shown, now)))
    author = _sub(root, "author")
    _sub(author, "name", _first(config.owner_name, config.name))
    if config.owner_email:
        _sub(author, "email", config.owner_email)
    _sub(root, "generator", "planet", {"version": __version__})
    for entry in shown:
        feed = feed_of(entry, feeds)
        el = _sub(root, "entry")
        _sub(el, "id", atom_entry_id(entry))
        _sub(el, "title", _first(entry.title, feed.name), {"type": "text"})
        if entry.link:
            _link(el, "alternate", entry.link, "text/html")
        _sub(el, "published", iso_utc(entry.published))
        _sub(el, "updated", iso_utc(entry.updated))
        entry_author = _sub(el, "author")
        _sub(entry_author, "name", _first(entry.author, feed.name))
        _sub(el, "content", entry.content, {"type": "html"})
        source = _sub(el, "source")
        _sub(source, "id", feed.url)
        _sub(source, "title", feed.name, {"type": "text"})
        _link(source, "self", feed.url, None)
        if feed.site:
            _link(source, "alternate", feed.site, "text/html")
    return _xml(root)


def _link(parent: ET.Element, rel: str, href: str, mime: str | None) -> ET.Element:
    return _sub(parent, "link", attrs={"rel": rel, "href": href, "type": mime})


# -- RSS 2.0 -----------------------------------------------------------------------------------


def render_rss20(
    config: Config, entries: Sequence[Entry], feeds: Mapping[str, FeedView], now: datetime
) -> bytes:
    """The river as RSS 2.0, items titled ``Feed name: Title`` as PlanetPlanet's rss20 was."""
    shown = [entry_fields(e) for e in entries]
    root = ET.Element("rss", {"version": "2.0", "xmlns:atom": ATOM_NS, "xmlns:dc": DC_NS})
    channel = _sub(root, "channel")
    _sub(channel, "title", config.name)
    _sub(channel, "link", _home_url(config))
    _sub(channel, "description", f"{config.name} - {config.link}" if config.link else config.name)
    _sub(channel, "lastBuildDate", _rfc822(_newest(shown, now)))
    _sub(channel, "generator", f"planet {__version__}")
    _sub(
        channel,
        "atom:link",
        attrs={
            "rel": "self",
            "href": document_url(config, RSS20_PATH),
            "type": "application/rss+xml",
        },
    )
    for entry in shown:
        feed = feed_of(entry, feeds)
        item = _sub(channel, "item")
        # Text readers and HTML readers must both see text in title, dc:creator, source.
        feed_name = plain_text(_clean(feed.name))
        title = plain_text(_clean(entry.title))
        _sub(item, "title", f"{feed_name}: {title}" if title else feed_name)
        if entry.link:
            _sub(item, "link", entry.link)
        guid = _clean(atom_entry_id(entry))
        permalink = entry.link is not None and guid == _clean(entry.link)
        _sub(item, "guid", guid, {"isPermaLink": "true" if permalink else "false"})
        _sub(item, "pubDate", _rfc822(entry.published))
        _sub(item, "dc:creator", plain_text(_clean(entry.author)) or feed_name)
        content = entry.content  # unpacked once (planet.textpack)
        if content:
            _sub(item, "description", content)
        _sub(item, "source", feed_name, {"url": feed.url})
    return _xml(root)


# -- OPML 2.0 ----------------------------------------------------------------------------------


def render_opml(config: Config, feeds: Sequence[FeedView], now: datetime) -> bytes:
    """The subscription list as OPML 2.0, one ``rss`` outline per feed, sorted by name."""
    root = ET.Element("opml", {"version": "2.0"})
    head = _sub(root, "head")
    _sub(head, "title", config.name)
    _sub(head, "dateCreated", _rfc822(now))
    _sub(head, "dateModified", _rfc822(now))
    if config.owner_name:
        _sub(head, "ownerName", config.owner_name)
    if config.owner_email:
        _sub(head, "ownerEmail", config.owner_email)
    _sub(head, "docs", OPML_DOCS)
    body = _sub(root, "body")
    for feed in sorted(feeds, key=lambda f: (f.name.casefold(), f.name, f.url)):
        # ``text`` is required: a name made only of illegal characters falls back to the URL.
        name = _clean(feed.name) or feed.url
        _sub(
            body,
            "outline",
            attrs={
                "type": "rss",
                "text": name,
                "title": name,
                "xmlUrl": feed.url,
                "htmlUrl": feed.site or None,
            },
        )
    return _xml(root)


# -- JSON Feed 1.1 -----------------------------------------------------------------------------


def render_json_feed(
    config: Config,
    entries: Sequence[Entry],
    feeds: Mapping[str, FeedView],
    now: datetime,
    page: int = 1,
    has_next: bool = False,
) -> bytes:
    """Page ``page`` of the river as JSON Feed 1.1; ``next_url`` names page ``page + 1``.

    Each item carries a ``_planet`` extension object naming the feed it came from.
    """
    doc: dict[str, Any] = {"version": JSON_FEED_VERSION, "title": _clean(config.name)}
    if config.link:
        doc["home_page_url"] = _clean(config.link)
        doc["feed_url"] = _clean(document_url(config, JSON_FEED_PATH))
    if has_next:
        doc["next_url"] = _clean(document_url(config, JSON_FEED_PATH, page + 1))
    if config.owner_name:
        owner: dict[str, str] = {"name": _clean(config.owner_name)}
        if config.owner_email:
            owner["url"] = "mailto:" + _clean(config.owner_email)
        doc["authors"] = [owner]
    items = []
    for entry in map(entry_fields, entries):
        feed = feed_of(entry, feeds)
        item: dict[str, Any] = {"id": _clean(atom_entry_id(entry))}
        if entry.link:
            item["url"] = _clean(entry.link)
        title = _clean(entry.title)
        if title:
            item["title"] = title
        item["content_html"] = _clean(entry.content)
        item["date_published"] = iso_utc(entry.published)
        item["date_modified"] = iso_utc(entry.updated)
        author = _first(entry.author, feed.name)
        if author:
            item["authors"] = [{"name": author}]
        item["_planet"] = {"feed": _clean(feed.name), "feed_url": _clean(feed.url)}
        items.append(item)
    doc["items"] = items
    return json.dumps(doc, ensure_ascii=False, indent=2).encode("utf-8")
