"""``twistd planet`` on a big snapshot: it serves the newest entries at once, reads the older
ones while serving, starts fetching only once all are in, and loses none at stop.

(Issue 15: at 200,000 entries reading the whole snapshot first made the first page wait
~3 s; see ``benchmarks/restart_large.py``.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from feeds import Item, at, atom
from process import Daemon, FeedServer, Request, Response

from planet.model import Entry, FeedState
from planet.snapshot import FIRST_ENTRIES
from planet.snapshotcodec import decode, encode

pytestmark = pytest.mark.slow

WHEN = at(2026, 6, 20, 8, 0)
FEEDS = 50
PER_FEED = 2000  # 100,000 entries: the first 2000, then ~1 s of lines more


def entries_of(url: str, n: int) -> list[Entry]:
    made = []
    for i in range(PER_FEED):
        when = WHEN - timedelta(minutes=i * FEEDS + n)
        made.append(
            Entry(
                id=f"{url}#{i}",
                feed_url=url,
                title=f"Kept {n}-{i}",
                link=f"{url}/post/{i}",
                author="",
                content=f"<p>entry {i} of feed {n}</p>",
                published=when,
                updated=when,
                first_seen=when,
            )
        )
    return made


def test_served_at_once_then_all_read_before_any_fetch(daemon: Daemon) -> None:
    with FeedServer() as server:
        urls = [server.url(f"/feed{n}") for n in range(FEEDS)]
        # Whether the daemon had logged that every entry was in when each request came.
        after_load: list[bool] = []
        loaded = ""

        def answer(body: bytes) -> Callable[[Request], Response]:
            def respond(request: Request) -> Response:
                after_load.append(loaded in daemon.log)
                return Response(headers={"Content-Type": "application/atom+xml"}, body=body)

            return respond

        for n, url in enumerate(urls):
            fresh = Item("Fetched after the load", f"{url}/new", at(2026, 6, 21), id=f"{url}#new")
            server.routes[f"/feed{n}"] = answer(atom(f"Feed {n}", url, [fresh]))
        entries = sorted(
            (e for n, url in enumerate(urls) for e in entries_of(url, n)),
            key=lambda e: e.published,
            reverse=True,
        )
        total = len(entries)
        assert total > FIRST_ENTRIES * 5
        # Every feed is due at once: a fetch before the load was over would show.
        states = [FeedState(url=url, title=f"Feed {n}") for n, url in enumerate(urls)]
        daemon.workdir.mkdir(parents=True)
        snapshot = daemon.workdir / "planet-snapshot.json"
        snapshot.write_bytes(encode(entries, states, WHEN))
        loaded = f"planet-snapshot.json: {total} entries, {FEEDS} feeds"
        sections = "".join(f"[{url}]\nname = Feed {n}\n\n" for n, url in enumerate(urls))
        daemon.config_text = (
            "[Planet]\nname = Staged\nfetch_interval = 3600\nsnapshot_interval = 3600\n"
            f"max_entries_per_feed = {PER_FEED + 10}\n\n{sections}"
        )
        daemon.start()
        serving = f"planet-snapshot.json: its newest {FIRST_ENTRIES} entries and {FEEDS} feeds"
        daemon.wait_until(lambda: serving in daemon.log, what="the newest entries")
        status, _, page = daemon.get("/")
        assert status == 200
        # The newest entry is on the page (from the first lines), whatever came after.
        assert entries[0].title.encode() in page, page[-2000:]
        daemon.wait_until(lambda: loaded in daemon.log, deadline=30, what="all the entries")
        daemon.wait_health(lambda h: h["entries"] == total + FEEDS, what="the fetched entries")
        log = daemon.log
        # No fetch before every entry was in: each feed's fetch line comes after the line.
        assert log.index(serving) < log.index(loaded) < log.index("cycle 1 done"), log[-3000:]
        assert min(log.index(url) for url in urls) > log.index(loaded), log[-3000:]
        assert after_load == [True] * FEEDS
        status, _, page = daemon.get("/")
        assert b"Fetched after the load" in page
        code, log = daemon.stop()
        assert code in (0, -15), log[-3000:]
        assert "Traceback" not in log
    # Nothing lost: every entry read, and the fetched ones, written at stop.
    kept, _ = decode(snapshot.read_bytes())
    assert len(kept) == total + FEEDS
    assert {e.id for e in entries} <= {e.id for e in kept}
    # Written newest first, a line per 100 entries, for the next start to read in turns.
    assert kept[0].title == "Fetched after the load"
    assert snapshot.read_bytes().count(b"\n") == (len(kept) - 1) // 100
