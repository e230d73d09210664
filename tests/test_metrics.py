"""planet.metrics: the exposition, counters, histograms, scrape-time gauges, route names."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from planet.metrics import FEED_STATES, Metrics, count_feed_states, route_of
from planet.model import FeedState
from planet.urls import host_of

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

EXPECTED_TYPES = {
    "planet_fetches": "counter",
    "planet_fetch_duration_seconds": "histogram",
    "planet_fetched_bytes": "counter",
    "planet_entries": "gauge",
    "planet_feeds": "gauge",
    "planet_parse_duration_seconds": "histogram",
    "planet_snapshot_duration_seconds": "histogram",
    "planet_snapshot_bytes": "gauge",
    "planet_render_duration_seconds": "histogram",
    "planet_http_requests": "counter",
}


def scrape(metrics: Metrics) -> dict[str, list[Sample]]:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    return {f.name: list(f.samples) for f in text_string_to_metric_families(body.decode())}


def types(metrics: Metrics) -> dict[str, str]:
    body, _ = metrics.exposition()
    return {f.name: f.type for f in text_string_to_metric_families(body.decode())}


def value(metrics: Metrics, sample: str, **labels: str) -> float | None:
    for samples in scrape(metrics).values():
        for s in samples:
            if s.name == sample and s.labels == labels:
                return s.value
    return None


def watched(entries: int = 0, feeds: dict[str, int] | None = None) -> Metrics:
    m = Metrics()
    m.watch_store(lambda: entries, lambda: feeds or {})
    return m


def test_every_metric_is_exposed_with_its_type() -> None:
    m = watched()
    assert {name: types(m).get(name) for name in EXPECTED_TYPES} == EXPECTED_TYPES


def test_every_metric_is_exposed_before_anything_happens_or_is_watched() -> None:
    found = types(Metrics())
    assert {name: found.get(name) for name in EXPECTED_TYPES} == EXPECTED_TYPES
    # Not watched yet: the store gauges have no value rather than a false 0.
    assert scrape(Metrics())["planet_entries"] == []


def test_exposition_is_text_format_bytes() -> None:
    body, content_type = Metrics().exposition()
    assert isinstance(body, bytes)
    # prometheus_client >= 0.26 advertises text format 1.0.0, older ones 0.0.4.
    assert content_type.startswith("text/plain; version=")
    assert b"# TYPE planet_fetches_total counter" in body


def test_fetch_counters_by_host_and_result() -> None:
    m = watched()
    m.fetch_done("a.example", "ok", 0.2, 1000)
    m.fetch_done("a.example", "ok", 0.3, 500)
    m.fetch_done("a.example", "failing", 20.0, 0)
    m.fetch_done("b.example", "not-modified", 0.05, 0)
    assert value(m, "planet_fetches_total", host="a.example", result="ok") == 2.0
    assert value(m, "planet_fetches_total", host="a.example", result="failing") == 1.0
    assert value(m, "planet_fetches_total", host="b.example", result="not-modified") == 1.0
    assert value(m, "planet_fetches_total", host="b.example", result="ok") is None
    assert value(m, "planet_fetched_bytes_total") == 1500.0
    assert value(m, "planet_fetch_duration_seconds_count") == 4.0
    assert value(m, "planet_fetch_duration_seconds_sum") == pytest.approx(20.55)
    assert value(m, "planet_fetch_duration_seconds_bucket", le="0.1") == 1.0
    assert value(m, "planet_fetch_duration_seconds_bucket", le="0.5") == 3.0
    assert value(m, "planet_fetch_duration_seconds_bucket", le="+Inf") == 4.0


def test_fetch_buckets_cover_ten_milliseconds_to_thirty_seconds() -> None:
    les = {
        s.labels["le"]
        for s in scrape(Metrics())["planet_fetch_duration_seconds"]
        if s.name.endswith("_bucket")
    }
    assert {"0.01", "1.0", "30.0", "+Inf"} <= les


def test_fetch_result_must_be_a_known_outcome() -> None:
    with pytest.raises(ValueError, match="unknown fetch result"):
        Metrics().fetch_done("a.example", "http://a.example/feed", 0.1, 0)


def test_parse_histogram_counts_observations() -> None:
    m = Metrics()
    m.parse_done(0.004)
    m.parse_done(0.2)
    m.parse_done(3.0)
    assert value(m, "planet_parse_duration_seconds_count") == 3.0
    assert value(m, "planet_parse_duration_seconds_sum") == pytest.approx(3.204)
    assert value(m, "planet_parse_duration_seconds_bucket", le="0.005") == 1.0


def test_snapshot_duration_and_size_of_the_last_write() -> None:
    m = Metrics()
    m.snapshot_written(0.5, 12345)
    m.snapshot_written(0.25, 2000)
    assert value(m, "planet_snapshot_duration_seconds_count") == 2.0
    assert value(m, "planet_snapshot_duration_seconds_sum") == pytest.approx(0.75)
    assert value(m, "planet_snapshot_bytes") == 2000.0


def test_render_histogram_by_route() -> None:
    m = Metrics()
    m.rendered("river", 0.02)
    m.rendered("river", 0.03)
    m.rendered("atom", 0.01)
    assert value(m, "planet_render_duration_seconds_count", route="river") == 2.0
    assert value(m, "planet_render_duration_seconds_count", route="atom") == 1.0
    assert value(m, "planet_render_duration_seconds_sum", route="river") == pytest.approx(0.05)


def test_http_requests_by_route_and_status() -> None:
    m = Metrics()
    m.http_request("river", 200)
    m.http_request("river", 200)
    m.http_request("river", 304)
    m.http_request("other", 404)
    assert value(m, "planet_http_requests_total", route="river", status="200") == 2.0
    assert value(m, "planet_http_requests_total", route="river", status="304") == 1.0
    assert value(m, "planet_http_requests_total", route="other", status="404") == 1.0


def feeds_of(m: Metrics) -> dict[str, float]:
    return {s.labels["state"]: s.value for s in scrape(m)["planet_feeds"]}


def test_store_gauges_are_computed_at_scrape_time() -> None:
    entries = [3]
    feeds: dict[str, int] = {"ok": 2, "failing": 1}
    m = Metrics()
    m.watch_store(lambda: entries[0], lambda: feeds)
    assert value(m, "planet_entries") == 3.0
    assert feeds_of(m) == {"ok": 2, "not-modified": 0, "failing": 1, "gone": 0, "waiting": 0}

    entries[0] = 10
    feeds = {"waiting": 4, "gone": 1}
    assert value(m, "planet_entries") == 10.0
    assert feeds_of(m) == {"ok": 0, "not-modified": 0, "failing": 0, "gone": 1, "waiting": 4}


def test_all_five_states_reported_when_there_are_no_feeds() -> None:
    m = watched(feeds={})
    assert feeds_of(m) == dict.fromkeys(FEED_STATES, 0.0)


def test_a_failing_store_callback_does_not_break_the_scrape() -> None:
    def broken() -> int:
        raise RuntimeError("boom")

    m = Metrics()
    m.watch_store(broken, lambda: {"ok": 1})
    m.fetch_done("a.example", "ok", 0.1, 10)
    assert scrape(m)["planet_entries"] == []
    assert feeds_of(m)["ok"] == 1.0
    assert value(m, "planet_fetches_total", host="a.example", result="ok") == 1.0


def test_instances_do_not_share_state() -> None:
    a = watched(entries=1)
    b = watched(entries=2)
    a.fetch_done("a.example", "ok", 0.1, 100)
    a.http_request("river", 200)
    assert a.registry is not b.registry
    assert value(a, "planet_fetches_total", host="a.example", result="ok") == 1.0
    assert value(b, "planet_fetches_total", host="a.example", result="ok") is None
    assert value(b, "planet_fetched_bytes_total") == 0.0
    assert value(b, "planet_http_requests_total", route="river", status="200") is None
    assert (value(a, "planet_entries"), value(b, "planet_entries")) == (1.0, 2.0)


def test_nothing_lands_in_the_global_registry() -> None:
    from prometheus_client import REGISTRY

    Metrics().fetch_done("a.example", "ok", 0.1, 1)
    assert REGISTRY.get_sample_value("planet_fetches_total") is None
    assert all(not n.startswith("planet_") for n in REGISTRY._names_to_collectors)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        (b"/", "river"),
        (b"/index.html", "river"),
        (b"/?page=2", "river"),
        (b"/feeds/some-blog", "feed_river"),
        (b"/feeds/some-blog?page=3", "feed_river"),
        (b"/feeds/%E2%9C%93", "feed_river"),
        (b"/atom.xml", "atom"),
        (b"/rss20.xml", "rss20"),
        (b"/feed.json", "json_feed"),
        (b"/opml.xml", "opml"),
        (b"/feeds", "feeds"),
        (b"/feeds.json", "feeds_json"),
        (b"/health", "health"),
        (b"/metrics", "metrics"),
        (b"/style.css", "style"),
        (b"/feeds/", "other"),
        (b"/feeds/a/b", "other"),
        (b"/index.html/", "other"),
        (b"/wp-login.php", "other"),
        (b"/../../etc/passwd", "other"),
        (b"", "other"),
        (b"/\xff\xfe", "other"),
    ],
)
def test_route_of(path: bytes, route: str) -> None:
    assert route_of(path) == route


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://A.Example:8443/feed.xml", "a.example"),
        ("http://b.example/", "b.example"),
        ("http://[::1]:8080/feed", "::1"),
        ("not a url", ""),
        ("http://[broken/", ""),
    ],
)
def test_host_of(url: str, host: str) -> None:
    assert host_of(url) == host


def test_count_feed_states() -> None:
    never = FeedState(url="http://a.example/")
    ok = FeedState(url="http://b.example/", last_fetch=NOW, http_status=200)
    unchanged = FeedState(url="http://c.example/", last_fetch=NOW, http_status=304)
    failing = FeedState(url="http://d.example/", last_fetch=NOW, error="HTTP 500")
    gone = FeedState(url="http://e.example/", last_fetch=NOW, gone_since=NOW, error="HTTP 410")
    waiting = FeedState(
        url="http://f.example/", last_fetch=NOW, waiting_until=NOW + timedelta(hours=1)
    )
    counts = count_feed_states([never, ok, unchanged, failing, gone, waiting, ok], NOW)
    assert counts == {"ok": 2, "not-modified": 1, "failing": 1, "gone": 1, "waiting": 2}
    assert count_feed_states([], NOW) == dict.fromkeys(FEED_STATES, 0)
