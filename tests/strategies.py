"""Hypothesis strategies for hostile feed documents, for the fuzz tests.

Whole documents are built structurally (RSS 2.0, RSS 1.0/RDF, Atom 1.0, JSON Feed) with
elements present or missing, any code point in text, XML-illegal characters, entities, CDATA,
odd dates and hostile URLs; entry HTML mixes broken nested markup with the shared XSS
corpus. :func:`mutated_documents` damages real feeds at the byte level instead.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from functools import cache
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from feeds import Item, at, atom, rss1, rss2
from hypothesis import strategies as st
from test_formats import ANY_TEXT
from test_sanitize import PAYLOADS_PATH, html_ish

__all__ = [
    "CONTENT_TYPES",
    "DEEP_HTML",
    "feed_documents",
    "HTML",
    "html_fragments",
    "mutated_documents",
    "SOUP_TAGS",
    "structured_documents",
    "tag_soups",
    "urls",
]

Draw = Any  # hypothesis' draw function inside @st.composite

CORPUS = PAYLOADS_PATH.parents[1]

# -- text ------------------------------------------------------------------------------------

ENTITIES = [
    "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&nbsp;", "&eacute;", "&bogus;", "&#0;",
    "&#1;", "&#x1b;", "&#xD800;", "&#xFFFE;", "&#99999999;", "&#x110000;", "&#106;",
    "&#x3C;script&#x3E;", "&", "&#", "&#x;", "&lt;script&gt;alert(1)&lt;/script&gt;",
]  # fmt: skip


def xml_text(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``inner`` as a feed may carry it in an element: escaped, in CDATA, raw, or with entities."""
    return st.one_of(
        inner.map(escape),
        # "]]>" inside the drawn text ends the section early, as in broken feeds.
        inner.map(lambda s: f"<![CDATA[{s}]]>"),
        inner,
        st.lists(inner.map(escape) | st.sampled_from(ENTITIES), max_size=6).map("".join),
    )


# -- URLs ------------------------------------------------------------------------------------

HOSTILE_URLS = [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "java\tscript:x",
    "java\x00script:x", "\x01javascript:x", "jav&#x09;ascript:x", "&#106;avascript:x",
    "`javascript:x`", "'javascript:x'", "javascript&colon;x", "data:text/html,<script>x</script>",
    "data:image/svg+xml;base64,PHN2Zz4=", "vbscript:msgbox(1)", "livescript:x", "mocha:x",
    "http://x.example/a?b=1&c=<2>", "https://y.example/", "HTTP://Z.EXAMPLE:443/p/#f",
    "//proto.example/rel", "/abs/path", "rel/path", "../../up", "?q=1", "#frag", "",
    " ", "mailto:a@b.example", "ftp://f.example/", "feed:http://x.example/", "http://[::1",
    "http://[oops/", "http://a b.example/", "http://例え.jp/パス", "http:x", "https:",
    "http://x.example/\ud800", "http://x.example/\x1b", "\x00", "//\\evil.example",
    # Bracketed hosts and ports urlsplit refuses (issue 19), and good ones.
    "http://[x]/", "http://]/", "http://a[b]/", "https://[::1/p", "//[x]/", "http://a:99999/",
    "http://a:port/", "http://[::1]/", "http://[2001:db8::1]:8080/p", "http://[v1.x]/",
]  # fmt: skip
_URL_PREFIXES = [
    "http://x.example/", "https://", "//", "/", "", "javascript:", "data:text/html,",
    "vbscript:", "mailto:", "JAVASCRIPT:", "java\nscript:", "\x0bjavascript:", "feed:",
    "http://[", "https://[::1]:", "http://x.example:",
]  # fmt: skip

urls = st.one_of(
    st.sampled_from(HOSTILE_URLS),
    st.tuples(st.sampled_from(_URL_PREFIXES), ANY_TEXT).map("".join),
    ANY_TEXT,
)

# -- dates -----------------------------------------------------------------------------------

ODD_DATES = [
    "", "yesterday", "Tue, 31 Feb 2026 25:61:61 +9999", "2026-13-45T99:99:99Z", "0000-00-00",
    "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "1970-01-01T00:00:00Z", "-1",
    "99999999999999", "Sun, 06 Nov 1994 08:49:37 GMT", "2026-06-24", "20260624T090000Z",
    "2026-W26-3", "Mon, 1 Jan 0001 00:00:00 +0100", "2026-06-24T09:00:00.123456789+05:30",
    "Fri, 31 Dec 9999 23:59:59 -2359", "2038-01-19T03:14:08Z", "1901-12-13T20:45:51Z",
    "2100-01-01T00:00:00Z", "2026-06-24T09:00:01Z", "Wed, 24 Jun 2026 09:00:01 GMT",
    "2026-06-24T09:00:00", "24/06/2026", "٢٠٢٦-٠٦-٢٤T09:00:00Z", "2026-06-24T09:00:00z",
]  # fmt: skip

_offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
    ),
)
_moments = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=_offsets),
    # Around the fetch time of the tests, so that entries from the near future are common.
    st.timedeltas(min_value=-timedelta(days=3), max_value=timedelta(days=3)).map(
        lambda d: at(2026, 6, 24, 9, 0) + d
    ),
)


def _rfc822(when: datetime) -> str:
    try:
        return format_datetime(when)
    except (ValueError, OverflowError):
        return when.isoformat()


dates = st.one_of(
    st.sampled_from(ODD_DATES),
    _moments.map(datetime.isoformat),
    _moments.map(_rfc822),
    _moments.map(lambda w: w.strftime("%Y-%m-%dT%H:%M:%SZ")),
    ANY_TEXT,
)

# -- HTML ------------------------------------------------------------------------------------


@cache
def xss_payloads() -> tuple[str, ...]:
    """The payload strings of the shared XSS corpus, or none when it is absent."""
    if not PAYLOADS_PATH.exists():
        return ()
    records = json.loads(PAYLOADS_PATH.read_text(encoding="utf-8"))
    return tuple(str(record["payload"]) for record in records)


_TAGS = [
    "p", "div", "span", "a", "img", "script", "svg", "math", "table", "tr", "td", "b", "pre",
    "code", "iframe", "style", "form", "input", "h1", "h6", "noscript", "template", "textarea",
    "title", "xmp", "select", "option", "video", "source", "base", "meta", "link", "object",
    "embed", "br", "plaintext", "body", "html", "animate", "set", "use", "foreignObject",
    "mglyph", "annotation-xml", "details", "blockquote", "x:script", "listing", "frameset",
]  # fmt: skip
_ATTRIBUTES = [
    "href", "src", "onerror", "onload", "ONCLICK", "style", "srcset", "poster", "cite",
    "xlink:href", "formaction", "action", "background", "title", "class", "id",
    "attributeName", "to", "values", "data", "xmlns", "lang", "width", "alt", "type", "rel",
]  # fmt: skip
_attribute_values = st.one_of(urls, html_ish, ANY_TEXT, st.just("alert(1)"))


def _attribute(name: str, value: str, quoting: int) -> str:
    if quoting == 0:
        return f" {name}={quoteattr(value)}"
    if quoting == 1:
        return f" {name}='{value}'"
    return f" {name}={value}"


_tags = st.sampled_from(_TAGS)
_attribute_lists = st.lists(
    st.builds(_attribute, st.sampled_from(_ATTRIBUTES), _attribute_values, st.integers(0, 2)),
    max_size=3,
).map("".join)
# Close properly, not at all, or with the wrong tag: broken nesting is the point.
_END_TAGS = ["</{}>", "", "</p>", "</div>", "</{}"]
_end_tags = st.sampled_from(_END_TAGS)


def _html_element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(_tags, _attribute_lists, st.lists(children, max_size=4), _end_tags).map(
        lambda p: f"<{p[0]}{p[1]}>{''.join(p[2])}{p[3].format(p[0])}"
    )


_leaves = st.one_of(ANY_TEXT.map(escape), st.sampled_from(ENTITIES), html_ish)
nested_html = st.recursive(_leaves, _html_element, max_leaves=12)


# -- tag soup: what an HTML5 parser nests deeply, or multiplies (issue 19) ------------------

#: Tags of every kind the HTML5 tree builder treats its own way: formatting (re-created
#: after a block closes them), tables (foster parenting), select, lists, headings, raw
#: text, SVG and MathML with their integration points, forms, templates, buttons.
SOUP_NAMES = (
    "a b i u s em font nobr code p div span ul ol li dd dt dl table tbody thead tfoot tr td "
    "th caption colgroup col select option optgroup form button svg math mi mo mtext desc "
    "foreignObject title annotation-xml g h1 h2 h3 pre listing plaintext textarea xmp style "
    "script template noscript iframe noembed br img hr input applet object marquee ruby rb "
    "rt rp rtc frameset body html head x y section blockquote image area wbr"
).split()
#: The ones whose content nh3's output shows as markup (not as raw text), for measuring.
SOUP_TAGS = frozenset(n.lower() for n in SOUP_NAMES) - set(
    "script style xmp iframe noembed noscript plaintext textarea title".split()
)
_SOUP_ATTRIBUTES = [
    "", "", " title=1", " title=2", ' a="x>y"', " a='<b>'", ' ="x>"', " color=red",
    " encoding=text/html", " type=hidden", "/", " x/", " a=b/",
]  # fmt: skip
_SOUP_OTHER = [
    "x", " ", "y z", "&amp;", "\n", "<!-->", "<!--c-->", "<!---->", "<![CDATA[x]]>",
    "<!DOCTYPE html>", "<?pi>", "</>", "</ x>", "<", "a < b",
]  # fmt: skip
_soup_names = st.sampled_from(SOUP_NAMES)
_soup_token = st.one_of(
    st.tuples(_soup_names, st.sampled_from(_SOUP_ATTRIBUTES)).map(lambda t: f"<{t[0]}{t[1]}>"),
    _soup_names.map(lambda name: f"</{name}>"),
    st.sampled_from(_SOUP_OTHER),
)
#: Random tag soups, and short ones repeated: repetition is how a hostile entry nests
#: thousands deep ("<ul>" x 150,000) or makes the parser re-create elements at every step.
tag_soups = st.one_of(
    st.lists(_soup_token, min_size=20, max_size=300).map("".join),
    st.tuples(
        st.lists(_soup_token, max_size=5).map("".join),
        st.lists(_soup_token, min_size=1, max_size=8).map("".join),
        st.integers(20, 200),
    ).map(lambda t: t[0] + t[1] * t[2]),
)

#: Entry HTML that nests far past planet.nesting.MAX_NESTING or multiplies the tree, each
#: shown to take seconds to minutes in nh3 before flattening (sizes kept small for tests).
DEEP_HTML = (
    "<ul>" * 700,
    "<div>" * 600 + "deep" + "</div>" * 600,
    "<p><span>" * 300 + "<script>alert(1)</script>",
    "".join(f"<p><b title={n}>x</p>" for n in range(200)),
    "<div><table>" + "x<br>" * 600,
    "<table><td>" * 300 + "<img src=x onerror=alert(1)>",
    "<svg>" + "<g>" * 600 + "<foreignObject><iframe src=javascript:alert(1)>",
    "<select>" + "<div><select></div><input>" * 200,
)
# Now and then (1 in 30): parsing and checking such HTML takes a while.
_deep_html = st.integers(0, 29).flatmap(
    lambda n: st.sampled_from(DEEP_HTML) if n == 0 else st.just("")
)


def html_fragments() -> st.SearchStrategy[str]:
    """Entry HTML: nested and broken markup, sanitizer bait, any text, the XSS corpus, and
    now and then nesting thousands deep."""
    options = [nested_html, html_ish, ANY_TEXT, st.tuples(_deep_html, nested_html).map("".join)]
    if xss_payloads():
        corpus = st.sampled_from(xss_payloads())
        options += [corpus, st.lists(corpus | nested_html, min_size=2, max_size=4).map("".join)]
    return st.one_of(options)


# -- XML documents ---------------------------------------------------------------------------

# Built once: making strategies anew inside every draw costs more than drawing from them.
HTML = html_fragments()
_html_values = xml_text(HTML)
_plain_text = xml_text(ANY_TEXT)
_date_values = xml_text(dates)
_escaped_urls = urls.map(escape)
_attr_urls = urls.map(quoteattr)
_ATOM_TYPES = [
    "",
    ' type="html"',
    ' type="text"',
    ' type="xhtml"',
    ' type="text/html"',
    ' type="bad"',
]
_atom_types = st.sampled_from(_ATOM_TYPES)
_JUNK_NAMES = ["foo", "x:bar", "content", "item", "entry", "html", "script", "rdf:li", "a"]
_junk = st.tuples(st.sampled_from(_JUNK_NAMES), _plain_text).map(
    lambda p: f"<{p[0]}>{p[1]}</{p[0]}>"
)
_declarations = st.sampled_from(
    [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<?xml version="1.0"?>',
        "",
        '<?xml version="1.1" encoding="utf-8"?>',
        '<?xml version="1.0" encoding="iso-8859-1"?>',
        '<?xml version="1.0" encoding="bogus-charset"?>',
        '<!DOCTYPE rss [<!ENTITY e "&#60;script&#62;">]>',
    ]
)
_xml_base = st.one_of(st.just(""), _attr_urls.map(lambda url: f" xml:base={url}"))


def _element(template: str, *values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``template`` (a str.format pattern) filled from ``values``."""
    return st.tuples(*values).map(lambda drawn: template.format(*drawn))


@st.composite
def _children(draw: Draw, options: list[st.SearchStrategy[str]], extra: Any = None) -> str:
    """Each of ``options`` present or missing, some junk elements, maybe in shuffled order."""
    parts = [draw(option) for option in options if draw(st.booleans())]
    parts += draw(st.lists(_junk, max_size=2))
    if extra is not None:
        parts += draw(extra)
    return "".join(draw(st.permutations(parts)) if draw(st.booleans()) else parts)


_xhtml_content = HTML.map(
    lambda html: (
        f'<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">{html}</div></content>'
    )
)
_atom_entries = _element(
    "<entry{}>{}</entry>",
    _xml_base,
    _children(
        [
            _element("<title{}>{}</title>", _atom_types, _html_values),
            _element(
                "<link rel={} href={}/>",
                st.sampled_from(["alternate", "self", "enclosure", ""]).map(quoteattr),
                _attr_urls,
            ),
            _element("<link href={}/>", _attr_urls),
            _element("<id>{}</id>", _plain_text),
            _element("<published>{}</published>", _date_values),
            _element("<updated>{}</updated>", _date_values),
            _element("<author><name>{}</name><uri>{}</uri></author>", _plain_text, _escaped_urls),
            _element("<summary{}>{}</summary>", _atom_types, _html_values),
            _element("<content{}>{}</content>", _atom_types, _html_values) | _xhtml_content,
        ]
    ),
)
atom_documents = _element(
    "{}<feed xmlns={}{}>{}</feed>",
    _declarations,
    st.sampled_from(["http://www.w3.org/2005/Atom", "http://purl.org/atom/ns#"]).map(quoteattr),
    _xml_base,
    _children(
        [
            _element("<title{}>{}</title>", _atom_types, _html_values),
            _element('<link rel="alternate" href={}/>', _attr_urls),
            _element('<link rel="self" href={}/>', _attr_urls),
            _element("<id>{}</id>", _plain_text),
            _element("<updated>{}</updated>", _date_values),
        ],
        st.lists(_atom_entries, max_size=4),
    ),
)

_rss2_items = _element(
    "<item>{}</item>",
    _children(
        [
            _element("<title>{}</title>", _html_values),
            _element("<link>{}</link>", _escaped_urls),
            _element(
                "<guid{}>{}</guid>",
                st.sampled_from(["", ' isPermaLink="true"', ' isPermaLink="false"']),
                xml_text(urls | ANY_TEXT),
            ),
            _element("<pubDate>{}</pubDate>", _date_values),
            _element("<dc:date>{}</dc:date>", _date_values),
            _element("<author>{}</author>", _plain_text),
            _element("<dc:creator>{}</dc:creator>", _plain_text),
            _element("<description>{}</description>", _html_values),
            _element("<content:encoded>{}</content:encoded>", _html_values),
            _element('<enclosure url={} type="audio/mpeg"/>', _attr_urls),
        ]
    ),
)
_SY_PERIODS = ["hourly", "daily", "weekly", "monthly", "yearly", "HOURLY", "fortnightly", ""]
_NUMBERS = ["0", "1", "60", "-5", "1e3", "²", "٣", "9" * 400, "9" * 5000, " 7 ", "", "0x10"]
_numbers = st.sampled_from(_NUMBERS) | ANY_TEXT.map(escape)
rss2_documents = _element(
    '{}<rss version={} xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    ' xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel>{}</channel></rss>',
    _declarations,
    st.sampled_from(["2.0", "0.91", "0.92", "", "3.0"]).map(quoteattr),
    _children(
        [
            _element("<title>{}</title>", _html_values),
            _element("<link>{}</link>", _escaped_urls),
            _element("<description>{}</description>", _html_values),
            _element("<ttl>{}</ttl>", _numbers),
            _element("<sy:updatePeriod>{}</sy:updatePeriod>", st.sampled_from(_SY_PERIODS)),
            _element("<sy:updateFrequency>{}</sy:updateFrequency>", _numbers),
            _element("<guid>{}</guid>", _plain_text),
        ],
        st.lists(_rss2_items, max_size=4),
    ),
)

_rss1_items = _element(
    "<item{}>{}</item>",
    st.one_of(st.just(""), _attr_urls.map(lambda url: f" rdf:about={url}")),
    _children(
        [
            _element("<title>{}</title>", _html_values),
            _element("<link>{}</link>", _escaped_urls),
            _element("<dc:date>{}</dc:date>", _date_values),
            _element("<dc:creator>{}</dc:creator>", _plain_text),
            _element("<description>{}</description>", _html_values),
            _element("<content:encoded>{}</content:encoded>", _html_values),
        ]
    ),
)
rss1_documents = _element(
    '{}<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
    ' xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/">'
    "<channel rdf:about={}>{}</channel>{}</rdf:RDF>",
    _declarations,
    _attr_urls,
    _children(
        [
            _element("<title>{}</title>", _html_values),
            _element("<link>{}</link>", _escaped_urls),
            _element("<description>{}</description>", _html_values),
        ]
    ),
    st.lists(_rss1_items, max_size=4).map("".join),
)


# -- JSON Feed -------------------------------------------------------------------------------

_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), ANY_TEXT)
json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)
_authors = st.fixed_dictionaries({}, optional={"name": ANY_TEXT | json_values, "url": urls})
_json_item = st.fixed_dictionaries(
    {},
    optional={
        "id": ANY_TEXT | urls | json_values,
        "url": urls | json_values,
        "external_url": urls,
        "title": HTML | json_values,
        "content_html": HTML | json_values,
        "content_text": HTML | json_values,
        "summary": HTML,
        "date_published": dates | json_values,
        "date_modified": dates | json_values,
        "author": _authors | json_values,
        "authors": st.lists(_authors | json_values, max_size=2) | json_values,
    },
)
_JSON_VERSIONS = ["https://jsonfeed.org/version/1", "https://jsonfeed.org/version/1.1"]
_json_feed = st.fixed_dictionaries(
    {
        "version": st.sampled_from(_JSON_VERSIONS) | json_values,
        "items": st.lists(_json_item | json_values, max_size=4) | json_values,
    },
    optional={
        "title": HTML | json_values,
        "home_page_url": urls | json_values,
        "feed_url": urls | json_values,
        "authors": st.lists(_authors, max_size=2) | json_values,
        "author": _authors | json_values,
    },
)


@st.composite
def json_documents(draw: Draw) -> bytes:
    """A JSON Feed with random, missing and wrongly typed members; sometimes nested absurdly."""
    if draw(st.integers(0, 19)) == 0:
        # Nesting deep enough to exhaust a recursive decoder.
        depth = draw(st.sampled_from([10, 1000, 100_000]))
        return b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + (
            b"[" * depth + b"]" * depth + b"}"
        )
    text = json.dumps(draw(_json_feed), ensure_ascii=draw(st.booleans()))
    # Lone surrogates (ensure_ascii=False) come out as the bytes a broken encoder writes.
    return text.encode("utf-8", "surrogatepass")


# -- whole documents -------------------------------------------------------------------------


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


#: A whole feed document of any of the four formats, built element by element.
structured_documents = st.one_of(
    atom_documents.map(_to_bytes),
    rss2_documents.map(_to_bytes),
    rss1_documents.map(_to_bytes),
    json_documents(),
)


def _builder_seeds() -> list[bytes]:
    items = [
        Item("Newer & <b>bold</b>", "http://blog.example/2", at(2026, 6, 23, 20, 6), "<p>two</p>"),
        Item("Älter", "/relative/1", at(2026, 6, 22, 8, 0), '<img src="x" onerror="alert(1)">'),
    ]
    json_feed = {
        "version": _JSON_VERSIONS[1],
        "title": "JSON",
        "items": [{"id": "1", "url": "http://j.example/1", "content_html": "<p>j</p>"}],
    }
    return [
        atom("Blog", "http://blog.example/", items),
        rss2("Blog", "http://blog.example/", items),
        rss1("Blog", "http://blog.example/", items),
        json.dumps(json_feed).encode(),
    ]


@cache
def seed_documents() -> tuple[bytes, ...]:
    """Real feeds to damage: the builders' and the shared corpus's (feedparser, Venus)."""
    seeds = _builder_seeds()
    for folder in ("feedparser", "venus"):
        root = CORPUS / folder
        if root.is_dir():
            seeds += [
                p.read_bytes()
                for p in sorted(root.rglob("*"))
                if p.suffix in {".xml", ".atom", ".rss"}
            ]
    return tuple(seeds)


_ENCODINGS = [
    "utf-16", "utf-16-be", "utf-32", "iso-8859-1", "windows-1252", "shift_jis", "euc-jp",
    "koi8-r", "cp037", "utf-7", "gb2312", "bogus", "x-user-defined", "",
]  # fmt: skip
_BOMS = [b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00"]
_DECLARED = re.compile(rb"""encoding\s*=\s*["'][^"']*["']""")


@st.composite
def _mutate(draw: Draw, doc: bytes) -> bytes:
    size = len(doc)
    position = draw(st.integers(0, size))
    kind = draw(st.integers(0, 7))
    if kind == 0:  # truncation
        return doc[:position]
    if kind == 1:  # byte flips
        flipped = bytearray(doc)
        for _ in range(draw(st.integers(1, 8))):
            if flipped:
                flipped[draw(st.integers(0, len(flipped) - 1))] = draw(st.integers(0, 255))
        return bytes(flipped)
    if kind == 2:  # inserted bytes
        return doc[:position] + draw(st.binary(min_size=1, max_size=16)) + doc[position:]
    if kind == 3:  # a span deleted or repeated
        end = draw(st.integers(position, size))
        return doc[:position] + (doc[position:end] * draw(st.integers(0, 3))) + doc[end:]
    encoding = draw(st.sampled_from(_ENCODINGS)).encode()
    if kind == 4:  # an encoding declaration that lies (the bytes stay as they are)
        declaration = b'encoding="' + encoding + b'"'
        if _DECLARED.search(doc):
            return _DECLARED.sub(declaration, doc, count=1)
        return b'<?xml version="1.0" ' + declaration + b"?>" + doc
    if kind == 5:  # a byte order mark that lies
        return draw(st.sampled_from(_BOMS)) + doc
    # The bytes re-encoded while the declaration still names the old encoding.
    name = encoding.decode() if kind == 6 else "utf-16"
    try:
        return doc.decode("utf-8", "replace").encode(name or "latin-1", "replace")
    except LookupError:
        return doc


@st.composite
def mutated_documents(draw: Draw) -> bytes:
    """A real feed (or a generated one) damaged by one to four byte-level mutations."""
    seeds = seed_documents()
    # An index, not the documents: sampled_from would put all of them in reprs.
    doc = draw(st.integers(0, len(seeds) - 1).map(seeds.__getitem__) | structured_documents)
    for _ in range(draw(st.integers(1, 4))):
        doc = draw(_mutate(doc))
    return doc


def feed_documents() -> st.SearchStrategy[bytes]:
    """Any document a feed URL might serve: generated structurally or real and damaged."""
    return structured_documents | mutated_documents()


CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/atom+xml",
            "application/rss+xml; charset=utf-8",
            "application/xml; charset=utf-16",
            "text/xml; charset=bogus",
            "text/html; charset=iso-8859-1",
            "application/feed+json",
            "application/json; charset=utf-8",
            "text/plain",
        ]
    ),
    # fetch decodes the header as latin-1, so any of those characters and no others.
    st.text(st.characters(max_codepoint=0xFF, categories=None), max_size=40),
)
