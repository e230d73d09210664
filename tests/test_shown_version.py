"""Pages keyed on what they show: a cycle of 304s renders neither the river, nor the feeds
we publish, nor template outputs again, and keeps their ETags; /feeds.json still moves."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
from feeds import Item, at, atom
from rig import Rig
from test_metrics import value
from test_templates import served
from twisted.trial.unittest import SynchronousTestCase

from planet.config import load_config
from planet.model import FetchResult
from planet.parse import parse_feed
from planet.store import Store
from planet.testing import MemoryFeeds, Reply, ok, record_fetch, status

NOW = at(2026, 6, 24, 9, 0)
A = "http://a.example/feed"
B = "http://b.example/feed"
ITEMS = [
    Item("First post", "http://a.example/1", at(2026, 6, 20)),
    Item("Second post", "http://a.example/2", at(2026, 6, 21)),
]
EDITED = attrs.evolve(ITEMS[0], content="<p>edited</p>")
#: Every page the river's view keys cover, with the route each is counted under.
SHOWN = {
    "/": "river",
    "/atom.xml": "atom",
    "/rss20.xml": "rss20",
    "/feed.json": "json_feed",
    "/opml.xml": "opml",
}


def conditional(body: bytes, etag: str) -> Reply:
    """A 200 with an ETag, answered 304 to a request that gives that ETag back."""
    return attrs.evolve(ok(body, ETag=etag), conditional=True)


def renders(rig: Rig, route: str) -> float:
    """Renders of ``route`` so far, as /metrics counts them."""
    return value(rig.web.metrics, "planet_render_duration_seconds_count", route=route) or 0.0


class _Daemon(SynchronousTestCase):
    """The daemon as production wires it (min_render_interval 1 s), feeds answering 304."""

    def make(self, extra: str) -> None:
        tmp = Path(self.mktemp()).absolute()
        tmp.mkdir()
        self.tmp = tmp
        ini = tmp / "planet.ini"
        ini.write_text(f"[Planet]\nname = Shown\n{extra}\n[{A}]\n[{B}]\n")
        self.server = MemoryFeeds()
        self.server.plan(A, conditional(atom("Alpha", "http://a.example/", ITEMS), '"a1"'))
        self.server.plan(B, conditional(atom("Beta", "http://b.example/", []), '"b1"'))
        self.rig = Rig(self, load_config(str(ini)), self.server, now=NOW)
        self.rig.start()
        self.rig.advance(0)
        self.rig.advance(2)
        self.assertEqual(self.rig.store.entry_count(), 2)

    def cycle(self) -> None:
        """Every feed fetched once more; then past the render interval."""
        before = len(self.server.requests)
        # refresh_all() would spare a failing feed (backing off): these tests fetch it too.
        for url in (A, B):
            self.rig.store.update_state(url, next_fetch=None)
        self.rig.aggregator.kick()
        self.rig.advance(0)
        self.assertEqual(len(self.server.requests), before + 2)
        self.rig.advance(2)

    def get(self, path: str, **headers: str) -> tuple[Any, bytes]:
        return served(self.rig, path, headers or None)

    def etag(self, path: str) -> str:
        response, _ = self.get(path)
        self.assertEqual(response.code, 200, path)
        (tag,) = response.headers.getRawHeaders("etag")
        return str(tag)


class ShownPagesTests(_Daemon):
    def setUp(self) -> None:
        self.make("")

    def test_a_304_cycle_renders_no_page_again_and_keeps_the_etags(self) -> None:
        tags = {path: self.etag(path) for path in SHOWN}
        counts = {path: renders(self.rig, route) for path, route in SHOWN.items()}
        self.assertTrue(all(counts.values()))
        version = self.rig.store.version
        self.rig.clock.advance(3600)
        # Requests during the cycle too: each 304 used to make every page stale.
        self.rig.aggregator.refresh_all()
        for path in SHOWN:
            self.get(path)
        self.rig.advance(0)
        for path in SHOWN:
            self.get(path)
        self.rig.advance(2)
        self.assertEqual(
            [r.url for r in self.server.requests[-2:]], [A, B], "both feeds fetched again"
        )
        self.assertEqual(self.rig.store.state(A).http_status, 304)
        self.assertGreater(self.rig.store.version, version)
        self.assertEqual({path: self.etag(path) for path in SHOWN}, tags)
        self.assertEqual({p: renders(self.rig, r) for p, r in SHOWN.items()}, counts)
        # A reader's conditional GET is answered 304.
        response, body = self.get("/", **{"If-None-Match": tags["/"]})
        self.assertEqual((response.code, body), (304, b""))

    def test_the_status_pages_still_show_the_new_fetch_time(self) -> None:
        rows = {r["url"]: r for r in json.loads(self.get("/feeds.json")[1])}
        first = rows[A]["last_fetch"]
        self.get("/feeds")
        self.rig.clock.advance(3600)
        self.cycle()
        rows = {r["url"]: r for r in json.loads(self.get("/feeds.json")[1])}
        self.assertNotEqual(rows[A]["last_fetch"], first)
        self.assertEqual(rows[A]["last_fetch"], "2026-06-24T10:00:02Z")
        self.assertEqual(rows[A]["state"], "not-modified")
        self.assertIn(b"not-modified", self.get("/feeds")[1])
        health = json.loads(self.get("/health")[1])
        self.assertEqual(health["last_fetch"], "2026-06-24T10:00:02Z")

    def test_a_new_title_without_new_entries_renders_the_river_again(self) -> None:
        _, body = self.get("/")
        self.assertIn(b"Beta", body)
        tag, count = self.etag("/"), renders(self.rig, "river")
        self.server.plan(B, conditional(atom("Beta Renamed", "http://b.example/", []), '"b2"'))
        self.cycle()
        _, body = self.get("/")
        self.assertEqual(renders(self.rig, "river"), count + 1)
        self.assertIn(b"Beta Renamed", body)
        self.assertNotEqual(self.etag("/"), tag)
        self.assertIn(b"Beta Renamed", self.get("/opml.xml")[1])

    def test_a_new_site_link_renders_the_river_again(self) -> None:
        self.assertNotIn(b"http://b.example/new-home", self.get("/")[1])
        count = renders(self.rig, "river")
        self.server.plan(B, conditional(atom("Beta", "http://b.example/new-home", []), '"b2"'))
        self.cycle()
        _, body = self.get("/")
        self.assertEqual(renders(self.rig, "river"), count + 1)
        self.assertIn(b"http://b.example/new-home", body)

    def test_a_feed_failing_and_recovering_renders_the_river_again(self) -> None:
        self.get("/")
        count = renders(self.rig, "river")
        self.server.plan(B, status(500))
        self.cycle()
        _, body = self.get("/")
        self.assertEqual(renders(self.rig, "river"), count + 1)
        self.assertIn(b"(failing)", body)
        # Failing again the same way shows nothing new.
        self.cycle()
        self.get("/")
        self.assertEqual(renders(self.rig, "river"), count + 1)
        # The error changes: its reason is in the page.
        self.server.plan(B, status(503))
        self.cycle()
        _, body = self.get("/")
        self.assertEqual(renders(self.rig, "river"), count + 2)
        self.assertIn(b"503", body)
        self.server.plan(B, conditional(atom("Beta", "http://b.example/", []), '"b1"'))
        self.cycle()
        _, body = self.get("/")
        self.assertEqual(renders(self.rig, "river"), count + 3)
        self.assertNotIn(b"(failing)", body)

    def test_a_new_entry_renders_the_river_again(self) -> None:
        tag, count = self.etag("/"), renders(self.rig, "river")
        more = [*ITEMS, Item("Third post", "http://a.example/3", at(2026, 6, 22))]
        self.server.plan(A, conditional(atom("Alpha", "http://a.example/", more), '"a2"'))
        self.cycle()
        _, body = self.get("/")
        self.assertEqual(renders(self.rig, "river"), count + 1)
        self.assertIn(b"Third post", body)
        self.assertNotEqual(self.etag("/"), tag)


class TemplatePagesTests(_Daemon):
    """The same with an operator's template for ``/``: channel names, titles, messages."""

    TEMPLATE = (
        "{% for c in Channels %}{{ c.name }}|{{ c.title }}|{{ c.link }}|{{ c.message }};"
        "{% endfor %}{% for i in Items %}{{ i.title }};{% endfor %}"
    )

    def setUp(self) -> None:
        tmp = Path(self.mktemp()).absolute()
        tmp.mkdir()
        (tmp / "index.html.j2").write_text(self.TEMPLATE)
        self.make(f"template_files = {tmp / 'index.html.j2'}")
        self.assertIn(b"Beta|Beta|", self.get("/")[1])

    def renders_of_index(self) -> float:
        return renders(self.rig, "template:index.html")

    def test_a_304_cycle_renders_no_template_again(self) -> None:
        tag, count = self.etag("/"), self.renders_of_index()
        self.rig.clock.advance(3600)
        self.cycle()
        self.assertEqual(self.rig.store.state(B).http_status, 304)
        self.assertEqual((self.etag("/"), self.renders_of_index()), (tag, count))

    def test_template_shows_title_link_and_message_changes(self) -> None:
        count = self.renders_of_index()
        self.server.plan(B, conditional(atom("Beta 2", "http://b.example/2", []), '"b2"'))
        self.cycle()
        self.assertIn(b"Beta 2|Beta 2|http://b.example/2|;", self.get("/")[1])
        self.server.plan(B, status(500))
        self.cycle()
        _, body = self.get("/")
        self.assertRegex(body, rb"Beta 2\|Beta 2\|http://b\.example/2\|[^;]*500[^;]*;")
        self.assertEqual(self.renders_of_index(), count + 2)

    def test_a_new_entry_renders_the_template_again(self) -> None:
        count = self.renders_of_index()
        more = [*ITEMS, Item("Third post", "http://a.example/3", at(2026, 6, 22))]
        self.server.plan(A, conditional(atom("Alpha", "http://a.example/", more), '"a2"'))
        self.cycle()
        self.assertIn(b"Third post;", self.get("/")[1])
        self.assertEqual(self.renders_of_index(), count + 1)


def _fetch(store: Store, url: str, body: bytes | None, status: int = 200, **kw: Any) -> None:
    parsed = parse_feed(body, url, NOW) if body is not None and status == 200 else None
    result = FetchResult(url=url, final_url=url, status=status, body=body, **kw)
    record_fetch(store, url, result, parsed, NOW + timedelta(hours=1))


class StoreShownVersionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = Store()
        _fetch(self.store, A, atom("Alpha", "http://a.example/", ITEMS), etag='"a1"')

    def test_a_304_changes_the_version_only(self) -> None:
        shown, version = self.store.shown_version, self.store.version
        _fetch(self.store, A, None, status=304, etag='"a2"')
        self.assertEqual(self.store.state(A).etag, '"a2"')
        self.assertEqual(self.store.shown_version, shown)
        self.assertGreater(self.store.version, version)
        self.store.update_state(A, next_fetch=NOW)
        self.assertEqual(self.store.shown_version, shown)

    def test_entries_title_link_and_error_change_it(self) -> None:
        for change in (
            lambda: _fetch(self.store, A, atom("Alpha", "http://a.example/", [EDITED])),
            lambda: _fetch(self.store, A, atom("Alpha 2", "http://a.example/", [])),
            lambda: _fetch(self.store, A, atom("Alpha 2", "http://a.example/x", [])),
            lambda: _fetch(self.store, A, None, status=None, error="timed out"),
            lambda: _fetch(self.store, A, None, status=None, error="refused"),
            lambda: _fetch(self.store, A, None, status=304),
            lambda: self.store.retain([]),
        ):
            shown = self.store.shown_version
            change()
            self.assertGreater(self.store.shown_version, shown)

    def test_a_new_entry_changes_it(self) -> None:
        shown = self.store.shown_version
        more = [*ITEMS, Item("Third post", "http://a.example/3", at(2026, 6, 22))]
        _fetch(self.store, A, atom("Alpha", "http://a.example/", more))
        self.assertGreater(self.store.shown_version, shown)
