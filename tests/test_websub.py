"""Issue 14, WebSub's pure parts and the callback's answers: discovery (websub.rocks 100,
102, 103, 104), signatures (sha1, sha256, sha384, sha512), verification of intent and the
lease arithmetic."""

from __future__ import annotations

from datetime import timedelta

from feeds import at
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from planet.config import parse_config
from planet.fetch import Fetcher
from planet.ingest import Ingester
from planet.store import Store
from planet.testing import planet_ini
from planet.websub import (
    Discovered,
    check_signature,
    discover,
    new_record,
    renew_at,
    sign,
    verified,
)
from planet.websubservice import WebSubService

NOW = at(2026, 6, 24, 9, 0)
FEED = "http://blog.example/feed"
HUB = "http://hub.example/"
SELF = "http://blog.example/feed.xml"

ATOM_WITH_HUB = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<title>Blog</title>
<link rel="hub" href="http://hub.example/"/>
<link rel='self' href='http://blog.example/feed.xml'/>
<link rel="alternate" href="http://blog.example/"/>
<entry><title>One</title><link rel="hub" href="http://entry-hub.example/"/></entry>
</feed>"""

RSS_WITH_HUB = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
<title>Blog</title><link>http://blog.example/</link>
<atom:link rel="self" type="application/rss+xml" href="http://blog.example/feed.xml"/>
<atom:link rel="hub" href="http://hub.example/"/>
<item><title>One</title></item>
</channel></rss>"""


class DiscoveryTests(SynchronousTestCase):
    """Section 4, as websub.rocks numbers the subscriber's discovery tests."""

    def test_100_hub_and_self_from_link_headers(self) -> None:
        headers = ['<http://hub.example/>; rel="hub", <http://blog.example/feed.xml>; rel="self"']
        self.assertEqual(discover(headers, b"<feed/>", FEED), Discovered(hub=HUB, topic=SELF))

    def test_100_link_headers_given_separately(self) -> None:
        headers = ["<http://blog.example/feed.xml>; rel=self", "<http://hub.example/>; rel=hub"]
        self.assertEqual(discover(headers, None, FEED), Discovered(hub=HUB, topic=SELF))

    def test_102_from_an_atom_feed(self) -> None:
        self.assertEqual(discover([], ATOM_WITH_HUB, FEED), Discovered(hub=HUB, topic=SELF))

    def test_103_from_an_rss_feed_atom_link(self) -> None:
        self.assertEqual(discover([], RSS_WITH_HUB, FEED), Discovered(hub=HUB, topic=SELF))

    def test_104_headers_win_over_the_body(self) -> None:
        headers = ['<http://header-hub.example/>; rel="hub", <http://blog.example/h>; rel="self"']
        self.assertEqual(
            discover(headers, ATOM_WITH_HUB, FEED),
            Discovered(hub="http://header-hub.example/", topic="http://blog.example/h"),
        )

    def test_no_self_the_topic_is_the_url_fetched(self) -> None:
        body = b'<feed xmlns="http://www.w3.org/2005/Atom"><link rel="hub" href="/hub"/></feed>'
        final = "http://blog.example/moved/feed"
        self.assertEqual(
            discover([], body, final),
            Discovered(hub="http://blog.example/hub", topic=final),
        )

    def test_no_hub_no_subscription(self) -> None:
        body = b'<feed xmlns="http://www.w3.org/2005/Atom"><link rel="self" href="/x"/></feed>'
        self.assertIsNone(discover(['<http://a.example/>; rel="self"'], body, FEED))

    def test_an_entry_hub_is_not_the_feed_hub(self) -> None:
        body = b'<feed><entry><link rel="hub" href="http://entry-hub.example/"/></entry></feed>'
        self.assertIsNone(discover([], body, FEED))

    def test_several_rels_in_one_link(self) -> None:
        headers = ['<http://hub.example/>; rel="hub other"']
        self.assertEqual(discover(headers, None, FEED), Discovered(hub=HUB, topic=FEED))


class SignatureTests(SynchronousTestCase):
    """Section 8: X-Hub-Signature, each method, compared in constant time."""

    body = b"<feed>pushed</feed>"
    secret = "s3cret"

    def test_each_method_accepted(self) -> None:
        for method in ("sha1", "sha256", "sha384", "sha512"):
            with self.subTest(method=method):
                header = sign(self.secret, self.body, method)
                self.assertTrue(header.startswith(method + "="))
                self.assertTrue(check_signature(header, self.secret, self.body))

    def test_wrong_or_missing_signature_refused(self) -> None:
        good = sign(self.secret, self.body, "sha256")
        self.assertFalse(check_signature(sign("other", self.body), self.secret, self.body))
        self.assertFalse(check_signature(good, self.secret, self.body + b" "))
        self.assertFalse(check_signature(None, self.secret, self.body))
        self.assertFalse(check_signature("", self.secret, self.body))
        self.assertFalse(check_signature("md5=abc", self.secret, self.body))
        self.assertFalse(check_signature("sha256", self.secret, self.body))


def service(settings: dict[str, object] | None = None) -> WebSubService:
    ini = planet_ini("W", [FEED], websub_callback="https://planet.example/", **(settings or {}))
    config = parse_config(ini, "w.ini")
    clock = Clock()
    clock.advance(NOW.timestamp())
    store = Store()
    fetcher = Fetcher(None, clock, user_agent="t")  # type: ignore[arg-type]
    ingester = Ingester(config, store, fetcher, None, clock)  # type: ignore[arg-type]
    return WebSubService(config, store, fetcher, ingester, clock)


class VerificationTests(SynchronousTestCase):
    """Section 5.3: the challenge is echoed only for a request we made, for its topic."""

    def setUp(self) -> None:
        self.ws = service()
        self.record = new_record(FEED, Discovered(HUB, SELF), "https://planet.example/", 864000)
        self.ws.store.set_websub(self.record)

    def args(self, mode: str = "subscribe", topic: str = SELF) -> dict[str, str]:
        return {"hub.mode": mode, "hub.topic": topic, "hub.challenge": "c-123"}

    def test_callback_url_and_secret(self) -> None:
        self.assertEqual(self.record.callback, f"https://planet.example/websub/{self.record.id}")
        self.assertGreaterEqual(len(self.record.id), 20)
        self.assertGreaterEqual(len(self.record.secret), 32)
        self.assertNotIn(self.record.secret, repr(self.record))

    def test_pending_subscribe_echoed_and_lease_starts(self) -> None:
        args = {**self.args(), "hub.lease_seconds": "3600"}
        self.assertEqual(self.ws.verify(self.record.id, args), (200, b"c-123"))
        record = self.ws.store.websub_records()[self.record.id]
        self.assertEqual(record.state, "subscribed")
        self.assertEqual(record.expires, NOW + timedelta(seconds=3600))

    def test_wrong_topic_refused(self) -> None:
        code, _ = self.ws.verify(self.record.id, self.args(topic=FEED))
        self.assertEqual(code, 404)
        self.assertEqual(self.ws.store.websub_records()[self.record.id].state, "pending")

    def test_unknown_id_refused(self) -> None:
        self.assertEqual(self.ws.verify("nope", self.args())[0], 404)

    def test_subscribe_never_asked_for_refused(self) -> None:
        self.ws.verify(self.record.id, self.args())  # verified: nothing pending now
        self.assertEqual(self.ws.verify(self.record.id, self.args())[0], 404)
        self.assertEqual(self.ws.verify(self.record.id, self.args("unsubscribe"))[0], 404)

    def test_missing_challenge_refused(self) -> None:
        args = {"hub.mode": "subscribe", "hub.topic": SELF}
        self.assertEqual(self.ws.verify(self.record.id, args)[0], 404)

    def test_denied_recorded_with_its_reason(self) -> None:
        args = {"hub.mode": "denied", "hub.topic": SELF, "hub.reason": "no spam"}
        self.assertEqual(self.ws.verify(self.record.id, args)[0], 200)
        record = self.ws.store.websub_records()[self.record.id]
        self.assertEqual((record.state, record.reason), ("denied", "no spam"))
        self.assertEqual(self.ws.rows()[FEED]["websub"], "denied")


class LeaseTests(SynchronousTestCase):
    def test_renewed_at_ninety_percent_of_the_lease(self) -> None:
        record = new_record(FEED, Discovered(HUB, SELF), "https://planet.example/", 1000)
        self.assertIsNone(renew_at(record))
        done = verified(record, NOW, 1000)
        self.assertEqual(renew_at(done), NOW + timedelta(seconds=900))
        # The hub's lease, not the one asked for, counts.
        self.assertEqual(renew_at(verified(record, NOW, 100)), NOW + timedelta(seconds=90))
