"""Sanitizing of untrusted HTML and URLs taken from feeds.

Everything here is pure (no Twisted; module state is constants and a cache of
nh3 cleaners) so the functions can be pickled and run inside worker processes.

The HTML sanitizer is an allow-list one built on ``nh3`` (Ammonia); the
corpus test in ``tests/test_sanitize.py`` is the judge of whether the policy
is safe, see ``CHECKING.md`` of the shared XSS corpus.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html import unescape as _html_unescape
from urllib.parse import urljoin, urlsplit

import nh3

from planet.nesting import flatten
from planet.textpack import utf8_size

__all__ = ["POLICY_VERSION", "html_to_text", "safe_url", "sanitize_html", "strip_xml_illegal"]

#: Bumped whenever what the sanitizer lets through changes: entries stored (in a snapshot)
#: under another version are sanitized again before they are served.
#: 2: nesting flattened past planet.nesting.MAX_NESTING, content cut at max_entry_bytes,
#: links urlsplit refuses dropped.
POLICY_VERSION = 2

# XML 1.0 Char production: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
# Lone surrogates are included because they cannot even be encoded as UTF-8.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# What the WHATWG URL parser discards before looking for a scheme.
_URL_EDGE_JUNK = "".join(chr(c) for c in range(0x21))
_URL_TAB_NEWLINE = re.compile("[\t\n\r]")
# For the scheme check only: anything a lenient (or old) browser might skip.
_URL_PROBE_JUNK = re.compile("[\x00-\x20\x7f-\x9f]")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):", re.ASCII | re.IGNORECASE)

_LINK_SCHEMES = frozenset({"http", "https"})
_CONTENT_SCHEMES = frozenset({"http", "https", "mailto"})

# nh3's defaults minus ``map``/``area`` (useless without ``usemap``/``href``),
# plus media and ``tfoot``. Anything not listed is dropped, keeping its text.
ALLOWED_TAGS: frozenset[str] = frozenset(
    {
        "a", "abbr", "acronym", "article", "aside", "audio", "b", "bdi", "bdo",
        "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup",
        "data", "dd", "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption",
        "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup",
        "hr", "i", "img", "ins", "kbd", "li", "mark", "nav", "ol", "p", "picture",
        "pre", "q", "rp", "rt", "rtc", "ruby", "s", "samp", "small", "source", "span",
        "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot",
        "th", "thead", "time", "tr", "tt", "u", "ul", "var", "video", "wbr",
    }
)  # fmt: skip

# Dropped together with their content: their text is code, or is not shown
# by a browser, or (textarea/select/option) would read as junk in a river.
CLEAN_CONTENT_TAGS: frozenset[str] = frozenset(
    {
        "script", "style", "template", "iframe", "frame", "frameset", "object",
        "embed", "applet", "noembed", "noframes", "noscript", "xmp", "textarea",
        "select", "option", "title", "svg", "math",
    }
)  # fmt: skip

_MEDIA_ATTRIBUTES = {"src", "controls", "loop", "muted", "preload", "width", "height"}

# No ``style``, ``class`` or ``id`` (they could restyle or clobber the page
# around the entry) and no ``srcset`` (a URL list we would have to parse).
ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "*": frozenset({"title", "lang", "dir"}),
    "a": frozenset({"href", "hreflang"}),
    "audio": frozenset(_MEDIA_ATTRIBUTES - {"width", "height"}),
    "blockquote": frozenset({"cite"}),
    "col": frozenset({"align", "char", "charoff", "span"}),
    "colgroup": frozenset({"align", "char", "charoff", "span"}),
    "data": frozenset({"value"}),
    "del": frozenset({"cite", "datetime"}),
    "details": frozenset({"open"}),
    "hr": frozenset({"align", "size", "width"}),
    "img": frozenset({"align", "alt", "height", "src", "width"}),
    "ins": frozenset({"cite", "datetime"}),
    "ol": frozenset({"start", "reversed", "type"}),
    "q": frozenset({"cite"}),
    "source": frozenset({"src", "type"}),
    "table": frozenset({"align", "char", "charoff", "summary"}),
    "tbody": frozenset({"align", "char", "charoff"}),
    "td": frozenset({"align", "char", "charoff", "colspan", "headers", "rowspan"}),
    "tfoot": frozenset({"align", "char", "charoff"}),
    "th": frozenset({"align", "char", "charoff", "colspan", "headers", "rowspan", "scope"}),
    "thead": frozenset({"align", "char", "charoff"}),
    "time": frozenset({"datetime"}),
    "tr": frozenset({"align", "char", "charoff"}),
    "video": frozenset(_MEDIA_ATTRIBUTES | {"poster"}),
}

URL_ATTRIBUTES: frozenset[str] = frozenset({"href", "src", "poster", "cite"})


def strip_xml_illegal(text: str) -> str:
    """Remove the characters that XML 1.0 does not allow."""
    if len(text) <= _SLICE:
        return _XML_ILLEGAL.sub("", text)
    return strip_in_slices(text, _SLICE)


#: A whole page (13 MB for ``/feeds`` at 10,000 feeds) is searched this many characters
#: at a time: one regex call over it holds the GIL for ~40 ms, and a render thread must
#: not keep the reactor thread waiting that long.
_SLICE = 1 << 16


def strip_in_slices(text: str, size: int) -> str:
    """:func:`strip_xml_illegal` by regex calls over ``size`` characters at most (each
    forbidden character is one code point, so no match spans two slices)."""
    for start in range(0, len(text), size):
        if _XML_ILLEGAL.search(text, start, start + size) is not None:
            break
    else:
        return text
    cleaned = [_XML_ILLEGAL.sub("", text[i : i + size]) for i in range(start, len(text), size)]
    return text[:start] + "".join(cleaned)


# An http(s) URL of plain characters (no space, control, quote, backslash, bracket, "&"
# or non-ASCII) with a host name or IPv4 address and at most a 5-digit port: every step of
# the general check leaves it as it is. Most URL attributes are one (a fifth of a farm
# feed's parse went to checking them the general way).
_PLAIN_URL = re.compile(
    r"(https?)://[A-Za-z0-9.\-]+(?::([0-9]{1,5}))?(?:[/?#][A-Za-z0-9\-._~!$()*+,;=:@/?#%]*)?\Z"
)
# A root-relative path that join_url resolves by its short cut: no "?", "#", ";", "\\"
# (nor "/." : checked apart).
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9\-._~!$()*+,=:@/%]*\Z")


def _plain_url(value: str) -> str | None:
    """``value``'s scheme if it is a plain URL (see ``_PLAIN_URL``) urlsplit reads."""
    plain = _PLAIN_URL.match(value)
    if plain is None:
        return None
    port = plain.group(2)
    return plain.group(1) if port is None or int(port) <= 65535 else None


@lru_cache(maxsize=256)
def _plain_origin(base_url: str) -> str | None:
    """``scheme://host[:port]`` of a plain http(s) base URL, else None."""
    return _origin(base_url) if _plain_url(base_url) is not None else None


def _check_url(value: str, base_url: str | None, schemes: frozenset[str]) -> str | None:
    """Return ``value`` cleaned and resolved if its scheme is in ``schemes``, else None."""
    # The short cuts give what the general check below gives (a property test compares).
    scheme = _plain_url(value)
    if scheme is not None:
        return value if scheme in schemes else None
    if (
        base_url is not None
        and value[1:2] != "/"
        and _PLAIN_PATH.match(value)
        and "/." not in value
        and (origin := _plain_origin(base_url)) is not None
        and origin[: origin.index(":")] in schemes
    ):
        return origin + value
    return _check_url_in_full(value, base_url, schemes)


def _check_url_in_full(value: str, base_url: str | None, schemes: frozenset[str]) -> str | None:
    url = _URL_TAB_NEWLINE.sub("", strip_xml_illegal(value)).strip(_URL_EDGE_JUNK)
    # Decide on a probe with every control/space removed, so that tricks like
    # "java\x01script:" are refused whether or not some browser skips them;
    # old IE also took backticks for quotes ("`javascript:...`").
    probe = _URL_PROBE_JUNK.sub("", url).lstrip("`'\"")
    probe_scheme = _SCHEME.match(probe)
    if probe_scheme is not None:
        url_scheme = _SCHEME.match(url)
        scheme = probe_scheme.group(1).lower()
        # Refuse if the emitted string would not carry the very scheme we checked.
        if url_scheme is None or url_scheme.group(1).lower() != scheme:
            return None
        return url if scheme in schemes and _splits(url) else None
    if base_url is None:
        # A relative URL has no scheme to abuse; the page's own base applies.
        return url if _splits(url) else None
    try:
        # The base may carry characters the URL was cleaned of ("http://\x1f/").
        # urljoin drops an empty fragment or query, which can leave a space at the end.
        resolved = strip_xml_illegal(join_url(base_url, url)).strip(_URL_EDGE_JUNK)
    except ValueError:  # urlsplit refuses the base or the URL ("http://[::1"): no link
        return None
    resolved_scheme = _SCHEME.match(_URL_PROBE_JUNK.sub("", resolved))
    if resolved_scheme is not None and resolved_scheme.group(1).lower() not in schemes:
        return None
    return resolved if _splits(resolved) else None


def _splits(url: str) -> bool:
    """Whether ``urlsplit`` takes ``url`` and its ``hostname`` and ``port`` are readable.

    The store, the pages and the formats split every link; "http://[::1" or "http://a:x/"
    would raise there (``Invalid IPv6 URL``, ``Port could not be cast``), long after the feed
    that carried it was parsed, so such a URL is no link at all.
    """
    if _PLAIN_NETLOC.match(url):
        # No bracket and no port in the authority: nothing there can raise (most links).
        return True
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - read for the ValueError it may raise
        parts.port  # noqa: B018
    except ValueError:
        return False
    return True


# A scheme, then an authority without brackets, a port or user info, then the path: urlsplit
# takes it and its hostname and port read without error. (A fifth of a parse's time went to
# splitting every link and src attribute the long way.)
_PLAIN_NETLOC = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#\[\]:@\s]*(?:[/?#]|\Z)")


_JOIN_SLOW = re.compile(r"[\\?#;]|/\.")


@lru_cache(maxsize=256)
def _origin(base_url: str) -> str | None:
    parts = urlsplit(base_url)
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def join_url(base_url: str, url: str) -> str:
    """``urljoin(base_url, url)``, with a short cut for the common root-relative path.

    Posts link and embed by "/path" far more than any other way, and a content sanitizer
    resolves every URL attribute: urljoin's general parse of both URLs is most of its cost.
    """
    # Queries, fragments and parameters are left to urljoin: it drops empty ones.
    if url[:1] == "/" and url[1:2] != "/" and not _JOIN_SLOW.search(url):
        origin = _origin(base_url)
        if origin is not None:
            return origin + url
    return urljoin(base_url, url)


def safe_url(url: str | None, base_url: str | None = None) -> str | None:
    """Resolve ``url`` against ``base_url``; return it only if it is http or https."""
    if url is None or not url.strip(_URL_EDGE_JUNK):
        return None
    result = _check_url(url, base_url, _LINK_SCHEMES)
    # A template might emit the link unescaped somewhere, so the entity-decoded
    # form must pass as well.
    if result is None or _check_url(_html_unescape(url), base_url, _LINK_SCHEMES) is None:
        return None
    # Without a base a relative link cannot be made absolute: useless as a link.
    return result if _SCHEME.match(result) else None


# Building a Cleaner costs about ten times more than using one, and a feed's entries,
# sanitized one after another, usually share a base: keep the last few. Not many more:
# each holds ~24 KB in every parse worker, and the next feed has another base anyway.
@lru_cache(maxsize=8)
def _make_cleaner(base_url: str | None) -> nh3.Cleaner:
    def attribute_filter(tag: str, attribute: str, value: str) -> str | None:
        if attribute in URL_ATTRIBUTES:
            result = _check_url(value, base_url, _CONTENT_SCHEMES)
            # As in safe_url: the entity-decoded form must pass too ("jav&#x09;ascript:"
            # left relative without a base, or taken from a hostile base).
            if result is None:
                return None
            if "&" in result and _check_url(_html_unescape(result), None, _CONTENT_SCHEMES) is None:
                return None
            return result
        return value

    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(CLEAN_CONTENT_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=attribute_filter,
        strip_comments=True,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"img": {"loading": "lazy"}},
        url_schemes=set(_CONTENT_SCHEMES),
    )


def sanitize_html(html: str, base_url: str | None = None) -> str:
    """Allow-list sanitize an untrusted HTML fragment, resolving URLs against ``base_url``."""
    cleaner = _make_cleaner(base_url)
    # Strip before parsing too: nh3 cannot take lone surrogates, and the
    # sanitizer should judge the same markup that ends up being emitted. Flatten: nesting
    # thousands deep costs the parser quadratic time (see planet.nesting).
    cleaned = cleaner.clean(flatten(strip_xml_illegal(html)))
    # Character references such as "&#1;" decode to illegal characters.
    return strip_xml_illegal(cleaned)


_WHITESPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")
# Elements whose boundaries separate words, so "a<br>b" reads "a b", not "ab".
_TEXT_BREAK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
_TEXT_CLEANER = nh3.Cleaner(
    tags=set(_TEXT_BREAK_TAGS),
    clean_content_tags=set(CLEAN_CONTENT_TAGS),
    attributes={},
    link_rel=None,
)


def html_to_text(html: str) -> str:
    """Return the plain text of an HTML fragment (entities decoded, whitespace collapsed).

    The result is text, not markup: it must still be escaped wherever it is emitted.
    """
    # nh3 output keeps only attribute-less break tags and escapes "<" in text,
    # so every remaining "<...>" is one of those tags.
    marked = _TEXT_CLEANER.clean(flatten(strip_xml_illegal(html)))
    text = strip_xml_illegal(_html_unescape(_TAG.sub(" ", marked)))
    return _WHITESPACE.sub(" ", text).strip()


_HEADING = re.compile(r"<(/?)h([1-6])(?=[\s>])", re.IGNORECASE)


def demote_headings(html: str, below: int = 3) -> str:
    """Shift the headings of sanitized entry HTML below the page's own ``h1``..``h{below}``.

    The river page uses h1 (planet), h2 (day) and h3 (entry title), so an entry's ``<h1>``
    becomes ``<h4>`` and the page outline stays right; levels past 6 stay at 6. Only for
    serialized sanitizer output, where ``<`` never appears inside an attribute value.
    """

    def shift(match: re.Match[str]) -> str:
        level = min(6, int(match.group(2)) + below)
        return f"<{match.group(1)}h{level}"

    return _HEADING.sub(shift, html)


_C1_CONTROLS = re.compile("[\x80-\x9f]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def compact_html(html: str) -> str:
    """``html`` with its non-ASCII characters as character references, when that is smaller.

    CPython stores a string at 1, 2 or 4 bytes per character, by its widest one (PEP 393):
    a single curly quote doubles the memory of an otherwise ASCII post, and the store holds
    every entry. The same HTML in ASCII renders identically. Not done when the references
    would take more room (mostly non-Latin text) or for C1 controls, whose references HTML
    reads as windows-1252 characters.
    """
    if html.isascii():
        return html
    try:
        html.encode("latin-1")
    except UnicodeEncodeError:
        pass  # wider than Latin-1: two or four bytes a character
    else:
        return html
    if _C1_CONTROLS.search(html):
        return html
    compact = html.encode("ascii", "xmlcharrefreplace").decode("ascii")
    width = 4 if _ASTRAL.search(html) else 2
    return compact if len(compact) < len(html) * width else html


# Sanitized HTML as html5ever serializes it: "<" and ">" appear only in tags (text and
# attribute values escape them), every element but a void one has its end tag.
_SERIALIZED_TOKEN = re.compile(r"<(/?)([a-z0-9]+)[^>]*>|[^<]+")
_VOID_ELEMENTS = frozenset({"br", "col", "hr", "img", "source", "wbr"})
_ENTITY_TAIL = re.compile(r"&[^;\s]*\Z")
#: The text of the link a cut entry ends with.
READ_MORE = "Read more"


def read_more_marker(link: str | None) -> str:
    """What ends cut content: a link to the entry (as the sanitizer itself would write it),
    or, for an entry without an http(s) link, a plain ellipsis."""
    if link is None or _check_url(link, None, _LINK_SCHEMES) is None:
        return "<p>[...]</p>"
    href = link.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    href = href.replace(">", "&gt;").replace("\xa0", "&nbsp;")
    return f'<p><a href="{href}" rel="noopener noreferrer">{READ_MORE}</a></p>'


def truncate_html(html: str, max_bytes: int, link: str | None = None, cut: bool = False) -> str:
    """Sanitized ``html`` in at most ``max_bytes`` of UTF-8 (0: no limit).

    Longer HTML is cut between elements or in text (at a space where one is near, never in
    a character reference), every element left open is closed, and :func:`read_more_marker`
    follows. ``cut`` says the HTML was cut already (before sanitizing): the marker is added
    even when it fits. The result is a fixed point: cutting it again changes nothing.
    """
    if not max_bytes or (not cut and len(html) * 4 <= max_bytes):
        return html
    if not cut and utf8_size(html) <= max_bytes:
        return html
    marker = read_more_marker(link)
    if utf8_size(marker) > max_bytes:
        marker = read_more_marker(None)
        if utf8_size(marker) > max_bytes:
            return ""
    budget = max_bytes - utf8_size(marker)
    kept: list[str] = []
    # The open elements, and the bytes their end tags take.
    open_names: list[str] = []
    closing = used = 0
    for match in _SERIALIZED_TOKEN.finditer(html):
        token = match.group()
        size = utf8_size(token)
        name = match.group(2)
        if name is None:  # text
            if used + size + closing > budget:
                head = _cut_text(token, budget - used - closing)
                if head:
                    kept.append(head)
                break
        elif match.group(1):  # an end tag: its bytes are counted in closing already
            if open_names and open_names[-1] == name:
                open_names.pop()
                closing -= size
        elif name not in _VOID_ELEMENTS:
            end_size = len(name) + 3
            if used + size + closing + end_size > budget:
                break
            open_names.append(name)
            closing += end_size
        elif used + size + closing > budget:
            break
        kept.append(token)
        used += size
    else:
        if not cut:
            return html
    # An element opened just before the cut would be left empty: leave it out.
    while kept and open_names and kept[-1].startswith(f"<{open_names[-1]}"):
        kept.pop()
        open_names.pop()
    kept.extend(f"</{name}>" for name in reversed(open_names))
    kept.append(marker)
    return "".join(kept)


def _cut_text(text: str, room: int) -> str:
    """The longest start of escaped ``text`` in ``room`` bytes that ends at a space (one in
    the last 80 characters), never inside a character reference."""
    if room <= 0:
        return ""
    head = text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
    head = _ENTITY_TAIL.sub("", head)
    space = head.rfind(" ")
    if space >= max(0, len(head) - 80):
        return head[:space]
    # No space near: a short start of a word is left out; a long run (a URL, text written
    # without spaces) is cut where it must be.
    return head if len(head) >= 80 else ""
