"""Snapshot: JSON round trip, atomic replacement, damaged files, periodic writes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from feeds import at
from test_store import A, entry, feed, ok
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from planet import snapshot
from planet.model import FeedState
from planet.snapshot import SnapshotError, SnapshotService, decode, encode, write_atomic
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

    def test_failed_write_keeps_previous_file(self) -> None:
        d = Path(fresh_path(self))
        path = str(d / "snap.json")
        write_atomic(path, b"good")

        class Full(bytes):
            pass

        real_fsync = os.fsync

        def no_space(fd: int) -> None:
            raise OSError(28, "No space left on device")

        os.fsync = no_space  # type: ignore[assignment]
        try:
            with self.assertRaises(OSError):
                write_atomic(path, b"new and never complete")
        finally:
            os.fsync = real_fsync  # type: ignore[assignment]
        self.assertEqual(Path(path).read_bytes(), b"good")
        self.assertEqual(os.listdir(d), ["snap.json"])


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
