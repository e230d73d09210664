"""The fetch cycle: every tick, bring the due feeds and reading lists up to date.

One :class:`~twisted.application.internet.TimerService` ticks; a tick that finds due feeds
starts a cycle, and a cycle never overlaps the previous one (the timer waits for its
Deferred). What is due is :func:`planet.schedule.due`'s answer; each feed then goes
through :class:`planet.ingest.Ingester`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from itertools import islice
from typing import Any

from attrs import define, field
from twisted.application.internet import TimerService
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from planet import schedule
from planet.config import Config, Subscription
from planet.ingest import Ingester
from planet.model import FeedState, utc_from_timestamp
from planet.store import Store
from planet.subscriptions import Subscriptions
from planet.urls import host_of

__all__ = ["Aggregator"]

#: Longest pause between checks for due feeds.
MAX_TICK = 60.0
#: Ticks per fetch interval at least, so due times spread over the interval are honoured.
TICKS_PER_INTERVAL = 20


def _fetch_url(states: Mapping[str, FeedState], sub: Subscription) -> str:
    state = states.get(sub.url)
    return sub.url if state is None else state.fetch_url


def tick_interval(config: Config) -> float:
    """Seconds between two checks for due feeds under ``config``."""
    return min(MAX_TICK, config.fetch_interval / TICKS_PER_INTERVAL)


@define
class Launch:
    """A cycle's updates, started a few at a time as earlier ones finish.

    Started all at once, 10,000 updates would each park a coroutine and its Deferreds on
    the fetcher's limits: ~0.6 s of one reactor turn, and every collection during the
    cycle examining them all. So at most ``per_host`` run per host (the fetcher's own limit:
    more would only wait there) and ``window`` in all, taking hosts in turn.

    Given a ``clock``, the pairs are taken ``per_turn`` at a time and at most ``burst``
    updates start in one turn of the reactor: grouping 10,000 feeds by host and starting
    the first 64 fetches held the reactor ~35 ms at a cycle's start.
    """

    start: Callable[[Subscription], Deferred[None]]
    per_host: int
    window: int
    clock: IReactorTime | None = None
    per_turn: int = 500
    burst: int = 16
    #: Fires once every update started has finished (and none is left to start).
    done: Deferred[None] = field(factory=Deferred)
    _queues: dict[str, deque[Subscription]] = field(factory=dict)
    _ready: deque[str] = field(factory=deque)
    _running: dict[str, int] = field(factory=dict)
    _total: int = 0
    _left: int = 0
    _filling: bool = False
    #: The pairs not taken yet (None: all taken).
    _source: Iterator[tuple[str, Subscription]] | None = None
    #: The next turn's taking and starting, when one is due.
    _call: IDelayedCall | None = None

    def run(self, subs: Iterable[tuple[str, Subscription]]) -> Deferred[None]:
        """Start updating ``(host, subscription)`` pairs; returns :attr:`done`."""
        self._source = iter(subs)
        self._turn()
        return self.done

    def _turn(self) -> None:
        self._call = None
        self._take()
        self._fill()

    def _take(self) -> None:
        source = self._source
        if source is None:
            return
        limit = self.per_turn if self.clock is not None else None
        taken = 0
        for host, sub in islice(source, limit):
            queue = self._queues.get(host)
            if queue is None:
                queue = self._queues[host] = deque()
                self._ready.append(host)
            queue.append(sub)
            self._left += 1
            taken += 1
        if limit is None or taken < limit:
            self._source = None

    def stop(self) -> int:
        """Start nothing more (shutdown); :attr:`done` fires when the running ones end.
        Returns how many were never started."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        queued = sum(len(q) for q in self._queues.values())
        untaken = sum(1 for _ in self._source) if self._source is not None else 0
        self._source = None
        self._queues.clear()
        self._ready.clear()
        self._left -= queued
        self._fill()
        return queued + untaken

    def _fill(self) -> None:
        # An update may finish inside start() (an answer already there): its _finished
        # comes back here, and the loop below goes on rather than recursing.
        if self._filling:
            return
        self._filling = True
        started = 0
        more = self._source is not None
        try:
            while self._ready and self._total < self.window:
                if self.clock is not None and started == self.burst:
                    more = True
                    break
                host = self._ready.popleft()
                queue = self._queues[host]
                sub = queue.popleft()
                running = self._running[host] = self._running.get(host, 0) + 1
                self._total += 1
                started += 1
                if not queue:
                    del self._queues[host]
                elif running < self.per_host:
                    self._ready.append(host)
                self.start(sub).addBoth(self._finished, host)
        finally:
            self._filling = False
        if more and self.clock is not None and self._call is None:
            self._call = self.clock.callLater(0, self._turn)
        if self._left == 0 and self._source is None and not self.done.called:
            self.done.callback(None)

    def _finished(self, _: object, host: str) -> None:
        running = self._running[host] = self._running[host] - 1
        if not running:
            del self._running[host]
        self._total -= 1
        self._left -= 1
        if host in self._queues and running == self.per_host - 1:
            # It was at its limit, so it left the turn: back in it.
            self._ready.append(host)
        self._fill()


@define(slots=False, repr=False)
class Aggregator(Service):
    """Runs fetch cycles; nothing a feed does can stop the loop.

    At stop it starts no new fetch and gives the running ones ``grace`` seconds, then
    abandons them (those feeds keep the state they had).
    """

    subscriptions: Subscriptions
    ingester: Ingester
    store: Store
    clock: IReactorTime
    #: Seconds running fetches may finish in at shutdown.
    grace: float = 5.0
    #: False for ``planet run-once``: no timer, cycles run only through :meth:`run_once`.
    loop: bool = True
    #: Called when a cycle is over (the heap is frozen then: see :mod:`planet.heap`).
    after_cycle: Callable[[], None] = lambda: None
    #: Fires when the store holds what the daemon had (the snapshot's older entries are
    #: read after start): no cycle starts before, so no fetch takes a known entry for new.
    ready: Callable[[], Deferred[None]] = lambda: succeed(None)
    cycles: int = 0
    #: Why fetch cycles fail to start (a bug, or damaged state), while they do; else None.
    problem: str | None = None
    _timer: TimerService | None = None
    _cycle: Deferred[None] | None = None
    _launch: Launch | None = None
    #: A reading list changed, or a kick came, during the cycle: another one runs after it.
    _again: bool = False
    #: The next cycle fetches every URL reading list, due or not (``run_once``).
    _every_list: bool = False
    #: The next cycle fetches every feed :func:`schedule.refreshable` (a refresh).
    _refresh: bool = False
    #: Until ``ready`` fires.
    _waiting: bool = False
    _log: Logger = field(factory=Logger)

    @property
    def config(self) -> Config:
        """The effective config: subscriptions from the file and its reading lists."""
        return self.subscriptions.effective

    @property
    def tick_interval(self) -> float:
        return tick_interval(self.config)

    def startService(self) -> None:
        for warning in self.subscriptions.base.warnings:
            self._log.warn("{warning}", warning=warning)
        # The snapshot (loaded before us) remembers what URL reading lists named last.
        self.subscriptions.start()
        super().startService()
        self.ingester.reopen()
        self._waiting = True
        self.ready().addCallback(self._ready)

    def _ready(self, _: object) -> None:
        self._waiting = False
        if self.loop and self.running and self._timer is None:
            self._start_timer()

    def stopService(self) -> Deferred[None]:
        """Stop starting fetches; give running ones ``grace`` seconds, then abandon them."""
        super().stopService()
        if self._timer is not None:
            self._timer.stopService()  # the cycle it waits for is ours to time
            self._timer = None
        self.ingester.fetcher.close()
        if self._launch is not None:
            self._launch.stop()
        cycle = self._cycle
        if cycle is None:
            self.ingester.abandon()
            return succeed(None)
        done: Deferred[None] = Deferred()
        timer = self.clock.callLater(self.grace, self._abandon)

        def finished(_: object) -> None:
            if timer.active():
                timer.cancel()
            self.ingester.abandon()
            done.callback(None)

        cycle.addBoth(finished)
        return done

    def _abandon(self) -> None:
        n = self.ingester.abandon()
        if n:
            self._log.warn(
                "{n} fetches still running after {grace:g} s; abandoned", n=n, grace=self.grace
            )

    def reconfigure(self, config: Config) -> None:
        """The effective config changed: the tick follows a new ``fetch_interval``."""
        timer = self._timer
        if timer is not None and timer.step != tick_interval(config):
            timer.stopService()
            self._start_timer()

    def kick(self) -> None:
        """Run a cycle now (new feeds after a reload, a refresh); when one is running, right
        after it: it has already picked what it fetches."""
        if not self.running:
            return
        if self._cycle is None:
            self.run_cycle()
        else:
            self._again = True

    def refresh_all(self) -> int:
        """Make every feed due now (the operator's "fetch everything"); returns how many.

        Gone feeds, duplicates and feeds whose server asked us to wait (Retry-After) or that
        are backing off after errors keep their time (:func:`schedule.refreshable`).
        """
        made_due = self._make_due()
        self.kick()
        return made_due

    def _make_due(self) -> int:
        # The next cycle to start takes them: no state is changed (10,000 of them took
        # ~100 ms of the reactor).
        self._refresh = True
        now = self._now()
        return sum(1 for s in self.store.feed_states().values() if schedule.refreshable(s, now))

    def run_cycle(self) -> Deferred[None] | None:
        """Fetch every due feed once; fires when all of them are done. Never fails."""
        if self._waiting:
            # A kick (a refresh, a reload) before the store is ready: the first cycle runs
            # when it is, and picks up what is due then.
            return None
        if self._cycle is not None:
            # A tick while a cycle runs: the next tick picks up what is due.
            return None
        try:
            now = self._now()
            self._expire(now)
            lists = self.subscriptions.due_lists(now, every=self._every_list)
            self._every_list = False
            due = schedule.due(self.config, self.store.feed_states(), now, self._refresh)
            self._refresh = False
            self.problem = None
        except Exception as exc:
            # Every tick would fail the same way: say so once a tick in the log and keep
            # saying it on /health until a cycle starts again.
            self.problem = f"fetch cycles fail to start: {exc.__class__.__name__}: {exc}"
            self._log.failure("fetch cycle failed to start")
            return None
        try:
            if not due and not lists:
                return None
            self.cycles += 1
            started, parses = self.clock.seconds(), self.ingester.parses
            updates = [Deferred.fromCoroutine(self._update_list(url)) for url in lists]
            states = self.store.feed_states()
            launch = self._launch = Launch(
                self.ingester.update,
                per_host=self.config.per_host_concurrency,
                window=4 * self.config.max_concurrency,
                clock=self.clock,
            )
            updates.append(launch.run((host_of(_fetch_url(states, s)), s) for s in due))
            cycle = DeferredList(updates, consumeErrors=True).addCallback(
                self._over, self.cycles, due, started, parses
            )
            # The cycle may be over already (every fetch answered synchronously).
            self._cycle = None if cycle.called else cycle
            return cycle
        except Exception as exc:
            self.problem = f"fetch cycles fail to start: {exc.__class__.__name__}: {exc}"
            self._log.failure("fetch cycle failed to start")
            return None

    def run_once(self, every_feed: bool = True, follow_ups: int = 2) -> Deferred[int]:
        """One cycle, and another (at most ``follow_ups``) while a URL reading list changed
        the subscriptions (its new feeds are due then); fires with the cycles run.

        With ``every_feed``, every feed :meth:`refresh_all` would fetch is due (cron runs
        every ``fetch_interval``, and the schedule's spread would skip a feed every other
        run), and so is every URL reading list; feeds backing off or asked to wait keep
        their time.
        """
        if every_feed:
            self._make_due()
            self._every_list = True
        return Deferred.fromCoroutine(self._run_once(follow_ups))

    async def _run_once(self, follow_ups: int) -> int:
        ran = 0
        self._again = True
        while self._again and ran <= follow_ups:
            self._again = False
            cycle = self._cycle or self.run_cycle()
            if cycle is None:
                break
            await cycle
            ran += 1
        return ran

    async def _update_list(self, url: str) -> None:
        changed = await self.subscriptions.update_list(url, self._now)
        # Its new feeds are due now, but this cycle has already picked what it fetches.
        self._again = self._again or changed

    def _over(
        self, _: object, number: int, due: list[Any], started: float, parses_before: int
    ) -> None:
        self._cycle = self._launch = None
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
            parsed=self.ingester.parses - parses_before,
        )
        try:
            self.after_cycle()
        except Exception:
            self._log.failure("after the fetch cycle")
        if self._again and self.running and self.loop:
            self._again = False
            self.clock.callLater(0, self.kick)

    def _expire(self, now: datetime) -> None:
        expired = self.store.expire(now)
        if expired:
            self._log.info("dropped {n} entries older than the retention", n=expired)

    def _start_timer(self) -> None:
        timer = TimerService(self.tick_interval, self.run_cycle)
        timer.clock = self.clock
        timer.startService()
        self._timer = timer

    def _now(self) -> datetime:
        return utc_from_timestamp(self.clock.seconds())
