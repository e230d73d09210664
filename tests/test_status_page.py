"""/feeds and /feeds.json: every subscription's health, failing ones first."""

from __future__ import annotations

import json
from datetime import timedelta

from attrs import evolve
from feeds import Item, at, atom
from test_polite import ROW_KEYS as KEYS
from test_web import NOW, Harness
from twisted.trial.unittest import SynchronousTestCase

from planet.model import FetchResult
from planet.testing import record_fetch

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
