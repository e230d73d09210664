"""The daemon's wiring: every piece built from one config, and the service holding them.

This is the one module that knows every other one; data still flows one way:
config -> subscriptions -> schedule -> fetch -> parse -> store -> web / snapshot.
"""

from __future__ import annotations

import functools
import random
import signal
from collections.abc import Callable
from typing import Any

from attrs import define, field
from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from planet.aggregator import Aggregator
from planet.config import Config, ConfigError, load_config
from planet.configkeys import RESTART_KEYS
from planet.fetch import Fetcher
from planet.heap import HeapService, HeapTrimmer
from planet.httpclient import make_client
from planet.ingest import Ingester
from planet.interfaces import Parser, RunInThread
from planet.logs import PlanetLogs
from planet.metrics import Metrics, count_feed_states
from planet.model import utc_from_timestamp
from planet.netguard import non_public_kind
from planet.output import OutputWriter
from planet.snapshot import SnapshotService
from planet.store import Store
from planet.subscriptions import Subscriptions
from planet.systemd import SdNotifyService
from planet.web import PlanetWeb
from planet.websubservice import WebSubService
from planet.workers import ProcessParser


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


# repr=False here and on everything holding the store: signal.signal() puts its old handler,
# a bound method of this service, into a ValueError message, and an attrs repr printed
# every entry (98 s and 6.9 GB to stop with 20k entries).
@define(slots=False, eq=False, repr=False)
class PlanetService(MultiService):
    """The whole daemon: snapshot, fetching, web listener; SIGHUP reloads the config."""

    config: Config
    store: Store
    subscriptions: Subscriptions
    aggregator: Aggregator
    fetcher: Fetcher
    web: PlanetWeb
    logs: PlanetLogs
    clock: IReactorTime
    #: Runs the config file's reading at a reload off the reactor thread.
    run_in_thread: RunInThread = deferToThread
    #: Reads the config file (tap wraps it to place the snapshot in --state-dir).
    load: Callable[[str], Config] = load_config
    notify: SdNotifyService | None = None
    #: Writes output_dir (see planet.output).
    output: OutputWriter | None = None
    _previous_hup: Any = None
    _previous_usr1: Any = None
    _handling_signals: bool = False
    _log: Logger = field(factory=Logger)

    def __attrs_post_init__(self) -> None:
        MultiService.__init__(self)

    def privilegedStartService(self) -> None:
        # The port is bound (and announced in the log) here: from then on a SIGHUP from a
        # supervisor must reload, not kill with the default action while start-up goes on.
        self._handle_signals()
        super().privilegedStartService()

    def startService(self) -> None:
        self._handle_signals()
        super().startService()

    def _handle_signals(self) -> None:
        # SIGHUP arrives on the main thread between reactor iterations; the work is deferred
        # to the reactor so it never runs in the middle of another callback (nor of start-up).
        if not self._handling_signals:
            self._handling_signals = True
            self._previous_hup = signal.signal(signal.SIGHUP, self._on_hup)
            self._previous_usr1 = signal.signal(signal.SIGUSR1, self._on_usr1)

    def stopService(self) -> Deferred[None]:
        self._handling_signals = False
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

    def reload(self) -> Deferred[bool]:
        """Re-read the config file (in a thread: reading lists may be big); on any error
        keep running with the current one. Fires with whether the new config is in use."""
        if self.notify is not None:
            self.notify.reloading()
        d: Deferred[Config] = self.run_in_thread(self.load, self.config.path)
        return d.addCallbacks(self._loaded, self._not_loaded).addBoth(self._reloaded)

    def _loaded(self, new: Config) -> bool:
        self.apply(new)
        return True

    def _not_loaded(self, failure: Failure) -> bool:
        if not failure.check(ConfigError):
            self._log.failure("config reload failed, still running the previous config", failure)
            return False
        self._log.error(
            "config reload failed, still running the previous config: {err}", err=failure.value
        )
        return False

    def _reloaded(self, result: bool) -> bool:
        if self.notify is not None:
            self.notify.ready()
        return result

    def apply(self, new: Config) -> None:
        """Switch to ``new``: added feeds are fetched at once, removed ones dropped."""
        old, self.config = self.config, new
        before = {s.url for s in old.subscriptions}
        after = {s.url for s in new.subscriptions}
        for warning in new.warnings:
            self._log.warn("{warning}", warning=warning)
        for key in RESTART_KEYS:
            if getattr(old, key) != getattr(new, key):
                self._log.warn("config reload: {key} changes take effect at restart", key=key)
        self.logs.set_level(new.log_level)
        self.store.reconfigure(new)
        self.fetcher.reconfigure(new)
        # Its listeners (the ingester, the web view) follow; removed feeds are dropped.
        self.subscriptions.reconfigure(new)
        self.aggregator.reconfigure(new)
        self.web.config_loaded = utc_from_timestamp(self.clock.seconds())
        if self.output is not None:
            self.output.after_cycle()
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
    listen: str | None,
    reactor: Any,
    parser: Parser | None = None,
    load: Callable[[str], Config] = load_config,
    client: Any = None,
    run_in_thread: RunInThread = deferToThread,
    rng: random.Random | None = None,
    min_render_interval: float = 1.0,
) -> PlanetService:
    """The whole daemon as one service, every piece made from ``config``.

    ``min_render_interval`` rate-limits page renders while the store changes (see
    :class:`planet.pagecache.PageCache`); ``planet run-once``, with no readers to serve
    during the cycle, passes 0 so what it writes to ``output_dir`` is the final store.

    Tests pass a Clock as ``reactor``, a treq ``client`` (StubTreq), an inline ``parser``
    and ``run_in_thread``, and no ``listen`` (no web listener: they call the web view).
    """
    logs = PlanetLogs(config.log_level)
    metrics = Metrics()
    store = Store.from_config(config)
    closer = _Closer()
    if client is None:
        guard = None if config.allow_private_networks else non_public_kind
        client, pool = make_client(reactor, guard=guard)
        closer.closers.append(pool.closeCachedConnections)
    if parser is None:
        process_parser = ProcessParser(reactor, log=logs.logger("planet.workers"))
        closer.closers.append(process_parser.close)
        parser = process_parser
    # Children start in order and stop in reverse: the snapshot loads before anything
    # else starts and is written after the fetcher and the listener have stopped.
    snapshot = SnapshotService(
        store=store,
        path=config.snapshot_file,
        interval=config.snapshot_interval,
        clock=reactor,
        run_in_thread=run_in_thread,
        metrics=metrics,
        # Entries written under another sanitizer policy are sanitized again, in the
        # parse workers, before they are served.
        resanitize=functools.partial(parser.resanitize, max_entry_bytes=config.max_entry_bytes),
        log=logs.logger("planet.snapshot"),
    )
    fetcher = Fetcher.from_config(client, reactor, config)
    ingester = Ingester(
        config,
        store,
        fetcher,
        parser,
        reactor,
        metrics=metrics,
        rng=rng or random.Random(),
        log=logs.logger("planet.fetch"),
    )
    web = PlanetWeb(
        config=config,
        store=store,
        clock=reactor,
        run_in_thread=run_in_thread,
        snapshot_written=lambda: snapshot.written_at,
        # The aggregator is made below, with the web view among its listeners.
        problem=lambda: aggregator.problem,
        config_loaded=utc_from_timestamp(reactor.seconds()),
        metrics=metrics,
        # During a fetch cycle the store changes many times a second: readers get a page at
        # most 1 s behind it rather than queueing for a render after every change.
        min_render_interval=min_render_interval,
        stale_wait=0.025,
    )
    websub = WebSubService(
        config,
        store,
        fetcher,
        ingester,
        reactor,
        metrics=metrics,
        rng=rng or random.Random(),
        log=logs.logger("planet.websub"),
    )
    ingester.interval_of, ingester.fetched = websub.interval_of, websub.fetched
    web.websub_hub = websub
    metrics.watch_websub(websub.by_state)
    # The fetcher and the web view show the effective config: the file plus reading lists.
    subscriptions = Subscriptions(
        config,
        store,
        ingester.fetch,
        listeners=(ingester.reconfigure, web.reconfigure, websub.reconfigure),
        log=logs.logger("planet.fetch"),
    )
    # After the snapshot is loaded: what start-up made is frozen before the first cycle.
    heap = HeapService(clock=reactor, log=logs.logger("planet.heap"))
    output = OutputWriter(web, store, reactor, run_in_thread, log=logs.logger("planet.output"))

    def after_cycle() -> None:
        heap.settle()
        output.after_cycle()

    aggregator = Aggregator(
        subscriptions,
        ingester,
        store,
        reactor,
        after_cycle=after_cycle,
        # A big snapshot's older entries are read after start: the first cycle waits.
        ready=snapshot.loaded,
        log=logs.logger("planet.fetch"),
    )
    metrics.watch_store(
        store.entry_count,
        lambda: count_feed_states(
            store.feed_states().values(), utc_from_timestamp(reactor.seconds())
        ),
    )
    top = PlanetService(
        config=config,
        store=store,
        subscriptions=subscriptions,
        aggregator=aggregator,
        fetcher=fetcher,
        web=web,
        logs=logs,
        clock=reactor,
        run_in_thread=run_in_thread,
        load=load,
        output=output,
        log=logs.logger("planet"),
    )
    for child in (snapshot, heap, HeapTrimmer(clock=reactor), closer, aggregator, websub, output):
        child.setServiceParent(top)
    if listen is not None:
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
