"""The river's shape: entries newest first, and posts several feeds carry shown once.

:class:`LinkGroups` keeps, as entries come and go, which entries share a link and whose copy
is shown (:func:`dedupe_rank`: the feed fetched from the post's host, then the one whose site
is there, then the copy seen first); :class:`RiverView` is what readers page through.
"""

from __future__ import annotations

import re
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from itertools import chain
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from attrs import define, field, frozen

from planet import memory
from planet.model import Entry, FeedState
from planet.urls import host_of

__all__ = [
    "EntryKey",
    "LinkGroups",
    "RiverItem",
    "RiverView",
    "dedupe_rank",
    "feed_hosts",
    "host_key",
    "normalize_link",
    "river_key",
    "sort_river",
]


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


def river_key(entry: Entry) -> tuple[datetime, datetime, str, str]:
    return (entry.published, entry.first_seen, entry.feed_url, entry.id)


def sort_river(entries: Iterable[Entry]) -> tuple[Entry, ...]:
    """``entries`` newest first by published date (ties: first seen, feed, id)."""
    return tuple(sorted(entries, key=river_key, reverse=True))


EntryKey = tuple[str, str]


#: Entries per block of a :class:`RiverIndex` (a block splits in two past twice this).
RIVER_BLOCK = 1024


class RiverIndex:
    """Entries in river order, oldest first (by :func:`river_key`), in blocks.

    One list of 200,000 entries made each insert of a cold cycle move ~800 KB of it (3 s of
    the reactor at 10,000 feeds); an insert or a delete here moves one block at most. A
    block's last key is kept for finding the block. Keys are unique: an entry's key holds
    its feed and id.

    Blocks hold only entries, so they can never be in a reference cycle: each is taken out
    of the collector's lists when made (:func:`planet.memory.untrack`). Tracked, every full
    pass followed their 200,000 references into as many entries scattered over the heap:
    ~10 ms of the reactor at 10,000 feeds (see :mod:`planet.heap`).
    """

    __slots__ = ("_blocks", "_lasts", "_len")

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        """The index of ``entries``, which must be in river order."""
        ordered = list(entries)
        self._blocks = [ordered[i : i + RIVER_BLOCK] for i in range(0, len(ordered), RIVER_BLOCK)]
        memory.untrack(self._blocks)
        self._lasts = [river_key(block[-1]) for block in self._blocks]
        self._len = len(ordered)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Entry]:
        """Oldest first."""
        return chain.from_iterable(self._blocks)

    def newest_first(self) -> tuple[Entry, ...]:
        """Every entry, newest first: untracked as the blocks (CPython never untracks a
        tuple of instances itself), for this copy is kept (``Store.river_view``)."""
        entries = tuple(chain.from_iterable(map(reversed, reversed(self._blocks))))
        memory.untrack((entries,))
        return entries

    def oldest(self) -> Entry | None:
        return self._blocks[0][0] if self._blocks else None

    def add(self, entry: Entry) -> None:
        key = river_key(entry)
        blocks, lasts = self._blocks, self._lasts
        self._len += 1
        if not blocks:
            blocks.append([entry])
            memory.untrack(blocks)
            lasts.append(key)
            return
        i = bisect_left(lasts, key)
        if i == len(blocks):
            i -= 1
            lasts[i] = key
        block = blocks[i]
        insort(block, entry, key=river_key)
        if len(block) > 2 * RIVER_BLOCK:
            halves = [block[:RIVER_BLOCK], block[RIVER_BLOCK:]]
            memory.untrack(halves)
            blocks[i : i + 1] = halves
            lasts[i : i + 1] = [river_key(block[RIVER_BLOCK - 1]), lasts[i]]

    def add_older(self, entries: list[Entry]) -> None:
        """Put ``entries`` (in river order, none newer than :meth:`oldest`) first."""
        if not entries:
            return
        older = RiverIndex(entries)
        self._blocks[0:0] = older._blocks
        self._lasts[0:0] = older._lasts
        self._len += older._len

    def remove(self, entry: Entry) -> None:
        i, j = self._find(entry)
        block = self._blocks[i]
        del block[j]
        self._len -= 1
        if not block:
            del self._blocks[i], self._lasts[i]
        elif j == len(block):
            self._lasts[i] = river_key(block[-1])

    def replace(self, old: Entry, new: Entry) -> None:
        """``new`` has ``old``'s key (an edit: same feed, id and dates)."""
        i, j = self._find(old)
        self._blocks[i][j] = new

    def _find(self, entry: Entry) -> tuple[int, int]:
        key = river_key(entry)
        i = bisect_left(self._lasts, key)
        block = self._blocks[i] if i < len(self._blocks) else []
        j = bisect_left(block, key, key=river_key)
        if j < len(block) and block[j] is entry:
            return i, j
        # Not reached while the index is true.
        for i, block in enumerate(self._blocks):
            for j, held in enumerate(block):
                if held is entry:
                    return i, j
        raise ValueError(f"{entry.feed_url} {entry.id} is not in the river index")

    def drop_older(self, published: datetime) -> list[Entry]:
        """Remove the entries published before ``published`` (the oldest); returns them."""
        dropped: list[Entry] = []
        blocks, lasts = self._blocks, self._lasts
        while blocks and blocks[0][-1].published < published:
            dropped.extend(blocks.pop(0))
            lasts.pop(0)
        if blocks:
            n = bisect_left(blocks[0], published, key=_published)
            dropped.extend(blocks[0][:n])
            del blocks[0][:n]
        self._len -= len(dropped)
        return dropped


def _published(entry: Entry) -> datetime:
    return entry.published


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
        host = host_of(url.strip())
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


def host_fields(state: FeedState | None) -> tuple[str | None, ...] | None:
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


@define
class LinkGroups:
    """Entries by the normalized form of their link: one Entry, or a :class:`_Group` once
    shared. The copies not shown are in ``hidden``, kept true at every change (O(log n) per
    entry, plus the shown feed's members when the shown copy moves to another feed). "Also
    in" (``also``) names every other feed of a group: O(feeds), so it is made for the groups
    changed since, at :meth:`refresh_also` (at most once per render) rather than at every
    insert.
    """

    #: ``(feed, host) -> rank`` (see :func:`dedupe_rank`): the store knows the feeds' hosts.
    _rank_of: Callable[[str, str], int]
    _groups: dict[str, Entry | _Group] = field(factory=dict)
    hidden: set[EntryKey] = field(factory=set)
    also: dict[EntryKey, tuple[str, ...]] = field(factory=dict)
    _also_at: dict[str, EntryKey] = field(factory=dict)
    _stale_also: set[str] = field(factory=set)

    def rebuild(self, river: Iterable[Entry]) -> None:
        """Group ``river`` (oldest first) from scratch: a load, or a whole feed dropped."""
        self.hidden, self.also, self._also_at = set(), {}, {}
        held: dict[str, Entry | list[Entry]] = {}
        shared: list[str] = []
        for entry in river:
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
        self.refresh_also()

    def _group_of(self, form: str, members: list[Entry]) -> _Group:
        """A group made at once from ``members`` (oldest first in the river)."""
        group = _Group(host_key(form))
        for entry in members:
            feed = entry.feed_url
            rank = group.ranks.get(feed)
            if rank is None:
                rank = group.ranks[feed] = self._rank_of(feed, group.host)
                group.feeds[feed] = []
            group.picks.append((rank, entry.first_seen, entry.published, feed, entry.id))
            group.feeds[feed].append(river_key(entry))
        group.picks.sort()
        shown = group.shown_feed()
        for feed in group.feeds:
            if feed != shown:
                self.hidden.update(group.keys_of(feed))
        return group

    def add(self, entry: Entry) -> None:
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
            rank = group.ranks[feed] = self._rank_of(feed, group.host)
        insort(group.picks, (rank, entry.first_seen, entry.published, feed, entry.id))
        insort(group.feeds.setdefault(feed, []), river_key(entry))
        self._rehide(group, before)
        if feed != group.shown_feed():
            self.hidden.add((feed, entry.id))
        self._stale_also.add(form)

    def remove(self, entry: Entry) -> None:
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
        del keys[_index_of(keys, river_key(entry))]
        if not keys:
            del group.feeds[feed], group.ranks[feed]
        self.hidden.discard((feed, entry.id))
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
            self.hidden.update(group.keys_of(before))
        if after is not None:
            self.hidden.difference_update(group.keys_of(after))

    def untrack(self) -> None:
        """Take the index's containers out of the collector's lists: they hold entries,
        strings, tuples of them and groups, never a reference cycle (see
        :meth:`planet.store.Store._untrack_containers`)."""
        memory.untrack((self._groups, self.hidden, self.also, self._also_at))

    def refresh_also(self) -> None:
        """Name the other feeds of each group changed since the last view, newest first."""
        # Every stale group's old naming goes before any new one is made: an entry whose link
        # changed is shown in its new group and was in its old one under the same key, and the
        # old group's pop must not undo the new group's naming (whichever the set gives first).
        for form in self._stale_also:
            old = self._also_at.pop(form, None)
            if old is not None:
                self.also.pop(old, None)
        for form in self._stale_also:
            group = self._groups.get(form)
            if not isinstance(group, _Group) or len(group.feeds) < 2:
                continue
            _, _, shown, shown_id = group.picks[0][1:]
            newest = sorted(
                ((keys[-1], feed) for feed, keys in group.feeds.items() if feed != shown),
                reverse=True,
            )
            self.also[(shown, shown_id)] = tuple(feed for _, feed in newest)
            self._also_at[form] = (shown, shown_id)
        self._stale_also = set()

    def rerank(self, url: str, entries: Iterable[Entry]) -> bool:
        """The hosts ``url`` speaks for changed (its ``entries`` given): so may the shown copy
        of its shared posts. Whether any group changed."""
        changed = False
        for form in {normalize_link(e.link) for e in entries if e.link}:
            group = self._groups.get(form)
            if not isinstance(group, _Group) or url not in group.ranks:
                continue
            rank = self._rank_of(url, group.host)
            if rank == group.ranks[url]:
                continue
            before = group.shown_feed()
            group.ranks[url] = rank
            group.picks = sorted((rank, *p[1:]) if p[3] == url else p for p in group.picks)
            self._rehide(group, before)
            self._stale_also.add(form)
            changed = True
        return changed


def _index_of(items: list[Any], item: Any) -> int:
    """Where ``item`` is in the sorted list ``items`` (ValueError if it is not there)."""
    i = bisect_left(items, item)
    if i < len(items) and items[i] == item:
        return i
    raise ValueError(f"{item!r} is not in the index")
