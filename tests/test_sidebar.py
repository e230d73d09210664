"""The river page's sidebar: every subscription up to SIDEBAR_ALL_UP_TO, else those on the
page shown plus a line linking the complete list (issue 15)."""

from __future__ import annotations

import html5lib
from feeds import atom
from test_web import ALPHA, BETA, NOW, Harness
from twisted.trial.unittest import SynchronousTestCase

from planet.model import Entry, FetchResult
from planet.render import SIDEBAR_ALL_UP_TO, FeedView, sidebar
from planet.river import RiverItem
from planet.testing import record_fetch

ALPHA_URL = "http://a.example/feed"
BETA_URL = "http://b.example/feed"
MORE = "…and {} more: all {} subscriptions (OPML)"
LINKS = ["/feeds", "/opml.xml"]


def views(n: int, failing: frozenset[int] = frozenset()) -> dict[str, FeedView]:
    """``n`` subscriptions ``http://f<i>.example/feed``, named ``Feed <i>`` in config order."""
    return {
        f"http://f{i}.example/feed": FeedView(
            f"http://f{i}.example/feed", f"Feed {i}", None, failing=i in failing, slug=f"feed-{i}"
        )
        for i in range(n)
    }


def item(feed: str, *also_in: str) -> RiverItem:
    entry = Entry(f"urn:{feed}", feed, "t", None, "", "", NOW, NOW, NOW)
    return RiverItem(entry, also_in)


class SidebarTests(SynchronousTestCase):
    def test_all_listed_up_to_the_limit_and_only_the_page_s_above(self) -> None:
        self.assertEqual(SIDEBAR_ALL_UP_TO, 1000)
        on_page = [item("http://f5.example/feed")]
        at_limit = sidebar(views(1000), on_page)
        self.assertEqual(len(at_limit.listed), 1000)
        self.assertEqual((at_limit.total, at_limit.more), (1000, 0))
        over = sidebar(views(1001), on_page)
        self.assertEqual([f.url for f in over.listed], ["http://f5.example/feed"])
        self.assertEqual((over.total, over.more), (1001, 1000))

    def test_over_the_limit_lists_the_feeds_of_the_page_s_entries_by_name(self) -> None:
        feeds = views(2000)
        # Two feeds named alike keep their config order, whatever the page's order.
        feeds["http://f7.example/feed"] = FeedView("http://f7.example/feed", "feed 1", None)
        on_page = [
            item("http://f30.example/feed"),
            item("http://f7.example/feed", "http://f1999.example/feed"),
            item("http://f1.example/feed"),
            item("http://f30.example/feed"),
            # Not a subscription (any more): not listed, not counted.
            item("http://gone.example/feed", "http://f2.example/feed"),
        ]
        shown = sidebar(feeds, on_page)
        self.assertEqual(
            [f.url for f in shown.listed],
            [
                "http://f1.example/feed",
                "http://f7.example/feed",
                "http://f1999.example/feed",
                "http://f2.example/feed",
                "http://f30.example/feed",
            ],
        )
        self.assertEqual((shown.total, shown.more), (2000, 1995))

    def test_failing_counts_every_subscription(self) -> None:
        feeds = views(3000, failing=frozenset({3, 1500, 2999}))
        shown = sidebar(feeds, [item("http://f3.example/feed")])
        self.assertEqual(len(shown.listed), 1)
        self.assertEqual(shown.failing, 3)
        self.assertEqual(sidebar(views(10, failing=frozenset({1, 2})), []).failing, 2)


def subscriptions(n: int) -> str:
    """Config sections for ``n`` more subscriptions (the harness has two)."""
    return "".join(f"\n[http://c{i}.example/feed]\nname = Extra {i:04}\n" for i in range(n))


def sidebar_feeds(html: bytes) -> list[str]:
    """The feed URLs the sidebar lists, in order."""
    doc = html5lib.parse(html, namespaceHTMLElements=False)
    (aside,) = [a for a in doc.iter("aside") if "sidebar" in (a.get("class") or "")]
    return [a.get("href") for a in aside.iter("a") if a.get("class") == "feed-link"]


def more_line(html: bytes) -> tuple[str, list[str]] | None:
    """The text and link targets of the sidebar's "...and N more" line, if there is one."""
    doc = html5lib.parse(html, namespaceHTMLElements=False)
    lines = [p for p in doc.iter("p") if p.get("class") == "more-feeds"]
    if not lines:
        return None
    (line,) = lines
    return "".join(line.itertext()), [a.get("href") for a in line.iter("a")]


class SidebarPageTests(SynchronousTestCase):
    def planet(self, n: int, per_page: int = 60) -> Harness:
        h = Harness(per_page=per_page, extra=subscriptions(n - 2))
        h.add(ALPHA_URL, atom("A", "http://a.example/", ALPHA))
        h.add(BETA_URL, atom("Beta Title", "http://b.example/", BETA))
        self.assertEqual(len(h.config.subscriptions), n)
        return h

    def test_a_planet_of_1000_lists_every_subscription(self) -> None:
        h = self.planet(1000)
        _, body = h.get("/")
        listed = sidebar_feeds(body)
        self.assertEqual(len(listed), 1000)
        self.assertEqual(listed[:2], [ALPHA_URL, BETA_URL])
        self.assertEqual(listed[2], "http://c0.example/feed")
        self.assertIsNone(more_line(body))
        self.assertNotIn(b"more:", body)
        # One more subscription and the list is the page's feeds only.
        h = self.planet(1001)
        _, body = h.get("/")
        self.assertEqual(sidebar_feeds(body), [ALPHA_URL, BETA_URL])

    def test_a_larger_planet_lists_the_page_s_feeds_and_links_the_rest(self) -> None:
        h = self.planet(1001)
        _, body = h.get("/")
        self.assertEqual(sidebar_feeds(body), [ALPHA_URL, BETA_URL])
        self.assertIn(
            '…and 999 more: <a href="/feeds">all 1,001 subscriptions</a>'
            ' (<a href="/opml.xml">OPML</a>)',
            body.decode(),
        )
        self.assertEqual(
            more_line(body),
            ("…and 999 more: all 1,001 subscriptions (OPML)", ["/feeds", "/opml.xml"]),
        )
        # The status page and the OPML are still the complete lists.
        _, status = h.get("/feeds")
        for url in (ALPHA_URL, BETA_URL, "http://c0.example/feed", "http://c998.example/feed"):
            self.assertIn(url.encode(), status)
        _, opml = h.get("/opml.xml")
        self.assertEqual(opml.count(b"<outline "), 1001)

    def test_a_feed_s_page_and_later_pages_list_their_own_feeds(self) -> None:
        h = self.planet(1200, per_page=2)
        _, page1 = h.get("/")
        # Newest first: Alpha's evening and morning posts, then Beta's, then Alpha's early.
        self.assertEqual(sidebar_feeds(page1), [ALPHA_URL])
        self.assertEqual(more_line(page1), (MORE.format("1,199", "1,200"), LINKS))
        _, page2 = h.get("/?page=2")
        self.assertEqual(sidebar_feeds(page2), [ALPHA_URL, BETA_URL])
        self.assertEqual(more_line(page2), (MORE.format("1,198", "1,200"), LINKS))
        _, beta = h.get("/feeds/beta-title")
        self.assertEqual(sidebar_feeds(beta), [BETA_URL])
        self.assertEqual(more_line(beta), (MORE.format("1,199", "1,200"), LINKS))

    def test_failing_line_counts_the_feeds_not_listed(self) -> None:
        h = self.planet(1001)
        for url in ("http://c5.example/feed", "http://c700.example/feed", BETA_URL):
            failed = FetchResult(url=url, final_url=url, status=404, error="HTTP 404 Not Found")
            record_fetch(h.store, url, failed, None, NOW)
        _, body = h.get("/")
        self.assertEqual(sidebar_feeds(body), [ALPHA_URL, BETA_URL])
        self.assertIn(b'<a href="/feeds">Feed status</a>: 3 failing', body)
