"""The snapshot document: the store's entries, feed states and reading lists <-> JSON bytes.

The document is plain JSON (one object: ``schema``, ``written_at``, ``policy`` (the
sanitizer policy version its entries were cleaned under), ``lists``, ``feeds``, ``entries``;
datetimes as ``isoformat()`` strings). ``msgspec`` encodes it, byte for byte
what ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` made before except for
one line break (JSON whitespace) after every ``CHUNK`` entries, and decodes it straight into
the ``attrs`` classes of :mod:`planet.model`; a document the fast path does not take (types
it does not expect, an escaped lone surrogate, an offset with seconds) is read by the
standard library exactly as before.

Entries are written newest first, so :func:`decode_staged` can read the head of the
document and the newest entries (what the first pages show) without decoding the rest,
which :class:`EntryLines` then gives a line at a time. (A raw line break can only be that
whitespace: inside strings JSON escapes it.)
"""

from __future__ import annotations

import gc
import json
import mmap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from operator import attrgetter
from typing import Any, get_type_hints

import msgspec
from attrs import NOTHING, Attribute, Factory, define, fields, frozen
from msgspec.structs import astuple

from planet.model import Entry, FeedState, ListState
from planet.sanitize import POLICY_VERSION
from planet.websub import WebSubRecord


class SnapshotError(Exception):
    """The snapshot file cannot be read back (corrupt, truncated, wrong schema)."""


SCHEMA_VERSION = 1


def _key(f: Attribute[Any]) -> str:
    """A field's key in a record: its init name (alias)."""
    return f.alias or f.name


# Records are keyed by init names (aliases): an entry's packed HTML is ``content`` there, the
# text, as it always was; every other field's alias is its name.
_ENTRY_FIELDS = tuple(_key(f) for f in fields(Entry))
_STATE_FIELDS = tuple(f.name for f in fields(FeedState))
# Every datetime field, found from the annotations so a new one can never be forgotten.
_ENTRY_DATES = tuple(f.name for f in fields(Entry) if "datetime" in str(f.type))
_STATE_DATES = tuple(f.name for f in fields(FeedState) if "datetime" in str(f.type))
_LIST_FIELDS = tuple(f.name for f in fields(ListState))
_LIST_DATES = tuple(f.name for f in fields(ListState) if "datetime" in str(f.type))
_WEBSUB_FIELDS = tuple(f.name for f in fields(WebSubRecord))
_WEBSUB_DATES = tuple(f.name for f in fields(WebSubRecord) if "datetime" in str(f.type))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _date(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


#: Entries serialized per encoder call. A single call holds the GIL for its whole run, so
#: encoding 100k entries at once froze the reactor for over a second (measured in
#: benchmarks/snapshot_stall.py); chunks of 100 keep each hold well under a millisecond.
#: Each chunk of entries is one line of the document.
CHUNK = 100
#: Between two lines of entries.
LINE_BREAK = b",\n"


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
    names = tuple(_key(f) for f in fields(cls))
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
_websub_record = _recorder(WebSubRecord)


def iter_encoded(
    entries: Sequence[Entry],
    states: Sequence[FeedState],
    written_at: datetime,
    lists: Sequence[ListState] = (),
    policy: int = POLICY_VERSION,
    websub: Sequence[WebSubRecord] = (),
) -> Iterator[bytes]:
    """The snapshot document as a stream of byte chunks (one JSON object in all).

    A ``websub`` section (subscriptions with their secrets) is written only when there are
    subscriptions: a planet without WebSub writes the document it always did.
    """
    head = {"schema": SCHEMA_VERSION, "written_at": written_at.isoformat(), "policy": policy}
    yield _dumps(head)[:-1]
    if websub:
        yield b',"websub":' + _dumps([_websub_record(r) for r in websub])
    for name, items, record in (
        ("lists", lists, _list_record),
        ("feeds", states, _state_record),
        ("entries", entries, _entry_record),
    ):
        yield f',"{name}":['.encode()
        between = LINE_BREAK if name == "entries" else b","
        for start in range(0, len(items), CHUNK):
            text = _dumps([record(v) for v in items[start : start + CHUNK]])[1:-1]
            yield between + text if start else text
        yield b"]"
    yield b"}"


def encode(
    entries: Sequence[Entry],
    states: Sequence[FeedState],
    written_at: datetime,
    lists: Sequence[ListState] = (),
    policy: int = POLICY_VERSION,
    websub: Sequence[WebSubRecord] = (),
) -> bytes:
    """Serialize store contents to snapshot bytes (CPU-bound: call off the reactor)."""
    return b"".join(iter_encoded(entries, states, written_at, lists, policy, websub))


def _record(value: Any, names: tuple[str, ...], dates: tuple[str, ...]) -> dict[str, Any]:
    """The generic form of a record (the recorders above are the fast one)."""
    record = {name: getattr(value, name) for name in names}
    for name in dates:
        record[name] = _iso(record[name])
    return record


def _entry_row() -> type[msgspec.Struct]:
    """An entry's record as msgspec decodes it: :class:`Entry`'s init arguments, in order,
    with ``content`` as text (the entry packs it when it is made from the row)."""
    hints = get_type_hints(Entry)
    return msgspec.defstruct(
        "EntryRow",
        [
            (_key(f), str if _key(f) == "content" else hints[f.name])
            if f.default is NOTHING
            else (_key(f), hints[f.name], f.default)
            for f in fields(Entry)
        ],
    )


_EntryRow = _entry_row()


def _entries_of(rows: list[Any]) -> list[Entry]:
    return [Entry(*astuple(row)) for row in rows]


class _Document(msgspec.Struct):
    """The snapshot as msgspec decodes it: into the model's attrs classes directly (entries
    through :data:`_EntryRow`, see :func:`_entries_of`).

    ``written_at`` and any key unknown here are skipped, as the generic decoder does.
    """

    schema: int
    feeds: list[FeedState]
    entries: list[_EntryRow]  # type: ignore[valid-type]
    lists: list[ListState] = []
    policy: int = 0
    websub: list[WebSubRecord] = []


def _typed_decoder() -> msgspec.json.Decoder[_Document] | None:
    """The fast decoder, or None where it could build other objects than the generic path.

    msgspec sets attrs fields without ``__init__``: it runs validators and
    ``__attrs_post_init__`` but no converters, and names keys after attributes (not
    init aliases). A model class using either is left to the generic path (entries are
    made through ``__init__`` from :data:`_EntryRow`, so only their packed content may).
    """
    for cls in (Entry, FeedState, ListState, WebSubRecord):
        for f in fields(cls):
            if cls is Entry and _key(f) == "content":
                continue
            if f.converter is not None or not f.init or f.alias != f.name:
                return None
    try:
        return msgspec.json.Decoder(_Document)
    except TypeError:  # a field type msgspec cannot decode
        return None


_TYPED = _typed_decoder()


@contextmanager
def gc_paused() -> Iterator[None]:
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


#: Snapshot bytes: ``bytes``, or a mapped file (:func:`planet.atomicfile.map_regular`).
Data = bytes | mmap.mmap


def decode(data: Data) -> tuple[list[Entry], list[FeedState]]:
    """Read snapshot bytes back; raises :class:`SnapshotError` on any damage."""
    entries, states, _ = decode_all(data)
    return entries, states


def decode_all(data: Data) -> tuple[list[Entry], list[FeedState], list[ListState]]:
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
    #: WebSub subscriptions (none in a snapshot written without them).
    websub: list[WebSubRecord] = Factory(list)


def decode_document(data: Data) -> Decoded:
    """Read snapshot bytes back; raises :class:`SnapshotError` on any damage."""
    with gc_paused():
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
                return Decoded(
                    _entries_of(doc.entries),
                    doc.feeds,
                    doc.lists,
                    doc.policy,
                    typed=True,
                    websub=doc.websub,
                )
        return _decode_generic(data)


def _decode_generic(data: Data) -> Decoded:
    """The standard library's reading of a snapshot: the reference the fast path follows."""
    try:
        doc = json.loads(str(data, "utf-8"))
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
            found = doc.get("schema") if isinstance(doc, dict) else None
            raise SnapshotError(f"unknown snapshot schema {found!r}")
        states = [FeedState(**_fields_of(r, _STATE_FIELDS, _STATE_DATES)) for r in doc["feeds"]]
        entries = [Entry(**_fields_of(r, _ENTRY_FIELDS, _ENTRY_DATES)) for r in doc["entries"]]
        lists = [_list_state(r) for r in doc.get("lists", [])]
        websub = [
            WebSubRecord(**_fields_of(r, _WEBSUB_FIELDS, _WEBSUB_DATES))
            for r in doc.get("websub", [])
        ]
    except SnapshotError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SnapshotError(f"{exc.__class__.__name__}: {exc}") from exc
    policy = doc.get("policy", 0)
    # Not a whole number: sanitized under no known policy, so sanitized again.
    policy = policy if isinstance(policy, int) and not isinstance(policy, bool) else 0
    return Decoded(entries, states, lists, policy, typed=False, websub=websub)


def _list_state(record: dict[str, Any]) -> ListState:
    values = _fields_of(record, _LIST_FIELDS, _LIST_DATES)
    values["feeds"] = tuple((url, name) for url, name in values.get("feeds", ()))
    values["skipped"] = tuple(str(value) for value in values.get("skipped", ()))
    return ListState(**values)


def _fields_of(record: dict[str, Any], names: tuple[str, ...], dates: tuple[str, ...]) -> dict:
    values = {name: record[name] for name in names if name in record}
    for name in dates:
        if name in values:
            values[name] = _date(values[name])
    return values


_TYPED_ENTRIES = msgspec.json.Decoder(list[_EntryRow]) if _TYPED is not None else None  # type: ignore[valid-type]
_END = b"]}"


@define
class EntryLines:
    """The entries of a snapshot after those :func:`decode_staged` read, a line (``CHUNK``
    entries, ~0.5 ms of decoding) at a time, oldest last."""

    data: Data
    #: Where the next line starts.
    position: int

    @property
    def done(self) -> bool:
        return self.position >= len(self.data)

    def read(self) -> list[Entry]:
        """The next line's entries; raises :class:`SnapshotError` where the line is not what
        the writer makes (damage, or a document written or edited by something else)."""
        data, start = self.data, self.position
        if start >= len(data):
            raise SnapshotError("no more lines of entries")
        if _TYPED_ENTRIES is None:  # not reached: decode_staged reads whole then
            raise SnapshotError("lines of entries need the msgspec decoder")
        end = data.find(b"\n", start)
        if end == -1:
            end = len(data)
            if data[end - len(_END) : end] != _END:
                raise SnapshotError("the last line of entries does not end the document")
            # "\n{...}]": the brace closing the document left out
            line = bytearray(data[start - 1 : end - 1])
        else:
            if data[end - 1 : end] != b",":
                raise SnapshotError("a line of entries does not end with a comma")
            # "\n{...},": from the line break before it
            line = bytearray(data[start - 1 : end])
        # An array of the line's entries, made in its one copy.
        line[0], line[-1] = ord("["), ord("]")
        self.position = end + 1
        try:
            rows = _TYPED_ENTRIES.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise SnapshotError(f"a line of entries: {exc}") from exc
        return _entries_of(rows)


def decode_staged(data: Data, first_entries: int) -> tuple[Decoded, EntryLines | None]:
    """The document's head (states, lists, WebSub) with its first ``first_entries`` entries
    (rounded up to a whole line), and the lines after them (None: the document was read
    whole, as :func:`decode_document` reads it: a small one, or one not written by us).

    Only the newest entries are decoded before this returns: at 200,000 entries the whole
    document takes ~1 s, which a restart would wait for before serving a page.
    """
    lines = max(1, -(-first_entries // CHUNK))
    if _TYPED is None or data[-len(_END) :] != _END:
        return decode_document(data), None
    end = -1
    for _ in range(lines):
        end = data.find(b"\n", end + 1)
        if end == -1:
            return decode_document(data), None
    head = data[:end]
    if not head.endswith(b","):
        return decode_document(data), None
    with gc_paused():
        try:
            doc = _TYPED.decode(head[:-1] + _END)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return decode_document(data), None
        if doc.schema != SCHEMA_VERSION:
            raise SnapshotError(f"unknown snapshot schema {doc.schema!r}")
        entries = _entries_of(doc.entries)
    first = Decoded(entries, doc.feeds, doc.lists, doc.policy, typed=True, websub=doc.websub)
    return first, EntryLines(data, end + 1)
