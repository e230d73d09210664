"""Prometheus metrics: what the daemon did (fetches, parses, renders, requests) and holds.

Everything registers on a :class:`prometheus_client.CollectorRegistry` owned by one
:class:`Metrics` instance; nothing touches ``prometheus_client``'s global registry, so two
instances (two tests, two services in one process) never share state.

Label values are always from bounded sets: ``route`` is a route name (see :func:`route_of`),
never a raw request path; ``host`` is a subscribed feed's host (see :func:`planet.fetch.host_of`);
``result`` and ``state`` are the fixed names below.

The store gauges are computed when scraped, from callbacks given to
:meth:`Metrics.watch_store`; those callbacks read the store, so :meth:`Metrics.exposition`
must run on the reactor thread (it is cheap: two passes over the feeds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime

from attrs import define, field
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.logger import Logger

from planet import routes
from planet.model import FeedState, feed_state_name

#: The outcomes of one fetch, as :meth:`Aggregator._log_fetch` names them.
FETCH_RESULTS = ("ok", "not-modified", "failing")
#: Every value of :func:`planet.model.feed_state_name`; ``planet_feeds`` always has all five.
FEED_STATES = ("ok", "not-modified", "failing", "gone", "waiting")

# Fetches: a cached 304 from a nearby host takes ~10 ms, a slow feed runs into the timeout
# (20 s by default, configurable).
FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
# Parsing in a worker process: a small feed in milliseconds, a huge one in seconds.
PARSE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Snapshot writes: encoding plus fsync, from milliseconds to a minute for a very large store.
SNAPSHOT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Page renders (template + gzip), including the wait for a worker thread.
RENDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def route_of(path: bytes) -> str:
    """The route name for a request path (``request.path``), ``"other"`` when none matches.

    A query string, if present, is ignored. ``/feeds/<slug>`` is ``feed_river`` whatever the
    slug (it is one route, and slugs must not become label values). The routes are those
    of :data:`planet.routes.ROUTES`, the table the web view is made from.
    """
    route = routes.match(path.split(b"?", 1)[0])
    return "other" if route is None else route.name


def count_feed_states(states: Iterable[FeedState], now: datetime) -> dict[str, int]:
    """How many feeds are in each state of :func:`planet.model.feed_state_name`."""
    counts = dict.fromkeys(FEED_STATES, 0)
    for state in states:
        name = feed_state_name(state, now)
        counts[name] = counts.get(name, 0) + 1
    return counts


class _StoreCollector(Collector):
    """``planet_entries`` and ``planet_feeds{state}``, asked of the store at scrape time."""

    def __init__(self) -> None:
        self.entries: Callable[[], int] | None = None
        self.feeds_by_state: Callable[[], Mapping[str, int]] | None = None
        self._log = Logger()

    def describe(self) -> Iterable[Metric]:
        # Names only, so the registry can refuse a clash without calling the store.
        return self._families()

    def collect(self) -> Iterable[Metric]:
        entries, feeds = self._families()
        if self.entries is not None:
            try:
                entries.add_metric([], float(self.entries()))
            except Exception:
                self._log.failure("metrics: counting entries failed")
        if self.feeds_by_state is not None:
            try:
                counts = dict(self.feeds_by_state())
            except Exception:
                self._log.failure("metrics: counting feeds by state failed")
            else:
                for state in _with_known_states(counts):
                    feeds.add_metric([state], float(counts.get(state, 0)))
        return [entries, feeds]

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        entries = GaugeMetricFamily("planet_entries", "Entries held in the store.")
        feeds = GaugeMetricFamily(
            "planet_feeds",
            "Subscribed feeds by state (ok, not-modified, failing, gone, waiting).",
            labels=["state"],
        )
        return entries, feeds


def _with_known_states(counts: Mapping[str, int]) -> Iterator[str]:
    """The five known states first, always, then any other state the callback reported."""
    yield from FEED_STATES
    yield from sorted(s for s in counts if s not in FEED_STATES)


@define(slots=False)
class Metrics:
    """The daemon's metrics, on a registry of this instance's own."""

    registry: CollectorRegistry = field(factory=CollectorRegistry)

    def __attrs_post_init__(self) -> None:
        r = self.registry
        self.fetches = Counter(
            "planet_fetches",
            "Feed fetches by host and result (ok, not-modified, failing).",
            ["host", "result"],
            registry=r,
        )
        self.fetch_duration = Histogram(
            "planet_fetch_duration_seconds",
            "Time taken by one feed fetch, redirects included.",
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self.fetched_bytes = Counter(
            "planet_fetched_bytes", "Feed body bytes received.", registry=r
        )
        self.parse_duration = Histogram(
            "planet_parse_duration_seconds",
            "Time taken to parse one feed body.",
            buckets=PARSE_BUCKETS,
            registry=r,
        )
        self.snapshot_duration = Histogram(
            "planet_snapshot_duration_seconds",
            "Time taken to encode and write one snapshot.",
            buckets=SNAPSHOT_BUCKETS,
            registry=r,
        )
        self.snapshot_bytes = Gauge(
            "planet_snapshot_bytes", "Size of the last snapshot written.", registry=r
        )
        self.render_duration = Histogram(
            "planet_render_duration_seconds",
            "Time taken to render one page (off the reactor thread), by route.",
            ["route"],
            buckets=RENDER_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "planet_http_requests",
            "HTTP requests answered, by route and status code.",
            ["route", "status"],
            registry=r,
        )
        self.websub_pushes = Counter(
            "planet_websub_pushes",
            "WebSub pushes received, by result (accepted, bad-signature, rate-limited, "
            "too-large, gone).",
            ["result"],
            registry=r,
        )
        self.websub_bad_signatures = Counter(
            "planet_websub_bad_signatures",
            "WebSub pushes dropped for a missing or wrong X-Hub-Signature.",
            registry=r,
        )
        self.websub_subscriptions = Gauge(
            "planet_websub_subscriptions",
            "WebSub subscriptions by state (pending, subscribed, denied, failing).",
            ["state"],
            registry=r,
        )
        self._store = _StoreCollector()
        r.register(self._store)

    def websub_push(self, result: str) -> None:
        """A push was answered; ``result`` is one of the fixed names above."""
        self.websub_pushes.labels(result=result).inc()
        if result == "bad-signature":
            self.websub_bad_signatures.inc()

    def watch_websub(self, by_state: Callable[[], Mapping[str, int]]) -> None:
        """Report ``planet_websub_subscriptions{state}`` from ``by_state`` at each scrape."""

        def count(state: str) -> Callable[[], float]:
            return lambda: float(by_state().get(state, 0))

        for state in ("pending", "subscribed", "denied", "failing"):
            self.websub_subscriptions.labels(state=state).set_function(count(state))

    def fetch_done(self, host: str, result: str, seconds: float, size: int) -> None:
        """One fetch finished; ``result`` is ``ok``, ``not-modified`` or ``failing``."""
        if result not in FETCH_RESULTS:
            raise ValueError(f"unknown fetch result {result!r}; expected one of {FETCH_RESULTS}")
        self.fetches.labels(host=host, result=result).inc()
        self.fetch_duration.observe(max(seconds, 0.0))
        if size > 0:
            self.fetched_bytes.inc(size)

    def parse_done(self, seconds: float) -> None:
        self.parse_duration.observe(max(seconds, 0.0))

    def snapshot_written(self, seconds: float, size: int) -> None:
        self.snapshot_duration.observe(max(seconds, 0.0))
        self.snapshot_bytes.set(size)

    def rendered(self, route: str, seconds: float) -> None:
        """A page was rendered for ``route`` (a route name, never a raw path)."""
        self.render_duration.labels(route=route).observe(max(seconds, 0.0))

    def http_request(self, route: str, status: int) -> None:
        """A response was sent for ``route`` (a route name, never a raw path)."""
        self.http_requests.labels(route=route, status=str(status)).inc()

    def watch_store(
        self, entries: Callable[[], int], feeds_by_state: Callable[[], Mapping[str, int]]
    ) -> None:
        """Report ``planet_entries`` and ``planet_feeds`` from these callbacks at each scrape.

        ``feeds_by_state`` maps state names to counts; a known state it leaves out is
        reported as 0 (see :func:`count_feed_states`). Calling again replaces the callbacks.
        Until it is called, both metrics are exposed without samples.
        """
        self._store.entries = entries
        self._store.feeds_by_state = feeds_by_state

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition of every metric and its content type (reactor thread)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
