"""Fakes and helpers for testing planet and code built on it (as txacme ships MemoryStore).

Nothing here is used by the daemon itself.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from attrs import evolve, frozen
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from planet.config import Config, parse_config
from planet.model import FetchResult, ParsedFeed
from planet.store import ApplyStats, Store
from planet.update import update_feed
from planet.workers import InlineParser, inline_parser

__all__ = [
    "ATOM",
    "HANG",
    "HTML",
    "HeldParser",
    "InlineParser",
    "MemoryFeeds",
    "Reply",
    "Seen",
    "inline_parser",
    "ok",
    "planet_ini",
    "record_fetch",
    "redirect",
    "run_inline",
    "status",
]

T = TypeVar("T")


def run_inline(f: Callable[..., T], *args: Any) -> Deferred[T]:
    """A :data:`planet.interfaces.RunInThread` that runs ``f`` on the calling thread: renders
    and snapshot writes happen at once, under a test's Clock."""
    return maybeDeferred(f, *args)


class HeldParser(InlineParser):
    """A parser whose parses wait until the test fires them: each call adds ``(deferred,
    arguments)`` to :attr:`held` (a parse the cycle is still waiting for)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[Deferred[ParsedFeed], tuple[Any, ...]]] = []

    def __call__(self, *args: Any) -> Deferred[ParsedFeed]:
        d: Deferred[ParsedFeed] = Deferred()
        self.held.append((d, args))
        return d


_DEFAULTS = parse_config("[Planet]\n", "<defaults>")


def record_fetch(
    store: Store,
    url: str,
    result: FetchResult,
    parsed: ParsedFeed | None,
    now: datetime,
    config: Config | None = None,
    rng: random.Random | None = None,
) -> ApplyStats:
    """Apply one fetch of ``url`` to ``store`` as the daemon does: decide, then apply."""
    if config is None:
        # The store's own retention, as the daemon's config would have set it.
        age = store.max_entry_age
        config = evolve(_DEFAULTS, max_entry_age_days=age.days if age is not None else 0)
    before = store.state(url)
    update = update_feed(config, before, result, parsed, now, rng or random.Random(0))
    return store.apply(url, update)


def planet_ini(name: str, feeds: Iterable[str | tuple[str, str | None]], **settings: object) -> str:
    """A Planet INI file: ``[Planet]`` with ``name`` and ``settings`` (in order), then one
    section per feed, each a URL or ``(url, name)`` (a None name: a section without one)."""
    lines = ["[Planet]", f"name = {name}"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    for feed in feeds:
        url, feed_name = (feed, None) if isinstance(feed, str) else feed
        lines += ["", f"[{url}]"]
        if feed_name is not None:
            lines.append(f"name = {feed_name}")
    return "\n".join(lines) + "\n"


ATOM = "application/atom+xml; charset=utf-8"
HTML = "text/html; charset=utf-8"


@frozen
class Reply:
    """One canned response. ``hold``: clock seconds before it is sent; ``hang``: sent only
    when the test calls :meth:`MemoryFeeds.finish`; ``conditional``: 304 (with the same
    headers) when the request's If-None-Match matches the ETag."""

    code: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    hold: float = 0.0
    hang: bool = False
    conditional: bool = False

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def _headers(content_type: str | None, headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    pairs = [("Content-Type", content_type)] if content_type else []
    return tuple(pairs + [(k.replace("_", "-"), v) for k, v in headers.items()])


def ok(body: bytes, content_type: str = ATOM, hold: float = 0.0, **headers: str) -> Reply:
    """A 200 with ``body``; keyword headers spell ``-`` as ``_`` (``Retry_After``)."""
    return Reply(200, body, _headers(content_type, headers), hold=hold)


def status(code: int, hold: float = 0.0, **headers: str) -> Reply:
    """A bodyless answer (an error page for codes other than 304)."""
    body = b"" if code == 304 else f"<h1>{code}</h1>".encode()
    return Reply(code, body, _headers(None if code == 304 else HTML, headers), hold=hold)


def redirect(code: int, location: str) -> Reply:
    return Reply(code, b"moved", _headers(HTML, {"Location": location}))


#: A response that never comes (until :meth:`MemoryFeeds.finish`).
HANG = Reply(hang=True)


@frozen
class Seen:
    """A request the feeds saw: when (clock seconds), what, from which Host, its headers."""

    at: float
    url: str
    host: str
    headers: dict[str, str]


class MemoryFeeds(Resource):
    """Feeds in memory, for :class:`treq.testing.StubTreq`: URL -> a plan of replies (each
    request takes the next; the last one repeats); any other URL is a 404.

    Records every request (:attr:`requests`) and the requests in progress per Host header
    (:attr:`active`, :attr:`peak`): what politeness is measured by.
    """

    isLeaf = True

    def __init__(self, clock: IReactorTime | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.plans: dict[str, list[Reply]] = {}
        self.requests: list[Seen] = []
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        #: Hanging requests, by URL, and the URLs whose hanging request the client gave up.
        self.open: list[tuple[str, Request]] = []
        self.lost: list[str] = []

    def plan(self, url: str, *replies: Reply) -> None:
        self.plans[url] = list(replies)

    def serve(
        self, url: str, body: bytes, code: int = 200, content_type: str = ATOM, **headers: str
    ) -> None:
        """Answer every request for ``url`` with ``body``."""
        self.plan(url, Reply(code, body, _headers(content_type, headers)))

    def hang(self, url: str) -> None:
        self.plan(url, HANG)

    def finish(self, url: str, body: bytes, content_type: str = ATOM) -> None:
        """Answer the hanging request for ``url`` with ``body``."""
        request = next(r for u, r in self.open if u == url)
        request.setHeader("content-type", content_type)
        request.write(body)
        request.finish()

    def count(self, url: str) -> int:
        return sum(1 for r in self.requests if r.url == url)

    def times(self, url: str) -> list[float]:
        return [r.at for r in self.requests if r.url == url]

    def urls(self) -> list[str]:
        return [r.url for r in self.requests]

    def headers_of_last(self, url: str) -> dict[str, str]:
        return [r.headers for r in self.requests if r.url == url][-1]

    def render_GET(self, request: Request) -> Any:
        url = str(request.URLPath().click(request.path))
        host = (request.getHeader("host") or "").lower()
        headers = {
            k.decode().lower(): v[-1].decode("latin-1")
            for k, v in request.requestHeaders.getAllRawHeaders()
        }
        now = self.clock.seconds() if self.clock is not None else 0.0
        self.requests.append(Seen(now, url, host, headers))
        self.active[host] += 1
        self.peak[host] = max(self.peak[host], self.active[host])
        replies = self.plans.get(url)
        if not replies:
            reply = status(404)
        else:
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if reply.conditional and headers.get("if-none-match") == reply.header("etag"):
            reply = Reply(304, b"", tuple(h for h in reply.headers if h[0] != "Content-Type"))
        if reply.hang:
            return self._hang(url, host, request)
        request.setResponseCode(reply.code)
        for name, value in reply.headers:
            request.setHeader(name, value)
        if not reply.hold:
            self.active[host] -= 1
            return reply.body
        return self._hold(reply, host, request)

    def _hang(self, url: str, host: str, request: Request) -> Any:
        self.open.append((url, request))

        def done(result: object) -> None:
            self.active[host] -= 1
            self.open.remove((url, request))
            if isinstance(result, Failure):
                self.lost.append(url)

        request.notifyFinish().addBoth(done)
        return NOT_DONE_YET

    def _hold(self, reply: Reply, host: str, request: Request) -> Any:
        if self.clock is None:
            raise ValueError("a held reply needs MemoryFeeds(clock)")

        def send() -> None:
            self.active[host] -= 1
            request.write(reply.body)
            request.finish()

        call = self.clock.callLater(reply.hold, send)

        def gone(_: object) -> None:
            if call.active():
                call.cancel()
                self.active[host] -= 1

        request.notifyFinish().addErrback(gone)
        return NOT_DONE_YET
