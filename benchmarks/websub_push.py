"""WebSub push benchmark: a hub flooding ``twistd planet`` (issue 14).

PYTHONPATH=src .venv/bin/python benchmarks/websub_push.py [--feeds 50] [--rate 1000]
    [--seconds 30] [--entries 20] [--readers 10]

This process is a publisher and its hub (tests/websubhub.py's Hub on loopback TCP): the
daemon fetches ``--feeds`` feeds whose ``Link`` header names the hub, subscribes, and the
hub verifies each subscription. Then the hub pushes ``--rate`` signed bodies a second,
round-robin over the feeds, for ``--seconds``: each body is a ``--entries``-entry feed whose
newest entry is new. A pushed body is answered once parsed and stored (or 429 when its
subscription is over its rate: a real hub retries later; not counted as lost). Meanwhile a
reader process GETs ``/`` ``--readers`` times a second (first for ``--idle-seconds`` with
no pushes: the machine's baseline). Printed: pushes offered,
answered 202 / 429 / other, the front page's p50/p99, entries acknowledged but missing
from the snapshot written at SIGTERM (lost), and the daemon's RSS (its process and the
parse workers) before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from benchutil import percentile, table  # noqa: E402
from feeds import Item, atom  # noqa: E402
from process import Daemon, read_snapshot  # noqa: E402
from treq.client import HTTPClient  # noqa: E402
from twisted.internet import reactor as _reactor  # noqa: E402
from twisted.internet.defer import Deferred, ensureDeferred  # noqa: E402
from twisted.internet.task import LoopingCall, deferLater  # noqa: E402
from twisted.web.client import Agent, HTTPConnectionPool  # noqa: E402
from twisted.web.resource import Resource  # noqa: E402
from twisted.web.server import Request, Site  # noqa: E402
from websubhub import Hub  # noqa: E402

from planet.websub import sign  # noqa: E402

reactor: Any = _reactor
BASE = datetime(2026, 6, 1, tzinfo=timezone.utc)

READER = """
import sys, time, urllib.request
url, every, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
lat = []
try:
    while True:
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as r:
            r.read()
        lat.append((time.perf_counter() - t) * 1000)
        time.sleep(max(0.0, every - (time.perf_counter() - t)))
except KeyboardInterrupt:
    pass
finally:
    open(out, "w").write("\\n".join(f"{x:.3f}" for x in lat))
"""


def body(feed: int, newest: int, entries: int) -> bytes:
    items = [
        Item(
            f"feed {feed} post {n}",
            f"http://blog{feed}.example/{n}",
            BASE + timedelta(seconds=n),
            id=f"urn:bench:f{feed}-{n}",
        )
        for n in range(newest, max(-1, newest - entries), -1)
    ]
    return atom(f"Blog {feed}", f"http://blog{feed}.example/", items)


class Feeds(Resource):
    isLeaf = True

    def __init__(self, hub_url: str, entries: int) -> None:
        super().__init__()
        self.hub_url, self.entries = hub_url, entries

    def render_GET(self, request: Request) -> bytes:
        n = int(request.path.rsplit(b"/", 1)[-1])
        request.setHeader("content-type", "application/atom+xml")
        request.setHeader("link", f'<{self.hub_url}>; rel="hub"')
        return body(n, self.entries - 1, self.entries)


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> tuple[int, int]:
    """(the daemon's RSS, its workers' RSS in all), KiB."""
    pgid = os.getpgid(pid)
    workers = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != pid:
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    workers += rss_kib(int(entry.name))
            except OSError:
                continue
    return rss_kib(pid), workers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 256
    client = HTTPClient(Agent(reactor, pool=pool))
    hub = Hub(client)
    root = Resource()
    root.putChild(b"hub", hub)
    port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
    base = f"http://127.0.0.1:{port.getHost().port}"
    root.putChild(b"feed", Feeds(base + "/hub", args.entries))
    feeds = [f"{base}/feed/{i}" for i in range(args.feeds)]
    planet_port = free_port()
    work = Path(tempfile.mkdtemp(prefix="websub-bench-"))
    snapshot = work / "snapshot.json"
    lines = [
        "[Planet]",
        "name = bench",
        f"websub_callback = http://127.0.0.1:{planet_port}/",
        f"snapshot_file = {snapshot}",
        "max_entries_per_feed = 0",
        "snapshot_interval = 3600",
    ]
    ini = "\n".join(lines + [f"\n[{url}]" for url in feeds]) + "\n"
    daemon = Daemon(work, config_text=ini, listen=f"tcp:{planet_port}:interface=127.0.0.1")
    daemon.start()
    try:
        while len(hub.subscriptions) < args.feeds:
            await deferLater(reactor, 0.1, lambda: None)
        assert daemon.proc is not None
        # One reader's GET first: the front page's first render is not the flood's.
        warm = await client.get(daemon.url("/"))
        await warm.content()
        rss_before = tree_rss(daemon.proc.pid)
        targets = sorted(hub.subscriptions.values(), key=lambda s: int(s.topic.rsplit("/", 1)[1]))
        codes: Counter[int] = Counter()
        acked: set[str] = set()
        in_flight = [0]
        skipped = [0]
        sequence = [args.entries - 1] * args.feeds

        def read_front(out: Path) -> subprocess.Popen[bytes]:
            command = [sys.executable, "-c", READER, daemon.url("/"), str(1 / args.readers)]
            return subprocess.Popen([*command, str(out)])

        def latencies_of(reader: subprocess.Popen[bytes], out: Path) -> list[float]:
            reader.send_signal(2)
            reader.wait(10)
            return [float(x) for x in out.read_text().split()] if out.exists() else []

        # The same reader with no pushes first: the machine's own baseline.
        idle_out = work / "reader-idle.txt"
        idle_reader = read_front(idle_out)
        await deferLater(reactor, args.idle_seconds, lambda: None)
        idle = latencies_of(idle_reader, idle_out)
        out = work / "reader.txt"
        reader = read_front(out)

        def send(i: int) -> None:
            if in_flight[0] >= args.max_in_flight:
                skipped[0] += 1
                return
            sub = targets[i]
            sequence[i] += 1
            n = sequence[i]
            data = body(i, n, args.entries)
            headers = {
                "Content-Type": "application/atom+xml",
                "X-Hub-Signature": sign(sub.secret or "", data),
            }
            in_flight[0] += 1
            d: Deferred[Any] = client.post(sub.callback, data=data, headers=headers)

            def done(response: Any) -> Any:
                codes[response.code] += 1
                if response.code == 202:
                    acked.add(f"urn:bench:f{i}-{n}")
                return response.content()

            def finished(_: Any) -> None:
                in_flight[0] -= 1

            d.addCallback(done).addErrback(lambda f: codes.update({0: 1})).addBoth(finished)

        tick, offered = 0.01, [0]
        per_tick = args.rate * tick
        owed = [0.0]

        def pump() -> None:
            owed[0] += per_tick
            while owed[0] >= 1:
                owed[0] -= 1
                send(offered[0] % args.feeds)
                offered[0] += 1

        loop = LoopingCall(pump)
        started = time.perf_counter()
        loop.start(tick)
        await deferLater(reactor, args.seconds, lambda: None)
        loop.stop()
        sent_for = time.perf_counter() - started
        while in_flight[0]:
            await deferLater(reactor, 0.05, lambda: None)
        drained = time.perf_counter() - started
        await deferLater(reactor, 1.0, lambda: None)
        rss_after = tree_rss(daemon.proc.pid)
        latencies = latencies_of(reader, out)
        daemon.stop()
        doc = read_snapshot(snapshot) or {"entries": []}
        stored = {e["id"] for e in doc["entries"]}
        lost = len(acked - stored)
        return {
            "feeds": args.feeds,
            "rate_asked": args.rate,
            "seconds": args.seconds,
            "offered": offered[0],
            "offered_per_s": offered[0] / sent_for,
            "skipped_in_flight_cap": skipped[0],
            "answered": dict(codes),
            "accepted_per_s": codes[202] / drained,
            "drained_s": drained,
            "idle_front_p50_ms": percentile(idle, 50),
            "idle_front_p99_ms": percentile(idle, 99),
            "front_p50_ms": percentile(latencies, 50),
            "front_p99_ms": percentile(latencies, 99),
            "front_max_ms": max(latencies, default=0.0),
            "front_requests": len(latencies),
            "acked_entries": len(acked),
            "stored_entries": len(stored),
            "lost": lost,
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "loadavg": os.getloadavg(),
        }
    finally:
        daemon.cleanup()
        await port.stopListening()
        await pool.closeCachedConnections()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--feeds", type=int, default=50)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--entries", type=int, default=20)
    parser.add_argument("--readers", type=float, default=10)
    parser.add_argument("--max-in-flight", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=10)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}")
    result: dict[str, Any] = {}

    def go() -> Deferred[None]:
        d = ensureDeferred(run(args))
        d.addCallback(result.update)
        d.addErrback(lambda f: (f.printTraceback(), None)[1])
        d.addBoth(lambda _: reactor.stop())
        return d

    reactor.callWhenRunning(go)
    reactor.run()
    if not result:
        sys.exit(1)
    rows = [[k, f"{v:.1f}" if isinstance(v, float) else str(v)] for k, v in result.items()]
    print(table(["figure", "value"], rows))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
