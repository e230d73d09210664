"""An entry as a feed reader gives it, before normalization: what both of planet's readers
(:mod:`planet.xmlfeed`'s ElementTree reader and feedparser, in :mod:`planet.parse`) make, so
that :mod:`planet.parse` normalizes and sanitizes one shape."""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from attrs import frozen

__all__ = ["HTML_TYPES", "RawEntry", "alternate_link", "from_struct"]

#: Content types (and feedparser's short names) whose text is markup.
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})


@frozen
class RawEntry:
    """An entry as read from any parser, before normalization."""

    id: str | None
    title: str
    title_is_html: bool
    link: str | None
    author: str
    content: str
    content_is_html: bool
    base: str
    published: datetime | None
    updated: datetime | None


def alternate_link(link: str | None, links: Iterable[Mapping[str, str]]) -> str | None:
    """The entry's alternate link: ``link`` unless ``links`` (each with ``href`` and ``rel``,
    ``alternate`` when missing) has an alternate and ``link`` is none of them.

    feedparser 6.0 lets the text of an href-less ``<link rel="enclosure">`` replace the
    alternate link in ``link``; its ``links`` list keeps each link's rel, so that wins.
    """
    alternates = [
        x["href"] for x in links if x.get("href") and x.get("rel", "alternate") == "alternate"
    ]
    if link in alternates or not alternates:
        return link
    return alternates[0]


def from_struct(value: time.struct_time | None) -> datetime | None:
    """A feedparser time tuple as an aware UTC datetime; None when it names no real time."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        return None
