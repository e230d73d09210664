"""allow_private_networks = false and feed URL schemes: what planet refuses to connect to.

The address table and the resolver filter are unit tests; the rest fetches over real TCP on
127.0.0.1 and 127.0.0.2 (Linux routes all of 127/8 to the loopback interface), with a policy
that allows 127.0.0.1 where a test needs something to be allowed.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faultfarm import has_ipv6_loopback
from feeds import Item, at, atom
from loopback import HOST_A, HOST_B, HoldingFeed, LoopbackServer, reactor, start_server, within
from process import Daemon
from test_operations import GOOD, Planet
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IHostResolution, IResolutionReceiver
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web.client import URI
from twisted.web.error import SchemeNotSupported
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.util import Redirect
from zope.interface import implementer

from planet.config import ConfigError, parse_config
from planet.fetch import Fetcher
from planet.httpclient import make_client
from planet.model import FetchResult
from planet.netguard import GuardedEndpointFactory, GuardedResolver, non_public_kind
from planet.service import build_service
from planet.testing import inline_parser

ROOT = Path(__file__).parent.parent
UA = "planet-test/1.0"
FEED = atom("Guarded", "http://127.0.0.1/", [Item("One", "http://127.0.0.1/1", at(2026, 6, 20))])
REFUSED_LOOPBACK = "refused: 127.0.0.1 is a loopback address (allow_private_networks = false)"


# -- which addresses are refused ---------------------------------------------------------

PUBLIC = [
    "8.8.8.8",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",  # IPv4-mapped public address
    "64:ff9b::808:808",  # NAT64 (DNS64) form of 8.8.8.8: IPv6-only networks need it
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]

REFUSED = [
    ("127.0.0.1", "a loopback address"),
    ("127.0.0.2", "a loopback address"),
    ("127.255.255.254", "a loopback address"),
    ("::1", "a loopback address"),
    ("::ffff:127.0.0.1", "a loopback address"),
    ("64:ff9b::7f00:1", "a loopback address"),
    ("2002:7f00:1::1", "a loopback address"),
    ("10.0.0.1", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.255", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fc00::1", "a private address"),
    ("fd12:3456:789a::1", "a private address"),
    ("::ffff:10.1.2.3", "a private address"),
    ("::ffff:192.168.0.1", "a private address"),
    ("169.254.169.254", "a link-local address"),
    ("::ffff:169.254.169.254", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("fe80::1%eth0", "a link-local address"),
    ("febf::1", "a link-local address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("::ffff:0.0.0.0", "an unspecified address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("::127.0.0.1", "a reserved address"),  # deprecated IPv4-compatible form
    ("fec0::1", "a site-local address"),
    ("100.64.0.1", "a non-public address"),  # carrier-grade NAT
    ("localhost", "not an IP address"),
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert non_public_kind(address) is None


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    assert non_public_kind(address) == kind


@implementer(IHostResolution)
class _Resolution:
    name = "fixed"

    def cancel(self) -> None:
        pass


@implementer(IResolutionReceiver)
class _Receiver:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def resolutionBegan(self, resolution: IHostResolution) -> None:
        self.events.append("began")

    def addressResolved(self, address: IAddress) -> None:
        self.events.append(address)

    def resolutionComplete(self) -> None:
        self.events.append("complete")


class _FixedResolver:
    """Resolves every name to ``addresses``, the way a DNS server under someone's control may."""

    def __init__(self, *addresses: IAddress) -> None:
        self.addresses = addresses
        self.asked: list[tuple[str, int]] = []

    def resolveHostName(self, receiver: Any, host: str, port: int = 0, *args: Any) -> Any:
        self.asked.append((host, port))
        resolution = _Resolution()
        receiver.resolutionBegan(resolution)
        for address in self.addresses:
            receiver.addressResolved(address)
        receiver.resolutionComplete()
        return resolution


def test_resolver_passes_on_only_allowed_addresses() -> None:
    public4 = IPv4Address("TCP", "93.184.216.34", 80)
    public6 = IPv6Address("TCP", "2606:4700::1", 80)
    upstream = _FixedResolver(
        IPv4Address("TCP", "10.1.2.3", 80),
        public4,
        IPv6Address("TCP", "::ffff:127.0.0.1", 80),
        public6,
    )
    guarded = GuardedResolver(upstream)
    receiver = _Receiver()
    guarded.resolveHostName(receiver, "feeds.example", portNumber=80)
    assert upstream.asked == [("feeds.example", 80)]
    assert receiver.events == ["began", public4, public6, "complete"]
    assert guarded.refused == [
        ("10.1.2.3", "a private address"),
        ("::ffff:127.0.0.1", "a loopback address"),
    ]


def only(*allowed: str) -> Callable[[str], str | None]:
    """A policy that refuses every address but ``allowed``, with the standard reasons."""
    return lambda address: None if address in allowed else (non_public_kind(address) or "public")


# -- fetching ----------------------------------------------------------------------------


class Knocks(Factory):
    """Counts TCP connections and closes each at once: no HTTP is ever spoken."""

    def __init__(self) -> None:
        self.connections = 0

    def buildProtocol(self, addr: Any) -> Protocol | None:
        self.connections += 1
        return None


def listen_knocks(test: TestCase, interface: str) -> tuple[Knocks, int]:
    knocks = Knocks()
    port = reactor.listenTCP(0, knocks, interface=interface)
    test.addCleanup(port.stopListening)
    return knocks, port.getHost().port


class FetchTests(TestCase):
    def serve(self) -> tuple[LoopbackServer, HoldingFeed, Redirect]:
        """A server with a feed at /feed and a redirect (to be aimed by the test) at /go."""
        feed = HoldingFeed(FEED, hold=0)
        go = Redirect(b"")
        root = Resource()
        root.putChild(b"feed", feed)
        root.putChild(b"go", go)
        return start_server(self, root), feed, go

    def fetcher(self, guard: Callable[[str], str | None] | None) -> Fetcher:
        client, pool = make_client(reactor, connect_timeout=5, guard=guard)
        self.addCleanup(pool.closeCachedConnections)
        return Fetcher(client, reactor, user_agent=UA, timeout=10)

    async def fetch(self, fetcher: Fetcher, url: str) -> FetchResult:
        result: FetchResult = await within(fetcher.fetch(url), 15)
        return result

    async def test_loopback_literal_refused_without_a_request(self) -> None:
        server, feed, _ = self.serve()
        result = await self.fetch(self.fetcher(non_public_kind), server.url("/feed"))
        self.assertEqual(result.error, REFUSED_LOOPBACK)
        self.assertIsNone(result.status)
        self.assertIsNone(result.body)
        self.assertEqual(feed.served, {})

    async def test_name_resolving_to_loopback_refused(self) -> None:
        server, feed, _ = self.serve()
        result = await self.fetch(self.fetcher(non_public_kind), server.url("/feed", HOST_B))
        # /etc/hosts may list ::1 before 127.0.0.1: either is named.
        self.assertRegex(
            result.error or "",
            r"^refused: localhost resolves to (127\.0\.0\.1|::1), a loopback address "
            r"\(allow_private_networks = false\)$",
        )
        self.assertEqual(feed.served, {})

    async def test_without_guard_loopback_is_fetched(self) -> None:
        server, feed, _ = self.serve()
        result = await self.fetch(self.fetcher(None), server.url("/feed"))
        self.assertEqual((result.error, result.status, result.body), (None, 200, FEED))
        self.assertEqual(feed.served, {HOST_A: 1})

    async def test_allowed_address_is_fetched_through_the_guard(self) -> None:
        server, feed, _ = self.serve()
        result = await self.fetch(self.fetcher(only("127.0.0.1")), server.url("/feed"))
        self.assertEqual((result.error, result.status, result.body), (None, 200, FEED))
        self.assertEqual(feed.served, {HOST_A: 1})

    async def test_redirect_to_a_refused_address_is_not_followed(self) -> None:
        server, feed, go = self.serve()
        knocks, port = listen_knocks(self, "127.0.0.2")
        target = f"http://127.0.0.2:{port}/feed"
        go.url = target.encode()
        result = await self.fetch(self.fetcher(only("127.0.0.1")), server.url("/go"))
        self.assertEqual(
            result.error,
            "refused: 127.0.0.2 is a loopback address (allow_private_networks = false)",
        )
        self.assertEqual(result.redirects, ((302, target),))
        self.assertEqual(result.final_url, target)
        self.assertEqual(knocks.connections, 0)

    async def test_redirect_to_an_allowed_address_is_followed(self) -> None:
        # The redirect above, with 127.0.0.2 allowed: the refusal there is the guard's doing.
        server, feed, go = self.serve()
        knocks, port = listen_knocks(self, "127.0.0.2")
        go.url = f"http://127.0.0.2:{port}/feed".encode()
        result = await self.fetch(self.fetcher(only("127.0.0.1", "127.0.0.2")), server.url("/go"))
        self.assertNotIn("refused", result.error or "")
        self.assertEqual(knocks.connections, 1)

    async def test_other_schemes_never_connect(self) -> None:
        knocks, port = listen_knocks(self, HOST_A)
        urls = [
            f"gopher://{HOST_A}:{port}/feed",
            f"ftp://{HOST_A}:{port}/feed",
            f"ws://{HOST_A}:{port}/feed",
            "file:///etc/passwd",
            "data:application/atom+xml,<feed/>",
        ]
        for guard in (None, only(HOST_A)):
            fetcher = self.fetcher(guard)
            for url in urls:
                result = await self.fetch(fetcher, url)
                self.assertIsNone(result.status, url)
                self.assertIsNone(result.body, url)
                self.assertEqual(result.error, f"unsupported URL: {url}")
        self.assertEqual(knocks.connections, 0)

    # IPv6 literals (issue 19, item 10): refused as their IPv4 forms are, never IDNA errors.

    def ipv6_knocks(self) -> tuple[Knocks, int, Knocks, int]:
        """Listeners on ::1 and on 127.0.0.1, where the refused literals would lead."""
        if not has_ipv6_loopback():
            raise SkipTest("no IPv6 loopback on this machine")
        knocks6, port6 = listen_knocks(self, "::1")
        knocks4, port4 = listen_knocks(self, HOST_A)
        return knocks6, port6, knocks4, port4

    async def test_ipv6_literals_refused_without_a_request(self) -> None:
        knocks6, port6, knocks4, port4 = self.ipv6_knocks()
        expected = {
            f"http://[::1]:{port6}/feed": "refused: ::1 is a loopback address",
            f"http://[::]:{port6}/feed": "refused: :: is an unspecified address",
            f"https://[::1]:{port6}/feed": "refused: ::1 is a loopback address",
            f"http://[::ffff:127.0.0.1]:{port4}/feed": (
                "refused: ::ffff:127.0.0.1 is a loopback address"
            ),
            # NAT64 (DNS64) of 127.0.0.1: judged by the IPv4 address it carries.
            f"http://[64:ff9b::7f00:1]:{port4}/feed": (
                "refused: 64:ff9b::7f00:1 is a loopback address"
            ),
            f"http://[::ffff:10.0.0.1]:{port4}/feed": (
                "refused: ::ffff:10.0.0.1 is a private address"
            ),
            f"http://[fe80::1]:{port6}/feed": "refused: fe80::1 is a link-local address",
        }
        fetcher = self.fetcher(only("127.0.0.1"))
        for url, reason in expected.items():
            result = await self.fetch(fetcher, url)
            self.assertEqual(result.error, f"{reason} (allow_private_networks = false)", url)
            self.assertEqual((result.status, result.body), (None, None))
        self.assertEqual((knocks6.connections, knocks4.connections), (0, 0))

    async def test_ipv6_literals_connect_without_the_guard(self) -> None:
        # The refusals above are the guard's doing: unguarded, the same literals connect.
        knocks6, port6, knocks4, port4 = self.ipv6_knocks()
        fetcher = self.fetcher(None)
        for url in (
            f"http://[::1]:{port6}/feed",
            f"http://[::]:{port6}/feed",
            f"http://[::ffff:127.0.0.1]:{port4}/feed",
        ):
            result = await self.fetch(fetcher, url)
            self.assertTrue((result.error or "").startswith("connection lost"), (url, result))
        self.assertEqual((knocks6.connections, knocks4.connections), (2, 1))

    async def test_ipv6_literal_allowed_by_the_policy_is_fetched(self) -> None:
        if not has_ipv6_loopback():
            raise SkipTest("no IPv6 loopback on this machine")
        feed = HoldingFeed(FEED, hold=0)
        port = reactor.listenTCP(0, Site(feed), interface="::1")
        self.addCleanup(port.stopListening)
        url = f"http://[::1]:{port.getHost().port}/feed"
        result = await self.fetch(self.fetcher(only("::1")), url)
        self.assertEqual((result.error, result.status, result.body), (None, 200, FEED))
        self.assertEqual(feed.served, {"[::1]": 1})

    async def test_redirects_to_ipv6_literals_refused(self) -> None:
        knocks6, port6, knocks4, port4 = self.ipv6_knocks()
        server, feed, go = self.serve()
        fetcher = self.fetcher(only("127.0.0.1"))
        for target, reason in (
            (f"http://[::1]:{port6}/feed", "::1 is a loopback address"),
            (f"http://[::]:{port6}/feed", ":: is an unspecified address"),
            (f"http://[::ffff:127.0.0.2]:{port4}/feed", "::ffff:127.0.0.2 is a loopback address"),
            (f"http://[64:ff9b::7f00:1]:{port4}/feed", "64:ff9b::7f00:1 is a loopback address"),
        ):
            go.url = target.encode()
            result = await self.fetch(fetcher, server.url("/go"))
            self.assertEqual(
                result.error, f"refused: {reason} (allow_private_networks = false)", target
            )
            self.assertEqual(result.redirects, ((302, target),))
        self.assertEqual((knocks6.connections, knocks4.connections), (0, 0))

    def test_guarded_endpoints_take_ipv6_literals(self) -> None:
        # URI drops the brackets: TLS gets the bare address (IDNA would refuse "[::1]").
        for policy in (None, non_public_kind):
            endpoints = GuardedEndpointFactory(reactor, policy)
            for scheme in (b"http", b"https"):
                endpoints.endpointForURI(URI.fromBytes(scheme + b"://[::1]:8443/feed"))

    def test_guarded_endpoints_are_http_and_https_only(self) -> None:
        # The Agent's own endpoints also take ws: and wss:; the guard's take neither.
        endpoints = GuardedEndpointFactory(reactor)
        for scheme in (b"ws", b"wss", b"ftp", b"gopher"):
            with self.assertRaises(SchemeNotSupported):
                endpoints.endpointForURI(URI.fromBytes(scheme + b"://127.0.0.1:8080/feed"))
        for scheme in (b"http", b"https"):
            endpoints.endpointForURI(URI.fromBytes(scheme + b"://127.0.0.1:8080/feed"))


@pytest.mark.slow
def test_daemon_refuses_ipv6_literals(tmp_path: Path) -> None:
    """End to end: ``twistd planet`` with the key off names each refused literal."""
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    with socket.socket(socket.AF_INET6) as listener:
        listener.bind(("::1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        urls = {
            f"http://[::1]:{port}/feed": "::1 is a loopback address",
            f"http://[::ffff:127.0.0.1]:{port}/feed": "::ffff:127.0.0.1 is a loopback address",
            f"http://[64:ff9b::7f00:1]:{port}/feed": "64:ff9b::7f00:1 is a loopback address",
            f"http://[::]:{port}/feed": ":: is an unspecified address",
        }
        config = "[Planet]\nname = Guarded\nallow_private_networks = no\n" + "".join(
            f"\n[{url}]\nname = Literal {n}\n" for n, url in enumerate(urls)
        )
        with Daemon(tmp_path / "planet", config_text=config) as daemon:
            daemon.start()

            def rows() -> dict[str, Any] | None:
                status, _, body = daemon.get("/feeds.json")
                found = {row["url"]: row for row in json.loads(body)}
                # Every literal fetched (the page is at most a second behind the store).
                done = all(row["last_fetch"] for row in found.values())
                return found if done else None

            found = daemon.wait_until(rows, deadline=20, what="every literal refused")
            for url, reason in urls.items():
                row = found[url]
                assert row["state"] == "failing", row
                assert row["reason"] == f"refused: {reason} (allow_private_networks = false)"
                assert row["next_fetch"] is not None, row
            listener.settimeout(0.5)
            with pytest.raises(TimeoutError):
                listener.accept()  # no connection reached it
            code, log = daemon.stop()
            assert code in (0, -15), log[-3000:]
            assert "Traceback" not in log, log[-3000:]


class ServiceTests(TestCase):
    async def test_build_service_guards_when_the_key_is_false(self) -> None:
        server = start_server(self, HoldingFeed(FEED, hold=0))
        config = parse_config("[Planet]\nallow_private_networks = no\n", "planet.ini")
        service = build_service(config, "tcp:0:interface=127.0.0.1", reactor, parser=inline_parser)
        result: FetchResult = await within(service.fetcher.fetch(server.url("/feed")), 15)
        self.assertEqual(result.error, REFUSED_LOOPBACK)


class ReloadTests(SynchronousTestCase):
    def test_changed_key_takes_effect_at_restart(self) -> None:
        p = Planet(self, {GOOD: "Good"})
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        p.write({GOOD: "Good"}, extra="allow_private_networks = false")
        self.assertTrue(p.service.reload())
        self.assertFalse(p.service.config.allow_private_networks)
        warned = [
            e
            for e in events
            if e.get("log_level") == LogLevel.warn and e.get("key") == "allow_private_networks"
        ]
        self.assertEqual(len(warned), 1)
        self.assertIn("take effect at restart", warned[0]["log_format"])


# -- configuration -----------------------------------------------------------------------


def test_config_key_defaults_to_true() -> None:
    config = parse_config("[Planet]\n", "planet.ini")
    assert config.allow_private_networks is True


@pytest.mark.parametrize(
    ("word", "value"),
    [("no", False), ("False", False), ("0", False), ("off", False), ("yes", True), ("on", True)],
)
def test_config_key_parses(word: str, value: bool) -> None:
    config = parse_config(f"[Planet]\nallow_private_networks = {word}\n", "planet.ini")
    assert config.allow_private_networks is value
    assert config.warnings == ()


def test_config_key_rejects_other_values() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[Planet]\nallow_private_networks = sometimes\n", "planet.ini")
    assert str(info.value) == (
        "planet.ini: [Planet] allow_private_networks: "
        "expected yes or no (true/false, on/off, 1/0), got 'sometimes'"
    )


def test_feed_sections_with_other_schemes_are_not_subscribed() -> None:
    text = "[Planet]\n" + "".join(
        f"[{url}]\n"
        for url in ("file:///etc/passwd", "gopher://g.example/", "data:text/xml,x", GOOD)
    )
    config = parse_config(text, "planet.ini")
    assert [s.url for s in config.subscriptions] == [GOOD]
    assert config.warnings == tuple(
        f"planet.ini: [{url}] is not an http(s) feed URL; section ignored"
        for url in ("file:///etc/passwd", "gopher://g.example/", "data:text/xml,x")
    )


def test_key_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    row = re.search(r"^\| `allow_private_networks` \| `yes` \| (.+) \|$", readme, re.MULTILINE)
    assert row is not None
    assert "`no`" in row.group(1) and "reading list" in row.group(1)
    example = (ROOT / "etc" / "planet.ini").read_text()
    assert re.search(r"^# *allow_private_networks = no$", example, re.MULTILINE)
