"""The Klein web view: the river as HTML and Atom, plus ``/health``.

Pages are rendered off the reactor thread once per store version and served from the
cached bytes; concurrent requests for a page being rendered share one render.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from typing import Any

from attrs import define, field
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.iweb import IRequest
from werkzeug.exceptions import NotFound

from planet import render
from planet.config import Config
from planet.model import utc_from_timestamp
from planet.store import Store

HTML = b"text/html; charset=utf-8"
ATOM = b"application/atom+xml; charset=utf-8"
JSON = b"application/json; charset=utf-8"
CSS = b"text/css; charset=utf-8"
_STYLE = resources.files("planet").joinpath("style.css").read_bytes()
_STYLE_ETAG = b'"' + hashlib.sha256(_STYLE).hexdigest()[:16].encode() + b'"'

RunInThread = Callable[..., "Deferred[Any]"]


def _iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


@define(slots=False)
class PlanetWeb:
    """Routes of the public web view. Use ``PlanetWeb(...).app.resource()`` as the Site root."""

    app = Klein()

    config: Config
    store: Store
    clock: IReactorTime
    run_in_thread: RunInThread
    snapshot_written: Callable[[], datetime | None] = lambda: None
    #: Renders done, for tests and metrics: cached pages must not be rendered again.
    renders: int = 0
    _cache: dict[tuple[str, int], tuple[int, bytes]] = field(factory=dict)
    _pending: dict[tuple[str, int], tuple[int, list[Deferred[bytes]]]] = field(factory=dict)

    # --- routes ------------------------------------------------------------------------

    @app.route("/", methods=["GET", "HEAD"])
    @app.route("/index.html", methods=["GET", "HEAD"])
    def river(self, request: IRequest) -> Any:
        page = _page_number(request)
        if page is None:
            return self._not_found(request)
        entries = self.store.river()
        per_page = self.config.items_per_page
        start = (page - 1) * per_page
        if page > 1 and start >= len(entries):
            return self._not_found(request)
        return self._serve(request, ("river", page), HTML, self._render_river, page, start)

    @app.route("/atom.xml", methods=["GET", "HEAD"])
    def atom(self, request: IRequest) -> Any:
        return self._serve(request, ("atom", 1), ATOM, self._render_atom)

    @app.route("/feeds", methods=["GET", "HEAD"])
    def feeds(self, request: IRequest) -> Any:
        return self._serve(request, ("feeds", 1), HTML, self._render_status)

    @app.route("/feeds.json", methods=["GET", "HEAD"])
    def feeds_json(self, request: IRequest) -> Any:
        return self._serve(request, ("feeds.json", 1), JSON, self._render_status_json)

    @app.route("/style.css", methods=["GET", "HEAD"])
    def style(self, request: IRequest) -> bytes:
        request.setHeader(b"content-type", CSS)
        request.setHeader(b"cache-control", b"public, max-age=3600")
        if request.setETag(_STYLE_ETAG) == http.CACHED:
            return b""
        return _STYLE

    @app.route("/health", methods=["GET", "HEAD"])
    def health(self, request: IRequest) -> bytes:
        request.setHeader(b"content-type", JSON)
        request.setHeader(b"cache-control", b"no-cache")
        return _json_bytes(self.health_data())

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
        }

    # --- rendering and caching -------------------------------------------------------------

    def _serve(
        self,
        request: IRequest,
        key: tuple[str, int],
        content_type: bytes,
        render_fn: Callable[..., tuple[Any, ...]],
        *args: Any,
    ) -> Any:
        version = self.store.version
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", b"public, max-age=300")
        etag = f'W/"{version}-{key[0]}-{key[1]}"'.encode()
        if request.setETag(etag) == http.CACHED:
            return b""
        hit = self._cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        pending = self._pending.get(key)
        if pending is not None and pending[0] == version:
            waiter: Deferred[bytes] = Deferred()
            pending[1].append(waiter)
            return waiter
        waiters: list[Deferred[bytes]] = []
        self._pending[key] = (version, waiters)
        # The inputs are taken on the reactor thread; only the rendering runs elsewhere.
        d = self.run_in_thread(*render_fn(*args))
        self.renders += 1

        def done(body: bytes) -> bytes:
            if self._pending.get(key, (None,))[0] == version:
                del self._pending[key]
            if key not in self._cache or self._cache[key][0] < version:
                self._cache[key] = (version, body)
            for waiter in waiters:
                waiter.callback(body)
            return body

        def failed(failure: Failure) -> Failure:
            if self._pending.get(key, (None,))[0] == version:
                del self._pending[key]
            for waiter in waiters:
                waiter.errback(failure)
            return failure

        d.addCallbacks(done, failed)
        return d

    def _now(self) -> datetime:
        return utc_from_timestamp(self.clock.seconds())

    def _feeds(self) -> dict[str, render.FeedView]:
        return render.feed_views(self.config, self.store.feed_states())

    def _render_river(self, page: int, start: int) -> tuple[Any, ...]:
        entries = self.store.river()
        per_page = self.config.items_per_page
        shown = tuple(entries[start : start + per_page])
        updated = max(
            (s.last_fetch for s in self.store.feed_states().values() if s.last_fetch), default=None
        )
        view = render.PageView(
            entries=shown, page=page, has_next=start + per_page < len(entries), updated=updated
        )
        return (render.render_river, self.config, view, self._feeds(), self._now())

    def _render_atom(self) -> tuple[Any, ...]:
        shown = tuple(self.store.river()[: self.config.items_per_page])
        return (render.render_atom, self.config, shown, self._feeds(), self._now())

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
        request.setHeader(b"content-type", HTML)
        return render.render_not_found(self.config)


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
