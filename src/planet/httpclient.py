"""The one treq client planet fetches with: capped response heads, a bounded cookie jar,
URLs and endpoints prepared once, and the network guard on every connection."""

from __future__ import annotations

import functools
from http.cookiejar import CookieJar
from typing import Any, cast

from attrs import define, field
from hyperlink import EncodedURL
from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.web._newclient import HEADER, STATUS, HTTP11ClientProtocol
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    _HTTP11ClientFactory,
)
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from planet import memory
from planet.netguard import AddressPolicy, GuardedEndpointFactory
from planet.urls import CACHED_URLS

__all__ = [
    "MAX_COOKIES",
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "MAX_HEAD_LINE",
    "BoundedCookieJar",
    "ResponseHeadTooLargeError",
    "make_client",
]


class ResponseHeadTooLargeError(Exception):
    """A response's status line and headers passed a cap; str() is the feed's reason."""


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


#: Endpoints kept by :class:`_EndpointCache` before it starts over (one per host: a
#: planet with more hosts than this would build them all again every cycle).
_MAX_ENDPOINTS = CACHED_URLS


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


# ~0.8 KB a URL (8 MB at 10,000 feeds).
@functools.lru_cache(maxsize=CACHED_URLS)
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
    # Kept for the daemon's life, one per feed, holding only text, tuples of text and a
    # port: out of the collector's lists, as the store's entries. Tracked, the 10,000 of a
    # 10,000-feed planet were two thirds of the references every full pass followed.
    memory.untrack((uri,))
    return uri
