"""The variables an operator's template sees: Venus's and PlanetPlanet's names.

Templates are the operator's, feeds are not: every value here is safe to print raw, as Venus
templates print them. ``title``, ``content`` and ``summary`` are HTML (the sanitized entry);
every other value is :class:`Text`: escaped text, which ``ESCAPE="HTML"`` (and Jinja2's
autoescape) leaves as it is and ``ESCAPE="URL"`` quotes from its plain form. Links are
http(s) only. Pure: called in a render thread.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup

from planet import __version__
from planet.config import Config
from planet.htmltmpl import Scope
from planet.model import Entry
from planet.render import (
    EntryFields,
    FeedView,
    entry_fields,
    format_day,
    format_entry_time,
    iso_utc,
)

__all__ = ["Text", "link", "planet_values", "text"]

GENERATOR = f"planet {__version__}"


class Text(Markup):
    """Escaped text: prints as it is in HTML; ``plain`` is the text itself."""

    plain: str

    @property
    def escaped(self) -> str:
        return str.__str__(self)


_SPECIAL = re.compile(r"[&<>\"']")


def text(value: object) -> Text:
    """``value`` (a string, a number, else nothing) as :class:`Text`."""
    plain = value if isinstance(value, str) else "" if value is None else str(value)
    escaped = html.escape(plain, quote=True) if _SPECIAL.search(plain) else plain
    made = str.__new__(Text, escaped)
    made.plain = plain
    return made


# Characters that would end an attribute value or a tag: percent-encoded, so a link is the
# same printed raw or escaped (``&`` alone is left: it cannot make markup).
_UNSAFE_IN_LINK = re.compile(r"[\"'<>`\s\\]")


def link(value: object) -> Text:
    """An http(s) URL as :class:`Text` (anything else, or a scheme like ``javascript:``, is
    empty)."""
    if not isinstance(value, str) or not value:
        return text("")
    try:
        scheme = urlsplit(value.strip()).scheme.lower()
    except ValueError:
        return text("")
    if scheme not in ("http", "https"):
        return text("")
    quoted = _UNSAFE_IN_LINK.sub(lambda m: f"%{ord(m.group()):02X}", value.strip())
    made = str.__new__(Text, quoted.replace("&", "&amp;"))
    made.plain = quoted
    return made


def _dates(prefix: str, when: datetime, config: Config) -> dict[str, Text]:
    return {
        prefix: text(format_entry_time(when, config.date_format)),
        f"{prefix}_iso": text(iso_utc(when)),
        f"{prefix}_822": text(format_datetime(when, usegmt=True)),
    }


def _channel(view: FeedView, title: str, options: Mapping[str, str]) -> dict[str, Any]:
    """A subscription's variables, unprefixed (the ``Channels`` loop)."""
    values: dict[str, Any] = {key.lower(): text(value) for key, value in options.items()}
    values.update(
        name=text(view.name),
        url=link(view.url),
        link=link(view.site),
        title=text(title or view.name),
        title_plain=text(title or view.name),
        message=text(view.reason if view.failing else ""),
        slug=text(view.slug),
    )
    return values


class _Item(Scope):
    """An item's variables, each made when a template first asks for it (a template uses
    a dozen of forty); ``channel_<key>`` is its feed's ``<key>``."""

    __slots__ = ("channel", "config", "fields")

    def __init__(
        self, fields: EntryFields, channel: Mapping[str, Any], config: Config, **eager: Any
    ) -> None:
        super().__init__(eager)
        self.fields = fields
        self.channel = channel
        self.config = config

    def __missing__(self, key: str) -> Any:
        make = _ITEM_VALUES.get(key)
        if make is not None:
            value = self[key] = make(self)
            return value
        if key.startswith("channel_"):
            value = self.channel.get(key[8:])
            if value is not None:
                return value
        return super().__missing__(key)


def _time(attr: str, kind: str) -> Callable[[_Item], Text]:
    def make(item: _Item) -> Text:
        when: datetime = getattr(item.fields, attr)
        if kind == "iso":
            return text(iso_utc(when))
        if kind == "822":
            return text(format_datetime(when, usegmt=True))
        return text(format_entry_time(when, item.config.date_format))

    return make


def _title(item: _Item) -> Markup:
    return Markup(item["title_plain"].escaped)  # noqa: S704 - escaped text


def _content(item: _Item) -> Markup:
    return Markup(item.fields.content)  # noqa: S704 - the sanitizer's output, stored sanitized


def _permalink(item: _Item) -> Text:
    fields = item.fields
    return text("true" if fields.link and fields.id == fields.link else "false")


_ITEM_VALUES: dict[str, Callable[[_Item], Any]] = {
    "id": lambda i: text(i.fields.id),
    "link": lambda i: link(i.fields.link),
    "title": _title,
    "title_plain": lambda i: text(i.fields.title),
    "content": _content,
    "summary": _content,
    "author": lambda i: text(i.fields.author),
    "author_name": lambda i: i["author"],
    "creator": lambda i: i["author"],
    "guid_ispermalink": _permalink,
}
for _prefix, _attr in (("date", "published"), ("published", "published"), ("updated", "updated")):
    _ITEM_VALUES[_prefix] = _time(_attr, "")
    _ITEM_VALUES[f"{_prefix}_iso"] = _time(_attr, "iso")
    _ITEM_VALUES[f"{_prefix}_822"] = _time(_attr, "822")


def planet_values(
    config: Config,
    entries: Sequence[Entry],
    feeds: Mapping[str, FeedView],
    titles: Mapping[str, str],
    now: datetime,
) -> dict[str, Any]:
    """Every variable of a template: the planet's, ``Items`` and ``Channels`` (lowercase)."""
    options = {sub.url: sub.options for sub in config.subscriptions}
    channels = {
        url: _channel(view, titles.get(url, ""), options.get(url, {}))
        for url, view in feeds.items()
    }
    items = []
    last_day = last_channel = None
    empty = text("")
    for entry in entries:
        fields = entry_fields(entry)
        channel = channels.get(fields.feed_url)
        if channel is None:
            view = FeedView(fields.feed_url, fields.feed_url, None)
            channel = channels[fields.feed_url] = _channel(view, "", {})
        # Venus compares the formatted days: a new_date_format of months groups by month.
        day = format_day(fields.published, config.new_date_format)
        new_date = day != last_day
        new_channel = new_date or fields.feed_url != last_channel
        last_day, last_channel = day, fields.feed_url
        items.append(
            _Item(
                fields,
                channel,
                config,
                new_date=text(day) if new_date else empty,
                new_channel=channel["url"] if new_channel else empty,
            )
        )
    values: dict[str, Any] = {key.lower(): text(value) for key, value in config.options.items()}
    values.update(
        name=text(config.name),
        link=link(config.link),
        owner_name=text(config.owner_name),
        owner_email=text(config.owner_email),
        generator=text(GENERATOR),
        **_dates("date", now, config),
        feed=link(config.options.get("feed")),
        feedtype=text(config.options.get("feedtype", "")),
        items=items,
        channels=sorted((channels[url] for url in feeds), key=lambda c: c["name"].plain.casefold()),
    )
    return values
