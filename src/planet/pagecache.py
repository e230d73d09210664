"""Rendered pages, cached per key and store version.

A page is rendered and gzip-compressed off the reactor thread once per version of what it
shows (the store's version, or its ``shown_version`` for pages that show no fetch state)
and served from the cached bytes; concurrent requests for a page being rendered share one
render. While the store keeps changing (a fetch cycle), a page is rendered at most once per
``min_render_interval``; the request that starts a render waits at most ``stale_wait``
for it before the previous rendering answers, and requests that come while it runs get the
previous rendering at once, so readers never queue behind the fetcher.

While any render runs, CPython's cyclic collector is paused: a render makes many
short-lived containers (the ``/feeds`` page of 10,000 feeds, ~1 s of work), enough to start
three or four full collections of ~25 ms each in the render thread, which holds the GIL for
them and so stalls the reactor. Paused, those containers die by reference counting as the
render ends; the collector runs again once no render does.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import time
from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime
from typing import Any, Protocol

from attrs import define, field, frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from planet.interfaces import RunInThread
from planet.metrics import Metrics
from planet.model import utc_from_timestamp

#: A page's cache key: its route's name, then what tells its pages apart (feed, number).
Key = tuple[str, ...]


@frozen
class Rendered:
    """A rendered response body, compressed once, with its validators."""

    body: bytes
    gzipped: bytes
    etag: str
    modified: datetime
    # Header values computed once per render, not once per request.
    etag_plain: bytes = field(init=False)
    etag_gzip: bytes = field(init=False)
    last_modified: bytes = field(init=False)

    def __attrs_post_init__(self) -> None:
        # A weak ETag per representation: the gzip bytes are a different entity.
        object.__setattr__(self, "etag_plain", f'W/"{self.etag}"'.encode())
        object.__setattr__(self, "etag_gzip", f'W/"{self.etag}-gz"'.encode())
        modified = format_datetime(self.modified, usegmt=True).encode()
        object.__setattr__(self, "last_modified", modified)


def _compress(body: bytes) -> bytes:
    # mtime=0: the same body always gives the same bytes (and ETag).
    return gzip.compress(body, compresslevel=6, mtime=0)


def rendered(body: bytes, modified: datetime) -> Rendered:
    """A :class:`Rendered` of ``body``: gzip and a content-hash ETag (CPU: off the reactor)."""
    digest = hashlib.sha256(body).hexdigest()[:20]
    return Rendered(body, _compress(body), digest, modified)


class PageGoneError(Exception):
    """The page asked for no longer exists: the river shrank since it was served."""


class RenderJob(Protocol):
    """What to render, with its inputs taken on the reactor thread."""

    def render(self) -> bytes:
        """The page's body, made in a render thread; :class:`PageGoneError` if there is
        no such page."""


class RenderSettings(Protocol):
    """Where and how often pages are rendered; read at every use, so they may change."""

    #: Runs a function in a render thread: ``run_in_thread(f, *args) -> Deferred``.
    run_in_thread: RunInThread
    #: While the store changes, a page is rendered again at most this often (seconds).
    min_render_interval: float
    #: How long a request for a changed page waits for its new rendering before the
    #: previous one answers (None: always wait).
    stale_wait: float | None


def _render(job: RenderJob, modified: datetime) -> Rendered | None:
    """Render and compress (in a render thread); None when the page turned out not to exist."""
    try:
        return rendered(job.render(), modified)
    except PageGoneError:
        return None


@frozen
class _Cached:
    """A page in the cache: the store version it shows and when its render finished."""

    version: int
    page: Rendered
    finished: float


@frozen
class _Running:
    """A render under way: the store version it shows and who waits for it."""

    version: int
    waiters: list[Deferred[Rendered | None]]


@define
class PageCache:
    """The rendered pages of the web view, by key, each at the store version it shows.

    ``version`` gives the store's version now: a page cached at another one is rendered
    again (within the limits of ``settings``) from the job its ``inputs`` give then. A page
    showing less than the whole store gives :meth:`page` the version of what it shows.
    """

    settings: RenderSettings
    version: Callable[[], int]
    clock: IReactorTime
    metrics: Metrics
    #: Renders started, for tests: cached pages must not be rendered again.
    renders: int = 0
    _cache: dict[Key, _Cached] = field(factory=dict)
    _running: dict[Key, _Running] = field(factory=dict)
    _refreshes: dict[Key, IDelayedCall] = field(factory=dict)
    #: Bumped by :meth:`clear`: a render started before must not be cached.
    _generation: int = 0
    #: The cyclic collector (``gc``), paused while renders run.
    collector: Any = gc
    #: Renders under way; and whether the collector was on when the first of them began.
    _in_threads: int = 0
    _collector_was_on: bool = False
    _log: Logger = field(factory=Logger)

    def clear(self) -> None:
        """Forget every page (a new config): none may be served again, even within the
        render interval, and renders still running must not be cached."""
        self._cache.clear()
        self._running.clear()
        self._generation += 1

    def page(
        self,
        key: Key,
        route: str,
        inputs: Callable[[], RenderJob],
        max_age: float | None = None,
        version: Callable[[], int] | None = None,
    ) -> Rendered | Deferred[Rendered | None]:
        """The page ``key``: the cached rendering when it may answer, else the Deferred of
        its rendering from ``inputs()`` (None: the page turned out not to exist).

        ``inputs`` is called on the reactor thread when a render starts; ``route`` labels
        the render's duration in the metrics. A page that shows the time (``/feeds``:
        "12 min ago") gives a ``max_age``: older renderings are made again, store changed
        or not. ``version`` gives the version of what the page shows (by default the
        cache's ``version``); a key must always be given the same one.
        """
        versions = version or self.version
        version_now = versions()
        hit = self._cache.get(key)
        if hit is not None and hit.version == version_now:
            if max_age is None or self.clock.seconds() - hit.finished < max_age:
                return hit.page
        if hit is not None and key not in self._running:
            wait = self.settings.min_render_interval - (self.clock.seconds() - hit.finished)
            if wait > 0:
                if key not in self._refreshes:
                    self._refreshes[key] = self.clock.callLater(
                        wait, self._refresh, key, route, inputs, versions
                    )
                return hit.page
        stale_wait = self.settings.stale_wait
        if hit is not None and stale_wait is not None and key in self._running:
            # Only the request that starts a render waits for it. The others would each
            # wait stale_wait while it runs (most of the time, in a fetch cycle), and then
            # get the previous rendering anyway.
            return hit.page
        fresh = self._rendering(key, route, version_now, inputs)
        if hit is not None and stale_wait is not None and not fresh.called:
            fresh = _first_of(fresh, hit.page, stale_wait, self.clock)
        return fresh

    def _refresh(
        self,
        key: Key,
        route: str,
        inputs: Callable[[], RenderJob],
        versions: Callable[[], int],
    ) -> None:
        """The scheduled re-render of a page that changed while renders were rate-limited."""
        del self._refreshes[key]
        hit = self._cache.get(key)
        version = versions()
        if hit is None or hit.version == version or key in self._running:
            return
        fresh = self._rendering(key, route, version, inputs)
        fresh.addErrback(lambda f: self._log.failure("rendering {key} failed", f, key=key))

    def _rendering(
        self, key: Key, route: str, version: int, inputs: Callable[[], RenderJob]
    ) -> Deferred[Rendered | None]:
        """The rendering of ``key`` at (about) ``version``: joins a running render or starts
        one. It fires with None when the page turned out not to exist any more."""
        running = self._running.get(key)
        # Rate-limited, a running render of an older version is good enough to join.
        if running is not None and (
            running.version == version or self.settings.min_render_interval > 0
        ):
            waiter: Deferred[Rendered | None] = Deferred()
            running.waiters.append(waiter)
            return waiter
        job = inputs()
        entry = self._running[key] = _Running(version, [])
        generation = self._generation
        # The inputs are taken on the reactor thread; rendering and gzip run elsewhere.
        started = time.perf_counter()
        modified = utc_from_timestamp(self.clock.seconds())
        self._pause_collector()
        try:
            d: Deferred[Rendered | None] = self.settings.run_in_thread(_render, job, modified)
        except BaseException:
            # Nothing will run: the collector must not stay paused for it.
            self._resume_collector(None)
            del self._running[key]
            raise
        self.renders += 1
        d.addBoth(self._resume_collector)

        def done(result: Rendered | None) -> Rendered | None:
            self.metrics.rendered(route, time.perf_counter() - started)
            if self._running.get(key) is entry:
                del self._running[key]
            # After a clear() this render shows the old config: it only answers its waiters.
            if generation == self._generation:
                self._keep(key, version, result)
            for w in entry.waiters:
                w.callback(result)
            return result

        def failed(failure: Failure) -> Failure:
            if self._running.get(key) is entry:
                del self._running[key]
            for w in entry.waiters:
                w.errback(failure)
            return failure

        return d.addCallbacks(done, failed)

    def _pause_collector(self) -> None:
        if self._in_threads == 0:
            self._collector_was_on = self.collector.isenabled()
            self.collector.disable()
        self._in_threads += 1

    def _resume_collector(self, result: Any) -> Any:
        self._in_threads -= 1
        if self._in_threads == 0 and self._collector_was_on:
            self.collector.enable()
        return result

    def _keep(self, key: Key, version: int, result: Rendered | None) -> None:
        if result is None:
            # The river shrank below this page: forget it, so it is checked again.
            self._cache.pop(key, None)
            return
        cached = self._cache.get(key)
        # The same version again: a page past its max_age, rendered anew.
        if cached is None or cached.version <= version:
            self._cache[key] = _Cached(version, result, self.clock.seconds())


def _first_of(
    fresh: Deferred[Rendered | None], stale: Rendered, timeout: float, clock: IReactorTime
) -> Deferred[Rendered | None]:
    """``fresh``'s result if it comes within ``timeout`` seconds, else ``stale``."""
    answer: Deferred[Rendered | None] = Deferred()

    def give(result: Any) -> None:
        # A render failing after the stale page went out has nobody left to tell.
        if timer.active():
            timer.cancel()
        if not answer.called:
            answer.callback(result)

    timer = clock.callLater(timeout, give, stale)
    fresh.addBoth(give)
    return answer
