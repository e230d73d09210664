"""The Klein web view: the river as HTML and feeds, the status page, ``/health``.

Every route is a row of :data:`planet.routes.ROUTES`. :class:`PlanetWeb` takes each page's
inputs on the reactor thread (jobs of :mod:`planet.renderjobs`); :mod:`planet.pagecache`
renders them off it, once per version of what they show (the river and the feeds we
publish: ``Store.shown_version``; the status page: the store's version), and
:mod:`planet.httpsend` answers with the cached bytes: ETag, Last-Modified, gzip, the
security headers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from importlib import resources
from typing import Any, Protocol

from attrs import define, field
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from werkzeug.exceptions import NotFound

from planet import formats, render, renderjobs
from planet.config import Config
from planet.httpsend import PlanetSite, SecuredResource, send
from planet.interfaces import RunInThread
from planet.metrics import Metrics
from planet.model import ListState, utc_from_timestamp
from planet.pagecache import PageCache, Rendered, RenderJob, rendered
from planet.render import FeedView
from planet.renderjobs import (
    FeedDocument,
    FeedJob,
    FeedViews,
    LazyFeedViews,
    OpmlJob,
    RiverJob,
    RiverPager,
    StatusJob,
    StatusJsonJob,
    StatusRows,
    json_bytes,
)
from planet.routes import BY_NAME, HOT, HTML, ROUTES, Route
from planet.statuspage import FILTERS
from planet.store import Store
from planet.themeweb import Page, ThemePages

#: Seconds a rendering of ``/feeds`` ("12 min ago") is served before it is made again.
STATUS_MAX_AGE = 30.0

_STYLE = rendered(
    resources.files("planet").joinpath("themes/default/style.css").read_bytes(),
    utc_from_timestamp(0),
)


@define
class _FeedViews:
    """The feed views of the newest shown version of the store and config, made lazily
    (see :class:`~planet.renderjobs.LazyFeedViews`); each subscription keeps the slug it was
    given while its name makes it."""

    _last: LazyFeedViews | None = None

    def of(self, config: Config, store: Store) -> LazyFeedViews:
        # A view is made of the state's shown fields only (see Store.shown_version).
        last, version = self._last, store.shown_version
        if last is not None and last.version == version and last.config is config:
            return last
        # Versions no render needed are skipped: the new one keeps the slugs of the last made.
        made_before = last if last is None or last.made is not None else last.previous
        self._last = LazyFeedViews(version, config, dict(store.feed_states()), made_before)
        return self._last

    def for_routing(self, config: Config, store: Store) -> FeedViews:
        """The newest views made (a render makes the next ones within a second); made here,
        on the reactor thread, only when none has been yet."""
        last = self.of(config, store)
        made, previous = last.made, last.previous
        if made is not None:
            return made
        if previous is not None and previous.made is not None:
            return previous.made
        return last.get()


@define(slots=False, repr=False)
class PlanetWeb:
    """Routes of the public web view. :meth:`site` gives the ``twisted.web`` Site.

    ``run_in_thread``, ``min_render_interval`` and ``stale_wait`` say where and how often
    pages are rendered (see :class:`~planet.pagecache.RenderSettings`).
    """

    app = Klein()

    config: Config
    store: Store
    clock: IReactorTime
    run_in_thread: RunInThread
    snapshot_written: Callable[[], datetime | None] = lambda: None
    #: Why the daemon is not well (fetch cycles that fail to start), or None: /health says so.
    problem: Callable[[], str | None] = lambda: None
    #: When the config in use was loaded (a reload sets it again).
    config_loaded: datetime | None = None
    metrics: Metrics = field(factory=Metrics)
    #: While the store changes, a page is rendered again at most this often (seconds); in
    #: between, the last rendering is served and a refresh is scheduled for the end of it.
    min_render_interval: float = 0.0
    #: How long a request for a changed page waits for its new rendering before it is
    #: answered with the previous one (None: always wait).
    stale_wait: float | None = None
    #: A page (river, Atom, JSON Feed) ends before its items' content passes this many bytes.
    max_page_bytes: int = render.MAX_PAGE_BYTES
    #: The rendered pages.
    pages: PageCache = field(init=False)
    #: The operator's templates and materials (config.theme), served before the routes.
    themes: ThemePages = field(factory=ThemePages)
    #: The WebSub subscriber (``/websub/<id>``); None: WebSub is not wired in.
    websub_hub: WebSubEndpoint | None = None
    _pager: RiverPager = field(factory=RiverPager)
    _views: _FeedViews = field(factory=_FeedViews)
    _started: datetime | None = None

    def __attrs_post_init__(self) -> None:
        self.pages = PageCache(self, lambda: self.store.version, self.clock, self.metrics)

    def reconfigure(self, config: Config) -> None:
        """Serve with ``config`` from now on (a reload, or a reading list that changed)."""
        self.config = config
        # Every page shows the config.
        self.pages.clear()

    def resource(self) -> IResource:
        """The root resource: every route, with the security headers on every response."""
        if self._started is None:
            self._started = self._now()
        return SecuredResource(self.app.resource(), self.metrics, self._hot)

    def site(self, log: Logger | None = None) -> PlanetSite:
        """A Site serving this view: no tracebacks shown, requests logged to ``log`` only
        while the config's ``access_log`` is on."""
        return PlanetSite(
            self.resource(),
            access_log=lambda: self.config.access_log,
            log=log or Logger(namespace="planet.web"),
            reactor=self.clock,
            # The one body planet takes is a hub's push: a feed, capped like a fetched one.
            max_body=lambda: self.config.max_feed_bytes,
        )

    def _hot(self, request: IRequest) -> Any:
        """A hot route's answer when asked for with no query, or the theme's; None for
        anything else."""
        if request.method == b"POST" and request.path.startswith(_PUSH_PREFIX):
            # A hub's pushes come by the hundred a second: Klein's routing would double
            # what each costs the reactor.
            sub_id = request.path[len(_PUSH_PREFIX) :]
            if sub_id and b"/" not in sub_id:
                return self.websub(request, _WEBSUB, sub_id.decode("ascii", "replace"))
        theme = self.themes.answer(self, request)
        if theme is not None:
            return theme
        if request.args or request.method not in (b"GET", b"HEAD"):
            return None
        route = HOT.get(request.path)
        if route is None:
            return None
        return getattr(self, route.handler)(request, route)

    # --- routes: the handlers named in planet.routes.ROUTES ------------------------------

    def river(self, request: IRequest, route: Route) -> Any:
        return self._river_page(request, route, None)

    def feed_river(self, request: IRequest, route: Route, slug: str) -> Any:
        feed = self._views.for_routing(self.config, self.store).by_slug.get(slug)
        if feed is None:
            return self._not_found(request)
        return self._river_page(request, route, feed)

    def atom(self, request: IRequest, route: Route) -> Any:
        return self._feed_document(request, route, formats.render_atom)

    def rss20(self, request: IRequest, route: Route) -> Any:
        return self._serve(request, route, lambda: self._feed_job(renderjobs.rss20, 1))

    def json_feed(self, request: IRequest, route: Route) -> Any:
        return self._feed_document(request, route, formats.render_json_feed)

    def opml(self, request: IRequest, route: Route) -> Any:
        return self._serve(request, route, self._opml_job)

    def feeds(self, request: IRequest, route: Route) -> Any:
        values = request.args.get(b"state") if request.args else None
        state = values[0].decode("utf-8", "replace") if values else None
        if state is not None and state not in FILTERS:
            # Not echoed: the value is the requester's, the answer plain text anyway.
            return self._bad_request(request, f"unknown state: one of {', '.join(FILTERS)}")
        # "12 min ago" is true at render time: rendered again after STATUS_MAX_AGE seconds.
        return self._serve(
            request, route, lambda: self._status_job(state), state or "", max_age=STATUS_MAX_AGE
        )

    def feeds_json(self, request: IRequest, route: Route) -> Any:
        return self._serve(request, route, lambda: StatusJsonJob(self._status_rows()))

    def style(self, request: IRequest, route: Route) -> bytes:
        return send(_STYLE, request, route.content_type, max_age=86400)

    def prometheus(self, request: IRequest, route: Route) -> bytes:
        # Not cached and on the reactor thread: the gauges read the store at scrape time.
        body, _ = self.metrics.exposition()
        page = rendered(body, self._now())
        return send(page, request, route.content_type, max_age=0, conditional=False)

    def health(self, request: IRequest, route: Route) -> bytes:
        body = json_bytes(self.health_data())
        return send(rendered(body, self._now()), request, route.content_type, max_age=0)

    def websub(self, request: IRequest, route: Route, sub_id: str) -> Any:
        """The WebSub callback: the hub's verification of intent (GET), its pushes (POST)."""
        if self.websub_hub is None:
            return self._not_found(request)
        request.setHeader(b"content-type", route.content_type)
        request.setHeader(b"cache-control", b"no-store")
        if request.method == b"POST":
            body = _capped_body(request, self.config.max_feed_bytes)
            if body is None:
                self.metrics.websub_push("too-large")
                request.setResponseCode(413)
                return b"413 Payload Too Large: over max_feed_bytes\n"
            signature = _text(request.getHeader(b"x-hub-signature"))
            content_type = _text(request.getHeader(b"content-type"))
            return _pushed(request, self.websub_hub.push(sub_id, signature, body, content_type))
        args = {
            k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
            for k, v in (request.args or {}).items()
            if v
        }
        code, answer = self.websub_hub.verify(sub_id, args)
        request.setResponseCode(code)
        return answer if request.method != b"HEAD" else b""

    @app.handle_errors(NotFound)
    def missing(self, request: IRequest, failure: Any) -> bytes:
        return self._not_found(request)

    # --- data ----------------------------------------------------------------------------

    def health_data(self) -> dict[str, Any]:
        """The ``/health`` document."""
        subscribed = {s.url for s in self.config.subscriptions}
        states = [s for url, s in self.store.feed_states().items() if url in subscribed]
        fetched = [s.last_fetch for s in states if s.last_fetch is not None]
        problem = self.problem()
        return {
            "status": "ok" if problem is None else "degraded",
            "problem": problem,
            "feeds": len(subscribed),
            "entries": self.store.entry_count(),
            "feeds_ok": sum(1 for s in states if s.last_fetch is not None and not s.failing),
            "feeds_failing": sum(1 for s in states if s.failing),
            "last_fetch": _iso(max(fetched)) if fetched else None,
            "snapshot_written": _iso(self.snapshot_written()),
            "config_loaded": _iso(self.config_loaded),
            "template_errors": self.themes.failures.count,
        }

    def output_pages(self) -> dict[str, Callable[[], Page]]:
        """Every file ``output_dir`` holds, each with how to get its page as served now."""
        return self.themes.outputs(self)

    # --- pages: what each is rendered from, taken on the reactor thread -----------------

    def _river_page(self, request: IRequest, route: Route, feed: FeedView | None) -> Any:
        page = _page_number(request)
        # A page number past the end is found out by its render (a 404 then).
        if page is None:
            return self._not_found(request)
        feed_url = feed.url if feed else ""
        return self._serve(request, route, lambda: self._river_job(page, feed), feed_url, str(page))

    def _feed_document(self, request: IRequest, route: Route, document: FeedDocument) -> Any:
        page = _page_number(request)
        if page is None:
            return self._not_found(request)
        return self._serve(request, route, lambda: self._feed_job(document, page), str(page))

    def _river_job(self, page: int, feed: FeedView | None) -> RiverJob:
        source, feeds = self._source(feed.url if feed else None), self._feed_views()
        return RiverJob(self._pager, source, page, feed, feeds, self._updated(), self._now())

    def _feed_job(self, document: FeedDocument, page: int) -> FeedJob:
        source, feeds = self._source(None), self._feed_views()
        return FeedJob(self._pager, source, document, page, feeds, self._now())

    def _opml_job(self) -> OpmlJob:
        return OpmlJob(self.config, self._feed_views(), self._now())

    def _status_job(self, state: str | None = None) -> StatusJob:
        stored = self.store.reading_lists()
        files = tuple(ListState(url=path, skipped=s) for path, s in self.config.skipped_entries)
        urls = tuple(stored[url] for url in self.config.reading_lists if url in stored)
        return StatusJob(self.config, self._status_rows(), self._now(), state, files + urls)

    def _source(self, feed_url: str | None) -> renderjobs.RiverSource:
        return renderjobs.river_source(self.store, self.config, feed_url, self.max_page_bytes)

    def _feed_views(self) -> LazyFeedViews:
        return self._views.of(self.config, self.store)

    def _updated(self) -> datetime | None:
        # The river's "Last updated": the newest fetch when the page is rendered, i.e. (as
        # it is rendered when what it shows changes, not after each 304) when its content
        # last changed. The fetch times of now are on /feeds and /health.
        fetched = [s.last_fetch for s in self.store.feed_states().values() if s.last_fetch]
        return max(fetched, default=None)

    def _status_rows(self) -> StatusRows:
        # Copies taken here, on the reactor thread; the rows are made in the render's.
        return StatusRows(
            config=self.config,
            states=dict(self.store.feed_states()),
            counts=self.store.feed_counts(),
            websub=self.websub_hub.rows() if self.websub_hub is not None else {},
            now=self._now(),
        )

    def _now(self) -> datetime:
        return utc_from_timestamp(self.clock.seconds())

    # --- answering -------------------------------------------------------------------------

    def _serve(
        self,
        request: IRequest,
        route: Route,
        inputs: Callable[[], RenderJob],
        *key: str,
        max_age: float | None = None,
    ) -> Any:
        """Answer with the page of ``route`` that ``key`` names, rendered from ``inputs()``
        when it changed or is older than ``max_age`` (see :meth:`PageCache.page
        <planet.pagecache.PageCache.page>`)."""
        answer = self.page(route, key, inputs, max_age)
        if isinstance(answer, Rendered):
            return self._send(answer, request, route.content_type)
        return answer.addCallback(self._answer, request, route.content_type)

    def page(
        self,
        route: Route,
        key: tuple[str, ...],
        inputs: Callable[[], RenderJob],
        max_age: float | None = None,
    ) -> Rendered | Deferred[Rendered | None]:
        """The page of ``route`` that ``key`` names, from the page cache: a ``views_only``
        route's at the store's shown version, any other's at its version."""
        version = (lambda: self.store.shown_version) if route.views_only else None
        return self.pages.page((route.name, *key), route.name, inputs, max_age, version)

    def _answer(self, page: Rendered | None, request: IRequest, content_type: bytes) -> bytes:
        if page is None:
            return self._not_found(request)
        return self._send(page, request, content_type)

    def _send(self, page: Rendered, request: IRequest, content_type: bytes) -> bytes:
        return send(page, request, content_type, self.config.cache_max_age)

    def _bad_request(self, request: IRequest, message: str) -> bytes:
        request.setResponseCode(400)
        body = rendered(f"{message}\n".encode(), self._now())
        return send(body, request, b"text/plain; charset=utf-8", max_age=0, conditional=False)

    def _not_found(self, request: IRequest) -> bytes:
        request.setResponseCode(404)
        body = rendered(render.render_not_found(self.config), self._started or self._now())
        return send(body, request, HTML, max_age=60, conditional=False)


def _klein_handler(route: Route) -> Callable[..., Any]:
    """Klein's handler of ``route``: its method of PlanetWeb, given the route."""
    method = getattr(PlanetWeb, route.handler)

    def handle(web: PlanetWeb, request: IRequest, **params: str) -> Any:
        return method(web, request, route, **params)

    return handle


def _add_routes(app: Klein) -> None:
    for route in ROUTES:
        handle = _klein_handler(route)
        for rule in route.rules:
            app.route(rule, methods=list(route.methods), endpoint=route.name)(handle)


_add_routes(PlanetWeb.app)


_WEBSUB = BY_NAME["websub"]
_PUSH_PREFIX = _WEBSUB.rules[0].partition("<")[0].encode()


class WebSubEndpoint(Protocol):
    """What the WebSub callback route needs (:class:`planet.websubservice.WebSubService`)."""

    def verify(self, sub_id: str, args: Mapping[str, str]) -> tuple[int, bytes]: ...

    def push(
        self, sub_id: str, signature: str | None, body: bytes, content_type: str | None
    ) -> int: ...

    def rows(self) -> dict[str, dict[str, Any]]: ...


def _pushed(request: IRequest, code: int) -> bytes:
    if code in (429, 503):
        request.setHeader(b"retry-after", b"1")
    request.setResponseCode(code)
    return b""


def _capped_body(request: IRequest, limit: int) -> bytes | None:
    """The request body, or None when it is over ``limit`` bytes (never read whole then)."""
    content = request.content
    if content is None:
        return b""
    content.seek(0, 2)
    size = content.tell()
    if size > limit:
        return None
    content.seek(0)
    return content.read()


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _iso(when: datetime | None) -> str | None:
    # To the microsecond: a tool watching config_loaded must see a reload within the second.
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


def _page_number(request: IRequest) -> int | None:
    values = request.args.get(b"page") if request.args else None
    if not values:
        return 1
    try:
        page = int(values[0])
    except ValueError:
        return None
    return page if page >= 1 else None
