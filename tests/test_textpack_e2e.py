"""End to end: long entries, packed in the parse workers and held packed by the daemon, are
served exactly on ``/`` and ``/atom.xml``, written to the snapshot as text, and served
again from it after a restart."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from feeds import Item, at, atom
from process import Daemon, FeedServer, Response
from test_textpack import blog_html

from planet.parse import parse_feed
from planet.testing import planet_ini
from planet.textpack import PACK_MIN

pytestmark = pytest.mark.slow

ATOM_TYPE = "application/atom+xml; charset=utf-8"
ATOM_NS = "{http://www.w3.org/2005/Atom}"


def test_long_entries_round_trip_through_the_daemon(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
) -> None:
    items = [
        Item(
            title=f"Long post {n}",
            link=f"http://blog.example/{n}",
            when=at(2026, 6, 1 + n),
            content=blog_html(n) + "<p>Zürich, café, 日本語 😀</p>",
        )
        for n in range(6)
    ]
    body = atom("Long Blog", "http://blog.example/", items)
    server.routes["/long.atom"] = Response(200, {"Content-Type": ATOM_TYPE}, body)
    url = server.url("/long.atom")
    # What the parse worker makes of the document: the HTML the daemon must give back.
    parsed = parse_feed(body, url, at(2026, 6, 24))
    want = {e.title: e.content for e in parsed.entries}
    assert len(want) == 6 and all(len(c) >= 4 * PACK_MIN for c in want.values())

    config = planet_ini(
        "Planet Long",
        [url],
        link="http://planet.example/",
        fetch_interval=3600,
        snapshot_interval=3600,
    )
    daemon = Daemon(tmp_path / "planet", config)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(lambda h: h["entries"] == 6, what="six entries stored")

    def served() -> None:
        status, _, page = daemon.get("/")
        assert status == 200
        text = page.decode("utf-8")
        for title, content in want.items():
            assert content in text, title
        status, _, feed = daemon.get("/atom.xml")
        assert status == 200
        got = {
            el.findtext(f"{ATOM_NS}title"): el.findtext(f"{ATOM_NS}content")
            for el in ET.fromstring(feed).iter(f"{ATOM_NS}entry")
        }
        assert got == want

    served()
    code, log = daemon.stop()
    assert code in (0, -15), log
    doc = json.loads((tmp_path / "planet" / "planet-snapshot.json").read_bytes())
    assert {r["title"]: r["content"] for r in doc["entries"]} == want
    server.stop()  # from here the entries can only come from the snapshot
    daemon.start()
    daemon.wait_health(lambda h: h["entries"] == 6, what="six entries loaded")
    served()
