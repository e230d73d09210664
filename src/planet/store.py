"""The in-memory truth: entries by feed, feed states, the river order, a version number.

Everything that reads the store (web, snapshot) goes through the small read API here.
``version`` is bumped on every change, so readers can cache what they derive from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
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


def _follow_moves(state: FeedState, result: FetchResult) -> FeedState:
    """Adopt a permanent move: at once for http->https on the same host, else when seen twice.

    Only a chain of 301/308 hops counts; a temporary redirect anywhere resets the count.
    """
    hops = result.redirects
    if not hops or any(code not in (301, 308) for code, _ in hops):
        return evolve(state, pending_move=None, pending_count=0)
    target = result.final_url
    count = state.pending_count + 1 if state.pending_move == target else 1
    if _https_upgrade(result.url, target) or count >= 2:
        return evolve(
            state,
            current_url=None if target == state.url else target,
            pending_move=None,
            pending_count=0,
        )
    return evolve(state, pending_move=target, pending_count=count)


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
    river = sorted(entries, key=_river_key, reverse=True)
    return tuple(river)


def build_items(
    river: Sequence[Entry], dedupe: bool, forms: Mapping[str, str]
) -> tuple[tuple[RiverItem, ...], dict[str, str]]:
    """The river as items; with ``dedupe``, a post in several feeds is one item, under the
    copy seen first, naming the other feeds in ``also_in``.

    ``forms`` maps links to their :func:`normalize_link` form (normalizing 20k links costs
    ~150 ms, and a link's form never changes); the forms of this river's links come back,
    for the next call. Pure: safe in a thread on a river taken from the store.
    """
    if not dedupe:
        return tuple(RiverItem(e) for e in river), dict(forms)
    groups: dict[str, list[Entry]] = {}
    known: dict[str, str] = {}
    for entry in river:
        link = entry.link
        if link:
            form = forms.get(link) or normalize_link(link)
            known[link] = form
            groups.setdefault(form, []).append(entry)
    hidden: set[tuple[str, str]] = set()
    also: dict[tuple[str, str], tuple[str, ...]] = {}
    for group in groups.values():
        if len(group) < 2 or len({e.feed_url for e in group}) < 2:
            continue
        first = min(group, key=lambda e: (e.first_seen, e.published, e.feed_url))
        others = [e for e in group if e.feed_url != first.feed_url]
        hidden.update((e.feed_url, e.id) for e in others)
        also[(first.feed_url, first.id)] = tuple(dict.fromkeys(e.feed_url for e in others))
    if not hidden:
        return tuple(RiverItem(e, also.get((e.feed_url, e.id), ())) for e in river), known
    items = tuple(
        RiverItem(e, also.get((e.feed_url, e.id), ()))
        for e in river
        if (e.feed_url, e.id) not in hidden
    )
    return items, known


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
    _river: tuple[int, tuple[Entry, ...]] | None = None
    _lists: dict[str, ListState] = field(factory=dict)
    _flat: tuple[int, tuple[Entry, ...]] | None = None
    # Bumped only when entries change: re-sorting 100k entries costs ~100 ms on the reactor,
    # too much to repeat after every 304 (measured in benchmarks/snapshot_stall.py).
    _entries_version: int = 0
    # Subscription URLs by the feed they turned out to be ("u" final URL, "i" feed id), so
    # finding a duplicate costs O(1) rather than a scan of every feed.
    _identities: dict[tuple[str, str], set[str]] = field(factory=dict)

    # --- reading ---------------------------------------------------------------------

    def river(self) -> Sequence[Entry]:
        """Every entry, newest first by published date (cached per version)."""
        if self._river is None or self._river[0] != self._entries_version:
            self._river = (self._entries_version, sort_river(self.entries_snapshot()[1]))
        return self._river[1]

    def entries_snapshot(self) -> tuple[int, tuple[Entry, ...]]:
        """Every entry, unordered, and the entries version: cheap to take on the reactor
        thread, for sorting and paging in another (see :func:`sort_river`)."""
        if self._flat is None or self._flat[0] != self._entries_version:
            flat = tuple(e for by_id in self._entries.values() for e in by_id.values())
            self._flat = (self._entries_version, flat)
        return self._flat

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
        self._bump(entries=True)

    def retain(self, urls: Iterable[str]) -> None:
        """Drop every feed (state and entries) not in ``urls``."""
        keep = set(urls)
        gone = (set(self._entries) | set(self._states)) - keep
        for url in gone:
            self._entries.pop(url, None)
            self._set_state(url, None)
        if gone:
            self._bump(entries=True)

    def record_fetch(
        self, url: str, result: FetchResult, parsed: ParsedFeed | None, now: datetime
    ) -> ApplyStats:
        """Apply one fetch (and its parse; None for a 304 or an unchanged body) to ``url``."""
        state = evolve(
            self.state(url),
            last_fetch=now,
            http_status=result.status,
            final_url=result.final_url,
            waiting_until=None,
        )
        error = result.error or (parsed.error if parsed is not None else None)
        if error is not None:
            if result.status == 410:
                state = evolve(state, gone_since=state.gone_since or now)
            self._set_state(
                url, evolve(state, error=error, consecutive_errors=state.consecutive_errors + 1)
            )
            self._bump()
            return ApplyStats()
        # Validators are refreshed on a 304 too: servers rotate them.
        state = evolve(
            _follow_moves(state, result),
            last_success=now,
            error=None,
            consecutive_errors=0,
            gone_since=None,
            etag=result.etag or (state.etag if result.not_modified else None),
            last_modified=result.last_modified
            or (state.last_modified if result.not_modified else None),
            body_hash=result.body_hash or state.body_hash,
        )
        stats = ApplyStats()
        if parsed is not None:
            state = evolve(
                state,
                title=parsed.title or state.title,
                link=parsed.link or state.link,
                feed_id=parsed.feed_id,
            )
            stats = self._merge(url, self._recent(parsed.entries, now))
        self._set_state(url, state)
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
        self._entries.pop(url, None)
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
        dropped = 0
        for by_id in self._entries.values():
            old = [key for key, e in by_id.items() if e.published < cutoff]
            for key in old:
                del by_id[key]
            dropped += len(old)
        if dropped:
            self._bump(entries=True)
        return dropped

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

    def invalidate(self) -> None:
        """Mark everything changed: what readers derived from the store is stale."""
        self._bump(entries=True)

    def _bump(self, entries: bool = False) -> None:
        self.version += 1
        if entries:
            self._entries_version += 1
