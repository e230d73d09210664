"""``planet run-once``'s cycle, on the daemon's own service (a Rig): the aggregator without
its timer loop runs one cycle, and a follow-up one for a reading list's new feeds."""

from __future__ import annotations

from feeds import Item, at, atom
from rig import Rig
from twisted.trial.unittest import SynchronousTestCase

from planet.config import parse_config
from planet.testing import MemoryFeeds, planet_ini

NOW = at(2026, 6, 24, 9, 0)
ONE = "http://one.example/feed"
TWO = "http://two.example/feed"
BROKEN = "http://broken.example/feed"
LIST = "http://lists.example/blogs.opml"


def feed(name: str) -> bytes:
    return atom(name, f"http://{name}.example/", [Item(name, f"http://{name}.example/1", NOW)])


class RunOnceTests(SynchronousTestCase):
    def rig(self, text: str) -> tuple[Rig, MemoryFeeds]:
        server = MemoryFeeds()
        rig = Rig(self, parse_config(text, "once.ini"), server, now=NOW)
        rig.aggregator.loop = False
        rig.start()
        return rig, server

    def test_no_timer_one_cycle_then_every_feed_again(self) -> None:
        rig, server = self.rig(planet_ini("Once", [ONE, BROKEN], fetch_interval=3600))
        server.serve(ONE, feed("one"))
        rig.advance(3600)
        self.assertEqual(server.urls(), [], "no timer: nothing fetched until run_once")
        done = rig.aggregator.run_once()
        rig.stub.flush()
        self.assertEqual(self.successResultOf(done), 1)
        self.assertEqual(sorted(server.urls()), [BROKEN, ONE])
        self.assertEqual(rig.store.entry_count(), 1)
        # The next run (cron, an interval later) fetches the good feed even if its spread
        # time is not quite due yet; the failing one backs off.
        rig.advance(60)
        done = rig.aggregator.run_once()
        rig.stub.flush()
        self.assertEqual(self.successResultOf(done), 1)
        self.assertEqual(server.count(ONE), 2)
        self.assertEqual(server.count(BROKEN), 1)

    def test_a_reading_list_adds_feeds_fetched_in_a_follow_up_cycle(self) -> None:
        text = planet_ini("Once", [ONE], fetch_interval=3600) + (
            f"\n[{LIST}]\ncontent_type = opml\n"
        )
        rig, server = self.rig(text)
        server.serve(ONE, feed("one"))
        server.serve(TWO, feed("two"))
        opml = f"<opml><body><outline text='Two' xmlUrl='{TWO}'/></body></opml>".encode()
        server.serve(LIST, opml, content_type="text/x-opml")
        done = rig.aggregator.run_once()
        rig.stub.flush()
        rig.stub.flush()
        self.assertEqual(self.successResultOf(done), 2)
        self.assertEqual(sorted(set(server.urls())), [LIST, ONE, TWO])
        self.assertEqual(rig.store.entry_count(), 2)
        # Nothing more runs by itself: no timer, no follow-up kick.
        rig.advance(7200)
        self.assertEqual(len(server.urls()), 3)
        # Run again: the list is fetched again although its interval has not passed.
        rig.advance(1)
        done = rig.aggregator.run_once()
        rig.stub.flush()
        self.assertEqual(self.successResultOf(done), 1)
        self.assertEqual(server.count(LIST), 2)
