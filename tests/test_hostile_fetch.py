"""Hostile responses at the fetch level (issue 19, items 2, 6 and 10).

* Content codings: every layer is decoded within ``max_feed_bytes`` a slice at a time, more
  than two layers are refused unread, and nothing treq's ContentDecoderAgent wraps around a
  response is ever read.
* Response heads: at most ``MAX_HEAD_BYTES`` bytes, ``MAX_HEADERS`` header lines and
  ``MAX_HEAD_LINE`` bytes a line, else the feed fails with ``response headers too large``.
* IPv6-literal URLs are fetched (the guard's refusals are in test_netguard).

The head caps are checked exactly on :class:`_CappedHeadProtocol` over a StringTransport,
byte by byte as well as whole; the rest over real TCP, with the daemon's own client
(:func:`make_client`) and the fault farm's raw server.
"""

from __future__ import annotations

import gzip
import time
import zlib
from pathlib import Path
from typing import Any

from faultfarm import (
    MIB,
    PeakMemory,
    RawServer,
    full,
    gzip_bomb,
    gzip_then_endless,
    gzipped,
    has_ipv6_loopback,
    header_flood,
    raw_head,
    self_signed_context,
    utf8_text_feed,
)
from loopback import reactor, within
from twisted.internet import ssl
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web._newclient import Request, Response
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.http_headers import Headers

from planet.fetch import Fetcher
from planet.httpbody import MAX_CONTENT_CODINGS
from planet.httpclient import (
    MAX_COOKIES,
    MAX_HEAD_BYTES,
    MAX_HEAD_LINE,
    MAX_HEADERS,
    ResponseHeadTooLargeError,
    _CappedHeadProtocol,
    make_client,
)
from planet.model import FetchResult

RSS_TYPE = "application/rss+xml"
FEED = utf8_text_feed("Layered")
TOO_MANY_BYTES = f"response headers too large: more than {MAX_HEAD_BYTES} bytes"
TOO_MANY_LINES = f"response headers too large: more than {MAX_HEADERS} header lines"
TOO_LONG_LINE = f"response headers too large: a line of more than {MAX_HEAD_LINE} bytes"


class ReactorGaps:
    """The longest time between two turns of the reactor while it runs (5 ms ticks)."""

    def __init__(self) -> None:
        self.gaps: list[float] = [0.0]
        self._last = time.perf_counter()
        self._ticker = LoopingCall(self._tick)
        self._ticker.start(0.005)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def stop(self) -> float:
        self._tick()  # the turn the result came in may have been the long one
        self._ticker.stop()
        return max(self.gaps)


class RawFetchCase(TestCase):
    """The daemon's client (make_client) against a raw loopback server."""

    def fetch(
        self, fault: Any, max_bytes: int = MIB, host: str = "127.0.0.1", path: str = "/feed"
    ) -> Deferred[FetchResult]:
        server = RawServer({path: fault}, host=host)
        self.addCleanup(server.stop)
        self.server = server
        client, pool = make_client(reactor)
        self.addCleanup(pool.closeCachedConnections)
        fetcher = Fetcher(client, reactor, user_agent="t", max_bytes=max_bytes, timeout=20)
        return within(fetcher.fetch(server.url(path)), 30)


# --- content codings ------------------------------------------------------------------


def raw_deflate(data: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return comp.compress(data) + comp.flush()


class LayeredEncodingTests(RawFetchCase):
    async def test_three_layers_are_refused_unread(self) -> None:
        # The body: gzip(gzip(prefix + spaces)) declared as three gzip layers.
        # Decoded by Twisted's GzipDecoders, its two real layers held 64 MiB at once.
        bomb, _ = gzip_bomb(64 * MIB, layers=2)
        self.assertLess(len(bomb), 1024)
        peak = PeakMemory()
        gaps = ReactorGaps()
        result = await self.fetch(gzipped(bomb, RSS_TYPE, coding="gzip, gzip, gzip"))
        stall = gaps.stop()
        self.assertEqual(
            result.error,
            "too many content codings (3: gzip, gzip, gzip); "
            f"at most {MAX_CONTENT_CODINGS} are decoded",
        )
        self.assertIsNone(result.body)
        self.assertLess(peak.growth(), 8 * MIB)
        self.assertLess(stall, 0.1)

    async def test_any_three_codings_are_refused(self) -> None:
        stream = gzip.compress(gzip.compress(zlib.compress(FEED)))
        result = await self.fetch(gzipped(stream, RSS_TYPE, coding="deflate, x-gzip,GZIP"))
        self.assertEqual(
            result.error,
            "too many content codings (3: deflate, x-gzip, gzip); at most 2 are decoded",
        )

    async def test_two_layer_bomb_is_capped_at_every_layer(self) -> None:
        # 128 GiB of spaces in 317 KiB: each 64 KiB read holds ~28 MB of the inner gzip
        # stream, which Twisted's decoder inflated at once, outside the cap.
        bomb, _ = gzip_bomb(128 * 1024 * MIB, layers=2)
        self.assertLess(len(bomb), 400 * 1024)
        peak = PeakMemory()
        gaps = ReactorGaps()
        result = await self.fetch(gzipped(bomb, RSS_TYPE, coding="gzip, gzip"))
        stall = gaps.stop()
        self.assertEqual(result.error, f"feed larger than {MIB} bytes; download aborted")
        self.assertLess(peak.growth(), 16 * MIB)
        self.assertLess(stall, 0.1)

    async def test_bytes_after_the_gzip_stream_are_not_kept(self) -> None:
        # zlib keeps what follows the end of a stream as unused_data, growing with every
        # chunk (and copied each time): the wire bytes count against the cap too.
        peak = PeakMemory()
        started = time.monotonic()
        result = await self.fetch(gzip_then_endless(FEED, RSS_TYPE))
        self.assertEqual(result.error, f"feed larger than {MIB} bytes; download aborted")
        self.assertLess(time.monotonic() - started, 5)
        self.assertLess(peak.growth(), 16 * MIB)

    async def test_every_layer_counts_against_the_cap(self) -> None:
        # The feed fits; the stored (level 0) gzip layer around it does not.
        body = FEED + b" " * (MIB - len(FEED) - 10)
        middle = gzip.compress(body, compresslevel=0)
        self.assertGreater(len(middle), MIB)
        result = await self.fetch(gzipped(gzip.compress(middle), RSS_TYPE, coding="gzip, gzip"))
        self.assertEqual(result.error, f"feed larger than {MIB} bytes; download aborted")
        result = await self.fetch(gzipped(gzip.compress(body), RSS_TYPE, coding="gzip"))
        self.assertEqual((result.error, result.body), (None, body))

    async def test_codings_are_decoded(self) -> None:
        cases = {
            "gzip": gzip.compress(FEED),
            "x-gzip": gzip.compress(FEED),
            "GZip": gzip.compress(FEED),
            "gzip, gzip": gzip.compress(gzip.compress(FEED)),
            "gzip,x-gzip": gzip.compress(gzip.compress(FEED)),
            "deflate": zlib.compress(FEED),
            "deflate ": raw_deflate(FEED),
            "deflate, gzip": gzip.compress(zlib.compress(FEED)),
            "gzip, identity": gzip.compress(FEED),
            "identity, gzip, identity": gzip.compress(FEED),
            "identity": FEED,
            "": FEED,
        }
        for coding, stream in cases.items():
            result = await self.fetch(gzipped(stream, RSS_TYPE, piece=7, coding=coding))
            self.assertEqual((result.error, result.body), (None, FEED), coding)

    async def test_unknown_codings_are_left_to_the_parser(self) -> None:
        # As Twisted's ContentDecoderAgent does: decoding stops at a coding it lacks.
        result = await self.fetch(gzipped(b"\x8b\x00br", RSS_TYPE, coding="br"))
        self.assertEqual((result.error, result.body), (None, b"\x8b\x00br"))
        stream = gzip.compress(b"\x8b\x00br")
        result = await self.fetch(gzipped(stream, RSS_TYPE, coding="br, gzip"))
        self.assertEqual((result.error, result.body), (None, b"\x8b\x00br"))

    async def test_a_corrupt_inner_layer_is_a_readable_reason(self) -> None:
        inner = bytearray(gzip.compress(FEED))
        inner[12:30] = bytes(b ^ 0x55 for b in inner[12:30])
        result = await self.fetch(
            gzipped(gzip.compress(bytes(inner)), RSS_TYPE, coding="gzip, gzip")
        )
        self.assertTrue((result.error or "").startswith("invalid gzip body: "), result.error)
        result = await self.fetch(gzipped(b"\x78\x9cnot deflate", RSS_TYPE, coding="deflate"))
        self.assertTrue((result.error or "").startswith("invalid deflate body: "), result.error)

    async def test_error_and_redirect_bodies_are_not_decoded(self) -> None:
        # They are read only to free the connection: no decoder, no refusal.
        bomb, _ = gzip_bomb(64 * MIB, layers=2)
        head = b"HTTP/1.1 503 Service Unavailable\r\nContent-Encoding: gzip, gzip, gzip\r\n"
        head += f"Content-Length: {len(bomb)}\r\nConnection: close\r\n\r\n".encode()
        peak = PeakMemory()
        result = await self.fetch(raw_head(head, bomb))
        self.assertEqual(result.error, "HTTP 503 Service Unavailable")
        self.assertLess(peak.growth(), 8 * MIB)


# --- response heads: exact caps on the protocol ------------------------------------------


class Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.reason = reason


def head_of(size: int, *, crlf: bool = True, lines: int | None = None) -> bytes:
    """A 200 head (Content-Length: 2 and filler headers) of exactly ``size`` bytes."""
    eol = b"\r\n" if crlf else b"\n"
    start = b"HTTP/1.1 200 OK" + eol + b"Content-Length: 2" + eol
    if lines is None:
        # Filler header lines of about 8 KiB: only the total is at stake here.
        filler = size - len(start) - len(eol)
        count = -(-filler // 8000)
        sizes = [filler // count + (n < filler % count) for n in range(count)]
        head = start + b"".join(b"X-F: " + b"f" * (n - 5 - len(eol)) + eol for n in sizes) + eol
    else:
        head = start + b"".join(b"X-%d: v" % n + eol for n in range(lines - 1)) + eol
    assert lines is not None or len(head) == size, (len(head), size)
    return head


class HeadCapProtocolTests(SynchronousTestCase):
    """:class:`_CappedHeadProtocol` fed by hand: the caps hold to the byte."""

    def request(self, persistent: bool = False) -> tuple[_CappedHeadProtocol, Deferred[Any]]:
        self.quiescent: list[Any] = []
        protocol = _CappedHeadProtocol(self.quiescent.append)
        self.transport = StringTransport()
        protocol.makeConnection(self.transport)
        request = Request(b"GET", b"/feed", Headers({b"host": [b"a.example"]}), None, persistent)
        return protocol, protocol.request(request)

    def answer(self, data: bytes, split: bool = False) -> Response | str:
        """Feed ``data`` whole (or a byte at a time): the response, or why it failed."""
        protocol, d = self.request()
        if split:
            for i in range(len(data)):
                protocol.dataReceived(data[i : i + 1])
                if self.transport.disconnecting:
                    break
        else:
            protocol.dataReceived(data)
        return outcome(self, d)

    def both(self, data: bytes) -> list[Response | str]:
        return [self.answer(data), self.answer(data, split=True)]

    def test_a_head_of_exactly_the_cap_is_read(self) -> None:
        for crlf in (True, False):
            for answer in self.both(head_of(MAX_HEAD_BYTES, crlf=crlf) + b"ok"):
                assert isinstance(answer, Response), answer
                self.assertEqual(answer.code, 200)
                body = Collect()
                answer.deliverBody(body)
                self.assertEqual(body.data, b"ok")

    def test_one_byte_more_is_refused(self) -> None:
        for crlf in (True, False):
            self.assertEqual(
                self.both(head_of(MAX_HEAD_BYTES + 1, crlf=crlf)), [TOO_MANY_BYTES] * 2
            )
        self.assertTrue(self.transport.disconnecting)

    def test_header_lines_up_to_the_cap(self) -> None:
        for answer in self.both(head_of(0, lines=MAX_HEADERS) + b"ok"):
            assert isinstance(answer, Response), answer
            self.assertEqual(len(list(answer.headers.getAllRawHeaders())), MAX_HEADERS - 1)
        self.assertEqual(self.both(head_of(0, lines=MAX_HEADERS + 1)), [TOO_MANY_LINES] * 2)

    def test_line_length(self) -> None:
        # Twisted's parser takes 16384 bytes a line (its CR included) and silently drops
        # the connection past that: said in words here.
        fits = b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * (MAX_HEAD_LINE - 9) + b"\r\n"
        self.assertEqual(len(fits.split(b"\n")[1]), MAX_HEAD_LINE)
        for answer in self.both(fits + b"Content-Length: 0\r\n\r\n"):
            assert isinstance(answer, Response), answer
            self.assertEqual(
                len(answer.headers.getRawHeaders(b"x-long", [b""])[0]), MAX_HEAD_LINE - 9
            )
        over = fits.replace(b"X-Long: ", b"X-Long: x")
        self.assertEqual(self.both(over + b"\r\n"), [TOO_LONG_LINE] * 2)
        status = b"HTTP/1.1 200 " + b"O" * MAX_HEAD_LINE
        self.assertEqual(self.both(status), [TOO_LONG_LINE] * 2)
        # Without its end: refused as soon as it is too long, not when it ends.
        self.assertEqual(self.both(b"HTTP/1.1 200 OK\r\nX: " + b"y" * 20000), [TOO_LONG_LINE] * 2)

    def test_a_flood_is_refused_as_it_comes(self) -> None:
        protocol, d = self.request()
        line = b"X-Flood: 1\r\n"
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\n")
        fed = 0
        while not d.called and fed < 100 * MAX_HEADERS:
            protocol.dataReceived(line * 64)
            fed += 64
        self.assertEqual(outcome(self, d), TOO_MANY_LINES)
        self.assertLessEqual(fed, MAX_HEADERS + 64)
        self.assertTrue(self.transport.disconnecting)

    def test_informational_heads_count_too(self) -> None:
        cont = b"HTTP/1.1 100 Continue\r\n\r\n"
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        for answer in self.both(cont * 3 + ok):
            assert isinstance(answer, Response), answer
            self.assertEqual(answer.code, 200)
        flood = cont * (MAX_HEAD_BYTES // len(cont) + 1)
        self.assertEqual(self.answer(flood + ok), TOO_MANY_BYTES)

    def test_cr_and_lf_split_across_reads(self) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        for cut in range(1, len(head)):
            protocol, d = self.request()
            protocol.dataReceived(head[:cut])
            protocol.dataReceived(head[cut:])
            answer = outcome(self, d)
            assert isinstance(answer, Response), (cut, answer)
            body = Collect()
            answer.deliverBody(body)
            self.assertEqual(body.data, b"ok", cut)

    def test_each_response_on_a_connection_has_its_own_allowance(self) -> None:
        protocol, d = self.request(persistent=True)
        near = head_of(MAX_HEAD_BYTES - 100)
        protocol.dataReceived(near + b"ok")
        first = outcome(self, d)
        assert isinstance(first, Response), first
        first.deliverBody(Collect())
        self.assertEqual(self.quiescent, [protocol])
        d = protocol.request(
            Request(b"GET", b"/again", Headers({b"host": [b"a.example"]}), None, True)
        )
        protocol.dataReceived(near + b"ok")
        second = outcome(self, d)
        assert isinstance(second, Response), second


def outcome(test: SynchronousTestCase, d: Deferred[Any]) -> Response | str:
    """The response ``d`` fired with, or the head-cap reason it failed with."""
    results: list[Any] = []
    d.addBoth(results.append)
    test.assertEqual(len(results), 1, "no answer yet")
    result = results[0]
    if not isinstance(result, Failure):
        return result
    reasons = getattr(result.value, "reasons", [])
    for reason in reasons:
        if reason.check(ResponseHeadTooLargeError):
            return str(reason.value)
    return repr(result.value)


# --- response heads over TCP ----------------------------------------------------------


class HeadCapFetchTests(RawFetchCase):
    async def test_a_flood_of_small_headers(self) -> None:
        peak = PeakMemory()
        started = time.monotonic()
        result = await self.fetch(header_flood())
        self.assertEqual(result.error, TOO_MANY_LINES)
        self.assertIsNone(result.status)
        self.assertLess(time.monotonic() - started, 5)
        self.assertLess(peak.growth(), 8 * MIB)

    async def test_a_flood_of_large_headers(self) -> None:
        result = await self.fetch(header_flood(b"X-Flood: " + b"f" * 4000 + b"\r\n"))
        self.assertEqual(result.error, TOO_MANY_BYTES)

    async def test_a_long_status_line(self) -> None:
        result = await self.fetch(raw_head(b"HTTP/1.1 200 " + b"O" * 100_000 + b"\r\n\r\n"))
        self.assertEqual(result.error, TOO_LONG_LINE)

    async def test_a_long_header_line(self) -> None:
        result = await self.fetch(raw_head(b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * 20_000))
        self.assertEqual(result.error, TOO_LONG_LINE)

    async def test_a_large_head_within_the_caps_is_fetched(self) -> None:
        headers = {f"X-Header-{n}": "v" * 200 for n in range(200)}
        result = await self.fetch(full(FEED, RSS_TYPE, **headers))
        self.assertEqual((result.error, result.status, result.body), (None, 200, FEED))


# --- IPv6 literals ------------------------------------------------------------------------


class IPv6LiteralTests(RawFetchCase):
    def setUp(self) -> None:
        if not has_ipv6_loopback():
            raise SkipTest("no IPv6 loopback on this machine")

    async def test_an_ipv6_literal_is_fetched(self) -> None:
        result = await self.fetch(full(FEED, RSS_TYPE), host="::1", path="/feed?q=a%20b")
        self.assertEqual((result.error, result.status, result.body), (None, 200, FEED))
        self.assertEqual(self.server.requests, ["/feed?q=a%20b"])

    async def test_a_redirect_to_an_ipv6_literal_is_followed(self) -> None:
        target = RawServer({"/feed": full(FEED, RSS_TYPE)}, host="::1")
        self.addCleanup(target.stop)
        to = target.url("/feed")
        result = await self.fetch(
            raw_head(
                f"HTTP/1.1 301 Moved\r\nLocation: {to}\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
        )
        self.assertEqual((result.error, result.status, result.body), (None, 200, FEED))
        self.assertEqual(result.redirects, ((301, to),))
        self.assertEqual(target.requests, ["/feed"])

    async def test_https_to_an_ipv6_literal_checks_the_address(self) -> None:
        # The certificate names ::1 as an IP address; TLS must be given the bare address
        # (with brackets it took it for a DNS name, and IDNA refused it).
        directory = Path(self.mktemp())
        context = self_signed_context(directory, host="::1")
        server = RawServer({"/feed": full(FEED, RSS_TYPE)}, tls=context, host="::1")
        self.addCleanup(server.stop)
        pem = (directory / "cert.pem").read_bytes()
        policy = BrowserLikePolicyForHTTPS(trustRoot=ssl.Certificate.loadPEM(pem))
        client, pool = make_client(reactor, tls=policy)
        self.addCleanup(pool.closeCachedConnections)
        fetcher = Fetcher(client, reactor, user_agent="t", timeout=20)
        result = await within(fetcher.fetch(server.url("/feed")), 30)
        self.assertEqual((result.error, result.status, result.body), (None, 200, FEED))


# --- cookies --------------------------------------------------------------------------


class CookieJarTests(TestCase):
    async def test_a_server_setting_a_new_cookie_every_time_cannot_grow_the_jar(self) -> None:
        from loopback import start_server
        from twisted.web.resource import Resource

        class Baker(Resource):
            isLeaf = True
            served = 0

            def render_GET(self, request: Any) -> bytes:
                Baker.served += 1
                request.addCookie(f"c{Baker.served}", "1", path="/")
                request.setHeader("content-type", "application/atom+xml")
                return b"<feed xmlns='http://www.w3.org/2005/Atom'/>"

        server = start_server(self, Baker())
        client, pool = make_client(reactor)
        self.addCleanup(pool.closeCachedConnections)
        fetcher = Fetcher(client, reactor, user_agent="t", timeout=20)
        jar = client._cookiejar
        sizes = []
        for n in range(MAX_COOKIES + 50):
            result = await within(fetcher.fetch(server.url(f"/feed/{n}")), 15)
            self.assertIsNone(result.error)
            sizes.append(len(jar))
        self.assertEqual(Baker.served, MAX_COOKIES + 50)
        # Cookies are kept (and sent back) up to the bound, never more.
        self.assertEqual(max(sizes), MAX_COOKIES)
        self.assertEqual(sizes[MAX_COOKIES - 1], MAX_COOKIES)
        self.assertLessEqual(sizes[-1], MAX_COOKIES)
