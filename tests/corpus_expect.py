"""The shared feed corpus and a translator of its ``Expect:`` lines into checks on planet.

feedparser's test files (and Venus's ``reconstitute``/``filter/tmpl`` ones) carry a
comment such as ``Expect: not bozo and entries[0]['title'] == u'Example Atom'``: a Python
expression over feedparser's result. :func:`translate` reads it with :mod:`ast` (never
evaluating it) and splits it at its top-level ``and``. Each part is either a
:class:`Check` on something planet stores for an entry (title, link, content, dates) or
a :class:`Skip` naming why it is out of scope (the bozo flag, feed-level metadata, entry
fields planet does not keep...).

A check needs a little of feedparser's own reading of the document to be judged: whether
a title or content is HTML or plain text, whether an entry also has full content (planet
stores one body: content beats summary), which stored entry ``entries[i]`` is. That comes
from :func:`oracle`, a plain ``feedparser.parse`` of the same bytes. The *expected value*
always comes from the Expect line itself.
"""

from __future__ import annotations

import ast
import mimetypes
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import feedparser
from attrs import frozen

from planet.model import Entry
from planet.sanitize import demote_headings, html_to_text, sanitize_html

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
#: Where feedparser's own test harness served the files; Expect lines name it.
FEEDPARSER_ORIGIN = "http://127.0.0.1:8097"
_HEADER = re.compile(r"^Header:\s+([^:\s]+):\s*(.*?)\s*$", re.MULTILINE)
_EXPECT = re.compile(r"Description:\s*(.*?)\s*Expect:\s*(.*?)\s*-->", re.DOTALL)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})


# --- the corpus ------------------------------------------------------------------------


@frozen
class CorpusFile:
    """One document of the corpus, named by its path under the corpus root."""

    name: str
    body: bytes
    #: ``Header: Name: value`` lines (feedparser's ``wellformed/http`` and ``base`` files).
    headers: tuple[tuple[str, str], ...]
    description: str | None
    expect: str | None

    @property
    def group(self) -> str:
        """``wellformed``, ``illformed`` or ``venus``."""
        parts = self.name.split("/")
        return parts[1] if parts[0] == "feedparser" else parts[0]

    @property
    def route(self) -> str:
        """The path the file is served at (Venus's cache names hold commas)."""
        return "/" + quote(self.name)

    def response_headers(self) -> dict[str, str]:
        """The file's own headers plus a Content-Type guessed from its name, as
        feedparser's harness did (``SimpleHTTPRequestHandler.guess_type``)."""
        headers = dict(self.headers)
        if not any(k.lower() == "content-type" for k in headers):
            guessed = mimetypes.guess_type(self.name)[0]
            headers["Content-Type"] = guessed if guessed and "xml" in guessed else "application/xml"
        return headers


def corpus_files(root: Path = CORPUS) -> list[CorpusFile]:
    """Every feedparser and Venus document under ``root``, in name order."""
    files = []
    for sub in ("feedparser", "venus"):
        for path in sorted((root / sub).rglob("*")):
            if not path.is_file() or path.suffix == ".md":
                continue
            body = path.read_bytes()
            head = body[:4096].decode("utf-8", "replace")
            found = _EXPECT.search(head)
            files.append(
                CorpusFile(
                    name=path.relative_to(root).as_posix(),
                    body=body,
                    headers=tuple(_HEADER.findall(head)),
                    description=found.group(1) if found else None,
                    expect=" ".join(found.group(2).split()) if found else None,
                )
            )
    return files


def oracle(file: CorpusFile, url: str) -> Any:
    """feedparser's reading of ``file`` as served at ``url`` (sanitizing left on: the
    Expect values were made with it, and only types and structure are read from here)."""
    headers = {k.lower(): v for k, v in file.response_headers().items()}
    headers.setdefault("content-location", url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return feedparser.parse(file.body, response_headers=headers)


# --- Expect lines -> checks ------------------------------------------------------------


@frozen
class Check:
    """One comparison with what planet stored for an entry.

    ``field`` is ``title``, ``link``, ``content``, ``published`` or ``updated``;
    ``source`` is the feedparser key it came from (``summary``, ``content``,
    ``title_plain``...), which decides how the expected value is read.
    """

    index: int
    field: str
    op: str
    expected: Any
    source: str
    text: str


@frozen
class Skip:
    """A part of an Expect line that is not about what planet stores for entries."""

    category: str
    text: str


Part = Check | Skip

# Entry keys planet does not store, grouped for the report.
_ENTRY_SKIPS = {
    "author": "entry author/contributors (not in scope)",
    "id": "entry id (not in scope)",
    "guidislink": "entry id (not in scope)",
    "tags": "entry categories/tags",
    "category": "entry categories/tags",
    "enclosures": "enclosures and other links",
    "links": "enclosures and other links",
    "source": "entry source element",
    "license": "entry rights/license",
    "rights": "entry rights/license",
    "comments": "entry comments/wfw",
    "language": "language and xml:base",
    "base": "language and xml:base",
    "type": "content type labels",
    "where": "geo data",
    "geo": "geo data",
    "media": "media/itunes/psc extension data",
    "itunes": "media/itunes/psc extension data",
    "psc": "media/itunes/psc extension data",
}
_DATE_KEYS = {
    "published_parsed": "published",
    "issued_parsed": "published",
    "created_parsed": "published",
    "updated_parsed": "updated",
    "modified_parsed": "updated",
    "date_parsed": "updated",
    # Venus templates: Items[i]['published_iso'] and friends.
    "published_iso": "published",
    "updated_iso": "updated",
}
_CONTENT_KEYS = frozenset({"content", "summary", "description", "summary_detail"})
_TITLE_KEYS = frozenset({"title", "title_detail", "title_plain"})


def translate(file: CorpusFile) -> list[Part]:
    """The parts of ``file``'s Expect line, each a :class:`Check` or a :class:`Skip`."""
    if file.expect is None:
        return []
    try:
        tree = ast.parse(file.expect, mode="eval").body
    except SyntaxError:
        return [Skip("Python 2 syntax", file.expect)]
    return [part for node in _conjuncts(tree) for part in _parts(node, file)]


def _conjuncts(node: ast.expr) -> Iterator[ast.expr]:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        for value in node.values:
            yield from _conjuncts(value)
    else:
        yield node


def _parts(node: ast.expr, file: CorpusFile) -> list[Part]:
    text = ast.unparse(node)
    if _mentions(node, {"bozo", "bozo_exception"}):
        return [Skip("bozo flag", text)]
    if isinstance(node, ast.Constant):
        return [Skip("trivially true (Expect: 1)", text)]
    if _mentions(node, {"locals", "globals"}):
        return [Skip("presence of a result key (locals()/globals())", text)]
    if isinstance(node, ast.Compare):
        parts = _comparison(node, file, text)
        if parts is not None:
            return parts
    path = _first_path(node, file)
    if path and path[0] == "entries":
        return [Skip(_entry_category(path), text)]
    return [Skip(_root_category(path), text)]


_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in"}


def _comparison(node: ast.Compare, file: CorpusFile, text: str) -> list[Part] | None:
    """``path OP literal``, ``literal in path`` and chains such as
    ``entries[0]['link'] == entries[1]['link'] == 'x'`` (one check per path)."""
    ops = [_OPS[type(op)] for op in node.ops if type(op) in _OPS]
    if len(ops) != len(node.ops):
        return None
    if len(ops) == 1 and ops[0] in ("in", "not in"):
        # "'x' in content[0].value": the path is on the right.
        operands = [node.comparators[0], node.left]
    else:
        operands = [node.left, *node.comparators]
        if len(ops) > 1 and set(ops) != {"=="}:
            return None
    try:
        value = _literal(operands[-1])
    except ValueError:
        return [Skip("expected value is not a literal", text)]
    op = ops[0]
    parts: list[Part] = []
    for operand in operands[:-1]:
        path = _path(operand, file)
        if path is None:
            return None
        parts.append(_classify(path, op, value, file, text))
    return parts


def _mentions(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _path(node: ast.expr, file: CorpusFile) -> tuple[str | int, ...] | None:
    """``entries[0]['title']``, ``entries[0].title`` -> ``('entries', 0, 'title')``.

    Venus's reconstitute lines are evaluated on ``entries[0]`` itself and its template
    lines name ``Items``: both are read as ``entries``.
    """
    steps: list[str | int] = []
    while True:
        if isinstance(node, ast.Subscript):
            key = node.slice.value if isinstance(node.slice, ast.Constant) else None
            if not isinstance(key, str | int):
                return None
            steps.append(key)
            node = node.value
        elif isinstance(node, ast.Attribute):
            steps.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            steps.append(node.id)
            break
        else:
            return None
    steps.reverse()
    if file.name.startswith("venus/reconstitute/"):
        steps = ["entries", 0, *steps]
    elif steps[0] == "Items":
        steps[0] = "entries"
    return tuple(steps)


def _first_path(node: ast.expr, file: CorpusFile) -> tuple[str | int, ...]:
    """The longest name path anywhere in ``node``, to say what an unhandled part is about."""
    paths = [
        p for n in ast.walk(node) if isinstance(n, ast.Subscript | ast.Attribute | ast.Name)
        if (p := _path(n, file)) is not None
    ]  # fmt: skip
    return max(paths, key=len, default=())


def _literal(node: ast.expr) -> Any:
    """A constant, a tuple of them, or ``'a' + 'b'`` (some lines split strings so)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal(node.left) + _literal(node.right)
    return ast.literal_eval(node)


def _root_category(path: tuple[str | int, ...]) -> str:
    root = path[0] if path else ""
    if root in ("feed", "Channels"):
        return "feed-level metadata"
    if root in ("encoding", "version", "namespaces"):
        return "document encoding/version/namespaces"
    if root in ("headers", "etag", "modified", "modified_parsed", "href", "status"):
        return "HTTP response metadata"
    if root == "entries":
        return "entries structure (not a field comparison)"
    return "other"


def _skip_for_entry_key(key: str) -> str:
    if key.startswith(("author", "contributor", "publisher")):
        return _ENTRY_SKIPS["author"]
    if key.startswith(("geo", "georss", "gml", "where")):
        return _ENTRY_SKIPS["geo"]
    if key.startswith(("media_", "itunes_", "psc_", "podcast")):
        return _ENTRY_SKIPS["media"]
    if key.startswith("enclosure"):
        return _ENTRY_SKIPS["enclosures"]
    if key.endswith(("_iso", "_822", "date")) or key in ("published", "updated", "created"):
        return "date as written or formatted (the parsed instant is checked instead)"
    if key in ("title_language", "summary_language", "content_language"):
        return _ENTRY_SKIPS["language"]
    if key in ("channel_" + k for k in ("name", "link", "title")) or key.startswith("channel_"):
        return "feed-level metadata"
    return f"entry field planet does not store ({key or 'whole entry'})"


def _classify(
    path: tuple[str | int, ...], op: str, value: Any, file: CorpusFile, text: str
) -> Part:
    if path[0] != "entries":
        return Skip(_root_category(path), text)
    if len(path) < 3 or not isinstance(path[1], int):
        return Skip("entries structure (not a field comparison)", text)
    index, key, rest = path[1], path[2], path[3:]
    if not isinstance(key, str):
        return Skip(_entry_category(path), text)
    if file.name.startswith("venus/filter/tmpl/") and isinstance(value, str):
        value = _py2_str(value)
    if key in _TITLE_KEYS and rest in ((), ("value",)):
        return Check(index, "title", op, value, key, text)
    if key == "link" and not rest:
        return Check(index, "link", op, value, key, text)
    if key in _CONTENT_KEYS and rest in ((), ("value",), (0, "value")):
        return Check(index, "content", op, value, key, text)
    if key in _DATE_KEYS and not rest:
        return Check(index, _DATE_KEYS[key], op, value, key, text)
    return Skip(_entry_category(path), text)


def _entry_category(path: tuple[str | int, ...]) -> str:
    keys = [p for p in path[2:] if isinstance(p, str)]
    if not keys:
        return "entries structure (not a field comparison)"
    key = keys[0]
    if key in ("title_detail", "summary_detail", "content") and len(keys) > 1:
        # ``content[0]['type']``, ``title_detail['language']``: labels of the value.
        key = {"src": "links"}.get(keys[-1], keys[-1])
    if key in ("get", "has_key"):
        return "presence of a result key (has_key/get)"
    if key == "guid":
        key = "id"
    return _ENTRY_SKIPS.get(key, _skip_for_entry_key(key))


def _py2_str(value: str) -> str:
    """Venus's tests are Python 2: a ``'\\xc3\\xa9'`` literal there is UTF-8 bytes."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


# --- judging a check -------------------------------------------------------------------


@frozen
class Verdict:
    """The outcome of one :class:`Check`: ``ok``, or why not."""

    ok: bool
    detail: str = ""
    #: ``equal`` (content: after planet's sanitizer); ``stricter`` (planet's sanitizer
    #: dropped markup feedparser's kept, same text); ``rebased`` (URLs resolved against
    #: the fetched URL, not a Content-Location header); or a deviation kind.
    how: str = "equal"


def stored_entry(
    index: int, fp_entries: Sequence[Mapping[str, Any]], stored: Sequence[Entry]
) -> Entry | None:
    """The stored entry that feedparser's ``entries[index]`` became, if any.

    Matched by id when feedparser has one (planet keeps feed ids); a lone stored entry is
    the one; else by position among undated entries (planet keeps their document order).
    """
    if index >= len(fp_entries):
        return None
    wanted = fp_entries[index].get("id")
    if wanted:
        found = [e for e in stored if e.id == wanted]
        if len(found) == 1:
            return found[0]
    if len(stored) == 1 and (len(fp_entries) == 1 or not any(e.get("id") for e in fp_entries)):
        # Entries without ids are told apart by link: equal ones are stored once.
        return stored[0]
    if len(stored) == len(fp_entries) and all(not e.dated for e in stored):
        return stored[index]
    return None


def collapse(text: str) -> str:
    return " ".join(text.split())


_WIDE_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def canonical(html: str) -> str:
    """Serialized HTML with whitespace runs collapsed and references to non-ASCII
    characters written as the characters (the store may keep either form)."""

    def char(match: re.Match[str]) -> str:
        code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
        return chr(code) if 0x7F < code <= 0x10FFFF else match.group(0)

    return collapse(_WIDE_REF.sub(char, html))


def judge(
    check: Check,
    fp_entry: Mapping[str, Any] | None,
    entry: Entry | None,
    feed_url: str,
    rebase: Mapping[str, str],
    deviation: str | None = None,
) -> Verdict | Skip:
    """Whether planet's stored ``entry`` satisfies ``check`` (or why it is out of scope).

    ``fp_entry`` is feedparser's reading of the same entry (types, which body exists);
    ``rebase`` maps URL prefixes of the Expect line to where planet saw the document.
    ``deviation`` names a known, deliberate difference from feedparser or Venus (see
    :data:`DEVIATION_KINDS`): the check then asserts planet's own documented behaviour.
    """
    expected = check.expected
    moved = False
    if isinstance(expected, str):
        for old, new in rebase.items():
            # Only the harness's own address is not a difference in behaviour.
            moved |= old != FEEDPARSER_ORIGIN and old in expected
            expected = expected.replace(old, new)
    verdict = _judge(check, expected, fp_entry, entry, feed_url, deviation)
    if moved and check.field in ("link", "content") and isinstance(verdict, Verdict):
        return Verdict(verdict.ok, verdict.detail, how=f"rebased {verdict.how}")
    return verdict


def _judge(
    check: Check,
    expected: Any,
    fp_entry: Mapping[str, Any] | None,
    entry: Entry | None,
    feed_url: str,
    deviation: str | None,
) -> Verdict | Skip:
    if entry is None or fp_entry is None:
        return Verdict(False, f"no stored entry for entries[{check.index}]")
    if deviation is not None:
        return _judge_deviation(check, expected, entry, deviation)
    if check.field == "content":
        body = body_of(check, fp_entry)
        if isinstance(body, Skip):
            return Skip(body.category, check.text)
    if check.field == "title":
        return _judge_title(check, expected, fp_entry, entry)
    if check.field == "link":
        return _judge_link(check, expected, entry)
    if check.field == "content":
        return _judge_content(check, expected, fp_entry, entry, feed_url)
    return _judge_date(check, expected, entry)


def _compare(op: str, expected: str, actual: str) -> bool:
    if op == "==":
        return actual == expected
    if op == "!=":
        return actual != expected
    if op == "in":
        return expected in actual
    return expected not in actual


def _judge_title(check: Check, expected: str, fp_entry: Mapping[str, Any], entry: Entry) -> Verdict:
    # Planet stores titles as text. An HTML title's text is what its markup shows; Venus's
    # template ``title`` is always HTML, its ``title_plain`` always text.
    detail = fp_entry.get("title_detail") or {}
    if check.source == "title_plain":
        is_html = False
    elif check.source == "title" and check.text.startswith("Items"):
        is_html = True
    else:
        is_html = detail.get("type") in _HTML_TYPES
    want = html_to_text(expected) if is_html else collapse(expected)
    ok = _compare(check.op, want, entry.title)
    return Verdict(ok, f"title {entry.title!r}, expected {check.op} {want!r}")


def _is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _judge_link(check: Check, expected: str, entry: Entry) -> Verdict:
    if check.op == "==" and not _is_web_url(expected):
        # Planet keeps only absolute http(s) links: anything else must not be linked to.
        return Verdict(entry.link is None, f"link {entry.link!r} for non-web {expected!r}")
    ok = _compare(check.op, expected, entry.link or "")
    return Verdict(ok, f"link {entry.link!r}, expected {check.op} {expected!r}")


def body_of(check: Check, fp_entry: Mapping[str, Any]) -> Mapping[str, Any] | Skip | None:
    """feedparser's detail dict for the body ``check`` is about, or why it is out of scope.

    Planet stores one body per entry: full content (an HTML alternative first) beats the
    summary. A check on a body planet did not pick is skipped, not failed.
    """
    contents = list(fp_entry.get("content") or [])
    chosen = next((c for c in contents if c.get("type") in _HTML_TYPES), None)
    chosen = chosen or (contents[0] if contents else fp_entry.get("summary_detail"))
    if check.text.startswith("Items"):
        # Venus's template ``content`` is whatever body the entry had, as HTML.
        return chosen
    if check.source == "content":
        if contents and contents[0] is not chosen:
            return Skip("content alternative planet does not pick (it keeps the HTML one)", "")
        return contents[0] if contents else None
    if contents and fp_entry.get("summary_detail") is not None:
        return Skip("summary beside full content (planet stores the content)", "")
    # Without a summary of its own feedparser derives ``summary`` from the content.
    return chosen


def _judge_content(
    check: Check, expected: str, fp_entry: Mapping[str, Any], entry: Entry, feed_url: str
) -> Verdict:
    body = body_of(check, fp_entry)
    if not isinstance(body, Mapping):
        return Verdict(False, f"feedparser found no {check.source} to compare")
    is_html = body.get("type") in _HTML_TYPES
    base = body.get("base") or feed_url
    if not is_html and check.text.startswith("Items"):
        # A template shows a text body HTML-escaped: compare the text it reads as.
        expected = html_to_text(expected)
    if not is_html:
        # Plain text is stored escaped in a paragraph: its text must read the same.
        actual = html_to_text(entry.content)
        ok = _compare(check.op, collapse(expected), actual)
        return Verdict(ok, f"text {actual!r}, expected {check.op} {collapse(expected)!r}")
    if check.op in ("in", "not in"):
        actual = html_to_text(entry.content)
        ok = _compare(check.op, collapse(html_to_text(expected)), actual)
        return Verdict(ok, f"text {actual!r}, expected {check.op} {expected!r}")
    want = _sanitized(expected, base)
    if canonical(want) == canonical(entry.content):
        return Verdict(check.op == "==", f"content {entry.content!r} equals {want!r}")
    if check.op != "==":
        return Verdict(True, f"content {entry.content!r} differs from {want!r}")
    # feedparser's sanitizer kept something planet's allow-list drops: planet must then be
    # at least as strict (keep nothing feedparser dropped) and lose no visible text.
    extra = markup_of(entry.content) - markup_of(want)
    lost = collapse(html_to_text(want)) != collapse(html_to_text(entry.content))
    if not extra and not lost:
        return Verdict(True, "", how="stricter")
    return Verdict(
        False,
        f"content {entry.content!r}, expected {want!r} (sanitized {expected!r}): "
        f"kept {sorted(extra)} feedparser dropped" * bool(extra) + " text differs" * lost,
    )


def _sanitized(html: str, base: str) -> str:
    """``html`` as planet would store an HTML body (sanitized, headings demoted)."""
    return demote_headings(sanitize_html(html, base or None))


_TAG_ATTRS = re.compile(r"<([a-zA-Z][\w-]*)([^>]*)>")
_ATTR = re.compile(r"""([\w:-]+)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""")


def markup_of(html: str) -> set[str]:
    """The elements and ``element@attribute=value`` pairs of serialized sanitizer output."""
    found: set[str] = set()
    for tag, attrs in _TAG_ATTRS.findall(canonical(html)):
        found.add(tag.lower())
        for name, value in _ATTR.findall(attrs):
            found.add(f"{tag.lower()}@{name.lower()}={value.strip(chr(34) + chr(39))}")
    return found


def _judge_date(check: Check, expected: Any, entry: Entry) -> Verdict:
    actual = entry.published if check.field == "published" else entry.updated
    if isinstance(expected, tuple) and len(expected) >= 6:
        year, month, day, hour, minute, second = expected[:6]
        want = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    elif isinstance(expected, str):
        want = datetime.fromisoformat(expected).astimezone(timezone.utc)
    else:
        return Verdict(False, f"cannot read expected date {expected!r}")
    # Planet clamps a future date to the time it first saw the entry.
    want = min(want, entry.first_seen)
    ok = entry.dated and (actual == want) == (check.op == "==")
    return Verdict(ok, f"{check.field} {actual.isoformat()}, expected {want.isoformat()}")


#: The kinds of known deviation a test may name for a file, and what is asserted instead.
DEVIATION_KINDS = {
    "drops-more": "planet keeps no markup feedparser dropped and only removes text "
    "(its text is a subsequence of the expected text)",
    "undated": "the entry is stored as undated, at the time planet first saw it",
    "illegal-char": "the XML-illegal character is removed, the text around it kept",
}


def _judge_deviation(check: Check, expected: Any, entry: Entry, kind: str) -> Verdict:
    if kind == "undated":
        ok = not entry.dated and entry.published == entry.updated == entry.first_seen
        return Verdict(ok, f"dated={entry.dated} {entry.published} {entry.first_seen}", kind)
    actual = entry.title if check.field == "title" else entry.content
    if kind == "illegal-char":
        text = html_to_text(actual)
        ok = _XML_ILLEGAL.search(actual) is None and bool(text) and expected not in text
        return Verdict(ok, f"{check.field} {actual!r}", kind)
    assert kind == "drops-more", kind
    want = html_to_text(expected) if check.field == "title" else _sanitized(expected, "")
    extra = markup_of(actual) - markup_of(want)
    # Only removed: the stored text is what is left of feedparser's after deletions.
    text = "".join((html_to_text(actual) if check.field != "title" else actual).split())
    left = iter("".join(html_to_text(want).split()))
    ok = not extra and all(char in left for char in text)
    return Verdict(ok, f"{check.field} {actual!r} vs feedparser's {want!r}, extra {extra}", kind)


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
