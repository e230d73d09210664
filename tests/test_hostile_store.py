"""The store and the snapshot against a hostile publisher, an old snapshot, an odd disk (issue 19).

- Links ``urlsplit`` refuses (``http://[::1``) are stored and deduped like any other, a merge
  is all or nothing, and a snapshot holding entries the store cannot index as they are loses
  (or mends) those entries, never the daemon (item 1; item 11: integer ids and null titles;
  item 12: naive dates).
- A feed's stored entries are bounded in bytes as well as in count (item 4).
- A copy of another feed's post does not take its place in the river (item 5).
- A snapshot path that is not a regular file, or a damaged snapshot that cannot be moved
  aside, is one error line and an empty start (item 12).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from feeds import Item, at, rss2
from hypothesis import given, settings
from hypothesis import strategies as st
from process import Daemon, FeedServer, Request, Response, meaningful_lines, run_once
from rig import inline
from test_store import NOW, A, B, entry, feed, ok
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from planet import river as river_module
from planet import schedule
from planet import store as store_module
from planet.atomicfile import NotARegularFileError, write_atomic
from planet.config import Config, Subscription
from planet.model import Entry, FeedState, FetchResult, ListState
from planet.river import RiverItem, host_key, normalize_link
from planet.sanitize import POLICY_VERSION
from planet.snapshot import SnapshotService
from planet.snapshotcodec import encode
from planet.store import Store
from planet.testing import inline_parser, planet_ini, record_fetch

#: Links ``urlsplit`` raises on (issue 19, item 1), and one more of each kind.
UNPARSEABLE = ["http://[::1", "http://[x]/", "http://]/", "http://a[b]/", "http://x]y/post"]
MiB = 1024 * 1024


def _events_to(events: list[dict[str, Any]]) -> Logger:
    return Logger(observer=lambda e: events.append(e))  # type: ignore[arg-type]


def _lines(events: list[dict[str, Any]]) -> list[str]:
    return [formatEvent(e) for e in events]


# --- item 1: links urlsplit refuses -----------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.text() | st.sampled_from(UNPARSEABLE).map(lambda u: u + "/post?utm_x=1#f"))
def test_normalize_link_and_host_key_never_raise(url: str) -> None:
    assert isinstance(normalize_link(url), str)
    assert isinstance(host_key(url), str)


def slow_host_key(url: str | None) -> str:
    """host_key the long way: what urlsplit says the host is."""
    if not url:
        return ""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    host = host.rstrip(".")
    return host[4:] if host.startswith("www.") else host


_HOSTY_URLS = st.builds(
    lambda *parts: "".join(parts),
    st.sampled_from(["http://", "HTTPS://", " http://", "ftp://", "http:/", "\thttp://"]),
    st.sampled_from(
        [
            "a.example",
            "WWW.B.example",
            "www.",
            "u@a.example",
            "a.example.",
            "[::1]",
            "1.2.3.4",
            "a_b.example",
            "é.example",
        ]
    ),
    st.sampled_from(["", ":80", ":", ":8x", ":65536"]),
    st.sampled_from(["", "/", "/x", "?q", "#f", " ", "\n", " /x", "\t/"]),
)


@settings(max_examples=1000, deadline=None)
@given(_HOSTY_URLS)
def test_host_key_short_cut_agrees_with_urlsplit(url: str) -> None:
    assert host_key(url) == slow_host_key(url)


class UnparseableLinkTests(SynchronousTestCase):
    def test_each_is_its_own_key(self) -> None:
        for url in UNPARSEABLE:
            with self.subTest(url):
                self.assertEqual(normalize_link(url), url)
                self.assertEqual(normalize_link(f"  {url} "), url)
                self.assertEqual(host_key(url), "")

    def test_ipv6_literals_keep_their_brackets(self) -> None:
        # (They were dropped: "http://::1/post" is no URL, and could equal another link.)
        self.assertEqual(normalize_link("HTTP://[::1]:80/post/?utm_x=1"), "http://[::1]/post")
        self.assertEqual(normalize_link("http://[::1]:8080/p"), "http://[::1]:8080/p")

    def test_entries_are_stored_indexed_and_deduped(self) -> None:
        store = Store()
        mine = [entry(A, n, 10 + n, link=link) for n, link in enumerate(UNPARSEABLE)]
        stats = record_fetch(store, A, ok(A), feed(*mine), NOW)
        self.assertEqual((stats.new, store.state(A).error), (len(UNPARSEABLE), None))
        # Fetched again, edited: updated in place, no error either.
        edited = [
            entry(A, n, 10 + n, link=link, title="edited") for n, link in enumerate(UNPARSEABLE)
        ]
        stats = record_fetch(store, A, ok(A), feed(*edited), NOW + timedelta(hours=1))
        self.assertEqual(stats.updated, len(UNPARSEABLE))
        # Another feed with the very same link: one item, as with any shared link.
        record_fetch(store, B, ok(B), feed(entry(B, 1, 20, link=UNPARSEABLE[0])), NOW)
        items = list(store.river_view().items(True))
        self.assertEqual(len(items), len(UNPARSEABLE))
        (shared,) = [i for i in items if i.also_in]
        self.assertEqual((shared.entry.feed_url, shared.also_in), (A, (B,)))
        # And they go as they came.
        store.retain([B])
        self.assertEqual([e.feed_url for e in store.river()], [B])

    def test_a_redirect_to_an_unparseable_url_is_no_error(self) -> None:
        store = Store()
        for _ in range(2):
            result = FetchResult(
                url=A,
                final_url="http://[x]/",
                status=200,
                body=b"x",
                redirects=((301, "http://[x]/"),),
            )
            record_fetch(store, A, result, feed(entry(A, 1, 10)), NOW)
        self.assertIsNone(store.state(A).error)


class AllOrNothingTests(SynchronousTestCase):
    """A merge that fails half way leaves the store exactly as it was."""

    def seeded(self) -> Store:
        store = Store()
        record_fetch(store, A, ok(A), feed(*[entry(A, n, 10 + n) for n in range(3)]), NOW)
        record_fetch(store, B, ok(B), feed(entry(B, 1, 9, link="http://x.example/1")), NOW)
        return store

    def picture(self, store: Store) -> Any:
        view = store.river_view()
        return (
            list(view.items(True)),
            list(view.items(False)),
            sorted(store.snapshot_data()[0], key=lambda e: (e.feed_url, e.id)),
            store.snapshot_data()[1],
            store.feed_counts(),
            store.feed_bytes(A),
            store.version,
            store.entries_version,
        )

    def failing_at(self, bad: str) -> None:
        """``normalize_link`` raises for the link ``bad`` (any bug in the middle of a merge)."""
        real = river_module.normalize_link

        def normalize(url: str) -> str:
            if url == bad:
                raise RuntimeError("boom")
            return real(url)

        self.patch(river_module, "normalize_link", normalize)

    def test_new_entries(self) -> None:
        store = self.seeded()
        before = self.picture(store)
        self.failing_at("http://x.example/bad")
        batch = [
            entry(A, 7, 20, link="http://x.example/7"),
            entry(A, 8, 21, link="http://x.example/1"),  # shared with B: hides B's copy
            entry(A, 9, 22, link="http://x.example/bad"),
        ]
        with self.assertRaises(RuntimeError):
            record_fetch(store, A, ok(A), feed(*batch), NOW + timedelta(hours=1))
        self.assertEqual(self.picture(store), before)
        # And the store goes on as if the failed merge had never been.
        record_fetch(store, A, ok(A), feed(*batch[:2]), NOW + timedelta(hours=2))
        self.assertEqual(store.entry_count(), 6)
        (shared,) = [i for i in store.river_view().items(True) if i.also_in]
        self.assertEqual(shared.entry.id, f"{B}#1")

    def test_edited_entries(self) -> None:
        store = self.seeded()
        before = self.picture(store)
        self.failing_at("http://x.example/bad")
        batch = [
            entry(A, 0, 10, title="edited"),
            entry(A, 1, 11, link="http://x.example/bad"),  # an edit that moves its link
        ]
        with self.assertRaises(RuntimeError):
            record_fetch(store, A, ok(A), feed(*batch), NOW + timedelta(hours=1))
        self.assertEqual(self.picture(store), before)

    def test_a_failed_fetch_becomes_the_feeds_reason_in_the_daemon(self) -> None:
        # (The aggregator records an unexpected error as "internal error: ..." on the feed;
        # the point here is that the store it records it in is whole.)
        store = self.seeded()
        self.failing_at("http://x.example/bad")
        with self.assertRaises(RuntimeError):
            record_fetch(store, A, ok(A), feed(entry(A, 9, 22, link="http://x.example/bad")), NOW)
        failed = FetchResult(url=A, final_url=A, status=None, error="internal error: boom")
        record_fetch(store, A, failed, None, NOW)
        self.assertEqual(store.state(A).error, "internal error: boom")
        self.assertEqual(len(store.entries_of(A)), 3)


# --- items 1, 11, 12: what an old or edited snapshot may hold --------------------------------


def naive(when: datetime) -> datetime:
    return when.replace(tzinfo=None)


class LoadMendsOrDropsTests(SynchronousTestCase):
    def test_entries_are_mended_or_dropped_and_counted(self) -> None:
        good = entry(A, 1, 10)
        odd: list[Any] = [
            good,
            entry(A, 2, 11, link="http://[::1"),
            entry(A, 3, 12, id=33),
            entry(A, 4, 13, title=None, author=None, content=None),
            entry(A, 5, 14, published=naive(at(2026, 6, 14)), updated=naive(at(2026, 6, 14))),
            entry(A, 6, 15, first_seen=naive(NOW)),
            entry(A, 7, 16, link=7),
            entry(A, 8, 17, dated=0),
            entry(A, 9, 18, title=2.5),
            entry(A, 10, 19, published=None),
            entry(A, 11, 19, published="2026-06-19"),
            entry(A, 12, 19, id=["x"]),
            entry(A, 13, 19, title={"x": 1}),
            entry(A, 14, 19, feed_url=None),
            "not an entry",
        ]
        states = [
            FeedState(url=A, next_fetch=naive(NOW), last_fetch=naive(NOW), title=None),  # type: ignore[arg-type]
            FeedState(url=B, http_status="200", consecutive_errors=None, etag=5),  # type: ignore[arg-type]
            FeedState(url=None),  # type: ignore[arg-type]
        ]
        lists = [ListState(url=A, feeds=((A, None), (5, "x")), last_fetch=naive(NOW))]  # type: ignore[arg-type]
        store = Store()
        problems = store.load(odd, states, lists)
        self.assertEqual(
            problems,
            Counter(
                {
                    "entries whose id was a number (made text)": 1,
                    "entries whose title was null (made empty)": 1,
                    "entries whose author was null (made empty)": 1,
                    "entries whose content was null (made empty)": 1,
                    "entries whose published had no time zone (taken as UTC)": 1,
                    "entries whose updated had no time zone (taken as UTC)": 1,
                    "entries whose first_seen had no time zone (taken as UTC)": 1,
                    "entries whose link is not text (taken as no link)": 1,
                    "entries whose dated is not true or false (made so)": 1,
                    "entries whose title was a number (made text)": 1,
                    "entries whose published is not a date (dropped)": 2,
                    "entries whose id is not text (dropped)": 1,
                    "entries whose title is not text (dropped)": 1,
                    "entries whose feed_url is not text (dropped)": 1,
                    "entries that are not entries (dropped)": 1,
                    "feed states whose title is not text (cleared)": 1,
                    "feed states whose next_fetch had no time zone (taken as UTC)": 1,
                    "feed states whose last_fetch had no time zone (taken as UTC)": 1,
                    "feed states whose http_status is not a whole number (cleared)": 1,
                    "feed states whose consecutive_errors is not a whole number (cleared)": 1,
                    "feed states whose etag is not text (cleared)": 1,
                    "feed states whose url is not text (dropped)": 1,
                    "reading lists whose last_fetch had no time zone (taken as UTC)": 1,
                    "reading lists with feeds that are not (URL, name) pairs (left out)": 1,
                }
            ),
        )
        river = store.river()
        self.assertEqual(len(river), 9)
        self.assertIs(store.entries_of(A)[0], good)  # what needed nothing is the same object
        by_id = {e.id: e for e in river}
        self.assertEqual(by_id["33"].title, f"{A} 3")
        self.assertEqual((by_id[f"{A}#4"].title, by_id[f"{A}#4"].content), ("", ""))
        self.assertEqual(by_id[f"{A}#5"].published, at(2026, 6, 14))
        self.assertIsNone(by_id[f"{A}#7"].link)
        self.assertEqual(by_id[f"{A}#9"].title, "2.5")
        self.assertIs(by_id[f"{A}#8"].dated, False)
        for e in river:
            for when in (e.published, e.updated, e.first_seen):
                self.assertEqual(when.utcoffset(), timedelta(0))
        state = store.state(A)
        self.assertEqual((state.title, state.next_fetch), ("", NOW))
        self.assertEqual(store.state(B).http_status, None)
        self.assertEqual(store.state(B).consecutive_errors, 0)
        self.assertEqual(store.reading_lists()[A].feeds, ((A, None),))
        self.assertEqual(store.reading_lists()[A].last_fetch, NOW)

    def test_what_the_cycle_does_with_them_works(self) -> None:
        # A naive date used to make every cycle fail at its start (comparing it with now):
        # silently, while /health said ok.
        store = Store(max_entry_age=timedelta(days=3))
        entries = [entry(A, n, 19 + n, published=naive(at(2026, 6, 19 + n))) for n in range(5)]
        store.load(entries, [FeedState(url=A, next_fetch=naive(NOW), last_fetch=naive(NOW))])
        config = Config(path="p.ini", subscriptions=(Subscription(A),))
        self.assertEqual([s.url for s in schedule.due(config, store.feed_states(), NOW)], [A])
        self.assertEqual(store.expire(NOW), 2)
        record_fetch(store, A, ok(A), feed(entry(A, 9, 23)), NOW)
        self.assertEqual(len(store.river()), 4)

    def test_typed_load_still_takes_naive_dates_as_utc(self) -> None:
        # msgspec checks the types of what it decodes, not the time zones.
        store = Store()
        problems = store.load(
            [entry(A, 1, 10, first_seen=naive(NOW)), entry(A, 2, 11)], [], typed=True
        )
        self.assertEqual(
            problems, Counter({"entries whose first_seen had no time zone (taken as UTC)": 1})
        )
        self.assertEqual({e.first_seen for e in store.river()}, {NOW})


def hostile_snapshot(feed_url: str) -> dict[str, Any]:
    """A snapshot document as an older version or a hand edit may leave it: links urlsplit
    refuses, an integer id, null title/author/content, naive dates (in entries and states)."""

    def record(n: int, **changes: Any) -> dict[str, Any]:
        when = (at(2026, 6, 1) + timedelta(hours=n)).isoformat()
        values: dict[str, Any] = {
            "id": f"urn:hostile:{n}",
            "feed_url": feed_url,
            "title": f"Hostile {n}",
            "link": f"http://good.example/{n}",
            "author": "",
            "content": f"<p>entry {n}</p>",
            "published": when,
            "updated": when,
            "first_seen": when,
            "dated": True,
        }
        values.update(changes)
        return values

    entries = [record(n, link=link) for n, link in enumerate(UNPARSEABLE)]
    entries += [
        record(10, id=10),
        record(11, title=None, author=None, content=None),
        record(12, published="2026-06-02T12:00:00", first_seen="2026-06-02T12:00:00"),
        record(13, link=13),
    ]
    return {
        "schema": 1,
        "written_at": "2026-06-24T12:00:00+00:00",
        "policy": POLICY_VERSION,
        "lists": [],
        "feeds": [
            {
                "url": feed_url,
                "title": "Hostile",
                "last_fetch": "2026-06-24T12:00:00",
                "next_fetch": "2026-06-24T12:30:00",
            }
        ],
        "entries": entries,
    }


def make_service(path: Path, **kw: Any) -> tuple[SnapshotService, Store, list[dict[str, Any]]]:
    """A snapshot service at ``path`` writing on the calling thread, logging to a list."""
    events: list[dict[str, Any]] = []
    store = Store()
    clock = Clock()
    clock.advance(NOW.timestamp())
    svc = SnapshotService(
        store=store, path=str(path), interval=300, clock=clock, run_in_thread=inline, **kw
    )
    svc._log = _events_to(events)
    return svc, store, events


class SnapshotLoadTests(SynchronousTestCase):
    def service(self, path: Path, **kw: Any) -> tuple[SnapshotService, Store, list[dict[str, Any]]]:
        return make_service(path, **kw)

    def test_a_hostile_snapshot_loads_with_one_line_per_kind_of_problem(self) -> None:
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(hostile_snapshot(A)))
        svc, store, events = self.service(path)
        svc.load()
        self.assertEqual(store.entry_count(), len(UNPARSEABLE) + 4)
        lines = _lines(events)
        self.assertIn(f"Snapshot {path}: 1 entries whose id was a number (made text)", lines)
        self.assertIn(f"Snapshot {path}: 1 entries whose title was null (made empty)", lines)
        self.assertIn(
            f"Snapshot {path}: 1 feed states whose next_fetch had no time zone (taken as UTC)",
            lines,
        )
        self.assertEqual(len(lines), len(set(lines)))  # one line per kind
        self.assertTrue(lines[-1].startswith(f"Loaded snapshot {path}: 9 entries, 1 feeds"))
        self.assertEqual(os.listdir(path.parent), [path.name])

    def test_a_store_that_fails_anyway_is_an_empty_start_not_a_crash(self) -> None:
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode([entry(A, 1, 10)], [FeedState(url=A)], NOW))
        svc, store, events = self.service(path)
        real = Store.load

        def broken(self: Store, entries: Any, *args: Any, **kw: Any) -> Counter[str]:
            entries = list(entries)
            if entries:
                raise RuntimeError("a bug")
            return real(self, entries, *args, **kw)

        self.patch(Store, "load", broken)
        svc.load()
        self.assertEqual(store.entry_count(), 0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 0)  # logged to our list
        lines = _lines(events)
        self.assertTrue(
            any(
                line.startswith(f"Snapshot {path} could not be loaded; moved aside to ")
                for line in lines
            ),
            lines,
        )
        self.assertFalse(path.exists())


# --- item 12: a snapshot path that is not a regular file; a read-only directory --------------


class NotAFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir(parents=True)

    def make(self, path: Path, **kw: Any) -> tuple[SnapshotService, Store, list[dict[str, Any]]]:
        return make_service(path, **kw)

    def test_directory_and_fifo_are_neither_read_nor_replaced(self) -> None:
        for kind in ("directory", "fifo"):
            with self.subTest(kind):
                path = self.dir / f"{kind}.json"
                if kind == "directory":
                    path.mkdir()
                else:
                    os.mkfifo(path)
                svc, store, events = self.make(path)
                svc.startService()  # a FIFO opened for reading without O_NONBLOCK would hang
                record_fetch(store, A, ok(A), feed(entry(A, 1, 10)), NOW)
                self.successResultOf(svc.stopService())
                mode = os.stat(path).st_mode
                self.assertTrue(stat.S_ISDIR(mode) if kind == "directory" else stat.S_ISFIFO(mode))
                what = "a directory" if kind == "directory" else "not a regular file"
                lines = _lines(events)
                self.assertEqual(
                    lines[0], f"Snapshot {path} is {what}: not read, never replaced; starting empty"
                )
                self.assertIn(
                    f"snapshot not written to {path}: {what}, never replaced; keeping the "
                    "previous snapshot (shutting down, not retried)",
                    lines,
                )
                # Nothing moved aside, no temporary left behind.
                self.assertEqual([n for n in os.listdir(self.dir) if n != path.name], [])
                os.rmdir(path) if kind == "directory" else os.unlink(path)

    def test_write_atomic_refuses_a_non_regular_target(self) -> None:
        target = self.dir / "d"
        target.mkdir()
        (target / "inside").write_text("kept")
        with self.assertRaises(NotARegularFileError):
            write_atomic(str(target), b"data")
        self.assertEqual((target / "inside").read_text(), "kept")
        fifo = self.dir / "f"
        os.mkfifo(fifo)
        with self.assertRaises(NotARegularFileError):
            write_atomic(str(fifo), [b"data"])
        self.assertTrue(stat.S_ISFIFO(os.stat(fifo).st_mode))
        self.assertEqual(sorted(os.listdir(self.dir)), ["d", "f"])

    def test_damaged_snapshot_that_cannot_be_moved_aside(self) -> None:
        path = self.dir / "snap.json"
        path.write_bytes(b'{"schema": 1, "feeds": [], "entr')

        def read_only(src: str, dst: str) -> None:
            raise PermissionError(13, "Permission denied", src)

        svc, store, events = self.make(path, rename=read_only)
        svc.startService()
        self.assertEqual(store.entry_count(), 0)
        self.assertTrue(svc.running)
        self.assertEqual(
            _lines(events),
            [
                f"Snapshot {path} is damaged (JSONDecodeError: Unterminated string starting at: "
                "line 1 column 28 (char 27)); cannot move it aside (Permission denied), "
                "starting empty"
            ],
        )
        self.assertEqual(path.read_bytes(), b'{"schema": 1, "feeds": [], "entr')
        svc.stopService()


# --- item 4: bytes per feed --------------------------------------------------------------------


def big(feed_url: str, n: int, size: int) -> Entry:
    return entry(feed_url, n, 1 + n % 28, content="x" * size, published=NOW + timedelta(minutes=n))


class BytesPerFeedTests(SynchronousTestCase):
    def test_a_new_5_mb_entry_at_every_fetch_stays_within_the_bound(self) -> None:
        store = Store(max_bytes_per_feed=8 * MiB)
        window = 3  # the feed serves its 3 newest entries, one new per fetch
        for fetch in range(20):
            served = [big(A, n, 5 * MiB) for n in range(max(0, fetch - window + 1), fetch + 1)]
            stats = record_fetch(store, A, ok(A), feed(*served), NOW + timedelta(minutes=fetch))
            kept = store.entries_of(A)
            self.assertLessEqual(store.feed_bytes(A), 8 * MiB)
            self.assertLessEqual(sum(len(e.content) for e in kept), 8 * MiB)
            # The newest is kept; the older ones served again are not "new" every time.
            self.assertEqual([e.id for e in kept], [f"{A}#{fetch}"])
            self.assertEqual(stats.new, 1)
        self.assertEqual(len(store.river()), 1)

    def test_oldest_go_first_and_other_feeds_are_untouched(self) -> None:
        size = store_module._entry_size
        theirs = [big(B, n, 300) for n in range(3)]
        bound = sum(map(size, theirs))
        store = Store(max_bytes_per_feed=bound)
        record_fetch(store, B, ok(B), feed(*theirs), NOW)
        mine = [big(A, n, 100) for n in range(20)]
        record_fetch(store, A, ok(A), feed(*mine), NOW)
        kept = sorted(int(e.id.split("#")[1]) for e in store.entries_of(A))
        # The newest that fit, and not one more.
        self.assertEqual(kept, list(range(20 - len(kept), 20)))
        self.assertLessEqual(store.feed_bytes(A), bound)
        self.assertGreater(store.feed_bytes(A) + size(mine[19 - len(kept)]), bound)
        self.assertEqual(store.feed_bytes(A), sum(map(size, store.entries_of(A))))
        self.assertEqual(len(store.entries_of(B)), 3)
        self.assertEqual(store.feed_bytes(B), bound)

    def test_kept_true_through_edits_expiry_and_reloads(self) -> None:
        store = Store(max_bytes_per_feed=50_000, max_entry_age=timedelta(days=30))
        record_fetch(store, A, ok(A), feed(*[big(A, n, 1000) for n in range(10)]), NOW)
        total = store.feed_bytes(A)
        record_fetch(store, A, ok(A), feed(big(A, 3, 5000)), NOW)  # an edit, 4000 more
        self.assertEqual(store.feed_bytes(A), total + 4000)
        store.max_entry_age = timedelta(days=0)
        store.expire(NOW + timedelta(days=1))
        self.assertEqual(store.feed_bytes(A), 0)
        entries, states = Store(max_bytes_per_feed=0).snapshot_data()
        store.load([big(A, n, 1000) for n in range(10)], states)
        self.assertEqual(store.feed_bytes(A), total)
        store.max_bytes_per_feed = 5000  # lowered (a reload): applied at the next update
        record_fetch(store, A, ok(A), feed(big(A, 11, 1000)), NOW)
        self.assertLessEqual(store.feed_bytes(A), 5000)
        self.assertIn(f"{A}#11", {e.id for e in store.entries_of(A)})

    def test_the_daemon_takes_the_key_at_start_and_at_reload(self) -> None:
        from planet.config import parse_config
        from planet.service import build_service

        def config(size: str) -> Config:
            return parse_config(f"[Planet]\nmax_bytes_per_feed = {size}\n", "planet.ini")

        top = build_service(config("3M"), "tcp:0", Clock(), parser=inline_parser)
        self.assertEqual(top.store.max_bytes_per_feed, 3 * MiB)
        top.apply(config("5k"))
        self.assertEqual(top.store.max_bytes_per_feed, 5 * 1024)

    def test_zero_is_no_bound(self) -> None:
        store = Store(max_bytes_per_feed=0, max_entries_per_feed=0)
        record_fetch(store, A, ok(A), feed(*[big(A, n, 100_000) for n in range(100)]), NOW)
        self.assertEqual(store.entry_count(), 100)


# --- item 5: whose copy of a shared post is shown ----------------------------------------------

VICTIM = "http://victim.example/feed.xml"
COPIER = "http://copier.example/feed.xml"
POST = "http://victim.example/post/"
COPIED = "HTTP://VICTIM.EXAMPLE:80/post/?utm_source=x#top"


class WhoseCopyTests(SynchronousTestCase):
    def shown(self, store: Store) -> list[RiverItem]:
        return [i for i in store.river_view().items(True) if i.also_in]

    def fetch(self, store: Store, url: str, link: str, site: str | None, hours: int = 0) -> None:
        mine = entry(
            url, 1, 10, link=link, title=f"by {url}", first_seen=NOW + timedelta(hours=hours)
        )
        record_fetch(store, url, ok(url), feed(mine, link=site), NOW + timedelta(hours=hours))

    def test_a_copier_seen_first_does_not_take_the_victims_post(self) -> None:
        store = Store()
        self.fetch(store, COPIER, COPIED, "http://copier.example/")
        self.fetch(store, VICTIM, POST, "http://victim.example/", hours=1)
        (item,) = self.shown(store)
        self.assertEqual((item.entry.feed_url, item.entry.title), (VICTIM, f"by {VICTIM}"))
        self.assertEqual(item.also_in, (COPIER,))
        self.assertEqual(len(list(store.river_view().items(True))), 1)

    def test_the_victims_site_counts_when_its_feed_is_elsewhere(self) -> None:
        store = Store()
        hosted = "http://feeds.hosting.example/victim"
        self.fetch(store, COPIER, COPIED, "http://copier.example/")
        self.fetch(store, hosted, POST, "https://www.victim.example/", hours=1)
        (item,) = self.shown(store)
        self.assertEqual(item.entry.feed_url, hosted)

    def test_a_copier_naming_the_victims_site_still_loses_to_the_victims_feed(self) -> None:
        # The site link is the publisher's word; the feed URL is the operator's.
        store = Store()
        self.fetch(store, COPIER, COPIED, "http://victim.example/")
        self.fetch(store, VICTIM, POST, None, hours=1)
        (item,) = self.shown(store)
        self.assertEqual(item.entry.feed_url, VICTIM)

    def test_otherwise_the_copy_seen_first(self) -> None:
        store = Store()
        self.fetch(store, COPIER, "http://elsewhere.example/post", "http://copier.example/")
        self.fetch(
            store, VICTIM, "http://elsewhere.example/post", "http://victim.example/", hours=1
        )
        (item,) = self.shown(store)
        self.assertEqual(item.entry.feed_url, COPIER)

    def test_a_feed_whose_site_changes_is_ranked_again(self) -> None:
        store = Store()
        hosted = "http://feeds.hosting.example/victim"
        self.fetch(store, COPIER, COPIED, "http://copier.example/")
        self.fetch(store, hosted, POST, None, hours=1)
        self.assertEqual(self.shown(store)[0].entry.feed_url, COPIER)
        version = store.entries_version
        store.update_state(hosted, link="http://victim.example/")
        self.assertGreater(store.entries_version, version)
        self.assertEqual(self.shown(store)[0].entry.feed_url, hosted)
        store.update_state(hosted, link=None)
        self.assertEqual(self.shown(store)[0].entry.feed_url, COPIER)

    def test_host_key(self) -> None:
        self.assertEqual(host_key("HTTP://WWW.Victim.Example.:80/x"), "victim.example")
        self.assertEqual(host_key(COPIED), "victim.example")
        self.assertEqual(host_key(None), "")
        self.assertEqual(host_key("http://[::1]:8080/"), "::1")


# --- end to end: the daemon ----------------------------------------------------------------------


def one_feed(server: FeedServer) -> str:
    body = rss2(
        "Plain",
        "http://plain.example/",
        [Item("Plain one", "http://plain.example/1", at(2026, 6, 20))],
    )
    server.routes["/plain.rss"] = Response(200, {"Content-Type": "application/rss+xml"}, body)
    return server.url("/plain.rss")


@pytest.mark.slow
def test_daemon_serves_a_snapshot_of_hostile_entries(server: FeedServer, daemon: Daemon) -> None:
    url = one_feed(server)
    daemon.config_text = planet_ini("Planet Hostile", [(url, None)], fetch_interval=3600)
    daemon.workdir.mkdir(parents=True)
    snapshot = daemon.workdir / "planet-snapshot.json"
    snapshot.write_text(json.dumps(hostile_snapshot(url)))
    daemon.start()
    stored = len(UNPARSEABLE) + 4
    health = daemon.wait_health(lambda h: h["entries"] >= stored)
    assert health["status"] == "ok"
    for path in ("/", "/atom.xml", "/rss20.xml", "/feed.json", "/feeds", "/feeds.json"):
        status, _, body = daemon.get(path)
        assert status == 200, (path, body[:500])
    titles = {item.get("title") for item in json.loads(daemon.get("/feed.json")[2])["items"]}
    assert {"Hostile 10", "Hostile 12", "Hostile 13"} <= titles, titles
    # The (naive) next_fetch was taken as UTC: the schedule runs, a cycle completes.
    os.kill(daemon.proc.pid, signal.SIGUSR1)  # type: ignore[union-attr]
    daemon.wait_until(lambda: re.search(r"cycle \d+ done", daemon.log), what="a fetch cycle")
    log = daemon.log
    assert "Traceback" not in log, log
    assert "entries whose id was a number (made text)" in log
    assert "damaged" not in log
    code, log = daemon.stop()
    # Written back mended: the next start has nothing to say about it.
    daemon.start()
    daemon.wait_health(lambda h: h["entries"] >= stored + 1)
    assert "(made text)" not in daemon.log and "Traceback" not in daemon.log
    doc = json.loads(snapshot.read_bytes())
    assert {e["id"] for e in doc["entries"]} >= {"10", "urn:hostile:0"}
    assert doc["policy"] == POLICY_VERSION


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_snapshot_file_that_is_not_a_file_is_refused_at_start(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "snap"
    if kind == "directory":
        target.mkdir()
    else:
        os.mkfifo(target)
    (tmp_path / "planet.ini").write_text(
        planet_ini("Planet", [], fetch_interval=3600, snapshot_file=str(target))
    )
    code, output, _ = run_once(
        ["--config", "planet.ini", "--listen", "tcp:0:interface=127.0.0.1"], tmp_path
    )
    assert code != 0, output
    lines = meaningful_lines(output)
    assert len(lines) == 1, output
    assert "snapshot_file" in lines[0] and str(target) in lines[0], lines
    assert "Traceback" not in output
    assert (
        stat.S_ISDIR(os.stat(target).st_mode)
        if kind == "directory"
        else stat.S_ISFIFO(os.stat(target).st_mode)
    )


@pytest.fixture
def immutable_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nothing can be created in, renamed in or removed from, even by root
    (``chattr +i``), or a skip where that is not possible."""
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("no chattr(1) here")
    where = tmp_path / "ro"
    where.mkdir()
    (where / "planet-snapshot.json").write_bytes(b'{"schema": 1, "feeds": [], "entr')
    done = subprocess.run([chattr, "+i", str(where)], capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        pytest.skip(f"cannot make a directory immutable here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run([chattr, "-i", str(where)], check=False)  # noqa: S603


@pytest.mark.slow
def test_damaged_snapshot_in_a_read_only_directory(
    server: FeedServer, daemon: Daemon, immutable_dir: Path
) -> None:
    url = one_feed(server)
    snapshot = immutable_dir / "planet-snapshot.json"
    daemon.config_text = planet_ini(
        "Planet RO", [(url, None)], fetch_interval=3600, snapshot_file=str(snapshot)
    )
    daemon.start()
    daemon.wait_health(lambda h: h["entries"] == 1, what="the feed fetched")
    log = daemon.log
    lines = [line for line in log.splitlines() if "planet-snapshot.json is damaged" in line]
    assert len(lines) == 1, log
    assert lines[0].endswith("cannot move it aside (Operation not permitted), starting empty"), (
        lines
    )
    assert "Traceback" not in log and "PermissionError" not in log, log
    assert snapshot.read_bytes() == b'{"schema": 1, "feeds": [], "entr'
    code, log = daemon.stop()
    assert "Traceback" not in log


# --- item 4 end to end: a feed serving a new 5 MB entry at every fetch ------------------------


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class FiveMegabytesEachFetch:
    """Serves the 3 newest entries of a sequence that grows by one 5 MB entry per request."""

    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, request: Request) -> Response:
        self.requests += 1
        items = [
            Item(
                f"Big {k}",
                f"http://big.example/{k}",
                at(2026, 6, 1) + timedelta(hours=k),
                content=f"<p>{k}</p>" + "<p>" + "y" * (5 * MiB) + "</p>",
            )
            for k in range(max(0, self.requests - 3), self.requests)
        ]
        return Response(
            200, {"Content-Type": "application/rss+xml"}, rss2("Big", "http://big.example/", items)
        )


@pytest.mark.slow
def test_a_feed_growing_5_mb_per_fetch_keeps_the_daemon_bounded(
    server: FeedServer, daemon: Daemon
) -> None:
    server.routes["/big.rss"] = big_feed = FiveMegabytesEachFetch()
    url = server.url("/big.rss")
    daemon.config_text = planet_ini(
        "Planet Big",
        [(url, None)],
        fetch_interval=3600,
        max_feed_bytes="64M",
        max_bytes_per_feed="8M",
        # The bound under test is the feed's: entries are not cut to max_entry_bytes first.
        max_entry_bytes="16M",
    )
    daemon.start()
    assert daemon.proc is not None
    rss, pages = [], []
    for fetch in range(1, 21):
        if fetch > 1:
            os.kill(daemon.proc.pid, signal.SIGUSR1)
        cycle_line = f"cycle {fetch} done"
        daemon.wait_until(lambda line=cycle_line: line in daemon.log, deadline=60, what=cycle_line)
        status, _, page = daemon.get("/")  # the river rendered with what is stored
        assert status == 200
        pages.append(len(page))
        rss.append(vm_rss_mb(daemon.proc.pid))
    feeds = json.loads(daemon.get("/feeds.json")[2])
    print("RSS MB after each fetch:", " ".join(f"{v:.0f}" for v in rss))
    assert big_feed.requests == 20
    assert feeds[0]["entries"] == 1, feeds  # 8 MiB hold one 5 MB entry
    assert max(pages) < 6 * MiB, pages  # unbounded: 95 MB at the 20th fetch
    # Unbounded, the process grew by 15 MB per fetch (285 MB in 20: the entry, its copy in
    # the front page and its gzip); bounded, what a fetch brings is released again (the
    # figure wanders with the collector, +95 MB at most in the runs measured).
    assert max(rss) - rss[0] < 150, rss
