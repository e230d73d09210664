"""Cost of posts shared by many feeds (dedupe groups) in the ``Store``, on the reactor thread.

Every entry of a group has the same link (after normalization), so they are one river item
shown under one copy, with "Also in: ..." naming the other feeds. Issue 19 (item 7) found
the group re-sorted and rebuilt on every insert: 20 feeds x 200 entries sharing one link
held the reactor 0.59 s. Scenarios (each fetch is one ``record_fetch`` of one feed):

- ``one link, 20 feeds x 200``: the issue's case (4,000 entries, one group);
- ``one link, 50 feeds x 200``: 10,000 entries, one group;
- ``one link, 10,000 feeds x 1``: 10,000 entries from 10,000 feeds, one group (the
  "Also in" list itself has 9,999 feeds);
- ``2,000 links x 5 feeds``: 10,000 entries in 2,000 groups (50 feeds of 200 entries,
  each post carried by 5 feeds);
- ``edits, one link, 50 feeds x 200``: every entry of the first scenario at 10,000 edited
  once more (title changed), feed by feed.

Reported: total seconds of all the fetches, the longest single ``record_fetch`` (the
reactor is blocked that long), and the first ``river_view()`` plus its deduped items
after the fetches (what a page render asks for).

Run: ``.venv/bin/python benchmarks/store_groups.py``; JSON goes to
``benchmarks/results/store_groups.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from benchutil import table

from planet.model import Entry, FetchResult, ParsedFeed
from planet.store import Store
from planet.testing import record_fetch

NOW = datetime(2026, 6, 24, tzinfo=timezone.utc)


def make_entry(feed: str, n: int, link: str, title: str = "t") -> Entry:
    when = NOW - timedelta(minutes=n)
    return Entry(
        id=f"{feed}#{n}",
        feed_url=feed,
        title=title,
        link=link,
        author="",
        content="<p>c</p>",
        published=when,
        updated=when,
        first_seen=NOW,
    )


def feed_url(i: int) -> str:
    return f"http://feed{i}.example/rss"


def fetch(store: Store, url: str, entries: Sequence[Entry], at: datetime) -> float:
    result = FetchResult(url=url, final_url=url, status=200, body=b"x")
    parsed = ParsedFeed(title="T", link=url, entries=tuple(entries))
    started = time.perf_counter()
    record_fetch(store, url, result, parsed, at)
    return time.perf_counter() - started


def scenario(
    feeds: int, per_feed: int, link_of: Callable[[int, int], str], edits: bool = False
) -> dict[str, Any]:
    store = Store(max_entries_per_feed=0)
    if hasattr(store, "max_bytes_per_feed"):  # no byte bound either (older stores had none)
        store.max_bytes_per_feed = 0
    times = []
    for i in range(feeds):
        url = feed_url(i)
        entries = [make_entry(url, n, link_of(i, n)) for n in range(per_feed)]
        times.append(fetch(store, url, entries, NOW + timedelta(seconds=i)))
    if edits:
        times = []
        for i in range(feeds):
            url = feed_url(i)
            entries = [make_entry(url, n, link_of(i, n), title="edited") for n in range(per_feed)]
            times.append(fetch(store, url, entries, NOW + timedelta(hours=1)))
    started = time.perf_counter()
    view = store.river_view()
    items = sum(1 for _ in view.items(True))
    render = time.perf_counter() - started
    return {
        "entries": store.entry_count(),
        "fetches": len(times),
        "total_s": sum(times),
        "max_fetch_ms": max(times) * 1000,
        "view_ms": render * 1000,
        "items": items,
    }


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "one link, 20 feeds x 200": lambda: scenario(20, 200, lambda i, n: "http://post.example/1"),
    "one link, 50 feeds x 200": lambda: scenario(50, 200, lambda i, n: "http://post.example/1"),
    "one link, 10,000 feeds x 1": lambda: scenario(10_000, 1, lambda i, n: "http://post.example/1"),
    "2,000 links x 5 feeds": lambda: scenario(
        50, 200, lambda i, n: f"http://post.example/{(i // 5) * 200 + n}"
    ),
    "edits, one link, 50 feeds x 200": lambda: scenario(
        50, 200, lambda i, n: "http://post.example/1", edits=True
    ),
}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="run only the scenarios whose name contains this")
    args = ap.parse_args(argv)
    rows, results = [], {}
    for name, run in SCENARIOS.items():
        if args.only and args.only not in name:
            continue
        r = run()
        results[name] = r
        rows.append(
            [
                name,
                f"{r['entries']:,}",
                f"{r['fetches']:,}",
                f"{r['total_s']:.3f}",
                f"{r['max_fetch_ms']:.1f}",
                f"{r['view_ms']:.1f}",
                f"{r['items']:,}",
            ]
        )
        print(f"{name}: done", flush=True)
    print(
        table(
            [
                "scenario",
                "entries",
                "fetches",
                "all fetches s",
                "max fetch ms",
                "first view ms",
                "items",
            ],
            rows,
        )
    )
    out = os.path.join(os.path.dirname(__file__), "results", "store_groups.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"loadavg": os.getloadavg(), "results": results}, f, indent=2)
    print(f"JSON written to {out}")


if __name__ == "__main__":
    main()
