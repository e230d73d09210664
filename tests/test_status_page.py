"""/feeds and /feeds.json: every subscription's health, failing ones first."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from attrs import evolve
from feeds import Item, at, atom
from test_polite import ORIGINAL_ROW_KEYS as JSON_KEYS
from test_polite import ROW_KEYS as KEYS
from test_web import NOW, Harness, ThreadLike
from twisted.trial.unittest import SynchronousTestCase

from planet import render
from planet.model import FetchResult, ListState
from planet.statuspage import relative, status_context
from planet.testing import record_fetch
from planet.web import STATUS_MAX_AGE

EXTRA = """
[http://c.example/feed]
name = Gone Feed

[http://d.example/feed]
name = Waiting Feed

[http://e.example/feed]
name = Moved Feed

[http://f.example/feed]
name = Never Fetched
"""


class StatusTests(SynchronousTestCase):
    def setUp(self) -> None:
        h = self.h = Harness(extra=EXTRA)
        store = h.store
        h.add(
            "http://a.example/feed",
            atom(
                "A",
                "http://a.example/",
                [
                    Item("One", "http://a.example/1", at(2026, 6, 20, 8)),
                    Item("Two", "http://a.example/2", at(2026, 6, 22, 9)),
                ],
            ),
        )
        store.update_state("http://a.example/feed", next_fetch=NOW + timedelta(minutes=30))
        record_fetch(
            store,
            "http://b.example/feed",
            FetchResult(url="b", final_url="b", status=404, error="HTTP 404 Not Found"),
            None,
            NOW,
        )
        record_fetch(
            store,
            "http://c.example/feed",
            FetchResult(url="c", final_url="c", status=410, error="HTTP 410 Gone"),
            None,
            NOW,
        )
        record_fetch(
            store,
            "http://d.example/feed",
            FetchResult(url="d", final_url="d", status=429, error="HTTP 429 Too Many Requests"),
            None,
            NOW,
        )
        store.update_state("http://d.example/feed", waiting_until=NOW + timedelta(hours=2))
        record_fetch(
            store,
            "http://e.example/feed",
            FetchResult(url="e", final_url="e", status=304),
            None,
            NOW,
        )
        store.update_state("http://e.example/feed", current_url="https://e.example/new")

    def rows(self) -> list[dict[str, object]]:
        response, body = self.h.get("/feeds.json")
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["application/json; charset=utf-8"]
        )
        return json.loads(body)

    def test_json_fields_and_states(self) -> None:
        rows = self.rows()
        self.assertTrue(all(set(r) == KEYS for r in rows), rows)
        by_url = {r["url"]: r for r in rows}
        self.assertEqual(
            by_url["http://a.example/feed"],
            {
                "url": "http://a.example/feed",
                "current_url": None,
                "name": "Alpha Blog",
                "state": "ok",
                "http_status": 200,
                "reason": None,
                "consecutive_errors": 0,
                "last_fetch": "2026-06-24T09:00:00Z",
                "next_fetch": "2026-06-24T09:30:00Z",
                "entries": 2,
                "newest_entry": "2026-06-22T09:00:00Z",
                "inactive": False,
                "websub": "off",
                "websub_hub": None,
                "websub_expires": None,
                "last_push": None,
            },
        )
        failing = by_url["http://b.example/feed"]
        self.assertEqual(
            (
                failing["state"],
                failing["http_status"],
                failing["reason"],
                failing["consecutive_errors"],
            ),
            ("failing", 404, "HTTP 404 Not Found", 1),
        )
        gone = by_url["http://c.example/feed"]
        self.assertEqual(gone["state"], "gone")
        self.assertIn("gone since 24 Jun 2026", gone["reason"])
        self.assertIsNone(gone["next_fetch"])
        waiting = by_url["http://d.example/feed"]
        self.assertEqual(waiting["state"], "waiting")
        self.assertIn("wait until 24 Jun 2026 11:00am GMT", waiting["reason"])
        moved = by_url["http://e.example/feed"]
        self.assertEqual(
            (moved["state"], moved["current_url"]), ("not-modified", "https://e.example/new")
        )
        self.assertIn("moved to https://e.example/new", moved["reason"])
        never = by_url["http://f.example/feed"]
        self.assertEqual(
            (never["state"], never["last_fetch"], never["entries"]), ("waiting", None, 0)
        )

    def test_failing_first(self) -> None:
        states = [r["state"] for r in self.rows()]
        self.assertEqual(states[0], "failing")
        self.assertEqual(states[1], "gone")

    def test_html_table(self) -> None:
        response, body = self.h.get("/feeds")
        self.assertEqual(response.code, 200)
        html = body.decode()
        self.assertLess(html.index("HTTP 404 Not Found"), html.index("Alpha Blog"))
        self.assertIn('<tr class="state-failing">', html)
        self.assertIn('now: <a href="https://e.example/new">', html)
        self.assertIn('href="/feeds.json"', html)

    def test_river_sidebar_links_status_page(self) -> None:
        _, body = self.h.get("/")
        self.assertIn(b'<a href="/feeds">Feed status</a>: 3 failing', body)

    def test_duplicate_reported(self) -> None:
        self.h.store.mark_duplicate("http://b.example/feed", "http://a.example/feed")
        row = {r["url"]: r for r in self.rows()}["http://b.example/feed"]
        self.assertIn("duplicate of http://a.example/feed", row["reason"])
        self.assertIsNone(row["next_fetch"])
        state = self.h.store.state("http://b.example/feed")
        self.assertEqual(evolve(state).duplicate_of, "http://a.example/feed")


class StatusRowsOffTheReactorTests(SynchronousTestCase):
    """Issue 15: with 10,000 feeds, making the status rows took ~0.2 s of the reactor
    thread before each render of /feeds or /feeds.json. Now only copies are taken there;
    the rows are made in the render's thread."""

    def test_rows_are_made_in_the_render_thread(self) -> None:
        h = Harness()
        thread = ThreadLike()
        h.web.run_in_thread = thread
        made: list[bool] = []
        real = render.feed_status_rows

        def spy(*args: Any) -> Any:
            made.append(thread.inside)
            return real(*args)

        self.patch(render, "feed_status_rows", spy)
        for path in ("/feeds", "/feeds.json"):
            d = h.stub.get("http://planet.example" + path)
            h.stub.flush()
            self.assertEqual(made, [], path)  # nothing on the reactor thread
            thread.finish_all()
            h.stub.flush()
            self.assertEqual(self.successResultOf(d).code, 200)
            self.assertEqual(made, [True], path)
            made.clear()

    def test_the_rows_do_not_change_with_the_store_after_the_request(self) -> None:
        h = Harness()
        h.add(
            "http://a.example/feed",
            atom("A", "http://a.example/", [Item("One", "http://a.example/1", NOW)]),
        )
        thread = ThreadLike()
        h.web.run_in_thread = thread
        d = h.stub.get("http://planet.example/feeds.json")
        h.stub.flush()
        # A fetch lands while the render waits for its thread: the rows are those asked for.
        h.store.update_state("http://a.example/feed", consecutive_errors=7)
        thread.finish_all()
        h.stub.flush()
        body = self.successResultOf(h.stub.content(self.successResultOf(d)))
        rows = {row["url"]: row for row in json.loads(body)}
        self.assertEqual(rows["http://a.example/feed"]["consecutive_errors"], 0)


class ReadableStatusTests(SynchronousTestCase):
    """The page people read: relative times, a summary that filters, a table per state."""

    setUp = StatusTests.setUp
    rows = StatusTests.rows

    def page(self, path: str = "/feeds") -> str:
        response, body = self.h.get(path)
        self.assertEqual(response.code, 200, body)
        return body.decode()

    def test_json_keeps_every_key(self) -> None:
        for row in self.rows():
            self.assertLessEqual(JSON_KEYS, set(row), row)

    def test_times_relative_to_the_render_with_the_exact_utc_time(self) -> None:
        html = self.page()
        self.assertIn(
            '<time datetime="2026-06-24T09:30:00Z" title="2026-06-24 09:30:00 UTC">'
            "in 30 min</time>",
            html,
        )
        self.assertIn(
            '<time datetime="2026-06-24T09:00:00Z" title="2026-06-24 09:00:00 UTC">just now</time>',
            html,
        )
        self.assertIn('title="2026-06-22 09:00:00 UTC">2 days ago</time>', html)
        self.assertNotIn(">2026-06-24T09:00:00Z<", html)  # no bare ISO timestamps

    def test_rendered_again_once_the_times_are_stale(self) -> None:
        first = self.page()
        renders = self.h.web.pages.renders
        self.h.clock.advance(20)
        self.assertEqual(self.page(), first)
        self.assertEqual(self.h.web.pages.renders, renders, "served from the cache")
        self.h.clock.advance(STATUS_MAX_AGE)
        later = self.page()
        self.assertEqual(self.h.web.pages.renders, renders + 1)
        self.assertIn('title="2026-06-24 09:30:00 UTC">in 29 min</time>', later)
        self.assertIn('title="2026-06-24 09:00:00 UTC">just now</time>', later)
        self.h.clock.advance(5 * 60)
        self.assertIn('title="2026-06-24 09:00:00 UTC">5 min ago</time>', self.page())

    def test_summary_links_filter_by_state(self) -> None:
        html = self.page()
        self.assertIn('6 feeds:\n<a href="/feeds?state=ok">2 ok</a>,', html)
        for part in ("1 failing", "1 gone", "2 waiting"):
            state = part.split()[1]
            self.assertIn(f'<a href="/feeds?state={state}">{part}</a>', html)
        failing = self.page("/feeds?state=failing")
        self.assertEqual(failing.count("<tr class="), 1)
        self.assertIn('<strong aria-current="page">1 failing</strong>', failing)
        self.assertIn('<a href="/feeds">show all</a>', failing)
        ok = self.page("/feeds?state=ok")
        self.assertEqual(
            sorted(re.findall(r'<tr class="state-([^"]+)">', ok)), ["not-modified", "ok"]
        )
        self.assertEqual(
            re.findall(r'<tr class="state-([^"]+)">', self.page("/feeds?state=not-modified")),
            ["not-modified"],
        )
        gone = self.page("/feeds?state=gone")
        self.assertIn("Gone Feed", gone)
        self.assertNotIn("Alpha Blog", gone)

    def test_unknown_state_is_400(self) -> None:
        for query in ("state=sideways", "state=", "state=%3Cscript%3E"):
            response, body = self.h.get(f"/feeds?{query}")
            self.assertEqual(response.code, 400, query)
            self.assertTrue(body.startswith(b"unknown state: one of ok, failing, "), body)
            self.assertNotIn(b"<script>", body)
            self.assertEqual(
                response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"]
            )

    def test_a_table_per_state_reason_first_for_failing_and_gone(self) -> None:
        html = self.page()
        self.assertEqual(
            re.findall(r'<section class="state-group" id="([^"]+)">', html),
            ["failing", "gone", "waiting", "ok"],
        )
        firsts = re.findall(r'<thead><tr>\n<th scope="col" class="col-([^"]+)">', html)
        self.assertEqual(firsts, ["reason", "reason", "feed", "feed"])
        # Every cell carries its header for the stacked (375 px) layout.
        self.assertIn(
            '<td class="col-reason"><span class="label" aria-hidden="true">Reason</span>'
            '<span class="value">HTTP 404 Not Found</span></td>',
            html,
        )

    def test_reading_list_entries_not_subscribed_are_listed(self) -> None:
        listed = "http://lists.example/blogs.opml"
        h = Harness(extra=EXTRA + f"\n[{listed}]\ncontent_type = opml\n")
        h.store.record_list(
            ListState(url=listed, skipped=("feed://x.example/rss", "javascript:alert(1)<b>"))
        )
        # A list no longer in the config is not shown.
        h.store.record_list(ListState(url="http://old.example/l.opml", skipped=("ftp://o",)))
        html = h.get("/feeds")[1].decode()
        self.assertIn("Reading list entries not subscribed", html)
        self.assertIn(f'<h3><a href="{listed}">{listed}</a> <span class="count">(2)</span>', html)
        self.assertIn("<li><code>feed://x.example/rss</code></li>", html)
        self.assertIn("<li><code>javascript:alert(1)&lt;b&gt;</code></li>", html)
        self.assertNotIn('href="javascript', html)
        self.assertNotIn("ftp://o", html)
        self.assertNotIn("not subscribed", self.page())
        # A file list's (read with the config): its section name, no link.
        h.web.reconfigure(evolve(h.web.config, skipped_entries=(("blogs.opml", ("ftp://f",)),)))
        html = h.get("/feeds")[1].decode()
        self.assertIn('<h3>blogs.opml <span class="count">(1)</span></h3>', html)
        self.assertLess(html.index("ftp://f"), html.index("feed://x.example/rss"))


class RelativeTimeTests(SynchronousTestCase):
    def test_relative(self) -> None:
        cases = [
            (0, "just now"),
            (-59, "just now"),
            (30, "in under a minute"),
            (-60, "1 min ago"),
            (18 * 60 + 59, "in 18 min"),
            (-12 * 60, "12 min ago"),
            (-60 * 60, "1 h ago"),
            (83 * 60, "in 1 h 23 min"),
            (-15 * 3600, "15 h ago"),
            (-3 * 86400, "3 days ago"),
            (90 * 86400, "in 3 months"),
            (-800 * 86400, "2 years ago"),
        ]
        for seconds, text in cases:
            self.assertEqual(relative(NOW + timedelta(seconds=seconds), NOW), text, seconds)
        self.assertEqual(relative(NOW - timedelta(minutes=3), NOW, due=True), "due now")
        self.assertEqual(relative(NOW + timedelta(minutes=3), NOW, due=True), "in 3 min")


class WebSubColumnTests(SynchronousTestCase):
    setUp = StatusTests.setUp

    def test_websub_times_are_relative_too(self) -> None:
        class Hub:
            def rows(self) -> dict[str, dict[str, object]]:
                return {
                    "http://a.example/feed": {
                        "websub": "subscribed",
                        "websub_hub": "https://hub.example/",
                        "websub_expires": "2026-06-28T09:00:00Z",
                        "last_push": "2026-06-24T08:57:00Z",
                    }
                }

        self.h.web.websub_hub = Hub()  # type: ignore[assignment]
        html = self.h.get("/feeds")[1].decode()
        self.assertIn('<th scope="col" class="col-websub">WebSub</th>', html)
        self.assertIn(
            "subscribed<br>hub: https://hub.example/<br>expires "
            '<time datetime="2026-06-28T09:00:00Z"'
            ' title="2026-06-28 09:00:00 UTC">in 4 days</time><br>last push <time'
            ' datetime="2026-06-24T08:57:00Z" title="2026-06-24 08:57:00 UTC">3 min ago</time>',
            html,
        )
        # The failing, the two waiting and the other ok feed have none (gone shows no column).
        self.assertEqual(html.count('<span class="value">off</span>'), 4)


def test_a_page_of_many_batches_is_the_page_joined_at_once() -> None:
    # /feeds of 10,000 feeds is ~1M pieces; render_page joins them 4096 at a time.
    subscriptions = "".join(
        f"\n[http://f{i}.example/feed]\nname = Feed {i}{chr(27) if i == 250 else ''} é\n"
        for i in range(400)
    )
    h = Harness(extra=subscriptions)
    template = render._env.get_template("feeds.html")
    pieces = 0
    context = {
        "planet": h.config,
        "status": status_context(h.web._status_rows().rows(), NOW),
        "generated": "now",
        "version": "1",
    }
    for _ in template.generate(**context):
        pieces += 1
    assert pieces > 3 * render._JOIN_BATCH
    whole = template.render(**context)
    assert "\x1b" in whole
    assert render.render_page("feeds.html", **context) == whole.replace("\x1b", "").encode()
