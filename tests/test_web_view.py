"""The web view people want: dedupe, pages, per-feed rivers, HTTP caching and headers."""

from __future__ import annotations

import gzip
from email.utils import format_datetime

from feeds import Item, at, atom
from test_web import NOW, Harness, entry_titles
from twisted.trial.unittest import SynchronousTestCase

from planet.store import normalize_link

GLYPH = Item(
    "Announcing Twisted 26.10",
    "https://blog.glyph.im/2026/06/twisted.html",
    at(2026, 6, 23, 20, 6),
    "<p>Twisted!</p>",
    "Glyph",
)
PLANETS = """
[http://c.example/feed]
name = Planet Python
"""


def seed(dedupe: bool) -> Harness:
    """The seed page's situation: the same Glyph post in Planet Twisted and Planet Python."""
    h = Harness(extra=PLANETS + ("" if dedupe else ""))
    h.config = h.config.__class__(**{**_fields(h.config), "dedupe": dedupe})
    h.web.config = h.config
    twisted_copy = GLYPH
    python_copy = Item(
        GLYPH.title,
        "HTTPS://Blog.Glyph.IM:443/2026/06/twisted.html/?utm_source=planet#comments",
        GLYPH.when,
        GLYPH.content,
        "Glyph",
    )
    h.add(
        "http://a.example/feed", atom("Planet Twisted", "http://twisted.example/", [twisted_copy])
    )
    h.clock.advance(60)
    h.add(
        "http://c.example/feed",
        atom(
            "Planet Python",
            "http://python.example/",
            [
                python_copy,
                Item("Other post", "http://python.example/other", at(2026, 6, 22)),
            ],
        ),
    )
    return h


def _fields(config: object) -> dict[str, object]:
    from attrs import asdict

    return asdict(config, recurse=False)  # type: ignore[arg-type]


class DedupeTests(SynchronousTestCase):
    def test_normalize_link(self) -> None:
        same = [
            "https://blog.example/post/",
            "HTTPS://Blog.Example:443/post",
            "https://blog.example/post#comments",
            "https://blog.example/post?utm_source=x&utm_medium=rss",
        ]
        self.assertEqual({normalize_link(u) for u in same}, {"https://blog.example/post"})
        self.assertNotEqual(
            normalize_link("https://b.example/p?id=1"), normalize_link("https://b.example/p?id=2")
        )
        self.assertNotEqual(
            normalize_link("http://b.example:8080/p"), normalize_link("http://b.example/p")
        )

    def test_same_post_in_two_feeds_is_shown_once_with_also_in(self) -> None:
        h = seed(dedupe=True)
        _, body = h.get("/")
        titles = entry_titles(body)
        self.assertEqual(
            titles, ["Alpha Blog: Announcing Twisted 26.10", "Planet Python: Other post"]
        )
        self.assertRegex(
            body.decode(),
            r'<p class="also-in">Also in: <a href="http://python.example/">Planet Python</a></p>',
        )

    def test_dedupe_false_shows_every_copy(self) -> None:
        h = seed(dedupe=False)
        titles = entry_titles(h.get("/")[1])
        self.assertEqual(titles.count("Alpha Blog: Announcing Twisted 26.10"), 1)
        self.assertEqual(titles.count("Planet Python: Announcing Twisted 26.10"), 1)
        self.assertNotIn(b"also-in", h.get("/")[1])

    def test_copy_seen_first_is_shown(self) -> None:
        h = seed(dedupe=True)
        (item,) = [i for i in h.store.river_view().items(True) if i.also_in]
        self.assertEqual(item.entry.feed_url, "http://a.example/feed")
        self.assertEqual(item.also_in, ("http://c.example/feed",))

    def test_per_feed_page_shows_hidden_copy(self) -> None:
        h = seed(dedupe=True)
        _, body = h.get("/feeds/planet-python")
        self.assertEqual(
            entry_titles(body),
            ["Planet Python: Announcing Twisted 26.10", "Planet Python: Other post"],
        )


class PageTests(SynchronousTestCase):
    def make(self, per_page: int, extra: str = "") -> Harness:
        h = Harness(per_page=per_page, extra=extra)
        h.add(
            "http://a.example/feed",
            atom(
                "A",
                "http://a.example/",
                [Item(f"A{n}", f"http://a.example/{n}", at(2026, 6, 1 + n, 12)) for n in range(10)],
            ),
        )
        h.add(
            "http://b.example/feed",
            atom(
                "B",
                "http://b.example/",
                [Item(f"B{n}", f"http://b.example/{n}", at(2026, 6, 1 + n, 8)) for n in range(10)],
            ),
        )
        return h

    def test_page_two_starts_where_page_one_ends(self) -> None:
        h = self.make(per_page=7)
        pages = [entry_titles(h.get(f"/?page={n}")[1]) for n in (1, 2, 3)]
        self.assertEqual([len(p) for p in pages], [7, 7, 6])
        everything = [t for p in pages for t in p]
        self.assertEqual(len(set(everything)), 20)
        self.assertEqual(everything[:3], ["Alpha Blog: A9", "B: B9", "Alpha Blog: A8"])
        self.assertEqual(h.get("/?page=4")[0].code, 404)

    def test_per_feed_page_shows_only_that_feed(self) -> None:
        h = self.make(per_page=60)
        titles = entry_titles(h.get("/feeds/b")[1])
        self.assertEqual(len(titles), 10)
        self.assertTrue(all(t.startswith("B: ") for t in titles))
        self.assertEqual(h.get("/feeds/no-such-feed")[0].code, 404)
        self.assertIn(b'href="/feeds/alpha-blog"', h.get("/")[1])

    def test_per_feed_page_pages(self) -> None:
        h = self.make(per_page=4)
        first = entry_titles(h.get("/feeds/b")[1])
        second = entry_titles(h.get("/feeds/b?page=2")[1])
        self.assertEqual(first + second, [f"B: B{n}" for n in range(9, 1, -1)])
        self.assertIn(b'href="/feeds/b?page=2"', h.get("/feeds/b")[1])

    def test_days_per_page(self) -> None:
        h = self.make(per_page=60, extra="")
        h.config = h.config.__class__(**{**_fields(h.config), "days_per_page": 3})
        h.web.config = h.config
        first = entry_titles(h.get("/")[1])
        self.assertEqual(
            first, ["Alpha Blog: A9", "B: B9", "Alpha Blog: A8", "B: B8", "Alpha Blog: A7", "B: B7"]
        )
        self.assertEqual(entry_titles(h.get("/?page=2")[1])[0], "Alpha Blog: A6")


class HTTPTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness()
        self.h.add("http://a.example/feed", atom("A", "http://a.example/", [GLYPH]))

    def test_every_response_has_validators_and_security_headers(self) -> None:
        for path in (
            "/",
            "/atom.xml",
            "/rss20.xml",
            "/opml.xml",
            "/feed.json",
            "/feeds",
            "/feeds.json",
            "/health",
            "/metrics",
            "/style.css",
            "/nope",
            "/feeds/alpha-blog",
        ):
            response, _ = self.h.get(path)
            headers = response.headers
            for name in (
                "etag",
                "last-modified",
                "content-type",
                "cache-control",
                "content-security-policy",
                "x-content-type-options",
                "referrer-policy",
            ):
                self.assertTrue(headers.hasHeader(name), f"{path} lacks {name}")
            self.assertIn("charset=utf-8", headers.getRawHeaders("content-type")[0], path)
            csp = headers.getRawHeaders("content-security-policy")[0]
            self.assertIn("default-src 'none'", csp)
            self.assertNotIn("script-src", csp)
            self.assertEqual(headers.getRawHeaders("x-content-type-options"), ["nosniff"])

    def test_cache_control_max_age(self) -> None:
        response, _ = self.h.get("/")
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["public, max-age=300"])

    def test_if_none_match_and_if_modified_since(self) -> None:
        response, body = self.h.get("/")
        etag = response.headers.getRawHeaders("etag")[0]
        modified = response.headers.getRawHeaders("last-modified")[0]
        self.assertEqual(self.h.get("/", {"If-None-Match": etag})[0].code, 304)
        self.assertEqual(self.h.get("/", {"If-Modified-Since": modified})[0].code, 304)
        earlier = format_datetime(NOW.replace(year=2020), usegmt=True)
        self.assertEqual(self.h.get("/", {"If-Modified-Since": earlier})[0].code, 200)
        # If-None-Match wins over If-Modified-Since (RFC 9110).
        stale = self.h.get("/", {"If-None-Match": 'W/"other"', "If-Modified-Since": modified})
        self.assertEqual(stale[0].code, 200)
        self.assertEqual(stale[1], body)

    def test_gzip_when_asked_compressed_once(self) -> None:
        _, plain = self.h.raw_get("/", {})
        for _ in range(100):
            response, zipped = self.h.raw_get("/", {b"Accept-Encoding": [b"gzip, deflate"]})
        self.assertEqual(response.headers.getRawHeaders("content-encoding"), ["gzip"])
        self.assertEqual(response.headers.getRawHeaders("vary"), ["Accept-Encoding"])
        self.assertEqual(gzip.decompress(zipped), plain)
        self.assertEqual(self.h.web.renders, 1)
        plain_etag = self.h.raw_get("/", {})[0].headers.getRawHeaders("etag")[0]
        self.assertNotEqual(response.headers.getRawHeaders("etag")[0], plain_etag)

    def test_head(self) -> None:
        d = self.h.stub.head("http://planet.example/")
        self.h.stub.flush()
        out: list[object] = []
        d.addBoth(out.append)
        response = out[0]
        self.assertEqual(response.code, 200)  # type: ignore[attr-defined]
        self.assertTrue(response.headers.hasHeader("etag"))  # type: ignore[attr-defined]

    def test_render_reused_until_the_store_changes(self) -> None:
        for _ in range(100):
            self.h.get("/atom.xml")
        self.assertEqual(self.h.web.renders, 1)
        self.h.add("http://b.example/feed", atom("B", "http://b.example/", []))
        self.h.get("/atom.xml")
        self.assertEqual(self.h.web.renders, 2)

    def test_404_is_a_page_and_not_conditional(self) -> None:
        response, body = self.h.get("/nope", {"If-None-Match": "*"})
        self.assertEqual(response.code, 404)
        self.assertIn(b"Page not found", body)

    def test_head_links_every_format(self) -> None:
        _, body = self.h.get("/")
        head = body.split(b"</head>")[0]
        for href in (b"/atom.xml", b"/rss20.xml", b"/opml.xml", b"/feed.json"):
            self.assertIn(b'href="' + href + b'"', head)


class FormatsMatchRiverTests(SynchronousTestCase):
    def test_every_format_carries_the_river(self) -> None:
        import json
        from xml.etree import ElementTree as ET

        import feedparser

        h = seed(dedupe=True)
        river = [t.split(": ", 1)[1] for t in entry_titles(h.get("/")[1])]
        atom_doc = feedparser.parse(h.get("/atom.xml")[1])
        rss_doc = feedparser.parse(h.get("/rss20.xml")[1])
        json_doc = json.loads(h.get("/feed.json")[1])
        self.assertFalse(atom_doc.bozo or rss_doc.bozo)
        self.assertEqual(rss_doc.version, "rss20")
        self.assertEqual([e.title for e in atom_doc.entries], river)
        self.assertEqual([e.title.split(": ", 1)[1] for e in rss_doc.entries], river)
        self.assertEqual([i["title"] for i in json_doc["items"]], river)
        self.assertEqual(json_doc["version"], "https://jsonfeed.org/version/1.1")
        opml = ET.fromstring(h.get("/opml.xml")[1])
        self.assertEqual(
            sorted(o.get("xmlUrl") for o in opml.iter("outline")),
            ["http://a.example/feed", "http://b.example/feed", "http://c.example/feed"],
        )

    def test_atom_pages_follow_the_river_pages(self) -> None:
        import feedparser

        h = Harness(per_page=2)
        h.add(
            "http://a.example/feed",
            atom(
                "A",
                "http://a.example/",
                [Item(f"A{n}", f"http://a.example/{n}", at(2026, 6, 1 + n, 12)) for n in range(5)],
            ),
        )
        first = feedparser.parse(h.get("/atom.xml")[1])
        nxt = [link.href for link in first.feed.links if link.rel == "next"]
        self.assertEqual(nxt, ["http://planet.example/atom.xml?page=2"])
        second = feedparser.parse(h.get("/atom.xml?page=2")[1])
        self.assertEqual(
            [e.title for e in first.entries + second.entries], ["A4", "A3", "A2", "A1"]
        )
        self.assertEqual(h.get("/atom.xml?page=9")[0].code, 404)
