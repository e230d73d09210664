"""The Klein web view: the river as HTML and feeds, the status page, ``/health``.

Pages are rendered and gzip-compressed off the reactor thread once per store version and
served from the cached bytes; concurrent requests for a page being rendered share one
render. Every response carries ETag, Last-Modified and the security headers.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from email.utils import format_datetime
from importlib import resources
from typing import Any, cast

from attrs import define, field, frozen
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import NotFound
from zope.interface import implementer

from planet import formats, render
from planet.config import Config
from planet.metrics import Metrics, route_of
from planet.model import Entry, utc_from_timestamp
from planet.store import RiverItem, RiverView, Store, sort_river

HTML = b"text/html; charset=utf-8"
ATOM = b"application/atom+xml; charset=utf-8"
JSON = b"application/json; charset=utf-8"
CSS = b"text/css; charset=utf-8"

#: No script may run on any page we serve; entry images and media come from anywhere.
SECURITY_HEADERS = {
    b"content-security-policy": (
        b"default-src 'none'; style-src 'self'; img-src http: https: data:; "
        b"media-src http: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"strict-origin-when-cross-origin",
}

RunInThread = Callable[..., "Deferred[Any]"]
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


@frozen
class _Views:
    """The feed views made at one store version and config."""

    version: int
    config: Config
    feeds: dict[str, render.FeedView]
    by_slug: dict[str, render.FeedView]


@frozen
class _Cached:
    """A page in the cache: the store version it shows and when its render finished."""

    version: int
    page: Rendered
    finished: float


def _compress(body: bytes) -> bytes:
    # mtime=0: the same body always gives the same bytes (and ETag).
    return gzip.compress(body, compresslevel=6, mtime=0)


def rendered(body: bytes, modified: datetime) -> Rendered:
    """A :class:`Rendered` of ``body``: gzip and a content-hash ETag (CPU: off the reactor)."""
    digest = hashlib.sha256(body).hexdigest()[:20]
    return Rendered(body, _compress(body), digest, modified)


class _PageGoneError(Exception):
    """The page asked for no longer exists: the river shrank since it was served."""


@frozen
class _RiverSource:
    """What the river's pages are made from: the river at one version, or a feed's entries."""

    version: int
    config: Config
    river: RiverView | None
    #: For a feed's own page: its entries, in no order.
    feed_entries: Sequence[Entry] = ()
    feed_url: str | None = None


class _Pages:
    """A river's pages, made only as far as they are asked for (page 1 of 100k entries
    costs a page's worth of work). Renders in several threads share one."""

    def __init__(self, pages: Iterator[tuple[RiverItem, ...]]) -> None:
        self._source = pages
        self._made: list[tuple[RiverItem, ...]] = []
        self._lock = threading.Lock()

    def get(self, number: int) -> tuple[RiverItem, ...] | None:
        """Page ``number`` (from 1), or None when the river has fewer pages."""
        with self._lock:
            while len(self._made) < number:
                page = next(self._source, None)
                if page is None:
                    return None
                self._made.append(page)
            return self._made[number - 1]


def _render_job(modified: datetime, fn: Callable[..., bytes], *args: Any) -> Rendered | None:
    """Render and compress in a thread; None when the page turned out not to exist."""
    try:
        return rendered(fn(*args), modified)
    except _PageGoneError:
        return None


def _first_page_only(fn: Callable[..., bytes]) -> Callable[..., bytes]:
    def first(config: Config, entries: Any, feeds: Any, now: datetime, *page: Any) -> bytes:
        return fn(config, entries, feeds, now)

    return first


_STYLE = rendered(
    resources.files("planet").joinpath("style.css").read_bytes(), utc_from_timestamp(0)
)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


class _Secured(Resource):
    """The Klein resource with the security headers added to every response.

    ``hot`` answers the most requested URLs (the front page and the feeds, without a query)
    before Klein's routing, which costs more than the rest of such a request; it gives None
    for everything else. A path or host that is not UTF-8 once percent-decoded gets a 400
    here: Klein would answer it too, but with a traceback in the log.
    """

    isLeaf = True

    def __init__(
        self,
        inner: IResource,
        metrics: Metrics,
        hot: Callable[[IRequest], Any],
        bad_request: Callable[[IRequest], bytes],
    ) -> None:
        super().__init__()
        self._inner = inner
        self._metrics = metrics
        self._hot = hot
        self._bad_request = bad_request

    def render(self, request: IRequest) -> Any:
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        route = route_of(request.path)
        done = cast(server.Request, request)

        def count(_: object) -> None:
            self._metrics.http_request(route, done.code)

        done.notifyFinish().addBoth(count)
        answer = self._hot(request)
        if answer is None:
            if not _utf8_url(done):
                return self._bad_request(request)
            return self._inner.render(request)
        if isinstance(answer, bytes):
            _finish(answer, done)
        else:
            answer.addCallbacks(_finish, done.processingFailed, callbackArgs=(done,))
        return server.NOT_DONE_YET


def _utf8_url(request: server.Request) -> bool:
    """Whether the decoded path and the host are UTF-8, as Klein needs them."""
    try:
        b"/".join((request.prepath or []) + (request.postpath or [])).decode("utf-8")
        request.getRequestHostname().decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


#: Bytes of a cached body handed to a connection at a time.
BODY_SLICE = 64 * 1024


def _finish(body: bytes, request: server.Request) -> None:
    # The client may have gone while the page was rendered.
    if request.finished or request._disconnected:
        return
    if request.code != http.NOT_MODIFIED:
        request.setHeader(b"content-length", b"%d" % len(body))
    if len(body) <= BODY_SLICE:
        request.write(body)
        request.finish()
    else:
        _SlicedBody(request, body).start()


@implementer(IPushProducer)
class _SlicedBody:
    """Writes a cached body to one connection a slice at a time, as it drains.

    Written whole, the transport would join it with the headers into a copy of its own:
    with the front page (~0.6 MB) and 32 readers at once, 18 MB of copies. Slices are
    64 KB, and the transport pauses us once it holds 64 KB unsent. (Twisted's FileSender
    is a pull producer: the HTTP channel would drive it through the global cooperator, a
    scheduling round per 16 KB chunk.)
    """

    def __init__(self, request: server.Request, body: bytes) -> None:
        self._request = request
        self._body = body
        self._offset = 0
        self._paused = False
        self._stopped = False

    def start(self) -> None:
        self._request.registerProducer(self, True)
        self.resumeProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        body, size = self._body, len(self._body)
        # A write can pause us (the transport's buffer is full) or stop us (it failed).
        while not self._paused and not self._stopped and self._offset < size:
            end = self._offset + BODY_SLICE
            self._request.write(body[self._offset : end])
            self._offset = end
        if self._offset >= size and not self._stopped:
            self._stopped = True
            self._body = b""
            self._request.unregisterProducer()
            self._request.finish()

    def pauseProducing(self) -> None:
        self._paused = True

    def stopProducing(self) -> None:
        # The connection is gone: Request.connectionLost ends the request.
        self._stopped = True
        self._body = b""


@define(slots=False, repr=False)
class PlanetWeb:
    """Routes of the public web view. :meth:`site` gives the ``twisted.web`` Site."""

    app = Klein()

    config: Config
    store: Store
    clock: IReactorTime
    run_in_thread: RunInThread
    snapshot_written: Callable[[], datetime | None] = lambda: None
    #: When the config in use was loaded (a reload sets it again).
    config_loaded: datetime | None = None
    metrics: Metrics = field(factory=Metrics)
    #: Renders done, for tests and metrics: cached pages must not be rendered again.
    renders: int = 0
    #: While the store changes, a page is rendered again at most this often (seconds); in
    #: between, the last rendering is served and a refresh is scheduled for the end of it.
    min_render_interval: float = 0.0
    #: How long a request for a changed page waits for its new rendering before it is
    #: answered with the previous one (None: always wait).
    stale_wait: float | None = None
    #: A page (river, Atom, JSON Feed) ends before its items' content passes this many bytes.
    max_page_bytes: int = render.MAX_PAGE_BYTES
    _cache: dict[Key, _Cached] = field(factory=dict)
    _pending: dict[Key, tuple[int, list[Deferred[Rendered | None]]]] = field(factory=dict)
    _refreshes: dict[Key, IDelayedCall] = field(factory=dict)
    _generation: int = 0
    _page_cache: dict[tuple[int, int, str], _Pages] = field(factory=dict)
    _page_lock: threading.Lock = field(factory=threading.Lock)
    _started: datetime | None = None
    #: The feed views at one store version and config, with an index by slug.
    _views: _Views | None = None
    #: The slug each subscription was given last: it keeps it (see render.feed_views).
    _slugs: dict[str, str] = field(factory=dict)
    _log: Logger = field(factory=Logger)

    def use_config(self, config: Config) -> None:
        """Serve with ``config`` from now on (a reload, or a reading list that changed)."""
        self.config = config
        # Every page shows the config: none rendered before may be served again, even
        # within the render interval, and renders still running must not be cached.
        self._cache.clear()
        self._pending.clear()
        self._generation += 1

    def resource(self) -> IResource:
        """The root resource: every route, with the security headers on every response."""
        if self._started is None:
            self._started = self._now()
        return _Secured(self.app.resource(), self.metrics, self._hot, self._bad_request)

    def site(self, log: Logger | None = None) -> PlanetSite:
        """A Site serving this view: no tracebacks shown, requests logged to ``log`` only
        while the config's ``access_log`` is on."""
        return PlanetSite(
            self.resource(),
            access_log=lambda: self.config.access_log,
            log=log or Logger(namespace="planet.web"),
            reactor=self.clock,
        )

    def _hot(self, request: IRequest) -> Any:
        """The river and its feeds, when asked for with no query; None for anything else."""
        if request.args or request.method not in (b"GET", b"HEAD"):
            return None
        path = request.path
        if path == b"/" or path == b"/index.html":
            return self.river(request)
        if path == b"/atom.xml":
            return self.atom(request)
        if path == b"/rss20.xml":
            return self.rss20(request)
        if path == b"/feed.json":
            return self.json_feed(request)
        return None

    # --- routes ------------------------------------------------------------------------

    @app.route("/", methods=["GET", "HEAD"])
    @app.route("/index.html", methods=["GET", "HEAD"])
    def river(self, request: IRequest) -> Any:
        return self._river_page(request, None)

    @app.route("/feeds/<string:slug>", methods=["GET", "HEAD"])
    def feed_river(self, request: IRequest, slug: str) -> Any:
        self._feeds()
        assert self._views is not None
        feed = self._views.by_slug.get(slug)
        if feed is None:
            return self._not_found(request)
        return self._river_page(request, feed)

    @app.route("/atom.xml", methods=["GET", "HEAD"])
    def atom(self, request: IRequest) -> Any:
        return self._feed_document(request, "atom", ATOM, formats.render_atom)

    @app.route("/rss20.xml", methods=["GET", "HEAD"])
    def rss20(self, request: IRequest) -> Any:
        return self._serve(
            request,
            ("rss20",),
            b"application/rss+xml; charset=utf-8",
            self._render_entries,
            formats.render_rss20,
        )

    @app.route("/feed.json", methods=["GET", "HEAD"])
    def json_feed(self, request: IRequest) -> Any:
        return self._feed_document(
            request,
            "feed.json",
            b"application/feed+json; charset=utf-8",
            formats.render_json_feed,
        )

    @app.route("/opml.xml", methods=["GET", "HEAD"])
    def opml(self, request: IRequest) -> Any:
        return self._serve(request, ("opml",), b"text/x-opml; charset=utf-8", self._render_opml)

    @app.route("/feeds", methods=["GET", "HEAD"])
    def feeds(self, request: IRequest) -> Any:
        return self._serve(request, ("feeds",), HTML, self._render_status)

    @app.route("/feeds.json", methods=["GET", "HEAD"])
    def feeds_json(self, request: IRequest) -> Any:
        return self._serve(request, ("feeds.json",), JSON, self._render_status_json)

    @app.route("/style.css", methods=["GET", "HEAD"])
    def style(self, request: IRequest) -> bytes:
        return self._send(_STYLE, request, CSS, max_age=86400)

    @app.route("/metrics", methods=["GET", "HEAD"])
    def prometheus(self, request: IRequest) -> bytes:
        # Not cached and on the reactor thread: the gauges read the store at scrape time.
        body, content_type = self.metrics.exposition()
        page = rendered(body, self._now())
        return self._send(page, request, content_type.encode(), max_age=0, conditional=False)

    @app.route("/health", methods=["GET", "HEAD"])
    def health(self, request: IRequest) -> bytes:
        body = _json_bytes(self.health_data())
        return self._send(rendered(body, self._now()), request, JSON, max_age=0)

    @app.handle_errors(NotFound)
    def missing(self, request: IRequest, failure: Any) -> bytes:
        return self._not_found(request)

    # --- data ----------------------------------------------------------------------------

    def health_data(self) -> dict[str, Any]:
        """The ``/health`` document."""
        subscribed = {s.url for s in self.config.subscriptions}
        states = [s for url, s in self.store.feed_states().items() if url in subscribed]
        fetched = [s.last_fetch for s in states if s.last_fetch is not None]
        return {
            "status": "ok",
            "feeds": len(subscribed),
            "entries": self.store.entry_count(),
            "feeds_ok": sum(1 for s in states if s.last_fetch is not None and not s.failing),
            "feeds_failing": sum(1 for s in states if s.failing),
            "last_fetch": _iso(max(fetched)) if fetched else None,
            "snapshot_written": _iso(self.snapshot_written()),
            "config_loaded": _iso(self.config_loaded),
        }

    # --- pages -----------------------------------------------------------------------------

    def _source(self, feed: render.FeedView | None) -> _RiverSource:
        """What the river's pages are made from, taken on the reactor thread: references."""
        if feed is None:
            river = self.store.river_view()
            return _RiverSource(river.version, self.config, river)
        version = self.store.entries_version
        return _RiverSource(version, self.config, None, self.store.entries_of(feed.url), feed.url)

    def _pages_of(self, source: _RiverSource) -> _Pages:
        """The pages of ``source``, shared per entries version and config (any thread)."""
        key = (source.version, id(source.config), source.feed_url or "")
        with self._page_lock:
            cached = self._page_cache.get(key)
            if cached is None:
                config = source.config
                if source.river is not None:
                    items = source.river.items(config.dedupe)
                    per_feed = config.new_feed_items
                else:
                    items = (RiverItem(e) for e in sort_river(source.feed_entries))
                    # A feed's own page shows all of it: new_feed_items caps the river only.
                    per_feed = 0
                pages = render.iter_pages(
                    items,
                    config.items_per_page,
                    config.days_per_page,
                    per_feed,
                    self.max_page_bytes,
                )
                cached = _Pages(pages)
                if len(self._page_cache) > 16:
                    self._page_cache.clear()
                self._page_cache[key] = cached
        return cached

    def _river_page(self, request: IRequest, feed: render.FeedView | None) -> Any:
        page = _page_number(request)
        key = ("river", feed.url if feed else "", str(page))
        # A page number past the end is found out by its render (a 404 then).
        if page is None:
            return self._not_found(request)
        return self._serve(request, key, HTML, self._render_river, page, feed)

    def _feed_document(
        self, request: IRequest, name: str, content_type: bytes, fn: Callable[..., bytes]
    ) -> Any:
        page = _page_number(request)
        key = (name, str(page))
        if page is None:
            return self._not_found(request)
        return self._serve(request, key, content_type, self._render_feed, fn, page)

    # --- rendering and caching -------------------------------------------------------------

    def _serve(
        self,
        request: IRequest,
        key: Key,
        content_type: bytes,
        inputs: Callable[..., tuple[Any, ...]],
        *args: Any,
    ) -> Any:
        """Answer with the page ``key``, rendered from ``inputs(*args)`` when it changed.

        Renders run in a thread, one at a time per page, and requests share them. While
        the store keeps changing (a fetch cycle), renders are limited to one per
        ``min_render_interval`` and a request waits at most ``stale_wait`` for one: until
        then the previous rendering answers, so readers never queue behind the fetcher.
        """
        version = self.store.version
        hit = self._cache.get(key)
        if hit is not None and hit.version == version:
            return self._send(hit.page, request, content_type)
        route = route_of(request.path)
        if hit is not None and key not in self._pending:
            wait = self.min_render_interval - (self.clock.seconds() - hit.finished)
            if wait > 0:
                if key not in self._refreshes:
                    self._refreshes[key] = self.clock.callLater(
                        wait, self._refresh, key, route, inputs, args
                    )
                return self._send(hit.page, request, content_type)
        fresh = self._rendering(key, route, version, inputs, args)
        if hit is not None and self.stale_wait is not None and not fresh.called:
            fresh = _first_of(fresh, hit.page, self.stale_wait, self.clock)
        return fresh.addCallback(self._answer, request, content_type)

    def _answer(self, page: Rendered | None, request: IRequest, content_type: bytes) -> bytes:
        if page is None:
            return self._not_found(request)
        return self._send(page, request, content_type)

    def _refresh(
        self, key: Key, route: str, inputs: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        """The scheduled re-render of a page that changed while renders were rate-limited."""
        del self._refreshes[key]
        hit = self._cache.get(key)
        if hit is None or hit.version == self.store.version or key in self._pending:
            return
        fresh = self._rendering(key, route, self.store.version, inputs, args)
        fresh.addErrback(lambda f: self._log.failure("rendering {key} failed", f, key=key))

    def _rendering(
        self,
        key: Key,
        route: str,
        version: int,
        inputs: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> Deferred[Rendered | None]:
        """The rendering of ``key`` at (about) ``version``: joins a running render or starts
        one. It fires with None when the page turned out not to exist any more."""
        pending = self._pending.get(key)
        # Rate-limited, a running render of an older version is good enough to join.
        if pending is not None and (pending[0] == version or self.min_render_interval > 0):
            waiter: Deferred[Rendered | None] = Deferred()
            pending[1].append(waiter)
            return waiter
        job = inputs(*args)
        waiters: list[Deferred[Rendered | None]] = []
        entry = self._pending[key] = (version, waiters)
        generation = self._generation
        # The inputs are taken on the reactor thread; rendering and gzip run elsewhere.
        started = time.perf_counter()
        d: Deferred[Rendered | None] = self.run_in_thread(_render_job, self._now(), *job)
        self.renders += 1

        def done(result: Rendered | None) -> Rendered | None:
            self.metrics.rendered(route, time.perf_counter() - started)
            if self._pending.get(key) is entry:
                del self._pending[key]
            cached = self._cache.get(key)
            fresher = cached is None or cached.version < version
            if generation != self._generation:
                pass
            elif result is None:
                # The river shrank below this page: forget it, so it is checked again.
                self._cache.pop(key, None)
            elif fresher:
                self._cache[key] = _Cached(version, result, self.clock.seconds())
            for w in waiters:
                w.callback(result)
            return result

        def failed(failure: Failure) -> Failure:
            if self._pending.get(key) is entry:
                del self._pending[key]
            for w in waiters:
                w.errback(failure)
            return failure

        return d.addCallbacks(done, failed)

    def _send(
        self,
        page: Rendered,
        request: IRequest,
        content_type: bytes,
        max_age: int | None = None,
        conditional: bool = True,
    ) -> bytes:
        """Answer with ``page``: validators, caching, gzip when asked, or a 304."""
        max_age = self.config.cache_max_age if max_age is None else max_age
        zipped = b"gzip" in (request.getHeader(b"accept-encoding") or b"")
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", _cache_control(max_age))
        request.setHeader(b"vary", b"Accept-Encoding")
        etag = page.etag_gzip if zipped else page.etag_plain
        request.setHeader(b"etag", etag)
        request.setHeader(b"last-modified", page.last_modified)
        if conditional and _not_modified(request, etag, page.modified):
            request.setResponseCode(http.NOT_MODIFIED)
            return b""
        if zipped:
            request.setHeader(b"content-encoding", b"gzip")
            return page.gzipped
        return page.body

    def _now(self) -> datetime:
        return utc_from_timestamp(self.clock.seconds())

    def _feeds(self) -> dict[str, render.FeedView]:
        """Every subscription's view, made once per store version and config (O(n log n)
        in subscriptions); each keeps the slug it was given while its name makes it."""
        views, version = self._views, self.store.version
        if views is not None and views.version == version and views.config is self.config:
            return views.feeds
        feeds = render.feed_views(self.config, self.store.feed_states(), self._slugs)
        self._slugs = {url: view.slug for url, view in feeds.items()}
        by_slug = {view.slug: view for view in feeds.values()}
        self._views = _Views(version, self.config, feeds, by_slug)
        return feeds

    def _updated(self) -> datetime | None:
        fetched = [s.last_fetch for s in self.store.feed_states().values() if s.last_fetch]
        return max(fetched, default=None)

    def _render_river(self, page: int, feed: render.FeedView | None) -> tuple[Any, ...]:
        source, feeds = self._source(feed), self._feeds()
        return (self._river_body, source, page, feed, feeds, self._updated(), self._now())

    def _page(self, source: _RiverSource, page: int) -> tuple[tuple[RiverItem, ...], bool]:
        """Page ``page`` of ``source`` and whether another follows (in the render thread)."""
        pages = self._pages_of(source)
        items = pages.get(page)
        if items is None:
            raise _PageGoneError(page)
        return items, pages.get(page + 1) is not None

    def _river_body(
        self,
        source: _RiverSource,
        page: int,
        feed: render.FeedView | None,
        feeds: dict[str, render.FeedView],
        updated: datetime | None,
        now: datetime,
    ) -> bytes:
        items, has_next = self._page(source, page)
        view = render.PageView(
            items=items,
            page=page,
            has_next=has_next,
            updated=updated,
            feed=feed,
        )
        return render.render_river(source.config, view, feeds, now)

    def _render_feed(self, fn: Callable[..., bytes], page: int) -> tuple[Any, ...]:
        return (self._feed_body, self._source(None), fn, page, self._feeds(), self._now())

    def _feed_body(
        self,
        source: _RiverSource,
        fn: Callable[..., bytes],
        page: int,
        feeds: dict[str, render.FeedView],
        now: datetime,
    ) -> bytes:
        items, has_next = self._page(source, page)
        entries = tuple(item.entry for item in items)
        return fn(source.config, entries, feeds, now, page, has_next)

    def _render_entries(self, fn: Callable[..., bytes]) -> tuple[Any, ...]:
        first_only = _first_page_only(fn)
        return (self._feed_body, self._source(None), first_only, 1, self._feeds(), self._now())

    def _render_opml(self) -> tuple[Any, ...]:
        feeds = sorted(self._feeds().values(), key=lambda f: f.name.casefold())
        return (formats.render_opml, self.config, feeds, self._now())

    def _status_rows(self) -> list[dict[str, Any]]:
        return render.feed_status_rows(
            self.config, self.store.feed_states(), self.store.feed_counts(), self._now()
        )

    def _render_status(self) -> tuple[Any, ...]:
        return (render.render_status, self.config, self._status_rows(), self._now())

    def _render_status_json(self) -> tuple[Any, ...]:
        return (_json_bytes, self._status_rows())

    def _bad_request(self, request: IRequest) -> bytes:
        request.setResponseCode(http.BAD_REQUEST)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", _cache_control(60))
        return b"400 Bad Request: the URL is not UTF-8.\n"

    def _not_found(self, request: IRequest) -> bytes:
        request.setResponseCode(404)
        body = rendered(render.render_not_found(self.config), self._started or self._now())
        return self._send(body, request, HTML, max_age=60, conditional=False)


class _Channel(http.HTTPChannel):
    """An HTTP channel that answers 414 to an over-long request line and 431 to too many or
    too large header lines (Twisted answers 400, or hangs up on one line over ``MAX_LENGTH``).

    The limits are Twisted's: ``totalHeadersSize`` (16 KiB) for the request line and headers
    together, ``MAX_LENGTH`` per line (the same), ``maxHeaders`` (500).
    """

    def _on_request_line(self) -> bool:
        # HTTPChannel's own (name-mangled) flag: set while the request line is awaited.
        return bool(getattr(self, "_HTTPChannel__first_line", 0))

    def lineReceived(self, line: bytes) -> None:
        # HTTPChannel makes this check first too (and answers 400).
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._refuse(self._on_request_line())
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._refuse(self._on_request_line())

    def headerReceived(self, line: bytes) -> bool:
        if self._receivedHeaderCount >= self.maxHeaders:
            self._refuse(False)
            return False
        return bool(super().headerReceived(line))

    def _refuse(self, uri: bool) -> None:
        if uri:
            status, body = b"414 URI Too Long", b"414 URI Too Long\n"
        else:
            status = b"431 Request Header Fields Too Large"
            body = b"431 Request Header Fields Too Large\n"
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nx-content-type-options: nosniff\r\n"
            b"connection: close\r\n\r\n%s" % (status, len(body), body)
        )
        self.loseConnection()


class PlanetSite(server.Site):
    """The Site: no tracebacks for readers, 414/431 from :class:`_Channel`, and an access
    log line per request (combined log format, through ``twisted.logger``) only while
    ``access_log()`` says so (Twisted's Site writes one for every request)."""

    # A plain HTTP/1.1 channel: Site's default wraps one for h2 negotiation, not offered here.
    protocol = _Channel  # type: ignore[assignment]
    displayTracebacks = False

    def __init__(
        self,
        resource: IResource,
        access_log: Callable[[], bool],
        log: Logger,
        reactor: IReactorTime | None = None,
    ) -> None:
        super().__init__(resource, reactor=reactor)
        self._access_log = access_log
        self._access = log

    def logPrefix(self) -> str:
        # "Site starting on 8080", as before: log watchers look for that line.
        return "Site"

    def acceptableProtocols(self) -> list[bytes]:
        # _Channel is HTTP/1.1 only: never offer h2 through ALPN.
        return [b"http/1.1"]

    def log(self, request: http.Request) -> None:
        if self._access_log():
            when = http.datetimeToLogString(self.reactor.seconds())
            self._access.info("{line}", line=http.combinedLogFormatter(when, request))


def _not_modified(request: IRequest, etag: bytes, modified: datetime) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if request.method not in (b"GET", b"HEAD"):
        return False
    match = request.getHeader(b"if-none-match")
    if match is not None:
        tags = {t.strip() for t in match.split(b",")}
        # Weak comparison: W/"x" matches "x" and W/"x".
        bare = etag.removeprefix(b"W/")
        return b"*" in tags or any(t.removeprefix(b"W/") == bare for t in tags)
    since = request.getHeader(b"if-modified-since")
    if since is None:
        return False
    try:
        when = http.stringToDatetime(since)
    except (ValueError, IndexError):
        return False
    return int(modified.timestamp()) <= when


@functools.lru_cache(maxsize=16)
def _cache_control(max_age: int) -> bytes:
    return f"public, max-age={max_age}".encode()


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


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"


def _page_number(request: IRequest) -> int | None:
    values = request.args.get(b"page") if request.args else None
    if not values:
        return 1
    try:
        page = int(values[0])
    except ValueError:
        return None
    return page if page >= 1 else None
