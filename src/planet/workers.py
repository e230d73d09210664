"""Run CPU-bound work (parsing, sanitizing) off the reactor thread.

A :data:`Parser` is any callable taking :func:`planet.parse.parse_feed`'s arguments and
returning a Deferred. The daemon uses a process pool (the GIL would otherwise let a big
feed stall the web view); tests use :func:`inline_parser`.

The pool is a few ``python -c`` children spoken to over pipes from the reactor, not a
``multiprocessing`` pool: that one costs a forkserver process, a resource tracker process
and two threads, and every worker re-runs the parent's ``__main__`` (``twistd``, i.e.
Twisted): 115 MB resident for two workers in the fetch-cycle benchmark, 69 MB with
these (see benchmarks/memory.py).
"""

from __future__ import annotations

import os
import pickle
import sys
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from attrs import define, field
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredSemaphore,
    maybeDeferred,
    succeed,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from planet.model import ParsedFeed
from planet.parse import parse_feed
from planet.parseworker import HEADER, STARTER

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


class WorkerDiedError(RuntimeError):
    """The worker parsing this document exited (killed, out of memory, crashed)."""


class WorkerTraceback(Exception):  # noqa: N818 - a cause, not an error of its own
    """The traceback, in the worker, of an exception raised there (set as its cause)."""

    def __str__(self) -> str:
        return f"\n{self.args[0]}"


class _Worker(ProcessProtocol):
    """One worker process: at most one task at a time, its result read frame by frame.

    Not IntNStringReceiver: it joins what it holds with every read, and pipes are read
    8 KB at a time, so a 1 MB answer would cost ~64 MB of copying on the reactor thread.
    Here the chunks are joined once, when the frame is complete.
    """

    def __init__(self, pool: ProcessParser) -> None:
        self.pool = pool
        self.task: Deferred[Any] | None = None
        self.ended: Deferred[None] = Deferred()
        self._chunks: list[bytes] = []
        self._have = 0
        self._need: int | None = None

    def send(self, frame: bytes, task: Deferred[Any]) -> None:
        self.task = task
        assert self.transport is not None
        self.transport.write(HEADER.pack(len(frame)))
        self.transport.write(frame)

    def childDataReceived(self, child_fd: int, data: bytes) -> None:
        if child_fd != 3:
            return
        self._chunks.append(data)
        self._have += len(data)
        while True:
            need = HEADER.size if self._need is None else self._need
            if self._have < need:
                return
            joined = b"".join(self._chunks)
            frame, rest = joined[:need], joined[need:]
            del joined
            self._chunks = [rest] if rest else []
            self._have = len(rest)
            if self._need is None:
                self._need = HEADER.unpack(frame)[0]
                continue
            self._need = None
            task, self.task = self.task, None
            self.pool._done(self, task, frame)

    def processEnded(self, reason: Failure) -> None:
        task, self.task = self.task, None
        self.pool._ended(self, task, reason)
        self.ended.callback(None)


@define(eq=False)
class ProcessParser:
    """Parse in a pool of worker processes, spawned on first use (never forked from the
    running reactor: each is a fresh interpreter that imports only the parser)."""

    reactor: Any
    workers: int = field(factory=lambda: max(1, os.cpu_count() or 1))
    #: Added to the workers' nice value: on a busy VPS the reactor (readers' pages, fetches)
    #: comes before parsing, which only delays when new entries appear.
    niceness: int = WORKER_NICENESS
    #: Seconds :meth:`close` waits for the workers to finish their task and exit.
    stop_timeout: float = 10.0
    #: Workers started so far (replacements included).
    spawned: int = 0
    _idle: list[_Worker] = field(factory=list, init=False)
    _running: set[_Worker] = field(factory=set, init=False)
    # Tasks waiting for a worker, oldest first: pickled only when a worker takes them.
    _queue: deque[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = field(
        factory=deque, init=False
    )
    _closed: bool = False

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
        """Run ``f(*args)`` in a worker (``f`` and ``args`` must pickle)."""
        if self._closed:
            raise RuntimeError("the parser pool is closed")
        d: Deferred[T] = Deferred()
        self._queue.append((f, args, d))
        self._dispatch()
        return d

    def _dispatch(self) -> None:
        while self._queue and not self._closed:
            if not self._idle:
                if len(self._running) >= self.workers:
                    return
                self._spawn()
            f, args, d = self._queue.popleft()
            try:
                frame = pickle.dumps((f, args), pickle.HIGHEST_PROTOCOL)
            except Exception:
                d.errback()
                continue
            self._idle.pop().send(frame, d)

    def _spawn(self) -> None:
        worker = _Worker(self)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.reactor.spawnProcess(
            worker,
            sys.executable,
            [sys.executable, "-c", STARTER, str(self.niceness), package_root],
            env=None,  # the daemon's environment
            childFDs={0: "w", 1: 1, 2: 2, 3: "r"},
        )
        self.spawned += 1
        self._running.add(worker)
        self._idle.append(worker)

    def _done(self, worker: _Worker, task: Deferred[Any] | None, frame: bytes) -> None:
        if not self._closed:
            self._idle.append(worker)
        try:
            ok, value, where = pickle.loads(frame)  # noqa: S301 - our own worker's answer
        except Exception:
            ok, value, where = False, Failure(), ""
        del frame
        if task is not None:
            if ok:
                task.callback(value)
            else:
                if where and isinstance(value, BaseException):
                    value.__cause__ = WorkerTraceback(where)
                task.errback(value)
        self._dispatch()

    def _ended(self, worker: _Worker, task: Deferred[Any] | None, reason: Failure) -> None:
        self._running.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        if task is not None:
            code = getattr(reason.value, "exitCode", None)
            signal = getattr(reason.value, "signal", None)
            how = f"signal {signal}" if signal else f"exit code {code}"
            task.errback(WorkerDiedError(f"parse worker died ({how})"))
        # A replacement, if work is waiting (else the next task starts one).
        self._dispatch()

    def close(self) -> Deferred[None]:
        """Stop the workers once their current task is done; no parse is accepted after.

        Tasks still waiting for a worker fail with CancelledError. A worker that has not
        exited ``stop_timeout`` seconds later is killed.
        """
        self._closed = True
        queued, self._queue = self._queue, deque()
        for _, _, d in queued:
            d.errback(CancelledError("the parser pool is closed"))
        workers = list(self._running)
        self._idle.clear()
        if not workers:
            return succeed(None)
        for worker in workers:
            if worker.transport is not None:
                worker.transport.closeStdin()

        def kill() -> None:
            for worker in workers:
                if not worker.ended.called and worker.transport is not None:
                    worker.transport.signalProcess("KILL")

        timer = self.reactor.callLater(self.stop_timeout, kill)

        def over(_: object) -> None:
            if timer.active():
                timer.cancel()

        return DeferredList([w.ended for w in workers]).addCallback(over)
