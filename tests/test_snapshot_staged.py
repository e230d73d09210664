"""A big snapshot is served from its newest entries at once; the older ones follow in turns.

Entries are written newest first, one line per ``snapshotcodec.CHUNK``; at start the head
(feed states, lists) and the first ``snapshot.FIRST_ENTRIES`` are read, the rest
``snapshot.LINES_PER_TURN`` lines per turn of the reactor. Until then no snapshot is written,
``loaded()`` waits, and the fetch cycles wait for it.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from test_aggregator import GOOD, GOOD_FEED, Harness
from test_snapshot import NOW, fresh_path
from test_store import entry, feed, ok
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from planet import snapshot
from planet.model import Entry, FeedState
from planet.river import river_key
from planet.snapshot import SnapshotService
from planet.snapshotcodec import CHUNK, EntryLines, SnapshotError, decode, decode_staged, encode
from planet.store import Store
from planet.testing import record_fetch

FEEDS = [f"http://f{n}.example/feed" for n in range(7)]
#: Over the first lines and ten lines more: several turns.
TOTAL = 1500
FIRST = 300


def many_entries(total: int = TOTAL) -> list[Entry]:
    """``total`` entries over ``FEEDS``, each a minute apart, newest first; some share links."""
    made = [
        entry(
            FEEDS[n % len(FEEDS)],
            n,
            1,
            link=f"http://shared.example/{n // 3}" if n % 10 == 0 else f"http://x.example/{n}",
            published=NOW - timedelta(minutes=total - n),
            updated=NOW - timedelta(minutes=total - n),
        )
        for n in range(total)
    ]
    return sorted(made, key=lambda e: e.published, reverse=True)


def states() -> list[FeedState]:
    return [FeedState(url=url, title=f"Feed {n}", etag=f'"e{n}"') for n, url in enumerate(FEEDS)]


class Staged(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(snapshot, "FIRST_ENTRIES", FIRST)
        self.patch(snapshot, "LINES_PER_TURN", 2)
        self.dir = Path(fresh_path(self))
        self.dir.mkdir()
        self.path = self.dir / "snap.json"
        self.events: list[dict[str, Any]] = []
        self.entries = many_entries()
        self.data = encode(self.entries, states(), NOW)
        self.path.write_bytes(self.data)

    def start(self) -> tuple[SnapshotService, Store, Clock]:
        clock = Clock()
        clock.advance(NOW.timestamp())
        store = Store(max_entries_per_feed=0)
        svc = SnapshotService(
            store=store, path=str(self.path), interval=300, clock=clock, run_in_thread=maybeDeferred
        )
        svc._log = Logger(observer=cast(ILogObserver, self.events.append))
        svc.startService()
        return svc, store, clock

    def whole(self) -> Store:
        """The store as a whole-document load makes it."""
        store = Store(max_entries_per_feed=0)
        got, states_ = decode(self.data)
        store.load(got, states_, typed=True)
        return store

    def lines(self) -> list[str]:
        return [formatEvent(e) for e in self.events]

    def aside(self) -> list[str]:
        return [n for n in os.listdir(self.dir) if ".corrupt-" in n]


class StagedLoadTests(Staged):
    def test_the_newest_first_then_the_rest_in_turns(self) -> None:
        batches: list[int] = []
        restore = Store.restore

        def counted(store: Store, entries: Any, **kw: Any) -> Any:
            entries = list(entries)
            batches.append(len(entries))
            return restore(store, entries, **kw)

        self.patch(Store, "restore", counted)
        svc, store, clock = self.start()
        # At start: every feed state and the newest FIRST entries, newest first.
        self.assertEqual(set(store.feed_states()), set(FEEDS))
        self.assertEqual(store.state(FEEDS[3]).etag, '"e3"')
        self.assertEqual(list(store.river()), self.entries[:FIRST])
        waiting = svc.loaded()
        self.assertNoResult(waiting)
        self.assertTrue(
            any(
                line.startswith(f"Serving snapshot {self.path}: its newest {FIRST} entries")
                for line in self.lines()
            )
        )
        self.assertFalse(any(line.startswith("Loaded snapshot") for line in self.lines()))
        clock.advance(0)
        # The rest: two lines a turn, each turn its own call.
        self.assertEqual(batches, [2 * CHUNK] * ((TOTAL - FIRST) // (2 * CHUNK)))
        whole = self.whole()
        self.assertEqual(store.river(), whole.river())
        self.assertEqual(store.river_view().hidden, whole.river_view().hidden)
        self.assertEqual(store.river_view().also, whole.river_view().also)
        self.assertEqual(store.feed_counts(), whole.feed_counts())
        self.successResultOf(waiting)
        self.assertIn(
            f"Loaded snapshot {self.path}: {TOTAL} entries, {len(FEEDS)} feeds",
            [line.rsplit(" in ", 1)[0] for line in self.lines()],
        )
        svc.stopService()

    def test_those_waiting_start_in_a_turn_of_their_own(self) -> None:
        svc, store, clock = self.start()
        waiting = svc.loaded()
        while svc._rest is not None:
            for call in clock.getDelayedCalls():
                call.cancel()
            svc._read_lines()
        # The last lines are in; the first fetch cycle (a waiter) waits for the next turn.
        self.assertEqual(store.entry_count(), TOTAL)
        self.assertNoResult(waiting)
        clock.advance(0)
        self.successResultOf(waiting)
        svc.stopService()

    def test_no_snapshot_is_written_until_all_are_read(self) -> None:
        svc, store, clock = self.start()
        record_fetch(store, FEEDS[0], ok(FEEDS[0], status=304), None, NOW)
        self.successResultOf(svc.write())
        self.assertEqual(self.path.read_bytes(), self.data)
        clock.advance(0)
        self.successResultOf(svc.loaded())
        # Something else changed the store while it was read: written now, all of it.
        self.successResultOf(svc.write())
        got, _ = decode(self.path.read_bytes())
        self.assertEqual(got, self.entries)
        svc.stopService()

    def test_read_alone_the_file_is_not_written_again(self) -> None:
        svc, _, clock = self.start()
        clock.advance(0)
        os.unlink(self.path)
        self.successResultOf(svc.write())
        self.assertFalse(self.path.exists())
        svc.stopService()

    def test_stopped_while_reading_keeps_the_file(self) -> None:
        svc, store, clock = self.start()
        waiting = svc.loaded()
        self.successResultOf(svc.stopService())
        self.assertEqual(self.path.read_bytes(), self.data)
        self.assertIn(
            f"snapshot not written to {self.path}: its older entries are still being read; "
            "keeping the previous snapshot",
            self.lines(),
        )
        clock.advance(0)
        self.assertEqual(store.entry_count(), FIRST)
        self.assertNoResult(waiting)
        self.assertIsNone(svc._rest)

    def test_fetched_meanwhile_keeps_the_fetch_and_the_snapshot_dates(self) -> None:
        svc, store, clock = self.start()
        old = self.entries[-1]  # in the last line
        n = int(old.id.rsplit("#", 1)[1])
        again = entry(old.feed_url, n, 1, title="Fetched again", published=NOW, updated=NOW)
        record_fetch(store, old.feed_url, ok(old.feed_url), feed(again), NOW)
        self.assertEqual(store.entry_count(), FIRST + 1)
        clock.advance(0)
        kept = next(e for e in store.entries_of(old.feed_url) if e.id == old.id)
        self.assertEqual(kept.title, "Fetched again")
        self.assertEqual((kept.published, kept.first_seen), (old.published, old.first_seen))
        self.assertEqual(len(store.river()), TOTAL)
        self.assertEqual(list(store.river()), sorted(store.river(), key=river_key, reverse=True))
        svc.stopService()

    def test_a_line_written_otherwise_is_read_with_the_whole_document(self) -> None:
        # Valid JSON still (whitespace moved), but not a line as the writer makes them.
        breaks = [i for i, byte in enumerate(self.data) if byte == ord("\n")]
        at = breaks[6]
        odd = self.data[: at - 1] + b"\n," + self.data[at + 1 :]
        self.assertEqual(json.loads(odd), json.loads(self.data))
        self.path.write_bytes(odd)
        svc, store, clock = self.start()
        clock.advance(0)
        self.assertEqual(store.river(), self.whole().river())
        self.successResultOf(svc.loaded())
        self.assertEqual(self.aside(), [])
        svc.stopService()

    def test_damage_in_a_later_line_keeps_what_was_read_and_refetches(self) -> None:
        breaks = [i for i, byte in enumerate(self.data) if byte == ord("\n")]
        damaged = bytearray(self.data)
        damaged[breaks[8] + 5 : breaks[8] + 9] = b"\x00\x00\x00\x00"
        self.path.write_bytes(bytes(damaged))
        svc, store, clock = self.start()
        clock.advance(0)
        self.successResultOf(svc.loaded())
        # The lines before the damaged one (the tenth) are served; the file is kept aside.
        self.assertEqual(list(store.river()), self.entries[: 9 * CHUNK])
        aside = self.aside()
        self.assertEqual(len(aside), 1)
        self.assertEqual((self.dir / aside[0]).read_bytes(), bytes(damaged))
        self.assertTrue(
            any(
                "is damaged" in line and "its newest 900 entries were read" in line
                for line in self.lines()
            ),
            self.lines(),
        )
        # Every feed is fetched in full: what was lost comes back from its publisher.
        self.assertEqual({s.etag for s in store.feed_states().values()}, {None})
        # And the store is written again.
        self.successResultOf(svc.write())
        self.assertEqual(len(decode(self.path.read_bytes())[0]), 9 * CHUNK)
        svc.stopService()


class StagedDecodeTests(SynchronousTestCase):
    def test_the_head_and_the_first_lines_then_line_by_line(self) -> None:
        entries = many_entries()
        data = encode(entries, states(), NOW)
        first, lines = decode_staged(data, 250)
        assert lines is not None
        self.assertEqual(first.entries, entries[:300])  # up to a whole line
        self.assertEqual(first.states, states())
        self.assertTrue(first.typed)
        rest: list[Entry] = []
        while not lines.done:
            rest.extend(lines.read())
        self.assertEqual(first.entries + rest, entries)
        self.assertRaises(SnapshotError, lines.read)

    def test_small_or_foreign_documents_are_read_whole(self) -> None:
        entries = many_entries(250)
        data = encode(entries, states(), NOW)
        first, lines = decode_staged(data, 300)
        self.assertIsNone(lines)
        self.assertEqual(first.entries, entries)
        pretty = json.dumps(json.loads(encode(many_entries(), states(), NOW)), indent=1).encode()
        first, lines = decode_staged(pretty, 300)
        self.assertIsNone(lines)
        self.assertEqual(first.entries, many_entries())

    def test_a_truncated_document_is_damage_at_once(self) -> None:
        data = encode(many_entries(), states(), NOW)
        self.assertRaises(SnapshotError, decode_staged, data[: len(data) // 2], 300)

    def test_lines_check_their_ends(self) -> None:
        data = encode(many_entries(), states(), NOW)
        _, lines = decode_staged(data, 300)
        assert lines is not None
        cut = EntryLines(data[:-1], lines.position)
        with self.assertRaises(SnapshotError):
            while not cut.done:
                cut.read()


class CyclesWaitTests(SynchronousTestCase):
    def started(self) -> tuple[Harness, Deferred[None]]:
        """An aggregator started on one feed, its store not ready until the Deferred fires."""
        ready: Deferred[None] = Deferred()
        h = Harness(self, [GOOD])
        h.server.serve(GOOD, GOOD_FEED)
        h.aggregator.ready = lambda: ready
        h.start()
        return h, ready

    def test_no_cycle_before_the_store_is_ready(self) -> None:
        h, ready = self.started()
        h.advance(h.tick * 3)
        h.aggregator.kick()
        self.assertEqual(h.server.count(GOOD), 0)
        self.assertEqual(h.aggregator.cycles, 0)
        ready.callback(None)
        h.stub.flush()
        self.assertEqual(h.server.count(GOOD), 1)
        self.assertEqual(h.aggregator.cycles, 1)
        h.stop()

    def test_stopped_before_ready_starts_nothing(self) -> None:
        h, ready = self.started()
        h.stop()
        ready.callback(None)
        h.stub.flush()
        self.assertEqual(h.server.count(GOOD), 0)
        self.assertIsNone(h.aggregator._timer)
