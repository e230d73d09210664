"""Pure rendering: a view of the store -> bytes (HTML river, Atom). No Twisted inside.

The web layer calls these off the reactor thread and caches the bytes per store version.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from itertools import groupby, islice
from typing import Any

import jinja2
from attrs import frozen

from planet import __version__
from planet.config import Config
from planet.model import Entry, FeedState, feed_state_name
from planet.river import RiverItem
from planet.sanitize import strip_xml_illegal
from planet.textpack import utf8_size
from planet.urls import host_of

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


def as_text(value: object) -> str:
    """A stored text field as ``str``: None is ``""``, a number its digits, anything else ``""``.

    Entries and feed states come from snapshots too; a value of the wrong type there must
    cost a blank field, never a 500.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def as_url(value: object) -> str | None:
    """A stored URL field: a non-empty ``str``, else None."""
    return value if isinstance(value, str) and value else None


def as_time(value: object, fallback: datetime) -> datetime:
    """A stored time: an aware datetime (a naive one is taken as UTC), else ``fallback``."""
    if not isinstance(value, datetime):
        return fallback
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


#: A slug made for a name whose base slug was taken: ``<base>-<n>``, n >= 2.
_SUFFIXED = re.compile(r"^(.*)-([0-9]+)$")


def _slug_for(slug: str, base: str) -> bool:
    """Whether ``slug`` is one :func:`feed_views` could give a name whose base is ``base``."""
    if slug == base:
        return True
    match = _SUFFIXED.match(slug)
    if match is None or match.group(1) != base:
        return False
    # Compared as text: int() refuses more than 4300 digits, and a title may hold them.
    digits = match.group(2)
    return digits[0] != "0" and digits != "1"


def feed_views(
    config: Config, states: Mapping[str, FeedState], previous: Mapping[str, str] | None = None
) -> dict[str, FeedView]:
    """Display names, sites and slugs of every subscription: configured name, else title.

    A slug is made from the display name (:func:`slugify`); names that slugify alike get
    ``-2``, ``-3``, ... The rule, so that no feed can take another's ``/feeds/<slug>``:

    1. Subscriptions the operator named (``name =``) claim before those named by their
       feed's title or host, so a feed retitling itself never displaces an operator's name.
    2. ``previous`` maps subscription URLs to the slugs they were given last time: a
       subscription keeps its slug while its own name still makes that slug (only an
       operator-named subscription claiming it as its plain, unsuffixed slug takes it).
       Suffixes for other names skip slugs kept this way.
    3. Otherwise config order decides (first come, plain slug).

    Without ``previous`` (at start-up) rules 1 and 3 alone decide: the same config and
    titles give the same slugs. O(n log n) in the number of subscriptions.
    """
    subs = config.subscriptions
    names = []
    bases: dict[str, str] = {}
    claims = []
    for index, sub in enumerate(subs):
        state = states.get(sub.url)
        title = as_text(state.title) if state is not None else ""
        name = as_text(sub.name) or title or (host_of(sub.url) or sub.url)
        names.append(name)
        base = bases.get(name)
        if base is None:
            base = bases[name] = slugify(name)
        kept = previous.get(sub.url) if previous is not None else None
        if kept is not None and not _slug_for(kept, base):
            kept = None
        claims.append((not sub.name, kept is None, index, base, kept))
    # Indexes are unique: the order never looks past them.
    claims.sort()
    # Slugs kept by subscriptions not named by the operator: no suffix is made into one.
    reserved = {kept for unnamed, _, _, _, kept in claims if unnamed and kept is not None}
    taken: set[str] = set()
    next_suffix: dict[str, int] = {}
    slugs = [""] * len(subs)
    for _, _, index, base, kept in claims:
        if kept is not None and kept not in taken:
            slug = kept
        elif base not in taken:
            slug = base
        else:
            # Each base's counter only grows, and a slug is skipped at most once overall
            # (``<base>-<n>`` splits one way): linear in all, not quadratic per name.
            n = next_suffix.get(base, 2)
            while f"{base}-{n}" in taken or f"{base}-{n}" in reserved:
                n += 1
            slug = f"{base}-{n}"
            next_suffix[base] = n + 1
        taken.add(slug)
        slugs[index] = slug
    views = {}
    for index, sub in enumerate(subs):
        state = states.get(sub.url)
        views[sub.url] = FeedView(
            url=sub.url,
            name=names[index],
            site=as_url(state.link) if state is not None else None,
            failing=state is not None and state.failing,
            reason=(as_text(state.error) or None) if state is not None else None,
            slug=slugs[index],
        )
    return views


#: A river page also ends before the content of its items passes this many bytes (HTML of
#: content and title, as UTF-8), so 60 entries of 512 KiB do not make a 30 MB page; a page
#: holds at least one item whatever its size.
MAX_PAGE_BYTES = 2 * 1024 * 1024


def paginate(
    items: Iterable[RiverItem],
    per_page: int,
    days_per_page: int = 0,
    per_feed: int = 0,
    max_bytes: int = MAX_PAGE_BYTES,
) -> list[tuple[RiverItem, ...]]:
    """Every page of the river (see :func:`iter_pages`)."""
    return list(iter_pages(items, per_page, days_per_page, per_feed, max_bytes))


def iter_pages(
    items: Iterable[RiverItem],
    per_page: int,
    days_per_page: int = 0,
    per_feed: int = 0,
    max_bytes: int = MAX_PAGE_BYTES,
) -> Iterator[tuple[RiverItem, ...]]:
    """Split the river into pages of at most ``per_page`` items, made as they are asked for.

    Venus's ``days_per_page`` also ends a page after that many distinct days, and its
    ``new_feed_items`` (``per_feed``) keeps at most that many items of one feed on a page:
    the rest of that feed's items are left out of the river (its own page shows them).
    A page also ends before an item that would take its content past ``max_bytes``
    (0: no bound); the item opens the next page. An empty river is one empty page.
    """
    made = 0
    page: list[RiverItem] = []
    days: set[date] = set()
    per: dict[str, int] = {}
    size = 0
    for item in items:
        day = _day(item.entry)
        item_size = entry_bytes(item.entry) if max_bytes else 0
        if page and (
            len(page) == per_page
            or (days_per_page and day not in days and len(days) == days_per_page)
            or (max_bytes and size + item_size > max_bytes)
        ):
            made += 1
            yield tuple(page)
            page, days, per, size = [], set(), {}, 0
        feed = item.entry.feed_url
        if per_feed and per.get(feed, 0) >= per_feed:
            continue
        per[feed] = per.get(feed, 0) + 1
        days.add(day)
        page.append(item)
        size += item_size
    if page or not made:
        yield tuple(page)


def entry_bytes(entry: Entry) -> int:
    """What ``entry`` adds to a page: its content and title, in UTF-8 bytes."""
    return entry.content_bytes + utf8_size(entry.title)


def _day(entry: Entry) -> date:
    return _published(entry).astimezone(timezone.utc).date()


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _published(entry: Entry) -> datetime:
    return as_time(entry.published, as_time(entry.first_seen, _EPOCH))


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


#: Pieces of a page joined at a time by :func:`render_page`.
_JOIN_BATCH = 4096


def render_page(name: str, **context: Any) -> bytes:
    """The page template ``name`` (of ``templates/``, autoescaped) rendered with
    ``context``, as UTF-8 without the characters XML forbids.

    Joined, cleaned and encoded a batch of pieces at a time (in a render thread):
    ``"".join`` of the ~1M pieces of a 13 MB page (``/feeds`` at 10,000 feeds) is one call
    that holds the GIL ~20 ms, and the reactor thread waits for it."""
    pieces = _env.get_template(name).generate(**context)
    batches = []
    while batch := list(islice(pieces, _JOIN_BATCH)):
        batches.append(strip_xml_illegal("".join(batch)).encode("utf-8"))
    return b"".join(batches)


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


#: Up to this many subscriptions the sidebar lists every one; a larger planet's lists only
#: those with entries on the page shown, then links the complete list (``/feeds``, OPML):
#: at 10,000 a full list is 2.4 MB of each page, and its render most of the page's.
SIDEBAR_ALL_UP_TO = 1000


@frozen
class Sidebar:
    """The river page's list of subscriptions."""

    #: The subscriptions listed, by name.
    listed: tuple[FeedView, ...]
    #: Every subscription: how many there are, how many are failing.
    total: int
    failing: int

    @property
    def more(self) -> int:
        """How many subscriptions are not listed."""
        return self.total - len(self.listed)


def sidebar(feeds: Mapping[str, FeedView], items: Iterable[RiverItem]) -> Sidebar:
    """The sidebar of a page showing ``items``: every subscription of ``feeds`` (views in
    config order) up to :data:`SIDEBAR_ALL_UP_TO`, else those with an entry among
    ``items`` (its feed's, or one it is also in), in the same order. O(subscriptions): made
    per render, never per request."""
    shown: Iterable[FeedView] = feeds.values()
    if len(feeds) > SIDEBAR_ALL_UP_TO:
        urls = set()
        for item in items:
            urls.add(as_text(item.entry.feed_url))
            urls.update(item.also_in)
        # Taken in config order, so that feeds of one name keep their usual order.
        shown = [view for url, view in feeds.items() if url in urls]
    return Sidebar(
        listed=tuple(sorted(shown, key=lambda f: f.name.casefold())),
        total=len(feeds),
        failing=sum(1 for f in feeds.values() if f.failing),
    )


def render_river(
    config: Config, view: PageView, feeds: Mapping[str, FeedView], now: datetime
) -> bytes:
    """The river page as HTML5, entries grouped under day headers."""
    days = []
    for day, group_iter in groupby(view.items, key=lambda item: _day(item.entry)):
        group = list(group_iter)
        shown = []
        previous = None
        for item in group:
            entry = item.entry
            published = _published(entry)
            fields = entry_fields(entry)
            shown.append(
                {
                    "entry": fields,
                    "feed": feed_of(fields, feeds),
                    # Venus's new_channel: the feed's heading when it differs from the
                    # entry's before it on that day.
                    "new_channel": fields.feed_url != previous,
                    "also_in": [_feed_of_url(url, feeds) for url in item.also_in],
                    "time": format_entry_time(published, config.date_format),
                    "iso": iso_utc(published),
                }
            )
            previous = fields.feed_url
        days.append(
            {
                "label": format_day(_published(group[0].entry), config.new_date_format),
                "iso": day.isoformat(),
                "items": shown,
            }
        )
    base = f"/feeds/{view.feed.slug}" if view.feed is not None else "/"
    return render_page(
        "river.html",
        planet=config,
        days=days,
        page=view.page,
        has_next=view.has_next,
        base=base,
        feed=view.feed,
        sidebar=sidebar(feeds, view.items),
        updated=format_entry_time(view.updated, config.date_format) if view.updated else None,
        updated_iso=iso_utc(view.updated) if view.updated else None,
        generated=format_entry_time(now),
        version=__version__,
    )


@frozen
class EntryFields:
    """An entry's fields as the outputs show them, each of its type whatever was stored."""

    id: str
    feed_url: str
    title: str
    link: str | None
    author: str
    content: str
    published: datetime
    updated: datetime


def entry_fields(entry: Entry) -> EntryFields:
    """``entry`` with every field coerced (:func:`as_text`, :func:`as_url`, :func:`as_time`)."""
    published = _published(entry)
    return EntryFields(
        id=as_text(entry.id),
        feed_url=as_text(entry.feed_url),
        title=as_text(entry.title),
        link=as_url(entry.link),
        author=as_text(entry.author),
        content=as_text(entry.content),
        published=published,
        updated=as_time(entry.updated, published),
    )


def feed_of(entry: Entry | EntryFields, feeds: Mapping[str, FeedView]) -> FeedView:
    """The view of the feed ``entry`` belongs to (its URL as name if it is unknown)."""
    return _feed_of_url(as_text(entry.feed_url), feeds)


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


def atom_entry_id(entry: Entry | EntryFields) -> str:
    """The entry's own id when it is an IRI, else a stable URN derived from feed and id."""
    entry_id = as_text(entry.id)
    if is_absolute_iri(entry_id):
        return entry_id
    key = f"{as_text(entry.feed_url)}\0{entry_id}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(key).hexdigest()[:32]
    return f"urn:planet:{digest}"
