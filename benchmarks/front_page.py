"""The front page of a large planet: its bytes, render time and idle ``wrk`` (issue 15).

For each ``--feeds`` N: a store of N feeds with ``--entries`` entries each
(``snapshot_stall.build_store``: sanitized blog-like HTML, ~3% of feeds failing), the
default config (60 items a page). Then:

- **bytes**: ``/`` as rendered, and gzipped (as sent to a client asking for gzip);
- **render ms**: ``RiverJob.render()`` of page 1, median and max of ``--repeat`` renders,
  each with a fresh pager (as after a change to the store: the river is paged again);
  ``feed_views ms``, made once per shown version (in the first render's thread since
  ``renderjobs.LazyFeedViews``), for reference;
- **wrk**: ``PlanetWeb`` served on loopback by this process's reactor (renders in its
  thread pool, the heap frozen once the store is built: as in the daemon), ``/`` warmed
  up, then ``wrk -t2 -c32 -d{--wrk-seconds}s`` on it idle: requests/s and p99, plain and
  with ``Accept-Encoding: gzip``.

JSON goes to ``benchmarks/results/front_page.json``.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import treq
from cycle import parse_wrk
from feedgen import feed_url
from snapshot_stall import NOW, build_store
from twisted.internet import defer, task
from twisted.internet.threads import deferToThread

from planet import render
from planet.config import Config, Subscription
from planet.renderjobs import LazyFeedViews, RiverJob, RiverPager, river_source
from planet.web import PlanetWeb

RESULTS = Path(__file__).resolve().parent / "results"


def render_times(config: Config, store: Any, repeat: int) -> dict[str, Any]:
    started = time.perf_counter()
    feeds = render.feed_views(config, store.feed_states())
    lazy = LazyFeedViews.ready(config, feeds)
    views_ms = (time.perf_counter() - started) * 1e3
    times, body = [], b""
    for _ in range(repeat):
        source = river_source(store, config, None, render.MAX_PAGE_BYTES)
        job = RiverJob(RiverPager(), source, 1, None, lazy, NOW, NOW)
        started = time.perf_counter()
        body = job.render()
        times.append((time.perf_counter() - started) * 1e3)
    return {
        "bytes": len(body),
        "gzip_bytes": len(gzip.compress(body, 6)),
        "sidebar_items": body.count(b'class="feed-page"'),
        "render_ms_median": statistics.median(times),
        "render_ms_max": max(times),
        "render_ms_min": min(times),
        "feed_views_ms": views_ms,
    }


def run_wrk(url: str, seconds: int, gzipped: bool) -> dict[str, Any]:
    cmd = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency"]
    if gzipped:
        cmd += ["-H", "Accept-Encoding: gzip"]
    out = subprocess.run(cmd + [url], capture_output=True, check=True, text=True).stdout
    result = parse_wrk(out)
    if "requests_per_s" not in result:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    return result


async def serve_and_wrk(reactor: Any, config: Config, store: Any, seconds: int) -> dict[str, Any]:
    web = PlanetWeb(config=config, store=store, clock=reactor, run_in_thread=deferToThread)
    port = reactor.listenTCP(0, web.site(), interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}/"
    try:
        response = await treq.get(url)
        body = await response.content()
        assert response.code == 200, response.code
        out = {"served_bytes": len(body)}
        for gzipped in (False, True):
            name = "wrk_gzip" if gzipped else "wrk"
            out[name] = await deferToThread(run_wrk, url, seconds, gzipped)
        return out
    finally:
        await port.stopListening()


async def main(reactor: Any, args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}")
    rows = []
    for n in args.feeds:
        started = time.perf_counter()
        store = build_store(n * args.entries, n, seed=1, pool_size=200)
        subs = tuple(Subscription(url=feed_url(i)) for i in range(n))
        config = Config(path="bench.ini", name="Front page bench", subscriptions=subs)
        built = time.perf_counter() - started
        # As the daemon does (planet.heap): the long-lived heap frozen, so that a full
        # collection over 200,000 entries does not land in the latencies measured.
        gc.collect()
        gc.freeze()
        print(f"{n} feeds, {n * args.entries} entries: built in {built:.1f} s")
        row: dict[str, Any] = {"feeds": n, "entries": n * args.entries}
        row.update(render_times(config, store, args.repeat))
        if args.wrk_seconds:
            row.update(await serve_and_wrk(reactor, config, store, args.wrk_seconds))
        row["loadavg_after"] = os.getloadavg()
        rows.append(row)
        del store, config
        gc.unfreeze()
        gc.collect()
        print(json.dumps(row, indent=1))
    header = f"{'feeds':>6} {'bytes':>9} {'gzip':>8} {'li':>6} {'render med':>10} {'max':>7}"
    header += f" {'req/s':>8} {'p99 ms':>7} {'gz req/s':>8} {'gz p99':>7}"
    print(header)
    for r in rows:
        w, g = r.get("wrk", {}), r.get("wrk_gzip", {})
        print(
            f"{r['feeds']:>6} {r['bytes']:>9} {r['gzip_bytes']:>8} {r['sidebar_items']:>6} "
            f"{r['render_ms_median']:>10.1f} {r['render_ms_max']:>7.1f} "
            f"{w.get('requests_per_s', 0):>8.0f} {w.get('p99_ms', 0):>7.1f} "
            f"{g.get('requests_per_s', 0):>8.0f} {g.get('p99_ms', 0):>7.1f}"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    RESULTS.mkdir(exist_ok=True)
    out = {"loadavg_before": load_before, "rows": rows}
    (RESULTS / "front_page.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--entries", type=int, default=20, help="entries per feed")
    parser.add_argument("--repeat", type=int, default=15, help="renders timed per size")
    parser.add_argument("--wrk-seconds", type=int, default=10, help="0: no wrk")
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, args)))
