"""Issue 14, the WebSub subscriber wired as the daemon wires it (build_service on a Clock,
StubTreq both ways): subscribe, verify, push, renew, retry, unsubscribe, restart."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from feeds import Item, at, atom
from rig import Rig
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.pages import notFound
from websubhub import Hosts, Hub

from planet.config import ConfigError, Subscription, parse_config
from planet.parse import parse_feed
from planet.snapshotcodec import _decode_generic, decode_document, encode
from planet.store import Store
from planet.testing import HeldParser, MemoryFeeds, ok, planet_ini, redirect
from planet.websub import sign
from planet.websubservice import WebSubService

NOW = at(2026, 6, 24, 9, 0)
FEED = "http://blog.example/feed"
SELF = "http://blog.example/self.xml"
HUB = "http://hub.example/"
CALLBACK = "http://planet.example/"
LINKS = f'<{HUB}>; rel="hub", <{SELF}>; rel="self"'


def body(*titles: str, hub: str | None = None) -> bytes:
    items = [
        Item(t, f"http://blog.example/{t}", NOW - timedelta(hours=i)) for i, t in enumerate(titles)
    ]
    doc = atom("Blog", "http://blog.example/", items)
    if hub is not None:
        doc = doc.replace(
            b"<title>Blog</title>", f'<title>Blog</title><link rel="hub" href="{hub}"/>'.encode()
        )
    return doc


def result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred did not fire"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


class Planet:
    """A planet subscribed to FEED (served with ``LINKS``) and the test hub."""

    def __init__(self, test: SynchronousTestCase, parser: Any = None, **settings: Any) -> None:
        self.test = test
        self.feeds = MemoryFeeds()
        self.hub = Hub()
        self.other_hub = Hub()
        self.hosts = Hosts(self.feeds, hub_example=self.hub, hub2_example=self.other_hub)
        settings.setdefault("websub_callback", CALLBACK)
        self.ini = planet_ini("W", [FEED], **settings)
        self.feeds.serve(FEED, body("one"), Link=LINKS)
        config = parse_config(self.ini, "w.ini")
        if parser is None:
            self.rig = Rig(test, config, self.hosts, now=NOW)
        else:
            self.rig = Rig(test, config, self.hosts, now=NOW, parser=parser)
        self.web = StubTreq(self.rig.web.resource())
        self.hub.client = self.other_hub.client = self.web
        self.websub = next(c for c in self.rig.service if isinstance(c, WebSubService))
        self.websub.startService()
        test.addCleanup(self.websub.stopService)

    def pump(self) -> None:
        for _ in range(6):
            self.rig.stub.flush()
            self.web.flush()

    def fetch(self, url: str = FEED) -> None:
        sub = next(s for s in self.rig.config.subscriptions if s.url == url)
        d = self.rig.ingester.update(sub)
        self.pump()
        result(d)
        self.pump()

    def advance(self, seconds: float) -> None:
        self.rig.clock.advance(seconds)
        self.pump()

    def record(self) -> Any:
        return self.websub.record_of(FEED)

    def push(self, data: bytes, signature: str | None = "good", sub_id: str | None = None) -> Any:
        record = self.record()
        headers = {"Content-Type": "application/atom+xml"}
        if signature == "good":
            signature = sign(record.secret, data, "sha256")
        if signature is not None:
            headers["X-Hub-Signature"] = signature
        url = record.callback if sub_id is None else f"{CALLBACK}websub/{sub_id}"
        d = self.web.post(url, data=data, headers=headers)
        self.pump()
        response = result(d)
        self.pump()
        return response

    def titles(self) -> set[str]:
        return {e.title for e in self.rig.store.river()}

    def feeds_json(self) -> dict[str, Any]:
        d = self.web.get(CALLBACK + "feeds.json")
        self.pump()
        text = result(self.web.content(result(d)))
        return {row["url"]: row for row in json.loads(text)}


class SubscribeTests(SynchronousTestCase):
    def test_subscribe_verify_push(self) -> None:
        p = Planet(self)
        p.fetch()
        form = p.hub.requests[0]
        record = p.record()
        self.assertEqual(form["hub.mode"], "subscribe")
        self.assertEqual(form["hub.topic"], SELF)  # the self URL, not the URL fetched
        self.assertEqual(form["hub.callback"], f"{CALLBACK}websub/{record.id}")
        self.assertEqual(form["hub.lease_seconds"], "864000")
        self.assertEqual(form["hub.secret"], record.secret)
        self.assertTrue(p.hub.verifications[0].echoed)
        self.assertEqual(record.state, "subscribed")
        self.assertEqual(record.expires, NOW + timedelta(seconds=864000))
        codes = result(p.hub.publish(SELF, body("two", "one")))
        p.pump()
        self.assertEqual(codes, [202])
        self.assertEqual(p.titles(), {"one", "two"})
        row = p.feeds_json()[FEED]
        self.assertEqual(row["websub"], "subscribed")
        self.assertEqual(row["websub_hub"], HUB)
        self.assertEqual(row["websub_expires"], "2026-07-04T09:00:00Z")
        self.assertEqual(row["last_push"], "2026-06-24T09:00:00Z")
        metrics = p.rig.web.metrics.registry
        pushes = metrics.get_sample_value("planet_websub_pushes_total", {"result": "accepted"})
        self.assertEqual(pushes, 1)
        subscribed = {"state": "subscribed"}
        self.assertEqual(metrics.get_sample_value("planet_websub_subscriptions", subscribed), 1)

    def test_each_signature_method_accepted(self) -> None:
        p = Planet(self)
        p.fetch()
        for n, method in enumerate(("sha1", "sha256", "sha384", "sha512")):
            codes = result(p.hub.publish(SELF, body(method, "one"), method=method))
            p.pump()
            self.assertEqual(codes, [202])
            self.assertIn(method, p.titles(), n)

    def test_wrong_and_missing_signatures_ignored_answered_2xx(self) -> None:
        p = Planet(self)
        p.fetch()
        logged: list[str] = []
        observer = lambda e: logged.append(formatEvent(e))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        wrong = p.push(body("forged"), signature=sign("not-the-secret", body("forged")))
        unsigned = p.push(body("unsigned"), signature=None)
        self.assertEqual((wrong.code, unsigned.code), (202, 202))
        self.assertEqual(p.titles(), {"one"})
        bad = p.rig.web.metrics.registry.get_sample_value("planet_websub_bad_signatures_total")
        self.assertEqual(bad, 2)
        # Logged once per feed per hour.
        self.assertEqual(sum("signature dropped" in line for line in logged), 1)
        p.advance(3601)
        p.push(body("forged"), signature=None)
        self.assertEqual(sum("signature dropped" in line for line in logged), 2)

    def test_unknown_id_is_404(self) -> None:
        p = Planet(self)
        p.fetch()
        self.assertEqual(p.push(body("x"), sub_id="unknown").code, 404)
        d = p.web.get(f"{CALLBACK}websub/unknown?hub.mode=subscribe&hub.topic=x&hub.challenge=y")
        p.pump()
        self.assertEqual(result(d).code, 404)

    def test_unrequested_verification_refused_through_the_route(self) -> None:
        p = Planet(self)
        p.fetch()
        record = p.record()
        response = result(p.hub.verify_unasked(record.callback, SELF))
        p.pump()
        self.assertEqual(response.code, 404)
        response = result(p.hub.verify_unasked(record.callback, SELF, "unsubscribe"))
        self.assertEqual(response.code, 404)
        self.assertEqual(p.record().state, "subscribed")

    def test_ten_megabyte_push_refused_by_the_cap(self) -> None:
        p = Planet(self, max_feed_bytes="5M")
        p.fetch()
        big = body("huge") + b" " * (10 * 1024 * 1024)
        response = p.push(big)
        self.assertEqual(response.code, 413)
        self.assertEqual(p.titles(), {"one"})

    def test_a_flood_is_rate_limited(self) -> None:
        p = Planet(self)
        p.fetch()
        codes = [p.push(body(f"p{n}", "one")).code for n in range(60)]
        self.assertEqual(codes.count(429), 60 - int(p.websub.pushes.push_burst))
        self.assertEqual(set(codes), {202, 429})
        p.advance(1)
        self.assertEqual(p.push(body("later", "one")).code, 202)

    def test_a_subscribed_feed_is_polled_at_websub_poll_interval(self) -> None:
        p = Planet(self, websub_poll_interval=7200)
        p.fetch()
        p.fetch()
        state = p.rig.store.state(FEED)
        self.assertIsNotNone(state.next_fetch)
        wait = (state.next_fetch - NOW).total_seconds()
        self.assertGreaterEqual(wait, 7200)
        self.assertLess(wait, 7200 * 1.1)

    def test_secret_never_logged_nor_shown(self) -> None:
        logged: list[str] = []
        observer = lambda e: logged.append(formatEvent(e))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        p = Planet(self)
        p.fetch()
        secret = p.record().secret
        self.assertTrue(logged)
        self.assertFalse([line for line in logged if secret in line])
        self.assertNotIn(secret, json.dumps(p.feeds_json()))


class AnswerTests(SynchronousTestCase):
    """Section 7: a push is answered on receipt; queued bodies are stored before a stop."""

    def held_planet(self) -> tuple[Planet, HeldParser]:
        parser = HeldParser()
        p = Planet(self, parser=parser)
        sub = p.rig.config.subscriptions[0]
        fetching = p.rig.ingester.update(sub)
        p.pump()
        d, args = parser.held.pop()
        d.callback(parse_feed(*args[:4]))
        p.pump()
        result(fetching)
        p.pump()
        self.assertEqual(p.record().state, "subscribed")
        return p, parser

    def release(self, p: Planet, parser: HeldParser) -> None:
        held, args = parser.held.pop(0)
        held.callback(parse_feed(*args[:4]))
        p.pump()

    def test_a_push_is_answered_at_receipt_and_stored_after_its_parse(self) -> None:
        p, parser = self.held_planet()
        response = p.push(body("two", "one"))  # answered while its parse is held
        self.assertEqual(response.code, 202)
        self.assertEqual(len(parser.held), 1)
        self.assertNotIn("two", p.titles())
        self.release(p, parser)
        self.assertIn("two", p.titles())

    def test_a_full_queue_is_answered_429_with_retry_after(self) -> None:
        p, parser = self.held_planet()
        queued = p.websub.pushes.max_queued
        codes = [p.push(body(f"p{n}", "one")).code for n in range(1 + queued)]
        self.assertEqual(codes, [202] * (1 + queued))  # one parsing, the rest queued
        refused = p.push(body("over", "one"))
        self.assertEqual(refused.code, 429)
        self.assertEqual(refused.headers.getRawHeaders("retry-after"), ["1"])
        for _ in range(1 + queued):
            self.release(p, parser)
        self.assertEqual(
            {f"p{n}" for n in range(1 + queued)} - p.titles(), set(), "a 202 push was lost"
        )
        self.assertNotIn("over", p.titles())

    def test_queued_bytes_are_bounded(self) -> None:
        p, parser = self.held_planet()
        data = body("first", "one")
        p.websub.pushes.max_queued_bytes = len(data) + 10
        self.assertEqual(p.push(data).code, 202)  # parsing: no longer queued
        self.assertEqual(p.push(body("second", "one")).code, 202)
        self.assertEqual(p.push(body("third", "one")).code, 429)

    def test_stop_waits_until_every_answered_push_is_stored(self) -> None:
        p, parser = self.held_planet()
        self.assertEqual(p.push(body("two", "one")).code, 202)
        self.assertEqual(p.push(body("three", "two", "one")).code, 202)
        stopped = p.websub.stopService()
        p.pump()
        self.assertNoResult(stopped)
        # Taking no more: the hub is asked to retry (the next process takes it).
        late = p.push(body("four", "three", "two", "one"))
        self.assertEqual(late.code, 503)
        self.assertEqual(late.headers.getRawHeaders("retry-after"), ["1"])
        self.release(p, parser)
        self.assertNoResult(stopped)
        self.release(p, parser)
        self.assertIsNone(result(stopped))
        self.assertEqual(p.titles(), {"one", "two", "three"})
        p.websub.startService()
        self.assertEqual(p.push(body("five", "one")).code, 202)

    def test_stop_gives_up_after_drain_timeout(self) -> None:
        p, parser = self.held_planet()
        self.assertEqual(p.push(body("two", "one")).code, 202)
        logged: list[str] = []
        observer = lambda e: logged.append(formatEvent(e))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        stopped = p.websub.stopService()
        p.advance(p.websub.drain_timeout - 1)
        self.assertNoResult(stopped)
        p.advance(1)
        self.assertIsNone(result(stopped))
        self.assertTrue([line for line in logged if "1 WebSub pushes still waiting" in line])


class DiscoveryTests(SynchronousTestCase):
    def test_topic_that_redirects_is_subscribed_at_its_final_url(self) -> None:
        p = Planet(self)
        final = "http://blog.example/new-feed"
        p.feeds.plan(FEED, redirect(302, final))
        p.feeds.plan(final, ok(body("one", hub=HUB)))
        p.fetch()
        self.assertEqual(p.hub.requests[0]["hub.topic"], final)
        self.assertEqual(p.record().state, "subscribed")

    def test_hub_that_redirects(self) -> None:
        p = Planet(self)
        p.hosts.moved["old-hub.example"] = HUB
        p.feeds.serve(FEED, body("one"), Link='<http://old-hub.example/>; rel="hub"')
        p.fetch()
        self.assertEqual(len(p.hub.requests), 1)
        self.assertEqual(p.record().state, "subscribed")

    def test_a_feed_without_hub_is_not_subscribed(self) -> None:
        p = Planet(self)
        p.feeds.serve(FEED, body("one"))
        p.fetch()
        self.assertIsNone(p.record())
        self.assertEqual(p.feeds_json()[FEED]["websub"], "off")

    def test_off_without_websub_callback_and_with_websub_no(self) -> None:
        p = Planet(self, websub_callback="")
        p.fetch()
        self.assertEqual(p.hub.requests, [])
        opted = planet_ini("W", [], websub_callback=CALLBACK) + f"\n[{FEED}]\nwebsub = no\n"
        p2 = Planet(self)
        p2.rig.service.apply(parse_config(opted, "w.ini"))
        p2.fetch()
        self.assertEqual(p2.hub.requests, [])

    def test_resubscribes_when_the_hub_changes(self) -> None:
        p = Planet(self)
        p.fetch()
        first = p.record()
        p.feeds.serve(
            FEED, body("one"), Link=f'<http://hub2.example/>; rel="hub", <{SELF}>; rel="self"'
        )
        p.fetch()
        self.assertEqual(p.hub.requests[-1]["hub.mode"], "unsubscribe")
        self.assertEqual(p.hub.subscriptions, {})
        self.assertNotIn(first.id, p.rig.store.websub_records())
        self.assertEqual(p.record().hub, "http://hub2.example/")
        self.assertEqual(p.record().state, "subscribed")


class LifecycleTests(SynchronousTestCase):
    def test_renewed_before_the_lease_ends(self) -> None:
        p = Planet(self, websub_lease_seconds=1000)
        p.fetch()
        first = p.record()
        p.advance(850)
        self.assertEqual(len(p.hub.requests), 1)
        p.advance(60)  # past 900 s: 90 % of the lease
        self.assertEqual(len(p.hub.requests), 2)
        renewed = p.record()
        self.assertEqual((renewed.id, renewed.secret), (first.id, first.secret))
        self.assertGreater(renewed.expires, first.expires)
        self.assertEqual(renewed.state, "subscribed")

    def test_a_request_never_verified_is_retried(self) -> None:
        p = Planet(self)
        p.hub.client = StubTreq(notFound())  # the hub's verifications get lost
        p.fetch()
        self.assertEqual(p.record().state, "pending")
        p.advance(p.websub.verify_timeout + p.websub.tick_interval)
        record = p.record()
        self.assertEqual(record.state, "failing")
        self.assertEqual(record.reason, "the hub did not verify the request")
        p.hub.client = p.web
        p.advance((record.next_attempt - p.websub._now()).total_seconds() + 30)
        self.assertEqual(p.record().state, "subscribed")

    def test_hub_error_retried_with_the_fetch_backoff(self) -> None:
        p = Planet(self)
        p.hub.answer = 500
        p.fetch()
        record = p.record()
        self.assertEqual(record.state, "failing")
        self.assertIn("HTTP 500", record.reason)
        self.assertEqual(p.feeds_json()[FEED]["websub"], "failing")
        wait = (record.next_attempt - NOW).total_seconds()
        self.assertTrue(1620 <= wait <= 1980, wait)  # fetch_interval, +/-10 % jitter
        p.hub.answer = 202
        p.advance(wait - 60)
        self.assertEqual(len(p.hub.requests), 1)
        p.advance(120)
        self.assertEqual(len(p.hub.requests), 2)
        self.assertEqual(p.record().state, "subscribed")

    def test_removal_at_sighup_unsubscribes(self) -> None:
        p = Planet(self)
        p.fetch()
        self.assertEqual(len(p.hub.subscriptions), 1)
        p.rig.service.apply(parse_config(planet_ini("W", [], websub_callback=CALLBACK), "w.ini"))
        p.pump()
        self.assertEqual(p.hub.requests[-1]["hub.mode"], "unsubscribe")
        self.assertTrue(p.hub.verifications[-1].echoed)
        self.assertEqual(p.hub.subscriptions, {})
        self.assertEqual(dict(p.rig.store.websub_records()), {})

    def test_opting_out_unsubscribes(self) -> None:
        p = Planet(self)
        p.fetch()
        opted = planet_ini("W", [], websub_callback=CALLBACK) + f"\n[{FEED}]\nwebsub = no\n"
        p.rig.service.apply(parse_config(opted, "w.ini"))
        p.pump()
        self.assertEqual(p.hub.subscriptions, {})
        self.assertIsNone(p.record())

    def test_restart_keeps_subscriptions_and_secrets(self) -> None:
        p = Planet(self)
        p.fetch()
        before = p.record()
        store = p.rig.store
        entries, states = store.snapshot_data()
        data = encode(entries, states, NOW, websub=tuple(store.websub_records().values()))
        doc = decode_document(data)
        self.assertEqual(doc.websub, [before])
        self.assertEqual(_decode_generic(data).websub, [before])  # the reference reading
        # A second planet from that snapshot takes the hub's pushes signed with the secret.
        q = Planet(self)
        q.rig.store.load(doc.entries, doc.states)
        q.rig.store.load_websub(doc.websub)
        q.hub.subscriptions = p.hub.subscriptions
        codes = result(q.hub.publish(SELF, body("after-restart", "one")))
        q.pump()
        self.assertEqual(codes, [202])
        self.assertIn("after-restart", q.titles())
        self.assertEqual(q.hub.requests, [])  # nothing asked again

    def test_snapshot_without_subscriptions_is_unchanged(self) -> None:
        store = Store()
        data = encode(*store.snapshot_data(), NOW)
        self.assertNotIn(b"websub", data)
        self.assertEqual(decode_document(data).websub, [])


class ConfigTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        config = parse_config("[Planet]\n", "p.ini")
        self.assertEqual(
            (config.websub_callback, config.websub_lease_seconds, config.websub_poll_interval),
            ("", 864000.0, 86400.0),
        )

    def test_bad_values_name_file_section_and_key(self) -> None:
        for key, value in (
            ("websub_callback", "planet.example"),
            ("websub_lease_seconds", "10"),
            ("websub_poll_interval", "soon"),
        ):
            with self.subTest(key=key):
                with self.assertRaises(ConfigError) as caught:
                    parse_config(f"[Planet]\n{key} = {value}\n", "p.ini")
                self.assertIn(f"p.ini: [Planet] {key}", str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            parse_config(f"[Planet]\n[{FEED}]\nwebsub = maybe\n", "p.ini")
        self.assertIn(f"[{FEED}] websub", str(caught.exception))

    def test_websub_no_is_no_warning(self) -> None:
        config = parse_config(f"[Planet]\n[{FEED}]\nwebsub = no\n", "p.ini")
        self.assertEqual(config.warnings, ())
        self.assertEqual(config.subscriptions[0], Subscription(FEED, options={"websub": "no"}))
