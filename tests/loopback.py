"""Real HTTP over loopback TCP inside the test process, for ``trial.unittest.TestCase``.

* :class:`LoopbackServer`: a ``twisted.web`` :class:`Site` listening on 127.0.0.1 (port 0),
  reachable as ``127.0.0.1`` and as ``localhost`` (two host names for per-host limits).
* :func:`loopback_client`: a treq :class:`HTTPClient` over a non-persistent pool.
* Resources that hold, stream, stall or gzip their responses and record what they saw.

Trial fails a test that leaves a socket or a delayed call behind (DirtyReactorAggregateError),
so both ends count their connections: :meth:`LoopbackServer.stop` (added as a cleanup by
:func:`start_server`) stops listening, aborts what is still open and waits, with a
deadline, until every server *and* client connection has gone.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from typing import Any, cast

from treq.client import HTTPClient
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

reactor: Any = _global_reactor

#: Host names that reach a server listening on 127.0.0.1 (``localhost`` via /etc/hosts).
HOST_A = "127.0.0.1"
HOST_B = "localhost"


class ConnectionTracker:
    """Counts live connections made through :meth:`wrap`; :meth:`closed` waits for none."""

    def __init__(self) -> None:
        self.live: set[ProtocolWrapper] = set()
        self._waiting: list[Deferred[None]] = []

    def wrap(self, factory: IProtocolFactory) -> WrappingFactory:
        return _TrackingFactory(factory, self)

    def _opened(self, protocol: ProtocolWrapper) -> None:
        self.live.add(protocol)

    def _closed(self, protocol: ProtocolWrapper) -> None:
        self.live.discard(protocol)
        if not self.live:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def closed(self) -> Deferred[None]:
        if not self.live:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        return d

    def abort_all(self) -> None:
        for protocol in list(self.live):
            if protocol.transport is not None:
                cast(Any, protocol.transport).abortConnection()


class _TrackingFactory(WrappingFactory):
    noisy = False

    def __init__(self, wrapped: IProtocolFactory, tracker: ConnectionTracker) -> None:
        super().__init__(wrapped)
        self._tracker = tracker

    def registerProtocol(self, p: ProtocolWrapper) -> None:
        super().registerProtocol(p)
        self._tracker._opened(p)

    def unregisterProtocol(self, p: ProtocolWrapper) -> None:
        super().unregisterProtocol(p)
        self._tracker._closed(p)


@implementer(IStreamClientEndpoint)
class _TrackingEndpoint:
    def __init__(self, endpoint: IStreamClientEndpoint, tracker: ConnectionTracker) -> None:
        self._endpoint = endpoint
        self._tracker = tracker

    def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
        def unwrap(wrapper: Any) -> Any:
            # The Agent talks to the protocol its factory built, not to our wrapper.
            return wrapper.wrappedProtocol

        return self._endpoint.connect(self._tracker.wrap(factory)).addCallback(unwrap)


@implementer(IAgentEndpointFactory)
class _TrackingEndpointFactory:
    def __init__(self, tracker: ConnectionTracker) -> None:
        self._tracker = tracker

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        if uri.scheme != b"http":
            raise ValueError(f"loopback tests speak plain http only, not {uri.scheme!r}")
        return _TrackingEndpoint(HostnameEndpoint(reactor, uri.host, uri.port), self._tracker)


def loopback_client(tracker: ConnectionTracker) -> HTTPClient:
    """A real treq client (non-persistent pool) whose connections ``tracker`` counts."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent.usingEndpointFactory(reactor, _TrackingEndpointFactory(tracker), pool=pool)
    return HTTPClient(agent)


class LoopbackServer:
    """A Site on 127.0.0.1:0 plus the tracker for the clients that talk to it."""

    def __init__(self, resource: Resource) -> None:
        self.server_connections = ConnectionTracker()
        self.client_connections = ConnectionTracker()
        site = Site(resource)
        site.noisy = False
        self._port = reactor.listenTCP(0, self.server_connections.wrap(site), interface="127.0.0.1")
        self.port: int = self._port.getHost().port
        self.client = loopback_client(self.client_connections)

    def url(self, path: str, host: str = HOST_A) -> str:
        return f"http://{host}:{self.port}{path}"

    def stop(self, deadline: float = 5.0) -> Deferred[None]:
        """Stop listening, drop what is still open, and wait until both ends are closed."""
        stopped = self._port.stopListening()
        self.server_connections.abort_all()
        closed = gatherResults(
            [
                stopped,
                self.server_connections.closed(),
                self.client_connections.closed(),
            ]
        )
        timer = reactor.callLater(deadline, closed.cancel)

        def done(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        return closed.addBoth(done).addCallback(lambda _: None)


def start_server(test: TestCase, resource: Resource) -> LoopbackServer:
    server = LoopbackServer(resource)
    test.addCleanup(server.stop)
    return server


def _later(request: Request, delay: float, f: Callable[[], None]) -> None:
    """Run ``f`` after ``delay`` unless the client goes away first (no delayed call leaks)."""
    call = reactor.callLater(delay, f)

    def gone(_: Any) -> None:
        if call.active():
            call.cancel()

    request.notifyFinish().addErrback(gone)


class HoldingFeed(Resource):
    """Answers every GET with ``body`` after ``hold`` seconds; counts concurrency per Host."""

    isLeaf = True

    def __init__(self, body: bytes, hold: float) -> None:
        super().__init__()
        self.body = body
        self.hold = hold
        self.active: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self.served: dict[str, int] = {}
        #: (host, start, end) per request, in wall-clock seconds.
        self.spans: list[tuple[str, float, float]] = []

    def render_GET(self, request: Request) -> Any:
        host = (request.getHeader("host") or "").rsplit(":", 1)[0]
        self.active[host] = self.active.get(host, 0) + 1
        self.peak[host] = max(self.peak.get(host, 0), self.active[host])
        self.peak_total = max(self.peak_total, sum(self.active.values()))
        started = time.monotonic()

        def answer() -> None:
            self.active[host] -= 1
            self.served[host] = self.served.get(host, 0) + 1
            self.spans.append((host, started, time.monotonic()))
            request.setHeader("content-type", "application/atom+xml")
            request.write(self.body)
            request.finish()

        _later(request, self.hold, answer)
        return NOT_DONE_YET


class GzipFeed(Resource):
    """Sends ``body`` gzip-encoded when the request accepts gzip; records what it did."""

    isLeaf = True

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body
        self.accept_encoding: list[str | None] = []
        self.sent_gzip = 0

    def render_GET(self, request: Request) -> bytes:
        accept = request.getHeader("accept-encoding")
        self.accept_encoding.append(accept)
        request.setHeader("content-type", "application/atom+xml")
        if accept and "gzip" in accept.lower():
            self.sent_gzip += 1
            request.setHeader("content-encoding", "gzip")
            return gzip.compress(self.body)
        return self.body


class StreamingFeed(Resource):
    """Writes ``chunks`` chunks of ``chunk_size`` bytes, one every ``interval`` seconds.

    ``lost`` fires when the client closes the connection before the last chunk was written;
    ``written`` counts the bytes handed to the transport; ``completed`` is set at the end.
    """

    isLeaf = True

    def __init__(self, chunk_size: int, chunks: int, interval: float) -> None:
        super().__init__()
        self.chunk_size = chunk_size
        self.chunks = chunks
        self.interval = interval
        self.written = 0
        self.completed = False
        self.lost: Deferred[None] = Deferred()

    @property
    def total(self) -> int:
        return self.chunk_size * self.chunks

    def render_GET(self, request: Request) -> Any:
        request.setHeader("content-type", "application/atom+xml")
        request.setHeader("content-length", str(self.total))
        pending: list[Any] = []

        def gone(_: Any) -> None:
            for call in pending:
                if call.active():
                    call.cancel()
            if not self.completed and not self.lost.called:
                self.lost.callback(None)

        request.notifyFinish().addErrback(gone)

        def step(sent: int) -> None:
            pending.clear()
            request.write(b"x" * self.chunk_size)
            self.written += self.chunk_size
            if sent + 1 == self.chunks:
                self.completed = True
                request.finish()
            else:
                pending.append(reactor.callLater(self.interval, step, sent + 1))

        step(0)
        return NOT_DONE_YET


class StallingFeed(Resource):
    """Sends the status line, headers and ``prefix`` of the body, then nothing more.

    With ``prefix=None`` it does not even send the headers. ``lost`` fires when the client
    gives up and closes the connection.
    """

    isLeaf = True

    def __init__(self, prefix: bytes | None = b"<?xml version='1.0'?><feed") -> None:
        super().__init__()
        self.prefix = prefix
        self.requests = 0
        self.lost: Deferred[None] = Deferred()

    def render_GET(self, request: Request) -> Any:
        self.requests += 1
        request.notifyFinish().addErrback(
            lambda _: None if self.lost.called else self.lost.callback(None)
        )
        if self.prefix is not None:
            request.setHeader("content-type", "application/atom+xml")
            request.setHeader("content-length", "100000")
            request.write(self.prefix)
        return NOT_DONE_YET


def within(d: Deferred[Any], seconds: float) -> Deferred[Any]:
    """``d``, failing with TimeoutError if it has not fired after ``seconds`` (real time)."""
    return d.addTimeout(seconds, reactor)
