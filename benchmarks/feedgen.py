"""Deterministic, realistic feed documents for benchmarks (and a loopback feed farm).

``make_feed(kind, n_entries, seed)`` returns the bytes of an RSS 2.0 (``"rss"``), Atom 1.0
(``"atom"``) or RSS 1.0 / RDF (``"rdf"``) document. Entries carry blog-like HTML: headings,
paragraphs with inline markup, absolute and relative links, images (some relative), a list,
a blockquote, a ``<pre><code>`` block, named and numeric character references, non-ASCII
text, and the usual attributes a sanitizer has to strip (``class``, ``style``, ``onclick``,
now and then an ``<iframe>`` or ``<script>``). A 20-entry feed is about 100-120 KB.

The same ``(kind, n_entries, seed)`` always gives the same bytes (``random.Random(seed)``;
dates count back from a fixed instant), so runs are comparable and a farm can serve a
feed and its ETag without storing it.

Run it to print document sizes: ``.venv/bin/python benchmarks/feedgen.py``, or
``.venv/bin/python benchmarks/feedgen.py --kind atom --entries 20 --seed 7 --dump``.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from html import escape

KINDS = ("rss", "atom", "rdf")

#: Entries count back from here (a fixed instant keeps the output deterministic).
EPOCH = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)

CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "rdf": "application/rdf+xml; charset=utf-8",
}

_WORDS = (
    "the of and to in is that for it as with was on be by this are or from at an but not "
    "have has which one all we can there their more if will about would what so up out "
    "feed river planet reactor deferred callback thread process worker parser entry "
    "snapshot store render template cache header request response server client socket "
    "protocol transport buffer stream queue lock event loop timer latency throughput "
    "memory garbage collector interpreter module package release version patch build "
    "test fixture benchmark profile sample median percentile outlier regression "
    "network packet route proxy gateway certificate handshake cipher session cookie "
    "database index query table column schema migration transaction commit rollback "
    "kernel scheduler syscall filesystem inode journal block device driver firmware "
    "garden river mountain coffee bicycle autumn library museum concert weekend "
    "morning evening neighbour kitchen recipe bread tomato harvest rain window"
).split()

_NON_ASCII = ("café", "naïve", "Zürich", "São Paulo", "résumé", "Ελληνικά", "日本語", "Kraków")
# As they appear in the HTML (entity references are decoded by the reader, not by us).
_ENTITIES = ("&mdash;", "&hellip;", "&#8217;", "&nbsp;", "&amp;", "&copy;", "&#x2013;", "&lt;3")
_INLINE = ("em", "strong", "code", "i", "b", "abbr")
_CODE_LINES = (
    "from twisted.internet import reactor, task",
    "def tick(count):",
    '    print(f"tick {count} < {limit} && ok")',
    "loop = task.LoopingCall.withCount(tick)",
    "loop.start(0.005, now=False)",
    "if lag > 0.050 and not quiet:",
    "    log.warn('reactor stalled for {ms} ms', ms=lag * 1000)",
    "for entry in sorted(entries, key=river_key, reverse=True):",
    "    yield render(entry)  # <entry> & </entry>",
    "reactor.run()",
)


class _Writer:
    """Builds one feed's entry HTML from a seeded random source."""

    def __init__(self, seed: int, salt: int = 0) -> None:
        self.rng = random.Random(seed * 7919 + salt)
        self.seed = seed
        self.site = f"https://blog{seed}.example.org"

    def words(self, lo: int, hi: int) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(lo, hi)))

    def title(self) -> str:
        text = self.words(3, 9).capitalize()
        if self.rng.random() < 0.3:
            text += " " + self.rng.choice(("&amp;", "&mdash;", "—", "&")) + " " + self.words(1, 3)
        return text

    def link(self) -> str:
        r = self.rng.random()
        slug = "-".join(self.words(2, 4).split())
        if r < 0.35:
            href = f"/{2020 + self.rng.randint(0, 6)}/{self.rng.randint(1, 12):02d}/{slug}/"
        elif r < 0.45:
            href = f"../notes/{slug}.html"
        elif r < 0.5:
            href = f"#{slug}"
        else:
            host = self.rng.choice(("example.com", "docs.example.net", "twistedmatrix.com"))
            href = f"https://{host}/{slug}"
        attrs = ""
        if self.rng.random() < 0.2:
            attrs += ' class="external" target="_blank"'
        if self.rng.random() < 0.05:
            attrs += ' onclick="track(this)"'
        return f'<a href="{href}"{attrs}>{self.words(1, 4)}</a>'

    def sentence(self) -> str:
        parts = [self.words(4, 14)]
        for _ in range(self.rng.randint(0, 2)):
            r = self.rng.random()
            if r < 0.4:
                parts.append(self.link())
            elif r < 0.7:
                tag = self.rng.choice(_INLINE)
                parts.append(f"<{tag}>{self.words(1, 3)}</{tag}>")
            elif r < 0.85:
                parts.append(self.rng.choice(_ENTITIES))
            else:
                parts.append(self.rng.choice(_NON_ASCII))
            parts.append(self.words(2, 10))
        text = " ".join(parts)
        return text[0].upper() + text[1:] + self.rng.choice((".", ".", ".", "?", "!", "&hellip;"))

    def paragraph(self) -> str:
        attrs = ' style="margin:0 0 1em"' if self.rng.random() < 0.1 else ""
        body = " ".join(self.sentence() for _ in range(self.rng.randint(3, 6)))
        return f"<p{attrs}>{body}</p>"

    def image(self) -> str:
        n = self.rng.randint(1, 999)
        src = (
            f"/wp-content/uploads/img-{n}.jpg"
            if self.rng.random() < 0.5
            else (f"https://cdn.example.net/{self.seed}/photo-{n}.png")
        )
        return (
            f'<figure class="wp-block-image"><img src="{src}" alt="{self.words(2, 5)}" '
            f'width="{self.rng.choice((640, 800, 1024))}" height="{self.rng.choice((360, 480))}" '
            f'class="aligncenter size-large" srcset="{src} 1x, {src} 2x" />'
            f"<figcaption>{self.words(3, 8)}</figcaption></figure>"
        )

    def code(self) -> str:
        start = self.rng.randint(0, len(_CODE_LINES) - 4)
        lines = _CODE_LINES[start : start + self.rng.randint(4, 7)]
        return '<pre class="highlight"><code>' + escape("\n".join(lines)) + "</code></pre>"

    def extras(self) -> str:
        r = self.rng.random()
        if r < 0.08:
            return (
                '<iframe width="560" height="315" src="https://www.youtube.com/embed/'
                f'{self.rng.randint(10**9, 10**10)}" allowfullscreen></iframe>'
            )
        if r < 0.12:
            return "<script>window.stats && stats.push(['post', 1]);</script>"
        return ""

    def entry_html(self, paragraphs: int = 6) -> str:
        blocks = [self.paragraph(), self.paragraph()]
        if self.rng.random() < 0.7:
            blocks.append(self.image())
        blocks.append(f"<h2>{self.words(2, 6).capitalize()}</h2>")
        blocks.append(self.paragraph())
        blocks.append(self.code())
        blocks.append(self.paragraph())
        items = "".join(f"<li>{self.sentence()}</li>" for _ in range(self.rng.randint(2, 5)))
        blocks.append(f"<ul>{items}</ul>")
        blocks.append(f"<blockquote><p>{self.sentence()}</p></blockquote>")
        blocks.append(self.paragraph())
        blocks.append(self.extras())
        blocks.extend(self.paragraph() for _ in range(paragraphs - 5))
        return "\n".join(b for b in blocks if b)


@dataclass(frozen=True)
class _Post:
    title: str
    link: str
    guid: str
    author: str
    published: datetime
    updated: datetime
    html: str
    summary: str
    categories: list[str]


def _entry_data(w: _Writer, n_entries: int, paragraphs: int) -> list[_Post]:
    entries = []
    when = EPOCH - timedelta(minutes=w.rng.randint(0, 600))
    for i in range(n_entries):
        slug = "-".join(w.words(2, 5).split())
        when -= timedelta(minutes=w.rng.randint(30, 60 * 36))
        html = w.entry_html(paragraphs)
        summary = w.sentence()
        edited = w.rng.random() < 0.3
        entries.append(
            _Post(
                title=w.title(),
                link=f"{w.site}/{when:%Y/%m}/{slug}/",
                guid=f"{w.site}/?p={100000 + w.seed * 1000 + n_entries - i}",
                author=w.rng.choice(("Alice Example", "Bob Q. Writer", "Zoë Ångström")),
                published=when,
                updated=when + timedelta(hours=w.rng.randint(1, 48)) if edited else when,
                html=html,
                summary=summary,
                categories=sorted({w.rng.choice(_WORDS) for _ in range(w.rng.randint(1, 4))}),
            )
        )
    return entries


def _cdata(html: str) -> str:
    return "<![CDATA[" + html.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _text(value: str) -> str:
    """Character data for an XML text node (entity references in titles kept as text)."""
    return escape(value, quote=False)


def _rss(w: _Writer, entries: list[_Post]) -> str:
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">',
        "<channel>",
        f"<title>{_text(w.title())}</title>",
        f"<link>{w.site}/</link>",
        f'<atom:link href="{w.site}/feed/" rel="self" type="application/rss+xml"/>',
        f"<description>{_text(w.sentence())}</description>",
        f"<lastBuildDate>{format_datetime(EPOCH)}</lastBuildDate>",
        "<language>en-GB</language>",
        "<generator>feedgen (planet benchmarks)</generator>",
    ]
    for e in entries:
        out.append("<item>")
        out.append(f"<title>{_text(e.title)}</title>")
        out.append(f"<link>{e.link}</link>")
        out.append(f'<guid isPermaLink="false">{e.guid}</guid>')
        out.append(f"<dc:creator>{_text(e.author)}</dc:creator>")
        out.append(f"<pubDate>{format_datetime(e.published)}</pubDate>")
        out.extend(f"<category>{c}</category>" for c in e.categories)
        out.append(f"<description>{_text(e.summary)}</description>")
        out.append(f"<content:encoded>{_cdata(e.html)}</content:encoded>")
        out.append("</item>")
    out.append("</channel>\n</rss>\n")
    return "\n".join(out)


def _atom_date(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _atom(w: _Writer, entries: list[_Post]) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en" xml:base="{w.site}/">',
        f'<title type="text">{_text(w.title())}</title>',
        f"<subtitle>{_text(w.sentence())}</subtitle>",
        f'<link rel="alternate" type="text/html" href="{w.site}/"/>',
        f'<link rel="self" type="application/atom+xml" href="{w.site}/atom.xml"/>',
        f"<id>tag:blog{w.seed}.example.org,2020:feed</id>",
        f"<updated>{_atom_date(EPOCH)}</updated>",
        '<generator uri="https://example.org/feedgen">feedgen</generator>',
    ]
    for e in entries:
        out.append("<entry>")
        out.append(f'<title type="html">{_text(e.title)}</title>')
        out.append(f'<link rel="alternate" type="text/html" href="{e.link}"/>')
        out.append(f"<id>{e.guid}</id>")
        out.append(f"<published>{_atom_date(e.published)}</published>")
        out.append(f"<updated>{_atom_date(e.updated)}</updated>")
        out.append(f"<author><name>{_text(e.author)}</name></author>")
        out.extend(f'<category term="{c}"/>' for c in e.categories)
        out.append(f'<summary type="html">{escape(e.summary)}</summary>')
        out.append(f'<content type="html">{escape(e.html)}</content>')
        out.append("</entry>")
    out.append("</feed>\n")
    return "\n".join(out)


def _rdf(w: _Writer, entries: list[_Post]) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/">',
        f'<channel rdf:about="{w.site}/index.rdf">',
        f"<title>{_text(w.title())}</title>",
        f"<link>{w.site}/</link>",
        f"<description>{_text(w.sentence())}</description>",
        f"<dc:date>{EPOCH.isoformat()}</dc:date>",
        "<items><rdf:Seq>",
    ]
    out.extend(f'<rdf:li rdf:resource="{e.link}"/>' for e in entries)
    out.append("</rdf:Seq></items>\n</channel>")
    for e in entries:
        out.append(f'<item rdf:about="{e.link}">')
        out.append(f"<title>{_text(e.title)}</title>")
        out.append(f"<link>{e.link}</link>")
        out.append(f"<dc:creator>{_text(e.author)}</dc:creator>")
        out.append(f"<dc:date>{e.published.isoformat()}</dc:date>")
        out.extend(f"<dc:subject>{c}</dc:subject>" for c in e.categories)
        out.append(f"<description>{escape(e.summary)}</description>")
        out.append(f"<content:encoded>{_cdata(e.html)}</content:encoded>")
        out.append("</item>")
    out.append("</rdf:RDF>\n")
    return "\n".join(out)


_BUILDERS = {"rss": _rss, "atom": _atom, "rdf": _rdf}


def make_feed(kind: str, n_entries: int = 20, seed: int = 0) -> bytes:
    """The UTF-8 bytes of one feed document of ``kind`` ("rss", "atom" or "rdf")."""
    try:
        build = _BUILDERS[kind]
    except KeyError:
        raise ValueError(f"unknown feed kind {kind!r}; expected one of {KINDS}") from None
    # Mix the kind in, so feed 7 as RSS and feed 7 as Atom are different blogs' posts.
    w = _Writer(seed, KINDS.index(kind))
    # Atom escapes its HTML ("<" is "&lt;"), so one paragraph less keeps the sizes alike.
    paragraphs = 5 if kind == "atom" else 6
    return build(w, _entry_data(w, n_entries, paragraphs)).encode("utf-8")


def make_entry_html(seed: int, paragraphs: int = 6) -> str:
    """One full post's HTML as in a 20-entry feed (about 4-5 KB), before sanitizing."""
    return _Writer(seed, 17).entry_html(paragraphs)


def make_short_html(seed: int) -> str:
    """A shorter post (about 1-2 KB of HTML): two or three paragraphs, now and then an
    image or a code block."""
    w = _Writer(seed, 23)
    blocks = [w.paragraph()]
    r = w.rng.random()
    if r < 0.3:
        blocks.append(w.image())
    elif r < 0.45:
        blocks.append(w.code())
    blocks.append(w.paragraph())
    if w.rng.random() < 0.3:
        blocks.append(w.paragraph())
    return "\n".join(blocks)


def feed_url(index: int, kind: str | None = None) -> str:
    """A stable subscription URL for feed ``index`` (its kind rotates with the index)."""
    kind = kind or KINDS[index % len(KINDS)]
    return f"https://blog{index}.example.org/feed/{kind}.xml"


def make_feeds(count: int, n_entries: int = 20, seed: int = 0) -> list[tuple[str, str, bytes]]:
    """``count`` distinct feeds as ``(kind, url, body)``, the kinds in rotation."""
    feeds = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        feeds.append((kind, feed_url(seed + i, kind), make_feed(kind, n_entries, seed + i)))
    return feeds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=KINDS, help="only this kind (default: all three)")
    ap.add_argument("--entries", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=30, help="feeds per kind for the size report")
    ap.add_argument("--dump", action="store_true", help="write one document to stdout")
    args = ap.parse_args(argv)
    if args.dump:
        sys.stdout.buffer.write(make_feed(args.kind or "rss", args.entries, args.seed))
        return 0
    print(f"{'kind':6} {'feeds':>5} {'entries':>7} {'min KB':>7} {'mean KB':>8} {'max KB':>7}")
    for kind in (args.kind,) if args.kind else KINDS:
        sizes = [len(make_feed(kind, args.entries, args.seed + i)) for i in range(args.count)]
        print(
            f"{kind:6} {args.count:5d} {args.entries:7d} {min(sizes) / 1024:7.1f} "
            f"{sum(sizes) / len(sizes) / 1024:8.1f} {max(sizes) / 1024:7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
