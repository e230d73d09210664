"""Templates and output_dir end to end: ``twistd planet`` as a process, as an operator runs it.

The seed's layout line by line in the default theme with its files written to output_dir; a
template that does not compile stops start-up with one line naming its file and line; at
SIGHUP the old templates keep serving.
"""

from __future__ import annotations

import signal
from pathlib import Path

import html5lib
import pytest
from process import Daemon, FeedServer, Response, run_once
from test_e2e import (
    CONTENT_TYPES,
    RIVER_SOURCES,
    RIVER_TOTAL,
    _text,
    all_fetched,
    document,
    expected_river,
    river_config,
    serve_river,
)

from planet.testing import planet_ini

pytestmark = pytest.mark.slow


def page_lines(body: bytes) -> list[str]:
    """The river's text, one line per heading, content block and byline, in page order."""
    doc = html5lib.parse(body, treebuilder="etree", namespaceHTMLElements=False)
    main = doc.find(".//main[@id='river']")
    assert main is not None
    lines = []
    for el in main.iter():
        classes = set((el.get("class") or "").split())
        if el.tag in ("h2", "h3", "h4") or classes & {"content", "byline"}:
            lines.append(_text(el))
    return lines


def seed_lines() -> list[str]:
    """What a Planet page reads: day, feed (when it changes that day), title, content, time."""
    lines: list[str] = []
    day = feed = None
    for want in expected_river():
        item, src = want.item, want.source
        if f"{item.when:%d %b %Y}" != day:
            day, feed = f"{item.when:%d %b %Y}", None
            lines.append(day)
        if src.path != feed:
            feed = src.path
            lines.append(src.display)
        content = html5lib.parse(item.content, treebuilder="etree", namespaceHTMLElements=False)
        lines += [item.title, _text(content), f"by {src.author} at {want.time}"]
    return lines


def test_seed_layout_and_output_dir(server: FeedServer, daemons: list[Daemon], tmp_path: Path):
    serve_river(server)
    out = tmp_path / "out"
    daemon = Daemon(tmp_path / "planet", river_config(server, output_dir=str(out)))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(all_fetched(RIVER_TOTAL, 3), what="all entries fetched")
    # The writer rendered the front page at start: a reader's copy may be up to the render
    # interval (1 s) behind the store.
    want = seed_lines()
    lines = daemon.wait_until(
        lambda: next((x for x in [page_lines(daemon.get("/")[2])] if len(x) >= len(want)), None),
        what="the whole river",
    )
    assert lines == want
    # Spelt out: the first day as the brief shows it.
    assert lines[:6] == [
        "23 Jun 2026",
        "Alpha Configured",
        "Alpha evening post",
        "Body of Alpha evening post with mark /alpha.atom#0 inside.",
        "by Ann Alpha at 23 Jun 2026 8:06pm GMT",
        "Bravo Feed Title",
    ]
    # Charlie's two entries of 05 Jun in a row: its heading once.
    june5 = lines[lines.index("05 Jun 2026") :]
    assert june5.count("Charlie Configured") == 1

    # output_dir: the default theme's pages and feeds, the bytes served.
    names = ["index.html", "atom.xml", "rss20.xml", "feed.json", "opml.xml", "style.css"]

    def written() -> bool:
        return all(
            (out / name).exists() and (out / name).read_bytes() == daemon.get("/" + name)[2]
            for name in names
        )

    daemon.wait_until(written, deadline=10, what="output_dir holds the served bytes")
    assert sorted(p.name for p in out.iterdir()) == sorted(names)


def test_broken_template_at_start_is_one_line(server: FeedServer, tmp_path: Path):
    (tmp_path / "index.html.tmpl").write_text("<html>\n<TMPL_IF name>\n<TMPL_VAR name>\n")
    (tmp_path / "planet.ini").write_text(
        planet_ini("Broken", [server.url("/a.atom")], template_files="index.html.tmpl")
    )
    code, output, _ = run_once(["--config", "planet.ini"], tmp_path)
    assert code != 0
    errors = [line for line in output.splitlines() if line.startswith("planet: error:")]
    assert errors == [
        f"planet: error: {tmp_path / 'index.html.tmpl'}:2: <TMPL_IF> is never closed"
    ], output


def test_sighup_with_a_broken_template_keeps_the_old(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    src = RIVER_SOURCES[0]
    server.routes[src.path] = Response(
        200, {"Content-Type": CONTENT_TYPES[src.kind]}, document(src)
    )
    workdir = tmp_path / "planet"
    workdir.mkdir()
    template = workdir / "index.html.tmpl"
    template.write_text("v1<TMPL_LOOP Items>|<TMPL_VAR title></TMPL_LOOP>")
    config = planet_ini(
        "Themed",
        [server.url(src.path)],
        template_files="index.html.tmpl",
        fetch_interval=3600,
        snapshot_interval=3600,
    )
    daemon = Daemon(workdir, config)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(lambda h: h["entries"] == len(src.items), what="entries fetched")
    status, headers, body = daemon.get("/")
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert body.decode() == "v1|" + "|".join(title for title, _, _ in src.items)
    loaded = daemon.health()["config_loaded"]

    template.write_text("v2\n\n<TMPL_LOOP Items>")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_until(lambda: "config reload failed" in daemon.log, what="the reload refused")
    assert f"{template}:3: <TMPL_LOOP> is never closed" in daemon.log
    assert daemon.get("/")[2] == body
    assert daemon.get("/index.html")[2] == body
    assert daemon.health()["config_loaded"] == loaded

    template.write_text("v3")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_until(lambda: daemon.get("/")[2] == b"v3", what="the fixed template served")
