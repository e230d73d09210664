"""update_feed: a feed's next state after one fetch, decided in one pure function."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from attrs import evolve

from planet.config import parse_config
from planet.model import Entry, FeedState, FetchResult, ParsedFeed
from planet.update import update_feed

URL = "http://feed.example/atom.xml"
NOW = datetime(2026, 6, 23, 20, 6, tzinfo=timezone.utc)
CONFIG = parse_config("[Planet]\nfetch_interval = 600\nmax_backoff = 3600\n", "t.ini")


def entry(n: int, published: datetime = NOW) -> Entry:
    return Entry(
        id=f"urn:{n}",
        feed_url=URL,
        title=f"Entry {n}",
        link=f"http://feed.example/{n}",
        author="",
        content="<p>x</p>",
        published=published,
        updated=published,
        first_seen=published,
    )


def ok(**changes: object) -> FetchResult:
    base = FetchResult(
        url=URL, final_url=URL, status=200, body=b"<feed/>", body_hash="h1", etag='"e1"'
    )
    return evolve(base, **changes)


def parsed(*entries: Entry, **changes: object) -> ParsedFeed:
    return evolve(ParsedFeed(title="Feed", link="http://feed.example/", entries=entries), **changes)


def run(before: FeedState, result: FetchResult, parse: ParsedFeed | None, config=CONFIG):
    return update_feed(config, before, result, parse, NOW, random.Random(1))


def test_first_success_records_everything_and_spreads_the_next_fetch():
    update = run(FeedState(url=URL), ok(), parsed(entry(1)))
    state = update.state
    assert (state.last_fetch, state.last_success, state.error) == (NOW, NOW, None)
    assert (state.http_status, state.etag, state.body_hash) == (200, '"e1"', "h1")
    assert (state.title, state.link) == ("Feed", "http://feed.example/")
    assert update.entries == (entry(1),)
    assert update.identity_changed
    # The first success adds the feed's stable offset within the interval (and jitter).
    assert NOW + timedelta(seconds=600) <= state.next_fetch <= NOW + timedelta(seconds=1230)


def test_a_304_keeps_the_validators_it_does_not_replace():
    before = run(FeedState(url=URL), ok(last_modified="LM"), parsed()).state
    update = run(before, ok(status=304, body=None, body_hash=None, etag='"e2"'), None)
    assert (update.state.etag, update.state.last_modified) == ('"e2"', "LM")
    assert update.state.body_hash == "h1"
    assert update.entries is None
    assert not update.identity_changed


def test_errors_count_and_back_off_and_a_success_resets_them():
    state = FeedState(url=URL)
    waits = []
    for _ in range(4):
        state = run(state, ok(status=500, error="HTTP 500", body=None), None).state
        waits.append((state.next_fetch - NOW).total_seconds())
    assert state.consecutive_errors == 4 and state.failing
    assert 540 <= waits[0] <= 660 and 1080 <= waits[1] <= 1320
    assert waits[3] <= 3600 * 1.1  # capped at max_backoff
    state = run(state, ok(), parsed()).state
    assert (state.consecutive_errors, state.error) == (0, None)


def test_gone_is_never_fetched_again_and_keeps_its_date():
    update = run(FeedState(url=URL), ok(status=410, error="HTTP 410 Gone", body=None), None)
    assert update.state.gone_since == NOW and update.state.next_fetch is None
    later = update_feed(
        CONFIG,
        update.state,
        ok(status=410, error="HTTP 410 Gone"),
        None,
        NOW + timedelta(days=1),
        random.Random(1),
    )
    assert later.state.gone_since == NOW


def test_retry_after_waits():
    result = ok(status=503, error="HTTP 503", body=None, retry_after="7200")
    state = run(FeedState(url=URL), result, None).state
    assert state.waiting_until == NOW + timedelta(seconds=7200)
    assert state.next_fetch == state.waiting_until


def test_a_body_that_failed_to_parse_is_remembered():
    result = ok(body_hash="slow")
    state = run(FeedState(url=URL), result, parsed(error="parse timed out after 30 s")).state
    assert state.failing and state.body_hash == "slow"
    # A fetch that failed before a body arrived leaves the last body's hash alone.
    state = run(state, ok(status=None, error="timed out", body=None, body_hash=None), None).state
    assert state.body_hash == "slow"


def test_permanent_moves_adopted_on_the_second_sighting_or_at_once_for_https():
    moved = "http://elsewhere.example/feed"
    result = ok(final_url=moved, redirects=((301, moved),))
    once = run(FeedState(url=URL), result, parsed()).state
    assert (once.current_url, once.pending_move, once.pending_count) == (None, moved, 1)
    twice = run(once, result, parsed()).state
    assert (twice.current_url, twice.pending_move) == (moved, None)
    https = URL.replace("http:", "https:")
    upgraded = run(FeedState(url=URL), ok(final_url=https, redirects=((308, https),)), parsed())
    assert upgraded.state.current_url == https
    temporary = run(once, ok(final_url=moved, redirects=((302, moved),)), parsed()).state
    assert (temporary.pending_move, temporary.pending_count) == (None, 0)


def test_entries_older_than_the_retention_are_not_offered():
    config = parse_config("[Planet]\nmax_entry_age_days = 7\n", "t.ini")
    old, new = entry(1, NOW - timedelta(days=8)), entry(2, NOW - timedelta(days=6))
    update = run(FeedState(url=URL), ok(), parsed(old, new), config)
    assert update.entries == (new,)


def test_identity_change_is_reported_once():
    first = run(FeedState(url=URL), ok(), parsed(feed_id="urn:feed")).state
    same = run(first, ok(), parsed(feed_id="urn:feed"))
    assert not same.identity_changed
    other = run(first, ok(), parsed(feed_id="urn:other"))
    assert other.identity_changed
    failing = run(first, ok(status=404, error="HTTP 404", body=None), None)
    assert not failing.identity_changed
