"""The Aggregator service: fetch cycles on a Clock, through a StubTreq-backed Fetcher,
parsed inline, recorded in a real Store.

The scheduling policy (intervals, backoff, jitter) belongs to planet.schedule; these tests
only rely on "a feed is fetched again within a few fetch intervals" and step the clock one
tick at a time until it happens, with a bound.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from feeds import Item, at, atom, rss2
from rig import Rig
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from planet.aggregator import Launch
from planet.config import Config, parse_config
from planet.model import ParsedFeed
from planet.store import Store
from planet.testing import HeldParser, InlineParser, MemoryFeeds, planet_ini
from planet.update import FeedUpdate
from planet.workers import ParseTimeoutError, inline_parser

NOW = at(2026, 6, 24, 9, 0)
GOOD = "http://good.example/feed"
OTHER = "http://other.example/rss"
SLOW = "http://slow.example/feed"
MISSING = "http://good.example/missing"
BIG = "http://big.example/feed"
TEXT = "http://text.example/feed"
LM1 = "Tue, 23 Jun 2026 20:00:00 GMT"
LM2 = "Wed, 24 Jun 2026 08:00:00 GMT"

GOOD_ITEMS = [
    Item("Good one", "http://good.example/1", at(2026, 6, 20)),
    Item("Good two", "http://good.example/2", at(2026, 6, 22)),
]
OTHER_ITEMS = [Item("Other one", "http://other.example/1", at(2026, 6, 21))]
GOOD_FEED = atom("Good", "http://good.example/", GOOD_ITEMS)
OTHER_FEED = rss2("Other", "http://other.example/", OTHER_ITEMS)


class Harness:
    def __init__(
        self,
        test: SynchronousTestCase,
        urls: list[str],
        *,
        fetch_interval: float = 300,
        feed_timeout: float = 1000,
        max_feed_bytes: str = "16k",
        per_host: int = 2,
        parser: Callable[..., Deferred[ParsedFeed]] = inline_parser,
        config: Config | None = None,
        extra: str = "",
    ) -> None:
        self.test = test
        # ``extra``: more [Planet] lines ("key = value").
        more = dict(
            (part.strip() for part in line.split("=", 1)) for line in extra.splitlines() if line
        )
        text = planet_ini(
            "Test Planet",
            [(url, url) for url in urls],
            link="http://planet.example/",
            fetch_interval=fetch_interval,
            feed_timeout=feed_timeout,
            max_feed_bytes=max_feed_bytes,
            per_host_concurrency=per_host,
            max_entries_per_feed=0,
            **more,
        )
        self.config: Config = config or parse_config(text, "test.ini")
        self.server = MemoryFeeds()
        self.rig = Rig(test, self.config, self.server, now=NOW, parser=parser)
        self.clock = self.rig.clock
        self.stub = self.rig.stub
        self.fetcher = self.rig.fetcher
        self.store = self.rig.store
        self.aggregator = self.rig.aggregator
        self.ingester = self.rig.ingester

    @property
    def tick(self) -> float:
        return self.aggregator.tick_interval

    def start(self) -> None:
        self.rig.start()
        self.rig.settle()

    def stop(self) -> None:
        self.rig.stop()

    def advance(self, seconds: float) -> None:
        self.rig.advance(seconds)

    def advance_until(self, condition: Callable[[], bool], intervals: float = 4) -> float:
        """Step one tick at a time until ``condition``; fail after ``intervals`` fetch intervals."""
        waited = 0.0
        while not condition():
            if waited > intervals * self.config.fetch_interval:
                self.test.fail(f"still waiting after {waited:g} s")
            self.advance(self.tick)
            waited += self.tick
        return waited

    def state(self, url: str) -> Any:
        return self.store.feed_states()[url]

    def river_links(self) -> list[str | None]:
        return [e.link for e in self.store.river()]

    @property
    def running(self) -> bool:
        timer = self.aggregator._timer
        return timer is not None and timer.running


class CycleTests(SynchronousTestCase):
    def test_start_runs_a_cycle_at_once(self) -> None:
        h = Harness(self, [GOOD, OTHER])
        h.server.serve(GOOD, GOOD_FEED, ETag='"g1"', Last_Modified=LM1)
        h.server.serve(OTHER, OTHER_FEED, content_type="application/rss+xml", ETag='"o1"')
        h.start()
        # No clock advance: the first cycle ran inside startService.
        self.assertEqual((h.server.count(GOOD), h.server.count(OTHER)), (1, 1))
        self.assertEqual(h.aggregator.cycles, 1)
        self.assertEqual(
            h.river_links(),
            ["http://good.example/2", "http://other.example/1", "http://good.example/1"],
        )
        self.assertEqual({e.title for e in h.store.entries_of(GOOD)}, {"Good one", "Good two"})
        self.assertEqual([e.feed_url for e in h.store.entries_of(OTHER)], [OTHER])
        good, other = h.state(GOOD), h.state(OTHER)
        self.assertEqual((good.http_status, good.etag, good.last_modified), (200, '"g1"', LM1))
        self.assertEqual((other.http_status, other.etag, other.last_modified), (200, '"o1"', None))
        for state in (good, other):
            self.assertIsNone(state.error)
            self.assertEqual(state.consecutive_errors, 0)
            self.assertEqual(state.last_success, NOW)
        self.assertEqual(good.title, "Good")
        # The request identified us.
        self.assertEqual(h.server.headers_of_last(GOOD)["user-agent"], h.config.user_agent)
        self.assertTrue(h.running)

    def test_feeds_are_fetched_again_later(self) -> None:
        h = Harness(self, [GOOD])
        h.server.serve(GOOD, GOOD_FEED)
        h.start()
        waited = h.advance_until(lambda: h.server.count(GOOD) == 2)
        # Not before the fetch interval...
        self.assertGreaterEqual(waited, h.config.fetch_interval * 0.9)
        self.assertEqual(h.aggregator.cycles, 2)
        # ...and a refetch of the same entries adds nothing.
        self.assertEqual(len(h.store.river()), 2)

    def test_cycles_never_overlap(self) -> None:
        h = Harness(self, [GOOD, SLOW], fetch_interval=60, feed_timeout=3600)
        h.server.serve(GOOD, GOOD_FEED)
        h.server.hang(SLOW)
        h.start()
        self.assertEqual(len(h.server.open), 1)
        # Ten fetch intervals, one tick at a time.
        for _ in range(round(10 * 60 / h.tick)):
            h.advance(h.tick)
        # Ten intervals later the first cycle is still waiting for SLOW: nothing is refetched.
        self.assertEqual((h.server.count(GOOD), h.server.count(SLOW)), (1, 1))
        self.assertEqual(h.aggregator.cycles, 1)
        self.assertTrue(h.running)
        # The cycle ends when SLOW answers; then fetching resumes.
        h.server.finish(SLOW, atom("Slow", "http://slow.example/", []))
        h.stub.flush()
        self.assertIsNone(h.state(SLOW).error)
        h.advance_until(lambda: h.server.count(GOOD) == 2)
        self.assertEqual(h.aggregator.cycles, 2)

    def test_conditional_get_and_304(self) -> None:
        h = Harness(self, [GOOD])
        h.server.serve(GOOD, GOOD_FEED, ETag='"v1"', Last_Modified=LM1)
        h.start()
        first = h.server.headers_of_last(GOOD)
        self.assertNotIn("if-none-match", first)
        self.assertNotIn("if-modified-since", first)
        entries = list(h.store.river())
        self.assertEqual(len(entries), 2)

        # The server now answers 304 and rotates its validators.
        h.server.serve(GOOD, b"", code=304, ETag='"v2"', Last_Modified=LM2)
        h.advance_until(lambda: h.server.count(GOOD) == 2)
        second = h.server.headers_of_last(GOOD)
        self.assertEqual(second["if-none-match"], '"v1"')
        self.assertEqual(second["if-modified-since"], LM1)
        state = h.state(GOOD)
        self.assertEqual((state.http_status, state.error), (304, None))
        self.assertEqual((state.etag, state.last_modified), ('"v2"', LM2))
        self.assertEqual(state.title, "Good")
        self.assertEqual(list(h.store.river()), entries)

        # The next cycle uses the refreshed validators.
        h.advance_until(lambda: h.server.count(GOOD) == 3)
        third = h.server.headers_of_last(GOOD)
        self.assertEqual((third["if-none-match"], third["if-modified-since"]), ('"v2"', LM2))
        self.assertEqual(list(h.store.river()), entries)


class FailingFeedTests(SynchronousTestCase):
    def test_each_failure_has_a_readable_reason(self) -> None:
        urls = [GOOD, MISSING, SLOW, BIG, TEXT]
        h = Harness(self, urls, feed_timeout=5, max_feed_bytes="16k")
        h.server.serve(GOOD, GOOD_FEED)
        h.server.serve(MISSING, b"<h1>Not here</h1>", code=404, content_type="text/html")
        h.server.hang(SLOW)
        big = atom(
            "Big",
            "http://big.example/",
            [Item(f"Big {n}", f"http://big.example/{n}", at(2026, 6, 1)) for n in range(200)],
        )
        self.assertGreater(len(big), 16 * 1024)
        h.server.serve(BIG, big)
        h.server.serve(TEXT, b"This is not a feed, just some text.", content_type="text/plain")
        h.start()
        self.assertEqual(len(h.server.open), 1)
        h.advance(5)
        self.assertEqual(h.server.lost, [SLOW])

        states = h.store.feed_states()
        self.assertEqual(set(states), set(urls))
        self.assertEqual(states[MISSING].error, "HTTP 404 Not Found")
        self.assertEqual(states[MISSING].http_status, 404)
        self.assertEqual(states[SLOW].error, "timed out after 5 s")
        self.assertIn("larger than 16384 bytes", states[BIG].error or "")
        self.assertTrue((states[TEXT].error or "").startswith("not a feed"), states[TEXT].error)
        self.assertEqual(states[TEXT].http_status, 200)
        for url in (MISSING, SLOW, BIG, TEXT):
            self.assertTrue(states[url].failing, url)
            self.assertEqual(states[url].consecutive_errors, 1)
            self.assertIsNone(states[url].last_success)
            self.assertNotIn("\n", states[url].error or "")
            self.assertNotIn("Traceback", states[url].error or "")
            self.assertEqual(h.store.entries_of(url), ())
        self.assertFalse(states[GOOD].failing)
        self.assertEqual(h.river_links(), ["http://good.example/2", "http://good.example/1"])
        self.assertTrue(h.running)


class BrokenParser(InlineParser):
    """Fails the first ``times`` calls (raising, or with a failed Deferred), then parses."""

    def __init__(self, times: int, raise_now: bool) -> None:
        super().__init__()
        self.times = times
        self.raise_now = raise_now
        self.calls = 0

    def __call__(
        self,
        body: bytes,
        url: str,
        now: datetime,
        content_type: str | None,
        max_entries: int,
        max_entry_bytes: int,
        timeout: float | None,
    ) -> Deferred[ParsedFeed]:
        self.calls += 1
        if self.calls <= self.times:
            exc = ZeroDivisionError("parser bug")
            if self.raise_now:
                raise exc
            return fail(exc)
        return inline_parser(body, url, now, content_type, max_entries, max_entry_bytes, timeout)


class LoopSurvivesTests(SynchronousTestCase):
    def check_parser_failure(self, raise_now: bool) -> None:
        parser = BrokenParser(times=2, raise_now=raise_now)
        h = Harness(self, [GOOD], parser=parser)
        h.server.serve(GOOD, GOOD_FEED)
        h.start()
        state = h.state(GOOD)
        self.assertTrue((state.error or "").startswith("parse error"), state.error)
        self.assertIn("ZeroDivisionError", state.error or "")
        self.assertEqual(h.store.entries_of(GOOD), ())
        self.assertTrue(h.running)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        # The loop keeps going: the feed is fetched (and fails) again...
        h.advance_until(lambda: h.server.count(GOOD) == 2)
        self.assertEqual(h.state(GOOD).consecutive_errors, 2)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        # ...and recovers once the parser works.
        h.advance_until(lambda: h.server.count(GOOD) == 3, intervals=8)
        self.assertIsNone(h.state(GOOD).error)
        self.assertEqual(len(h.store.entries_of(GOOD)), 2)
        self.assertTrue(h.running)

    def test_parser_raising(self) -> None:
        self.check_parser_failure(raise_now=True)

    def test_parser_failing_deferred(self) -> None:
        self.check_parser_failure(raise_now=False)

    def test_store_raising_once(self) -> None:
        h = Harness(self, [GOOD, OTHER])
        h.server.serve(GOOD, GOOD_FEED)
        h.server.serve(OTHER, OTHER_FEED)
        real = Store.apply
        calls: list[str] = []

        def flaky(store: Store, url: str, update: FeedUpdate) -> Any:
            calls.append(url)
            if len(calls) == 1:
                raise RuntimeError("store exploded")
            return real(store, url, update)

        self.patch(Store, "apply", flaky)
        h.start()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        broken = calls[0]
        fine = OTHER if broken == GOOD else GOOD
        self.assertEqual(h.state(broken).error, "internal error: store exploded")
        self.assertIsNone(h.state(fine).error)
        self.assertTrue(h.running)
        h.advance_until(lambda: h.server.count(broken) == 2, intervals=8)
        self.assertIsNone(h.state(broken).error)
        self.assertEqual(
            len(h.store.entries_of(broken)), len(GOOD_ITEMS if broken == GOOD else OTHER_ITEMS)
        )
        self.assertTrue(h.running)

    def test_store_raising_every_time(self) -> None:
        h = Harness(self, [GOOD], fetch_interval=60)

        def broken(*args: Any) -> Any:
            raise RuntimeError("store is gone")

        h.server.serve(GOOD, GOOD_FEED)
        self.patch(Store, "apply", broken)
        h.start()
        self.assertEqual(h.server.count(GOOD), 1)
        self.assertTrue(h.running)
        for n in range(2, 5):

            def fetched(n: int = n) -> bool:
                return h.server.count(GOOD) == n

            h.advance_until(fetched, intervals=8)
            self.assertTrue(h.running)
        self.assertGreaterEqual(len(self.flushLoggedErrors(RuntimeError)), 3)

    def test_error_before_any_fetch(self) -> None:
        h = Harness(self, [GOOD], fetch_interval=60)
        h.server.serve(GOOD, GOOD_FEED)
        real = Store.feed_states
        calls: list[int] = []

        def flaky(store: Store) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("states unavailable")
            return real(store)

        self.patch(Store, "feed_states", flaky)
        h.start()
        self.assertEqual(h.server.count(GOOD), 0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(h.running)
        h.advance(h.tick)
        self.assertEqual(h.server.count(GOOD), 1)
        self.assertIsNone(h.state(GOOD).error)


class StopTests(SynchronousTestCase):
    def test_stop_cancels_in_flight_fetches(self) -> None:
        h = Harness(self, [GOOD, SLOW], fetch_interval=60)
        h.server.serve(GOOD, GOOD_FEED)
        h.server.serve(SLOW, atom("Slow", "http://slow.example/", []), ETag='"s1"')
        h.start()
        before = h.state(SLOW)
        self.assertIsNone(before.error)
        # The next fetch of SLOW hangs.
        h.server.hang(SLOW)
        h.advance_until(lambda: len(h.server.open) == 1)
        stopped = h.aggregator.stopService()
        h.stub.flush()
        # Running fetches get a grace period; after it they are abandoned.
        self.assertNoResult(stopped)
        h.clock.advance(h.aggregator.grace - 0.1)
        h.stub.flush()
        self.assertNoResult(stopped)
        self.assertEqual(h.server.lost, [])
        h.clock.advance(0.1)
        h.stub.flush()
        self.successResultOf(stopped)
        # The request was abandoned (connection dropped) and the feed keeps its state.
        self.assertEqual(h.server.lost, [SLOW])
        self.assertEqual(h.server.open, [])
        self.assertEqual(h.state(SLOW), before)
        self.assertFalse(h.state(SLOW).failing)
        self.assertFalse(h.running)
        # Nothing is fetched after the stop.
        count = len(h.server.requests)
        h.advance(h.config.fetch_interval * 5)
        self.assertEqual(len(h.server.requests), count)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_fetch_finishing_within_the_grace_is_recorded(self) -> None:
        slow2 = "http://slow.example/other"
        h = Harness(self, [SLOW, slow2], per_host=1)
        h.server.hang(SLOW)
        h.server.hang(slow2)
        h.start()
        stopped = h.aggregator.stopService()
        h.clock.advance(h.aggregator.grace / 2)
        h.server.finish(SLOW, atom("Slow", "http://slow.example/", []))
        h.stub.flush()
        # The running fetch completed in time and is recorded; the queued one never started.
        self.successResultOf(stopped)
        self.assertEqual(h.state(SLOW).http_status, 200)
        self.assertNotIn(slow2, h.store.feed_states())
        self.assertEqual(len(h.server.requests), 1)

    def test_stop_drops_queued_fetches(self) -> None:
        slow2 = "http://slow.example/other"
        h = Harness(self, [SLOW, slow2], per_host=1)
        h.server.hang(SLOW)
        h.server.hang(slow2)
        h.start()
        # One request on the wire, the other queued behind the per-host limit.
        self.assertEqual(len(h.server.open), 1)
        self.assertEqual(len(h.server.requests), 1)
        stopped = h.aggregator.stopService()
        h.clock.advance(h.aggregator.grace)
        h.stub.flush()
        self.successResultOf(stopped)
        # Every request that reached the server was dropped; nothing is recorded.
        self.assertEqual(h.server.open, [])
        self.assertEqual(len(h.server.lost), len(h.server.requests))
        self.assertEqual(dict(h.store.feed_states()), {})
        self.assertFalse(h.running)
        # The queued fetch never started a request during shutdown, and its cancellation
        # is not logged as an error.
        self.assertEqual(len(h.server.requests), 1)
        h.advance(h.config.fetch_interval * 3)
        self.assertEqual(len(h.server.requests), 1)
        self.assertEqual(self.flushLoggedErrors(), [])


class RefreshTests(SynchronousTestCase):
    """SIGUSR1's "fetch everything now", and the one log line each cycle ends with."""

    def test_refresh_all_fetches_every_healthy_feed_at_once(self) -> None:
        h = Harness(self, [GOOD, OTHER, MISSING])
        h.server.serve(GOOD, GOOD_FEED, ETag='"g1"')
        h.server.serve(OTHER, OTHER_FEED, content_type="application/rss+xml")
        h.start()
        self.assertEqual(h.aggregator.cycles, 1)
        h.advance(h.tick)
        # Nothing was due a tick later...
        self.assertEqual(h.server.count(GOOD), 1)
        self.assertEqual(h.aggregator.refresh_all(), 2)
        # ...and now the healthy feeds are fetched at once (conditionally: validators kept),
        # while the failing one keeps its backoff.
        self.assertEqual((h.server.count(GOOD), h.server.count(OTHER)), (2, 2))
        self.assertEqual(h.server.headers_of_last(GOOD)["if-none-match"], '"g1"')
        self.assertEqual(h.server.count(MISSING), 1)
        self.assertEqual(h.aggregator.cycles, 2)

    def test_refresh_during_a_cycle_changes_no_state_and_the_next_cycle_fetches(self) -> None:
        h = Harness(self, [GOOD, SLOW])
        h.server.serve(GOOD, GOOD_FEED, ETag='"g1"')
        h.server.serve(SLOW, atom("Slow", "http://slow.example/", []))
        h.start()
        h.server.hang(SLOW)
        h.advance_until(lambda: len(h.server.open) == 1)
        states = dict(h.store.feed_states())
        # A cycle is running: the refresh waits for the next one, and changes no state
        # meanwhile (10,000 states made due one by one held the reactor ~100 ms).
        self.assertEqual(h.aggregator.refresh_all(), 2)
        self.assertEqual(dict(h.store.feed_states()), states)
        fetched = h.server.count(GOOD)
        h.server.finish(SLOW, atom("Slow", "http://slow.example/", []))
        h.stub.flush()
        h.advance(h.tick)
        self.assertEqual(h.server.count(GOOD), fetched + 1)
        # Once: the cycle after that fetches only what is due again.
        h.advance(h.tick)
        self.assertEqual(h.server.count(GOOD), fetched + 1)

    def test_a_kick_during_a_cycle_runs_another_right_after_it(self) -> None:
        """A refresh (or a reload's new feed) while a cycle runs: fetched when that cycle
        ends, not at a tick up to a minute later."""
        h = Harness(self, [GOOD, SLOW], fetch_interval=3600)
        h.server.serve(GOOD, GOOD_FEED)
        h.server.hang(SLOW)
        h.start()
        self.assertEqual((h.aggregator.cycles, h.server.count(GOOD)), (1, 1))
        h.aggregator.refresh_all()
        self.assertEqual(h.aggregator.cycles, 1)
        h.server.finish(SLOW, atom("Slow", "http://slow.example/", []))
        h.stub.flush()
        h.clock.advance(0)
        h.stub.flush()
        self.assertEqual((h.aggregator.cycles, h.server.count(GOOD)), (2, 2))

    def test_refresh_all_respects_retry_after(self) -> None:
        h = Harness(self, [GOOD])
        h.server.serve(GOOD, b"busy", code=503, Retry_After="3600")
        h.start()
        h.server.serve(GOOD, GOOD_FEED)
        self.assertEqual(h.aggregator.refresh_all(), 0)
        self.assertEqual(h.server.count(GOOD), 1)

    def test_every_cycle_ends_with_one_summary_line(self) -> None:
        events: list[dict[str, Any]] = []
        h = Harness(self, [GOOD, OTHER, MISSING])
        h.aggregator._log = Logger(observer=events.append)
        h.server.serve(GOOD, GOOD_FEED)
        h.server.serve(OTHER, OTHER_FEED, content_type="application/rss+xml")
        h.start()
        h.aggregator.refresh_all()
        lines = [formatEvent(e) for e in events if "cycle" in e["log_format"]]
        self.assertEqual(
            lines,
            [
                "cycle 1 done: 3 feeds in 0.000 s (2 ok, 1 failing, 2 parsed)",
                # Byte-identical bodies are not parsed again.
                "cycle 2 done: 2 feeds in 0.000 s (2 ok, 0 failing, 0 parsed)",
            ],
        )

    def test_after_cycle_runs_once_per_cycle_and_cannot_stop_the_loop(self) -> None:
        calls: list[int] = []
        h = Harness(self, [GOOD])
        h.server.serve(GOOD, GOOD_FEED)

        def after() -> None:
            calls.append(h.aggregator.cycles)
            raise RuntimeError("broken hook")

        h.aggregator.after_cycle = after
        h.start()
        h.aggregator.refresh_all()
        self.assertEqual(calls, [1, 2])
        h.aggregator.refresh_all()
        self.assertEqual(calls, [1, 2, 3])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 3)


class ParseBacklogTests(SynchronousTestCase):
    """A cycle fetches no further ahead of the parser than twice ``max_concurrency`` feeds:
    bodies waiting to be parsed are what a cold cycle's memory is made of."""

    def setUp(self) -> None:
        self.urls = [f"http://h{n}.example/feed" for n in range(50)]
        parser = HeldParser()
        self.parsing = parser.held
        self.h = Harness(self, self.urls, parser=parser)
        for n, url in enumerate(self.urls):
            item = Item(f"Post {n}", f"http://h{n}.example/1", at(2026, 6, 1))
            self.h.server.serve(url, atom(f"Feed {n}", f"http://h{n}.example/", [item]))
        self.bound = 2 * self.h.config.max_concurrency

    def parse_one(self) -> None:
        d, args = self.parsing.pop(0)
        inline_parser(*args).chainDeferred(d)
        self.h.stub.flush()

    def test_a_parse_done_lets_one_more_fetch_start(self) -> None:
        self.h.start()
        self.assertEqual((len(self.h.server.requests), len(self.parsing)), (self.bound, self.bound))
        self.parse_one()
        self.assertEqual(len(self.h.server.requests), self.bound + 1)
        while self.parsing:
            self.parse_one()
            self.assertLessEqual(len(self.parsing), self.bound)
        self.assertEqual(len(self.h.server.requests), len(self.urls))
        self.assertEqual(sum(len(self.h.store.entries_of(url)) for url in self.urls), 50)
        self.assertIsNone(self.h.aggregator._cycle)

    def test_stop_with_bodies_waiting_for_the_parser(self) -> None:
        self.h.start()
        stopped = self.h.aggregator.stopService()
        self.h.clock.advance(self.h.aggregator.grace)
        self.h.stub.flush()
        self.successResultOf(stopped)
        # Parses abandoned, queued feeds never fetched, nothing recorded, nothing logged.
        self.assertEqual(len(self.h.server.requests), self.bound)
        self.assertEqual(dict(self.h.store.feed_states()), {})
        self.assertEqual(self.flushLoggedErrors(), [])


# --- the parse time limit and the entry size bound (issue 19) --------------------------------

SLOW = "http://slow.example/feed"
SLOW_FEED = atom("Slow", "http://slow.example/", [Item("Slow one", "http://slow.example/1", NOW)])


class TimingOutParser(InlineParser):
    """Runs out of time on the bodies in ``slow``, parses the others; records every call."""

    def __init__(self, slow: set[bytes]) -> None:
        super().__init__()
        self.slow = slow
        self.calls: list[tuple[str, int, float | None]] = []

    def __call__(
        self,
        body: bytes,
        url: str,
        now: datetime,
        content_type: str | None,
        max_entries: int,
        max_entry_bytes: int,
        timeout: float | None,
    ) -> Deferred[ParsedFeed]:
        self.calls.append((url, max_entry_bytes, timeout))
        if body in self.slow:
            assert timeout is not None
            return fail(ParseTimeoutError(timeout))
        return inline_parser(body, url, now, content_type, max_entries, max_entry_bytes, timeout)

    def count(self, url: str) -> int:
        return sum(1 for called, _, _ in self.calls if called == url)


class ParseTimeLimitTests(SynchronousTestCase):
    def test_a_parse_out_of_time_fails_the_feed_and_the_body_is_not_parsed_again(self) -> None:
        parser = TimingOutParser({SLOW_FEED})
        h = Harness(self, [GOOD, SLOW], parser=parser, extra="parse_timeout = 7\n")
        h.server.serve(GOOD, GOOD_FEED)
        h.server.serve(SLOW, SLOW_FEED)
        h.start()
        self.assertEqual(h.state(SLOW).error, "parse timed out after 7 s")
        self.assertEqual(h.store.entries_of(SLOW), ())
        self.assertFalse(h.state(GOOD).failing)
        self.assertEqual(len(h.store.entries_of(GOOD)), len(GOOD_ITEMS))
        self.assertEqual({timeout for _, _, timeout in parser.calls}, {7.0})
        self.assertEqual({size for _, size, _ in parser.calls}, {512 * 1024})
        # Fetched again (after its back-off), the same body: not parsed, still failing, for
        # the same reason; not reported as a success.
        h.advance_until(lambda: h.server.count(SLOW) == 3, intervals=8)
        self.assertEqual(parser.count(SLOW), 1)
        state = h.state(SLOW)
        self.assertEqual((state.error, state.consecutive_errors), ("parse timed out after 7 s", 3))
        # A new body is parsed again.
        fixed = atom("Slow", "http://slow.example/", [Item("Fixed", "http://slow.example/2", NOW)])
        h.server.serve(SLOW, fixed)
        h.advance_until(lambda: h.server.count(SLOW) == 4, intervals=8)
        self.assertEqual(parser.count(SLOW), 2)
        self.assertIsNone(h.state(SLOW).error)
        self.assertEqual([e.title for e in h.store.entries_of(SLOW)], ["Fixed"])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_other_parse_failures_are_parsed_again(self) -> None:
        h = Harness(self, [GOOD])
        h.server.serve(GOOD, b"not a feed at all")
        h.start()
        self.assertTrue(h.state(GOOD).error.startswith("not a feed"))
        parses = h.ingester.parses
        h.advance_until(lambda: h.server.count(GOOD) == 2, intervals=8)
        self.assertEqual(h.ingester.parses, parses + 1)


class EntrySizeTests(SynchronousTestCase):
    def test_long_content_is_cut_with_a_link_to_the_entry(self) -> None:
        long = "<p>" + "word " * 4000 + "</p><p>the end</p>"
        items = [Item("Long", "http://good.example/long", NOW, long)]
        h = Harness(self, [GOOD], max_feed_bytes="64k", extra="max_entry_bytes = 2k\n")
        h.server.serve(GOOD, atom("Good", "http://good.example/", items))
        h.start()
        (entry,) = h.store.entries_of(GOOD)
        self.assertLessEqual(len(entry.content.encode()), 2048)
        self.assertTrue(entry.content.startswith("<p>word word"))
        self.assertTrue(
            entry.content.endswith(
                '</p><p><a href="http://good.example/long" rel="noopener noreferrer">'
                "Read more</a></p>"
            ),
            entry.content[-200:],
        )
        self.assertNotIn("the end", entry.content)


class LaunchTests(SynchronousTestCase):
    """A cycle's updates start a few at a time (planet.aggregator.Launch)."""

    def setUp(self) -> None:
        self.started: list[str] = []
        self.pending: dict[str, Deferred[None]] = {}

    def start(self, sub: Any) -> Deferred[None]:
        self.started.append(sub)
        d: Deferred[None] = Deferred()
        self.pending[sub] = d
        return d

    def finish(self, sub: str) -> None:
        self.pending.pop(sub).callback(None)

    def test_per_host_and_window_limits_hosts_in_turn(self) -> None:
        launch = Launch(self.start, per_host=2, window=5)
        subs = [("a", f"a{i}") for i in range(4)] + [("b", "b0"), ("c", "c0"), ("c", "c1")]
        done = launch.run(subs)  # type: ignore[arg-type]
        # Hosts take turns: a, b, c, a, c; a's third waits for a slot of a's.
        self.assertEqual(self.started, ["a0", "b0", "c0", "a1", "c1"])
        self.finish("b0")
        self.assertEqual(self.started[5:], [])  # a is at its limit, nothing else is left
        self.finish("a0")
        self.assertEqual(self.started[5:], ["a2"])
        for sub in ["a1", "c0", "c1", "a2"]:
            self.assertNoResult(done)
            self.finish(sub)
        self.assertEqual(self.started[6:], ["a3"])
        self.finish("a3")
        self.successResultOf(done)

    def test_updates_that_end_at_once_do_not_recurse(self) -> None:
        ran: list[int] = []

        def start(sub: Any) -> Deferred[None]:
            ran.append(sub)
            return Deferred.fromCoroutine(_nothing())

        subs = [(f"h{i % 64}", i) for i in range(20_000)]
        done = Launch(start, per_host=2, window=64).run(subs)  # type: ignore[arg-type]
        self.successResultOf(done)
        self.assertEqual(sorted(ran), list(range(20_000)))

    def test_nothing_to_do_is_done(self) -> None:
        self.successResultOf(Launch(self.start, per_host=2, window=4).run([]))

    def test_stop_starts_nothing_more_and_waits_for_the_running(self) -> None:
        launch = Launch(self.start, per_host=1, window=2)
        done = launch.run([("a", "a0"), ("a", "a1"), ("b", "b0"), ("b", "b1")])  # type: ignore[list-item]
        self.assertEqual(self.started, ["a0", "b0"])
        self.assertEqual(launch.stop(), 2)
        self.finish("a0")
        self.assertNoResult(done)
        self.finish("b0")
        self.successResultOf(done)
        self.assertEqual(self.started, ["a0", "b0"])

    def test_with_a_clock_a_few_pairs_and_starts_per_turn(self) -> None:
        """10,000 feeds grouped in one turn, and 64 fetches started in it, held the reactor
        ~35 ms at a cycle's start: with a clock, ``per_turn`` pairs are taken and at most
        ``burst`` updates started per turn."""
        clock = Clock()
        taken: list[int] = []
        seen: list[int] = []  # how many pairs were taken when each update started

        def pairs() -> Any:
            for i in range(1000):
                taken.append(i)
                yield (f"h{i % 50}", f"s{i}")

        def start(sub: Any) -> Deferred[None]:
            seen.append(len(taken))
            return self.start(sub)

        launch = Launch(start, per_host=2, window=64, clock=clock, per_turn=100, burst=16)
        done = launch.run(pairs())
        self.assertEqual((len(taken), len(self.started)), (100, 16))
        clock.advance(0)
        # A turn: 100 pairs taken, 16 started; the next: 100 more, 16 more; until the
        # window is full; then turns take the rest, and stop.
        self.assertEqual(seen, [100] * 16 + [200] * 16 + [300] * 16 + [400] * 16)
        self.assertEqual((len(taken), len(self.started)), (1000, 64))
        self.assertEqual(clock.getDelayedCalls(), [])
        # Each finished update starts the next at once (fewer than a burst).
        for sub in self.started[:5]:
            self.finish(sub)
        self.assertEqual(len(self.started), 69)
        while self.pending:
            self.assertNoResult(done)
            for sub in list(self.pending):
                self.finish(sub)
            clock.advance(0)
        self.successResultOf(done)
        self.assertEqual(sorted(self.started), sorted(f"s{i}" for i in range(1000)))

    def test_stop_while_taking_drops_the_rest_and_cancels_its_turns(self) -> None:
        clock = Clock()
        subs = [(f"h{i % 10}", f"s{i}") for i in range(1000)]
        launch = Launch(self.start, per_host=2, window=64, clock=clock, per_turn=100, burst=16)
        done = launch.run(iter(subs))  # type: ignore[arg-type]
        self.assertEqual(len(self.started), 16)
        # Stopped after the first turn (a burst of 16): the rest is never started.
        self.assertEqual(launch.stop(), 1000 - 16)
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(0)
        self.assertEqual(len(self.started), 16)
        for sub in list(self.pending):
            self.assertNoResult(done)
            self.finish(sub)
        self.successResultOf(done)


async def _nothing() -> None:
    return None


class CycleLaunchTests(SynchronousTestCase):
    def test_a_large_cycle_has_a_window_of_updates_in_flight(self) -> None:
        """500 feeds on 50 hosts, every one hanging: the cycle starts no more updates than
        its window, and each finished one starts the next."""
        urls = [f"http://h{i % 50}.example/feed{i}" for i in range(500)]
        h = Harness(self, urls, per_host=2)
        for url in urls:
            h.server.hang(url)
        h.start()
        window = 4 * h.config.max_concurrency
        self.assertEqual(h.ingester.running, window)
        self.assertEqual(len(h.server.open), h.config.max_concurrency)
        for url, _ in list(h.server.open)[:5]:
            h.server.finish(url, atom("F", "http://site.example/", []))
        h.stub.flush()
        self.assertEqual(h.ingester.running, window)
        self.assertEqual(len(h.server.requests), h.config.max_concurrency + 5)
        for _ in range(100):
            for url, _ in list(h.server.open):
                h.server.finish(url, atom("F", "http://site.example/", []))
            h.stub.flush()
            if not h.server.open:
                break
        self.assertEqual(len(h.store.feed_states()), 500)
        self.assertEqual(h.ingester.running, 0)
        self.assertIsNone(h.aggregator._cycle)
