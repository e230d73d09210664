"""Crash safety of the real daemon: ``kill -9`` at random moments, and a full disk.

Builds on the kill -9 helpers of ``test_e2e`` (growing feeds, reading the snapshot from
disk) and takes them to a hundred kills aimed at fetch cycles and snapshot writes.

``fetch_interval`` cannot go below 60 s: a :class:`Kicker` sends ``SIGUSR1`` (fetch every
feed now) every :data:`KICK_EVERY` seconds instead, so cycles follow each other as they did
with the 1 s interval these tests were written with.
"""

from __future__ import annotations

import errno
import json
import random
import re
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from feeds import Item, at, rss2
from process import SHUTDOWN_LINE, Daemon, FeedServer, Kicker, Request, Response, read_snapshot
from test_e2e import SIGTERM_EXITS, get_page

from planet.testing import planet_ini

WINDOW = 50
GROWING_SINCE = at(2026, 1, 1, 0, 0)


class Growing:
    """Serves the newest WINDOW entries of a sequence that grows by one per request."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.requests = 0
        self.filler = f"<p>Feed {index}: " + ("some words for a bigger snapshot " * 8) + "</p>"

    def item(self, k: int) -> Item:
        when = GROWING_SINCE + timedelta(minutes=k, seconds=self.index)
        return Item(
            f"feed {self.index} entry {k}",
            f"http://grow{self.index}.example/{k}",
            when,
            content=self.filler + f"<p>entry <em>{k}</em></p>",
            id=f"urn:grow:{self.index}:{k}",
        )

    def __call__(self, request: Request) -> Response:
        self.requests += 1
        top = self.requests + WINDOW
        items = [self.item(k) for k in range(top - 1, top - 1 - WINDOW, -1)]
        body = rss2(f"Growing {self.index}", f"http://grow{self.index}.example/", items)
        return Response(200, {"Content-Type": "application/rss+xml"}, body)


def keys_of(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["feed_url"], e["id"]) for e in doc["entries"]}


pytestmark = pytest.mark.slow

LOADED = re.compile(r"Loaded snapshot \S+: (\d+) entries")
NO_SNAPSHOT = "No snapshot at "
WRITTEN = re.compile(r"Snapshot written to \S+: (\d+) entries")
FETCHED = re.compile(r"\[planet\.fetch#\w+\] fetch \S+: ")


@pytest.fixture
def kicker(daemon: Daemon) -> Iterator[Kicker]:
    """A :class:`Kicker` of ``daemon``, stopped at the end whatever happened."""
    kicks = Kicker(daemon)
    try:
        yield kicks
    finally:
        kicks.stop()


def growing_planet(
    server: FeedServer, feeds: int, more: Sequence[tuple[str, str | None]] = (), **settings: Any
) -> str:
    """A config of ``feeds`` growing feeds (and ``more``), keeping every entry it ever saw."""
    routes = {f"/grow{i}.rss": Growing(i) for i in range(feeds)}
    server.routes.update(routes)
    base: dict[str, Any] = {
        # The shortest allowed; a Kicker's SIGUSR1 makes every feed due far more often.
        "fetch_interval": 60,
        "max_entries_per_feed": 0,
        "max_entry_age_days": 0,
        "per_host_concurrency": 8,
    }
    base.update(settings)
    subscriptions = [(server.url(p), None) for p in routes] + list(more)
    return planet_ini("Planet Crash", subscriptions, **base)


def wait_loaded(daemon: Daemon) -> int:
    """Entries the daemon's start-up read from its snapshot (0 when there was none)."""

    def loaded() -> list[int]:
        # A list, so that loading nothing still counts as loaded for wait_until.
        log = daemon.log
        match = LOADED.search(log)
        if match:
            return [int(match.group(1))]
        return [0] if NO_SNAPSHOT in log else []

    return daemon.wait_until(loaded, deadline=20, poll=0.005, what="snapshot load")[0]


def served_links(daemon: Daemon) -> set[tuple[str, str]]:
    """``(feed URL, link)`` of every entry in the daemon's JSON Feed, all pages."""
    daemon.wait_port()
    links: set[tuple[str, str]] = set()
    page = 1
    while True:
        status, _, body = daemon.get(f"/feed.json?page={page}")
        if status == 404 and page > 1:
            return links
        assert status == 200, (page, status, body[:300])
        items = json.loads(body)["items"]
        links |= {(item["_planet"]["feed_url"], item["url"]) for item in items}
        page += 1


def read_snapshot_bytes(data: bytes) -> dict[str, Any]:
    doc = json.loads(data)
    assert doc["schema"] == 1
    return doc


def snapshot_links(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["feed_url"], e["link"]) for e in doc["entries"]}


# --- kill -9, a hundred times ----------------------------------------------------------------

ROUNDS = 100
GROWING = 12
STEADY = 12
SEED = 7_2026_1124
#: Every this many rounds (and in the last) the restarted daemon's river is read over HTTP.
SERVE_EVERY = 20
#: How a round picks its moment, and how often (see the loop below).
MODES = {"write": 35, "written": 25, "cycle": 20, "any": 20}


def requested_since(server: FeedServer, seen: int) -> bool:
    return len(server.requests) > seen


def steady_feeds(server: FeedServer, count: int) -> list[str]:
    """Feeds that never change: answered with 304 from their second fetch on.

    A 304 needs no parse, so its new feed state reaches the store, and a snapshot write,
    a moment after start-up instead of after the parser processes have started.
    """
    paths = []
    for i in range(count):
        feed = Growing(100 + i)
        body = rss2(
            f"Steady {i}", f"http://steady{i}.example/", [feed.item(k) for k in range(WINDOW)]
        )
        path = f"/steady{i}.rss"
        server.routes[path] = Response(
            200, {"Content-Type": "application/rss+xml", "ETag": f'"steady-{i}"'}, body
        )
        paths.append(path)
    return paths


def test_kill_9_a_hundred_times(server: FeedServer, daemon: Daemon, kicker: Kicker) -> None:
    steady = [(server.url(path), None) for path in steady_feeds(server, STEADY)]
    daemon.config_text = growing_planet(
        server, GROWING, steady, snapshot_interval=0.2, items_per_page=500, feed_timeout=5
    )
    snapshot = daemon.workdir / "planet-snapshot.json"
    tmp_prefix = snapshot.name + ".tmp-"

    def writing() -> bool:
        return any(p.name.startswith(tmp_prefix) for p in daemon.workdir.iterdir())

    def written_beyond(n: int) -> bool:
        return any(int(m) > n for m in WRITTEN.findall(daemon.log))

    rng = random.Random(SEED)
    print(f"seed {SEED}")
    seen: set[tuple[str, str]] = set()  # every entry of every completed snapshot so far
    modes: Counter[str] = Counter()
    seconds: dict[str, float] = defaultdict(float)  # from start to kill, per mode
    mid_write = mid_fetch = served_checks = 0
    counts = []
    started = time.monotonic()
    for round_no in range(ROUNDS):
        before = read_snapshot(snapshot)
        on_disk = keys_of(before) if before is not None else set()
        requests_before = len(server.requests)
        daemon.start(wait=False)
        round_started = time.monotonic()
        # The snapshot always loads, whole: a damaged one would be moved aside, not loaded.
        assert wait_loaded(daemon) == len(on_disk), (round_no, daemon.log[-3000:])
        daemon.wait_port()
        assert daemon.health()["entries"] >= len(on_disk), round_no
        if round_no % SERVE_EVERY == 0 or round_no == ROUNDS - 1:
            served = served_links(daemon)
            missing = snapshot_links(before) - served if before is not None else set()
            assert not missing, f"round {round_no}: {len(missing)} entries not served on restart"
            served_checks += 1

        # Round 0 leaves a snapshot of every feed; later rounds aim at random moments.
        if round_no == 0:
            mode = "first"
            every_feed = (GROWING + STEADY) * WINDOW - 1
            daemon.wait_until(partial(written_beyond, every_feed), deadline=30, what="a snapshot")
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            mode = rng.choices(list(MODES), weights=list(MODES.values()))[0]
        if mode == "write":
            # Its temporary file exists, so a write is under way: kill now or a little later.
            daemon.wait_until(writing, deadline=20, poll=0.001, what="a snapshot write")
            time.sleep(rng.choice((0.0, rng.uniform(0.0, 0.03))))
        elif mode == "written":
            # New entries reached the disk; then kill during the cycles and writes that follow.
            daemon.wait_until(
                partial(written_beyond, len(on_disk)), poll=0.005, what="new entries written"
            )
            time.sleep(rng.uniform(0.0, 0.5))
        elif mode == "cycle":
            # A fetch cycle has begun: its first request reached the feed server.
            daemon.wait_until(
                partial(requested_since, server, requests_before), poll=0.002, what="a fetch"
            )
            time.sleep(rng.uniform(0.0, 0.3))
        elif mode == "any":
            time.sleep(rng.uniform(0.0, 0.6))
        modes[mode] += 1
        seconds[mode] += time.monotonic() - round_started
        requests_sent = len(server.requests) - requests_before
        daemon.kill()

        log = daemon.log
        mid_write += writing()
        mid_fetch += requests_sent > len(FETCHED.findall(log))
        doc = read_snapshot(snapshot)  # raises if the file is not one complete document
        assert doc is not None, f"round {round_no}: no snapshot on disk"
        keys = keys_of(doc)
        lost = seen - keys
        assert not lost, f"round {round_no} ({mode}): {len(lost)} entries of a snapshot lost"
        # The file holds at least what the last write logged as complete.
        logged = [int(n) for n in WRITTEN.findall(log)]
        assert len(keys) >= max(logged, default=0), (round_no, len(keys), logged)
        assert not list(daemon.workdir.glob("*.corrupt-*")), f"round {round_no}: moved aside"
        assert "damaged" not in log, log[-3000:]
        seen |= keys
        counts.append(len(keys))

    kicker.stop()
    print(
        f"{ROUNDS} kills in {time.monotonic() - started:.0f} s ({kicker.sent} SIGUSR1 sent): "
        f"modes {dict(modes)}; "
        f"{mid_write} during a snapshot write (temporary file left behind), "
        f"{mid_fetch} with a fetch in flight; HTTP checked {served_checks} times; "
        f"entries {counts[0]} -> {counts[-1]}, snapshot {snapshot.stat().st_size} bytes; "
        "mean seconds from start to kill: "
        + ", ".join(f"{m} {seconds[m] / modes[m]:.2f}" for m in modes)
    )
    assert mid_write >= 15, f"only {mid_write} of {ROUNDS} kills landed during a snapshot write"
    assert mid_fetch >= 15, f"only {mid_fetch} of {ROUNDS} kills landed during a fetch"
    # Each "written" round took new entries to disk: the invariant was tested on a moving set.
    assert counts[-1] >= counts[0] + modes["written"], f"snapshots barely advanced: {counts}"

    # A last start with the feeds gone: the river comes from the snapshot alone, newest first.
    doc = read_snapshot(snapshot)
    assert doc is not None
    server.stop()
    daemon.start()
    assert daemon.health()["entries"] == len(doc["entries"])
    page = get_page(daemon)
    newest = sorted(
        doc["entries"],
        key=lambda e: (e["published"], e["first_seen"], e["feed_url"], e["id"]),
        reverse=True,
    )
    assert [e.title for e in page.entries] == [e["title"] for e in newest[: len(page.entries)]]


# --- a full disk --------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, or a skip where mounting is not permitted (not root, a container)."""
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount(8) here")
    where = tmp_path / "tiny"
    where.mkdir()
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [mount, "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        # Lazy: a daemon still holding a file there must not make the unmount fail.
        subprocess.run(["umount", "-l", str(where)], check=False)  # noqa: S603, S607


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``; returns the file holding them."""
    filler = disk / "filler"
    block = b"\0" * 4096
    # Unbuffered: a buffer would fail again, and raise, on close.
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_full_disk_keeps_the_snapshot_and_retries(
    server: FeedServer, daemon: Daemon, tiny_disk: Path, kicker: Kicker
) -> None:
    path = tiny_disk / "planet.json"
    daemon.config_text = growing_planet(server, 3, snapshot_interval=0.5, snapshot_file=str(path))
    full_line = (
        f"snapshot not written to {path}: No space left on device; "
        "keeping the previous snapshot, retrying in 0.5 s"
    )
    daemon.start()
    daemon.wait_health(lambda h: h["snapshot_written"] is not None and h["entries"] >= 3 * WINDOW)

    def failures() -> int:
        return daemon.log.count("snapshot not written to ")

    def temporaries() -> list[str]:
        return [p.name for p in tiny_disk.iterdir() if p.name.startswith("planet.json.tmp-")]

    filler = fill(tiny_disk)
    daemon.wait_until(lambda: failures() >= 1, what="a failed snapshot write")
    # No write can succeed now: what is on disk is the previous snapshot for good.
    previous = path.read_bytes()
    daemon.wait_until(lambda: failures() >= 3, what="two retries")
    assert path.read_bytes() == previous
    assert temporaries() == []
    log = daemon.log
    lines = [line for line in log.splitlines() if "snapshot not written to " in line]
    assert all(line.endswith(full_line) for line in lines), lines
    assert "Traceback" not in log, log
    # Still running, still fetching: the store moved on past the snapshot.
    entries_on_disk = len(read_snapshot_bytes(previous)["entries"])
    daemon.wait_health(lambda h: h["entries"] > entries_on_disk, what="fetching goes on")

    # Space is back: the next retry writes everything the store gathered meanwhile.
    filler.unlink()
    daemon.wait_until(
        lambda: "is current again after" in daemon.log, what="a snapshot written again"
    )
    doc = read_snapshot(path)
    assert doc is not None and len(doc["entries"]) > entries_on_disk
    assert keys_of(read_snapshot_bytes(previous)) <= keys_of(doc)

    # Full again at shutdown: the last write fails, the stop neither hangs nor crashes.
    fill(tiny_disk)
    failed_before = failures()
    daemon.wait_until(lambda: failures() > failed_before, what="another failed write")
    kept = path.read_bytes()
    kicker.stop()
    code, log = daemon.stop(timeout=20)
    assert code in SIGTERM_EXITS, log[-3000:]
    assert SHUTDOWN_LINE in log
    assert (
        f"snapshot not written to {path}: No space left on device; "
        "keeping the previous snapshot (shutting down, not retried)"
    ) in log, log[-3000:]
    assert path.read_bytes() == kept
    assert temporaries() == []

    # And the snapshot left behind loads, whole, even with the disk still full.
    daemon.start()
    assert wait_loaded(daemon) == len(read_snapshot_bytes(kept)["entries"])
