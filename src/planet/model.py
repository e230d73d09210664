"""Plain values that travel along the data path (fetch -> parse -> store -> web/snapshot).

Everything here is an immutable ``attrs`` value with no Twisted inside, so it can be
pickled into a parser worker process and serialized into a snapshot.
"""

from __future__ import annotations

from datetime import datetime, timezone

from attrs import frozen


@frozen
class Entry:
    """One normalized, sanitized feed entry.

    ``feed_url`` is the subscription URL as configured: it keys the entry to its
    subscription even after the feed moves.
    """

    id: str
    feed_url: str
    title: str
    link: str | None
    author: str
    content: str
    published: datetime
    updated: datetime
    first_seen: datetime
    #: False when the feed gave no date: published/updated are then the first-seen time.
    dated: bool = True

    def same_content(self, other: Entry) -> bool:
        """Whether ``other`` carries the same visible content as this entry."""
        return (
            self.title == other.title
            and self.link == other.link
            and self.author == other.author
            and self.content == other.content
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

    @property
    def failing(self) -> bool:
        return self.error is not None


def utc_from_timestamp(seconds: float) -> datetime:
    """An aware UTC datetime for a POSIX timestamp (from ``IReactorTime.seconds()``)."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc)
