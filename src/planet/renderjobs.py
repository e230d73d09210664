"""What each page of the web view is rendered from, and how.

A job holds a page's inputs, taken on the reactor thread (references to immutable
values: the river at one version, the feed views, the time); its ``render()`` runs in a
render thread (see :class:`planet.pagecache.RenderJob`). The river is paged there too, as
far as a page needs, and the pages made are shared by the renders of one river.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from attrs import define, field, frozen

from planet import formats, memory, render, statuspage
from planet.config import Config
from planet.model import Entry, FeedState, ListState
from planet.pagecache import PageGoneError
from planet.render import FeedView
from planet.river import RiverItem, RiverView, sort_river
from planet.store import Store

#: A feed document's page: ``(config, entries, feeds, now, page, has_next) -> bytes``.
FeedDocument = Callable[
    [Config, Sequence[Entry], Mapping[str, FeedView], datetime, int, bool], bytes
]


@frozen
class RiverSource:
    """What the river's pages are made from: the river at one version, or a feed's entries."""

    version: int
    config: Config
    river: RiverView | None
    max_page_bytes: int
    #: For a feed's own page: its entries, in no order.
    feed_entries: Sequence[Entry] = ()
    feed_url: str | None = None


def river_source(
    store: Store, config: Config, feed_url: str | None, max_page_bytes: int
) -> RiverSource:
    """What the river's pages (or feed ``feed_url``'s) are made from: references, taken on
    the reactor thread."""
    if feed_url is None:
        river = store.river_view()
        return RiverSource(river.version, config, river, max_page_bytes)
    version, entries = store.entries_version, store.entries_of(feed_url)
    return RiverSource(version, config, None, max_page_bytes, entries, feed_url)


class _Pages:
    """A river's pages, made only as far as they are asked for (page 1 of 100k entries
    costs a page's worth of work). Renders in several threads share one."""

    def __init__(self, pages: Iterator[tuple[RiverItem, ...]]) -> None:
        self._source = pages
        self._made: list[tuple[RiverItem, ...]] = []
        self._lock = threading.Lock()

    def get(self, number: int) -> tuple[RiverItem, ...] | None:
        """Page ``number`` (from 1), or None when the river has fewer pages."""
        with self._lock:
            while len(self._made) < number:
                page = next(self._source, None)
                if page is None:
                    return None
                self._made.append(page)
            return self._made[number - 1]


@define
class RiverPager:
    """The pages of each river source, shared per entries version and config (any thread)."""

    _cache: dict[tuple[int, int, str, int], _Pages] = field(factory=dict)
    _lock: threading.Lock = field(factory=threading.Lock)

    def page(self, source: RiverSource, number: int) -> tuple[tuple[RiverItem, ...], bool]:
        """Page ``number`` of ``source`` and whether another follows (in a render thread)."""
        pages = self._pages_of(source)
        items = pages.get(number)
        if items is None:
            raise PageGoneError(number)
        return items, pages.get(number + 1) is not None

    def _pages_of(self, source: RiverSource) -> _Pages:
        key = (source.version, id(source.config), source.feed_url or "", source.max_page_bytes)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                config = source.config
                if source.river is not None:
                    items = source.river.items(config.dedupe)
                    per_feed = config.new_feed_items
                else:
                    items = (RiverItem(e) for e in sort_river(source.feed_entries))
                    # A feed's own page shows all of it: new_feed_items caps the river only.
                    per_feed = 0
                pages = render.iter_pages(
                    items,
                    config.items_per_page,
                    config.days_per_page,
                    per_feed,
                    source.max_page_bytes,
                )
                cached = _Pages(pages)
                if len(self._cache) > 16:
                    self._cache.clear()
                self._cache[key] = cached
        return cached


@frozen
class FeedViews:
    """Every subscription's view (see :func:`planet.render.feed_views`), by URL and slug."""

    feeds: dict[str, FeedView]
    by_slug: dict[str, FeedView]

    @classmethod
    def of(cls, feeds: dict[str, FeedView]) -> FeedViews:
        by_slug = {view.slug: view for view in feeds.values()}
        # Kept per shown version; views hold only text and flags: out of the collector's
        # lists, as the store's entries (10,000 views and two dicts of them at 10,000 feeds).
        memory.untrack(feeds.values())
        memory.untrack((feeds, by_slug))
        return cls(feeds, by_slug)


@define
class LazyFeedViews:
    """The feed views at one shown version, made by the first thread that needs them.

    Made on the reactor thread at every change, 10,000 views took ~50 ms of it, once a
    second during a fetch cycle; a render job makes them in its own thread instead.
    ``states`` is a copy taken on the reactor thread. ``previous`` is an earlier version's,
    always already made when given: its slugs are kept (see ``render.feed_views``).
    """

    version: int
    config: Config
    states: Mapping[str, FeedState]
    previous: LazyFeedViews | None = None
    _made: FeedViews | None = None
    _lock: threading.Lock = field(factory=threading.Lock)

    @classmethod
    def ready(cls, config: Config, feeds: dict[str, FeedView]) -> LazyFeedViews:
        """Views already made (tests, benchmarks)."""
        return cls(0, config, {}, made=FeedViews.of(feeds))

    @property
    def made(self) -> FeedViews | None:
        """The views if some thread made them already, else None."""
        return self._made

    def get(self) -> FeedViews:
        """The views, made now if no thread made them yet (any thread)."""
        with self._lock:
            if self._made is None:
                previous = self.previous.made if self.previous is not None else None
                slugs = {url: view.slug for url, view in previous.feeds.items()} if previous else {}
                self._made = FeedViews.of(render.feed_views(self.config, self.states, slugs))
                # The chain ends here: older versions can go.
                self.previous = None
            return self._made


@frozen
class RiverJob:
    """A page of the river as HTML, or of one feed's river (``feed``)."""

    pager: RiverPager
    source: RiverSource
    page: int
    feed: FeedView | None
    feeds: LazyFeedViews
    updated: datetime | None
    now: datetime

    def render(self) -> bytes:
        items, has_next = self.pager.page(self.source, self.page)
        view = render.PageView(
            items=items,
            page=self.page,
            has_next=has_next,
            updated=self.updated,
            feed=self.feed,
        )
        return render.render_river(self.source.config, view, self.feeds.get().feeds, self.now)


@frozen
class FeedJob:
    """A page of the river as a feed document (Atom, JSON Feed, RSS)."""

    pager: RiverPager
    source: RiverSource
    document: FeedDocument
    page: int
    feeds: LazyFeedViews
    now: datetime

    def render(self) -> bytes:
        items, has_next = self.pager.page(self.source, self.page)
        entries = tuple(item.entry for item in items)
        feeds = self.feeds.get().feeds
        return self.document(self.source.config, entries, feeds, self.now, self.page, has_next)


def rss20(
    config: Config,
    entries: Sequence[Entry],
    feeds: Mapping[str, FeedView],
    now: datetime,
    page: int,
    has_next: bool,
) -> bytes:
    """RSS 2.0 as a :data:`FeedDocument`: it has one page, the river's first."""
    return formats.render_rss20(config, entries, feeds, now)


@frozen
class OpmlJob:
    """The subscriptions as OPML, in the order the pages show them (by name)."""

    config: Config
    feeds: LazyFeedViews
    now: datetime

    def render(self) -> bytes:
        feeds = sorted(self.feeds.get().feeds.values(), key=lambda f: f.name.casefold())
        return formats.render_opml(self.config, feeds, self.now)


@frozen
class StatusRows:
    """What the status rows are made of, taken on the reactor thread (a copy of the feed
    states, the entry counts, WebSub's columns); the rows are made in the render's thread:
    with 10,000 feeds that is ~0.2 s."""

    config: Config
    states: Mapping[str, FeedState]
    counts: Mapping[str, tuple[int, datetime | None]]
    #: Per feed URL: WebSub's columns (off for a feed without a subscription).
    websub: Mapping[str, Mapping[str, Any]]
    now: datetime

    def rows(self) -> list[dict[str, Any]]:
        rows = render.feed_status_rows(self.config, self.states, self.counts, self.now)
        for row in rows:
            row.update(self.websub.get(row["url"], _WEBSUB_OFF))
        return rows


_WEBSUB_OFF = {"websub": "off", "websub_hub": None, "websub_expires": None, "last_push": None}


@frozen
class StatusJob:
    """The ``/feeds`` page: every subscription's health."""

    config: Config
    rows: StatusRows
    now: datetime
    #: Only the feeds in this state (a key of :data:`planet.statuspage.FILTERS`), or all.
    state: str | None = None
    #: URL reading lists (their skipped entries are listed).
    lists: tuple[ListState, ...] = ()

    def render(self) -> bytes:
        rows = self.rows.rows()
        return statuspage.render_status(self.config, rows, self.now, self.state, self.lists)


@frozen
class StatusJsonJob:
    """``/feeds.json``: the rows of the ``/feeds`` page."""

    rows: StatusRows

    def render(self) -> bytes:
        return json_bytes(self.rows.rows())


def json_bytes(value: Any) -> bytes:
    """``value`` as indented UTF-8 JSON with a final newline."""
    return json.dumps(value, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"
