"""The only module that talks HTTP: conditional GETs with treq, politely bounded.

:meth:`Fetcher.fetch` always fires with a :class:`FetchResult`; a feed's fault (404,
timeout, oversized body, redirect loop, DNS failure, ...) is a readable ``error`` on it,
never an exception that travels.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Callable
from http import HTTPStatus
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
    succeed,
)
from twisted.internet.interfaces import IPushProducer, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.client import (
    URI,
    Agent,
    GzipDecoder,
    HTTPConnectionPool,
    ResponseDone,
    _HTTP11ClientFactory,
)
from twisted.web.iweb import IAgentEndpointFactory, IResponse
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
    """The body's ``Content-Encoding: gzip`` stream is corrupt."""


class _RedirectError(Exception):
    """A redirect that is not followed (loop, too many hops, unsupported scheme)."""


class _QuietFactory(_HTTP11ClientFactory):
    # Twisted logs "Starting factory ..." and "Stopping factory ..." at info for every
    # connection: hundreds of lines a cycle that tell an operator nothing.
    noisy = False


class _QuietPool(HTTPConnectionPool):
    _factory = _QuietFactory


def make_client(
    reactor: Any, connect_timeout: float = 10.0, guard: AddressPolicy | None = None
) -> tuple[HTTPClient, HTTPConnectionPool]:
    """One treq client over one shared connection pool, for the whole daemon.

    With a ``guard`` (see :mod:`planet.netguard`), no connection is made to an address it
    refuses, whether named in a feed URL, a redirect or a DNS answer.
    """
    pool = _QuietPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 2
    pool.cachedConnectionTimeout = 60
    endpoints = GuardedEndpointFactory(reactor, guard, connect_timeout)
    agent = Agent.usingEndpointFactory(reactor, _EndpointCache(endpoints), pool=pool)
    return _URLCachingClient(agent), pool


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
        host = _host_of(url)
        limit = self._host_limits.get(host)
        if limit is None:
            limit = self._host_limits[host] = DeferredSemaphore(self.per_host)
        return limit

    def close(self) -> None:
        """Start no more requests: queued fetches now end at once with ``SHUTTING_DOWN``."""
        self.closed = True

    def _release_host(self, result: Any, url: str, limit: DeferredSemaphore) -> Any:
        if limit.tokens == limit.limit and not limit.waiting:
            self._host_limits.pop(_host_of(url), None)
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
            await _read_body(response, _DISCARD_LIMIT, self._clock, ignore_errors=True)
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
            await _read_body(response, _DISCARD_LIMIT, self._clock, ignore_errors=True)
            body = None
        elif 200 <= status < 300:
            body = await _read_body(response, self.max_bytes, self._clock)
        else:
            await _read_body(response, _DISCARD_LIMIT, self._clock, ignore_errors=True)
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
        if failure.check(BadEncodingError):
            return f"invalid gzip body: {_first_line(failure.value)}"
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


def _host_of(url: str) -> str:
    return _scheme_and_host(url)[1]


@functools.lru_cache(maxsize=4096)
def _scheme_and_host(url: str) -> tuple[str, str]:
    # Asked of every feed URL on every fetch, which are the same few thousand URLs.
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower()


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
    uri = cast(_RequestURL, _RequestURL.from_text(url).to_uri())
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


#: Most bytes a gzip body is inflated by in one reactor turn (~5-10 ms of CPU).
_INFLATE_SLICE = 512 * 1024


class _CappedBody(Protocol):
    """Collects a response body, dropping the connection once it passes ``limit`` bytes.

    With ``inflate`` (a gzip body), ``limit`` counts decoded bytes, and a network chunk is
    inflated a slice at a time, one slice per reactor turn with the transport paused in
    between, never past the bytes still allowed: 64 KiB of a gzip bomb holds 64 MiB,
    which inflated at once would cost that much memory and block the reactor ~0.1 s.
    """

    def __init__(
        self,
        limit: int,
        finished: Deferred[bytes],
        clock: IReactorTime,
        inflate: Any | None = None,
    ) -> None:
        self._limit = limit
        self._finished: Deferred[bytes] | None = finished
        self._clock = clock
        self._inflate = inflate
        self._chunks: list[bytes] = []
        self._size = 0
        #: Compressed input not inflated yet, and whether the transport is paused for it.
        self._tail = b""
        self._paused = False
        #: The end of the body, when it came while compressed input was still waiting.
        self._ended: Failure | None = None

    def abort(self) -> None:
        self._finished = None
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._finished is None:
            return
        if self._inflate is None:
            self._add(data)
            return
        # Usually empty: more data only comes before a pause takes effect.
        self._tail += data
        if not self._paused:
            self._inflate_slice()

    def _inflate_slice(self) -> None:
        if self._finished is None:
            return
        assert self._inflate is not None
        # One byte over the allowance is enough to know the body is too large.
        allowed = min(self._limit - self._size + 1, _INFLATE_SLICE)
        try:
            piece = self._inflate.decompress(self._tail, allowed)
        except zlib.error as exc:
            self._fail(BadEncodingError(str(exc)))
            return
        self._tail = self._inflate.unconsumed_tail
        self._add(piece)
        if self._finished is None:
            return
        if self._tail:
            if not self._paused and self._ended is None and self.transport is not None:
                cast(IPushProducer, self.transport).pauseProducing()
            self._paused = True
            self._clock.callLater(0, self._inflate_slice)
            return
        if self._paused:
            self._paused = False
            if self._ended is None and self.transport is not None:
                cast(IPushProducer, self.transport).resumeProducing()
        if self._ended is not None:
            self._end(self._ended)

    def _add(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            self._fail(BodyTooLargeError(self._size))
            return
        self._chunks.append(data)

    def _fail(self, exc: Exception) -> None:
        finished = self._finished
        self.abort()
        if finished is not None:
            finished.errback(exc)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._finished is not None and self._tail:
            self._ended = reason  # the slices still to inflate end the body
            return
        self._end(reason)

    def _end(self, reason: Failure) -> None:
        if self._finished is not None and self._inflate is not None:
            # All input was consumed: what the decoder still holds is at most its window.
            try:
                self._add(self._inflate.flush())
            except zlib.error as exc:
                self._fail(BadEncodingError(str(exc)))
        finished, self._finished = self._finished, None
        if finished is None:
            return
        if reason.check(ResponseDone, http.PotentialDataLoss):
            finished.callback(b"".join(self._chunks))
        else:
            finished.errback(reason)


def _gzip_original(response: Any) -> IResponse | None:
    """The still-encoded response under treq's gzip decoding of ``response``, if any.

    treq's HTTPClient always wraps its agent in a ContentDecoderAgent, whose GzipDecoder
    inflates each network chunk without a size limit; the body is read from the response
    it wraps (its documented ``original``) and inflated here, within the cap, instead.
    """
    while response is not None:
        if isinstance(response, GzipDecoder):
            return response.original
        response = getattr(response, "original", None)
    return None


def _read_body(
    response: Any, limit: int, clock: IReactorTime, ignore_errors: bool = False
) -> Deferred[bytes]:
    if response.length == 0:
        return succeed(b"")
    protocol: _CappedBody | None = None

    def cancel(_: Deferred[bytes]) -> None:
        if protocol is not None:
            protocol.abort()

    finished: Deferred[bytes] = Deferred(cancel)
    encoded = _gzip_original(response)
    if encoded is None:
        protocol = _CappedBody(limit, finished, clock)
        response.deliverBody(protocol)
    else:
        # The same decoder settings as Twisted's: a gzip header and trailer.
        protocol = _CappedBody(limit, finished, clock, zlib.decompressobj(16 + zlib.MAX_WBITS))
        encoded.deliverBody(protocol)
    if ignore_errors:
        finished.addErrback(_ignore_unless_cancelled)
    return finished


def _ignore_unless_cancelled(failure: Failure) -> bytes | Failure:
    if failure.check(CancelledError):
        return failure
    return b""
