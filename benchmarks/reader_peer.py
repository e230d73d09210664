"""One update cycle of `reader` 3.x over the farm's feeds, for ``cycle.py`` to compare with.

Runs under reader's own virtualenv, never planet's (it imports only reader and the
standard library)::

    python3 -m venv /tmp/reader-venv && /tmp/reader-venv/bin/pip install 'reader>=3,<4'
    /tmp/reader-venv/bin/python benchmarks/reader_peer.py DB URLS_FILE [--workers 16]

The first run on a new ``DB`` adds every URL of ``URLS_FILE`` (one a line; timed apart
from the cycle), then each run calls ``update_feeds_iter(workers=16, scheduled=False)``
once (every feed, due or not: reader 3.x otherwise skips feeds updated within the hour)
and prints one JSON line: wall and CPU seconds of that call (this process, all threads),
and counts of the results (the driver samples its RSS).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from reader import __version__, make_reader

    db, urls_file = argv[0], argv[1]
    workers = int(argv[argv.index("--workers") + 1]) if "--workers" in argv else 16
    urls = [u for u in Path(urls_file).read_text().split() if u]
    reader = make_reader(db)
    started = time.perf_counter()
    known = {f.url for f in reader.get_feeds()}
    for url in urls:
        if url not in known:
            reader.add_feed(url)
    add_s = time.perf_counter() - started

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    counts = {"updated": 0, "not_modified": 0, "errors": 0, "new_entries": 0, "modified": 0}
    for result in reader.update_feeds_iter(workers=workers, scheduled=False):
        value = result.value
        if value is None:
            counts["not_modified"] += 1
        elif isinstance(value, Exception):
            counts["errors"] += 1
        else:
            counts["updated"] += 1
            counts["new_entries"] += value.new
            counts["modified"] += value.modified
    wall = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    out = {
        "reader": __version__,
        "feeds": len(urls),
        "workers": workers,
        "add_s": add_s,
        "wall_s": wall,
        "cpu_s": cpu,
        **counts,
    }
    print(json.dumps(out), flush=True)
    reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
