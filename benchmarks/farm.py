"""A loopback feed farm: N generated feeds over H loopback addresses, in its own process.

Run by ``cycle.py`` (or by hand)::

    .venv/bin/python benchmarks/farm.py --feeds 1000 --hosts 50 --entries 20 --latency-ms 20

Every feed body is generated once at start (``feedgen.make_feeds``: RSS 2.0, Atom 1.0 and
RSS 1.0 in rotation, ~117 KB with 20 entries) and kept in memory; a Twisted web server
answers from that dict, so the farm costs little CPU next to the aggregator it feeds.
Feed ``i`` is ``http://127.0.0.{1 + i % H}:PORT/feed/{i}.{kind}.xml``: every address of
127.0.0.0/8 routes to ``lo`` on Linux, and the farm listens on each of the H addresses
with the same port, so an aggregator sees H distinct hosts (its per-host limits apply).

Responses carry ``ETag`` and ``Last-Modified``; a conditional GET whose ``If-None-Match``
matches (or, without one, whose ``If-Modified-Since`` is not older than the feed) gets a
304. Every response, 200 or 304, waits ``--latency-ms`` first (a timer, not a sleep).

Control, on the same port under ``/_farm/`` (never counted in the statistics):

- ``GET /_farm/stats``: requests by status, body bytes sent, the largest number of
  requests in flight at once, first/last request times, the farm's CPU seconds.
- ``POST /_farm/reset``: zero the statistics.
- ``POST /_farm/config?validators=0|1&latency_ms=N``: ``validators=0`` ignores
  If-None-Match/If-Modified-Since and always answers 200 with the full body.
- ``POST /_farm/change?fraction=0.1&round=R``: a seeded random ``fraction`` of the feeds
  gets one new entry on top (the oldest one drops off, so the size stays), a new ETag and
  a new Last-Modified. Answers the changed paths.

When it listens, the farm prints one JSON line on stdout: ``{"port": ..., "hosts": [...],
"urls": [...], "generate_s": ..., "bytes": ...}``. It stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import sys
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import feedgen  # noqa: E402

#: Where an entry element starts and ends, per kind (for splicing a new entry in).
_ENTRY_MARKS = {
    "rss": ("<item>", "</item>"),
    "atom": ("<entry>", "</entry>"),
    "rdf": ("<item rdf:about=", "</item>"),
}
_DATE_TAGS = re.compile(r"<(pubDate|published|updated|dc:date)>[^<]*</\1>")
#: Last-Modified of every feed before any change (a fixed instant, before "now").
_BASE_MODIFIED = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


def feed_urls(count: int, hosts: int, port: int) -> list[str]:
    """The URL of every feed of a farm of ``count`` feeds over ``hosts`` addresses."""
    return [
        f"http://127.0.0.{1 + i % hosts}:{port}/feed/{i}.{feedgen.KINDS[i % 3]}.xml"
        for i in range(count)
    ]


def _entry_block(body: str, kind: str, last: bool = False) -> tuple[int, int]:
    """Start and end offsets of the first (or last) entry element of a feed document."""
    start_mark, end_mark = _ENTRY_MARKS[kind]
    start = body.rfind(start_mark) if last else body.find(start_mark)
    end = body.find(end_mark, start) + len(end_mark)
    return start, end


def with_new_entry(body: bytes, kind: str, seed: int, when: datetime) -> bytes:
    """``body`` with one new entry (dated ``when``) first and its last entry removed."""
    text = body.decode("utf-8")
    donor = feedgen.make_feed(kind, 1, seed).decode("utf-8")
    d_start, d_end = _entry_block(donor, kind)
    dates = {
        "pubDate": format_datetime(when),
        "published": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "updated": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dc:date": when.isoformat(),
    }
    new = _DATE_TAGS.sub(lambda m: f"<{m[1]}>{dates[m[1]]}</{m[1]}>", donor[d_start:d_end])
    l_start, l_end = _entry_block(text, kind, last=True)
    text = text[:l_start] + text[l_end:].lstrip("\n")
    first, _ = _entry_block(text, kind)
    return (text[:first] + new + "\n" + text[first:]).encode("utf-8")


class Feed:
    """One feed's current body and validators."""

    __slots__ = ("body", "etag", "index", "kind", "last_modified", "modified", "version")

    def __init__(self, index: int, kind: str, body: bytes) -> None:
        self.index, self.kind, self.body = index, kind, body
        self.version = 0
        self._set_validators(_BASE_MODIFIED)

    def _set_validators(self, modified: datetime) -> None:
        self.modified = modified.replace(microsecond=0)
        self.etag = f'"f{self.index}-v{self.version}"'.encode()
        self.last_modified = format_datetime(self.modified, usegmt=True).encode()

    def change(self, round_: int) -> None:
        self.version += 1
        when = feedgen.EPOCH + timedelta(hours=round_, minutes=self.index % 60)
        seed = 1_000_000 + self.index * 100 + self.version
        self.body = with_new_entry(self.body, self.kind, seed, when)
        self._set_validators(datetime.now(timezone.utc))

    def not_modified(self, if_none_match: bytes | None, if_modified_since: bytes | None) -> bool:
        if if_none_match is not None:
            return self.etag in [t.strip() for t in if_none_match.split(b",")] or (
                if_none_match.strip() == b"*"
            )
        if if_modified_since is not None:
            try:
                since = parsedate_to_datetime(if_modified_since.decode("latin-1"))
            except (TypeError, ValueError):
                return False
            if since.tzinfo is None:
                since = since.replace(tzinfo=timezone.utc)
            return since >= self.modified
        return False


class Farm:
    """The feeds, the switches and the request statistics (all on the reactor thread)."""

    def __init__(self, feeds: list[Feed], latency: float) -> None:
        self.by_path = {f"/feed/{f.index}.{f.kind}.xml": f for f in feeds}
        self.feeds = feeds
        self.latency = latency
        self.validators = True
        self.reset()

    def reset(self) -> None:
        self.by_status: dict[int, int] = {}
        self.bytes_sent = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "requests": sum(self.by_status.values()),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "bytes_sent": self.bytes_sent,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "now": time.time(),
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "validators": self.validators,
            "latency_ms": self.latency * 1000,
        }

    def change(self, fraction: float, round_: int) -> list[str]:
        count = round(len(self.feeds) * fraction)
        chosen = sorted(random.Random(round_).sample(range(len(self.feeds)), count))
        for i in chosen:
            self.feeds[i].change(round_)
        return [f"/feed/{i}.{self.feeds[i].kind}.xml" for i in chosen]


def build_feeds(count: int, entries: int, seed: int = 0) -> list[Feed]:
    return [
        Feed(i, kind, body)
        for i, (kind, _, body) in enumerate(feedgen.make_feeds(count, entries, seed))
    ]


def make_resource(farm: Farm, reactor: Any) -> Any:
    from twisted.web.resource import Resource
    from twisted.web.server import NOT_DONE_YET

    class FarmResource(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            path = request.path.decode("latin-1")
            if path.startswith("/_farm/"):
                return self.control(request, path)
            feed = farm.by_path.get(path)
            now = time.time()
            farm.first_at = farm.first_at or now
            farm.last_at = now
            if feed is None:
                status, body = 404, b"no such feed\n"
            elif farm.validators and feed.not_modified(
                request.getHeader(b"if-none-match"), request.getHeader(b"if-modified-since")
            ):
                status, body = 304, b""
            else:
                status, body = 200, feed.body
            farm.by_status[status] = farm.by_status.get(status, 0) + 1
            farm.in_flight += 1
            farm.max_in_flight = max(farm.max_in_flight, farm.in_flight)
            request.setResponseCode(status)
            if feed is not None:
                request.setHeader(b"etag", feed.etag)
                request.setHeader(b"last-modified", feed.last_modified)
                request.setHeader(b"content-type", feedgen.CONTENT_TYPES[feed.kind].encode())
            if status != 304:
                request.setHeader(b"content-length", str(len(body)).encode())
            call = reactor.callLater(farm.latency, self.answer, request, body)
            request.notifyFinish().addErrback(lambda _: call.active() and call.cancel())
            return NOT_DONE_YET

        def answer(self, request: Any, body: bytes) -> None:
            farm.in_flight -= 1
            if body:
                farm.bytes_sent += len(body)
                request.write(body)
            request.finish()

        def render_POST(self, request: Any) -> bytes:
            return self.control(request, request.path.decode("latin-1"))

        def control(self, request: Any, path: str) -> bytes:
            args = {k.decode(): v[0].decode() for k, v in request.args.items()}
            result: Any
            if path == "/_farm/stats":
                result = farm.stats()
            elif path == "/_farm/reset":
                farm.reset()
                result = farm.stats()
            elif path == "/_farm/config":
                if "validators" in args:
                    farm.validators = args["validators"] not in ("0", "off", "no", "false")
                if "latency_ms" in args:
                    farm.latency = float(args["latency_ms"]) / 1000
                result = farm.stats()
            elif path == "/_farm/change":
                result = farm.change(float(args.get("fraction", "0.1")), int(args.get("round", 1)))
            else:
                request.setResponseCode(404)
                result = {"error": "unknown control path"}
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(result).encode() + b"\n"

    return FarmResource()


def listen(reactor: Any, factory: Any, hosts: int, port: int, attempts: int = 20) -> int:
    """Listen on 127.0.0.1..127.0.0.H with one port number; returns that port."""
    from twisted.internet.error import CannotListenError

    for _ in range(attempts):
        first = reactor.listenTCP(port, factory, interface="127.0.0.1")
        chosen = first.getHost().port
        ports = [first]
        try:
            for h in range(2, hosts + 1):
                ports.append(reactor.listenTCP(chosen, factory, interface=f"127.0.0.{h}"))
        except CannotListenError:
            for p in ports:
                p.stopListening()
            if port:
                raise
            continue
        return chosen
    raise RuntimeError(f"no port free on all of 127.0.0.1..127.0.0.{hosts}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=50, help="loopback addresses (1-254)")
    ap.add_argument("--entries", type=int, default=20, help="entries per feed")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="delay before every answer")
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not 1 <= args.hosts <= 254:
        ap.error("--hosts must be 1..254")

    from twisted.internet import reactor
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )
    from twisted.web.server import Site

    # Warnings and errors (a bug in a handler, say) go to stderr; nothing else is logged.
    errors = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [errors])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)

    started = time.perf_counter()
    feeds = build_feeds(args.feeds, args.entries, args.seed)
    generate_s = time.perf_counter() - started
    farm = Farm(feeds, args.latency_ms / 1000)
    site = Site(make_resource(farm, reactor))
    site.log = lambda request: None  # type: ignore[method-assign]
    site.noisy = False
    port = listen(reactor, site, args.hosts, args.port)
    ready = {
        "port": port,
        "hosts": [f"127.0.0.{h}" for h in range(1, args.hosts + 1)],
        "urls": feed_urls(args.feeds, args.hosts, port),
        "generate_s": generate_s,
        "bytes": sum(len(f.body) for f in feeds),
        "kinds": {k: sum(1 for f in feeds if f.kind == k) for k in feedgen.KINDS},
    }
    print(json.dumps(ready), flush=True)
    reactor.run()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
