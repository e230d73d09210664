"""Run CPU-bound work (parsing, sanitizing) off the reactor thread.

A :data:`Parser` is any callable taking :func:`planet.parse.parse_feed`'s arguments and
returning a Deferred. The daemon uses a process pool (the GIL would otherwise let a big
feed stall the web view); tests use :func:`inline_parser`.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any, TypeVar

from attrs import define, field
from twisted.internet.defer import Deferred, DeferredSemaphore, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool

from planet.model import ParsedFeed
from planet.parse import parse_feed

T = TypeVar("T")
#: How much lower the parse workers' CPU priority is than the daemon's.
WORKER_NICENESS = 10
Parser = Callable[[bytes, str, datetime, "str | None", int], "Deferred[ParsedFeed]"]


def inline_parser(
    body: bytes, url: str, fetched_at: datetime, content_type: str | None, max_entries: int
) -> Deferred[ParsedFeed]:
    """Parse on the calling thread (tests, tiny deployments)."""
    return maybeDeferred(parse_feed, body, url, fetched_at, content_type, max_entries)


@define
class ThreadParser:
    """Parse in the reactor's thread pool, at most ``limit`` at once."""

    reactor: Any
    limit: int = 2
    _sem: DeferredSemaphore = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._sem = DeferredSemaphore(self.limit)

    def __call__(
        self,
        body: bytes,
        url: str,
        fetched_at: datetime,
        content_type: str | None,
        max_entries: int,
    ) -> Deferred[ParsedFeed]:
        pool = self.reactor.getThreadPool()
        return self._sem.run(
            deferToThreadPool,
            self.reactor,
            pool,
            parse_feed,
            body,
            url,
            fetched_at,
            content_type,
            max_entries,
        )

    def close(self) -> Deferred[None]:
        return succeed(None)


@define
class ProcessParser:
    """Parse in a pool of worker processes (forkserver: never fork a running reactor)."""

    reactor: Any
    workers: int = field(factory=lambda: max(1, os.cpu_count() or 1))
    #: Added to the workers' nice value: on a busy VPS the reactor (readers' pages, fetches)
    #: comes before parsing, which only delays when new entries appear.
    niceness: int = WORKER_NICENESS
    _executor: ProcessPoolExecutor | None = None
    _closed: bool = False

    def _pool(self) -> ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("the parser pool is closed")
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["planet.parse"])
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=context,
                initializer=os.nice,
                initargs=(self.niceness,),
            )
        return self._executor

    def __call__(
        self,
        body: bytes,
        url: str,
        fetched_at: datetime,
        content_type: str | None,
        max_entries: int,
    ) -> Deferred[ParsedFeed]:
        return self._submit(parse_feed, body, url, fetched_at, content_type, max_entries)

    def _submit(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        d: Deferred[T] = Deferred()
        try:
            future = self._pool().submit(f, *args)
        except BrokenProcessPool:
            # A worker died (OOM-killed, say): start a fresh pool rather than fail forever.
            self._executor = None
            future = self._pool().submit(f, *args)

        def done(fut: Future[T]) -> None:
            # Runs in the executor's thread; Deferreds may only fire on the reactor thread.
            exc = fut.exception()
            if isinstance(exc, BrokenProcessPool):
                self.reactor.callFromThread(self._discard_broken)
            if exc is not None:
                self.reactor.callFromThread(d.errback, exc)
            else:
                self.reactor.callFromThread(d.callback, fut.result())

        future.add_done_callback(done)
        return d

    def _discard_broken(self) -> None:
        self._executor = None

    def close(self) -> Deferred[None]:
        """Shut the pool down without blocking the reactor; no parse is accepted after."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is None:
            return succeed(None)
        return deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), executor.shutdown, True, cancel_futures=True
        )
