"""Fetcher.fetch_held: fetched feeds waiting for their parse are bounded.

``fetch_then`` below uses the held slot as :class:`planet.ingest.Ingester` does: the
fetch, then ``then`` (the parser) in the slot, then the release.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from test_fetch import FEED, Held, StubCase
from twisted.internet.defer import CancelledError, Deferred

from planet.fetch import Fetcher
from planet.model import FetchResult


def fetch_then(
    fetcher: Fetcher,
    url: str,
    etag: str | None,
    last_modified: str | None,
    then: Callable[[FetchResult], Deferred[Any]],
) -> Deferred[Any]:
    async def run() -> Any:
        result, release = await fetcher.fetch_held(url, etag, last_modified)
        try:
            return await then(result)
        finally:
            release()

    return Deferred.fromCoroutine(run())


class Then:
    """A ``then`` the test finishes by hand: the feeds it holds, in order."""

    def __init__(self) -> None:
        self.waiting: list[tuple[FetchResult, Deferred[Any]]] = []

    def __call__(self, result: FetchResult) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.waiting.append((result, d))
        return d

    def finish_one(self) -> FetchResult:
        result, d = self.waiting.pop(0)
        d.callback(result.url)
        return result


class FetchHeldTests(StubCase):
    def test_at_most_max_held_feeds_between_request_and_then(self) -> None:
        held, then = Held(), Then()
        fetcher, _ = self.make(held, per_host=4, max_concurrency=4, max_held=3)
        urls = [f"http://{h}.example/{n}" for n in range(4) for h in "abcd"]
        ds = [fetch_then(fetcher, url, None, None, then) for url in urls]
        self.stub.flush()
        self.assertEqual(held.in_flight(), 3)
        while held.open:
            held.finish(held.host(held.open[0]))
            self.stub.flush()
        # Every request done, each body waiting for its then: no fourth request started.
        self.assertEqual((len(held.seen), len(then.waiting)), (3, 3))
        done = 0
        while then.waiting or held.open:
            if then.waiting:
                then.finish_one()
                done += 1
            self.stub.flush()
            while held.open:
                held.finish(held.host(held.open[0]))
                self.stub.flush()
            self.assertLessEqual(len(then.waiting) + held.in_flight(), 3)
        self.assertEqual(done, 16)
        self.assertEqual([self.successResultOf(d) for d in ds], urls)

    def test_then_gets_the_fetch_result(self) -> None:
        held = Held()
        fetcher, _ = self.make(held)
        got: list[FetchResult] = []

        def then(result: FetchResult) -> Deferred[int]:
            got.append(result)
            d: Deferred[int] = Deferred()
            d.callback(len(result.body or b""))
            return d

        d = fetch_then(fetcher, "http://a.example/feed", None, None, then)
        self.stub.flush()
        held.finish("a.example")
        self.stub.flush()
        self.assertEqual(self.successResultOf(d), len(FEED))
        self.assertEqual((got[0].status, got[0].body), (200, FEED))

    def test_a_queue_for_one_host_holds_no_slot(self) -> None:
        held, then = Held(), Then()
        fetcher, _ = self.make(held, per_host=1, max_concurrency=4, max_held=2)
        a_fetches = [
            fetch_then(fetcher, f"http://a.example/{n}", None, None, then) for n in range(5)
        ]
        d = fetch_then(fetcher, "http://b.example/feed", None, None, then)
        self.stub.flush()
        self.assertEqual((held.in_flight("a.example"), held.in_flight("b.example")), (1, 1))
        held.finish("b.example")
        self.stub.flush()
        then.finish_one()
        self.assertEqual(self.successResultOf(d), "http://b.example/feed")
        while held.open or then.waiting:
            if held.open:
                held.finish("a.example")
            if then.waiting:
                then.finish_one()
            self.stub.flush()
        self.assertEqual(held.seen_for("a.example"), 5)
        self.assertEqual(len([self.successResultOf(f) for f in a_fetches]), 5)

    def test_plain_fetches_take_no_held_slot(self) -> None:
        # An HTML page's feed is fetched from inside the page's then: needing a held slot
        # there could wait forever.
        held, then = Held(), Then()
        fetcher, _ = self.make(held, per_host=4, max_concurrency=4, max_held=1)
        fetch_then(fetcher, "http://a.example/page", None, None, then)
        self.stub.flush()
        held.finish("a.example")
        self.stub.flush()
        self.assertEqual(len(then.waiting), 1)
        inner = fetcher.fetch("http://b.example/feed")
        self.stub.flush()
        held.finish("b.example")
        self.stub.flush()
        self.assertEqual(self.successResultOf(inner).status, 200)

    def test_slots_come_back_after_failures_and_cancels(self) -> None:
        held, then = Held(), Then()
        fetcher, _ = self.make(held, per_host=1, max_concurrency=1, max_held=1)

        def failing(result: FetchResult) -> Deferred[Any]:
            raise ValueError("then failed")

        d1 = fetch_then(fetcher, "http://a.example/1", None, None, failing)
        queued = fetch_then(fetcher, "http://a.example/2", None, None, then)
        self.stub.flush()
        queued.cancel()  # waiting for the host
        self.failureResultOf(queued, CancelledError)
        held.finish("a.example")
        self.stub.flush()
        self.failureResultOf(d1, ValueError)
        parsing = fetch_then(fetcher, "http://a.example/3", None, None, then)
        self.stub.flush()
        held.finish("a.example")
        self.stub.flush()
        self.assertEqual(len(then.waiting), 1)
        parsing.cancel()  # in its then
        self.failureResultOf(parsing, CancelledError)
        d4 = fetch_then(fetcher, "http://a.example/4", None, None, then)
        self.stub.flush()
        held.finish("a.example")
        self.stub.flush()
        then.waiting.pop(0)  # the cancelled one's
        then.finish_one()
        self.assertEqual(self.successResultOf(d4), "http://a.example/4")
        self.assertEqual((fetcher._held.tokens, fetcher._all.tokens), (1, 1))
        self.assertEqual(fetcher._host_limits, {})
