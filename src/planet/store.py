"""The in-memory truth: entries by feed, feed states, the river order, a version number.

Everything that reads the store (web, snapshot) goes through the small read API here.
``version`` is bumped on every change, so readers can cache what they derive from it.
"""

from __future__ import annotations

import re
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from attrs import define, evolve, field, frozen

from planet.model import Entry, FeedState, FetchResult, ListState, ParsedFeed


@frozen
class RiverItem:
    """One item of the river: an entry, and the other feeds that carry the same post."""

    entry: Entry
    also_in: tuple[str, ...] = ()


_DEFAULT_PORTS = {"http": 80, "https": 443}


# A link already in normal form but for a trailing slash: lowercase http(s) scheme and host,
# no port, user or fragment, a query (if any) with no utm_ or empty parameters.
_PLAIN_LINK = re.compile(r"https?://[a-z0-9.-]+(?:/[^?#]*)?(?:\?(?!&)(?:[^#&]+&)*[^#&]+)?\Z")


def normalize_link(url: str) -> str:
    """The form two links to the same post share: scheme and host lowercased, default port,
    fragment and ``utm_*`` parameters dropped, trailing slash ignored."""
    url = url.strip()
    if _PLAIN_LINK.match(url) and "utm_" not in url.lower():
        # Most links: a restart dedupes 100k of them before the first page (~7 us each the
        # long way).
        base, sep, query = url.partition("?")
        return base.rstrip("/") + sep + query if base.count("/") > 2 else url
    return _normalize_parts(url)


def _normalize_parts(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    query = "&".join(
        pair for pair in parts.query.split("&") if pair and not pair.lower().startswith("utm_")
    )
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, netloc, path, query, ""))


@frozen
class ApplyStats:
    """What one fetch changed in the store."""

    new: int = 0
    updated: int = 0


def _moves(state: FeedState, result: FetchResult) -> dict[str, Any]:
    """The state changes adopting a permanent move: at once for http->https on the same
    host, else when seen twice. Only a chain of 301/308 hops counts; a temporary redirect
    anywhere resets the count."""
    hops = result.redirects
    if not hops or any(code not in (301, 308) for code, _ in hops):
        return {"pending_move": None, "pending_count": 0}
    target = result.final_url
    count = state.pending_count + 1 if state.pending_move == target else 1
    if _https_upgrade(result.url, target) or count >= 2:
        return {
            "current_url": None if target == state.url else target,
            "pending_move": None,
            "pending_count": 0,
        }
    return {"pending_move": target, "pending_count": count}


def _https_upgrade(origin: str, target: str) -> bool:
    before, after = urlsplit(origin), urlsplit(target)
    return (
        before.scheme == "http"
        and after.scheme == "https"
        and (before.hostname or "") == (after.hostname or "")
    )


def _river_key(entry: Entry) -> tuple[datetime, datetime, str, str]:
    return (entry.published, entry.first_seen, entry.feed_url, entry.id)


def sort_river(entries: Iterable[Entry]) -> tuple[Entry, ...]:
    """``entries`` newest first by published date (ties: first seen, feed, id)."""
    return tuple(sorted(entries, key=_river_key, reverse=True))


EntryKey = tuple[str, str]


@frozen
class RiverView:
    """The river at one entries version, immutable: safe to page in any thread.

    With dedupe, a post carried by several feeds is one item, under the copy seen first;
    ``hidden`` are the other copies and ``also`` names, for each kept copy, the other feeds.
    """

    version: int
    #: Every entry, newest first (see :func:`sort_river`).
    entries: tuple[Entry, ...]
    hidden: frozenset[EntryKey] = frozenset()
    also: Mapping[EntryKey, tuple[str, ...]] = field(factory=dict)

    def items(self, dedupe: bool) -> Iterator[RiverItem]:
        """The river's items, newest first, made as they are asked for."""
        if not dedupe or not (self.hidden or self.also):
            return (RiverItem(e) for e in self.entries)
        return self._deduped()

    def _deduped(self) -> Iterator[RiverItem]:
        hidden, also = self.hidden, self.also
        for e in self.entries:
            key = (e.feed_url, e.id)
            if key not in hidden:
                yield RiverItem(e, also.get(key, ()))


def _decide(group: Iterable[Entry]) -> tuple[list[EntryKey], EntryKey | None, tuple[str, ...]]:
    """For entries sharing a link: the copies to hide, the one kept, the feeds it names."""
    members = sorted(group, key=_river_key, reverse=True)
    if len(members) < 2 or len({e.feed_url for e in members}) < 2:
        return [], None, ()
    first = min(members, key=lambda e: (e.first_seen, e.published, e.feed_url))
    others = [e for e in members if e.feed_url != first.feed_url]
    also = tuple(dict.fromkeys(e.feed_url for e in others))
    return [(e.feed_url, e.id) for e in others], (first.feed_url, first.id), also


def _identity(state: FeedState | None) -> tuple[tuple[str, str], ...]:
    if state is None:
        return ()
    keys = []
    if state.final_url is not None:
        keys.append(("u", state.final_url))
    if state.feed_id is not None:
        keys.append(("i", state.feed_id))
    return tuple(keys)


@define(repr=False)
class Store:
    """Entries and feed states in memory.

    ``max_entries_per_feed`` (0 = no limit) bounds memory: a feed keeps its newest entries.
    """

    max_entries_per_feed: int = 200
    #: Entries published longer ago than this are dropped (None = kept for ever).
    max_entry_age: timedelta | None = None
    version: int = 0
    _entries: dict[str, dict[str, Entry]] = field(factory=dict)
    _states: dict[str, FeedState] = field(factory=dict)
    _lists: dict[str, ListState] = field(factory=dict)
    # The river kept in order as entries come and go (oldest first: appends are cheap), so
    # no reader sorts 20k-100k entries after every fetch.
    _sorted: list[Entry] = field(factory=list)
    # Entries by the normalized form of their link (one Entry, or a list when shared),
    # and the dedupe decisions of the links shared by several feeds.
    _groups: dict[str, Entry | list[Entry]] = field(factory=dict)
    _hidden: set[EntryKey] = field(factory=set)
    _also: dict[EntryKey, tuple[str, ...]] = field(factory=dict)
    _view: RiverView | None = None
    # Bumped only when entries change: re-sorting 100k entries costs ~100 ms on the reactor,
    # too much to repeat after every 304 (measured in benchmarks/snapshot_stall.py).
    _entries_version: int = 0
    # Subscription URLs by the feed they turned out to be ("u" final URL, "i" feed id), so
    # finding a duplicate costs O(1) rather than a scan of every feed.
    _identities: dict[tuple[str, str], set[str]] = field(factory=dict)

    # --- reading ---------------------------------------------------------------------

    def river(self) -> Sequence[Entry]:
        """Every entry, newest first by published date."""
        return self.river_view().entries

    @property
    def entries_version(self) -> int:
        """Bumped whenever entries change (not on feed state changes)."""
        return self._entries_version

    def river_view(self) -> RiverView:
        """The river at the current entries version (a copy of references: ~0.5 ms at 100k
        entries), for paging in another thread."""
        if self._view is None or self._view.version != self._entries_version:
            self._view = RiverView(
                self._entries_version,
                tuple(reversed(self._sorted)),
                frozenset(self._hidden),
                dict(self._also),
            )
        return self._view

    def feed_states(self) -> Mapping[str, FeedState]:
        """Feed states keyed by subscription URL."""
        return self._states

    def state(self, url: str) -> FeedState:
        return self._states.get(url) or FeedState(url=url)

    def same_feed(self, url: str) -> set[str]:
        """Other subscriptions whose final URL or feed id is that of ``url``."""
        found: set[str] = set()
        for key in _identity(self._states.get(url)):
            found |= self._identities.get(key, set())
        found.discard(url)
        return found

    def entries_of(self, url: str) -> Sequence[Entry]:
        return tuple(self._entries.get(url, {}).values())

    def feed_counts(self) -> dict[str, tuple[int, datetime | None]]:
        """Per feed: how many entries it has and the newest one's published date."""
        return {
            url: (len(by_id), max((e.published for e in by_id.values()), default=None))
            for url, by_id in self._entries.items()
        }

    def entry_count(self) -> int:
        return sum(len(by_id) for by_id in self._entries.values())

    def snapshot_data(self) -> tuple[tuple[Entry, ...], tuple[FeedState, ...]]:
        """An immutable copy, safe to serialize on another thread."""
        entries = tuple(e for by_id in self._entries.values() for e in by_id.values())
        return entries, tuple(self._states.values())

    def reading_lists(self) -> Mapping[str, ListState]:
        """Reading lists fetched from URLs, by URL."""
        return self._lists

    def record_list(self, state: ListState) -> None:
        self._lists[state.url] = state
        self._bump()

    # --- writing ---------------------------------------------------------------------

    def load(
        self,
        entries: Iterable[Entry],
        states: Iterable[FeedState],
        lists: Iterable[ListState] = (),
    ) -> None:
        """Replace the contents (from a snapshot)."""
        self._lists = {s.url: s for s in lists}
        self._entries = {}
        for entry in entries:
            self._entries.setdefault(entry.feed_url, {})[entry.id] = entry
        self._states = {}
        self._identities = {}
        for state in states:
            self._set_state(state.url, state)
        for url in self._entries:
            self._trim(url)
        self._reindex()
        self._bump(entries=True)

    def retain(self, urls: Iterable[str]) -> None:
        """Drop every feed (state and entries) not in ``urls``."""
        keep = set(urls)
        gone = (set(self._entries) | set(self._states)) - keep
        dropped = False
        for url in gone:
            dropped = bool(self._entries.pop(url, None)) or dropped
            self._set_state(url, None)
        if dropped:
            self._reindex()
        if gone:
            self._bump(entries=True)

    def record_fetch(
        self, url: str, result: FetchResult, parsed: ParsedFeed | None, now: datetime
    ) -> ApplyStats:
        """Apply one fetch (and its parse; None for a 304 or an unchanged body) to ``url``."""
        old = self.state(url)
        # One evolve per fetch: at 1000 feeds a cycle of 304s is mostly such bookkeeping.
        changes: dict[str, Any] = dict(
            last_fetch=now,
            http_status=result.status,
            final_url=result.final_url,
            waiting_until=None,
        )
        error = result.error or (parsed.error if parsed is not None else None)
        if error is not None:
            if result.status == 410:
                changes["gone_since"] = old.gone_since or now
            if result.error is None and result.body_hash is not None:
                # A body that failed to parse: remembered, so one that timed out is not
                # parsed again (Aggregator._parse_new).
                changes["body_hash"] = result.body_hash
            changes.update(error=error, consecutive_errors=old.consecutive_errors + 1)
            self._set_state(url, evolve(old, **changes))
            self._bump()
            return ApplyStats()
        changes.update(_moves(old, result))
        # Validators are refreshed on a 304 too: servers rotate them.
        changes.update(
            last_success=now,
            error=None,
            consecutive_errors=0,
            gone_since=None,
            etag=result.etag or (old.etag if result.not_modified else None),
            last_modified=result.last_modified
            or (old.last_modified if result.not_modified else None),
            body_hash=result.body_hash or old.body_hash,
        )
        stats = ApplyStats()
        if parsed is not None:
            changes.update(
                title=parsed.title or old.title,
                link=parsed.link or old.link,
                feed_id=parsed.feed_id,
            )
            stats = self._merge(url, self._recent(parsed.entries, now))
        self._set_state(url, evolve(old, **changes))
        self._bump(entries=bool(stats.new or stats.updated))
        return stats

    def update_state(self, url: str, **changes: Any) -> FeedState:
        """Change fields of a feed's state (schedule, discovery) and return the new state."""
        state = evolve(self.state(url), **changes)
        self._set_state(url, state)
        self._bump()
        return state

    def _set_state(self, url: str, state: FeedState | None) -> None:
        """The one place a state is replaced (or dropped): keeps the identity index true."""
        old = self._states.pop(url, None) if state is None else self._states.get(url)
        if state is not None:
            self._states[url] = state
        before, after = _identity(old), _identity(state)
        if before == after:
            return
        for key in before:
            urls = self._identities.get(key)
            if urls is not None:
                urls.discard(url)
                if not urls:
                    del self._identities[key]
        for key in after:
            self._identities.setdefault(key, set()).add(url)

    def mark_duplicate(self, url: str, of: str) -> None:
        """``url`` turned out to be the same feed as ``of``: keep one copy of the entries."""
        if self._entries.pop(url, None):
            self._reindex()
        self._bump(entries=True)
        self.update_state(url, duplicate_of=of, next_fetch=None)

    def _recent(self, entries: Iterable[Entry], now: datetime) -> Iterable[Entry]:
        if self.max_entry_age is None:
            return entries
        cutoff = now - self.max_entry_age
        return (e for e in entries if e.published >= cutoff)

    def expire(self, now: datetime) -> int:
        """Drop entries older than ``max_entry_age``; returns how many went."""
        if self.max_entry_age is None:
            return 0
        cutoff = now - self.max_entry_age
        # The river is oldest first: what expires is a prefix of it.
        n = bisect_left(self._sorted, cutoff, key=lambda e: e.published)
        for entry in self._sorted[:n]:
            del self._entries[entry.feed_url][entry.id]
            self._group_remove(entry)
        del self._sorted[:n]
        if n:
            self._bump(entries=True)
        return n

    def _merge(self, url: str, entries: Iterable[Entry]) -> ApplyStats:
        by_id = self._entries.setdefault(url, {})
        new = updated = 0
        for entry in entries:
            if entry.feed_url != url:
                # Parsed from a moved or discovered URL: it still belongs to the subscription.
                entry = evolve(entry, feed_url=url)
            old = by_id.get(entry.id)
            if old is None:
                by_id[entry.id] = entry
                self._index(entry)
                new += 1
                continue
            # An edited entry is updated in place: it keeps its place in the river.
            kept = evolve(
                entry,
                published=old.published,
                first_seen=old.first_seen,
                updated=entry.updated if entry.dated else old.updated,
            )
            if not kept.same_content(old):
                by_id[entry.id] = kept
                self._replace(old, kept)
                updated += 1
        for entry in self._trim(url):
            self._unindex(entry)
        return ApplyStats(new=new, updated=updated)

    def _trim(self, url: str) -> list[Entry]:
        """Keep the feed's newest ``max_entries_per_feed`` entries; returns the others."""
        by_id = self._entries.get(url)
        if not by_id or not self.max_entries_per_feed or len(by_id) <= self.max_entries_per_feed:
            return []
        newest = sorted(by_id.values(), key=_river_key, reverse=True)
        self._entries[url] = {e.id: e for e in newest[: self.max_entries_per_feed]}
        return newest[self.max_entries_per_feed :]

    # --- the river index: order and shared links, kept as entries come and go -----------

    def _reindex(self) -> None:
        """Build the river index from scratch (a load, or a whole feed dropped)."""
        self._sorted = sorted(
            (e for by_id in self._entries.values() for e in by_id.values()), key=_river_key
        )
        self._groups, self._hidden, self._also = {}, set(), {}
        shared: set[str] = set()
        for entry in self._sorted:
            if entry.link:
                form = normalize_link(entry.link)
                held = self._groups.get(form)
                if held is None:
                    self._groups[form] = entry
                elif isinstance(held, list):
                    held.append(entry)
                else:
                    self._groups[form] = [held, entry]
                    shared.add(form)
        for form in shared:
            self._decide(form, ())

    def _index(self, entry: Entry) -> None:
        insort(self._sorted, entry, key=_river_key)
        self._group_add(entry)

    def _unindex(self, entry: Entry) -> None:
        del self._sorted[self._position(entry)]
        self._group_remove(entry)

    def _replace(self, old: Entry, new: Entry) -> None:
        """``new`` is an edit of ``old``: same feed, id and dates, so the same place."""
        self._sorted[self._position(old)] = new
        self._group_remove(old)
        self._group_add(new)

    def _position(self, entry: Entry) -> int:
        i = bisect_left(self._sorted, _river_key(entry), key=_river_key)
        if i < len(self._sorted) and self._sorted[i] is entry:
            return i
        return self._sorted.index(entry)  # not reached while the index is true

    def _group_add(self, entry: Entry) -> None:
        if not entry.link:
            return
        form = normalize_link(entry.link)
        held = self._groups.get(form)
        if held is None:
            self._groups[form] = entry
            return
        before = held if isinstance(held, list) else [held]
        self._groups[form] = [*before, entry]
        self._decide(form, before)

    def _group_remove(self, entry: Entry) -> None:
        if not entry.link:
            return
        form = normalize_link(entry.link)
        held = self._groups.get(form)
        if held is entry:
            del self._groups[form]
        elif isinstance(held, list):
            rest = [e for e in held if e is not entry]
            self._groups[form] = rest if len(rest) > 1 else rest[0]
            self._decide(form, held)

    def _decide(self, form: str, before: Iterable[Entry]) -> None:
        """Dedupe decisions for the link ``form`` after its group changed from ``before``."""
        for e in before:
            key = (e.feed_url, e.id)
            self._hidden.discard(key)
            self._also.pop(key, None)
        held = self._groups.get(form)
        if isinstance(held, list):
            hidden, kept, also = _decide(held)
            self._hidden.update(hidden)
            if kept is not None:
                self._also[kept] = also

    def invalidate(self) -> None:
        """Mark everything changed: what readers derived from the store is stale."""
        self._bump(entries=True)

    def _bump(self, entries: bool = False) -> None:
        self.version += 1
        if entries:
            self._entries_version += 1
