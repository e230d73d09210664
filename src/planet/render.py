"""Pure rendering: a view of the store -> bytes (HTML river, Atom). No Twisted inside.

The web layer calls these off the reactor thread and caches the bytes per store version.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from itertools import groupby
from typing import Any
from urllib.parse import urlsplit

import jinja2
from attrs import frozen

from planet import __version__
from planet.config import Config
from planet.model import Entry, FeedState, feed_state_name
from planet.sanitize import strip_xml_illegal
from planet.store import RiverItem

ABSOLUTE_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("planet", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


@frozen
class FeedView:
    """What the page shows of one subscription."""

    url: str
    name: str
    site: str | None
    failing: bool = False
    reason: str | None = None
    #: The feed's page on this planet is ``/feeds/<slug>``.
    slug: str = ""


@frozen
class PageView:
    """One page of a river: the items shown and where the page sits among the pages.

    ``feed`` is set for a single feed's river (``/feeds/<slug>``).
    """

    items: tuple[RiverItem, ...]
    page: int
    has_next: bool
    updated: datetime | None
    feed: FeedView | None = None


def slugify(name: str) -> str:
    """A URL path segment for a feed name: lowercase ASCII words joined by hyphens."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "feed"


def feed_views(config: Config, states: Mapping[str, FeedState]) -> dict[str, FeedView]:
    """Display names, sites and slugs of every subscription: configured name, else title."""
    views = {}
    taken: set[str] = set()
    for sub in config.subscriptions:
        state = states.get(sub.url)
        title = state.title if state is not None else ""
        name = sub.name or title or (urlsplit(sub.url).hostname or sub.url)
        slug = base = slugify(name)
        n = 2
        while slug in taken:
            slug, n = f"{base}-{n}", n + 1
        taken.add(slug)
        views[sub.url] = FeedView(
            url=sub.url,
            name=name,
            site=state.link if state is not None else None,
            failing=state is not None and state.failing,
            reason=state.error if state is not None else None,
            slug=slug,
        )
    return views


def paginate(
    items: Iterable[RiverItem], per_page: int, days_per_page: int = 0, per_feed: int = 0
) -> list[tuple[RiverItem, ...]]:
    """Every page of the river (see :func:`iter_pages`)."""
    return list(iter_pages(items, per_page, days_per_page, per_feed))


def iter_pages(
    items: Iterable[RiverItem], per_page: int, days_per_page: int = 0, per_feed: int = 0
) -> Iterator[tuple[RiverItem, ...]]:
    """Split the river into pages of at most ``per_page`` items, made as they are asked for.

    Venus's ``days_per_page`` also ends a page after that many distinct days, and its
    ``new_feed_items`` (``per_feed``) keeps at most that many items of one feed on a page:
    the rest of that feed's items are left out of the river (its own page shows them).
    An empty river is one empty page.
    """
    made = 0
    page: list[RiverItem] = []
    days: set[date] = set()
    per: dict[str, int] = {}
    for item in items:
        day = _day(item.entry)
        if len(page) == per_page or (
            days_per_page and day not in days and len(days) == days_per_page
        ):
            made += 1
            yield tuple(page)
            page, days, per = [], set(), {}
        feed = item.entry.feed_url
        if per_feed and per.get(feed, 0) >= per_feed:
            continue
        per[feed] = per.get(feed, 0) + 1
        days.add(day)
        page.append(item)
    if page or not made:
        yield tuple(page)


def _day(entry: Entry) -> date:
    return entry.published.astimezone(timezone.utc).date()


#: Order of states on the status page: the ones needing attention first.
_STATE_ORDER = {"failing": 0, "gone": 1, "waiting": 2, "not-modified": 3, "ok": 4}


def feed_reason(state: FeedState | None, now: datetime) -> str | None:
    """A readable sentence on why the feed is in its state, for feed owners."""
    if state is None or state.last_fetch is None:
        return "not fetched yet"
    if state.gone_since is not None:
        return f"gone since {format_entry_time(state.gone_since)} (HTTP 410): no longer fetched"
    notes = []
    if state.error:
        notes.append(state.error)
    if state.waiting_until is not None and state.waiting_until > now:
        notes.append(f"the server asked us to wait until {format_entry_time(state.waiting_until)}")
    if state.duplicate_of:
        notes.append(f"duplicate of {state.duplicate_of}: fetched once, under that subscription")
    if state.current_url:
        notes.append(f"moved to {state.current_url} (permanent redirect)")
    elif state.discovered_url:
        notes.append(f"the URL is an HTML page; its feed was discovered at {state.discovered_url}")
    if state.pending_move:
        notes.append(f"redirects permanently to {state.pending_move}; adopted if seen again")
    return "; ".join(notes) or None


def feed_status_rows(
    config: Config,
    states: Mapping[str, FeedState],
    counts: Mapping[str, tuple[int, datetime | None]],
    now: datetime,
) -> list[dict[str, Any]]:
    """One row per subscription for ``/feeds`` and ``/feeds.json``, failing feeds first."""
    views = feed_views(config, states)
    rows: list[dict[str, Any]] = []
    for sub in config.subscriptions:
        state = states.get(sub.url)
        entries, newest = counts.get(sub.url, (0, None))
        current = state.current_url or state.discovered_url if state is not None else None
        rows.append(
            {
                "url": sub.url,
                "current_url": current,
                "name": views[sub.url].name,
                "state": feed_state_name(state, now),
                "http_status": state.http_status if state is not None else None,
                "reason": feed_reason(state, now),
                "consecutive_errors": state.consecutive_errors if state is not None else 0,
                "last_fetch": _iso_or_none(state.last_fetch if state is not None else None),
                "next_fetch": _iso_or_none(_next_fetch(state, now)),
                "entries": entries,
                "newest_entry": _iso_or_none(newest),
                "inactive": _inactive(config, state, newest, now),
            }
        )
        if rows[-1]["inactive"]:
            note = f"inactive: no new entry for over {config.activity_threshold} days"
            rows[-1]["reason"] = "; ".join(filter(None, [rows[-1]["reason"], note]))
    rows.sort(key=lambda r: (_STATE_ORDER[str(r["state"])], str(r["name"]).casefold()))
    return rows


def _inactive(
    config: Config, state: FeedState | None, newest: datetime | None, now: datetime
) -> bool:
    """Venus's activity_threshold: no new entry for that many days (a fetched feed)."""
    if not config.activity_threshold or state is None or state.last_success is None:
        return False
    latest = newest or state.last_success
    return now - latest > timedelta(days=config.activity_threshold)


def _next_fetch(state: FeedState | None, now: datetime) -> datetime | None:
    if state is None:
        return now
    if state.gone_since is not None or state.duplicate_of is not None:
        return None
    return state.next_fetch or now


def _iso_or_none(when: datetime | None) -> str | None:
    return iso_utc(when) if when is not None else None


def render_status(config: Config, rows: list[dict[str, Any]], now: datetime) -> bytes:
    """The ``/feeds`` page: a table of every subscription's health."""
    html = _env.get_template("feeds.html").render(
        planet=config, rows=rows, generated=format_entry_time(now), version=__version__
    )
    return strip_xml_illegal(html).encode("utf-8")


def format_entry_time(when: datetime, fmt: str | None = None) -> str:
    """``23 Jun 2026 8:06pm GMT`` (or Venus's ``date_format`` when configured)."""
    when = when.astimezone(timezone.utc)
    if fmt:
        return when.strftime(fmt)
    hour = when.hour % 12 or 12
    return f"{when:%d %b %Y} {hour}:{when:%M}{'am' if when.hour < 12 else 'pm'} GMT"


def format_day(when: datetime, fmt: str | None = None) -> str:
    """``23 Jun 2026`` (or Venus's ``new_date_format`` when configured)."""
    return when.astimezone(timezone.utc).strftime(fmt or "%d %b %Y")


def iso_utc(when: datetime) -> str:
    """RFC 3339 in UTC to the second: ``2026-06-23T20:06:00Z``."""
    # isoformat, not strftime: %Y drops the zero padding of years before 1000.
    return when.astimezone(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def render_river(
    config: Config, view: PageView, feeds: Mapping[str, FeedView], now: datetime
) -> bytes:
    """The river page as HTML5, entries grouped under day headers."""
    days = []
    for day, group_iter in groupby(view.items, key=lambda item: _day(item.entry)):
        group = list(group_iter)
        shown = []
        for item in group:
            entry = item.entry
            shown.append(
                {
                    "entry": entry,
                    "feed": feed_of(entry, feeds),
                    "also_in": [_feed_of_url(url, feeds) for url in item.also_in],
                    "time": format_entry_time(entry.published, config.date_format),
                    "iso": iso_utc(entry.published),
                }
            )
        days.append(
            {
                "label": format_day(group[0].entry.published, config.new_date_format),
                "iso": day.isoformat(),
                "items": shown,
            }
        )
    base = f"/feeds/{view.feed.slug}" if view.feed is not None else "/"
    html = _env.get_template("river.html").render(
        planet=config,
        days=days,
        page=view.page,
        has_next=view.has_next,
        base=base,
        feed=view.feed,
        feeds=sorted(feeds.values(), key=lambda f: f.name.casefold()),
        failing=sum(1 for f in feeds.values() if f.failing),
        updated=format_entry_time(view.updated, config.date_format) if view.updated else None,
        updated_iso=iso_utc(view.updated) if view.updated else None,
        generated=format_entry_time(now),
        version=__version__,
    )
    return strip_xml_illegal(html).encode("utf-8")


def feed_of(entry: Entry, feeds: Mapping[str, FeedView]) -> FeedView:
    """The view of the feed ``entry`` belongs to (its URL as name if it is unknown)."""
    return _feed_of_url(entry.feed_url, feeds)


def _feed_of_url(url: str, feeds: Mapping[str, FeedView]) -> FeedView:
    return feeds.get(url) or FeedView(url, url, None)


def render_not_found(config: Config) -> bytes:
    return (
        _env.get_template("not_found.html")
        .render(planet=config, version=__version__)
        .encode("utf-8")
    )


def is_absolute_iri(value: str) -> bool:
    """Has a scheme and no whitespace: usable as an Atom ``id`` as it is."""
    return bool(ABSOLUTE_IRI.match(value)) and not any(c.isspace() for c in value)


def atom_entry_id(entry: Entry) -> str:
    """The entry's own id when it is an IRI, else a stable URN derived from feed and id."""
    if is_absolute_iri(entry.id):
        return entry.id
    key = f"{entry.feed_url}\0{entry.id}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(key).hexdigest()[:32]
    return f"urn:planet:{digest}"
