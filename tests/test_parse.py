"""parse_feed: normalization of RSS 2.0, RSS 1.0, Atom and JSON Feed into Entry values."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from urllib.parse import urlsplit

from attrs import evolve
from feeds import Item, at, atom, rss1, rss2
from twisted.trial.unittest import SynchronousTestCase

from planet.model import Entry, FetchResult
from planet.parse import parse_feed, resanitize_entries
from planet.sanitize import read_more_marker
from planet.store import Store
from planet.testing import record_fetch

NOW = at(2026, 6, 24, 9, 0)
URL = "http://feeds.example/feed"


class FormatTests(SynchronousTestCase):
    items = [
        Item("Newer", "http://blog.example/2", at(2026, 6, 23, 20, 6), "<p>two</p>"),
        Item("Older", "http://blog.example/1", at(2026, 6, 22, 8, 0), "<p>one</p>"),
    ]

    def check(self, body: bytes) -> None:
        parsed = parse_feed(body, URL, NOW)
        self.assertIsNone(parsed.error)
        self.assertEqual(parsed.title, "Blog")
        self.assertEqual(parsed.link, "http://blog.example/")
        self.assertEqual([e.title for e in parsed.entries], ["Newer", "Older"])
        first = parsed.entries[0]
        self.assertEqual(first.link, "http://blog.example/2")
        self.assertEqual(first.author, "Alice")
        self.assertEqual(first.content, "<p>two</p>")
        self.assertEqual(first.published, at(2026, 6, 23, 20, 6))
        self.assertEqual(first.first_seen, NOW)
        self.assertEqual(first.feed_url, URL)
        self.assertTrue(first.dated)

    def test_atom(self) -> None:
        self.check(atom("Blog", "http://blog.example/", self.items))

    def test_rss2(self) -> None:
        self.check(rss2("Blog", "http://blog.example/", self.items))

    def test_rss1(self) -> None:
        self.check(rss1("Blog", "http://blog.example/", self.items))

    def test_json_feed(self) -> None:
        doc = {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "Blog",
            "home_page_url": "http://blog.example/",
            "authors": [{"name": "Alice"}],
            "items": [
                {
                    "id": it.link,
                    "url": it.link,
                    "title": it.title,
                    "content_html": it.content,
                    "date_published": it.when.isoformat(),
                }
                for it in self.items
            ],
        }
        self.check(json.dumps(doc).encode())


class NormalizationTests(SynchronousTestCase):
    def one(self, item: Item, **kw: object) -> object:
        parsed = parse_feed(atom("Blog", "http://blog.example/", [item]), URL, NOW, **kw)
        self.assertIsNone(parsed.error)
        return parsed.entries[0]

    def test_future_date_clamped_to_fetch_time(self) -> None:
        entry = self.one(Item("T", "http://blog.example/x", NOW + timedelta(days=400)))
        self.assertEqual(entry.published, NOW)
        self.assertEqual(entry.updated, NOW)

    def test_no_date_uses_first_seen(self) -> None:
        body = (
            b'<rss version="2.0"><channel><title>B</title><link>http://b.example/</link>'
            b"<item><title>T</title><link>http://b.example/1</link></item></channel></rss>"
        )
        entry = parse_feed(body, URL, NOW).entries[0]
        self.assertEqual(entry.published, NOW)
        self.assertFalse(entry.dated)

    def test_entry_id_fallbacks(self) -> None:
        with_id = self.one(Item("T", "http://blog.example/x", at(2026, 1, 1), id="tag:x,2026:1"))
        self.assertEqual(with_id.id, "tag:x,2026:1")
        body = (
            b'<rss version="2.0"><channel><title>B</title>'
            b"<item><title>T</title><link>http://b.example/1</link></item>"
            b"<item><title>No link</title><description>body</description></item>"
            b"</channel></rss>"
        )
        by_link, by_hash = parse_feed(body, URL, NOW).entries
        self.assertEqual(by_link.id, "http://b.example/1")
        self.assertTrue(by_hash.id.startswith("urn:sha256:"))
        again = parse_feed(body, URL, NOW + timedelta(hours=1)).entries[1]
        self.assertEqual(again.id, by_hash.id, "the hash id must be stable across fetches")

    def test_javascript_link_dropped(self) -> None:
        entry = self.one(Item("T", "javascript:alert(1)", at(2026, 1, 1), id="urn:x:1"))
        self.assertIsNone(entry.link)

    def test_relative_link_and_content_resolved(self) -> None:
        entry = self.one(
            Item("T", "/post/1", at(2026, 1, 1), '<a href="other">o</a><img src="/i.png">')
        )
        self.assertEqual(entry.link, "http://feeds.example/post/1")
        self.assertIn('href="http://feeds.example/other"', entry.content)
        self.assertIn('src="http://feeds.example/i.png"', entry.content)

    def test_content_sanitized(self) -> None:
        entry = self.one(
            Item(
                "T",
                "http://b.example/1",
                at(2026, 1, 1),
                '<p onclick="x()">hi</p><script>x</script>',
            )
        )
        self.assertNotIn("script", entry.content)
        self.assertNotIn("onclick", entry.content)
        self.assertIn("hi", entry.content)

    def test_html_title_becomes_text(self) -> None:
        body = (
            b'<feed xmlns="http://www.w3.org/2005/Atom"><title>B</title>'
            b'<entry><id>urn:x:1</id><title type="html">A &lt;b&gt;bold&lt;/b&gt; move</title>'
            b"<updated>2026-01-01T00:00:00Z</updated></entry></feed>"
        )
        self.assertEqual(parse_feed(body, URL, NOW).entries[0].title, "A bold move")

    def test_max_entries_keeps_newest(self) -> None:
        items = [Item(f"T{i}", f"http://b.example/{i}", at(2026, 1, 1 + i)) for i in range(10)]
        parsed = parse_feed(atom("B", "http://b.example/", items), URL, NOW, max_entries=3)
        self.assertEqual([e.title for e in parsed.entries], ["T9", "T8", "T7"])

    def test_xml_illegal_characters_removed(self) -> None:
        entry = self.one(Item("T\x1bX", "http://b.example/1", at(2026, 1, 1), "<p>a\x1bb</p>"))
        self.assertEqual(entry.title, "TX")
        self.assertNotIn("\x1b", entry.content)


class NotAFeedTests(SynchronousTestCase):
    def test_html_page(self) -> None:
        parsed = parse_feed(b"<!DOCTYPE html><html><body>hi</body></html>", URL, NOW)
        self.assertEqual(parsed.entries, ())
        self.assertIn("HTML page", parsed.error)

    def test_garbage(self) -> None:
        parsed = parse_feed(b"\x00\x01 this is not xml at all", URL, NOW)
        self.assertIsNotNone(parsed.error)

    def test_empty(self) -> None:
        self.assertEqual(parse_feed(b"", URL, NOW).error, "empty response body")

    def test_bad_json(self) -> None:
        self.assertIn("invalid JSON", parse_feed(b"{nope", URL, NOW).error)

    def test_honest_empty_feed(self) -> None:
        parsed = parse_feed(atom("Quiet", "http://q.example/", []), URL, NOW)
        self.assertIsNone(parsed.error)
        self.assertEqual(parsed.entries, ())


class FeedMetadataTests(SynchronousTestCase):
    def test_rss_ttl_and_sy_update_period(self) -> None:
        body = (
            b'<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">'
            b"<channel><title>B</title><ttl>90</ttl><sy:updatePeriod>daily</sy:updatePeriod>"
            b"<sy:updateFrequency>2</sy:updateFrequency></channel></rss>"
        )
        self.assertEqual(parse_feed(body, URL, NOW).refresh_hint, 43200)
        body = b'<rss version="2.0"><channel><title>B</title><ttl>90</ttl></channel></rss>'
        self.assertEqual(parse_feed(body, URL, NOW).refresh_hint, 5400)
        self.assertIsNone(parse_feed(atom("B", "http://b.example/", []), URL, NOW).refresh_hint)

    def test_feed_id(self) -> None:
        self.assertEqual(
            parse_feed(atom("B", "http://b.example/", []), URL, NOW).feed_id, "http://b.example/"
        )

    def test_html_page_alternates_discovered(self) -> None:
        page = (
            b"<!DOCTYPE html><html><head><title>Blog</title>"
            b'<link rel="stylesheet" href="/s.css">'
            b'<link rel="alternate" type="application/atom+xml" href="/feed.atom">'
            b'<link rel="alternate" type="application/rss+xml" href="https://b.example/rss">'
            b'<link rel="alternate" type="application/atom+xml" href="javascript:alert(1)">'
            b"</head><body>hi</body></html>"
        )
        parsed = parse_feed(page, "http://b.example/blog/", NOW)
        self.assertIn("HTML page", parsed.error)
        self.assertEqual(parsed.alternates, ("http://b.example/feed.atom", "https://b.example/rss"))


# Links urlsplit refuses (or whose hostname/port it cannot read), issue 19 item 1: each made
# the store raise "Invalid IPv6 URL" long after the parse, and a snapshot unloadable.
BAD_LINKS = [
    "http://[::1",
    "http://[x]/",
    "http://]/",
    "http://a[b]/",
    "https://[::1/p",
    "http://a:99999/",
    "http://a:port/",
    "//[x]/rel",
]


def assert_splits(url: str | None) -> None:
    if url is not None:
        parts = urlsplit(url)
        assert (parts.hostname, parts.port) is not None


class BadLinkTests(SynchronousTestCase):
    """Every format drops a link urlsplit refuses: the entry keeps no link, the rest stays."""

    def check(self, body: bytes, fast: bool = True) -> None:
        parsed = parse_feed(body, URL, NOW, fast=fast)
        self.assertIsNone(parsed.error)
        self.assertIsNone(parsed.link)
        self.assertEqual(len(parsed.entries), 1)
        entry = parsed.entries[0]
        self.assertIsNone(entry.link, entry)
        self.assertEqual(entry.title, "T")
        self.assertNotIn("href", entry.content)
        self.assertIn("text", entry.content)

    def item(self, link: str) -> Item:
        content = f'<p><a href="{link}">text</a><img src="{link}"></p>'
        return Item("T", link, at(2026, 1, 1), content, id="urn:x:1")

    def test_json_feed_url_and_external_url(self) -> None:
        for link in BAD_LINKS:
            for key in ("url", "external_url"):
                item = {
                    "id": "urn:x:1",
                    key: link,
                    "title": "T",
                    "content_html": f'<p><a href="{link}">text</a></p>',
                }
                doc = {
                    "version": "https://jsonfeed.org/version/1.1",
                    "home_page_url": link,
                    "items": [item],
                }
                with self.subTest(link=link, key=key):
                    self.check(json.dumps(doc).encode())

    def test_atom_rss2_rss1_fast_and_feedparser(self) -> None:
        for link in BAD_LINKS:
            for build in (atom, rss2, rss1):
                body = build("Blog", link, [self.item(link)])
                for fast in (True, False):
                    with self.subTest(link=link, format=build.__name__, fast=fast):
                        self.check(body, fast)

    def test_relative_link_against_a_bracketed_base(self) -> None:
        # xml:base of the document: every relative link resolves to a URL urlsplit refuses.
        body = atom("Blog", "/", [self.item("/post")]).replace(
            b'<feed xmlns="http://www.w3.org/2005/Atom">',
            b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://[x]/">',
        )
        for fast in (True, False):
            parsed = parse_feed(body, URL, NOW, fast=fast)
            for entry in parsed.entries:
                assert_splits(entry.link)
                self.assertNotIn("[x]", entry.content)

    def test_good_bracketed_hosts_are_kept(self) -> None:
        for link in ("http://[::1]/p", "http://[2001:db8::1]:8080/p"):
            parsed = parse_feed(atom("Blog", link, [self.item(link)]), URL, NOW)
            self.assertEqual(parsed.entries[0].link, link)
            self.assertIn(f'href="{link}"', parsed.entries[0].content)

    def test_store_takes_the_entries(self) -> None:
        # What crashed the daemon: the store's dedupe splits every link it is given.
        item = {"id": "urn:x:1", "url": "http://[::1", "title": "T", "content_text": "x"}
        body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": [item]})
        parsed = parse_feed(body.encode(), URL, NOW)
        store = Store(max_entries_per_feed=10)
        result = FetchResult(url=URL, final_url=URL, status=200, body=body.encode())
        self.assertEqual(record_fetch(store, URL, result, parsed, NOW).new, 1)
        self.assertEqual([e.id for e in store.river()], ["urn:x:1"])


def _json_feed(items: list[dict[str, object]]) -> bytes:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items}).encode()


class EntrySizeTests(SynchronousTestCase):
    """max_entry_bytes (issue 19 item 4): content cut, well-formed, with a way to the rest."""

    def test_long_html_content_is_cut_with_a_read_more_link(self) -> None:
        html = "<div><p>" + "word " * 50_000 + "</p><p>the end</p></div>"
        item = {"id": "1", "url": "http://b.example/1", "content_html": html}
        (entry,) = parse_feed(_json_feed([item]), URL, NOW, None, 0, 4096).entries
        self.assertLessEqual(len(entry.content), 4096)
        self.assertTrue(entry.content.startswith("<div><p>word word"))
        self.assertTrue(entry.content.endswith("</p></div>" + read_more_marker(entry.link)))
        self.assertNotIn("the end", entry.content)
        self.assertEqual(resanitize_entries([entry], 4096), [entry])

    def test_without_a_link_the_marker_is_plain(self) -> None:
        item = {"id": "1", "content_text": "line\n" * 10_000}
        (entry,) = parse_feed(_json_feed([item]), URL, NOW, None, 0, 1000).entries
        self.assertIsNone(entry.link)
        self.assertLessEqual(len(entry.content), 1000)
        self.assertTrue(entry.content.startswith("<p>line<br>line<br>"))
        self.assertTrue(entry.content.endswith("<br>line</p><p>[...]</p>"), entry.content[-40:])

    def test_no_limit_and_short_content_are_left_alone(self) -> None:
        html = "<p>" + "word " * 50_000 + "</p>"
        item = {"id": "1", "url": "http://b.example/1", "content_html": html}
        (whole,) = parse_feed(_json_feed([item]), URL, NOW, None, 0, 0).entries
        self.assertEqual(whole.content, html)
        short = parse_feed(
            atom("B", "http://b.example/", FormatTests.items), URL, NOW, None, 0, 100
        )
        self.assertEqual(short.entries[0].content, "<p>two</p>")

    def test_huge_content_is_cut_before_it_is_sanitized(self) -> None:
        # 24 MB of markup for a 64 KB bound: only the first 8 x 64 KB are sanitized.
        html = "<p><b>bold</b> <i>it</i></p>" * 800_000
        item = {"id": "1", "url": "http://b.example/1", "content_html": html}
        started = time.perf_counter()
        (entry,) = parse_feed(_json_feed([item]), URL, NOW, None, 0, 65536).entries
        self.assertLess(time.perf_counter() - started, 15)
        self.assertLessEqual(len(entry.content), 65536)
        self.assertTrue(entry.content.endswith(read_more_marker("http://b.example/1")))
        # Cut before sanitizing, and the rest fits: still marked as cut.
        item["content_html"] = "<p>x</p><script>" + "y" * 600_000 + "</script>"
        (entry,) = parse_feed(_json_feed([item]), URL, NOW, None, 0, 65536).entries
        self.assertEqual(entry.content, "<p>x</p>" + read_more_marker("http://b.example/1"))


class ResanitizeTests(SynchronousTestCase):
    """resanitize_entries: stored entries cleaned under the current policy (issue 19 item 11)."""

    def parsed(self) -> list[Entry]:
        items = [
            Item("T1", "http://b.example/1", at(2026, 1, 1), "<p>It\u2019s <b>one</b></p>"),
            Item("T2", "http://b.example/2", at(2026, 1, 2), "<h1>Big</h1><p>two</p>"),
        ]
        return list(
            parse_feed(atom("B", "http://b.example/", items), URL, NOW, None, 0, 4096).entries
        )

    def test_entries_parsed_under_this_policy_come_back_as_they_are(self) -> None:
        entries = self.parsed()
        self.assertEqual(resanitize_entries(entries, 4096), entries)
        # Headings were demoted once, at parse time: not again.
        self.assertEqual(entries[0].content, "<h4>Big</h4><p>two</p>")

    def test_an_old_entry_is_cleaned_as_a_new_one_would_be(self) -> None:
        old = evolve(
            self.parsed()[0],
            link="http://[::1",
            title=" spaced\n  title ",
            author="A\x1b  B",
            content="<p onclick=x()>" + "<ul>" * 2000 + "deep " * 3000 + "</p>",
        )
        (new,) = resanitize_entries([old], 4096)
        self.assertIsNone(new.link)
        self.assertEqual((new.title, new.author), ("spaced title", "A B"))
        self.assertNotIn("onclick", new.content)
        self.assertLessEqual(len(new.content), 4096)
        self.assertTrue(new.content.endswith(read_more_marker(None)))
        self.assertEqual(resanitize_entries([new], 4096), [new])
        self.assertEqual(
            (new.id, new.published, new.feed_url), (old.id, old.published, old.feed_url)
        )

    def test_a_smaller_bound_cuts_again(self) -> None:
        entries = self.parsed()
        long = evolve(entries[0], content="<p>" + "word " * 1000 + "</p>")
        (cut,) = resanitize_entries([long], 1000)
        self.assertLessEqual(len(cut.content), 1000)
        (shorter,) = resanitize_entries([cut], 500)
        self.assertLessEqual(len(shorter.content), 500)
        self.assertEqual(shorter.content.count("Read more"), 1)
