"""What a snapshot may hold that the store cannot index, mended or dropped: the records of
an older or damaged snapshot, cleaned before :meth:`planet.store.Store.load` takes them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

from attrs import evolve, fields

from planet.model import Entry, FeedState, ListState

__all__ = ["clean_entry", "clean_list", "clean_state"]


def _aware(value: object) -> datetime | None:
    """``value`` as an aware datetime (a naive one taken as UTC), or None if it is no datetime."""
    if not isinstance(value, datetime):
        return None
    return value if value.utcoffset() is not None else value.replace(tzinfo=timezone.utc)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_ENTRY_TEXT = ("title", "author", "content")
_ENTRY_DATES = ("published", "updated", "first_seen")


def clean_entry(entry: object, problems: Counter[str]) -> Entry | None:
    """``entry`` as the store can index it and the outputs render it, or None to drop it.

    A snapshot is read back without the parser's checks: an id may be a number, a title null,
    a date naive (an old version, a hand edit). What was wrong is counted in ``problems``.
    """
    if not isinstance(entry, Entry):
        problems["entries that are not entries (dropped)"] += 1
        return None
    if not isinstance(entry.feed_url, str):
        problems["entries whose feed_url is not text (dropped)"] += 1
        return None
    changes: dict[str, Any] = {}
    if not isinstance(entry.id, str):
        if not _number(entry.id):
            problems["entries whose id is not text (dropped)"] += 1
            return None
        changes["id"] = str(entry.id)
        problems["entries whose id was a number (made text)"] += 1
    for name in _ENTRY_TEXT:
        # Content is read packed: bytes are text packed, not to be unpacked for this check.
        value = entry.packed_content if name == "content" else getattr(entry, name)
        if isinstance(value, str | bytes):
            continue
        if value is None:
            changes[name] = ""
            problems[f"entries whose {name} was null (made empty)"] += 1
        elif _number(value):
            changes[name] = str(value)
            problems[f"entries whose {name} was a number (made text)"] += 1
        else:
            problems[f"entries whose {name} is not text (dropped)"] += 1
            return None
    if entry.link is not None and not isinstance(entry.link, str):
        changes["link"] = None
        problems["entries whose link is not text (taken as no link)"] += 1
    for name in _ENTRY_DATES:
        value = getattr(entry, name)
        when = _aware(value)
        if when is None:
            problems[f"entries whose {name} is not a date (dropped)"] += 1
            return None
        if when is not value:
            changes[name] = when
            problems[f"entries whose {name} had no time zone (taken as UTC)"] += 1
    if not isinstance(entry.dated, bool):
        changes["dated"] = bool(entry.dated) if _number(entry.dated) else True
        problems["entries whose dated is not true or false (made so)"] += 1
    return evolve(entry, **changes) if changes else entry


def _kind(type_name: object) -> str:
    text = str(type_name)
    if "datetime" in text:
        return "date"
    return {"str": "text", "str | None": "text?", "int": "int", "int | None": "int?"}.get(
        text, "other"
    )


def _field_kinds(cls: type) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, _kind(f.type)) for f in fields(cls) if f.name != "url")


_STATE_KINDS = _field_kinds(FeedState)
_LIST_KINDS = _field_kinds(ListState)


def _clean_record(
    value: Any, kinds: tuple[tuple[str, str], ...], what: str, problems: Counter[str]
) -> Any:
    """A feed state or reading list with each field of its declared type (or its default)."""
    if not isinstance(value.url, str):
        problems[f"{what} whose url is not text (dropped)"] += 1
        return None
    changes: dict[str, Any] = {}
    for name, kind in kinds:
        current = getattr(value, name)
        if kind == "date":
            if current is None:
                continue
            when = _aware(current)
            if when is None:
                changes[name] = None
                problems[f"{what} whose {name} is not a date (cleared)"] += 1
            elif when is not current:
                changes[name] = when
                problems[f"{what} whose {name} had no time zone (taken as UTC)"] += 1
        elif kind in ("text", "text?"):
            if not isinstance(current, str) and not (kind == "text?" and current is None):
                changes[name] = "" if kind == "text" else None
                problems[f"{what} whose {name} is not text (cleared)"] += 1
        elif kind in ("int", "int?"):
            ok = isinstance(current, int) and not isinstance(current, bool)
            if not ok and not (kind == "int?" and current is None):
                changes[name] = 0 if kind == "int" else None
                problems[f"{what} whose {name} is not a whole number (cleared)"] += 1
    return evolve(value, **changes) if changes else value


def clean_state(state: object, problems: Counter[str]) -> FeedState | None:
    """``state`` with every field of its declared type (naive dates taken as UTC), or None."""
    if not isinstance(state, FeedState):
        problems["feed states that are not feed states (dropped)"] += 1
        return None
    cleaned: FeedState | None = _clean_record(state, _STATE_KINDS, "feed states", problems)
    return cleaned


def clean_list(listed: object, problems: Counter[str]) -> ListState | None:
    """``listed`` with every field of its declared type, or None."""
    if not isinstance(listed, ListState):
        problems["reading lists that are not reading lists (dropped)"] += 1
        return None
    cleaned: ListState | None = _clean_record(listed, _LIST_KINDS, "reading lists", problems)
    if cleaned is None:
        return None
    try:
        feeds = tuple(
            (url, name)
            for url, name in cleaned.feeds
            if isinstance(url, str) and (name is None or isinstance(name, str))
        )
    except (TypeError, ValueError):
        feeds = ()
    if feeds != cleaned.feeds:
        problems["reading lists with feeds that are not (URL, name) pairs (left out)"] += 1
        cleaned = evolve(cleaned, feeds=feeds)
    return cleaned
