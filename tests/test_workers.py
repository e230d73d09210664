"""The parse process pool: real worker processes, their priority, recovery, shutdown."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.trial.unittest import TestCase

from planet.workers import WORKER_NICENESS, ProcessParser

reactor: Any = _reactor

FEED = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>Pool</title><link>http://example.com/</link>
<item><title>One</title><link>http://example.com/1</link><guid>one</guid>
<description>&lt;p&gt;hello &lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;</description></item>
</channel></rss>"""
FETCHED = datetime(2026, 6, 23, 20, 6, tzinfo=timezone.utc)


class ProcessParserTests(TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.parser = ProcessParser(reactor, workers=1)
        self.addCleanup(self.parser.close)

    async def test_parses_in_a_worker(self) -> None:
        parsed = await self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)
        self.assertEqual(parsed.title, "Pool")
        self.assertEqual([e.title for e in parsed.entries], ["One"])
        self.assertNotIn("script", parsed.entries[0].content or parsed.entries[0].summary or "")

    async def test_workers_run_at_a_lower_priority(self) -> None:
        ours = os.nice(0)
        theirs = await self.parser._submit(os.nice, 0)
        self.assertEqual(theirs, min(19, ours + WORKER_NICENESS))
        self.assertGreater(WORKER_NICENESS, 0)

    async def test_a_dead_worker_is_replaced(self) -> None:
        await self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)
        with self.assertRaises(Exception):  # noqa: B017 - BrokenProcessPool, via the pool
            await self.parser._submit(os._exit, 3)
        parsed = await self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)
        self.assertEqual(parsed.title, "Pool")

    async def test_closed_pool_refuses_work(self) -> None:
        await self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)
        await self.parser.close()
        with self.assertRaises(RuntimeError):
            self.parser(FEED, "http://example.com/feed", FETCHED, "text/xml", 50)
