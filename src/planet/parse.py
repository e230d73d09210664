"""Feed document bytes -> a normalized, sanitized :class:`ParsedFeed`.

Pure and picklable: :func:`parse_feed` runs in a worker process or thread, never on the
reactor thread. RSS/Atom/RDF go through feedparser (with its own sanitizer and link
rewriting off: ours is an allow-list and is applied once, here); JSON Feed is read directly
since feedparser 6.0 does not know it.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any

import feedparser
from attrs import evolve, frozen

from planet.model import Entry, ParsedFeed, one_line
from planet.rawentry import HTML_TYPES, RawEntry, alternate_link, from_struct
from planet.sanitize import (
    compact_html,
    demote_headings,
    html_to_text,
    safe_url,
    sanitize_html,
    strip_xml_illegal,
    truncate_html,
)
from planet.xmlfeed import read_feed as _read_fast


def parse_feed(
    body: bytes,
    url: str,
    fetched_at: datetime,
    content_type: str | None = None,
    max_entries: int = 0,
    max_entry_bytes: int = 0,
    *,
    fast: bool = True,
) -> ParsedFeed:
    """Parse and normalize one feed document fetched from ``url`` at ``fetched_at``.

    Never raises for a feed's fault: a document that is not a feed comes back with
    ``error`` set. ``max_entries`` (0 = no limit) keeps the newest entries;
    ``max_entry_bytes`` (0 = no limit) cuts longer content (see
    :func:`planet.sanitize.truncate_html`). ``fast=False`` skips the ElementTree reader
    (:mod:`planet.xmlfeed`) and always uses feedparser.
    """
    if _looks_like_json(body, content_type):
        meta, raw = _read_json_feed(body, url)
    else:
        meta, raw = _read_xml_feed(body, url, content_type, fast)
    if meta.error is not None:
        alternates = discover_feeds(body, url) if meta.is_html else ()
        return ParsedFeed(title="", link=None, entries=(), error=meta.error, alternates=alternates)
    entries = [_normalize(r, url, fetched_at, max_entry_bytes) for r in raw]
    entries.sort(key=lambda e: e.published, reverse=True)
    if max_entries:
        del entries[max_entries:]
    return ParsedFeed(
        title=html_to_text(meta.title),
        link=safe_url(meta.link, url),
        entries=tuple(_unique_ids(entries)),
        feed_id=meta.feed_id,
        refresh_hint=meta.refresh_hint,
    )


@frozen
class _FeedMeta:
    title: str = ""
    link: str | None = None
    feed_id: str | None = None
    refresh_hint: float | None = None
    error: str | None = None
    is_html: bool = False


_ALTERNATE_TYPES = frozenset(
    {"application/atom+xml", "application/rss+xml", "application/feed+json", "application/json"}
)


class _AlternateLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link":
            return
        values = {k.lower(): (v or "") for k, v in attrs}
        rels = values.get("rel", "").lower().split()
        kind = values.get("type", "").lower().split(";")[0].strip()
        if "alternate" in rels and kind in _ALTERNATE_TYPES and values.get("href"):
            self.found.append(values["href"])


def discover_feeds(body: bytes, url: str) -> tuple[str, ...]:
    """Feed URLs named by an HTML page's ``<link rel="alternate" type="...feed type...">``."""
    finder = _AlternateLinks()
    # html.parser is lenient (it never raises on malformed markup); the head is enough.
    finder.feed(body[: 512 * 1024].decode("utf-8", "replace"))
    finder.close()
    found = (safe_url(href, url) for href in finder.found)
    return tuple(dict.fromkeys(u for u in found if u))


def _unique_ids(entries: Iterable[Entry]) -> Iterable[Entry]:
    # Some feeds repeat a guid; the first (newest) copy wins, as a reader would show it once.
    seen: set[str] = set()
    for entry in entries:
        if entry.id not in seen:
            seen.add(entry.id)
            yield entry


#: Content longer than this many times max_entry_bytes is cut before it is sanitized: the
#: sanitizer's work (and the tree it builds) grows with its input, and most of it would be
#: cut anyway. Generous, as markup the sanitizer drops (styles, data: images) can be most.
PRECUT_FACTOR = 8


def _normalize(raw: RawEntry, feed_url: str, fetched_at: datetime, max_bytes: int = 0) -> Entry:
    link = safe_url(raw.link, raw.base)
    # Plain text only grows when escaped: twice the bound is plenty.
    limit = max_bytes * (PRECUT_FACTOR if raw.content_is_html else 2)
    source, cut = _precut(raw.content, limit)
    if raw.content_is_html:
        content = demote_headings(sanitize_html(source, raw.base))
    else:
        content = "<p>" + html.escape(strip_xml_illegal(source)).replace("\n", "<br>") + "</p>"
        content = content if source.strip() else ""
    content = compact_html(truncate_html(content, max_bytes, link, cut))
    title = html_to_text(raw.title) if raw.title_is_html else _plain(raw.title)
    dated = raw.published is not None or raw.updated is not None
    published = _clamp(raw.published or raw.updated or fetched_at, fetched_at)
    updated = _clamp(raw.updated or published, fetched_at)
    entry_id = raw.id or link or _content_hash(title, content)
    return Entry(
        id=strip_xml_illegal(entry_id),
        feed_url=feed_url,
        title=title,
        link=link,
        author=_plain(raw.author),
        content=content,
        published=published,
        updated=updated,
        first_seen=fetched_at,
        dated=dated,
    )


def _precut(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters (0: no limit), before a tag where one is near."""
    if not limit or len(text) <= limit:
        return text, False
    # A tag cut in two would only be dropped by the parser; a cut before it is tidier.
    tag = text.rfind("<", max(0, limit - 4096), limit)
    return text[: tag if tag > 0 else limit], True


def _plain(text: str) -> str:
    return " ".join(strip_xml_illegal(text).split())


def resanitize_entries(entries: Sequence[Entry], max_entry_bytes: int) -> list[Entry]:
    """``entries`` (as stored, sanitized under an older policy) sanitized again as
    :func:`parse_feed` treats new ones: content cut to ``max_entry_bytes`` (0 = no limit),
    title and author plain text, a link urlsplit refuses dropped. Idempotent:
    ``resanitize_entries(resanitize_entries(e, n), n) == resanitize_entries(e, n)``, and an
    entry parsed under the current policy mostly comes back as it is.
    """
    return [_resanitize(entry, max_entry_bytes) for entry in entries]


def _resanitize(entry: Entry, max_bytes: int) -> Entry:
    # Stored links are absolute (or gone): no base is needed, none is wanted. Headings were
    # demoted when the entry was parsed, and demoting is not idempotent: not again.
    link = safe_url(entry.link)
    content = entry.content
    for _ in range(3):
        # Sanitizing the sanitizer's output may still change it (the parser re-nests some
        # trees, flattening cuts the deepest): again until it holds still.
        again = compact_html(truncate_html(sanitize_html(content), max_bytes, link))
        if again == content:
            break
        content = again
    return evolve(
        entry,
        id=strip_xml_illegal(entry.id),
        title=_plain(entry.title),
        link=link,
        author=_plain(entry.author),
        content=content,
    )


def _clamp(when: datetime, fetched_at: datetime) -> datetime:
    # A date in the future would pin the entry to the top of the river for months.
    return min(when, fetched_at)


def _content_hash(title: str, content: str) -> str:
    digest = hashlib.sha256((title + "\0" + content).encode("utf-8", "surrogatepass"))
    return "urn:sha256:" + digest.hexdigest()


def _looks_like_json(body: bytes, content_type: str | None) -> bool:
    if content_type and "json" in content_type.lower():
        return True
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


# --- RSS / Atom / RDF ------------------------------------------------------------------


def _read_xml_feed(
    body: bytes, url: str, content_type: str | None, fast: bool = True
) -> tuple[_FeedMeta, list[RawEntry]]:
    repaired = _repair_charrefs(body)
    # Plain, well-formed feeds: ElementTree, about 5x faster; None = leave it to feedparser.
    quick = _read_fast(repaired, url, content_type) if fast else None
    if quick is not None:
        hint = _refresh_hint(quick.hints)
        return _FeedMeta(quick.title, quick.link, quick.feed_id, hint), list(quick.entries)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    try:
        result = feedparser.parse(
            repaired,
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except (ValueError, OverflowError) as exc:
        # What _repair_charrefs cannot reach (a UTF-16 document, say) still crashes
        # feedparser's loose parser: the feed's fault, so data, not an exception.
        return _FeedMeta(error=f"not a feed: unreadable ({one_line(str(exc))})"), []
    if not result.get("version") and not result.entries and not _is_cdf_channel(body):
        reason, is_html = _not_a_feed_reason(result, body)
        return _FeedMeta(error=reason, is_html=is_html), []
    feed = result.feed
    entries = [_raw_from_feedparser(e, url) for e in result.entries]
    meta = _FeedMeta(
        title=feed.get("title", ""),
        link=feed.get("link"),
        feed_id=feed.get("id") or None,
        refresh_hint=_refresh_hint(feed),
    )
    return meta, entries


# The root element after the prolog (XML declaration, comments, doctype, PIs).
_ROOT_ELEMENT = re.compile(
    rb"^(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*<([A-Za-z_][\w.:-]*)", re.S | re.I
)


def _is_cdf_channel(body: bytes) -> bool:
    """Whether ``body`` is a CDF document: feedparser reads it but names no version, so a
    channel without items would otherwise pass for "not a feed" instead of an empty one."""
    match = _ROOT_ELEMENT.match(body[:65536].lstrip(b"\xef\xbb\xbf"))
    return match is not None and match.group(1).lower() == b"channel"


# A numeric character reference, as feedparser's loose parser reads one.
_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def _charref_code(match: re.Match[bytes]) -> int | None:
    hex_digits, digits = match.groups()
    text = hex_digits or digits
    # Longer ones are out of range anyway (and int() refuses more than 4300 digits).
    if len(text.lstrip(b"0")) > 8:
        return None
    return int(text, 16 if hex_digits else 10)


def _repair_charrefs(body: bytes) -> bytes:
    """Make numeric character references to surrogates or past U+10FFFF usable.

    feedparser's loose parser raises on them (``chr``/``encode`` fail) and the whole feed
    was lost. A surrogate pair written as two references (``&#xD83D;&#xDE00;``, as some
    generators write astral characters) becomes the character it means; any other unusable
    reference becomes U+FFFD. Only ASCII-compatible encodings are repaired.
    """
    if b"&#" not in body:
        return body
    matches = list(_CHARREF.finditer(body))
    out: list[bytes] = []
    pos = i = 0
    while i < len(matches):
        match, code = matches[i], _charref_code(matches[i])
        i += 1
        if code is not None and code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
            continue
        end, replacement = match.end(), b"&#xFFFD;"
        if code is not None and code <= 0xDBFF and i < len(matches) and matches[i].start() == end:
            low = _charref_code(matches[i])
            if low is not None and 0xDC00 <= low <= 0xDFFF:
                end, i = matches[i].end(), i + 1
                replacement = b"&#x%X;" % (0x10000 + (code - 0xD800) * 0x400 + low - 0xDC00)
        out += [body[pos : match.start()], replacement]
        pos = end
    out.append(body[pos:])
    return b"".join(out)


_UPDATE_PERIODS = {
    "hourly": 3600,
    "daily": 86400,
    "weekly": 604800,
    "monthly": 2592000,
    "yearly": 31536000,
}


def _refresh_hint(feed: Mapping[str, Any]) -> float | None:
    """Seconds between polls the feed itself asks for: RSS ``ttl`` or ``sy:updatePeriod``."""
    hints = []
    ttl = _count(feed.get("ttl", ""))
    if ttl is not None:
        hints.append(ttl * 60.0)
    period = _UPDATE_PERIODS.get(str(feed.get("sy_updateperiod", "")).strip().lower())
    if period is not None:
        times = _count(feed.get("sy_updatefrequency", "1")) or 1
        hints.append(period / times)
    return max(hints) if hints else None


def _count(value: object) -> int | None:
    """A whole number written in ASCII digits, else None.

    ``str.isdigit`` alone lets "²" through to int(), which refuses it; the length bound keeps
    the hint a finite float (and int() refuses more than 4300 digits).
    """
    text = str(value).strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else None


def _not_a_feed_reason(result: Mapping[str, Any], body: bytes) -> tuple[str, bool]:
    if not body.strip():
        return "empty response body", False
    head = body.lstrip()[:1024].lower()
    if b"<html" in head or b"<!doctype html" in head:
        return "not a feed: the URL serves an HTML page", True
    exc = result.get("bozo_exception")
    if exc is not None:
        return f"not a feed: {one_line(str(exc))}", False
    return "not a feed: no RSS, Atom or JSON Feed document found", False


def _raw_from_feedparser(e: Mapping[str, Any], feed_url: str) -> RawEntry:
    content, content_type, base = _pick_content(e, feed_url)
    title_detail = e.get("title_detail") or {}
    author_detail = e.get("author_detail") or {}
    return RawEntry(
        id=e.get("id") or None,
        title=e.get("title", ""),
        title_is_html=title_detail.get("type", "text/plain") in HTML_TYPES,
        link=alternate_link(e.get("link"), e.get("links") or ()),
        author=author_detail.get("name") or e.get("author", ""),
        content=content,
        content_is_html=content_type in HTML_TYPES,
        base=base,
        # _raw_get: FeedParserDict.get maps updated_parsed to published_parsed (and warns).
        published=from_struct(_raw_get(e, "published_parsed") or _raw_get(e, "created_parsed")),
        updated=from_struct(_raw_get(e, "updated_parsed")),
    )


def _raw_get(e: Mapping[str, Any], key: str) -> Any:
    return dict.get(e, key) if isinstance(e, dict) else e.get(key)


def _pick_content(e: Mapping[str, Any], feed_url: str) -> tuple[str, str, str]:
    # Full content beats the summary; among several contents prefer an HTML one.
    candidates = list(e.get("content") or [])
    candidates.sort(key=lambda c: c.get("type") not in HTML_TYPES)
    if candidates:
        c = candidates[0]
    elif e.get("summary_detail"):
        c = e["summary_detail"]
    else:
        return "", "text/plain", feed_url
    return c.get("value", ""), c.get("type", "text/html"), c.get("base") or feed_url


# --- JSON Feed 1.0 / 1.1 ---------------------------------------------------------------


def _read_json_feed(body: bytes, url: str) -> tuple[_FeedMeta, list[RawEntry]]:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    # RecursionError: arrays or objects nested deeper than the decoder's stack.
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return _FeedMeta(error=f"not a feed: invalid JSON ({one_line(str(exc))})"), []
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(
        "https://jsonfeed.org/version/"
    ):
        return _FeedMeta(error="not a feed: JSON without a JSON Feed version"), []
    items = doc.get("items")
    if not isinstance(items, list):
        return _FeedMeta(error="not a feed: JSON Feed without an items list"), []
    feed_author = _json_author(doc)
    entries = [_raw_from_json(i, url, feed_author) for i in items if isinstance(i, dict)]
    meta = _FeedMeta(
        title=_str(doc.get("title")),
        link=_str(doc.get("home_page_url")) or None,
        feed_id=_str(doc.get("feed_url")) or None,
    )
    return meta, entries


def _raw_from_json(item: Mapping[str, Any], feed_url: str, feed_author: str) -> RawEntry:
    content_html = _str(item.get("content_html"))
    text = content_html or _str(item.get("content_text")) or _str(item.get("summary"))
    return RawEntry(
        id=_str(item.get("id")) or None,
        title=_str(item.get("title")),
        title_is_html=False,
        link=_str(item.get("url")) or _str(item.get("external_url")) or None,
        author=_json_author(item) or feed_author,
        content=text,
        content_is_html=bool(content_html),
        base=feed_url,
        published=_from_iso(item.get("date_published")),
        updated=_from_iso(item.get("date_modified")),
    )


def _json_author(obj: Mapping[str, Any]) -> str:
    authors = obj.get("authors")
    if isinstance(authors, list) and authors and isinstance(authors[0], dict):
        return _str(authors[0].get("name"))
    author = obj.get("author")
    return _str(author.get("name")) if isinstance(author, dict) else ""


def _str(value: object) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _from_iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is in no year UTC can show
        return None
