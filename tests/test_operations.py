"""Running it like a service: reload, retention, activity, per-feed caps, metrics, logs."""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import timedelta
from random import Random
from typing import Any

from feeds import Item, at, atom
from prometheus_client.parser import text_string_to_metric_families
from rig import Rig
from test_aggregator import GOOD, GOOD_FEED, NOW, OTHER, OTHER_FEED, Harness
from test_web import Harness as WebHarness
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from planet import schedule
from planet.logs import PlanetLogs
from planet.model import FetchResult, utc_from_timestamp
from planet.parse import parse_feed
from planet.render import paginate
from planet.river import RiverItem
from planet.testing import MemoryFeeds
from planet.update import update_feed
from planet.web import PlanetWeb

NEW = "http://new.example/feed"
NEW_FEED = atom(
    "New", "http://new.example/", [Item("New one", "http://new.example/1", at(2026, 6, 23))]
)

BASE = """\
[Planet]
name = Reloaded
fetch_interval = 300
snapshot_file = {dir}/planet-snapshot.json
{extra}
"""


class Planet:
    """The daemon from production's build_service on a Clock and StubTreq, its config in a
    real file (so that reloads read it)."""

    def __init__(self, test: SynchronousTestCase, feeds: dict[str, str], extra: str = "") -> None:
        self.dir = tempfile.mkdtemp(prefix="planet-ops-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "planet.ini")
        self.write(feeds, extra)
        from planet.config import load_config

        config = load_config(self.path)
        server = MemoryFeeds()
        server.serve(GOOD, GOOD_FEED)
        server.serve(OTHER, OTHER_FEED)
        server.serve(NEW, NEW_FEED)
        self.rig = self.h = Rig(test, config, server, now=NOW)
        self.server = server
        self.metrics = self.rig.ingester.metrics
        self.web = self.rig.web
        self.service = self.rig.service
        self.rig.start()
        self.rig.stub.flush()

    def write(self, feeds: dict[str, str], extra: str = "") -> None:
        text = BASE.format(extra=extra, dir=self.dir) + "".join(
            f"\n[{url}]\nname = {name}\n" for url, name in feeds.items()
        )
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(text)

    def feeds_in_river(self) -> set[str]:
        return {e.feed_url for e in self.h.store.river()}


class ReloadTests(SynchronousTestCase):
    def test_feed_added_and_removed_without_restart(self) -> None:
        p = Planet(self, {GOOD: "Good", OTHER: "Other"})
        self.assertEqual(p.feeds_in_river(), {GOOD, OTHER})
        p.write({GOOD: "Good renamed", NEW: "New"})
        self.assertTrue(self.successResultOf(p.service.reload()))
        p.h.stub.flush()
        # The new feed is fetched at once (no tick needed); the removed one is gone.
        self.assertEqual(p.feeds_in_river(), {GOOD, NEW})
        self.assertNotIn(OTHER, p.h.store.feed_states())
        self.assertEqual(p.web.config.subscriptions[0].name, "Good renamed")
        self.assertEqual(p.h.aggregator.config, p.web.config)
        self.assertIsNotNone(p.web.config_loaded)

    def test_broken_config_keeps_the_old_one(self) -> None:
        p = Planet(self, {GOOD: "Good"})
        old, shown = p.service.config, p.web.config
        with open(p.path, "w", encoding="utf-8") as f:
            f.write("[Planet]\nfetch_interval = soon\n")
        errors: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(errors.append)
        self.addCleanup(globalLogPublisher.removeObserver, errors.append)
        self.assertFalse(self.successResultOf(p.service.reload()))
        self.assertIs(p.service.config, old)
        self.assertIs(p.web.config, shown)
        self.assertEqual(p.feeds_in_river(), {GOOD})
        failed = [e for e in errors if e.get("log_level") == LogLevel.error]
        self.assertEqual(len(failed), 1)
        self.assertIn("fetch_interval", str(failed[0]["err"]))

    def test_sighup_handler_installed_and_restored(self) -> None:
        import signal

        p = Planet(self, {GOOD: "Good"})
        before = signal.getsignal(signal.SIGHUP)
        p.service.startService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), p.service._on_hup)
        p.service.stopService()
        p.h.clock.advance(10)
        self.assertEqual(signal.getsignal(signal.SIGHUP), before)

    def test_log_level_applied_on_reload(self) -> None:
        p = Planet(self, {GOOD: "Good"})
        p.write({GOOD: "Good"}, extra="log_level = ERROR")
        p.service.reload()
        self.assertEqual(p.service.logs.level, "ERROR")


class RetentionTests(SynchronousTestCase):
    def test_old_entries_dropped_each_cycle_and_not_readded(self) -> None:
        h = Harness(self, [GOOD])
        h.server.serve(GOOD, GOOD_FEED)  # entries of 20 and 22 Jun, noon; NOW is 24 Jun 9:00
        h.store.max_entry_age = timedelta(days=4)
        h.start()
        self.assertEqual([e.title for e in h.store.river()], ["Good two", "Good one"])
        # A day later the 20 Jun entry is past the retention: dropped at the next cycle,
        # and the next fetch (same feed) does not bring it back.
        for _ in range(int(86400 / h.tick) + 2):
            h.advance(h.tick)
        self.assertEqual([e.title for e in h.store.river()], ["Good two"])


class ActivityTests(SynchronousTestCase):
    def test_feed_without_new_entries_marked_inactive(self) -> None:
        h = WebHarness(extra="")
        h.config = h.config.__class__(**{**_fields(h.config), "activity_threshold": 30})
        h.web.config = h.config
        h.add(
            "http://a.example/feed",
            atom(
                "A",
                "http://a.example/",
                [
                    Item("Old", "http://a.example/1", at(2026, 4, 1)),
                ],
            ),
        )
        h.add(
            "http://b.example/feed",
            atom(
                "B",
                "http://b.example/",
                [
                    Item("Fresh", "http://b.example/1", at(2026, 6, 20)),
                ],
            ),
        )
        import json

        rows = {r["url"]: r for r in json.loads(h.get("/feeds.json")[1])}
        self.assertTrue(rows["http://a.example/feed"]["inactive"])
        self.assertIn(
            "inactive: no new entry for over 30 days", rows["http://a.example/feed"]["reason"]
        )
        self.assertFalse(rows["http://b.example/feed"]["inactive"])


def _fields(config: object) -> dict[str, object]:
    from attrs import asdict

    return asdict(config, recurse=False)  # type: ignore[arg-type]


class NewFeedItemsTests(SynchronousTestCase):
    def test_at_most_n_items_of_one_feed_per_page(self) -> None:
        from test_store import entry

        items = [RiverItem(entry("http://a.example/feed", n, 28 - n)) for n in range(6)]
        items.insert(3, RiverItem(entry("http://b.example/feed", 1, 26)))
        pages = paginate(items, per_page=3, per_feed=2)
        feeds = [[i.entry.feed_url[7] for i in page] for page in pages]
        self.assertEqual(feeds, [["a", "a", "b"], ["a", "a"]])
        for page in pages:
            for feed in "ab":
                self.assertLessEqual(sum(1 for i in page if i.entry.feed_url[7] == feed), 2)
        self.assertEqual(len(pages[0]), 3)

    def test_river_capped_feed_page_complete(self) -> None:
        h = WebHarness()
        h.config = h.config.__class__(**{**_fields(h.config), "new_feed_items": 1})
        h.web.config = h.config
        h.add(
            "http://a.example/feed",
            atom(
                "A",
                "http://a.example/",
                [Item(f"A{n}", f"http://a.example/{n}", at(2026, 6, 1 + n)) for n in range(4)],
            ),
        )
        from test_web import entry_titles

        self.assertEqual(entry_titles(h.get("/")[1]), ["Alpha Blog: A3"])
        self.assertEqual(len(entry_titles(h.get("/feeds/alpha-blog")[1])), 4)


class MetricsTests(SynchronousTestCase):
    def test_metrics_parse_and_move_after_a_cycle(self) -> None:
        p = Planet(self, {GOOD: "Good", OTHER: "Other"})
        p.metrics.watch_store(p.h.store.entry_count, lambda: {"ok": 2})
        stub = WebStub(p.web)
        body = stub.get("/metrics")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        fetches = {
            (s.labels["host"], s.labels["result"]): s.value
            for s in families["planet_fetches"].samples
            if s.name == "planet_fetches_total"
        }
        self.assertEqual(fetches, {("good.example", "ok"): 1.0, ("other.example", "ok"): 1.0})
        entries = [s.value for s in families["planet_entries"].samples]
        self.assertEqual(entries, [3.0])
        parse_count = [
            s.value
            for s in families["planet_parse_duration_seconds"].samples
            if s.name.endswith("_count")
        ]
        self.assertEqual(parse_count, [2.0])
        # Another cycle later, the counter has moved.
        p.server.serve(GOOD, GOOD_FEED)
        for _ in range(int(p.h.config.fetch_interval * 2.2 / p.h.tick)):
            p.h.advance(p.h.tick)
        body = stub.get("/metrics")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        good = [
            s.value
            for s in families["planet_fetches"].samples
            if s.name == "planet_fetches_total" and s.labels["host"] == "good.example"
        ]
        self.assertGreaterEqual(sum(good), 2.0)
        requests = [
            s
            for s in families["planet_http_requests"].samples
            if s.name == "planet_http_requests_total" and s.labels["route"] == "metrics"
        ]
        self.assertTrue(requests)


class WebStub:
    def __init__(self, web: PlanetWeb) -> None:
        from treq.testing import StubTreq

        self.stub = StubTreq(web.resource())

    def get(self, path: str) -> bytes:
        out: list[Any] = []
        d = self.stub.get("http://planet.example" + path)
        self.stub.flush()
        d.addCallback(self.stub.content).addBoth(out.append)
        self.stub.flush()
        assert isinstance(out[0], bytes), out[0]
        return out[0]


class LogLevelTests(SynchronousTestCase):
    def test_level_filters_planet_messages(self) -> None:
        seen: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(seen.append)
        self.addCleanup(globalLogPublisher.removeObserver, seen.append)
        logs = PlanetLogs("WARNING")
        log = logs.logger("planet.test")
        log.info("hidden")
        log.warn("shown")
        logs.set_level("DEBUG")
        log.debug("now shown")
        texts = [e["log_format"] for e in seen if e.get("log_namespace") == "planet.test"]
        self.assertEqual(texts, ["shown", "now shown"])


LIST_URL = "http://lists.example/planet.opml"


def opml(*urls: str) -> bytes:
    outlines = "".join(f'<outline text="Feed {i}" xmlUrl="{u}"/>' for i, u in enumerate(urls))
    return f'<opml version="2.0"><head/><body>{outlines}</body></opml>'.encode()


class URLReadingListTests(SynchronousTestCase):
    def make(self) -> Any:
        from planet.config import parse_config

        config = parse_config(
            f"[Planet]\nfetch_interval = 300\n[{LIST_URL}]\ncontent_type = opml\n", "t.ini"
        )
        h = Harness(self, [], config=config)
        h.server.serve(GOOD, GOOD_FEED)
        h.server.serve(OTHER, OTHER_FEED)
        seen: list[Any] = []
        subscriptions = h.rig.subscriptions
        subscriptions.listeners = (*subscriptions.listeners, seen.append)
        return h, seen

    def test_list_feeds_subscribed_refetched_and_dropped(self) -> None:
        h, seen = self.make()
        h.server.serve(LIST_URL, opml(GOOD, OTHER), content_type="text/x-opml", ETag='"l1"')
        h.start()
        self.assertEqual([s.url for s in h.aggregator.config.subscriptions], [GOOD, OTHER])
        self.assertEqual(seen[-1], h.aggregator.config)
        # The listed feeds are new, so due at the next tick.
        h.advance(h.tick)
        self.assertEqual({e.feed_url for e in h.store.river()}, {GOOD, OTHER})
        # Later the list drops OTHER: its entries go; the list was fetched conditionally.
        h.server.serve(LIST_URL, opml(GOOD), content_type="text/x-opml", ETag='"l2"')
        for _ in range(int(2.5 * 300 / h.tick)):
            h.advance(h.tick)
        sent = [r.headers.get("if-none-match") for r in h.server.requests if r.url == LIST_URL]
        self.assertEqual(sent[:3], [None, '"l1"', '"l2"'])
        self.assertEqual([s.url for s in h.aggregator.config.subscriptions], [GOOD])
        self.assertEqual({e.feed_url for e in h.store.river()}, {GOOD})

    def test_feeds_a_list_adds_are_fetched_right_after_its_cycle(self) -> None:
        h, _ = self.make()
        h.server.serve(LIST_URL, opml(GOOD, OTHER), content_type="text/x-opml")
        h.start()
        # Not at the next tick (up to a minute later): a cycle follows the one that read it.
        h.advance(0)
        self.assertEqual({e.feed_url for e in h.store.river()}, {GOOD, OTHER})

    def test_broken_list_keeps_previous_feeds(self) -> None:
        h, _ = self.make()
        h.server.serve(LIST_URL, opml(GOOD), content_type="text/x-opml")
        h.start()
        h.advance(h.tick)
        h.server.serve(LIST_URL, b"<html><body>oops</body></html>", content_type="text/html")
        for _ in range(int(1.5 * 300 / h.tick)):
            h.advance(h.tick)
        self.assertIsNotNone(h.store.reading_lists()[LIST_URL].error)
        self.assertEqual([s.url for s in h.aggregator.config.subscriptions], [GOOD])
        self.assertEqual({e.feed_url for e in h.store.river()}, {GOOD})

    def test_listed_feeds_survive_a_restart_before_the_list_is_fetched(self) -> None:
        from planet.snapshotcodec import decode_all, encode

        h, _ = self.make()
        h.server.serve(LIST_URL, opml(GOOD), content_type="text/x-opml")
        h.start()
        h.advance(h.tick)
        entries, states = h.store.snapshot_data()
        data = encode(entries, states, NOW_DT, tuple(h.store.reading_lists().values()))
        # A new process: the list server is down, the snapshot is all there is.
        h2, _ = self.make()
        h2.server.plans.clear()
        h2.store.load(*decode_all(data))
        h2.start()
        self.assertEqual([s.url for s in h2.aggregator.config.subscriptions], [GOOD])
        self.assertEqual({e.feed_url for e in h2.store.river()}, {GOOD})

    def test_entries_without_an_http_url_are_kept_and_logged_once_per_load(self) -> None:
        from twisted.logger import formatEvent

        h, _ = self.make()
        body = opml(GOOD).replace(
            b"</body>",
            b'<outline text="F" xmlUrl="feed://x.example/rss"/>'
            b'<outline text="J" xmlUrl="javascript:alert(1)"/></body>',
        )
        from planet.testing import Reply

        headers = (("Content-Type", "text/x-opml"), ("ETag", '"l1"'))
        h.server.plan(LIST_URL, Reply(200, body, headers, conditional=True))
        lines: list[str] = []

        def seen(event: dict[str, Any]) -> None:
            if "reading list" in event.get("log_format", ""):
                lines.append(formatEvent(event))

        globalLogPublisher.addObserver(seen)
        self.addCleanup(globalLogPublisher.removeObserver, seen)
        h.start()
        skipped = ("feed://x.example/rss", "javascript:alert(1)")
        self.assertEqual(h.store.reading_lists()[LIST_URL].skipped, skipped)
        self.assertEqual([s.url for s in h.aggregator.config.subscriptions], [GOOD])
        self.assertEqual(
            [line for line in lines if "not subscribed" in line],
            [
                f"reading list {LIST_URL}: 2 entries not subscribed: their xmlUrl is not an "
                "http(s) URL (feed://x.example/rss, javascript:alert(1))"
            ],
        )
        # Fetched again (a 304): nothing read, nothing logged again, the skipped kept.
        for _ in range(int(1.5 * 300 / h.tick)):
            h.advance(h.tick)
        self.assertGreaterEqual(h.server.count(LIST_URL), 2)
        self.assertEqual(len([line for line in lines if "not subscribed" in line]), 1)
        self.assertEqual(h.store.reading_lists()[LIST_URL].skipped, skipped)
        # Read again (no more 304s): one more line per load.
        h.server.serve(LIST_URL, body, content_type="text/x-opml")
        before = h.server.count(LIST_URL)
        for _ in range(int(1.5 * 300 / h.tick)):
            h.advance(h.tick)
        loads = h.server.count(LIST_URL) - before
        self.assertGreaterEqual(loads, 1)
        self.assertEqual(len([line for line in lines if "not subscribed" in line]), 1 + loads)


NOW_DT = utc_from_timestamp(0)


class FetchIntervalTests(SynchronousTestCase):
    def test_fetch_interval_is_kept(self) -> None:
        """At the shortest fetch_interval (60 s), a feed is fetched every interval, not every
        other one. (This was a process test at fetch_interval = 1, which is now refused.)"""
        h = Harness(self, [GOOD], fetch_interval=60)
        h.server.serve(GOOD, GOOD_FEED)
        h.start()
        times = [h.clock.seconds()]
        while len(times) < 7:
            fetched = h.server.count(GOOD)
            h.advance(1)
            if h.server.count(GOOD) > fetched:
                times.append(h.clock.seconds())
        # From the second fetch on: the gap after the first success may add a spreading offset.
        gaps = [b - a for a, b in zip(times[1:], times[2:], strict=False)]
        mean = sum(gaps) / len(gaps)
        self.assertLess(mean, 1.5 * 60, gaps)
        self.assertGreaterEqual(min(gaps), 60 * 0.9, gaps)


class CycleProblemTests(SynchronousTestCase):
    def test_health_says_when_fetch_cycles_fail_to_start(self) -> None:
        """Issue 19 item 12: a cycle failing on every tick must not leave /health saying ok."""
        p = Planet(self, {GOOD: "Good"})
        self.assertEqual(
            (p.web.health_data()["status"], p.web.health_data()["problem"]), ("ok", None)
        )

        def broken(*args: Any) -> Any:
            raise TypeError("can't compare offset-naive and offset-aware datetimes")

        self.patch(schedule, "due", broken)
        p.h.advance(p.h.tick)
        health = p.web.health_data()
        self.assertEqual(health["status"], "degraded")
        self.assertEqual(
            health["problem"],
            "fetch cycles fail to start: TypeError: can't compare offset-naive and "
            "offset-aware datetimes",
        )
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)
        self.assertTrue(p.h.aggregator._timer.running)
        # Mended (a reload, say): the next tick starts a cycle and /health is ok again.
        self.patch(schedule, "due", lambda *args: [])
        p.h.advance(p.h.tick)
        self.assertEqual(
            (p.web.health_data()["status"], p.web.health_data()["problem"]), ("ok", None)
        )


class FileReadingListTests(SynchronousTestCase):
    """Issue 17: a reading list named by a file path subscribes its feeds in the service."""

    def test_file_list_feeds_subscribed_at_start_and_after_a_reload(self) -> None:
        p = Planet(self, {})
        list_path = os.path.join(p.dir, "blogs.opml")
        with open(list_path, "wb") as f:
            f.write(opml(GOOD, OTHER))
        p.write({}, extra="\n[blogs.opml]\ncontent_type = opml\n")
        self.assertTrue(self.successResultOf(p.service.reload()))
        p.h.stub.flush()
        self.assertEqual(
            [s.url for s in p.h.aggregator.config.subscriptions], [GOOD, OTHER], "at start"
        )
        self.assertEqual(p.feeds_in_river(), {GOOD, OTHER})
        self.assertEqual(p.web.config, p.h.aggregator.config)
        # The list edited on disk: OTHER dropped, NEW added, at the next reload.
        with open(list_path, "wb") as f:
            f.write(opml(GOOD, NEW))
        self.assertTrue(self.successResultOf(p.service.reload()))
        p.h.stub.flush()
        self.assertEqual([s.url for s in p.h.aggregator.config.subscriptions], [GOOD, NEW])
        self.assertEqual(p.feeds_in_river(), {GOOD, NEW})
        self.assertNotIn(OTHER, p.h.store.feed_states())

    def test_file_list_feeds_survive_the_aggregator_start(self) -> None:
        from planet.config import load_config

        p = Planet(self, {})
        with open(os.path.join(p.dir, "blogs.opml"), "wb") as f:
            f.write(opml(GOOD))
        p.write({}, extra="\n[blogs.opml]\ncontent_type = opml\n")
        h = Harness(self, [], config=load_config(p.path))
        h.server.serve(GOOD, GOOD_FEED)
        h.start()
        self.assertEqual([s.url for s in h.aggregator.config.subscriptions], [GOOD])
        self.assertEqual({e.feed_url for e in h.store.river()}, {GOOD})


class StopOrderTests(SynchronousTestCase):
    def test_children_stop_one_after_another_last_first(self) -> None:
        from twisted.application.service import Service
        from twisted.internet.defer import Deferred

        p = Planet(self, {GOOD: "Good"})
        stopped: list[str] = []
        slow: Deferred[None] = Deferred()

        class Child(Service):
            def __init__(self, name: str, result: Any = None) -> None:
                self.name = name
                self.result = result

            def stopService(self) -> Any:
                super().stopService()
                stopped.append(self.name)
                return self.result

        Child("snapshot").setServiceParent(p.service)
        Child("aggregator", slow).setServiceParent(p.service)
        p.service.startService()
        done = p.service.stopService()
        # The aggregator's grace is running: the snapshot must not be written yet.
        self.assertEqual(stopped, ["aggregator"])
        self.assertNoResult(done)
        slow.callback(None)
        self.assertEqual(stopped, ["aggregator", "snapshot"])
        self.successResultOf(done)


class ReprTests(SynchronousTestCase):
    def test_service_reprs_stay_small_however_many_entries(self) -> None:
        # signal.signal() formats the old handler (a bound method of PlanetService) into an
        # error message at every stop; an attrs repr of the whole store took 98 s and 6.9 GB.
        p = Planet(self, {GOOD: "Good", OTHER: "Other"})
        items = [Item(f"Post {n}", f"http://good.example/{n}", at(2026, 6, 1)) for n in range(500)]
        body = atom("Good", "http://good.example/", items)
        result = FetchResult(url=GOOD, final_url=GOOD, status=200, body=body)
        p.h.store.max_entries_per_feed = 0
        before = p.h.store.state(GOOD)
        update = update_feed(p.h.config, before, result, parse_feed(body, GOOD, NOW), NOW, Random())
        p.h.store.apply(GOOD, update)
        self.assertGreater(p.h.store.entry_count(), 500)
        for thing in (p.service, p.service._on_hup, p.h.store, p.h.aggregator, p.web):
            self.assertLess(len(repr(thing)), 300, type(thing))
