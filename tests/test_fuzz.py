"""Fuzzing (issue 7): hostile feed documents through parse, sanitize, store, pages and formats.

The documents come from ``tests/strategies.py``: RSS 2.0, RSS 1.0, Atom and JSON Feed built
element by element from hostile parts, and real feeds damaged byte by byte. Run with
``HYPOTHESIS_PROFILE=fuzz`` (and optionally ``PLANET_FUZZ_FACTOR``, default 40) to multiply
every example count for a longer bug hunt; the defaults keep this file under a minute.
"""

from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from xml.dom import minidom

import html5lib
import nh3
from feeds import Item, atom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import CONTENT_TYPES, HTML, SOUP_TAGS, feed_documents, tag_soups, urls
from test_formats import XML_ILLEGAL, check_json_feed
from test_web import NOW, Harness
from xsscheck import iter_url_attributes, normalize_url, tier_a_violations, tier_b_violations

from planet.model import Entry, FetchResult, ParsedFeed
from planet.nesting import flatten
from planet.parse import parse_feed, resanitize_entries
from planet.render import feed_views, paginate
from planet.sanitize import demote_headings, html_to_text, safe_url, sanitize_html
from planet.testing import record_fetch

_FACTOR = (
    int(os.environ.get("PLANET_FUZZ_FACTOR", "40"))
    if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
    else 1
)

#: Subscriptions of test_web's Harness: "Alpha Blog", and one named by its feed's title.
NAMED = "http://a.example/feed"
UNNAMED = "http://b.example/feed"
PER_PAGE = 4

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_EDGE_JUNK = "".join(chr(c) for c in range(0x21))
_PAGE_HEADINGS = re.compile(r"<h[1-3][\s/>]", re.IGNORECASE)


def fuzz_settings(examples: int) -> settings:
    """``examples`` examples (times the fuzz factor), no deadline: html5lib checks are slow."""
    return settings(
        max_examples=examples * _FACTOR,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# -- what parse guarantees ---------------------------------------------------------------------


def assert_http_url(url: str) -> None:
    """What :func:`planet.sanitize.safe_url` lets through: an http(s) URL, cleaned at the edges."""
    scheme = _SCHEME.match(url)
    assert scheme is not None and scheme.group(1).lower() in ("http", "https"), url
    assert url == url.strip(_EDGE_JUNK) and not re.search("[\t\n\r]", url), url
    assert not XML_ILLEGAL.search(url), url
    assert normalize_url(url).startswith(("http:", "https:")), url
    # The store, the pages and the formats split every link (issue 19: "Invalid IPv6 URL").
    parts = urlsplit(url)
    assert (parts.hostname, parts.port) is not None


def assert_clean_html(html: str) -> None:
    """No script-capable markup (Tier A) and none of planet's banned elements (Tier B)."""
    assert not XML_ILLEGAL.search(html), html
    assert tier_a_violations(html) == [], html
    assert tier_b_violations(html) == [], html
    for _element, _name, value in iter_url_attributes(html):
        parts = urlsplit(value)
        assert (parts.hostname, parts.port) is not None


def assert_normalized_entry(entry: Entry, url: str, now: datetime) -> None:
    """The promises of :class:`planet.model.Entry` as :func:`planet.parse.parse_feed` makes it."""
    for text in (entry.id, entry.title, entry.author, entry.content):
        assert isinstance(text, str) and not XML_ILLEGAL.search(text), entry
    # Plain text in one line: whitespace runs collapsed, none at the ends.
    assert entry.title == " ".join(entry.title.split()), entry.title
    assert entry.author == " ".join(entry.author.split()), entry.author
    assert entry.feed_url == url
    assert entry.first_seen == now
    assert isinstance(entry.dated, bool)
    for when in (entry.published, entry.updated):
        assert isinstance(when, datetime) and when.utcoffset() == timedelta(0), when
        # Future dates are clamped to the fetch time.
        assert when <= now, when
    if not entry.dated:
        assert entry.published == entry.updated == now
    if entry.link is not None:
        assert_http_url(entry.link)
    # Entry headings are demoted below the page's own h1 (planet), h2 (day), h3 (title).
    assert not _PAGE_HEADINGS.search(entry.content), entry.content
    assert_clean_html(entry.content)


def stored_size(content: str) -> int:
    """The UTF-8 size of stored content as the sanitizer wrote it (before compact_html put
    non-ASCII characters as references)."""
    return len(re.sub(r"&#(\d+);", lambda m: chr(int(m.group(1))), content).encode())


def assert_normalized(
    parsed: ParsedFeed, url: str, now: datetime, max_entries: int, max_entry_bytes: int = 0
) -> None:
    """A :class:`ParsedFeed`: an error without entries, or normalized, unique, sorted entries."""
    assert isinstance(parsed, ParsedFeed)
    assert isinstance(parsed.title, str) and not XML_ILLEGAL.search(parsed.title)
    if parsed.link is not None:
        assert_http_url(parsed.link)
    for alternate in parsed.alternates:
        assert_http_url(alternate)
    if parsed.refresh_hint is not None:
        assert isinstance(parsed.refresh_hint, float)
        assert math.isfinite(parsed.refresh_hint) and parsed.refresh_hint >= 0
    if parsed.error is not None:
        assert isinstance(parsed.error, str) and parsed.error
        assert parsed.entries == ()
    ids = [entry.id for entry in parsed.entries]
    assert len(ids) == len(set(ids)), ids
    published = [entry.published for entry in parsed.entries]
    assert published == sorted(published, reverse=True)
    if max_entries:
        assert len(parsed.entries) <= max_entries
    for entry in parsed.entries:
        assert_normalized_entry(entry, url, now)
        if max_entry_bytes:
            assert stored_size(entry.content) <= max_entry_bytes, entry.content
    # Stored entries sanitized again (a snapshot of another policy): a fixed point at once.
    again = resanitize_entries(parsed.entries, max_entry_bytes)
    for entry in again:
        assert_normalized_entry(entry, url, now)
    assert resanitize_entries(again, max_entry_bytes) == again


@fuzz_settings(250)
@given(
    body=feed_documents(),
    content_type=CONTENT_TYPES,
    max_entries=st.sampled_from([0, 0, 1, 3]),
    max_entry_bytes=st.sampled_from([0, 0, 120, 2000]),
)
def test_any_document_parses_to_normalized_entries(
    body: bytes, content_type: str | None, max_entries: int, max_entry_bytes: int
) -> None:
    parsed = parse_feed(body, NAMED, NOW, content_type, max_entries, max_entry_bytes)
    assert_normalized(parsed, NAMED, NOW, max_entries, max_entry_bytes)


# -- sanitizing on its own ---------------------------------------------------------------------


@fuzz_settings(300)
@given(html=HTML, base=st.none() | st.just("http://x.example/blog/") | urls)
def test_any_html_sanitizes_clean(html: str, base: str | None) -> None:
    """Nested, broken and hostile HTML with any base (xml:base comes from the feed)."""
    output = sanitize_html(html, base)
    assert_clean_html(output)
    assert_clean_html(demote_headings(output))
    assert not XML_ILLEGAL.search(html_to_text(html))
    link = safe_url(html, base)
    if link is not None:
        assert_http_url(link)


_SERIALIZED_TAG = re.compile(r"<(/?)([a-zA-Z][^\s/>]*)[^>]*>")
_VOID = frozenset(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta param "
    "source track wbr".split()
)


def tree_shape(serialized: str) -> tuple[int, int]:
    """The depth and element count of a tree as html5ever serializes it (every element
    closed, text escaped; raw-text elements must not be among the allowed tags)."""
    depth = deepest = elements = 0
    for match in _SERIALIZED_TAG.finditer(serialized):
        if match.group(1):
            depth -= 1
        else:
            elements += 1
            if match.group(2).lower() not in _VOID:
                depth += 1
                deepest = max(deepest, depth)
    return deepest, elements


def parsed_shape(html: str) -> tuple[int, int]:
    """The shape of the tree nh3's parser (html5ever) builds from ``html``."""
    kept = nh3.clean(
        html, tags=set(SOUP_TAGS), clean_content_tags=set(), attributes={}, link_rel=None
    )
    return tree_shape(kept)


@fuzz_settings(300)
@given(soup=tag_soups)
def test_flattened_markup_stays_within_its_bounds(soup: str) -> None:
    """Whatever the markup, html5ever nests what flatten leaves no deeper than the bound
    (plus the few elements a step can add at once), and builds a tree linear in it
    (issue 19: nesting and re-created formatting elements cost quadratic time)."""
    depth, formatting, recreated, fostered = 6, 3, 40, 20
    flat = flatten(soup, depth, formatting, recreated, fostered)
    deepest, elements = parsed_shape(flat)
    assert deepest <= depth + formatting + 5, (deepest, soup)
    assert elements <= 3 * soup.count("<") + recreated + 10, (elements, soup)


def test_the_nesting_bound_fails_without_flattening() -> None:
    """The check above is a real one: unflattened, such soups break it at once."""
    soup = "<u/>" + "</code><marquee x/></plaintext>" * 150
    assert parsed_shape(soup)[0] == 151
    assert parsed_shape(flatten(soup, 6, 3, 40, 20))[0] <= 14
    amplified = "".join(f"<p><b title={n}>x</p>" for n in range(100))
    assert parsed_shape(amplified)[1] > 5000
    assert parsed_shape(flatten(amplified, 6, 3, 40, 20))[1] <= 300


# -- the whole path: store, pages, formats -----------------------------------------------------


def assert_html_page(body: bytes) -> None:
    """Parses as HTML5, with nothing script-capable (or a form, frame, plugin) in the body."""
    html = body.decode("utf-8")
    assert not XML_ILLEGAL.search(html)
    html5lib.parse(html, namespaceHTMLElements=False)
    assert tier_a_violations(html, fragment=False) == []
    assert tier_b_violations(html, fragment=False) == []


def assert_xml(body: bytes, root: str) -> minidom.Document:
    """Well-formed XML (expat) of the given root element, free of XML-illegal characters."""
    doc = minidom.parseString(body)
    assert doc.documentElement.tagName == root
    assert not XML_ILLEGAL.search(body.decode("utf-8"))
    return doc


def _river_page_size(h: Harness) -> int:
    items = h.store.river_view().items(h.config.dedupe)
    config = h.config
    first = paginate(items, config.items_per_page, config.days_per_page, config.new_feed_items)
    return len(first[0])


@fuzz_settings(90)
@given(named=feed_documents(), unnamed=feed_documents(), content_type=CONTENT_TYPES)
def test_any_feeds_render_everywhere(
    named: bytes, unnamed: bytes, content_type: str | None
) -> None:
    h = Harness(per_page=PER_PAGE)
    for url, body in ((NAMED, named), (UNNAMED, unnamed)):
        parsed = parse_feed(body, url, NOW, content_type)
        result = FetchResult(url=url, final_url=url, status=200, body=body)
        record_fetch(h.store, url, result, parsed, NOW)
    views = feed_views(h.config, h.store.feed_states())
    shown = _river_page_size(h)

    for path in ("/", f"/feeds/{views[NAMED].slug}", f"/feeds/{views[UNNAMED].slug}", "/feeds"):
        response, body = h.get(path)
        assert response.code == 200, path
        assert_html_page(body)
    river = html5lib.parse(h.get("/")[1], namespaceHTMLElements=False)
    assert len([d for d in river.iter("div") if d.get("class") == "content"]) == shown

    atom = assert_xml(h.get("/atom.xml")[1], "feed")
    contents = atom.getElementsByTagName("content")
    assert len(contents) == shown
    for content in contents:
        html = "".join(node.data for node in content.childNodes)
        assert tier_a_violations(html) == [], html
    rss = assert_xml(h.get("/rss20.xml")[1], "rss")
    assert len(rss.getElementsByTagName("item")) == shown
    opml = assert_xml(h.get("/opml.xml")[1], "opml")
    assert len(opml.getElementsByTagName("outline")) == len(views)

    doc = json.loads(h.get("/feed.json")[1].decode("utf-8"))
    assert check_json_feed(doc) == []
    assert len(doc["items"]) == shown
    status = json.loads(h.get("/feeds.json")[1].decode("utf-8"))
    assert {row["url"] for row in status} == set(views)


# -- regressions: what the fuzzing found -------------------------------------------------------


def _rss_channel(extra: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"'
        ' xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel><title>T</title>'
        f"{extra}<item><title>x</title><guid>g</guid></item></channel></rss>"
    ).encode()


def test_ttl_that_is_not_plain_digits_is_ignored() -> None:
    # "²".isdigit() is true but int() refuses it; 400 digits overflow a float; 5000 exceed
    # int()'s digit limit. Each raised out of parse_feed.
    for ttl in ("²", "9" * 400, "9" * 5000):
        parsed = parse_feed(_rss_channel(f"<ttl>{ttl}</ttl>"), NAMED, NOW)
        assert parsed.error is None and len(parsed.entries) == 1
        assert parsed.refresh_hint is None
    weird_frequency = (
        "<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>²</sy:updateFrequency>"
    )
    assert parse_feed(_rss_channel(weird_frequency), NAMED, NOW).refresh_hint == 86400.0
    assert parse_feed(_rss_channel("<ttl> 30 </ttl>"), NAMED, NOW).refresh_hint == 1800.0


def _json_feed(items: object) -> bytes:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items}).encode()


def test_json_feed_date_outside_the_utc_range_counts_as_none() -> None:
    # Valid ISO 8601, but astimezone(UTC) overflows: year 0 or 10000.
    items = [
        {"id": "early", "date_published": "0001-01-01T00:00:00+01:00"},
        {"id": "late", "date_modified": "9999-12-31T23:59:59-01:00"},
    ]
    parsed = parse_feed(_json_feed(items), NAMED, NOW)
    assert parsed.error is None
    assert [(e.id, e.dated, e.published) for e in parsed.entries] == [
        ("early", False, NOW),
        ("late", False, NOW),
    ]


def test_json_nested_too_deep_is_not_a_feed() -> None:
    body = b'{"items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    parsed = parse_feed(body, NAMED, NOW)
    assert parsed.error is not None and parsed.error.startswith("not a feed: invalid JSON")
    assert parsed.entries == ()


def test_character_references_to_surrogates_or_past_unicode() -> None:
    # feedparser's loose parser raised on these (chr() and encode() fail) and the feed was lost.
    titles = {
        "&#xD83D;&#xDE00;": "\U0001f600",  # an astral character as a UTF-16 surrogate pair
        "&#55357;&#56832;": "\U0001f600",
        "a&#xD800;b": "a\ufffdb",
        "&#xDE00;&#xD83D;": "\ufffd\ufffd",  # the halves in the wrong order are no pair
        "&#x110000;": "\ufffd",
        "&#" + "9" * 5000 + ";": "\ufffd",
        "&#x41;&#233;": "Aé",  # good references are left alone
    }
    for ref, expected in titles.items():
        body = atom("Feed &#xD800;", "http://a.example/", [Item(ref, "http://a.example/1", NOW)])
        # atom() escapes the title: put the reference back as one.
        parsed = parse_feed(body.replace(b"&amp;#", b"&#"), NAMED, NOW)
        assert parsed.error is None, ref
        assert parsed.title == "Feed \ufffd"
        assert [e.title for e in parsed.entries] == [expected], ref
    # Out of the repair's reach (UTF-16): an error, not an exception.
    body = '<?xml version="1.0" encoding="utf-16"?><rss version="2.0"><channel><title>&#xD800;'
    parsed = parse_feed((body + "</title></channel></rss>").encode("utf-16"), NAMED, NOW)
    assert parsed.error is not None and parsed.error.startswith("not a feed: unreadable")


def test_url_resolved_against_a_base_urlsplit_refuses() -> None:
    base = "http://[::1"
    assert safe_url("relative", base) is None
    assert safe_url("http://ok.example/", base) == "http://ok.example/"
    html = '<a href="relative">r</a><a href="http://ok.example/">ok</a>'
    assert sanitize_html(html, base) == (
        '<a rel="noopener noreferrer">r</a>'
        '<a href="http://ok.example/" rel="noopener noreferrer">ok</a>'
    )


def test_control_characters_of_the_base_stay_out_of_resolved_urls() -> None:
    assert safe_url("0", "HTTP://\x1f") == "http:///0"
    assert safe_url("post", "http://x.example/\x01blog/") == "http://x.example/blog/post"


def test_url_attribute_whose_entity_decoded_form_is_a_script_url_is_dropped() -> None:
    # nh3 hands the filter "jav&#x09;ascript:x" (one decoding done); left relative, one more
    # decoding by whatever reads the output again makes it javascript:.
    for html, base in [
        ('<img src="jav&amp;#x09;ascript:x">', None),
        ("<audio src>", "jav&#x09;ascript:x"),
        ('<a href="">x</a>', "java&#115;cript:alert(1)"),
    ]:
        output = sanitize_html(html, base)
        assert tier_a_violations(output) == [], output
        assert "ascript" not in output and "cript:" not in output, output
    # Resolved against a real base, the same text is a harmless path.
    assert sanitize_html('<img src="jav&amp;#x09;ascript:x">', "http://x.example/") == (
        '<img src="http://x.example/jav&amp;#x09;ascript:x" loading="lazy">'
    )


def test_encoding_declaration_with_a_byte_flipped_name() -> None:
    # The ElementTree fast path (planet.xmlfeed) raised UnicodeDecodeError / ValueError.
    good = atom("Blog", "http://blog.example/", [Item("T", "http://blog.example/1", NOW)])
    for name in (b"\x80tf-8", b"\x00tf-8"):
        parsed = parse_feed(
            good.replace(b'encoding="utf-8"', b'encoding="' + name + b'"'), NAMED, NOW
        )
        # feedparser's convert_to_utf8 raises on them too: parse's guard makes that an error.
        assert parsed.error is not None and parsed.error.startswith("not a feed: unreadable")
        assert parsed.entries == ()


def test_resolved_link_has_no_space_left_by_urljoin() -> None:
    # urljoin drops the empty fragment of "x #", leaving "x " (found by the sanitizer property).
    assert safe_url("a b #", "http://x.example/blog/") == "http://x.example/blog/a b"
