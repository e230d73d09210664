"""The in-memory truth: entries by feed, feed states, the river order, version numbers.

Everything that reads the store (web, snapshot) goes through the small read API here.
``version`` is bumped on every change, so readers can cache what they derive from it;
``shown_version`` only when what the river and the feeds we publish show changes.
"""

from __future__ import annotations

import sys
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from attrs import define, evolve, field, frozen

from planet import memory
from planet.config import Config
from planet.model import Entry, FeedState, ListState
from planet.records import clean_entry, clean_list, clean_state
from planet.river import (
    FeedHosts,
    LinkGroups,
    RiverIndex,
    RiverView,
    dedupe_rank,
    feed_hosts,
    host_fields,
    river_key,
)
from planet.textpack import text_memory
from planet.websub import WebSubRecord

if TYPE_CHECKING:
    from planet.update import FeedUpdate


@frozen
class ApplyStats:
    """What one fetch changed in the store."""

    new: int = 0
    updated: int = 0


def _max_age(config: Config) -> timedelta | None:
    return timedelta(days=config.max_entry_age_days) if config.max_entry_age_days else None


def _identity(state: FeedState | None) -> tuple[tuple[str, str], ...]:
    if state is None:
        return ()
    keys = []
    if state.final_url is not None:
        keys.append(("u", state.final_url))
    if state.feed_id is not None:
        keys.append(("i", state.feed_id))
    return tuple(keys)


def _shown_fields(state: FeedState | None) -> tuple[object, object, object]:
    """What the river, the feeds we publish and the templates show of a feed's state:
    its title (names, slugs, ``channel_title``), site link and error (``failing``,
    ``message``); see :func:`planet.render.feed_views` and :func:`planet.templating.
    planet_values`. Nothing a 304 changes (fetch times, validators, schedule)."""
    if state is None:
        return "", None, None
    return state.title, state.link, state.error


def _count(by_id: Mapping[str, Entry]) -> tuple[int, datetime | None]:
    return len(by_id), max((e.published for e in by_id.values()), default=None)


def _aware(entry: Entry) -> bool:
    """Every date of ``entry`` has a time zone (one naive date makes the river unsortable)."""
    return (
        entry.published.tzinfo is not None
        and entry.updated.tzinfo is not None
        and entry.first_seen.tzinfo is not None
    )


def _entry_size(entry: Entry) -> int:
    """The memory an entry's text takes (``sys.getsizeof``: O(1) for a str), its content
    counted as the text it packs (:func:`planet.textpack.text_memory`)."""
    size = (
        text_memory(entry.packed_content)
        + sys.getsizeof(entry.title)
        + sys.getsizeof(entry.author)
        + sys.getsizeof(entry.id)
    )
    return size + sys.getsizeof(entry.link) if entry.link else size


@define(repr=False)
class Store:
    """Entries and feed states in memory.

    ``max_entries_per_feed`` (0 = no limit) and ``max_bytes_per_feed`` (the memory a feed's
    entries' text may take; 0 = no limit) bound memory: a feed keeps its newest entries.
    """

    max_entries_per_feed: int = 200
    #: Entries published longer ago than this are dropped (None = kept for ever).
    max_entry_age: timedelta | None = None
    max_bytes_per_feed: int = 8 * 1024 * 1024

    @classmethod
    def from_config(cls, config: Config) -> Store:
        """An empty store keeping entries by ``config``'s limits."""
        return cls(
            max_entries_per_feed=config.max_entries_per_feed,
            max_bytes_per_feed=config.max_bytes_per_feed,
            max_entry_age=_max_age(config),
        )

    version: int = 0
    _entries: dict[str, dict[str, Entry]] = field(factory=dict)
    _states: dict[str, FeedState] = field(factory=dict)
    _lists: dict[str, ListState] = field(factory=dict)
    # The river kept in order as entries come and go (oldest first), so no reader sorts
    # 20k-200k entries after every fetch.
    _sorted: RiverIndex = field(factory=RiverIndex)
    # Which entries share a link, and whose copy is shown (dedupe).
    _links: LinkGroups = field(init=False)
    # Per feed, the hosts it speaks for (see dedupe_rank), from its state, made when needed.
    _hosts: dict[str, FeedHosts] = field(factory=dict)
    # Per feed, the memory its entries' text takes (made when needed, then kept up to date).
    _feed_bytes: dict[str, int] = field(factory=dict)
    _view: RiverView | None = None
    # Per feed, its entry count and newest date, counted again right after its entries
    # change (at the merge: ~3 us a feed), not when a status page asks: after a cold
    # cycle at 10,000 feeds that was all of them, ~30 ms of the reactor at one request.
    _counts: dict[str, tuple[int, datetime | None]] = field(factory=dict)
    _stale_counts: set[str] | None = None
    # What feed_counts() returned, a copy of _counts (None: make it again).
    _counts_view: dict[str, tuple[int, datetime | None]] | None = None
    # Bumped only when entries change: re-sorting 100k entries costs ~100 ms on the reactor,
    # too much to repeat after every 304 (measured in benchmarks/snapshot_stall.py).
    _entries_version: int = 0
    # Bumped when entries or a feed's shown fields change (see shown_version).
    _shown_version: int = 0
    # Subscription URLs by the feed they turned out to be ("u" final URL, "i" feed id), so
    # finding a duplicate costs O(1) rather than a scan of every feed.
    _identities: dict[tuple[str, str], set[str]] = field(factory=dict)
    # WebSub subscriptions by callback id (see planet.websubservice).
    _websub: dict[str, WebSubRecord] = field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self._links = LinkGroups(self._rank)

    # --- reading ---------------------------------------------------------------------

    def river(self) -> Sequence[Entry]:
        """Every entry, newest first by published date."""
        return self.river_view().entries

    @property
    def entries_version(self) -> int:
        """Bumped whenever entries change (not on feed state changes)."""
        return self._entries_version

    @property
    def shown_version(self) -> int:
        """Bumped whenever what the river, the feeds we publish and the templates show from
        the store changes: entries, or a feed's title, site link or error. Not on a 304's
        changes (fetch times, validators, next fetch): pages keyed on it are not rendered
        again (nor their ETags changed) by a cycle that changed nothing they show."""
        return self._shown_version

    def river_view(self) -> RiverView:
        """The river at the current entries version (a copy of references: ~0.5 ms at 100k
        entries), for paging in another thread."""
        if self._view is None or self._view.version != self._entries_version:
            self._links.refresh_also()
            self._view = RiverView(
                self._entries_version,
                self._sorted.newest_first(),
                frozenset(self._links.hidden),
                dict(self._links.also),
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

    def feed_bytes(self, url: str) -> int:
        """The memory the text of ``url``'s entries takes (what ``max_bytes_per_feed`` bounds)."""
        total = self._feed_bytes.get(url)
        if total is None:
            by_id = self._entries.get(url)
            if not by_id:
                return 0
            total = self._feed_bytes[url] = sum(map(_entry_size, by_id.values()))
        return total

    def feed_counts(self) -> Mapping[str, tuple[int, datetime | None]]:
        """Per feed: how many entries it has and the newest one's published date.

        Never changed once returned (a render thread may read it): a change makes a new one.
        """
        self._recount()
        if self._counts_view is None:
            self._counts_view = dict(self._counts)
        return self._counts_view

    def _untrack_containers(self) -> None:
        """Take the store's own containers out of the collector's lists (again: a dict goes
        back in when an object the collector could track is put in it). They hold entries,
        states, strings and each other, so they can never be in a reference cycle, and a
        full collection examined all their references: 60-80 ms of the reactor at 10,000
        feeds (see :mod:`planet.heap`)."""
        stale = self._stale_counts
        changed = self._entries if stale is None else stale
        memory.untrack(by_id for url in changed if (by_id := self._entries.get(url)) is not None)
        memory.untrack((self._entries, self._states, self._identities))
        self._links.untrack()

    def _recount(self) -> None:
        """Count the entries of the feeds changed since the last count (None: all)."""
        stale = self._stale_counts
        if stale is None:
            self._counts = {url: _count(by_id) for url, by_id in self._entries.items()}
        elif not stale:
            return
        else:
            for url in stale:
                by_id = self._entries.get(url)
                if by_id is not None:
                    self._counts[url] = _count(by_id)
                else:
                    self._counts.pop(url, None)
        self._stale_counts = set()
        self._counts_view = None

    def _entries_changed(self, url: str) -> None:
        if self._stale_counts is not None:
            self._stale_counts.add(url)

    def entry_count(self) -> int:
        return sum(len(by_id) for by_id in self._entries.values())

    def snapshot_data(self) -> tuple[tuple[Entry, ...], tuple[FeedState, ...]]:
        """An immutable copy, safe to serialize on another thread: the entries newest first
        (the river's order: a restart reads the newest first, see :mod:`planet.snapshot`)."""
        return self._sorted.newest_first(), tuple(self._states.values())

    def reading_lists(self) -> Mapping[str, ListState]:
        """Reading lists fetched from URLs, by URL."""
        return self._lists

    def record_list(self, state: ListState) -> None:
        self._lists[state.url] = state
        self._bump()

    def websub_records(self) -> Mapping[str, WebSubRecord]:
        """WebSub subscriptions by callback id."""
        return self._websub

    # --- writing ---------------------------------------------------------------------

    def set_websub(self, record: WebSubRecord) -> None:
        """Add or replace a WebSub subscription (they are shown and written in snapshots)."""
        self._websub[record.id] = record
        self._bump()

    def drop_websub(self, sub_id: str) -> None:
        if self._websub.pop(sub_id, None) is not None:
            self._bump()

    def load_websub(self, records: Iterable[WebSubRecord]) -> None:
        """Replace the WebSub subscriptions (from a snapshot)."""
        self._websub = {r.id: r for r in records}
        self._bump()

    def load(
        self,
        entries: Iterable[Entry],
        states: Iterable[FeedState],
        lists: Iterable[ListState] = (),
        *,
        typed: bool = False,
    ) -> Counter[str]:
        """Replace the contents (from a snapshot); returns what had to be mended or dropped.

        Every entry, state and list is checked (see :func:`clean_entry`) unless ``typed``
        says each field of the entries already has its declared type (msgspec checked it):
        then only their dates' time zones are, at no cost worth measuring.
        """
        problems: Counter[str] = Counter()
        by_feed: dict[str, dict[str, Entry]] = {}
        for entry in entries:
            if not typed or not _aware(entry):
                # One naive date makes the river unsortable (and every cycle fail).
                mended = clean_entry(entry, problems)
                if mended is None:
                    continue
                entry = mended
            by_feed.setdefault(entry.feed_url, {})[entry.id] = entry
        kept_states = [s for s in (clean_state(s, problems) for s in states) if s is not None]
        kept_lists = [v for v in (clean_list(v, problems) for v in lists) if v is not None]
        self._lists = {s.url: s for s in kept_lists}
        # No entries while the states are set: nothing to rank again, the index is new.
        self._entries = {}
        self._feed_bytes = {}
        self._stale_counts = None
        self._states = {}
        self._identities = {}
        self._hosts = {}
        self._links = LinkGroups(self._rank)
        for state in kept_states:
            self._set_state(state.url, state)
        memory.untrack(e for by_id in by_feed.values() for e in by_id.values())
        self._entries = by_feed
        for url in self._entries:
            # By count only: summing every entry's size would add ~50 ms to a 100k restart;
            # a feed's bytes are bounded at its next update.
            self._trim(url, by_bytes=False)
        self._reindex()
        self._bump(entries=True)
        return problems

    def restore(
        self, entries: Iterable[Entry], *, typed: bool = False, by_bytes: bool = True
    ) -> Counter[str]:
        """Add entries read from a snapshot after its feed states were loaded: the rest of a
        snapshot read in steps, or entries sanitized again meanwhile. Entries of feeds no
        longer subscribed are dropped; one fetched again meanwhile keeps the fetched content
        and its first dates. ``typed`` and ``by_bytes`` are as for :meth:`load` and
        :meth:`_trim`. The index is kept, not made again: a step costs what it adds."""
        problems: Counter[str] = Counter()
        added: dict[tuple[str, str], Entry] = {}
        # Per feed, its newest restored date: the counts of a feed that only gained older
        # entries are made from it (counting each touched feed again made a 200,000-entry
        # load take twice as long); None where a date moved (counted again in full).
        newest: dict[str, datetime | None] = {}
        states, by_feed = self._states, self._entries
        # Feeds changed before and not counted since: counted again in full, as they were.
        pending = frozenset(self._stale_counts or ())
        with self._undoable() as touch:
            for loaded in entries:
                entry = loaded if typed and _aware(loaded) else clean_entry(loaded, problems)
                if entry is None:
                    continue
                url = entry.feed_url
                state = states.get(url)
                if state is None or state.duplicate_of is not None:
                    problems["entries of feeds no longer subscribed (dropped)"] += 1
                    continue
                top = newest.get(url, entry.published)
                if url not in newest:
                    touch(url)
                by_id = by_feed.get(url)
                if by_id is None:
                    by_id = by_feed[url] = {}
                have = by_id.get(entry.id)
                if have is not None:
                    # As if the snapshot had been loaded before that fetch (see _merge): the
                    # dates move it in the river.
                    entry = evolve(
                        have,
                        published=entry.published,
                        first_seen=entry.first_seen,
                        updated=have.updated if have.dated else entry.updated,
                    )
                    if added.pop((url, entry.id), None) is None:
                        self._unindex(have)
                    top = None
                by_id[entry.id] = entry
                added[url, entry.id] = entry
                newest[url] = None if top is None else max(top, entry.published)
            memory.untrack(added.values())
            self._index_many(added.values())
            for url in newest:
                self._feed_bytes.pop(url, None)
                for gone in self._trim(url, by_bytes=by_bytes):
                    self._unindex(gone)
            self._count_restored(newest, pending)
        if added:
            self._bump(entries=True)
        return problems

    def _count_restored(
        self, newest: Mapping[str, datetime | None], pending: frozenset[str]
    ) -> None:
        """Count the feeds :meth:`restore` gave older entries from what it added; their
        containers are untracked here, as :meth:`_bump` does for the feeds it counts."""
        stale = self._stale_counts
        if stale is None:
            return
        counts = self._counts
        for url, top in newest.items():
            by_id = self._entries.get(url)
            if top is None or not by_id or url not in stale or url in pending:
                continue
            had = counts.get(url)
            if had is not None and had[1] is not None and had[1] > top:
                top = had[1]
            counts[url] = (len(by_id), top)
            stale.discard(url)
            memory.untrack((by_id,))
        self._counts_view = None

    def retain(self, urls: Iterable[str]) -> None:
        """Drop every feed (state and entries) not in ``urls``."""
        keep = set(urls)
        gone = (set(self._entries) | set(self._states)) - keep
        dropped = False
        for url in gone:
            dropped = bool(self._entries.pop(url, None)) or dropped
            self._entries_changed(url)
            self._feed_bytes.pop(url, None)
            self._set_state(url, None)
        if dropped:
            self._reindex()
        if gone:
            self._bump(entries=True)

    def apply(self, url: str, update: FeedUpdate) -> ApplyStats:
        """Make ``update`` (decided by :func:`planet.update.update_feed`) the feed's state
        and merge its entries; returns what changed."""
        stats = ApplyStats()
        if update.entries is not None:
            stats = self._merge(url, update.entries)
        self._set_state(url, update.state)
        self._bump(entries=bool(stats.new or stats.updated))
        return stats

    def reconfigure(self, config: Config) -> None:
        """Keep entries by ``config``'s limits from now on; what readers derived is stale."""
        self.max_entries_per_feed = config.max_entries_per_feed
        self.max_bytes_per_feed = config.max_bytes_per_feed
        self.max_entry_age = _max_age(config)
        self.invalidate()

    def update_state(self, url: str, **changes: Any) -> FeedState:
        """Change fields of a feed's state (schedule, discovery) and return the new state."""
        state = evolve(self.state(url), **changes)
        self._set_state(url, state)
        self._bump()
        return state

    def _set_state(self, url: str, state: FeedState | None) -> None:
        """The one place a state is replaced (or dropped): keeps the identity index and the
        hosts the feed speaks for (dedupe) true."""
        old = self._states.pop(url, None) if state is None else self._states.get(url)
        if state is not None:
            self._states[url] = state
            memory.untrack((state,))
        # Three fields compared: cheap enough for the ~1000 304s of a cycle.
        if _shown_fields(old) != _shown_fields(state):
            self._shown_version += 1
        if host_fields(old) != host_fields(state):
            self._hosts.pop(url, None)
            if state is not None:
                self._rerank(url)
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
            urls = self._identities.get(key)
            if urls is None:
                urls = self._identities[key] = set()
                memory.untrack((urls,))
            urls.add(url)

    def mark_duplicate(self, url: str, of: str) -> None:
        """``url`` turned out to be the same feed as ``of``: keep one copy of the entries."""
        if self._entries.pop(url, None):
            self._feed_bytes.pop(url, None)
            self._entries_changed(url)
            self._reindex()
        self._bump(entries=True)
        self.update_state(url, duplicate_of=of, next_fetch=None)

    def expire(self, now: datetime) -> int:
        """Drop entries older than ``max_entry_age``; returns how many went."""
        if self.max_entry_age is None:
            return 0
        cutoff = now - self.max_entry_age
        # The river is oldest first: what expires is a prefix of it.
        gone = self._sorted.drop_older(cutoff)
        for entry in gone:
            del self._entries[entry.feed_url][entry.id]
            self._entries_changed(entry.feed_url)
            self._add_bytes(entry.feed_url, -_entry_size(entry))
            self._links.remove(entry)
        if gone:
            self._bump(entries=True)
        return len(gone)

    @contextmanager
    def _undoable(self) -> Iterator[Callable[[str], None]]:
        """All or nothing: ``touch(url)`` before changing a feed's entries; if anything then
        fails, those feeds get their entries back and the index is rebuilt from them, so the
        store is as it was (the error goes on to the caller)."""
        saved: dict[str, dict[str, Entry] | None] = {}

        def touch(url: str) -> None:
            self._entries_changed(url)
            if url not in saved:
                by_id = self._entries.get(url)
                saved[url] = dict(by_id) if by_id is not None else None

        try:
            yield touch
        except BaseException:
            for url, by_id in saved.items():
                if by_id is None:
                    self._entries.pop(url, None)
                else:
                    self._entries[url] = by_id
                self._feed_bytes.pop(url, None)
            # The river and the groups may be half changed: made again from the entries.
            self._reindex()
            raise

    def _merge(self, url: str, entries: Iterable[Entry]) -> ApplyStats:
        with self._undoable() as touch:
            touch(url)
            by_id = self._entries.setdefault(url, {})
            new: set[str] = set()
            updated: set[str] = set()
            for entry in entries:
                if entry.feed_url != url:
                    # Parsed from a moved or discovered URL: it still belongs to the subscription.
                    entry = evolve(entry, feed_url=url)
                old = by_id.get(entry.id)
                if old is None:
                    by_id[entry.id] = entry
                    memory.untrack((entry,))
                    self._index(entry)
                    self._add_bytes(url, _entry_size(entry))
                    new.add(entry.id)
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
                    memory.untrack((kept,))
                    self._replace(old, kept)
                    self._add_bytes(url, _entry_size(kept) - _entry_size(old))
                    updated.add(entry.id)
            for entry in self._trim(url):
                self._unindex(entry)
                # Older than what the bounds keep (a feed serving more than they allow): not
                # counted, so a feed re-serving them is not "new" at every fetch.
                new.discard(entry.id)
                updated.discard(entry.id)
            return ApplyStats(new=len(new), updated=len(updated))

    def _add_bytes(self, url: str, size: int) -> None:
        # Only a total already made is kept up to date; feed_bytes() makes a missing one.
        if url in self._feed_bytes:
            self._feed_bytes[url] += size

    def _trim(self, url: str, by_bytes: bool = True) -> list[Entry]:
        """Keep the feed's newest entries within ``max_entries_per_feed`` and (``by_bytes``)
        ``max_bytes_per_feed``; returns the others."""
        by_id = self._entries.get(url)
        if not by_id:
            return []
        limit, bound = self.max_entries_per_feed, self.max_bytes_per_feed if by_bytes else 0
        too_many = bool(limit) and len(by_id) > limit
        if not too_many and not (bound and self.feed_bytes(url) > bound):
            return []
        newest = sorted(by_id.values(), key=river_key, reverse=True)
        keep = newest[:limit] if too_many else newest
        if bound:
            total = 0
            for n, entry in enumerate(keep):
                size = _entry_size(entry)
                if total + size > bound:
                    keep = keep[:n]
                    break
                total += size
            self._feed_bytes[url] = total
        else:
            self._feed_bytes.pop(url, None)
        self._entries[url] = {e.id: e for e in keep}
        return newest[len(keep) :]

    # --- the river index: order and shared links, kept as entries come and go -----------

    def _reindex(self) -> None:
        """Build the river index from scratch (a load, or a whole feed dropped)."""
        river = sorted(
            (e for by_id in self._entries.values() for e in by_id.values()), key=river_key
        )
        self._sorted = RiverIndex(river)
        self._links.rebuild(river)

    def _rank(self, feed: str, host: str) -> int:
        hosts = self._hosts.get(feed)
        if hosts is None:
            hosts = self._hosts[feed] = feed_hosts(feed, self._states.get(feed))
        return dedupe_rank(hosts, host)

    def _index(self, entry: Entry) -> None:
        self._sorted.add(entry)
        self._links.add(entry)

    def _index_many(self, entries: Iterable[Entry]) -> None:
        """Index ``entries`` at once. A snapshot's later lines are older than all the store
        has: put first as whole blocks; the others (fetched meanwhile) one by one."""
        batch = sorted(entries, key=river_key)
        if not batch:
            return
        oldest = self._sorted.oldest()
        if oldest is None:
            self._sorted = RiverIndex(batch)
            self._links.rebuild(batch)
            return
        older = bisect_right(batch, river_key(oldest), key=river_key)
        self._sorted.add_older(batch[:older])
        for entry in batch[older:]:
            self._sorted.add(entry)
        for entry in batch:
            self._links.add(entry)

    def _unindex(self, entry: Entry) -> None:
        self._sorted.remove(entry)
        self._links.remove(entry)

    def _replace(self, old: Entry, new: Entry) -> None:
        """``new`` is an edit of ``old``: same feed, id and dates, so the same place."""
        self._sorted.replace(old, new)
        self._links.remove(old)
        self._links.add(new)

    def _rerank(self, url: str) -> None:
        """The hosts ``url`` speaks for changed: so may the shown copy of its shared posts."""
        by_id = self._entries.get(url)
        if by_id and self._links.rerank(url, by_id.values()):
            self._entries_version += 1
            self._shown_version += 1

    def invalidate(self) -> None:
        """Mark everything changed: what readers derived from the store is stale."""
        self._bump(entries=True)

    def _bump(self, entries: bool = False) -> None:
        self.version += 1
        self._untrack_containers()
        self._recount()
        if entries:
            self._entries_version += 1
            self._shown_version += 1
