"""The Klein web view: the river as HTML and feeds, the status page, ``/health``.

Pages are rendered and gzip-compressed off the reactor thread once per store version and
served from the cached bytes; concurrent requests for a page being rendered share one
render. Every response carries ETag, Last-Modified and the security headers.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime
from importlib import resources
from typing import Any, cast

from attrs import define, field, frozen
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import NotFound

from planet import formats, render
from planet.config import Config
from planet.metrics import Metrics, route_of
from planet.model import utc_from_timestamp
from planet.store import RiverItem, Store

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


def _compress(body: bytes) -> bytes:
    # mtime=0: the same body always gives the same bytes (and ETag).
    return gzip.compress(body, compresslevel=6, mtime=0)


def rendered(body: bytes, modified: datetime) -> Rendered:
    """A :class:`Rendered` of ``body``: gzip and a content-hash ETag (CPU: off the reactor)."""
    digest = hashlib.sha256(body).hexdigest()[:20]
    return Rendered(body, _compress(body), digest, modified)


def _render_job(modified: datetime, fn: Callable[..., bytes], *args: Any) -> Rendered:
    return rendered(fn(*args), modified)


_STYLE = rendered(
    resources.files("planet").joinpath("style.css").read_bytes(), utc_from_timestamp(0)
)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


class _Secured(Resource):
    """The Klein resource with the security headers added to every response."""

    isLeaf = True

    def __init__(self, inner: IResource, metrics: Metrics) -> None:
        super().__init__()
        self._inner = inner
        self._metrics = metrics

    def render(self, request: IRequest) -> Any:
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        route = route_of(request.path)
        done = cast(server.Request, request)

        def count(_: object) -> None:
            self._metrics.http_request(route, done.code)

        done.notifyFinish().addBoth(count)
        return self._inner.render(request)


@define(slots=False)
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
    _cache: dict[Key, tuple[int, Rendered]] = field(factory=dict)
    _pending: dict[Key, tuple[int, list[Deferred[Rendered]]]] = field(factory=dict)
    _page_cache: dict[tuple[int, int, str], list[tuple[RiverItem, ...]]] = field(factory=dict)
    _started: datetime | None = None

    def use_config(self, config: Config) -> None:
        """Serve with ``config`` from now on (a reload, or a reading list that changed)."""
        self.config = config

    def resource(self) -> IResource:
        """The root resource: every route, with the security headers on every response."""
        if self._started is None:
            self._started = self._now()
        return _Secured(self.app.resource(), self.metrics)

    def site(self) -> server.Site:
        """A Site serving this view, showing no tracebacks."""
        site = server.Site(self.resource())
        site.displayTracebacks = False
        return site

    # --- routes ------------------------------------------------------------------------

    @app.route("/", methods=["GET", "HEAD"])
    @app.route("/index.html", methods=["GET", "HEAD"])
    def river(self, request: IRequest) -> Any:
        return self._river_page(request, None)

    @app.route("/feeds/<string:slug>", methods=["GET", "HEAD"])
    def feed_river(self, request: IRequest, slug: str) -> Any:
        feed = next((f for f in self._feeds().values() if f.slug == slug), None)
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

    def _items(self, feed: render.FeedView | None) -> tuple[RiverItem, ...]:
        if feed is None:
            return tuple(self.store.river_items(self.config.dedupe))
        return tuple(RiverItem(e) for e in self.store.river() if e.feed_url == feed.url)

    def _pages(self, feed: render.FeedView | None) -> list[tuple[RiverItem, ...]]:
        # Every request checks its page number against these: compute them once per version
        # (and per config, which a reload replaces), not once per request.
        key = (self.store.version, id(self.config), feed.url if feed else "")
        cached = self._page_cache.get(key)
        if cached is None:
            # A feed's own page shows all of it: new_feed_items caps only the shared river.
            per_feed = self.config.new_feed_items if feed is None else 0
            cached = render.paginate(
                self._items(feed), self.config.items_per_page, self.config.days_per_page, per_feed
            )
            if len(self._page_cache) > 64:
                self._page_cache.clear()
            self._page_cache[key] = cached
        return cached

    def _river_page(self, request: IRequest, feed: render.FeedView | None) -> Any:
        page = _page_number(request)
        pages = self._pages(feed)
        if page is None or page > len(pages):
            return self._not_found(request)
        key = ("river", feed.url if feed else "", str(page))
        return self._serve(request, key, HTML, self._render_river, page, feed)

    def _feed_document(
        self, request: IRequest, name: str, content_type: bytes, fn: Callable[..., bytes]
    ) -> Any:
        page = _page_number(request)
        if page is None or page > len(self._pages(None)):
            return self._not_found(request)
        return self._serve(request, (name, str(page)), content_type, self._render_feed, fn, page)

    # --- rendering and caching -------------------------------------------------------------

    def _serve(
        self,
        request: IRequest,
        key: Key,
        content_type: bytes,
        inputs: Callable[..., tuple[Any, ...]],
        *args: Any,
    ) -> Any:
        version = self.store.version
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return self._send(hit[1], request, content_type)
        pending = self._pending.get(key)
        if pending is not None and pending[0] == version:
            waiter: Deferred[Rendered] = Deferred()
            pending[1].append(waiter)
            return waiter.addCallback(self._send, request, content_type)
        waiters: list[Deferred[Rendered]] = []
        self._pending[key] = (version, waiters)
        # The inputs are taken on the reactor thread; rendering and gzip run elsewhere.
        started = time.perf_counter()
        d: Deferred[Rendered] = self.run_in_thread(_render_job, self._now(), *inputs(*args))
        self.renders += 1
        route = route_of(request.path)

        def done(result: Rendered) -> Rendered:
            self.metrics.rendered(route, time.perf_counter() - started)
            if self._pending.get(key, (None,))[0] == version:
                del self._pending[key]
            if key not in self._cache or self._cache[key][0] < version:
                self._cache[key] = (version, result)
            for w in waiters:
                w.callback(result)
            return result

        def failed(failure: Failure) -> Failure:
            if self._pending.get(key, (None,))[0] == version:
                del self._pending[key]
            for w in waiters:
                w.errback(failure)
            return failure

        d.addCallbacks(done, failed)
        return d.addCallback(self._send, request, content_type)

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
        request.setHeader(b"cache-control", f"public, max-age={max_age}".encode())
        request.setHeader(b"vary", b"Accept-Encoding")
        # A weak ETag per representation: the gzip bytes are a different entity.
        etag = f'W/"{page.etag}{"-gz" if zipped else ""}"'.encode()
        request.setHeader(b"etag", etag)
        request.setHeader(b"last-modified", format_datetime(page.modified, usegmt=True).encode())
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
        return render.feed_views(self.config, self.store.feed_states())

    def _updated(self) -> datetime | None:
        fetched = [s.last_fetch for s in self.store.feed_states().values() if s.last_fetch]
        return max(fetched, default=None)

    def _render_river(self, page: int, feed: render.FeedView | None) -> tuple[Any, ...]:
        pages = self._pages(feed)
        view = render.PageView(
            items=pages[page - 1],
            page=page,
            has_next=page < len(pages),
            updated=self._updated(),
            feed=feed,
        )
        return (render.render_river, self.config, view, self._feeds(), self._now())

    def _render_feed(self, fn: Callable[..., bytes], page: int) -> tuple[Any, ...]:
        pages = self._pages(None)
        entries = tuple(item.entry for item in pages[page - 1])
        return (fn, self.config, entries, self._feeds(), self._now(), page, page < len(pages))

    def _render_entries(self, fn: Callable[..., bytes]) -> tuple[Any, ...]:
        entries = tuple(item.entry for item in self._pages(None)[0])
        return (fn, self.config, entries, self._feeds(), self._now())

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

    def _not_found(self, request: IRequest) -> bytes:
        request.setResponseCode(404)
        body = rendered(render.render_not_found(self.config), self._started or self._now())
        return self._send(body, request, HTML, max_age=60, conditional=False)


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
