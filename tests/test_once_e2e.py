"""``planet run-once`` as cron runs it: a process against loopback feeds, writing the
snapshot that ``twistd planet`` then loads and serves at once (no fetch needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from feeds import Item, at, atom
from process import LOOPBACK_LISTEN, Daemon, FeedServer, Response, read_snapshot

from planet.testing import planet_ini

pytestmark = pytest.mark.slow

PLANET = Path(sys.executable).parent / "planet"
ATOM = "application/atom+xml; charset=utf-8"


def planet(*args: str, cwd: Path) -> tuple[int, str, str]:
    proc = subprocess.run(
        [str(PLANET), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_run_once_writes_a_snapshot_the_daemon_serves_at_once(tmp_path: Path, server: FeedServer):
    items = [Item("Cron post", "http://one.example/1", at(2026, 6, 20))]
    server.routes["/one.xml"] = Response(
        200, {"Content-Type": ATOM, "ETag": '"v1"'}, atom("One", "http://one.example/", items)
    )
    config = planet_ini(
        "Cron Planet",
        [(server.url("/one.xml"), "One"), (server.url("/missing.xml"), "Missing")],
        fetch_interval=3600,
        snapshot_interval=3600,
        feed_timeout=10,
        output_dir=str(tmp_path / "out"),
    )
    (tmp_path / "planet.ini").write_text(config)
    state = tmp_path / "state"
    state.mkdir()

    code, out, err = planet("run-once", "planet.ini", "--state-dir", str(state), cwd=tmp_path)
    assert code == 0, err
    assert out.startswith("planet run-once: done: 1 cycle(s)"), out
    assert "2 feeds (1 failing), 1 entries" in out
    assert "cycle 1 done: 2 feeds" in err  # the daemon's own cycle line
    snapshot = read_snapshot(state / "planet-snapshot.json")
    assert snapshot is not None
    assert [e["title"] for e in snapshot["entries"]] == ["Cron post"]
    assert len(server.requests_for("/one.xml")) == 1
    # output_dir, written once the cycle is done: the pages and feeds of what was fetched.
    out_dir = tmp_path / "out"
    assert b"Cron post" in (out_dir / "index.html").read_bytes()
    assert b"Cron post" in (out_dir / "atom.xml").read_bytes()
    assert {"rss20.xml", "feed.json", "opml.xml", "style.css"} <= {
        p.name for p in out_dir.iterdir()
    }

    # Again, quietly (cron): a conditional GET, nothing on stdout, no info lines.
    code, out, err = planet("run-once", "-q", "planet.ini", "--state-dir", str(state), cwd=tmp_path)
    assert (code, out) == (0, ""), err
    assert "#info]" not in err, err
    assert server.requests_for("/one.xml")[-1].header("If-None-Match") == '"v1"'
    assert len(server.requests_for("/missing.xml")) == 1  # backing off after its 404

    # The daemon loads that snapshot and serves it before any fetch of its own.
    args = ["--config", "planet.ini", "--listen", LOOPBACK_LISTEN, "--state-dir", str(state)]
    with Daemon(tmp_path, args=args) as daemon:
        daemon.start()
        status, _, body = daemon.get("/")
        assert status == 200
        assert b"Cron post" in body
        feeds = {row["name"]: row for row in json.loads(daemon.get("/feeds.json")[2])}
        assert feeds["One"]["entries"] == 1 and feeds["One"]["state"] == "not-modified"
        assert feeds["Missing"]["state"] == "failing"
        time.sleep(0.3)
        assert len(server.requests_for("/one.xml")) == 2, "the daemon fetched nothing yet"


def test_run_once_config_error_is_checks_line(tmp_path: Path):
    (tmp_path / "planet.ini").write_text("[Planet]\nfetch_interval = soon\n")
    check = planet("check", "planet.ini", cwd=tmp_path)
    once = planet("run-once", "planet.ini", cwd=tmp_path)
    assert once == check
    assert once[0] == 1 and once[2].startswith("planet: error: planet.ini")
    assert not (tmp_path / "planet-snapshot.json").exists()
