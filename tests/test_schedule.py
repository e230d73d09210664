"""The fetch schedule policy: pure functions of config, state, outcome and time."""

from __future__ import annotations

import random
from datetime import timedelta

from feeds import at
from twisted.trial.unittest import SynchronousTestCase

from planet.config import parse_config
from planet.model import FeedState, FetchResult, ParsedFeed
from planet.schedule import (
    backoff_seconds,
    due,
    freshness_seconds,
    next_fetch,
    retry_after_seconds,
    stable_offset,
)

NOW = at(2026, 6, 24, 12, 0)
URL = "http://a.example/feed"
CONFIG = parse_config(
    "[Planet]\nfetch_interval = 1800\nmax_backoff = 86400\n[http://a.example/feed]\n"
    "[http://b.example/feed]\n[http://c.example/feed]\n",
    "t.ini",
)


def result(status: int = 200, **kw: object) -> FetchResult:
    return FetchResult(url=URL, final_url=URL, status=status, **kw)  # type: ignore[arg-type]


class FixedRandom(random.Random):
    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


MID = FixedRandom(0.5)  # jitter midpoint: +0 % for backoff


class DueTests(SynchronousTestCase):
    def test_new_feeds_due_at_once_first(self) -> None:
        states = {
            "http://a.example/feed": FeedState(url=URL, last_fetch=NOW, next_fetch=NOW),
            "http://c.example/feed": FeedState(
                url="http://c.example/feed", last_fetch=NOW, next_fetch=NOW + timedelta(hours=1)
            ),
        }
        self.assertEqual(
            [s.url for s in due(CONFIG, states, NOW)],
            ["http://b.example/feed", "http://a.example/feed"],
        )

    def test_gone_and_duplicate_never_due(self) -> None:
        states = {
            "http://a.example/feed": FeedState(url=URL, last_fetch=NOW, gone_since=NOW),
            "http://b.example/feed": FeedState(
                url="http://b.example/feed", last_fetch=NOW, duplicate_of=URL
            ),
            "http://c.example/feed": FeedState(url="http://c.example/feed", last_fetch=NOW),
        }
        later = NOW + timedelta(days=365)
        self.assertEqual([s.url for s in due(CONFIG, states, later)], ["http://c.example/feed"])


class NextFetchTests(SynchronousTestCase):
    def test_success_waits_the_interval_plus_positive_jitter(self) -> None:
        state = FeedState(url=URL, last_fetch=NOW)
        low, _ = next_fetch(CONFIG, state, result(), None, NOW, FixedRandom(0.0))
        high, _ = next_fetch(CONFIG, state, result(), None, NOW, FixedRandom(1.0))
        self.assertEqual(low, NOW + timedelta(seconds=1800))
        self.assertEqual(high, NOW + timedelta(seconds=1800 * 1.05))

    def test_first_success_adds_stable_offset(self) -> None:
        state = FeedState(url=URL, last_fetch=NOW)
        when, _ = next_fetch(CONFIG, state, result(), None, NOW, FixedRandom(0.0), True)
        self.assertEqual(when, NOW + timedelta(seconds=1800 + stable_offset(URL, 1800)))
        self.assertEqual(stable_offset(URL, 1800), stable_offset(URL, 1800))
        offsets = [stable_offset(f"http://h{i}.example/feed", 1800) for i in range(600)]
        self.assertTrue(all(0 <= o < 1800 for o in offsets))
        # Spread: every tenth of the interval gets a fair share of 600 feeds.
        buckets = [0] * 10
        for o in offsets:
            buckets[int(o // 180)] += 1
        self.assertTrue(all(30 <= b <= 90 for b in buckets), buckets)

    def test_gone_is_never(self) -> None:
        state = FeedState(url=URL, last_fetch=NOW, gone_since=NOW, error="HTTP 410 Gone")
        self.assertEqual(next_fetch(CONFIG, state, result(410), None, NOW, MID), (None, None))

    def test_backoff_doubles_to_the_cap_with_jitter(self) -> None:
        waits = [backoff_seconds(CONFIG, n, MID) for n in range(1, 9)]
        self.assertEqual(waits, [1800, 3600, 7200, 14400, 28800, 57600, 86400, 86400])
        self.assertAlmostEqual(backoff_seconds(CONFIG, 1, FixedRandom(0.0)), 1620)
        self.assertAlmostEqual(backoff_seconds(CONFIG, 1, FixedRandom(1.0)), 1980)
        self.assertEqual(backoff_seconds(CONFIG, 10_000, MID), 86400)

    def test_error_uses_backoff(self) -> None:
        state = FeedState(url=URL, last_fetch=NOW, error="HTTP 404 Not Found", consecutive_errors=3)
        when, _ = next_fetch(CONFIG, state, result(404, error="x"), None, NOW, MID)
        self.assertEqual(when, NOW + timedelta(seconds=7200))

    def test_retry_after_seconds_and_date(self) -> None:
        self.assertEqual(retry_after_seconds("120", NOW), 120)
        self.assertEqual(retry_after_seconds("Wed, 24 Jun 2026 14:00:00 GMT", NOW), 7200)
        self.assertIsNone(retry_after_seconds("soon", NOW))
        self.assertEqual(retry_after_seconds("Wed, 24 Jun 2026 11:00:00 GMT", NOW), 0)

    def test_429_waits_for_retry_after_capped_at_7_days(self) -> None:
        state = FeedState(url=URL, last_fetch=NOW, error="HTTP 429", consecutive_errors=1)
        for status in (429, 503):
            r = result(status, error="x", retry_after=str(3 * 86400))
            when, waiting = next_fetch(CONFIG, state, r, None, NOW, MID)
            self.assertEqual(waiting, NOW + timedelta(days=3))
            self.assertEqual(when, NOW + timedelta(days=3))
            r = result(status, error="x", retry_after=str(30 * 86400))
            self.assertEqual(
                next_fetch(CONFIG, state, r, None, NOW, MID)[1], NOW + timedelta(days=7)
            )
        # Never more often than the interval, even when asked to come back sooner.
        short = result(429, error="x", retry_after="120")
        when, waiting = next_fetch(CONFIG, state, short, None, NOW, MID)
        self.assertEqual(waiting, NOW + timedelta(seconds=120))
        self.assertEqual(when, NOW + timedelta(seconds=1800))

    def test_freshness_hints(self) -> None:
        self.assertEqual(
            freshness_seconds(result(cache_control="public, max-age=7200"), None), 7200
        )
        self.assertIsNone(freshness_seconds(result(cache_control="no-cache, max-age=7200"), None))
        expires = result(
            expires="Wed, 24 Jun 2026 15:00:00 GMT", date="Wed, 24 Jun 2026 12:00:00 GMT"
        )
        self.assertEqual(freshness_seconds(expires, None), 10800)
        self.assertEqual(freshness_seconds(result(), 3600.0), 3600)
        self.assertIsNone(freshness_seconds(result(), None))

    def test_max_age_delays_next_fetch_capped_at_a_day(self) -> None:
        state = FeedState(url=URL, last_fetch=NOW)
        r = result(cache_control="max-age=7200")
        self.assertEqual(
            next_fetch(CONFIG, state, r, None, NOW, FixedRandom(0))[0],
            NOW + timedelta(seconds=7200),
        )
        r = result(cache_control="max-age=9999999")
        self.assertEqual(
            next_fetch(CONFIG, state, r, None, NOW, FixedRandom(0))[0], NOW + timedelta(days=1)
        )
        ttl = ParsedFeed(title="", link=None, entries=(), refresh_hint=3 * 3600.0)
        self.assertEqual(
            next_fetch(CONFIG, state, result(), ttl, NOW, FixedRandom(0))[0],
            NOW + timedelta(hours=3),
        )
        # A hint shorter than the interval never makes us poll more often.
        r = result(cache_control="max-age=60")
        self.assertEqual(
            next_fetch(CONFIG, state, r, None, NOW, FixedRandom(0))[0],
            NOW + timedelta(seconds=1800),
        )


class UnicodeDigitTests(SynchronousTestCase):
    """Only ASCII digits are delta-seconds (issue 19, item 8): anything else is ignored, as a
    missing header is, and never raises."""

    # "²" (latin-1 B2: what arrives when a server sends that byte) made float() raise;
    # "٣" and "５" are digits to str.isdigit and numbers to float(), but not to HTTP.
    NOT_SECONDS = ("²", "³", "¹", "٣", "５", "1_000", "+5", "-5", "5.0", "1e3", "0x10", "", "²0")

    def test_retry_after(self) -> None:
        for value in self.NOT_SECONDS:
            self.assertIsNone(retry_after_seconds(value, NOW), value)
        self.assertEqual(retry_after_seconds(" 7 ", NOW), 7)
        self.assertEqual(retry_after_seconds("9" * 5000, NOW), float("inf"))

    def test_max_age(self) -> None:
        for value in self.NOT_SECONDS:
            self.assertIsNone(freshness_seconds(result(cache_control=f"max-age={value}"), None))
            # Ignored as if absent: Expires applies.
            r = result(
                cache_control=f"max-age={value}",
                expires="Wed, 24 Jun 2026 15:00:00 GMT",
                date="Wed, 24 Jun 2026 12:00:00 GMT",
            )
            self.assertEqual(freshness_seconds(r, None), 10800, value)

    def test_next_fetch_is_set(self) -> None:
        state = FeedState(url=URL, last_fetch=NOW, error="HTTP 503", consecutive_errors=1)
        for value in self.NOT_SECONDS:
            busy = result(503, error="HTTP 503", retry_after=value)
            # No Retry-After to honour: the error's backoff, one interval.
            self.assertEqual(
                next_fetch(CONFIG, state, busy, None, NOW, MID), (NOW + timedelta(hours=0.5), None)
            )
            fresh = result(cache_control=f"public, max-age={value}")
            self.assertEqual(
                next_fetch(CONFIG, FeedState(url=URL), fresh, None, NOW, FixedRandom(0)),
                (NOW + timedelta(seconds=1800), None),
            )
        # A huge value is capped, not an overflow.
        huge = result(cache_control="max-age=" + "9" * 400)
        self.assertEqual(
            next_fetch(CONFIG, FeedState(url=URL), huge, None, NOW, FixedRandom(0))[0],
            NOW + timedelta(days=1),
        )
        huge = result(429, error="x", retry_after="9" * 400)
        self.assertEqual(
            next_fetch(CONFIG, state, huge, None, NOW, MID)[1], NOW + timedelta(days=7)
        )
