"""Builders for small, real feed documents used across the tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from email.utils import format_datetime
from xml.sax.saxutils import escape

from attrs import frozen


@frozen
class Item:
    title: str
    link: str
    when: datetime
    content: str = "<p>Hello</p>"
    author: str = "Alice"
    id: str | None = None

    @property
    def guid(self) -> str:
        return self.id or self.link


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


def atom(title: str, site: str, items: Sequence[Item]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{escape(title)}</title>",
        f'<link rel="alternate" href="{escape(site)}"/>',
        f"<id>{escape(site)}</id>",
        "<updated>2026-06-23T20:06:00Z</updated>",
    ]
    for it in items:
        parts += [
            "<entry>",
            f"<title>{escape(it.title)}</title>",
            f'<link rel="alternate" href="{escape(it.link)}"/>',
            f"<id>{escape(it.guid)}</id>",
            f"<published>{it.when.strftime('%Y-%m-%dT%H:%M:%SZ')}</published>",
            f"<updated>{it.when.strftime('%Y-%m-%dT%H:%M:%SZ')}</updated>",
            f"<author><name>{escape(it.author)}</name></author>",
            f'<content type="html">{escape(it.content)}</content>',
            "</entry>",
        ]
    parts.append("</feed>")
    return "\n".join(parts).encode("utf-8")


def rss2(title: str, site: str, items: Sequence[Item]) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>',
        f"<title>{escape(title)}</title><link>{escape(site)}</link>",
        "<description>test</description>",
    ]
    for it in items:
        parts += [
            "<item>",
            f"<title>{escape(it.title)}</title><link>{escape(it.link)}</link>",
            f'<guid isPermaLink="false">{escape(it.guid)}</guid>',
            f"<pubDate>{format_datetime(it.when, usegmt=True)}</pubDate>",
            f"<dc:creator>{escape(it.author)}</dc:creator>",
            f"<description>{escape(it.content)}</description>",
            "</item>",
        ]
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")


def rss1(title: str, site: str, items: Sequence[Item]) -> bytes:
    seq = "".join(f'<rdf:li rdf:resource="{escape(it.link)}"/>' for it in items)
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        ' xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/">',
        f'<channel rdf:about="{escape(site)}"><title>{escape(title)}</title>'
        f"<link>{escape(site)}</link><description>test</description>"
        f"<items><rdf:Seq>{seq}</rdf:Seq></items></channel>",
    ]
    for it in items:
        parts += [
            f'<item rdf:about="{escape(it.link)}">',
            f"<title>{escape(it.title)}</title><link>{escape(it.link)}</link>",
            f"<dc:date>{it.when.strftime('%Y-%m-%dT%H:%M:%SZ')}</dc:date>",
            f"<dc:creator>{escape(it.author)}</dc:creator>",
            f"<content:encoded>{escape(it.content)}</content:encoded>",
            "</item>",
        ]
    parts.append("</rdf:RDF>")
    return "\n".join(parts).encode("utf-8")
