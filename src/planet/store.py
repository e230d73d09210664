"""The in-memory truth: entries by feed, feed states, the river order, a version number.

Everything that reads the store (web, snapshot) goes through the small read API here.
``version`` is bumped on every change, so readers can cache what they derive from it.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from attrs import define, evolve, field, fields, frozen

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
    fragment and ``utm_*`` parameters dropped, trailing slash ignored.

    Never raises: a link ``urlsplit`` refuses (``http://[::1``) is its own form.
    """
    url = url.strip()
    if _PLAIN_LINK.match(url) and "utm_" not in url.lower():
        # Most links: a restart dedupes 100k of them before the first page (~7 us each the
        # long way).
        base, sep, query = url.partition("?")
        return base.rstrip("/") + sep + query if base.count("/") > 2 else url
    try:
        return _normalize_parts(url)
    except ValueError:
        # An unbalanced IPv6 bracket and the like: the store must index it all the same (an
        # old snapshot may hold one), and such a link equals only itself.
        return url


def _normalize_parts(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal: a URL again only in its brackets
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
    try:
        before, after = urlsplit(origin), urlsplit(target)
    except ValueError:
        return False
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


def _identity(state: FeedState | None) -> tuple[tuple[str, str], ...]:
    if state is None:
        return ()
    keys = []
    if state.final_url is not None:
        keys.append(("u", state.final_url))
    if state.feed_id is not None:
        keys.append(("i", state.feed_id))
    return tuple(keys)


# --- whose copy of a shared post is shown ---------------------------------------------------


# An http(s) URL whose host is a plain name or IPv4 address (no user, no brackets).
_PLAIN_HOST = re.compile(r"\s*https?://([a-z0-9.-]+)(?::\d*)?(?:[/?#]|\s*\Z)", re.IGNORECASE)


def host_key(url: str | None) -> str:
    """The host of ``url`` as hosts are compared for dedupe: lowercased, without a trailing
    dot or a leading ``www.``; "" for no URL or one ``urlsplit`` refuses."""
    if not url:
        return ""
    plain = _PLAIN_HOST.match(url)
    if plain:
        host = plain.group(1).lower()  # most URLs: ~10x faster than urlsplit().hostname
    else:
        try:
            host = urlsplit(url.strip()).hostname or ""
        except ValueError:
            return ""
    host = host.rstrip(".")
    return host[4:] if host.startswith("www.") else host


FeedHosts = tuple[frozenset[str], str]


def feed_hosts(url: str, state: FeedState | None) -> FeedHosts:
    """The hosts a feed speaks for: those of the URLs it is fetched from (the subscription, an
    adopted move, a discovered feed) and the host of its site (its own ``link``)."""
    urls: list[str | None] = [url]
    if state is not None:
        urls += [state.current_url, state.discovered_url]
    fetched = frozenset(h for h in map(host_key, urls) if h)
    return fetched, host_key(state.link) if state is not None else ""


def dedupe_rank(hosts: FeedHosts, host: str) -> int:
    """How strongly a feed speaks for a post on ``host``: 0 when the feed is fetched from that
    host (the operator chose the URL: a publisher cannot), 1 when it is its site's host (the
    feed says so itself), 2 otherwise. The copy of the lowest rank is shown, then the one
    seen first."""
    if not host:
        return 2
    fetched, site = hosts
    if host in fetched:
        return 0
    return 1 if host == site else 2


def _host_fields(state: FeedState | None) -> tuple[str | None, ...] | None:
    if state is None:
        return None
    return (state.link, state.current_url, state.discovered_url)


#: A member of a dedupe group in the order that picks the copy shown: rank, then seen first.
_Pick = tuple[int, datetime, datetime, str, str]
_RiverKey = tuple[datetime, datetime, str, str]


@define(eq=False)
class _Group:
    """The entries sharing one normalized link, kept in order as members come and go."""

    host: str
    #: Every member as (rank, first_seen, published, feed_url, id): the one shown first.
    picks: list[_Pick] = field(factory=list)
    #: Per feed: the river keys of its members here, oldest first (the newest names the feed's
    #: place in "Also in"), and the feed's rank for this group's host.
    feeds: dict[str, list[_RiverKey]] = field(factory=dict)
    ranks: dict[str, int] = field(factory=dict)

    def shown_feed(self) -> str | None:
        return self.picks[0][3] if self.picks else None

    def keys_of(self, feed: str) -> Iterator[EntryKey]:
        return ((f, i) for _, _, f, i in self.feeds.get(feed, ()))


# --- what a snapshot may hold that the store cannot index ---------------------------------


def _aware(value: object) -> datetime | None:
    """``value`` as an aware datetime (a naive one taken as UTC), or None if it is no datetime."""
    if not isinstance(value, datetime):
        return None
    return value if value.utcoffset() is not None else value.replace(tzinfo=timezone.utc)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_ENTRY_TEXT = ("title", "author", "content")
_ENTRY_DATES = ("published", "updated", "first_seen")


def clean_entry(entry: object, problems: Counter[str]) -> Entry | None:
    """``entry`` as the store can index it and the outputs render it, or None to drop it.

    A snapshot is read back without the parser's checks: an id may be a number, a title null,
    a date naive (an old version, a hand edit). What was wrong is counted in ``problems``.
    """
    if not isinstance(entry, Entry):
        problems["entries that are not entries (dropped)"] += 1
        return None
    if not isinstance(entry.feed_url, str):
        problems["entries whose feed_url is not text (dropped)"] += 1
        return None
    changes: dict[str, Any] = {}
    if not isinstance(entry.id, str):
        if not _number(entry.id):
            problems["entries whose id is not text (dropped)"] += 1
            return None
        changes["id"] = str(entry.id)
        problems["entries whose id was a number (made text)"] += 1
    for name in _ENTRY_TEXT:
        value = getattr(entry, name)
        if isinstance(value, str):
            continue
        if value is None:
            changes[name] = ""
            problems[f"entries whose {name} was null (made empty)"] += 1
        elif _number(value):
            changes[name] = str(value)
            problems[f"entries whose {name} was a number (made text)"] += 1
        else:
            problems[f"entries whose {name} is not text (dropped)"] += 1
            return None
    if entry.link is not None and not isinstance(entry.link, str):
        changes["link"] = None
        problems["entries whose link is not text (taken as no link)"] += 1
    for name in _ENTRY_DATES:
        value = getattr(entry, name)
        when = _aware(value)
        if when is None:
            problems[f"entries whose {name} is not a date (dropped)"] += 1
            return None
        if when is not value:
            changes[name] = when
            problems[f"entries whose {name} had no time zone (taken as UTC)"] += 1
    if not isinstance(entry.dated, bool):
        changes["dated"] = bool(entry.dated) if _number(entry.dated) else True
        problems["entries whose dated is not true or false (made so)"] += 1
    return evolve(entry, **changes) if changes else entry


def _kind(type_name: object) -> str:
    text = str(type_name)
    if "datetime" in text:
        return "date"
    return {"str": "text", "str | None": "text?", "int": "int", "int | None": "int?"}.get(
        text, "other"
    )


def _field_kinds(cls: type) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, _kind(f.type)) for f in fields(cls) if f.name != "url")


_STATE_KINDS = _field_kinds(FeedState)
_LIST_KINDS = _field_kinds(ListState)


def _clean_record(
    value: Any, kinds: tuple[tuple[str, str], ...], what: str, problems: Counter[str]
) -> Any:
    """A feed state or reading list with each field of its declared type (or its default)."""
    if not isinstance(value.url, str):
        problems[f"{what} whose url is not text (dropped)"] += 1
        return None
    changes: dict[str, Any] = {}
    for name, kind in kinds:
        current = getattr(value, name)
        if kind == "date":
            if current is None:
                continue
            when = _aware(current)
            if when is None:
                changes[name] = None
                problems[f"{what} whose {name} is not a date (cleared)"] += 1
            elif when is not current:
                changes[name] = when
                problems[f"{what} whose {name} had no time zone (taken as UTC)"] += 1
        elif kind in ("text", "text?"):
            if not isinstance(current, str) and not (kind == "text?" and current is None):
                changes[name] = "" if kind == "text" else None
                problems[f"{what} whose {name} is not text (cleared)"] += 1
        elif kind in ("int", "int?"):
            ok = isinstance(current, int) and not isinstance(current, bool)
            if not ok and not (kind == "int?" and current is None):
                changes[name] = 0 if kind == "int" else None
                problems[f"{what} whose {name} is not a whole number (cleared)"] += 1
    return evolve(value, **changes) if changes else value


def clean_state(state: object, problems: Counter[str]) -> FeedState | None:
    """``state`` with every field of its declared type (naive dates taken as UTC), or None."""
    if not isinstance(state, FeedState):
        problems["feed states that are not feed states (dropped)"] += 1
        return None
    cleaned: FeedState | None = _clean_record(state, _STATE_KINDS, "feed states", problems)
    return cleaned


def clean_list(listed: object, problems: Counter[str]) -> ListState | None:
    """``listed`` with every field of its declared type, or None."""
    if not isinstance(listed, ListState):
        problems["reading lists that are not reading lists (dropped)"] += 1
        return None
    cleaned: ListState | None = _clean_record(listed, _LIST_KINDS, "reading lists", problems)
    if cleaned is None:
        return None
    try:
        feeds = tuple(
            (url, name)
            for url, name in cleaned.feeds
            if isinstance(url, str) and (name is None or isinstance(name, str))
        )
    except (TypeError, ValueError):
        feeds = ()
    if feeds != cleaned.feeds:
        problems["reading lists with feeds that are not (URL, name) pairs (left out)"] += 1
        cleaned = evolve(cleaned, feeds=feeds)
    return cleaned


def _entry_size(entry: Entry) -> int:
    """The memory an entry's text takes (``sys.getsizeof``: O(1) for a str)."""
    size = (
        sys.getsizeof(entry.content)
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
    version: int = 0
    _entries: dict[str, dict[str, Entry]] = field(factory=dict)
    _states: dict[str, FeedState] = field(factory=dict)
    _lists: dict[str, ListState] = field(factory=dict)
    # The river kept in order as entries come and go (oldest first: appends are cheap), so
    # no reader sorts 20k-100k entries after every fetch.
    _sorted: list[Entry] = field(factory=list)
    # Entries by the normalized form of their link: one Entry, or a _Group once shared. The
    # copies not shown are in _hidden, kept true at every change (O(log n) per entry, plus the
    # shown feed's members when the shown copy moves to another feed). "Also in" names every
    # other feed of a group: O(feeds), so it is made for the groups changed since, at the
    # next river_view() (at most once per render) rather than at every insert.
    _groups: dict[str, Entry | _Group] = field(factory=dict)
    _hidden: set[EntryKey] = field(factory=set)
    _also: dict[EntryKey, tuple[str, ...]] = field(factory=dict)
    _also_at: dict[str, EntryKey] = field(factory=dict)
    _stale_also: set[str] = field(factory=set)
    # Per feed, the hosts it speaks for (see dedupe_rank), from its state, made when needed.
    _hosts: dict[str, FeedHosts] = field(factory=dict)
    # Per feed, the memory its entries' text takes (made when needed, then kept up to date).
    _feed_bytes: dict[str, int] = field(factory=dict)
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
            self._refresh_also()
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

    def feed_bytes(self, url: str) -> int:
        """The memory the text of ``url``'s entries takes (what ``max_bytes_per_feed`` bounds)."""
        total = self._feed_bytes.get(url)
        if total is None:
            by_id = self._entries.get(url)
            if not by_id:
                return 0
            total = self._feed_bytes[url] = sum(map(_entry_size, by_id.values()))
        return total

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
            if (
                not typed
                or entry.published.tzinfo is None
                or entry.updated.tzinfo is None
                or entry.first_seen.tzinfo is None
            ):
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
        self._states = {}
        self._identities = {}
        self._hosts = {}
        self._groups = {}
        for state in kept_states:
            self._set_state(state.url, state)
        self._entries = by_feed
        for url in self._entries:
            # By count only: summing every entry's size would add ~50 ms to a 100k restart;
            # a feed's bytes are bounded at its next update.
            self._trim(url, by_bytes=False)
        self._reindex()
        self._bump(entries=True)
        return problems

    def restore(self, entries: Iterable[Entry]) -> Counter[str]:
        """Add entries read from a snapshot after the feed states were loaded (they were being
        sanitized again meanwhile). Entries of feeds no longer subscribed are dropped; one
        fetched again meanwhile keeps the fetched content and its first dates."""
        problems: Counter[str] = Counter()
        touched: set[str] = set()
        with self._undoable() as touch:
            for loaded in entries:
                entry = clean_entry(loaded, problems)
                if entry is None:
                    continue
                state = self._states.get(entry.feed_url)
                if state is None or state.duplicate_of is not None:
                    problems["entries of feeds no longer subscribed (dropped)"] += 1
                    continue
                touch(entry.feed_url)
                by_id = self._entries.setdefault(entry.feed_url, {})
                have = by_id.get(entry.id)
                if have is not None:
                    # As if the snapshot had been loaded before that fetch (see _merge).
                    entry = evolve(
                        have,
                        published=entry.published,
                        first_seen=entry.first_seen,
                        updated=have.updated if have.dated else entry.updated,
                    )
                by_id[entry.id] = entry
                touched.add(entry.feed_url)
            for url in touched:
                self._feed_bytes.pop(url, None)
                self._trim(url)
            if touched:
                self._reindex()
        if touched:
            self._bump(entries=True)
        return problems

    def retain(self, urls: Iterable[str]) -> None:
        """Drop every feed (state and entries) not in ``urls``."""
        keep = set(urls)
        gone = (set(self._entries) | set(self._states)) - keep
        dropped = False
        for url in gone:
            dropped = bool(self._entries.pop(url, None)) or dropped
            self._feed_bytes.pop(url, None)
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
        """The one place a state is replaced (or dropped): keeps the identity index and the
        hosts the feed speaks for (dedupe) true."""
        old = self._states.pop(url, None) if state is None else self._states.get(url)
        if state is not None:
            self._states[url] = state
        if _host_fields(old) != _host_fields(state):
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
            self._identities.setdefault(key, set()).add(url)

    def mark_duplicate(self, url: str, of: str) -> None:
        """``url`` turned out to be the same feed as ``of``: keep one copy of the entries."""
        if self._entries.pop(url, None):
            self._feed_bytes.pop(url, None)
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
            self._add_bytes(entry.feed_url, -_entry_size(entry))
            self._group_remove(entry)
        del self._sorted[:n]
        if n:
            self._bump(entries=True)
        return n

    @contextmanager
    def _undoable(self) -> Iterator[Callable[[str], None]]:
        """All or nothing: ``touch(url)`` before changing a feed's entries; if anything then
        fails, those feeds get their entries back and the index is rebuilt from them, so the
        store is as it was (the error goes on to the caller)."""
        saved: dict[str, dict[str, Entry] | None] = {}

        def touch(url: str) -> None:
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
        newest = sorted(by_id.values(), key=_river_key, reverse=True)
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
        self._sorted = sorted(
            (e for by_id in self._entries.values() for e in by_id.values()), key=_river_key
        )
        self._hidden, self._also, self._also_at = set(), {}, {}
        held: dict[str, Entry | list[Entry]] = {}
        shared: list[str] = []
        for entry in self._sorted:
            if entry.link:
                form = normalize_link(entry.link)
                found = held.get(form)
                if found is None:
                    held[form] = entry
                elif isinstance(found, list):
                    found.append(entry)
                else:
                    held[form] = [found, entry]
                    shared.append(form)
        groups: dict[str, Entry | _Group] = held  # type: ignore[assignment]
        for form in shared:
            members = held[form]
            assert isinstance(members, list)
            groups[form] = self._group_of(form, members)
        self._groups = groups
        self._stale_also = set(shared)
        self._refresh_also()

    def _group_of(self, form: str, members: list[Entry]) -> _Group:
        """A group made at once from ``members`` (oldest first in the river)."""
        group = _Group(host_key(form))
        for entry in members:
            feed = entry.feed_url
            rank = group.ranks.get(feed)
            if rank is None:
                rank = group.ranks[feed] = self._rank(feed, group.host)
                group.feeds[feed] = []
            group.picks.append((rank, entry.first_seen, entry.published, feed, entry.id))
            group.feeds[feed].append(_river_key(entry))
        group.picks.sort()
        shown = group.shown_feed()
        for feed in group.feeds:
            if feed != shown:
                self._hidden.update(group.keys_of(feed))
        return group

    def _rank(self, feed: str, host: str) -> int:
        hosts = self._hosts.get(feed)
        if hosts is None:
            hosts = self._hosts[feed] = feed_hosts(feed, self._states.get(feed))
        return dedupe_rank(hosts, host)

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
        if isinstance(held, Entry):
            group = self._groups[form] = self._group_of(form, [held])
        else:
            group = held
        before = group.shown_feed()
        feed = entry.feed_url
        rank = group.ranks.get(feed)
        if rank is None:
            rank = group.ranks[feed] = self._rank(feed, group.host)
        insort(group.picks, (rank, entry.first_seen, entry.published, feed, entry.id))
        insort(group.feeds.setdefault(feed, []), _river_key(entry))
        self._rehide(group, before)
        if feed != group.shown_feed():
            self._hidden.add((feed, entry.id))
        self._stale_also.add(form)

    def _group_remove(self, entry: Entry) -> None:
        if not entry.link:
            return
        form = normalize_link(entry.link)
        held = self._groups.get(form)
        if isinstance(held, Entry):
            if (held.feed_url, held.id) == (entry.feed_url, entry.id):
                del self._groups[form]
            return
        if held is None:
            return  # not reached while the index is true
        group, feed = held, entry.feed_url
        before = group.shown_feed()
        pick = (group.ranks[feed], entry.first_seen, entry.published, feed, entry.id)
        del group.picks[_index_of(group.picks, pick)]
        keys = group.feeds[feed]
        del keys[_index_of(keys, _river_key(entry))]
        if not keys:
            del group.feeds[feed], group.ranks[feed]
        self._hidden.discard((feed, entry.id))
        self._rehide(group, before)
        self._stale_also.add(form)
        if not group.picks:
            del self._groups[form]

    def _rehide(self, group: _Group, before: str | None) -> None:
        """The shown copy may now be another feed's: its members show, the old ones hide."""
        after = group.shown_feed()
        if after == before:
            return
        if before is not None:
            self._hidden.update(group.keys_of(before))
        if after is not None:
            self._hidden.difference_update(group.keys_of(after))

    def _rerank(self, url: str) -> None:
        """The hosts ``url`` speaks for changed: so may the shown copy of its shared posts."""
        by_id = self._entries.get(url)
        if not by_id:
            return
        changed = False
        for form in {normalize_link(e.link) for e in by_id.values() if e.link}:
            group = self._groups.get(form)
            if not isinstance(group, _Group) or url not in group.ranks:
                continue
            rank = self._rank(url, group.host)
            if rank == group.ranks[url]:
                continue
            before = group.shown_feed()
            group.ranks[url] = rank
            group.picks = sorted((rank, *p[1:]) if p[3] == url else p for p in group.picks)
            self._rehide(group, before)
            self._stale_also.add(form)
            changed = True
        if changed:
            self._entries_version += 1

    def _refresh_also(self) -> None:
        """Name the other feeds of each group changed since the last view, newest first."""
        for form in self._stale_also:
            old = self._also_at.pop(form, None)
            if old is not None:
                self._also.pop(old, None)
            group = self._groups.get(form)
            if not isinstance(group, _Group) or len(group.feeds) < 2:
                continue
            _, _, shown, shown_id = group.picks[0][1:]
            newest = sorted(
                ((keys[-1], feed) for feed, keys in group.feeds.items() if feed != shown),
                reverse=True,
            )
            self._also[(shown, shown_id)] = tuple(feed for _, feed in newest)
            self._also_at[form] = (shown, shown_id)
        self._stale_also = set()

    def invalidate(self) -> None:
        """Mark everything changed: what readers derived from the store is stale."""
        self._bump(entries=True)

    def _bump(self, entries: bool = False) -> None:
        self.version += 1
        if entries:
            self._entries_version += 1


def _index_of(items: list[Any], item: Any) -> int:
    """Where ``item`` is in the sorted list ``items`` (ValueError if it is not there)."""
    i = bisect_left(items, item)
    if i < len(items) and items[i] == item:
        return i
    raise ValueError(f"{item!r} is not in the index")
