"""End to end: the real ``twistd planet`` process against a loopback feed server.

Every test here starts the daemon as an operator would (``twistd -n planet --config ...``),
talks to it only over HTTP and its log, and never reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import feedparser
import html5lib
import pytest
from attrs import frozen
from feeds import Item, at, atom, rss1, rss2
from process import (
    SHUTDOWN_LINE,
    Daemon,
    FeedServer,
    Kicker,
    Request,
    Response,
    meaningful_lines,
    read_snapshot,
    run_once,
    stream,
)

from planet.testing import planet_ini

pytestmark = pytest.mark.slow

HTML = "text/html; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
ATOM_NS = "{http://www.w3.org/2005/Atom}"
HEALTH_KEYS = {
    "status",
    "feeds",
    "entries",
    "feeds_ok",
    "feeds_failing",
    "last_fetch",
    "snapshot_written",
    # Added by the service-operations work: when the config in use was loaded.
    "config_loaded",
    # Added by the hardening: why the status is "degraded" (null when "ok").
    "problem",
    # Added by the templates: how many of the operator's templates fail to render.
    "template_errors",
}
SIGTERM_EXITS = (0, -15)


# --- reading the HTML -----------------------------------------------------------------


def _text(el: ET.Element | None) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def _classes(el: ET.Element) -> set[str]:
    return set((el.get("class") or "").split())


def _child_with_class(el: ET.Element, tag: str, cls: str) -> ET.Element | None:
    for child in el.iter(tag):
        if cls in _classes(child):
            return child
    return None


@frozen
class RiverEntry:
    day: str
    feed_name: str
    feed_href: str | None
    title: str
    link: str | None
    content: str
    emphasis: str
    byline: str
    time: str
    time_href: str | None


@frozen
class SidebarFeed:
    url: str
    name: str
    site: str | None
    failing: bool
    reason: str | None


@frozen
class Page:
    title: str
    days: list[str]
    entries: list[RiverEntry]
    next_href: str | None
    prev_href: str | None
    sidebar: list[SidebarFeed]


def parse_page(body: bytes) -> Page:
    """The parts of a river page the tests look at, found by structure, not by text."""
    doc = html5lib.parse(body, treebuilder="etree", namespaceHTMLElements=False)
    title = _text(doc.find(".//head/title"))
    main = doc.find(".//main[@id='river']")
    assert main is not None, body[:2000]
    days: list[str] = []
    entries: list[RiverEntry] = []
    for section in main.iter("section"):
        if "day" not in _classes(section):
            continue
        header = section.find("h2")
        assert header is not None and "day-header" in _classes(header)
        day = _text(header)
        days.append(day)
        feed_el = None
        for article in section.iter("article"):
            # The feed's name is its own heading, shown when the feed differs from the
            # entry's before it on that day (Venus's new_channel); the title is below it.
            h3 = article.find("h3")
            if h3 is not None:
                assert "channel" in _classes(h3)
                feed_el = _child_with_class(h3, "*", "feed-name")
            assert feed_el is not None, "a day's first entry shows its feed"
            h4 = article.find("h4")
            assert h4 is None or "entry-title" in _classes(h4)
            title_links = list(h4.iter("a")) if h4 is not None else []
            assert len(title_links) <= 1
            content = _child_with_class(article, "div", "content")
            byline = _child_with_class(article, "p", "byline")
            assert content is not None and byline is not None
            time_el = byline.find(".//time")
            time_link = next((a for a in byline.iter("a") if a.find("time") is not None), None)
            em = content.find(".//em")
            entries.append(
                RiverEntry(
                    day=day,
                    feed_name=_text(feed_el),
                    feed_href=feed_el.get("href") if feed_el.tag == "a" else None,
                    title=_text(title_links[0]) if title_links else "",
                    link=title_links[0].get("href") if title_links else None,
                    content=_text(content),
                    emphasis=_text(em),
                    byline=_text(byline),
                    time=_text(time_el),
                    time_href=time_link.get("href") if time_link is not None else None,
                )
            )
    nav = main.find(".//nav")
    links = {a.get("rel"): a.get("href") for a in nav.iter("a")} if nav is not None else {}
    sidebar = []
    aside = doc.find(".//aside")
    for li in aside.iter("li") if aside is not None else ():
        feed_link = _child_with_class(li, "a", "feed-link")
        assert feed_link is not None
        feed_page = _child_with_class(li, "a", "feed-page")
        others = [a for a in li.iter("a") if a is not feed_link and a is not feed_page]
        status = _child_with_class(li, "span", "status")
        text = _text(li).removeprefix("feed").strip()
        if feed_page is not None:
            text = text.replace(_text(feed_page), "").strip()
        name = _text(others[0]) if others else text
        if status is not None and not others:
            name = name.removesuffix(_text(status)).strip()
        sidebar.append(
            SidebarFeed(
                url=feed_link.get("href") or "",
                name=name,
                site=others[0].get("href") if others else None,
                failing="failing" in _classes(li),
                reason=status.get("title") if status is not None else None,
            )
        )
    return Page(
        title=title,
        days=days,
        entries=entries,
        next_href=links.get("next"),
        prev_href=links.get("prev"),
        sidebar=sidebar,
    )


def get_page(daemon: Daemon, path: str = "/") -> Page:
    status, headers, body = daemon.get(path)
    assert status == 200, (path, status, body[:500])
    assert headers.get("Content-Type") == HTML
    return parse_page(body)


# --- the three-feed planet of tests 1, 2 -------------------------------------------------


@frozen
class Source:
    path: str
    kind: str  # atom, rss2, rss1
    own_title: str
    site: str
    configured: str | None
    author: str
    items: tuple[tuple[str, datetime, str], ...]  # title, published, expected time text

    @property
    def display(self) -> str:
        return self.configured or self.own_title


def _item(src: Source, n: int, title: str, when: datetime) -> Item:
    slug = title.lower().replace(" ", "-")
    return Item(
        title=title,
        link=f"{src.site}{when:%Y/%m/%d}/{slug}",
        when=when,
        content=f"<p>Body of {title} with <em>mark {src.path}#{n}</em> inside.</p>",
        author=src.author,
    )


def items_of(src: Source) -> list[Item]:
    return [_item(src, n, title, when) for n, (title, when, _) in enumerate(src.items)]


def document(src: Source) -> bytes:
    builder = {"atom": atom, "rss2": rss2, "rss1": rss1}[src.kind]
    return builder(src.own_title, src.site, items_of(src))


CONTENT_TYPES = {
    "atom": "application/atom+xml",
    "rss2": "application/rss+xml",
    "rss1": "application/rdf+xml",
}

RIVER_SOURCES = (
    Source(
        "/alpha.atom",
        "atom",
        "Alpha Own Title",
        "http://alpha.example/",
        "Alpha Configured",
        "Ann Alpha",
        (
            ("Alpha evening post", at(2026, 6, 23, 20, 6), "23 Jun 2026 8:06pm GMT"),
            ("Alpha noon post", at(2026, 6, 22, 12, 10), "22 Jun 2026 12:10pm GMT"),
            ("Alpha late post", at(2026, 6, 5, 23, 59), "05 Jun 2026 11:59pm GMT"),
            ("Alpha may post", at(2026, 5, 1, 13, 0), "01 May 2026 1:00pm GMT"),
        ),
    ),
    Source(
        "/bravo.rss",
        "rss2",
        "Bravo Feed Title",
        "http://bravo.example/",
        None,
        "Bob Bravo",
        (
            ("Bravo morning post", at(2026, 6, 23, 9, 5), "23 Jun 2026 9:05am GMT"),
            ("Bravo evening post", at(2026, 6, 22, 18, 45), "22 Jun 2026 6:45pm GMT"),
            ("Bravo midnight post", at(2026, 6, 5, 0, 0), "05 Jun 2026 12:00am GMT"),
        ),
    ),
    Source(
        "/charlie.rdf",
        "rss1",
        "Charlie Own Title",
        "http://charlie.example/",
        "Charlie Configured",
        "Cat Charlie",
        (
            ("Charlie night post", at(2026, 6, 23, 0, 30), "23 Jun 2026 12:30am GMT"),
            ("Charlie noon post", at(2026, 6, 5, 12, 0), "05 Jun 2026 12:00pm GMT"),
            ("Charlie morning post", at(2026, 6, 5, 11, 59), "05 Jun 2026 11:59am GMT"),
        ),
    ),
)
RIVER_TOTAL = sum(len(s.items) for s in RIVER_SOURCES)


@frozen
class Expected:
    source: Source
    n: int
    item: Item
    time: str


def expected_river() -> list[Expected]:
    rows = [
        Expected(src, n, item, text)
        for src in RIVER_SOURCES
        for n, (item, (_, _, text)) in enumerate(zip(items_of(src), src.items, strict=True))
    ]
    rows.sort(key=lambda r: r.item.when, reverse=True)
    return rows


def serve_river(server: FeedServer) -> None:
    for src in RIVER_SOURCES:
        server.routes[src.path] = Response(
            200, {"Content-Type": CONTENT_TYPES[src.kind]}, document(src)
        )


def river_config(server: FeedServer, **settings: Any) -> str:
    base: dict[str, Any] = {
        "link": "http://planet.example/",
        "owner_name": "Olive Owner",
        "items_per_page": 60,
        "fetch_interval": 3600,
        "snapshot_interval": 3600,
        "feed_timeout": 10,
    }
    base.update(settings)
    feeds = [(server.url(src.path), src.configured) for src in RIVER_SOURCES]
    return planet_ini("Planet End To End", feeds, **base)


def all_fetched(total: int, ok: int) -> Any:
    return lambda h: h["entries"] == total and h["feeds_ok"] == ok


def check_entry(got: RiverEntry, want: Expected) -> None:
    src, item = want.source, want.item
    assert got.title == item.title
    assert got.link == item.link
    # The configured name when there is one, else the feed's own title; linked to its site.
    assert got.feed_name == src.display
    assert got.feed_href == src.site
    assert got.emphasis == f"mark {src.path}#{want.n}"
    assert got.content == _text(
        html5lib.parse(item.content, treebuilder="etree", namespaceHTMLElements=False)
    )
    assert got.time == want.time
    assert got.time_href == item.link
    assert got.byline == f"by {src.author} at {want.time}"
    assert got.day == f"{item.when:%d %b %Y}"


# --- 1. the river end to end --------------------------------------------------------------


def test_river_html_atom_and_health(server: FeedServer, daemons: list[Daemon], tmp_path: Path):
    serve_river(server)
    daemon = Daemon(tmp_path / "planet", river_config(server))
    daemons.append(daemon)
    daemon.start()
    health = daemon.wait_health(all_fetched(RIVER_TOTAL, 3), what="all entries fetched")

    # /health: exactly these keys and the right counts.
    assert set(health) == HEALTH_KEYS
    assert health["status"] == "ok"
    assert (health["feeds"], health["entries"]) == (3, RIVER_TOTAL)
    assert (health["feeds_ok"], health["feeds_failing"]) == (3, 0)
    assert datetime.fromisoformat(health["last_fetch"].replace("Z", "+00:00"))
    status, headers, _ = daemon.get("/health")
    assert headers["Content-Type"].startswith("application/json")

    # The river: every entry, newest first, under its day, with all its parts.
    page = get_page(daemon)
    assert page.title == "Planet End To End"
    want = expected_river()
    assert [e.title for e in page.entries] == [w.item.title for w in want]
    for got, expected in zip(page.entries, want, strict=True):
        check_entry(got, expected)
    # The times the brief names, spelt out rather than computed.
    times = {e.title: e.time for e in page.entries}
    assert times["Alpha evening post"] == "23 Jun 2026 8:06pm GMT"
    assert times["Bravo morning post"] == "23 Jun 2026 9:05am GMT"
    assert times["Charlie night post"] == "23 Jun 2026 12:30am GMT"
    assert times["Alpha noon post"] == "22 Jun 2026 12:10pm GMT"
    # Day headers: each day once, newest first, `%d %b %Y` with a zero-padded day.
    assert page.days == ["23 Jun 2026", "22 Jun 2026", "05 Jun 2026", "01 May 2026"]
    assert page.next_href is None and page.prev_href is None
    # The sidebar lists every subscription by the same name, linked to its site.
    assert {(f.name, f.site, f.url, f.failing) for f in page.sidebar} == {
        (src.display, src.site, server.url(src.path), False) for src in RIVER_SOURCES
    }
    # The feed's own title never shows where a name is configured.
    status, _, body = daemon.get("/")
    assert b"Alpha Own Title" not in body and b"Charlie Own Title" not in body

    # /atom.xml: a valid Atom feed of the same entries in the same order.
    status, headers, body = daemon.get("/atom.xml")
    assert status == 200
    assert headers["Content-Type"] == ATOM_TYPE
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Planet End To End"
    assert [e.title for e in parsed.entries] == [w.item.title for w in want]
    ids = set()
    for entry, expected in zip(parsed.entries, want, strict=True):
        assert entry.link == expected.item.link
        assert entry.id
        ids.add(entry.id)
        assert entry.updated_parsed[:5] == expected.item.when.timetuple()[:5]
        assert entry.author == expected.source.author
        assert entry.content[0].type == "text/html"
        assert f"mark {expected.source.path}#" in entry.content[0].value
        assert entry.source.title == expected.source.display
    assert len(ids) == RIVER_TOTAL
    # The raw XML too: content is typed html, and every source names its feed URL.
    root = ET.fromstring(body)
    for el, expected in zip(root.findall(f"{ATOM_NS}entry"), want, strict=True):
        assert el.find(f"{ATOM_NS}content").get("type") == "html"
        source = el.find(f"{ATOM_NS}source")
        assert source.findtext(f"{ATOM_NS}id") == server.url(expected.source.path)
        assert source.findtext(f"{ATOM_NS}title") == expected.source.display


def test_river_pages(server: FeedServer, daemons: list[Daemon], tmp_path: Path):
    serve_river(server)
    daemon = Daemon(tmp_path / "planet", river_config(server, items_per_page=4))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(all_fetched(RIVER_TOTAL, 3), what="all entries fetched")
    want = expected_river()

    first = get_page(daemon, "/")
    assert len(first.entries) == 4
    assert first.next_href == "/?page=2" and first.prev_href is None
    second = get_page(daemon, "/?page=2")
    assert second.prev_href == "/" and second.next_href == "/?page=3"
    third = get_page(daemon, "/?page=3")
    assert third.prev_href == "/?page=2" and third.next_href is None
    pages = [first, second, third]
    # Each page continues where the previous one ended.
    shown = [e.title for p in pages for e in p.entries]
    assert shown == [w.item.title for w in want]
    assert [len(p.entries) for p in pages] == [4, 4, RIVER_TOTAL - 8]
    for page in pages:
        assert len(page.days) == len(set(page.days))
        assert page.days == sorted(
            page.days, key=lambda d: datetime.strptime(d, "%d %b %Y"), reverse=True
        )
        for got in page.entries:
            check_entry(got, next(w for w in want if w.item.title == got.title))
    status, _, _ = daemon.get("/?page=4")
    assert status == 404
    # The Atom feed carries one page's worth, the newest.
    _, _, body = daemon.get("/atom.xml")
    assert [e.title for e in feedparser.parse(body).entries] == shown[:4]


# --- 2. a restart loses nothing ----------------------------------------------------------


def river_rows(page: Page) -> list[tuple[str, ...]]:
    return [
        (e.day, e.feed_name, e.feed_href or "", e.title, e.link or "", e.time, e.content)
        for e in page.entries
    ]


@pytest.mark.serial
def test_restart_serves_the_same_river_at_once(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    serve_river(server)
    # snapshot_interval is an hour: only the write at shutdown can carry the river over.
    daemon = Daemon(tmp_path / "planet", river_config(server))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(all_fetched(RIVER_TOTAL, 3), what="all entries fetched")
    before = get_page(daemon)
    assert len(before.entries) == RIVER_TOTAL

    code, log = daemon.stop()
    assert code in SIGTERM_EXITS, log
    assert SHUTDOWN_LINE in log
    assert not daemon.leftovers, f"processes left after the daemon exited: {daemon.leftovers}"
    assert (tmp_path / "planet" / "planet-snapshot.json").exists(), log
    server.stop()  # nothing can be fetched again: the river must come from the snapshot

    started = time.monotonic()
    daemon.start(deadline=10)
    # The very first request after the port opens gets the whole river (no empty page while
    # anything loads), and at once. Measured from the port: the interpreter's imports before
    # it (1-2 s, mostly disk reads on a cold or slow file system) are not the snapshot's doing.
    status, _, body = daemon.get("/")
    served = time.monotonic() - daemon.port_seen_at
    print(
        f"restart: port after {daemon.port_seen_at - started:.2f} s, "
        f"river {served:.2f} s after the port"
    )
    assert status == 200
    after = parse_page(body)
    assert river_rows(after) == river_rows(before)
    assert served < 0.5, f"river served {served:.2f} s after the port opened"
    health = daemon.health()
    assert (health["entries"], health["feeds_ok"], health["feeds_failing"]) == (RIVER_TOTAL, 3, 0)
    code, log = daemon.stop()
    assert code in SIGTERM_EXITS, log


def test_sigterm_during_a_fetch(server: FeedServer, daemons: list[Daemon], tmp_path: Path):
    """SIGTERM while a feed hangs: a prompt, clean exit that still writes the snapshot."""
    serve_river(server)
    server.routes["/hang.xml"] = Response(
        200, {"Content-Type": "application/atom+xml"}, b"", delay=60
    )
    feeds = [(server.url(src.path), src.configured) for src in RIVER_SOURCES]
    config = planet_ini(
        "Planet Hang",
        [*feeds, (server.url("/hang.xml"), "Hanging")],
        fetch_interval=3600,
        feed_timeout=50,
        snapshot_interval=3600,
        per_host_concurrency=4,
    )
    daemon = Daemon(tmp_path / "planet", config)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(all_fetched(RIVER_TOTAL, 3), what="the three good feeds")
    assert server.requests_for("/hang.xml")
    started = time.monotonic()
    code, log = daemon.stop()
    took = time.monotonic() - started
    assert code in SIGTERM_EXITS, log
    assert SHUTDOWN_LINE in log
    # Running fetches get a 5 s grace at stop, then are abandoned.
    assert took < 8, f"SIGTERM took {took:.1f} s with a fetch in flight"
    assert not daemon.leftovers, f"processes left after the daemon exited: {daemon.leftovers}"
    doc = read_snapshot(tmp_path / "planet" / "planet-snapshot.json")
    assert doc is not None and len(doc["entries"]) == RIVER_TOTAL


# --- 3. a bad feed does not hurt the others -------------------------------------------------


def test_failing_feeds_are_isolated(server: FeedServer, daemons: list[Daemon], tmp_path: Path):
    good = [
        Item(
            "Good first",
            "http://good.example/1",
            at(2026, 6, 20, 10, 0),
            content="<p>First <em>good</em></p>",
        ),
        Item(
            "Good second",
            "http://good.example/2",
            at(2026, 6, 21, 10, 0),
            content="<p>Second <em>good</em></p>",
        ),
    ]
    server.routes["/good.atom"] = Response(
        200,
        {"Content-Type": "application/atom+xml"},
        atom("Good Feed", "http://good.example/", good),
    )
    server.routes["/missing.xml"] = Response(404, {"Content-Type": "text/plain"}, b"gone\n")
    # No answer at all within feed_timeout (the response headers never come) ...
    server.routes["/slow.xml"] = Response(
        200,
        {"Content-Type": "application/atom+xml"},
        atom("Slow", "http://s.example/", []),
        delay=15,
    )

    # ... and an answer whose body stalls half-way.
    def stalled_body() -> Iterator[bytes]:
        yield b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>S</title>'
        server.pause(15)
        yield b"</feed>"

    server.routes["/stall.xml"] = lambda req: Response(
        200, {"Content-Type": "application/atom+xml"}, stalled_body()
    )
    big = 16 * 1024 * 1024 + 512 * 1024  # over the default 15 MiB, sent as fast as it goes
    server.routes["/huge.xml"] = lambda req: Response(
        200, {"Content-Type": "application/atom+xml"}, stream(big)
    )
    server.routes["/junk.html"] = Response(
        200,
        {"Content-Type": "text/html; charset=utf-8"},
        b"<!DOCTYPE html><html><head><title>Hi</title></head><body><p>Welcome & <b>enjoy"
        b"</body></html>",
    )
    names = {
        "/good.atom": "Good Feed Name",
        "/missing.xml": "Missing Feed",
        "/slow.xml": "Slow Feed",
        "/stall.xml": "Stalled Feed",
        "/huge.xml": "Huge Feed",
        "/junk.html": "Junk Feed",
    }
    # What the sidebar must say about each failing feed.
    expected_reasons = {
        "missing.xml": "HTTP 404",
        "slow.xml": "timed out after 2 s",
        "stall.xml": "timed out after 2 s",
        "huge.xml": f"larger than {15 * 1024 * 1024} bytes",
        "junk.html": "not a feed",
    }
    config = planet_ini(
        "Planet Trouble",
        [(server.url(path), name) for path, name in names.items()],
        fetch_interval=3600,
        feed_timeout=2,
        per_host_concurrency=6,
        snapshot_interval=3600,
    )
    daemon = Daemon(tmp_path / "planet", config)
    daemons.append(daemon)
    daemon.start()
    started = time.monotonic()
    health = daemon.wait_health(
        lambda h: h["feeds_ok"] + h["feeds_failing"] == len(names),
        deadline=20,
        what="one full cycle",
    )
    cycle = time.monotonic() - started
    assert (health["feeds_ok"], health["feeds_failing"], health["entries"]) == (1, 5, 2)
    assert cycle < 10, f"cycle took {cycle:.1f} s with feed_timeout = 2"

    page = get_page(daemon)
    assert [e.title for e in page.entries] == ["Good second", "Good first"]
    assert {e.feed_name for e in page.entries} == {"Good Feed Name"}
    sidebar = {Path(f.url).name: f for f in page.sidebar}
    assert set(sidebar) == {p.lstrip("/") for p in names}
    assert not sidebar["good.atom"].failing and sidebar["good.atom"].reason is None
    assert {name for name, f in sidebar.items() if f.failing} == set(expected_reasons)
    reasons = {name: sidebar[name].reason or "" for name in expected_reasons}
    # The log tells why each feed failed, in the same words.
    log = daemon.log
    for name, reason in reasons.items():
        assert any(
            name in line and "failing" in line and f"({reason})" in line
            for line in log.splitlines()
        ), (name, reason, log)
    code, log = daemon.stop()
    assert code in SIGTERM_EXITS, log
    wrong = {
        name: reasons[name]
        for name, needle in expected_reasons.items()
        if needle not in reasons[name]
    }
    assert not wrong, f"failing feeds with the wrong reason: {wrong}"


def test_max_feed_bytes_setting(server: FeedServer, daemons: list[Daemon], tmp_path: Path):
    # max_feed_bytes = 1M: a feed just under 1 MiB is read, one of 2 MB is not.
    filler = "<p>" + "lorem ipsum " * 1000 + "</p>"

    def feed_of(n: int, prefix: str) -> bytes:
        items = [
            Item(
                f"{prefix} {i}",
                f"http://{prefix}.example/{i}",
                at(2026, 6, 1, 10, 0) + timedelta(minutes=i),
                content=filler,
            )
            for i in range(n)
        ]
        return atom(prefix, f"http://{prefix}.example/", items)

    under = feed_of(60, "under")
    over = feed_of(170, "over")
    assert len(under) < 1024 * 1024 < 2_000_000 <= len(over)
    server.routes["/under.atom"] = Response(200, {"Content-Type": "application/atom+xml"}, under)
    server.routes["/over.atom"] = Response(200, {"Content-Type": "application/atom+xml"}, over)
    config = planet_ini(
        "Planet Sizes",
        [(server.url("/under.atom"), "Under"), (server.url("/over.atom"), "Over")],
        fetch_interval=3600,
        max_feed_bytes="1M",
        snapshot_interval=3600,
    )
    daemon = Daemon(tmp_path / "planet", config)
    daemons.append(daemon)
    daemon.start()
    health = daemon.wait_health(lambda h: h["feeds_ok"] + h["feeds_failing"] == 2)
    assert (health["feeds_ok"], health["feeds_failing"], health["entries"]) == (1, 1, 60)
    page = get_page(daemon)
    over_feed = next(f for f in page.sidebar if f.name == "Over")
    assert over_feed.failing
    assert f"larger than {1024 * 1024} bytes" in (over_feed.reason or "")


# --- 4. conditional GET across cycles ----------------------------------------------------


LM1 = "Tue, 23 Jun 2026 20:06:00 GMT"
LM2 = "Wed, 24 Jun 2026 08:00:00 GMT"


class Versioned:
    """A feed whose server rotates validators: 200 (v1), 304 + new ETag, 200 (v2), then 304s."""

    def __init__(self, name: str, builder: Any, content_type: str, minute: int) -> None:
        self.name = name
        self.builder = builder
        self.content_type = content_type
        self.items = [
            Item(f"{name} one", f"http://{name}.example/1", at(2026, 6, 23, 8, minute)),
            Item(f"{name} two", f"http://{name}.example/2", at(2026, 6, 23, 9, minute)),
        ]
        self.newer = Item(f"{name} three", f"http://{name}.example/3", at(2026, 6, 24, 7, minute))
        self.seen = 0

    def __call__(self, request: Request) -> Response:
        self.seen += 1
        n = self.seen
        tag = f'"{self.name}-{n}"'
        if n == 1:
            return self._full(tag, LM1, self.items)
        if n == 2:
            # Not modified, but the server rotates its ETag (and sends no Last-Modified).
            return Response(304, {"ETag": tag})
        if n == 3:
            return self._full(tag, LM2, [*self.items, self.newer])
        if request.header("If-None-Match") == f'"{self.name}-3"':
            return Response(304, {"ETag": f'"{self.name}-3"', "Last-Modified": LM2})
        return self._full(f'"{self.name}-3"', LM2, [*self.items, self.newer])

    def _full(self, tag: str, lm: str, items: list[Item]) -> Response:
        body = self.builder(f"{self.name} feed", f"http://{self.name}.example/", items)
        return Response(
            200, {"Content-Type": self.content_type, "ETag": tag, "Last-Modified": lm}, body
        )


def test_conditional_get_across_cycles(
    server: FeedServer,
    daemons: list[Daemon],
    kick: Callable[..., Kicker],
    tmp_path: Path,
):
    feeds = {
        "/cond.atom": Versioned("atomy", atom, "application/atom+xml", 10),
        "/cond.rss": Versioned("rssy", rss2, "application/rss+xml", 5),
    }
    server.routes.update(feeds)
    config = planet_ini(
        "Planet Conditional",
        [(server.url(path), None) for path in feeds],
        fetch_interval=3600,
        snapshot_interval=3600,
    )
    daemon = Daemon(tmp_path / "planet", config)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(all_fetched(4, 2), what="first fetch of both feeds")
    # Cycles back to back, as an operator's SIGUSR1 asks for them.
    kick(daemon, 0.2)
    # From now on entries must never go missing and no feed may be marked failing,
    # whatever the 304s do: watch /health closely until the fourth request of each feed.
    samples = []
    end = time.monotonic() + 20
    while min(len(server.requests_for(p)) for p in feeds) < 4:
        assert time.monotonic() < end, (
            {p: len(server.requests_for(p)) for p in feeds},
            daemon.log[-4000:],
        )
        h = daemon.health()
        samples.append(h)
        assert h["entries"] >= 4 and h["feeds_failing"] == 0 and h["feeds_ok"] == 2, (
            h,
            daemon.log[-4000:],
        )
        time.sleep(0.03)
    daemon.wait_health(all_fetched(6, 2), what="the new entries of the third response")
    for path, feed in feeds.items():
        reqs = server.requests_for(path)
        first, second, third, fourth = reqs[:4]
        assert first.header("If-None-Match") is None
        assert first.header("If-Modified-Since") is None
        assert second.header("If-None-Match") == f'"{feed.name}-1"'
        assert second.header("If-Modified-Since") == LM1
        # The 304 carried a new ETag and no Last-Modified: the new ETag, the old date.
        assert third.header("If-None-Match") == f'"{feed.name}-2"'
        assert third.header("If-Modified-Since") == LM1
        assert fourth.header("If-None-Match") == f'"{feed.name}-3"'
        assert fourth.header("If-Modified-Since") == LM2
    titles = [e.title for e in get_page(daemon).entries]
    assert titles == ["atomy three", "rssy three", "atomy two", "rssy two", "atomy one", "rssy one"]


# --- 5. kill -9 never corrupts the snapshot: tests/test_crash.py (a hundred kills) ------------


# --- 6. bad command lines and configs --------------------------------------------------------


BAD_CONFIGS = {
    "fetch_interval": (
        "[Planet]\nname = x\nfetch_interval = soon\n",
        ["[Planet]", "fetch_interval", "soon"],
    ),
    "per_host_concurrency": (
        "[Planet]\nname = x\nper_host_concurrency = -1\n",
        ["[Planet]", "per_host_concurrency", "-1"],
    ),
    "fetch_interval_below_a_minute": (
        "[Planet]\nname = x\nfetch_interval = 5\n",
        ["[Planet]", "fetch_interval", "at least 60 seconds", "'5'"],
    ),
    # The test's working directory is a directory, not a file to replace with a snapshot.
    "snapshot_file_a_directory": (
        "[Planet]\nname = x\nsnapshot_file = .\n",
        ["[Planet]", "snapshot_file", "is a directory"],
    ),
    "no_planet_section": ("[Other]\nname = x\n\n[http://a.example/feed]\n", ["[Planet]"]),
    "unparsable": (
        "[Planet]\nname = x\ngarbage line without equals\n",
        ["line 3", "garbage line without equals"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_one_clear_line(case: str, tmp_path: Path):
    text, must_name = BAD_CONFIGS[case]
    cfg = tmp_path / f"{case}.ini"
    cfg.write_text(text)
    code, output, took = run_once(
        ["--config", str(cfg), "--listen", "tcp:0:interface=127.0.0.1"], tmp_path
    )
    assert code != 0, output
    assert took < 10
    lines = meaningful_lines(output)
    assert len(lines) == 1, output
    line = lines[0]
    assert str(cfg) in line
    for part in must_name:
        assert part in line, (part, line)
    assert "Traceback" not in output


def test_missing_config_file(tmp_path: Path):
    missing = tmp_path / "nowhere" / "planet.ini"
    code, output, _ = run_once(["--config", str(missing)], tmp_path)
    assert code != 0
    lines = meaningful_lines(output)
    assert len(lines) == 1, output
    assert str(missing) in lines[0] and "cannot read" in lines[0]


def test_config_option_omitted(tmp_path: Path):
    code, output, _ = run_once(["--listen", "tcp:0:interface=127.0.0.1"], tmp_path)
    assert code != 0
    lines = meaningful_lines(output)
    assert len(lines) == 1, output
    assert "--config" in lines[0]


def _bound_port() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock, sock.getsockname()[1]


def test_port_in_use(tmp_path: Path):
    (tmp_path / "planet.ini").write_text(planet_ini("Planet Busy", [], fetch_interval=3600))
    sock, port = _bound_port()
    try:
        code, output, took = run_once(
            ["--config", "planet.ini", "--listen", f"tcp:{port}:interface=127.0.0.1"], tmp_path
        )
    finally:
        sock.close()
    assert code != 0, output
    assert took < 10
    assert "Traceback" not in output, output
    lines = meaningful_lines(output)
    assert len(lines) == 1, output
    assert f"tcp:{port}:interface=127.0.0.1" in lines[0]
    assert "Address already in use" in lines[0] or "Couldn't listen" in lines[0]


# --- 7. a Planet Venus config -----------------------------------------------------------------


# log_level, template_files and output_dir are Venus keys planet honours: not warned about.
VENUS_KEYS = ("encoding", "filters")


def test_venus_style_config_starts_and_warns(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    serve_river(server)
    src = RIVER_SOURCES[0]
    config = "\n".join(
        [
            "# A Planet Venus config, unchanged",
            "[Planet]",
            "name = Planet Venus Leftovers",
            "link = http://planet.example/",
            "owner_name = Olive Owner",
            "template_files = index.html.tmpl atom.xml.tmpl",
            f"output_dir = {tmp_path / 'www'}",
            "log_level = DEBUG",
            "encoding = utf-8",
            "filters = excerpt.py",
            "fetch_interval = 3600",
            "snapshot_interval = 3600",
            "",
            f"[{server.url(src.path)}]",
            "name = Alpha Configured",
            "",
        ]
    )
    daemon = Daemon(tmp_path / "planet", config)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(all_fetched(len(src.items), 1), what="the feed fetched")
    # output_dir's writer rendered the front page at start: a reader's copy may be up to the
    # render interval (1 s) behind the store.
    page = daemon.wait_until(
        lambda: next((p for p in [get_page(daemon)] if p.entries), None), what="the river"
    )
    assert page.title == "Planet Venus Leftovers"
    assert len(page.entries) == len(src.items)
    log_lines = daemon.log.splitlines()
    missing = []
    for key in VENUS_KEYS:
        hits = [line for line in log_lines if f"[Planet] {key}:" in line]
        if len(hits) != 1 or "#warn]" not in hits[0] or "planet.ini" not in hits[0]:
            missing.append((key, hits))
    assert not missing, f"expected one warning per unused key: {missing}\n{daemon.log}"
    # Its templates were not brought along: one warning names them; the default theme serves.
    (templates,) = [line for line in log_lines if "template_files:" in line]
    assert "index.html.tmpl atom.xml.tmpl: not found in" in templates and "#warn]" in templates
    daemon.wait_until(lambda: (tmp_path / "www" / "index.html").exists(), what="output_dir")
    code, log = daemon.stop()
    assert code in SIGTERM_EXITS, log
    assert SHUTDOWN_LINE in log


# --- 7. a cycle of 304s leaves the published pages as they were --------------------------------


def test_a_cycle_of_304s_keeps_the_river_and_its_etag(
    server: FeedServer,
    daemons: list[Daemon],
    kick: Callable[..., Kicker],
    tmp_path: Path,
):
    """Issue 15: every 304 used to make the river, the feeds we publish and their ETags
    new (pages were keyed on the whole store's version). Now a reader's conditional GET of
    ``/`` and ``/atom.xml`` after cycles of 304s gets a 304, while ``/feeds.json`` shows the
    new fetch time."""
    items = [Item("Steady post", "http://steady.example/1", at(2026, 6, 20))]
    server.routes["/steady.atom"] = Response(
        200,
        {"Content-Type": "application/atom+xml", "ETag": '"steady-1"'},
        atom("Steady", "http://steady.example/", items),
    )
    config = planet_ini(
        "Planet Steady", [server.url("/steady.atom")], fetch_interval=3600, snapshot_interval=3600
    )
    daemon = Daemon(tmp_path / "planet", config)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(lambda h: h["entries"] == 1, what="the first fetch")
    # The pages as a reader first sees them (a page may lag the store by about a second).
    time.sleep(1.5)
    tags = {path: daemon.get(path)[1]["ETag"] for path in ("/", "/atom.xml")}
    fetched = daemon.get("/feeds.json")
    first_fetch = json.loads(fetched[2])[0]["last_fetch"]
    kicks = kick(daemon, 0.3)
    daemon.wait_until(
        lambda: len(server.requests_for("/steady.atom")) >= 4, deadline=15, what="three 304s"
    )
    kicks.stop()
    assert all(
        r.header("If-None-Match") == '"steady-1"' for r in server.requests_for("/steady.atom")[1:]
    )
    time.sleep(1.5)
    for path, tag in tags.items():
        status, headers, _ = daemon.get(path, {"If-None-Match": tag})
        assert status == 304, (path, headers, daemon.log[-3000:])
    rows = json.loads(daemon.get("/feeds.json")[2])
    assert rows[0]["last_fetch"] != first_fetch and rows[0]["state"] == "not-modified"
