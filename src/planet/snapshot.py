"""Store state <-> a JSON file on disk, written atomically and off the reactor thread.

The file is replaced with a rename after an fsync, so a reader (or a restart after
``kill -9``) always sees either the previous complete snapshot or the new complete one.
A write that fails (a full disk) leaves the previous snapshot as it was and is retried
sooner than the regular interval.

The document is plain JSON (one object: ``schema``, ``written_at``, ``policy`` (the
sanitizer policy version its entries were cleaned under), ``lists``, ``feeds``, ``entries``;
datetimes as ``isoformat()`` strings). ``msgspec`` encodes it, byte for byte
what ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` made before, and
decodes it straight into the ``attrs`` classes of :mod:`planet.model`; a document the
fast path does not take (types it does not expect, an escaped lone surrogate, an offset
with seconds) is read by the standard library exactly as before.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from operator import attrgetter
from typing import IO, Any, Protocol

import msgspec
from attrs import define, field, fields, frozen
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from planet.metrics import Metrics
from planet.model import Entry, FeedState, ListState, utc_from_timestamp
from planet.sanitize import POLICY_VERSION
from planet.store import Store, clean_entry

SCHEMA_VERSION = 1
_ENTRY_FIELDS = tuple(f.name for f in fields(Entry))
_STATE_FIELDS = tuple(f.name for f in fields(FeedState))
# Every datetime field, found from the annotations so a new one can never be forgotten.
_ENTRY_DATES = tuple(f.name for f in fields(Entry) if "datetime" in str(f.type))
_STATE_DATES = tuple(f.name for f in fields(FeedState) if "datetime" in str(f.type))
_LIST_FIELDS = tuple(f.name for f in fields(ListState))
_LIST_DATES = tuple(f.name for f in fields(ListState) if "datetime" in str(f.type))


class SnapshotError(Exception):
    """The snapshot file cannot be read back (corrupt, truncated, wrong schema)."""


class NotARegularFileError(OSError):
    """The snapshot path names something else than a file (a directory, a FIFO, a device):
    it is neither read (a FIFO would block) nor ever replaced."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _date(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


#: Entries serialized per encoder call. A single call holds the GIL for its whole run, so
#: encoding 100k entries at once froze the reactor for over a second (measured in
#: benchmarks/snapshot_stall.py); chunks of 100 keep each hold well under a millisecond.
CHUNK = 100


_JSON_TYPES: tuple[type[Any], ...] = (str, int, float, list, tuple, dict)


def _plain(value: Any) -> Any:
    """What ``json.dumps`` makes of a subclass of a JSON type that msgspec does not take."""
    for kind in _JSON_TYPES:
        if isinstance(value, kind):
            return kind(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Escapes exactly as json.dumps(ensure_ascii=False) does (tests/test_snapshot.py checks
# every code point), and writes UTF-8 bytes without a str in between.
_ENCODER = msgspec.json.Encoder(enc_hook=_plain)


def _dumps(value: Any) -> bytes:
    return _ENCODER.encode(value)


def _recorder(cls: type) -> Callable[[Any], dict[str, Any]]:
    """``value`` -> its snapshot record: every field in order, datetimes as isoformat()."""
    names = tuple(f.name for f in fields(cls))
    dates = tuple(f.name for f in fields(cls) if "datetime" in str(f.type))
    # One C call for all the fields. (attrgetter of a single name gives the value, not a
    # tuple: asking for it twice gives a pair, of which zip takes the first.)
    values = attrgetter(*names) if len(names) > 1 else attrgetter(names[0], names[0])

    def record(value: Any) -> dict[str, Any]:
        result = dict(zip(names, values(value)))  # noqa: B905 - see above
        for name in dates:
            when = result[name]
            if when is not None:
                result[name] = when.isoformat()
        return result

    return record


_entry_record = _recorder(Entry)
_state_record = _recorder(FeedState)
_list_record = _recorder(ListState)


def iter_encoded(
    entries: Sequence[Entry],
    states: Sequence[FeedState],
    written_at: datetime,
    lists: Sequence[ListState] = (),
    policy: int = POLICY_VERSION,
) -> Iterator[bytes]:
    """The snapshot document as a stream of byte chunks (one JSON object in all)."""
    head = {"schema": SCHEMA_VERSION, "written_at": written_at.isoformat(), "policy": policy}
    yield _dumps(head)[:-1]
    for name, items, record in (
        ("lists", lists, _list_record),
        ("feeds", states, _state_record),
        ("entries", entries, _entry_record),
    ):
        yield f',"{name}":['.encode()
        for start in range(0, len(items), CHUNK):
            text = _dumps([record(v) for v in items[start : start + CHUNK]])[1:-1]
            yield b"," + text if start else text
        yield b"]"
    yield b"}"


def encode(
    entries: Sequence[Entry],
    states: Sequence[FeedState],
    written_at: datetime,
    lists: Sequence[ListState] = (),
    policy: int = POLICY_VERSION,
) -> bytes:
    """Serialize store contents to snapshot bytes (CPU-bound: call off the reactor)."""
    return b"".join(iter_encoded(entries, states, written_at, lists, policy))


def _record(value: Any, names: tuple[str, ...], dates: tuple[str, ...]) -> dict[str, Any]:
    """The generic form of a record (the recorders above are the fast one)."""
    record = {name: getattr(value, name) for name in names}
    for name in dates:
        record[name] = _iso(record[name])
    return record


class _Document(msgspec.Struct):
    """The snapshot as msgspec decodes it: into the model's attrs classes directly.

    ``written_at`` and any key unknown here are skipped, as the generic decoder does.
    """

    schema: int
    feeds: list[FeedState]
    entries: list[Entry]
    lists: list[ListState] = []
    policy: int = 0


def _typed_decoder() -> msgspec.json.Decoder[_Document] | None:
    """The fast decoder, or None where it could build other objects than the generic path.

    msgspec sets attrs fields without ``__init__``: it runs validators and
    ``__attrs_post_init__`` but no converters, and names keys after attributes (not
    init aliases). A model class using either is left to the generic path.
    """
    for cls in (Entry, FeedState, ListState):
        for f in fields(cls):
            if f.converter is not None or not f.init or f.alias != f.name:
                return None
    try:
        return msgspec.json.Decoder(_Document)
    except TypeError:  # a field type msgspec cannot decode
        return None


_TYPED = _typed_decoder()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No collections while a snapshot's objects are made: they are all kept anyway.

    (At 100k entries the collector otherwise ran about 150 times during a decode, each
    young-generation pass walking objects that all survive.) Nests; restores the state.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def decode(data: bytes) -> tuple[list[Entry], list[FeedState]]:
    """Read snapshot bytes back; raises :class:`SnapshotError` on any damage."""
    entries, states, _ = decode_all(data)
    return entries, states


def decode_all(data: bytes) -> tuple[list[Entry], list[FeedState], list[ListState]]:
    """Entries, feed states and reading lists of a snapshot (lists may be absent)."""
    doc = decode_document(data)
    return doc.entries, doc.states, doc.lists


@frozen
class Decoded:
    """A snapshot read back."""

    entries: list[Entry]
    states: list[FeedState]
    lists: list[ListState]
    #: The sanitizer policy version the entries were cleaned under (0: not recorded).
    policy: int
    #: msgspec checked that every field has its declared type (the fast path).
    typed: bool


def decode_document(data: bytes) -> Decoded:
    """Read snapshot bytes back; raises :class:`SnapshotError` on any damage."""
    with _gc_paused():
        if _TYPED is not None:
            try:
                doc = _TYPED.decode(data)
            except (msgspec.DecodeError, UnicodeDecodeError):
                # Damage, or a document msgspec is stricter about than json: the generic
                # path decides, as it always did.
                pass
            else:
                if doc.schema != SCHEMA_VERSION:
                    raise SnapshotError(f"unknown snapshot schema {doc.schema!r}")
                return Decoded(doc.entries, doc.feeds, doc.lists, doc.policy, typed=True)
        return _decode_generic(data)


def _decode_generic(data: bytes) -> Decoded:
    """The standard library's reading of a snapshot: the reference the fast path follows."""
    try:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
            found = doc.get("schema") if isinstance(doc, dict) else None
            raise SnapshotError(f"unknown snapshot schema {found!r}")
        states = [FeedState(**_fields_of(r, _STATE_FIELDS, _STATE_DATES)) for r in doc["feeds"]]
        entries = [Entry(**_fields_of(r, _ENTRY_FIELDS, _ENTRY_DATES)) for r in doc["entries"]]
        lists = [_list_state(r) for r in doc.get("lists", [])]
    except SnapshotError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SnapshotError(f"{exc.__class__.__name__}: {exc}") from exc
    policy = doc.get("policy", 0)
    # Not a whole number: sanitized under no known policy, so sanitized again.
    policy = policy if isinstance(policy, int) and not isinstance(policy, bool) else 0
    return Decoded(entries, states, lists, policy, typed=False)


def _list_state(record: dict[str, Any]) -> ListState:
    values = _fields_of(record, _LIST_FIELDS, _LIST_DATES)
    values["feeds"] = tuple((url, name) for url, name in values.get("feeds", ()))
    return ListState(**values)


def _fields_of(record: dict[str, Any], names: tuple[str, ...], dates: tuple[str, ...]) -> dict:
    values = {name: record[name] for name in names if name in record}
    for name in dates:
        if name in values:
            values[name] = _date(values[name])
    return values


class SnapshotFile(Protocol):
    """A new file being written: where a full disk shows up, as ``OSError`` (``ENOSPC``)."""

    def write(self, data: bytes) -> object: ...

    def sync(self) -> None:
        """Make everything written so far durable (flush and fsync)."""

    def close(self) -> None: ...


@define
class DiskFile:
    """A :class:`SnapshotFile` on the local disk, written through a buffer."""

    _file: IO[bytes]

    @classmethod
    def create(cls, path: str) -> DiskFile:
        return cls(open(path, "wb"))  # noqa: SIM115 - closed by write_atomic

    def write(self, data: bytes) -> object:
        return self._file.write(data)

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


#: Creates the temporary file a snapshot is written to; the seam tests fill the disk at.
Opener = Callable[[str], SnapshotFile]


def write_atomic(path: str, data: bytes | Iterable[bytes], opener: Opener = DiskFile.create) -> int:
    """Write ``data`` (bytes or chunks) to ``path`` so that ``path`` is always complete.

    Temporary file, fsync, rename, fsync of the directory. Returns the size written.
    On any error before the rename the temporary file is removed and ``path`` untouched.
    A ``path`` that exists and is not a regular file is never replaced
    (:class:`NotARegularFileError`).
    """
    chunks = [data] if isinstance(data, bytes) else data
    size = 0
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    refuse_non_regular(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        f = opener(tmp)
        try:
            for chunk in chunks:
                f.write(chunk)
                size += len(chunk)
            f.sync()
        finally:
            # Closing flushes too, so it can fail the same way; it still releases the file.
            f.close()
        # Again: something may have been put there while the file was written.
        refuse_non_regular(path)
        os.replace(tmp, path)
    except BaseException:
        # A partial temporary would hold on to the very space a retry needs.
        _remove_quietly(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return size


def refuse_non_regular(path: str) -> None:
    """Raise :class:`NotARegularFileError` if ``path`` exists and is not a regular file (a
    symbolic link counts as what it points to, as the config check has it)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # not there (yet): fine; not reachable: the write itself says why
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise NotARegularFileError(errno.EEXIST, f"{kind}, never replaced", path)


def _reason(failure: Failure) -> str:
    """``No space left on device`` rather than ``[Errno 28] No space left on device: '...'``."""
    value = failure.value
    if isinstance(value, OSError) and value.strerror:
        return value.strerror
    return failure.getErrorMessage()


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _remove_stale_temporaries(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    prefix = os.path.basename(path) + ".tmp-"
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            _remove_quietly(os.path.join(directory, name))


RunInThread = Callable[..., "Deferred[Any]"]
#: Sanitizes entries again under the current policy (in the parse workers, in the daemon).
Resanitize = Callable[[list[Entry]], "Deferred[list[Entry]]"]
#: Entries per call of the re-sanitizer: a pipe message of ~1 MB, and work for every worker.
RESANITIZE_CHUNK = 500


def read_regular(path: str) -> bytes:
    """The bytes of the file at ``path``; :class:`NotARegularFileError` if it is something else
    (opened without blocking, so a FIFO cannot hang the start)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise NotARegularFileError(errno.EEXIST, kind, path)
    with os.fdopen(fd, "rb") as f:
        return f.read()


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
    #: Entries of the snapshot being sanitized again (None: none), and whether we stopped.
    _pending: int | None = None
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
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._cancel_retry()
        # Never fails: a last write that cannot be made is logged and the old file kept.
        return self.write()

    def load(self) -> None:
        """Read the snapshot into the store; a damaged file is moved aside, not fatal, and
        entries the store cannot index are dropped (one log line per kind of problem)."""
        started = time.perf_counter()
        _remove_stale_temporaries(self.path)
        try:
            data = read_regular(self.path)
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
        # The store's own structures are made of the loaded objects too, all to be kept: the
        # collector would only walk them again and again (about 100 ms at 100k entries).
        with _gc_paused():
            try:
                doc = decode_document(data)
            except SnapshotError as exc:
                self._move_aside(f"is damaged ({exc})")
                return
            del data  # 200 MB at 100k entries, not needed while the store is filled
            try:
                problems = self._fill(doc)
            except Exception:
                # Not reached while the store mends what it loads; should it ever be, the
                # daemon still starts (a crash here would repeat at every restart).
                self._log.failure("Snapshot {path} could not be loaded", path=self.path)
                self.store.load((), ())
                self._move_aside("could not be loaded")
                return
        self._written_version = self.store.version
        for problem, count in sorted(problems.items()):
            self._log.warn(
                "Snapshot {path}: {count} {problem}", path=self.path, count=count, problem=problem
            )
        self._log.info(
            "Loaded snapshot {path}: {n} entries, {f} feeds in {ms:.0f} ms",
            path=self.path,
            n=len(doc.entries),
            f=len(doc.states),
            ms=(time.perf_counter() - started) * 1000,
        )

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
        self._pending = len(entries)
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
            self._pending = None
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
                    "snapshot not written to {path}: {n} entries are still being sanitized "
                    "again; keeping the previous snapshot",
                    path=self.path,
                    n=self._pending,
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
        when = utc_from_timestamp(self.clock.seconds())
        started = self.clock.seconds()
        d = self._writing = self.run_in_thread(self._encode_and_write, entries, states, when, lists)

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
    ) -> int:
        return write_atomic(
            self.path, iter_encoded(entries, states, when, lists), opener=self.opener
        )
