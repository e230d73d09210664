"""A polite, self-healing fetcher: the acceptance points of the issue, one class each.

Time-dependent behaviour runs on a :class:`Clock` through a StubTreq-backed Fetcher, the
inline parser, a real Store and a config from :func:`parse_config`. The clock is stepped
from one scheduled call to the next (aggregator ticks, held responses), so every request
the stub server records carries the exact Clock time it was made at.

Exact times use :class:`MidRandom` (every jitter at the middle of its range: backoff x1.0,
success spread +2.5 % of the interval); :class:`JitterBoundsTests` checks the real
+/-10 % range once with a seeded :class:`random.Random`. A feed is fetched on the first
aggregator tick at or after its due time, so waits are asserted within one tick.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast

import pytest
from feeds import Item, at, atom, rss2
from loopback import ConnectionTracker, HoldingFeed, loopback_client, reactor
from rig import Rig
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock, deferLater
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from planet.config import Config, parse_config
from planet.model import Entry, FeedState, FetchResult, ParsedFeed, utc_from_timestamp
from planet.parse import parse_feed
from planet.render import format_entry_time
from planet.schedule import stable_offset
from planet.service import build_service
from planet.snapshotcodec import decode, encode
from planet.testing import (
    ATOM,
    HANG,
    HTML,
    InlineParser,
    MemoryFeeds,
    Reply,
    ok,
    planet_ini,
    redirect,
    status,
)
from planet.update import update_feed
from planet.workers import inline_parser

NOW = at(2026, 6, 24, 9, 0)
EPS = 1e-3

#: The keys every /feeds.json row has had since it was published: new keys may be added,
#: none of these may go.
ORIGINAL_ROW_KEYS = frozenset(
    {
        "url",
        "current_url",
        "name",
        "state",
        "http_status",
        "reason",
        "consecutive_errors",
        "last_fetch",
        "next_fetch",
        "entries",
        "newest_entry",
        # Added by planet beyond the eleven keys the status page promises (activity_threshold).
        "inactive",
    }
)
ROW_KEYS = ORIGINAL_ROW_KEYS | {
    # Issue 14: the feed's WebSub subscription (off without one).
    "websub",
    "websub_hub",
    "websub_expires",
    "last_push",
}
STATE_ORDER = ["failing", "gone", "waiting", "not-modified", "ok"]


class MidRandom(random.Random):
    """Every ``uniform(a, b)`` is the midpoint: backoff jitter x1.0, spread +2.5 %."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def feed(site: str, n: int = 2, title: str = "Feed") -> bytes:
    """An Atom feed whose feed id is ``site`` and whose entries link below ``site``."""
    items = [Item(f"{title} {k}", f"{site}{k}", at(2026, 6, 10 + k)) for k in range(1, n + 1)]
    return atom(title, site, items)


def iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


# --- the stub feed server ---------------------------------------------------------------


# --- the farm: aggregator + store + web on one Clock ------------------------------------

Sub = str | tuple[str, str]


def make_config(
    subs: Iterable[Sub],
    fetch_interval: float = 60,
    max_backoff: float = 86400,
    feed_timeout: float = 100000,
    per_host: int = 2,
    max_concurrency: int = 16,
) -> Config:
    text = planet_ini(
        "Polite Planet",
        subs,
        link="http://planet.example/",
        fetch_interval=fetch_interval,
        max_backoff=max_backoff,
        feed_timeout=feed_timeout,
        per_host_concurrency=per_host,
        max_concurrency=max_concurrency,
        max_entries_per_feed=0,
    )
    return parse_config(text, "polite.ini")


class Farm:
    """An Aggregator on a Clock, fetching from a :class:`MemoryFeeds` through StubTreq."""

    def __init__(
        self,
        test: SynchronousTestCase,
        subs: Sequence[Sub],
        *,
        rng: random.Random | None = None,
        parser: Callable[..., Deferred[ParsedFeed]] = inline_parser,
        server: MemoryFeeds | None = None,
        loaded: tuple[list[Entry], list[FeedState]] | None = None,
        start: float | None = None,
        **config: Any,
    ) -> None:
        self.test = test
        self.config = make_config(subs, **config)
        self.clock = Clock()
        self.clock.advance(NOW.timestamp() if start is None else start)
        self.t0 = self.clock.seconds()
        self.server = server or MemoryFeeds(self.clock)
        self.server.clock = self.clock
        self.rig = Rig(
            test, self.config, self.server, clock=self.clock, parser=parser, rng=rng or MidRandom()
        )
        self.stub = self.rig.stub
        self.fetcher = self.rig.fetcher
        self.store = self.rig.store
        if loaded is not None:
            self.store.load(*loaded)
        self.aggregator = self.rig.aggregator
        self.ingester = self.rig.ingester
        self.web = self.rig.web
        self.web_stub: Any = StubTreq(self.web.app.resource())

    # --- running ---------------------------------------------------------------------

    @property
    def tick(self) -> float:
        return self.aggregator.tick_interval

    @property
    def interval(self) -> float:
        return self.config.fetch_interval

    def now(self) -> float:
        return self.clock.seconds() - self.t0

    def start(self) -> None:
        self.rig.start()
        self.flush()

    def stop(self) -> None:
        self.rig.stop()
        self.flush()

    def flush(self) -> None:
        """Pump the stub connections until no new request reaches the server."""
        quiet = 0
        while quiet < 3:
            before = len(self.server.requests)
            self.rig.settle()
            quiet = quiet + 1 if len(self.server.requests) == before else 0

    def step(self, limit: float) -> None:
        """Advance to the next scheduled call (tick, held response), or to ``limit``."""
        now = self.clock.seconds()
        pending = [c.getTime() for c in self.clock.getDelayedCalls()]
        target = min([*pending, limit])
        if target > now:
            self.clock.advance(target - now)
            if self.clock.seconds() < target:  # float rounding: land exactly on the call
                self.clock.rightNow = target
        self.clock.advance(0)
        self.flush()

    def run_for(self, seconds: float) -> None:
        end = self.clock.seconds() + seconds
        while self.clock.seconds() < end:
            self.step(end)

    def run_until(self, condition: Callable[[], bool], within: float) -> float:
        """Step until ``condition``; fail after ``within`` seconds. Returns the time waited."""
        started = self.clock.seconds()
        end = started + within
        while not condition():
            if self.clock.seconds() >= end:
                self.test.fail(f"condition still false after {within:g} s")
            self.step(end)
        return self.clock.seconds() - started

    def run_until_count(self, url: str, n: int, within: float) -> float:
        return self.run_until(lambda: self.server.count(url) >= n, within)

    def times(self, url: str) -> list[float]:
        return [t - self.t0 for t in self.server.times(url)]

    def state(self, url: str) -> FeedState:
        return self.store.feed_states()[url]

    # --- the web view ----------------------------------------------------------------

    def get(self, path: str) -> tuple[int, bytes]:
        d = self.web_stub.get("http://planet.example" + path)
        self.web_stub.flush()
        response = self.test.successResultOf(d)
        body = self.web_stub.content(response)
        self.web_stub.flush()
        return response.code, self.test.successResultOf(body)

    def feed_rows(self) -> list[dict[str, Any]]:
        code, body = self.get("/feeds.json")
        self.test.assertEqual(code, 200)
        rows = json.loads(body)
        assert isinstance(rows, list)
        return rows

    def row(self, url: str) -> dict[str, Any]:
        return next(r for r in self.feed_rows() if r["url"] == url)


class FarmTestCase(SynchronousTestCase):
    def assertWait(self, got: float, expected: float, tick: float, what: str = "") -> None:
        """``got`` is ``expected`` rounded up to the next aggregator tick."""
        self.assertGreaterEqual(got, expected - EPS, f"{what}: waited {got:g} s < {expected:g} s")
        self.assertLess(got, expected + tick + EPS, f"{what}: waited {got:g} s >> {expected:g} s")

    def waits(self, times: Sequence[float]) -> list[float]:
        return [b - a for a, b in zip(times, times[1:], strict=False)]


# --- 1. permanent and temporary redirects -----------------------------------------------

OLD = "http://old.example/feed"
MID = "http://mid.example/feed"
NEW = "http://new.example/feed"
NEW_FEED = feed("http://new.example/", title="New")


class RedirectTests(FarmTestCase):
    def moved_farm(self) -> Farm:
        f = Farm(self, [OLD])
        f.server.plan(OLD, redirect(301, MID))
        f.server.plan(MID, redirect(308, NEW))
        f.server.plan(NEW, ok(NEW_FEED))
        return f

    def test_permanent_chain_adopted_after_second_fetch(self) -> None:
        f = self.moved_farm()
        f.start()
        self.assertEqual(f.server.urls(), [OLD, MID, NEW])
        state = f.state(OLD)
        # Seen once: pending, not adopted yet.
        self.assertEqual(
            (state.current_url, state.pending_move, state.pending_count), (None, NEW, 1)
        )
        self.assertEqual(state.fetch_url, OLD)
        self.assertIn(f"redirects permanently to {NEW}", f.row(OLD)["reason"])
        self.assertEqual(len(f.store.river()), 2)

        f.run_until_count(OLD, 2, within=3 * f.interval)
        self.assertEqual(f.server.urls(), [OLD, MID, NEW] * 2)
        state = f.state(OLD)
        self.assertEqual(
            (state.current_url, state.pending_move, state.pending_count), (NEW, None, 0)
        )

        # The third fetch asks the new URL directly.
        f.run_until_count(NEW, 3, within=3 * f.interval)
        self.assertEqual(f.server.urls(), [OLD, MID, NEW] * 2 + [NEW])
        # And so does every later one: the old URLs get nothing more.
        f.run_for(5 * f.interval)
        self.assertEqual((f.server.count(OLD), f.server.count(MID)), (2, 2))
        self.assertGreaterEqual(f.server.count(NEW), 3 + 4)
        self.assertEqual(f.state(OLD).current_url, NEW)
        # Entries still belong to the subscription, once each.
        self.assertEqual([e.feed_url for e in f.store.river()], [OLD, OLD])
        row = f.row(OLD)
        self.assertEqual((row["url"], row["current_url"], row["state"]), (OLD, NEW, "ok"))
        self.assertIn(f"moved to {NEW}", row["reason"])

    def test_entries_fetched_after_adoption_belong_to_the_subscription(self) -> None:
        f = self.moved_farm()
        more = atom(
            "New",
            "http://new.example/",
            [Item(f"New {k}", f"http://new.example/{k}", at(2026, 6, 10 + k)) for k in (1, 2, 3)],
        )
        f.start()
        f.run_until_count(OLD, 2, within=3 * f.interval)
        self.assertEqual(f.state(OLD).current_url, NEW)
        f.server.plan(NEW, ok(more))
        f.run_until_count(NEW, 3, within=3 * f.interval)
        self.assertEqual(len(f.store.entries_of(OLD)), 3)
        self.assertEqual([e.feed_url for e in f.store.river()], [OLD] * 3)

    def test_https_upgrade_on_same_host_adopted_at_once(self) -> None:
        plain, secure = "http://secure.example/feed", "https://secure.example/feed"
        f = Farm(self, [plain])
        f.server.plan(plain, redirect(301, secure))
        f.server.plan(secure, ok(feed("https://secure.example/")))
        f.start()
        self.assertEqual(f.server.urls(), [plain, secure])
        self.assertEqual(f.state(plain).current_url, secure)
        f.run_until(lambda: len(f.server.requests) >= 3, within=3 * f.interval)
        self.assertEqual(f.server.urls(), [plain, secure, secure])
        f.run_for(3 * f.interval)
        self.assertEqual(f.server.count(plain), 1)

    def test_permanent_move_to_other_host_not_adopted_at_once(self) -> None:
        # The http->https shortcut is for the same host only.
        plain, other = "http://a.example/feed", "https://b.example/feed"
        f = Farm(self, [plain])
        f.server.plan(plain, redirect(301, other))
        f.server.plan(other, ok(feed("https://b.example/")))
        f.start()
        self.assertIsNone(f.state(plain).current_url)
        self.assertEqual(f.state(plain).pending_move, other)

    def test_adoption_survives_restart(self) -> None:
        f = self.moved_farm()
        f.start()
        f.run_until_count(OLD, 2, within=3 * f.interval)
        self.assertEqual(f.state(OLD).current_url, NEW)
        f.stop()
        seen = len(f.server.requests)

        # Restart an hour later from the snapshot bytes, into a fresh store and aggregator.
        data = encode(*f.store.snapshot_data(), utc_from_timestamp(f.clock.seconds()))
        g = Farm(self, [OLD], server=f.server, loaded=decode(data), start=f.clock.seconds() + 3600)
        g.start()
        self.assertEqual(f.server.urls()[seen:], [NEW])
        self.assertEqual(g.state(OLD).current_url, NEW)
        row = g.row(OLD)
        self.assertEqual((row["url"], row["current_url"], row["state"]), (OLD, NEW, "ok"))
        self.assertIn(f"moved to {NEW}", row["reason"])
        self.assertEqual(row["entries"], 2)
        g.run_for(3 * g.interval)
        self.assertEqual((f.server.count(OLD), f.server.count(MID)), (2, 2))

    def test_temporary_redirect_followed_never_adopted(self) -> None:
        url, there = "http://temp.example/feed", "http://elsewhere.example/feed"
        f = Farm(self, [url])
        f.server.plan(url, redirect(302, there))
        f.server.plan(there, ok(feed("http://elsewhere.example/")))
        f.start()
        f.run_until_count(url, 5, within=8 * f.interval)
        self.assertEqual(f.server.urls(), [url, there] * 5)
        state = f.state(url)
        self.assertEqual((state.current_url, state.pending_move, state.error), (None, None, None))
        self.assertEqual(state.final_url, there)
        row = f.row(url)
        self.assertEqual((row["current_url"], row["state"]), (None, "ok"))

    def test_redirect_loop_fails(self) -> None:
        a, b = "http://loop.example/a", "http://loop.example/b"
        f = Farm(self, [a])
        f.server.plan(a, redirect(301, b))
        f.server.plan(b, redirect(301, a))
        f.start()
        self.assertEqual(f.server.urls(), [a, b])
        state = f.state(a)
        self.assertTrue(state.failing)
        self.assertIn("redirect loop", state.error or "")
        self.assertIsNone(state.current_url)
        row = f.row(a)
        self.assertEqual(row["state"], "failing")
        self.assertIn("redirect loop", row["reason"])


# --- 2. 410 Gone ------------------------------------------------------------------------


class GoneTests(FarmTestCase):
    def test_gone_is_never_fetched_again_but_keeps_entries(self) -> None:
        url = "http://gone.example/feed"
        body = atom(
            "Gone Blog",
            "http://gone.example/",
            [Item("Last words", "http://gone.example/last", at(2026, 6, 20))],
        )
        f = Farm(self, [url])
        f.server.plan(url, ok(body), status(410))
        f.start()
        f.run_until_count(url, 2, within=3 * f.interval)
        gone_at = f.now()
        state = f.state(url)
        self.assertEqual((state.http_status, state.next_fetch), (410, None))
        self.assertEqual(state.gone_since, utc_from_timestamp(f.t0 + gone_at))
        f.run_for(5 * f.interval)
        self.assertEqual(f.server.count(url), 2)
        self.assertEqual([e.title for e in f.store.river()], ["Last words"])
        code, page = f.get("/")
        self.assertEqual(code, 200)
        self.assertIn(b"Last words", page)
        row = f.row(url)
        self.assertEqual((row["state"], row["http_status"], row["next_fetch"]), ("gone", 410, None))
        self.assertIn("gone since", row["reason"])
        self.assertEqual(row["entries"], 1)


# --- 3. backoff and recovery ------------------------------------------------------------

# A URL whose stable offset is several ticks long, so a recovery that added it would show.
FLAKY = "http://flaky.example/feed"


class BackoffTests(FarmTestCase):
    def test_backoff_doubles_up_to_max_then_recovers(self) -> None:
        f = Farm(self, [FLAKY], fetch_interval=60, max_backoff=480)
        self.assertEqual(f.tick, 3)
        offset = stable_offset(FLAKY, 60)
        self.assertGreater(offset, 2 * f.tick)
        body = feed("http://flaky.example/")
        f.server.plan(FLAKY, ok(body), *[status(404)] * 6, ok(body))
        f.start()
        f.run_until_count(FLAKY, 7, within=2000)
        self.assertEqual(f.state(FLAKY).consecutive_errors, 6)
        self.assertEqual(f.row(FLAKY)["consecutive_errors"], 6)
        f.run_until_count(FLAKY, 9, within=1000)
        times = f.times(FLAKY)
        waits = self.waits(times)
        # Success at start: interval + stable offset + midpoint spread.
        self.assertWait(waits[0], 60 + offset + 1.5, f.tick, "after the first success")
        # The 404s: 60, 120, 240, 480 (max_backoff), 480, 480; the last one was answered 200.
        for n, expected in enumerate([60, 120, 240, 480, 480, 480], start=1):
            self.assertWait(waits[n], expected, f.tick, f"after error {n}")
        # Recovered: back to the interval (+ spread), without the first-success offset.
        self.assertWait(waits[7], 60 + 1.5, f.tick, "after recovery")
        state = f.state(FLAKY)
        self.assertEqual((state.error, state.consecutive_errors), (None, 0))
        self.assertEqual(len(f.store.entries_of(FLAKY)), 2)


class JitterBoundsTests(FarmTestCase):
    def test_backoff_jitter_within_ten_percent(self) -> None:
        urls = [f"http://down{n}.example/feed" for n in range(40)]
        f = Farm(self, urls, fetch_interval=60, rng=random.Random(20260624))
        ratios: list[float] = []

        def record(n: int) -> None:
            base = 60 * 2 ** (n - 1)
            for url in urls:
                state = f.state(url)
                self.assertEqual(state.consecutive_errors, n)
                assert state.next_fetch is not None and state.last_fetch is not None
                ratio = (state.next_fetch - state.last_fetch).total_seconds() / base
                self.assertGreaterEqual(ratio, 0.9 - 1e-9, url)
                self.assertLessEqual(ratio, 1.1 + 1e-9, url)
                ratios.append(ratio)

        f.start()
        record(1)
        for n in (2, 3, 4):
            before = {url: f.state(url).next_fetch for url in urls}

            def fetched_again(n: int = n) -> bool:
                return all(f.server.count(u) >= n for u in urls)

            f.run_until(fetched_again, within=20 * 60)
            for url in urls:
                # Never fetched before its due time, and at the first tick after it.
                fetched = utc_from_timestamp(f.t0 + f.times(url)[-1])
                due = before[url]
                assert due is not None
                self.assertGreaterEqual(fetched, due - timedelta(seconds=EPS))
                self.assertLess(fetched, due + timedelta(seconds=f.tick + EPS))
            record(n)
        # The jitter really spreads the retries over the range.
        self.assertLess(min(ratios), 0.93)
        self.assertGreater(max(ratios), 1.07)
        self.assertGreater(len({round(r, 6) for r in ratios}), 150)


# --- 4. Retry-After and freshness ---------------------------------------------------------

SLOWDOWN = "http://busy.example/feed"
BUSY_FEED = feed("http://busy.example/")


class RetryAfterTests(FarmTestCase):
    def check_wait(
        self, code: int, retry_after: str | Callable[[Farm], str], expected: float, asked: float
    ) -> None:
        """``code`` with ``Retry-After``: asked to wait ``asked`` s, next fetch ``expected`` s."""
        f = Farm(self, [SLOWDOWN], fetch_interval=60)
        value = retry_after if isinstance(retry_after, str) else retry_after(f)
        f.server.plan(SLOWDOWN, status(code, Retry_After=value), ok(BUSY_FEED))
        f.start()
        state = f.state(SLOWDOWN)
        self.assertEqual(state.http_status, code)
        self.assertEqual(state.waiting_until, NOW + timedelta(seconds=asked))
        # Meanwhile the feed shows as waiting, with the reason.
        f.run_for(asked / 2)
        self.assertEqual(f.server.count(SLOWDOWN), 1)
        row = f.row(SLOWDOWN)
        self.assertEqual((row["state"], row["http_status"]), ("waiting", code), row)
        until = format_entry_time(NOW + timedelta(seconds=asked))
        self.assertIn(f"the server asked us to wait until {until}", row["reason"])
        f.run_until_count(SLOWDOWN, 2, within=expected + 10 * f.tick)
        self.assertWait(self.waits(f.times(SLOWDOWN))[0], expected, f.tick, f"{code} {value}")
        self.assertEqual(f.row(SLOWDOWN)["state"], "ok")

    def test_429_seconds(self) -> None:
        self.check_wait(429, "120", 120, asked=120)

    def test_429_seconds_longer_than_interval(self) -> None:
        self.check_wait(429, "600", 600, asked=600)

    def test_429_never_more_often_than_interval(self) -> None:
        self.check_wait(429, "5", 60, asked=5)

    def test_429_http_date(self) -> None:
        self.check_wait(429, two_hours_ahead, 7200, asked=7200)

    def test_503_seconds(self) -> None:
        self.check_wait(503, "600", 600, asked=600)

    def test_503_never_more_often_than_interval(self) -> None:
        self.check_wait(503, "5", 60, asked=5)

    def test_503_http_date(self) -> None:
        self.check_wait(503, two_hours_ahead, 7200, asked=7200)

    def test_unicode_digits_are_no_retry_after(self) -> None:
        # A server sending the byte B2 ("²" in latin-1): float() raised, next_fetch was never
        # set, and the feed was fetched (and failed with "internal error") on every tick.
        f = Farm(self, [SLOWDOWN], fetch_interval=600)
        busy = Reply(503, b"<h1>503</h1>", (("Content-Type", HTML), ("Retry-After", b"\xb2")))  # type: ignore[arg-type]
        f.server.plan(SLOWDOWN, busy)
        f.start()
        state = f.state(SLOWDOWN)
        self.assertEqual((state.http_status, state.error), (503, "HTTP 503 Service Unavailable"))
        self.assertIsNone(state.waiting_until)
        # Backing off from the interval, as for any 503 without a usable Retry-After.
        assert state.next_fetch is not None
        self.assertGreaterEqual(state.next_fetch, NOW + timedelta(seconds=0.9 * 600))
        f.run_for(20 * f.tick)
        self.assertEqual(f.server.count(SLOWDOWN), 2)
        self.assertEqual(f.row(SLOWDOWN)["reason"], "HTTP 503 Service Unavailable")


def two_hours_ahead(f: Farm) -> str:
    when = utc_from_timestamp(f.clock.seconds()) + timedelta(hours=2)
    return format_datetime(when, usegmt=True)


class FreshnessTests(FarmTestCase):
    def test_cache_control_max_age_delays_next_fetch(self) -> None:
        url = "http://cached.example/feed"
        f = Farm(self, [url], fetch_interval=1800)
        self.assertEqual(f.tick, 60)
        body = feed("http://cached.example/")
        cached = ok(body, Cache_Control="public, max-age=7200")
        f.server.plan(url, cached, cached, ok(body))
        f.start()
        f.run_until_count(url, 4, within=6 * 3600)
        waits = self.waits(f.times(url))
        # First success: max-age plus the stable offset; never before max-age.
        self.assertWait(waits[0], 7200 + stable_offset(url, 1800) + 45, f.tick)
        self.assertWait(waits[1], 7200 + 45, f.tick)
        # Without the header, back to the interval.
        self.assertWait(waits[2], 1800 + 45, f.tick)

    def test_unicode_digits_are_no_max_age(self) -> None:
        url = "http://cached.example/feed"
        f = Farm(self, [url], fetch_interval=600)
        body = feed("http://cached.example/")
        f.server.plan(
            url, Reply(200, body, (("Content-Type", ATOM), ("Cache-Control", b"max-age=\xb2")))
        )  # type: ignore[arg-type]
        f.start()
        state = f.state(url)
        self.assertIsNone(state.error)
        assert state.next_fetch is not None
        self.assertGreaterEqual(state.next_fetch, NOW + timedelta(seconds=600))
        f.run_until_count(url, 3, within=4 * 600)
        waits = self.waits(f.times(url))
        self.assertWait(waits[0], 600 + stable_offset(url, 600) + 15, f.tick)
        self.assertWait(waits[1], 600 + 15, f.tick)


# --- 5. per-host politeness with 600 feeds ----------------------------------------------

HOSTS = [f"h{k}.example" for k in range(6)]
FARM_URLS = [f"http://{HOSTS[n % 6]}/feed/{n}" for n in range(600)]


class PerHostClockTests(FarmTestCase):
    def test_600_feeds_6_hosts_per_host_limit_and_spread(self) -> None:
        f = Farm(self, FARM_URLS, fetch_interval=600, per_host=2, rng=random.Random(600))
        interval, tick = f.interval, f.tick
        for n, url in enumerate(FARM_URLS):
            f.server.plan(url, ok(feed(f"http://site{n}.example/", n=1), hold=0.05))
        f.start()
        f.run_until(lambda: len(f.store.feed_states()) == 600, within=60)
        first_cycle = f.now()
        # 100 feeds per host, two at a time, 50 ms each: 50 rounds, all hosts in parallel.
        self.assertLess(abs(first_cycle - 100 / 2 * 0.05), 0.01, first_cycle)
        self.assertEqual(len(f.server.requests), 600)
        self.assertEqual(dict(f.server.peak), {h: 2 for h in HOSTS})
        self.assertTrue(all(not s.failing for s in f.store.feed_states().values()))

        f.run_for(2 * interval + 2 * tick + first_cycle - f.now() + 1)
        self.assertEqual(dict(f.server.peak), {h: 2 for h in HOSTS})
        second = {url: f.times(url)[1] for url in FARM_URLS}
        self.assertEqual(len(second), 600)
        # Every feed again after one interval, and within the second one (stable offsets
        # < interval, +5 % spread, + the first cycle's length, + one tick of rounding).
        self.assertGreaterEqual(min(second.values()), interval)
        self.assertLess(max(second.values()), 2 * interval + 2 * tick + first_cycle)
        # Spread out over that window: no tenth of it holds more than 20 % of the refetches,
        # and no single tick more than 5 % (without the spread, all 600 would share one).
        end = 2 * interval + 2 * tick + first_cycle
        width = (end - interval) / 10
        slices = Counter(int((t - interval) // width) for t in second.values())
        self.assertEqual(sorted(slices), list(range(10)), sorted(slices.items()))
        self.assertLessEqual(max(slices.values()), 120, sorted(slices.items()))
        self.assertLessEqual(max(Counter(second.values()).values()), 30)


@pytest.mark.slow
class PerHostLoopbackTests(TestCase):
    """600 feeds over real TCP on six loopback addresses (127.0.0.1 ... 127.0.0.6)."""

    timeout = 60

    async def test_600_feeds_per_host_parallel_over_loopback(self) -> None:
        hold = 0.05
        body = rss2("Loop", "http://loop.example/", [Item("x", "http://loop.example/x", NOW)])
        resource = HoldingFeed(body, hold=hold)
        addresses = [f"127.0.0.{k}" for k in range(1, 7)]
        servers = MultiLoopback(resource, addresses)
        self.addCleanup(servers.stop)
        urls = [servers.url(addresses[n % 6], f"/feed/{n}") for n in range(600)]
        config = make_config(urls, fetch_interval=3600, feed_timeout=60, per_host=2)
        # Production's wiring on the real reactor, with the loopback servers' client.
        service = build_service(config, None, reactor, parser=inline_parser, client=servers.client)
        aggregator, store = service.aggregator, service.store
        started = time.monotonic()
        aggregator.startService()
        self.addCleanup(aggregator.stopService)
        deadline = started + 30
        while len(store.feed_states()) < 600:
            self.assertLess(time.monotonic(), deadline, f"{len(store.feed_states())} fetched")
            await deferLater(reactor, 0.02, lambda: None)
        wall = time.monotonic() - started
        errors = [s.error for s in store.feed_states().values() if s.error]
        self.assertEqual(errors, [])
        self.assertEqual(resource.served, {a: 100 for a in addresses})
        # Never more than two at once per host; every host reached it...
        self.assertEqual(resource.peak, {a: 2 for a in addresses})
        # ...while the other hosts were busy too.
        self.assertGreater(resource.peak_total, 6)
        # 50 rounds of 50 ms per host; one request at a time would take 30 s.
        self.assertGreaterEqual(wall, 50 * hold)
        self.assertLess(wall, 15.0)


class MultiLoopback:
    """One Site listening on several loopback addresses, with connection tracking."""

    def __init__(self, resource: Resource, addresses: Sequence[str]) -> None:
        self.server_connections = ConnectionTracker()
        self.client_connections = ConnectionTracker()
        site = Site(resource)
        site.noisy = False
        factory = self.server_connections.wrap(site)
        self.ports = {a: reactor.listenTCP(0, factory, interface=a) for a in addresses}
        self.client = loopback_client(self.client_connections)

    def url(self, address: str, path: str) -> str:
        return f"http://{address}:{self.ports[address].getHost().port}{path}"

    def stop(self, deadline: float = 5.0) -> Deferred[None]:
        stopped = [p.stopListening() for p in self.ports.values()]
        self.server_connections.abort_all()
        closed = gatherResults(
            [
                *stopped,
                self.server_connections.closed(),
                self.client_connections.closed(),
            ]
        )
        timer = reactor.callLater(deadline, closed.cancel)

        def done(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        return closed.addBoth(done).addCallback(lambda _: None)


# --- 6. byte-identical bodies are not parsed again --------------------------------------


class CountingParser(InlineParser):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __call__(self, body: bytes, url: str, *args: Any) -> Deferred[ParsedFeed]:
        self.calls.append(url)
        return inline_parser(body, url, *args)


class UnchangedBodyTests(FarmTestCase):
    def test_identical_body_not_parsed_again(self) -> None:
        url = "http://same.example/feed"
        parser = CountingParser()
        f = Farm(self, [url], parser=parser)
        body = feed("http://same.example/")
        changed = feed("http://same.example/", n=3)
        f.server.plan(url, ok(body, ETag='"one"'), ok(body, ETag='"two"'), ok(changed, ETag='"3"'))
        f.start()
        self.assertEqual((parser.calls, f.ingester.skipped_parses), ([url], 0))
        entries = list(f.store.river())
        f.run_until_count(url, 2, within=3 * f.interval)
        self.assertEqual(f.server.requests[-1].headers.get("if-none-match"), '"one"')
        self.assertEqual((parser.calls, f.ingester.skipped_parses), ([url], 1))
        state = f.state(url)
        self.assertEqual((state.etag, state.http_status, state.error), ('"two"', 200, None))
        self.assertEqual(list(f.store.river()), entries)
        # A changed body is parsed again.
        f.run_until_count(url, 3, within=3 * f.interval)
        self.assertEqual((parser.calls, f.ingester.skipped_parses), ([url, url], 1))
        self.assertEqual(len(f.store.river()), 3)


# --- 7. feed autodiscovery --------------------------------------------------------------

PAGE = "http://blog.example/"
PAGE_FEED = "http://blog.example/feed.xml"
PAGE_HTML = b"""<!DOCTYPE html>
<html><head><title>A blog</title>
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/atom+xml" title="Feed" href="/feed.xml">
</head><body><p>Hello</p></body></html>
"""


class DiscoveryTests(FarmTestCase):
    def test_html_page_feed_discovered_and_used(self) -> None:
        f = Farm(self, [PAGE])
        f.server.plan(PAGE, ok(PAGE_HTML, content_type=HTML))
        f.server.plan(PAGE_FEED, ok(feed("http://blog.example/", title="Blog")))
        f.start()
        self.assertEqual(f.server.urls(), [PAGE, PAGE_FEED])
        self.assertEqual([e.title for e in f.store.river()], ["Blog 2", "Blog 1"])
        self.assertEqual(len(f.store.entries_of(PAGE)), 2)
        state = f.state(PAGE)
        self.assertEqual((state.discovered_url, state.error), (PAGE_FEED, None))
        self.assertEqual(state.title, "Blog")
        row = f.row(PAGE)
        self.assertEqual((row["current_url"], row["state"], row["entries"]), (PAGE_FEED, "ok", 2))
        self.assertIn(f"discovered at {PAGE_FEED}", row["reason"])
        # From now on the feed URL is fetched directly.
        f.run_until(lambda: len(f.server.requests) >= 3, within=3 * f.interval)
        f.run_for(3 * f.interval)
        self.assertEqual(f.server.count(PAGE), 1)
        self.assertGreaterEqual(f.server.count(PAGE_FEED), 4)
        self.assertEqual(len(f.store.river()), 2)

    def test_discovered_entries_belong_to_the_subscription(self) -> None:
        # Entry.feed_url is "the subscription URL as configured" (planet.model): the river
        # names the entry's subscription through it, and a snapshot is keyed by it.
        f = Farm(self, [(PAGE, "Page Blog")])
        f.server.plan(PAGE, ok(PAGE_HTML, content_type=HTML))
        f.server.plan(PAGE_FEED, ok(feed("http://blog.example/", title="Blog")))
        f.start()
        self.assertEqual([e.feed_url for e in f.store.river()], [PAGE, PAGE])
        # The river names the subscription, not the discovered URL.
        _, page = f.get("/")
        self.assertIn(b"Blog 1", page)
        self.assertNotIn(PAGE_FEED.encode(), page)
        self.assertGreaterEqual(page.count(b"Page Blog"), 3)  # the feed list and two entries

    def test_discovered_entries_survive_restart(self) -> None:
        f = Farm(self, [PAGE])
        f.server.plan(PAGE, ok(PAGE_HTML, content_type=HTML))
        f.server.plan(PAGE_FEED, ok(feed("http://blog.example/", title="Blog")))
        f.start()
        f.stop()
        data = encode(*f.store.snapshot_data(), utc_from_timestamp(f.clock.seconds()))
        g = Farm(self, [PAGE], server=f.server, loaded=decode(data), start=f.clock.seconds() + 3600)
        g.start()
        # Fetched straight from the discovered URL; the (unchanged) body is not parsed again...
        self.assertEqual(f.server.urls(), [PAGE, PAGE_FEED, PAGE_FEED])
        self.assertEqual(g.ingester.skipped_parses, 1)
        # ...so the entries must have come through the snapshot.
        self.assertEqual(len(g.store.entries_of(PAGE)), 2)
        self.assertEqual(g.row(PAGE)["entries"], 2)
        self.assertEqual(len(g.store.river()), 2)


# --- 8. duplicate subscriptions ----------------------------------------------------------


class DuplicateTests(FarmTestCase):
    def test_redirect_to_another_subscription(self) -> None:
        first, later = "https://dup.example/feed", "http://dup.example/feed"
        f = Farm(self, [first, later])
        f.server.plan(first, ok(feed("https://dup.example/")))
        f.server.plan(later, redirect(301, first))
        f.start()
        self.assertEqual(sorted(f.server.urls()), sorted([first, later, first]))
        self.assertIsNone(f.state(first).duplicate_of)
        self.assertEqual(f.state(later).duplicate_of, first)
        self.assertEqual([e.feed_url for e in f.store.river()], [first, first])
        f.run_for(5 * f.interval)
        self.assertEqual(f.server.count(later), 1)
        # Only one subscription fetches the shared URL: one request per interval, not two.
        refetches = f.times(first)[2:]
        self.assertGreaterEqual(len(refetches), 4)
        self.assertTrue(all(w >= f.interval for w in self.waits(refetches)), refetches)
        self.assertEqual(len(f.store.river()), 2)
        row = f.row(later)
        self.assertIn(f"duplicate of {first}", row["reason"])
        self.assertIsNone(row["next_fetch"])
        self.assertEqual(row["entries"], 0)
        self.assertIsNone(f.row(first)["reason"])

    def test_same_feed_id_at_two_urls(self) -> None:
        first, later = "http://one.example/feed", "http://two.example/atom"
        body = feed("http://same-blog.example/")
        f = Farm(self, [first, later])
        f.server.plan(first, ok(body))
        f.server.plan(later, ok(body))
        f.start()
        self.assertEqual(f.state(later).duplicate_of, first)
        self.assertIsNone(f.state(first).duplicate_of)
        self.assertEqual([e.feed_url for e in f.store.river()], [first, first])
        f.run_for(5 * f.interval)
        self.assertEqual(f.server.count(later), 1)
        self.assertGreaterEqual(f.server.count(first), 5)
        self.assertEqual(len(f.store.river()), 2)
        self.assertIn(f"duplicate of {first}", f.row(later)["reason"])

    def test_different_feeds_are_not_duplicates(self) -> None:
        a, b = "http://one.example/feed", "http://two.example/feed"
        f = Farm(self, [a, b])
        f.server.plan(a, ok(feed("http://one.example/")))
        f.server.plan(b, ok(feed("http://two.example/")))
        f.start()
        f.run_for(2 * f.interval)
        self.assertIsNone(f.state(a).duplicate_of)
        self.assertIsNone(f.state(b).duplicate_of)
        self.assertEqual(len(f.store.river()), 4)
        self.assertGreaterEqual(f.server.count(b), 2)


# --- 9. /feeds.json for a farm of every case ----------------------------------------------

OK_URL = "http://ok.example/feed"
NOTMOD_URL = "http://notmod.example/feed"
FAILING_URL = "http://failing.example/feed"
GONE_URL = "http://gone.example/feed"
WAITING_URL = "http://waiting.example/feed"
MOVED_URL = "http://moved.example/feed"
MOVED_TO = "https://moved.example/feed"
PAGE_URL = "http://page.example/"
PAGE_URL_FEED = "http://page.example/feed.xml"
NEVER_URL = "http://never.example/feed"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class StatusFarmTests(FarmTestCase):
    def test_every_case_in_feeds_json(self) -> None:
        subs = [
            (OK_URL, "Ok Feed"),
            (NOTMOD_URL, "Not Modified Feed"),
            (FAILING_URL, "Failing Feed"),
            (GONE_URL, "Gone Feed"),
            (WAITING_URL, "Waiting Feed"),
            (MOVED_URL, "Moved Feed"),
            (PAGE_URL, "Discovered Feed"),
            (NEVER_URL, "Never Fetched Feed"),
        ]
        f = Farm(self, subs)
        notmod_body = feed("http://notmod.example/", n=3)
        f.server.plan(OK_URL, ok(feed("http://ok.example/")))
        f.server.plan(
            NOTMOD_URL,
            Reply(200, notmod_body, (("Content-Type", ATOM), ("ETag", '"n1"')), conditional=True),
        )
        f.server.plan(FAILING_URL, status(404))
        f.server.plan(GONE_URL, status(410))
        f.server.plan(WAITING_URL, status(429, Retry_After="7200"))
        f.server.plan(MOVED_URL, redirect(301, MOVED_TO))
        f.server.plan(MOVED_TO, ok(feed("https://moved.example/", n=1)))
        f.server.plan(PAGE_URL, ok(PAGE_HTML.replace(b"blog", b"page"), content_type=HTML))
        f.server.plan(PAGE_URL_FEED, ok(feed("http://page.example/", n=4)))
        f.server.plan(NEVER_URL, HANG)
        # The not-modified feed was fetched by a previous run (its ETag is kept).
        earlier = NOW - timedelta(minutes=30)
        parsed = parse_feed(notmod_body, NOTMOD_URL, earlier)
        result = ok_result(NOTMOD_URL, notmod_body, etag='"n1"')
        before = f.store.state(NOTMOD_URL)
        f.store.apply(
            NOTMOD_URL, update_feed(f.config, before, result, parsed, earlier, random.Random(0))
        )
        f.start()
        notmod = next(r for r in f.server.requests if r.url == NOTMOD_URL)
        self.assertEqual(notmod.headers.get("if-none-match"), '"n1"')
        self.assertEqual(len(f.server.open), 1)
        f.run_for(30)  # the hanging fetch holds the cycle: nothing else happens
        self.assertEqual(len(f.server.requests), 10)

        rows = f.feed_rows()
        self.assertEqual(len(rows), 8)
        for row in rows:
            self.assertEqual(set(row), ROW_KEYS, row)
            self.assertIsInstance(row["url"], str)
            self.assertIsInstance(row["name"], str)
            self.assertIn(row["state"], STATE_ORDER)
            self.assertIsInstance(row["consecutive_errors"], int)
            self.assertIsInstance(row["entries"], int)
            for key in ("current_url", "reason"):
                self.assertIsInstance(row[key], (str, type(None)), (key, row))
            self.assertIsInstance(row["http_status"], (int, type(None)))
            for key in ("last_fetch", "next_fetch", "newest_entry"):
                self.assertTrue(row[key] is None or ISO.match(row[key]), (key, row))
        # Failing feeds first, then gone, waiting, not modified, ok; by name within a state.
        self.assertEqual(
            [(r["state"], r["name"]) for r in rows],
            [
                ("failing", "Failing Feed"),
                ("gone", "Gone Feed"),
                ("waiting", "Never Fetched Feed"),
                ("waiting", "Waiting Feed"),
                ("not-modified", "Not Modified Feed"),
                ("ok", "Discovered Feed"),
                ("ok", "Moved Feed"),
                ("ok", "Ok Feed"),
            ],
        )
        by_url = {r["url"]: r for r in rows}
        fetched = iso(NOW)

        def next_ok(url: str, first: bool = True) -> str | None:
            offset = stable_offset(url, 60) if first else 0
            return iso(NOW + timedelta(seconds=60 + offset + 1.5))

        expected: dict[str, dict[str, Any]] = {
            OK_URL: dict(
                current_url=None,
                state="ok",
                http_status=200,
                reason=None,
                consecutive_errors=0,
                last_fetch=fetched,
                next_fetch=next_ok(OK_URL),
                entries=2,
                newest_entry="2026-06-12T12:00:00Z",
            ),
            NOTMOD_URL: dict(
                current_url=None,
                state="not-modified",
                http_status=304,
                reason=None,
                consecutive_errors=0,
                last_fetch=fetched,
                next_fetch=next_ok(NOTMOD_URL, first=False),
                entries=3,
                newest_entry="2026-06-13T12:00:00Z",
            ),
            FAILING_URL: dict(
                current_url=None,
                state="failing",
                http_status=404,
                reason="HTTP 404 Not Found",
                consecutive_errors=1,
                last_fetch=fetched,
                next_fetch=iso(NOW + timedelta(seconds=60)),
                entries=0,
                newest_entry=None,
            ),
            GONE_URL: dict(
                current_url=None,
                state="gone",
                http_status=410,
                consecutive_errors=1,
                last_fetch=fetched,
                next_fetch=None,
                entries=0,
                newest_entry=None,
            ),
            WAITING_URL: dict(
                current_url=None,
                state="waiting",
                http_status=429,
                consecutive_errors=1,
                last_fetch=fetched,
                next_fetch=iso(NOW + timedelta(hours=2)),
                entries=0,
                newest_entry=None,
            ),
            MOVED_URL: dict(
                current_url=MOVED_TO,
                state="ok",
                http_status=200,
                consecutive_errors=0,
                last_fetch=fetched,
                next_fetch=next_ok(MOVED_URL),
                entries=1,
                newest_entry="2026-06-11T12:00:00Z",
            ),
            PAGE_URL: dict(
                current_url=PAGE_URL_FEED,
                state="ok",
                http_status=200,
                consecutive_errors=0,
                last_fetch=fetched,
                next_fetch=next_ok(PAGE_URL),
                entries=4,
                newest_entry="2026-06-14T12:00:00Z",
            ),
            NEVER_URL: dict(
                current_url=None,
                state="waiting",
                http_status=None,
                reason="not fetched yet",
                consecutive_errors=0,
                last_fetch=None,
                next_fetch=iso(NOW + timedelta(seconds=30)),
                entries=0,
                newest_entry=None,
            ),
        }
        for url, values in expected.items():
            row = by_url[url]
            self.assertEqual({k: row[k] for k in values}, values, url)
        self.assertIn("gone since 24 Jun 2026 9:00am GMT (HTTP 410)", by_url[GONE_URL]["reason"])
        waiting = by_url[WAITING_URL]["reason"]
        self.assertIn("HTTP 429", waiting)
        self.assertIn("wait until 24 Jun 2026 11:00am GMT", waiting)
        self.assertIn(f"moved to {MOVED_TO}", by_url[MOVED_URL]["reason"])
        self.assertIn(f"discovered at {PAGE_URL_FEED}", by_url[PAGE_URL]["reason"])
        # The HTML table agrees on the order.
        code, html = f.get("/feeds")
        self.assertEqual(code, 200)
        text = html.decode()
        positions = [text.index(r["name"]) for r in rows]
        self.assertEqual(positions, sorted(positions))


def ok_result(url: str, body: bytes, etag: str | None = None) -> FetchResult:
    return FetchResult(
        url=url,
        final_url=url,
        status=200,
        body=body,
        etag=etag,
        body_hash=hashlib.sha256(body).hexdigest(),
    )


# --- 10. one log line per fetch ----------------------------------------------------------

LOG_LINE = re.compile(
    r"^fetch (?P<url>\S+): (?P<outcome>ok|not-modified|failing) (?P<status>\d+|-) "
    r"(?P<bytes>\d+) bytes (?P<ms>\d+) ms, (?P<new>\d+) new, (?P<updated>\d+) updated"
)


class FetchLogTests(FarmTestCase):
    def test_one_line_per_fetch(self) -> None:
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

        good, missing = "http://logged.example/feed", "http://logged.example/missing"
        temp, target = "http://logged.example/temp", "http://elsewhere.example/feed"
        first = feed("http://logged.example/", n=2, title="Logged")
        second = atom(
            "Logged",
            "http://logged.example/",
            [
                Item("Logged 1", "http://logged.example/1", at(2026, 6, 11)),
                Item("Logged 2, edited", "http://logged.example/2", at(2026, 6, 12)),
                Item("Logged 3", "http://logged.example/3", at(2026, 6, 13)),
            ],
        )
        self.assertNotEqual(first, second)
        f = Farm(self, [good, missing, temp])
        f.server.plan(
            good,
            ok(first, hold=0.25, ETag='"1"'),
            ok(second, hold=0.25, ETag='"2"'),
            status(304, hold=0.25, ETag='"2"'),
        )
        f.server.plan(missing, status(404))
        f.server.plan(temp, redirect(302, target))
        f.server.plan(target, ok(feed("http://elsewhere.example/", n=1)))
        f.start()
        f.run_until_count(good, 3, within=4 * f.interval)
        f.run_for(0.5)
        f.stop()

        loggers = (f.aggregator._log, f.ingester._log)
        mine = [e for e in events if any(e.get("log_logger") is log for log in loggers)]
        every = [formatEvent(e) for e in mine]
        # Besides one line per fetch, each cycle ends with one summary line.
        cycles = [line for line in every if line.startswith("cycle ")]
        self.assertEqual(len(cycles), f.aggregator.cycles)
        lines = [line for line in every if not line.startswith("cycle ")]
        parsed = [LOG_LINE.match(line) for line in lines]
        self.assertTrue(all(parsed), lines)
        by_url: dict[str, list[dict[str, str]]] = {}
        for m in parsed:
            assert m is not None
            by_url.setdefault(m["url"], []).append(m.groupdict())
        # Exactly one line per fetch of each subscription (redirect hops are not fetches).
        self.assertEqual(
            {url: len(v) for url, v in by_url.items()},
            {url: f.server.count(url) for url in (good, missing, temp)},
        )
        self.assertGreaterEqual(f.server.count(missing), 2)

        def fields(d: dict[str, str]) -> tuple[str, ...]:
            return (d["outcome"], d["status"], d["bytes"], d["ms"], d["new"], d["updated"])

        self.assertEqual(
            [fields(d) for d in by_url[good]],
            [
                ("ok", "200", str(len(first)), "250", "2", "0"),
                ("ok", "200", str(len(second)), "250", "1", "1"),
                ("not-modified", "304", "0", "250", "0", "0"),
            ],
        )
        for d in by_url[missing]:
            self.assertEqual(fields(d), ("failing", "404", "0", "0", "0", "0"))
        missing_lines = [line for line in lines if line.startswith(f"fetch {missing}:")]
        self.assertTrue(all(line.endswith("(HTTP 404 Not Found)") for line in missing_lines))
        body = feed("http://elsewhere.example/", n=1)
        self.assertEqual(fields(by_url[temp][0]), ("ok", "200", str(len(body)), "0", "1", "0"))
        for d in by_url[temp][1:]:
            self.assertEqual(fields(d), ("ok", "200", str(len(body)), "0", "0", "0"))
