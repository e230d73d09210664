"""The only module that talks HTTP: conditional GETs with treq, politely bounded.

:meth:`Fetcher.fetch` always fires with a :class:`FetchResult`; a feed's fault (404,
timeout, oversized body, redirect loop, DNS failure, ...) is a readable ``error`` on it,
never an exception that travels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode, urljoin

from attrs import define, field
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
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.iweb import IResponse

from planet.config import Config
from planet.httpbody import BadEncodingError, BodyTooLargeError, ContentCodingError, read_body
from planet.httpclient import ResponseHeadTooLargeError
from planet.model import FetchResult, one_line
from planet.netguard import AddressRefusedError
from planet.urls import host_of, is_http

__all__ = ["SHUTTING_DOWN", "Fetcher"]

#: Redirect hops followed before a feed counts as a redirect loop.
MAX_REDIRECTS = 5
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# A POST follows these with the same POST (a 303 means "GET the result": not a hub's answer).
_POST_REDIRECT_CODES = frozenset({301, 302, 307, 308})
_ACCEPT = (
    "application/atom+xml,application/rss+xml,application/rdf+xml,application/feed+json,"
    "application/xml;q=0.9,text/xml;q=0.9,application/json;q=0.8,*/*;q=0.5"
)
# Error pages and redirect bodies are read only to free the connection.
_DISCARD_LIMIT = 64 * 1024


#: The ``error`` of a fetch refused because the daemon is stopping (never recorded).
SHUTTING_DOWN = "planet is shutting down"


class _RedirectError(Exception):
    """A redirect that is not followed (loop, too many hops, unsupported scheme)."""


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
    #: Fetches held by :meth:`fetch_held` (from the request until the caller releases the
    #: body, parsed), at most (None: twice ``max_concurrency``).
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

    def post(self, url: str, form: dict[str, str]) -> Deferred[FetchResult]:
        """POST ``form`` (urlencoded) to ``url`` under the same host limits, timeout and
        network guard as a fetch (a WebSub hub); fires with a :class:`FetchResult` whose
        ``error`` says why a non-2xx answer failed, never fails. 307/308 (and 301/302, as
        hubs mean them) are followed with the same POST."""
        limit = self._host_limit(url)
        d = limit.run(self._all.run, self._post_now, url, form)
        d.addBoth(self._release_host, url, limit)
        return d

    def _post_now(self, url: str, form: dict[str, str]) -> Deferred[FetchResult]:
        return self._request_now(url, lambda hops, started: self._post(url, form, hops, started))

    async def _post(
        self, url: str, form: dict[str, str], hops: list[tuple[int, str]], started: float
    ) -> FetchResult:
        headers: dict[bytes | str, bytes | str] = {
            "User-Agent": self.user_agent,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        body = urlencode(form).encode("ascii")
        current = url
        while True:
            response = await self._client.post(
                current, data=body, headers=headers, allow_redirects=False, unbuffered=True
            )
            if response.code not in _POST_REDIRECT_CODES:
                break
            await read_body(response, _DISCARD_LIMIT, self._clock, discard=True)
            current = self._follow(url, current, response, hops)
        await read_body(response, _DISCARD_LIMIT, self._clock, discard=True)
        status = response.code
        error = None if 200 <= status < 300 else f"HTTP {status} {_phrase(status)}".strip()
        return FetchResult(
            url=url,
            final_url=current,
            status=status,
            redirects=tuple(hops),
            error=error,
            elapsed=self._clock.seconds() - started,
            retry_after=_header(response, b"retry-after"),
        )

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
        return self._request_now(
            url, lambda hops, started: self._get(url, etag, last_modified, hops, started)
        )

    def _request_now(
        self,
        url: str,
        request: Callable[[list[tuple[int, str]], float], Coroutine[Any, Any, FetchResult]],
    ) -> Deferred[FetchResult]:
        """``request(hops, started)`` within the timeout; a failure becomes the result's
        ``error`` (the redirects followed so far kept)."""
        if self.closed:
            return succeed(FetchResult(url=url, final_url=url, status=None, error=SHUTTING_DOWN))
        if not is_http(url):
            # Config and reading lists only give http(s) URLs; the Agent alone would also
            # connect for ws: ones.
            error = f"unsupported URL: {url[:200]}"
            return succeed(FetchResult(url=url, final_url=url, status=None, error=error))
        started = self._clock.seconds()
        hops: list[tuple[int, str]] = []
        d = Deferred.fromCoroutine(request(hops, started))
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
            await read_body(response, _DISCARD_LIMIT, self._clock, discard=True)
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
            links=_all_headers(response, b"link"),
        )
        if status == 304:
            await read_body(response, _DISCARD_LIMIT, self._clock, discard=True)
            body = None
        elif 200 <= status < 300:
            body = await read_body(response, self.max_bytes, self._clock)
        else:
            await read_body(response, _DISCARD_LIMIT, self._clock, discard=True)
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
        if not is_http(target):
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


def _all_headers(response: IResponse, name: bytes) -> tuple[str, ...]:
    values = response.headers.getRawHeaders(name) or ()
    return tuple(v.decode("latin-1") if isinstance(v, bytes) else v for v in values)


def _first_line(value: object) -> str:
    return one_line(str(value) or value.__class__.__name__)


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
