"""How html5ever's tokenizer splits markup: tags, attributes, comments, raw text, script data."""

from __future__ import annotations

import re
from functools import lru_cache

_WS = "\t\n\f\r "
# A tag as html5ever's tokenizer reads it (attribute values quoted with " or ' may hold
# ">"); the lookaheads make every piece maximal so that a tag without its ">" fails fast.
# One token of markup: a tag (groups 1-4: "/" or "", name, attributes, the last run of
# separators among them) or the start of a comment (5), of other markup (6: "!", "?" or
# "/") or of a tag cut off by the end (7).
_TOKEN = re.compile(
    r"""<(?:
        (/?)([a-zA-Z][^\t\n\f\r />]*)(?![^\t\n\f\r />])
        ((?:
            ([\t\n\f\r /]+)(?![\t\n\f\r /])
          | [^\t\n\f\r />][^\t\n\f\r />=]*(?![^\t\n\f\r />=])
            (?:[\t\n\f\r ]*=[\t\n\f\r ]*
               (?:"[^"]*"|'[^']*'|[^\t\n\f\r >"'][^\t\n\f\r >]*(?![^\t\n\f\r >])|(?=>)))?
        )*)>
      | (!--)
      | ([!?/])
      | ([a-zA-Z])
    )""",
    re.VERBOSE,
)
_COMMENT_END = re.compile(r"--!?>")
# One attribute within a tag's attribute text, as the tokenizer splits them.
_ATTRIBUTE = re.compile(
    r"""([^\t\n\f\r />][^\t\n\f\r />=]*)
    (?:[\t\n\f\r ]*=[\t\n\f\r ]*("[^"]*"|'[^']*'|[^\t\n\f\r >"'][^\t\n\f\r >]*))?""",
    re.VERBOSE,
)
_SCRIPT_DATA = re.compile(r"</script[\t\n\f\r />]|<!--", re.IGNORECASE)
_SCRIPT_ESCAPED = re.compile(r"</script[\t\n\f\r />]|<script[\t\n\f\r />]|-->", re.IGNORECASE)
_SCRIPT_DOUBLE = re.compile(r"</script[\t\n\f\r />]|-->", re.IGNORECASE)


@lru_cache(maxsize=16)
def _raw_end(name: str) -> re.Pattern[str]:
    return re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE)


def _attributes(attrs: str) -> dict[str, str]:
    """A tag's attributes by (lower-case) name; the first of two with one name wins."""
    found: dict[str, str] = {}
    for match in _ATTRIBUTE.finditer(attrs):
        name, value = match.group(1).lower(), match.group(2) or ""
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        found.setdefault(name, value)
    return found


def _attribute_key(attrs: str) -> str:
    """What makes two formatting elements alike for "Noah's Ark": the same attributes in
    any order (character references are left as written, so alike ones may look unlike)."""
    if not attrs.strip(_WS + "/"):
        return ""
    return repr(sorted(_attributes(attrs).items()))


def _script_end(html: str, pos: int) -> int:
    """Where the ``</script`` that ends script data starting at ``pos`` begins."""
    state = _SCRIPT_DATA
    length = len(html)
    while True:
        found = state.search(html, pos)
        if found is None:
            return length
        text = found.group().lower()
        if state is _SCRIPT_DATA:
            if text.startswith("</"):
                return found.start()
            state, pos = _SCRIPT_ESCAPED, found.start() + 2  # "<!--": its dashes count
        elif state is _SCRIPT_ESCAPED:
            if text == "-->":
                state, pos = _SCRIPT_DATA, found.end()
            elif text.startswith("</"):
                return found.start()
            else:
                state, pos = _SCRIPT_DOUBLE, found.end() - 1
        elif text == "-->":
            state, pos = _SCRIPT_DATA, found.end()
        else:
            state, pos = _SCRIPT_ESCAPED, found.end() - 1
