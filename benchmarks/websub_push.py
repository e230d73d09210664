"""WebSub push benchmark: a hub flooding ``twistd planet`` (issue 14).

PYTHONPATH=src .venv/bin/python benchmarks/websub_push.py [--feeds 50] [--rate 1000]
    [--seconds 30] [--entries 20] [--readers 20] [--connections 50]

This process is a publisher and its hub (tests/websubhub.py's Hub on loopback TCP): the
daemon fetches ``--feeds`` feeds whose ``Link`` header names the hub, subscribes, and the
hub verifies each subscription. Then ``wrk`` (websub_push.lua, one connection per thread)
pushes ``--rate`` signed bodies a second over the subscriptions for ``--seconds``: each body
is an ``--entries``-entry feed whose newest entry is new, signed with the subscription's
secret; a push answered 429 (its subscription over its rate or queue) is sent again, as a
hub retries. Meanwhile a reader process GETs ``/`` ``--readers`` times a second (first for
``--idle-seconds`` with no pushes: the machine's baseline). Printed: pushes offered and
answered by status, the pushes' own latency, the front page's p50/p99, entries acknowledged
(202) but missing from the snapshot written at SIGTERM (lost), and the RSS of the daemon and
its parse workers before, at peak (sampled every 0.25 s) and after.
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
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from benchutil import percentile, table  # noqa: E402
from feeds import Item, atom  # noqa: E402
from process import Daemon, read_snapshot  # noqa: E402
from proctree import RssSampler, descendants, rss_bytes  # noqa: E402
from treq.client import HTTPClient  # noqa: E402
from twisted.internet import reactor as _reactor  # noqa: E402
from twisted.internet.defer import Deferred, ensureDeferred  # noqa: E402
from twisted.internet.task import deferLater  # noqa: E402
from twisted.web.client import Agent, HTTPConnectionPool  # noqa: E402
from twisted.web.resource import Resource  # noqa: E402
from twisted.web.server import Request, Site  # noqa: E402
from websubhub import Hub  # noqa: E402

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


def tree_mb(pid: int) -> tuple[float, float]:
    """(the daemon's RSS, its workers' RSS in all), MB."""
    return rss_bytes(pid) / 1e6, sum(rss_bytes(kid) for kid in descendants(pid)) / 1e6


def read_wrk_out(path: Path) -> dict[str, Any]:
    """What websub_push.lua wrote: answers by status, acknowledged entry ids, totals."""
    result: dict[str, Any] = {"codes": Counter(), "acked": set()}
    if not path.exists():
        return result
    for line in path.read_text().splitlines():
        kind, *rest = line.split()
        if kind == "code":
            result["codes"][int(rest[0])] += int(rest[1])
        elif kind == "acked":
            result["acked"].add(rest[0])
        else:
            result[kind] = float(rest[0])
    return result


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
        rss_before = tree_mb(daemon.proc.pid)
        targets = sorted(hub.subscriptions.values(), key=lambda s: int(s.topic.rsplit("/", 1)[1]))

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

        plan = work / "plan.txt"
        plan.write_text(
            "".join(
                f"{urlsplit(sub.callback).path} {sub.secret} {int(sub.topic.rsplit('/', 1)[1])}\n"
                for sub in targets
            )
        )
        out_file = work / "wrk.out"
        threads = min(args.connections, args.feeds)
        command = ["wrk", f"-t{threads}", f"-c{threads}", f"-d{int(args.seconds)}s"]
        command += ["--timeout", "30s", "-s", str(HERE / "websub_push.lua"), daemon.url("/")]
        command += ["--", str(plan), str(args.entries), str(args.rate), str(out_file), str(threads)]
        sampler = RssSampler(daemon.proc.pid, interval=0.25).start()
        started = time.perf_counter()
        wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        while wrk.poll() is None:
            await deferLater(reactor, 0.1, lambda: None)
        drained = time.perf_counter() - started
        wrk_text = wrk.stdout.read().decode() if wrk.stdout else ""
        pushed = read_wrk_out(out_file)
        if wrk.returncode or not pushed["codes"]:
            raise RuntimeError(f"wrk failed ({wrk.returncode}):\n{wrk_text}")
        codes = pushed["codes"]
        acked = pushed["acked"]
        await deferLater(reactor, 1.0, lambda: None)
        rss_after = tree_mb(daemon.proc.pid)
        peak = sampler.stop()
        latencies = latencies_of(reader, out)
        daemon.stop()
        doc = read_snapshot(snapshot) or {"entries": []}
        stored = {e["id"] for e in doc["entries"]}
        lost = len(acked - stored)
        return {
            "feeds": args.feeds,
            "rate_asked": args.rate,
            "seconds": args.seconds,
            "connections": threads,
            "offered": pushed["requests"],
            "offered_per_s": pushed["requests"] / (pushed["duration_us"] / 1e6),
            "answered": dict(codes),
            "push_socket_errors": pushed["socket_errors"],
            "accepted_per_s": codes.get(202, 0) / drained,
            "push_p50_ms": pushed["push_p50_ms"],
            "push_p99_ms": pushed["push_p99_ms"],
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
            "rss_before_mb": rss_before,
            "rss_after_mb": rss_after,
            "peak_rss_tree_mb": peak["peak_total_mb"],
            "peak_rss_daemon_mb": peak["peak_main_mb"],
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
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--entries", type=int, default=20)
    parser.add_argument("--readers", type=float, default=20)
    parser.add_argument(
        "--connections", type=int, default=50, help="wrk threads, one connection each"
    )
    parser.add_argument("--idle-seconds", type=float, default=10)
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}")
    result: dict[str, Any] = {}

    def go() -> Deferred[None]:
        d = ensureDeferred(run(args))
        d.addCallback(result.update)
        d.addErrback(lambda f: print(f.getTraceback()))
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
