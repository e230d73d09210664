"""The ``/feeds`` status page as people read it: relative times, a table per state.

Pure (no Twisted), rendered off the reactor like every page: :func:`status_context` turns
the rows of :func:`planet.render.feed_status_rows` (the ones ``/feeds.json`` serves as they
are) into what ``templates/feeds.html`` shows: a summary line whose links filter by state
(``/feeds?state=failing``), one table per state with the columns that matter for it (the
reason first for failing and gone feeds), and times as "12 min ago" / "in 18 min" relative
to ``now`` (the render time), each with its exact UTC time in a ``<time>`` element.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from attrs import frozen

from planet import __version__, render
from planet.config import Config
from planet.model import ListState

__all__ = ["FILTERS", "StatusContext", "relative", "render_status", "status_context"]

#: ``?state=`` values and the row states each shows; a group per key but the last.
FILTERS: Mapping[str, frozenset[str]] = {
    "ok": frozenset({"ok", "not-modified"}),
    "failing": frozenset({"failing"}),
    "gone": frozenset({"gone"}),
    "waiting": frozenset({"waiting"}),
    "not-modified": frozenset({"not-modified"}),
}
#: The summary's order: the states needing attention first.
_SUMMARY = ("ok", "failing", "gone", "waiting")
_GROUP_ORDER = ("failing", "gone", "waiting", "ok")

_LABELS = {
    "reason": "Reason",
    "feed": "Feed",
    "state": "State",
    "http": "HTTP",
    "errors": "Errors in a row",
    "last_fetch": "Last fetch",
    "next_fetch": "Next fetch",
    "entries": "Entries",
    "newest_entry": "Newest entry",
    "websub": "WebSub",
}
#: Each state's columns: why a feed fails is what its owner looks for first.
_COLUMNS = {
    "failing": (
        "reason",
        "feed",
        "http",
        "errors",
        "last_fetch",
        "next_fetch",
        "entries",
        "websub",
    ),
    "gone": ("reason", "feed", "http", "last_fetch", "entries", "newest_entry"),
    "waiting": ("feed", "reason", "http", "last_fetch", "next_fetch", "entries", "websub"),
    "ok": (
        "feed",
        "state",
        "last_fetch",
        "next_fetch",
        "entries",
        "newest_entry",
        "websub",
        "reason",
    ),
}
#: Healthy feeds have no reason to be listed, only notes (moved, inactive).
_RELABEL = {"ok": {"reason": "Notes"}}
_TITLES = {
    "failing": "Failing",
    "gone": "Gone",
    "waiting": "Waiting",
    "ok": "OK",
}
_TIMES = ("last_fetch", "next_fetch", "newest_entry", "websub_expires", "last_push")


@frozen
class Column:
    id: str
    label: str


@frozen
class When:
    """A time as shown: ``text`` relative to the render, ``iso`` and ``exact`` in UTC."""

    text: str
    iso: str
    exact: str


@frozen
class Group:
    """One state's table."""

    state: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[dict[str, Any], ...]


@frozen
class Count:
    """One part of the summary line: ``3 failing``, linking to its filter."""

    state: str
    count: int
    href: str
    current: bool


@frozen
class SkippedList:
    """A URL reading list's entries that name no http(s) feed."""

    url: str
    skipped: tuple[str, ...]


@frozen
class StatusContext:
    total: int
    shown: int
    summary: tuple[Count, ...]
    groups: tuple[Group, ...]
    state: str | None
    lists: tuple[SkippedList, ...]


def render_status(
    config: Config,
    rows: list[dict[str, Any]],
    now: datetime,
    state: str | None = None,
    lists: Iterable[ListState] = (),
) -> bytes:
    """The ``/feeds`` page: every subscription's health, a table per state (only ``state``'s
    when given), times relative to ``now``."""
    return render.render_page(
        "feeds.html",
        planet=config,
        status=status_context(rows, now, state, lists),
        generated=render.format_entry_time(now),
        version=__version__,
    )


def status_context(
    rows: Sequence[Mapping[str, Any]],
    now: datetime,
    state: str | None = None,
    lists: Iterable[ListState] = (),
) -> StatusContext:
    """What ``feeds.html`` shows of ``rows`` at ``now``, only the ``state`` ones if given
    (a key of :data:`FILTERS`)."""
    counts = {name: sum(1 for r in rows if r["state"] in FILTERS[name]) for name in _SUMMARY}
    summary = tuple(
        Count(name, counts[name], f"/feeds?state={name}", state == name) for name in _SUMMARY
    )
    wanted = FILTERS[state] if state is not None else None
    groups = []
    for name in _GROUP_ORDER:
        members = tuple(
            _view(row, now)
            for row in rows
            if row["state"] in FILTERS[name] and (wanted is None or row["state"] in wanted)
        )
        if members:
            labels = {**_LABELS, **_RELABEL.get(name, {})}
            columns = tuple(Column(c, labels[c]) for c in _COLUMNS[name])
            groups.append(Group(name, _TITLES[name], columns, members))
    skipped = tuple(SkippedList(s.url, s.skipped) for s in lists if s.skipped)
    return StatusContext(
        total=len(rows),
        shown=sum(len(g.rows) for g in groups),
        summary=summary,
        groups=tuple(groups),
        state=state,
        lists=skipped,
    )


def _view(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    view = dict(row)
    for key in _TIMES:
        value = row.get(key)
        view[f"{key}_at"] = _when(value, now, due=key == "next_fetch") if value else None
    return view


def _when(iso: str, now: datetime, due: bool) -> When:
    when = datetime.fromisoformat(iso)
    exact = when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return When(relative(when, now, due=due), iso, exact)


def relative(when: datetime, now: datetime, due: bool = False) -> str:
    """``12 min ago``, ``in 18 min``, ``just now``; with ``due`` (a next fetch), a time
    already passed is ``due now``."""
    seconds = (when - now).total_seconds()
    if seconds <= 0 and due:
        return "due now"
    if abs(seconds) < 60:
        return "just now" if seconds <= 0 else "in under a minute"
    span = _span(abs(seconds))
    return f"{span} ago" if seconds < 0 else f"in {span}"


def _span(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 10:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if hours < 48:
        return f"{hours} h"
    days = hours // 24
    if days < 60:
        return f"{days} days"
    if days < 730:
        return f"{days // 30} months"
    return f"{days // 365} years"
