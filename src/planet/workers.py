"""Run CPU-bound work (parsing, sanitizing) off the reactor thread.

Each class here is a :class:`planet.interfaces.Parser`: called with
:func:`planet.parse.parse_feed`'s arguments and a time limit, it returns a Deferred. The
daemon uses a process pool (the GIL would otherwise let a big feed stall the web view);
tests use :data:`inline_parser`. A parse
that runs out of time fails with :class:`ParseTimeoutError`; a pool worker running it is
killed (and replaced when work waits).

Each parser also re-sanitizes stored entries (``resanitize(entries, max_entry_bytes)``),
for a snapshot written under another sanitizer policy.

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
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from attrs import define, field
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredSemaphore,
    fail,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from planet.model import Entry, ParsedFeed
from planet.parseworker import HEADER, STARTER, parse_feed, resanitize_entries

T = TypeVar("T")
#: How much lower the parse workers' CPU priority is than the daemon's.
WORKER_NICENESS = 10
#: Entries re-sanitized in one task: one task must not hold a worker for long.
RESANITIZE_CHUNK_ENTRIES = 200
RESANITIZE_CHUNK_BYTES = 2 * 1024 * 1024


#: How the reason of a feed whose parse ran out of time starts.
PARSE_TIMED_OUT = "parse timed out"


class ParseTimeoutError(Exception):
    """A parse (or re-sanitizing) took longer than its time limit."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"{PARSE_TIMED_OUT} after {seconds:g} s")
        self.seconds = seconds


def chunks(entries: Sequence[Entry]) -> list[list[Entry]]:
    """``entries`` in runs of at most RESANITIZE_CHUNK_ENTRIES entries or (about)
    RESANITIZE_CHUNK_BYTES of content each, in order."""
    runs: list[list[Entry]] = []
    run: list[Entry] = []
    size = 0
    for entry in entries:
        if run and (
            len(run) >= RESANITIZE_CHUNK_ENTRIES
            or size + entry.content_bytes > RESANITIZE_CHUNK_BYTES
        ):
            runs.append(run)
            run, size = [], 0
        run.append(entry)
        size += entry.content_bytes
    if run:
        runs.append(run)
    return runs


def _joined(results: list[list[Entry]]) -> list[Entry]:
    return [entry for run in results for entry in run]


class _ParserBase:
    """A parser: :meth:`_run` says where its work runs (and for how long)."""

    def __call__(
        self,
        body: bytes,
        url: str,
        fetched_at: datetime,
        content_type: str | None,
        max_entries: int,
        max_entry_bytes: int = 0,
        timeout: float | None = None,
    ) -> Deferred[ParsedFeed]:
        args = (body, url, fetched_at, content_type, max_entries, max_entry_bytes)
        return self._run(parse_feed, args, timeout)

    def resanitize(
        self, entries: Sequence[Entry], max_entry_bytes: int, timeout: float | None = None
    ) -> Deferred[list[Entry]]:
        """:func:`planet.parse.resanitize_entries` a chunk a task (each with ``timeout``); the
        entries come back in order, or the first failure."""
        runs = [
            self._run(resanitize_entries, (run, max_entry_bytes), timeout)
            for run in chunks(entries)
        ]
        return gatherResults(runs, consumeErrors=True).addCallback(_joined)

    def _run(
        self, f: Callable[..., T], args: tuple[Any, ...], timeout: float | None
    ) -> Deferred[T]:
        raise NotImplementedError


class InlineParser(_ParserBase):
    """Parse on the calling thread (tests, tiny deployments).

    A parse cannot be interrupted there: one that took longer than its time limit fails
    with :class:`ParseTimeoutError` once it is done, so the feed fails (and is not parsed
    again while its body stays the same) as it would in a worker.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock

    def _run(
        self, f: Callable[..., T], args: tuple[Any, ...], timeout: float | None
    ) -> Deferred[T]:
        started = self.clock()
        result = maybeDeferred(f, *args)
        if timeout is not None and result.called and self.clock() - started > timeout:
            result.addBoth(lambda _: None)  # the late result is dropped, as a worker's is
            return fail(ParseTimeoutError(timeout))
        return result


#: The parser the tests use.
inline_parser = InlineParser()


@define
class ThreadParser(_ParserBase):
    """Parse in the reactor's thread pool, at most ``limit`` at once.

    A thread cannot be killed: a parse that runs out of time fails at once, but keeps its
    thread (and its place among the ``limit``) until it ends.
    """

    reactor: Any
    limit: int = 2
    _sem: DeferredSemaphore = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._sem = DeferredSemaphore(self.limit)

    def _run(
        self, f: Callable[..., T], args: tuple[Any, ...], timeout: float | None
    ) -> Deferred[T]:
        result: Deferred[T] = Deferred()

        def expire(seconds: float) -> None:
            if not result.called:
                result.errback(ParseTimeoutError(seconds))

        def start(_: object) -> None:
            work = deferToThreadPool(self.reactor, self.reactor.getThreadPool(), f, *args)
            work.addBoth(self._released)
            timer = None
            if timeout is not None:
                timer = self.reactor.callLater(timeout, expire, timeout)

            def done(outcome: Any) -> None:
                if timer is not None and timer.active():
                    timer.cancel()
                if result.called:
                    return  # timed out: the late outcome is dropped
                if isinstance(outcome, Failure):
                    result.errback(outcome)
                else:
                    result.callback(outcome)

            work.addBoth(done)

        self._sem.acquire().addCallback(start)
        return result

    def _released(self, outcome: Any) -> Any:
        self._sem.release()
        return outcome

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
        #: Fires when the task has had its time (see ProcessParser._expired).
        self.timer: Any = None
        #: The worker has said it is ready (an empty frame once it has imported the parser):
        #: its start-up is not a task's time. A task's time limit waits until then.
        self.ready = False
        self._pending_timeout: float | None = None
        self.ended: Deferred[None] = Deferred()
        self._chunks: list[bytes] = []
        self._have = 0
        self._need: int | None = None

    def send(self, frame: bytes, task: Deferred[Any], timeout: float | None = None) -> None:
        self.task = task
        self.timer = None
        assert self.transport is not None
        self.transport.write(HEADER.pack(len(frame)))
        self.transport.write(frame)
        self._pending_timeout = timeout
        if self.ready:
            self._start_timer()

    def _start_timer(self) -> None:
        timeout, self._pending_timeout = self._pending_timeout, None
        if timeout is not None and self.task is not None:
            self.timer = self.pool.reactor.callLater(timeout, self.pool._expired, self, timeout)

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
            if not self.ready:
                self.ready = True  # the empty frame a worker sends once it is loaded
                self._start_timer()
                continue
            task, self.task = self.task, None
            self._stop_timer()
            self.pool._done(self, task, frame)

    def _stop_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def processEnded(self, reason: Failure) -> None:
        task, self.task = self.task, None
        self._stop_timer()
        self.pool._ended(self, task, reason)
        self.ended.callback(None)


@define(eq=False)
class ProcessParser(_ParserBase):
    """Parse in a pool of worker processes, spawned on first use (never forked from the
    running reactor: each is a fresh interpreter that imports only the parser).

    A task's time limit runs from when a worker takes it (not while it waits in the queue);
    at its end the worker is killed (SIGKILL), the task fails with
    :class:`ParseTimeoutError` and a new worker takes the waiting work.
    """

    reactor: Any
    workers: int = field(factory=lambda: max(1, os.cpu_count() or 1))
    #: Added to the workers' nice value: on a busy VPS the reactor (readers' pages, fetches)
    #: comes before parsing, which only delays when new entries appear.
    niceness: int = WORKER_NICENESS
    #: Seconds :meth:`close` waits for the workers to finish their task and exit.
    stop_timeout: float = 10.0
    #: Workers started so far (replacements included).
    spawned: int = 0
    #: Workers killed for running out of time.
    timed_out: int = 0
    _idle: list[_Worker] = field(factory=list, init=False)
    _running: set[_Worker] = field(factory=set, init=False)
    # Tasks waiting for a worker, oldest first, with their time limits: pickled only when a
    # worker takes them.
    _queue: deque[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any], float | None]] = field(
        factory=deque, init=False
    )
    _closed: bool = False
    log: Logger = field(factory=lambda: Logger("planet.workers"))

    def _run(
        self, f: Callable[..., T], args: tuple[Any, ...], timeout: float | None
    ) -> Deferred[T]:
        return self._submit(f, *args, timeout=timeout)

    def _submit(self, f: Callable[..., T], *args: Any, timeout: float | None = None) -> Deferred[T]:
        """Run ``f(*args)`` in a worker (``f`` and ``args`` must pickle), in at most
        ``timeout`` seconds once it starts."""
        if self._closed:
            raise RuntimeError("the parser pool is closed")
        d: Deferred[T] = Deferred()
        self._queue.append((f, args, d, timeout))
        self._dispatch()
        return d

    def _dispatch(self) -> None:
        while self._queue and not self._closed:
            if not self._idle:
                if len(self._running) >= self.workers:
                    return
                self._spawn()
            f, args, d, timeout = self._queue.popleft()
            try:
                frame = pickle.dumps((f, args), pickle.HIGHEST_PROTOCOL)
            except Exception:
                d.errback()
                continue
            self._idle.pop().send(frame, d, timeout)

    def _expired(self, worker: _Worker, timeout: float) -> None:
        """``worker``'s task ran out of time: kill it, start its replacement, fail the task."""
        task, worker.task = worker.task, None
        worker.timer = None
        self._running.discard(worker)
        self.timed_out += 1
        pid = getattr(worker.transport, "pid", None)
        if worker.transport is not None:
            worker.transport.signalProcess("KILL")
        if not self._closed:
            self._spawn()
        self.log.info(
            "parse worker {pid} killed: its task ran out of time ({seconds:g} s); "
            "worker {new} started",
            pid=pid,
            seconds=timeout,
            new=getattr(self._idle[-1].transport, "pid", None) if self._idle else None,
        )
        if task is not None:
            task.errback(ParseTimeoutError(timeout))
        self._dispatch()

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
        for _, _, d, _ in queued:
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
