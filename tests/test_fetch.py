"""The Fetcher: status handling, conditional GET, redirects, caps, timeouts, concurrency.

Unit tests drive it through treq's StubTreq and a task.Clock; the loopback tests at the end
use real TCP sockets on 127.0.0.1 (see tests/loopback.py).
"""

from __future__ import annotations

import gc
import gzip
import time
import zlib
from typing import Any

from feeds import Item, at, atom, rss2
from hyperlink import EncodedURL
from loopback import (
    HOST_A,
    HOST_B,
    ConnectionTracker,
    GzipFeed,
    HoldingFeed,
    StallingFeed,
    StreamingFeed,
    loopback_client,
    reactor,
    start_server,
    within,
)
from OpenSSL import SSL
from treq.testing import HasHeaders, RequestSequence, StringStubbingResource, StubTreq
from twisted.internet import error as neterr
from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import URI, ResponseFailed, ResponseNeverReceived
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from planet.fetch import MAX_REDIRECTS, Fetcher
from planet.httpclient import _EndpointCache, _request_url, make_client
from planet.model import FetchResult
from planet.netguard import GuardedEndpointFactory

UA = "planet-test/1.0 (+http://planet.example/)"
A = "http://a.example/feed"
B = "http://b.example/feed"
FEED = atom(
    "Alpha",
    "http://a.example/",
    [
        Item("One", "http://a.example/1", at(2026, 6, 20)),
        Item("Two", "http://a.example/2", at(2026, 6, 21)),
    ],
)
ATOM_TYPE = "application/atom+xml; charset=utf-8"
LAST_MODIFIED = "Sat, 20 Jun 2026 12:00:00 GMT"


class Routes:
    """A stub server: URL -> (code, headers, body); records every request it gets.

    Unknown URLs get a 404 and are recorded too, so a test can see a request it did not want.
    """

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes = routes
        #: (url, headers with lowercase names and the last value of each).
        self.requests: list[tuple[str, dict[str, str]]] = []

    def __call__(
        self, method: bytes, url: str, params: Any, headers: dict[bytes, list[bytes]], data: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(
            (url, {k.decode().lower(): v[-1].decode("latin-1") for k, v in headers.items()})
        )
        return self.routes.get(url, (404, {}, b"no such route"))

    @property
    def urls(self) -> list[str]:
        return [url for url, _ in self.requests]


class RecordingClient:
    """Wraps a client and records every URL the Fetcher asks it for."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.urls: list[str] = []

    def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
        self.urls.append(url)
        return self._client.get(url, **kwargs)


class FailingClient:
    """A client whose every request fails with ``exc`` (or raises it, if ``sync``)."""

    def __init__(self, exc: BaseException, sync: bool = False) -> None:
        self.exc = exc
        self.sync = sync
        self.calls = 0

    def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
        self.calls += 1
        if self.sync:
            raise self.exc
        return fail(self.exc)


class Held(Resource):
    """Keeps every request open (NOT_DONE_YET) until the test finishes it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Request] = []
        self.open: list[Request] = []
        self.lost: list[Request] = []

    def render_GET(self, request: Request) -> Any:
        self.seen.append(request)
        self.open.append(request)

        def finished(result: Any) -> None:
            self.open.remove(request)
            if isinstance(result, Failure):
                self.lost.append(request)

        request.notifyFinish().addBoth(finished)
        return NOT_DONE_YET

    @staticmethod
    def host(request: Request) -> str:
        return request.getHeader("host") or ""

    def in_flight(self, host: str | None = None) -> int:
        return sum(1 for r in self.open if host is None or self.host(r) == host)

    def seen_for(self, host: str) -> int:
        return sum(1 for r in self.seen if self.host(r) == host)

    def finish(self, host: str, body: bytes = FEED) -> None:
        request = next(r for r in self.open if self.host(r) == host)
        request.setHeader("content-type", ATOM_TYPE)
        request.write(body)
        request.finish()


class StubCase(SynchronousTestCase):
    """A Fetcher over StubTreq and a Clock."""

    def make(self, resource: Resource, **kwargs: Any) -> tuple[Fetcher, RecordingClient]:
        self.stub = StubTreq(resource)
        self.clock = Clock()
        self.clock.advance(1_000_000)
        client = RecordingClient(self.stub)
        fetcher = Fetcher(client, self.clock, user_agent=UA, **kwargs)  # type: ignore[arg-type]
        return fetcher, client

    def fetch(self, fetcher: Fetcher, url: str, *validators: str | None) -> FetchResult:
        d = fetcher.fetch(url, *validators)
        self.stub.flush()
        result = self.successResultOf(d)
        self.assertIsInstance(result, FetchResult)
        return result


class ResponseTests(StubCase):
    def test_200_fields_and_request_headers(self) -> None:
        routes = Routes(
            {
                A: (
                    200,
                    {"ETag": '"v1"', "Last-Modified": LAST_MODIFIED, "Content-Type": ATOM_TYPE},
                    FEED,
                )
            }
        )
        fetcher, _ = self.make(StringStubbingResource(routes))
        result = self.fetch(fetcher, A)
        self.assertEqual(
            (result.url, result.final_url, result.status, result.body),
            (A, A, 200, FEED),
        )
        self.assertEqual(result.etag, '"v1"')
        self.assertEqual(result.last_modified, LAST_MODIFIED)
        self.assertEqual(result.content_type, ATOM_TYPE)
        self.assertEqual(result.redirects, ())
        self.assertIsNone(result.error)
        self.assertFalse(result.not_modified)
        [(url, headers)] = routes.requests
        self.assertEqual(headers["user-agent"], UA)
        accept = headers["accept"]
        for media_type in ("application/atom+xml", "application/rss+xml", "application/rdf+xml"):
            self.assertIn(media_type, accept)
        # No validators known: an unconditional GET.
        self.assertNotIn("if-none-match", headers)
        self.assertNotIn("if-modified-since", headers)

    def test_missing_validators_are_none(self) -> None:
        routes = Routes({A: (200, {}, rss2("R", "http://a.example/", []))})
        fetcher, _ = self.make(StringStubbingResource(routes))
        result = self.fetch(fetcher, A)
        self.assertEqual(result.status, 200)
        self.assertIsNone(result.etag)
        self.assertIsNone(result.last_modified)

    def test_conditional_get_304(self) -> None:
        new_lm = "Sun, 21 Jun 2026 08:00:00 GMT"
        seq = RequestSequence(
            [
                (
                    (
                        b"get",
                        A,
                        {},
                        HasHeaders(
                            {
                                "If-None-Match": ['"v1"'],
                                "If-Modified-Since": [LAST_MODIFIED],
                                "User-Agent": [UA],
                            }
                        ),
                        b"",
                    ),
                    (304, {"ETag": '"v2"', "Last-Modified": new_lm}, b""),
                )
            ]
        )
        fetcher, _ = self.make(StringStubbingResource(seq))
        with seq.consume(self.fail):
            result = self.fetch(fetcher, A, '"v1"', LAST_MODIFIED)
        self.assertEqual(result.status, 304)
        self.assertTrue(result.not_modified)
        self.assertIsNone(result.error)
        self.assertIsNone(result.body)
        self.assertEqual(result.etag, '"v2"')
        self.assertEqual(result.last_modified, new_lm)

    def test_conditional_get_answered_with_200(self) -> None:
        routes = Routes({A: (200, {"ETag": '"v3"'}, FEED)})
        fetcher, _ = self.make(StringStubbingResource(routes))
        result = self.fetch(fetcher, A, '"v1"', None)
        self.assertEqual(routes.requests[0][1]["if-none-match"], '"v1"')
        self.assertNotIn("if-modified-since", routes.requests[0][1])
        self.assertFalse(result.not_modified)
        self.assertEqual((result.body, result.etag), (FEED, '"v3"'))

    def test_http_errors_are_results(self) -> None:
        for code, phrase in [(404, "Not Found"), (410, "Gone"), (500, "Internal Server Error")]:
            routes = Routes({A: (code, {"Content-Type": "text/html"}, b"<h1>nope</h1>")})
            fetcher, _ = self.make(StringStubbingResource(routes))
            result = self.fetch(fetcher, A)
            self.assertEqual(result.error, f"HTTP {code} {phrase}")
            self.assertEqual(result.status, code)
            self.assertIsNone(result.body)
            self.assertFalse(result.not_modified)
            self.assertEqual(result.final_url, A)


class RedirectTests(StubCase):
    def test_301_chain_of_two_hops(self) -> None:
        a2, a3 = "http://a.example/feed2", "http://c.example/feed3"
        routes = Routes(
            {
                A: (301, {"Location": a2}, b""),
                a2: (301, {"Location": a3}, b"moved"),
                a3: (200, {"ETag": '"e"', "Content-Type": ATOM_TYPE}, FEED),
            }
        )
        fetcher, client = self.make(StringStubbingResource(routes))
        result = self.fetch(fetcher, A)
        self.assertIsNone(result.error)
        self.assertEqual(result.redirects, ((301, a2), (301, a3)))
        self.assertEqual((result.url, result.final_url), (A, a3))
        self.assertEqual((result.status, result.body, result.etag), (200, FEED, '"e"'))
        self.assertEqual(routes.urls, [A, a2, a3])
        self.assertEqual(client.urls, [A, a2, a3])

    def test_302_with_relative_location(self) -> None:
        target = "http://a.example/new/feed.xml"
        routes = Routes({A: (302, {"Location": "/new/feed.xml"}, b""), target: (200, {}, FEED)})
        fetcher, _ = self.make(StringStubbingResource(routes))
        result = self.fetch(fetcher, A)
        self.assertIsNone(result.error)
        self.assertEqual(result.redirects, ((302, target),))
        self.assertEqual(result.final_url, target)
        self.assertEqual(result.body, FEED)

    def test_every_redirect_code_is_followed(self) -> None:
        for code in (301, 302, 303, 307, 308):
            target = f"http://a.example/{code}"
            routes = Routes({A: (code, {"Location": target}, b""), target: (200, {}, FEED)})
            fetcher, _ = self.make(StringStubbingResource(routes))
            result = self.fetch(fetcher, A)
            self.assertEqual((result.redirects, result.body), (((code, target),), FEED))

    def test_validators_sent_to_the_new_location(self) -> None:
        target = "http://a.example/moved"
        routes = Routes({A: (301, {"Location": target}, b""), target: (304, {"ETag": '"v1"'}, b"")})
        fetcher, _ = self.make(StringStubbingResource(routes))
        result = self.fetch(fetcher, A, '"v1"', None)
        self.assertTrue(result.not_modified)
        self.assertEqual(routes.requests[1][1]["if-none-match"], '"v1"')

    def test_loop_back_to_the_start(self) -> None:
        routes = Routes({A: (301, {"Location": B}, b""), B: (301, {"Location": A}, b"")})
        fetcher, client = self.make(StringStubbingResource(routes))
        result = self.fetch(fetcher, A)
        self.assertIn("redirect loop", result.error or "")
        self.assertIsNone(result.status)
        self.assertIsNone(result.body)
        self.assertEqual(result.redirects, ((301, B),))
        # The loop is seen when B points back at A: A is not requested a second time.
        self.assertEqual(client.urls, [A, B])

    def test_redirect_to_itself(self) -> None:
        routes = Routes({A: (302, {"Location": A}, b"")})
        fetcher, client = self.make(StringStubbingResource(routes))
        result = self.fetch(fetcher, A)
        self.assertIn("redirect loop", result.error or "")
        self.assertEqual(client.urls, [A])

    def chain(self, hops: int) -> tuple[list[str], Routes]:
        urls = [f"http://a.example/hop{n}" for n in range(hops + 1)]
        routes = Routes(
            {url: (301, {"Location": nxt}, b"") for url, nxt in zip(urls, urls[1:], strict=False)}
        )
        routes.routes[urls[-1]] = (200, {}, FEED)
        return urls, routes

    def test_max_redirects_followed(self) -> None:
        urls, routes = self.chain(MAX_REDIRECTS)
        fetcher, _ = self.make(StringStubbingResource(routes))
        result = self.fetch(fetcher, urls[0])
        self.assertIsNone(result.error)
        self.assertEqual(len(result.redirects), MAX_REDIRECTS)
        self.assertEqual(result.final_url, urls[-1])
        self.assertEqual(result.body, FEED)

    def test_six_hops_is_a_loop(self) -> None:
        self.assertEqual(MAX_REDIRECTS, 5)
        urls, routes = self.chain(6)
        fetcher, client = self.make(StringStubbingResource(routes))
        result = self.fetch(fetcher, urls[0])
        self.assertIn("redirect loop", result.error or "")
        self.assertIsNone(result.body)
        # Six responses were read; the sixth Location is never requested.
        self.assertEqual(client.urls, urls[:6])
        self.assertNotIn(urls[6], routes.urls)

    def test_unsupported_schemes_are_not_followed(self) -> None:
        for target in ("file:///etc/passwd", "ftp://a.example/feed.xml", "javascript:alert(1)"):
            routes = Routes({A: (302, {"Location": target}, b"")})
            fetcher, client = self.make(StringStubbingResource(routes))
            result = self.fetch(fetcher, A)
            self.assertIn("unsupported URL", result.error or "")
            self.assertIn(target, result.error or "")
            self.assertIsNone(result.body)
            self.assertEqual(client.urls, [A])
            self.assertEqual(routes.urls, [A])

    def test_redirect_without_location(self) -> None:
        routes = Routes({A: (301, {}, b"")})
        fetcher, _ = self.make(StringStubbingResource(routes))
        result = self.fetch(fetcher, A)
        self.assertIn("without a Location", result.error or "")


class BodyCapTests(StubCase):
    def test_exactly_max_bytes_is_accepted(self) -> None:
        body = b"x" * 4096
        routes = Routes({A: (200, {}, body)})
        fetcher, _ = self.make(StringStubbingResource(routes), max_bytes=4096)
        result = self.fetch(fetcher, A)
        self.assertIsNone(result.error)
        self.assertEqual(result.body, body)

    def test_one_byte_more_is_refused(self) -> None:
        routes = Routes({A: (200, {"ETag": '"big"'}, b"x" * 4097)})
        fetcher, _ = self.make(StringStubbingResource(routes), max_bytes=4096)
        result = self.fetch(fetcher, A)
        self.assertIn("larger than 4096 bytes", result.error or "")
        self.assertIsNone(result.body)
        self.assertIsNone(result.etag)


def gzip_twice(data: bytes) -> bytes:
    return gzip.compress(gzip.compress(data))


class ContentCodingTests(StubCase):
    """Every content coding is undone by the Fetcher, within the cap (issue 19, item 2)."""

    def fetch_sliced(self, fetcher: Fetcher, url: str) -> FetchResult:
        # Decoding goes a slice per reactor turn: turn the Clock until the result is in.
        d = fetcher.fetch(url)
        for _ in range(10_000):
            self.stub.flush()
            self.clock.advance(0)
            if d.called:
                break
        result = self.successResultOf(d)
        self.assertIsInstance(result, FetchResult)
        return result

    def served(self, coding: str, stream: bytes, **kwargs: Any) -> FetchResult:
        headers = {"Content-Encoding": coding, "ETag": '"e"'}
        routes = Routes({A: (200, headers, stream)})
        fetcher, _ = self.make(StringStubbingResource(routes), **kwargs)
        return self.fetch_sliced(fetcher, A)

    def test_three_layers_are_refused(self) -> None:
        result = self.served("gzip, gzip, gzip", gzip.compress(gzip_twice(FEED)))
        self.assertEqual(
            result.error, "too many content codings (3: gzip, gzip, gzip); at most 2 are decoded"
        )
        self.assertEqual((result.status, result.body, result.etag), (None, None, None))

    def test_two_layers_are_decoded(self) -> None:
        result = self.served("gzip, gzip", gzip_twice(FEED))
        self.assertEqual((result.error, result.body), (None, FEED))

    def test_two_layers_count_against_the_cap(self) -> None:
        body = FEED + b" " * 100_000
        result = self.served("gzip, gzip", gzip_twice(body), max_bytes=len(body) - 1)
        self.assertEqual(result.error, f"feed larger than {len(body) - 1} bytes; download aborted")
        result = self.served("gzip, gzip", gzip_twice(body), max_bytes=len(body))
        self.assertEqual((result.error, result.body), (None, body))

    def test_x_gzip_deflate_and_identity(self) -> None:
        raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        cases = {
            "x-gzip": gzip.compress(FEED),
            "deflate": zlib.compress(FEED),
            "Deflate": raw.compress(FEED) + raw.flush(),
            "gzip, identity": gzip.compress(FEED),
            "identity,x-gzip": gzip.compress(FEED),
        }
        for coding, stream in cases.items():
            result = self.served(coding, stream)
            self.assertEqual((result.error, result.body), (None, FEED), coding)


class TimeoutTests(StubCase):
    def test_no_response_times_out(self) -> None:
        held = Held()
        fetcher, _ = self.make(held, timeout=7)
        d = fetcher.fetch(A)
        self.stub.flush()
        self.assertEqual(held.in_flight(), 1)
        self.clock.advance(6.9)
        self.stub.flush()
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.stub.flush()
        result = self.successResultOf(d)
        self.assertEqual(result.error, "timed out after 7 s")
        self.assertIsNone(result.status)
        self.assertAlmostEqual(result.elapsed, 7.0)
        # The abandoned request's connection is dropped.
        self.assertEqual(len(held.lost), 1)

    def test_stalled_body_times_out(self) -> None:
        class Stall(Resource):
            isLeaf = True

            def render_GET(self, request: Request) -> Any:
                request.setHeader("content-length", "100000")
                request.write(b"<?xml version='1.0'?><feed>")
                return NOT_DONE_YET

        fetcher, _ = self.make(Stall(), timeout=3)
        d = fetcher.fetch(A)
        self.stub.flush()
        self.clock.advance(2.9)
        self.stub.flush()
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.stub.flush()
        self.assertEqual(self.successResultOf(d).error, "timed out after 3 s")

    def test_time_queued_does_not_count(self) -> None:
        held = Held()
        fetcher, _ = self.make(held, timeout=10, per_host=1)
        first = fetcher.fetch(A)
        second = fetcher.fetch(A)
        self.stub.flush()
        self.assertEqual(held.in_flight(), 1)
        self.clock.advance(10)
        self.stub.flush()
        self.assertEqual(self.successResultOf(first).error, "timed out after 10 s")
        # The second request starts only now, and gets its full 10 seconds.
        self.assertEqual(held.in_flight(), 1)
        self.assertEqual(len(held.seen), 2)
        self.clock.advance(9.9)
        self.stub.flush()
        self.assertNoResult(second)
        self.clock.advance(0.1)
        self.stub.flush()
        result = self.successResultOf(second)
        self.assertEqual(result.error, "timed out after 10 s")
        self.assertAlmostEqual(result.elapsed, 10.0)

    def test_prompt_answer_cancels_the_timer(self) -> None:
        routes = Routes({A: (200, {}, FEED)})
        fetcher, _ = self.make(StringStubbingResource(routes), timeout=5)
        self.assertEqual(self.fetch(fetcher, A).body, FEED)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class NeverRaisesTests(SynchronousTestCase):
    def reason(self, exc: BaseException, sync: bool = False) -> str:
        client = FailingClient(exc, sync)
        fetcher = Fetcher(client, Clock(), user_agent=UA)  # type: ignore[arg-type]
        result = self.successResultOf(fetcher.fetch(A))
        self.assertEqual(client.calls, 1)
        self.assertEqual((result.url, result.final_url, result.status), (A, A, None))
        self.assertIsNone(result.body)
        assert result.error is not None
        self.assertNotIn("\n", result.error)
        return result.error

    def test_connection_refused(self) -> None:
        self.assertEqual(self.reason(neterr.ConnectionRefusedError()), "connection refused")

    def test_dns_failure(self) -> None:
        self.assertEqual(self.reason(neterr.DNSLookupError("a.example")), "DNS lookup failed")

    def test_connect_timeout(self) -> None:
        # What the Agent's connectTimeout produces (the connector's own timer).
        self.assertEqual(self.reason(neterr.TimeoutError()), "connection timed out")
        # The kernel giving up (ETIMEDOUT) is a ConnectError with a readable text.
        reason = self.reason(neterr.TCPTimedOutError())
        self.assertTrue(reason.startswith("could not connect: "), reason)
        self.assertIn("timed out", reason)

    def test_other_connect_errors(self) -> None:
        reason = self.reason(neterr.NoRouteError())
        self.assertTrue(reason.startswith("could not connect: "), reason)

    def test_connection_lost_before_response(self) -> None:
        exc = ResponseNeverReceived([Failure(neterr.ConnectionLost("peer went away"))])
        reason = self.reason(exc)
        self.assertTrue(reason.startswith("connection lost: "), reason)
        self.assertIn("peer went away", reason)

    def test_tls_error(self) -> None:
        exc = ResponseFailed(
            [Failure(SSL.Error([("SSL routines", "", "certificate verify failed")]))]
        )
        reason = self.reason(exc)
        self.assertTrue(reason.startswith("TLS error: "), reason)
        self.assertIn("certificate verify failed", reason)

    def test_anything_else(self) -> None:
        reason = self.reason(RuntimeError("something\nodd"))
        self.assertEqual(reason, "fetch failed: something odd")

    def test_client_raising_synchronously(self) -> None:
        reason = self.reason(ValueError("bad URL"), sync=True)
        self.assertEqual(reason, "fetch failed: bad URL")

    def test_urls_urlsplit_refuses(self) -> None:
        # urlsplit raises ValueError for these: the fetch (and its host limit) must not.
        client = FailingClient(RuntimeError("never asked"))
        fetcher = Fetcher(client, Clock(), user_agent=UA)  # type: ignore[arg-type]
        for url in ("http://[::1", "http://]/", "http://a[b]/", "http://[x]/feed"):
            result = self.successResultOf(fetcher.fetch(url))
            self.assertEqual(result.error, f"unsupported URL: {url}")
            held, release = self.successResultOf(fetcher.fetch_held(url, None, None))
            self.assertEqual(held.error, f"unsupported URL: {url}")
            release()
        self.assertEqual(client.calls, 0)


class ConcurrencyTests(StubCase):
    def test_per_host_limit(self) -> None:
        held = Held()
        fetcher, _ = self.make(held, per_host=2, max_concurrency=16)
        a_fetches = [fetcher.fetch(f"http://a.example/{n}") for n in range(10)]
        self.stub.flush()
        self.assertEqual(held.in_flight("a.example"), 2)
        self.assertEqual(held.seen_for("a.example"), 2)
        # Another host is not queued behind the busy one.
        b_fetch = fetcher.fetch(B)
        self.stub.flush()
        self.assertEqual(held.in_flight("b.example"), 1)
        held.finish("b.example")
        self.stub.flush()
        self.assertEqual(self.successResultOf(b_fetch).body, FEED)
        self.assertEqual(held.in_flight("a.example"), 2)
        # Each finished request lets exactly one queued one start.
        for n in range(10):
            self.assertEqual(held.seen_for("a.example"), min(10, n + 2))
            self.assertLessEqual(held.in_flight("a.example"), 2)
            held.finish("a.example")
            self.stub.flush()
        results = [self.successResultOf(d) for d in a_fetches]
        self.assertEqual([r.status for r in results], [200] * 10)
        self.assertEqual(held.in_flight(), 0)
        # Idle hosts do not keep a semaphore around.
        self.assertEqual(fetcher._host_limits, {})

    def test_max_concurrency_caps_the_total(self) -> None:
        held = Held()
        fetcher, _ = self.make(held, per_host=2, max_concurrency=3)
        hosts = ["a.example", "b.example", "c.example"]
        fetches = [fetcher.fetch(f"http://{h}/{n}") for h in hosts for n in range(3)]
        self.stub.flush()
        self.assertEqual(held.in_flight(), 3)
        for h in hosts:
            self.assertLessEqual(held.in_flight(h), 2)
        finished = 0
        while held.open:
            held.finish(held.host(held.open[0]))
            finished += 1
            self.stub.flush()
            self.assertLessEqual(held.in_flight(), 3)
            for h in hosts:
                self.assertLessEqual(held.in_flight(h), 2)
        self.assertEqual(finished, 9)
        self.assertEqual([self.successResultOf(d).status for d in fetches], [200] * 9)

    def test_queue_for_one_host_holds_no_global_slot(self) -> None:
        held = Held()
        fetcher, _ = self.make(held, per_host=1, max_concurrency=2)
        for n in range(5):
            fetcher.fetch(f"http://a.example/{n}")
        d = fetcher.fetch(B)
        self.stub.flush()
        self.assertEqual((held.in_flight("a.example"), held.in_flight("b.example")), (1, 1))
        held.finish("b.example")
        self.stub.flush()
        self.assertEqual(self.successResultOf(d).status, 200)
        while held.open:
            held.finish("a.example")
            self.stub.flush()
        self.assertEqual(held.seen_for("a.example"), 5)

    def test_failures_release_their_slots(self) -> None:
        routes = Routes({A: (500, {}, b"oops")})
        fetcher, _ = self.make(StringStubbingResource(routes), per_host=1, max_concurrency=1)
        ds = [fetcher.fetch(A) for _ in range(3)]
        self.stub.flush()
        self.assertEqual([self.successResultOf(d).status for d in ds], [500] * 3)


# --- real sockets -----------------------------------------------------------------------


class LoopbackFetchTests(TestCase):
    """The same Fetcher over real loopback TCP, on the global reactor."""

    def fetcher(self, client: Any, **kwargs: Any) -> Fetcher:
        return Fetcher(client, reactor, user_agent=UA, **kwargs)

    async def test_per_host_limit_with_two_hosts_in_parallel(self) -> None:
        hold = 0.1
        feed = HoldingFeed(FEED, hold=hold)
        server = start_server(self, feed)
        fetcher = self.fetcher(server.client, per_host=2, max_concurrency=16, timeout=30)
        urls = [server.url(f"/feed/{n}", host) for host in (HOST_A, HOST_B) for n in range(20)]
        started = time.monotonic()
        results = await within(gatherResults([fetcher.fetch(url) for url in urls]), 30)
        wall = time.monotonic() - started
        self.assertEqual([r.error for r in results], [None] * 40)
        self.assertEqual([r.body for r in results], [FEED] * 40)
        self.assertEqual(feed.served, {HOST_A: 20, HOST_B: 20})
        # Never more than two at once on one host, and the limit was reached on both...
        self.assertEqual(feed.peak, {HOST_A: 2, HOST_B: 2})
        # ...at the same time: the hosts did not wait for each other.
        self.assertEqual(feed.peak_total, 4)
        first_b = min(start for host, start, _ in feed.spans if host == HOST_B)
        last_a = max(end for host, _, end in feed.spans if host == HOST_A)
        self.assertLess(first_b, last_a)
        # Ten rounds of `hold` in all; one host after the other would take twenty.
        self.assertGreaterEqual(wall, 10 * hold)
        self.assertLess(wall, 15 * hold)

    async def test_connections_are_not_logged(self) -> None:
        # Twisted's client factories log two lines per connection by default.
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        server = start_server(self, HoldingFeed(FEED, hold=0))
        client, pool = make_client(reactor)
        self.addCleanup(pool.closeCachedConnections)
        result = await within(self.fetcher(client).fetch(server.url("/feed")), 15)
        self.assertEqual(result.body, FEED)
        self.assertGreater(result.elapsed, 0)
        await pool.closeCachedConnections()
        factory_lines = [e for e in events if "factory" in str(e.get("log_format", ""))]
        self.assertEqual(factory_lines, [])

    async def test_gzip_body_is_decoded(self) -> None:
        feed = GzipFeed(FEED)
        server = start_server(self, feed)
        result = await self.fetcher(server.client).fetch(server.url("/feed"))
        self.assertIsNone(result.error)
        self.assertEqual(feed.sent_gzip, 1)
        self.assertIn("gzip", feed.accept_encoding[0] or "")
        self.assertEqual(result.body, FEED)

    async def test_gzip_cap_counts_decoded_bytes(self) -> None:
        bomb = b"<feed>" + b" " * (1024 * 1024)
        self.assertLess(len(gzip.compress(bomb)), 16 * 1024)
        server = start_server(self, GzipFeed(bomb))
        fetcher = self.fetcher(server.client, max_bytes=64 * 1024)
        result = await fetcher.fetch(server.url("/feed"))
        self.assertIn("larger than 65536 bytes", result.error or "")

    async def test_oversized_streamed_body_is_aborted(self) -> None:
        stream = StreamingFeed(chunk_size=16 * 1024, chunks=200, interval=0.01)
        server = start_server(self, stream)
        fetcher = self.fetcher(server.client, max_bytes=64 * 1024, timeout=30)
        result = await within(fetcher.fetch(server.url("/big")), 15)
        self.assertIn("larger than 65536 bytes", result.error or "")
        self.assertIsNone(result.body)
        # The server sees the connection closed long before it has written everything.
        await within(stream.lost, 5)
        self.assertFalse(stream.completed)
        self.assertLess(stream.written, stream.total // 2)

    async def test_stalled_body_times_out(self) -> None:
        stall = StallingFeed()
        server = start_server(self, stall)
        fetcher = self.fetcher(server.client, timeout=1)
        started = time.monotonic()
        result = await within(fetcher.fetch(server.url("/stall")), 10)
        self.assertEqual(result.error, "timed out after 1 s")
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertGreaterEqual(result.elapsed, 0.9)
        await within(stall.lost, 5)

    async def test_no_response_times_out(self) -> None:
        stall = StallingFeed(prefix=None)
        server = start_server(self, stall)
        result = await within(self.fetcher(server.client, timeout=1).fetch(server.url("/")), 10)
        self.assertEqual(result.error, "timed out after 1 s")
        self.assertEqual(stall.requests, 1)
        await within(stall.lost, 5)

    async def test_connection_refused(self) -> None:
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        number = port.getHost().port
        await port.stopListening()
        tracker = ConnectionTracker()
        fetcher = self.fetcher(loopback_client(tracker), timeout=10)
        result = await within(fetcher.fetch(f"http://127.0.0.1:{number}/feed"), 10)
        self.assertEqual(result.error, "connection refused")
        self.assertEqual(tracker.live, set())


# --- the daemon's client: URLs and endpoints worked out once ----------------------------


class ConditionalFeed(Resource):
    """ETag/Last-Modified with 304s, a cookie on the first answer; records every request."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        #: (request URI, request headers with lowercase names and the last value of each).
        self.requests: list[tuple[bytes, dict[str, str]]] = []

    def render_GET(self, request: Request) -> bytes:
        headers = {
            k.decode().lower(): v[-1].decode("latin-1")
            for k, v in request.requestHeaders.getAllRawHeaders()
        }
        self.requests.append((request.uri, headers))
        request.setHeader("etag", '"v1"')
        request.setHeader("last-modified", LAST_MODIFIED)
        request.setHeader("cache-control", "max-age=600")
        request.setHeader("retry-after", "120")
        if len(self.requests) == 1:
            request.addCookie("session", "abc", path="/")
        if request.getHeader("if-none-match") == '"v1"':
            request.setResponseCode(304)
            return b""
        request.setHeader("content-type", ATOM_TYPE)
        return FEED


class MadeClientTests(TestCase):
    """The client :func:`make_client` builds sends what treq's plain client sends."""

    def made_fetcher(self) -> Fetcher:
        client, pool = make_client(reactor)
        self.addCleanup(pool.closeCachedConnections)
        return Fetcher(client, reactor, user_agent=UA, timeout=10)

    async def test_conditional_get_and_304_repeatedly(self) -> None:
        feed = ConditionalFeed()
        server = start_server(self, feed)
        fetcher = self.made_fetcher()
        url = server.url("/feed?x=1&y=a%20b")
        first = await within(fetcher.fetch(url), 10)
        self.assertEqual((first.status, first.body, first.etag), (200, FEED, '"v1"'))
        results = []
        for _ in range(3):
            results.append(await within(fetcher.fetch(url, first.etag, first.last_modified), 10))
        for result in results:
            self.assertIsNone(result.error)
            self.assertTrue(result.not_modified)
            self.assertIsNone(result.body)
            self.assertEqual((result.etag, result.last_modified), ('"v1"', LAST_MODIFIED))
            self.assertEqual((result.retry_after, result.cache_control), ("120", "max-age=600"))
        self.assertEqual([uri for uri, _ in feed.requests], [b"/feed?x=1&y=a%20b"] * 4)
        plain, *conditional = [headers for _, headers in feed.requests]
        self.assertNotIn("if-none-match", plain)
        for headers in conditional:
            self.assertEqual(headers["if-none-match"], '"v1"')
            self.assertEqual(headers["if-modified-since"], LAST_MODIFIED)
            self.assertEqual(headers["user-agent"], UA)
            self.assertIn("application/atom+xml", headers["accept"])
            self.assertIn("gzip", headers["accept-encoding"])
            # The cookie the first answer set goes back, as treq's client always did.
            self.assertEqual(headers["cookie"], "session=abc")

    async def test_same_request_uri_as_plain_treq(self) -> None:
        feed = ConditionalFeed()
        server = start_server(self, feed)
        made = self.made_fetcher()
        plain = Fetcher(server.client, reactor, user_agent=UA, timeout=10)
        urls = [
            server.url("/f\u00e9ed/\u2603?q=\u00fc&a=b%2Fc#frag"),
            server.url("/a b/c?d e"),
            server.url("/"),
            f"http://127.0.0.1:{server.port}",
        ]
        for url in urls:
            for fetcher in (plain, made):
                result = await within(fetcher.fetch(url), 10)
                self.assertEqual((result.error, result.status), (None, 200))
        sent = [uri for uri, _ in feed.requests]
        self.assertEqual(sent[0::2], sent[1::2])
        self.assertEqual(sent[0], b"/f%C3%A9ed/%E2%98%83?q=%C3%BC&a=b%2Fc")

    async def test_bad_urls_fail_as_with_plain_treq(self) -> None:
        made = self.made_fetcher()
        plain = Fetcher(loopback_client(ConnectionTracker()), reactor, user_agent=UA, timeout=10)
        # (An IPv6 literal is no longer among them: plain treq cannot fetch one at all.)
        for url in ("http://[zz]:80/feed", "http://a.example:port/", "http://xn--a.example/"):
            expected = (await within(plain.fetch(url), 10)).error
            self.assertTrue(expected)
            for _ in range(2):  # the second time, nothing cached may hide the error
                self.assertEqual((await within(made.fetch(url), 10)).error, expected)


class RequestURLTests(SynchronousTestCase):
    def test_same_text_as_treq_makes(self) -> None:
        for url in (
            "http://a.example/feed",
            "https://B\u00fccher.example/\u00e4/?q=\u00fc&r=a%20b#f",
            "http://a.example:8080/a b?c d",
            "http://user:secret@a.example/x",
            "HTTP://A.EXAMPLE/Feed",
        ):
            expected = EncodedURL.from_text(url).to_uri().to_text()
            made = _request_url(url)
            self.assertEqual(made.to_uri().to_text(), expected)
            self.assertEqual(made.to_text(), expected)
            self.assertEqual(
                made.to_text(with_password=True),
                EncodedURL.from_text(url).to_uri().to_text(with_password=True),
            )

    def test_ipv6_literals_are_not_put_through_idna(self) -> None:
        # hyperlink's to_uri() IDNA-encodes every host, and IDNA refuses the colons.
        cases = {
            "http://[::1]:8080/a b?q=\u00e9": "http://[::1]:8080/a%20b?q=%C3%A9",
            "https://[2001:DB8::1]/feed": "https://[2001:DB8::1]/feed",
            "http://[::ffff:127.0.0.1]/": "http://[::ffff:127.0.0.1]/",
        }
        for url, expected in cases.items():
            made = _request_url(url)
            self.assertEqual((made.to_text(), made.to_uri().to_text()), (expected, expected))

    def test_made_once_per_url(self) -> None:
        self.assertIs(
            _request_url("http://once.example/feed"), _request_url("http://once.example/feed")
        )

    def test_the_urls_kept_are_out_of_the_collectors_way(self) -> None:
        # One per feed for the daemon's life: every full collection examined them all.
        for url in ("http://kept.example/feed", "http://[::1]:8080/kept"):
            made = _request_url(url)
            self.assertFalse(gc.is_tracked(made), url)
            self.assertEqual(made.to_text(), url)

    def test_a_cycle_of_ten_thousand_feeds_is_remembered_whole(self) -> None:
        # Least-recently-used and asked for every feed in turn: a cache smaller than the
        # planet (it was 8192) missed on every fetch of every cycle.
        urls = [f"http://h{i % 64}.example/feed/{i}" for i in range(10_000)]
        _request_url.cache_clear()
        self.addCleanup(_request_url.cache_clear)
        for _ in range(2):
            for url in urls:
                _request_url(url)
        self.assertEqual(_request_url.cache_info().misses, len(urls))

    def test_changed_copies_are_encoded_again(self) -> None:
        made = _request_url("http://a.example/feed")
        changed = made.replace(path=("\u00e9",))
        self.assertEqual(changed.to_uri().to_text(), "http://a.example/%C3%A9")
        self.assertEqual(made.to_text(), "http://a.example/feed")


@implementer(IAgentEndpointFactory)
class CountingEndpoints:
    def __init__(self) -> None:
        self.asked: list[tuple[bytes, bytes, int]] = []

    def endpointForURI(self, uri: URI) -> Any:
        self.asked.append((uri.scheme, uri.host, uri.port))
        return object()


class EndpointCacheTests(SynchronousTestCase):
    def test_one_endpoint_per_scheme_host_and_port(self) -> None:
        inner = CountingEndpoints()
        cache = _EndpointCache(inner)
        uris = [
            b"http://a.example/1",
            b"http://a.example/2?x",
            b"http://a.example:8080/1",
            b"https://a.example/1",
            b"http://b.example/1",
        ]
        first = [cache.endpointForURI(URI.fromBytes(u)) for u in uris]
        again = [cache.endpointForURI(URI.fromBytes(u)) for u in uris]
        self.assertEqual(first, again)
        self.assertIs(first[0], first[1])
        self.assertEqual(len({id(e) for e in first}), 4)
        self.assertEqual(
            inner.asked,
            [
                (b"http", b"a.example", 80),
                (b"http", b"a.example", 8080),
                (b"https", b"a.example", 443),
                (b"http", b"b.example", 80),
            ],
        )

    def test_a_planet_of_ten_thousand_hosts_builds_each_endpoint_once(self) -> None:
        # It started over at 4096: with more hosts than that, every cycle built them all.
        inner = CountingEndpoints()
        cache = _EndpointCache(inner)
        uris = [URI.fromBytes(f"http://h{i}.example/feed".encode()) for i in range(10_000)]
        for _ in range(2):
            for uri in uris:
                cache.endpointForURI(uri)
        self.assertEqual(len(inner.asked), len(uris))

    def test_unsupported_schemes_are_refused_every_time(self) -> None:
        cache = _EndpointCache(GuardedEndpointFactory(reactor, None, 5.0))
        for _ in range(2):
            self.assertRaises(
                SchemeNotSupported, cache.endpointForURI, URI.fromBytes(b"ws://a.example/")
            )

    def test_unguarded_endpoints(self) -> None:
        # allow_private_networks: plain endpoints, as the Agent's own.
        factory = GuardedEndpointFactory(reactor, None, 5.0)
        plain = factory.endpointForURI(URI.fromBytes(b"http://a.example:81/"))
        self.assertIsInstance(plain, HostnameEndpoint)
        secure = factory.endpointForURI(URI.fromBytes(b"https://a.example/"))
        self.assertNotIsInstance(secure, HostnameEndpoint)
