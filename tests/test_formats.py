"""planet.formats: Atom (RFC 5005 paged), RSS 2.0, OPML 2.0 and JSON Feed 1.1 outputs."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import attrs
import feedparser
import pytest
from feeds import Item, at, atom, rss2
from hypothesis import given, settings
from hypothesis import strategies as st
from xsscheck import tier_a_violations

from planet.config import Config
from planet.formats import (
    JSON_FEED_VERSION,
    document_url,
    plain_text,
    render_atom,
    render_json_feed,
    render_opml,
    render_rss20,
)
from planet.model import Entry
from planet.parse import parse_feed
from planet.render import FeedView, PageView, atom_entry_id, iso_utc, render_river
from planet.river import RiverItem
from planet.sanitize import html_to_text

NOW = at(2026, 6, 24, 9, 0)
ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
XSS_PAYLOADS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "xss" / "payloads.json"
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

CONFIG = Config(
    path="test.ini",
    name="Planet <Test> & Friends",
    link="http://planet.example/",
    owner_name="Öwner Name",
    owner_email="owner@planet.example",
)
NO_LINK = attrs.evolve(CONFIG, link="")

A_URL = "http://a.example/feed"
B_URL = "http://b.example/feed.xml"
C_URL = "http://c.example/rss"
FEEDS = {
    A_URL: FeedView(A_URL, "Alpha & <Omega> Blog", "http://a.example/"),
    B_URL: FeedView(B_URL, "Бета — блог", None),
    C_URL: FeedView(C_URL, "aardvark notes", "http://c.example/"),
}


def _entries() -> list[Entry]:
    """Two parsed feeds plus a link-less entry and one full of control characters."""
    alpha = parse_feed(
        atom(
            "Alpha",
            "http://a.example/",
            [
                Item("Evening & <night>", "http://a.example/3", at(2026, 6, 23, 20, 6)),
                Item("Early post", "http://a.example/1", at(2026, 6, 5, 0, 30), author=""),
            ],
        ),
        A_URL,
        NOW,
    )
    beta = parse_feed(
        rss2(
            "Beta",
            "http://b.example/",
            [
                Item(
                    "Привет, мир",
                    "http://b.example/1",
                    at(2026, 6, 22, 12, 10),
                    "<p>noon &amp; more</p>",
                    "Борис",
                    id="beta-post-1",
                )
            ],
        ),
        B_URL,
        NOW,
    )
    assert alpha.error is None and beta.error is None
    (evening, early), (noon,) = alpha.entries, beta.entries
    no_link = attrs.evolve(
        noon,
        id="beta-no-link",
        title="No link here",
        link=None,
        published=at(2026, 6, 20, 8, 0),
        updated=at(2026, 6, 21, 8, 0),
    )
    control = attrs.evolve(
        evening,
        id="http://a.example/ctl",
        title="Esc\x1bape and nul\x00",
        link="http://a.example/ctl",
        content="<p>bad\x1b\x00 bytes</p>",
        author="Mal\x0blory",
        published=at(2026, 6, 10, 7, 0),
        updated=at(2026, 6, 10, 7, 0),
    )
    entries = [evening, noon, no_link, control, early]
    assert [e.published for e in entries] == sorted((e.published for e in entries), reverse=True)
    return entries


ENTRIES = _entries()


def clean(text: str) -> str:
    return XML_ILLEGAL.sub("", text)


def links(feed: Any) -> dict[str, str]:
    return {link.rel: link.href for link in feed.feed.links}


def alternate(entry: Any) -> str | None:
    hrefs = [link.href for link in entry.get("links", []) if link.rel == "alternate"]
    assert len(hrefs) <= 1
    return hrefs[0] if hrefs else None


def expected_titles() -> list[str]:
    return [clean(e.title) or FEEDS[e.feed_url].name for e in ENTRIES]


# -- Atom ------------------------------------------------------------------------------------


def test_atom_is_valid_atom10_with_the_river() -> None:
    body = render_atom(CONFIG, ENTRIES, FEEDS, NOW)
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == CONFIG.name
    assert parsed.feed.id == "http://planet.example/"
    assert parsed.feed.author_detail.name == CONFIG.owner_name
    assert parsed.feed.author_detail.email == CONFIG.owner_email
    assert [e.title for e in parsed.entries] == expected_titles()
    assert [alternate(e) for e in parsed.entries] == [e.link for e in ENTRIES]
    assert [e.id for e in parsed.entries] == [atom_entry_id(e) for e in ENTRIES]
    assert [e.published_parsed[:5] for e in parsed.entries] == [
        e.published.timetuple()[:5] for e in ENTRIES
    ]
    first = parsed.entries[0]
    assert first.content[0].type == "text/html"
    assert first.content[0].value == ENTRIES[0].content
    assert first.author == "Alice"
    assert first.source.title == "Alpha & <Omega> Blog"
    assert first.source.id == A_URL
    assert {link.rel: link.href for link in first.source.links} == {
        "self": A_URL,
        "alternate": "http://a.example/",
    }
    # No author in the entry: the feed's name stands in.
    assert parsed.entries[-1].author == "Alpha & <Omega> Blog"
    # A non-IRI id becomes a stable URN.
    assert parsed.entries[1].id.startswith("urn:planet:")
    assert alternate(parsed.entries[2]) is None


def test_atom_first_page_links_to_next() -> None:
    parsed = feedparser.parse(render_atom(CONFIG, ENTRIES[:2], FEEDS, NOW, page=1, has_next=True))
    assert not parsed.bozo
    assert links(parsed) == {
        "self": "http://planet.example/atom.xml",
        "alternate": "http://planet.example/",
        "first": "http://planet.example/atom.xml",
        "next": "http://planet.example/atom.xml?page=2",
    }
    assert parsed.feed.updated == "2026-06-23T20:06:00Z"


def test_atom_later_page_links_back() -> None:
    parsed = feedparser.parse(render_atom(CONFIG, ENTRIES[2:], FEEDS, NOW, page=2))
    assert not parsed.bozo
    assert links(parsed) == {
        "self": "http://planet.example/atom.xml?page=2",
        "alternate": "http://planet.example/",
        "first": "http://planet.example/atom.xml",
        "previous": "http://planet.example/atom.xml",
    }
    assert [e.title for e in parsed.entries] == expected_titles()[2:]
    middle = feedparser.parse(render_atom(CONFIG, ENTRIES[2:], FEEDS, NOW, page=3, has_next=True))
    assert links(middle)["previous"] == "http://planet.example/atom.xml?page=2"
    assert links(middle)["next"] == "http://planet.example/atom.xml?page=4"


def test_atom_without_planet_link_is_relative_with_urn_id() -> None:
    body = render_atom(NO_LINK, ENTRIES, FEEDS, NOW, page=2, has_next=True)
    root = ET.fromstring(body)
    hrefs = {el.get("rel"): el.get("href") for el in root.findall(f"{ATOM}link")}
    assert hrefs == {
        "self": "/atom.xml?page=2",
        "alternate": "/",
        "first": "/atom.xml",
        "previous": "/atom.xml",
        "next": "/atom.xml?page=3",
    }
    feed_id = root.findtext(f"{ATOM}id")
    assert feed_id is not None and feed_id.startswith("urn:planet:")
    # Stable: the same planet gets the same id every time.
    again = ET.fromstring(render_atom(NO_LINK, [], FEEDS, NOW))
    assert again.findtext(f"{ATOM}id") == feed_id
    assert not feedparser.parse(body).bozo


def test_atom_empty_river() -> None:
    parsed = feedparser.parse(render_atom(CONFIG, [], FEEDS, NOW))
    assert not parsed.bozo
    assert parsed.entries == []
    assert parsed.feed.updated == "2026-06-24T09:00:00Z"


# -- RSS 2.0 ---------------------------------------------------------------------------------


def test_rss20_is_valid_with_the_river() -> None:
    body = render_rss20(CONFIG, ENTRIES, FEEDS, NOW)
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert parsed.feed.title == CONFIG.name
    assert parsed.feed.link == "http://planet.example/"
    assert parsed.feed.updated == "Tue, 23 Jun 2026 20:06:00 GMT"
    assert links(parsed)["self"] == "http://planet.example/rss20.xml"
    # Item-level text is plain text that reads the same as HTML (issue 19, item 11): what
    # looks like a tag is dropped, as an HTML-rendering reader would have dropped it.
    assert [e.title for e in parsed.entries] == [
        f"{plain_text(FEEDS[e.feed_url].name)}: {plain_text(clean(e.title))}" for e in ENTRIES
    ]
    assert parsed.entries[0].title == "Alpha & Blog: Evening &"
    assert [e.get("link") for e in parsed.entries] == [e.link for e in ENTRIES]
    assert [e.id for e in parsed.entries] == [atom_entry_id(e) for e in ENTRIES]
    assert [e.published_parsed[:5] for e in parsed.entries] == [
        e.published.timetuple()[:5] for e in ENTRIES
    ]
    assert [e.source.href for e in parsed.entries] == [e.feed_url for e in ENTRIES]
    assert [e.source.title for e in parsed.entries] == [
        plain_text(FEEDS[e.feed_url].name) for e in ENTRIES
    ]
    assert parsed.entries[0].author == "Alice"
    assert parsed.entries[1].author == "Борис"
    assert parsed.entries[-1].author == "Alpha & Blog"
    assert parsed.entries[1].description == "<p>noon &amp; more</p>"


def test_rss20_guid_is_permalink_only_when_it_is_the_link() -> None:
    root = ET.fromstring(render_rss20(CONFIG, ENTRIES, FEEDS, NOW))
    items = root.findall("channel/item")
    assert len(items) == len(ENTRIES)
    for item, entry in zip(items, ENTRIES, strict=True):
        guid = item.find("guid")
        assert guid is not None
        assert guid.text == atom_entry_id(entry)
        expected = "true" if guid.text == entry.link else "false"
        assert guid.get("isPermaLink") == expected
        assert item.findtext("pubDate")
        assert item.findtext(f"{DC}creator")
        assert item.find("source") is not None
    assert [i.find("guid").get("isPermaLink") for i in items] == [  # type: ignore[union-attr]
        "true",
        "false",
        "false",
        "true",
        "true",
    ]
    assert items[2].find("link") is None


def test_rss20_unaffected_by_registered_atom_namespace() -> None:
    # Any code registering Atom as the default namespace does so process-wide.
    ET.register_namespace("", "http://www.w3.org/2005/Atom")
    root = ET.fromstring(render_rss20(CONFIG, ENTRIES, FEEDS, NOW))
    assert root.tag == "rss"
    assert root.find("channel") is not None
    assert root.find(f"channel/{ATOM}link") is not None


# -- OPML ------------------------------------------------------------------------------------


def test_opml_lists_subscriptions_by_name() -> None:
    body = render_opml(CONFIG, list(FEEDS.values()), NOW)
    root = ET.fromstring(body)
    assert root.tag == "opml"
    assert root.get("version") == "2.0"
    assert root.findtext("head/title") == CONFIG.name
    assert root.findtext("head/ownerName") == CONFIG.owner_name
    assert root.findtext("head/ownerEmail") == CONFIG.owner_email
    assert root.findtext("head/dateCreated") == "Wed, 24 Jun 2026 09:00:00 GMT"
    assert root.findtext("head/dateModified") == "Wed, 24 Jun 2026 09:00:00 GMT"
    outlines = root.findall("body/outline")
    assert [o.attrib for o in outlines] == [
        {
            "type": "rss",
            "text": "aardvark notes",
            "title": "aardvark notes",
            "xmlUrl": C_URL,
            "htmlUrl": "http://c.example/",
        },
        {
            "type": "rss",
            "text": "Alpha & <Omega> Blog",
            "title": "Alpha & <Omega> Blog",
            "xmlUrl": A_URL,
            "htmlUrl": "http://a.example/",
        },
        {"type": "rss", "text": "Бета — блог", "title": "Бета — блог", "xmlUrl": B_URL},
    ]


def test_opml_without_owner_and_odd_names() -> None:
    config = attrs.evolve(CONFIG, owner_name="", owner_email="")
    feeds = [FeedView("http://x.example/f", "\x1b\x00", None), FeedView(A_URL, "A\x1b", None)]
    root = ET.fromstring(render_opml(config, feeds, NOW))
    assert root.find("head/ownerName") is None
    assert root.find("head/ownerEmail") is None
    assert [o.get("text") for o in root.findall("body/outline")] == ["http://x.example/f", "A"]


# -- JSON Feed 1.1 ---------------------------------------------------------------------------

_TOP_LEVEL = {
    "version",
    "title",
    "home_page_url",
    "feed_url",
    "description",
    "user_comment",
    "next_url",
    "icon",
    "favicon",
    "authors",
    "author",
    "language",
    "expired",
    "hubs",
    "items",
}
_ITEM_KEYS = {
    "id",
    "url",
    "external_url",
    "title",
    "content_html",
    "content_text",
    "summary",
    "image",
    "banner_image",
    "date_published",
    "date_modified",
    "authors",
    "author",
    "tags",
    "language",
    "attachments",
}
_URL_KEYS = ("home_page_url", "feed_url", "next_url", "icon", "favicon")
_ITEM_URL_KEYS = ("url", "external_url", "image", "banner_image")
_AUTHOR_KEYS = {"name", "url", "avatar"}


def _unknown(keys: Any, known: set[str]) -> list[str]:
    return sorted(k for k in keys if k not in known and not str(k).startswith("_"))


def _check_authors(where: str, authors: Any) -> list[str]:
    if not isinstance(authors, list):
        return [f"{where}: authors is not an array"]
    problems = []
    for n, author in enumerate(authors):
        if not isinstance(author, dict):
            problems.append(f"{where}: authors[{n}] is not an object")
            continue
        if not any(isinstance(author.get(k), str) for k in _AUTHOR_KEYS):
            problems.append(f"{where}: authors[{n}] has no name, url or avatar")
        for key in _unknown(author, _AUTHOR_KEYS):
            problems.append(f"{where}: authors[{n}] has unknown key {key!r}")
        for key in _AUTHOR_KEYS & author.keys():
            if not isinstance(author[key], str):
                problems.append(f"{where}: authors[{n}].{key} is not a string")
    return problems


def _check_date(where: str, value: Any) -> list[str]:
    if not isinstance(value, str):
        return [f"{where} is not a string"]
    try:
        parsed = datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", value))
    except ValueError:
        return [f"{where} is not an RFC 3339 date: {value!r}"]
    if parsed.tzinfo is None:
        return [f"{where} has no time zone: {value!r}"]
    return []


def check_json_feed(doc: Any) -> list[str]:
    """The ways ``doc`` breaks the JSON Feed 1.1 spec (jsonfeed.org/version/1.1); empty if none."""
    if not isinstance(doc, dict):
        return ["the feed is not an object"]
    problems = []
    if doc.get("version") != JSON_FEED_VERSION:
        problems.append(f"version is {doc.get('version')!r}")
    if not isinstance(doc.get("title"), str):
        problems.append("title is missing or not a string")
    for key in _URL_KEYS:
        if key in doc and not isinstance(doc[key], str):
            problems.append(f"{key} is not a string")
    for key in ("description", "user_comment", "language"):
        if key in doc and not isinstance(doc[key], str):
            problems.append(f"{key} is not a string")
    if "expired" in doc and not isinstance(doc["expired"], bool):
        problems.append("expired is not a boolean")
    if "authors" in doc:
        problems += _check_authors("feed", doc["authors"])
    problems += [f"unknown top-level key {key!r}" for key in _unknown(doc, _TOP_LEVEL)]
    items = doc.get("items")
    if not isinstance(items, list):
        return [*problems, "items is missing or not an array"]
    for n, item in enumerate(items):
        where = f"items[{n}]"
        if not isinstance(item, dict):
            problems.append(f"{where} is not an object")
            continue
        if not isinstance(item.get("id"), str):
            problems.append(f"{where}.id is missing or not a string")
        if not any(isinstance(item.get(k), str) for k in ("content_html", "content_text")):
            problems.append(f"{where} has neither content_html nor content_text")
        for key in (*_ITEM_URL_KEYS, "title", "content_html", "content_text", "summary"):
            if key in item and not isinstance(item[key], str):
                problems.append(f"{where}.{key} is not a string")
        for key in ("date_published", "date_modified"):
            if key in item:
                problems += _check_date(f"{where}.{key}", item[key])
        if "authors" in item:
            problems += _check_authors(where, item["authors"])
        if "tags" in item and not (
            isinstance(item["tags"], list) and all(isinstance(t, str) for t in item["tags"])
        ):
            problems.append(f"{where}.tags is not an array of strings")
        problems += [f"{where} has unknown key {key!r}" for key in _unknown(item, _ITEM_KEYS)]
    return problems


def test_check_json_feed_catches_problems() -> None:
    good = {"version": JSON_FEED_VERSION, "title": "t", "items": [{"id": "1", "content_text": ""}]}
    assert check_json_feed(good) == []
    assert check_json_feed({"title": "t", "items": []}) == ["version is None"]
    assert check_json_feed({**good, "items": None}) == ["items is missing or not an array"]
    assert check_json_feed({**good, "x": 1, "_x": 1}) == ["unknown top-level key 'x'"]
    bad_items = [
        {"id": 1, "content_html": "x"},
        {"id": "2"},
        {"id": "3", "content_html": "", "url": 5, "date_published": "yesterday"},
        {"id": "4", "content_html": "", "date_modified": "2026-06-24T09:00:00"},
        {"id": "5", "content_html": "", "authors": [{}], "bogus": 1, "_ext": {}},
    ]
    assert check_json_feed({**good, "items": bad_items}) == [
        "items[0].id is missing or not a string",
        "items[1] has neither content_html nor content_text",
        "items[2].url is not a string",
        "items[2].date_published is not an RFC 3339 date: 'yesterday'",
        "items[3].date_modified has no time zone: '2026-06-24T09:00:00'",
        "items[4]: authors[0] has no name, url or avatar",
        "items[4] has unknown key 'bogus'",
    ]


def test_json_feed_is_valid_with_the_river() -> None:
    body = render_json_feed(CONFIG, ENTRIES, FEEDS, NOW)
    doc = json.loads(body.decode("utf-8"))
    assert check_json_feed(doc) == []
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["title"] == CONFIG.name
    assert doc["home_page_url"] == "http://planet.example/"
    assert doc["feed_url"] == "http://planet.example/feed.json"
    assert "next_url" not in doc
    assert doc["authors"] == [{"name": "Öwner Name", "url": "mailto:owner@planet.example"}]
    items = doc["items"]
    assert [i["id"] for i in items] == [atom_entry_id(e) for e in ENTRIES]
    assert [i.get("url") for i in items] == [e.link for e in ENTRIES]
    assert [i["title"] for i in items] == [clean(e.title) for e in ENTRIES]
    assert [i["content_html"] for i in items] == [clean(e.content) for e in ENTRIES]
    assert [datetime.fromisoformat(i["date_published"].replace("Z", "+00:00")) for i in items] == [
        e.published for e in ENTRIES
    ]
    assert items[2]["date_modified"] == "2026-06-21T08:00:00Z"
    assert "url" not in items[2]
    assert [i["authors"] for i in items] == [
        [{"name": "Alice"}],
        [{"name": "Борис"}],
        [{"name": "Борис"}],
        [{"name": "Mallory"}],
        [{"name": "Alpha & <Omega> Blog"}],
    ]
    assert items[0]["_planet"] == {"feed": "Alpha & <Omega> Blog", "feed_url": A_URL}
    assert items[1]["_planet"] == {"feed": "Бета — блог", "feed_url": B_URL}
    # UTF-8 as such, not \u escapes.
    assert "Бета".encode() in body


def test_json_feed_paging() -> None:
    doc = json.loads(render_json_feed(CONFIG, ENTRIES[:2], FEEDS, NOW, page=1, has_next=True))
    assert check_json_feed(doc) == []
    assert doc["next_url"] == "http://planet.example/feed.json?page=2"
    doc = json.loads(render_json_feed(CONFIG, ENTRIES[2:], FEEDS, NOW, page=2, has_next=True))
    assert doc["next_url"] == "http://planet.example/feed.json?page=3"
    assert [i["id"] for i in doc["items"]] == [atom_entry_id(e) for e in ENTRIES[2:]]


def test_json_feed_without_planet_link_or_owner() -> None:
    config = attrs.evolve(NO_LINK, owner_name="")
    doc = json.loads(render_json_feed(config, ENTRIES, FEEDS, NOW, page=1, has_next=True))
    assert check_json_feed(doc) == []
    assert "home_page_url" not in doc
    assert "feed_url" not in doc
    assert "authors" not in doc
    assert doc["next_url"] == "/feed.json?page=2"


# -- all formats -----------------------------------------------------------------------------


def test_document_url() -> None:
    assert document_url(CONFIG, "atom.xml") == "http://planet.example/atom.xml"
    assert document_url(CONFIG, "feed.json", 3) == "http://planet.example/feed.json?page=3"
    assert document_url(NO_LINK, "rss20.xml") == "/rss20.xml"
    assert document_url(NO_LINK, "atom.xml", 2) == "/atom.xml?page=2"
    # A link urlsplit refuses does not break rendering.
    odd = attrs.evolve(CONFIG, link="http://[oops/planet/")
    assert document_url(odd, "atom.xml") == "http://[oops/planet/atom.xml"
    ET.fromstring(render_atom(odd, ENTRIES, FEEDS, NOW))


def test_lone_surrogates_in_ids_get_a_urn() -> None:
    entry = attrs.evolve(ENTRIES[1], id="post \ud800", feed_url="http://x.example/\udfff")
    root = ET.fromstring(render_atom(CONFIG, [entry], FEEDS, NOW))
    entry_id = root.findtext(f"{ATOM}entry/{ATOM}id")
    assert entry_id is not None and entry_id.startswith("urn:planet:")
    doc = json.loads(render_json_feed(CONFIG, [entry], FEEDS, NOW))
    assert doc["items"][0]["id"] == entry_id


def test_control_characters_never_reach_any_output() -> None:
    feeds = {**FEEDS, A_URL: FeedView(A_URL, "Al\x1bpha\x00", "http://a.example/\x1b")}
    config = attrs.evolve(CONFIG, name="Planet\x1b\x00", owner_name="Ow\x1bner")
    xml_outputs = [
        render_atom(config, ENTRIES, feeds, NOW, page=2, has_next=True),
        render_rss20(config, ENTRIES, feeds, NOW),
        render_opml(config, list(feeds.values()), NOW),
    ]
    for body in xml_outputs:
        ET.fromstring(body)  # well-formed
        assert b"\x1b" not in body and b"\x00" not in body and b"&#" not in body
    for body in xml_outputs[:2]:
        assert not feedparser.parse(body).bozo
    text = render_json_feed(config, ENTRIES, feeds, NOW).decode("utf-8")
    doc = json.loads(text)
    assert check_json_feed(doc) == []
    assert "\\u001b" not in text and "\\u0000" not in text
    assert doc["title"] == "Planet"
    assert doc["items"][3]["title"] == "Escape and nul"
    assert doc["items"][3]["content_html"] == "<p>bad bytes</p>"


def test_output_is_deterministic() -> None:
    for render_fn in (render_atom, render_rss20, render_json_feed):
        assert render_fn(CONFIG, ENTRIES, FEEDS, NOW) == render_fn(CONFIG, ENTRIES, FEEDS, NOW)
    assert render_opml(CONFIG, list(FEEDS.values()), NOW) == render_opml(
        CONFIG, list(reversed(FEEDS.values())), NOW
    )


def test_dates_before_year_1000_stay_rfc3339() -> None:
    old = attrs.evolve(ENTRIES[0], published=at(999, 1, 2), updated=at(999, 1, 2))
    doc = json.loads(render_json_feed(CONFIG, [old], FEEDS, NOW))
    assert check_json_feed(doc) == []
    assert doc["items"][0]["date_published"] == "0999-01-02T12:00:00Z"
    root = ET.fromstring(render_atom(CONFIG, [old], FEEDS, NOW))
    assert root.findtext(f"{ATOM}entry/{ATOM}published") == "0999-01-02T12:00:00Z"


# -- property: any text at all --------------------------------------------------------------

# Every code point, lone surrogates and C0/C1 controls included.
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=40)
WHEN = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(timezone.utc)
)


@st.composite
def entries_and_feeds(draw: Any) -> tuple[list[Entry], dict[str, FeedView]]:
    urls = draw(st.lists(ANY_TEXT.map(lambda s: "http://f.example/" + s), min_size=1, max_size=3))
    feeds = {
        url: FeedView(
            url,
            draw(ANY_TEXT),
            draw(st.none() | ANY_TEXT.map(lambda s: "https://s.example/" + s)),
        )
        for url in urls
    }
    entries = []
    for _ in range(draw(st.integers(0, 4))):
        published = draw(WHEN)
        entries.append(
            Entry(
                id=draw(ANY_TEXT | ANY_TEXT.map(lambda s: "tag:x," + s)),
                feed_url=draw(st.sampled_from(urls) | ANY_TEXT),
                title=draw(ANY_TEXT),
                link=draw(st.none() | ANY_TEXT.map(lambda s: "http://e.example/" + s)),
                author=draw(ANY_TEXT),
                content=draw(ANY_TEXT),
                published=published,
                updated=published + timedelta(seconds=draw(st.integers(0, 10**6))),
                first_seen=published,
            )
        )
    return entries, feeds


@settings(max_examples=300, deadline=None)
@given(
    data=entries_and_feeds(),
    name=ANY_TEXT,
    link=st.sampled_from(["", "http://planet.example/"]) | ANY_TEXT,
    owner=ANY_TEXT,
    email=ANY_TEXT,
    page=st.integers(1, 1000),
    has_next=st.booleans(),
)
def test_any_text_gives_well_formed_outputs(
    data: tuple[list[Entry], dict[str, FeedView]],
    name: str,
    link: str,
    owner: str,
    email: str,
    page: int,
    has_next: bool,
) -> None:
    entries, feeds = data
    config = Config(path="p.ini", name=name, link=link, owner_name=owner, owner_email=email)
    xml_outputs = [
        render_atom(config, entries, feeds, NOW, page=page, has_next=has_next),
        render_rss20(config, entries, feeds, NOW),
        render_opml(config, list(feeds.values()), NOW),
    ]
    for body in xml_outputs:
        root = ET.fromstring(body)
        assert not XML_ILLEGAL.search(body.decode("utf-8"))
        assert root.tag in (f"{ATOM}feed", "rss", "opml")
    atom_root = ET.fromstring(xml_outputs[0])
    assert len(atom_root.findall(f"{ATOM}entry")) == len(entries)
    assert len(ET.fromstring(xml_outputs[1]).findall("channel/item")) == len(entries)
    assert len(ET.fromstring(xml_outputs[2]).findall("body/outline")) == len(feeds)
    body = render_json_feed(config, entries, feeds, NOW, page=page, has_next=has_next)
    doc = json.loads(body.decode("utf-8"))
    assert check_json_feed(doc) == []
    assert len(doc["items"]) == len(entries)
    assert ("next_url" in doc) == has_next


# -- issue 19, item 11: text that readers render as HTML; stored values of the wrong type -----

HOSTILE_TEXT = [
    # (stored text, what an RSS title / dc:creator must carry)
    ("<img src=x onerror=alert(1)>", ""),
    ("<script>alert(1)</script>Bob", "Bob"),
    ("Tom & Jerry", "Tom & Jerry"),
    ("1 < 2 > 0", "1 < 2 > 0"),
    # Text that itself holds a reference: an HTML reader shows "a < b", so must a text one
    # (this was escaped twice: "a &amp;lt; b" in the XML).
    ("a &lt; b", "a < b"),
    ("&lt;img src=x onerror=alert(1)&gt;", ""),
    ("&amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt;", "bold"),
]


def _hostile_entries() -> list[Entry]:
    base = ENTRIES[0]
    return [
        attrs.evolve(base, id=f"urn:h:{i}", title=text, author=text)
        for i, (text, _) in enumerate(HOSTILE_TEXT)
    ]


def as_html_page(text: str) -> list[str]:
    """Tier A violations of ``text`` put into a page as an HTML-rendering reader puts a title.

    (A whole page, not fragment mode: its raw ``-->`` rule is about fragments that could end
    up in a comment, and ``-->`` in a title's text is only text.)
    """
    page = f"<!DOCTYPE html><html><head><title>t</title></head><body><h2>{text}</h2></body></html>"
    return tier_a_violations(page, fragment=False)


def reads_as_text(text: str) -> bool:
    """Whether an HTML reader shows ``text`` as a text reader does: no element, no reference."""
    return html_to_text(text) == " ".join(text.split()) and as_html_page(text) == []


def test_rss20_title_and_creator_are_plain_text() -> None:
    feeds = {A_URL: FeedView(A_URL, "<b>Feed</b> &amp; co", None)}
    root = ET.fromstring(render_rss20(CONFIG, _hostile_entries(), feeds, NOW))
    items = root.findall("channel/item")
    for item, (stored, expected) in zip(items, HOSTILE_TEXT, strict=True):
        title, creator = item.findtext("title"), item.findtext(f"{DC}creator")
        source = item.findtext("source")
        assert title == (f"Feed & co: {expected}" if expected else "Feed & co"), stored
        assert creator == (expected or "Feed & co"), stored
        assert source == "Feed & co"
        for text in (title, creator, source):
            assert text is not None and reads_as_text(text), (stored, text)
    # A reader taking the titles as HTML (feedparser does, as planet's parser does) gets
    # the same text back.
    parsed = feedparser.parse(render_rss20(CONFIG, _hostile_entries(), feeds, NOW))
    assert [e.title for e in parsed.entries] == [item.findtext("title") for item in items]


def test_rss20_text_of_every_xss_payload_reads_as_text() -> None:
    payloads = [p["payload"] for p in _xss_payloads()]
    entries = [
        attrs.evolve(ENTRIES[0], id=f"urn:x:{i}", title=p, author=p) for i, p in enumerate(payloads)
    ]
    feeds = {A_URL: FeedView(A_URL, payloads[0], None)}
    root = ET.fromstring(render_rss20(CONFIG, entries, feeds, NOW))
    for item, payload in zip(root.findall("channel/item"), payloads, strict=True):
        for text in (item.findtext("title"), item.findtext(f"{DC}creator")):
            assert text is not None and as_html_page(text) == [], (payload, text)
            assert reads_as_text(text), (payload, text)


def _xss_payloads() -> list[dict[str, Any]]:
    if not XSS_PAYLOADS.exists():
        pytest.skip(f"XSS corpus not found at {XSS_PAYLOADS}")
    return json.loads(XSS_PAYLOADS.read_text())


def test_atom_and_json_feed_titles_are_text_consistently() -> None:
    """Atom says type="text" for every title (feed, entry, source) and carries the stored
    text as it is; JSON Feed's ``title`` is plain text by its spec: the same text."""
    entries = _hostile_entries()
    feeds = {A_URL: FeedView(A_URL, "<b>Feed</b>", None)}
    root = ET.fromstring(render_atom(CONFIG, entries, feeds, NOW))
    titles = root.findall(f".//{ATOM}title")
    assert titles and {t.get("type") for t in titles} == {"text"}
    shown = [e.findtext(f"{ATOM}title") for e in root.findall(f"{ATOM}entry")]
    assert shown == [text for text, _ in HOSTILE_TEXT]
    names = [e.findtext(f"{ATOM}author/{ATOM}name") for e in root.findall(f"{ATOM}entry")]
    assert names == [text for text, _ in HOSTILE_TEXT]
    doc = json.loads(render_json_feed(CONFIG, entries, feeds, NOW))
    assert [i["title"] for i in doc["items"]] == [text for text, _ in HOSTILE_TEXT]
    assert [i["authors"][0]["name"] for i in doc["items"]] == [t for t, _ in HOSTILE_TEXT]


def _odd_entries() -> list[Entry]:
    """Entries as a snapshot of another version might hold them: wrong types everywhere."""
    naive = datetime(2026, 6, 20, 8, 0)
    return [
        Entry(
            id=5,  # type: ignore[arg-type]
            feed_url=A_URL,
            title=None,  # type: ignore[arg-type]
            link=7,  # type: ignore[arg-type]
            author=None,  # type: ignore[arg-type]
            content=None,  # type: ignore[arg-type]
            published=naive,
            updated=None,  # type: ignore[arg-type]
            first_seen=naive,
        ),
        Entry(
            id=None,  # type: ignore[arg-type]
            feed_url=A_URL,
            title=3.5,  # type: ignore[arg-type]
            link="",
            author=["x"],  # type: ignore[arg-type]
            content=9,  # type: ignore[arg-type]
            published=None,  # type: ignore[arg-type]
            updated="yesterday",  # type: ignore[arg-type]
            first_seen=NOW,
        ),
    ]


def test_entries_of_the_wrong_type_never_fail_a_render() -> None:
    entries = _odd_entries()
    atom_root = ET.fromstring(render_atom(CONFIG, entries, FEEDS, NOW, page=1, has_next=True))
    atom_entries = atom_root.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in atom_entries] == [
        "Alpha & <Omega> Blog",
        "3.5",
    ]
    ids = [e.findtext(f"{ATOM}id") or "" for e in atom_entries]
    assert all(i.startswith("urn:planet:") for i in ids) and len(set(ids)) == 2
    assert [e.findtext(f"{ATOM}published") for e in atom_entries] == [
        "2026-06-20T08:00:00Z",  # naive: taken as UTC
        iso_utc(NOW),  # none: first seen
    ]
    assert not feedparser.parse(render_atom(CONFIG, entries, FEEDS, NOW)).bozo
    rss = ET.fromstring(render_rss20(CONFIG, entries, FEEDS, NOW))
    assert [i.findtext("title") for i in rss.findall("channel/item")] == [
        "Alpha & Blog",
        "Alpha & Blog: 3.5",
    ]
    assert [i.find("link") for i in rss.findall("channel/item")] == [None, None]
    doc = json.loads(render_json_feed(CONFIG, entries, FEEDS, NOW))
    assert check_json_feed(doc) == []
    assert [i.get("title") for i in doc["items"]] == [None, "3.5"]
    assert [i["content_html"] for i in doc["items"]] == ["", "9"]
    view = PageView(
        items=tuple(RiverItem(e) for e in entries), page=1, has_next=False, updated=None
    )
    html = render_river(CONFIG, view, FEEDS, NOW).decode()
    assert "None" not in html and "2026-06-20T08:00:00Z" in html
