"""Reading lists in the running daemon: file lists and URL lists, at start and after SIGHUP.

Issue 17: ``load_config`` subscribed the feeds of a file reading list, but the running
daemon rebuilt its effective config from the URL lists in its store and dropped them, so
``twistd planet`` on a config whose feeds come from a local OPML file fetched nothing.
These tests look at the daemon only as its operator does: ``/health``, ``/feeds.json``, the
requests the feed server saw, and the log.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from feeds import Item, at, atom
from process import Daemon, FeedServer, Response

pytestmark = pytest.mark.slow

ATOM = {"Content-Type": "application/atom+xml"}
OPML_TYPE = {"Content-Type": "text/x-opml"}


def serve_feed(server: FeedServer, key: str) -> str:
    """Serve a one-entry Atom feed at ``/<key>.atom``; returns its URL."""
    item = Item(f"{key} post", f"http://{key}.example/1", at(2026, 6, 10, 8, 0))
    server.routes[f"/{key}.atom"] = Response(
        200, ATOM, atom(f"{key} feed", f"http://{key}.example/", [item])
    )
    return server.url(f"/{key}.atom")


def opml(feeds: list[tuple[str, str]]) -> str:
    outlines = "\n".join(
        f"    <outline type='rss' text={quoteattr(name)} xmlUrl={quoteattr(url)}/>"
        for url, name in feeds
    )
    return (
        "<?xml version='1.0'?>\n<opml version='2.0'><head><title>Blogs</title></head>\n"
        f"  <body>\n{outlines}\n  </body>\n</opml>\n"
    )


def feeds_json(daemon: Daemon) -> dict[str, dict]:
    status, _, body = daemon.get("/feeds.json")
    assert status == 200
    return {row["url"]: row for row in json.loads(body)}


def test_file_and_url_lists_subscribe_their_feeds_at_start_and_after_sighup(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    file_feeds = [(serve_feed(server, k), f"File {k}") for k in ("alpha", "bravo", "charlie")]
    url_feeds = [(serve_feed(server, k), f"Url {k}") for k in ("delta", "echo")]
    direct = serve_feed(server, "foxtrot")
    server.routes["/list.opml"] = Response(200, OPML_TYPE, opml(url_feeds).encode())
    workdir = tmp_path / "planet"
    # The config lives in etc/ below the working directory: a relative list path is looked
    # up beside the config file.
    (workdir / "etc").mkdir(parents=True)
    (workdir / "etc" / "blogs.opml").write_text(opml(file_feeds), "utf-8")
    config = (
        "[Planet]\nname = Reading list\nfetch_interval = 3600\nsnapshot_interval = 3600\n"
        "per_host_concurrency = 4\n\n"
        "[blogs.opml]\ncontent_type = opml\n\n"
        f"[{server.url('/list.opml')}]\ncontent_type = opml\n\n"
        f"[{direct}]\nname = Direct Foxtrot\n"
    )
    daemon = Daemon(workdir, config, config_name="etc/planet.ini")
    daemons.append(daemon)
    daemon.start()
    everything = [u for u, _ in file_feeds] + [u for u, _ in url_feeds] + [direct]
    health = daemon.wait_health(
        lambda h: h["feeds"] == 6 and h["feeds_ok"] == 6 and h["entries"] == 6,
        deadline=20,
        what="every listed feed fetched",
    )
    assert health["feeds"] == 6
    rows = feeds_json(daemon)
    assert set(rows) == set(everything)
    names = {url: row["name"] for url, row in rows.items()}
    assert names == {**dict(file_feeds), **dict(url_feeds), direct: "Direct Foxtrot"}
    for url in everything:
        path = url.split(f":{server.port}", 1)[1]
        assert len(server.requests_for(path)) == 1, (url, daemon.log[-3000:])

    # The file list edited on disk, then SIGHUP: bravo dropped, golf added.
    golf = serve_feed(server, "golf")
    edited = [file_feeds[0], file_feeds[2], (golf, "File golf")]
    (workdir / "etc" / "blogs.opml").write_text(opml(edited), "utf-8")
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGHUP)
    daemon.wait_health(
        lambda h: (
            h["feeds"] == 6
            and h["feeds_ok"] == 6
            and h["entries"] == 6
            and bool(server.requests_for("/golf.atom"))
        ),
        deadline=10,
        what="golf added and bravo dropped after SIGHUP",
    )
    rows = feeds_json(daemon)
    assert file_feeds[1][0] not in rows
    assert golf in rows and rows[golf]["name"] == "File golf"
    # The URL list's feeds and the direct feed stayed, and were not fetched again.
    for url in [u for u, _ in url_feeds] + [direct]:
        assert url in rows
        path = url.split(f":{server.port}", 1)[1]
        assert len(server.requests_for(path)) == 1

    # A page may lag the store by about a second (rendered at most once a second, a reader
    # waits 25 ms for a new rendering): the river follows within that, not at once.
    def river_with_golf() -> bytes | None:
        page = daemon.get("/")[2]
        return page if b"golf post" in page else None

    html = daemon.wait_until(river_with_golf, deadline=3, what="golf's post on the river")
    assert b"bravo post" not in html
    assert "Traceback" not in daemon.log, daemon.log


def test_a_list_naming_no_feed_is_one_warning(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    good = serve_feed(server, "hotel")
    server.routes["/empty.opml"] = Response(200, OPML_TYPE, opml([]).encode())
    workdir = tmp_path / "planet"
    workdir.mkdir()
    empty_file = workdir / "lists" / "nothing.opml"
    empty_file.parent.mkdir()
    empty_file.write_text(opml([]), "utf-8")
    # An absolute path this time.
    config = (
        "[Planet]\nname = Empty lists\nfetch_interval = 3600\nsnapshot_interval = 3600\n\n"
        f"[{empty_file}]\ncontent_type = opml\n\n"
        f"[{server.url('/empty.opml')}]\ncontent_type = opml\n\n"
        f"[{good}]\nname = Hotel\n"
    )
    daemon = Daemon(workdir, config)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(lambda h: h["feeds_ok"] == 1, what="the one real feed fetched")
    daemon.wait_until(
        lambda: server.requests_for("/empty.opml") and "/empty.opml names no feeds" in daemon.log,
        deadline=10,
        what="the URL list's warning",
    )
    file_warnings = [
        line for line in daemon.log.splitlines() if f"{empty_file} names no feeds" in line
    ]
    url_warnings = [
        line for line in daemon.log.splitlines() if "/empty.opml names no feeds" in line
    ]
    assert len(file_warnings) == 1, daemon.log
    assert len(url_warnings) == 1, daemon.log
    assert set(feeds_json(daemon)) == {good}
