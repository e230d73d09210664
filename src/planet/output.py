"""``output_dir``: every output written as a static file a web server or CDN can serve.

At start and after each fetch cycle that changed what they show, every output (the
operator's template outputs, or the default theme's pages and feeds, plus the
``bill_of_materials``) is taken from the web view's page cache (the bytes served) and
written, off the reactor thread, each file atomically (temporary file, fsync, rename: a
crash leaves the old file or the new one, whole) and only when its bytes changed. A failed
write is one log line and a retry; serving never depends on it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from attrs import define, field
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from planet.atomicfile import write_atomic
from planet.interfaces import RunInThread
from planet.pagecache import Rendered
from planet.store import Store
from planet.web import PlanetWeb

__all__ = ["OutputWriter", "write_files"]

#: Seconds between checks for changes made outside fetch cycles (WebSub pushes, reloads).
POLL_EVERY = 30.0
#: Pages rendered while the store changes may be up to the render interval old: a second
#: pass this long after a write picks up their fresh renderings.
CONFIRM_AFTER = 1.5


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def write_files(
    directory: str, files: Mapping[str, bytes], written: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Write each changed file of ``files`` under ``directory`` (in a thread).

    ``written`` holds the digests written before; returns the digests now on disk and one
    error per file that could not be written.
    """
    done: dict[str, str] = {}
    errors = []
    for name, body in files.items():
        digest = _digest(body)
        path = os.path.join(directory, *name.split("/"))
        try:
            if written.get(name) != digest and not _same(path, body):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                write_atomic(path, body)
            done[name] = digest
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
    return done, errors


def _same(path: str, body: bytes) -> bool:
    try:
        if os.path.getsize(path) != len(body):
            return False
        with open(path, "rb") as f:
            return f.read() == body
    except OSError:
        return False


@define(slots=False, eq=False, repr=False)
class OutputWriter(Service):
    """Writes the outputs to ``web.config.output_dir`` (see the module's docstring)."""

    web: PlanetWeb
    store: Store
    clock: IReactorTime
    run_in_thread: RunInThread
    #: Seconds before a failed write is tried again.
    retry: float = 60.0
    #: Write passes that wrote or checked every file, for tests and /metrics-free checks.
    passes: int = 0
    _written: dict[str, str] = field(factory=dict)
    #: (the store's shown version, config) last written; None: nothing yet.
    _shown: tuple[int, int] | None = None
    _running: Deferred[None] | None = None
    _again: bool = False
    _later: IDelayedCall | None = None
    #: The last pass failed: the retry timer writes next (one log line per failing spell).
    _failing: bool = False
    _poll: LoopingCall | None = None
    _log: Logger = field(factory=lambda: Logger(namespace="planet.output"))

    def startService(self) -> None:
        super().startService()
        self.write_outputs()
        self._poll = LoopingCall(self.after_cycle)
        self._poll.clock = self.clock
        self._poll.start(POLL_EVERY, now=False)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self._poll is not None and self._poll.running:
            self._poll.stop()
        if self._later is not None and self._later.active():
            self._later.cancel()
        self._later = None
        return self._running

    def after_cycle(self) -> None:
        """A fetch cycle is over (or the poll's time came): write if what is shown changed."""
        if not self._failing and self._shown != self._showing():
            self.write_outputs()

    def _showing(self) -> tuple[int, int]:
        # Every output shows entries and feed views only: a cycle of 304s (fetch times,
        # validators) neither renders nor writes anything.
        return self.store.shown_version, id(self.web.config)

    def write_outputs(self) -> Deferred[None]:
        """Write every output that changed; fires when done (never fails)."""
        return self._start(confirming=False)

    def _start(self, confirming: bool) -> Deferred[None]:
        if not self.web.config.output_dir:
            return succeed(None)
        if self._running is not None:
            self._again = True
            return self._running
        running = Deferred.fromCoroutine(self._write_pass(confirming))
        running.addErrback(lambda f: self._log.failure("writing output_dir failed", f))
        # A pass that finished at once (nothing to wait for) has cleared _running already.
        if not running.called:
            self._running = running
        return running

    async def _write_pass(self, confirming: bool) -> None:
        try:
            retry = await self._write_once()
            while self._again:
                self._again, confirming = False, False
                retry = await self._write_once()
        finally:
            self._running = None
        self._again = False
        if not self.running or (self._later is not None and self._later.active()):
            return
        if retry:
            self._later = self.clock.callLater(self.retry, self._start, False)
        elif not confirming:
            self._later = self.clock.callLater(CONFIRM_AFTER, self._start, True)

    async def _write_once(self) -> bool:
        """One pass over every output; True when some file could not be written."""
        directory = self.web.config.output_dir
        showing = self._showing()
        pages = self.web.output_pages()
        got = await DeferredList([_later(get()) for get in pages.values()], consumeErrors=True)
        files: dict[str, bytes] = {}
        for name, (ok, page) in zip(pages, got, strict=True):
            if ok and isinstance(page, Rendered):
                files[name] = page.body
            elif not ok:
                self._log.error("output {name} not written: {f}", name=name, f=page.value)
        if directory is None:
            return False
        done, errors = await self.run_in_thread(write_files, directory, files, self._written)
        self._written.update(done)
        self.passes += 1
        if errors:
            if not self._failing:
                self._log.error(
                    "output_dir: {n} files not written ({first}); trying again every {retry:g} s",
                    n=len(errors),
                    first=errors[0],
                    retry=self.retry,
                )
            self._failing = True
            return True
        if self._failing:
            self._log.info("output_dir: every file written again")
            self._failing = False
        self._shown = showing
        return False


def _later(page: Any) -> Deferred[Any]:
    return page if isinstance(page, Deferred) else succeed(page)
