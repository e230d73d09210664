"""What the planet subscribes to: the config's feeds plus those of its reading lists.

The config file names feeds directly and through reading lists. A file list is read with the
config (:func:`planet.config.load_config`); a URL list is fetched every ``fetch_interval``
with a conditional GET, and what it named last is kept in the store (and so in the
snapshot). :class:`Subscriptions` holds the *effective* config, the base config with the
feeds of every list, and tells its listeners (the aggregator, the web view) each time it
changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from attrs import define, evolve, field
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from planet.config import Config, listed_feeds, with_listed_feeds
from planet.fetch import SHUTTING_DOWN
from planet.model import FetchResult, ListState
from planet.readinglist import ListedFeed, ReadingListError, read_opml, skipped_note
from planet.store import Store

__all__ = ["Subscriptions"]

#: Fetches a URL conditionally (``url, etag, last_modified``).
Fetch = Callable[[str, "str | None", "str | None"], "Deferred[FetchResult]"]


@define(slots=False, repr=False)
class Subscriptions:
    """The effective config: the base config plus the feeds of its URL reading lists."""

    base: Config
    store: Store
    fetch: Fetch
    #: Told of every change of the effective config, in order.
    listeners: Sequence[Callable[[Config], None]] = ()
    effective: Config = field(init=False)
    _log: Logger = field(factory=Logger)

    def __attrs_post_init__(self) -> None:
        self.effective = self._effective(self.base)

    def reconfigure(self, base: Config) -> None:
        """Use ``base`` (a reload), and drop the feeds (and entries) no longer subscribed."""
        self.base = base
        self._changed()

    def start(self) -> None:
        """At start: the snapshot (loaded by now) remembers what URL lists named last."""
        self._changed()

    def due_lists(self, now: datetime, every: bool = False) -> list[str]:
        """The URL reading lists to fetch again at ``now`` (``every``: all of them)."""
        due = []
        for url in self.effective.reading_lists:
            if not url.startswith(("http://", "https://")):
                continue
            if every:
                due.append(url)
                continue
            state = self.store.reading_lists().get(url)
            last = state.last_fetch if state is not None else None
            interval = self.effective.fetch_interval
            if last is None or (now - last).total_seconds() >= interval:
                due.append(url)
        return due

    async def update_list(self, url: str, now: Callable[[], datetime]) -> bool:
        """Re-read the list at ``url`` (conditional GET); True when its feeds changed."""
        try:
            old = self.store.reading_lists().get(url) or ListState(url=url)
            result = await self.fetch(url, old.etag, old.last_modified)
            if result.error == SHUTTING_DOWN:
                return False
            state = _read(old, result, now())
            self.store.record_list(state)
            if state.skipped and state.error is None and result.body is not None:
                # Once per load of the list (a 304 reads nothing).
                self._log.warn(
                    "reading list {url}: {note}", url=url, note=skipped_note(state.skipped)
                )
            if state.error is None and not state.feeds and (old.feeds or old.last_fetch is None):
                self._log.warn("reading list {url} names no feeds", url=url)
            if state.error:
                self._log.warn(
                    "reading list {url}: {err}; keeping the feeds it named before",
                    url=url,
                    err=state.error,
                )
            if state.feeds == old.feeds:
                return False
            self._changed()
            self._log.info("reading list {url} now names {n} feeds", url=url, n=len(state.feeds))
            return True
        except CancelledError:
            return False  # abandoned at shutdown
        except Exception:
            self._log.failure("unexpected error reading the list {url}", url=url)
            return False

    def _changed(self) -> None:
        self.effective = self._effective(self.base)
        # Removed feeds (and their entries) go; feeds of URL reading lists stay listed.
        self.store.retain(s.url for s in self.effective.subscriptions)
        for listener in self.listeners:
            listener(self.effective)

    def _effective(self, base: Config) -> Config:
        """``base`` plus the feeds of its reading lists.

        ``base`` already holds what its file lists name (read with the config); the URL
        lists' feeds are the ones the store remembers from their last fetch.
        """
        listed = listed_feeds(base)
        listed.update(
            (url, [ListedFeed(u, n) for u, n in state.feeds])
            for url, state in self.store.reading_lists().items()
            if url in base.reading_lists
        )
        return with_listed_feeds(base, listed)


def _read(old: ListState, result: FetchResult, now: datetime) -> ListState:
    """The list's state after one fetch: its feeds if it parsed, else the error."""
    state = evolve(old, last_fetch=now, error=result.error)
    if result.error is None and result.body is not None:
        try:
            found = read_opml(result.body, base_url=result.final_url)
        except ReadingListError as exc:
            return evolve(state, error=str(exc))
        return evolve(
            state,
            feeds=tuple((f.url, f.name) for f in found.feeds),
            skipped=found.skipped,
            etag=result.etag,
            last_modified=result.last_modified,
        )
    if result.not_modified:
        return evolve(
            state,
            etag=result.etag or old.etag,
            last_modified=result.last_modified or old.last_modified,
        )
    return state
