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
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup

from planet import __version__
from planet.config import Config
from planet.model import Entry
from planet.render import FeedView, entry_fields, format_day, format_entry_time, iso_utc

__all__ = ["Text", "link", "planet_values", "text"]

GENERATOR = f"planet {__version__}"


class Text(Markup):
    """Escaped text: prints as it is in HTML; ``plain`` is the text itself."""

    plain: str

    @property
    def escaped(self) -> str:
        return str.__str__(self)


def text(value: object) -> Text:
    """``value`` (a string, a number, else nothing) as :class:`Text`."""
    plain = value if isinstance(value, str) else "" if value is None else str(value)
    made = Text(html.escape(plain, quote=True))
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
    made = Text(quoted.replace("&", "&amp;"))
    made.plain = quoted
    return made


def _html(value: str) -> Markup:
    return Markup(value)  # noqa: S704 - the sanitizer's output, stored sanitized


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
    for entry in entries:
        fields = entry_fields(entry)
        view = feeds.get(fields.feed_url) or FeedView(fields.feed_url, fields.feed_url, None)
        channel = channels.get(fields.feed_url) or _channel(view, "", {})
        item: dict[str, Any] = {f"channel_{key}": value for key, value in channel.items()}
        day = format_day(fields.published, config.new_date_format)
        new_date = day != last_day
        new_channel = new_date or fields.feed_url != last_channel
        last_day, last_channel = day, fields.feed_url
        title = text(fields.title)
        item.update(
            _dates("date", fields.published, config),
            **_dates("published", fields.published, config),
            **_dates("updated", fields.updated, config),
            channel_url=link(view.url),
            id=text(fields.id),
            link=link(fields.link),
            guid_ispermalink=text("true" if fields.link and fields.id == fields.link else "false"),
            title=_html(title.escaped),
            title_plain=title,
            content=_html(fields.content),
            summary=_html(fields.content),
            author=text(fields.author),
            author_name=text(fields.author),
            creator=text(fields.author),
            new_date=text(day) if new_date else text(""),
            new_channel=link(view.url) or text(view.url) if new_channel else text(""),
        )
        items.append(item)
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
        channels=sorted(channels.values(), key=lambda c: c["name"].plain.casefold()),
    )
    return values
