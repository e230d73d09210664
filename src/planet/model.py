"""Plain values that travel along the data path (fetch -> parse -> store -> web/snapshot).

Everything here is an immutable ``attrs`` value with no Twisted inside, so it can be
pickled into a parser worker process and serialized into a snapshot.
"""

from __future__ import annotations

from datetime import datetime, timezone

from attrs import field, frozen

from planet.textpack import pack, unpack, utf8_size


@frozen
class Entry:
    """One normalized, sanitized feed entry.

    ``feed_url`` is the subscription URL as configured: it keys the entry to its
    subscription even after the feed moves. ``content`` (the sanitized HTML) is kept packed
    (:mod:`planet.textpack`): pass and read it as ``content``; ``packed_content`` is what
    is held.
    """

    id: str
    feed_url: str
    title: str
    link: str | None
    author: str
    packed_content: str | bytes = field(alias="content", converter=pack)
    published: datetime
    updated: datetime
    first_seen: datetime
    #: False when the feed gave no date: published/updated are then the first-seen time.
    dated: bool = True

    @property
    def content(self) -> str:
        """The entry's sanitized HTML."""
        return unpack(self.packed_content)

    @property
    def content_bytes(self) -> int:
        """The length of ``content`` in UTF-8 bytes, without unpacking it."""
        return utf8_size(self.packed_content)

    def same_content(self, other: Entry) -> bool:
        """Whether ``other`` carries the same visible content as this entry."""
        return (
            self.title == other.title
            and self.link == other.link
            and self.author == other.author
            # Packing is deterministic: the same text packs to the same bytes.
            and self.packed_content == other.packed_content
            and self.updated == other.updated
        )


@frozen
class ParsedFeed:
    """What the parser made of one fetched document.

    ``error`` is set (and ``entries`` empty) when the document is not a feed at all.
    """

    title: str
    link: str | None
    entries: tuple[Entry, ...]
    error: str | None = None
    #: The feed's own id (Atom ``id``, RSS ``guid`` of the channel), for duplicate detection.
    feed_id: str | None = None
    #: Seconds the feed asks readers to wait between polls (RSS ``ttl``, ``sy:updatePeriod``).
    refresh_hint: float | None = None
    #: For an HTML page: the feed URLs its ``<link rel="alternate">`` elements name.
    alternates: tuple[str, ...] = ()


@frozen
class FetchResult:
    """The outcome of one HTTP fetch. A feed's fault is data here, never an exception.

    ``error`` holds a readable reason when no usable body arrived. ``redirects`` lists the
    hops followed, oldest first, as ``(status, location)`` pairs.
    """

    url: str
    final_url: str
    status: int | None
    body: bytes | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    redirects: tuple[tuple[int, str], ...] = ()
    error: str | None = None
    elapsed: float = 0.0
    #: sha256 of the body, to skip parsing a byte-identical 200.
    body_hash: str | None = None
    #: Caching headers of the final response (Retry-After, Cache-Control, Expires, Date).
    retry_after: str | None = None
    cache_control: str | None = None
    expires: str | None = None
    date: str | None = None
    #: The final response's ``Link`` header values (WebSub discovery reads them).
    links: tuple[str, ...] = ()

    @property
    def not_modified(self) -> bool:
        return self.status == 304 and self.error is None


@frozen
class FeedState:
    """What the store knows about one subscription between fetches (persisted)."""

    url: str
    title: str = ""
    link: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_fetch: datetime | None = None
    last_success: datetime | None = None
    http_status: int | None = None
    error: str | None = None
    consecutive_errors: int = 0
    #: Where the feed is fetched now, after an adopted permanent redirect.
    current_url: str | None = None
    #: A permanent move seen but not yet adopted, and on how many consecutive fetches.
    pending_move: str | None = None
    pending_count: int = 0
    #: Set when the server answered 410 Gone: the feed is not fetched again.
    gone_since: datetime | None = None
    #: The server asked us to wait (429/503 with Retry-After) until then.
    waiting_until: datetime | None = None
    next_fetch: datetime | None = None
    body_hash: str | None = None
    #: The feed URL found through an HTML page's ``<link rel="alternate">``.
    discovered_url: str | None = None
    #: The URL the last fetch ended at, and the feed's own id, to spot duplicates.
    final_url: str | None = None
    feed_id: str | None = None
    #: Another subscription this one turned out to be the same feed as.
    duplicate_of: str | None = None

    @property
    def failing(self) -> bool:
        return self.error is not None

    @property
    def fetch_url(self) -> str:
        """The URL to request: an adopted move or a discovered feed, else the configured one."""
        return self.current_url or self.discovered_url or self.url


@frozen
class ListState:
    """A reading list fetched from a URL: its validators and the feeds it named last."""

    url: str
    feeds: tuple[tuple[str, str | None], ...] = ()
    etag: str | None = None
    last_modified: str | None = None
    last_fetch: datetime | None = None
    error: str | None = None
    #: Its entries whose xmlUrl is no http(s) URL, as written (shown on ``/feeds``).
    skipped: tuple[str, ...] = ()


def utc_from_timestamp(seconds: float) -> datetime:
    """An aware UTC datetime for a POSIX timestamp (from ``IReactorTime.seconds()``)."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


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


def one_line(text: str, limit: int = 200) -> str:
    """``text`` as one line of at most ``limit`` characters (a feed's reason, a log line)."""
    return " ".join(text.split())[:limit]
