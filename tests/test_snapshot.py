"""Snapshot: JSON round trip, atomic replacement, damaged files, periodic writes, full disks."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

from attrs import define, field
from feeds import at
from test_store import A, entry, feed, ok
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from planet import snapshot
from planet.model import FeedState
from planet.snapshot import (
    DiskFile,
    SnapshotError,
    SnapshotService,
    decode,
    encode,
    write_atomic,
)
from planet.store import Store

NOW = at(2026, 6, 24)


def fresh_path(case: SynchronousTestCase) -> str:
    """A path in a new temporary directory that is removed after the test."""
    parent = tempfile.mkdtemp(prefix="planet-test-")
    case.addCleanup(shutil.rmtree, parent, True)
    return os.path.join(parent, "d")


def inline(f: Any, *args: Any) -> Deferred[Any]:
    return maybeDeferred(f, *args)


class EncodingTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        entries = [entry(A, 1, 10, title="Ünïcode \u2603"), entry(A, 2, 11, link=None, dated=False)]
        states = [FeedState(url=A, title="T", etag='"x"', last_fetch=NOW, consecutive_errors=2)]
        got_entries, got_states = decode(encode(entries, states, NOW))
        self.assertEqual(got_entries, entries)
        self.assertEqual(got_states, states)

    def test_schema_version_recorded_and_checked(self) -> None:
        doc = json.loads(encode([], [], NOW))
        self.assertEqual(doc["schema"], snapshot.SCHEMA_VERSION)
        doc["schema"] = 999
        with self.assertRaises(SnapshotError):
            decode(json.dumps(doc).encode())

    def test_damage_is_snapshot_error(self) -> None:
        good = encode([entry(A, 1, 10)], [], NOW)
        for bad in (good[: len(good) // 2], b"", b"\xff\xfe", b"[]", b'{"schema": 1}'):
            with self.assertRaises(SnapshotError):
                decode(bad)


class AtomicWriteTests(SynchronousTestCase):
    def test_write_replaces_and_leaves_no_temporaries(self) -> None:
        d = Path(fresh_path(self))
        path = str(d / "snap.json")
        write_atomic(path, b"one")
        write_atomic(path, b"two")
        self.assertEqual(Path(path).read_bytes(), b"two")
        self.assertEqual(os.listdir(d), ["snap.json"])

    def test_full_disk_keeps_previous_file_byte_identical(self) -> None:
        for where in FullDisk.PLACES:
            with self.subTest(where=where):
                d = Path(fresh_path(self))
                path = str(d / "snap.json")
                write_atomic(path, b"the good old snapshot")
                disk = FullDisk(full=where)
                with self.assertRaises(OSError) as caught:
                    write_atomic(path, [b"new and ", b"never ", b"complete"], opener=disk)
                self.assertEqual(caught.exception.errno, errno.ENOSPC)
                self.assertEqual(Path(path).read_bytes(), b"the good old snapshot")
                # The partial temporary is gone: it would hold the space a retry needs.
                self.assertEqual(os.listdir(d), ["snap.json"])
                if where != "open":
                    self.assertGreater(disk.partial, 0, "the temporary never held any bytes")


@define
class FullDisk:
    """An opener for :func:`write_atomic` whose disk fills up at ``full``.

    ``full`` is None (room enough), "open" (the file cannot be created), "write" (the
    second chunk does not fit) or "sync" (the data does not fit when flushed).
    """

    PLACES = ("open", "write", "sync")
    full: str | None = None
    opened: list[str] = field(factory=list)
    #: Bytes the temporary file held when the disk ran out.
    partial: int = 0

    def __call__(self, path: str) -> snapshot.SnapshotFile:
        self.opened.append(path)
        if self.full == "open":
            raise no_space()
        return _FillingFile(DiskFile.create(path), path, self)


@define
class _FillingFile:
    real: DiskFile
    path: str
    disk: FullDisk
    writes: int = 0

    def write(self, data: bytes) -> object:
        self.writes += 1
        if self.disk.full == "write" and self.writes > 1:
            self._ran_out()
        return self.real.write(data)

    def sync(self) -> None:
        if self.disk.full == "sync":
            self._ran_out()
        self.real.sync()

    def close(self) -> None:
        self.real.close()

    def _ran_out(self) -> None:
        self.real.sync()
        self.disk.partial = os.path.getsize(self.path)
        raise no_space()


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class ServiceTests(SynchronousTestCase):
    def make(
        self, path: str | None = None, run: Any = inline
    ) -> tuple[SnapshotService, Store, Clock]:
        clock = Clock()
        clock.advance(NOW.timestamp())
        store = Store()
        path = path or str(Path(fresh_path(self)) / "snap.json")
        svc = SnapshotService(store=store, path=path, interval=300, clock=clock, run_in_thread=run)
        return svc, store, clock

    def test_periodic_write_only_when_changed(self) -> None:
        svc, store, clock = self.make()
        svc.startService()
        self.assertFalse(os.path.exists(svc.path))
        store.record_fetch(A, ok(A), feed(entry(A, 1, 10)), NOW)
        clock.advance(300)
        self.assertTrue(os.path.exists(svc.path))
        mtime_written = svc.written_at
        self.assertIsNotNone(mtime_written)
        os.unlink(svc.path)
        clock.advance(300)  # nothing changed: no write
        self.assertFalse(os.path.exists(svc.path))
        store.record_fetch(A, ok(A), feed(entry(A, 2, 11)), NOW)
        clock.advance(300)
        entries, _ = decode(Path(svc.path).read_bytes())
        self.assertEqual(len(entries), 2)

    def test_written_on_stop_and_loaded_on_start(self) -> None:
        svc, store, clock = self.make()
        svc.startService()
        store.record_fetch(A, ok(A), feed(entry(A, 1, 10), title="Feed A"), NOW)
        self.successResultOf(svc.stopService())
        svc2, store2, _ = self.make(path=svc.path)
        svc2.startService()
        self.assertEqual(store2.river(), store.river())
        self.assertEqual(store2.state(A).title, "Feed A")
        svc2.stopService()

    def test_corrupt_snapshot_moved_aside(self) -> None:
        d = Path(fresh_path(self))
        d.mkdir()
        path = d / "snap.json"
        path.write_bytes(b'{"schema": 1, "feeds": [], "entr')
        svc, store, _ = self.make(path=str(path))
        svc.startService()
        self.assertEqual(store.entry_count(), 0)
        aside = [n for n in os.listdir(d) if n.startswith("snap.json.corrupt-")]
        self.assertEqual(len(aside), 1)
        self.assertEqual((d / aside[0]).read_bytes(), b'{"schema": 1, "feeds": [], "entr')
        errors = self.flushLoggedErrors()
        self.assertEqual(errors, [])
        svc.stopService()

    def test_stale_temporary_removed_at_start(self) -> None:
        d = Path(fresh_path(self))
        d.mkdir()
        (d / "snap.json.tmp-12345").write_bytes(b"half")
        svc, _, _ = self.make(path=str(d / "snap.json"))
        svc.startService()
        self.assertEqual(os.listdir(d), [])
        svc.stopService()

    def full_disk_service(
        self, interval: float = 300
    ) -> tuple[SnapshotService, Store, Clock, FullDisk, list[dict[str, Any]]]:
        """A service writing through a :class:`FullDisk` (room enough), logging to a list."""
        events: list[dict[str, Any]] = []
        disk = FullDisk()
        svc, store, clock = self.make()
        svc.interval = interval
        svc.opener = disk
        svc._log = Logger(observer=cast(ILogObserver, events.append))
        return svc, store, clock, disk, events

    def first_snapshot(self, svc: SnapshotService, store: Store, clock: Clock) -> bytes:
        """Start ``svc`` and let it write one entry while there is room; returns the file."""
        svc.startService()
        store.record_fetch(A, ok(A), feed(entry(A, 1, 10)), NOW)
        clock.advance(svc.interval)
        return Path(svc.path).read_bytes()

    def test_full_disk_keeps_snapshot_logs_one_line_and_retries_sooner(self) -> None:
        svc, store, clock, disk, events = self.full_disk_service()
        good = self.first_snapshot(svc, store, clock)
        written_at = svc.written_at

        disk.full = "write"
        store.record_fetch(A, ok(A), feed(entry(A, 2, 11)), NOW)
        clock.advance(300)
        self.assertEqual(Path(svc.path).read_bytes(), good)
        self.assertEqual(os.listdir(os.path.dirname(svc.path)), ["snap.json"])
        self.assertEqual(svc.written_at, written_at)
        self.assertEqual(
            errors(events),
            [
                f"snapshot not written to {svc.path}: No space left on device; "
                "keeping the previous snapshot, retrying in 30 s"
            ],
        )
        attempts = len(disk.opened)
        clock.advance(29)
        self.assertEqual(len(disk.opened), attempts, "retried before the 30 s were up")
        clock.advance(1)
        self.assertEqual(len(disk.opened), attempts + 1, "not retried after 30 s")
        self.assertEqual(len(errors(events)), 2, "each failed attempt is one line")
        self.assertEqual(Path(svc.path).read_bytes(), good)

        disk.full = None  # space is back
        clock.advance(30)
        self.assertEqual(len(disk.opened), attempts + 2)
        entries, _ = decode(Path(svc.path).read_bytes())
        self.assertEqual(len(entries), 2)
        assert svc.written_at is not None and written_at is not None
        self.assertGreater(svc.written_at, written_at)
        self.assertEqual(svc.failures, 0)
        self.assertIn(
            f"Snapshot {svc.path} is current again after 2 failed writes", messages(events)
        )
        # Back to the regular interval: the retry is not left pending.
        self.assertEqual([c.getTime() for c in clock.getDelayedCalls()], [NOW.timestamp() + 900])
        clock.advance(300)
        self.assertEqual(len(disk.opened), attempts + 2, "nothing changed, nothing written")
        self.assertEqual(len(errors(events)), 2)
        svc.stopService()

    def test_full_disk_at_every_step_is_survived(self) -> None:
        for where in FullDisk.PLACES:
            with self.subTest(where=where):
                svc, store, clock, disk, events = self.full_disk_service(interval=5)
                svc.startService()
                disk.full = where
                store.record_fetch(A, ok(A), feed(entry(A, 1, 10)), NOW)
                clock.advance(5)
                self.assertFalse(os.path.exists(os.path.dirname(svc.path) + "/snap.json"))
                self.assertEqual(os.listdir(os.path.dirname(svc.path)), [])
                # A retry sooner than the interval makes no sense: the interval is the bound.
                self.assertEqual(
                    errors(events),
                    [
                        f"snapshot not written to {svc.path}: No space left on device; "
                        "keeping the previous snapshot, retrying in 5 s"
                    ],
                )
                disk.full = None
                clock.advance(5)
                self.assertEqual(len(decode(Path(svc.path).read_bytes())[0]), 1)
                svc.stopService()

    def test_failed_shutdown_write_neither_raises_nor_hangs(self) -> None:
        svc, store, clock, disk, events = self.full_disk_service()
        good = self.first_snapshot(svc, store, clock)
        disk.full = "sync"
        store.record_fetch(A, ok(A), feed(entry(A, 2, 11)), NOW)
        clock.advance(300)  # fails, and a retry is pending when the stop comes
        self.assertEqual(len(clock.getDelayedCalls()), 2)
        attempts = len(disk.opened)
        self.assertIsNone(self.successResultOf(svc.stopService()))
        self.assertEqual(len(disk.opened), attempts + 1, "the shutdown write was not tried")
        self.assertEqual(Path(svc.path).read_bytes(), good)
        self.assertEqual(os.listdir(os.path.dirname(svc.path)), ["snap.json"])
        self.assertEqual(
            errors(events)[-1],
            f"snapshot not written to {svc.path}: No space left on device; "
            "keeping the previous snapshot (shutting down, not retried)",
        )
        # Nothing left for the reactor to run: twistd's stop can finish.
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_failed_write_is_retried_and_loop_survives(self) -> None:
        calls = []

        def flaky(f: Any, *args: Any) -> Deferred[Any]:
            calls.append(f)
            if len(calls) == 1:
                return fail(OSError(28, "No space left on device"))
            return maybeDeferred(f, *args)

        svc, store, clock = self.make(run=flaky)
        svc.startService()
        store.record_fetch(A, ok(A), feed(entry(A, 1, 10)), NOW)
        clock.advance(300)
        self.assertFalse(os.path.exists(svc.path))
        self.assertIsNone(svc.written_at)
        clock.advance(300)
        self.assertTrue(os.path.exists(svc.path))
        self.assertEqual(len(calls), 2)
        svc.stopService()


def messages(events: list[dict[str, Any]]) -> list[str]:
    return [formatEvent(e) for e in events]


def errors(events: list[dict[str, Any]]) -> list[str]:
    return [formatEvent(e) for e in events if e["log_level"] is LogLevel.error]


class StreamedEncodingTests(SynchronousTestCase):
    def test_chunks_form_one_json_document(self) -> None:
        entries = [entry(A, n, 1 + n % 28) for n in range(snapshot.CHUNK * 2 + 7)]
        states = [FeedState(url=A, title="T")]
        data = encode(entries, states, NOW)
        doc = json.loads(data)
        self.assertEqual(len(doc["entries"]), len(entries))
        self.assertEqual(decode(data), (entries, states))
        # Many chunks, none holding more than CHUNK entries.
        self.assertGreater(len(list(snapshot.iter_encoded(entries, states, NOW))), 3)

    def test_empty_store(self) -> None:
        self.assertEqual(decode(encode([], [], NOW)), ([], []))


class EveryFieldTests(SynchronousTestCase):
    def test_feed_state_with_every_field_set_round_trips(self) -> None:
        from attrs import fields

        values: dict[str, object] = {}
        for f in fields(FeedState):
            kind = str(f.type)
            if "datetime" in kind:
                values[f.name] = NOW
            elif "int" in kind:
                values[f.name] = 3
            else:
                values[f.name] = f"value of {f.name}"
        state = FeedState(**values)  # type: ignore[arg-type]
        self.assertEqual(decode(encode([], [state], NOW))[1], [state])
