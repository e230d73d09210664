"""One feed's way into the store: fetch, parse off the reactor, decide, apply.

A fetched body passes each step once: :class:`planet.fetch.Fetcher` (holding a parse slot),
the parser (a worker process), :func:`planet.update.update_feed` (the feed's next state),
:meth:`planet.store.Store.apply`. A body that arrives another way (pushed) enters at
:meth:`Ingester.take` and goes the same way from the parser on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from attrs import define, evolve, field, frozen
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from planet.config import Config, Subscription
from planet.fetch import SHUTTING_DOWN, Fetcher
from planet.interfaces import Parser
from planet.metrics import Metrics
from planet.model import FeedState, FetchResult, ParsedFeed, utc_from_timestamp
from planet.store import ApplyStats, Store
from planet.update import update_feed
from planet.urls import host_of
from planet.workers import PARSE_TIMED_OUT, ParseTimeoutError

__all__ = ["Ingester"]


@define(slots=False, repr=False)
class Ingester:
    """Brings subscriptions up to date, one fetch at a time; never raises for a feed's fault.

    Every update runs until it is done or :meth:`abandon` cancels it (at shutdown): an
    abandoned feed keeps the state it had.
    """

    config: Config
    store: Store
    fetcher: Fetcher
    parser: Parser
    clock: IReactorTime
    metrics: Metrics = field(factory=Metrics)
    rng: random.Random = field(factory=random.Random)
    #: Fetches whose body was byte-identical to the previous one, so not parsed again.
    skipped_parses: int = 0
    #: Bodies handed to the parser.
    parses: int = 0
    # Insertion order: at stop, the newest (queued) updates are cancelled before the ones
    # holding a slot, so no queued fetch starts a request during shutdown.
    _in_flight: dict[Deferred[Any], None] = field(factory=dict)
    _abandoned: bool = False
    _positions: tuple[Config, dict[str, int]] | None = None
    _log: Logger = field(factory=Logger)
    #: A feed's poll interval when not ``fetch_interval`` (WebSub: a subscribed feed).
    interval_of: Callable[[str], float | None] = lambda url: None
    #: Told of every fetch applied (WebSub discovery reads its Link headers and body).
    fetched: Callable[[Subscription, FetchResult], None] = lambda sub, result: None

    def reconfigure(self, config: Config) -> None:
        """Update feeds with ``config`` (the effective one, reading lists included)."""
        self.config = config

    def update(self, sub: Subscription) -> Deferred[None]:
        """Fetch ``sub`` conditionally and apply what came; fires when done, never fails."""
        return self._track(Deferred.fromCoroutine(self._update(sub)))

    def take(self, sub: Subscription, result: FetchResult) -> Deferred[ApplyStats | None]:
        """A body that arrived without a fetch (a WebSub push), as ``result``: parsed and
        applied the way a fetched one is. Fires with what changed (None: abandoned)."""
        return self._track(Deferred.fromCoroutine(self._take(sub, result)))

    async def _take(self, sub: Subscription, result: FetchResult) -> ApplyStats | None:
        result, parsed = await self._parse_new(sub, self.store.state(sub.url), result)
        if self._abandoned:
            return None
        return self._apply(sub, result, parsed, pushed=True)

    def fetch(
        self, url: str, etag: str | None = None, last_modified: str | None = None
    ) -> Deferred[FetchResult]:
        """A plain fetch (a reading list, a discovered feed), abandoned like updates are."""
        return self._track(self.fetcher.fetch(url, etag, last_modified))

    def reopen(self) -> None:
        """Take updates again (a service started again after a stop)."""
        self._abandoned = False

    def abandon(self) -> int:
        """Cancel every running update (shutdown's grace is over); returns how many."""
        self._abandoned = True
        running = list(self._in_flight)
        # Newest first: a queued fetch must not take the slot of a cancelled running one.
        for d in reversed(running):
            d.cancel()
        return len(running)

    @property
    def running(self) -> int:
        return len(self._in_flight)

    def _track(self, d: Deferred[Any]) -> Deferred[Any]:
        self._in_flight[d] = None
        d.addBoth(self._untrack, d)
        return d

    def _untrack(self, result: Any, d: Deferred[Any]) -> Any:
        self._in_flight.pop(d, None)
        return result

    async def _update(self, sub: Subscription) -> None:
        try:
            before = self.store.state(sub.url)
            result, release = await self.fetcher.fetch_held(
                before.fetch_url, before.etag, before.last_modified
            )
            try:
                # The parse runs in the fetcher's held slot: the body waits for it there.
                result, parsed = await self._parse_new(sub, before, result)
            finally:
                release()
            if self._abandoned or result.error == SHUTTING_DOWN:
                return  # abandoned at shutdown: the feed keeps the state it had
            self._apply(sub, result, parsed)
            self.fetched(sub, result)
        except CancelledError:
            if not self._abandoned:
                self._unexpected(Failure(), sub)
        except Exception:
            self._unexpected(Failure(), sub)

    def _apply(
        self,
        sub: Subscription,
        result: FetchResult,
        parsed: ParsedFeed | None,
        pushed: bool = False,
    ) -> ApplyStats:
        # The state as it is now: discovery may have changed it since the fetch began.
        before = self.store.state(sub.url)
        config, interval = self.config, self.interval_of(sub.url)
        if interval is not None:
            config = evolve(config, fetch_interval=interval)
        update = update_feed(config, before, result, parsed, self._now(), self.rng)
        stats = self.store.apply(sub.url, update)
        # Only a feed whose identity changed can have become a duplicate: checking every
        # fetch would cost O(feeds) each, O(feeds^2) a cycle.
        if update.identity_changed:
            self._check_duplicate(sub)
        if pushed:
            # Not a fetch: neither a fetch line nor a fetch in the metrics.
            error = parsed.error if parsed is not None else None
            self._log.info(
                "push {url}: {new} new, {updated} updated{reason}",
                url=sub.url,
                new=stats.new,
                updated=stats.updated,
                reason=f" ({error})" if error else "",
            )
        else:
            self._log_fetch(sub, result, parsed, stats)
        return stats

    async def _parse_new(
        self, sub: Subscription, before: FeedState, result: FetchResult
    ) -> tuple[FetchResult, ParsedFeed | None]:
        """The fetched body parsed, unless it is the one parsed last time."""
        if result.error is not None or result.body is None:
            return result, None
        if result.body_hash is not None and result.body_hash == before.body_hash:
            if not before.failing:
                # Byte-identical to the last body: nothing to parse (validators still kept).
                self.skipped_parses += 1
                return result, None
            if (before.error or "").startswith(PARSE_TIMED_OUT):
                # The body whose parse ran out of time: it would again. Still failing.
                self.skipped_parses += 1
                return result, ParsedFeed(title="", link=None, entries=(), error=before.error)
        parsed = await self._parse(result)
        if parsed.alternates and before.discovered_url is None:
            return await self._discover(sub, result, parsed)
        return result, parsed

    async def _discover(
        self, sub: Subscription, page: FetchResult, parsed: ParsedFeed
    ) -> tuple[FetchResult, ParsedFeed | None]:
        """The subscription URL is an HTML page naming its feed: fetch that feed instead."""
        feed_url = parsed.alternates[0]
        result = await self.fetcher.fetch(feed_url, None, None)
        if result.error is not None or result.body is None or self._abandoned:
            return result, None
        found = await self._parse(result)
        if found.error is None:
            self.store.update_state(sub.url, discovered_url=feed_url)
            self._log.info(
                "{url} is an HTML page; using its feed {feed}", url=sub.url, feed=feed_url
            )
        return result, found

    async def _parse(self, result: FetchResult) -> ParsedFeed:
        assert result.body is not None
        started = self.clock.seconds()
        self.parses += 1
        try:
            return await self.parser(
                result.body,
                result.url,
                self._now(),
                result.content_type,
                self.config.max_entries_per_feed,
                self.config.max_entry_bytes,
                self.config.parse_timeout,
            )
        except CancelledError:
            raise  # abandoned at shutdown: not the feed's fault
        except ParseTimeoutError as exc:
            # The feed's fault (or its size's): one line, no traceback. The worker is gone.
            self._log.warn("{url}: {reason}", url=result.url, reason=str(exc))
            return ParsedFeed(title="", link=None, entries=(), error=str(exc))
        except Exception as exc:
            self._log.failure("parser failed on {url}", Failure(), url=result.url)
            reason = f"parse error: {exc.__class__.__name__}: {str(exc)[:200]}"
            return ParsedFeed(title="", link=None, entries=(), error=reason)
        finally:
            self.metrics.parse_done(self.clock.seconds() - started)

    def _check_duplicate(self, sub: Subscription) -> None:
        """Two subscriptions ending at the same URL or feed id: keep the first in the config."""
        states = self.store.feed_states()
        order = self._order()
        for other in sorted(self.store.same_feed(sub.url), key=lambda u: order.get(u, len(order))):
            theirs = states[other]
            if other not in order or theirs.duplicate_of is not None or theirs.last_success is None:
                continue
            first, later = sorted((sub.url, other), key=order.__getitem__)
            self.store.mark_duplicate(later, first)
            self._log.warn(
                "{later} is the same feed as {first}; fetching it once",
                later=later,
                first=first,
            )
            return

    def _order(self) -> dict[str, int]:
        """Each subscription's place in the config (the first of two duplicates is kept)."""
        if self._positions is None or self._positions[0] is not self.config:
            positions = {s.url: i for i, s in enumerate(self.config.subscriptions)}
            self._positions = (self.config, positions)
        return self._positions[1]

    def _log_fetch(
        self,
        sub: Subscription,
        result: FetchResult,
        parsed: ParsedFeed | None,
        stats: ApplyStats,
    ) -> None:
        error = result.error or (parsed.error if parsed is not None else None)
        outcome = "failing" if error else ("not-modified" if result.not_modified else "ok")
        size = len(result.body) if result.body is not None else 0
        # The configured URL's host: redirect targets must not grow the label set.
        self.metrics.fetch_done(host_of(sub.url), outcome, result.elapsed, size)
        line = FetchLine(
            sub.url,
            outcome,
            result.status,
            size,
            result.elapsed * 1000,
            stats.new,
            stats.updated,
            error,
        )
        self._log.info("{fetch}", fetch=line)

    def _unexpected(self, failure: Failure, sub: Subscription) -> None:
        # A bug, not a feed's fault: record it on the feed so it shows, keep the loop alive.
        self._log.failure("unexpected error updating {url}", failure, url=sub.url)
        if self._abandoned:
            return
        result = FetchResult(
            url=sub.url,
            final_url=sub.url,
            status=None,
            error=f"internal error: {failure.getErrorMessage()[:200]}",
        )
        try:
            before = self.store.state(sub.url)
            update = update_feed(self.config, before, result, None, self._now(), self.rng)
            self.store.apply(sub.url, update)
        except Exception:
            self._log.failure("recording the error of {url} failed", url=sub.url)

    def _now(self) -> datetime:
        return utc_from_timestamp(self.clock.seconds())


@frozen
class FetchLine:
    """One fetch's log line; its text is made only when an observer formats the event.

    One f-string here costs less than half of twisted.logger's own handling of a format
    string with eight fields, and a cycle of 1000 304s logs 1000 of these lines.
    """

    url: str
    outcome: str
    status: int | None
    size: int
    ms: float
    new: int
    updated: int
    error: str | None

    def __format__(self, spec: str) -> str:
        status = self.status if self.status is not None else "-"
        reason = f" ({self.error})" if self.error else ""
        return (
            f"fetch {self.url}: {self.outcome} {status} {self.size} bytes {self.ms:.0f} ms, "
            f"{self.new} new, {self.updated} updated{reason}"
        )

    def __str__(self) -> str:
        return self.__format__("")
