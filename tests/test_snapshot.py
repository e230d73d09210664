"""Snapshot: JSON round trip, atomic replacement, damaged files, periodic writes, full disks."""

from __future__ import annotations

import errno
import gc
import json
import mmap
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
from attrs import NOTHING, define, evolve, field
from attrs import fields as attrs_fields
from feeds import at
from hypothesis import given, settings
from hypothesis import strategies as st
from test_store import A, B, entry, feed, ok
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from planet import atomicfile, snapshot, snapshotcodec
from planet.atomicfile import DiskFile, write_atomic
from planet.model import Entry, FeedState, ListState
from planet.sanitize import POLICY_VERSION
from planet.snapshot import SnapshotService
from planet.snapshotcodec import SnapshotError, decode, decode_all, encode
from planet.store import Store
from planet.testing import record_fetch

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
        self.assertEqual(doc["schema"], snapshotcodec.SCHEMA_VERSION)
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

    def __call__(self, path: str) -> atomicfile.SnapshotFile:
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
        record_fetch(store, A, ok(A), feed(entry(A, 1, 10)), NOW)
        clock.advance(300)
        self.assertTrue(os.path.exists(svc.path))
        mtime_written = svc.written_at
        self.assertIsNotNone(mtime_written)
        os.unlink(svc.path)
        clock.advance(300)  # nothing changed: no write
        self.assertFalse(os.path.exists(svc.path))
        record_fetch(store, A, ok(A), feed(entry(A, 2, 11)), NOW)
        clock.advance(300)
        entries, _ = decode(Path(svc.path).read_bytes())
        self.assertEqual(len(entries), 2)

    def test_written_on_stop_and_loaded_on_start(self) -> None:
        svc, store, clock = self.make()
        svc.startService()
        record_fetch(store, A, ok(A), feed(entry(A, 1, 10), title="Feed A"), NOW)
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
        record_fetch(store, A, ok(A), feed(entry(A, 1, 10)), NOW)
        clock.advance(svc.interval)
        return Path(svc.path).read_bytes()

    def test_full_disk_keeps_snapshot_logs_one_line_and_retries_sooner(self) -> None:
        svc, store, clock, disk, events = self.full_disk_service()
        good = self.first_snapshot(svc, store, clock)
        written_at = svc.written_at

        disk.full = "write"
        record_fetch(store, A, ok(A), feed(entry(A, 2, 11)), NOW)
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
                record_fetch(store, A, ok(A), feed(entry(A, 1, 10)), NOW)
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
        record_fetch(store, A, ok(A), feed(entry(A, 2, 11)), NOW)
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
        record_fetch(store, A, ok(A), feed(entry(A, 1, 10)), NOW)
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
        entries = [entry(A, n, 1 + n % 28) for n in range(snapshotcodec.CHUNK * 2 + 7)]
        states = [FeedState(url=A, title="T")]
        data = encode(entries, states, NOW)
        doc = json.loads(data)
        self.assertEqual(len(doc["entries"]), len(entries))
        self.assertEqual(decode(data), (entries, states))
        # Many chunks, none holding more than CHUNK entries.
        self.assertGreater(len(list(snapshotcodec.iter_encoded(entries, states, NOW))), 3)

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


# --- compatibility of the msgspec fast path with the stdlib format -------------------------
#
# The snapshot format is what the stdlib code below wrote and read before msgspec: the fast
# path must write the same bytes and read any such document into the same objects, and a
# document it does not take must still be read (or refused) as the stdlib code did.


def legacy_record(value: Any) -> dict[str, Any]:
    # Keyed by init names: an entry's packed HTML is its "content" text, as before packing.
    record = {f.alias: getattr(value, f.alias) for f in attrs_fields(type(value))}
    for f in attrs_fields(type(value)):
        if "datetime" in str(f.type) and record[f.alias] is not None:
            record[f.alias] = record[f.alias].isoformat()
    return record


def legacy_encode(
    entries: Sequence[Entry],
    states: Sequence[FeedState],
    when: datetime,
    lists: Sequence[ListState] = (),
) -> bytes:
    """The whole document in one stdlib ``json.dumps``, as the first snapshots were made
    (plus the sanitizer policy version, recorded since issue 19)."""
    doc = {
        "schema": 1,
        "written_at": when.isoformat(),
        "policy": POLICY_VERSION,
        "lists": [legacy_record(v) for v in lists],
        "feeds": [legacy_record(v) for v in states],
        "entries": [legacy_record(v) for v in entries],
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def legacy_values(record: dict[str, Any], cls: type) -> dict[str, Any]:
    values = {f.alias: record[f.alias] for f in attrs_fields(cls) if f.alias in record}
    for f in attrs_fields(cls):
        if "datetime" in str(f.type) and values.get(f.alias) is not None:
            values[f.alias] = datetime.fromisoformat(values[f.alias])
    return values


def legacy_decode_all(data: bytes) -> tuple[list[Entry], list[FeedState], list[ListState]]:
    """The stdlib reader of the snapshot format; raises SnapshotError where it did."""
    try:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("schema") != 1:
            raise SnapshotError("unknown snapshot schema")
        states = [FeedState(**legacy_values(r, FeedState)) for r in doc["feeds"]]
        entries = [Entry(**legacy_values(r, Entry)) for r in doc["entries"]]
        lists = []
        for r in doc.get("lists", []):
            values = legacy_values(r, ListState)
            values["feeds"] = tuple((url, name) for url, name in values.get("feeds", ()))
            values["skipped"] = tuple(values.get("skipped", ()))
            lists.append(ListState(**values))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SnapshotError(str(exc)) from exc
    return entries, states, lists


ODD_TEXT = [
    "",
    "Zoë Ångström – “quotes” ‘single’ …",
    "\x00\x01\x1f\x7f control",
    'quote " backslash \\ slash / tab \t newline \n cr \r',
    "\u2028\u2029 separators, \ufeff BOM, \ufffe \uffff non-characters",
    "astral 😀 𝄞 \U0010ffff \U00010000",
    "</script><!-- -->&amp;",
    "中文 עברית العربية हिन्दी",
]
TEXT = st.sampled_from(ODD_TEXT) | st.text(st.characters(exclude_categories=("Cs",)))
MAYBE_TEXT = st.none() | TEXT
# Offsets of whole minutes are what the fast path reads; seconds in an offset are valid
# isoformat() that only the stdlib reads: both kinds are drawn. (Microseconds in an offset
# do not survive the stdlib's own round trip: see the odd documents below.)
OFFSETS = st.one_of(
    st.none(),
    st.just(timezone.utc),
    st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m))),
    st.integers(-(24 * 3600 - 1), 24 * 3600 - 1).map(lambda s: timezone(timedelta(seconds=s))),
)
WHEN = st.datetimes(timezones=OFFSETS)
MAYBE_WHEN = st.none() | WHEN
# Integers past 64 bits too: valid JSON, read by both.
MAYBE_INT = st.none() | st.integers(-(2**63), 2**63 - 1) | st.integers()


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    return Entry(
        id=draw(TEXT),
        feed_url=draw(TEXT),
        title=draw(TEXT),
        link=draw(MAYBE_TEXT),
        author=draw(TEXT),
        content=draw(TEXT),
        published=draw(WHEN),
        updated=draw(WHEN),
        first_seen=draw(WHEN),
        dated=draw(st.booleans()),
    )


@st.composite
def feed_states(draw: st.DrawFn) -> FeedState:
    values: dict[str, Any] = {"url": draw(TEXT), "title": draw(TEXT)}
    for f in attrs_fields(FeedState):
        if f.name in values:
            continue
        kind = str(f.type)
        if "datetime" in kind:
            values[f.name] = draw(MAYBE_WHEN)
        elif kind == "int":
            values[f.name] = draw(st.integers(-(2**63), 2**63 - 1) | st.integers())
        elif "int" in kind:
            values[f.name] = draw(MAYBE_INT)
        else:
            values[f.name] = draw(MAYBE_TEXT)
    return FeedState(**values)


@st.composite
def list_states(draw: st.DrawFn) -> ListState:
    return ListState(
        url=draw(TEXT),
        feeds=tuple(draw(st.lists(st.tuples(TEXT, MAYBE_TEXT), max_size=3))),
        etag=draw(MAYBE_TEXT),
        last_modified=draw(MAYBE_TEXT),
        last_fetch=draw(MAYBE_WHEN),
        error=draw(MAYBE_TEXT),
        skipped=tuple(draw(st.lists(TEXT, max_size=2))),
    )


STORES = st.tuples(
    st.lists(entries(), max_size=4),
    st.lists(feed_states(), max_size=3),
    WHEN,
    st.lists(list_states(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(store=STORES)
def test_written_bytes_are_those_of_stdlib_json(store: Any) -> None:
    entries_, states, when, lists = store
    assert encode(entries_, states, when, lists) == legacy_encode(entries_, states, when, lists)


@settings(max_examples=300, deadline=None)
@given(store=STORES)
def test_read_as_the_stdlib_reads(store: Any) -> None:
    entries_, states, when, lists = store
    data = legacy_encode(entries_, states, when, lists)
    got = decode_all(data)
    assert got == legacy_decode_all(data)
    assert got == (entries_, states, lists)
    # Equal is not enough for datetimes (an offset or naive-ness could differ): written
    # again, the objects give the very same bytes.
    assert legacy_encode(got[0], got[1], when, got[2]) == data


def test_every_code_point_is_escaped_as_stdlib_json_does() -> None:
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    title_of = [everything[i : i + 5000] for i in range(0, len(everything), 5000)]
    many = [entry(A, n, 10, title=title) for n, title in enumerate(title_of)]
    data = encode(many, [], NOW)
    # json.dumps's bytes, with a line break (whitespace) after every CHUNK entries: a raw
    # line break is never inside a string.
    assert data.count(b"\n") == (len(many) - 1) // snapshotcodec.CHUNK > 1
    assert data.replace(b",\n", b",") == legacy_encode(many, [], NOW)
    assert decode(data) == (many, [])


def test_lone_surrogate_fails_the_write_as_before() -> None:
    bad = [entry(A, 1, 10, title="half a pair \ud800")]
    with pytest.raises(UnicodeEncodeError):
        legacy_encode(bad, [], NOW)
    with pytest.raises(UnicodeEncodeError):
        encode(bad, [], NOW)


class Text(str):
    pass


class Number(int):
    pass


def test_subclasses_of_json_types_are_written_as_stdlib_json_does() -> None:
    odd = [entry(A, 1, 10, title=Text("subclassed ✓"), author=Text(""))]
    state = FeedState(url=A, http_status=Number(200), consecutive_errors=Number(2))
    listed = ListState(url=A, feeds=((Text("u"), Text("n")),))
    data = encode(odd, [state], NOW, [listed])
    assert data == legacy_encode(odd, [state], NOW, [listed])
    assert decode_all(data) == (odd, [state], [listed])
    with pytest.raises(TypeError):
        encode([entry(A, 1, 10, title=object())], [], NOW)  # type: ignore[arg-type]


def every_field_set() -> tuple[list[Entry], list[FeedState], list[ListState]]:
    """One of each class with every field set (non-ASCII, a non-UTC offset), and one bare."""
    east = timezone(timedelta(hours=5, minutes=30))
    full_entry = Entry(
        id="tag:é,2026:1",
        feed_url=A,
        title="Ünïcode ☃ 😀",
        link="http://x.example/ü",
        author="Zoë",
        content='<p>\u2028 \x00 \\ "</p>',
        published=datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=east),
        updated=datetime(2026, 6, 2, tzinfo=timezone.utc),
        first_seen=datetime(2026, 6, 3, 1, 2, 3),
        dated=False,
    )
    values: dict[str, Any] = {}
    for f in attrs_fields(FeedState):
        kind = str(f.type)
        if "datetime" in kind:
            values[f.name] = datetime(2026, 6, 24, 5, 6, 7, 89, tzinfo=east)
        elif "int" in kind:
            values[f.name] = 3
        else:
            values[f.name] = f"value of {f.name} ü"
    full_state = FeedState(**values)
    full_list = ListState(
        url="http://lists.example/ö.opml",
        feeds=((A, "Feed A ✓"), (B, None)),
        etag='"e"',
        last_modified="Tue, 23 Jun 2026 10:00:00 GMT",
        last_fetch=NOW,
        error="HTTP 500",
        skipped=("feed://x.example/ö", "javascript:alert(1)"),
    )
    bare_entry = entry(B, 2, 11, link=None)
    return [full_entry, bare_entry], [full_state, FeedState(url=B)], [full_list, ListState(url=B)]


class FastPathTests(SynchronousTestCase):
    def test_every_field_round_trips_through_the_fast_path(self) -> None:
        entries_, states, lists = every_field_set()
        self.assertIsNotNone(snapshotcodec._TYPED, "the msgspec decoder is not in use")
        # Every field is covered: none is left at its default in the full objects.
        for value in (entries_[0], states[0], lists[0]):
            for f in attrs_fields(type(value)):
                if f.default is not NOTHING:
                    self.assertNotEqual(getattr(value, f.name), f.default, f.name)

        def no_fallback(data: bytes) -> Any:
            raise AssertionError("the generic decoder was used")

        self.patch(snapshotcodec, "_decode_generic", no_fallback)
        data = encode(entries_, states, NOW, lists)
        self.assertEqual(data, legacy_encode(entries_, states, NOW, lists))
        got = decode_all(data)
        self.assertEqual(got, (entries_, states, lists))
        self.assertEqual(legacy_encode(got[0], got[1], NOW, got[2]), data)
        self.assertEqual(got, legacy_decode_all(data))

    def test_documents_only_the_stdlib_reads_are_read_as_before(self) -> None:
        entries_, states, lists = every_field_set()
        good = json.loads(encode(entries_, states, NOW, lists))
        odd_documents = {
            "escaped lone surrogate": ("entries", 0, "title", "\ud800"),
            "offset with seconds": ("entries", 0, "published", "2026-06-01T12:00:00+05:30:15"),
            "offset with microseconds": (
                "feeds",
                0,
                "next_fetch",
                "2000-01-01T00:00+00:00:00.000001",
            ),
            "string where an int goes": ("feeds", 0, "http_status", "200"),
            "null where a str goes": ("entries", 1, "author", None),
            "float where an int goes": ("feeds", 0, "pending_count", 1.5),
            "int where a bool goes": ("entries", 0, "dated", 0),
            "list pair as feeds name": ("lists", 0, "feeds", [[A, ["x"]]]),
        }
        for label, (key, index, name, value) in odd_documents.items():
            with self.subTest(label):
                doc = json.loads(json.dumps(good))
                doc[key][index][name] = value
                # Escaped to ASCII: as a stdlib document may be, and the surrogate as \ud800.
                data = json.dumps(doc).encode()
                with self.assertRaises(msgspec.DecodeError):
                    assert snapshotcodec._TYPED is not None
                    snapshotcodec._TYPED.decode(data)
                self.assertEqual(decode_all(data), legacy_decode_all(data))
        for label, value in {"schema true": True, "schema 1.0": 1.0}.items():
            with self.subTest(label):
                doc = dict(good, schema=value)
                data = json.dumps(doc, ensure_ascii=False).encode()
                self.assertEqual(decode_all(data), legacy_decode_all(data))
        with self.subTest("int past 64 bits"):  # both read it, to the same int
            doc = json.loads(json.dumps(good))
            doc["feeds"][0]["consecutive_errors"] = 2**70
            data = json.dumps(doc).encode()
            self.assertEqual(decode_all(data), legacy_decode_all(data))
            self.assertEqual(decode_all(data)[1][0].consecutive_errors, 2**70)

    def test_older_and_newer_documents_read_as_before(self) -> None:
        entries_, states, lists = every_field_set()
        doc = json.loads(encode(entries_, states, NOW, lists))
        # Written before reading lists, ``dated`` and the newer feed fields existed ...
        del doc["lists"]
        for name in ("dated",):
            del doc["entries"][0][name]
        for name in ("duplicate_of", "feed_id", "final_url", "discovered_url", "gone_since"):
            del doc["feeds"][0][name]
        del doc["written_at"]
        # ... or by a later version with fields this one does not know.
        doc["entries"][1]["future"] = {"nested": [1, 2.5, None]}
        doc["feeds"][1]["future"] = "x"
        doc["extra"] = [1]
        data = json.dumps(doc, ensure_ascii=False).encode()

        def no_fallback(data: bytes) -> Any:
            raise AssertionError("the generic decoder was used")

        got = legacy_decode_all(data)
        self.assertEqual(got[2], [])
        self.assertTrue(got[0][0].dated)
        self.assertIsNone(got[1][0].duplicate_of)
        self.patch(snapshotcodec, "_decode_generic", no_fallback)
        self.assertEqual(decode_all(data), got)

    def test_damage_and_other_schemas_are_refused_as_before(self) -> None:
        entries_, states, lists = every_field_set()
        good = encode(entries_, states, NOW, lists)
        doc = json.loads(good)
        missing = json.loads(good)
        del missing["entries"][0]["content"]
        damaged = {
            "truncated": good[:-1],
            "cut mid-string": good[: len(good) // 2],
            "empty": b"",
            "not UTF-8": good.replace(b"\xc3\xbc", b"\xfc", 1),
            "UTF-8 of a surrogate": good.replace(b"\xc3\xbc", b"\xed\xa0\x80", 1),
            "BOM": b"\xef\xbb\xbf" + good,
            "trailing garbage": good + b"x",
            "a list": b"[]",
            "schema 2": json.dumps(dict(doc, schema=2)).encode(),
            "no schema": json.dumps({k: v for k, v in doc.items() if k != "schema"}).encode(),
            "no entries": json.dumps({k: v for k, v in doc.items() if k != "entries"}).encode(),
            "required field missing": json.dumps(missing).encode(),
            "entry not an object": json.dumps(dict(doc, entries=[[1, 2]])).encode(),
            "bad date": json.dumps(dict(doc, feeds=[{"url": A, "last_fetch": "no"}])).encode(),
            "date not a string": json.dumps(
                dict(doc, feeds=[{"url": A, "last_fetch": 5}])
            ).encode(),
        }
        for label, data in damaged.items():
            with self.subTest(label):
                with self.assertRaises(SnapshotError):
                    legacy_decode_all(data)
                with self.assertRaises(SnapshotError):
                    decode_all(data)
        with self.assertRaises(SnapshotError) as caught:
            decode_all(damaged["schema 2"])
        self.assertEqual(str(caught.exception), "unknown snapshot schema 2")

    def test_collector_state_is_restored(self) -> None:
        data = encode(*every_field_set()[:2], NOW)
        self.addCleanup(gc.enable) if gc.isenabled() else self.addCleanup(gc.disable)
        for enabled in (True, False):
            gc.enable() if enabled else gc.disable()
            for blob in (data, data[:-3], b'{"schema": 1, "feeds": [], "entries": [{}]}'):
                try:
                    decode_all(blob)
                except SnapshotError:
                    pass
                self.assertEqual(gc.isenabled(), enabled)

    def test_service_load_restores_the_collector(self) -> None:
        d = Path(fresh_path(self))
        d.mkdir()
        good = encode(*every_field_set()[:2], NOW)
        self.addCleanup(gc.enable) if gc.isenabled() else self.addCleanup(gc.disable)
        for enabled in (True, False):
            for blob in (good, good[:-3]):
                gc.enable() if enabled else gc.disable()
                (d / "snap.json").write_bytes(blob)
                store = Store()
                svc = SnapshotService(
                    store=store,
                    path=str(d / "snap.json"),
                    interval=300,
                    clock=Clock(),
                    run_in_thread=inline,
                )
                svc.load()
                self.assertEqual(store.entry_count(), 2 if blob is good else 0)
                self.assertEqual(gc.isenabled(), enabled)

    def test_odd_snapshot_loads_at_start_and_is_not_moved_aside(self) -> None:
        entries_, states, lists = every_field_set()
        doc = json.loads(encode(entries_, states, NOW, lists))
        doc["entries"][0]["published"] = "2026-06-01T12:00:00+05:30:15"  # stdlib only
        d = Path(fresh_path(self))
        d.mkdir()
        path = d / "snap.json"
        path.write_bytes(json.dumps(doc, ensure_ascii=False).encode())
        clock = Clock()
        store = Store()
        svc = SnapshotService(
            store=store, path=str(path), interval=300, clock=clock, run_in_thread=inline
        )
        svc.startService()
        self.assertEqual(store.entry_count(), 2)
        self.assertEqual(os.listdir(d), ["snap.json"])
        svc.stopService()


class MappedReadTests(SynchronousTestCase):
    """The snapshot is read mapped (no 430 MB copy at a 200k-entry restart): read the same."""

    def file_of(self, data: bytes) -> str:
        d = Path(fresh_path(self))
        d.mkdir(exist_ok=True)
        path = d / "snap.json"
        path.write_bytes(data)
        return str(path)

    def mapped(self, data: bytes) -> bytes | mmap.mmap:
        got = atomicfile.map_regular(self.file_of(data))
        if isinstance(got, mmap.mmap):
            self.addCleanup(got.close)
        return got

    def test_mapped_bytes_are_the_files(self) -> None:
        data = encode(*every_field_set()[:2], NOW)
        got = self.mapped(data)
        self.assertIsInstance(got, mmap.mmap)
        self.assertEqual(bytes(got), data)
        self.assertEqual(bytes(got), atomicfile.read_regular(self.file_of(data)))
        self.assertEqual(self.mapped(b""), b"")  # an empty file cannot be mapped: read

    def test_directory_and_fifo_are_refused_unopened(self) -> None:
        d = Path(fresh_path(self))
        d.mkdir()
        os.mkfifo(d / "fifo")
        for path in (d, d / "fifo"):
            with self.assertRaises(atomicfile.NotARegularFileError):
                atomicfile.map_regular(str(path))  # a FIFO opened blocking would hang here

    def test_mapped_documents_decode_as_their_bytes(self) -> None:
        entries_, states, lists = every_field_set()
        good = encode(entries_, states, NOW, lists)
        doc = json.loads(good)
        odd = json.loads(good)
        odd["entries"][0]["published"] = "2026-06-01T12:00:00+05:30:15"  # the stdlib path
        documents = {
            "good": good,
            "odd": json.dumps(odd).encode(),
            "truncated": good[:-1],
            "not UTF-8": good.replace(b"\xc3\xbc", b"\xfc", 1),
            "schema 2": json.dumps(dict(doc, schema=2)).encode(),
            "bad date": json.dumps(dict(doc, feeds=[{"url": A, "last_fetch": "no"}])).encode(),
            "empty": b"",
        }
        for label, data in documents.items():
            with self.subTest(label):
                try:
                    expected: Any = decode_all(data)
                except SnapshotError as exc:
                    expected = str(exc)
                try:
                    got: Any = decode_all(self.mapped(data))
                except SnapshotError as exc:
                    got = str(exc)
                self.assertEqual(got, expected)
        self.assertEqual(decode_all(self.mapped(good)), (entries_, states, lists))

    def test_load_closes_the_mapping(self) -> None:
        good = encode(*every_field_set()[:2], NOW)
        opened: list[Any] = []

        def mapping(path: str) -> Any:
            opened.append(atomicfile.map_regular(path))
            return opened[-1]

        self.patch(snapshot, "map_regular", mapping)
        for blob in (good, good[:-3]):
            with self.subTest(damaged=blob is not good):
                path = self.file_of(blob)
                opened.clear()
                store = Store()
                svc = SnapshotService(
                    store=store, path=path, interval=300, clock=Clock(), run_in_thread=inline
                )
                svc.load()
                self.assertEqual(store.entry_count(), 2 if blob is good else 0)
                [mapped] = opened
                self.assertIsInstance(mapped, mmap.mmap)
                self.assertTrue(mapped.closed)


# --- the sanitizer policy a snapshot was written under (issue 19, item 11) -------------------


def marked(entries: list[Entry]) -> list[Entry]:
    """What a fake re-sanitizer gives back: every title marked."""
    return [evolve(e, title=f"[clean] {e.title}") for e in entries]


class PolicyTests(SynchronousTestCase):
    """Entries written under another sanitizer policy are sanitized again before they are
    served; under this one they load at once, as before."""

    def setUp(self) -> None:
        self.calls: list[tuple[list[Entry], Deferred[list[Entry]]]] = []
        self.dir = Path(fresh_path(self))
        self.dir.mkdir()
        self.path = self.dir / "snap.json"
        self.events: list[dict[str, Any]] = []

    def resanitize(self, entries: list[Entry]) -> Deferred[list[Entry]]:
        d: Deferred[list[Entry]] = Deferred()
        self.calls.append((list(entries), d))
        return d

    def release(self) -> None:
        for entries, d in self.calls:
            if not d.called:
                d.callback(marked(entries))

    def write(self, entries: Sequence[Entry], policy: int | None, **state: Any) -> bytes:
        states = [FeedState(url=A, title="Feed A", **state), FeedState(url=B, title="Feed B")]
        data = encode(entries, states, NOW, policy=policy or 0)
        if policy is None:  # written before the policy was recorded
            doc = json.loads(data)
            del doc["policy"]
            data = json.dumps(doc).encode()
        self.path.write_bytes(data)
        return data

    def start(self, resanitize: Any = None) -> tuple[SnapshotService, Store, Clock]:
        clock = Clock()
        clock.advance(NOW.timestamp())
        store = Store()
        svc = SnapshotService(
            store=store,
            path=str(self.path),
            interval=300,
            clock=clock,
            run_in_thread=inline,
            resanitize=resanitize if resanitize is not None else self.resanitize,
        )
        svc._log = Logger(observer=cast(ILogObserver, self.events.append))
        svc.startService()
        return svc, store, clock

    def lines(self) -> list[str]:
        return [formatEvent(e) for e in self.events]

    def test_the_policy_is_recorded(self) -> None:
        data = encode([entry(A, 1, 10)], [], NOW)
        self.assertEqual(json.loads(data)["policy"], POLICY_VERSION)
        self.assertEqual(snapshotcodec.decode_document(data).policy, POLICY_VERSION)
        self.assertTrue(snapshotcodec.decode_document(data).typed)
        # Read by the generic path too, and 0 where it is missing or not a number.
        doc = json.loads(data)
        doc["entries"][0]["author"] = None  # only the stdlib reads that
        for policy, read in ((7, 7), ("7", 0), (True, 0), (None, 0)):
            doc["policy"] = policy
            got = snapshotcodec.decode_document(json.dumps(doc).encode())
            self.assertEqual((got.policy, got.typed), (read, False))
        del doc["policy"]
        self.assertEqual(snapshotcodec.decode_document(json.dumps(doc).encode()).policy, 0)

    def test_same_policy_loads_at_once(self) -> None:
        self.write([entry(A, 1, 10), entry(B, 1, 11)], POLICY_VERSION)
        svc, store, _ = self.start()
        self.assertEqual(self.calls, [])
        self.assertEqual(store.entry_count(), 2)
        self.assertEqual(store.river()[0].title, f"{B} 1")
        svc.stopService()

    def test_other_policy_entries_are_served_only_sanitized_again(self) -> None:
        entries = [entry(A, 1, 10), entry(B, 1, 11)]
        before = self.write(entries, POLICY_VERSION - 1)
        svc, store, clock = self.start()
        # The feed states at once (the schedule needs them); no entry yet.
        self.assertEqual(store.state(A).title, "Feed A")
        self.assertEqual(store.river(), ())
        self.assertEqual(
            [sorted(e.id for e in call) for call, _ in self.calls], [[f"{A}#1", f"{B}#1"]]
        )
        # No snapshot is written meanwhile: the file still holds the entries.
        record_fetch(store, B, ok(B, status=304), None, NOW)
        clock.advance(svc.interval * 2)
        self.assertEqual(self.path.read_bytes(), before)
        self.release()
        self.assertEqual(
            sorted(e.title for e in store.river()), [f"[clean] {A} 1", f"[clean] {B} 1"]
        )
        clock.advance(svc.interval)
        doc = json.loads(self.path.read_bytes())
        self.assertEqual(doc["policy"], POLICY_VERSION)
        self.assertEqual(
            sorted(e["title"] for e in doc["entries"]), [f"[clean] {A} 1", f"[clean] {B} 1"]
        )
        lines = self.lines()
        self.assertIn(
            f"Snapshot {self.path} was written under sanitizer policy {POLICY_VERSION - 1}, this "
            f"is {POLICY_VERSION}: its 2 entries are sanitized again before they are served",
            lines,
        )
        self.assertTrue(
            any(
                line.startswith(f"Sanitized 2 entries of snapshot {self.path} again")
                for line in lines
            )
        )
        svc.stopService()

    def test_a_snapshot_without_a_policy_is_sanitized_again(self) -> None:
        self.write([entry(A, 1, 10)], None)
        svc, store, _ = self.start()
        self.assertEqual(len(self.calls), 1)
        self.release()
        self.assertEqual(store.river()[0].title, f"[clean] {A} 1")
        svc.stopService()

    def test_in_chunks_all_added_at_once(self) -> None:
        count = snapshot.RESANITIZE_CHUNK * 2 + 7
        self.write([entry(A, n, 1 + n % 28) for n in range(count)], 0)
        store_max = Store().max_entries_per_feed
        svc, store, _ = self.start()
        self.assertEqual([len(c) for c, _ in self.calls], [snapshot.RESANITIZE_CHUNK] * 2 + [7])
        self.calls[0][1].callback(marked(self.calls[0][0]))
        self.assertEqual(store.entry_count(), 0)  # all or none: the river is made once
        self.release()
        self.assertEqual(store.entry_count(), store_max)  # the per-feed bound applies
        svc.stopService()

    def test_a_failed_chunk_drops_its_entries_and_refetches_their_feeds(self) -> None:
        self.write([entry(A, 1, 10), entry(B, 1, 11)], 0, etag='"a"', body_hash="h")
        count = 0

        def half_broken(entries: list[Entry]) -> Deferred[list[Entry]]:
            nonlocal count
            count += 1
            if any(e.feed_url == A for e in entries):
                return fail(RuntimeError("worker died"))
            return succeed(marked(entries))

        self.patch(snapshot, "RESANITIZE_CHUNK", 1)
        svc, store, _ = self.start(half_broken)
        self.assertEqual(count, 2)
        self.assertEqual([e.feed_url for e in store.river()], [B])
        state = store.state(A)
        self.assertEqual((state.etag, state.body_hash, state.title), (None, None, "Feed A"))
        self.assertIn(
            f"1 entries of snapshot {self.path} could not be sanitized again (worker died); "
            "dropped, their feeds are fetched and parsed again in full",
            self.lines(),
        )
        svc.stopService()

    def test_stopped_meanwhile_keeps_the_previous_snapshot(self) -> None:
        before = self.write([entry(A, 1, 10)], 0)
        svc, store, _ = self.start()
        record_fetch(store, B, ok(B, status=304), None, NOW)
        self.successResultOf(svc.stopService())
        self.assertEqual(self.path.read_bytes(), before)
        self.assertIn(
            f"snapshot not written to {self.path}: 1 entries are still being sanitized again; "
            "keeping the previous snapshot",
            self.lines(),
        )
        self.release()  # too late: nothing is added to a stopped store
        self.assertEqual(store.entry_count(), 0)

    def test_fetched_meanwhile_keeps_the_fetch_and_the_first_dates(self) -> None:
        first_seen = NOW - timedelta(days=3)
        self.write([entry(A, 1, 10, first_seen=first_seen), entry(A, 2, 11)], 0)
        svc, store, _ = self.start()
        fetched = entry(A, 1, 10, content="<p>newer</p>", first_seen=NOW)
        record_fetch(store, A, ok(A), feed(fetched), NOW)
        self.release()
        by_id = {e.id: e for e in store.river()}
        self.assertEqual(
            (by_id[f"{A}#1"].content, by_id[f"{A}#1"].first_seen), ("<p>newer</p>", first_seen)
        )
        self.assertEqual(by_id[f"{A}#2"].title, f"[clean] {A} 2")
        svc.stopService()

    def test_feeds_dropped_meanwhile_lose_their_entries(self) -> None:
        self.write([entry(A, 1, 10), entry(B, 1, 11)], 0)
        svc, store, _ = self.start()
        store.retain([B])  # the aggregator's start: A is no longer in the config
        self.release()
        self.assertEqual([e.feed_url for e in store.river()], [B])
        self.assertIn(
            f"Snapshot {self.path}: 1 entries of feeds no longer subscribed (dropped)", self.lines()
        )
        svc.stopService()

    def test_without_a_resanitizer_they_are_served_as_written(self) -> None:
        self.write([entry(A, 1, 10)], 0)
        clock = Clock()
        store = Store()
        svc = SnapshotService(
            store=store, path=str(self.path), interval=300, clock=clock, run_in_thread=inline
        )
        svc.startService()
        self.assertEqual(store.river()[0].title, f"{A} 1")
        svc.stopService()


class LoadedTests(SynchronousTestCase):
    """``loaded()`` fires once the snapshot's entries are in the store (``planet run-once``
    starts its cycle then: a snapshot written before would otherwise keep the old file)."""

    setUp = PolicyTests.setUp
    resanitize = PolicyTests.resanitize
    release = PolicyTests.release
    write = PolicyTests.write
    start = PolicyTests.start

    def test_loaded_at_once_under_the_same_policy(self) -> None:
        self.write([entry(A, 1, 10)], POLICY_VERSION)
        svc, store, _ = self.start()
        self.successResultOf(svc.loaded())
        svc.stopService()

    def test_loaded_after_the_entries_are_sanitized_again(self) -> None:
        self.write([entry(A, 1, 10), entry(B, 1, 11)], POLICY_VERSION - 1)
        svc, store, _ = self.start()
        waiting = svc.loaded()
        self.assertNoResult(waiting)
        self.release()
        self.successResultOf(waiting)
        self.assertEqual(store.entry_count(), 2)
        self.successResultOf(svc.loaded())
        svc.stopService()

    def test_loaded_when_sanitizing_again_fails(self) -> None:
        self.write([entry(A, 1, 10)], POLICY_VERSION - 1)
        svc, store, _ = self.start()
        waiting = svc.loaded()
        for _, d in self.calls:
            d.errback(RuntimeError("worker died"))
        self.successResultOf(waiting)
        svc.stopService()
