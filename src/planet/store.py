"""The in-memory truth: entries by feed, feed states, the river order, a version number.

Everything that reads the store (web, snapshot) goes through the small read API here.
``version`` is bumped on every change, so readers can cache what they derive from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from attrs import define, evolve, field, frozen

from planet.model import Entry, FeedState, FetchResult, ParsedFeed


@frozen
class ApplyStats:
    """What one fetch changed in the store."""

    new: int = 0
    updated: int = 0


def _river_key(entry: Entry) -> tuple[datetime, datetime, str, str]:
    return (entry.published, entry.first_seen, entry.feed_url, entry.id)


@define
class Store:
    """Entries and feed states in memory.

    ``max_entries_per_feed`` (0 = no limit) bounds memory: a feed keeps its newest entries.
    """

    max_entries_per_feed: int = 200
    version: int = 0
    _entries: dict[str, dict[str, Entry]] = field(factory=dict)
    _states: dict[str, FeedState] = field(factory=dict)
    _river: tuple[int, tuple[Entry, ...]] | None = None

    # --- reading ---------------------------------------------------------------------

    def river(self) -> Sequence[Entry]:
        """Every entry, newest first by published date (cached per version)."""
        if self._river is None or self._river[0] != self.version:
            entries = [e for by_id in self._entries.values() for e in by_id.values()]
            entries.sort(key=_river_key, reverse=True)
            self._river = (self.version, tuple(entries))
        return self._river[1]

    def feed_states(self) -> Mapping[str, FeedState]:
        """Feed states keyed by subscription URL."""
        return self._states

    def state(self, url: str) -> FeedState:
        return self._states.get(url) or FeedState(url=url)

    def entries_of(self, url: str) -> Sequence[Entry]:
        return tuple(self._entries.get(url, {}).values())

    def entry_count(self) -> int:
        return sum(len(by_id) for by_id in self._entries.values())

    def snapshot_data(self) -> tuple[tuple[Entry, ...], tuple[FeedState, ...]]:
        """An immutable copy, safe to serialize on another thread."""
        entries = tuple(e for by_id in self._entries.values() for e in by_id.values())
        return entries, tuple(self._states.values())

    # --- writing ---------------------------------------------------------------------

    def load(self, entries: Iterable[Entry], states: Iterable[FeedState]) -> None:
        """Replace the contents (from a snapshot)."""
        self._entries = {}
        for entry in entries:
            self._entries.setdefault(entry.feed_url, {})[entry.id] = entry
        self._states = {s.url: s for s in states}
        for url in self._entries:
            self._trim(url)
        self._bump()

    def retain(self, urls: Iterable[str]) -> None:
        """Drop every feed (state and entries) not in ``urls``."""
        keep = set(urls)
        gone = (set(self._entries) | set(self._states)) - keep
        for url in gone:
            self._entries.pop(url, None)
            self._states.pop(url, None)
        if gone:
            self._bump()

    def record_fetch(
        self, url: str, result: FetchResult, parsed: ParsedFeed | None, now: datetime
    ) -> ApplyStats:
        """Apply one fetch (and its parse, if any) to the feed ``url``."""
        state = self.state(url)
        error = result.error or (parsed.error if parsed is not None else None)
        if error is not None:
            self._states[url] = evolve(
                state,
                last_fetch=now,
                http_status=result.status,
                error=error,
                consecutive_errors=state.consecutive_errors + 1,
            )
            self._bump()
            return ApplyStats()
        # Validators are refreshed on a 304 too: servers rotate them.
        state = evolve(
            state,
            last_fetch=now,
            last_success=now,
            http_status=result.status,
            error=None,
            consecutive_errors=0,
            etag=result.etag or (state.etag if result.not_modified else None),
            last_modified=result.last_modified
            or (state.last_modified if result.not_modified else None),
        )
        stats = ApplyStats()
        if parsed is not None:
            state = evolve(state, title=parsed.title or state.title, link=parsed.link or state.link)
            stats = self._merge(url, parsed.entries)
        self._states[url] = state
        self._bump()
        return stats

    def _merge(self, url: str, entries: Iterable[Entry]) -> ApplyStats:
        by_id = self._entries.setdefault(url, {})
        new = updated = 0
        for entry in entries:
            old = by_id.get(entry.id)
            if old is None:
                by_id[entry.id] = entry
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
                updated += 1
        self._trim(url)
        return ApplyStats(new=new, updated=updated)

    def _trim(self, url: str) -> None:
        by_id = self._entries.get(url)
        if not by_id or not self.max_entries_per_feed or len(by_id) <= self.max_entries_per_feed:
            return
        newest = sorted(by_id.values(), key=_river_key, reverse=True)
        self._entries[url] = {e.id: e for e in newest[: self.max_entries_per_feed]}

    def _bump(self) -> None:
        self.version += 1
