"""The per-fetch log line: the same text as the eight-field format string it replaced."""

from __future__ import annotations

from typing import Any

from twisted.logger import formatEvent

from planet.ingest import FetchLine as _FetchLine

# The line as the Aggregator logged it before, field for field.
OLD_FORMAT = (
    "fetch {url}: {outcome} {status} {size} bytes {ms:.0f} ms, {new} new, {updated} updated{reason}"
)

CASES: list[tuple[str, str, int | None, int, float, int, int, str | None]] = [
    ("http://a.example/feed", "not-modified", 304, 0, 0.4, 0, 0, None),
    ("http://a.example/feed", "ok", 200, 12345, 249.5, 2, 1, None),
    ("http://a.example/feed", "ok", 200, 10, 250.5, 0, 0, None),
    ("http://a.example/missing", "failing", 404, 0, 0.0, 0, 0, "HTTP 404 Not Found"),
    ("http://a.example/x?q={y}", "failing", None, 0, 20000.0, 0, 0, "timed out after 20 s"),
    ("http://b.example/feed", "failing", 200, 9, 3.0, 0, 0, "parse error: {braces} % here"),
]


def old_text(case: tuple[Any, ...]) -> str:
    url, outcome, status, size, ms, new, updated, error = case
    event = {
        "log_format": OLD_FORMAT,
        "url": url,
        "outcome": outcome,
        "status": status if status is not None else "-",
        "size": size,
        "ms": ms,
        "new": new,
        "updated": updated,
        "reason": f" ({error})" if error else "",
    }
    return formatEvent(event)


def test_same_text_as_before() -> None:
    for case in CASES:
        event = {"log_format": "{fetch}", "fetch": _FetchLine(*case)}
        assert formatEvent(event) == old_text(case)
        assert str(_FetchLine(*case)) == old_text(case)


def test_text_made_only_when_formatted() -> None:
    made: list[str] = []

    class Spy(_FetchLine):
        def __format__(self, spec: str) -> str:
            made.append(spec)
            return super().__format__(spec)

    line = Spy("http://a.example/feed", "ok", 200, 1, 1.0, 0, 0, None)
    assert made == []
    assert formatEvent({"log_format": "{fetch}", "fetch": line}).startswith("fetch http://")
    assert made == [""]
