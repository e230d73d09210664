"""Pure rendering: a view of the store -> bytes (HTML river, Atom). No Twisted inside.

The web layer calls these off the reactor thread and caches the bytes per store version.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from itertools import groupby
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree as ET

import jinja2
from attrs import frozen

from planet import __version__
from planet.config import Config
from planet.model import Entry, FeedState
from planet.sanitize import strip_xml_illegal

ATOM_NS = "http://www.w3.org/2005/Atom"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

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


@frozen
class PageView:
    """One page of the river: the entries shown and where it sits among the pages."""

    entries: tuple[Entry, ...]
    page: int
    has_next: bool
    updated: datetime | None


def feed_views(config: Config, states: Mapping[str, FeedState]) -> dict[str, FeedView]:
    """Display names and sites of every subscription: configured name, else feed title."""
    views = {}
    for sub in config.subscriptions:
        state = states.get(sub.url)
        title = state.title if state is not None else ""
        views[sub.url] = FeedView(
            url=sub.url,
            name=sub.name or title or (urlsplit(sub.url).hostname or sub.url),
            site=state.link if state is not None else None,
            failing=state is not None and state.failing,
            reason=state.error if state is not None else None,
        )
    return views


#: Order of states on the status page: the ones needing attention first.
_STATE_ORDER = {"failing": 0, "gone": 1, "waiting": 2, "not-modified": 3, "ok": 4}


def feed_state_name(state: FeedState | None, now: datetime) -> str:
    """``ok``, ``not-modified``, ``failing``, ``gone`` or ``waiting`` (includes never fetched)."""
    if state is None or state.last_fetch is None:
        return "waiting"
    if state.gone_since is not None:
        return "gone"
    if state.waiting_until is not None and state.waiting_until > now:
        return "waiting"
    if state.failing:
        return "failing"
    return "not-modified" if state.http_status == 304 else "ok"


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
            }
        )
    rows.sort(key=lambda r: (_STATE_ORDER[str(r["state"])], str(r["name"]).casefold()))
    return rows


def _next_fetch(state: FeedState | None, now: datetime) -> datetime | None:
    if state is None:
        return now
    if state.gone_since is not None or state.duplicate_of is not None:
        return None
    return state.next_fetch or now


def _iso_or_none(when: datetime | None) -> str | None:
    return _iso(when) if when is not None else None


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


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_river(
    config: Config, view: PageView, feeds: Mapping[str, FeedView], now: datetime
) -> bytes:
    """The river page as HTML5, entries grouped under day headers."""
    days = []
    for day, group_iter in groupby(
        view.entries, key=lambda e: e.published.astimezone(timezone.utc).date()
    ):
        group = list(group_iter)
        items = []
        for entry in group:
            items.append(
                {
                    "entry": entry,
                    "feed": feeds.get(entry.feed_url)
                    or FeedView(entry.feed_url, entry.feed_url, None),
                    "time": format_entry_time(entry.published, config.date_format),
                    "iso": _iso(entry.published),
                }
            )
        days.append(
            {
                "label": format_day(group[0].published, config.new_date_format),
                "iso": day.isoformat(),
                "items": items,
            }
        )
    html = _env.get_template("river.html").render(
        planet=config,
        days=days,
        page=view.page,
        has_next=view.has_next,
        feeds=sorted(feeds.values(), key=lambda f: f.name.casefold()),
        failing=sum(1 for f in feeds.values() if f.failing),
        updated=format_entry_time(view.updated, config.date_format) if view.updated else None,
        updated_iso=_iso(view.updated) if view.updated else None,
        generated=format_entry_time(now),
        version=__version__,
    )
    return strip_xml_illegal(html).encode("utf-8")


def render_not_found(config: Config) -> bytes:
    return (
        _env.get_template("not_found.html")
        .render(planet=config, version=__version__)
        .encode("utf-8")
    )


def atom_entry_id(entry: Entry) -> str:
    """The entry's own id when it is an IRI, else a stable URN derived from feed and id."""
    if _SCHEME.match(entry.id) and " " not in entry.id:
        return entry.id
    digest = hashlib.sha256(f"{entry.feed_url}\0{entry.id}".encode()).hexdigest()[:32]
    return f"urn:planet:{digest}"


def render_atom(
    config: Config, entries: Sequence[Entry], feeds: Mapping[str, FeedView], now: datetime
) -> bytes:
    """An Atom 1.0 document of ``entries``, in river order, with each entry's source feed."""
    ET.register_namespace("", ATOM_NS)
    root = ET.Element(_q("feed"))
    _text(root, "title", config.name)
    base = config.link or None
    _text(
        root,
        "id",
        config.link or "urn:planet:" + hashlib.sha256(config.name.encode()).hexdigest()[:32],
    )
    if base:
        ET.SubElement(
            root,
            _q("link"),
            rel="self",
            href=urljoin(base, "atom.xml"),
            type="application/atom+xml",
        )
        ET.SubElement(root, _q("link"), rel="alternate", href=base, type="text/html")
    newest = max((e.updated for e in entries), default=now)
    _text(root, "updated", _iso(newest))
    author = ET.SubElement(root, _q("author"))
    _text(author, "name", config.owner_name or config.name)
    if config.owner_email:
        _text(author, "email", config.owner_email)
    gen = _text(root, "generator", "planet")
    gen.set("version", __version__)
    for entry in entries:
        feed = feeds.get(entry.feed_url) or FeedView(entry.feed_url, entry.feed_url, None)
        el = ET.SubElement(root, _q("entry"))
        _text(el, "id", atom_entry_id(entry))
        _text(el, "title", entry.title or feed.name).set("type", "text")
        if entry.link:
            ET.SubElement(el, _q("link"), rel="alternate", href=entry.link, type="text/html")
        _text(el, "published", _iso(entry.published))
        _text(el, "updated", _iso(entry.updated))
        entry_author = ET.SubElement(el, _q("author"))
        _text(entry_author, "name", entry.author or feed.name)
        _text(el, "content", entry.content).set("type", "html")
        source = ET.SubElement(el, _q("source"))
        _text(source, "id", feed.url)
        _text(source, "title", feed.name)
        ET.SubElement(source, _q("link"), rel="self", href=feed.url)
        if feed.site:
            ET.SubElement(source, _q("link"), rel="alternate", href=feed.site, type="text/html")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _q(tag: str) -> str:
    return f"{{{ATOM_NS}}}{tag}"


def _text(parent: ET.Element, tag: str, value: str) -> ET.Element:
    el = ET.SubElement(parent, _q(tag))
    # Characters illegal in XML must never reach an XML output (python/planet#459).
    el.text = strip_xml_illegal(value)
    return el
