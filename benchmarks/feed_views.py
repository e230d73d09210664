"""``render.feed_views`` with many subscriptions sharing one display name (issue 19, item 7).

Every render of a page (the sidebar) and every ``/feeds/<slug>`` request asks for the feed
views, on the reactor thread. N subscriptions that show the same name (N copies of a feed
titled "News", or N operator names that slugify alike) each need a distinct slug. Before
issue 19 the slug for the k-th of them was found by trying ``news-2``, ``news-3``, ...
from 2 every time: N²/2 set lookups and string formats (6.3 s at 8,000).

Prints, for each N: seconds per call (best of ``--repeat``), for all N sharing one name and,
for comparison, N distinct names. JSON goes to ``benchmarks/results/feed_views.json``.

Run: ``.venv/bin/python benchmarks/feed_views.py [--sizes 2000 8000 10000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from planet.config import parse_config
from planet.model import FeedState
from planet.render import feed_views

RESULTS = Path(__file__).resolve().parent / "results"


def setup(n: int, same: bool) -> tuple[object, dict[str, FeedState]]:
    sections = "".join(f"[http://h{i}.example/feed]\n\n" for i in range(n))
    config = parse_config("[Planet]\nname = bench\n\n" + sections, "bench.ini")
    states = {
        f"http://h{i}.example/feed": FeedState(
            url=f"http://h{i}.example/feed", title="News" if same else f"News {i}"
        )
        for i in range(n)
    }
    return config, states


def measure(n: int, same: bool, repeat: int) -> float:
    config, states = setup(n, same)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        views = feed_views(config, states)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - started)
    assert len({v.slug for v in views.values()}) == n
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'subscriptions':>13} {'one name s':>11} {'distinct s':>11}")
    rows = []
    for n in args.sizes:
        same = measure(n, True, args.repeat)
        distinct = measure(n, False, args.repeat)
        rows.append({"subscriptions": n, "one_name_s": same, "distinct_s": distinct})
        print(f"{n:>13} {same:>11.4f} {distinct:>11.4f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "feed_views.json"
    out.write_text(json.dumps({"rows": rows, "loadavg": os.getloadavg()}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
