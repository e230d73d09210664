"""``planet run-once``: one fetch cycle with the snapshot, then exit (the cron mode).

Nothing here fetches, parses or stores: the daemon's own service is built
(:func:`planet.service.build_service`, no web listener) and started, so the snapshot is
loaded as at a daemon's start; its aggregator runs one cycle (:meth:`Aggregator.run_once
<planet.aggregator.Aggregator.run_once>`) instead of its timer loop; a child service that
writes output files (``write_outputs()``) is asked to write them; stopping the service
writes the snapshot, as at a daemon's stop. A daemon started on the same config later
loads that snapshot and serves it at once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from attrs import define
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ReactorNotRunning
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from planet.config import Config, load_config
from planet.service import PlanetService, build_service
from planet.snapshot import SnapshotService

__all__ = ["run_once"]

_log = Logger(namespace="planet")


@define
class _Outcome:
    """What the run came to: the cycles run, and whether something went wrong."""

    cycles: int = 0
    failed: bool = False
    #: The cycle was over (not cut short by SIGTERM or SIGINT).
    finished: bool = False
    #: SIGTERM or SIGINT came first.
    stopped: bool = False


def run_once(
    config: Config,
    out: TextIO,
    quiet: bool = False,
    load: Callable[[str], Config] = load_config,
    reactor: Any = None,
) -> int:
    """Fetch every feed of ``config`` once, write the snapshot (and output files); the exit
    status: 0, or 1 when the cycle could not run or the snapshot could not be written.

    Log lines go to stderr (``quiet``: warnings and errors only); one summary line to
    ``out`` unless ``quiet``.
    """
    if reactor is None:
        from twisted.internet import reactor as installed

        reactor = installed
    _begin_logging(sys.stderr, LogLevel.warn if quiet else LogLevel.info)
    started = time.monotonic()
    # No readers to serve meanwhile: pages render the store as it is (output_dir).
    service = build_service(config, None, reactor, load=load, min_render_interval=0.0)
    # The cycle is ours to run: no timer loop, no follow-up kicks.
    service.aggregator.loop = False
    snapshot = _child(service, SnapshotService)
    outcome = _Outcome()

    def stop() -> Any:
        # Also at SIGTERM/SIGINT: a stopped run still writes what it fetched.
        if not outcome.finished:
            outcome.failed = outcome.stopped = True
            _log.error("planet run-once stopped before its cycle was over")
        return service.stopService() if service.running else None

    def start() -> None:
        service.privilegedStartService()
        service.startService()
        d = Deferred.fromCoroutine(_one_cycle(service, snapshot, outcome))
        d.addErrback(_failed, outcome)
        d.addBoth(lambda _: _stop_reactor(reactor))

    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.callWhenRunning(start)
    reactor.run()
    if snapshot is not None and snapshot.failures:
        outcome.failed = True
    if not quiet:
        print(_summary(service, outcome, time.monotonic() - started), file=out)
    return 1 if outcome.failed else 0


async def _one_cycle(
    service: PlanetService, snapshot: SnapshotService | None, outcome: _Outcome
) -> None:
    if snapshot is not None:
        # Entries of a snapshot being sanitized again are in the store only after this.
        await snapshot.loaded()
    outcome.cycles = await service.aggregator.run_once()
    if outcome.stopped:
        return  # the fetches were abandoned: no output from a cut-short cycle
    if service.aggregator.problem is not None:
        outcome.failed = True
    for writer in _output_writers(service):
        await maybeDeferred(writer.write_outputs)
    outcome.finished = True


def _failed(failure: Any, outcome: _Outcome) -> None:
    outcome.failed = outcome.finished = True
    _log.failure("planet run-once failed", failure)


def _stop_reactor(reactor: Any) -> None:
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass  # a signal stopped it first


def _output_writers(service: PlanetService) -> Iterator[Any]:
    """The children that write output files (``output_dir``): each has ``write_outputs()``."""
    for child in service:
        if callable(getattr(child, "write_outputs", None)):
            yield child


def _child(service: PlanetService, kind: type[Any]) -> Any:
    return next((child for child in service if isinstance(child, kind)), None)


def _summary(service: PlanetService, outcome: _Outcome, seconds: float) -> str:
    config = service.subscriptions.effective
    states = service.store.feed_states()
    subscribed = [states.get(s.url) for s in config.subscriptions]
    failing = sum(1 for s in subscribed if s is not None and s.failing)
    status = "stopped" if outcome.stopped else "failed" if outcome.failed else "done"
    return (
        f"planet run-once: {status}: {outcome.cycles} cycle(s) in {seconds:.1f} s; "
        f"{len(subscribed)} feeds ({failing} failing), {service.store.entry_count()} entries; "
        f"snapshot {config.snapshot_file}"
    )


def _begin_logging(stream: TextIO, level: LogLevel) -> None:
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    observer = FilteringLogObserver(textFileLogObserver(stream), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
