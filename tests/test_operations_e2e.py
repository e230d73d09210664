"""Operating the real daemon: SIGHUP reloads, graceful SIGTERM, log_level and --logfile.

Like test_e2e, every test runs ``twistd -n planet`` as a real process against a loopback
feed server and looks at it only through HTTP, its log, its exit and its snapshot file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import feedparser
import pytest
from feeds import Item, at, atom
from process import (
    PORT_LINE,
    SHUTDOWN_LINE,
    TWISTD,
    Daemon,
    DaemonError,
    FeedServer,
    Response,
)
from test_e2e import Page, get_page

from planet import __version__
from planet.testing import planet_ini

pytestmark = pytest.mark.slow

SIGTERM_EXITS = (0, -15)
ATOM = {"Content-Type": "application/atom+xml"}
RELOAD_FAILED = "config reload failed"
RELOADED = "config reloaded from"
#: Seconds the daemon gives running fetches at shutdown (Aggregator.grace).
GRACE = 5.0


# --- fixtures and helpers -----------------------------------------------------------------


class Feed:
    """One feed on the server: its path, own title and entries (titles all start with key)."""

    def __init__(self, server: FeedServer, key: str, n: int = 2, day: int = 10) -> None:
        self.key = key
        self.path = f"/{key.lower()}.atom"
        self.url = server.url(self.path)
        self.own_title = f"{key} Own Title"
        self.items = [
            Item(
                f"{key} post {i}",
                f"http://{key.lower()}.example/{i}",
                at(2026, 6, day, 8 + i, 0),
                content=f"<p>{key} body {i}</p>",
            )
            for i in range(n)
        ]
        self.titles = {it.title for it in self.items}
        self.body = atom(self.own_title, f"http://{key.lower()}.example/", self.items)

    def serve(self, server: FeedServer, delay: float = 0.0) -> None:
        server.routes[self.path] = Response(200, ATOM, self.body, delay=delay)


def config_of(feeds: list[tuple[Feed, str | None]], **settings: Any) -> str:
    base: dict[str, Any] = {
        "fetch_interval": 3600,
        "snapshot_interval": 3600,
        "feed_timeout": 60,
        "per_host_concurrency": 4,
    }
    base.update(settings)
    return planet_ini("Planet Operations", [(f.url, name) for f, name in feeds], **base)


def rows(page: Page) -> list[tuple[str, str, str | None, str, str]]:
    return [(e.feed_name, e.title, e.link, e.time, e.content) for e in page.entries]


def lines_with(log: str, needle: str) -> list[str]:
    return [line for line in log.splitlines() if needle in line]


def fetch_lines(log: str, url: str | None = None) -> list[str]:
    """planet.fetch's per-fetch info lines ("fetch URL: ok 200 ..."), of ``url`` if given."""
    pattern = re.compile(r"\bfetch (http://\S+): ")
    found = []
    for line in log.splitlines():
        m = pattern.search(line)
        if m and (url is None or m.group(1) == url):
            found.append(line)
    return found


def sighup(daemon: Daemon) -> None:
    assert daemon.proc is not None and daemon.running()
    os.kill(daemon.proc.pid, signal.SIGHUP)


def read_snapshot(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_bytes())  # a partial or corrupt file raises here
    assert doc["schema"] == 1
    return doc


def snapshot_titles(doc: dict[str, Any]) -> set[str]:
    return {e["title"] for e in doc["entries"]}


def wait_exit(daemon: Daemon, timeout: float) -> tuple[int, float]:
    """Wait for the process to end by itself (no signal sent); returns (code, seconds)."""
    assert daemon.proc is not None
    started = time.monotonic()
    try:
        code = daemon.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise DaemonError(f"still running {timeout} s after SIGTERM:\n{daemon.log}") from None
    return code, time.monotonic() - started


# --- 1. SIGHUP: a feed added, one removed, one renamed ------------------------------------


def test_sighup_adds_removes_and_renames_feeds(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    a, b, c = Feed(server, "Alpha", day=10), Feed(server, "Bravo", day=11), Feed(server, "Charlie")
    for f in (a, b, c):
        f.serve(server)
    workdir = tmp_path / "planet"
    daemon = Daemon(workdir, config_of([(a, "Alpha Name"), (b, "Bravo Old Name")]))
    daemons.append(daemon)
    daemon.start()
    before = daemon.wait_health(
        lambda h: h["feeds_ok"] == 2 and h["entries"] == 4, what="A and B fetched"
    )
    page = get_page(daemon)
    assert {e.title for e in page.entries} == a.titles | b.titles
    assert {e.feed_name for e in page.entries if e.title in b.titles} == {"Bravo Old Name"}
    assert not server.requests_for(c.path)
    assert before["config_loaded"]
    pid, port = daemon.proc.pid, daemon.port

    # The same file, rewritten: A gone, C new, B renamed.
    daemon.config_path.write_text(config_of([(b, "Bravo New Name"), (c, None)]), "utf-8")
    sent = time.monotonic()
    sighup(daemon)
    # Before the reload /health also shows 2 feeds and 4 entries: config_loaded tells them apart.
    after = daemon.wait_health(
        lambda h: (
            h["config_loaded"] != before["config_loaded"]
            and (h["feeds"], h["feeds_ok"], h["entries"]) == (2, 2, 4)
        ),
        deadline=5,
        what="C fetched and A dropped after SIGHUP",
    )
    took = time.monotonic() - sent
    # C fetched at once, not at the next tick of an hour-long fetch_interval.
    assert took < 5, took
    assert len(server.requests_for(c.path)) == 1
    assert len(server.requests_for(a.path)) == 1, "a removed feed was fetched again"
    assert after["config_loaded"] != before["config_loaded"]

    # No restart: the same process on the same port, started once.
    assert daemon.running() and daemon.proc.pid == pid and daemon.port == port
    assert len(PORT_LINE.findall(daemon.log)) == 1, daemon.log

    page = get_page(daemon)
    assert {e.title for e in page.entries} == b.titles | c.titles
    names = {e.title: e.feed_name for e in page.entries}
    assert {names[t] for t in b.titles} == {"Bravo New Name"}
    assert {names[t] for t in c.titles} == {c.own_title}
    assert {f.url for f in page.sidebar} == {b.url, c.url}
    assert {f.name for f in page.sidebar} == {"Bravo New Name", c.own_title}
    _, _, html = daemon.get("/")
    assert b"Alpha" not in html and b"Bravo Old Name" not in html

    status, _, body = daemon.get("/atom.xml")
    assert status == 200
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert {e.title for e in parsed.entries} == b.titles | c.titles
    assert {e.source.title for e in parsed.entries if e.title in b.titles} == {"Bravo New Name"}
    assert b"Alpha" not in body and b"Bravo Old Name" not in body

    reloaded = lines_with(daemon.log, RELOADED)
    assert len(reloaded) == 1, daemon.log
    assert "planet.ini" in reloaded[0]
    assert "1 feeds added, 1 removed, 2 in all" in reloaded[0], reloaded[0]
    assert RELOAD_FAILED not in daemon.log
    assert "Traceback" not in daemon.log, daemon.log

    # The shutdown snapshot no longer holds the removed feed's entries.
    code, log = daemon.stop()
    assert code in SIGTERM_EXITS, log
    doc = read_snapshot(workdir / "planet-snapshot.json")
    assert snapshot_titles(doc) == b.titles | c.titles


# --- 2. SIGHUP with a broken config ---------------------------------------------------------


BROKEN_CONFIGS = [
    # (what, file contents, what the error line must name)
    ("a bad value", None, ["planet.ini", "[Planet]", "fetch_interval", "soon"]),
    ("not INI at all", b"This is not an INI file.\nJust some prose.\n", ["planet.ini", "line 1"]),
    ("not UTF-8", b"[Planet]\nname = \xff\xfe\x00\x01\n", ["planet.ini", "line 2", "UTF-8"]),
]


def test_sighup_as_soon_as_the_port_is_announced_reloads(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    """twistd binds (and logs) the port before the services start: a SIGHUP from then on
    reloads the config; it must not kill the daemon with the signal's default action."""
    a, b = Feed(server, "Alpha", day=10), Feed(server, "Bravo", day=11)
    for f in (a, b):
        f.serve(server)
    daemon = Daemon(tmp_path / "planet", config_of([(a, None)]))
    daemons.append(daemon)
    daemon.start()  # returns once the port is in the log
    daemon.config_path.write_text(config_of([(a, None), (b, None)]), "utf-8")
    sighup(daemon)
    daemon.wait_health(
        lambda h: (h["feeds"], h["feeds_ok"], h["entries"]) == (2, 2, 4),
        what="both feeds fetched after the early SIGHUP",
    )
    assert daemon.running()


def test_sighup_with_a_broken_config_keeps_the_old_one(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    a, b, c = Feed(server, "Alpha", day=10), Feed(server, "Bravo", day=11), Feed(server, "Charlie")
    for f in (a, b, c):
        f.serve(server)
    good = config_of([(a, "Alpha Name"), (b, None)])
    daemon = Daemon(tmp_path / "planet", good)
    daemons.append(daemon)
    daemon.start()
    health = daemon.wait_health(
        lambda h: h["feeds_ok"] == 2 and h["entries"] == 4, what="A and B fetched"
    )
    river = rows(get_page(daemon))
    assert len(river) == 4
    loaded = health["config_loaded"]
    pid = daemon.proc.pid

    for n, (what, contents, must_name) in enumerate(BROKEN_CONFIGS, start=1):
        if contents is None:
            # A valid file but for one value, which also adds C and renames A.
            text = config_of([(a, "Alpha Renamed"), (b, None), (c, None)])
            contents = text.replace("fetch_interval = 3600", "fetch_interval = soon").encode()
            assert b"fetch_interval = soon" in contents
        daemon.config_path.write_bytes(contents)
        sighup(daemon)
        daemon.wait_until(
            lambda n=n: len(lines_with(daemon.log, RELOAD_FAILED)) >= n,
            deadline=5,
            what=f"the reload error for {what}",
        )
        time.sleep(0.3)  # anything else the reload would log
        log = daemon.log
        failed = lines_with(log, RELOAD_FAILED)
        assert len(failed) == n, f"{what}: expected {n} error lines in all:\n{log}"
        line = failed[-1]
        assert "#error]" in line, line
        for part in must_name:
            assert part in line, (what, part, line)
        assert "Traceback" not in log, log
        assert RELOADED not in log, log
        # Still running the previous config: same process, same river, nothing fetched.
        assert daemon.running() and daemon.proc.pid == pid
        assert rows(get_page(daemon)) == river, what
        health = daemon.health()
        assert health["config_loaded"] == loaded, what
        assert (health["feeds"], health["entries"]) == (2, 4), what
        assert not server.requests_for(c.path), what

    # Fixed: the next SIGHUP applies it.
    daemon.config_path.write_text(config_of([(a, "Alpha Renamed"), (b, None), (c, None)]))
    sighup(daemon)
    health = daemon.wait_health(
        lambda h: h["feeds"] == 3 and h["feeds_ok"] == 3 and h["entries"] == 6,
        deadline=5,
        what="the fixed config applied",
    )
    assert health["config_loaded"] != loaded
    page = get_page(daemon)
    assert {e.title for e in page.entries} == a.titles | b.titles | c.titles
    assert {e.feed_name for e in page.entries if e.title in a.titles} == {"Alpha Renamed"}
    log = daemon.log
    assert len(lines_with(log, RELOADED)) == 1, log
    assert len(lines_with(log, RELOAD_FAILED)) == len(BROKEN_CONFIGS), log
    assert "Traceback" not in log, log
    assert daemon.proc.pid == pid
    code, log = daemon.stop()
    assert code in SIGTERM_EXITS, log


def test_sighup_applies_every_reloadable_setting(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    """Issue 17's lesson: what a reload rebuilds is checked in the running daemon, not only
    at load_config. Each setting that takes effect without a restart, changed by SIGHUP."""
    a, b = Feed(server, "Alpha", n=3, day=10), Feed(server, "Bravo", n=3, day=11)
    for f in (a, b):
        f.serve(server)
    daemon = Daemon(tmp_path / "planet", config_of([(a, None), (b, None)]))
    daemons.append(daemon)
    daemon.start()
    before = daemon.wait_health(lambda h: h["entries"] == 6, what="both feeds fetched")
    page = get_page(daemon)
    assert page.title == "Planet Operations" and len(page.entries) == 6
    _, headers, _ = daemon.get("/")
    assert headers["Cache-Control"] == "public, max-age=300"
    assert {r.header("User-Agent") for r in server.requests_for(a.path)} == {
        "planet/" + __version__
    }

    daemon.config_path.write_text(
        config_of(
            [(a, None), (b, None)],
            items_per_page=4,
            cache_max_age=42,
            date_format="%Y-%m-%d %H:%M",
            user_agent="reloaded-agent/1.0",
            log_level="WARNING",
        ).replace("Planet Operations", "Planet Reloaded"),
        "utf-8",
    )
    sighup(daemon)
    daemon.wait_health(
        lambda h: h["config_loaded"] != before["config_loaded"], deadline=5, what="the reload"
    )
    page = get_page(daemon)
    assert page.title == "Planet Reloaded"
    assert len(page.entries) == 4 and page.next_href is not None
    assert page.entries[0].time == "2026-06-11 10:00"
    _, headers, body = daemon.get("/atom.xml")
    assert b'<title type="text">Planet Reloaded</title>' in body
    assert headers["Cache-Control"] == "public, max-age=42"
    # The fetcher too: SIGUSR1 fetches every feed now, with the new User-Agent.
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGUSR1)
    daemon.wait_until(
        lambda: len(server.requests_for(a.path)) == 2, deadline=5, what="a fetch after SIGUSR1"
    )
    assert server.requests_for(a.path)[-1].header("User-Agent") == "reloaded-agent/1.0"
    # And the log level: no per-fetch INFO line after the reload.
    time.sleep(0.3)
    assert len(fetch_lines(daemon.log, a.url)) == 1, daemon.log
    assert "Traceback" not in daemon.log


# --- 3. graceful stop -------------------------------------------------------------------------


def test_sigterm_abandons_a_hanging_fetch_after_the_grace(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    normal, hang = Feed(server, "Normal"), Feed(server, "Hang")
    normal.serve(server)
    hang.serve(server, delay=30)
    workdir = tmp_path / "planet"
    snapshot = workdir / "planet-snapshot.json"
    daemon = Daemon(workdir, config_of([(normal, None), (hang, None)]))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(lambda h: h["feeds_ok"] == 1 and h["entries"] == 2, what="normal fetched")
    daemon.wait_until(lambda: server.requests_for(hang.path), deadline=5, what="hang requested")
    assert not snapshot.exists()  # snapshot_interval is an hour: only the stop writes one

    daemon.proc.send_signal(signal.SIGTERM)
    code, took = wait_exit(daemon, timeout=15)
    _, log = daemon.stop()
    print(f"SIGTERM with a hanging fetch: exit {code} after {took:.2f} s")
    assert code in SIGTERM_EXITS, log
    assert took < GRACE + 5, f"exit took {took:.1f} s"
    assert SHUTDOWN_LINE in log
    assert "abandoned" in log, log
    assert "Traceback" not in log, log
    assert not daemon.leftovers, daemon.leftovers
    doc = read_snapshot(snapshot)
    assert snapshot_titles(doc) == normal.titles
    assert not list(workdir.glob("*.tmp-*"))


def test_sigterm_records_a_fetch_finishing_within_the_grace(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    normal, slow = Feed(server, "Normal"), Feed(server, "Slow", day=12)
    normal.serve(server)
    slow.serve(server, delay=2)
    workdir = tmp_path / "planet"
    snapshot = workdir / "planet-snapshot.json"
    daemon = Daemon(workdir, config_of([(normal, None), (slow, "Slow Name")]))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_until(lambda: server.requests_for(slow.path), deadline=5, what="slow requested")
    daemon.wait_health(lambda h: h["feeds_ok"] == 1 and h["entries"] == 2, what="normal fetched")
    health = daemon.health()
    assert health["entries"] == 2, "the slow feed answered before SIGTERM: test is void"

    daemon.proc.send_signal(signal.SIGTERM)
    code, took = wait_exit(daemon, timeout=15)
    _, log = daemon.stop()
    print(f"SIGTERM with a 2 s fetch running: exit {code} after {took:.2f} s")
    assert code in SIGTERM_EXITS, log
    assert took < GRACE + 5, f"exit took {took:.1f} s"
    assert SHUTDOWN_LINE in log
    assert "abandoned" not in log, log
    assert "Traceback" not in log, log
    assert len(fetch_lines(log, slow.url)) == 1, log
    doc = read_snapshot(snapshot)
    assert snapshot_titles(doc) == normal.titles | slow.titles, log
    # The parse of the late answer must not start parser workers that outlive the daemon.
    assert not daemon.leftovers, f"processes left after the daemon exited: {daemon.leftovers}"

    # Restart with nothing to fetch: the slow feed's entries come from the snapshot.
    server.routes.clear()
    daemon.start()
    health = daemon.health()
    assert (health["entries"], health["feeds_ok"]) == (4, 2), (health, daemon.log)
    page = get_page(daemon)
    assert {e.title for e in page.entries} == normal.titles | slow.titles
    assert {e.feed_name for e in page.entries if e.title in slow.titles} == {"Slow Name"}
    code, log = daemon.stop()
    assert code in SIGTERM_EXITS, log


def test_second_sigterm_during_shutdown(server: FeedServer, daemons: list[Daemon], tmp_path: Path):
    normal, hang = Feed(server, "Normal"), Feed(server, "Hang")
    normal.serve(server)
    hang.serve(server, delay=30)
    workdir = tmp_path / "planet"
    snapshot = workdir / "planet-snapshot.json"
    daemon = Daemon(workdir, config_of([(normal, None), (hang, None)]))
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(lambda h: h["feeds_ok"] == 1 and h["entries"] == 2, what="normal fetched")
    daemon.wait_until(lambda: server.requests_for(hang.path), deadline=5, what="hang requested")

    daemon.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert daemon.running(), "exited within 0.5 s although a fetch was running"
    daemon.proc.send_signal(signal.SIGTERM)
    code, took = wait_exit(daemon, timeout=15)
    _, log = daemon.stop()
    print(f"two SIGTERMs: exit {code} {took + 0.5:.2f} s after the first")
    assert not daemon.leftovers, f"processes left after the daemon exited: {daemon.leftovers}"
    assert code in SIGTERM_EXITS, log
    assert took + 0.5 < GRACE + 5, f"exit took {took + 0.5:.1f} s"
    assert SHUTDOWN_LINE in log
    doc = read_snapshot(snapshot)
    assert snapshot_titles(doc) == normal.titles
    assert not list(workdir.glob("*.tmp-*"))


# --- 4. log_level and --logfile - --------------------------------------------------------


def test_log_level_warning_hides_fetch_lines_until_reloaded(
    server: FeedServer, daemons: list[Daemon], tmp_path: Path
):
    a, b, c = Feed(server, "Alpha"), Feed(server, "Bravo"), Feed(server, "Charlie")
    for f in (a, b, c):
        f.serve(server)
    quiet = config_of([(a, None), (b, None)], log_level="WARNING", encoding="utf-8")
    daemon = Daemon(tmp_path / "planet", quiet)
    daemons.append(daemon)
    daemon.start()
    daemon.wait_health(lambda h: h["feeds_ok"] == 2 and h["entries"] == 4, what="A, B fetched")
    time.sleep(0.2)  # the fetch lines follow the store update /health reflects
    log = daemon.log
    assert len(server.requests_for(a.path)) == len(server.requests_for(b.path)) == 1
    assert fetch_lines(log) == [], log
    assert "fetch http://" not in log, log
    assert "No snapshot at" not in log, log  # planet's other info lines too
    # Warnings still pass: one for the Venus key planet does not use.
    warned = lines_with(log, "[Planet] encoding:")
    assert len(warned) == 1 and "#warn]" in warned[0], log

    # A reload to INFO applies at once: the next fetch is logged.
    daemon.config_path.write_text(config_of([(a, None), (b, None), (c, None)], log_level="INFO"))
    sighup(daemon)
    daemon.wait_until(
        lambda: fetch_lines(daemon.log, c.url), deadline=5, what="C's fetch line after reload"
    )
    time.sleep(0.2)
    log = daemon.log
    assert len(fetch_lines(log, c.url)) == 1, log
    assert re.search(rf"fetch {re.escape(c.url)}: ok 200 \d+ bytes", log), log
    assert fetch_lines(log) == fetch_lines(log, c.url), log
    assert len(lines_with(log, RELOADED)) == 1, log
    code, log = daemon.stop()
    assert code in SIGTERM_EXITS, log


def test_log_level_debug_and_logfile_dash_go_to_stdout(server: FeedServer, tmp_path: Path):
    """``twistd --logfile - planet``: the log on stdout, a fetch line per fetch at DEBUG."""
    a, b = Feed(server, "Alpha"), Feed(server, "Bravo")
    for f in (a, b):
        f.serve(server)
    workdir = tmp_path / "planet"
    workdir.mkdir()
    (workdir / "planet.ini").write_text(config_of([(a, None), (b, None)], log_level="DEBUG"))
    out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
    command = [
        str(TWISTD),
        "-n",
        "--pidfile=",
        "--logfile",
        "-",
        "planet",
        "--config",
        "planet.ini",
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]
    # Daemon does the HTTP and the waiting; stdout and stderr are kept apart here.
    daemon = Daemon(workdir)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        daemon.proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    daemon._log_path = out_path  # Daemon.log (and so wait_port) reads stdout
    try:
        daemon.wait_port(deadline=20)
        daemon.wait_health(lambda h: h["feeds_ok"] == 2, what="A and B fetched")
        daemon.wait_until(
            lambda: len(fetch_lines(daemon.log)) >= 2, deadline=5, what="two fetch lines"
        )
        time.sleep(0.2)
        daemon.proc.send_signal(signal.SIGTERM)
        code, _ = wait_exit(daemon, timeout=15)
    finally:
        daemon.cleanup()
    stdout = out_path.read_text("utf-8", errors="replace")
    stderr = err_path.read_text("utf-8", errors="replace")
    assert code in SIGTERM_EXITS, stdout + stderr
    assert PORT_LINE.search(stdout), stdout
    assert SHUTDOWN_LINE in stdout
    for f in (a, b):
        lines = fetch_lines(stdout, f.url)
        assert len(lines) == len(server.requests_for(f.path)) == 1, stdout
        assert f"fetch {f.url}: ok 200 " in lines[0] and "[planet.fetch#info]" in lines[0]
    assert len(fetch_lines(stdout)) == 2, stdout
    assert stderr.strip() == "", stderr
    assert not (workdir / "twistd.log").exists()
    assert not (workdir / "-").exists()
