"""Browser-grade checks of emitted HTML against the XSS corpus rules.

Implements Tier A and Tier B of ``CHECKING.md`` in the shared XSS corpus
(``../shared/corpus/xss/CHECKING.md``). The HTML is parsed with html5lib, the
same HTML5 algorithm a browser runs, and the checks look at the resulting
elements, attributes and comments rather than at the raw string.

Two modes, chosen with ``fragment``:

- ``fragment=True`` (default): ``html`` is an entry fragment, such as the output
  of ``planet.sanitize.sanitize_html`` or the decoded text of an Atom
  ``<content type="html">``. It is placed inside
  ``<div>`` between two sentinel paragraphs of a minimal page, the way a river
  template embeds it, and parsed as a whole document. Everything the fragment
  produces is checked, including attributes it manages to put on ``<html>`` or
  ``<body>``, and Tier A rule 6 (no markup leaks) is checked through the
  sentinels plus raw-string checks for ``]]>``, ``-->`` and raw-text end tags.
- ``fragment=False``: ``html`` is a whole rendered page. Only ``<body>`` (with
  the attributes of ``<html>`` and ``<body>``) is checked, so the page's own
  ``<meta charset>``, ``<link rel=stylesheet>`` and ``<title>`` in ``<head>`` are
  allowed. Leaks cannot be judged without knowing where each entry starts and
  ends, so for rule 6 check each entry's fragment separately.

An empty list means clean; otherwise each item is a human-readable violation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Any
from xml.etree import ElementTree

import html5lib

__all__ = [
    "iter_url_attributes",
    "normalize_url",
    "tier_a_violations",
    "tier_b_violations",
]

TIER_A_ELEMENTS = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet",
        "base", "meta", "link", "xml", "import", "bgsound", "layer", "ilayer",
        "vmlframe", "param", "template", "handler", "listener",
    }
)  # fmt: skip

TIER_B_ELEMENTS = frozenset(
    {
        "form", "input", "button", "textarea", "select", "option", "keygen", "isindex",
        "iframe", "object", "embed", "style",
    }
)  # fmt: skip

LEGACY_SCRIPT_ATTRIBUTES = frozenset(
    {
        "formaction", "background", "dynsrc", "lowsrc", "datasrc", "datafld", "folder",
        "seeksegmenttime", "srcdoc",
    }
)  # fmt: skip

# CHECKING.md's list, plus a few more URL-bearing attributes. "base" is the
# local part of xml:base.
URL_ATTRIBUTES = frozenset(
    {
        "href", "src", "action", "formaction", "poster", "background", "cite", "longdesc",
        "usemap", "data", "codebase", "lowsrc", "dynsrc", "ping", "srcset", "archive",
        "classid", "profile", "manifest", "icon", "base",
    }
)  # fmt: skip
# Attributes holding several URLs.
MULTI_URL_ATTRIBUTES = frozenset({"srcset", "ping", "archive"})

DANGEROUS_SCHEMES = ("javascript:", "vbscript:", "livescript:", "mocha:", "data:")

ANIMATION_ELEMENTS = frozenset(
    {"animate", "set", "animatemotion", "animatetransform", "animatecolor"}
)

STANDARD_NAMESPACES = frozenset(
    {
        "http://www.w3.org/1999/xhtml",
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1998/math/mathml",
        "http://www.w3.org/1999/xlink",
        "http://www.w3.org/xml/1998/namespace",
        "http://www.w3.org/2000/xmlns/",
    }
)

_BEFORE_ID = "planet-xsscheck-before"
_ENTRY_ID = "planet-xsscheck-entry"
_AFTER_ID = "planet-xsscheck-after"
_PAGE_HEAD = '<!DOCTYPE html><html><head><meta charset="utf-8"><title>check</title></head><body>'
_PREFIX = f'{_PAGE_HEAD}<p id="{_BEFORE_ID}">before</p><div id="{_ENTRY_ID}">'
_SUFFIX = f'</div><p id="{_AFTER_ID}">after</p></body></html>'

# Raw strings that must never appear in an emitted fragment (rule 6).
_RAW_LEAKS = ("]]>", "</script", "</style", "</textarea", "</title", "</xmp", "<plaintext")

_URL_JUNK = re.compile("[\x00-\x20\x7f]")
_CSS_COMMENT = re.compile(r"/\*.*?(\*/|$)", re.DOTALL)
_CSS_HEX_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\r\n\f]?")
_CSS_CHAR_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_CSS_URL = re.compile(r"url\((['\"]?)(.*?)\1\)", re.DOTALL)
_CSS_BAD = ("expression(", "behavior:", "-moz-binding", "javascript:", "vbscript:", "@import")
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*:", re.ASCII)

_Element = Any  # xml.etree elements; comments carry ElementTree.Comment as tag


def _local(name: str) -> str:
    """Lowercased local name: namespace and any ``prefix:`` removed."""
    return name.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def _describe(element: _Element) -> str:
    return f"<{element.tag.rsplit('}', 1)[-1]}>"


def normalize_url(value: str) -> str:
    """Decode a URL attribute value as a browser would before finding the scheme.

    The parser already resolved character references; this strips ASCII
    whitespace and control characters anywhere and lowercases.
    """
    return _URL_JUNK.sub("", value).lower()


def _url_is_dangerous(value: str, allow_data_images: bool = False) -> bool:
    # Also try one more round of entity decoding, and leading quotes removed
    # (old IE took backticks for quotes): stricter than a current browser.
    for candidate in {value, unescape(value)}:
        url = normalize_url(candidate).lstrip("`'\"")
        if allow_data_images and url.startswith("data:image/"):
            continue
        if url.startswith(DANGEROUS_SCHEMES):
            return True
    return False


def _url_values(attribute: str, value: str) -> list[str]:
    values = [value]
    if attribute in MULTI_URL_ATTRIBUTES:
        values += [piece for piece in re.split(r"[,\s]+", value) if piece]
    return values


def _css_violations(style: str) -> list[str]:
    css = _CSS_COMMENT.sub("", style)
    css = _CSS_HEX_ESCAPE.sub(lambda m: chr(min(int(m.group(1), 16), 0x10FFFF) or 0xFFFD), css)
    css = _CSS_CHAR_ESCAPE.sub(r"\1", css)
    compact = _URL_JUNK.sub("", css).lower()
    found = [f"CSS {bad!r}" for bad in _CSS_BAD if bad in compact]
    for match in _CSS_URL.finditer(compact):
        url = match.group(2)
        scheme = _SCHEME.match(url)
        if scheme is not None and scheme.group(0) not in ("http:", "https:"):
            found.append(f"CSS url() with scheme {scheme.group(0)!r}")
    return found


def _comment_violation(text: str) -> str | None:
    data = text.strip().lower()
    if data.startswith(("[if", "[endif", "<![endif", "<![if")) or "<![endif]" in data:
        return f"conditional comment {text[:40]!r}"
    if data.startswith("?"):
        return f"processing instruction {text[:40]!r}"
    if data.startswith(("entity", "!entity")):
        return f"ENTITY declaration {text[:40]!r}"
    return None


def _parse(html: str, fragment: bool) -> tuple[_Element, _Element]:
    """Return the ``<html>`` and ``<body>`` elements of the parsed document."""
    source = f"{_PREFIX}{html}{_SUFFIX}" if fragment else html
    root = html5lib.parse(source, treebuilder="etree", namespaceHTMLElements=False)
    body = root.find("body")
    if body is None:  # html5lib always creates one; keep mypy and readers calm
        body = ElementTree.SubElement(root, "body")
    return root, body


def _attribute_violations(element: _Element, allow_data_images: bool) -> Iterator[str]:
    where = _describe(element)
    for name, value in element.attrib.items():
        local = _local(name)
        lowered = name.rsplit("}", 1)[-1].lower()
        # Check the whole name too: "onclick!#$%:;x" has a colon but is no prefix.
        if local.startswith("on") or lowered.startswith("on"):
            yield f"event handler attribute {name!r} on {where}"
        if local in LEGACY_SCRIPT_ATTRIBUTES:
            yield f"legacy script hook attribute {name!r} on {where}"
        if "xmlns" in lowered and value.strip().lower() not in STANDARD_NAMESPACES:
            yield f"xmlns attribute {name!r}={value!r} on {where}"
        if local in URL_ATTRIBUTES:
            allow = allow_data_images and _local(element.tag) == "img" and local == "src"
            if any(_url_is_dangerous(v, allow) for v in _url_values(local, value)):
                yield f"dangerous URL in {name!r}={value!r} on {where}"
        if local == "style":
            for problem in _css_violations(value):
                yield f"{problem} in style attribute on {where}"


def _animation_violations(element: _Element) -> Iterator[str]:
    attributes = {_local(name): value for name, value in element.attrib.items()}
    where = _describe(element)
    target = attributes.get("attributename", "").strip().lower()
    if target in ("href", "xlink:href", "innerhtml", "outerhtml") or target.startswith("on"):
        yield f"animation of attribute {target!r} by {where}"
    candidates = [attributes.get(key, "") for key in ("to", "from", "by")]
    candidates += attributes.get("values", "").split(";")
    for value in candidates:
        if _url_is_dangerous(value):
            yield f"animation value {value!r} by {where}"


def _element_violations(body: _Element, allow_data_images: bool) -> Iterator[str]:
    for element in body.iter():
        if element.tag is ElementTree.Comment:
            problem = _comment_violation(element.text or "")
            if problem:
                yield problem
            continue
        if not isinstance(element.tag, str):
            continue
        local = _local(element.tag)
        if local in TIER_A_ELEMENTS:
            yield f"forbidden element {_describe(element)}"
        if local in ANIMATION_ELEMENTS:
            yield from _animation_violations(element)
        if local == "noscript":
            # With scripting on, a browser reads noscript as raw text up to
            # "</noscript": markup hidden in text or attributes would come alive.
            hidden = "".join(element.itertext()) + "".join(
                v for child in element.iter() for v in child.attrib.values()
            )
            if "</noscript" in hidden.lower():
                yield "noscript content that a scripting browser would parse differently"
        if element is not body:
            yield from _attribute_violations(element, allow_data_images)


def _leak_violations(html: str, body: _Element) -> Iterator[str]:
    raw = html.lower()
    for leak in _RAW_LEAKS:
        if leak in raw:
            yield f"raw {leak!r} in fragment"
    entry = body.find(f"div[@id='{_ENTRY_ID}']")
    comments = 0 if entry is None else sum(1 for e in entry.iter(ElementTree.Comment))
    if raw.count("-->") > comments:
        yield "raw '-->' in fragment outside a comment"

    children = list(body)
    ids = [child.get("id") for child in children]
    if ids != [_BEFORE_ID, _ENTRY_ID, _AFTER_ID]:
        yield f"fragment is not self-contained: page body children became {ids}"
        return
    before, entry, after = children
    if (body.text or "").strip() or any((c.tail or "").strip() for c in children):
        yield "fragment is not self-contained: text escaped the entry"
    if len(after) or after.text != "after" or dict(after.attrib) != {"id": _AFTER_ID}:
        yield "fragment is not self-contained: it changes the content after the entry"
    if len(before) or before.text != "before" or dict(entry.attrib) != {"id": _ENTRY_ID}:
        yield "fragment is not self-contained: it changes the surrounding elements"


def tier_a_violations(
    html: str, fragment: bool = True, allow_data_images: bool = False
) -> list[str]:
    """Tier A (security invariants) violations of ``html``; empty if clean.

    ``fragment`` selects the mode described in the module docstring.
    ``allow_data_images`` accepts ``data:image/...`` in ``<img src>``.
    """
    root, body = _parse(html, fragment)
    violations: list[str] = []
    for element in (root, body):
        violations += _attribute_violations(element, allow_data_images)
    violations += _element_violations(body, allow_data_images)
    if fragment:
        violations += _leak_violations(html, body)
    return violations


def tier_b_violations(html: str, fragment: bool = True, allow_svg_math: bool = False) -> list[str]:
    """Tier B (planet policy: no forms, frames, plugins, styles) violations; empty if clean.

    Tier B is checked on its own: call ``tier_a_violations`` too. Unless
    ``allow_svg_math``, ``<svg>`` and ``<math>`` count as violations (planet drops them).
    """
    _root, body = _parse(html, fragment)
    forbidden = TIER_B_ELEMENTS if allow_svg_math else TIER_B_ELEMENTS | {"svg", "math"}
    return [
        f"Tier B element {_describe(element)}"
        for element in body.iter()
        if isinstance(element.tag, str) and _local(element.tag) in forbidden
    ]


def iter_url_attributes(html: str, fragment: bool = True) -> Iterator[tuple[str, str, str]]:
    """Yield ``(element, attribute, value)`` for every URL-bearing attribute in the body."""
    _root, body = _parse(html, fragment)
    for element in body.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():
            if _local(name) in URL_ATTRIBUTES:
                yield _local(element.tag), name, value
