"""Parse a batch of feeds with each parser strategy under a real reactor; measure lag.

Strategies (see ``planet.workers``):

* ``inline``: ``inline_parser``, on the reactor thread;
* ``thread``: ``ThreadParser(reactor, limit=2)``, the reactor's thread pool;
* ``process``: ``ProcessParser(reactor, workers=cores)``, worker processes over pipes,
  warmed up first.

Feeds are handed to the parser the way the daemon's fetcher would: one per reactor
iteration (``callLater(0)``), at most ``--window`` (default 16, the daemon's
``max_concurrency``) outstanding. So ``inline`` parses one feed per iteration (its best
case: a burst of fetches completing together would block for several feeds at once).
Meanwhile a ``LoopingCall`` every 5 ms records when it actually ran: reactor lag is the gap
between two ticks minus 5 ms (max and 99th percentile).

Then a per-feed cost breakdown on the reactor-less main thread: ``parse_feed`` vs bare
``feedparser.parse(..., sanitize_html=False, resolve_relative_uris=False)`` (what
``parse_feed`` calls) vs ``feedparser.parse`` with its defaults (its own sanitizer and
relative-URI resolver on), plus our nh3 ``sanitize_html`` alone over the entry contents.

Run: ``.venv/bin/python benchmarks/parse_pool.py --feeds 200``; JSON goes to
``benchmarks/results/parse_pool.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Any

import feedparser
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import deferLater, react

from planet.model import ParsedFeed
from planet.parse import parse_feed
from planet.sanitize import sanitize_html
from planet.workers import ProcessParser, ThreadParser, inline_parser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import feedgen  # noqa: E402
from benchutil import LagMonitor, table  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JSON = os.path.join(HERE, "results", "parse_pool.json")
FETCHED_AT = datetime(2026, 6, 2, tzinfo=timezone.utc)

Feed = tuple[str, str, bytes]  # kind, url, body
ParserFn = Callable[[bytes, str, datetime, "str | None", int], "Deferred[ParsedFeed]"]


# --- driving a parser ----------------------------------------------------------------


def run_batch(
    reactor: Any, parser: ParserFn, feeds: Sequence[Feed], n_entries: int, window: int
) -> Deferred[int]:
    """Feed ``feeds`` to ``parser`` one per reactor iteration, ``window`` at most in flight.

    Fires with the number of entries parsed.
    """
    done: Deferred[int] = Deferred()
    pending = iter(feeds)
    state = {"inflight": 0, "finished": 0, "entries": 0, "scheduled": False}

    def schedule() -> None:
        if not state["scheduled"]:
            state["scheduled"] = True
            reactor.callLater(0, pump)

    def pump() -> None:
        state["scheduled"] = False
        if state["inflight"] >= window:
            return
        item = next(pending, None)
        if item is None:
            return
        kind, url, body = item
        state["inflight"] += 1
        d = parser(body, url, FETCHED_AT, feedgen.CONTENT_TYPES[kind], n_entries)
        d.addCallbacks(finished, failed)
        schedule()

    def finished(parsed: ParsedFeed) -> None:
        if parsed.error is not None:
            raise RuntimeError(f"feed did not parse: {parsed.error}")
        state["inflight"] -= 1
        state["finished"] += 1
        state["entries"] += len(parsed.entries)
        if state["finished"] == len(feeds):
            done.callback(state["entries"])
        else:
            schedule()

    def failed(failure: Any) -> None:
        if not done.called:
            done.errback(failure)

    schedule()
    return done


async def warm_up(parser: ParserFn, feeds: Sequence[Feed], n_entries: int) -> None:
    """Parse ``feeds`` all at once (spawns every pool worker, fills per-process caches)."""
    ds = [
        parser(body, url, FETCHED_AT, feedgen.CONTENT_TYPES[kind], n_entries)
        for kind, url, body in feeds
    ]
    await DeferredList(ds, fireOnOneErrback=True, consumeErrors=True)


async def measure_strategy(
    reactor: Any,
    name: str,
    parser: ParserFn,
    feeds: Sequence[Feed],
    args: argparse.Namespace,
) -> dict[str, Any]:
    gc.collect()
    await deferLater(reactor, 0.05, lambda: None)
    monitor = LagMonitor(reactor, args.tick / 1000)
    monitor.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    entries = await run_batch(reactor, parser, feeds, args.entries, args.window)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    lag = monitor.stop()
    if entries != len(feeds) * args.entries:
        raise RuntimeError(f"{name}: {entries} entries parsed, expected more")
    return {
        "strategy": name,
        "wall_s": wall,
        "feeds_per_s": len(feeds) / wall,
        "ms_per_feed": wall / len(feeds) * 1000,
        "main_cpu_s": cpu,
        "entries": entries,
        **lag,
    }


async def idle_baseline(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    monitor = LagMonitor(reactor, args.tick / 1000)
    monitor.start()
    await deferLater(reactor, 1.0, lambda: None)
    return {"strategy": "idle (1 s)", **monitor.stop()}


# --- per-feed cost breakdown -----------------------------------------------------------


def _headers(kind: str, url: str) -> dict[str, str]:
    return {"content-location": url, "content-type": feedgen.CONTENT_TYPES[kind]}


def breakdown(feeds: Sequence[Feed], n_entries: int, repeats: int) -> dict[str, dict[str, float]]:
    """Per-feed ms (best of ``repeats``), mean over feeds, overall and per kind.

    The four measurements of a feed are interleaved within each repeat, so that a burst of
    load from elsewhere hits them alike; a full collection runs before each feed.
    """
    rows: dict[str, list[tuple[str, float]]] = {
        "parse_feed": [],
        "feedparser bare": [],
        "nh3 sanitize_html": [],
        "feedparser defaults": [],
    }
    for kind, url, body in feeds:
        headers = _headers(kind, url)
        ctype = feedgen.CONTENT_TYPES[kind]

        def ours(body: bytes = body, url: str = url, ctype: str = ctype) -> None:
            parse_feed(body, url, FETCHED_AT, ctype, n_entries)

        def bare(body: bytes = body, headers: dict[str, str] = headers) -> Any:
            return feedparser.parse(
                body, response_headers=headers, sanitize_html=False, resolve_relative_uris=False
            )

        def defaults(body: bytes = body, headers: dict[str, str] = headers) -> None:
            feedparser.parse(body, response_headers=headers)

        contents = []
        for e in bare().entries:
            c = (e.get("content") or [e.get("summary_detail") or {}])[0]
            contents.append((c.get("value", ""), c.get("base") or url))

        def sanitize(contents: list[tuple[str, str]] = contents) -> None:
            for value, base in contents:
                sanitize_html(value, base)

        measures = {
            "parse_feed": ours,
            "feedparser bare": bare,
            "nh3 sanitize_html": sanitize,
            "feedparser defaults": defaults,
        }
        best = dict.fromkeys(measures, float("inf"))
        gc.collect()
        for _ in range(repeats):
            for name, f in measures.items():
                t0 = time.perf_counter()
                f()
                best[name] = min(best[name], (time.perf_counter() - t0) * 1000)
        for name, ms in best.items():
            rows[name].append((kind, ms))

    def mean(name: str, kind: str | None) -> float:
        values = [ms for k, ms in rows[name] if kind is None or k == kind]
        return statistics.fmean(values) if values else 0.0

    out: dict[str, dict[str, float]] = {}
    for name in rows:
        out[name] = {k or "all": mean(name, k) for k in (None, *feedgen.KINDS)}
    cols = out["parse_feed"].keys()
    out["planet's own work (parse_feed - bare)"] = {
        c: out["parse_feed"][c] - out["feedparser bare"][c] for c in cols
    }
    out["feedparser sanitize+resolve (defaults - bare)"] = {
        c: out["feedparser defaults"][c] - out["feedparser bare"][c] for c in cols
    }
    return out


# --- output --------------------------------------------------------------------------


def summarize(rounds: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per strategy: medians over rounds, plus the best wall time and the worst lag."""
    out = []
    for i, first in enumerate(rounds[0]):
        runs = [r[i] for r in rounds]
        row: dict[str, Any] = {"strategy": first["strategy"], "rounds": len(runs)}
        for key in ("wall_s", "feeds_per_s", "ms_per_feed", "main_cpu_s"):
            if key in first:
                row[key] = statistics.median(r[key] for r in runs)
        if "wall_s" in first:
            row["best_wall_s"] = min(r["wall_s"] for r in runs)
        row["max_lag_ms"] = statistics.median(r["max_lag_ms"] for r in runs)
        row["worst_max_lag_ms"] = max(r["max_lag_ms"] for r in runs)
        row["p99_lag_ms"] = statistics.median(r["p99_lag_ms"] for r in runs)
        row["lags_over_50ms"] = sum(r["lags_over_50ms"] for r in runs)
        out.append(row)
    return out


def strategy_table(summary: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in summary:
        if "wall_s" in r:
            timing = [
                f"{r['wall_s']:.2f}",
                f"{r['best_wall_s']:.2f}",
                f"{r['feeds_per_s']:.1f}",
                f"{r['ms_per_feed']:.1f}",
            ]
            cpu = f"{r['main_cpu_s']:.2f}"
        else:
            timing, cpu = ["-"] * 4, "-"
        rows.append(
            [
                r["strategy"],
                *timing,
                f"{r['max_lag_ms']:.1f}",
                f"{r['worst_max_lag_ms']:.1f}",
                f"{r['p99_lag_ms']:.1f}",
                str(r["lags_over_50ms"]),
                cpu,
            ]
        )
    headers = [
        "strategy",
        "wall s",
        "best s",
        "feeds/s",
        "ms/feed",
        "max lag ms",
        "worst ms",
        "p99 lag ms",
        "lags>50ms",
        "main CPU s",
    ]
    return table(headers, rows)


def breakdown_table(bd: dict[str, dict[str, float]]) -> str:
    cols = ["all", *feedgen.KINDS]
    rows = [[name, *(f"{vals[c]:.2f}" for c in cols)] for name, vals in bd.items()]
    return table(["per feed, ms (best of N, mean over feeds)", *cols], rows)


# --- main ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=200, help="feeds in the batch (default 200)")
    ap.add_argument("--entries", type=int, default=20, help="entries per feed (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window", type=int, default=16, help="parses in flight (default 16)")
    ap.add_argument("--thread-limit", type=int, default=2)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--tick", type=float, default=5.0, help="lag probe interval, ms")
    ap.add_argument("--strategies", default="inline,thread,process", help="comma-separated subset")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of all strategies (default 3)")
    ap.add_argument("--breakdown", type=int, default=30, help="feeds in the breakdown (0: skip)")
    ap.add_argument("--repeats", type=int, default=3, help="breakdown repeats per feed")
    ap.add_argument("--json", default=DEFAULT_JSON, help="where to write the results")
    return ap.parse_args(argv)


async def main(reactor: Any, *argv: str) -> None:
    args = parse_args(argv)
    load_before = os.getloadavg()
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    print(f"Generating {args.feeds} feeds x {args.entries} entries ...", flush=True)
    feeds = feedgen.make_feeds(args.feeds, args.entries, args.seed)
    warm = feedgen.make_feeds(4 * args.workers, args.entries, args.seed + 100_000)
    sizes = [len(body) for _, _, body in feeds]
    print(
        f"{len(feeds)} feeds, {sum(sizes) / 1e6:.1f} MB, mean {statistics.fmean(sizes) / 1024:.1f}"
        f" KB (min {min(sizes) / 1024:.1f}, max {max(sizes) / 1024:.1f}); "
        f"{os.cpu_count()} cores, window {args.window}; load average before: "
        f"{load_before[0]:.2f}",
        flush=True,
    )
    if load_before[0] > 0.5:
        print("  (the machine is busy: other processes compete for the cores)", flush=True)
    for kind, url, body in warm[:3]:  # imports, nh3 cleaner cache of the main process
        parse_feed(body, url, FETCHED_AT, feedgen.CONTENT_TYPES[kind], args.entries)

    parsers: dict[str, tuple[str, ParserFn]] = {}
    closers = []
    warmup: dict[str, float] = {}
    for name in strategies:
        if name == "inline":
            parsers[name] = ("inline", inline_parser)
        elif name == "thread":
            tp = ThreadParser(reactor, limit=args.thread_limit)
            await warm_up(tp, warm, args.entries)
            parsers[name] = (f"thread (limit {args.thread_limit})", tp)
            closers.append(tp.close)
        elif name == "process":
            pp = ProcessParser(reactor, workers=args.workers)
            t0 = time.perf_counter()
            await warm_up(pp, warm, args.entries)
            warmup[name] = time.perf_counter() - t0
            parsers[name] = (f"process ({args.workers} workers)", pp)
            closers.append(pp.close)
        else:
            raise SystemExit(f"unknown strategy {name!r}")

    # Rounds interleave the strategies, so that load from elsewhere hits them alike.
    rounds: list[list[dict[str, Any]]] = []
    for i in range(args.rounds):
        print(f"  round {i + 1}/{args.rounds}: idle, {', '.join(parsers)} ...", flush=True)
        results = [await idle_baseline(reactor, args)]
        for label, parser in parsers.values():
            results.append(await measure_strategy(reactor, label, parser, feeds, args))
        rounds.append(results)
    for close in closers:
        await close()
    summary = summarize(rounds)

    print()
    print(
        f"Parse {args.feeds} feeds x {args.entries} entries, {args.rounds} rounds "
        f"(median of rounds; best wall, worst max lag); lag probe every {args.tick:g} ms"
    )
    print(strategy_table(summary))
    if "process" in warmup:
        print(f"(process pool start + warm-up, not timed above: {warmup['process']:.2f} s)")

    bd: dict[str, dict[str, float]] = {}
    if args.breakdown:
        sample = feeds[: args.breakdown]
        print(f"\nBreakdown over {len(sample)} feeds, best of {args.repeats} ...", flush=True)
        bd = breakdown(sample, args.entries, args.repeats)
        print(breakdown_table(bd))

    doc = {
        "benchmark": "parse_pool",
        "when": datetime.now(timezone.utc).isoformat(),
        "machine": {
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "reactor": type(reactor).__module__,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "versions": {p: version(p) for p in ("feedparser", "nh3", "twisted")},
        },
        "args": vars(args),
        "feeds": {
            "count": len(feeds),
            "entries_each": args.entries,
            "bytes_total": sum(sizes),
            "bytes_mean": statistics.fmean(sizes),
            "bytes_min": min(sizes),
            "bytes_max": max(sizes),
        },
        "strategies": summary,
        "rounds": rounds,
        "pool_warmup_s": warmup,
        "breakdown_ms_per_feed": bd,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"\nJSON written to {os.path.relpath(args.json)}")


if __name__ == "__main__":
    react(main, sys.argv[1:])
