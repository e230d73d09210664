"""Bound the nesting an HTML5 parser builds from untrusted markup, in linear time.

nh3 parses with html5ever, which walks its stack of open elements for nearly every tag
(scope checks, reconstruction of formatting elements): ``<ul>`` x 150,000 took 79 s, and
``<p><b title=N>x</p>`` repeated builds a tree quadratic in the input. :func:`flatten`
runs before the parser: it follows html5ever's tokenizer and tree construction closely
enough to know its stack of open elements and its list of active formatting elements, and
drops the start tags that would take the stack past ``max_depth`` (their text is kept:
the content is flattened there) or the formatting list past ``max_formatting`` entries.
The parser then never holds more than about ``max_depth`` open elements, so each tag costs
it at most that much.

Only tags are dropped, never text, and what is left is still sanitized afterwards: where
this model and html5ever might disagree, the worst outcome is a parse as slow as before,
which the parse time limit catches. Everything is O(1) per token (indexes instead of
stack walks), except the rare adoption-agency cases, bounded by the depth.

Rules follow html5ever 0.40 (``tree_builder/rules.rs``): ``select`` is parsed in body
mode and bounds the default scope; scripting is on (``noscript`` is raw text).
"""

from __future__ import annotations

from planet.nesting._modes import _Flattener
from planet.nesting._tokens import _COMMENT_END, _TOKEN, _raw_end, _script_end
from planet.nesting._tree import _HTML

__all__ = ["MAX_FORMATTING", "MAX_NESTING", "flatten"]

#: Open elements beyond this depth are flattened (their tags dropped, text kept).
MAX_NESTING = 512
#: Active formatting elements (after the last marker) beyond this are not opened: each
#: can be re-created at every paragraph, so they multiply the tree.
MAX_FORMATTING = 12
#: Formatting elements re-created (at each paragraph, say) beyond this many in all are
#: closed instead: each re-creation is a new element in the tree.
MAX_RECREATED = 4096
#: Misplaced content put before a table ("foster parenting") beyond this many tokens closes
#: the table first: html5ever finds each one's place by a scan of the table's siblings.
MAX_FOSTERED = 256


def flatten(
    html: str,
    max_depth: int = MAX_NESTING,
    max_formatting: int = MAX_FORMATTING,
    max_recreated: int = MAX_RECREATED,
    max_fostered: int = MAX_FOSTERED,
) -> str:
    """``html`` as an HTML5 parser would build it at most ``max_depth`` elements deep.

    Start tags past that depth (or past ``max_formatting`` open formatting elements) are
    dropped; a table that keeps taking misplaced content, or formatting elements re-created
    over and over, are closed with an end tag inserted for them. Unchanged when none of
    that happens (always, for fewer tags than ``max_depth``).
    """
    if html.count("<") <= max_depth:
        return html
    model = _Flattener(max_depth, max_formatting, max_recreated, max_fostered)
    kept: list[str] = []
    emitted = pos = 0
    length = len(html)
    # An iterator continues where its last match ended (faster than search(html, pos));
    # a new one starts after raw text and comments.
    tokens = _TOKEN.finditer(html)
    while pos < length:
        token = next(tokens, None)
        at = length if token is None else token.start()
        if at > pos:
            model.text(html, pos, at)
            if model.inserted:
                kept += (html[emitted:pos], *model.inserted)
                model.inserted.clear()
                emitted = pos
        if token is None:
            break
        end_tag, name, attrs, _, comment, other, cut = token.groups()
        pos = token.end()
        if name is not None:
            name = name.lower()
            if end_tag:
                model.end(name)
                state: str | None = "data"
            else:
                # "/>" ends a self-closing tag unless the "/" is part of an unquoted value.
                model.self_closing = attrs.endswith("/") and token.end(4) == token.end(3)
                state = model.start(name, attrs)
            if model.inserted:
                kept += (html[emitted:at], *model.inserted)
                model.inserted.clear()
                emitted = at
            if state is None:
                kept.append(html[emitted:at])
                emitted = pos
            elif state == "script":
                pos = _script_end(html, pos)
                tokens = _TOKEN.finditer(html, pos)
            elif state == "plaintext":
                break
            elif state != "data":
                found = _raw_end(name).search(html, pos)
                pos = found.start() if found is not None else length
                tokens = _TOKEN.finditer(html, pos)
        elif comment:
            # html5ever ends a comment at its earliest possible end ("<!-->" included).
            if html.startswith(">", pos):
                pos += 1
            elif html.startswith("->", pos):
                pos += 2
            else:
                found = _COMMENT_END.search(html, pos)
                pos = found.end() if found is not None else length
            tokens = _TOKEN.finditer(html, pos)
        elif other:
            top = model.tree.current()
            if (
                other == "!"
                and top is not None
                and top.ns != _HTML
                and html.startswith("[CDATA[", pos)
            ):
                close = html.find("]]>", pos)
                pos = close + 3 if close >= 0 else length
            elif other == "/" and html.startswith(">", pos):
                pos += 1  # "</>" is nothing at all
            elif other == "/" and pos == length:
                break  # "</" at the end is text
            elif other == "/" and html[pos].isascii() and html[pos].isalpha():
                break  # an end tag cut off by the end of the input
            else:
                close = html.find(">", pos)  # a bogus comment, a DOCTYPE
                pos = close + 1 if close >= 0 else length
            tokens = _TOKEN.finditer(html, pos)
        else:
            assert cut is not None
            break  # a start tag cut off by the end: html5ever drops it, nothing follows
    if not kept:
        return html
    kept.append(html[emitted:])
    return "".join(kept)
