"""Store state <-> a JSON file on disk, written atomically and off the reactor thread.

The file is replaced with a rename after an fsync, so a reader (or a restart after
``kill -9``) always sees either the previous complete snapshot or the new complete one.
A write that fails (a full disk) leaves the previous snapshot as it was and is retried
sooner than the regular interval.
The document itself is :mod:`planet.snapshotcodec`'s; the atomic write is
:mod:`planet.atomicfile`'s.
"""

from __future__ import annotations

import mmap
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from planet.atomicfile import (
    DiskFile,
    NotARegularFileError,
    Opener,
    map_regular,
    refuse_non_regular,
    remove_stale_temporaries,
    write_atomic,
)
from planet.interfaces import RunInThread
from planet.metrics import Metrics
from planet.model import Entry, FeedState, ListState, utc_from_timestamp
from planet.records import clean_entry
from planet.sanitize import POLICY_VERSION
from planet.snapshotcodec import (
    Data,
    Decoded,
    EntryLines,
    SnapshotError,
    decode_document,
    decode_staged,
    gc_paused,
    iter_encoded,
)
from planet.store import Store
from planet.websub import WebSubRecord


def _close(data: Data) -> None:
    if isinstance(data, mmap.mmap):
        data.close()


def _reason(failure: Failure) -> str:
    """``No space left on device`` rather than ``[Errno 28] No space left on device: '...'``."""
    value = failure.value
    if isinstance(value, OSError) and value.strerror:
        return value.strerror
    return failure.getErrorMessage()


#: Sanitizes entries again under the current policy (in the parse workers, in the daemon).
Resanitize = Callable[[list[Entry]], "Deferred[list[Entry]]"]
#: Entries per call of the re-sanitizer: a pipe message of ~1 MB, and work for every worker.
RESANITIZE_CHUNK = 500
#: Entries read before the daemon serves: the newest, more than its first pages show.
FIRST_ENTRIES = 2000
#: Lines of entries (``snapshotcodec.CHUNK`` each) read per turn of the reactor after that:
#: decoded, packed (:mod:`planet.textpack`) and put in the store in ~4 ms. (At 5 lines a
#: turn, packing made the longest turn at 200,000 entries 31 ms; at 2 it is 11 ms, and
#: the whole load no slower.)
LINES_PER_TURN = 2


@define
class _Rest:
    """A snapshot's entries still being read (see :meth:`SnapshotService.load`)."""

    lines: EntryLines
    started: float
    entries: int
    feeds: int
    problems: Counter[str]
    #: The store's version after the last line was added: another value at the next turn
    #: means something else changed the store meanwhile (a write is due then).
    version: int
    changed: bool = False
    call: IDelayedCall | None = None


@define(repr=False)
class SnapshotService(Service):
    """Loads the snapshot at start, writes it every ``interval`` seconds and at stop.

    ``run_in_thread(f, *args)`` runs blocking work off the reactor thread
    (``twisted.internet.threads.deferToThread`` in the daemon). A failed write is tried
    again after ``retry_delay`` seconds (or the interval, if shorter) until one succeeds.

    A snapshot written under another sanitizer policy (:data:`planet.sanitize.POLICY_VERSION`)
    has its feed states loaded at once and its entries added once ``resanitize`` gives them
    back cleaned under the current one; until then no snapshot is written (the file on disk
    still holds them). Without ``resanitize`` they are served as they were written.
    """

    store: Store
    path: str
    interval: float
    clock: IReactorTime
    run_in_thread: RunInThread
    metrics: Metrics = field(factory=Metrics)
    retry_delay: float = 30.0
    opener: Opener = DiskFile.create
    resanitize: Resanitize | None = None
    #: Moves a damaged snapshot aside; the seam tests make it fail at (a read-only directory).
    rename: Callable[[str, str], None] = os.replace
    written_at: datetime | None = None
    #: Writes that failed since the last one that succeeded.
    failures: int = 0
    _retry: IDelayedCall | None = None
    _written_version: int | None = None
    _loop: LoopingCall | None = None
    _writing: Deferred[None] | None = None
    #: What of the snapshot is not in the store yet (None: all of it is), and whether we
    #: stopped.
    _pending: str | None = None
    _rest: _Rest | None = None
    #: Waiting for the entries being sanitized again (see :meth:`loaded`).
    _loaded_waiters: list[Deferred[None]] = field(factory=list)
    _stopped: bool = False
    _log: Logger = field(factory=Logger)

    def startService(self) -> None:
        self._stopped = False
        self.load()
        super().startService()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stopped = True
        self._stop_reading()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._cancel_retry()
        # Never fails: a last write that cannot be made is logged and the old file kept.
        return self.write()

    def loaded(self) -> Deferred[None]:
        """Fires once the snapshot is in the store: at once after :meth:`load`, unless its
        older entries are still being read, or its entries sanitized again (then when they
        are added, or given up on)."""
        if self._pending is None:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._loaded_waiters.append(waiter)
        return waiter

    def _now_loaded(self) -> None:
        self._pending = None
        waiters, self._loaded_waiters = self._loaded_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def load(self) -> None:
        """Read the snapshot into the store; a damaged file is moved aside, not fatal, and
        entries the store cannot index are dropped (one log line per kind of problem).

        The feed states and the newest :data:`FIRST_ENTRIES` entries are in the store when
        this returns; the older entries of a big snapshot follow, :data:`LINES_PER_TURN`
        lines per turn of the reactor (at 200,000 entries, reading them all first made a
        restart wait ~2 s longer for its first page). Until they are all in, no snapshot is
        written and :meth:`loaded` waits.
        """
        started = time.perf_counter()
        remove_stale_temporaries(self.path)
        try:
            data = map_regular(self.path)
        except FileNotFoundError:
            self._log.info("No snapshot at {path}; starting empty", path=self.path)
            return
        except NotARegularFileError as exc:
            self._log.error(
                "Snapshot {path} is {kind}: not read, never replaced; starting empty",
                path=self.path,
                kind=exc.strerror,
            )
            return
        except OSError as exc:
            self._log.error(
                "Cannot read snapshot {path}: {err}; starting empty", path=self.path, err=exc
            )
            return
        lines: EntryLines | None = None
        # The store's own structures are made of the loaded objects too, all to be kept: the
        # collector would only walk them again and again (about 100 ms at 100k entries).
        with gc_paused():
            try:
                doc, lines = decode_staged(data, FIRST_ENTRIES)
                if lines is not None and doc.policy != POLICY_VERSION and self.resanitize:
                    # Sanitized again all together: read whole.
                    lines = None
                    doc = decode_document(data)
            except SnapshotError as exc:
                self._move_aside(f"is damaged ({exc})")
                return
            finally:
                # 430 MB at 200k entries, not needed once decoded (the decoded objects hold
                # copies, never views of it).
                if lines is None:
                    _close(data)
                del data
            try:
                problems = self._fill(doc)
                self.store.load_websub(doc.websub)
            except Exception:
                # Not reached while the store mends what it loads; should it ever be, the
                # daemon still starts (a crash here would repeat at every restart).
                self._log.failure("Snapshot {path} could not be loaded", path=self.path)
                self.store.load((), ())
                self._move_aside("could not be loaded")
                if lines is not None:
                    _close(lines.data)
                return
        self._written_version = self.store.version
        if lines is not None:
            self._read_rest(
                _Rest(
                    lines, started, len(doc.entries), len(doc.states), problems, self.store.version
                )
            )
            return
        self._log_loaded(problems, len(doc.entries), len(doc.states), started)

    def _log_loaded(self, problems: Counter[str], entries: int, feeds: int, started: float) -> None:
        for problem, count in sorted(problems.items()):
            self._log.warn(
                "Snapshot {path}: {count} {problem}", path=self.path, count=count, problem=problem
            )
        self._log.info(
            "Loaded snapshot {path}: {n} entries, {f} feeds in {ms:.0f} ms",
            path=self.path,
            n=entries,
            f=feeds,
            ms=(time.perf_counter() - started) * 1000,
        )

    def _read_rest(self, rest: _Rest) -> None:
        self._rest = rest
        self._pending = "its older entries are still being read"
        self._log.info(
            "Serving snapshot {path}: its newest {n} entries and {f} feeds read in {ms:.0f} ms; "
            "reading the older ones",
            path=self.path,
            n=rest.entries,
            f=rest.feeds,
            ms=(time.perf_counter() - rest.started) * 1000,
        )
        rest.call = self.clock.callLater(0, self._read_lines)

    def _read_lines(self) -> None:
        """One turn: :data:`LINES_PER_TURN` lines into the store (see :meth:`load`)."""
        rest = self._rest
        if rest is None:
            return
        rest.call = None
        if self.store.version != rest.version:
            rest.changed = True
        try:
            with gc_paused():
                batch: list[Entry] = []
                for _ in range(LINES_PER_TURN):
                    if rest.lines.done:
                        break
                    batch.extend(rest.lines.read())
                rest.problems.update(self.store.restore(batch, typed=True, by_bytes=False))
        except SnapshotError as exc:
            self._read_whole(rest, exc)
            return
        except Exception:
            self._log.failure("Snapshot {path}: adding its older entries", path=self.path)
            self._lost_rest(rest, "could not be loaded")
            return
        rest.entries += len(batch)
        rest.version = self.store.version
        if rest.lines.done:
            self._rest_read(rest)
        else:
            rest.call = self.clock.callLater(0, self._read_lines)

    def _read_whole(self, rest: _Rest, why: SnapshotError) -> None:
        """A line is not as the writer makes them: the document is read whole, as before
        lines (edited by hand, or written by another program), or it is damaged."""
        try:
            with gc_paused():
                doc = decode_document(rest.lines.data)
                rest.problems.update(self.store.restore(doc.entries, typed=doc.typed))
        except SnapshotError:
            self._lost_rest(rest, f"is damaged ({why})")
            return
        except Exception:
            self._log.failure("Snapshot {path}: adding its older entries", path=self.path)
            self._lost_rest(rest, "could not be loaded")
            return
        rest.entries = len(doc.entries)
        rest.changed = True
        self._rest_read(rest)

    def _rest_read(self, rest: _Rest) -> None:
        if not rest.changed:
            # Only the snapshot's own entries came in: the file already holds all that.
            self._written_version = self.store.version
        self._stop_reading()
        self._log_loaded(rest.problems, rest.entries, rest.feeds, rest.started)
        self._pending = None
        # Those waiting (the first fetch cycle: ~10 ms at 10,000 feeds) start in a turn of
        # their own, not in this one's.
        self.clock.callLater(0, self._now_loaded)

    def _lost_rest(self, rest: _Rest, what: str) -> None:
        """The older entries cannot be read: kept aside, and every feed fetched in full, so
        what is lost comes back from its publisher."""
        self._stop_reading()
        self._move_aside(f"{what}; its newest {rest.entries} entries were read")
        self._refetch(list(self.store.feed_states()))
        self._now_loaded()

    def _stop_reading(self) -> None:
        rest, self._rest = self._rest, None
        if rest is None:
            return
        if rest.call is not None and rest.call.active():
            rest.call.cancel()
        _close(rest.lines.data)

    def _move_aside(self, what: str) -> None:
        aside = f"{self.path}.corrupt-{int(self.clock.seconds())}"
        try:
            refuse_non_regular(aside)
            self.rename(self.path, aside)
        except OSError as exc:
            # A read-only directory, say: the start goes on, empty, and the file stays.
            self._log.error(
                "Snapshot {path} {what}; cannot move it aside ({err}), starting empty",
                path=self.path,
                what=what,
                err=exc.strerror or exc,
            )
            return
        self._log.error(
            "Snapshot {path} {what}; moved aside to {aside}, starting empty",
            path=self.path,
            what=what,
            aside=aside,
        )

    def _fill(self, doc: Decoded) -> Counter[str]:
        """Put what ``doc`` holds into the store; returns what had to be mended or dropped."""
        if doc.policy == POLICY_VERSION:
            return self.store.load(doc.entries, doc.states, doc.lists, typed=doc.typed)
        if self.resanitize is None:
            self._log.info(
                "Snapshot {path} was written under sanitizer policy {old}, this is {new}; "
                "nothing to sanitize it again with: served as written",
                path=self.path,
                old=doc.policy,
                new=POLICY_VERSION,
            )
            return self.store.load(doc.entries, doc.states, doc.lists, typed=doc.typed)
        problems: Counter[str] = Counter()
        entries = [e for e in (clean_entry(x, problems) for x in doc.entries) if e is not None]
        problems.update(self.store.load((), doc.states, doc.lists, typed=doc.typed))
        self._sanitize_again(self.resanitize, entries, doc.policy)
        return problems

    def _sanitize_again(self, resanitize: Resanitize, entries: list[Entry], policy: int) -> None:
        self._pending = f"{len(entries)} entries are still being sanitized again"
        started = self.clock.seconds()
        self._log.info(
            "Snapshot {path} was written under sanitizer policy {old}, this is {new}: its "
            "{n} entries are sanitized again before they are served",
            path=self.path,
            old=policy,
            new=POLICY_VERSION,
            n=len(entries),
        )
        chunks = [
            entries[i : i + RESANITIZE_CHUNK] for i in range(0, len(entries), RESANITIZE_CHUNK)
        ]
        work = [maybeDeferred(resanitize, chunk) for chunk in chunks]

        def back(results: list[tuple[bool, Any]]) -> None:
            try:
                add(results)
            finally:
                self._now_loaded()

        def add(results: list[tuple[bool, Any]]) -> None:
            self._pending = None
            if self._stopped:
                return
            cleaned: list[Entry] = []
            lost: list[Entry] = []
            reasons: set[str] = set()
            for (ok, value), chunk in zip(results, chunks, strict=True):
                if ok and isinstance(value, list):
                    cleaned.extend(value)
                else:
                    lost.extend(chunk)
                    reasons.add(value.getErrorMessage() if not ok else "not a list of entries")
            problems = self.store.restore(cleaned)
            for problem, count in sorted(problems.items()):
                self._log.warn(
                    "Snapshot {path}: {count} {problem}",
                    path=self.path,
                    count=count,
                    problem=problem,
                )
            if lost:
                self._refetch({e.feed_url for e in lost})
                self._log.error(
                    "{n} entries of snapshot {path} could not be sanitized again ({why}); "
                    "dropped, their feeds are fetched and parsed again in full",
                    n=len(lost),
                    path=self.path,
                    why="; ".join(sorted(reasons))[:300],
                )
            self._log.info(
                "Sanitized {n} entries of snapshot {path} again in {ms:.0f} ms; serving them",
                n=len(cleaned),
                path=self.path,
                ms=(self.clock.seconds() - started) * 1000,
            )

        def failed(failure: Failure) -> None:
            self._now_loaded()
            self._log.failure("adding the entries sanitized again", failure)

        DeferredList(work, consumeErrors=True).addCallback(back).addErrback(failed)

    def _refetch(self, urls: Iterable[str]) -> None:
        """Forget what makes a fetch of ``urls`` a 304 or a skipped parse: their entries are
        gone, and an unchanged body must bring them back."""
        states = self.store.feed_states()
        for url in urls:
            if url in states:
                self.store.update_state(url, etag=None, last_modified=None, body_hash=None)

    def _tick(self) -> Deferred[None]:
        # Errors are logged inside write(); the loop must never die.
        return self.write()

    def _retry_now(self) -> None:
        self._retry = None
        self.write()

    def _cancel_retry(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def write(self) -> Deferred[None]:
        """Write the snapshot if the store changed since the last write."""
        if self._pending is not None:
            # The file on disk holds entries the store does not have yet: keep it.
            if self._stopped:
                self._log.warn(
                    "snapshot not written to {path}: {why}; keeping the previous snapshot",
                    path=self.path,
                    why=self._pending,
                )
            return succeed(None)
        if self._writing is not None:
            # One write at a time; a write requested meanwhile follows the running one.
            follow: Deferred[None] = Deferred()

            def again(_: object) -> None:
                self.write().chainDeferred(follow)

            self._writing.addBoth(again)
            return follow
        version = self.store.version
        if version == self._written_version:
            return succeed(None)
        entries, states = self.store.snapshot_data()
        lists = tuple(self.store.reading_lists().values())
        websub = tuple(self.store.websub_records().values())
        when = utc_from_timestamp(self.clock.seconds())
        started = self.clock.seconds()
        d = self._writing = self.run_in_thread(
            self._encode_and_write, entries, states, when, lists, websub
        )

        def done(size: int) -> None:
            self._written_version = version
            self.written_at = when
            self._cancel_retry()
            self.metrics.snapshot_written(self.clock.seconds() - started, size)
            self._log.info(
                "Snapshot written to {path}: {n} entries, {size} bytes in {ms:.0f} ms",
                path=self.path,
                n=len(entries),
                size=size,
                ms=(self.clock.seconds() - started) * 1000,
            )
            if self.failures:
                self._log.info(
                    "Snapshot {path} is current again after {failures} failed writes",
                    path=self.path,
                    failures=self.failures,
                )
                self.failures = 0

        def failed(failure: Failure) -> None:
            self.failures += 1
            if not self.running:
                # Stopping: nothing is left to retry, and the stop must not wait for one.
                self._log.error(
                    "snapshot not written to {path}: {reason}; keeping the previous snapshot "
                    "(shutting down, not retried)",
                    path=self.path,
                    reason=_reason(failure),
                )
                return
            delay = min(self.retry_delay, self.interval)
            self._cancel_retry()
            self._retry = self.clock.callLater(delay, self._retry_now)
            self._log.error(
                "snapshot not written to {path}: {reason}; keeping the previous snapshot, "
                "retrying in {delay:g} s",
                path=self.path,
                reason=_reason(failure),
                delay=delay,
            )

        def finished(_: None) -> None:
            self._writing = None

        d.addCallbacks(done, failed)
        d.addBoth(finished)
        # Callers get their own Deferred: chaining on ours must not alter its result.
        mine: Deferred[None] = Deferred()
        d.addBoth(lambda _: mine.callback(None))
        return mine

    def _encode_and_write(
        self,
        entries: tuple[Entry, ...],
        states: tuple[FeedState, ...],
        when: datetime,
        lists: tuple[ListState, ...] = (),
        websub: tuple[WebSubRecord, ...] = (),
    ) -> int:
        chunks = iter_encoded(entries, states, when, lists, websub=websub)
        return write_atomic(self.path, chunks, opener=self.opener)
