"""Issue 14 over real loopback TCP: the daemon's pieces (build_service) and the test hub
(tests/websubhub.py) talk HTTP: subscribe, verify with a random challenge, push signed
content, and the pushed entry is on the front page within 1 s (the figure is printed).
Also: a hub on a private address is refused like a feed with allow_private_networks = no.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import treq
from feeds import Item, atom
from loopback import reactor, start_server
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Request
from websubhub import Hub

from planet.config import parse_config
from planet.model import FetchResult
from planet.service import build_service
from planet.testing import inline_parser, planet_ini
from planet.websubservice import WebSubService

NOW = datetime.now(timezone.utc)


def feed(*titles: str) -> bytes:
    items = [Item(t, f"http://blog.example/{t}", NOW) for t in titles]
    return atom("Blog", "http://blog.example/", items)


class _Feed(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.hub_url = ""
        self.body = feed("first")

    def render_GET(self, request: Request) -> bytes:
        request.setHeader("content-type", "application/atom+xml")
        request.setHeader("link", f'<{self.hub_url}>; rel="hub"')
        return self.body


class _Later(Resource):
    """The planet's web view, once it is built (its config needs the port first)."""

    isLeaf = True
    target: Any = None

    def render(self, request: Request) -> Any:
        return self.target.render(request)


class LoopbackTests(TestCase):
    timeout = 20

    async def test_subscribe_verify_push_on_the_river_within_a_second(self) -> None:
        hub, blog = Hub(), _Feed()
        root = Resource()
        root.putChild(b"hub", hub)
        root.putChild(b"feed", blog)
        publisher = start_server(self, root)
        blog.hub_url = publisher.url("/hub")
        front = _Later()
        planet = start_server(self, front)
        feed_url = publisher.url("/feed")
        ini = planet_ini(
            "W", [feed_url], websub_callback=planet.url("/"), snapshot_file=self.mktemp()
        )
        service = build_service(
            parse_config(ini, "w.ini"), None, reactor, parser=inline_parser, client=publisher.client
        )
        front.target = service.web.resource()
        hub.client = planet.client
        websub = next(c for c in service if isinstance(c, WebSubService))
        websub.startService()
        self.addCleanup(websub.stopService)

        await service.aggregator.ingester.update(service.config.subscriptions[0])
        await _until(lambda: hub.subscriptions)
        record = websub.record_of(feed_url)
        self.assertEqual(record.state, "subscribed")
        self.assertEqual(record.topic, feed_url)
        self.assertTrue(hub.verifications[0].echoed)

        started = time.perf_counter()
        codes = await hub.publish(feed_url, feed("pushed", "first"), hub_url=blog.hub_url)
        self.assertEqual(codes, [202])
        page = b""
        while b"pushed" not in page and time.perf_counter() - started < 2:
            response = await planet.client.get(planet.url("/"))
            page = await treq.content(response)
        elapsed = time.perf_counter() - started
        print(f"\nWebSub push to the front page: {elapsed * 1000:.1f} ms")
        self.assertIn(b"pushed", page)
        self.assertLess(elapsed, 1.0)

    async def test_private_hub_refused_like_a_feed(self) -> None:
        hub = Hub()
        publisher = start_server(self, hub)
        ini = planet_ini(
            "W",
            ["http://blog.example/feed"],
            websub_callback="https://planet.example/",
            allow_private_networks="no",
            snapshot_file=self.mktemp(),
        )
        # No client given: the daemon's own, with the network guard.
        service = build_service(parse_config(ini, "w.ini"), None, reactor, parser=inline_parser)
        websub = next(c for c in service if isinstance(c, WebSubService))
        self.addCleanup(lambda: Deferred.fromCoroutine(_close(service)))
        sub = service.config.subscriptions[0]
        links = (f'<{publisher.url("/")}>; rel="hub"',)
        fetched = FetchResult(
            url=sub.url, final_url=sub.url, status=200, body=feed("x"), links=links
        )
        websub.fetched(sub, fetched)
        await _until(lambda: websub.record_of(sub.url).state == "failing")
        self.assertIn("refused: 127.0.0.1 is a loopback address", websub.record_of(sub.url).reason)
        self.assertEqual(hub.requests, [])


async def _close(service: Any) -> None:
    for child in service:
        if type(child).__name__ == "_Closer":
            await child.stopService()


async def _until(condition: Any, deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await deferLater(reactor, 0.01, lambda: None)
