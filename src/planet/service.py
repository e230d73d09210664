"""Wiring: the fetch cycle service and the MultiService that holds every piece.

This is the one module that knows every other one; data still flows one way:
config -> schedule -> fetch -> parse -> store -> web / snapshot.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from attrs import define, evolve, field, frozen
from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import CancelledError, Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from planet import schedule
from planet.config import (
    Config,
    ConfigError,
    Subscription,
    listed_feeds,
    load_config,
    with_listed_feeds,
)
from planet.fetch import SHUTTING_DOWN, Fetcher, make_client
from planet.heap import HeapService, HeapTrimmer
from planet.logs import PlanetLogs
from planet.metrics import Metrics, count_feed_states, host_of
from planet.model import FeedState, FetchResult, ListState, ParsedFeed, utc_from_timestamp
from planet.netguard import non_public_kind
from planet.readinglist import ListedFeed, ReadingListError, parse_opml
from planet.snapshot import SnapshotService
from planet.store import ApplyStats, Store
from planet.systemd import SdNotifyService
from planet.web import PlanetWeb
from planet.workers import PARSE_TIMED_OUT, Parser, ParseTimeoutError, ProcessParser

#: Longest pause between checks for due feeds.
MAX_TICK = 60.0
#: Ticks per fetch interval at least, so due times spread over the interval are honoured.
TICKS_PER_INTERVAL = 20


@define(slots=False, repr=False)
class Aggregator(Service):
    """Every tick, fetch the due feeds, parse them off the reactor, apply them to the store.

    A cycle never overlaps the previous one (``LoopingCall`` waits for its Deferred), and
    nothing a feed does can stop the loop: every failure becomes feed state or a log line.
    """

    config: Config
    store: Store
    fetcher: Fetcher
    parser: Parser
    clock: IReactorTime
    rng: random.Random = field(factory=random.Random)
    #: Seconds running fetches may finish in at shutdown.
    grace: float = 5.0
    metrics: Metrics = field(factory=Metrics)
    cycles: int = 0
    #: Fetches whose body was byte-identical to the previous one, so not parsed again.
    skipped_parses: int = 0
    #: Bodies handed to the parser.
    parses: int = 0
    _loop: LoopingCall | None = None
    # A dict keeps insertion order: at stop, the newest (queued) fetches are cancelled before
    # the ones holding a slot, so no queued fetch starts a request during shutdown.
    _in_flight: dict[Deferred[Any], None] = field(factory=dict)
    _stopping: bool = False
    _cycle: Deferred[None] | None = None
    #: A reading list changed during the cycle: run another one for its new feeds.
    _again: bool = False
    #: Told of every change of the effective config (base config plus URL reading lists).
    on_config: Callable[[Config], None] = lambda config: None
    #: Called when a cycle is over (the heap is frozen then: see :mod:`planet.heap`).
    after_cycle: Callable[[], None] = lambda: None
    _base: Config | None = None
    _positions: tuple[Config, dict[str, int]] | None = None
    _log: Logger = field(factory=Logger)

    @property
    def tick_interval(self) -> float:
        return min(MAX_TICK, self.config.fetch_interval / TICKS_PER_INTERVAL)

    def startService(self) -> None:
        for warning in self.config.warnings:
            self._log.warn("{warning}", warning=warning)
        # The snapshot (loaded before us) remembers what URL reading lists named last.
        self._use(self.config)
        # Feeds removed from the config lose their entries, even those from a snapshot.
        self.store.retain(schedule.urls(self.config.subscriptions))
        super().startService()
        self._stopping = False
        self._loop = LoopingCall(self.run_cycle)
        self._loop.clock = self.clock
        self._loop.start(self.tick_interval, now=True).addErrback(
            lambda f: self._log.failure("fetch loop stopped", f)
        )

    def stopService(self) -> Deferred[None]:
        """Stop starting fetches; give running ones ``grace`` seconds, then abandon them.

        Feeds whose fetch is abandoned keep the state they had; the snapshot service,
        stopped after this one, then writes what the store holds.
        """
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.fetcher.close()
        cycle = self._cycle
        if cycle is None:
            self._stopping = True
            return succeed(None)
        done: Deferred[None] = Deferred()
        timer = self.clock.callLater(self.grace, self._abandon)

        def finished(_: object) -> None:
            if timer.active():
                timer.cancel()
            self._stopping = True
            done.callback(None)

        cycle.addBoth(finished)
        return done

    def _abandon(self) -> None:
        self._stopping = True
        if self._in_flight:
            self._log.warn(
                "{n} fetches still running after {grace:g} s; abandoned",
                n=len(self._in_flight),
                grace=self.grace,
            )
        # Newest first: a queued fetch must not take the slot of a cancelled running one.
        for d in reversed(list(self._in_flight)):
            d.cancel()

    def kick(self) -> None:
        """Run a cycle now (new feeds after a reload), unless one is running."""
        if self.running and self._cycle is None:
            self.run_cycle()

    def refresh_all(self) -> int:
        """Make every feed due now (the operator's "fetch everything"); returns how many.

        Gone feeds, duplicates and feeds whose server asked us to wait (Retry-After) or that
        are backing off after errors keep their time: asking again early would be impolite.
        """
        now = self._now()
        made_due = 0
        for url, state in self.store.feed_states().items():
            if state.gone_since is not None or state.duplicate_of is not None or state.failing:
                continue
            if state.waiting_until is not None and state.waiting_until > now:
                continue
            self.store.update_state(url, next_fetch=None)
            made_due += 1
        self.kick()
        return made_due

    def set_config(self, config: Config) -> None:
        """Use ``config`` from now on (a reload); the tick follows a new fetch_interval."""
        old_tick = self.tick_interval
        self._use(config)
        if self._loop is not None and self._loop.running and self.tick_interval != old_tick:
            self._loop.stop()
            self._loop = LoopingCall(self.run_cycle)
            self._loop.clock = self.clock
            self._loop.start(self.tick_interval, now=False).addErrback(
                lambda f: self._log.failure("fetch loop stopped", f)
            )

    def _use(self, base: Config) -> None:
        """Make ``base`` plus the feeds of its URL reading lists the effective config.

        ``base`` already holds what its file reading lists name (read with the config);
        the URL lists' feeds are the ones the store remembers from their last fetch.
        """
        self._base = base
        listed = listed_feeds(base)
        listed.update(
            (url, [ListedFeed(u, n) for u, n in state.feeds])
            for url, state in self.store.reading_lists().items()
            if url in base.reading_lists
        )
        self.config = with_listed_feeds(base, listed)
        self.on_config(self.config)

    def _due_lists(self, now: datetime) -> list[str]:
        due = []
        for url in self.config.reading_lists:
            if not url.startswith(("http://", "https://")):
                continue
            state = self.store.reading_lists().get(url)
            last = state.last_fetch if state is not None else None
            if last is None or (now - last).total_seconds() >= self.config.fetch_interval:
                due.append(url)
        return due

    async def _update_list(self, url: str) -> None:
        """Re-read a reading list at ``url`` (conditional GET); resubscribe if it changed."""
        try:
            old = self.store.reading_lists().get(url) or ListState(url=url)
            result = await self._fetch(url, old.etag, old.last_modified)
            if result.error == SHUTTING_DOWN or self._stopping:
                return
            now = self._now()
            state = evolve(old, last_fetch=now, error=result.error)
            if result.error is None and result.body is not None:
                try:
                    feeds = parse_opml(result.body, base_url=result.final_url)
                except ReadingListError as exc:
                    state = evolve(state, error=str(exc))
                else:
                    state = evolve(
                        state,
                        feeds=tuple((f.url, f.name) for f in feeds),
                        etag=result.etag,
                        last_modified=result.last_modified,
                    )
            elif result.not_modified:
                state = evolve(
                    state,
                    etag=result.etag or old.etag,
                    last_modified=result.last_modified or old.last_modified,
                )
            self.store.record_list(state)
            if state.error is None and not state.feeds and (old.feeds or old.last_fetch is None):
                self._log.warn("reading list {url} names no feeds", url=url)
            if state.error:
                self._log.warn(
                    "reading list {url}: {err}; keeping the feeds it named before",
                    url=url,
                    err=state.error,
                )
            if state.feeds != old.feeds and self._base is not None:
                self._use(self._base)
                self.store.retain(schedule.urls(self.config.subscriptions))
                self._log.info(
                    "reading list {url} now names {n} feeds", url=url, n=len(state.feeds)
                )
                # Its new feeds are due now, but this cycle has already picked what it fetches.
                self._again = True
        except Exception:
            self._log.failure("unexpected error reading the list {url}", url=url)

    def run_cycle(self) -> Deferred[None] | None:
        """Fetch every due feed once; fires when all of them are done. Never fails."""
        if self._cycle is not None:
            # A kick while a cycle runs: the loop's next tick picks up what is due.
            return None
        try:
            now = self._now()
            expired = self.store.expire(now)
            if expired:
                self._log.info("dropped {n} entries older than the retention", n=expired)
            lists = self._due_lists(now)
            due = schedule.due(self.config, self.store.feed_states(), now)
            if not due and not lists:
                return None
            self.cycles += 1
            number, started, parses_before = self.cycles, self.clock.seconds(), self.parses
            updates = [Deferred.fromCoroutine(self._update_list(url)) for url in lists]
            updates += [self._update(sub) for sub in due]

            def over(_: object) -> None:
                self._cycle = None
                states = self.store.feed_states()
                failing = sum(1 for s in due if s.url in states and states[s.url].failing)
                # One line per cycle: the operator's (and the benchmark's) view of its cost.
                self._log.info(
                    "cycle {number} done: {feeds} feeds in {seconds:.3f} s "
                    "({ok} ok, {failing} failing, {parsed} parsed)",
                    number=number,
                    feeds=len(due),
                    seconds=self.clock.seconds() - started,
                    ok=len(due) - failing,
                    failing=failing,
                    parsed=self.parses - parses_before,
                )
                try:
                    self.after_cycle()
                except Exception:
                    self._log.failure("after the fetch cycle")
                if self._again:
                    self._again = False
                    self.clock.callLater(0, self.kick)

            cycle = DeferredList(updates, consumeErrors=True).addCallback(over)
            # The cycle may be over already (every fetch answered synchronously).
            self._cycle = None if cycle.called else cycle
            return cycle
        except Exception:
            self._log.failure("fetch cycle failed to start")
            return None

    def _now(self) -> datetime:
        return utc_from_timestamp(self.clock.seconds())

    def _update(self, sub: Subscription) -> Deferred[None]:
        return Deferred.fromCoroutine(self._update_feed(sub))

    async def _update_feed(self, sub: Subscription) -> None:
        try:
            before = self.store.state(sub.url)

            def then(result: FetchResult) -> Deferred[tuple[FetchResult, ParsedFeed | None]]:
                return Deferred.fromCoroutine(self._parse_new(sub, before, result))

            # The parse runs in the fetcher's held slot: the body waits for it there.
            fetching = self.fetcher.fetch_then(
                before.fetch_url, before.etag, before.last_modified, then
            )
            self._in_flight[fetching] = None
            try:
                result, parsed = await fetching
            finally:
                self._in_flight.pop(fetching, None)
            if self._stopping or result.error == SHUTTING_DOWN:
                # Abandoned at shutdown: the feed keeps the state it had.
                return
            now = self._now()
            stats = self.store.record_fetch(sub.url, result, parsed, now)
            state = self.store.state(sub.url)
            first_success = before.last_success is None and not state.failing
            next_at, waiting = schedule.next_fetch(
                self.config, state, result, parsed, now, self.rng, first_success
            )
            self.store.update_state(sub.url, next_fetch=next_at, waiting_until=waiting)
            # Only a feed whose identity changed can have become a duplicate: checking every
            # fetch would cost O(feeds) each, O(feeds^2) a cycle.
            identity_changed = (state.final_url, state.feed_id) != (
                before.final_url,
                before.feed_id,
            ) or before.last_success is None
            if not state.failing and identity_changed:
                self._check_duplicate(sub)
            self._log_fetch(sub, result, parsed, stats)
        except CancelledError:
            if not self._stopping:
                self._unexpected(Failure(), sub)
        except Exception:
            self._unexpected(Failure(), sub)

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

    async def _fetch(self, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        fetching = self.fetcher.fetch(url, etag, last_modified)
        self._in_flight[fetching] = None
        try:
            return await fetching
        finally:
            self._in_flight.pop(fetching, None)

    async def _discover(
        self, sub: Subscription, page: FetchResult, parsed: ParsedFeed
    ) -> tuple[FetchResult, ParsedFeed | None]:
        """The subscription URL is an HTML page naming its feed: fetch that feed instead."""
        feed_url = parsed.alternates[0]
        result = await self._fetch(feed_url, None, None)
        if result.error is not None or result.body is None or self._stopping:
            return result, None
        found = await self._parse(result)
        if found.error is None:
            self.store.update_state(sub.url, discovered_url=feed_url)
            self._log.info(
                "{url} is an HTML page; using its feed {feed}", url=sub.url, feed=feed_url
            )
        return result, found

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
            # The feed's fault (or its size's), no traceback: the fetch line gives the reason.
            return ParsedFeed(title="", link=None, entries=(), error=str(exc))
        except Exception as exc:
            self._log.failure("parser failed on {url}", Failure(), url=result.url)
            reason = f"parse error: {exc.__class__.__name__}: {str(exc)[:200]}"
            return ParsedFeed(title="", link=None, entries=(), error=reason)
        finally:
            self.metrics.parse_done(self.clock.seconds() - started)

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
        line = _FetchLine(
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
        if self._stopping:
            return
        result = FetchResult(
            url=sub.url,
            final_url=sub.url,
            status=None,
            error=f"internal error: {failure.getErrorMessage()[:200]}",
        )
        self.store.record_fetch(sub.url, result, None, self._now())


@frozen
class _FetchLine:
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


@define(slots=False)
class _Closer(Service):
    """Releases shared resources (connection pool, worker processes) at shutdown."""

    closers: list[Any] = field(factory=list)

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        return DeferredList([maybeDeferred(close) for close in self.closers])


class _Listener(MultiService):
    """Holds the web listener; an endpoint that cannot listen stops start-up with one line.

    Besides CannotListenError (a port in use), the reactor raises what the socket calls
    raise: OverflowError for ``tcp:99999``, FileNotFoundError (from the lock file) for a
    unix socket in a missing directory, PermissionError, ...
    """

    def __init__(self, description: str) -> None:
        super().__init__()
        self.description = description

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except CannotListenError as exc:
            reason = exc.socketError.strerror if hasattr(exc.socketError, "strerror") else exc
            raise SystemExit(self._error(str(reason))) from None
        except OSError as exc:
            # A two-path call (the unix socket's lock file is a symlink) fails on the second.
            name = exc.filename2 if exc.filename2 is not None else exc.filename
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            where = f": {name}" if name is not None else ""
            raise SystemExit(self._error(f"{exc.strerror or exc}{where}")) from None
        except (OverflowError, ValueError) as exc:
            raise SystemExit(self._error(str(exc))) from None

    def _error(self, reason: str) -> str:
        return f"planet: error: --listen {self.description}: cannot listen: {reason}"


def _max_age(config: Config) -> timedelta | None:
    return timedelta(days=config.max_entry_age_days) if config.max_entry_age_days else None


# repr=False here and on everything holding the store: signal.signal() puts its old handler,
# a bound method of this service, into a ValueError message, and an attrs repr printed
# every entry (98 s and 6.9 GB to stop with 20k entries).
@define(slots=False, eq=False, repr=False)
class PlanetService(MultiService):
    """The whole daemon: snapshot, fetching, web listener; SIGHUP reloads the config."""

    config: Config
    store: Store
    aggregator: Aggregator
    fetcher: Fetcher
    web: PlanetWeb
    logs: PlanetLogs
    clock: IReactorTime
    #: Reads the config file (tap wraps it to place the snapshot in --state-dir).
    load: Callable[[str], Config] = load_config
    notify: SdNotifyService | None = None
    _previous_hup: Any = None
    _previous_usr1: Any = None
    _log: Logger = field(factory=Logger)

    def __attrs_post_init__(self) -> None:
        MultiService.__init__(self)

    def startService(self) -> None:
        super().startService()
        # SIGHUP arrives on the main thread between reactor iterations; defer the work to
        # the reactor so it never runs in the middle of another callback.
        self._previous_hup = signal.signal(signal.SIGHUP, self._on_hup)
        self._previous_usr1 = signal.signal(signal.SIGUSR1, self._on_usr1)

    def stopService(self) -> Deferred[None]:
        if self._previous_hup is not None:
            signal.signal(signal.SIGHUP, self._previous_hup)
            self._previous_hup = None
        if self._previous_usr1 is not None:
            signal.signal(signal.SIGUSR1, self._previous_usr1)
            self._previous_usr1 = None
        Service.stopService(self)
        # One child after another, last first: MultiService would stop them all at once, and
        # the snapshot must be written after the fetches' grace period, not during it.
        return Deferred.fromCoroutine(self._stop_children())

    async def _stop_children(self) -> None:
        for child in reversed(list(self)):
            try:
                await maybeDeferred(child.stopService)
            except Exception:
                self._log.failure("stopping {child!r} failed", child=child)

    def _on_hup(self, signum: int, frame: Any) -> None:
        reactor = self.clock
        reactor.callFromThread(self.reload)  # type: ignore[attr-defined]

    def _on_usr1(self, signum: int, frame: Any) -> None:
        reactor = self.clock
        reactor.callFromThread(self.refresh)  # type: ignore[attr-defined]

    def refresh(self) -> None:
        """SIGUSR1: fetch every feed now, politely (see :meth:`Aggregator.refresh_all`)."""
        n = self.aggregator.refresh_all()
        self._log.info("refresh requested: {n} feeds due now", n=n)

    def reload(self) -> bool:
        """Re-read the config file; on any error keep running with the current one."""
        if self.notify is not None:
            self.notify.reloading()
        try:
            new = self.load(self.config.path)
        except ConfigError as exc:
            self._log.error(
                "config reload failed, still running the previous config: {err}", err=exc
            )
            return False
        else:
            self.apply(new)
            return True
        finally:
            if self.notify is not None:
                self.notify.ready()

    def apply(self, new: Config) -> None:
        """Switch to ``new``: added feeds are fetched at once, removed ones dropped."""
        old, self.config = self.config, new
        before = set(schedule.urls(old.subscriptions))
        after = set(schedule.urls(new.subscriptions))
        for warning in new.warnings:
            self._log.warn("{warning}", warning=warning)
        for key in (
            "snapshot_file",
            "per_host_concurrency",
            "max_concurrency",
            # The connection pool is built with the guard, and may hold connections to
            # private hosts that it allowed: only a fresh pool applies a change safely.
            "allow_private_networks",
        ):
            if getattr(old, key) != getattr(new, key):
                self._log.warn("config reload: {key} changes take effect at restart", key=key)
        self.logs.set_level(new.log_level)
        self.store.max_entries_per_feed = new.max_entries_per_feed
        self.store.max_bytes_per_feed = new.max_bytes_per_feed
        self.store.max_entry_age = _max_age(new)
        self.store.invalidate()
        self.fetcher.user_agent = new.user_agent
        self.fetcher.timeout = new.feed_timeout
        self.fetcher.max_bytes = new.max_feed_bytes
        self.aggregator.set_config(new)
        self.web.use_config(self.aggregator.config)
        # Removed feeds (and their entries) go; feeds of URL reading lists stay listed.
        self.store.retain(schedule.urls(self.aggregator.config.subscriptions))
        self.web.config_loaded = utc_from_timestamp(self.clock.seconds())
        self._log.info(
            "config reloaded from {path}: {added} feeds added, {removed} removed, {n} in all",
            path=new.path,
            added=len(after - before),
            removed=len(before - after),
            n=len(after),
        )
        self.aggregator.kick()


def build_service(
    config: Config,
    listen: str,
    reactor: Any,
    parser: Parser | None = None,
    load: Callable[[str], Config] = load_config,
) -> PlanetService:
    """The whole daemon as one service: snapshot, aggregator, web listener."""
    logs = PlanetLogs(config.log_level)
    metrics = Metrics()
    store = Store(
        max_entries_per_feed=config.max_entries_per_feed,
        max_bytes_per_feed=config.max_bytes_per_feed,
        max_entry_age=_max_age(config),
    )
    # Children start in order and stop in reverse: the snapshot loads before anything
    # else starts and is written after the fetcher and the listener have stopped.
    snapshot = SnapshotService(
        store=store,
        path=config.snapshot_file,
        interval=config.snapshot_interval,
        clock=reactor,
        run_in_thread=deferToThread,
        metrics=metrics,
        log=logs.logger("planet.snapshot"),
    )
    client, pool = make_client(
        reactor, guard=None if config.allow_private_networks else non_public_kind
    )
    process_parser = None
    if parser is None:
        parser = process_parser = ProcessParser(reactor, log=logs.logger("planet.workers"))
    closer = _Closer()
    closer.closers.append(pool.closeCachedConnections)
    if process_parser is not None:
        closer.closers.append(process_parser.close)
    fetcher = Fetcher(
        client,
        reactor,
        user_agent=config.user_agent,
        timeout=config.feed_timeout,
        max_bytes=config.max_feed_bytes,
        per_host=config.per_host_concurrency,
        max_concurrency=config.max_concurrency,
    )
    aggregator = Aggregator(
        config, store, fetcher, parser, reactor, metrics=metrics, log=logs.logger("planet.fetch")
    )
    metrics.watch_store(
        store.entry_count,
        lambda: count_feed_states(
            store.feed_states().values(), utc_from_timestamp(reactor.seconds())
        ),
    )
    web = PlanetWeb(
        config=config,
        store=store,
        clock=reactor,
        run_in_thread=deferToThread,
        snapshot_written=lambda: snapshot.written_at,
        config_loaded=utc_from_timestamp(reactor.seconds()),
        metrics=metrics,
        # During a fetch cycle the store changes many times a second: readers get a page at
        # most 1 s behind it rather than queueing for a render after every change.
        min_render_interval=1.0,
        stale_wait=0.025,
    )
    # The web view shows what the aggregator fetches: the config plus URL reading lists.
    aggregator.on_config = web.use_config
    top = PlanetService(
        config=config,
        store=store,
        aggregator=aggregator,
        fetcher=fetcher,
        web=web,
        logs=logs,
        clock=reactor,
        load=load,
        log=logs.logger("planet"),
    )
    snapshot.setServiceParent(top)
    # After the snapshot is loaded: what start-up made is frozen before the first cycle.
    heap = HeapService(clock=reactor, log=logs.logger("planet.heap"))
    heap.setServiceParent(top)
    aggregator.after_cycle = heap.settle
    HeapTrimmer(clock=reactor).setServiceParent(top)
    closer.setServiceParent(top)
    aggregator.setServiceParent(top)
    listener = _Listener(listen)
    site = web.site(log=logs.logger("planet.web"))
    strports.service(listen, site, reactor=reactor).setServiceParent(listener)
    listener.setServiceParent(top)
    # Last: READY=1 goes out once the snapshot is loaded and the port listens.
    top.notify = SdNotifyService(
        clock=reactor, status=lambda: f"serving {store.entry_count()} entries"
    )
    top.notify.setServiceParent(top)
    return top
