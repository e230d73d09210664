"""Differential tests for planet.xmlfeed: wherever the ElementTree reader accepts a document,
``parse_feed`` gives exactly what the feedparser path gives."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import feeds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planet.parse import _repair_charrefs, parse_feed
from planet.xmlfeed import read_feed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from feedgen import KINDS, make_feed  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CORPUS_DIRS = ("feedparser/wellformed", "feedparser/illformed", "venus")
CONTENT_TYPES = (None, "application/rss+xml", "text/xml", "application/xml; charset=utf-8")
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


def accepts(body: bytes, url: str, content_type: str | None) -> bool:
    return read_feed(_repair_charrefs(body), url, content_type) is not None


def assert_same(body: bytes, url: str, content_type: str | None, where: object = "") -> None:
    fast = parse_feed(body, url, NOW, content_type, fast=True)
    slow = parse_feed(body, url, NOW, content_type, fast=False)
    assert fast == slow, (where, content_type)


def corpus_files() -> list[Path]:
    return sorted(
        path
        for folder in CORPUS_DIRS
        if (CORPUS / folder).is_dir()
        for path in (CORPUS / folder).rglob("*")
        if path.is_file()
    )


def test_corpus_agrees_wherever_accepted() -> None:
    files = corpus_files()
    if not files:
        pytest.skip(f"feed corpus not found at {CORPUS} (expected ../shared next to the repo)")
    accepted = 0
    for path in files:
        body = path.read_bytes()
        url = "http://example.org/corpus/" + path.name
        for content_type in CONTENT_TYPES:
            if accepts(body, url, content_type):
                accepted += 1
                assert_same(body, url, content_type, path)
    # Reported by -rA / -s; the fast path must carry a real share of plain feeds.
    print(f"fast path accepted {accepted} of {len(files) * len(CONTENT_TYPES)} (file, type)")
    assert accepted >= len(files) // 4


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(4))
def test_feedgen_feeds_are_accepted_and_agree(kind: str, seed: int) -> None:
    body = make_feed(kind, 20, seed)
    url = f"https://blog{seed}.example.org/feed/{kind}.xml"
    for content_type in (*CONTENT_TYPES, f"application/{kind}+xml; charset=utf-8"):
        if content_type == "text/xml":
            # text/xml without a charset is us-ascii by RFC 3023: feedparser re-guesses.
            assert not accepts(body, url, content_type)
            continue
        assert accepts(body, url, content_type), content_type
        assert_same(body, url, content_type)


ITEMS = [
    feeds.Item("Plain title", "https://example.org/1", feeds.at(2026, 1, 2)),
    feeds.Item(
        "Café &amp; <b>bold</b> — ok",
        "/relative/2?a=1&b=2",
        feeds.at(2025, 12, 31, 23, 59),
        content="<p>Hi <a href='/x'>there</a> &amp; &lt;3 — é</p><script>x()</script>",
        author="Zoë <zoe@example.org>",
        id="tag:example.org,2026:2",
    ),
    feeds.Item("  spaced  ", "https://example.org/3", feeds.at(2020, 2, 29), content="", author=""),
]


@pytest.mark.parametrize("build", [feeds.atom, feeds.rss2, feeds.rss1])
def test_tests_feeds_are_accepted_and_agree(build: object) -> None:
    body = build("Site & title", "https://example.org/", ITEMS)  # type: ignore[operator]
    url = "https://example.org/feed.xml"
    for content_type in CONTENT_TYPES:
        if content_type != "text/xml":
            assert accepts(body, url, content_type)
        assert_same(body, url, content_type)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "b">]><rss version="2.0"><channel>'
        b"<title>&a;</title></channel></rss>",
        b'<rss version="2.0"><channel><item><title>a</title><title>b</title></item>'
        b"</channel></rss>",
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="xhtml">'
        b'<div xmlns="http://www.w3.org/1999/xhtml">x</div></content></entry></feed>',
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content src="/x"/></entry></feed>',
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry xml:base="/a/"><id>x</id>'
        b"</entry></feed>",
        b'<rss version="2.0"><channel><item><x:y xmlns:x="urn:x">1</x:y></item></channel></rss>',
        b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel/></rss>',
        b"<rss version='2.0'><channel><title>broken</channel></rss>",
        b"<html><body>not a feed</body></html>",
    ],
)
def test_declines(body: bytes) -> None:
    assert not accepts(body, "https://example.org/f", "application/xml; charset=utf-8")
    assert_same(body, "https://example.org/f", "application/xml; charset=utf-8")


# --- generated documents ------------------------------------------------------------

# Letters feedparser treats specially: markup and entity characters, non-ASCII, latin-1
# read as utf-8 ("Ã©"), C1 controls it maps to windows-1252, and whitespace it strips.
TEXT = st.text(
    alphabet=st.sampled_from(
        list("ab <>&;/#=\"' \t\n") + ["é", "Ã", "©", "\x85", "\x92", "—", "日"]
    ),
    max_size=24,
)
DATES = st.sampled_from(
    [
        "Mon, 02 Jan 2006 15:04:05 GMT",
        "Tue, 3 Feb 2015 01:02:03 +0100",
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05.123+05:30",
        "2026-01-02",
        "not a date",
        "",
    ]
)
LINKS = st.sampled_from(
    ["https://example.org/a", "/b?x=1&y=2", "../c", "#d", "", "http://e.example/ü", "mailto:x"]
)
HTML = st.sampled_from(
    [
        "<p>Hello &amp; <b>world</b></p>",
        "<p>a &lt; b &mdash; c</p><img src='/i.png'>",
        "plain text only",
        "<script>alert(1)</script><p onclick='x'>y</p>",
        "",
    ]
)


def _content(html: str, cdata: bool) -> str:
    if cdata and "]]>" not in html:
        return f"<![CDATA[{html}]]>"
    return escape(html)


@st.composite
def rss_documents(draw: st.DrawFn) -> bytes:
    items = []
    for _ in range(draw(st.integers(0, 3))):
        parts = [f"<title>{escape(draw(TEXT))}</title>"]
        if draw(st.booleans()):
            parts.append(f"<link>{escape(draw(LINKS))}</link>")
        guid = draw(st.sampled_from([None, "true", "false", ""]))
        if guid is not None:
            attr = f" isPermaLink={quoteattr(guid)}" if guid else ""
            parts.append(f"<guid{attr}>{escape(draw(LINKS))}</guid>")
        if draw(st.booleans()):
            parts.append(f"<pubDate>{escape(draw(DATES))}</pubDate>")
        if draw(st.booleans()):
            parts.append(f"<dc:date>{escape(draw(DATES))}</dc:date>")
        if draw(st.booleans()):
            who = draw(st.sampled_from(["a@b.example (Ann)", "Bob", "c@d.example", ""]))
            tag = draw(st.sampled_from(["author", "dc:creator"]))
            parts.append(f"<{tag}>{escape(who + draw(TEXT))}</{tag}>")
        if draw(st.booleans()):
            parts.append(f"<description>{_content(draw(HTML), draw(st.booleans()))}</description>")
        if draw(st.booleans()):
            html = draw(HTML) + escape(draw(TEXT))
            parts.append(
                f"<content:encoded>{_content(html, draw(st.booleans()))}</content:encoded>"
            )
        parts = draw(st.permutations(parts))
        items.append("<item>" + "".join(parts) + "</item>")
    head = [f"<title>{escape(draw(TEXT))}</title>", f"<link>{escape(draw(LINKS))}</link>"]
    if draw(st.booleans()):
        head.append(f"<ttl>{draw(st.sampled_from(['60', ' 5 ', 'x', '']))}</ttl>")
    if draw(st.booleans()):
        period = draw(st.sampled_from(["daily", "hourly", "weekly", "bogus"]))
        head.append(f"<sy:updatePeriod>{period}</sy:updatePeriod>")
        head.append(f"<sy:updateFrequency>{draw(st.integers(0, 4))}</sy:updateFrequency>")
    doc = (
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel>'
        + "".join(head + items)
        + "</channel></rss>"
    )
    return _declare(draw, doc)


@st.composite
def atom_documents(draw: st.DrawFn) -> bytes:
    entries = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["", ' type="text"', ' type="html"']))
        parts = [f"<title{kind}>{escape(draw(TEXT))}</title>"]
        for _ in range(draw(st.integers(0, 2))):
            rel = draw(st.sampled_from(["", ' rel="alternate"', ' rel="self"', ' rel="enclosure"']))
            mime = draw(st.sampled_from(["", ' type="text/html"', ' type="application/pdf"']))
            parts.append(f"<link{rel}{mime} href={quoteattr(draw(LINKS))}/>")
        if draw(st.booleans()):
            parts.append(f"<id>{escape(draw(LINKS))}</id>")
        for tag in ("published", "updated"):
            if draw(st.booleans()):
                parts.append(f"<{tag}>{escape(draw(DATES))}</{tag}>")
        if draw(st.booleans()):
            name = f"<name>{escape(draw(TEXT))}</name>" if draw(st.booleans()) else ""
            email = "<email>a@b.example</email>" if draw(st.booleans()) else ""
            parts.append(f"<author>{name}{email}</author>")
        for tag in ("summary", "content"):
            if draw(st.booleans()):
                kind = draw(st.sampled_from(["", ' type="text"', ' type="html"']))
                parts.append(f"<{tag}{kind}>{_content(draw(HTML), draw(st.booleans()))}</{tag}>")
        parts = draw(st.permutations(parts))
        entries.append("<entry>" + "".join(parts) + "</entry>")
    base = draw(st.sampled_from(["", ' xml:base="https://base.example/blog/"', ' xml:base="/x/"']))
    doc = (
        f'<feed xmlns="http://www.w3.org/2005/Atom"{base}>'
        f"<title>{escape(draw(TEXT))}</title>"
        f"<link href={quoteattr(draw(LINKS))}/><id>{escape(draw(LINKS))}</id>"
        + "".join(entries)
        + "</feed>"
    )
    return _declare(draw, doc)


def _declare(draw: st.DrawFn, doc: str) -> bytes:
    declaration = draw(
        st.sampled_from(["", '<?xml version="1.0"?>\n', '<?xml version="1.0" encoding="utf-8"?>'])
    )
    return (declaration + doc).encode("utf-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(rss_documents(), atom_documents()),
    content_type=st.sampled_from(CONTENT_TYPES),
    url=st.sampled_from(["https://example.org/feed/", "http://h.example/a/b.xml"]),
)
def test_generated_documents_agree(body: bytes, content_type: str | None, url: str) -> None:
    assert_same(body, url, content_type)
