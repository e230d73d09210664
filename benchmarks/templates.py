"""An operator's template against the default theme: the render of a 60-item front page.

The issue's goal: a template render of 60 items at most 1.5x the default theme's render
time. Both render the same river (60 entries of 20 feeds, ~3 KB of HTML each) through the
jobs the web view hands its render threads: the default theme's ``RiverJob`` (the river
page) and a ``TemplateJob`` of Venus's ``classic_fancy/index.html.tmpl`` (htmltmpl compiled
to Jinja2), plus planet's own default theme as a template (``themes/default/index.html.j2``).

Prints the best and median milliseconds per render and the ratio to the default theme; JSON
goes to ``benchmarks/results/templates.json``.

Run: ``.venv/bin/python benchmarks/templates.py [--repeat 200] [--venus DIR]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from planet.config import load_config
from planet.model import Entry, FetchResult, ParsedFeed
from planet.render import feed_views
from planet.renderjobs import LazyFeedViews, RiverJob, RiverPager, river_source
from planet.store import Store
from planet.testing import record_fetch
from planet.themeweb import TemplateFailures, TemplateJob

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
VENUS = ROOT.parent / "shared" / "corpus" / "templates" / "venus" / "themes"
DEFAULT_THEME = ROOT / "src" / "planet" / "themes" / "default"
NOW = datetime(2026, 6, 24, 9, 0, tzinfo=timezone.utc)
FEEDS = 20
ITEMS = 60


def planet(tmp: Path, templates: str, directories: str) -> tuple[object, Store]:
    sections = "".join(f"[http://h{i}.example/feed]\nname = Feed {i}\n\n" for i in range(FEEDS))
    ini = tmp / "planet.ini"
    ini.write_text(
        "[Planet]\nname = Bench\nlink = http://planet.example/\n"
        f"template_files = {templates}\ntemplate_directories = {directories}\n\n" + sections
    )
    config = load_config(str(ini))
    store = Store(max_entries_per_feed=0)
    sentence = "Some <em>text</em> of an entry, with <a href='http://x.example/'>a link</a>. "
    body = f"<p>{sentence * 40}</p>"
    for i in range(FEEDS):
        url = f"http://h{i}.example/feed"
        entries = []
        for n in range(i, ITEMS, FEEDS):
            when = NOW - timedelta(hours=3 * n)
            link = f"http://h.example/{n}"
            entries.append(
                Entry(f"urn:{n}", url, f"Post {n}: a title", link, "Author", body, when, when, when)
            )
        result = FetchResult(url=url, final_url=url, status=200, body=b"")
        parsed = ParsedFeed(title=f"Feed {i} title", link=f"http://h{i}.example/", entries=entries)
        record_fetch(store, url, result, parsed, NOW)
    return config, store


def timings(renders: dict[str, Callable[[], bytes]], repeat: int) -> dict[str, list[float]]:
    """Seconds per render of each, the renders taken in turn (a busy machine slows them
    alike rather than whichever ran during the busy spell)."""
    out: dict[str, list[float]] = {name: [] for name in renders}
    for render in renders.values():
        render()
    for _ in range(repeat):
        for name, render in renders.items():
            started = time.perf_counter()
            render()
            out[name].append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--venus", type=Path, default=VENUS)
    args = parser.parse_args()
    renders: dict[str, Callable[[], bytes]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "venus classic_fancy (.tmpl)": (
                "index.html.tmpl",
                f"{args.venus / 'classic_fancy'} {args.venus / 'common'}",
            ),
            "default theme as a template (.j2)": ("index.html.j2", str(DEFAULT_THEME)),
        }
        for name, (templates, directories) in cases.items():
            config, store = planet(Path(tmp), templates, directories)
            feeds = feed_views(config, store.feed_states())
            lazy = LazyFeedViews.ready(config, feeds)
            titles = {u: s.title for u, s in store.feed_states().items()}
            pager = RiverPager()
            source = river_source(store, config, None, 0)
            if not renders:
                river = RiverJob(pager, source, 1, None, lazy, NOW, NOW)
                assert len(pager.page(source, 1)[0]) == ITEMS
                renders["default theme (river page)"] = river.render
            (template,) = config.theme.templates  # type: ignore[attr-defined]
            job = TemplateJob(template, pager, source, lazy, titles, NOW, TemplateFailures())
            renders[name] = job.render
        results = timings(renders, args.repeat)
    base = min(results["default theme (river page)"])
    base_median = statistics.median(results["default theme (river page)"])
    print(f"render of {ITEMS} items, {args.repeat} runs each (ms per render)")
    print(f"{'':38} {'best':>8} {'median':>8} {'ratio':>7} {'(median)':>9}")
    summary = {}
    for name, values in results.items():
        best, median = min(values), statistics.median(values)
        ratio, median_ratio = best / base, median / base_median
        summary[name] = {
            "best_ms": best * 1e3,
            "median_ms": median * 1e3,
            "ratio": ratio,
            "median_ratio": median_ratio,
        }
        print(f"{name:38} {best * 1e3:8.2f} {median * 1e3:8.2f} {ratio:6.2f}x {median_ratio:8.2f}x")
    goal = summary["venus classic_fancy (.tmpl)"]["ratio"] <= 1.5
    print(f"goal (Venus template <= 1.5x the default theme): {'met' if goal else 'NOT met'}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "templates.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
