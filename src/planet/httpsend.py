"""Answering HTTP: a rendered page with its validators, a big body sent as the connection
drains, the security headers on every response, 400/414/431 for what cannot be routed,
and the Site.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from twisted.internet.interfaces import IAddress, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.web import http, server
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from zope.interface import implementer

from planet.metrics import Metrics, route_of
from planet.pagecache import Rendered

#: No script may run on any page we serve; entry images and media come from anywhere.
SECURITY_HEADERS = {
    b"content-security-policy": (
        b"default-src 'none'; style-src 'self'; img-src http: https: data:; "
        b"media-src http: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"strict-origin-when-cross-origin",
}

#: Bytes of a cached body handed to a connection at a time.
BODY_SLICE = 64 * 1024


def send(
    page: Rendered, request: IRequest, content_type: bytes, max_age: int, conditional: bool = True
) -> bytes:
    """Answer with ``page``: validators, caching, gzip when asked, or a 304. The body to
    write is returned."""
    zipped = b"gzip" in (request.getHeader(b"accept-encoding") or b"")
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"cache-control", cache_control(max_age))
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
def cache_control(max_age: int) -> bytes:
    return f"public, max-age={max_age}".encode()


def bad_request(request: IRequest) -> bytes:
    """The 400 for a URL that is not UTF-8 once percent-decoded."""
    request.setResponseCode(http.BAD_REQUEST)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", cache_control(60))
    return b"400 Bad Request: the URL is not UTF-8.\n"


class SecuredResource(Resource):
    """The Klein resource with the security headers added to every response, and every
    response counted in the metrics by route.

    ``hot`` answers the most requested URLs (the front page and the feeds, without a query)
    before Klein's routing, which costs more than the rest of such a request; it gives None
    for everything else. A path or host that is not UTF-8 once percent-decoded gets a 400
    here: Klein would answer it too, but with a traceback in the log.
    """

    isLeaf = True

    def __init__(self, inner: IResource, metrics: Metrics, hot: Callable[[IRequest], Any]) -> None:
        super().__init__()
        self._inner = inner
        self._metrics = metrics
        self._hot = hot

    def render(self, request: IRequest) -> Any:
        for name, value in SECURITY_HEADERS.items():
            request.setHeader(name, value)
        route = route_of(request.path)
        done = cast(server.Request, request)
        # Set once the request is over: finished, or its connection lost.
        over: list[bool] = []

        def ended(_: object) -> None:
            over.append(True)
            self._metrics.http_request(route, done.code)

        done.notifyFinish().addBoth(ended)
        answer = self._hot(request)
        if answer is None:
            if not _utf8_url(done):
                return bad_request(request)
            return self._inner.render(request)
        if isinstance(answer, bytes):
            _finish_unless(answer, done, over)
        else:
            answer.addCallbacks(_finish_unless, done.processingFailed, callbackArgs=(done, over))
        return server.NOT_DONE_YET


def _utf8_url(request: server.Request) -> bool:
    """Whether the decoded path and the host are UTF-8, as Klein needs them."""
    try:
        b"/".join((request.prepath or []) + (request.postpath or [])).decode("utf-8")
        request.getRequestHostname().decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _finish_unless(body: bytes, request: server.Request, over: list[bool]) -> None:
    # The client may have gone while the page was rendered.
    if not over:
        _finish(body, request)


def _finish(body: bytes, request: server.Request) -> None:
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


class _Channel(http.HTTPChannel):
    """An HTTP channel that answers 414 to an over-long request line and 431 to too many or
    too large header lines (Twisted answers 400, or hangs up on one line over ``MAX_LENGTH``),
    and 413 to a request body over the site's ``max_body()`` as soon as it is announced or
    read past (Twisted would spool any body, of any size, to a temporary file first).

    The limits are Twisted's: ``totalHeadersSize`` (16 KiB) for the request line and headers
    together, ``MAX_LENGTH`` per line (the same), ``maxHeaders`` (500).
    """

    _body_read = 0
    _refused = False
    _host: IAddress | None = None

    def getHost(self) -> IAddress:
        # Every Request asks (Twisted's Request.__init__), each a getsockname() system
        # call; a connection's own address does not change.
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def _on_request_line(self) -> bool:
        # HTTPChannel's own (name-mangled) flag: set while the request line is awaited.
        return bool(getattr(self, "_HTTPChannel__first_line", 0))

    def _body_limit(self) -> int | None:
        limit = getattr(getattr(self, "site", None), "max_body", None)
        return limit() if limit is not None else None

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        # HTTPChannel makes this check first too (and answers 400).
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._refuse(_URI_TOO_LONG if self._on_request_line() else _HEADERS_TOO_LARGE)
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        self._refuse(_URI_TOO_LONG if self._on_request_line() else _HEADERS_TOO_LARGE)

    def headerReceived(self, line: bytes) -> bool:
        if self._receivedHeaderCount >= self.maxHeaders:
            self._refuse(_HEADERS_TOO_LARGE)
            return False
        return bool(super().headerReceived(line))

    def allHeadersReceived(self) -> None:
        self._body_read = 0
        limit = self._body_limit()
        if limit is not None and self.length is not None and self.length > limit:
            self._refuse(_TOO_LARGE)  # announced: not one byte of it is read
            return
        super().allHeadersReceived()
        decoder = self._transferDecoder
        if limit is not None and decoder is not None:
            # Chunked, or longer than announced: counted as the body is decoded.
            decoder.dataCallback = functools.partial(self._body_chunk, limit, decoder.dataCallback)

    def _body_chunk(self, limit: int, deliver: Callable[[bytes], None], data: bytes) -> None:
        if self._refused:
            return
        self._body_read += len(data)
        if self._body_read > limit:
            self._refuse(_TOO_LARGE)
            return
        deliver(data)

    def rawDataReceived(self, data: bytes) -> None:
        if not self._refused:
            super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if not self._refused:
            super().allContentReceived()

    def _refuse(self, status: bytes) -> None:
        self._refused = True
        body = status + b"\n"
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nx-content-type-options: nosniff\r\n"
            b"connection: close\r\n\r\n%s" % (status, len(body), body)
        )
        self.loseConnection()


_URI_TOO_LONG = b"414 URI Too Long"
_HEADERS_TOO_LARGE = b"431 Request Header Fields Too Large"
_TOO_LARGE = b"413 Content Too Large"


class PlanetSite(server.Site):
    """The Site: no tracebacks for readers, 413/414/431 from :class:`_Channel`, and an access
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
        max_body: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(resource, reactor=reactor)
        self._access_log = access_log
        self._access = log
        #: The longest request body read, in bytes (None: Twisted's, unbounded).
        self.max_body = max_body

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
