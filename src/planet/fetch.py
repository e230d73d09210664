"""The only module that talks HTTP: conditional GETs with treq, politely bounded.

:meth:`Fetcher.fetch` always fires with a :class:`FetchResult`; a feed's fault (404,
timeout, oversized body, redirect loop, DNS failure, ...) is a readable ``error`` on it,
never an exception that travels.
"""

from __future__ import annotations

import functools
import hashlib
import typing
import zlib
from collections.abc import Callable
from http import HTTPStatus
from http.cookiejar import CookieJar
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

from attrs import define, field
from hyperlink import EncodedURL
from OpenSSL import SSL
from treq.client import HTTPClient
from twisted.internet import error as neterr
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredSemaphore,
    TimeoutError,
    fail,
    succeed,
)
from twisted.internet.interfaces import IPushProducer, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web._newclient import HEADER, STATUS, HTTP11ClientProtocol
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    GzipDecoder,
    HTTPConnectionPool,
    ResponseDone,
    _HTTP11ClientFactory,
)
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from planet.config import Config
from planet.model import FetchResult
from planet.netguard import AddressPolicy, AddressRefusedError, GuardedEndpointFactory

#: Redirect hops followed before a feed counts as a redirect loop.
MAX_REDIRECTS = 5
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_ACCEPT = (
    "application/atom+xml,application/rss+xml,application/rdf+xml,application/feed+json,"
    "application/xml;q=0.9,text/xml;q=0.9,application/json;q=0.8,*/*;q=0.5"
)
# Error pages and redirect bodies are read only to free the connection.
_DISCARD_LIMIT = 64 * 1024


#: The ``error`` of a fetch refused because the daemon is stopping (never recorded).
SHUTTING_DOWN = "planet is shutting down"


class BodyTooLargeError(Exception):
    """The response body passed ``max_feed_bytes``; the download was aborted."""


class BadEncodingError(Exception):
    """The body's ``Content-Encoding`` stream (gzip, deflate) is corrupt."""

    def __init__(self, coding: str, detail: str) -> None:
        super().__init__(coding, detail)
        self.coding = coding
        self.detail = detail

    def __str__(self) -> str:
        return f"invalid {self.coding} body: {self.detail}"


class ContentCodingError(Exception):
    """A ``Content-Encoding`` planet refuses to decode; str() is the feed's reason."""


class ResponseHeadTooLargeError(Exception):
    """A response's status line and headers passed a cap; str() is the feed's reason."""


class _RedirectError(Exception):
    """A redirect that is not followed (loop, too many hops, unsupported scheme)."""


#: Bytes of one response's status line and headers, at most (1xx heads before it included).
MAX_HEAD_BYTES = 64 * 1024
#: Header lines of one response head, at most (continuation lines count).
MAX_HEADERS = 256
#: One status or header line, at most: Twisted's HTTP parser drops the connection without
#: a word past this (LineReceiver.MAX_LENGTH); checked first, to say why.
MAX_HEAD_LINE = LineReceiver.MAX_LENGTH
_HEAD_STATES = (STATUS, HEADER)


class _CappedHeadProtocol(HTTP11ClientProtocol):
    """Twisted's HTTP/1.1 client, refusing a response whose head passes the caps.

    Twisted's parser keeps every header line it is sent: 1.5 million small ones held
    361 MB. The head is measured before the parser sees it (a whole head in one read with
    two searches, else line by line), and one over a cap fails the request with
    :class:`ResponseHeadTooLargeError`, the connection dropped. A head within the caps
    goes to the parser as before; the body is not looked at.
    """

    _counted: object = None
    _head_bytes = 0
    _head_lines = 0
    #: Bytes of the head line still unfinished at the end of the data so far.
    _partial = 0
    #: Whether that unfinished line is just b"\r" (a blank line cut after its CR).
    _partial_cr = False

    def dataReceived(self, bytes: bytes) -> None:  # noqa: A002 (Twisted's name)
        data = bytes
        while data:
            parser = self._parser
            if parser is None or parser.state not in _HEAD_STATES:
                super().dataReceived(data)
                return
            if parser is not self._counted:
                # A new request on this connection: a new head to count.
                self._counted = parser
                self._head_bytes = self._head_lines = self._partial = 0
                self._partial_cr = False
            cut, problem = self._scan_head(data)
            if problem is not None:
                self._giveUp(Failure(ResponseHeadTooLargeError(problem)))
                return
            super().dataReceived(data[:cut])
            data = data[cut:]

    def _scan_head(self, data: bytes) -> tuple[int, str | None]:
        """How much of ``data`` to give the parser: up to the end of the first blank line
        (the head's end, unless it was a 1xx head), else all; or why to refuse the head."""
        if self._partial == 0 and not data.startswith((b"\n", b"\r\n")):
            # The usual case, a whole head in one read, found without a line-by-line walk:
            # its end is the first blank line, and a head shorter than one line's cap has
            # no line over it.
            limit = MAX_HEAD_LINE - self._head_bytes
            crlf = data.find(b"\n\r\n", 0, limit)
            lf = data.find(b"\n\n", 0, crlf if crlf >= 0 else limit)
            end = lf + 2 if lf >= 0 else crlf + 3 if crlf >= 0 else 0
            if 0 < end <= limit:
                lines = data.count(b"\n", 0, end) - 1
                if self._head_lines + lines <= MAX_HEADERS + 1:
                    self._head_bytes += end
                    self._head_lines = 0
                    return end, None
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline + 1
            self._head_bytes += end - start
            if self._head_bytes > MAX_HEAD_BYTES:
                return 0, f"response headers too large: more than {MAX_HEAD_BYTES} bytes"
            length = self._partial + end - start  # with its "\n", if it has one
            if length - (newline >= 0) > MAX_HEAD_LINE:
                return 0, f"response headers too large: a line of more than {MAX_HEAD_LINE} bytes"
            if newline < 0:
                self._partial_cr = length == 1 and data[start:end] == b"\r"
                self._partial = length
                return end, None
            content = data[start:newline]
            blank = length == 1 or (
                length == 2 and (content == b"\r" if content else self._partial_cr)
            )
            self._partial, self._partial_cr = 0, False
            if blank:
                self._head_lines = 0  # a 1xx head ended: the next one has its own lines
                return end, None
            self._head_lines += 1
            # The status line is the first; the headers come after it.
            if self._head_lines > MAX_HEADERS + 1:
                return 0, f"response headers too large: more than {MAX_HEADERS} header lines"
            start = end
        return len(data), None


class _QuietFactory(_HTTP11ClientFactory):
    # Twisted logs "Starting factory ..." and "Stopping factory ..." at info for every
    # connection: hundreds of lines a cycle that tell an operator nothing.
    noisy = False

    def buildProtocol(self, addr: Any) -> HTTP11ClientProtocol:
        return _CappedHeadProtocol(self._quiescentCallback)


class _QuietPool(HTTPConnectionPool):
    _factory = _QuietFactory


def make_client(
    reactor: Any,
    connect_timeout: float = 10.0,
    guard: AddressPolicy | None = None,
    tls: IPolicyForHTTPS | None = None,
) -> tuple[HTTPClient, HTTPConnectionPool]:
    """One treq client over one shared connection pool, for the whole daemon.

    With a ``guard`` (see :mod:`planet.netguard`), no connection is made to an address it
    refuses, whether named in a feed URL, a redirect or a DNS answer. ``tls`` replaces the
    platform's trust (tests give it their own certificate authority).
    """
    pool = _QuietPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 2
    pool.cachedConnectionTimeout = 60
    endpoints = GuardedEndpointFactory(
        reactor, guard, connect_timeout, tls if tls is not None else BrowserLikePolicyForHTTPS()
    )
    agent = Agent.usingEndpointFactory(reactor, _EndpointCache(endpoints), pool=pool)
    # treq types the jar as its own CookieJar subclass; any CookieJar does what it asks.
    return _URLCachingClient(agent, cookiejar=cast(Any, BoundedCookieJar())), pool


#: Cookies kept for all feeds together, at most (a feed rarely needs one at all).
MAX_COOKIES = 256


class BoundedCookieJar(CookieJar):
    """treq's cookie jar, holding at most :data:`MAX_COOKIES` cookies.

    Cookies go back to the servers that set them, as treq's client always did, but a server
    that sets a new cookie on every response could otherwise grow the jar for ever. Past
    the bound the expired ones go, and if that is not enough, all of them.
    """

    def extract_cookies(self, response: Any, request: Any) -> None:
        super().extract_cookies(response, request)
        if len(self) > MAX_COOKIES:
            self.clear_expired_cookies()
            if len(self) > MAX_COOKIES:
                self.clear()


class _URLCachingClient(HTTPClient):
    """treq's client, but a URL given as text is parsed and encoded once, not per request."""

    def request(self, method: str, url: Any, **kwargs: Any) -> Deferred[Any]:
        if isinstance(url, str):
            url = _request_url(url)
        return super().request(method, url, **kwargs)


#: Endpoints kept by :class:`_EndpointCache` before it starts over.
_MAX_ENDPOINTS = 4096


@implementer(IAgentEndpointFactory)
@define
class _EndpointCache:
    """One endpoint per (scheme, host, port), reused for every request to it.

    The Agent asks for an endpoint on every request, even one a pooled connection serves:
    building a HostnameEndpoint IDNA-encodes the host (and an https one builds a TLS
    context), which was ~7 % of a 304's CPU. The endpoints are stateless between
    connections (each connect() resolves the name again), so reusing them changes nothing.
    """

    _factory: IAgentEndpointFactory
    _endpoints: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = field(factory=dict)

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._factory.endpointForURI(uri)
            if len(self._endpoints) >= _MAX_ENDPOINTS:
                self._endpoints.clear()
            self._endpoints[key] = endpoint
        return endpoint


@define
class Fetcher:
    """Fetch feeds with at most ``per_host`` requests per host and ``max_concurrency`` in all.

    ``timeout`` bounds the whole fetch, redirects and body included; it does not count
    time spent queued behind the concurrency limits.
    """

    _client: HTTPClient
    _clock: IReactorTime
    user_agent: str
    timeout: float = 20.0
    max_bytes: int = 15 * 1024 * 1024
    per_host: int = 2
    max_concurrency: int = 16
    #: Feeds between :meth:`fetch_then`'s request and the end of its ``then``, at most
    #: (None: twice ``max_concurrency``).
    max_held: int | None = None
    closed: bool = False
    _host_limits: dict[str, DeferredSemaphore] = field(factory=dict)
    _all: DeferredSemaphore = field(init=False)
    _held: DeferredSemaphore = field(init=False)

    @classmethod
    def from_config(cls, client: HTTPClient, clock: IReactorTime, config: Config) -> Fetcher:
        """A fetcher with ``config``'s User-Agent, timeout, size cap and concurrency."""
        return cls(
            client,
            clock,
            user_agent=config.user_agent,
            timeout=config.feed_timeout,
            max_bytes=config.max_feed_bytes,
            per_host=config.per_host_concurrency,
            max_concurrency=config.max_concurrency,
        )

    def __attrs_post_init__(self) -> None:
        self._all = DeferredSemaphore(self.max_concurrency)
        self._held = DeferredSemaphore(self.max_held or 2 * self.max_concurrency)

    def fetch(
        self, url: str, etag: str | None = None, last_modified: str | None = None
    ) -> Deferred[FetchResult]:
        """GET ``url`` conditionally; fires with a :class:`FetchResult`, never fails."""
        limit = self._host_limit(url)
        # Host first, then the global slot: a queue for one busy host must not hold
        # global slots that other hosts could use.
        d = limit.run(self._all.run, self._fetch_now, url, etag, last_modified)
        d.addBoth(self._release_host, url, limit)
        return d

    def fetch_held(
        self, url: str, etag: str | None = None, last_modified: str | None = None
    ) -> Deferred[tuple[FetchResult, Callable[[], None]]]:
        """:meth:`fetch`, holding one of ``max_held`` slots until the caller releases it.

        Fires with the result and the function that releases the slot: call it once the
        body is dealt with (parsed, say). A cold cycle fetches far faster than it parses,
        and every body waiting for the parser would otherwise be in memory at once. A feed
        takes its slot once its host has a free one, so a queue for one host holds none.
        """
        return Deferred.fromCoroutine(self._fetch_held(url, etag, last_modified))

    async def _fetch_held(
        self, url: str, etag: str | None, last_modified: str | None
    ) -> tuple[FetchResult, Callable[[], None]]:
        limit = self._host_limit(url)
        await limit.acquire()
        try:
            await self._held.acquire()
            try:
                result = await self._all.run(self._fetch_now, url, etag, last_modified)
            except BaseException:
                self._held.release()
                raise
        finally:
            limit.release()
            self._release_host(None, url, limit)
        return result, _once(self._held.release)

    def reconfigure(self, config: Config) -> None:
        """Use ``config``'s User-Agent, timeout and size cap from the next request on.

        The concurrency limits are the pool's shape and change only at a restart.
        """
        self.user_agent = config.user_agent
        self.timeout = config.feed_timeout
        self.max_bytes = config.max_feed_bytes

    def _host_limit(self, url: str) -> DeferredSemaphore:
        host = host_of(url)
        limit = self._host_limits.get(host)
        if limit is None:
            limit = self._host_limits[host] = DeferredSemaphore(self.per_host)
        return limit

    def close(self) -> None:
        """Start no more requests: queued fetches now end at once with ``SHUTTING_DOWN``."""
        self.closed = True

    def _release_host(self, result: Any, url: str, limit: DeferredSemaphore) -> Any:
        if limit.tokens == limit.limit and not limit.waiting:
            self._host_limits.pop(host_of(url), None)
        return result

    def _fetch_now(
        self, url: str, etag: str | None, last_modified: str | None
    ) -> Deferred[FetchResult]:
        if self.closed:
            return succeed(FetchResult(url=url, final_url=url, status=None, error=SHUTTING_DOWN))
        if not _is_http(url):
            # Config and reading lists only give http(s) URLs; the Agent alone would also
            # connect for ws: ones.
            error = f"unsupported URL: {url[:200]}"
            return succeed(FetchResult(url=url, final_url=url, status=None, error=error))
        started = self._clock.seconds()
        hops: list[tuple[int, str]] = []
        d = Deferred.fromCoroutine(self._get(url, etag, last_modified, hops, started))
        d.addTimeout(self.timeout, self._clock, onTimeoutCancel=_timed_out)

        def failed(failure: Failure) -> FetchResult:
            final = hops[-1][1] if hops else url
            return FetchResult(
                url=url,
                final_url=final,
                status=None,
                redirects=tuple(hops),
                error=self.describe_failure(failure),
                elapsed=self._clock.seconds() - started,
            )

        return d.addErrback(failed)

    async def _get(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        hops: list[tuple[int, str]],
        started: float,
    ) -> FetchResult:
        headers: dict[bytes | str, bytes | str] = {"User-Agent": self.user_agent, "Accept": _ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        while True:
            response = await self._client.get(
                current, headers=headers, allow_redirects=False, unbuffered=True
            )
            if response.code not in _REDIRECT_CODES:
                break
            await _read_body(response, _DISCARD_LIMIT, self._clock, discard=True)
            current = self._follow(url, current, response, hops)
        status = response.code
        # Caching hints count on errors too: a 429 or 503 says when to come back.
        common = dict(
            url=url,
            final_url=current,
            status=status,
            redirects=tuple(hops),
            retry_after=_header(response, b"retry-after"),
            cache_control=_header(response, b"cache-control"),
            expires=_header(response, b"expires"),
            date=_header(response, b"date"),
        )
        if status == 304:
            await _read_body(response, _DISCARD_LIMIT, self._clock, discard=True)
            body = None
        elif 200 <= status < 300:
            body = await _read_body(response, self.max_bytes, self._clock)
        else:
            await _read_body(response, _DISCARD_LIMIT, self._clock, discard=True)
            phrase = _phrase(status)
            return FetchResult(
                error=f"HTTP {status} {phrase}".strip(),
                elapsed=self._clock.seconds() - started,
                **common,
            )
        return FetchResult(
            elapsed=self._clock.seconds() - started,
            body=body,
            body_hash=hashlib.sha256(body).hexdigest() if body is not None else None,
            etag=_header(response, b"etag"),
            last_modified=_header(response, b"last-modified"),
            content_type=_header(response, b"content-type"),
            **common,
        )

    def _follow(
        self, origin: str, current: str, response: IResponse, hops: list[tuple[int, str]]
    ) -> str:
        location = _header(response, b"location")
        if not location:
            raise _RedirectError(f"HTTP {response.code} redirect without a Location header")
        target = urljoin(current, location.strip())
        if not _is_http(target):
            raise _RedirectError(f"redirect to an unsupported URL: {target[:200]}")
        visited = {origin, *(u for _, u in hops)}
        if target in visited or target == current or len(hops) >= MAX_REDIRECTS:
            raise _RedirectError(
                f"redirect loop (more than {MAX_REDIRECTS} redirects or a URL seen twice)"
            )
        hops.append((response.code, target))
        return target

    def describe_failure(self, failure: Failure) -> str:
        """A one-line, human-readable reason for a failed fetch."""
        if failure.check(TimeoutError, CancelledError):
            return f"timed out after {self.timeout:g} s"
        if failure.check(BodyTooLargeError):
            return f"feed larger than {self.max_bytes} bytes; download aborted"
        if failure.check(BadEncodingError, ContentCodingError):
            return _first_line(failure.value)
        if failure.check(_RedirectError, AddressRefusedError):
            return str(failure.value)
        if failure.check(neterr.DNSLookupError):
            return "DNS lookup failed"
        if failure.check(neterr.ConnectionRefusedError):
            return "connection refused"
        if failure.check(neterr.TimeoutError):
            return "connection timed out"
        if failure.check(neterr.ConnectError):
            return f"could not connect: {_first_line(failure.value)}"
        inner = _wrapped_reasons(failure)
        for reason in inner:
            if reason.check(ResponseHeadTooLargeError):
                return str(reason.value)
            if reason.check(SSL.Error):
                return f"TLS error: {_ssl_reason(reason.value)}"
        if inner:
            return f"connection lost: {_first_line(inner[0].value)}"
        return f"fetch failed: {_first_line(failure.value)}"


def _once(release: Callable[[], Any]) -> Callable[[], None]:
    """``release``, callable any number of times, acting only the first."""
    done = False

    def once() -> None:
        nonlocal done
        if not done:
            done = True
            release()

    return once


def _is_http(url: str) -> bool:
    return _scheme_and_host(url)[0] in ("http", "https")


def host_of(url: str) -> str:
    """The host of a URL: lower case, no port or brackets; ``""`` when there is none."""
    return _scheme_and_host(url)[1]


# Asked on every fetch and every metric, of the same few thousand feed URLs.
@functools.lru_cache(maxsize=16384)
def _scheme_and_host(url: str) -> tuple[str, str]:
    # Asked of every feed URL on every fetch, which are the same few thousand URLs.
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), (parts.hostname or "").lower()
    except ValueError:
        # "http://[::1" and the like: not a URL planet can fetch (nor raise on).
        return "", ""


class _RequestURL(EncodedURL):
    """An :class:`EncodedURL` in URI form whose ``to_uri()`` and ``to_text()`` are remembered.

    treq turns every URL it is given into ``to_uri().to_text()``: for the same few thousand
    feed URLs that re-parsed them and IDNA-encoded their host on every fetch (~15 % of a
    304's CPU). Only the instance :func:`_request_url` makes answers from memory; any
    other one (``replace()`` makes new ones of this class) computes as usual.
    """

    _text: str | None = None

    def to_uri(self) -> EncodedURL:
        return self if self._text is not None else super().to_uri()

    def to_text(self, with_password: bool = False) -> str:
        if self._text is not None and not with_password:
            return self._text
        return cast(str, super().to_text(with_password))


# ~0.8 KB a URL: 8192 covers every feed and redirect target of a big planet.
@functools.lru_cache(maxsize=8192)
def _request_url(url: str) -> EncodedURL:
    """``url`` as treq would send it, parsed and encoded once per URL, not once per fetch."""
    # Raises here what treq would raise for the same URL (a bad port, an invalid IDNA host):
    # the fetch fails with the same reason as before.
    parsed = _RequestURL.from_text(url)
    if ":" in parsed.host:
        # An IPv6 literal (hyperlink has checked it is one): to_uri() would put it through
        # IDNA, which refuses its colons. It is ASCII already; the rest is encoded as usual.
        uri = cast(_RequestURL, parsed.replace(host="ipv6.invalid").to_uri())
        uri = cast(_RequestURL, uri.replace(host=parsed.host))
    else:
        uri = cast(_RequestURL, parsed.to_uri())
    uri._text = uri.to_text()
    return uri


def _timed_out(result: Any, timeout: float) -> Any:
    # A cancel before the response headers arrive comes back from the Agent as
    # ResponseNeverReceived([CancelledError]), not CancelledError: any failure is the timeout.
    if isinstance(result, Failure):
        raise TimeoutError(timeout, "Deferred")
    return result


def _phrase(status: int) -> str:
    # Twisted's table lacks some codes (429 among them); the stdlib knows them.
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return http.RESPONSES.get(status, b"").decode("ascii", "replace")


def _header(response: IResponse, name: bytes) -> str | None:
    values = response.headers.getRawHeaders(name)
    if not values:
        return None
    return values[-1].decode("latin-1") if isinstance(values[-1], bytes) else values[-1]


def _first_line(value: object) -> str:
    text = str(value) or value.__class__.__name__
    return " ".join(text.split())[:200]


def _ssl_reason(value: BaseException | None) -> str:
    # pyOpenSSL's errors carry [(library, function, reason), ...]: the reasons are the news.
    args = value.args if value is not None else ()
    errors = args[0] if args and isinstance(args[0], list) else []
    reasons = [str(e[-1]) for e in errors if isinstance(e, tuple) and e and e[-1]]
    return "; ".join(reasons)[:200] if reasons else _first_line(value)


def _wrapped_reasons(failure: Failure) -> list[Failure]:
    # ResponseFailed / ResponseNeverReceived / RequestGenerationFailed carry a list of causes.
    reasons = getattr(failure.value, "reasons", None)
    return [r for r in reasons if isinstance(r, Failure)] if reasons else []


#: Most bytes decoded in one reactor turn, all layers together (~5-10 ms of CPU).
_INFLATE_SLICE = 512 * 1024

#: Content codings undone in one response, at most: ``gzip, gzip`` happens (a server that
#: compresses what is stored compressed); a third layer serves only to multiply a bomb.
MAX_CONTENT_CODINGS = 2


class _Inflater(typing.Protocol):
    """What :class:`_CappedBody` needs of a decoder: :class:`zlib.Decompress`'s bounded API."""

    @property
    def unconsumed_tail(self) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, /, max_length: int = 0) -> bytes: ...


class _Deflate:
    """``Content-Encoding: deflate``: zlib-wrapped, as RFC 9110 says, or raw, as some
    servers send it (and browsers accept); the first byte tells which."""

    def __init__(self) -> None:
        self._inflate: Any = None

    @property
    def unconsumed_tail(self) -> bytes:
        return b"" if self._inflate is None else cast(bytes, self._inflate.unconsumed_tail)

    @property
    def eof(self) -> bool:
        return self._inflate is not None and bool(self._inflate.eof)

    def decompress(self, data: bytes, /, max_length: int = 0) -> bytes:
        if self._inflate is None:
            if not data:
                return b""
            # A zlib header's first byte: compression method 8, window at most 32 KiB.
            wrapped = data[0] & 0x0F == 8 and data[0] >> 4 <= 7
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return cast(bytes, self._inflate.decompress(data, max_length))


def _decoder(coding: str) -> _Inflater | None:
    """A decoder for one content coding, or None for one planet does not decode."""
    if coding in ("gzip", "x-gzip"):
        # Twisted's settings: a gzip header and trailer.
        return cast(_Inflater, zlib.decompressobj(16 + zlib.MAX_WBITS))
    if coding == "deflate":
        return _Deflate()
    return None


@define
class _Layer:
    """One content coding being undone: its input not decoded yet, and its output so far."""

    name: str
    decoder: _Inflater
    pending: bytes = b""
    #: Bytes this layer has put out (every layer's count is held to the body's limit).
    produced: int = 0
    #: Its last call filled the room it was given: more output may be waiting inside it.
    full: bool = False

    def busy(self) -> bool:
        return bool(self.pending) or self.full


class _CappedBody(Protocol):
    """Collects a response body, dropping the connection once it passes ``limit`` bytes.

    With ``layers`` (the content codings to undo, the one applied last first), the bytes
    received and every layer's decoded output each count against ``limit``, and decoding
    goes a slice at a time: at most ``_INFLATE_SLICE`` decoded bytes per reactor turn, all
    layers together, with the transport paused while any layer has input or output left.
    64 KiB of a gzip bomb holds 64 MiB, and a gzip of that bomb ~64 GiB: decoded at once, a
    few hundred bytes would cost that much memory and block the reactor for seconds. A
    layer's output waits as the next layer's input only until that layer has taken it, so
    what is held besides the body is about a slice per layer.
    """

    def __init__(
        self,
        limit: int,
        finished: Deferred[bytes],
        clock: IReactorTime,
        layers: list[_Layer] | None = None,
        refusal: Exception | None = None,
    ) -> None:
        self._limit = limit
        self._finished: Deferred[bytes] | None = finished
        self._clock = clock
        self._layers = layers or []
        self._chunks: list[bytes] = []
        #: Bytes received, and (without layers) the body's size.
        self._size = 0
        #: Whether the transport is paused (or a slice is scheduled) for the layers.
        self._paused = False
        #: The end of the body, when it came while the layers still had work.
        self._ended: Failure | None = None
        #: Fail the body with this as soon as it is connected, reading none of it.
        self._refusal = refusal

    def connectionMade(self) -> None:
        # Before any data: Twisted may deliver a whole buffered body within deliverBody.
        if self._refusal is not None:
            self._fail(self._refusal)

    def abort(self) -> None:
        self._finished = None
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._finished is None:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._fail(BodyTooLargeError(self._size))
            return
        if not self._layers:
            self._chunks.append(data)
            return
        first = self._layers[0]
        if first.decoder.eof:
            return  # bytes after the end of the outer stream: ignored, not kept
        # Usually empty: more data only comes before a pause takes effect.
        first.pending += data
        if not self._paused:
            self._decode_slice()

    def _decode_slice(self) -> None:
        if self._finished is None:
            return
        room = _INFLATE_SLICE
        while room > 0:
            # The innermost layer with work first: a layer's output is taken by the next
            # one before the layer is asked for more.
            index = next(
                (i for i in range(len(self._layers) - 1, -1, -1) if self._layers[i].busy()), None
            )
            if index is None:
                break
            layer = self._layers[index]
            allowed = min(self._limit - layer.produced + 1, room)
            before = layer.pending
            try:
                piece = layer.decoder.decompress(layer.pending, allowed)
            except zlib.error as exc:
                self._fail(BadEncodingError(layer.name, str(exc)))
                return
            # After the end of its stream a decoder keeps (and grows) what follows as
            # unused_data: it is dropped instead.
            layer.pending = b"" if layer.decoder.eof else layer.decoder.unconsumed_tail
            layer.full = len(piece) == allowed and not layer.decoder.eof
            if not piece and not layer.full and layer.pending == before and before:
                # zlib always takes input when it has room to write: never loop on none.
                self._fail(BadEncodingError(layer.name, "the decoder made no progress"))
                return
            layer.produced += len(piece)
            if layer.produced > self._limit:
                self._fail(BodyTooLargeError(layer.produced))
                return
            room -= len(piece)
            if index + 1 < len(self._layers):
                inner = self._layers[index + 1]
                if not inner.decoder.eof:
                    inner.pending += piece
            else:
                self._chunks.append(piece)
        transport = cast(IPushProducer | None, self.transport)
        if any(layer.busy() for layer in self._layers):
            if not self._paused and self._ended is None and transport is not None:
                transport.pauseProducing()
            self._paused = True
            self._clock.callLater(0, self._decode_slice)
            return
        if self._paused:
            self._paused = False
            if self._ended is None and transport is not None:
                transport.resumeProducing()
        if self._ended is not None:
            self._end(self._ended)

    def _fail(self, exc: Exception) -> None:
        finished = self._finished
        self.abort()
        if finished is not None:
            finished.errback(exc)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._finished is not None and self._paused:
            self._ended = reason  # the slices still to decode end the body
            return
        self._end(reason)

    def _end(self, reason: Failure) -> None:
        # Every layer has taken all its input and had room left on its last call: nothing
        # is held back inside a decoder. A stream cut short is kept as far as it went.
        finished, self._finished = self._finished, None
        if finished is None:
            return
        if reason.check(ResponseDone, http.PotentialDataLoss):
            finished.callback(b"".join(self._chunks))
        else:
            finished.errback(reason)


def _as_sent(response: Any) -> tuple[IResponse, list[str]]:
    """The response as the server sent it, and its content codings in the order applied.

    treq's HTTPClient always wraps its agent in a ContentDecoderAgent, which wraps the
    response in a GzipDecoder per trailing ``gzip`` of ``Content-Encoding`` (and takes them
    off the header): each would inflate a network chunk without any limit, layer upon
    layer. Their ``original`` (documented) is unwrapped here and nothing is read through
    them; the body is decoded by :class:`_CappedBody` instead.
    """
    gzips = 0
    while True:
        if isinstance(response, GzipDecoder):
            gzips += 1
        inner = getattr(response, "original", None)
        if inner is None:
            break
        response = inner
    declared = [
        token.strip().decode("latin-1").lower()
        for value in response.headers.getRawHeaders(b"content-encoding", [])
        for token in value.split(b",")
    ]
    return response, declared + ["gzip"] * gzips


def _layers_for(codings: list[str]) -> list[_Layer]:
    """The layers to undo, the last applied first; an unknown coding and what lies under
    it are left as they are (the parser gets those bytes, as from Twisted's decoder)."""
    layers = []
    for name in reversed(codings):
        decoder = _decoder(name)
        if decoder is None:
            break
        layers.append(_Layer("gzip" if name == "x-gzip" else name, decoder))
    return layers


def _read_body(
    response: Any, limit: int, clock: IReactorTime, discard: bool = False
) -> Deferred[bytes]:
    """The body, decoded, within ``limit``; with ``discard``, read (undecoded) only to free
    the connection, and b"" whatever happens, unless cancelled."""
    sent, codings = _as_sent(response)
    codings = [c for c in codings if c and c != "identity"]
    refusal = None
    if not discard and len(codings) > MAX_CONTENT_CODINGS:
        refusal = ContentCodingError(
            f"too many content codings ({len(codings)}: {', '.join(codings)[:200]}); "
            f"at most {MAX_CONTENT_CODINGS} are decoded"
        )
    if sent.length == 0:
        return fail(refusal) if refusal is not None else succeed(b"")
    protocol: _CappedBody | None = None

    def cancel(_: Deferred[bytes]) -> None:
        if protocol is not None:
            protocol.abort()

    finished: Deferred[bytes] = Deferred(cancel)
    layers = [] if discard or refusal is not None else _layers_for(codings)
    protocol = _CappedBody(limit, finished, clock, layers, refusal)
    sent.deliverBody(protocol)
    if discard:
        finished.addErrback(_ignore_unless_cancelled)
    return finished


def _ignore_unless_cancelled(failure: Failure) -> bytes | Failure:
    if failure.check(CancelledError):
        return failure
    return b""
